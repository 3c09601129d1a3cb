//! SSH sessions to hosts through the system OpenSSH client (one multiplexed master per host,
//! kept for the next run when the inventory asks): strict host-key checking, sudo with or
//! without password, scripts and file uploads. Knows nothing about k3s; never puts a secret
//! on a command line.

use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, SessionBuilder, Stdio};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::error::{HostError, HostErrorKind};
use crate::inventory::{Host, Inventory};
use crate::shell::quote;

/// Commands in flight per connection; OpenSSH servers allow 10 sessions per connection by default.
const CHANNELS_PER_HOST: usize = 8;

/// What a remote command reads on stdin.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    None,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// Bytes for a command's stdin: a head in memory (password, small files) and an optional
/// file streamed after it (large uploads).
struct Feed {
    head: Vec<u8>,
    file: Option<tokio::fs::File>,
}

/// What a remote command printed and how it exited.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

enum Privilege {
    Root,
    Sudo,
    SudoWithPassword(SecretString),
}

/// An open connection to one host, running everything as root.
pub(crate) struct Remote {
    pub(crate) host: String,
    session: openssh::Session,
    /// The login user's name and how it becomes root, learnt from the first command (which
    /// finds out on the host itself, so that it costs no round trip of its own).
    privilege: OnceLock<(String, Privilege)>,
    /// The inventory's sudo password for this host, if any.
    sudo_password: Option<SecretString>,
    channels: Semaphore,
    /// The master stays for the next run (ADR 0107) instead of being closed with this run.
    kept: bool,
    /// The master was already there, left by an earlier run.
    pub(crate) reused: bool,
}

/// The first line the privilege wrapper prints: `<PRIVILEGE_MARK> <uid> <how> <login>`.
const PRIVILEGE_MARK: &str = "homelab-privilege";

/// A script that runs `body` as root however this login can (directly as root, `sudo -n`,
/// or `sudo -S` with the password that is then the first line of stdin), after printing one
/// line saying which. It never lets the password reach `body`'s stdin, arguments or
/// environment.
fn privilege_wrapper(body: &str, with_password: bool) -> String {
    let read_password = if with_password {
        "IFS= read -r pw || pw="
    } else {
        "pw="
    };
    format!(
        "{read_password}\n\
         u=$(id -u); n=$(id -un); b={body}\n\
         say() {{ printf '{PRIVILEGE_MARK} %s %s %s\\n' \"$u\" \"$1\" \"$n\"; }}\n\
         if [ \"$u\" = 0 ]; then say root; unset pw; exec sh -c \"$b\"; fi\n\
         if ! command -v sudo >/dev/null 2>&1; then say nosudo; exit 0; fi\n\
         if e=$(sudo -n -- true 2>&1); then say sudo; unset pw; exec sudo -n -- sh -c \"$b\"; fi\n\
         if [ -z \"$pw\" ]; then say refused; printf '%s\\n' \"$e\" >&2; exit 0; fi\n\
         say password\n\
         {{ printf '%s\\n' \"$pw\"; unset pw; exec cat; }} | sudo -S -k -p '' -- sh -c \"$b\"\n",
        body = quote(body),
    )
}

/// What `ssh` should be given as destination for a host.
pub(crate) fn destination(host: &Host) -> &str {
    host.ssh.destination.as_deref().unwrap_or(&host.address)
}

/// The `ssh` options that reproduce the inventory's settings for a host, for messages that
/// tell the user which command to run, and for the host-key probe.
fn ssh_options(inv: &Inventory, host: &Host) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(cfg) = &inv.ssh.config_file {
        args.push("-F".to_string());
        args.push(cfg.display().to_string());
    }
    if let Some(port) = host.ssh.port {
        args.push("-p".into());
        args.push(port.to_string());
    }
    if let Some(user) = &host.ssh.user {
        args.push("-l".into());
        args.push(user.clone());
    }
    if let Some(key) = &host.ssh.identity_file {
        args.push("-i".into());
        args.push(key.display().to_string());
        args.push("-o".into());
        args.push("IdentitiesOnly=yes".into());
    }
    args
}

fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:@[]".contains(c))
            {
                w.clone()
            } else {
                quote(w)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why the SSH master connection could not be set up, read from OpenSSH's log.
#[derive(Debug, PartialEq, Eq)]
enum ConnectFailure {
    HostKeyUnknown,
    HostKeyChanged,
    Auth,
    Unreachable,
}

fn classify(log: &str) -> ConnectFailure {
    if log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || log.contains("has changed and you have requested strict checking")
    {
        ConnectFailure::HostKeyChanged
    } else if log.contains("Host key verification failed") || log.contains("host key is known for")
    {
        ConnectFailure::HostKeyUnknown
    } else if log.contains("Permission denied") || log.contains("Too many authentication failures")
    {
        ConnectFailure::Auth
    } else {
        ConnectFailure::Unreachable
    }
}

/// The last `debug1: Server host key: <type> <fingerprint>` line of `ssh -v` output (the
/// target's, after any jump hosts).
fn server_host_key(verbose_log: &str) -> Option<(String, String)> {
    verbose_log.lines().rev().find_map(|line| {
        let rest = line.split("Server host key: ").nth(1)?;
        let mut words = rest.split_whitespace();
        Some((words.next()?.to_string(), words.next()?.to_string()))
    })
}

/// `ssh -G` output: the effective value of one option.
fn effective_option(g_output: &str, option: &str) -> Option<String> {
    g_output.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == option).then(|| v.trim().to_string())
    })
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

async fn local_output(args: &[String], limit: Duration) -> Option<std::process::Output> {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(limit, cmd.output()).await.ok()?.ok()
}

/// Builds the message for a refused host key: fingerprint, where the known key is, and
/// the exact commands to trust the presented key after checking it.
async fn host_key_message(inv: &Inventory, host: &Host, changed: bool, master_log: &str) -> String {
    let dest = destination(host).to_string();
    let opts = ssh_options(inv, host);
    let limit = inv.timeouts.connect + Duration::from_secs(5);

    let mut g = opts.clone();
    g.push("-G".into());
    g.push(dest.clone());
    let resolved = local_output(&g, limit)
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let hostname = effective_option(&resolved, "hostname").unwrap_or_else(|| host.address.clone());
    let port: u16 = effective_option(&resolved, "port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(22);
    let known_hosts = effective_option(&resolved, "userknownhostsfile")
        .and_then(|v| v.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "~/.ssh/known_hosts".into());
    let known_name = if port == 22 {
        hostname.clone()
    } else {
        format!("[{hostname}]:{port}")
    };

    let mut probe = opts.clone();
    probe.extend(
        [
            "-v",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    probe.push(format!(
        "ConnectTimeout={}",
        inv.timeouts.connect.as_secs().max(1)
    ));
    probe.push(dest.clone());
    probe.push("true".into());
    let verbose = local_output(&probe, limit)
        .await
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    let key = server_host_key(&verbose).or_else(|| server_host_key(master_log));
    let presented = match &key {
        Some((kind, fp)) => format!("it presents the {kind} key {fp}"),
        None => "its key fingerprint could not be read".to_string(),
    };
    let check =
        "check it on the host's console with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`";
    let mut accept = vec!["ssh".to_string()];
    accept.extend(opts.iter().cloned());
    accept.extend([
        "-o".to_string(),
        "StrictHostKeyChecking=accept-new".to_string(),
        dest.clone(),
        "true".to_string(),
    ]);
    let accept = shell_line(&accept);
    if changed {
        let offending = master_log
            .lines()
            .find(|l| l.contains("Offending") && l.contains(" key in "))
            .and_then(|l| l.split(" key in ").nth(1))
            .map(|s| s.trim().to_string());
        let remove = shell_line(&[
            "ssh-keygen".into(),
            "-R".into(),
            known_name.clone(),
            "-f".into(),
            known_hosts.clone(),
        ]);
        format!(
            "host key of {known_name} has CHANGED and the connection was refused: {presented}, which differs from the key recorded in {}. \
             This happens after a reinstall, but can also mean someone is intercepting the connection. If you have checked the new key \
             ({check}), replace the old one with: {remove} && {accept}",
            offending.unwrap_or(known_hosts),
        )
    } else {
        format!(
            "host key of {known_name} is not known (it is not in {known_hosts}) and unknown keys are refused: {presented}. \
             If that is the host's key ({check}), trust it with: {accept}"
        )
    }
}

/// Why no master connection could be had.
enum ConnectError {
    /// What OpenSSH said (its log), to classify.
    Ssh(String),
    /// The local directory for kept connections cannot be used safely.
    ControlDir(PathBuf, String),
}

/// The longest control socket path ssh can listen on: `sun_path` holds 108 bytes, and ssh
/// first binds a temporary name (the path and 17 more characters) before renaming it.
const MAX_SOCKET_PATH: usize = 90;

/// Where kept master connections live when the inventory names no directory: the user's
/// runtime directory (private, in memory, emptied at logout), else the cache directory.
/// `None` without either: connections are then not kept.
fn default_kept_dir(
    runtime: Option<OsString>,
    cache: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(run) = absolute(runtime).filter(|p| p.is_dir()) {
        return Some(run.join("homelab-ssh"));
    }
    absolute(cache)
        .or_else(|| absolute(home).map(|h| h.join(".cache")))
        .map(|c| c.join("homelab").join("ssh"))
}

/// Makes `dir` a directory only this user can enter: created with mode 0700 (its parents
/// as the umask says), a wider mode narrowed to 0700. Anyone who can reach a control socket
/// can run commands on the host as the login user, so a symbolic link or anything but a
/// directory is refused rather than followed.
fn private_dir(dir: &Path) -> Result<(), String> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create it: {e}"))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create it: {e}")),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err(
            "it is a symbolic link, and control sockets are only kept in a real directory".into(),
        );
    }
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("its mode is {mode:o} and cannot be narrowed to 700: {e}"))?;
    }
    Ok(())
}

