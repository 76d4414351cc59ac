//! Resources the OS leaves the DNN, sampled by a background thread (off the hot path):
//! CPU time used by other processes (`/proc/stat` minus our own `/proc/self/stat`), the
//! cores the affinity mask allows, the current CPU frequency and available memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One reading of the machine's state.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SystemSample {
    /// CPU used by other processes over the last period, in cores (0 to `cores`).
    pub others_cpu: f64,
    /// CPU used by this process over the last period, in cores.
    pub own_cpu: f64,
    /// Cores this process may run on (affinity mask and CPU quota).
    pub allowed_cores: usize,
    /// Current frequency of the first CPU in MHz, where cpufreq is exposed.
    pub cpu_mhz: Option<f64>,
    /// Available memory in MiB, where `/proc/meminfo` is readable.
    pub available_mib: Option<f64>,
}

/// Samples [`SystemSample`]s every `period` on a thread of its own; readers get the latest.
pub struct SystemMonitor {
    latest: Arc<Mutex<SystemSample>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SystemMonitor {
    /// Starts sampling every `period` (the first sample is taken before this returns).
    pub fn start(period: Duration) -> Self {
        let mut counters = CpuCounters::read();
        let latest = Arc::new(Mutex::new(SystemSample { allowed_cores: allowed_cores(), ..SystemSample::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (latest, stop) = (latest.clone(), stop.clone());
            std::thread::Builder::new()
                .name("dynofa-monitor".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(period);
                        let now = CpuCounters::read();
                        let sample = sample_between(counters.as_ref(), now.as_ref());
                        counters = now;
                        *latest.lock().unwrap_or_else(|e| e.into_inner()) = sample;
                    }
                })
                .ok()
        };
        SystemMonitor { latest, stop, thread }
    }

    /// The latest sample.
    pub fn latest(&self) -> SystemSample {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SystemMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Cumulative CPU counters, in clock ticks.
#[derive(Debug, Clone, Copy)]
struct CpuCounters {
    /// Every CPU's busy ticks (all but idle and iowait), summed.
    busy: u64,
    /// Every CPU's ticks, summed.
    total: u64,
    /// This process's user + system ticks.
    own: u64,
    /// CPUs counted in `/proc/stat`.
    cpus: usize,
}

impl CpuCounters {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        let (busy, total) = parse_cpu_line(stat.lines().next()?)?;
        let cpus = stat.lines().filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)).count();
        Some(CpuCounters { busy, total, own: parse_own_ticks(&own)?, cpus: cpus.max(1) })
    }
}

/// `(busy, total)` ticks of the aggregate `cpu` line of `/proc/stat`.
fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.map(str::parse).collect::<std::result::Result<_, _>>().ok()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// utime + stime of `/proc/self/stat` (fields 14 and 15; the name in parentheses may hold spaces).
fn parse_own_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3 (state): utime is field 14 → index 11.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn sample_between(before: Option<&CpuCounters>, after: Option<&CpuCounters>) -> SystemSample {
    let mut sample = SystemSample { allowed_cores: allowed_cores(), cpu_mhz: cpu_mhz(), available_mib: available_mib(), ..SystemSample::default() };
    if let (Some(b), Some(a)) = (before, after) {
        let total = a.total.saturating_sub(b.total) as f64;
        if total > 0.0 {
            // Ticks are summed over CPUs: a share of `total` times the CPU count is cores.
            let cores = a.cpus as f64;
            let busy = a.busy.saturating_sub(b.busy) as f64 / total * cores;
            let own = a.own.saturating_sub(b.own) as f64 / total * cores;
            sample.own_cpu = own.min(cores);
            sample.others_cpu = (busy - own).clamp(0.0, cores);
        }
    }
    sample
}

/// Cores this process may use (affinity mask, cgroup quota).
pub fn allowed_cores() -> usize {
    dynofa_device::host::cores()
}

/// The first CPU's clock frequency, MHz.
fn cpu_mhz() -> Option<f64> {
    dynofa_device::host::cpu0_mhz()
}

fn available_mib() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_and_self_stat() {
        let (busy, total) = parse_cpu_line("cpu  100 5 50 800 20 3 2 0 0 0").unwrap();
        assert_eq!((busy, total), (160, 980));
        assert!(parse_cpu_line("cpu0 1 2 3 4").is_none());
        let own = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 42 8 0 0 20 0 3 0";
        assert_eq!(parse_own_ticks(own), Some(50));
    }

    #[test]
    fn others_cpu_is_busy_minus_own() {
        let before = CpuCounters { busy: 0, total: 0, own: 0, cpus: 2 };
        // Two CPUs for 100 ticks each: 200 ticks; 150 busy, 50 of them ours.
        let after = CpuCounters { busy: 150, total: 200, own: 50, cpus: 2 };
        let s = sample_between(Some(&before), Some(&after));
        assert!((s.others_cpu - 1.0).abs() < 1e-12 && (s.own_cpu - 0.5).abs() < 1e-12);
    }

    #[test]
    fn monitor_sees_a_busy_thread() {
        let monitor = SystemMonitor::start(Duration::from_millis(50));
        assert!(monitor.latest().allowed_cores >= 1);
        // Our own busy thread counts as ours, not as others'.
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop()
                }
            })
        };
        std::thread::sleep(Duration::from_millis(600));
        let s = monitor.latest();
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
        // Whatever else the machine runs, the spinner's share is ours (a loaded machine
        // may leave it little: only its sign is checked).
        assert!(s.own_cpu >= 0.1, "{s:?}");
    }
}
