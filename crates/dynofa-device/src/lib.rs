//! # dynofa-device
//!
//! The processors dynofa runs networks on, named as users write them: `cpu` (dynofa's own
//! kernels), `gpu` (the best GPU adapter found) and `gpu:N` (the N-th adapter of
//! [`adapters`]). GPUs are reached through Burn's wgpu backend on Vulkan — the API that
//! Linux boards with GPUs (Jetson included) and Mesa's software driver (lavapipe) share —
//! when the crate is built with the `wgpu` feature.
//!
//! - [`Processor`]: what a family of sub-networks is for (a family file's `device`).
//! - [`DeviceId`]: `cpu`, `gpu`, `gpu:N`, parsed and printed.
//! - [`adapters`] and [`open_gpu`]: the GPU adapters this machine has, and one of them as
//!   a Burn [`Device`].
//! - [`host`]: facts about the machine this process runs on (CPU model, cores, clock
//!   frequencies), read from Linux in one place.
//! - [`cache_dir`]: where what is made once per machine is kept (GPU families, and with
//!   the `gpu-autotune` feature the kernels' autotune results).
//!
//! Depends on Burn only; the slicing, profiler, runtime and CLI crates use it.

pub mod host;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

/// A kind of processor: what a family of sub-networks was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Processor {
    /// The CPU (dynofa's fast path).
    #[default]
    Cpu,
    /// A GPU (Burn's wgpu backend).
    Gpu,
}

impl fmt::Display for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Processor::Cpu => "cpu",
            Processor::Gpu => "gpu",
        })
    }
}

/// A processor as users name it: `cpu`, `gpu` (the best adapter) or `gpu:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceId {
    /// The CPU.
    Cpu,
    /// A GPU adapter: the N-th of [`adapters`], or the best one when `None`.
    Gpu(Option<usize>),
}

impl DeviceId {
    /// The kind of processor.
    pub fn processor(&self) -> Processor {
        match self {
            DeviceId::Cpu => Processor::Cpu,
            DeviceId::Gpu(_) => Processor::Gpu,
        }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceId::Cpu => f.write_str("cpu"),
            DeviceId::Gpu(None) => f.write_str("gpu"),
            DeviceId::Gpu(Some(i)) => write!(f, "gpu:{i}"),
        }
    }
}

impl FromStr for DeviceId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim() {
            "cpu" => Ok(DeviceId::Cpu),
            "gpu" => Ok(DeviceId::Gpu(None)),
            other => other.strip_prefix("gpu:").and_then(|n| n.parse().ok()).map(|n| DeviceId::Gpu(Some(n))).ok_or_else(|| Error::Parse(text.to_string())),
        }
    }
}

/// What kind of GPU adapter the driver says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// A GPU of its own.
    Discrete,
    /// A GPU sharing the CPU's memory (Jetson boards, laptops).
    Integrated,
    /// A GPU handed to a virtual machine.
    Virtual,
    /// A driver that runs on the CPU (Mesa's lavapipe): correct, and slow.
    Software,
    /// Anything else the driver reports.
    Other,
}

impl fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdapterKind::Discrete => "discrete",
            AdapterKind::Integrated => "integrated",
            AdapterKind::Virtual => "virtual",
            AdapterKind::Software => "software",
            AdapterKind::Other => "other",
        })
    }
}

impl AdapterKind {
    /// Preference of `gpu` among the adapters found: lower first.
    fn rank(self) -> u8 {
        match self {
            AdapterKind::Discrete => 0,
            AdapterKind::Integrated => 1,
            AdapterKind::Virtual => 2,
            AdapterKind::Other => 3,
            AdapterKind::Software => 4,
        }
    }
}

/// One GPU adapter, as `dynofa devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adapter {
    /// `gpu:N`.
    pub id: String,
    /// The adapter's name (`NVIDIA H200`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// Discrete, integrated, virtual, software or other.
    pub kind: AdapterKind,
    /// Graphics API (`vulkan`).
    pub backend: String,
    /// Driver name and version, as the driver gives them.
    pub driver: String,
}

impl Adapter {
    /// `gpu:0 llvmpipe (…) [software, vulkan, llvmpipe Mesa 22.3.6]`.
    pub fn describe(&self) -> String {
        format!("{} {} [{}, {}, {}]", self.id, self.name, self.kind, self.backend, self.driver)
    }
}

