//! A model of Python's pickle machine (CPython's `_pickle` unpickler), run over a
//! checkpoint's pickle before anything reads it.
//!
//! Every opcode a checkpoint can contain is simulated on an abstract stack, with CPython's
//! marks (stack positions; the top one is the "fence" that pops may not cross) and memo, so
//! that each call is judged on what is really on the stack: `GLOBAL`, `STACK_GLOBAL` and
//! `INST` name a global that must be on [`ALLOWED_GLOBALS`]; `REDUCE`, `INST`, `OBJ`,
//! `NEWOBJ(_EX)` may only call what the machine's `call` models (the [`Allowed`] callables: `OrderedDict()` and the tensor
//! rebuilds, with arguments of the right kinds); `BUILD` may only set a state dict's
//! attributes; a persistent id must name a storage whose claimed size fits the bytes that
//! back it. Anything else — the extension registry, out-of-band buffers, text persistent
//! ids, escapes in text strings — is refused because it cannot be proven harmless.
//! The opcode table of Python's `pickletools` is the specification; `tests/pickle_oracle.py`
//! checks this model against CPython's own unpickler.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::error::{Error, Result};

/// What an allow-listed global is, which decides what the pickle may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// `collections.OrderedDict`: the state dict; may be called with no arguments.
    OrderedDict,
    /// `torch._utils._rebuild_tensor{,_v2,_v3}` (version 1, 2, 3).
    RebuildTensor(u8),
    /// `torch._utils._rebuild_parameter`.
    RebuildParameter,
    /// A storage type, named in persistent ids; elements of this many bytes.
    Storage(u64),
    /// A dtype (`torch.float32`, …), an argument of `_rebuild_tensor_v3`; bytes per element.
    Dtype(u64),
}

/// Globals a PyTorch state-dict checkpoint may reference, and what each one is.
pub const ALLOWED_GLOBALS: &[(&str, Allowed)] = &[
    ("collections.OrderedDict", Allowed::OrderedDict),
    ("torch._utils._rebuild_tensor", Allowed::RebuildTensor(1)),
    ("torch._utils._rebuild_tensor_v2", Allowed::RebuildTensor(2)),
    ("torch._utils._rebuild_tensor_v3", Allowed::RebuildTensor(3)),
    ("torch._utils._rebuild_parameter", Allowed::RebuildParameter),
    ("torch.FloatStorage", Allowed::Storage(4)),
    ("torch.DoubleStorage", Allowed::Storage(8)),
    ("torch.HalfStorage", Allowed::Storage(2)),
    ("torch.BFloat16Storage", Allowed::Storage(2)),
    ("torch.LongStorage", Allowed::Storage(8)),
    ("torch.IntStorage", Allowed::Storage(4)),
    ("torch.ShortStorage", Allowed::Storage(2)),
    ("torch.CharStorage", Allowed::Storage(1)),
    ("torch.ByteStorage", Allowed::Storage(1)),
    ("torch.BoolStorage", Allowed::Storage(1)),
    ("torch.storage.UntypedStorage", Allowed::Storage(1)),
    ("torch.float32", Allowed::Dtype(4)),
    ("torch.float64", Allowed::Dtype(8)),
    ("torch.float16", Allowed::Dtype(2)),
    ("torch.bfloat16", Allowed::Dtype(2)),
    ("torch.int64", Allowed::Dtype(8)),
];

/// The allow-list in words, for error messages.
const ALLOWED_IN_WORDS: &str = "tensor rebuilds, storages, dtypes, OrderedDict";

/// Most dimensions a tensor may claim.
const MAX_DIMS: usize = 64;

