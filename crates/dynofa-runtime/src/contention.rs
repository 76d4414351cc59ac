//! Competing load on a schedule: real processes started and stopped at given times, as
//! other applications come and go on a board.
//!
//! A spec is a comma-separated list of windows `START-END:KIND[/PERIOD]`, times in seconds
//! (`5s`, `5`, `1.5s`) or milliseconds (`500ms`); `KIND` is a number of busy threads (`2`:
//! compute contention), `mem` / `mem:T` (`T` threads streaming a buffer several times the
//! last-level cache, STREAM's triad: memory-bandwidth contention, default 1 thread), `dnn`
//! / `dnn:T` (a second inference process on `T` threads, default 1: the paper's "another
//! DNN application") or `gpu` / `gpu:N` (a second process running inference on the GPU —
//! the best adapter, or adapter N — in a loop: the paper's Fig. 7 load). `/PERIOD` makes
//! the window intermittent: on for PERIOD, off for PERIOD, and so on until END (each pulse
//! starts its process afresh: a `dnn` or `gpu` process loads the machine only once it has
//! built its network, a second or more — `dynofa experiment` pauses and resumes one
//! process instead).
//! Example: `5s-14s:2,20s-25s:dnn,30s-40s:mem:2/2s`.

use std::process::{Child, Command};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// What runs during a load window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    /// Threads spinning on the CPU.
    Busy {
        /// How many.
        threads: usize,
    },
    /// Threads streaming through memory (STREAM's triad over a buffer several times the
    /// last-level cache).
    Memory {
        /// How many.
        threads: usize,
    },
    /// Another DNN inference process.
    Dnn {
        /// Threads it runs on.
        threads: usize,
    },
    /// Another process running DNN inference on a GPU (adapter `gpu:N`, or the best one).
    Gpu {
        /// The adapter (`None`: the best one).
        adapter: Option<usize>,
    },
}

/// One window of load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadWindow {
    /// Start, seconds after the run starts.
    pub start_s: f64,
    /// End, seconds after the run starts.
    pub end_s: f64,
    /// What runs.
    pub kind: LoadKind,
}

/// A load schedule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadSpec {
    /// Windows in the order given.
    pub windows: Vec<LoadWindow>,
}

const SYNTAX: &str = "START-END:KIND[/PERIOD][,…], e.g. 5s-14s:2 (two busy threads), 5s-14s:mem:2 (two threads streaming memory), 3s-6s:dnn:1 (another inference process), 5s-14s:gpu (another inference process on the GPU) or 5s-14s:2/2s (two busy threads, on and off every 2 s)";

impl FromStr for LoadSpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid("load spec", text, format!("{why}; expected {SYNTAX}"));
        let mut windows = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (span, kind) = part.split_once(':').ok_or_else(|| bad("no ':KIND'"))?;
            let (kind, period_s) = match kind.split_once('/') {
                Some((kind, period)) => (kind, Some(seconds(period).filter(|&p| p > 0.0).ok_or_else(|| bad("bad PERIOD"))?)),
                None => (kind, None),
            };
            let (start, end) = span.split_once('-').ok_or_else(|| bad("no START-END"))?;
            let (start_s, end_s) = (seconds(start).ok_or_else(|| bad("bad START"))?, seconds(end).ok_or_else(|| bad("bad END"))?);
            if end_s <= start_s {
                return Err(bad("END must come after START"));
            }
            let threads = |t: &str| t.parse::<usize>().ok().filter(|&t| t > 0).ok_or_else(|| bad("thread count must be a positive integer"));
            let kind = match kind.split_once(':') {
                Some(("dnn", t)) => LoadKind::Dnn { threads: threads(t)? },
                Some(("mem", t)) => LoadKind::Memory { threads: threads(t)? },
                Some(("gpu", n)) => LoadKind::Gpu { adapter: Some(n.parse().map_err(|_| bad("gpu:N takes an adapter index"))?) },
                None if kind == "dnn" => LoadKind::Dnn { threads: 1 },
                None if kind == "mem" => LoadKind::Memory { threads: 1 },
                None if kind == "gpu" => LoadKind::Gpu { adapter: None },
                None => LoadKind::Busy { threads: threads(kind)? },
                Some(_) => return Err(bad("KIND is a thread count, mem, mem:T, dnn, dnn:T, gpu or gpu:N")),
            };
            match period_s {
                None => windows.push(LoadWindow { start_s, end_s, kind }),
                Some(period) => {
                    if (end_s - start_s) / period > 10_000.0 {
                        return Err(bad("PERIOD too short for the window (over 10000 pulses)"));
                    }
                    let mut on = start_s;
                    while on < end_s {
                        windows.push(LoadWindow { start_s: on, end_s: (on + period).min(end_s), kind });
                        on += 2.0 * period;
                    }
                }
            }
        }
        if windows.is_empty() {
            return Err(bad("no window"));
        }
        Ok(LoadSpec { windows })
    }
}