/// Errors naming the device asked for and what was found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not `cpu`, `gpu` or `gpu:N`.
    #[error("invalid device '{0}': expected cpu, gpu or gpu:N")]
    Parse(String),
    /// The build has no GPU backend.
    #[error("{requested}: this dynofa was built without GPU support (build it with `--features wgpu`)")]
    NoGpuSupport {
        /// The device asked for.
        requested: String,
    },
    /// No GPU adapter, or not the one asked for.
    #[error("{requested}: {problem}; found: {found}")]
    NotFound {
        /// The device asked for.
        requested: String,
        /// What is missing.
        problem: String,
        /// Every processor found (the CPU and each adapter).
        found: String,
    },
    /// The GPU backend failed to start on the adapter.
    #[error("{requested} ({name}): the GPU backend did not start: {message}")]
    Init {
        /// The device asked for.
        requested: String,
        /// The adapter's name.
        name: String,
        /// The backend's message.
        message: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Whether this build can run networks on GPUs.
pub const GPU_SUPPORT: bool = cfg!(feature = "wgpu");

/// dynofa's cache directory: `$DYNOFA_CACHE_DIR`, else `$XDG_CACHE_HOME/dynofa`, else
/// `~/.cache/dynofa`.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("DYNOFA_CACHE_DIR").or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("dynofa"))).or_else(|| env("HOME").map(|d| d.join(".cache/dynofa")))
}

/// A GPU adapter opened as a Burn device.
#[derive(Debug, Clone)]
pub struct Gpu {
    /// The adapter.
    pub adapter: Adapter,
    /// Its Burn device (Vulkan).
    pub device: Device,
}

/// The GPU adapters this machine has (Vulkan), in the driver's order: `gpu:N` is the N-th.
/// Empty when the build has no GPU support or no Vulkan driver is installed.
pub fn adapters() -> Vec<Adapter> {
    backend::adapters().into_iter().map(|(adapter, _)| adapter).collect()
}

/// Opens `id` (a GPU) as a Burn device. `gpu` is the first discrete adapter, else
/// integrated, virtual, other, software — in that order of preference.
pub fn open_gpu(id: DeviceId) -> Result<Gpu> {
    let (adapter, selector) = select(id)?;
    let device = backend::open(&selector).map_err(|message| Error::Init { requested: id.to_string(), name: adapter.name.clone(), message })?;
    Ok(Gpu { adapter, device })
}

/// The adapter `id` (a GPU) names, as [`open_gpu`] chooses it, without opening it.
pub fn find_gpu(id: DeviceId) -> Result<Adapter> {
    select(id).map(|(adapter, _)| adapter)
}

/// The adapter `id` names and how the backend selects it; an error that lists what there
/// is when it is not there.
fn select(id: DeviceId) -> Result<(Adapter, backend::Selector)> {
    let requested = id.to_string();
    let index = match id {
        DeviceId::Cpu => return Err(Error::NotFound { requested, problem: "not a GPU".into(), found: found(&adapters()) }),
        DeviceId::Gpu(index) => index,
    };
    if !GPU_SUPPORT {
        return Err(Error::NoGpuSupport { requested });
    }
    let listed = backend::adapters();
    let adapters: Vec<Adapter> = listed.iter().map(|(a, _)| a.clone()).collect();
    let chosen = match index {
        Some(i) => listed.get(i),
        None => listed.iter().min_by_key(|(a, _)| a.kind.rank()),
    };
    let Some(chosen) = chosen else {
        let problem = match (index, adapters.len()) {
            (_, 0) => "no GPU adapter (is a Vulkan driver installed? a GPU's, or Mesa's lavapipe: `apt install mesa-vulkan-drivers libvulkan1`)".to_string(),
            (Some(i), 1) => format!("no adapter {i}: there is one (gpu:0)"),
            (Some(i), n) => format!("no adapter {i}: there are {n} (gpu:0…gpu:{})", n - 1),
            (None, _) => unreachable!("some adapter is the best when there is one"),
        };
        return Err(Error::NotFound { requested, problem, found: found(&adapters) });
    };
    Ok(chosen.clone())
}

/// `cpu, gpu:0 llvmpipe (…) [software, vulkan, …]` — what a device error lists.
fn found(adapters: &[Adapter]) -> String {
    let mut all = vec!["cpu".to_string()];
    all.extend(adapters.iter().map(Adapter::describe));
    if adapters.is_empty() {
        all.push(if GPU_SUPPORT { "no GPU adapter".into() } else { "no GPU support in this build".into() });
    }
    all.join(", ")
}

#[cfg(feature = "wgpu")]
mod backend {
    //! Vulkan adapters through the wgpu crate that Burn's backend uses, and the Burn
    //! device of each (by kind and index within its kind, as cubecl selects them).

    use std::sync::Mutex;

    use burn::prelude::Device;
    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::{WgpuBackend, wgpu};

    use super::{Adapter, AdapterKind};

