//! Exit codes and the error marker that carries one with what to do next; nothing here prints.

/// Success.
pub const OK: u8 = 0;
/// A failure, or a lab that is not healthy.
pub const FAILURE: u8 = 1;
/// A usage error or an invalid spec.
pub const USAGE: u8 = 2;

/// An error that ends the program with a specific exit code. `message` says what failed and
/// where; `help`, when known, what to do next. The output module prints them in that order,
/// then the cause chain, the same way for every command.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
    pub help: Option<String>,
}

impl Exit {
    /// An error with exit code `code` and no separate next step.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
            help: None,
        }
    }

    /// The same error with what to do next.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A usage error (exit 2) with a message saying what to do.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit::new(USAGE, message).into()
}

/// A usage error (exit 2): what is wrong and where, then what to do about it.
pub fn usage_help(message: impl Into<String>, help: impl Into<String>) -> anyhow::Error {
    Exit::new(USAGE, message).help(help).into()
}

/// The exit code an error maps to: its own when it carries one, 2 for an invalid spec, else 1.
pub fn code_of(err: &anyhow::Error) -> u8 {
    // An `Exit` given as context is found by `downcast_ref`, not in the chain.
    if let Some(e) = err.downcast_ref::<Exit>() {
        return e.code;
    }
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Exit>() {
            return e.code;
        }
        if cause.downcast_ref::<homelab_spec::InvalidSpec>().is_some() {
            return USAGE;
        }
    }
    FAILURE
}

/// What to do next: the first `help` in the error's chain.
pub fn help_of(err: &anyhow::Error) -> Option<&str> {
    if let Some(help) = err.downcast_ref::<Exit>().and_then(|e| e.help.as_deref()) {
        return Some(help);
    }
    err.chain()
        .filter_map(|c| c.downcast_ref::<Exit>())
        .find_map(|e| e.help.as_deref())
}
