//! Interrupts, as a user (Ctrl-C) or a supervisor (SIGTERM) sends them, to the real
//! binary in the middle of its work: `calibrate`, `search`, `extract` and `convert` exit
//! with status 130 leaving neither their output nor a temporary file; `run` stops its
//! competing load, writes the trace, plot and summary of the frames so far (marked
//! interrupted), says where they are, and exits with status 130.
#![cfg(target_os = "linux")] // signals, and /proc to find the load processes

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::s;

/// The longest any command here may take to exit once signalled (a generous bound for a
/// loaded 2-core machine; it only guards against a hang).
const EXIT_TIMEOUT: Duration = Duration::from_secs(120);

/// `dynofa` running, with its stdout and stderr collected on threads of their own (so
/// that a full pipe never blocks it).
struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// What a finished `dynofa` left.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = common::command().args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("dynofa starts");
        let (stdout, stderr) = (Arc::new(Mutex::new(String::new())), Arc::new(Mutex::new(String::new())));
        let readers = vec![collect(child.stdout.take().unwrap(), stdout.clone()), collect(child.stderr.take().unwrap(), stderr.clone())];
        Running { child, stdout, stderr, readers }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_so_far(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether it still runs.
    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends `signal` (`INT`, `TERM`) with `kill`.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits for it to exit (killing it, and failing, past `timeout`).
    fn wait(mut self, timeout: Duration) -> Finished {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("dynofa did not exit within {timeout:?} of the signal; stderr:\n{}", self.stderr_so_far());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        Finished { status, stdout, stderr }
    }
}

/// How one attempt to interrupt a command went.
enum Attempt {
    /// Signalled while working: what it left.
    Signalled(Finished),
    /// It had finished before the signal was due.
    FinishedFirst(Finished),
}

