//! What one run of the `homelab` binary did, shared by the test binaries that run it; nothing
//! here asserts behaviour of its own beyond the exit code a test names.
#![allow(dead_code)]

/// Exit code and output of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Keeps the exit code and output of a finished process.
    pub fn from_output(out: std::process::Output) -> Run {
        Run {
            code: out
                .status
                .code()
                .expect("homelab exits normally, not by a signal"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// Runs `cmd` to the end and keeps its exit code and output.
    pub fn of(cmd: &mut assert_cmd::Command) -> Run {
        Run::from_output(cmd.output().expect("the homelab binary starts"))
    }

    /// stdout parsed as the one JSON document `--output json` promises.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Exit code, stdout and stderr in one text, for assertion messages and snapshots.
    pub fn transcript(&self) -> String {
        format!(
            "exit code: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code, showing everything the run printed when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code:\n{}",
            self.transcript()
        );
        self
    }

    pub fn ok(self) -> Run {
        self.expect(0)
    }
}
