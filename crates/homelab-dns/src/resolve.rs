//! One DNS question over UDP: the A records of a name as a given resolver answers them (RFC
//! 1035 wire format, recursion desired), with the response code. Enough for `status` to ask
//! the LAN's resolver whether a host points at the ingress; no caching, no TCP fallback.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use serde::Serialize;
use tokio::net::UdpSocket;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Lookup {
    /// The resolver answered; `addresses` may be empty (a name without A records).
    Answered { addresses: Vec<Ipv4Addr> },
    /// The name does not exist (NXDOMAIN).
    NoSuchName,
    /// Another response code (SERVFAIL, REFUSED, ...).
    Failed { rcode: u8 },
    /// No answer in time, or none that belongs to the question.
    NoAnswer { reason: String },
}

/// The resolvers `/etc/resolv.conf` names (IPv4, port 53), in its order.
pub fn system_resolvers(resolv_conf: &str) -> Vec<SocketAddrV4> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.parse::<Ipv4Addr>().ok())
        .map(|a| SocketAddrV4::new(a, 53))
        .collect()
}

/// Asks `server` for the A records of `name`, trying `attempts` times `timeout` each.
pub async fn lookup_a(
    server: SocketAddrV4,
    name: &str,
    timeout: Duration,
    attempts: u32,
) -> Lookup {
    let id = query_id(name);
    let query = match encode_query(id, name) {
        Ok(q) => q,
        Err(reason) => return Lookup::NoAnswer { reason },
    };
    let socket = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
        Ok(s) => s,
        Err(e) => {
            return Lookup::NoAnswer {
                reason: format!("cannot open a UDP socket ({e})"),
            };
        }
    };
    if let Err(e) = socket.connect(SocketAddr::V4(server)).await {
        return Lookup::NoAnswer {
            reason: format!("cannot reach {server} ({e})"),
        };
    }
    let mut last = format!("no answer from {server} within {}ms", timeout.as_millis());
    for _ in 0..attempts.max(1) {
        if let Err(e) = socket.send(&query).await {
            last = format!("sending to {server} failed ({e})");
            continue;
        }
        let mut buf = [0u8; 1500];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => {
                    last = format!("{server}: {e}");
                    break;
                }
                Ok(Ok(n)) => match decode_answer(id, &buf[..n]) {
                    // An answer to another question (a late one): keep waiting.
                    Err(Mismatch) => continue,
                    Ok(l) => return l,
                },
            }
        }
    }
    Lookup::NoAnswer { reason: last }
}

fn query_id(name: &str) -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let h = name
        .bytes()
        .fold(nanos, |h, b| h.rotate_left(5) ^ u32::from(b));
    (h ^ (h >> 16)) as u16
}

fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // standard query, recursion desired
    q.extend_from_slice(&1u16.to_be_bytes()); // one question
    q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("`{name}` is not a DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_A.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

struct Mismatch;

fn decode_answer(id: u16, m: &[u8]) -> Result<Lookup, Mismatch> {
    let u16_at =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*m.get(i)?, *m.get(i + 1)?])) };
    if m.len() < 12 || u16_at(0) != Some(id) || m[2] & 0x80 == 0 {
        return Err(Mismatch);
    }
    let rcode = m[3] & 0x0f;
    let questions = u16_at(4).unwrap_or(0);
    let answers = u16_at(6).unwrap_or(0);
    match rcode {
        0 => {}
        3 => return Ok(Lookup::NoSuchName),
        r => return Ok(Lookup::Failed { rcode: r }),
    }
    let bad = |why: &str| {
        Ok(Lookup::NoAnswer {
            reason: format!("a malformed answer ({why})"),
        })
    };
    let mut at = 12;
    for _ in 0..questions {
        let Some(end) = skip_name(m, at) else {
            return bad("question");
        };
        at = end + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        let Some(end) = skip_name(m, at) else {
            return bad("answer name");
        };
        let (Some(kind), Some(class), Some(len)) = (u16_at(end), u16_at(end + 2), u16_at(end + 8))
        else {
            return bad("answer header");
        };
        let data = end + 10;
        let len = usize::from(len);
        if data + len > m.len() {
            return bad("answer length");
        }
        if kind == TYPE_A && class == CLASS_IN && len == 4 {
            addresses.push(Ipv4Addr::new(
                m[data],
                m[data + 1],
                m[data + 2],
                m[data + 3],
            ));
        }
        at = data + len;
    }
    Ok(Lookup::Answered { addresses })
}

/// The index just past a (possibly compressed) name starting at `at`.
fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *m.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_gives_its_ipv4_nameservers() {
        let conf =
            "# x\nsearch lan\nnameserver 192.168.2.1\nnameserver fd00::1\nnameserver 1.1.1.1\n";
        assert_eq!(
            system_resolvers(conf),
            [
                SocketAddrV4::new(Ipv4Addr::new(192, 168, 2, 1), 53),
                SocketAddrV4::new(Ipv4Addr::new(1, 1, 1, 1), 53)
            ]
        );
    }

    #[test]
    fn an_answer_is_read_past_compressed_names() {
        let q = encode_query(7, "grafana.home.arpa").unwrap();
        let mut a = q.clone();
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = 1; // one answer
        a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 168, 2, 100]);
        assert_eq!(
            decode_answer(7, &a).ok(),
            Some(Lookup::Answered {
                addresses: vec![Ipv4Addr::new(192, 168, 2, 100)]
            })
        );
        assert!(decode_answer(8, &a).is_err(), "another question's answer");
        a[3] = 0x83;
        assert_eq!(decode_answer(7, &a).ok(), Some(Lookup::NoSuchName));
    }
}
