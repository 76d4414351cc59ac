//! Criterion benchmarks of dynofa live in this folder, one file per subject:
//!
//! - `supernet_forward.rs`: the dynamic (Burn reference) forward of the w1.2 supernet's
//!   smallest, a middle and the largest sub-network at batch 1.
//! - `family_store.rs`: switching levels in the shared-weight family store, a level's
//!   forward against the same network extracted as a static Burn network.
