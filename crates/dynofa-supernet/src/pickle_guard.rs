//! The allow-list for the Python globals a checkpoint's pickle may name.
//!
//! `pytorch-reader` never executes a pickle, but it keeps calls it does not know as opaque
//! values, so a file that asks for `os.system` would load with that call silently dropped.
//! We refuse such files instead: before reading, every global the pickle references
//! (`GLOBAL`, `INST`, `STACK_GLOBAL`; the extension registry `EXT*` is refused outright)
//! is checked against the allow-list of what a state dict needs — tensor rebuilds, the
//! storage types and `OrderedDict`.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Globals a PyTorch state-dict checkpoint may reference.
pub const ALLOWED_GLOBALS: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch.FloatStorage",
    "torch.DoubleStorage",
    "torch.HalfStorage",
    "torch.BFloat16Storage",
    "torch.LongStorage",
    "torch.IntStorage",
    "torch.ShortStorage",
    "torch.CharStorage",
    "torch.ByteStorage",
    "torch.BoolStorage",
    "torch.storage.UntypedStorage",
    "torch.float32",
    "torch.float64",
    "torch.float16",
    "torch.bfloat16",
    "torch.int64",
];

/// Checks every pickle of the checkpoint at `path` against [`ALLOWED_GLOBALS`].
pub fn check_checkpoint(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        check_zip(&bytes)
    } else if bytes.get(257..262) == Some(b"ustar") {
        Err(Error::Checkpoint { detail: "TAR checkpoints (PyTorch before 0.1.10) are not supported".into() })
    } else {
        // A plain pickle, or the legacy stream: magic, protocol, system info, the object and
        // the storage keys as five pickles, then raw storage bytes.
        let mut rest = &bytes[..];
        for _ in 0..LEGACY_PICKLES {
            let used = check_pickle(rest)?;
            rest = &rest[used..];
            if rest.is_empty() {
                break;
            }
        }
        Ok(())
    }
}

/// Pickles at the start of a legacy (pre-1.6) checkpoint.
const LEGACY_PICKLES: usize = 5;

fn check_zip(bytes: &[u8]) -> Result<()> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::Checkpoint { detail: format!("unreadable zip container: {e}") })?;
    let name = archive
        .file_names()
        .filter_map(|name| name.ok())
        .find(|name| name.ends_with("data.pkl"))
        .map(|name| name.into_owned())
        .ok_or_else(|| Error::Checkpoint { detail: "zip container without data.pkl".into() })?;
    let mut pickle = Vec::new();
    archive
        .by_name(&name)
        .and_then(|mut f| f.read_to_end(&mut pickle).map_err(Into::into))
        .map_err(|e| Error::Checkpoint { detail: format!("cannot read {name}: {e}") })?;
    check_pickle(&pickle).map(|_| ())
}

fn truncated() -> Error {
    Error::Checkpoint { detail: "truncated pickle".into() }
}

fn check_global(module: &str, name: &str) -> Result<()> {
    let global = format!("{module}.{name}");
    if ALLOWED_GLOBALS.contains(&global.as_str()) {
        Ok(())
    } else {
        Err(Error::ForbiddenGlobal { global, allowed: "tensor rebuilds, storages, OrderedDict".into() })
    }
}

