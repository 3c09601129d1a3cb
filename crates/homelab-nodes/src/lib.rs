//! Converges the lab's hosts over SSH as a list of phases: k3s install, join, remove, upgrade, snapshots, kubeconfig.
