//! Exit codes and the error marker that carries one; nothing here prints.

/// Success.
pub const OK: u8 = 0;
/// A failure, or a lab that is not healthy.
pub const FAILURE: u8 = 1;
/// A usage error or an invalid spec.
pub const USAGE: u8 = 2;

/// An error that ends the program with a specific exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

/// A usage error (exit 2) with a message saying what to do.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

/// The exit code an error maps to: its own when it carries one, 2 for an invalid spec, else 1.
pub fn code_of(err: &anyhow::Error) -> u8 {
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
