//! Helpers shared by the node engine's integration tests.
#![allow(dead_code)]

use std::sync::Mutex;

use homelab_nodes::{Event, EventKind, EventSink, HostOutcome, Report};

/// Keeps every event, and prints it for failing tests' output.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<Event>>);

static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

impl EventSink for Recorder {
    fn event(&self, e: &Event) {
        let start = START.get_or_init(std::time::Instant::now);
        eprintln!("{:>7}ms {e}", start.elapsed().as_millis());
        self.0.lock().unwrap().push(e.clone());
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    /// Every event as text, one per line.
    pub fn text(&self) -> String {
        self.events().iter().map(|e| format!("{e}\n")).collect()
    }

    /// The final per-host event kinds of `phase`.
    pub fn kinds(&self, phase: &str, host: &str) -> Vec<EventKind> {
        self.events()
            .into_iter()
            .filter(|e| e.phase == phase && e.host.as_deref() == Some(host))
            .map(|e| e.kind)
            .collect()
    }
}

pub fn changed(report: &Report, host: &str) -> Vec<String> {
    match &report
        .host(host)
        .unwrap_or_else(|| panic!("{host} not in report:\n{report}"))
        .outcome
    {
        HostOutcome::Changed { changes } => changes.clone(),
        other => panic!("{host} did not change: {other:?}\n{report}"),
    }
}

pub fn is_unchanged(report: &Report, host: &str) -> bool {
    report
        .host(host)
        .is_some_and(|h| h.outcome == HostOutcome::Unchanged)
}

/// Index of the first recorded call of `node` containing `needle`.
pub fn call_index(calls: &[(String, String)], node: &str, needle: &str) -> usize {
    calls
        .iter()
        .position(|(n, c)| n == node && c.contains(needle))
        .unwrap_or_else(|| panic!("no call by {node} containing {needle:?} in {calls:#?}"))
}

/// The test virtualenv's Python (`HOMELAB_TEST_VENV`, or `.venv-test` at the workspace root).
pub fn venv_python() -> std::path::PathBuf {
    let venv = std::env::var_os("HOMELAB_TEST_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test")
        });
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} not found: run scripts/install-test-deps to create the test virtualenv",
        python.display()
    );
    python
}
