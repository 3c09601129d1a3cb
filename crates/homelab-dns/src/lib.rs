//! The lab's DNS records at the provider `network.dns` names: the pure plan ([`records`]), a
//! typed client per API ([`api`]: Pi-hole v6, AdGuard Home, NextDNS, Cloudflare) and a plain
//! UDP lookup ([`resolve`]) for `status`. Reading secrets and the lab's note of the records it
//! made belongs to homelab-ops; nothing here prints.

mod adguard;
pub mod api;
pub mod apply;
mod cloudflare;
pub mod http;
mod nextdns;
mod pihole;
pub mod records;
pub mod resolve;

pub use api::{CLOUDFLARE_API, Client, DnsError, NEXTDNS_API};
pub use apply::{ApplyError, Note, apply, mark_owned, note_after};
pub use cloudflare::mark as cloudflare_mark;
pub use pihole::line as pihole_line;
pub use records::{Change, Conflict, Existing, Plan, Record};