/// What the guard knows of a value on the stack.
#[derive(Debug)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An int; `None` when it does not fit in 64 bits.
    Int(Option<i64>),
    /// A float.
    Float,
    /// A `str`.
    Str(String),
    /// A `bytes`.
    Bytes,
    /// A tuple.
    Tuple(Vec<Rc<Value>>),
    /// A list (its items are kept: the legacy format lists its storage keys in one).
    List(RefCell<Vec<Rc<Value>>>),
    /// A dict.
    Dict,
    /// A set.
    Set,
    /// A frozenset.
    FrozenSet,
    /// An allow-listed global, named.
    Global(&'static str, Allowed),
    /// An `OrderedDict` instance.
    OrderedDict,
    /// A tensor (or parameter) rebuilt from a storage.
    Tensor,
    /// A storage, named by a persistent id.
    Storage(Rc<StorageClaim>),
}

/// A storage as a persistent id describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageClaim {
    /// Its key (the zip entry `data/<key>`, or the legacy stream's key).
    pub key: String,
    /// Bytes per element.
    pub element_bytes: u64,
    /// Elements claimed.
    pub numel: u64,
}

/// What a pickle turned out to hold, once judged harmless.
#[derive(Debug)]
pub struct Outcome {
    /// Bytes the pickle spans, through `STOP`.
    pub end: usize,
    /// The unpickled root value.
    pub root: Rc<Value>,
    /// The storages its persistent ids named, by key.
    pub storages: HashMap<String, Rc<StorageClaim>>,
}

/// Runs the pickle at the start of `data`; `storage_bytes(key)` is how many bytes really
/// back the storage `key` (the zip entry's size, or what is left of a legacy file).
pub fn run(data: &[u8], storage_bytes: &dyn Fn(&str) -> Result<u64>) -> Result<Outcome> {
    let mut machine = Machine {
        input: Input { data, pos: 0, op_pos: 0 },
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        storages: HashMap::new(),
        storage_bytes,
    };
    let root = machine.execute()?;
    Ok(Outcome { end: machine.input.pos, root, storages: machine.storages })
}

struct Machine<'a> {
    input: Input<'a>,
    stack: Vec<Rc<Value>>,
    /// Stack lengths at each `MARK`; the last one is the fence.
    marks: Vec<usize>,
    memo: HashMap<u64, Rc<Value>>,
    storages: HashMap<String, Rc<StorageClaim>>,
    storage_bytes: &'a dyn Fn(&str) -> Result<u64>,
}

/// A refusal for a reason other than a global's name.
fn refuse(detail: impl Into<String>) -> Error {
    Error::Checkpoint { detail: detail.into() }
}

/// A structure that cannot be proven harmless.
fn unproven(what: impl std::fmt::Display) -> Error {
    refuse(format!("pickle refused: {what} (cannot be proven harmless)"))
}

fn shared(value: Value) -> Rc<Value> {
    Rc::new(value)
}

