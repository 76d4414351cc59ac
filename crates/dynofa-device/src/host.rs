//! Facts about the machine this process runs on, read from Linux (`/proc`, `/sys`) in
//! one place: the CPU's model, the cores this process may use, and the clock frequencies
//! cpufreq shows. Each is `None` (or empty) where the system does not show it.

/// The CPU's `model name` in `/proc/cpuinfo` (`Model` on some aarch64 boards).
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name") || l.starts_with("Model"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// Cores this process may use (affinity mask, cgroup quota); at least one.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Current clock frequency of every CPU `/sys` shows, MHz, in CPU order (empty where it
/// shows none, as in most virtual machines).
pub fn cpu_mhz() -> Vec<f64> {
    let Ok(listing) = std::fs::read_dir("/sys/devices/system/cpu") else { return Vec::new() };
    let mut mhz: Vec<(usize, f64)> = listing
        .flatten()
        .filter_map(|cpu| {
            let index = cpu.file_name().to_str()?.strip_prefix("cpu")?.parse::<usize>().ok()?;
            Some((index, khz(&cpu.path().join("cpufreq/scaling_cur_freq"))? / 1e3))
        })
        .collect();
    mhz.sort_by_key(|&(index, _)| index);
    mhz.into_iter().map(|(_, m)| m).collect()
}

/// cpu0's current clock frequency, MHz (one file: what a monitor sampling beside a
/// timed network reads).
pub fn cpu0_mhz() -> Option<f64> {
    Some(khz(std::path::Path::new("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"))? / 1e3)
}

/// cpu0's `scaling_governor`.
pub fn governor() -> Option<String> {
    Some(std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").ok()?.trim().to_string())
}

/// cpu0's highest frequency (`cpuinfo_max_freq`), MHz.
pub fn max_mhz() -> Option<f64> {
    Some(khz(std::path::Path::new("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))? / 1e3)
}

/// A cpufreq file's value in kHz.
fn khz(path: &std::path::Path) -> Option<f64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_machine_is_described_consistently() {
        assert!(super::cores() >= 1);
        // What cpufreq shows (nothing in most VMs) is a plausible frequency per CPU.
        let mhz = super::cpu_mhz();
        assert!(mhz.len() <= 4096 && mhz.iter().all(|&m| m > 1.0 && m < 20_000.0), "{mhz:?}");
        if let Some(model) = super::cpu_model() {
            assert!(!model.is_empty() && model.trim() == model, "{model:?}");
        }
    }
}
