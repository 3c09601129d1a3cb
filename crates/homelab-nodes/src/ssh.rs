//! SSH sessions to hosts through the system OpenSSH client (one multiplexed master per host):
//! strict host-key checking, sudo with or without password, scripts and file uploads. Knows
//! nothing about k3s; never puts a secret on a command line.

use std::num::NonZeroUsize;
use std::path::Path;
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

impl Remote {
    /// Opens the multiplexed SSH master connection and works out how to become root.
    pub(crate) async fn connect(inv: &Inventory, host: &Host) -> Result<Remote, HostError> {
        let name = host.name.as_str();
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
        let dest = destination(host);
        let limit = inv.timeouts.connect * 3 + Duration::from_secs(5);
        let session = match tokio::time::timeout(limit, b.connect(dest)).await {
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
            Ok(Err(e)) => {
                let mut log = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    log.push_str(": ");
                    log.push_str(&s.to_string());
                    src = s.source();
                }
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

    /// Closes the master connection.
    pub(crate) async fn close(self) {
        let _ = self.session.close().await;
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