impl Machine<'_> {
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn underflow(&self, op: &str) -> Error {
        refuse(format!("malformed pickle: {op} at byte {} pops below the stack or its mark", self.input.op_pos))
    }

    fn pop(&mut self, op: &str) -> Result<Rc<Value>> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow(op));
        }
        Ok(self.stack.pop().expect("above the fence"))
    }

    fn top(&self, op: &str) -> Result<Rc<Value>> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow(op));
        }
        Ok(self.stack.last().expect("above the fence").clone())
    }

    fn push(&mut self, value: Value) {
        self.stack.push(shared(value));
    }

    /// Pops the last mark and the items above it.
    fn pop_mark(&mut self, op: &str) -> Result<Vec<Rc<Value>>> {
        let mark = self.marks.pop().ok_or_else(|| refuse(format!("malformed pickle: {op} at byte {} without a MARK", self.input.op_pos)))?;
        Ok(self.stack.split_off(mark))
    }

    /// The last `n` items, popped (they may not reach below the fence).
    fn pop_n(&mut self, n: usize, op: &str) -> Result<Vec<Rc<Value>>> {
        if self.stack.len() < self.fence() + n {
            return Err(self.underflow(op));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn memo_get(&mut self, index: u64) -> Result<()> {
        let value = self
            .memo
            .get(&index)
            .cloned()
            .ok_or_else(|| refuse(format!("malformed pickle: memo entry {index} fetched at byte {} was never stored", self.input.op_pos)))?;
        self.stack.push(value);
        Ok(())
    }

    fn memo_put(&mut self, index: u64, op: &str) -> Result<()> {
        let top = self.top(op)?;
        self.memo.insert(index, top);
        Ok(())
    }

    fn global(&self, module: &str, name: &str) -> Result<Value> {
        let global = format!("{module}.{name}");
        match ALLOWED_GLOBALS.iter().find(|(allowed, _)| *allowed == global) {
            Some(&(allowed, kind)) => Ok(Value::Global(allowed, kind)),
            None => Err(Error::ForbiddenGlobal { global, allowed: ALLOWED_IN_WORDS.into() }),
        }
    }

    /// Runs to `STOP`; returns the value it pops.
    fn execute(&mut self) -> Result<Rc<Value>> {
        loop {
            self.input.op_pos = self.input.pos;
            let op = self.input.byte()?;
            match op {
                // STOP
                b'.' => return self.pop("STOP"),
                // PROTO
                0x80 => {
                    let protocol = self.input.uint(1)?;
                    if protocol > 5 {
                        return Err(refuse(format!("unsupported pickle protocol {protocol}")));
                    }
                }
                // FRAME: the frame's bytes must all be there.
                0x95 => {
                    let len = self.input.uint(8)?;
                    self.input.require(len)?;
                }
                // Ints.
                b'I' => {
                    let line = self.input.line()?;
                    let value = match line.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        text => Value::Int(Some(decimal(text, false)?)),
                    };
                    self.stack.push(shared(value));
                }
                b'L' => {
                    let line = self.input.line()?;
                    let text = line.strip_suffix('L').unwrap_or(&line);
                    let value = match decimal(text, true) {
                        Ok(v) => Some(v),
                        Err(_) if is_long_decimal(text) => None,
                        Err(e) => return Err(e),
                    };
                    self.push(Value::Int(value));
                }
                b'J' => {
                    let v = self.input.uint(4)? as u32 as i32;
                    self.push(Value::Int(Some(v.into())));
                }
                b'K' => {
                    let v = self.input.uint(1)?;
                    self.push(Value::Int(Some(v as i64)));
                }
                b'M' => {
                    let v = self.input.uint(2)?;
                    self.push(Value::Int(Some(v as i64)));
                }
                0x8a => {
                    let n = self.input.uint(1)?;
                    let value = little_endian_int(self.input.take(n)?);
                    self.push(Value::Int(value));
                }
                0x8b => {
                    let n = self.input.uint(4)? as u32 as i32;
                    if n < 0 {
                        return Err(refuse("malformed pickle: LONG4 with a negative byte count"));
                    }
                    let value = little_endian_int(self.input.take(n as u64)?);
                    self.push(Value::Int(value));
                }
                // Floats.
                b'F' => {
                    let line = self.input.line()?;
                    match line.parse::<f64>() {
                        Ok(v) if v.is_finite() || !line.bytes().any(|b| b.is_ascii_digit()) => self.push(Value::Float),
                        _ => return Err(unproven(format!("FLOAT argument {line:?}"))),
                    }
                }
                b'G' => {
                    self.input.take(8)?;
                    self.push(Value::Float);
                }
                // Constants.
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                // Strings (Python 2 `str` becomes `str`, decoded as UTF-8, as torch.load does).
                b'S' => {
                    let line = self.input.line_bytes()?;
                    let quoted = line.len() >= 2 && line[0] == line[line.len() - 1] && (line[0] == b'\'' || line[0] == b'"');
                    if !quoted {
                        return Err(refuse("malformed pickle: STRING argument not quoted"));
                    }
                    let inner = &line[1..line.len() - 1];
                    if inner.contains(&b'\\') {
                        return Err(unproven("a STRING with escapes"));
                    }
                    let text = utf8(inner)?;
                    self.push(Value::Str(text));
                }
                b'T' => {
                    let n = self.input.uint(4)? as u32 as i32;
                    if n < 0 {
                        return Err(refuse("malformed pickle: BINSTRING with a negative byte count"));
                    }
                    let text = utf8(self.input.take(n as u64)?)?;
                    self.push(Value::Str(text));
                }
                b'U' => {
                    let n = self.input.uint(1)?;
                    let text = utf8(self.input.take(n)?)?;
                    self.push(Value::Str(text));
                }
                b'V' => {
                    let line = self.input.line_bytes()?;
                    if line.contains(&b'\\') {
                        return Err(unproven("a UNICODE string with escapes"));
                    }
                    // raw-unicode-escape without escapes is Latin-1.
                    self.push(Value::Str(line.iter().map(|&b| b as char).collect()));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = self.input.uint(match op {
                        b'X' => 4,
                        0x8c => 1,
                        _ => 8,
                    })?;
                    let text = utf8(self.input.take(n)?)?;
                    self.push(Value::Str(text));
                }
                b'B' | b'C' | 0x8e => {
                    let n = self.input.uint(match op {
                        b'B' => 4,
                        b'C' => 1,
                        _ => 8,
                    })?;
                    self.input.take(n)?;
                    self.push(Value::Bytes);
                }
                0x96 => return Err(unproven("BYTEARRAY8")),
                0x97 | 0x98 => return Err(unproven("an out-of-band buffer (NEXT_BUFFER / READONLY_BUFFER)")),
                // Containers.
                b']' => self.push(Value::List(RefCell::new(Vec::new()))),
                b')' => self.push(Value::Tuple(Vec::new())),
                b'}' => self.push(Value::Dict),
                0x8f => self.push(Value::Set),
                b'l' => {
                    let items = self.pop_mark("LIST")?;
                    self.push(Value::List(RefCell::new(items)));
                }
                b't' => {
                    let items = self.pop_mark("TUPLE")?;
                    self.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let items = self.pop_n(n, "TUPLE1/2/3")?;
                    self.push(Value::Tuple(items));
                }
                b'd' => {
                    let items = self.pop_mark("DICT")?;
                    pairs(&items, "DICT")?;
                    self.push(Value::Dict);
                }
                0x91 => {
                    let items = self.pop_mark("FROZENSET")?;
                    items.iter().try_for_each(|item| hashable(item, "a FROZENSET item"))?;
                    self.push(Value::FrozenSet);
                }
                b'a' => {
                    let len = self.stack.len();
                    self.extend(len.saturating_sub(1), "APPEND")?;
                }
                b'e' => {
                    let mark = self.pop_mark_position("APPENDS")?;
                    self.extend(mark, "APPENDS")?;
                }
                b's' => {
                    let len = self.stack.len();
                    self.set_items(len.saturating_sub(2), "SETITEM")?;
                }
                b'u' => {
                    let mark = self.pop_mark_position("SETITEMS")?;
                    self.set_items(mark, "SETITEMS")?;
                }
                0x90 => {
                    let mark = self.pop_mark_position("ADDITEMS")?;
                    if mark > self.stack.len() || mark <= self.fence() {
                        return Err(self.underflow("ADDITEMS"));
                    }
                    if mark < self.stack.len() {
                        if !matches!(*self.stack[mark - 1], Value::Set) {
                            return Err(unproven("ADDITEMS on something other than a set"));
                        }
                        let items = self.stack.split_off(mark);
                        items.iter().try_for_each(|item| hashable(item, "a set item"))?;
                    }
                }
                // Stack manipulation.
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    // CPython pops the mark when it is on top of the stack.
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop("POP")?;
                    }
                }
                b'1' => {
                    self.pop_mark("POP_MARK")?;
                }
                b'2' => {
                    let top = self.top("DUP")?;
                    self.stack.push(top);
                }
                // Memo.
                b'g' => {
                    let line = self.input.line()?;
                    let index = memo_index(&line)?;
                    self.memo_get(index)?;
                }
                b'h' => {
                    let index = self.input.uint(1)?;
                    self.memo_get(index)?;
                }
                b'j' => {
                    let index = self.input.uint(4)?;
                    self.memo_get(index)?;
                }
                b'p' => {
                    let line = self.input.line()?;
                    let index = memo_index(&line)?;
                    self.memo_put(index, "PUT")?;
                }
                b'q' => {
                    let index = self.input.uint(1)?;
                    self.memo_put(index, "BINPUT")?;
                }
                b'r' => {
                    let index = self.input.uint(4)?;
                    self.memo_put(index, "LONG_BINPUT")?;
                }
                0x94 => {
                    let index = self.memo.len() as u64;
                    self.memo_put(index, "MEMOIZE")?;
                }
                // Globals.
                b'c' => {
                    let module = self.input.line()?;
                    let name = self.input.line()?;
                    let global = self.global(&module, &name)?;
                    self.push(global);
                }
                0x93 => {
                    let name = self.pop("STACK_GLOBAL");
                    let module = self.pop("STACK_GLOBAL");
                    match (module.as_deref(), name.as_deref()) {
                        (Ok(Value::Str(module)), Ok(Value::Str(name))) => {
                            let global = self.global(module, name)?;
                            self.push(global);
                        }
                        _ => return Err(refuse("malformed pickle: STACK_GLOBAL requires two strings on the stack")),
                    }
                }
                0x82..=0x84 => {
                    let code = self.input.uint(1 << (op - 0x82))?;
                    return Err(refuse(format!("pickle refused: extension registry code {code} (EXT opcodes name globals indirectly)")));
                }
                // Calls.
                b'R' => {
                    let args = self.pop("REDUCE")?;
                    let callable = self.pop("REDUCE")?;
                    let result = self.call(&callable, &args)?;
                    self.push(result);
                }
                b'i' => {
                    let args = self.pop_mark("INST")?;
                    let module = self.input.line()?;
                    let name = self.input.line()?;
                    let class = shared(self.global(&module, &name)?);
                    let result = self.call(&class, &shared(Value::Tuple(args)))?;
                    self.push(result);
                }
                b'o' => {
                    let mut args = self.pop_mark("OBJ")?;
                    if args.is_empty() {
                        return Err(self.underflow("OBJ"));
                    }
                    let class = args.remove(0);
                    let result = self.call(&class, &shared(Value::Tuple(args)))?;
                    self.push(result);
                }
                0x81 | 0x92 => {
                    let kwargs = if op == 0x92 { Some(self.pop("NEWOBJ_EX")?) } else { None };
                    let args = self.pop("NEWOBJ")?;
                    let class = self.pop("NEWOBJ")?;
                    if !matches!(*class, Value::Global(_, Allowed::OrderedDict)) {
                        return Err(unproven(format!("NEWOBJ of {}", describe(&class))));
                    }
                    if !matches!(*args, Value::Tuple(_)) || kwargs.is_some_and(|k| !matches!(*k, Value::Dict)) {
                        return Err(refuse("malformed pickle: NEWOBJ needs an argument tuple (and a keyword dict)"));
                    }
                    self.push(Value::OrderedDict);
                }
                b'b' => {
                    if self.stack.len() < self.fence() + 2 {
                        return Err(self.underflow("BUILD"));
                    }
                    let state = self.pop("BUILD")?;
                    let target = self.top("BUILD")?;
                    let plain_state = |v: &Value| matches!(v, Value::Dict | Value::OrderedDict | Value::None);
                    let state_ok = match &*state {
                        Value::Tuple(pair) if pair.len() == 2 => plain_state(&pair[0]) && matches!(*pair[1], Value::None),
                        other => plain_state(other),
                    };
                    if !matches!(*target, Value::OrderedDict) || !state_ok {
                        return Err(unproven(format!("BUILD of {} with {}", describe(&target), describe(&state))));
                    }
                }
                // Persistent ids: only storages.
                b'Q' => {
                    let pid = self.pop("BINPERSID")?;
                    let storage = self.storage(&pid)?;
                    self.push(Value::Storage(storage));
                }
                b'P' => return Err(unproven("a text persistent id (PERSID)")),
                other => {
                    return Err(refuse(format!("unknown pickle opcode 0x{other:02x} at byte {}", self.input.op_pos)));
                }
            }
        }
    }

    fn pop_mark_position(&mut self, op: &str) -> Result<usize> {
        self.marks.pop().ok_or_else(|| refuse(format!("malformed pickle: {op} at byte {} without a MARK", self.input.op_pos)))
    }

    /// APPEND / APPENDS: the items from `start` go into the list below them.
    fn extend(&mut self, start: usize, op: &str) -> Result<()> {
        let len = self.stack.len();
        if start > len || start <= self.fence() {
            return Err(self.underflow(op));
        }
        if start == len {
            return Ok(());
        }
        let items = self.stack.split_off(start);
        match &*self.stack[start - 1] {
            Value::List(list) => {
                list.borrow_mut().extend(items);
                Ok(())
            }
            other => Err(unproven(format!("{op} to {}", describe(other)))),
        }
    }

    /// SETITEM / SETITEMS: key–value pairs from `start` go into the dict below them.
    fn set_items(&mut self, start: usize, op: &str) -> Result<()> {
        let len = self.stack.len();
        if start > len || start <= self.fence() {
            return Err(self.underflow(op));
        }
        if start == len {
            return Ok(());
        }
        pairs(&self.stack[start..], op)?;
        match &*self.stack[start - 1] {
            Value::Dict | Value::OrderedDict => {
                self.stack.truncate(start);
                Ok(())
            }
            other => Err(unproven(format!("{op} on {}", describe(other)))),
        }
    }

    /// What calling `callable(*args)` yields, for the calls modelled.
    fn call(&self, callable: &Value, args: &Value) -> Result<Value> {
        let Value::Tuple(args) = args else {
            return Err(refuse("malformed pickle: a call's arguments are not a tuple"));
        };
        let Value::Global(name, kind) = callable else {
            return Err(unproven(format!("a call of {}", describe(callable))));
        };
        let bad_args = || unproven(format!("{name} called with ({})", args.iter().map(|a| describe(a)).collect::<Vec<_>>().join(", ")));
        match kind {
            Allowed::OrderedDict if args.is_empty() => Ok(Value::OrderedDict),
            Allowed::RebuildTensor(version) => {
                let count = args.len();
                let fits = match version {
                    1 => count == 4,
                    2 => count == 6 || count == 7,
                    _ => count == 7 || count == 8,
                };
                if !fits {
                    return Err(bad_args());
                }
                let Value::Storage(storage) = &*args[0] else { return Err(bad_args()) };
                let (Value::Int(Some(offset)), Value::Tuple(size), Value::Tuple(stride)) = (&*args[1], &*args[2], &*args[3]) else {
                    return Err(bad_args());
                };
                let rest_ok = match version {
                    1 => true,
                    _ => {
                        matches!(*args[4], Value::Bool(_))
                            && matches!(*args[5], Value::OrderedDict)
                            && args[6..].iter().enumerate().all(|(i, a)| match (version, i) {
                                (3, 0) => matches!(**a, Value::Global(_, Allowed::Dtype(_))),
                                _ => matches!(**a, Value::None | Value::Dict | Value::OrderedDict),
                            })
                    }
                };
                if !rest_ok {
                    return Err(bad_args());
                }
                let element_bytes = match (version, args.get(6).map(|a| &**a)) {
                    (3, Some(Value::Global(_, Allowed::Dtype(bytes)))) => *bytes,
                    _ => storage.element_bytes,
                };
                self.check_view(name, storage, *offset, size, stride, element_bytes)?;
                Ok(Value::Tensor)
            }
            Allowed::RebuildParameter
                if args.len() == 3 && matches!(*args[0], Value::Tensor) && matches!(*args[1], Value::Bool(_)) && matches!(*args[2], Value::OrderedDict) =>
            {
                Ok(Value::Tensor)
            }
            _ => Err(bad_args()),
        }
    }

    /// A tensor's view must lie inside its storage: offset + Σ (size − 1)·stride < numel.
    fn check_view(&self, name: &str, storage: &StorageClaim, offset: i64, size: &[Rc<Value>], stride: &[Rc<Value>], element_bytes: u64) -> Result<()> {
        let ints = |values: &[Rc<Value>]| -> Option<Vec<u64>> {
            values
                .iter()
                .map(|v| match **v {
                    Value::Int(Some(i)) if i >= 0 => Some(i as u64),
                    _ => None,
                })
                .collect()
        };
        let (Some(size), Some(stride)) = (ints(size), ints(stride)) else {
            return Err(unproven(format!("{name} with a size or stride that is not a tuple of non-negative ints")));
        };
        if size.len() != stride.len() || size.len() > MAX_DIMS || offset < 0 {
            return Err(unproven(format!("{name} with size {size:?}, stride {stride:?}, offset {offset}")));
        }
        let extent = if size.contains(&0) {
            Some(0)
        } else {
            size.iter().zip(&stride).try_fold(offset as u64 + 1, |acc, (&n, &s)| acc.checked_add((n - 1).checked_mul(s)?))
        };
        let storage_bytes = storage.numel * storage.element_bytes;
        match extent.and_then(|e| e.checked_mul(element_bytes)) {
            Some(bytes) if bytes <= storage_bytes => Ok(()),
            _ => Err(refuse(format!(
                "tensor of size {size:?} (stride {stride:?}, offset {offset}) claims more than its storage `{}` holds ({} elements)",
                storage.key, storage.numel
            ))),
        }
    }

    /// A persistent id: `('storage', StorageType, key, location, numel[, view_metadata])`.
    fn storage(&mut self, pid: &Value) -> Result<Rc<StorageClaim>> {
        let Value::Tuple(items) = pid else {
            return Err(unproven(format!("a persistent id that is {}", describe(pid))));
        };
        let shape_ok = matches!(items.len(), 5 | 6) && items.get(5).is_none_or(|v| matches!(**v, Value::None));
        let fields =
            (items.first().map(|v| &**v), items.get(1).map(|v| &**v), items.get(2).map(|v| &**v), items.get(3).map(|v| &**v), items.get(4).map(|v| &**v));
        let (
            true,
            (
                Some(Value::Str(tag)),
                Some(Value::Global(_, Allowed::Storage(element_bytes))),
                Some(Value::Str(key)),
                Some(Value::Str(_)),
                Some(Value::Int(numel)),
            ),
        ) = (shape_ok, fields)
        else {
            return Err(unproven(format!(
                "a persistent id ({}) that is not ('storage', StorageType, key, location, numel)",
                items.iter().map(|a| describe(a)).collect::<Vec<_>>().join(", ")
            )));
        };
        if tag != "storage" {
            return Err(unproven(format!("a persistent id of kind {tag:?}")));
        }
        let numel = match numel {
            Some(n) if *n >= 0 => *n as u64,
            _ => return Err(refuse(format!("storage `{key}` claims {numel:?} elements"))),
        };
        let claim = StorageClaim { key: key.clone(), element_bytes: *element_bytes, numel };
        if let Some(seen) = self.storages.get(key) {
            if **seen != claim {
                return Err(refuse(format!("storage `{key}` is described twice, differently ({seen:?} and {claim:?})")));
            }
            return Ok(seen.clone());
        }
        let available = (self.storage_bytes)(key)?;
        let claimed = numel.checked_mul(*element_bytes);
        if claimed.is_none_or(|bytes| bytes > available) {
            return Err(refuse(format!("storage `{key}` claims {numel} elements of {element_bytes} bytes, but only {available} bytes back it")));
        }
        let claim = Rc::new(claim);
        self.storages.insert(key.clone(), claim.clone());
        Ok(claim)
    }
}

