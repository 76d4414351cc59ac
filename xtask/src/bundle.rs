//! What `deploy` copies to a board: the binary, family files, weights if asked, and a
//! manifest with versions and SHA-256 checksums (also as `SHA256SUMS`, which
//! `sha256sum -c` checks on the board).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The checksum list file in a bundle.
pub const CHECKSUMS: &str = "SHA256SUMS";

/// Writes a bundle into `dir` (emptied first): `binary` as `dynofa`, each family file
/// under `families/`, `weights` under `weights/`, then `manifest.json` and `SHA256SUMS`.
pub fn assemble(dir: &Path, binary: &Path, families: &[PathBuf], weights: Option<&Path>, target: &str, root: &Path) -> Result<u64> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("families")).with_context(|| format!("creating {}", dir.display()))?;
    let mut files: Vec<(String, PathBuf)> = vec![("dynofa".into(), binary.to_path_buf())];
    for family in families {
        let name = family.file_name().context("family path without a file name")?.to_string_lossy().into_owned();
        files.push((format!("families/{name}"), family.clone()));
        // A calibrated family keeps its per-level BatchNorm beside it.
        let levels = family.with_extension("levels.pth");
        if levels.is_file() {
            files.push((format!("families/{}", levels.file_name().unwrap().to_string_lossy()), levels));
        }
    }
    if let Some(weights) = weights {
        std::fs::create_dir_all(dir.join("weights"))?;
        files.push((format!("weights/{}", weights.file_name().context("weights path without a file name")?.to_string_lossy()), weights.to_path_buf()));
    }
    let mut sums = String::new();
    let mut listed = Vec::new();
    let mut total = 0;
    for (name, source) in &files {
        let target_path = dir.join(name);
        std::fs::copy(source, &target_path).with_context(|| format!("copying {} into the bundle", source.display()))?;
        let (digest, bytes) = sha256_file(&target_path)?;
        total += bytes;
        sums.push_str(&format!("{digest}  {name}\n"));
        listed.push(json!({"path": name, "sha256": digest, "bytes": bytes}));
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let manifest = json!({
        "dynofa_version": env!("CARGO_PKG_VERSION"),
        "git_commit": commit,
        "target": target,
        "files": listed,
    });
    std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&manifest)?)?;
    std::fs::write(dir.join(CHECKSUMS), sums)?;
    Ok(total)
}

/// SHA-256 (hex) and size of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let digest = Sha256::digest(&bytes);
    Ok((digest.iter().map(|b| format!("{b:02x}")).collect(), bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_list_every_file_with_its_checksum() {
        let dir = std::env::temp_dir().join(format!("dynofa-bundle-test-{}", std::process::id()));
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("bin"), b"abc").unwrap();
        std::fs::write(src.join("f.ron"), b"family").unwrap();
        let out = dir.join("bundle");
        let bytes = assemble(&out, &src.join("bin"), &[src.join("f.ron")], None, "aarch64-unknown-linux-gnu", &dir).unwrap();
        assert_eq!(bytes, 9);
        let sums = std::fs::read_to_string(out.join(CHECKSUMS)).unwrap();
        // sha256("abc")
        assert!(sums.contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  dynofa"), "{sums}");
        assert!(sums.contains("  families/f.ron"));
        let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["target"], "aarch64-unknown-linux-gnu");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
