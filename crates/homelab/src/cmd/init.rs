//! `homelab init`: writes the user's commented spec from flags or questions, never over an
//! existing file unless asked, and never leaves half a file behind; it asks nothing it was told.
//! Beside it, a `.gitignore` keeping `up`'s journal out of the lab's repository (appended to,
//! never rewritten).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use homelab_spec::templates::{self, AnswerError, Answers, Preset as Template};
use serde_json::json;

use crate::cli::{Global, InitArgs, Preset};
use crate::exit;
use crate::output::{self, Output};

pub fn run(global: &Global, args: &InitArgs, out: &Output) -> anyhow::Result<u8> {
    let path = &global.file;
    let (template, preset) = match args.preset {
        Preset::Seed => (Template::Seed, "seed"),
        Preset::Minimal => (Template::Minimal, "minimal"),
    };
    if path.is_dir() {
        return Err(exit::usage(format!(
            "{} is a directory; pass the file to write with `-f FILE`",
            path.display()
        )));
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(exit::usage(format!(
            "cannot write {}: the directory {} does not exist; create it first or pass another `-f FILE`",
            path.display(),
            dir.display()
        )));
    }
    let exists = path.symlink_metadata().is_ok();
    if exists && !args.force {
        return Err(exists_error(path));
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut terminal = Terminal;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let user = std::env::var("USER").ok();
    let collected = collect(
        args,
        template,
        &Environment {
            home: home.as_deref(),
            user: user.as_deref(),
            random: rand::random::<[u8; 16]>(),
        },
        interactive.then_some(&mut terminal as &mut dyn Ask),
    )?;
    let text =
        homelab_spec::templates::user_lab(template, &collected.answers).map_err(answer_error)?;
    // The answers are checked one by one above; loading the whole text as well keeps a
    // combination the checks missed from ever reaching a user's disk.
    let loaded = homelab_spec::load_str(&path.display().to_string(), &text).map_err(|e| {
        anyhow::anyhow!("the lab written from these answers does not validate: {e}")
    })?;
    // Read before anything is written, so a .gitignore that cannot be read stops the run
    // with nothing changed.
    let gitignore_path = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(".gitignore"),
        _ => PathBuf::from(".gitignore"),
    };
    let existing_gitignore = match std::fs::read_to_string(&gitignore_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(exit::Exit::new(
                exit::FAILURE,
                format!(
                    "cannot read {}: {e}; nothing was written",
                    gitignore_path.display()
                ),
            )
            .help(format!(
                "make {} a readable text file (or remove it), then run `homelab init` again",
                gitignore_path.display()
            ))
            .into());
        }
    };
    let gitignore = homelab_spec::templates::lab_gitignore(existing_gitignore.as_deref());
    if exists {
        out.warn(format!("overwriting {} (--force)", path.display()));
    }
    match write_atomically(path, &text, args.force) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists_error(path)),
        Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
    // The spec is written by now; a .gitignore that cannot be written is only a warning,
    // with the line to add by hand.
    let gitignore_written = match &gitignore {
        None => false,
        Some(text) => match write_atomically(&gitignore_path, text, existing_gitignore.is_some()) {
            Ok(()) => true,
            Err(e) => {
                out.warn(format!(
                        "cannot write {}: {e}; add the line `{}/` to it yourself, so the journal of `homelab up` stays out of the lab's repository",
                        gitignore_path.display(),
                        homelab_spec::templates::JOURNAL_DIR
                    ));
                false
            }
        },
    };
    let lab = &loaded.lab;
    let nodes = lab.cluster.nodes.len();
    let topic = &collected.answers.ntfy_topic;
    out.result(
        || {
            format!(
                "wrote {} ({preset} preset: {nodes} node{}, domain {})",
                path.display(),
                if nodes == 1 { "" } else { "s" },
                lab.network.domain
            )
        },
        &json!({
            "ok": true,
            "file": path.display().to_string(),
            "preset": preset,
            "overwritten": exists,
            "domain": lab.network.domain,
            "nodes": nodes,
            "ntfyTopic": topic,
            "sshKey": collected.ssh_key_file.as_ref().map(|p| p.display().to_string()),
            "gitignore": gitignore_path.display().to_string(),
            "gitignoreChanged": gitignore_written,
        }),
    );
    if gitignore_written {
        out.status(format!(
            "{} {}: it ignores {}/, where `homelab up` records where its next run resumes",
            if existing_gitignore.is_some() {
                "added a line to"
            } else {
                "wrote"
            },
            gitignore_path.display(),
            homelab_spec::templates::JOURNAL_DIR
        ));
    }
    out.status(format!(
        "critical alerts go to the ntfy topic {topic}: subscribe to it in the ntfy app, and keep the name to yourself (ntfy.sh topics are public)"
    ));
    match (&collected.ssh_key_file, template) {
        (Some(file), Template::Seed) => out.status(format!(
            "the dev container accepts the key in {}",
            file.display()
        )),
        (None, Template::Seed) => out.status(
            "no SSH public key given or found in ~/.ssh (id_*.pub): the dev container is left commented out; run `homelab init --force --ssh-key FILE` or add the key to it",
        ),
        _ => {}
    }
    out.status("next: review it, then run `homelab validate` and `homelab plan`");
    Ok(exit::OK)
}

