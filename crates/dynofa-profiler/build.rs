//! The Burn version this build links, read from the workspace's `Cargo.lock` (the one
//! source of truth: the tables' metadata records it as `burn_version`).

use std::path::Path;

fn main() {
    let lock = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../../Cargo.lock");
    println!("cargo::rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_else(|_| {
        println!("cargo::warning=no {} (built outside the workspace): burn_version is recorded as unknown", lock.display());
        String::new()
    });
    // `[[package]]\nname = "burn"\nversion = "0.22.1"` (outside the workspace: unknown).
    let version = text
        .split("[[package]]")
        .find(|package| package.lines().any(|l| l.trim() == "name = \"burn\""))
        .and_then(|package| package.lines().find_map(|l| l.trim().strip_prefix("version = \"")?.strip_suffix('"')))
        .unwrap_or("unknown");
    println!("cargo::rustc-env=DYNOFA_BURN_VERSION={version}");
}
