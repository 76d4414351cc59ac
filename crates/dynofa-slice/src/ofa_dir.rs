//! OFA's folder format for specialised networks: `net.config` (architecture JSON),
//! `run.config` (`{"image_size": R}`) and `init` (`{'state_dict': …}`, torch zip format).
//!
//! [`load`] runs any such folder (e.g. OFA's published specialised networks); [`save`]
//! writes one that OFA's `MobileNetV3.build_from_config` + `load_state_dict` accept. A
//! folder is written under a temporary name and renamed into place when complete.

use std::collections::HashSet;
use std::path::Path;

use burn::prelude::*;
use dynofa_supernet::arch::{MAX_RESOLUTION, MIN_RESOLUTION};
use dynofa_supernet::checkpoint::Checkpoint;
use dynofa_supernet::pth::{Entry, Values, write_entries};
use dynofa_supernet::state_dict::Precision;
use dynofa_supernet::{Error, Result};
use serde_json::{Value, json};

use crate::arch::NetArch;
use crate::net_config;
use crate::static_net::{StaticNet, build_static, tensor_names};

fn read_json(path: &Path) -> Result<Value> {
    let text = dynofa_supernet::files::read_text(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Parse { what: "JSON".into(), detail: e.to_string() }.in_file(path))
}

/// Reads the architecture of a specialised-network folder.
pub fn load_arch(dir: &Path) -> Result<NetArch> {
    let run = read_json(&dir.join("run.config"))?;
    let resolution = run.get("image_size").and_then(Value::as_u64).filter(|r| (MIN_RESOLUTION as u64..=MAX_RESOLUTION as u64).contains(r)).ok_or_else(|| {
        Error::InvalidValue {
            field: "run.config image_size".into(),
            value: run.get("image_size").cloned().unwrap_or(Value::Null).to_string(),
            expected: format!("a whole number from {MIN_RESOLUTION} to {MAX_RESOLUTION}"),
        }
        .in_file(&dir.join("run.config"))
    })? as usize;
    let config_path = dir.join("net.config");
    net_config::parse(&read_json(&config_path)?, resolution).map_err(|e| e.in_file(&config_path))
}

/// Loads a specialised network from its folder.
pub fn load(dir: &Path, device: &Device) -> Result<StaticNet> {
    let arch = load_arch(dir)?;
    let init = dir.join("init");
    let names = tensor_names(&arch);
    let known: HashSet<String> = names.iter().map(|(n, _)| n.clone()).collect();
    let mut checkpoint = Checkpoint::open(&init, &known)?;
    build_static(&arch, &mut checkpoint, device, Precision::F32).map_err(|e| e.in_file(&init))
}

/// Writes `net` as a specialised-network folder at `dir` (which must not exist, or be empty).
pub fn save(net: &StaticNet, dir: &Path) -> Result<()> {
    if dir.exists() && std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.next().is_some() {
        let e = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "output folder exists and is not empty");
        return Err(Error::io(dir, e));
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().prefix(".dynofa-net").tempdir_in(parent).map_err(|e| Error::io(dir, e))?;
    let write_json = |name: &str, value: &Value| {
        let path = tmp.path().join(name);
        let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
        std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))
    };
    write_json("net.config", &net_config::to_json(&net.arch))?;
    write_json("run.config", &json!({ "image_size": net.arch.resolution }))?;
    // torch's strict load_state_dict also wants each BN's `num_batches_tracked`.
    let tensors = net.state_dict();
    let counters: Vec<String> = tensors.iter().filter_map(|t| t.name.strip_suffix(".running_var").map(|p| format!("{p}.num_batches_tracked"))).collect();
    let zero = [0i64];
    let mut entries = Vec::with_capacity(tensors.len() + counters.len());
    let mut counter = counters.iter();
    for t in &tensors {
        entries.push(Entry::from(t));
        if t.name.ends_with(".running_var") {
            let name = counter.next().expect("one counter per BN");
            entries.push(Entry { name, shape: &[], values: Values::I64(&zero) });
        }
    }
    write_entries(&tmp.path().join("init"), &entries, true)?;
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    dynofa_supernet::files::publish_permissions(tmp.path(), true).map_err(|e| Error::io(dir, e))?;
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        Error::io(dir, e)
    })
}
