//! Criterion benchmarks of dynofa live in this folder, one file per subject:
//!
//! - `supernet_forward.rs`: the dynamic (Burn reference) forward of the w1.2 supernet's
//!   smallest, a middle and the largest sub-network at batch 1.
