//! `homelab schema`: prints the JSON Schema of the spec.

use crate::exit;
use crate::output::Output;

pub fn run(out: &Output) -> anyhow::Result<u8> {
    let schema = homelab_spec::json_schema();
    out.raw(&(serde_json::to_string_pretty(&schema)? + "\n"));
    Ok(exit::OK)
}
