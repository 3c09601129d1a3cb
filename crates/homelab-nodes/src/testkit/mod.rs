//! Test hosts for the node engine: each host is its own `sshd` with its own host key, in its
//! own network namespace (a veth on a per-lab bridge) and its own mount namespace (overlays
//! over /etc, /usr, /var and /home, so whatever the tool writes on "the host" stays private to
//! it and can be asserted on), with recording stand-ins for k3s, its installer and systemctl.
//! Only for tests and benchmarks: it needs root and changes network namespaces.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::inventory::{
    Host, InstallSource, Inventory, Role, SnapshotMount, SshOptions, SshTarget, Timeouts,
};

const K3S_STANDIN: &str = include_str!("k3s.sh");
const INSTALLER_STANDIN: &str = include_str!("install.sh");
const SYSTEMCTL_STANDIN: &str = include_str!("systemctl.sh");
const MOUNT_NFS_STANDIN: &str = include_str!("mount.nfs.sh");
const APT_GET_STANDIN: &str = include_str!("apt-get.sh");

/// What the fake `nvidia-smi` of a GPU test host does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeDriver {
    /// No `nvidia-smi`: the driver is not installed.
    Missing,
    /// `nvidia-smi` fails as it does when the kernel module is not loaded.
    Broken,
    /// `nvidia-smi -L` lists one RTX 3060.
    Working,
}
const OVERLAID: [&str; 4] = ["etc", "usr", "var", "home"];
const SLOT_DIR: &str = "/tmp/homelab-nodes-testlabs";

/// The cluster token every test lab uses.
pub const TEST_TOKEN: &str = "K10-test-lab-token-not-a-real-secret";

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new(tool).is_file();
    assert!(
        found,
        "{tool} not found: the node tests need it; run scripts/install-test-deps (as root)"
    );
}

fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh runs")
}

fn must(cmd: &str) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "test lab setup command failed: {cmd}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A reserved lab number (subnet 198.18.N.0/24, namespaces `hlN-*`), unique across processes.
struct Slot {
    n: u32,
    file: PathBuf,
}

fn netns_names(prefix: &str) -> Vec<String> {
    let out = sh("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

fn teardown_namespaces(n: u32) {
    for ns in netns_names(&format!("hl{n}-")) {
        let pids = sh(&format!("ip netns pids {ns}"));
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = sh(&format!("kill -9 {pid}"));
        }
        let _ = sh(&format!("ip netns del {ns}"));
    }
    let _ = sh(&format!("ip link del hl{n}r 2>/dev/null"));
}

impl Slot {
    fn reserve() -> Slot {
        fs::create_dir_all(SLOT_DIR).expect("slot directory");
        for n in 1..=250u32 {
            let file = Path::new(SLOT_DIR).join(format!("slot-{n}"));
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    teardown_namespaces(n);
                    return Slot { n, file };
                }
                Err(_) => {
                    let owner = fs::read_to_string(&file).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    let age = fs::metadata(&file)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    if !alive
                        && age.is_some_and(|a| a > Duration::from_secs(2))
                        && fs::remove_file(&file).is_ok()
                        && let Ok(mut f) = fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&file)
                    {
                        let _ = write!(f, "{}", std::process::id());
                        teardown_namespaces(n);
                        return Slot { n, file };
                    }
                }
            }
        }
        panic!("no free test lab slot in {SLOT_DIR}: too many labs running at once");
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        teardown_namespaces(self.n);
        let _ = fs::remove_file(&self.file);
    }
}

/// A small HTTP server that serves the files of one directory (the online installer and
/// binary), like get.k3s.io and GitHub releases would.
struct FileServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Answers one request line's target (`/path?query`) with a status and a body.
type Handler = Arc<dyn Fn(&str) -> (u16, Vec<u8>) + Send + Sync>;