/// Key–value pairs (DICT, SETITEMS): an even number, keys hashable.
fn pairs(items: &[Rc<Value>], op: &str) -> Result<()> {
    if !items.len().is_multiple_of(2) {
        return Err(refuse(format!("malformed pickle: odd number of items for {op}")));
    }
    items.iter().step_by(2).try_for_each(|key| hashable(key, "a dict key"))
}

/// Keys and set items must be plain hashable values (no object whose hash could run code).
fn hashable(value: &Value, what: &str) -> Result<()> {
    fn plain(value: &Value) -> bool {
        match value {
            Value::None | Value::Bool(_) | Value::Int(_) | Value::Float | Value::Str(_) | Value::Bytes | Value::FrozenSet => true,
            Value::Tuple(items) => items.iter().all(|v| plain(v)),
            _ => false,
        }
    }
    if plain(value) { Ok(()) } else { Err(unproven(format!("{what} that is {}", describe(value)))) }
}

/// A short description of a value, for messages.
fn describe(value: &Value) -> String {
    match value {
        Value::None => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(Some(i)) => i.to_string(),
        Value::Int(None) => "a huge int".into(),
        Value::Float => "a float".into(),
        Value::Str(s) => format!("{:?}", s.chars().take(40).collect::<String>()),
        Value::Bytes => "bytes".into(),
        Value::Tuple(items) => format!("a {}-tuple", items.len()),
        Value::List(_) => "a list".into(),
        Value::Dict => "a dict".into(),
        Value::Set => "a set".into(),
        Value::FrozenSet => "a frozenset".into(),
        Value::Global(name, _) => format!("the global `{name}`"),
        Value::OrderedDict => "an OrderedDict".into(),
        Value::Tensor => "a tensor".into(),
        Value::Storage(s) => format!("storage `{}`", s.key),
    }
}

