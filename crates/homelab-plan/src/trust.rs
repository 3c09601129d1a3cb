//! The lab's own CA (`tls.mode: internal-ca`) as every part names it: the secrets-file entries,
//! the Secret and ClusterIssuer, and how a device trusts the root, per platform (one text for
//! `homelab tls ca` and the "CA not trusted" runbook). Pure; it never reads a key.

/// The ClusterIssuer that signs every certificate.
pub const CA_ISSUER: &str = "homelab-ca";
/// The Secret (in cert-manager's namespace) the CA issuer signs with.
pub const CA_SECRET: &str = "homelab-root-ca";
/// The secrets-file entry holding the root's private key.
pub const CA_KEY: &str = "internal-ca-key";
/// The secrets-file entry holding the root certificate.
pub const CA_CERT: &str = "internal-ca-cert";
/// How long the root is valid: long enough that devices trust it for the life of the lab.
pub const CA_DAYS: u32 = 3650;

/// The steps for each platform, as Markdown, for the root certificate saved as `file`.
pub fn trust_steps(file: &str) -> String {
    let crt = file
        .strip_suffix(".pem")
        .map_or_else(|| file.to_string(), |stem| format!("{stem}.crt"));
    format!(
        "- **macOS**: `sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {file}` (or open the file in Keychain Access, then set *When using this certificate* to *Always Trust*). Safari and Chrome use it.\n\
- **Windows**: in an administrator prompt, `copy {file} {crt}` then `certutil -addstore -f Root {crt}` (or double-click `{crt}`, *Install Certificate*, *Local Machine*, *Trusted Root Certification Authorities*). Edge and Chrome use it.\n\
- **Linux** (Debian, Ubuntu): `sudo cp {file} /usr/local/share/ca-certificates/homelab-ca.crt && sudo update-ca-certificates`; (Fedora, RHEL, Arch): `sudo trust anchor --store {file}`. curl, git and most programs use it; Chrome on Linux reads its own NSS store: `certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n homelab-ca -i {file}`.\n\
- **iOS, iPadOS**: send the file to the device (AirDrop, mail), open it, install it under *Settings > General > VPN & Device Management*, then switch it on under *Settings > General > About > Certificate Trust Settings* (without this last step Safari still refuses it).\n\
- **Android**: copy the file to the device, then *Settings > Security > More security settings > Encryption & credentials > Install a certificate > CA certificate*. Browsers use it; apps that do not opt in to user CAs (Android 7 and later) keep refusing the lab.\n\
- **Firefox** (every platform; it keeps its own store): *Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import*, choose the file and tick *Trust this CA to identify websites*. On Windows and macOS, setting `security.enterprise_roots.enabled` to `true` in `about:config` makes it use the system's store instead.\n"
    )
}
