//! Criterion benchmarks of dynofa live in this folder, one file per subject:
//!
//! - `supernet_forward.rs`: the dynamic (Burn reference) forward of the w1.2 supernet's
//!   smallest, a middle and the largest sub-network at batch 1.
//! - `family_store.rs`: switching levels in the shared-weight family store, a level's
//!   forward against the same network extracted as a static Burn network.
//! - `kernels.rs`: the CPU kernels (1×1 products, depthwise, fused separable) on the
//!   largest sub-network's shapes, for every instruction set this CPU runs, next to a
//!   plain GEMM from the `gemm` crate as the machine's baseline.
//! - `gpu_family.rs`: on the first GPU adapter, a level as the GPU family runs it (its own
//!   folded network, resident) against the supernet's shared weights sliced on the device
//!   and the static network's convolutions, at batch 1 and 8; switching levels there.
