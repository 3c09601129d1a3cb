//! Facts about a host, gathered with one script per host: OS, architecture, installed k3s
//! and its config, listening ports, clock, swap, packages. The script is text; parsing is pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::inventory::SnapshotMount;
use crate::k3s_config::{CONFIG_PATH, TOKEN_PATH};
use crate::shell::quote;
use crate::version::{self, K3sVersion};

/// Ports k3s needs free on a host before it is installed there.
pub(crate) const SERVER_PORTS: [u16; 4] = [6443, 10250, 2379, 2380];
pub(crate) const AGENT_PORTS: [u16; 1] = [10250];
/// Where airgap images are picked up by k3s at start.
pub(crate) const IMAGES_DIR: &str = "/var/lib/rancher/k3s/agent/images";
/// apt configuration files the prepare phase manages.
pub(crate) const AUTO_UPGRADES_PATH: &str = "/etc/apt/apt.conf.d/20auto-upgrades";
pub(crate) const NO_REBOOT_PATH: &str = "/etc/apt/apt.conf.d/52homelab-unattended-upgrades";

/// What a host looks like before anything is changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// `ID` from /etc/os-release (`ubuntu`, `debian`, ...).
    pub os_id: String,
    /// `VERSION_ID` from /etc/os-release.
    pub os_version: String,
    /// `PRETTY_NAME` from /etc/os-release.
    pub os_pretty: String,
    /// `uname -m` (`x86_64`, `aarch64`, `armv7l`).
    pub arch: String,
    /// Kernel release.
    pub kernel: String,
    /// Installed k3s version, if k3s is installed.
    pub k3s_version: Option<K3sVersion>,
    /// Which k3s service unit is installed (`k3s` or `k3s-agent`), if any.
    pub k3s_unit: Option<String>,
    /// Current `/etc/rancher/k3s/config.yaml`, if present.
    pub k3s_config: Option<String>,
    /// SHA-256 of the current token file, if present (the token itself is never read back).
    pub token_sha256: Option<String>,
    /// TCP ports something listens on.
    pub listening_ports: BTreeSet<u16>,
    /// Active swap in KiB.
    pub swap_kib: u64,
    /// `nfs-common` is installed.
    pub nfs_common: bool,
    /// `unattended-upgrades` is installed.
    pub unattended_upgrades: bool,
    /// SHA-256 of the apt configuration files the prepare phase manages, by path.
    pub apt_conf_sha256: BTreeMap<String, String>,
    /// `apt-get` is available.
    pub has_apt_get: bool,
    /// `curl` is available (the online installer needs it).
    pub has_curl: bool,
    /// `nvidia-container-runtime` is available (GPU nodes need it).
    pub has_nvidia_runtime: bool,
    /// What `nvidia-smi` says about the NVIDIA driver and GPUs.
    pub nvidia_driver: crate::gpu::Driver,
    /// Files in the airgap images directory, with sizes in bytes.
    pub images: BTreeMap<String, u64>,
    /// CPU count.
    pub cpus: u32,
    /// Memory in KiB.
    pub mem_kib: u64,
    /// Host clock minus this machine's clock, in milliseconds.
    pub clock_offset_ms: i64,
    /// How far off `clock_offset_ms` may be because of the command's round trip, in milliseconds.
    pub clock_uncertainty_ms: i64,
    /// The etcd snapshot mount, on servers of a lab that has one.
    pub snapshot_mount: Option<MountFacts>,
    /// `k3s kubectl get nodes -o json` on this server, when asked for and k3s is installed:
    /// the JSON, or what kubectl said when it failed.
    pub cluster_nodes: Option<Result<String, String>>,
}

/// Lists the cluster's nodes too, on a server where k3s is installed (in the same remote
/// command as the facts, so that reading the cluster costs no round trip of its own).
/// Starts listing the cluster's nodes in the background, on a server where k3s is
/// installed, so that kubectl runs while the rest of the facts are read.
const NODES_START: &str = r#"nodes=
if [ -x /usr/local/bin/k3s ] && [ -f /etc/systemd/system/k3s.service ]; then
  nodes=$(mktemp -d) || exit 1
  { k3s kubectl get nodes -o json > "$nodes/out" 2>&1; echo $? > "$nodes/rc"; } &
