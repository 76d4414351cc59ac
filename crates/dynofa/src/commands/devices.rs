//! `dynofa devices`: the processors this machine offers, as JSON — the CPU, and each GPU
//! adapter (`gpu:N`, the id `--device` takes).

use anyhow::Result;
use dynofa_profiler::machine::Machine;
use serde::Serialize;

/// Arguments of `dynofa devices` (none).
#[derive(clap::Args, Debug)]
pub struct Args {}

/// One processor, as listed.
#[derive(Serialize)]
struct Entry {
    id: String,
    name: String,
    kind: String,
    backend: String,
    driver: String,
}

/// Prints one JSON entry per processor: `id`, `name`, `kind`, `backend`, `driver`.
pub fn run(_: Args) -> Result<()> {
    let machine = Machine::this();
    let cpu = Entry {
        id: "cpu".into(),
        name: machine.cpu_model.unwrap_or_else(|| machine.arch.clone()),
        kind: "cpu".into(),
        backend: "dynofa fast path".into(),
        driver: format!("{}, {} cores", dynofa_kernels::Isa::best().name(), machine.cores),
    };
    let adapters = dynofa_device::adapters();
    let mut all = vec![cpu];
    all.extend(adapters.iter().map(|a| Entry {
        id: a.id.clone(),
        name: a.name.clone(),
        kind: a.kind.to_string(),
        backend: a.backend.clone(),
        driver: a.driver.clone(),
    }));
    println!("{}", serde_json::to_string_pretty(&all)?);
    if !dynofa_device::GPU_SUPPORT {
        eprintln!("note: this dynofa was built without GPU support (build it with `--features wgpu` to list GPU adapters)");
    } else if adapters.is_empty() {
        eprintln!("note: no GPU adapter found (Vulkan): install the GPU's Vulkan driver, or Mesa's lavapipe (`apt install mesa-vulkan-drivers libvulkan1`)");
    }
    Ok(())
}