/// Where answers not given as flags come from: a person at a terminal, or a script in tests.
pub(crate) trait Ask {
    /// One answer to `question` (the default when it is left empty); `None` when nobody is
    /// left to answer (stdin closed).
    fn ask(&mut self, question: &str, default: Option<&str>) -> std::io::Result<Option<String>>;
    /// Says why the last answer was not taken, before the question comes again.
    fn rejected(&mut self, why: &str);
}

struct Terminal;

impl Ask for Terminal {
    fn ask(&mut self, question: &str, default: Option<&str>) -> std::io::Result<Option<String>> {
        output::ask_line(question, default)
    }

    fn rejected(&mut self, why: &str) {
        output::tell(why);
    }
}

/// What `init` reads from the machine it runs on, passed in so it can be chosen in tests.
pub(crate) struct Environment<'a> {
    pub home: Option<&'a Path>,
    pub user: Option<&'a str>,
    pub random: [u8; 16],
}

pub(crate) struct Collected {
    pub answers: Answers,
    pub ssh_key_file: Option<PathBuf>,
}

fn answer_error(e: AnswerError) -> anyhow::Error {
    exit::usage_help(
        format!("{}: {}; nothing was written", e.flag, e.message),
        e.help,
    )
}

/// The answers from the flags, asking for the rest when someone can be asked. Without a
/// terminal every needed flag that is missing is named in one error.
pub(crate) fn collect(
    args: &InitArgs,
    template: Template,
    env: &Environment,
    ask: Option<&mut dyn Ask>,
) -> anyhow::Result<Collected> {
    let mut q = Questions {
        ask,
        missing: Vec::new(),
    };
    let domain = q.needed(
        "--domain",
        args.domain.as_deref(),
        "Domain the services are served under, one you control (e.g. lab.my-domain.net)",
        None,
        |t| templates::check_domain_answer(t).map(|()| t.to_string()),
    )?;
    let email = q.needed(
        "--email",
        args.email.as_deref(),
        "Email address for Let's Encrypt expiry warnings",
        None,
        |t| templates::check_email_answer(t).map(|()| t.to_string()),
    )?;
    let subnet = q.needed(
        "--subnet",
        args.subnet.as_deref(),
        "Home LAN in CIDR notation (e.g. 192.168.1.0/24)",
        None,
        templates::parse_subnet,
    )?;
    let near = |n: u32| {
        subnet.map_or_else(
            || format!("192.168.1.{n}"),
            |s| std::net::Ipv4Addr::from(u32::from(s.network) + n).to_string(),
        )
    };
    let nodes = q.needed(
        "--nodes",
        args.nodes.as_deref(),
        &format!(
            "Nodes as NAME=IP[:role], separated by commas (e.g. k3s-1={}:server,k3s-2={})",
            near(20),
            near(21)
        ),
        None,
        |t| {
            let nodes = templates::parse_nodes(t)?;
            // Checked here as well as when the lab is written, so a question comes again
            // instead of the whole run failing at the end.
            match (
                subnet,
                nodes
                    .iter()
                    .find(|n| subnet.is_some_and(|s| !s.contains(n.address))),
            ) {
                (Some(s), Some(n)) => Err(AnswerError {
                    flag: "--nodes",
                    message: format!(
                        "node `{}` has the address {}, which is not in {s}",
                        n.name, n.address
                    ),
                    help: "give each node its address on the LAN".into(),
                }),
                _ => Ok(nodes),
            }
        },
    )?;
    let nfs = q.needed(
        "--nfs",
        args.nfs.as_deref(),
        &format!(
            "NAS export for the volumes as SERVER:/PATH (e.g. {}:/volume1/k8s-data)",
            near(2)
        ),
        None,
        templates::parse_nfs,
    )?;
    let ssh_user = q.optional(
        "--ssh-user",
        args.ssh_user.as_deref(),
        "User to SSH into the nodes as, with sudo (`-`: what ~/.ssh/config says)",
        env.user,
        |t| templates::check_ssh_user_answer(t).map(|()| t.to_string()),
    )?;
    let (ssh_key, ssh_key_file) = if template == Template::Seed {
        let found = env.home.and_then(first_public_key);
        let given = args.ssh_key.as_ref().map(|p| p.display().to_string());
        let default = found.as_ref().map(|p| p.display().to_string());
        let file = q.optional(
            "--ssh-key",
            given.as_deref(),
            "Public key file the dev container accepts (`-`: none)",
            default.as_deref(),
            |t| Ok(PathBuf::from(t)),
        )?;
        // Without a terminal the default is taken as it is.
        let file = file.or(if q.ask.is_none() { found } else { None });
        match file {
            Some(f) => {
                let text = std::fs::read_to_string(&f).map_err(|e| {
                    exit::usage_help(
                        format!(
                            "--ssh-key: cannot read {}: {e}; nothing was written",
                            f.display()
                        ),
                        "pass a readable `.pub` file, e.g. `--ssh-key ~/.ssh/id_ed25519.pub`",
                    )
                })?;
                let key = templates::check_ssh_key_answer(&text).map_err(|e| {
                    answer_error(AnswerError {
                        message: format!("{} in {}", e.message, f.display()),
                        ..e
                    })
                })?;
                (Some(key), Some(f))
            }
            None => (None, None),
        }
    } else {
        (None, None)
    };
    if !q.missing.is_empty() {
        let names = q.missing.join(", ");
        return Err(exit::usage_help(
            format!("init needs {names}: there is no terminal to ask on; nothing was written"),
            "pass them, e.g. `homelab init --domain lab.my-domain.net --email me@my-domain.net --subnet 192.168.1.0/24 --nodes k3s-1=192.168.1.20,k3s-2=192.168.1.21 --nfs 192.168.1.2:/volume1/k8s-data`, or run it on a terminal to be asked",
        ));
    }
    let ntfy_topic = match &args.ntfy_topic {
        Some(t) => {
            templates::check_ntfy_topic(t).map_err(answer_error)?;
            t.clone()
        }
        None => templates::random_ntfy_topic(&env.random),
    };
    let gateway = args
        .gateway
        .as_deref()
        .map(templates::parse_gateway)
        .transpose()
        .map_err(answer_error)?;
    let pool = args
        .pool
        .as_deref()
        .map(templates::parse_pool)
        .transpose()
        .map_err(answer_error)?;
    let (Some(domain), Some(email), Some(subnet), Some(nodes), Some(nfs)) =
        (domain, email, subnet, nodes, nfs)
    else {
        unreachable!("every needed answer is there or named in `missing`");
    };
    Ok(Collected {
        answers: Answers {
            name: args.name.clone(),
            domain,
            email,
            subnet,
            gateway,
            pool,
            nodes,
            nfs,
            ssh_user,
            ssh_key,
            ntfy_topic,
        },
        ssh_key_file,
    })
}