/// A decimal int as CPython's text opcodes accept it (no `+`, no leading zeros, no `_`;
/// `long` also allows all zeros).
fn decimal(text: &str, long: bool) -> Result<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !(long && digits.bytes().all(|b| b == b'0'));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || leading_zero || (text.starts_with('-') && digits.starts_with('0')) {
        return Err(unproven(format!("a text int {text:?}")));
    }
    text.parse().map_err(|_| unproven(format!("a text int {text:?} beyond 64 bits")))
}

/// A valid LONG argument too large for 64 bits.
fn is_long_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// A memo index written as text (GET / PUT).
fn memo_index(text: &str) -> Result<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unproven(format!("a memo index {text:?}")));
    }
    text.parse().map_err(|_| refuse(format!("malformed pickle: memo index {text:?} out of range")))
}

/// A two's-complement little-endian int (LONG1 / LONG4); `None` beyond 64 bits.
fn little_endian_int(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() {
        return Some(0);
    }
    if bytes.len() > 8 {
        return None;
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = if negative { [0xff; 8] } else { [0; 8] };
    buf[..bytes.len()].copy_from_slice(bytes);
    Some(i64::from_le_bytes(buf))
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| unproven("a string that is not valid UTF-8"))
}

fn truncated() -> Error {
    refuse("truncated pickle")
}

/// The pickle's bytes, read forward.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the current opcode starts.
    op_pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.data.get(self.pos).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn require(&self, n: u64) -> Result<()> {
        let n = usize::try_from(n).map_err(|_| truncated())?;
        match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => Ok(()),
            _ => Err(truncated()),
        }
    }

    fn take(&mut self, n: u64) -> Result<&[u8]> {
        self.require(n)?;
        let slice = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(slice)
    }

    fn uint(&mut self, width: usize) -> Result<u64> {
        let bytes = self.take(width as u64)?;
        Ok(bytes.iter().rev().fold(0, |acc, &b| (acc << 8) | b as u64))
    }

    fn line_bytes(&mut self) -> Result<Vec<u8>> {
        let rest = &self.data[self.pos..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or_else(truncated)?;
        self.pos += len + 1;
        Ok(rest[..len].to_vec())
    }

    fn line(&mut self) -> Result<String> {
        let bytes = self.line_bytes()?;
        utf8(&bytes)
    }
}
