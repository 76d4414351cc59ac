//! NumPy `.npy` / `.npz` files of f32 arrays: network inputs, logits, reference outputs.
//!
//! Writes go to a temporary file beside the target, renamed into place when complete.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use burn::prelude::*;
use npyz::WriterBuilder;

use crate::error::{Error, Result};
use crate::state_dict::Precision;

/// A dense f32 array in row-major (C) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

impl Array {
    /// The array as a Burn tensor of rank `D`, or an error naming the shape.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Result<Tensor<D>> {
        self.to_tensor_in(device, Precision::F32)
    }

    /// [`Array::to_tensor`] in the given precision.
    pub fn to_tensor_in<const D: usize>(&self, device: &Device, precision: Precision) -> Result<Tensor<D>> {
        if self.shape.len() != D {
            return Err(Error::TensorFile {
                detail: format!("array has shape {:?}; expected {D} dimensions", self.shape),
            });
        }
        Ok(precision.tensor(self.data.clone(), self.shape.clone(), device))
    }

    /// The first `n` items along the batch (first) dimension.
    pub fn first(&self, n: usize) -> Array {
        let batch = self.shape.first().copied().unwrap_or(0);
        let per_item = self.data.len() / batch.max(1);
        let n = n.min(batch);
        let mut shape = self.shape.clone();
        shape[0] = n;
        Array { shape, data: self.data[..n * per_item].to_vec() }
    }

    /// Reads a tensor back from the device.
    pub fn from_tensor<const D: usize>(tensor: &Tensor<D>) -> Self {
        let shape = tensor.dims().to_vec();
        let data = tensor.to_data().convert::<f32>().try_into_vec::<f32>().expect("f32 tensor data");
        Array { shape, data }
    }
}

/// Reads the values of an array whose header was read; `available` is how many bytes the
/// file holds (the header's shape is checked against it before anything is allocated).
fn read_array<R: std::io::Read>(file: npyz::NpyFile<R>, what: &str, available: u64) -> Result<Array> {
    let bad = |detail: String| Error::TensorFile { detail: format!("{what}: {detail}") };
    if file.order() != npyz::Order::C {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let element_bytes = match file.dtype() {
        npyz::DType::Plain(ts) => ts.num_bytes().unwrap_or(0) as u64,
        other => return Err(bad(format!("dtype {other:?}; expected float32 or float64"))),
    };
    crate::files::claimed_bytes(what, file.shape(), element_bytes, available)?;
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = match file.dtype() {
        npyz::DType::Plain(ts) if ts.to_string().ends_with("f4") => {
            file.into_vec::<f32>().map_err(|e| bad(e.to_string()))?
        }
        npyz::DType::Plain(ts) if ts.to_string().ends_with("f8") => file
            .into_vec::<f64>()
            .map_err(|e| bad(e.to_string()))?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => return Err(bad(format!("dtype {other:?}; expected float32 or float64"))),
    };
    Ok(Array { shape, data })
}

/// Reads an `.npy` file of f32 (or f64) values.
pub fn read_npy(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| Error::TensorFile { detail: format!("not an .npy file: {e}") }.in_file(path))?;
    read_array(file, "array", bytes.len() as u64).map_err(|e| e.in_file(path))
}

/// Reads every array of an `.npz` archive, by name.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, Array>> {
    let bad = |detail: String| Error::TensorFile { detail }.in_file(path);
    let mut archive = npyz::npz::NpzArchive::open(path).map_err(|e| Error::io(path, e))?;
    let names: Vec<String> = archive.array_names().map(str::to_string).collect();
    let mut arrays = BTreeMap::new();
    for name in names {
        let file = archive
            .by_name(&name)
            .map_err(|e| bad(format!("array `{name}`: {e}")))?
            .ok_or_else(|| bad(format!("array `{name}` vanished")))?;
        let available = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        arrays.insert(name.clone(), read_array(file, &name, available).map_err(|e| e.in_file(path))?);
    }
    Ok(arrays)
}

/// Writes `array` to `path` as `.npy` (f32), atomically.
pub fn write_npy(path: &Path, array: &Array) -> Result<()> {
    write_atomically(path, |file| {
        let shape: Vec<u64> = array.shape.iter().map(|&d| d as u64).collect();
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape)
            .writer(file)
            .begin_nd()?;
        writer.extend(array.data.iter().copied())?;
        writer.finish()
    })
}

/// Writes a file through `write` into a temporary file in the same folder, then renames
/// it to `path`; on any error nothing is left behind.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".dynofa")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, e))?;
    {
        let mut buffered = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut buffered).and_then(|_| buffered.flush()).map_err(|e| Error::io(path, e))?;
    }
    publish_permissions(tmp.path(), false).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Gives a finished temporary file (or folder) the usual permissions, `rw-r--r--`
/// (`rwxr-xr-x` for a folder), before it is renamed into place: temporary files are
/// created private to the user.
pub fn publish_permissions(path: &Path, folder: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if folder { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, folder);
    Ok(())
}
