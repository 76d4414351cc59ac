//! NumPy `.npy` / `.npz` files of f32 arrays: network inputs, logits, reference outputs.
//!
//! Writes go to a temporary file beside the target, renamed into place when complete.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::prelude::*;
use npyz::WriterBuilder;

use crate::error::{Error, Result};
use crate::files::write_atomically;
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
    /// The input every benchmark and profile times: a deterministic batch `[batch, 3, r,
    /// r]` of values in about ±2 (as normalised pixels are; timings do not depend on the
    /// values, and one pattern everywhere keeps measurements comparable).
    pub fn benchmark_input(batch: usize, r: usize) -> Array {
        Array { shape: vec![batch, 3, r, r], data: (0..batch * 3 * r * r).map(|i| ((i % 251) as f32 - 125.0) / 60.0).collect() }
    }

    /// The array as a Burn tensor of rank `D`, or an error naming the shape.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Result<Tensor<D>> {
        self.to_tensor_in(device, Precision::F32)
    }

    /// [`Array::to_tensor`] in the given precision.
    pub fn to_tensor_in<const D: usize>(&self, device: &Device, precision: Precision) -> Result<Tensor<D>> {
        if self.shape.len() != D {
            return Err(Error::TensorFile { detail: format!("array has shape {:?}; expected {D} dimensions", self.shape) });
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
        npyz::DType::Plain(ts) if ts.to_string().ends_with("f4") => file.into_vec::<f32>().map_err(|e| bad(e.to_string()))?,
        npyz::DType::Plain(ts) if ts.to_string().ends_with("f8") => {
            file.into_vec::<f64>().map_err(|e| bad(e.to_string()))?.into_iter().map(|v| v as f32).collect()
        }
        other => return Err(bad(format!("dtype {other:?}; expected float32 or float64"))),
    };
    Ok(Array { shape, data })
}

/// Reads an `.npy` file of f32 (or f64) values.
pub fn read_npy(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = npyz::NpyFile::new(&bytes[..]).map_err(|e| Error::TensorFile { detail: format!("not an .npy file: {e}") }.in_file(path))?;
    read_array(file, "array", bytes.len() as u64).map_err(|e| e.in_file(path))
}

/// Reads every array of an `.npz` archive (a zip of `.npy` files, stored or deflated as
/// NumPy's `savez` and `savez_compressed` write them), by name.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, Array>> {
    let bad = |detail: String| Error::TensorFile { detail }.in_file(path);
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let archive_bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(format!("not an .npz archive: {e}")))?;
    let mut arrays = BTreeMap::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| bad(format!("entry {index}: {e}")))?;
        let full = entry.name().map_err(|e| bad(format!("entry {index}: {e}")))?.into_owned();
        // NumPy writes only `.npy` entries; anything else is not an array (skipped, as
        // NumPy's own reader lists only arrays).
        let Some(name) = full.strip_suffix(".npy").map(str::to_string) else { continue };
        // A size the archive claims, checked before reading: no more than NumPy's deflate
        // could have made of the whole archive.
        let claimed = entry.size();
        if claimed > archive_bytes.saturating_mul(MAX_NPZ_EXPANSION) {
            return Err(bad(format!("array `{name}`: {claimed} bytes claimed in a {archive_bytes}-byte archive")));
        }
        let mut bytes = Vec::new();
        // zip stops at the declared size and checks the entry's CRC at its end.
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("array `{name}`: {e}")))?;
        let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(format!("array `{name}`: not an .npy file: {e}")))?;
        let array = read_array(npy, &name, bytes.len() as u64).map_err(|e| e.in_file(path))?;
        arrays.insert(name, array);
    }
    Ok(arrays)
}

/// The most an `.npz` entry may expand by (deflate's limit is about 1032:1).
const MAX_NPZ_EXPANSION: u64 = 1100;

/// Writes `array` to `path` as `.npy` (f32), atomically.
pub fn write_npy(path: &Path, array: &Array) -> Result<()> {
    write_atomically(path, |file| {
        let shape: Vec<u64> = array.shape.iter().map(|&d| d as u64).collect();
        let mut writer = npyz::WriteOptions::<f32>::new().default_dtype().shape(&shape).writer(file).begin_nd()?;
        writer.extend(array.data.iter().copied())?;
        writer.finish()
    })
}
