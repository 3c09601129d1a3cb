//! `homelab secrets ...`: the clap definitions of the subcommands and what only they share
//! (the lab's secret requirements, counting). Each subcommand is one call into
//! `homelab-secrets`; nothing here prints or logs a secret value except `get` and `decrypt`,
//! to stdout, when asked.

mod doctor;
mod files;
mod init;
mod list;
mod openbao;
mod scan;
mod values;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use homelab_secrets::SecretRequirement;
use homelab_spec::LoadedSpec;

use crate::cli::Global;
use crate::cmd::shared::complete;
use crate::cmd::shared::secrets::LabFiles;
use crate::cmd::shared::spec;
use crate::output::Output;
use clap_complete::engine::ArgValueCandidates;

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create your age key, `.sops.yaml` and `secrets.sops.yaml` with every secret the lab needs.
    ///
    /// The age identity goes to `$SOPS_AGE_KEY_FILE`, else `~/.config/homelab/age.key`
    /// (mode 0600); an existing one (or `SOPS_AGE_KEY`) is used as it is. `.sops.yaml` gets
    /// creation rules so the `sops` CLI works on the same files. `secrets.sops.yaml` is written
    /// next to the spec with a generated value for every secret the lab can make itself, and an
    /// empty placeholder ("set me") for those only you can provide. Running it again adds only
    /// what is missing and never changes an existing value.
    Init,
    /// List the lab's secrets: where each is used and whether it is set (never values).
    ///
    /// Reads the names without your key (names are plaintext in a SOPS file). Shows every
    /// secret in secrets.sops.yaml and every secret the lab needs that it lacks.
    List,
    /// Print one secret's value to stdout.
    ///
    /// For pipes and scripts: `homelab secrets get k3s-token | ssh node 'cat > token'`.
    /// Refuses to print to a terminal unless `--reveal` is given, so a value does not end up
    /// on a screen or in a terminal's scrollback by accident. The value is followed by one
    /// newline (`$(...)` strips it; `secrets set` removes one from piped input).
    Get {
        /// The secret's name.
        #[arg(add = ArgValueCandidates::new(complete::secrets))]
        name: String,
        /// Print the value even when stdout is a terminal.
        #[arg(long)]
        reveal: bool,
    },
    /// Set a secret's value, read from stdin or typed at a hidden prompt (never an argument).
    ///
    /// Example: `printf '%s' "$TOKEN" | homelab secrets set cloudflare-api-token`, or just
    /// `homelab secrets set cloudflare-api-token` and type it twice. One trailing newline of
    /// piped input is removed; an empty value is refused. Secrets derived from this one (the
    /// Traefik dashboard's htpasswd line from its password) are updated with it.
    Set {
        /// The secret's name; one the lab needs (see `homelab secrets list`).
        #[arg(add = ArgValueCandidates::new(complete::secrets))]
        name: String,
        /// Store a name the lab does not use (it warns and lists the names it needs).
        #[arg(long)]
        force: bool,
    },
    /// Edit the decrypted secrets in `$VISUAL`/`$EDITOR`, then re-encrypt.
    ///
    /// The plaintext goes to a private temporary file (mode 0600, in `$XDG_RUNTIME_DIR` or
    /// `/dev/shm` when available) that is wiped and removed afterwards, also when the editor
    /// fails. The file changes only when the edited text is a valid flat map of names to values.
    Edit,
    /// Give a generated secret a new value and say which components must be re-applied.
    ///
    /// Secrets derived from it follow (rotating the Traefik dashboard password also rewrites
    /// its htpasswd line). Secrets you provide are changed with `homelab secrets set`.
    Rotate {
        /// The secret's name.
        #[arg(add = ArgValueCandidates::new(complete::secrets))]
        name: String,
    },
    /// Add or remove age recipients and Vault/OpenBao transit keys of secrets.sops.yaml.
    ///
    /// Only the file's data key is re-encrypted; values stay as they are, and homelab's
    /// `.sops.yaml` rules follow. You cannot remove your own key (add the new one first).
    /// Examples: `homelab secrets rekey --add age1...`; `homelab secrets rekey --add-vault`
    /// (the spec's `secrets.vault` key, with VAULT_TOKEN or an AppRole login for its server).
    /// Nothing is written when Vault refuses or cannot be reached.
    Rekey(RekeyArgs),
    /// Check the secrets file: every key opens it, every secret the lab needs is set.
    ///
    /// Tries each age recipient whose identity is here and each Vault/OpenBao transit key
    /// (through its server) on its own, and checks that each opens the whole file; checks that
    /// the spec's `secrets.vault` key is one of them, that every `{secret: NAME}` of the spec
    /// and every generated secret is in the file with a value, that no value is unused, and
    /// that your age key file is private (mode 0600). Exits 1 when a check fails; warnings (a
    /// recipient only its holder can check, an unused value) do not.
    Doctor,
    /// Initialise the lab's OpenBao server once, or unseal it, with its keys in the secrets file.
    ///
    /// A new server's unseal keys and root token go straight into secrets.sops.yaml
    /// (`openbao-unseal-key-1..N`, `openbao-root-token`), saved before anything else and never
    /// printed; then it is unsealed. A sealed server (after a restart) is unsealed with the
    /// stored keys; an unsealed one is left as it is, so it is safe to run again. With
    /// `secrets.vault`, it then writes the policies of the lab's readers (`homelab-sops`,
    /// `flux-sops-decrypt`, as in the rendered `openbao/policies/`) with the stored root token,
    /// and the transit engine and key when `secrets.vault` names this server. The server is
    /// --address, else BAO_ADDR or VAULT_ADDR, else `https://<services.openbao.host>.<domain>`;
    /// VAULT_CACERT/BAO_CACERT name a CA to trust.
    OpenbaoInit {
        /// The server, `https://HOST[:PORT]`.
        #[arg(long, value_name = "URL")]
        address: Option<String>,
        /// How many unseal keys a new server hands out.
        #[arg(long, default_value_t = 5)]
        shares: u32,
        /// How many of them unseal it.
        #[arg(long, default_value_t = 3)]
        threshold: u32,
    },
    /// Print the plaintext of any SOPS YAML file (like `sops -d FILE`), MAC verified.
    Decrypt {
        /// The encrypted file.
        // Its own id: `file` is the global `-f FILE` (the spec), which clap would overwrite.
        #[arg(id = "encrypted", value_name = "FILE")]
        file: PathBuf,
    },
    /// Encrypt a plaintext YAML file (like `sops -e FILE`), honouring `.sops.yaml` rules.
    ///
    /// Recipients and `encrypted_regex` come from the first `.sops.yaml` creation rule that
    /// matches the file (looked up from the file's directory upwards), unless `--age` is given.
    /// Prints the result, or replaces the file with `--in-place`.
    Encrypt {
        /// The plaintext YAML file.
        #[arg(id = "plaintext", value_name = "FILE")]
        file: PathBuf,
        /// Replace the file with its encrypted form (atomically, mode 0600).
        #[arg(long, short = 'i')]
        in_place: bool,
        /// Encrypt every value to this recipient instead of `.sops.yaml`'s; repeat for more.
        #[arg(long = "age", value_name = "AGE1...")]
        age: Vec<String>,
    },
    /// Look for plaintext secrets in a directory and in its git history.
    ///
    /// Finds the values of secrets.sops.yaml (plain or base64, when your key can open it),
    /// private key blocks, age secret keys and random-looking values under secret-looking
    /// keys. Prints `file:line` (or `commit:file:line`) per finding, never the secret, and
    /// exits 1 when anything is found. Paths listed in `.homelab-scan-ignore` (globs, one per
    /// line, at the repository root) are skipped; `GLOB @COMMIT` skips a path only in that
    /// commit's diff (a fixture one commit once held).
    Scan {
        /// The directory (or file) to scan [default: the lab directory].
        path: Option<PathBuf>,
        /// Only the working tree, not the git history.
        #[arg(long)]
        no_history: bool,
        /// A path glob to skip; repeat for more.
        #[arg(long, value_name = "GLOB")]
        ignore: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// A recipient (age public key, `age1...`) to add; repeat for more.
    #[arg(long = "add", value_name = "AGE1...")]
    pub add: Vec<String>,
    /// A recipient to remove; repeat for more.
    #[arg(long = "remove", value_name = "AGE1...")]
    pub remove: Vec<String>,
    /// A Vault/OpenBao transit key to wrap the data key with too, as sops writes it
    /// (`https://bao.example.com:8200/v1/transit/keys/homelab`); without a value, the spec's
    /// `secrets.vault` key.
    #[arg(long = "add-vault", value_name = "URI", num_args = 0..=1, default_missing_value = "")]
    pub add_vault: Vec<String>,
    /// A transit key to remove (without a value, the spec's); refused when no key you hold
    /// would be left.
    #[arg(long = "remove-vault", value_name = "URI", num_args = 0..=1, default_missing_value = "")]
    pub remove_vault: Vec<String>,
}