/// The control socket's name for a host: a digest of everything that decides where and as
/// whom ssh connects, so that a master is only reused by a run that would have opened the
/// same connection.
fn socket_name(inv: &Inventory, host: &Host) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for word in ssh_options(inv, host) {
        digest.update(word.as_bytes());
        digest.update([0]);
    }
    digest.update(destination(host).as_bytes());
    digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether an ssh master answers on `socket`. A master greets every new client first
/// (`MUX_MSG_HELLO`, OpenSSH's PROTOCOL.mux); a socket left behind by a dead master refuses
/// the connection, and one whose master does not greet within a second is not reused either.
fn master_answers(socket: &Path) -> bool {
    use std::io::Read as _;
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).is_ok() && head[4..] == 1u32.to_be_bytes()
}

/// The `ssh` command that opens a master connection on `socket` and goes to the background
/// once logged in, with strict host-key checking and no prompt.
fn master_command(
    inv: &Inventory,
    host: &Host,
    socket: &Path,
    log: &Path,
    idle: Duration,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .arg("-E")
        .arg(log)
        .arg("-S")
        .arg(socket)
        .args(["-M", "-f", "-N", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("ControlPersist={}s", idle.as_secs().max(1)))
        .arg("-o")
        .arg(format!(
            "ConnectTimeout={}",
            inv.timeouts.connect.as_secs().max(1)
        ))
        .args(["-o", "ServerAliveInterval=15"])
        .args(ssh_options(inv, host))
        .arg(destination(host));
    cmd
}

/// A master connection that outlives the run: the one an earlier run left on this host's
/// socket when it still answers, else a new one there. `None` when the socket's path would
/// be too long for ssh (the caller then opens one for this run only).
async fn kept_master(
    inv: &Inventory,
    host: &Host,
    dir: PathBuf,
    idle: Duration,
) -> Result<Option<(openssh::Session, bool)>, ConnectError> {
    let socket = dir.join(socket_name(inv, host));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Ok(None);
    }
    let log = socket.with_extension("log");
    let lock_path = socket.with_extension("lock");
    let probe = socket.clone();
    // One process at a time looks at and opens a host's master: two runs started together
    // share one connection instead of racing for the socket.
    let (lock, alive) = tokio::task::spawn_blocking(move || {
        private_dir(&dir).map_err(|why| ConnectError::ControlDir(dir.clone(), why))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| {
                ConnectError::ControlDir(
                    dir.clone(),
                    format!("cannot lock {}: {e}", lock_path.display()),
                )
            })?;
        if master_answers(&probe) {
            return Ok((lock, true));
        }
        match std::fs::remove_file(&probe) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConnectError::ControlDir(
                    dir.clone(),
                    format!("cannot remove the stale socket {}: {e}", probe.display()),
                ));
            }
        }
        Ok((lock, false))
    })
    .await
    .map_err(|e| ConnectError::Ssh(format!("control socket check failed: {e}")))??;
    if !alive {
        std::fs::File::create(&log).map_err(|e| {
            ConnectError::ControlDir(
                socket.parent().unwrap_or(&socket).to_path_buf(),
                format!("cannot create {}: {e}", log.display()),
            )
        })?;
        let status = master_command(inv, host, &socket, &log, idle)
            .status()
            .await
            .map_err(|e| ConnectError::Ssh(format!("cannot run ssh: {e}")))?;
        if !status.success() {
            return Err(ConnectError::Ssh(
                std::fs::read_to_string(&log).unwrap_or_default(),
            ));
        }
    }
    drop(lock);
    Ok(Some((
        openssh::Session::resume(socket.into_boxed_path(), Some(log.into_boxed_path())),
        alive,
    )))
}

