//! The OpenBao init operation against a real `bao server` (integrated storage in a temporary
//! directory, not dev mode): a new server is initialised and unsealed with its keys saved in
//! the encrypted secrets file first; after a restart it is sealed and the stored keys unseal
//! it; the root token works; nothing shows a key; refusals leave the file unchanged.

#[path = "../../homelab-secrets/tests/common/tools.rs"]
mod tools;

use homelab_ops::openbao_init::{
    InitOptions, OpenBaoInitError, ROOT_TOKEN, init_and_unseal, unseal_key_name,
};
use homelab_secrets::identity::create_identity_file;
use homelab_secrets::{Identities, SecretsStore, VaultOperator};
use secrecy::ExposeSecret;
use tools::BaoServer;

struct Lab {
    dir: tempfile::TempDir,
    identities: Identities,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let (identities, recipient) = create_identity_file(&dir.path().join("age.key")).unwrap();
        let mut store =
            SecretsStore::create(&dir.path().join("secrets.sops.yaml"), &[recipient]).unwrap();
        store.save().unwrap();
        Lab { dir, identities }
    }

    fn store(&self) -> SecretsStore {
        SecretsStore::open(&self.dir.path().join("secrets.sops.yaml"), &self.identities).unwrap()
    }

    fn file(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("secrets.sops.yaml")).unwrap()
    }
}

fn sealed(server: &BaoServer) -> bool {
    // `bao status` exits 2 when sealed, 0 when unsealed.
    match server.cli(&["status"], None).status.code() {
        Some(0) => false,
        Some(2) => true,
        other => panic!("bao status: {other:?}"),
    }
}

#[test]
fn a_new_server_is_initialised_its_keys_stored_and_a_restart_unsealed_from_them() {
    let mut server = BaoServer::start();
    let lab = Lab::new();
    let op = VaultOperator::new(&server.address, None).unwrap();
    assert!(!op.seal_status().unwrap().initialized);

    let mut store = lab.store();
    let report = init_and_unseal(&op, &mut store, InitOptions::default()).unwrap();
    assert!(report.initialized_now && report.unsealed_now, "{report:?}");
    assert_eq!(report.stored.len(), 6, "{report:?}");
    assert!(!sealed(&server));
    // In the file, encrypted: five keys and the root token, and the token works.
    let store = lab.store();
    for n in 1..=5 {
        assert!(store.is_set(&unseal_key_name(n)).unwrap());
    }
    let root = store.get(ROOT_TOKEN).unwrap().expose_secret().to_owned();
    let text = String::from_utf8(lab.file()).unwrap();
    assert!(!text.contains(&root), "the root token is encrypted");
    let key1 = store
        .get(&unseal_key_name(1))
        .unwrap()
        .expose_secret()
        .to_owned();
    assert!(!text.contains(&key1));
    let lookup = server.cli_when_active(&["token", "lookup"], &root);
    assert!(lookup.status.success(), "{lookup:?}");
    assert!(!format!("{report:?}").contains(&root) && !format!("{report:?}").contains(&key1));

    // Running it again changes nothing.
    let before = lab.file();
    let mut store = lab.store();
    let again = init_and_unseal(&op, &mut store, InitOptions::default()).unwrap();
    assert!(!again.initialized_now && !again.unsealed_now);
    assert_eq!(before, lab.file());

    // A restart seals it; the stored keys unseal it, and the file is not rewritten.
    server.restart();
    assert!(sealed(&server));
    let mut store = lab.store();
    let report = init_and_unseal(&op, &mut store, InitOptions::default()).unwrap();
    assert!(!report.initialized_now && report.unsealed_now, "{report:?}");
    assert!(!sealed(&server));
    assert_eq!(before, lab.file());
}

#[test]
fn refusals_name_the_problem_and_leave_the_file_as_it_was() {
    let mut server = BaoServer::start();
    let op = VaultOperator::new(&server.address, None).unwrap();
    let first = Lab::new();
    init_and_unseal(&op, &mut first.store(), InitOptions::default()).unwrap();
    server.restart();

    // A file without the keys cannot unseal it.
    let other = Lab::new();
    let before = other.file();
    let err = init_and_unseal(&op, &mut other.store(), InitOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            OpenBaoInitError::KeysMissing {
                held: 0,
                threshold: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(before, other.file());
    assert!(sealed(&server));

    // A file holding one server's keys is not overwritten by initialising another.
    let fresh = BaoServer::start();
    let fresh_op = VaultOperator::new(&fresh.address, None).unwrap();
    let before = first.file();
    let err = init_and_unseal(&fresh_op, &mut first.store(), InitOptions::default()).unwrap_err();
    assert!(
        matches!(err, OpenBaoInitError::KeysOfAnotherServer { .. }),
        "{err}"
    );
    assert_eq!(before, first.file());
    assert!(
        !fresh_op.seal_status().unwrap().initialized,
        "nothing was initialised"
    );

    // Nonsense options and an unreachable server.
    let err = init_and_unseal(
        &fresh_op,
        &mut other.store(),
        InitOptions {
            shares: 2,
            threshold: 3,
        },
    )
    .unwrap_err();
    assert!(matches!(err, OpenBaoInitError::Options(_)), "{err}");
    server.stop();
    let err = init_and_unseal(&op, &mut first.store(), InitOptions::default()).unwrap_err();
    assert!(err.to_string().contains("cannot reach Vault at"), "{err}");
}
