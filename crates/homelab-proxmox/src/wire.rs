//! What goes over the wire to Proxmox VE and how its answers are read: form bodies, the
//! authorization headers, task ids (UPIDs) and task states, and which errors are worth a retry.
//! Pure functions only: no I/O, no clock.

use std::fmt::Write as _;

/// Bytes left as they are by `encodeURIComponent`, which is what Proxmox's own UI uses and
/// what its `sshkeys` parameter expects after the form itself is decoded.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Percent-encodes every byte but the unreserved ones; a space becomes `%20`, never `+`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if unreserved(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An `application/x-www-form-urlencoded` body from `name=value` pairs, in order.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `sshkeys`: the keys one per line, percent-encoded once by us. Proxmox decodes
/// the form and then decodes this value again, so it goes into [`form_body`] already encoded
/// (a raw key with spaces is refused as an invalid urlencoded string).
pub fn sshkeys_value(keys: &[String]) -> String {
    percent_encode(&keys.join("\n"))
}

/// The `Authorization` header of an API token.
pub fn token_header(token_id: &str, secret: &str) -> String {
    format!("PVEAPIToken={token_id}={secret}")
}

/// The `Cookie` header of a ticket from `/access/ticket`; writes also need the CSRF token in
/// the `CSRFPreventionToken` header. The ticket goes as it came: its `:`, `+`, `/` and `=` are
/// valid cookie characters, and not every server decodes an escaped cookie.
pub fn ticket_cookie(ticket: &str) -> String {
    format!("PVEAuthCookie={ticket}")
}

/// A task id, `UPID:NODE:PID:PSTART:STARTTIME:TYPE:ID:USER:`, as every long call returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    pub text: String,
    pub node: String,
    pub kind: String,
    pub id: String,
    pub user: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a Proxmox task id (UPID:NODE:PID:PSTART:STARTTIME:TYPE:ID:USER:)")]
pub struct BadUpid(pub String);

impl Upid {
    pub fn parse(text: &str) -> Result<Upid, BadUpid> {
        let bad = || BadUpid(text.to_string());
        let rest = text.strip_prefix("UPID:").ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split(':').collect();
        // NODE PID PSTART STARTTIME TYPE ID USER (USER may hold `!` and `@`), then an empty tail.
        if parts.len() < 8 || parts[0].is_empty() || parts[4].is_empty() {
            return Err(bad());
        }
        let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
        if !(hex(parts[1]) && hex(parts[2]) && hex(parts[3])) {
            return Err(bad());
        }
        Ok(Upid {
            text: text.to_string(),
            node: parts[0].to_string(),
            kind: parts[4].to_string(),
            id: parts[5].to_string(),
            user: parts[6..parts.len() - 1].join(":"),
        })
    }

    /// The path of the task's status, percent-encoded as a path segment.
    pub fn status_path(&self) -> String {
        format!(
            "/nodes/{}/tasks/{}/status",
            self.node,
            percent_encode(&self.text)
        )
    }

    /// The path of the task's log.
    pub fn log_path(&self) -> String {
        format!(
            "/nodes/{}/tasks/{}/log",
            self.node,
            percent_encode(&self.text)
        )
    }
}

/// Where a task is, from its status object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Succeeded,
    /// Stopped with an exit status other than `OK` (Proxmox's own words, e.g. an error line).
    Failed(String),
}

/// Reads `{status: running|stopped, exitstatus: ...}`; `None` when it is neither.
pub fn task_state(status: &serde_json::Value) -> Option<TaskState> {
    match status.get("status")?.as_str()? {
        "running" => Some(TaskState::Running),
        "stopped" => match status.get("exitstatus").and_then(|e| e.as_str()) {
            Some("OK") => Some(TaskState::Succeeded),
            Some(other) => Some(TaskState::Failed(other.to_string())),
            None => Some(TaskState::Failed("stopped without an exit status".into())),
        },
        _ => None,
    }
}

