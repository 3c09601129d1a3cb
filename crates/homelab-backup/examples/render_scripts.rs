//! Writes the rendered PostgreSQL backup scripts into a directory, for `scripts/bench-backup`
//! and for trying them by hand:
//!
//! ```text
//! cargo run -p homelab-backup --example render_scripts -- [--row-counts-only] OUT_DIR BACKUP_DIR KEEP [DATABASE...]
//! ```
//!
//! Without DATABASE arguments the scripts back up every database.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use homelab_backup::postgres::{PostgresBackupParams, TableChecksums, scripts};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let counts_only = args.first().is_some_and(|a| a == "--row-counts-only");
    if counts_only {
        args.remove(0);
    }
    let [out, backup_dir, keep, databases @ ..] = args.as_slice() else {
        eprintln!(
            "usage: render_scripts [--row-counts-only] OUT_DIR BACKUP_DIR KEEP [DATABASE...]"
        );
        return ExitCode::from(2);
    };
    let Ok(keep) = keep.parse::<u32>() else {
        eprintln!("render_scripts: KEEP must be a number, got {keep:?}");
        return ExitCode::from(2);
    };
    let mut params = PostgresBackupParams::new(backup_dir.clone(), keep);
    if counts_only {
        params.table_checksums = TableChecksums::RowCountsOnly;
    }
    if !databases.is_empty() {
        params.databases = Some(databases.to_vec());
    }
    let rendered = match scripts(&params) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("render_scripts: {e}");
            return ExitCode::from(2);
        }
    };
    let out = PathBuf::from(out);
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("render_scripts: cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    for s in rendered {
        let path = out.join(s.file_name);
        let written = std::fs::write(&path, &s.content).and_then(|()| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(s.mode))
        });
        if let Err(e) = written {
            eprintln!("render_scripts: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
