//! Runs the `homelab` binary on a pseudo-terminal (util-linux `script`), for the prompts that
//! only appear there; shared by the test binaries that need it, asserting nothing itself.
#![allow(dead_code)]

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Runs `homelab ARGS` on a pseudo-terminal, typing `input`; `environment` sets up the
/// command (working directory, HOME, variables). Returns the exit code and what the terminal
/// showed, with `\r\n` as `\n`.
pub fn run_on_terminal(
    args: &[&str],
    input: &str,
    environment: impl FnOnce(&mut Command),
) -> (i32, String) {
    let found = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`script` (util-linux) not found: the terminal tests need it; run scripts/install-test-deps"
    );
    let line: Vec<String> = std::iter::once(
        assert_cmd::cargo::cargo_bin("homelab")
            .display()
            .to_string(),
    )
    .chain(args.iter().map(|a| a.to_string()))
    .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
    .collect();
    let mut cmd = Command::new("script");
    environment(&mut cmd);
    cmd.env("NO_COLOR", "1")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("script starts");
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(input.as_bytes())
        .expect("typing the input");
    let out = child.wait_with_output().expect("script ends");
    let shown = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    eprintln!(
        "$ homelab {} (on a terminal)\n[exit {:?}]\n{shown}",
        args.join(" "),
        out.status.code()
    );
    (out.status.code().unwrap_or(-1), shown)
}
