//! The progress bars of the long-running commands (profiling, search, calibration,
//! training, runs, sweeps): one style, on stderr, hidden when the command is asked to be
//! quiet or when stderr is not a terminal (logs and CI stay clean).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps drawn with `template` (indicatif's syntax: `{bar:30}`, `{pos}`,
/// `{len}`, `{eta}`, `{msg}`…), hidden when `quiet` or when stderr is not a terminal.
pub fn bar(len: u64, template: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(len).with_style(ProgressStyle::with_template(template).expect("a valid progress template").progress_chars("=> "))
}