struct Questions<'a> {
    ask: Option<&'a mut dyn Ask>,
    missing: Vec<&'static str>,
}

impl Questions<'_> {
    /// A needed answer: the flag's, else asked until it is valid, else named as missing.
    fn needed<T>(
        &mut self,
        flag: &'static str,
        given: Option<&str>,
        question: &str,
        default: Option<&str>,
        parse: impl Fn(&str) -> Result<T, AnswerError>,
    ) -> anyhow::Result<Option<T>> {
        if let Some(text) = given {
            return parse(text).map(Some).map_err(answer_error);
        }
        let Some(ask) = self.ask.as_deref_mut() else {
            self.missing.push(flag);
            return Ok(None);
        };
        loop {
            let Some(text) = ask
                .ask(question, default)
                .context("cannot read the answer")?
            else {
                return Err(exit::usage_help(
                    format!("no answer for {flag} (the input ended); nothing was written"),
                    format!("pass `{flag}` on the command line"),
                ));
            };
            if text.is_empty() {
                ask.rejected("an answer is needed here");
                continue;
            }
            match parse(&text) {
                Ok(v) => return Ok(Some(v)),
                Err(e) => ask.rejected(&format!("{}; {}", e.message, e.help)),
            }
        }
    }

    /// An optional answer: the flag's, else asked (`-`, or an empty answer without a default,
    /// meaning none), else none.
    fn optional<T>(
        &mut self,
        flag: &'static str,
        given: Option<&str>,
        question: &str,
        default: Option<&str>,
        parse: impl Fn(&str) -> Result<T, AnswerError>,
    ) -> anyhow::Result<Option<T>> {
        if let Some(text) = given {
            return parse(text).map(Some).map_err(answer_error);
        }
        let Some(ask) = self.ask.as_deref_mut() else {
            return Ok(None);
        };
        loop {
            let Some(text) = ask
                .ask(question, default)
                .context("cannot read the answer")?
            else {
                return Err(exit::usage_help(
                    format!("no answer for {flag} (the input ended); nothing was written"),
                    format!("pass `{flag}` on the command line"),
                ));
            };
            if text.is_empty() || text == "-" {
                return Ok(None);
            }
            match parse(&text) {
                Ok(v) => return Ok(Some(v)),
                Err(e) => ask.rejected(&format!("{}; {}", e.message, e.help)),
            }
        }
    }
}

