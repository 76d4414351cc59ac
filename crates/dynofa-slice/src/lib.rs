//! # dynofa-slice
//!
//! Static sub-networks cut out of the supernet, and what people do with them:
//!
//! - [`arch`]: the concrete layer sizes of a static MobileNetV3.
//! - [`static_net`]: the static network as a Burn module (OFA's `MobileNetV3`).
//! - [`extract`](mod@extract): OFA's `get_active_subnet(preserve_weight=True)`.
//! - [`net_config`] and [`ofa_dir`]: OFA's specialised-network format (`net.config`,
//!   `run.config`, `init`), read and written.
//! - [`onnx`]: ONNX export (opset 13, dynamic batch).
//! - [`family`]: the shared-weight family store that the runtime switches between.
//! - [`gpu_family`]: a family on a GPU, each level its own network resident there.
//! - [`placement`]: where a family runs (CPU or GPU), and what a loaded family offers.
//! - [`family_file`]: saving and loading a family (RON + per-level weights).
//! - [`calibrate`]: BatchNorm re-calibration (OFA's `set_running_statistics`).
//!
//! Depends on `dynofa-supernet`, `dynofa-kernels` and `dynofa-device`; the profiler, the
//! search, the runtime and the CLI depend on this crate.

pub mod arch;
pub mod calibrate;
pub mod extract;
pub mod family;
pub mod family_file;
pub mod gpu_family;
pub mod net_config;
pub mod ofa_dir;
pub mod onnx;
pub mod placement;
pub mod static_net;

pub use arch::{BlockArch, NetArch};
pub use extract::extract;
pub use family::FamilyStore;
pub use gpu_family::GpuFamily;
pub use placement::{LoadedFamily, Placement};
pub use static_net::StaticNet;
