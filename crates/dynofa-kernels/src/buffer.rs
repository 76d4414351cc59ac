//! A growable `f32` buffer that starts on a 64-byte boundary (a cache line, and one
//! AVX-512 register), so that vector loads of channel blocks do not straddle lines.

/// One cache line of values; the buffer is a vector of these.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// `f32` values aligned to 64 bytes, zero-initialised, growing on demand.
#[derive(Clone, Default)]
pub struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// Makes room for at least `len` values (allocates only when growing).
    pub fn reserve(&mut self, len: usize) {
        if len > self.len {
            self.lines.resize(len.div_ceil(16), Line::default());
            self.len = self.lines.len() * 16;
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` over 16 `f32`s, so the lines are `len` contiguous,
        // initialised `f32`s.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}