/// A master connection for this run only, closed with it.
async fn own_master(inv: &Inventory, host: &Host) -> Result<openssh::Session, ConnectError> {
    let mut b = SessionBuilder::default();
    b.known_hosts_check(KnownHosts::Strict)
        .connect_timeout(inv.timeouts.connect)
        .server_alive_interval(Duration::from_secs(15))
        .control_directory(
            inv.ssh
                .control_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir),
        )
        .control_persist(ControlPersist::IdleFor(
            NonZeroUsize::new(600).expect("non-zero"),
        ));
    if let Some(user) = &host.ssh.user {
        b.user(user.clone());
    }
    if let Some(port) = host.ssh.port {
        b.port(port);
    }
    if let Some(key) = &host.ssh.identity_file {
        b.keyfile(key);
    }
    if let Some(cfg) = &inv.ssh.config_file {
        b.config_file(cfg);
    }
    b.connect(destination(host)).await.map_err(|e| {
        let mut log = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            log.push_str(": ");
            log.push_str(&s.to_string());
            src = s.source();
        }
        ConnectError::Ssh(log)
    })
}

impl Remote {
    /// Opens the multiplexed SSH master connection (or reuses the one an earlier run kept,
    /// ADR 0107); how to become root is learnt from the first command.
    pub(crate) async fn connect(inv: &Inventory, host: &Host) -> Result<Remote, HostError> {
        Self::open(inv, host, true).await
    }

    /// Opens a master connection for this run only, never the kept one: for when the kept
    /// master answered but its connection turned out to be gone (the host went down after
    /// the earlier run, and the master has not noticed yet).
    pub(crate) async fn connect_for_this_run(
        inv: &Inventory,
        host: &Host,
    ) -> Result<Remote, HostError> {
        Self::open(inv, host, false).await
    }

    async fn open(inv: &Inventory, host: &Host, may_keep: bool) -> Result<Remote, HostError> {
        let name = host.name.as_str();
        let dest = destination(host);
        let kept_dir = inv
            .ssh
            .keep_connections
            .filter(|_| may_keep)
            .and_then(|idle| {
                inv.ssh
                    .control_dir
                    .clone()
                    .or_else(|| {
                        default_kept_dir(
                            std::env::var_os("XDG_RUNTIME_DIR"),
                            std::env::var_os("XDG_CACHE_HOME"),
                            std::env::var_os("HOME"),
                        )
                    })
                    .map(|dir| (dir, idle))
            });
        let open = async {
            if let Some((dir, idle)) = kept_dir
                && let Some((session, reused)) = kept_master(inv, host, dir, idle).await?
            {
                return Ok((session, true, reused));
            }
            own_master(inv, host).await.map(|s| (s, false, false))
        };
        let limit = inv.timeouts.connect * 3 + Duration::from_secs(5);
        let (session, kept, reused) = match tokio::time::timeout(limit, open).await {
            Err(_) => {
                return Err(HostError::new(
                    name,
                    HostErrorKind::Unreachable,
                    format!(
                        "SSH to {dest} did not complete within {}s; check that the host is up and reachable",
                        limit.as_secs()
                    ),
                ));
            }
            Ok(Ok(s)) => s,
            Ok(Err(ConnectError::ControlDir(dir, why))) => {
                return Err(HostError::new(
                    name,
                    HostErrorKind::LocalIo,
                    format!(
                        "cannot keep SSH connections in {}: {why}; remove it (it is recreated with mode 0700) or name another directory",
                        dir.display()
                    ),
                ));
            }
            Ok(Err(ConnectError::Ssh(log))) => {
                return Err(match classify(&log) {
                    ConnectFailure::HostKeyUnknown => HostError::new(
                        name,
                        HostErrorKind::HostKeyUnknown,
                        host_key_message(inv, host, false, &log).await,
                    ),
                    ConnectFailure::HostKeyChanged => HostError::new(
                        name,
                        HostErrorKind::HostKeyChanged,
                        host_key_message(inv, host, true, &log).await,
                    ),
                    ConnectFailure::Auth => HostError::new(
                        name,
                        HostErrorKind::AuthenticationFailed,
                        format!(
                            "SSH login to {dest} was refused ({}); check the user and that your key is in the host's authorized_keys (or loaded in ssh-agent)",
                            last_lines(&log, 1)
                        ),
                    ),
                    ConnectFailure::Unreachable => HostError::new(
                        name,
                        HostErrorKind::Unreachable,
                        format!("cannot connect to {dest} over SSH: {}", last_lines(&log, 2)),
                    ),
                });
            }
        };
        Ok(Remote {
            host: name.to_string(),
            session,
            privilege: OnceLock::new(),
            sudo_password: inv.sudo_passwords.get(name).cloned(),
            channels: Semaphore::new(CHANNELS_PER_HOST),
            kept,
            reused,
        })
    }

