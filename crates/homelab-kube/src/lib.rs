//! Applies, diffs, prunes, waits on and checks the health of a Plan in a cluster through the Kubernetes API.