pub fn run(global: &Global, args: &SecretsArgs, out: &Output) -> anyhow::Result<u8> {
    let lab = LabFiles::of(&global.file);
    match &args.command {
        SecretsCommand::Init => init::run(global, &lab, out),
        SecretsCommand::List => list::run(global, &lab, out),
        SecretsCommand::Get { name, reveal } => values::get(&lab, name, *reveal, out),
        SecretsCommand::Set { name, force } => values::set(global, &lab, name, *force, out),
        SecretsCommand::Edit => values::edit(&lab, out),
        SecretsCommand::Rotate { name } => values::rotate(global, &lab, name, out),
        SecretsCommand::Doctor => doctor::run(global, out),
        SecretsCommand::Rekey(rekey) => files::rekey(&lab, rekey, out),
        SecretsCommand::OpenbaoInit {
            address,
            shares,
            threshold,
        } => openbao::run(
            global,
            &lab,
            &openbao::OpenbaoInitArgs {
                address: address.as_deref(),
                shares: *shares,
                threshold: *threshold,
            },
            out,
        ),
        SecretsCommand::Decrypt { file } => files::decrypt(&lab, file, out),
        SecretsCommand::Encrypt {
            file,
            in_place,
            age,
        } => files::encrypt(file, *in_place, age, out),
        SecretsCommand::Scan {
            path,
            no_history,
            ignore,
        } => scan::run(&lab, path.as_deref(), *no_history, ignore, out),
    }
}

/// Reads the spec (it must be valid) and the lab's secret requirements.
pub(crate) fn lab_requirements(
    global: &Global,
    out: &Output,
) -> anyhow::Result<Vec<SecretRequirement>> {
    Ok(lab_spec(global, out)?.1)
}

/// The valid spec and the lab's secret requirements.
pub(crate) fn lab_spec(
    global: &Global,
    out: &Output,
) -> anyhow::Result<(LoadedSpec, Vec<SecretRequirement>)> {
    let loaded = spec::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let requirements = homelab_ops::secrets::requirements(&loaded, &plan);
    Ok((loaded, requirements))
}

/// "1 secret", "3 secrets".
pub(crate) fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
