//! GPU hosts against real sshd test hosts with a fake `nvidia-smi` and an apt-get stand-in:
//! the NVIDIA container toolkit installed from NVIDIA's repository when it is absent (and k3s
//! restarted when it already runs), nothing when it is present, and a clear refusal, with
//! nothing changed, when the driver is missing or broken.

mod common;

use common::Recorder;
use homelab_nodes::testkit::{FakeDriver, TestLab};
use homelab_nodes::{ApplyOptions, HostErrorKind, HostOutcome, Inventory, Role, apply};

const V: &str = "v1.31.2+k3s1";
const KEYRING: &str = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg";
const SOURCE: &str = "/etc/apt/sources.list.d/nvidia-container-toolkit.list";

fn inventory(lab: &TestLab) -> Inventory {
    let mut inv = lab.inventory(V);
    inv.prepare.nvidia_repo = lab.nvidia_repo_url();
    inv
}

fn apt_calls(lab: &TestLab) -> Vec<String> {
    lab.calls()
        .into_iter()
        .filter(|(_, c)| c.starts_with("apt-get "))
        .map(|(_, c)| c)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_toolkit_is_installed_when_absent_then_k3s_restarts_and_a_rerun_installs_nothing() {
    let lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let mut inv = inventory(&lab);
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The card goes into a1, which already runs k3s.
    lab.gpu_host("a1", FakeDriver::Working);
    inv.hosts[1].gpu = true;
    lab.clear_calls();
    let dry = apply(&inv, &ApplyOptions { dry_run: true }, &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let HostOutcome::WouldChange { changes } = &dry.host("a1").unwrap().outcome else {
        panic!("{dry}")
    };
    assert!(
        changes.iter().any(|c| c.contains(&format!(
            "install the NVIDIA container toolkit from {}; restart k3s-agent so that k3s registers the nvidia runtime",
            lab.nvidia_repo_url()
        ))),
        "{changes:?}"
    );
    assert!(apt_calls(&lab).is_empty(), "a dry run installs nothing");

    let report = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.host("s1").is_some());
    let calls = lab.calls();
    let install = calls
        .iter()
        .position(|(n, c)| {
            n == "a1"
                && c.contains("install -y -qq --no-install-recommends nvidia-container-toolkit")
        })
        .unwrap_or_else(|| panic!("no toolkit install: {calls:?}"));
    let update = calls
        .iter()
        .position(|(n, c)| n == "a1" && c.ends_with("update -qq"))
        .expect("apt-get update");
    let restart = calls
        .iter()
        .position(|(n, c)| n == "a1" && c == "systemctl restart k3s-agent")
        .unwrap_or_else(|| panic!("no restart: {calls:?}"));
    assert!(update < install && install < restart, "{calls:?}");
    assert!(
        !calls
            .iter()
            .any(|(n, c)| n == "s1" && c.starts_with("apt-get")),
        "only the GPU host gets the toolkit"
    );
    let source = lab.file("a1", SOURCE).unwrap();
    assert_eq!(
        source,
        format!(
            "deb [signed-by={KEYRING}] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
        )
    );
    let key = lab.file("a1", KEYRING);
    assert!(
        key.is_some_and(|k| k.contains("stand-in NVIDIA signing key")),
        "the key is stored de-armored"
    );
    assert!(
        lab.file("a1", "/usr/bin/nvidia-container-runtime")
            .is_some()
    );

    // Present now: no install and no restart.
    lab.clear_calls();
    let again = apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(apt_calls(&lab).is_empty(), "{:?}", lab.calls());
    assert!(
        !lab.calls().iter().any(|(_, c)| c.contains("restart")),
        "{:?}",
        lab.calls()
    );
    assert_eq!(
        again.host("a1").unwrap().outcome,
        HostOutcome::Unchanged,
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_host_installed_from_scratch_gets_the_toolkit_before_k3s_without_a_restart() {
    let lab = TestLab::start(&[("s1", Role::Server)]);
    lab.gpu_host("s1", FakeDriver::Working);
    let mut inv = inventory(&lab);
    inv.hosts[0].gpu = true;
    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let calls = lab.calls();
    let toolkit = calls
        .iter()
        .position(|(_, c)| c.contains("--no-install-recommends nvidia-container-toolkit"))
        .unwrap_or_else(|| panic!("{calls:?}"));
    let installer = calls
        .iter()
        .position(|(_, c)| c.starts_with("install.sh server"))
        .unwrap_or_else(|| panic!("{calls:?}"));
    assert!(toolkit < installer, "{calls:?}");
    assert!(
        !calls[..installer]
            .iter()
            .any(|(_, c)| c.starts_with("systemctl restart")),
        "k3s starts after the toolkit and finds the runtime by itself: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_broken_driver_is_refused_and_nothing_is_changed() {
    let lab = TestLab::start(&[("s1", Role::Server), ("a1", Role::Agent)]);
    let mut inv = inventory(&lab);
    inv.hosts[1].gpu = true;
    for (driver, said) in [
        (
            FakeDriver::Missing,
            "the NVIDIA driver is not installed (`nvidia-smi` not found)",
        ),
        (
            FakeDriver::Broken,
            "`nvidia-smi` fails (NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.)",
        ),
    ] {
        lab.gpu_host("a1", driver);
        lab.clear_calls();
        let err = apply(&inv, &ApplyOptions::default(), &Recorder::default())
            .await
            .unwrap_err();
        let report = err.report().unwrap();
        let HostOutcome::Failed { phase, error, .. } = &report.host("a1").unwrap().outcome else {
            panic!("{report}")
        };
        assert_eq!(phase, "Validate", "{driver:?}");
        assert_eq!(error.kind, HostErrorKind::Refused, "{driver:?}");
        assert!(
            error.message.contains(said),
            "{driver:?}: {}",
            error.message
        );
        assert!(
            error
                .message
                .contains("then run `homelab nodes apply` again"),
            "{}",
            error.message
        );
        assert!(lab.file("a1", SOURCE).is_none(), "{driver:?}");
        assert!(
            lab.file("a1", "/etc/rancher/k3s/config.yaml").is_none(),
            "{driver:?}"
        );
        assert!(apt_calls(&lab).is_empty(), "{driver:?}: {:?}", lab.calls());
    }
}
