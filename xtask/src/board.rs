//! A target board reached over SSH: running commands there and copying files both ways,
//! with strict, non-interactive options and errors that say what went wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// `--board USER@HOST or USER@HOST:PORT` and how to reach and use it.
#[derive(clap::Args, Debug, Clone)]
pub struct BoardArgs {
    /// The board: USER@HOST or USER@HOST:PORT.
    #[arg(long)]
    pub board: String,
    /// Private key to log in with (only this key is offered).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// known_hosts file holding the board's host key (default: ssh's own).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Install directory on the board (relative to the login directory, or absolute).
    #[arg(long, default_value = "dynofa")]
    pub dir: String,
    /// Command put before the binary on the board (e.g. `qemu-aarch64`, `taskset -c 0-3`).
    #[arg(long)]
    pub run_prefix: Option<String>,
}

/// The name of a board's files from `USER@HOST or USER@HOST:PORT` or a bare name: the host, with
/// anything but letters, digits, `-` and `.` replaced by `_`.
pub fn board_name(board: &str) -> String {
    let host = board.rsplit_once('@').map_or(board, |(_, rest)| rest);
    let host = host.rsplit_once(':').map_or(host, |(host, _)| host);
    host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

/// A parsed board.
#[derive(Debug, Clone)]
pub struct Board {
    user: String,
    host: String,
    port: u16,
    args: BoardArgs,
}

impl Board {
    /// Parses `--board` and checks the files named.
    pub fn new(args: &BoardArgs) -> Result<Self> {
        let (user, rest) = args.board.split_once('@').with_context(|| format!("--board {:?}: expected USER@HOST or USER@HOST:PORT", args.board))?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().with_context(|| format!("--board {:?}: port {port:?} is not a number", args.board))?),
            None => (rest, 22),
        };
        if user.is_empty() || host.is_empty() || user.contains(char::is_whitespace) || host.contains(char::is_whitespace) {
            bail!("--board {:?}: expected USER@HOST or USER@HOST:PORT", args.board);
        }
        for (flag, file) in [("--identity", &args.identity), ("--known-hosts", &args.known_hosts)] {
            if let Some(file) = file {
                anyhow::ensure!(file.is_file(), "{flag} {}: no such file", file.display());
            }
        }
        anyhow::ensure!(!args.dir.is_empty() && !args.dir.contains(['\'', '\n']), "--dir {:?}: a plain path", args.dir);
        Ok(Board { user: user.into(), host: host.into(), port, args: args.clone() })
    }

    /// A name for the board's files (`assets/boards/NAME/`): the host.
    pub fn name(&self) -> String {
        board_name(&self.host)
    }

    /// The install directory on the board.
    pub fn dir(&self) -> &str {
        &self.args.dir
    }

    /// `cd DIR && PREFIX ./dynofa`: how a command starts the installed binary.
    pub fn dynofa(&self) -> String {
        let prefix = self.args.run_prefix.as_deref().map(|p| format!("{p} ")).unwrap_or_default();
        format!("cd '{}' && {prefix}./dynofa", self.args.dir)
    }

    /// The ssh command line that logs in to the board, for messages.
    pub fn ssh_command(&self) -> String {
        let mut parts = vec!["ssh".to_string()];
        if self.port != 22 {
            parts.push(format!("-p {}", self.port));
        }
        if let Some(key) = &self.args.identity {
            parts.push(format!("-i {}", key.display()));
        }
        if let Some(known) = &self.args.known_hosts {
            parts.push(format!("-o UserKnownHostsFile={}", known.display()));
        }
        parts.push(self.destination());
        parts.join(" ")
    }

    fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// Options every ssh/scp call gets: no prompts, host key must be known, one key.
    fn options(&self) -> Vec<String> {
        let mut options = vec!["-o".into(), "BatchMode=yes".into(), "-o".into(), "StrictHostKeyChecking=yes".into(), "-o".into(), "ConnectTimeout=10".into()];
        if let Some(known) = &self.args.known_hosts {
            options.extend(["-o".into(), format!("UserKnownHostsFile={}", known.display())]);
        }
        if let Some(key) = &self.args.identity {
            options.extend(["-o".into(), "IdentitiesOnly=yes".into(), "-i".into(), key.display().to_string()]);
        }
        options
    }

    /// Runs `command` on the board (through its login shell); fails with a clear error
    /// when the board cannot be reached or the command fails.
    pub fn run(&self, command: &str) -> Result<Output> {
        let out = self.ssh_output(command)?;
        if !out.status.success() {
            bail!("on {}: `{command}` failed ({}): {}", self.args.board, out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(out)
    }

    /// Runs `command` on the board with its output shown here as it comes.
    pub fn run_shown(&self, command: &str) -> Result<()> {
        let status = Command::new("ssh")
            .args(self.options())
            .args(["-p", &self.port.to_string(), &self.destination(), command])
            .stdin(Stdio::null())
            .status()
            .context("cannot start ssh (install openssh-client)")?;
        if status.code() == Some(255) {
            // The connection itself failed: ask again for the reason.
            self.check()?;
        }
        anyhow::ensure!(status.success(), "on {}: `{command}` failed ({status})", self.args.board);
        Ok(())
    }

    fn ssh_output(&self, command: &str) -> Result<Output> {
        let out = Command::new("ssh")
            .args(self.options())
            .args(["-p", &self.port.to_string(), &self.destination(), command])
            .stdin(Stdio::null())
            .output()
            .context("cannot start ssh (install openssh-client)")?;
        if out.status.code() == Some(255) {
            bail!("{}", self.connection_error(&String::from_utf8_lossy(&out.stderr)));
        }
        Ok(out)
    }

    /// Checks that the board answers and accepts the key.
    pub fn check(&self) -> Result<()> {
        self.run("true").map(|_| ())
    }

    /// What an ssh exit status 255 means, from its message.
    fn connection_error(&self, stderr: &str) -> String {
        let board = &self.args.board;
        let detail = stderr.trim();
        if detail.contains("Permission denied") {
            let key = self.args.identity.as_ref().map_or("ssh's default keys".into(), |k| k.display().to_string());
            format!("authentication refused by {board} (key: {key}): {detail}")
        } else if detail.contains("Host key verification failed") || detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            let file = self.args.known_hosts.as_ref().map_or("~/.ssh/known_hosts".into(), |k| k.display().to_string());
            format!("the host key of {board} is not the one in {file} (add it with ssh-keyscan after checking it): {detail}")
        } else {
            format!("board {board} unreachable: {detail}")
        }
    }

    /// Whether rsync is on both ends.
    fn has_rsync(&self) -> bool {
        let here = Command::new("rsync").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        here && self.ssh_output("command -v rsync").is_ok_and(|o| o.status.success())
    }

    /// Copies the local directory `from` to `to` on the board (created; must not exist
    /// for scp): rsync when both ends have it, else scp.
    pub fn upload_dir(&self, from: &Path, to: &str) -> Result<()> {
        if self.has_rsync() {
            let source = format!("{}/", from.display());
            let target = format!("{}:{to}/", self.destination());
            self.rsync(&source, &target)
        } else {
            let target = format!("{}:{to}", self.destination());
            self.scp(&[&from.display().to_string(), &target])
        }
    }

    /// Copies the directory `from` on the board to the local directory `to`, replacing
    /// it only once the copy is complete.
    pub fn download_dir(&self, from: &str, to: &Path) -> Result<()> {
        let staging = to.with_extension("incoming");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
        }
        if let Some(parent) = staging.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let source = format!("{}:{from}", self.destination());
        if self.has_rsync() {
            self.rsync(&format!("{source}/"), &format!("{}/", staging.display()))?;
        } else {
            self.scp(&[&source, &staging.display().to_string()])?;
        }
        if to.exists() {
            std::fs::remove_dir_all(to).with_context(|| format!("replacing {}", to.display()))?;
        }
        std::fs::rename(&staging, to).with_context(|| format!("moving the copy to {}", to.display()))
    }

    fn rsync(&self, from: &str, to: &str) -> Result<()> {
        let quoted: Vec<String> = self.options().iter().map(|o| format!("'{o}'")).collect();
        let shell = format!("ssh -p {} {}", self.port, quoted.join(" "));
        let out = Command::new("rsync").args(["-a", "-e", &shell, from, to]).stdin(Stdio::null()).output().context("cannot start rsync")?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() == Some(255) || stderr.contains("connection unexpectedly closed") && stderr.contains("Permission denied") {
                bail!("{}", self.connection_error(&stderr));
            }
            bail!("copying {from} to {to} failed ({}): {}", out.status, stderr.trim());
        }
        Ok(())
    }

    fn scp(&self, paths: &[&str]) -> Result<()> {
        let out = Command::new("scp")
            .args(self.options())
            .args(["-r", "-q", "-P", &self.port.to_string()])
            .args(paths)
            .stdin(Stdio::null())
            .output()
            .context("cannot start scp")?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() == Some(255) {
                bail!("{}", self.connection_error(&stderr));
            }
            bail!("copying {} failed ({}): {}", paths.join(" → "), out.status, stderr.trim());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(board: &str) -> BoardArgs {
        BoardArgs { board: board.into(), identity: None, known_hosts: None, dir: "dynofa".into(), run_prefix: None }
    }

    #[test]
    fn parses_boards() {
        let b = Board::new(&args("nvidia@jetson.local:2222")).unwrap();
        assert_eq!((b.user.as_str(), b.host.as_str(), b.port), ("nvidia", "jetson.local", 2222));
        assert_eq!(Board::new(&args("me@10.0.0.2")).unwrap().port, 22);
        assert_eq!(board_name("nvidia@jetson.local:2222"), "jetson.local");
        assert_eq!(board_name("jetson.local"), "jetson.local");
        for bad in ["jetson", "@host", "me@", "me@host:x", "me@host:70000"] {
            assert!(Board::new(&args(bad)).is_err(), "{bad}");
        }
        let mut a = args("me@host");
        a.identity = Some("/nonexistent/key".into());
        assert!(Board::new(&a).unwrap_err().to_string().contains("/nonexistent/key"));
    }

    #[test]
    fn names_connection_failures() {
        let b = Board::new(&args("me@host")).unwrap();
        assert!(b.connection_error("me@host: Permission denied (publickey).").starts_with("authentication refused"));
        assert!(b.connection_error("ssh: connect to host host port 22: Connection refused").contains("unreachable"));
        assert!(b.connection_error("Host key verification failed.").contains("host key"));
    }
}
