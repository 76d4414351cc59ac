//! Efficiency models behind one trait: what a sub-network costs (to be minimised).

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
