//! Efficiency models behind one trait: what a sub-network costs (to be minimised) — LUT
//! latency, measured latency, MFLOPs, parameters.

use dynofa_profiler::LatencyTables;
use dynofa_supernet::{SubnetConfig, SupernetConfig};

use crate::error::Result;

/// A cost of a sub-network (ms, MFLOPs, parameters, …).
pub trait Cost: Sync {
    /// Name and unit, e.g. `latency_ms[nx_gpu]`.
    fn name(&self) -> String;
    /// The cost of `subnet`.
    fn cost(&self, subnet: &SubnetConfig) -> Result<f64>;
}

/// Latency predicted from a device's look-up tables (the summed layers, the rule the
/// published tables and the paper use).
pub struct LutLatency {
    /// Table name (as given on the command line).
    pub name: String,
    /// The supernet the keys are computed for.
    pub config: SupernetConfig,
    /// The tables.
    pub tables: LatencyTables,
}

impl Cost for LutLatency {
    fn name(&self) -> String {
        format!("latency_ms[{}]", self.name)
    }
    fn cost(&self, subnet: &SubnetConfig) -> Result<f64> {
        Ok(self.tables.predict(&self.config, subnet)?)
    }
}

/// OFA's MFLOPs (multiply–adds of conv and linear layers).
pub struct Mflops(pub SupernetConfig);

impl Cost for Mflops {
    fn name(&self) -> String {
        "mflops".into()
    }
    fn cost(&self, subnet: &SubnetConfig) -> Result<f64> {
        Ok(self.0.counts(subnet)?.mflops)
    }
}

/// Parameters of the extracted sub-network.
pub struct Params(pub SupernetConfig);

impl Cost for Params {
    fn name(&self) -> String {
        "params".into()
    }
    fn cost(&self, subnet: &SubnetConfig) -> Result<f64> {
        Ok(self.0.counts(subnet)?.params as f64)
    }
}

/// Latency measured on this machine: the sub-network's forward where `placement` puts it
/// (the CPU's fast path on some threads, or a GPU; one image, median of `iters` after
/// warm-up), each sub-network measured once and cached. Measurements never overlap (a
/// lock), so parallel searches do not disturb them; still slow — for small searches and
/// for checking a front, not for 10⁵ candidates.
pub struct MeasuredLatency {
    supernet: dynofa_supernet::Supernet,
    placement: dynofa_slice::Placement,
    iters: usize,
    cache: std::sync::Mutex<std::collections::HashMap<SubnetConfig, f64>>,
}

impl MeasuredLatency {
    /// Measures at `placement`, `iters` timed forwards per sub-network.
    pub fn new(supernet: dynofa_supernet::Supernet, placement: dynofa_slice::Placement, iters: usize) -> Self {
        MeasuredLatency { supernet, placement, iters: iters.max(1), cache: Default::default() }
    }
}

impl Cost for MeasuredLatency {
    fn name(&self) -> String {
        match &self.placement {
            dynofa_slice::Placement::Cpu { threads } => format!("measured_ms[{threads} threads]"),
            dynofa_slice::Placement::Gpu(_) => "measured_ms[gpu]".to_string(),
        }
    }
    fn cost(&self, subnet: &SubnetConfig) -> Result<f64> {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&ms) = cache.get(subnet) {
            return Ok(ms);
        }
        let mut family = self.placement.load(&self.supernet, std::slice::from_ref(subnet), &[])?;
        let image = dynofa_profiler::measure::test_image(subnet.resolution());
        let ms = family.median_forward_ms(&image, 2, self.iters)?;
        cache.insert(subnet.clone(), ms);
        Ok(ms)
    }
}