    async fn raw(
        &self,
        cmdline: &str,
        stdin: Option<Feed>,
        limit: Duration,
    ) -> Result<Output, HostError> {
        let _permit = self
            .channels
            .acquire()
            .await
            .expect("semaphore is never closed");
        let mut cmd = self.session.raw_command(cmdline);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let run = async {
            let mut child = cmd.spawn().await.map_err(|e| self.lost(&e))?;
            let writer = child.stdin().take();
            let feed = async move {
                if let (Some(mut w), Some(mut feed)) = (writer, stdin) {
                    if w.write_all(&feed.head).await.is_ok()
                        && let Some(file) = feed.file.as_mut()
                    {
                        let _ = tokio::io::copy(file, &mut w).await;
                    }
                    feed.head.iter_mut().for_each(|b| *b = 0);
                    let _ = w.shutdown().await;
                }
            };
            let (_, out) = tokio::join!(feed, child.wait_with_output());
            out.map_err(|e| self.lost(&e))
        };
        let out = tokio::time::timeout(limit, run).await.map_err(|_| {
            HostError::new(
                &self.host,
                HostErrorKind::Timeout,
                format!("a command did not finish within {}s", limit.as_secs()),
            )
        })??;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn lost(&self, e: &openssh::Error) -> HostError {
        HostError::new(
            &self.host,
            HostErrorKind::ConnectionLost,
            format!("the SSH connection failed while running a command: {e}"),
        )
    }

    /// Runs `script` with `sh` as root. Returns whatever the command did; only transport
    /// failures, timeouts and sudo refusals are errors.
    pub(crate) async fn exec(
        &self,
        script: &str,
        input: Input<'_>,
        limit: Duration,
    ) -> Result<Output, HostError> {
        let body = format!(
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; LC_ALL=C; export PATH LC_ALL; {script}"
        );
        let known = self.privilege.get().map(|(_, p)| p);
        let (cmdline, password) = match known {
            Some(Privilege::Root) => (format!("sh -c {}", quote(&body)), None),
            Some(Privilege::Sudo) => (format!("sudo -n -- sh -c {}", quote(&body)), None),
            Some(Privilege::SudoWithPassword(p)) => (
                format!("sudo -S -k -p '' -- sh -c {}", quote(&body)),
                Some(p),
            ),
            None => (
                format!(
                    "sh -c {}",
                    quote(&privilege_wrapper(&body, self.sudo_password.is_some()))
                ),
                self.sudo_password.as_ref(),
            ),
        };
        let mut head = Vec::new();
        if let Some(p) = password {
            head.extend_from_slice(p.expose_secret().as_bytes());
            head.push(b'\n');
        }
        let mut file = None;
        match input {
            Input::None => {}
            Input::Bytes(b) => head.extend_from_slice(b),
            Input::File(path) => {
                file = Some(tokio::fs::File::open(path).await.map_err(|e| {
                    HostError::new(
                        &self.host,
                        HostErrorKind::LocalIo,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?);
            }
        }
        let feed =
            (password.is_some() || !matches!(input, Input::None)).then_some(Feed { head, file });
        let mut out = self.raw(&cmdline, feed, limit).await?;
        if known.is_none() {
            self.learn_privilege(&mut out)?;
        }
        let (login, privilege) = self.privilege.get().expect("learnt above");
        if !matches!(privilege, Privilege::Root) && out.status == 1 && is_sudo_refusal(&out.stderr)
        {
            return Err(HostError::new(
                &self.host,
                HostErrorKind::SudoRefused,
                sudo_refusal(login, &out.stderr),
            ));
        }
        if out.status == 255 && self.session.check().await.is_err() {
            return Err(HostError::new(
                &self.host,
                HostErrorKind::ConnectionLost,
                format!("the SSH connection dropped: {}", last_lines(&out.stderr, 2)),
            ));
        }
        Ok(out)
    }

    /// Reads the privilege wrapper's first line off `out`'s stdout and remembers what it says;
    /// a login that cannot become root is an error naming why and what to do.
    fn learn_privilege(&self, out: &mut Output) -> Result<(), HostError> {
        let (first, rest) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
        let mut words = first.splitn(4, ' ');
        let (mark, uid, how, login) = (words.next(), words.next(), words.next(), words.next());
        if mark != Some(PRIVILEGE_MARK) {
            return Err(if out.status == 255 {
                HostError::new(
                    &self.host,
                    HostErrorKind::ConnectionLost,
                    format!("the SSH connection dropped: {}", last_lines(&out.stderr, 2)),
                )
            } else {
                HostError::new(
                    &self.host,
                    HostErrorKind::CommandFailed,
                    format!(
                        "the host did not run the command as expected (exit {}): {}",
                        out.status,
                        last_lines(&format!("{}\n{}", out.stdout, out.stderr), 2)
                    ),
                )
            });
        }
        let user = login.unwrap_or("").trim().to_string();
        let privilege = match how {
            Some("root") if uid == Some("0") => Privilege::Root,
            Some("sudo") => Privilege::Sudo,
            Some("password") => Privilege::SudoWithPassword(
                self.sudo_password
                    .clone()
                    .expect("the wrapper asks for the password only when given one"),
            ),
            Some("nosudo") => {
                return Err(HostError::new(
                    &self.host,
                    HostErrorKind::SudoRefused,
                    format!(
                        "user {user} is not root and sudo is not installed; log in as root or install sudo"
                    ),
                ));
            }
            _ => {
                return Err(HostError::new(
                    &self.host,
                    HostErrorKind::SudoRefused,
                    format!(
                        "sudo on this host needs a password for user {user} ({}); give the node `ssh: {{sudoPassword: {{secret: NAME}}}}` in homelab.yaml and set it with `homelab secrets set NAME`, or allow {user} passwordless sudo",
                        last_lines(&out.stderr, 1)
                    ),
                ));
            }
        };
        out.stdout = rest.to_string();
        let _ = self.privilege.set((user, privilege));
        Ok(())
    }

    /// Runs `script` as root and fails unless it exits 0; `what` names the step in messages.
    pub(crate) async fn run(
        &self,
        what: &str,
        script: &str,
        limit: Duration,
    ) -> Result<String, HostError> {
        self.run_with_input(what, script, Input::None, limit).await
    }

    /// Like [`Remote::run`], feeding `input` on stdin.
    pub(crate) async fn run_with_input(
        &self,
        what: &str,
        script: &str,
        input: Input<'_>,
        limit: Duration,
    ) -> Result<String, HostError> {
        let out = self.exec(script, input, limit).await.map_err(|mut e| {
            if e.kind == HostErrorKind::Timeout {
                e.message = format!("{what} did not finish within {}s", limit.as_secs());
            }
            e
        })?;
        if out.status == 0 {
            Ok(out.stdout)
        } else {
            Err(command_failed(&self.host, what, &out))
        }
    }

    /// Writes `contents` to `path` atomically (temporary file + rename) with `mode`.
    pub(crate) async fn write_file(
        &self,
        path: &str,
        contents: &[u8],
        mode: u32,
        limit: Duration,
    ) -> Result<(), HostError> {
        self.run_with_input(
            &format!("writing {path}"),
            &write_script(path, mode),
            Input::Bytes(contents),
            limit,
        )
        .await
        .map(|_| ())
    }

    /// Copies the local file `local` to `path` atomically with `mode`.
    pub(crate) async fn upload(
        &self,
        local: &Path,
        path: &str,
        mode: u32,
        limit: Duration,
    ) -> Result<(), HostError> {
        self.run_with_input(
            &format!("uploading {} to {path}", local.display()),
            &write_script(path, mode),
            Input::File(local),
            limit,
        )
        .await
        .map(|_| ())
    }

    /// The content of a remote file, or `None` when it does not exist.
    pub(crate) async fn read_file(
        &self,
        path: &str,
        limit: Duration,
    ) -> Result<Option<String>, HostError> {
        let p = quote(path);
        let out = self
            .exec(
                &format!("if [ -f {p} ]; then cat {p}; else exit 3; fi"),
                Input::None,
                limit,
            )
            .await?;
        match out.status {
            0 => Ok(Some(out.stdout)),
            3 => Ok(None),
            _ => Err(command_failed(&self.host, &format!("reading {path}"), &out)),
        }
    }

    /// Closes the master connection, unless it is kept for the next run (it then closes
    /// itself when idle for the inventory's time).
    pub(crate) async fn close(self) {
        if !self.kept {
            let _ = self.session.close().await;
        }
    }
}

/// A shell script that replaces file `path` with its standard input, atomically: a temporary
/// file in the same directory (mktemp's default name), the mode, then a rename.
fn write_script(path: &str, mode: u32) -> String {
    let p = quote(path);
    format!(
        "set -e; f={p}; d=$(dirname \"$f\"); mkdir -p \"$d\"; umask 077; t=$(mktemp -p \"$d\"); \
         trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; chmod {mode:o} \"$t\"; mv -f \"$t\" \"$f\"; trap - EXIT"
    )
}

pub(crate) fn command_failed(host: &str, what: &str, out: &Output) -> HostError {
    let detail = if out.stderr.trim().is_empty() {
        last_lines(&out.stdout, 4)
    } else {
        last_lines(&out.stderr, 4)
    };
    HostError::new(
        host,
        HostErrorKind::CommandFailed,
        format!("{what} failed (exit {}): {detail}", out.status),
    )
}

fn is_sudo_refusal(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        let l = l.trim();
        l.starts_with("sudo: ")
            && [
                "password is required",
                "incorrect password",
                "no password was provided",
                "not in the sudoers file",
                "is not allowed to",
                "a terminal is required",
                "may not run sudo",
            ]
            .iter()
            .any(|m| l.contains(m))
    }) || stderr.contains("is not in the sudoers file")
}

fn sudo_refusal(user: &str, stderr: &str) -> String {
    let said = last_lines(stderr, 2);
    if stderr.contains("not in the sudoers file")
        || stderr.contains("is not allowed to")
        || stderr.contains("may not run sudo")
    {
        format!(
            "sudo refused: user {user} may not run commands as root on this host ({said}); add {user} to the sudo group or log in as root"
        )
    } else if stderr.contains("incorrect password") || stderr.contains("Sorry, try again") {
        format!(
            "sudo refused: the sudo password for user {user} was not accepted ({said}); check the password in the secrets file"
        )
    } else {
        format!("sudo refused for user {user}: {said}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_openssh_failures() {
        assert_eq!(
            classify(
                "No ED25519 host key is known for 10.0.0.1 and you have requested strict checking.\r\nHost key verification failed."
            ),
            ConnectFailure::HostKeyUnknown
        );
        assert_eq!(
            classify(
                "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nOffending ED25519 key in /k:1\nHost key verification failed."
            ),
            ConnectFailure::HostKeyChanged
        );
        assert_eq!(
            classify("root@10.0.0.1: Permission denied (publickey)."),
            ConnectFailure::Auth
        );
        assert_eq!(
            classify("ssh: connect to host 10.0.0.1 port 22: Connection refused"),
            ConnectFailure::Unreachable
        );
    }

    #[test]
    fn reads_the_targets_host_key_from_verbose_output() {
        let log = "debug1: Server host key: ssh-ed25519 SHA256:jump\ndebug1: x\ndebug1: Server host key: ssh-ed25519 SHA256:target\n";
        assert_eq!(
            server_host_key(log),
            Some(("ssh-ed25519".into(), "SHA256:target".into()))
        );
        assert_eq!(server_host_key("nothing"), None);
    }

    #[test]
    fn recognises_sudo_refusals_and_explains_them() {
        assert!(is_sudo_refusal("sudo: a password is required\n"));
        assert!(is_sudo_refusal(
            "Sorry, try again.\nsudo: 1 incorrect password attempt\n"
        ));
        assert!(is_sudo_refusal("alice is not in the sudoers file.\n"));
        assert!(!is_sudo_refusal(
            "cp: cannot stat 'x': No such file or directory\n"
        ));
        assert!(
            sudo_refusal(
                "alice",
                "Sorry, try again.\nsudo: 1 incorrect password attempt"
            )
            .contains("was not accepted")
        );
        assert!(
            sudo_refusal("carol", "carol is not in the sudoers file.")
                .contains("may not run commands as root")
        );
    }

    #[test]
    fn the_privilege_wrapper_says_how_and_keeps_the_password_from_the_command() {
        use std::io::Write as _;
        // The node tests run as root, so the wrapper takes the root branch here.
        let run = |with_password: bool, input: &str| {
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(privilege_wrapper("cat; echo \"args: $*\"", with_password))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
        };
        let out = run(true, "s3cret-pw\nthe command's own input\n");
        assert_eq!(
            out,
            "homelab-privilege 0 root root\nthe command's own input\nargs: \n"
        );
        assert!(!out.contains("s3cret"));
        assert_eq!(
            run(false, "input\n"),
            "homelab-privilege 0 root root\ninput\nargs: \n"
        );
    }

    #[test]
    fn kept_connections_go_to_the_runtime_directory_then_the_cache() {
        let runtime = tempfile::tempdir().unwrap();
        let os = |p: &Path| Some(p.as_os_str().to_owned());
        assert_eq!(
            default_kept_dir(os(runtime.path()), Some("/c".into()), Some("/h".into())),
            Some(runtime.path().join("homelab-ssh"))
        );
        // A runtime directory that does not exist (as after `su`) or is relative is passed over.
        let gone = runtime.path().join("gone");
        assert_eq!(
            default_kept_dir(os(&gone), Some("/c".into()), Some("/h".into())),
            Some(PathBuf::from("/c/homelab/ssh"))
        );
        assert_eq!(
            default_kept_dir(Some("run".into()), None, Some("/h".into())),
            Some(PathBuf::from("/h/.cache/homelab/ssh"))
        );
        assert_eq!(default_kept_dir(None, Some("".into()), None), None);
    }

    #[test]
    fn the_control_directory_is_made_private_and_links_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let fresh = base.path().join("a/b/ssh");
        private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);

        let wide = base.path().join("wide");
        std::fs::create_dir(&wide).unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&wide).unwrap();
        assert_eq!(mode(&wide), 0o700);

        let link = base.path().join("link");
        std::os::unix::fs::symlink(&wide, &link).unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(private_dir(&link).unwrap_err().contains("symbolic link"));
        assert_eq!(mode(&wide), 0o755, "the link's target is left alone");

        let file = base.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert_eq!(private_dir(&file).unwrap_err(), "it is not a directory");
    }