/// Starts `dynofa args`, and sends `signal` `after` its start if it still runs then.
fn interrupt_after(args: &[&str], signal: &str, after: Duration) -> Attempt {
    let mut running = Running::start(args);
    let start = Instant::now();
    while start.elapsed() < after {
        if !running.running() {
            return Attempt::FinishedFirst(running.wait(EXIT_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    running.signal(signal);
    let done = running.wait(EXIT_TIMEOUT);
    // An interrupted command exits 130: success means it finished between the last look
    // and the signal (which then found only its zombie).
    if done.status.success() { Attempt::FinishedFirst(done) } else { Attempt::Signalled(done) }
}

/// Files a write in `dir` may have left: dynofa's temporaries (`.dynofa…`) and any `.tmp`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(".dynofa") || name.ends_with(".tmp")
        })
        .collect()
}

/// Asserts what an interrupt mid-work must leave: status 130, no output, no temporary.
fn assert_left_nothing(what: &str, done: &Finished, out: &Path) {
    let err = &done.stderr;
    assert_eq!(done.status.code(), Some(130), "{what}: exit status {:?} (a signal's own death has none); stderr:\n{err}", done.status);
    assert!(err.contains("interrupted"), "{what}: says it was interrupted: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(!out.exists(), "{what}: {} was written although interrupted", out.display());
    let dir = out.parent().unwrap();
    assert!(temporaries(dir).is_empty(), "{what}: temporary files left: {:?}", temporaries(dir));
}

/// A command whose work is long enough (many seconds) that a signal `after` lands in it;
/// `args(size)` makes its arguments for a work size, doubled on each retry should it finish
/// first anyway, or be writing its output by then (a clear failure after three tries).
fn interrupts_long_work(what: &str, signal: &str, after: Duration, out: &Path, args: impl Fn(usize) -> Vec<String>) {
    let mut size = 1;
    for _ in 0..3 {
        let args = args(size);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match interrupt_after(&args, signal, after) {
            Attempt::Signalled(done) if done.status.code() == Some(130) && out.exists() => {
                // Landed once the output was being written (that write is let finish, and
                // leaves no temporary, as in `interrupts_fixed_work`).
                assert!(temporaries(out.parent().unwrap()).is_empty(), "{what}: temporary files left");
                eprintln!("{what}: the signal landed while the output was written: trying more work");
                remove(out);
                size *= 2;
            }
            Attempt::Signalled(done) => return assert_left_nothing(what, &done, out),
            Attempt::FinishedFirst(done) => {
                eprintln!("{what}: finished within {after:?} (status {:?}), before the signal: trying more work", done.status);
                assert!(done.status.success(), "{what} failed on its own: {}", done.stderr);
                remove(out);
                size *= 2;
            }
        }
    }
    panic!("{what}: finished, or was writing its output, before the signal three times, with more work each time: the test could not interrupt it");
}

/// A command with a fixed amount of work (loading a checkpoint, writing a network): its
/// uninterrupted time (under a second here) is measured first, then it is signalled at
/// fractions of that; one signal that lands before its output is written must leave
/// nothing. A signal that lands once the output is being written lets the write finish
/// (the output is then whole: checked) and one that lands before the handler is installed
/// kills it (no status): both are retried at another moment, a clear failure after all.
fn interrupts_fixed_work(what: &str, signal: &str, out: &Path, args: &[&str], complete: impl Fn(&Path) -> bool) {
    let start = Instant::now();
    let full = common::dynofa(args);
    let took = start.elapsed();
    assert!(full.status.success(), "{what} uninterrupted: {}", common::stderr(&full));
    assert!(complete(out), "{what} uninterrupted wrote {}", out.display());
    let mut outcomes = Vec::new();
    for fraction in [0.3, 0.15, 0.45, 0.08, 0.25, 0.35, 0.2] {
        remove(out);
        let after = took.mul_f64(fraction);
        match interrupt_after(args, signal, after) {
            Attempt::FinishedFirst(done) => outcomes.push(format!("at {after:?}: finished first ({:?})", done.status)),
            Attempt::Signalled(done) if done.status.code() == Some(130) && out.exists() => {
                // Landed while the output was written: whole, and nothing else left.
                assert!(complete(out), "{what}: an interrupt during the write left an incomplete {}", out.display());
                assert!(temporaries(out.parent().unwrap()).is_empty(), "{what}: temporary files left");
                outcomes.push(format!("at {after:?}: landed once the output was being written (it is complete)"));
            }
            Attempt::Signalled(done) if done.status.code().is_none() && after < Duration::from_millis(500) => {
                outcomes.push(format!("at {after:?}: landed before the handler was installed"));
            }
            Attempt::Signalled(done) => return assert_left_nothing(&format!("{what} signalled {after:?} after its start"), &done, out),
        }
    }
    panic!("{what} ({took:?} uninterrupted): no signal landed before its output was written: {outcomes:#?}");
}

/// Removes the file or folder `path` if it is there.
fn remove(path: &Path) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    } else if path.exists() {
        std::fs::remove_file(path).unwrap();
    }
}

fn sample_png() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample.png")
}

const LARGEST: &str = r#"{"ks":[7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7],"e":[6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6],"d":[4,4,4,4,4],"r":[224]}"#;

#[test]
fn calibrate_interrupted_leaves_no_output_nor_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let out = dir.path().join("calibrated");
    // Batches of 8 images through the largest sub-network: several seconds each here.
    interrupts_long_work("calibrate", "INT", Duration::from_secs(3), &out, |size| {
        for i in 0..200 * size {
            let image = images.join(format!("{i:05}.png"));
            if !image.exists() {
                std::fs::copy(sample_png(), image).unwrap();
            }
        }
        ["calibrate", "--subnet", LARGEST, "--data", s(&images), "--batch-size", "8", "--out", s(&out)].map(String::from).to_vec()
    });
}

#[test]
fn search_terminated_leaves_no_family_plot_nor_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let predictor = dynofa_golden::dir().join("acc_predictor.pth");
    let out = dir.path().join("family.ron");
    // A large population over many generations: minutes uninterrupted.
    interrupts_long_work("search", "TERM", Duration::from_secs(3), &out, |size| {
        let population = (2000 * size).to_string();
        ["search", "--predictor", s(&predictor), "--objective", "mflops", "--out", s(&out), "--population", &population, "--generations", "500"]
            .map(String::from)
            .to_vec()
    });
    assert!(!out.with_extension("svg").exists(), "no plot either");
}

