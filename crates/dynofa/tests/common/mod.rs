//! Running the `dynofa` binary from the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `dynofa` with `args` and waits for it.
pub fn dynofa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dynofa")).args(args).output().expect("dynofa runs")
}

/// Its standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path as an argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