    #[test]
    fn a_master_is_shared_only_by_runs_that_would_open_the_same_connection() {
        use crate::inventory::{Role, SshTarget};
        let host = |user: &str, port: Option<u16>| Host {
            name: "s1".into(),
            role: Role::Server,
            address: "10.0.0.1".into(),
            ssh: SshTarget {
                user: Some(user.into()),
                port,
                ..SshTarget::default()
            },
            labels: Default::default(),
            taints: vec![],
            gpu: false,
            k3s_config: String::new(),
        };
        let inv = Inventory::new("lab", "v1.31.2+k3s1", SecretString::from("t"), vec![]);
        let root = socket_name(&inv, &host("root", None));
        assert_eq!(root.len(), 16);
        assert_eq!(root, socket_name(&inv, &host("root", None)));
        assert_ne!(root, socket_name(&inv, &host("alice", None)));
        assert_ne!(root, socket_name(&inv, &host("root", Some(2222))));
        let mut other = inv.clone();
        other.ssh.config_file = Some("/elsewhere/ssh_config".into());
        assert_ne!(root, socket_name(&other, &host("root", None)));
    }

    #[test]
    fn a_socket_nobody_listens_on_is_not_a_master() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        assert!(!master_answers(&path), "no socket at all");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        assert!(!master_answers(&path), "a socket left behind");
        // Something listening that does not greet as an ssh master is not one either.
        let listener = std::os::unix::net::UnixListener::bind(dir.path().join("quiet")).unwrap();
        let greeter = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            use std::io::Write as _;
            let _ = s.write_all(b"\0\0\0\x05\0\0\0\x02x");
        });
        assert!(!master_answers(&dir.path().join("quiet")));
        greeter.join().unwrap();
    }

    #[test]
    fn shell_lines_quote_only_what_needs_it() {
        let line = shell_line(&[
            "ssh".into(),
            "-F".into(),
            "/tmp/my config".into(),
            "[h]:22".into(),
        ]);
        assert_eq!(line, "ssh -F '/tmp/my config' [h]:22");
    }
}