/// The first `~/.ssh/id_*.pub` by name, as `ssh` tries its identities in a fixed order.
fn first_public_key(home: &Path) -> Option<PathBuf> {
    let mut keys: Vec<PathBuf> = std::fs::read_dir(home.join(".ssh"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("id_") && n.ends_with(".pub"))
                && p.is_file()
        })
        .collect();
    keys.sort();
    keys.into_iter().next()
}

fn exists_error(path: &Path) -> anyhow::Error {
    exit::usage(format!(
        "{} already exists; nothing was written. Use `--force` to overwrite it, or `-f FILE` to write another file",
        path.display()
    ))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes through a temporary file in the same directory, then moves it into place in one
/// step: an interrupted write never leaves half a spec behind. Without `replace` the final
/// step is a hard link, which fails if the file appeared meanwhile, so an existing spec is
/// never overwritten; with it, a rename, which keeps the replaced file's permissions.
fn write_atomically(path: &Path, text: &str, replace: bool) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        if replace && let Ok(old) = std::fs::metadata(path) {
            f.set_permissions(old.permissions())?;
        }
        f.sync_all()?;
        if replace {
            return std::fs::rename(&tmp, path);
        }
        match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                // A filesystem without hard links: check, then rename (a narrow race, but
                // still never half a file).
                if path.symlink_metadata().is_ok() {
                    return Err(std::io::ErrorKind::AlreadyExists.into());
                }
                std::fs::rename(&tmp, path)
            }
            other => other,
        }
    })();
    // After a rename the temporary name is gone already; after a link or a failure it is
    // removed here.
    let _ = std::fs::remove_file(&tmp);
    result?;
    if let Ok(dir) = std::fs::File::open(parent_dir(path)) {
        // Make the new directory entry durable too; some filesystems cannot, which is fine.
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Answers typed in order; records every question and every rejection.
    struct Script {
        answers: Vec<&'static str>,
        asked: Vec<String>,
        rejected: Vec<String>,
    }

    impl Script {
        fn new(answers: &[&'static str]) -> Script {
            Script {
                answers: answers.iter().rev().copied().collect(),
                asked: Vec::new(),
                rejected: Vec::new(),
            }
        }
    }

    impl Ask for Script {
        fn ask(
            &mut self,
            question: &str,
            default: Option<&str>,
        ) -> std::io::Result<Option<String>> {
            self.asked.push(question.to_string());
            Ok(self.answers.pop().map(|a| match (a, default) {
                ("", Some(d)) => d.to_string(),
                _ => a.to_string(),
            }))
        }

        fn rejected(&mut self, why: &str) {
            self.rejected.push(why.to_string());
        }
    }

    fn args(flags: &[&str]) -> InitArgs {
        let cli = crate::cli::Cli::try_parse_from(
            ["homelab", "init"].iter().chain(flags.iter()).copied(),
        )
        .expect("the flags parse");
        match cli.command {
            crate::cli::Command::Init(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn env(home: Option<&Path>) -> Environment<'_> {
        Environment {
            home,
            user: Some("sam"),
            random: [3; 16],
        }
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFq9yX3Tn0000000000000000000000000000000000000 sam@desk";

    const ALL: &[&str] = &[
        "--domain",
        "lab.sams.net",
        "--email",
        "sam@sams.net",
        "--subnet",
        "10.9.0.0/24",
        "--nodes",
        "cp=10.9.0.10,w=10.9.0.11",
        "--nfs",
        "10.9.0.2:/tank/k8s",
    ];

    #[test]
    fn a_terminal_is_asked_only_what_the_flags_leave_out_and_a_bad_answer_is_asked_again() {
        let mut script = Script::new(&[
            "sams.net",
            "not-an-address",
            "sam@sams.net",
            "cp=10.8.0.1",
            "cp=10.9.0.10:server,w=10.9.0.11",
            "nas.lan:/tank",
            "",
            "-",
        ]);
        let collected = collect(
            &args(&["--subnet", "10.9.0.0/24"]),
            Template::Seed,
            &env(None),
            Some(&mut script),
        )
        .unwrap();
        let a = &collected.answers;
        assert_eq!(
            (a.domain.as_str(), a.email.as_str(), a.subnet.to_string()),
            ("sams.net", "sam@sams.net", "10.9.0.0/24".to_string())
        );
        assert_eq!(a.nodes.len(), 2);
        assert_eq!(a.nfs.server, "nas.lan");
        assert_eq!(
            a.ssh_user.as_deref(),
            Some("sam"),
            "the login name is the default"
        );
        assert_eq!(a.ssh_key, None, "`-` means no key");
        assert_eq!(a.ntfy_topic, templates::random_ntfy_topic(&[3; 16]));
        assert_eq!(script.asked.len(), 8, "{:#?}", script.asked);
        assert!(
            script.asked.iter().all(|q| !q.contains("CIDR")),
            "--subnet was given"
        );
        assert!(
            script
                .asked
                .iter()
                .any(|q| q.contains("k3s-1=10.9.0.20:server")),
            "the nodes example uses the given subnet: {:#?}",
            script.asked
        );
        assert_eq!(script.rejected.len(), 2, "{:#?}", script.rejected);
        assert!(script.rejected[0].contains("`not-an-address` is not an email address"));
        assert!(script.rejected[1].contains("10.8.0.1, which is not in 10.9.0.0/24"));
    }

    #[test]
    fn every_flag_given_means_no_question() {
        let mut script = Script::new(&[]);
        let mut flags = ALL.to_vec();
        flags.extend(["--ssh-user", "ops", "--ssh-key", "/nonexistent/key.pub"]);
        let err = collect(&args(&flags), Template::Seed, &env(None), Some(&mut script))
            .err()
            .expect("the key file is missing");
        assert!(script.asked.is_empty(), "{:?}", script.asked);
        assert!(
            err.to_string()
                .contains("--ssh-key: cannot read /nonexistent/key.pub"),
            "{err}"
        );
        let collected = collect(&args(ALL), Template::Minimal, &env(None), None).unwrap();
        assert_eq!(collected.answers.ssh_user, None);
    }

    #[test]
    fn without_a_terminal_every_missing_needed_flag_is_named_at_once() {
        let err = collect(
            &args(&["--email", "sam@sams.net", "--nfs", "nas:/k"]),
            Template::Seed,
            &env(None),
            None,
        )
        .err()
        .expect("flags are missing");
        assert_eq!(exit::code_of(&err), exit::USAGE);
        assert!(
            err.to_string()
                .starts_with("init needs --domain, --subnet, --nodes: there is no terminal"),
            "{err}"
        );
    }

    #[test]
    fn input_that_ends_is_an_error_naming_the_flag() {
        let mut script = Script::new(&["lab.sams.net"]);
        let err = collect(&args(&[]), Template::Seed, &env(None), Some(&mut script))
            .err()
            .expect("the input ended");
        assert_eq!(exit::code_of(&err), exit::USAGE);
        assert!(err.to_string().contains("no answer for --email"), "{err}");
    }

    #[test]
    fn the_default_key_is_the_first_id_pub_by_name_and_only_for_the_preset_that_uses_it() {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        std::fs::create_dir(&ssh).unwrap();
        std::fs::write(
            ssh.join("id_rsa.pub"),
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ sam@old\n",
        )
        .unwrap();
        std::fs::write(ssh.join("id_ed25519.pub"), format!("{KEY}\n")).unwrap();
        std::fs::write(
            ssh.join("id_ed25519"),
            format!("-----BEGIN OPENSSH {} KEY-----\n", "PRIVATE"),
        )
        .unwrap();
        std::fs::write(ssh.join("backup.pub"), format!("{KEY}\n")).unwrap();
        let collected = collect(&args(ALL), Template::Seed, &env(Some(home.path())), None).unwrap();
        assert_eq!(collected.answers.ssh_key.as_deref(), Some(KEY));
        assert_eq!(collected.ssh_key_file, Some(ssh.join("id_ed25519.pub")));
        let minimal =
            collect(&args(ALL), Template::Minimal, &env(Some(home.path())), None).unwrap();
        assert_eq!(minimal.answers.ssh_key, None);

        let mut flags = ALL.to_vec();
        let private = ssh.join("id_ed25519").display().to_string();
        flags.extend(["--ssh-key", &private]);
        let err = collect(&args(&flags), Template::Seed, &env(None), None)
            .err()
            .expect("a private key is refused");
        assert!(err.to_string().contains("private key"), "{err}");
        assert!(!err.to_string().contains("BEGIN"), "{err}");
    }
}