#[test]
fn extract_interrupted_leaves_no_network_nor_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dynofa_golden::dir().join("ofa_mbv3_w12_seed0.pth");
    let out = dir.path().join("net");
    let args = ["extract", "--weights", s(&weights), "--subnet", LARGEST, "--out", s(&out)];
    interrupts_fixed_work("extract", "INT", &out, &args, |out| ["net.config", "run.config", "init"].iter().all(|f| out.join(f).is_file()));
}

#[test]
fn convert_interrupted_leaves_no_record_nor_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dynofa_golden::dir().join("ofa_mbv3_w12_seed0.pth");
    let out = dir.path().join("w12.bpk");
    let args = ["convert", "--weights", s(&weights), "--out", s(&out)];
    let device = burn::prelude::Device::flex();
    interrupts_fixed_work("convert", "INT", &out, &args, |out| dynofa_supernet::load_record(out, &device).is_ok());
}

/// The processes whose parent is `pid`, with their command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid …`: the command name may hold spaces and parentheses.
        let Some(ppid) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if ppid == pid {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push((child, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    found
}

/// `Some(state)` while process `pid` exists (`Z` for a zombie nobody reaped yet).
fn process_state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).map(str::to_string)
}

#[test]
fn run_interrupted_stops_its_load_and_writes_trace_plot_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (trace, plot) = (dir.path().join("out/trace.csv"), dir.path().join("out/trace.svg"));
    let summary = trace.with_extension("summary.json");
    let mut run = Running::start(&[
        "run",
        "--target-ms",
        "40",
        "--duration",
        "60",
        "--load",
        "0s-60s:1",
        "--calibrate-iters",
        "1",
        "--trace",
        s(&trace),
        "--plot",
        s(&plot),
    ]);
    // The frames start after the idle calibration, and the load with them.
    let start = Instant::now();
    let workers = loop {
        assert!(run.running(), "the run ended before it was interrupted: {}", run.stderr_so_far());
        let workers: Vec<(u32, String)> = children(run.pid()).into_iter().filter(|(_, cmd)| cmd.contains("load-worker")).collect();
        if run.stderr_so_far().contains("idle calibration:") && !workers.is_empty() {
            break workers;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no frames nor load after 300 s: {}", run.stderr_so_far());
        std::thread::sleep(Duration::from_millis(50));
    };
    // A few frames under the load.
    std::thread::sleep(Duration::from_secs(2));
    assert!(run.running(), "the 60 s run ended early: {}", run.stderr_so_far());
    run.signal("INT");
    let done = run.wait(EXIT_TIMEOUT);
    let err = &done.stderr;
    assert_eq!(done.status.code(), Some(130), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for (pid, cmd) in &workers {
        assert_eq!(process_state(*pid), None, "the load process {pid} ({cmd}) is still there after the run exited");
    }

    let rows = dynofa_runtime::trace::read_csv(&trace).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert!(!rows.is_empty(), "the frames run before the interrupt are in the trace");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.frame, i as u64 + 1, "every frame, in order");
        assert!(row.latency_ms > 0.0 && row.threads >= 1 && row.target_ms == 40.0, "{row:?}");
    }
    assert!(rows.last().unwrap().t_s < 60.0, "stopped before the duration");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(report["summary"]["interrupted"], true, "{report}");
    assert_eq!(report["summary"]["frames"].as_u64(), Some(rows.len() as u64));
    assert_eq!(report["summary"]["skipped_frames"].as_u64(), Some(0));
    let printed: serde_json::Value = serde_json::from_str(done.stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(printed, report, "the summary printed is the one written");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("<svg") && svg.contains("target 40 ms"));
    for path in [&trace, &plot, &summary] {
        assert!(err.contains(s(path)), "stderr names {}: {err}", path.display());
    }
    assert!(err.contains("interrupted"), "{err}");
    assert!(temporaries(trace.parent().unwrap()).is_empty(), "{:?}", temporaries(trace.parent().unwrap()));
}