impl FileServer {
    fn start(bind: &str, root: PathBuf) -> FileServer {
        Self::serve(
            &format!("{bind}:0"),
            Arc::new(move |target: &str| {
                let path = target.trim_start_matches('/').to_string();
                match (path.contains(".."), fs::read(root.join(&path))) {
                    (false, Ok(body)) => (200, body),
                    _ => (404, Vec::new()),
                }
            }),
        )
    }

    fn serve(addr: &str, handler: Handler) -> FileServer {
        let listener = TcpListener::bind(addr).expect("bind a lab server");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let n = conn.read(&mut buf).unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let target = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (code, body) = handler(&target);
                    let reason = match code {
                        200 => "OK",
                        403 => "Forbidden",
                        _ => "Not Found",
                    };
                    let mut r = format!(
                        "HTTP/1.0 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    let _ = conn.write_all(&r);
                });
            }
        });
        FileServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

/// The path the NAS stand-in exports, as `storage.nfs.path` would name it.
pub const NAS_EXPORT: &str = "/volume1/k8s-data";

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The NAS stand-in: answers `GET /mount?path=P` with the local directory holding P's data
/// when P is [`NAS_EXPORT`] or inside it and exists (403 outside the export, 404 when absent).
fn nas_server(bind: &str, root: PathBuf) -> FileServer {
    FileServer::serve(
        &format!("{bind}:2049"),
        Arc::new(move |target: &str| {
            let path = target
                .split_once("?path=")
                .map(|(_, p)| percent_decode(p.split('&').next().unwrap_or("")))
                .unwrap_or_default();
            let path = path.trim_end_matches('/');
            let inside = path == NAS_EXPORT || path.starts_with(&format!("{NAS_EXPORT}/"));
            if !inside || path.split('/').any(|p| p == "..") {
                return (403, Vec::new());
            }
            let local = root.join(path.trim_start_matches('/'));
            if local.is_dir() {
                (200, local.display().to_string().into_bytes())
            } else {
                (404, Vec::new())
            }
        }),
    )
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One test host.
pub struct TestHost {
    /// Node name.
    pub name: String,
    /// Role in the lab.
    pub role: Role,
    /// IP address on the lab network.
    pub ip: String,
    /// Network namespace.
    pub netns: String,
    root: PathBuf,
    sshd: Option<Child>,
    /// The host's public key line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
}

impl TestHost {
    /// Overlay upper directory holding what was written under `/<top>` on this host.
    pub fn upper(&self, top: &str) -> PathBuf {
        self.root.join(format!("{top}.up"))
    }

    fn sshd_pid(&self) -> Option<u32> {
        self.sshd.as_ref().map(Child::id)
    }
}

/// A lab of test hosts plus the shared stand-in cluster state.
pub struct TestLab {
    /// The hosts, in the order given.
    pub hosts: Vec<TestHost>,
    /// The lab's own directory (keys, ssh config, cluster state, served files).
    pub dir: PathBuf,
    /// The IP of this machine on the lab network.
    pub gateway: String,
    server: Option<FileServer>,
    nas: Option<FileServer>,
    slot: Slot,
    _tmp: tempfile::TempDir,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TestLab {
    /// Starts one sshd host per `(name, role)`, networked on 198.18.N.0/24.
    pub fn start(specs: &[(&str, Role)]) -> TestLab {
        for tool in [
            "ip",
            "unshare",
            "nsenter",
            "/usr/sbin/sshd",
            "ssh",
            "ssh-keygen",
            "sudo",
            "jq",
            "curl",
            "flock",
        ] {
            require(tool);
        }
        assert!(
            unsafe_is_root(),
            "the node tests must run as root (they create network namespaces)"
        );
        let slot = Slot::reserve();
        let n = slot.n;
        let tmp = tempfile::Builder::new()
            .prefix(&format!("hl{n}-"))
            .tempdir()
            .expect("lab directory");
        let dir = tmp.path().to_path_buf();
        let cluster = dir.join("cluster");
        fs::create_dir_all(cluster.join("www")).expect("cluster dir");
        fs::write(cluster.join("state.json"), "{\"cluster\": null, \"nodes\": {}, \"pods\": [], \"snapshots\": [], \"reset_epoch\": 0}\n")
            .expect("state");
        fs::write(cluster.join("calls.log"), "").expect("calls log");
        fs::create_dir_all("/run/sshd").expect("/run/sshd");
        must(&format!(
            "ssh-keygen -q -t ed25519 -N '' -C lab-client -f {}/id_ed25519",
            dir.display()
        ));
        fs::write(
            dir.join("authorized_keys"),
            fs::read(dir.join("id_ed25519.pub")).expect("client key"),
        )
        .expect("authorized_keys");

        let gateway = format!("198.18.{n}.1");
        let lan = format!("hl{n}-lan");
        must(&format!(
            "ip netns add {lan} && ip -n {lan} link set lo up && ip -n {lan} link add br0 type bridge && ip -n {lan} link set br0 up && \
             ip link add hl{n}r type veth peer name up0 netns {lan} && ip -n {lan} link set up0 master br0 up && \
             ip addr add {gateway}/24 dev hl{n}r && ip link set hl{n}r up"
        ));

        let mut lab = TestLab {
            hosts: Vec::new(),
            dir: dir.clone(),
            gateway: gateway.clone(),
            server: None,
            nas: None,
            slot,
            _tmp: tmp,
        };
        let mut known = String::new();
        for (i, (name, role)) in specs.iter().enumerate() {
            let ip = format!("198.18.{n}.{}", 10 + i);
            let ns = format!("hl{n}-h{i}");
            must(&format!(
                "ip netns add {ns} && ip -n {ns} link set lo up && ip -n {lan} link add h{i} type veth peer name eth0 netns {ns} && \
                 ip -n {lan} link set h{i} master br0 up && ip -n {ns} addr add {ip}/24 dev eth0 && ip -n {ns} link set eth0 up && \
                 ip -n {ns} route add default via {gateway}"
            ));
            let root = dir.join(format!("host-{name}"));
            for top in OVERLAID {
                fs::create_dir_all(root.join(format!("{top}.up"))).expect("upper");
                fs::create_dir_all(root.join(format!("{top}.work"))).expect("work");
            }
            // A fresh root home, as on a newly installed host (this machine's may run
            // slow shell start-up files for every SSH command).
            let home = root.join("root-home");
            fs::create_dir_all(&home).expect("root home");
            fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod home");
            for f in [".bashrc", ".profile"] {
                let _ = fs::copy(Path::new("/etc/skel").join(f), home.join(f));
            }
            must(&format!(
                "ssh-keygen -q -t ed25519 -N '' -C {name} -f {}/ssh_host_ed25519_key",
                root.display()
            ));
            let host_key =
                fs::read_to_string(root.join("ssh_host_ed25519_key.pub")).expect("host key");
            let host_key = host_key
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            known.push_str(&format!("{ip} {host_key}\n"));
            fs::write(
                root.join("sshd_config"),
                format!(
                    "Port 22\nListenAddress {ip}\nHostKey {r}/ssh_host_ed25519_key\nPidFile {r}/sshd.pid\n\
                     AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxSessions 64\nMaxStartups 64\n\
                     LogLevel VERBOSE\nSubsystem sftp internal-sftp\n",
                    r = root.display(),
                    d = dir.display()
                ),
            )
            .expect("sshd_config");
            let sbin = root.join("usr.up/local/sbin");
            fs::create_dir_all(&sbin).expect("sbin");
            let systemctl = sbin.join("systemctl");
            fs::write(
                &systemctl,
                SYSTEMCTL_STANDIN.replace("@STATE_DIR@", &cluster.display().to_string()),
            )
            .expect("systemctl");
            fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).expect("chmod");
            // The kernel here has no NFS client: mount(8) runs this helper for `-t nfs`.
            let usbin = root.join("usr.up/sbin");
            fs::create_dir_all(&usbin).expect("usr/sbin");
            for helper in ["mount.nfs", "mount.nfs4"] {
                let path = usbin.join(helper);
                fs::write(
                    &path,
                    MOUNT_NFS_STANDIN.replace("@STATE_DIR@", &cluster.display().to_string()),
                )
                .expect("mount.nfs");
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
            }
            lab.hosts.push(TestHost {
                name: name.to_string(),
                role: *role,
                ip,
                netns: ns,
                root,
                sshd: None,
                host_key,
            });
        }
        fs::write(dir.join("known_hosts"), known).expect("known_hosts");
        let jumps: String = lab
            .hosts
            .iter()
            .skip(1)
            .map(|h| {
                format!(
                    "Host via-jump-{}\n  HostName {}\n  ProxyJump root@{}\n\n",
                    h.name, h.ip, lab.hosts[0].ip
                )
            })
            .collect();
        fs::write(
            dir.join("ssh_config"),
            format!(
                "{jumps}Host *\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  IdentityFile {d}/id_ed25519\n  \
                 IdentitiesOnly yes\n  BatchMode yes\n",
                d = dir.display()
            ),
        )
        .expect("ssh_config");
        for i in 0..lab.hosts.len() {
            lab.start_sshd(i);
        }
        let www = cluster.join("www");
        let server = FileServer::start(&gateway, www.clone());
        let base = format!("http://{}", server.addr);
        fs::write(
            www.join("k3s"),
            K3S_STANDIN.replace("@STATE_DIR@", &cluster.display().to_string()),
        )
        .expect("k3s stand-in");
        fs::write(
            www.join("install.sh"),
            INSTALLER_STANDIN
                .replace("@STATE_DIR@", &cluster.display().to_string())
                .replace("@BASE_URL@", &base),
        )
        .expect("installer stand-in");
        lab.server = Some(server);
        let export = dir.join("nas").join(NAS_EXPORT.trim_start_matches('/'));
        fs::create_dir_all(&export).expect("NAS export");
        lab.nas = Some(nas_server(&gateway, dir.join("nas")));
        lab
    }

    /// The NAS stand-in's address (this machine on the lab network; it exports [`NAS_EXPORT`]).
    pub fn nas_address(&self) -> &str {
        &self.gateway
    }

    /// Where the NAS stand-in keeps the data of `path` (a path on the NAS, e.g. inside
    /// [`NAS_EXPORT`]).
    pub fn nas_dir(&self, path: &str) -> PathBuf {
        self.dir.join("nas").join(path.trim_start_matches('/'))
    }

    /// An etcd snapshot mount of the lab's directory on the NAS stand-in at
    /// `/mnt/k3s-snapshots`, as homelab.yaml's `storage.nfs` would give.
    pub fn snapshot_mount(&self) -> SnapshotMount {
        SnapshotMount {
            server: self.gateway.clone(),
            export: NAS_EXPORT.into(),
            subdir: "k3s-etcd-snapshots/testlab".into(),
            dir: "/mnt/k3s-snapshots".into(),
        }
    }

    /// Gives root on every host a `.bashrc` that costs `cost` each time a shell starts (bash
    /// reads it for every command sshd runs, as on many real hosts) and logs each start, for
    /// [`TestLab::shell_starts`].
    pub fn slow_login_shell(&self, cost: Duration) {
        for h in &self.hosts {
            let home = h.root.join("root-home");
            let stock = fs::read_to_string("/etc/skel/.bashrc").unwrap_or_default();
            fs::write(
                home.join(".bashrc"),
                format!(
                    "# Test host: start-up work before the interactive check, as many .bashrc files do.\n\
                     echo start >> \"$HOME/.shell-starts\"\n\
                     sleep {:.3}\n{stock}",
                    cost.as_secs_f64()
                ),
            )
            .expect(".bashrc");
            let _ = fs::remove_file(home.join(".shell-starts"));
        }
    }

    /// How many shells root's login started on host `name` since [`TestLab::slow_login_shell`]
    /// or the last [`TestLab::clear_shell_starts`]: one per command sshd ran.
    pub fn shell_starts(&self, name: &str) -> usize {
        fs::read_to_string(self.host(name).root.join("root-home/.shell-starts"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Gives root on every host the stock `.bashrc` again (which returns at once for
    /// non-interactive shells).
    pub fn plain_login_shell(&self) {
        for h in &self.hosts {
            let _ = fs::copy("/etc/skel/.bashrc", h.root.join("root-home/.bashrc"));
        }
    }

    /// How many SSH logins host `name`'s sshd has accepted since the lab started: one per
    /// master connection opened to it.
    pub fn logins(&self, name: &str) -> usize {
        fs::read_to_string(self.host(name).root.join("sshd.log"))
            .map(|t| {
                t.lines()
                    .filter(|l| l.contains("Accepted publickey for "))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Forgets the shell starts counted so far.
    pub fn clear_shell_starts(&self) {
        for h in &self.hosts {
            let _ = fs::remove_file(h.root.join("root-home/.shell-starts"));
        }
    }

    /// Stops the NAS stand-in: NFS mounts from it are refused from now on.
    pub fn stop_nas(&mut self) {
        self.nas.take();
    }

    fn start_sshd(&mut self, i: usize) {
        let host = &self.hosts[i];
        let r = host.root.display().to_string();
        let mut mounts: String = OVERLAID
            .iter()
            .map(|t| format!("mount -t overlay overlay -o lowerdir=/{t},upperdir={r}/{t}.up,workdir={r}/{t}.work /{t} || exit 1; "))
            .collect();
        mounts.push_str(&format!("mount --bind {r}/root-home /root || exit 1; "));
        let log = fs::File::create(host.root.join("sshd.log")).expect("sshd log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &host.netns,
                "unshare",
                "-m",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
            ])
            .arg(format!(
                "{mounts}exec /usr/sbin/sshd -D -e -f {r}/sshd_config"
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let addr: SocketAddr = format!("{}:22", host.ip).parse().expect("address");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd of test host {} did not start: {}",
                host.name,
                fs::read_to_string(host.root.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.hosts[i].sshd = Some(child);
    }

    /// The test host named `name`.
    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no test host {name}"))
    }

    fn index(&self, name: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .unwrap_or_else(|| panic!("no test host {name}"))
    }

    /// The shared stand-in cluster directory.
    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.join("cluster")
    }

    /// The lab's SSH client configuration file.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// The lab's known_hosts file.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// Makes `name` a GPU host: a fake `nvidia-smi` as `driver` says, an apt-get stand-in,
    /// and NVIDIA's repository (a key and an apt source) served at [`Self::nvidia_repo_url`].
    pub fn gpu_host(&self, name: &str, driver: FakeDriver) {
        use base64::Engine as _;
        let state = self.cluster_dir().display().to_string();
        // Written from inside the host: its /usr is an overlay mounted already.
        let put = |path: &str, content: &str| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(content);
            let out = self.exec(
                name,
                &format!("mkdir -p \"$(dirname {path})\" && echo {b64} | base64 -d > {path} && chmod 755 {path}"),
            );
            assert!(out.status.success(), "writing {path} on {name}: {out:?}");
        };
        put(
            "/usr/local/sbin/apt-get",
            &APT_GET_STANDIN.replace("@STATE_DIR@", &state),
        );
        let smi = "/usr/local/bin/nvidia-smi";
        match driver {
            FakeDriver::Missing => {
                self.exec(name, &format!("rm -f {smi}"));
            }
            FakeDriver::Broken => put(
                smi,
                "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\nexit 9\n",
            ),
            FakeDriver::Working => put(
                smi,
                "#!/bin/sh\necho 'GPU 0: NVIDIA GeForce RTX 3060 (UUID: GPU-5e8f3a4c-0000-0000-0000-000000000000)'\n",
            ),
        }
        let repo = self.cluster_dir().join("www/nvidia");
        fs::create_dir_all(repo.join("stable/deb")).expect("repo");
        let key = repo.join("gpgkey");
        if !key.exists() {
            fs::write(repo.join("key.bin"), b"stand-in NVIDIA signing key\n").expect("key");
            must(&format!(
                "gpg --batch --yes --enarmor -o {} {}",
                key.display(),
                repo.join("key.bin").display()
            ));
        }
        fs::write(
            repo.join("stable/deb/nvidia-container-toolkit.list"),
            "deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n",
        )
        .expect("apt source");
    }

    /// Where [`Self::gpu_host`] serves NVIDIA's repository.
    pub fn nvidia_repo_url(&self) -> String {
        format!(
            "http://{}/nvidia",
            self.server.as_ref().expect("file server").addr
        )
    }

    /// URL of the installer stand-in served to the hosts.
    pub fn installer_url(&self) -> String {
        format!(
            "http://{}/install.sh",
            self.server.as_ref().expect("file server").addr
        )
    }

    /// An online-mode inventory of all hosts (root login, the lab's SSH config, the test
    /// token, short timeouts).
    pub fn inventory(&self, version: &str) -> Inventory {
        let hosts = self
            .hosts
            .iter()
            .map(|h| Host {
                name: h.name.clone(),
                role: h.role,
                address: h.ip.clone(),
                ssh: SshTarget {
                    user: Some("root".into()),
                    ..SshTarget::default()
                },
                labels: BTreeMap::new(),
                taints: vec![],
                gpu: false,
                k3s_config: "write-kubeconfig-mode: \"0600\"\ndisable:\n  - servicelb\n".into(),
            })
            .collect();
        let mut inv = Inventory::new("testlab", version, SecretString::from(TEST_TOKEN), hosts);
        inv.install = InstallSource::Online {
            installer_url: self.installer_url(),
        };
        fs::create_dir_all(self.dir.join("ssh-control")).expect("control socket directory");
        inv.ssh = SshOptions {
            config_file: Some(self.ssh_config()),
            control_dir: Some(self.dir.join("ssh-control")),
            keep_connections: None,
        };
        inv.timeouts = Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(60),
            install: Duration::from_secs(120),
            ready: Duration::from_secs(20),
            drain: Duration::from_secs(5),
            etcd_member_removal: Duration::from_secs(20),
            poll_interval: Duration::from_millis(200),
        };
        inv
    }

    /// Like [`TestLab::inventory`], with only the named hosts, in that order.
    pub fn inventory_of(&self, version: &str, names: &[&str]) -> Inventory {
        let mut inv = self.inventory(version);
        inv.hosts = names
            .iter()
            .map(|n| {
                inv.hosts
                    .iter()
                    .find(|h| h.name == *n)
                    .unwrap_or_else(|| panic!("no test host {n}"))
                    .clone()
            })
            .collect();
        inv
    }

    /// Writes an airgap directory (installer, k3s binary of `version`, images archive).
    pub fn airgap_dir(&self, version: &str) -> PathBuf {
        let d = self.dir.join(format!("airgap-{version}"));
        fs::create_dir_all(&d).expect("airgap dir");
        let state = self.cluster_dir().display().to_string();
        fs::write(
            d.join("install.sh"),
            INSTALLER_STANDIN
                .replace("@STATE_DIR@", &state)
                .replace("@BASE_URL@", "http://unreachable.invalid"),
        )
        .expect("installer");
        let bin = d.join("k3s");
        fs::write(
            &bin,
            K3S_STANDIN
                .replace("@STATE_DIR@", &state)
                .replace("@VERSION@", version),
        )
        .expect("binary");
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(
            d.join("k3s-airgap-images-amd64.tar.zst"),
            b"stand-in images archive\n".repeat(64),
        )
        .expect("images");
        d
    }

    /// Runs `script` inside host `name` (its network and mount namespaces) as root.
    pub fn exec(&self, name: &str, script: &str) -> Output {
        let pid = self
            .host(name)
            .sshd_pid()
            .unwrap_or_else(|| panic!("sshd of {name} is not running"));
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "-m", "--", "sh", "-c", script])
            .output()
            .expect("nsenter")
    }

    /// The content of `path` on host `name` as the host sees it, or `None`.
    pub fn file(&self, name: &str, path: &str) -> Option<String> {
        let host = self.host(name);
        let rel = path.trim_start_matches('/');
        let top = rel.split('/').next().unwrap_or("");
        if OVERLAID.contains(&top) {
            let upper = host
                .upper(top)
                .join(rel[top.len()..].trim_start_matches('/'));
            if let Ok(meta) = fs::symlink_metadata(&upper) {
                if meta.file_type().is_char_device() && meta.rdev() == 0 {
                    return None;
                }
                return fs::read_to_string(&upper).ok();
            }
        }
        fs::read_to_string(path).ok()
    }

    /// Mode bits of `path` on host `name`, when it was written there.
    pub fn mode(&self, name: &str, path: &str) -> Option<u32> {
        let host = self.host(name);
        let rel = path.trim_start_matches('/');
        let top = rel.split('/').next().unwrap_or("");
        fs::metadata(
            host.upper(top)
                .join(rel[top.len()..].trim_start_matches('/')),
        )
        .ok()
        .map(|m| m.mode() & 0o7777)
    }

    /// Everything written on every host (overlay upper layers): path to mode and content hash.
    pub fn tree(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for h in &self.hosts {
            for top in OVERLAID {
                walk(&h.upper(top), &format!("{}:/{top}", h.name), &mut out);
            }
        }
        out
    }

    /// Every call the stand-ins recorded, as `(node, command line)`.
    pub fn calls(&self) -> Vec<(String, String)> {
        fs::read_to_string(self.cluster_dir().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.split_once('\t')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        fs::write(self.cluster_dir().join("calls.log"), "").expect("clear calls");
    }

    /// The stand-in cluster model.
    pub fn state(&self) -> Value {
        serde_json::from_str(
            &fs::read_to_string(self.cluster_dir().join("state.json")).expect("state"),
        )
        .expect("state json")
    }

    fn edit_state(&self, jq_program: &str, args: &[(&str, &str)]) {
        let dir = self.cluster_dir();
        let mut cmd = format!("cd {} && flock lock sh -c 'jq", dir.display());
        for (k, _) in args {
            cmd.push_str(&format!(" --arg {k} \"${k}\""));
        }
        cmd.push_str(" \"$PROGRAM\" state.json > state.tmp && mv state.tmp state.json'");
        let mut c = Command::new("sh");
        c.arg("-c").arg(&cmd).env("PROGRAM", jq_program);
        for (k, v) in args {
            c.env(k, v);
        }
        let out = c.output().expect("jq");
        assert!(
            out.status.success(),
            "editing the stand-in state failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Puts a pod on `node` in the stand-in cluster.
    pub fn add_pod(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
        pdb_blocked: bool,
        daemonset: bool,
    ) {
        self.edit_state(
            ".pods += [{ns: $ns, name: $name, node: $node, pdb_blocked: ($blocked == \"true\"), daemonset: ($ds == \"true\")}]",
            &[("ns", namespace), ("name", name), ("node", node), ("blocked", &pdb_blocked.to_string()), ("ds", &daemonset.to_string())],
        );
    }

    /// Marks `node` NotReady in the stand-in cluster now, as when its host died.
    pub fn mark_not_ready(&self, node: &str) {
        self.edit_state(".nodes[$n].ready = false", &[("n", node)]);
    }

    /// Makes `node` come up NotReady from its next start on (or Ready again).
    pub fn set_fail_ready(&self, node: &str, fail: bool) {
        let marker = self.cluster_dir().join(format!("fail-ready-{node}"));
        if fail {
            fs::write(marker, "").expect("marker");
        } else {
            let _ = fs::remove_file(marker);
        }
    }

    /// Makes something listen on TCP `port` of host `name` (a second sshd), as another
    /// service would.
    pub fn occupy_port(&self, name: &str, port: u16) {
        let host = self.host(name);
        let r = host.root.display();
        let out = self.exec(
            name,
            &format!(
                "/usr/sbin/sshd -f {r}/sshd_config -o Port={port} -o PidFile={r}/port-{port}.pid"
            ),
        );
        assert!(
            out.status.success(),
            "occupying port {port} on {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops host `name` as if it went down: its sshd and every process in its network
    /// namespace, so that SSH connections open to it (a master kept by an earlier run) end
    /// too and the host becomes unreachable.
    pub fn stop_sshd(&mut self, name: &str) {
        let i = self.index(name);
        if let Some(mut child) = self.hosts[i].sshd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let pids = sh(&format!("ip netns pids {}", self.hosts[i].netns));
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = sh(&format!("kill -9 {pid}"));
        }
    }

    /// Adds a login user on host `name`. `password` sets one (else the account has none);
    /// `sudo` is the sudoers rule (`None`: not a sudoer), e.g. `ALL=(ALL) ALL`.
    pub fn add_user(&self, name: &str, user: &str, password: Option<&str>, sudo: Option<&str>) {
        let mut script = format!("set -e; useradd -M -s /bin/sh {user}; ");
        match password {
            Some(p) => script.push_str(&format!("echo '{user}:{p}' | chpasswd; ")),
            None => script.push_str(&format!("usermod -p '*' {user}; ")),
        }
        if let Some(rule) = sudo {
            script.push_str(&format!(
                "echo '{user} {rule}' > /etc/sudoers.d/{user}; chmod 440 /etc/sudoers.d/{user}; "
            ));
        }
        let out = self.exec(name, &script);
        assert!(
            out.status.success(),
            "adding user {user} on {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Replaces the known_hosts entry of host `name` with another key (as if the host had
    /// been reinstalled, or someone were intercepting).
    pub fn change_known_host_key(&self, name: &str) {
        let tmp = self.dir.join("other_key");
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(tmp.with_extension("pub"));
        must(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {}",
            tmp.display()
        ));
        let other = fs::read_to_string(tmp.with_extension("pub")).expect("other key");
        let other: String = other
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let ip = self.host(name).ip.clone();
        let known = fs::read_to_string(self.known_hosts()).expect("known_hosts");
        let replaced: String = known
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{ip} ")) {
                    format!("{ip} {other}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(self.known_hosts(), replaced).expect("known_hosts");
    }

    /// Removes host `name` from known_hosts.
    pub fn forget_known_host(&self, name: &str) {
        let ip = self.host(name).ip.clone();
        let known = fs::read_to_string(self.known_hosts()).expect("known_hosts");
        let kept: String = known
            .lines()
            .filter(|l| !l.starts_with(&format!("{ip} ")))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(self.known_hosts(), kept).expect("known_hosts");
    }

    /// SHA256 fingerprint of host `name`'s key, as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self, name: &str) -> String {
        let out = must(&format!(
            "ssh-keygen -lf {}/ssh_host_ed25519_key.pub",
            self.host(name).root.display()
        ));
        out.split_whitespace()
            .nth(1)
            .expect("fingerprint")
            .to_string()
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let key = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        if meta.is_dir() {
            out.insert(key.clone(), format!("dir {mode:o}"));
            walk(&path, &key, out);
        } else if meta.file_type().is_symlink() {
            out.insert(
                key,
                format!(
                    "link {}",
                    fs::read_link(&path)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            );
        } else if meta.file_type().is_char_device() {
            out.insert(key, "deleted".into());
        } else {
            out.insert(
                key,
                format!(
                    "file {mode:o} {}",
                    sha256_hex(&fs::read(&path).unwrap_or_default())
                ),
            );
        }
    }
}

fn unsafe_is_root() -> bool {
    String::from_utf8_lossy(&sh("id -u").stdout).trim() == "0"
}

impl Drop for TestLab {
    fn drop(&mut self) {
        self.server.take();
        self.nas.take();
        for h in &mut self.hosts {
            if let Some(mut c) = h.sshd.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        teardown_namespaces(self.slot.n);
        // Overlay work directories are left root-only (mode 000) by the kernel.
        let _ = sh(&format!(
            "chmod -R u+rwx {} 2>/dev/null",
            self.dir.display()
        ));
    }
}
