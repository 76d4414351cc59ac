//! The crate's error type: every message names the file, key, field, shape or value at fault.

use std::path::{Path, PathBuf};

/// Errors of the supernet crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config field holds a value the supernet cannot run.
    #[error("invalid `{field}`: got {value}, expected {expected}")]
    InvalidValue {
        /// Field (with index) at fault, e.g. `ks[7]`.
        field: String,
        /// What was found.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// Text that does not parse.
    #[error("cannot parse the {what}: {detail}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// The parser's message.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error (part of the message, not a separate cause).
        error: std::io::Error,
    },
    /// An error inside a named file.
    #[error("{}: {inner}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        inner: Box<Error>,
    },
    /// A checkpoint lacks a tensor the supernet needs.
    #[error("missing tensor `{key}` (the supernet needs it; found {found} tensors)")]
    MissingKey {
        /// OFA's key name.
        key: String,
        /// How many tensors the file has.
        found: usize,
    },
    /// A checkpoint tensor has a key that no supernet tensor maps to.
    #[error("unexpected tensor `{key}`: not part of the OFA-MobileNetV3 supernet")]
    UnexpectedKey {
        /// The key in the file.
        key: String,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{key}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Key of the tensor.
        key: String,
        /// Shape the architecture requires.
        expected: Vec<usize>,
        /// Shape found.
        found: Vec<usize>,
    },
    /// A file is not a readable checkpoint, or holds something we refuse to load.
    #[error("not a usable checkpoint: {detail}")]
    Checkpoint {
        /// What is wrong.
        detail: String,
    },
    /// A pickle names a Python global outside the allow-list.
    #[error("refused: the pickle asks for the Python global `{global}`, which is not on the allow-list ({allowed})")]
    ForbiddenGlobal {
        /// `module.name` of the global.
        global: String,
        /// The allow-list, for the message.
        allowed: String,
    },
    /// A tensor file (`.npy` / `.npz`) that cannot be used.
    #[error("tensor file: {detail}")]
    TensorFile {
        /// What is wrong.
        detail: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), error }
    }

    /// Attaches the file this error happened in (once).
    pub fn in_file(self, path: &Path) -> Self {
        match self {
            Error::Io { .. } | Error::InFile { .. } => self,
            other => Error::InFile { path: path.to_path_buf(), inner: Box::new(other) },
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