    /// How Burn addresses an adapter: its kind and index among adapters of that kind.
    /// `None` where Burn has no selector for it (a second software adapter, an `Other`).
    pub type Selector = Option<DeviceKind>;

    pub fn adapters() -> Vec<(Adapter, Selector)> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor { backends: wgpu::Backends::VULKAN, ..wgpu::InstanceDescriptor::new_without_display_handle() });
        let found = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
        let mut per_kind = [0usize; 5];
        found
            .iter()
            .enumerate()
            .map(|(i, adapter)| {
                let info = adapter.get_info();
                let (kind, slot) = match info.device_type {
                    wgpu::DeviceType::DiscreteGpu => (AdapterKind::Discrete, 0),
                    wgpu::DeviceType::IntegratedGpu => (AdapterKind::Integrated, 1),
                    wgpu::DeviceType::VirtualGpu => (AdapterKind::Virtual, 2),
                    wgpu::DeviceType::Cpu => (AdapterKind::Software, 3),
                    wgpu::DeviceType::Other => (AdapterKind::Other, 4),
                };
                let n = per_kind[slot];
                per_kind[slot] += 1;
                let selector = match kind {
                    AdapterKind::Discrete => Some(DeviceKind::DiscreteGpu(n)),
                    AdapterKind::Integrated => Some(DeviceKind::IntegratedGpu(n)),
                    AdapterKind::Virtual => Some(DeviceKind::VirtualGpu(n)),
                    AdapterKind::Software if n == 0 => Some(DeviceKind::Cpu),
                    _ => None,
                };
                let driver = [info.driver.as_str(), info.driver_info.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ");
                let adapter = Adapter { id: format!("gpu:{i}"), name: info.name.clone(), kind, backend: format!("{:?}", info.backend).to_lowercase(), driver };
                (adapter, selector)
            })
            .collect()
    }

    pub fn open(selector: &Selector) -> Result<Device, String> {
        let kind = selector.clone().ok_or(
            "Burn's wgpu backend has no selector for this adapter (only the first software adapter, and discrete, integrated and virtual GPUs, can be chosen)",
        )?;
        // A runtime starts once per process: later opens of the same adapter get its device.
        static OPENED: Mutex<Vec<(DeviceKind, Device)>> = Mutex::new(Vec::new());
        let mut opened = OPENED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, device)) = opened.iter().find(|(k, _)| *k == kind) {
            return Ok(device.clone());
        }
        // Autotune results are kept between runs, in dynofa's cache directory.
        #[cfg(feature = "gpu-autotune")]
        if let Some(dir) = super::cache_dir() {
            burn::cubecl::environment::set_root(dir.join("cubecl"));
        }
        // Started here rather than on the first tensor, so that a driver failure is an
        // error instead of a panic later.
        let device = Device::wgpu_options().device_kind(kind.clone()).graphics_api(WgpuBackend::Vulkan).init().map_err(|e| e.to_string())?;
        opened.push((kind, device.clone()));
        Ok(device)
    }
}

#[cfg(not(feature = "wgpu"))]
mod backend {
    use burn::prelude::Device;

    use super::Adapter;

    pub type Selector = ();

    pub fn adapters() -> Vec<(Adapter, Selector)> {
        Vec::new()
    }

    pub fn open(_: &Selector) -> Result<Device, String> {
        Err("no GPU support in this build".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_parse_and_print() {
        for text in ["cpu", "gpu", "gpu:0", "gpu:12"] {
            assert_eq!(text.parse::<DeviceId>().unwrap().to_string(), text);
        }
        assert_eq!("gpu:3".parse::<DeviceId>().unwrap(), DeviceId::Gpu(Some(3)));
        for bad in ["", "GPU", "gpu:", "gpu:x", "gpu:-1", "tpu", "cpu:0"] {
            let err = bad.parse::<DeviceId>().unwrap_err().to_string();
            assert!(err.contains("cpu, gpu or gpu:N"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_best_adapter_is_a_real_gpu_before_a_software_one() {
        let mut kinds = [AdapterKind::Software, AdapterKind::Integrated, AdapterKind::Discrete];
        kinds.sort_by_key(|k| k.rank());
        assert_eq!(kinds, [AdapterKind::Discrete, AdapterKind::Integrated, AdapterKind::Software]);
    }

    #[test]
    fn asking_for_a_missing_adapter_lists_what_was_found() {
        let n = adapters().len();
        let err = open_gpu(DeviceId::Gpu(Some(n + 6))).unwrap_err().to_string();
        assert!(err.starts_with(&format!("gpu:{}", n + 6)), "{err}");
        if GPU_SUPPORT {
            assert!(err.contains("found: cpu"), "{err}");
        } else {
            assert!(err.contains("without GPU support"), "{err}");
        }
    }
}