/// `5s`, `5`, `1.5s`, `500ms` → seconds.
fn seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix("ms") {
        Some(n) => (n, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value * scale)
}

impl LoadSpec {
    /// Whether some window is active at `t_s`.
    pub fn active_at(&self, t_s: f64) -> bool {
        self.windows.iter().any(|w| (w.start_s..w.end_s).contains(&t_s))
    }
}

/// Starts and stops the load processes on schedule, on a thread of its own; everything
/// still running is killed when it is dropped.
pub struct LoadRunner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl LoadRunner {
    /// Starts `spec` now; `command(kind)` builds the process of a window.
    pub fn start(spec: LoadSpec, command: impl Fn(&LoadKind) -> Command + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new().name("dynofa-load".into()).spawn(move || drive(&spec, &command, &stop)).ok()
        };
        LoadRunner { stop, thread }
    }

    /// Stops the schedule, kills the processes still running and waits for them (none is
    /// left running, nor unreaped), and reports whether any failed to start.
    pub fn finish(mut self) -> Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| Error::Load("the load thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for LoadRunner {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

fn drive(spec: &LoadSpec, command: &dyn Fn(&LoadKind) -> Command, stop: &AtomicBool) -> Result<()> {
    let start = Instant::now();
    let mut running: Vec<Option<Child>> = spec.windows.iter().map(|_| None).collect();
    let mut started = vec![false; spec.windows.len()];
    let mut outcome = Ok(());
    while !stop.load(Ordering::Relaxed) {
        let t = start.elapsed().as_secs_f64();
        for (i, window) in spec.windows.iter().enumerate() {
            if !started[i] && t >= window.start_s && t < window.end_s {
                started[i] = true;
                match command(&window.kind).spawn() {
                    Ok(child) => running[i] = Some(child),
                    Err(e) => outcome = Err(Error::Load(format!("cannot start {:?}: {e}", window.kind))),
                }
            }
            if t >= window.end_s
                && let Some(mut child) = running[i].take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for mut child in running.into_iter().flatten() {
        let _ = child.kill();
        let _ = child.wait();
    }
    outcome
}

/// Spins `threads` threads until the process is killed or its parent exits (the `busy` load).
pub fn spin_forever(threads: usize) -> ! {
    exit_with_parent();
    for _ in 1..threads.max(1) {
        std::thread::spawn(|| {
            loop {
                std::hint::spin_loop();
            }
        });
    }
    loop {
        std::hint::spin_loop();
    }
}

/// Bytes the memory load streams through: four times the last-level cache (at least
/// 64 MiB), so that every pass goes to DRAM.
pub fn memory_load_bytes() -> usize {
    (4 * last_level_cache_bytes().unwrap_or(32 << 20)).max(64 << 20)
}

/// The largest CPU cache's size, from `/sys/devices/system/cpu/cpu0/cache` (Linux).
pub fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|entry| {
        let text = std::fs::read_to_string(entry.ok()?.path().join("size")).ok()?;
        let text = text.trim();
        let (number, scale) = match text.strip_suffix('K') {
            Some(n) => (n, 1 << 10),
            None => match text.strip_suffix('M') {
                Some(n) => (n, 1 << 20),
                None => (text, 1),
            },
        };
        number.parse::<usize>().ok().map(|n| n * scale)
    })
    .max()
}

/// One pass of STREAM's triad, `a[i] = b[i] + 3·c[i]`, over `buffer` split in three
/// arrays: 2 reads and 1 write per element, no reuse (the memory load's kernel).
pub fn stream_triad(buffer: &mut [f64]) {
    let n = buffer.len() / 3;
    let (a, rest) = buffer.split_at_mut(n);
    let (b, c) = rest.split_at(n);
    for ((a, b), c) in a.iter_mut().zip(b).zip(&c[..n]) {
        *a = b + 3.0 * c;
    }
    std::hint::black_box(&buffer);
}

/// Streams `threads` buffers of [`memory_load_bytes`] / `threads` bytes each through
/// [`stream_triad`] until `stop` is set.
pub fn stream_until(threads: usize, stop: &AtomicBool) {
    let per_thread = memory_load_bytes() / threads.max(1) / std::mem::size_of::<f64>();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut buffer = vec![1.0f64; per_thread];
                while !stop.load(Ordering::Relaxed) {
                    stream_triad(&mut buffer);
                }
            });
        }
    });
}

