//! Spec types, parsing with source positions, validation, defaults and the JSON Schema of `homelab.yaml`; no network, no disk.
