//! What the runtime watches: the DNN's own latency, and the resources the OS leaves it.

pub mod latency;
pub mod system;

pub use latency::LatencyWindow;
pub use system::{SystemMonitor, SystemSample};
