//! The public operations' futures are `Send`, so the CLI may spawn them on a multi-thread
//! runtime, and events can be forwarded to a channel.

use std::path::PathBuf;

use homelab_nodes::*;
use secrecy::SecretString;

fn is_send<T: Send>(_: &T) {}

#[test]
fn every_operation_future_is_send() {
    let inv = Inventory::new("lab", "v1.31.2+k3s1", SecretString::from("t"), vec![]);
    let (tx, _rx) = std::sync::mpsc::channel::<Event>();
    let tx = std::sync::Mutex::new(tx);
    let sink = move |e: &Event| {
        let _ = tx.lock().unwrap().send(e.clone());
    };
    let yes = |_: &str| true;
    is_send(&apply(&inv, &ApplyOptions::default(), &sink));
    is_send(&remove(&inv, "x", &RemoveOptions::default(), &sink));
    is_send(&upgrade(&inv, &UpgradeOptions::default(), &sink));
    is_send(&reset(&inv, "x", &yes, &sink));
    is_send(&history(&inv, &sink));
    let k = KubeconfigOptions {
        server: None,
        write_to: PathBuf::from("x"),
        merge_into: None,
        switch_context: false,
    };
    is_send(&kubeconfig(&inv, &k, &sink));
    is_send(&snapshot_save(&inv, None, &sink));
    is_send(&snapshot_list(&inv, &sink));
    is_send(&snapshot_prune(&inv, 1, None, &sink));
    is_send(&snapshot_restore(&inv, "x", &yes, &sink));
}

#[tokio::test]
async fn an_empty_inventory_is_refused_without_contacting_anything() {
    let inv = Inventory::new("lab", "v1.31.2+k3s1", SecretString::from("t"), vec![]);
    let err = apply(&inv, &ApplyOptions::default(), &NoEvents)
        .await
        .unwrap_err();
    assert!(matches!(err, NodesError::InvalidInventory { .. }), "{err}");
    assert!(err.to_string().contains("the lab has no hosts"), "{err}");
}
