//! Running the `dynofa` binary from the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// The smallest sub-network at 128 px: quick to run.
#[allow(dead_code)] // not every test binary runs it
pub const SMALLEST_R128: &str = r#"{"ks":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"e":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"d":[2,2,2,2,2],"r":[128]}"#;

/// Runs `dynofa` with `args` and waits for it.
#[allow(dead_code)] // not every test binary runs it without an environment
pub fn dynofa(args: &[&str]) -> Output {
    dynofa_with(args, &[])
}

/// [`dynofa`] with environment variables set.
#[allow(dead_code)] // not every test binary sets any
pub fn dynofa_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    command().args(args).envs(env.iter().copied()).output().expect("dynofa runs")
}

/// The `dynofa` binary to run, with this test process's own cache folder (a family tuned on
/// the developer's machine, in the user's cache, would change what `run` loads); `env` may
/// still set `DYNOFA_CACHE_DIR`.
pub fn command() -> Command {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dynofa-cache-{}", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_dynofa"));
    command.env("DYNOFA_CACHE_DIR", cache);
    command
}

/// Its standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path as an argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The JSON a command printed last on stdout.
#[allow(dead_code)] // not every test binary reads any
pub fn last_json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {text}"))
}
