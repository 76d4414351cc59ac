//! The board workflow end to end, against a throwaway OpenSSH server on 127.0.0.1 that
//! runs the aarch64 build under qemu-user: deploy, a golden inference there, profile,
//! run, and the failure paths (unreachable, refused key, checksum mismatch, unwritable
//! disk).
//!
//! Needs root (sshd), sshd, ssh-keygen, qemu-aarch64 and the aarch64 cross tools
//! (`cargo xtask setup`); without them it says so and passes, unless
//! `DYNOFA_BOARD_E2E=require` (as `.ci/run` sets).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A throwaway sshd, killed when dropped (also when the test fails).
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(name: &str) -> bool {
    Path::new(name).exists() || Command::new("sh").args(["-c", &format!("command -v {name}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn sh(command: &mut Command) -> Output {
    let out = command.output().expect("command starts");
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn keygen(path: &Path) {
    sh(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts sshd on a free port with a fresh host key, accepting `client_key`; writes
/// `known_hosts` with its host key.
fn start_sshd(dir: &Path, user: &str) -> Sshd {
    std::fs::create_dir_all("/run/sshd").ok();
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
             StrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\nSetEnv QEMU_LD_PREFIX=/usr/aarch64-linux-gnu\n",
            dir.join("host_key").display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd").args(["-D", "-e", "-f"]).arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("sshd starts");
    let server = Sshd { child, port };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "sshd did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    std::fs::write(dir.join("known_hosts"), format!("[127.0.0.1]:{port} {} {}\n", key[0], key[1])).unwrap();
    server
}

/// Runs `cargo xtask` tasks against the board.
struct Xtask {
    root: PathBuf,
    keys: PathBuf,
}

impl Xtask {
    fn run(&self, task: &str, board: &str, key: &str, dir: &str, extra: &[&str]) -> Output {
        let (identity, known) = (self.keys.join(key), self.keys.join("known_hosts"));
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([task, "--board", board, "--dir", dir, "--run-prefix", "qemu-aarch64", "--identity"])
            .arg(identity)
            .arg("--known-hosts")
            .arg(known)
            .args(extra)
            .current_dir(&self.root)
            // A build directory of its own: the outer `cargo test` may hold the main one.
            .env("CARGO_TARGET_DIR", self.root.join("target/board-e2e"))
            // The board build compiles the code the outer build already linted (CI runs
            // that one through clippy-driver with warnings denied): not again here.
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("xtask runs")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn no_staging_left(parent: &Path) -> bool {
    !parent.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".incoming"))
}

#[test]
fn deploy_profile_and_run_on_an_emulated_aarch64_board() {
    let required = std::env::var("DYNOFA_BOARD_E2E").is_ok_and(|v| v == "require");
    let missing: Vec<&str> =
        ["/usr/sbin/sshd", "ssh-keygen", "ssh", "qemu-aarch64", "aarch64-linux-gnu-gcc", "sha256sum"].into_iter().filter(|t| !on_path(t)).collect();
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !missing.is_empty() || !is_root {
        assert!(!required, "DYNOFA_BOARD_E2E=require but missing {missing:?} (root: {is_root}); run `cargo xtask setup`");
        eprintln!("skipped: missing {missing:?} (root: {is_root}); `cargo xtask setup` installs them");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let sshd = start_sshd(tmp.path(), &user);
    let board = format!("{user}@127.0.0.1:{}", sshd.port);
    let x = Xtask { root: root.clone(), keys: tmp.path().to_path_buf() };
    let parent = tmp.path().join("board");
    std::fs::create_dir_all(&parent).unwrap();
    let install = parent.join("dynofa");
    let dir = install.to_str().unwrap();

    // Failure paths that need no build: nobody listening, a key the board does not accept.
    let closed = format!("{user}@127.0.0.1:{}", free_port());
    let out = x.run("deploy", &closed, "client_key", dir, &[]);
    assert!(!out.status.success() && stderr(&out).contains("unreachable"), "{}", stderr(&out));
    keygen(&tmp.path().join("stranger_key"));
    let out = x.run("deploy", &board, "stranger_key", dir, &[]);
    assert!(!out.status.success() && stderr(&out).contains("authentication refused"), "{}", stderr(&out));

    // Deploy a static aarch64 musl build with golden weights. The `board-check` profile
    // is `board` at opt-level 1 outside the fast path (Cargo.toml): the same code, and a
    // cold cross build (CI's) takes minutes less.
    let (cases, tol) = dynofa_golden::cases();
    let case = cases.iter().find(|c| c.net == "w12").expect("a w1.2 golden case");
    let start = Instant::now();
    let out = x.run("deploy", &board, "client_key", dir, &["--profile", "board-check", "--weights", case.checkpoint_path().to_str().unwrap()]);
    assert!(out.status.success(), "deploy: {}", stderr(&out));
    eprintln!("deploy, build included: {:.0} s\n{}", start.elapsed().as_secs_f64(), stderr(&out));
    for file in ["dynofa", "manifest.json", "SHA256SUMS", "families/cpu_w12.ron"] {
        assert!(install.join(file).is_file(), "{file} installed");
    }
    let elf = std::fs::read(install.join("dynofa")).unwrap();
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 183, "an aarch64 (EM_AARCH64) executable");
    assert!(no_staging_left(&parent));

    // The board's binary reproduces every golden case under emulation, on its fast path
    // (the family store's NEON kernels): one remote shell runs them all, one lane of cases
    // per core of the board (this machine: qemu-user emulates one thread on one core), and
    // fails if any lane does (the golden checkpoints are read in place).
    let lanes = std::thread::available_parallelism().map_or(1, |n| n.get()).min(cases.len());
    let mut lane_scripts = vec![Vec::new(); lanes];
    for (i, case) in cases.iter().enumerate() {
        std::fs::copy(dynofa_golden::path(&case.input), install.join(format!("input_{i}.npy"))).unwrap();
        lane_scripts[i % lanes].push(format!(
            "qemu-aarch64 ./dynofa infer --weights '{}' --subnet '{}' --input input_{i}.npy --output logits_{i}.npy",
            case.checkpoint_path().display(),
            case.cfg.to_json()
        ));
    }
    let mut script = format!("cd '{dir}' || exit 1; pids=''");
    for lane in &lane_scripts {
        script += &format!("; ( {} ) & pids=\"$pids $!\"", lane.join(" && "));
    }
    script += "; status=0; for p in $pids; do wait $p || status=1; done; exit $status";
    let start = Instant::now();
    let out = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", tmp.path().join("known_hosts").display()))
        .arg("-i")
        .arg(tmp.path().join("client_key"))
        .args(["-p", &sshd.port.to_string(), &format!("{user}@127.0.0.1")])
        .arg(script)
        .output()
        .unwrap();
    assert!(out.status.success(), "remote infer: {}", stderr(&out));
    eprintln!("{} golden cases on the emulated board: {:.0} s", cases.len(), start.elapsed().as_secs_f64());
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let logits = dynofa_supernet::tensor_io::read_npy(&install.join(format!("logits_{i}.npy"))).unwrap();
        // Cases whose reference is itself off the exact result by more than the tolerance
        // are judged layer by layer against an f64 forward (as on x86-64).
        if let Err(e) = dynofa_golden::compare(&logits, &case.expected_logits(), tol) {
            let net64 = dynofa_supernet::load_checkpoint_in(&case.checkpoint_path(), &burn::prelude::Device::flex(), dynofa_supernet::Precision::F64).unwrap();
            let x64 = case.input().to_tensor_in::<4>(&burn::prelude::Device::flex(), dynofa_supernet::Precision::F64).unwrap();
            let exact = dynofa_supernet::tensor_io::Array::from_tensor(&net64.forward(x64, &case.cfg).unwrap());
            if let Err(parity) = dynofa_golden::check_parity(&logits, &case.expected_logits(), &exact, tol) {
                failures.push(format!("{}: {e}; {parity}", case.id));
            }
        }
    }
    assert!(failures.is_empty(), "aarch64 logits vs golden:\n{}", failures.join("\n"));

    // Profile on the board; the tables come back with their metadata and predict. At
    // resolution 64, not --quick's 160: the same workflow in a third of the emulated time.
    let tables = tmp.path().join("tables");
    let out = x.run("profile", &board, "client_key", dir, &["--quick", "--out", tables.to_str().unwrap(), "--", "--resolutions", "64"]);
    assert!(out.status.success(), "profile: {}", stderr(&out));
    assert!(tables.join("threads_1/metadata.json").is_file());
    let luts = dynofa_profiler::LatencyTables::open(&tables.join("threads_1")).unwrap();
    let config = dynofa_supernet::SupernetConfig::ofa_mbv3(dynofa_supernet::Width::W12);
    let ms = luts.predict(&config, &config.smallest(64)).unwrap();
    assert!(ms > 0.0, "the board's table predicts the smallest network: {ms} ms");

    // A short run there; trace, plot and summary come back.
    let runs = tmp.path().join("runs");
    let run_args = ["--out", runs.to_str().unwrap(), "--", "--target-ms", "2000", "--duration", "4", "--calibrate-iters", "1", "--threads", "1"];
    let out = x.run("run", &board, "client_key", dir, &run_args);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let rows = dynofa_runtime::trace::read_csv(&runs.join("trace.csv")).unwrap();
    assert!(!rows.is_empty());
    assert!(runs.join("trace.svg").is_file() && runs.join("trace.summary.json").is_file());

    // A bundle that does not match its checksums is refused there; nothing changes.
    let bundle = tmp.path().join("tampered");
    sh(Command::new("cp").arg("-r").arg(&install).arg(&bundle));
    std::fs::write(bundle.join("families/cpu_w12.ron"), "tampered").unwrap();
    let before = std::fs::read(install.join("families/cpu_w12.ron")).unwrap();
    let out = x.run("deploy", &board, "client_key", dir, &["--bundle", bundle.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("checksum mismatch"), "{}", stderr(&out));
    assert_eq!(std::fs::read(install.join("families/cpu_w12.ron")).unwrap(), before, "the installed bundle is untouched");
    assert!(no_staging_left(&parent));

    // A directory the board cannot write.
    let out = x.run("deploy", &board, "client_key", "/proc/dynofa", &["--bundle", install.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("not writable"), "{}", stderr(&out));
}