fi
"#;

/// Prints what the background listing found (the JSON in base64, or kubectl's last words).
const NODES_END: &str = r#"if [ -n "$nodes" ]; then
  wait
  if [ "$(cat "$nodes/rc")" = 0 ]; then say nodes_b64 "$(base64 < "$nodes/out" | tr -d '\n')"
  else say nodes_error "$(tail -n 3 "$nodes/out" | tr '\n' ' ')"; fi
  rm -rf "$nodes"
fi
"#;

/// The etcd snapshot mount on a server as found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountFacts {
    /// SHA-256 of the mount unit file, if present.
    pub unit_sha256: Option<String>,
    /// `systemctl is-enabled` says `enabled`.
    pub enabled: bool,
    /// What is mounted at the directory (source and file system type), if anything.
    pub mounted: Option<(String, String)>,
    /// The mounted file system answered within the time allowed (`None`: nothing mounted).
    pub answers: Option<bool>,
    /// Entries in the directory on the server's own disk while nothing is mounted there.
    pub local_entries: u64,
}

/// Seconds a mounted snapshot directory has to answer `stat` before it counts as hung.
pub(crate) const MOUNT_ANSWER_SECS: u32 = 5;

/// A mount point as `/proc/self/mountinfo` writes it (octal escapes for space, tab,
/// newline and backslash).
fn mountinfo_escape(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// Prints `mounted_at=<source> <fstype>` for the top-most mount at `dir`, if any.
pub(crate) fn mounted_at_script(dir: &str) -> String {
    format!(
        "awk -v d={} '{{ i = 7; while ($i != \"-\") i++ }} $5 == d {{ m = $(i + 2) \" \" $(i + 1) }} END {{ if (m != \"\") print \"mounted_at=\" m }}' /proc/self/mountinfo",
        quote(&mountinfo_escape(dir))
    )
}

fn mount_script(m: &SnapshotMount) -> String {
    let unit = quote(&m.unit_path());
    let dir = quote(m.mount_point());
    format!(
        r#"if [ -f {unit} ]; then say snapmount_unit "$(sha256sum < {unit} | cut -d ' ' -f 1)"; fi
if [ -L /etc/systemd/system/k3s.service.wants/{name} ] && [ -L /etc/systemd/system/remote-fs.target.wants/{name} ]; then say snapmount_enabled enabled; fi
mnt=$({mounted} | sed -n 's/^mounted_at=//p')
if [ -n "$mnt" ]; then
  say snapmount "$mnt"
  if timeout -s KILL {secs} stat -f {dir} >/dev/null 2>&1; then say snapmount_answers yes; else say snapmount_answers no; fi
elif [ -d {dir} ]; then say snapmount_local "$(ls -A {dir} | wc -l | tr -d ' ')"
fi
"#,
        name = quote(&m.unit_name()),
        mounted = mounted_at_script(m.mount_point()),
        secs = MOUNT_ANSWER_SECS,
    )
}

/// The script that prints `key=value` lines about the host; runs as root. With `mount`,
/// it also looks at the etcd snapshot mount; with `nodes`, it lists the cluster's nodes.
pub(crate) fn script(mount: Option<&SnapshotMount>, nodes: bool) -> String {
    let mut s = String::new();
    if nodes {
        s.push_str(NODES_START);
    }
    s.push_str(&base_script());
    if let Some(m) = mount {
        s.push_str(&mount_script(m));
    }
    if nodes {
        s.push_str(NODES_END);
    }
    s
}

fn base_script() -> String {
    format!(
        r#"say() {{ printf '%s=%s\n' "$1" "$2"; }}
if [ -r /etc/os-release ]; then . /etc/os-release; fi
say os_id "${{ID:-unknown}}"; say os_version "${{VERSION_ID:-}}"; say os_pretty "${{PRETTY_NAME:-}}"
say arch "$(uname -m)"; say kernel "$(uname -r)"
if [ -x /usr/local/bin/k3s ]; then say k3s_version "$(/usr/local/bin/k3s --version 2>/dev/null | head -n 1)"; fi
for u in k3s k3s-agent; do if [ -f /etc/systemd/system/$u.service ]; then say k3s_unit "$u"; fi; done
if [ -f {config} ]; then say k3s_config_b64 "$(base64 < {config} | tr -d '\n')"; fi
if [ -f {token} ]; then say token_sha256 "$(sha256sum < {token} | cut -d ' ' -f 1)"; fi
say listening "$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" {{ n = split($2, a, ":"); print a[n] }}' | sort -u | tr '\n' ' ')"
say swap_kib "$(awk 'NR > 1 {{ s += $3 }} END {{ print s + 0 }}' /proc/swaps 2>/dev/null)"
dpkg-query -W -f='pkg ${{Package}}=${{Status}}\n' nfs-common unattended-upgrades 2>/dev/null
for f in {auto} {noreboot}; do if [ -f "$f" ]; then say "aptconf $f" "$(sha256sum < "$f" | cut -d ' ' -f 1)"; fi; done
if command -v apt-get >/dev/null 2>&1; then say apt_get yes; fi
if command -v curl >/dev/null 2>&1; then say curl yes; fi
if command -v nvidia-container-runtime >/dev/null 2>&1; then say nvidia_runtime yes; fi
{nvidia_smi}if [ -d {images} ]; then for f in {images}/*; do if [ -f "$f" ]; then say "image $(basename "$f")" "$(wc -c < "$f" | tr -d ' ')"; fi; done; fi
say cpus "$(nproc 2>/dev/null || echo 0)"
say mem_kib "$(awk '/^MemTotal:/ {{ print $2 }}' /proc/meminfo)"
say now_ns "$(date +%s%N)"
"#,
        config = CONFIG_PATH,
        token = TOKEN_PATH,
        auto = AUTO_UPGRADES_PATH,
        noreboot = NO_REBOOT_PATH,
        images = IMAGES_DIR,
        nvidia_smi = crate::gpu::FACTS_SCRIPT,
    )
}

/// Parses the script's output. `sent_ns` and `received_ns` are this machine's clock (Unix
/// nanoseconds) just before the command was started and just after its output arrived.
pub(crate) fn parse(output: &str, sent_ns: i128, received_ns: i128) -> Result<Facts, String> {
    use base64::Engine as _;
    let mut f = Facts::default();
    let mut saw_arch = false;
    let mut now_ns = None;
    for line in output.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "os_id" => f.os_id = value.to_string(),
            "os_version" => f.os_version = value.to_string(),
            "os_pretty" => f.os_pretty = value.to_string(),
            "arch" => {
                f.arch = value.to_string();
                saw_arch = true;
            }
            "kernel" => f.kernel = value.to_string(),
            "k3s_version" => f.k3s_version = version::from_version_output(value),
            "k3s_unit" => f.k3s_unit = Some(value.to_string()),
            "k3s_config_b64" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .map_err(|e| format!("the k3s config could not be read back: {e}"))?;
                f.k3s_config = Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            "token_sha256" => f.token_sha256 = Some(value.trim().to_string()),
            "listening" => {
                f.listening_ports = value
                    .split_whitespace()
                    .filter_map(|h| u16::from_str_radix(h, 16).ok())
                    .collect();
            }
            "swap_kib" => f.swap_kib = value.trim().parse().unwrap_or(0),
            "pkg nfs-common" => f.nfs_common = value.contains("install ok installed"),
            "pkg unattended-upgrades" => {
                f.unattended_upgrades = value.contains("install ok installed")
            }
            "apt_get" => f.has_apt_get = true,
            "curl" => f.has_curl = true,
            "nvidia_runtime" => f.has_nvidia_runtime = true,
            "nvidia_gpu" => match &mut f.nvidia_driver {
                crate::gpu::Driver::Gpus(gpus) => gpus.push(value.to_string()),
                other => *other = crate::gpu::Driver::Gpus(vec![value.to_string()]),
            },
            "nvidia_smi" => {
                if let Some(why) = value.strip_prefix("failed: ") {
                    f.nvidia_driver = crate::gpu::Driver::Failed(why.trim().to_string());
                } else if f.nvidia_driver == crate::gpu::Driver::Missing {
                    f.nvidia_driver = crate::gpu::Driver::Gpus(Vec::new());
                }
            }
            "cpus" => f.cpus = value.trim().parse().unwrap_or(0),
            "mem_kib" => f.mem_kib = value.trim().parse().unwrap_or(0),
            "now_ns" => now_ns = value.trim().parse::<i128>().ok(),
            "nodes_b64" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .map_err(|e| format!("the node list could not be read back: {e}"))?;
                f.cluster_nodes = Some(Ok(String::from_utf8_lossy(&bytes).into_owned()));
            }
            "nodes_error" => f.cluster_nodes = Some(Err(value.trim().to_string())),
            "snapmount_unit" => {
                f.snapshot_mount.get_or_insert_default().unit_sha256 = Some(value.trim().into())
            }
            "snapmount_enabled" => {
                f.snapshot_mount.get_or_insert_default().enabled = value.trim() == "enabled"
            }
            "snapmount" => {
                let (source, fstype) = value.rsplit_once(' ').unwrap_or((value, ""));
                f.snapshot_mount.get_or_insert_default().mounted =
                    Some((source.to_string(), fstype.to_string()));
            }
            "snapmount_answers" => {
                f.snapshot_mount.get_or_insert_default().answers = Some(value.trim() == "yes")
            }
            "snapmount_local" => {
                f.snapshot_mount.get_or_insert_default().local_entries =
                    value.trim().parse().unwrap_or(0)
            }
            _ => {
                if let Some(path) = key.strip_prefix("aptconf ") {
                    f.apt_conf_sha256
                        .insert(path.to_string(), value.trim().to_string());
                } else if let Some(name) = key.strip_prefix("image ") {
                    f.images
                        .insert(name.to_string(), value.trim().parse().unwrap_or(0));
                }
            }
        }
    }
    if !saw_arch {
        return Err(format!(
            "the facts script printed nothing usable: {}",
            output.lines().next().unwrap_or("(no output)")
        ));
    }
    // The host read its clock somewhere between sending and receiving; assume the middle.
    let now_ns = now_ns.ok_or("the host did not report its clock (`date +%s%N` failed)")?;
    let midpoint = sent_ns + (received_ns - sent_ns) / 2;
    f.clock_offset_ms = ((now_ns - midpoint) / 1_000_000) as i64;
    f.clock_uncertainty_ms = ((received_ns - sent_ns) / 2_000_000) as i64 + 1;
    Ok(f)
}

impl Facts {
    /// True when k3s is installed (binary present and a service unit written).
    pub fn k3s_installed(&self) -> bool {
        self.k3s_version.is_some() && self.k3s_unit.is_some()
    }

    /// The k3s name of the architecture (`amd64`, `arm64`, `arm`), if k3s supports it.
    pub fn k3s_arch(&self) -> Option<&'static str> {
        match self.arch.as_str() {
            "x86_64" | "amd64" => Some("amd64"),
            "aarch64" | "arm64" => Some("arm64"),
            "armv7l" | "armv7" | "armhf" => Some("arm"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "os_id=ubuntu\nos_version=24.04\nos_pretty=Ubuntu 24.04.1 LTS\narch=x86_64\nkernel=6.8.0\n\
k3s_version=k3s version v1.31.2+k3s1 (6da20424)\nk3s_unit=k3s\nk3s_config_b64=bm9kZS1uYW1lOiBzMQo=\n\
token_sha256=abc\nlistening=0016 192B 0CEA \nswap_kib=0\npkg nfs-common=install ok installed\npkg unattended-upgrades=deinstall ok config-files\n\
aptconf /etc/apt/apt.conf.d/20auto-upgrades=ff\napt_get=yes\ncurl=yes\nimage k3s-airgap-images-amd64.tar.zst=123\n\
cpus=4\nmem_kib=8000000\nnow_ns=1000000000000\n";

    #[test]
    fn parses_every_fact() {
        let f = parse(SAMPLE, 999_000_000_000, 1_001_000_000_000).unwrap();
        assert_eq!(f.os_id, "ubuntu");
        assert_eq!(f.k3s_version.as_ref().unwrap().to_string(), "v1.31.2+k3s1");
        assert_eq!(f.k3s_unit.as_deref(), Some("k3s"));
        assert_eq!(f.k3s_config.as_deref(), Some("node-name: s1\n"));
        assert_eq!(f.listening_ports, [22, 6443, 3306].into_iter().collect());
        assert!(
            f.nfs_common
                && !f.unattended_upgrades
                && f.has_apt_get
                && f.has_curl
                && !f.has_nvidia_runtime
        );
        assert_eq!(
            f.apt_conf_sha256
                .get(AUTO_UPGRADES_PATH)
                .map(String::as_str),
            Some("ff")
        );
        assert_eq!(f.images.get("k3s-airgap-images-amd64.tar.zst"), Some(&123));
        assert_eq!(f.clock_offset_ms, 0);
        assert_eq!(f.clock_uncertainty_ms, 1001);
        assert_eq!(f.k3s_arch(), Some("amd64"));
        assert!(f.k3s_installed());
    }

    #[test]
    fn measures_clock_offset_from_the_midpoint() {
        let f = parse(
            SAMPLE,
            1_000_000_000_000 - 10_000_000_000,
            1_000_000_000_000 - 9_990_000_000,
        )
        .unwrap();
        assert_eq!(f.clock_offset_ms, 9995);
    }

    #[test]
    fn parses_the_snapshot_mount() {
        let out = format!(
            "{SAMPLE}snapmount_unit=ab12\nsnapmount_enabled=enabled\nsnapmount=nas:/v/k3s-etcd-snapshots/lab nfs4\nsnapmount_answers=no\n"
        );
        let m = parse(&out, 0, 0).unwrap().snapshot_mount.unwrap();
        assert_eq!(m.unit_sha256.as_deref(), Some("ab12"));
        assert!(m.enabled);
        assert_eq!(
            m.mounted,
            Some(("nas:/v/k3s-etcd-snapshots/lab".into(), "nfs4".into()))
        );
        assert_eq!(m.answers, Some(false));
        let bare = format!("{SAMPLE}snapmount_enabled=disabled\nsnapmount_local=3\n");
        let m = parse(&bare, 0, 0).unwrap().snapshot_mount.unwrap();
        assert!(!m.enabled && m.mounted.is_none() && m.unit_sha256.is_none());
        assert_eq!(m.local_entries, 3);
        assert_eq!(parse(SAMPLE, 0, 0).unwrap().snapshot_mount, None);
    }

    #[test]
    fn finds_what_is_mounted_where_in_the_real_mountinfo() {
        let run = |dir: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(mounted_at_script(dir))
                .output()
                .unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let root = run("/");
        assert!(
            root.starts_with("mounted_at=") && root.trim().contains(' '),
            "{root}"
        );
        assert_eq!(run("/surely/not/a/mount point"), "");
        assert_eq!(mountinfo_escape("/a b\\c"), "/a\\040b\\134c");
    }

    #[test]
    fn refuses_output_that_is_not_facts() {
        assert!(parse("sh: 1: syntax error\n", 0, 0).is_err());
    }

    #[test]
    fn the_script_is_valid_sh_and_runs_here() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(None, true))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        let f = parse(
            &String::from_utf8_lossy(&out.stdout),
            now - 1_000_000_000,
            now + 1_000_000_000,
        )
        .unwrap();
        assert!(!f.arch.is_empty() && f.cpus > 0 && f.mem_kib > 0);
    }
}
