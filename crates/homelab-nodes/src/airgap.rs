//! The local directory of an airgap install: which installer, binaries and image archives
//! it holds, by architecture. Reads the directory listing only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::NodesError;

/// The files of a k3s release found in an airgap directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AirgapFiles {
    pub installer: PathBuf,
    /// k3s architecture (`amd64`, `arm64`, `arm`) to binary.
    pub binaries: BTreeMap<&'static str, PathBuf>,
    /// k3s architecture to (image archive, size in bytes).
    pub images: BTreeMap<&'static str, (PathBuf, u64)>,
}

const BINARY_NAMES: [(&str, &str); 3] = [
    ("amd64", "k3s"),
    ("arm64", "k3s-arm64"),
    ("arm", "k3s-armhf"),
];
const IMAGE_SUFFIXES: [&str; 3] = [".tar.zst", ".tar.gz", ".tar"];

impl AirgapFiles {
    /// Looks at `dir` and refuses it when the installer or every binary is missing.
    pub(crate) fn scan(dir: &Path) -> Result<AirgapFiles, NodesError> {
        let refuse = |reason: String| NodesError::Refused {
            operation: "install k3s from the airgap directory".into(),
            reason,
        };
        if !dir.is_dir() {
            return Err(refuse(format!(
                "{} is not a directory; download the k3s release files (install.sh, k3s, k3s-airgap-images-<arch>.tar.zst) into it",
                dir.display()
            )));
        }
        let installer = dir.join("install.sh");
        if !installer.is_file() {
            return Err(refuse(format!(
                "{} has no install.sh; save https://get.k3s.io there as install.sh",
                dir.display()
            )));
        }
        let mut binaries = BTreeMap::new();
        for (arch, file) in BINARY_NAMES {
            let p = dir.join(file);
            if p.is_file() {
                binaries.insert(arch, p);
            }
        }
        if binaries.is_empty() {
            return Err(refuse(format!(
                "{} has no k3s binary; add `k3s` (amd64), `k3s-arm64` or `k3s-armhf` from the release page of the pinned version",
                dir.display()
            )));
        }
        let mut images = BTreeMap::new();
        for (arch, _) in BINARY_NAMES {
            for suffix in IMAGE_SUFFIXES {
                let p = dir.join(format!("k3s-airgap-images-{arch}{suffix}"));
                if let Ok(meta) = std::fs::metadata(&p)
                    && meta.is_file()
                {
                    images.insert(arch, (p, meta.len()));
                    break;
                }
            }
        }
        Ok(AirgapFiles {
            installer,
            binaries,
            images,
        })
    }

    /// Problems that keep a host of architecture `arch` from being installed from here.
    pub(crate) fn missing_for(&self, arch: &str) -> Option<String> {
        let binary = BINARY_NAMES
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, f)| *f)
            .unwrap_or("k3s");
        if !self.binaries.contains_key(arch) {
            return Some(format!(
                "the airgap directory has no k3s binary for {arch}: add `{binary}` from the pinned release"
            ));
        }
        if !self.images.contains_key(arch) {
            return Some(format!(
                "the airgap directory has no images archive for {arch}: add `k3s-airgap-images-{arch}.tar.zst` from the pinned release"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_release_files_by_architecture() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("install.sh"), "#!/bin/sh\n").unwrap();
        std::fs::write(d.path().join("k3s"), "bin").unwrap();
        std::fs::write(d.path().join("k3s-airgap-images-amd64.tar.zst"), "12345").unwrap();
        std::fs::write(d.path().join("k3s-arm64"), "bin").unwrap();
        let f = AirgapFiles::scan(d.path()).unwrap();
        assert_eq!(f.images["amd64"].1, 5);
        assert_eq!(f.missing_for("amd64"), None);
        assert!(
            f.missing_for("arm64")
                .unwrap()
                .contains("k3s-airgap-images-arm64.tar.zst")
        );
        assert!(f.missing_for("arm").unwrap().contains("k3s-armhf"));
    }

    #[test]
    fn refuses_a_directory_without_installer_or_binary() {
        let d = tempfile::tempdir().unwrap();
        assert!(
            AirgapFiles::scan(&d.path().join("nope"))
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
        assert!(
            AirgapFiles::scan(d.path())
                .unwrap_err()
                .to_string()
                .contains("install.sh")
        );
        std::fs::write(d.path().join("install.sh"), "").unwrap();
        assert!(
            AirgapFiles::scan(d.path())
                .unwrap_err()
                .to_string()
                .contains("no k3s binary")
        );
    }
}
