//! `services.vllm` read into a `Vllm`: the model repository, its revision, the token and the
//! extra `vllm serve` flags checked; no I/O. Its GPU request is counted in the GPU rules.

use super::Checker;
use crate::de::Spanned;
use crate::diag::{Diagnostic, Span};
use crate::lab::Vllm;
use crate::raw::RawVllm;

/// The secret the token is read from when `hfToken` names none.
const TOKEN_SECRET: &str = "huggingface-token";

/// Flags homelab passes itself: the model, where it is cached, where the server listens and
/// the key Open WebUI and clients use. Another value would break the Service, the probes or
/// the cache volume.
const OWN_FLAGS: &[&str] = &[
    "--model",
    "--revision",
    "--tokenizer-revision",
    "--download-dir",
    "--host",
    "--port",
    "--api-key",
];

pub(super) fn vllm(c: &mut Checker, v: &Spanned<RawVllm>) -> Vllm {
    let model = match c.require(
        &v.model,
        v.span,
        "model",
        "which Hugging Face model vLLM serves",
        "write the model's repository, e.g. `model: Qwen/Qwen2.5-1.5B-Instruct`",
    ) {
        Some(m) => {
            if !is_repo_id(&m.value) {
                c.error(
                    Diagnostic::error(
                        "invalid-model",
                        format!("`{}` is not a Hugging Face model repository", m.value),
                    )
                    .at(m.span)
                    .help("write the repository as on huggingface.co, `OWNER/NAME` with letters, digits, `-`, `_` and `.`, e.g. `Qwen/Qwen2.5-1.5B-Instruct`"),
                );
            }
            m.value.clone()
        }
        None => String::new(),
    };
    let revision = match &v.revision {
        Some(r) => {
            if r.value.is_empty()
                || r.value
                    .chars()
                    .any(|ch| ch.is_whitespace() || ch.is_control())
            {
                c.error(
                    Diagnostic::error(
                        "invalid-revision",
                        format!("`{}` is not a revision of a model repository", r.value),
                    )
                    .at(r.span)
                    .help("write a branch, a tag or a commit hash of the repository, e.g. `revision: main`"),
                );
            }
            r.value.clone()
        }
        None => {
            c.error(
                Diagnostic::warning(
                    "unpinned-model-revision",
                    "the model's revision is not pinned: vLLM serves whatever `main` holds when it starts",
                )
                .at(Span::point(v.span.start))
                .scope(v.span)
                .label("add `revision` to this mapping")
                .help("write the commit hash shown on the model's \"Files and versions\" page, e.g. `revision: 989aa7980e4cf806f80c7fef2b1adb7bc71aa306`, so a rebuilt lab serves the same weights"),
            );
            "main".into()
        }
    };
    let hf_token = v
        .hf_token
        .as_ref()
        .map(|_| c.secret(&v.hf_token, TOKEN_SECRET));
    args(c, &v.args);
    Vllm {
        model,
        revision,
        hf_token,
        storage: c.quantity(&v.storage, "50Gi"),
        host: v
            .host
            .as_ref()
            .map_or_else(|| "vllm".into(), |h| h.value.clone()),
        args: v.args.iter().map(|a| a.value.clone()).collect(),
    }
}

/// `OWNER/NAME` (or a bare `NAME`, as the oldest repositories are), as the Hub accepts them.
fn is_repo_id(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
            && !p.contains("--")
            && !p.contains("..")
    };
    match s.split_once('/') {
        Some((owner, name)) => part(owner) && part(name),
        None => part(s),
    }
}

/// Each entry is one argument: a flag, or the value of the flag before it.
fn args(c: &mut Checker, args: &[Spanned<String>]) {
    let mut takes_value = false;
    for a in args {
        let arg = a.value.as_str();
        if arg.chars().any(char::is_whitespace) {
            let fixed = arg.split_whitespace().collect::<Vec<_>>().join("=");
            c.error(
                Diagnostic::error(
                    "vllm-arg",
                    format!("`{arg}` holds a space: each entry is one argument"),
                )
                .at(a.span)
                .help(format!(
                    "write the flag and its value as one entry, `{fixed}`, or as two entries"
                )),
            );
            takes_value = false;
            continue;
        }
        if !arg.starts_with("--") {
            if !takes_value {
                c.error(
                    Diagnostic::error(
                        "vllm-arg",
                        format!("`{arg}` is not a `vllm serve` flag"),
                    )
                    .at(a.span)
                    .help("start each entry with `--` (e.g. `--max-model-len=8192`); a value belongs after its flag"),
                );
            }
            takes_value = false;
            continue;
        }
        let flag = arg.split_once('=').map_or(arg, |(f, _)| f);
        if OWN_FLAGS.contains(&flag) {
            c.error(
                Diagnostic::error(
                    "vllm-arg",
                    format!("`{flag}` is set by homelab"),
                )
                .at(a.span)
                .help(match flag {
                    "--model" => "set the model with `model:` (and `revision:`) instead",
                    "--revision" | "--tokenizer-revision" => "set the revision with `revision:` instead",
                    "--api-key" => "the key is the lab's secret `vllm-api-key`: change it with `homelab secrets set vllm-api-key`",
                    _ => "the Service, the probes and the model cache volume depend on it: remove this entry",
                }),
            );
        }
        takes_value = !arg.contains('=');
    }
}

#[cfg(test)]
mod tests {
    use super::is_repo_id;

    #[test]
    fn repository_ids_as_the_hub_takes_them() {
        for ok in [
            "Qwen/Qwen2.5-1.5B-Instruct",
            "gpt2",
            "meta-llama/Llama-3.2-1B",
            "a_b/c.d",
        ] {
            assert!(is_repo_id(ok), "{ok}");
        }
        for bad in [
            "",
            "/x",
            "x/",
            "a/b/c",
            "a b/c",
            "-a/b",
            "a/b.",
            "a--b/c",
            "a/b..c",
            "llama3.2:3b",
        ] {
            assert!(!is_repo_id(bad), "{bad}");
        }
    }
}
