//! `--device cpu|gpu|gpu:N`: which processor a command runs on.

use anyhow::Result;
use dynofa_device::{Adapter, DeviceId};
use dynofa_slice::Placement;

/// Parses `--device`.
pub fn parse_device(text: &str) -> Result<DeviceId, String> {
    text.parse().map_err(|e: dynofa_device::Error| e.to_string())
}

/// The processor `id` names, opened: the CPU on up to `threads` threads, or the GPU
/// adapter (named on stderr, with a note when it is a software one).
pub fn open(id: DeviceId, threads: usize) -> Result<(Placement, Option<Adapter>)> {
    match id {
        DeviceId::Cpu => Ok((Placement::Cpu { threads }, None)),
        DeviceId::Gpu(_) => {
            let gpu = dynofa_device::open_gpu(id)?;
            eprintln!("{id}: {}", gpu.adapter.describe());
            if gpu.adapter.kind == dynofa_device::AdapterKind::Software {
                eprintln!("note: {id} is a software Vulkan driver (it runs on the CPU): correct, and slow");
            }
            Ok((Placement::Gpu(gpu.device), Some(gpu.adapter)))
        }
    }
}