/// Streams memory on `threads` threads until the process is killed or its parent exits
/// (the `mem` load).
pub fn stream_forever(threads: usize) -> ! {
    exit_with_parent();
    stream_until(threads, &AtomicBool::new(false));
    unreachable!("the memory load streams until the process ends")
}

/// Ends this process when its parent does (checked every 100 ms on a thread of its own),
/// so that load processes never outlive a run that was interrupted.
pub fn exit_with_parent() {
    // On Linux the kernel also kills it when the parent dies — even while it is stopped
    // (SIGSTOP), when the polling thread below cannot run.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    }
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(100));
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(0);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_load_specs() {
        let spec: LoadSpec = "5s-14s:2, 500ms-1.5s:dnn, 20-25:dnn:2, 30s-40s:gpu, 41-42:gpu:1".parse().unwrap();
        assert_eq!(spec.windows[0], LoadWindow { start_s: 5.0, end_s: 14.0, kind: LoadKind::Busy { threads: 2 } });
        assert_eq!(spec.windows[1], LoadWindow { start_s: 0.5, end_s: 1.5, kind: LoadKind::Dnn { threads: 1 } });
        assert_eq!(spec.windows[2].kind, LoadKind::Dnn { threads: 2 });
        assert_eq!(spec.windows[3].kind, LoadKind::Gpu { adapter: None });
        assert_eq!(spec.windows[4].kind, LoadKind::Gpu { adapter: Some(1) });
        assert!(spec.active_at(6.0) && !spec.active_at(15.0));
        let spec: LoadSpec = "1s-2s:mem, 3-4:mem:2".parse().unwrap();
        assert_eq!(spec.windows[0].kind, LoadKind::Memory { threads: 1 });
        assert_eq!(spec.windows[1].kind, LoadKind::Memory { threads: 2 });
        // Intermittent: on 2 s, off 2 s, on 2 s, off 1 s.
        let spec: LoadSpec = "4s-11s:2/2s".parse().unwrap();
        let spans: Vec<(f64, f64)> = spec.windows.iter().map(|w| (w.start_s, w.end_s)).collect();
        assert_eq!(spans, [(4.0, 6.0), (8.0, 10.0)]);
        assert!(spec.active_at(5.0) && !spec.active_at(7.0) && spec.active_at(9.0) && !spec.active_at(10.5));
        for bad in [
            "",
            "5s-14s",
            "14s-5s:2",
            "5s-14s:0",
            "5s-14s:x",
            "a-b:2",
            "5s:2",
            "1-2:tpu:3",
            "1-2:gpu:x",
            "1-2:gpu:",
            "1-2:mem:0",
            "1-2:2/0s",
            "1-2:2/x",
            "0-100000:2/1ms",
        ] {
            let err = bad.parse::<LoadSpec>().unwrap_err().to_string();
            assert!(err.contains("load spec"), "{bad}: {err}");
        }
    }

    #[test]
    fn runs_and_stops_processes_on_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("started");
        // A wide window and a poll, not fixed sleeps: a loaded host may oversleep by far.
        let spec: LoadSpec = "300ms-20s:1".parse().unwrap();
        let m = marker.clone();
        let before_start = Instant::now();
        let runner = LoadRunner::start(spec, move |_| {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("touch {} && sleep 30", m.display())]);
            c
        });
        while !marker.exists() && before_start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let appeared = before_start.elapsed();
        assert!(marker.exists(), "started in its window");
        assert!(appeared >= Duration::from_millis(300), "not before its start: after {appeared:?}");
        let t = Instant::now();
        runner.finish().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "killed, not waited for");
    }
}
