//! Writing PyTorch checkpoints in torch's zip format (what `torch.save` writes since 1.6),
//! readable by `torch.load` and by our own importer.
//!
//! The pickle is protocol 2 and names only allow-listed globals (`OrderedDict`,
//! `_rebuild_tensor_v2`, `FloatStorage`); each tensor is one little-endian f32 storage.

use std::io::Write;
use std::path::Path;

use zip::write::SimpleFileOptions;

use crate::error::{Error, Result};
use crate::files::write_atomically;

/// A named f32 tensor, as in a PyTorch state dict.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// State-dict key.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// The values of one state-dict entry.
#[derive(Debug, Clone, Copy)]
pub enum Values<'a> {
    /// `torch.float32`.
    F32(&'a [f32]),
    /// `torch.int64` (e.g. BatchNorm's `num_batches_tracked`).
    I64(&'a [i64]),
}

impl Values<'_> {
    fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    fn storage_type(&self) -> &'static str {
        match self {
            Values::F32(_) => "FloatStorage",
            Values::I64(_) => "LongStorage",
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// One entry of a state dict to write.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Key.
    pub name: &'a str,
    /// Dimensions (empty for a scalar).
    pub shape: &'a [usize],
    /// Values, row-major.
    pub values: Values<'a>,
}

impl<'a> From<&'a NamedTensor> for Entry<'a> {
    fn from(t: &'a NamedTensor) -> Self {
        Entry { name: &t.name, shape: &t.shape, values: Values::F32(&t.data) }
    }
}

/// Writes `tensors` as `{'state_dict': OrderedDict}` (or a bare `OrderedDict` when
/// `wrapped` is false) to `path`, atomically.
pub fn write_state_dict(path: &Path, tensors: &[NamedTensor], wrapped: bool) -> Result<()> {
    let entries: Vec<Entry> = tensors.iter().map(Entry::from).collect();
    write_entries(path, &entries, wrapped)
}

/// [`write_state_dict`] for entries of any supported dtype.
pub fn write_entries(path: &Path, entries: &[Entry], wrapped: bool) -> Result<()> {
    let storages: Vec<Vec<u8>> = entries.iter().map(|e| e.values.bytes()).collect();
    write_zip_checkpoint(path, &state_dict_pickle(entries, wrapped), &storages)
}

/// Writes a zip-format checkpoint from its pickle and its storages (`data/0`, `data/1`, …).
pub fn write_zip_checkpoint(path: &Path, pickle: &[u8], storages: &[Vec<u8>]) -> Result<()> {
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("archive").to_string();
    write_atomically(path, |file| {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).with_alignment(64);
        let entry = |zip: &mut zip::ZipWriter<_>, entry: &str, bytes: &[u8]| {
            zip.start_file(format!("{name}/{entry}"), stored)?;
            zip.write_all(bytes).map_err(zip::result::ZipError::from)
        };
        let result = (|| {
            entry(&mut zip, "data.pkl", pickle)?;
            entry(&mut zip, "byteorder", b"little")?;
            for (i, storage) in storages.iter().enumerate() {
                entry(&mut zip, &format!("data/{i}"), storage)?;
            }
            entry(&mut zip, "version", b"3\n")?;
            zip.finish()
        })();
        let bytes = result.map_err(std::io::Error::other)?.into_inner();
        file.write_all(&bytes)
    })
    .map_err(|e| match e {
        Error::Io { .. } => e,
        other => Error::Checkpoint { detail: other.to_string() }.in_file(path),
    })
}

/// Pickle opcodes used below (protocol 2).
mod op {
    pub const PROTO: u8 = 0x80;
    pub const EMPTY_DICT: u8 = b'}';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const REDUCE: u8 = b'R';
    pub const BINPERSID: u8 = b'Q';
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const NEWFALSE: u8 = 0x89;
    pub const STOP: u8 = b'.';
}

/// A protocol-2 pickle under construction.
#[derive(Default)]
pub struct Pickle(Vec<u8>);

impl Pickle {
    /// Starts a protocol-2 pickle.
    pub fn new() -> Self {
        Pickle(vec![op::PROTO, 2])
    }

    /// Appends raw opcodes.
    pub fn op(&mut self, opcode: u8) -> &mut Self {
        self.0.push(opcode);
        self
    }

    /// `GLOBAL module name`.
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }

    /// A string (`BINUNICODE`).
    pub fn string(&mut self, text: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
        self
    }

    /// An int (`BININT`).
    pub fn int(&mut self, value: usize) -> &mut Self {
        self.0.push(b'J');
        self.0.extend_from_slice(&(value as i32).to_le_bytes());
        self
    }

    /// A tuple of ints.
    pub fn int_tuple(&mut self, values: &[usize]) -> &mut Self {
        self.op(op::MARK);
        values.iter().for_each(|&v| {
            self.int(v);
        });
        self.op(op::TUPLE)
    }

    /// An empty `OrderedDict()`.
    pub fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").op(op::EMPTY_TUPLE).op(op::REDUCE)
    }

    /// Ends the pickle.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.push(op::STOP);
        self.0
    }
}

fn state_dict_pickle(tensors: &[Entry], wrapped: bool) -> Vec<u8> {
    let mut p = Pickle::new();
    if wrapped {
        p.op(op::EMPTY_DICT).string("state_dict");
    }
    p.ordered_dict().op(op::MARK);
    for (i, t) in tensors.iter().enumerate() {
        let strides: Vec<usize> = (0..t.shape.len()).map(|d| t.shape[d + 1..].iter().product()).collect();
        p.string(t.name).global("torch._utils", "_rebuild_tensor_v2").op(op::MARK);
        // Persistent id of the storage: ('storage', FloatStorage, key, location, numel).
        p.op(op::MARK).string("storage").global("torch", t.values.storage_type());
        p.string(&i.to_string()).string("cpu").int(t.values.len()).op(op::TUPLE).op(op::BINPERSID);
        p.int(0).int_tuple(t.shape).int_tuple(&strides).op(op::NEWFALSE).ordered_dict();
        p.op(op::TUPLE).op(op::REDUCE);
    }
    p.op(op::SETITEMS);
    if wrapped {
        p.op(op::SETITEM);
    }
    p.finish()
}