/// The last `n` lines of a task log (`[{n, t}, ...]`), for an error message.
pub fn log_tail(log: &serde_json::Value, n: usize) -> Vec<String> {
    let lines: Vec<String> = log
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.get("t").and_then(|t| t.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Whether an error is another task holding the VM's or storage's lock past Proxmox's own
/// wait (`can't lock file ... - got timeout`, `VM is locked (clone)`): worth a retry later.
pub fn is_lock_timeout(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (m.contains("can't lock file") && m.contains("timeout")) || m.contains("is locked (")
}

/// Whether a create or clone lost a race for its VMID to another caller of `nextid`.
pub fn is_vmid_taken(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("already exists") && (m.contains("vm ") || m.contains("config file"))
}

/// The wait before retry number `attempt` (from 0): doubling from `base`, at most `cap`.
pub fn backoff(
    attempt: u32,
    base: std::time::Duration,
    cap: std::time::Duration,
) -> std::time::Duration {
    base.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn sshkeys_are_encoded_once_by_us_and_again_by_the_form() {
        let keys = vec![
            "ssh-ed25519 AAAAC3Nza+/= tom@laptop".to_string(),
            "ssh-rsa AAAAB3 x".to_string(),
        ];
        let value = sshkeys_value(&keys);
        assert_eq!(
            value,
            "ssh-ed25519%20AAAAC3Nza%2B%2F%3D%20tom%40laptop%0Assh-rsa%20AAAAB3%20x"
        );
        assert!(!value.contains(' ') && !value.contains('+'));
        let body = form_body(&[("sshkeys", &value), ("ciuser", "tom")]);
        assert_eq!(
            body,
            "sshkeys=ssh-ed25519%2520AAAAC3Nza%252B%252F%253D%2520tom%2540laptop%250Assh-rsa%2520AAAAB3%2520x&ciuser=tom"
        );
    }

    #[test]
    fn form_bodies_keep_order_and_encode_separators() {
        assert_eq!(
            form_body(&[
                ("ipconfig0", "ip=192.168.2.20/24,gw=192.168.2.1"),
                ("name", "a b&c=d")
            ]),
            "ipconfig0=ip%3D192.168.2.20%2F24%2Cgw%3D192.168.2.1&name=a%20b%26c%3Dd"
        );
        assert_eq!(form_body(&[]), "");
    }

    #[test]
    fn auth_headers_have_proxmox_form() {
        assert_eq!(
            token_header("homelab@pve!lab", "0b7e-11"),
            "PVEAPIToken=homelab@pve!lab=0b7e-11"
        );
        assert_eq!(
            ticket_cookie("PVE:root@pam:65F0::sig/+="),
            "PVEAuthCookie=PVE:root@pam:65F0::sig/+="
        );
    }

    #[test]
    fn upids_parse_and_name_their_paths() {
        let text = "UPID:pve:000A1B2C:0123ABCD:65F0A1B2:qmclone:9000:homelab@pve!lab:";
        let u = Upid::parse(text).unwrap();
        assert_eq!(
            (u.node.as_str(), u.kind.as_str(), u.id.as_str()),
            ("pve", "qmclone", "9000")
        );
        assert_eq!(u.user, "homelab@pve!lab");
        assert_eq!(
            u.status_path(),
            "/nodes/pve/tasks/UPID%3Apve%3A000A1B2C%3A0123ABCD%3A65F0A1B2%3Aqmclone%3A9000%3Ahomelab%40pve!lab%3A/status"
        );
        for bad in [
            "",
            "pve:1:2:3:qmclone:9000:root@pam:",
            "UPID:pve:xyz:2:3:qmclone:9000:root@pam:",
            "UPID::1:2:3:qmclone:9000:root@pam:",
            "UPID:pve:1:2:3",
        ] {
            assert_eq!(Upid::parse(bad), Err(BadUpid(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn task_states_need_stopped_and_ok() {
        assert_eq!(
            task_state(&json!({"status": "running"})),
            Some(TaskState::Running)
        );
        assert_eq!(
            task_state(&json!({"status": "stopped", "exitstatus": "OK"})),
            Some(TaskState::Succeeded)
        );
        assert_eq!(
            task_state(&json!({"status": "stopped", "exitstatus": "storage 'local-lvm' is full"})),
            Some(TaskState::Failed("storage 'local-lvm' is full".into()))
        );
        assert!(matches!(
            task_state(&json!({"status": "stopped"})),
            Some(TaskState::Failed(_))
        ));
        assert_eq!(task_state(&json!({"status": "queued?"})), None);
        assert_eq!(task_state(&json!({})), None);
    }

    #[test]
    fn the_log_tail_is_the_last_lines() {
        let log = json!([{"n": 1, "t": "a"}, {"n": 2, "t": "b"}, {"n": 3, "t": "TASK ERROR: x"}]);
        assert_eq!(log_tail(&log, 2), ["b", "TASK ERROR: x"]);
        assert_eq!(log_tail(&log, 10).len(), 3);
        assert!(log_tail(&json!({}), 3).is_empty());
    }

    #[test]
    fn lock_timeouts_and_vmid_races_are_told_apart() {
        assert!(is_lock_timeout(
            "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"
        ));
        assert!(is_lock_timeout("VM is locked (clone)"));
        assert!(!is_lock_timeout("storage 'local-lvm' does not exist"));
        assert!(is_vmid_taken(
            "unable to create VM 101: config file already exists"
        ));
        assert!(is_vmid_taken("VM 101 already exists on node 'pve'"));
        assert!(!is_vmid_taken("storage 'x' already exists"));
        assert!(!is_vmid_taken("can't lock file - got timeout"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Duration::from_millis(500);
        let cap = Duration::from_secs(8);
        let waits: Vec<u64> = (0..7)
            .map(|a| backoff(a, b, cap).as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(backoff(u32::MAX, b, cap), cap);
    }
}