/// Scans one pickle, returning the number of bytes it spans (through `STOP`).
fn check_pickle(data: &[u8]) -> Result<usize> {
    let mut cursor = Cursor { data, pos: 0 };
    // Strings recently pushed (for STACK_GLOBAL) and strings stored in the memo.
    let mut strings: Vec<String> = Vec::new();
    let mut memo: std::collections::HashMap<u64, String> = Default::default();
    loop {
        let op = cursor.byte()?;
        match op {
            b'.' => return Ok(cursor.pos),
            // GLOBAL and INST: "module\nname\n".
            b'c' | b'i' => {
                let module = cursor.line()?;
                let name = cursor.line()?;
                check_global(&module, &name)?;
            }
            0x93 => {
                // STACK_GLOBAL: module and name are the two strings on top of the stack.
                let name = strings.pop();
                let module = strings.pop();
                match (module, name) {
                    (Some(m), Some(n)) => check_global(&m, &n)?,
                    _ => {
                        return Err(Error::ForbiddenGlobal {
                            global: "<computed by STACK_GLOBAL>".into(),
                            allowed: "globals named by literal strings".into(),
                        });
                    }
                }
            }
            0x82..=0x84 => {
                return Err(Error::ForbiddenGlobal {
                    global: "<extension registry code>".into(),
                    allowed: "globals named by literal strings".into(),
                });
            }
            // Strings: remember them for STACK_GLOBAL.
            b'X' => {
                let n = cursor.uint(4)?;
                strings.push(cursor.text(n)?);
            }
            0x8c => {
                let n = cursor.uint(1)?;
                strings.push(cursor.text(n)?);
            }
            0x8d => {
                let n = cursor.uint(8)?;
                strings.push(cursor.text(n)?);
            }
            b'V' | b'S' => strings.push(cursor.line()?),
            b'U' => {
                let n = cursor.uint(1)?;
                strings.push(cursor.text(n)?);
            }
            b'T' => {
                let n = cursor.uint(4)?;
                strings.push(cursor.text(n)?);
            }
            // Memo: keep strings stored and fetched, so STACK_GLOBAL sees memoised names.
            b'p' => {
                let idx = cursor.line()?.trim().parse().map_err(|_| truncated())?;
                remember(&mut memo, &strings, idx);
            }
            b'q' => {
                let idx = cursor.uint(1)?;
                remember(&mut memo, &strings, idx);
            }
            b'r' => {
                let idx = cursor.uint(4)?;
                remember(&mut memo, &strings, idx);
            }
            0x94 => {
                let idx = memo.len() as u64;
                remember(&mut memo, &strings, idx);
            }
            b'g' | b'h' | b'j' => {
                let idx = match op {
                    b'g' => cursor.line()?.trim().parse().map_err(|_| truncated())?,
                    b'h' => cursor.uint(1)?,
                    _ => cursor.uint(4)?,
                };
                if let Some(s) = memo.get(&idx) {
                    strings.push(s.clone());
                }
            }
            // Opcodes with fixed-size or length-prefixed arguments.
            b'F' | b'I' | b'L' | b'P' => {
                cursor.line()?;
            }
            b'J' => cursor.skip(4)?,
            b'K' | 0x80 => cursor.skip(1)?,
            b'M' => cursor.skip(2)?,
            b'G' | 0x95 => cursor.skip(8)?,
            0x8a | b'C' => {
                let n = cursor.uint(1)?;
                cursor.skip(n)?;
            }
            0x8b | b'B' => {
                let n = cursor.uint(4)?;
                cursor.skip(n)?;
            }
            0x8e | 0x96 => {
                let n = cursor.uint(8)?;
                cursor.skip(n)?;
            }
            // No arguments.
            b'(' | b'0' | b'1' | b'2' | b'N' | b'Q' | b'R' | b'a' | b'b' | b'd' | b'}' | b'e'
            | b'l' | b']' | b'o' | b's' | b't' | b')' | b'u' | 0x81 | 0x85..=0x89 | 0x8f
            | 0x90..=0x92 | 0x97 | 0x98 => {}
            other => {
                return Err(Error::Checkpoint {
                    detail: format!("unknown pickle opcode 0x{other:02x} at byte {}", cursor.pos - 1),
                });
            }
        }
    }
}

fn remember(memo: &mut std::collections::HashMap<u64, String>, strings: &[String], idx: u64) {
    if let Some(s) = strings.last() {
        memo.insert(idx, s.clone());
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.data.get(self.pos).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8]> {
        let n = usize::try_from(n).map_err(|_| truncated())?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(truncated)?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.take(n).map(|_| ())
    }

    fn uint(&mut self, width: usize) -> Result<u64> {
        let bytes = self.take(width as u64)?;
        Ok(bytes.iter().rev().fold(0, |acc, &b| (acc << 8) | b as u64))
    }

    fn text(&mut self, n: u64) -> Result<String> {
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or_else(truncated)?;
        let text = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.pos += len + 1;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_state_dict_pickle() {
        // {'a': OrderedDict()} in protocol 2 with a GLOBAL.
        let pickle = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01ccollections\nOrderedDict\nq\x02)Rq\x03s.";
        assert_eq!(check_pickle(pickle).unwrap(), pickle.len());
    }

    #[test]
    fn refuses_os_system_by_global_and_stack_global() {
        let pickle = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85Rq\x020N.";
        let err = check_pickle(pickle).unwrap_err().to_string();
        assert!(err.contains("os.system"), "{err}");
        let pickle = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94.";
        let err = check_pickle(pickle).unwrap_err().to_string();
        assert!(err.contains("os.system"), "{err}");
        // The module name fetched back from the memo.
        let pickle = b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94h\x00h\x01\x93.";
        let err = check_pickle(pickle).unwrap_err().to_string();
        assert!(err.contains("builtins.eval"), "{err}");
    }

    #[test]
    fn truncated_pickle_is_an_error() {
        assert!(check_pickle(b"\x80\x02X\x10\x00\x00\x00ab").is_err());
        assert!(check_pickle(b"").is_err());
    }
}
