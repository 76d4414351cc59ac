//! Seeded mutation testing of the file readers, on stable Rust: the cases `cargo fuzz`
//! would start from (bit flips, truncations, header and length edits of real files), run
//! in the ordinary test suite with a bounded allocator, a time limit per case and a
//! panic catcher.
//!
//! A test binary installs [`BoundedAllocator`] as its global allocator and calls
//! [`check_reader`] with a seed file and the reader; every mutant must be read or refused
//! with an error that names the file, without a panic, within the time and memory limits.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A global allocator that refuses any single allocation above a limit: a reader that
/// believes a size claimed by a file and allocates it aborts the test instead of the machine.
pub struct BoundedAllocator {
    /// Largest single allocation allowed, in bytes.
    pub max_allocation: usize,
    peak: AtomicUsize,
}

impl BoundedAllocator {
    /// An allocator that refuses single allocations above `max_allocation` bytes.
    pub const fn new(max_allocation: usize) -> Self {
        BoundedAllocator { max_allocation, peak: AtomicUsize::new(0) }
    }

    /// The largest single allocation asked for so far.
    pub fn largest_request(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

// SAFETY: forwards to the system allocator, or returns null (an allocation failure) for
// requests above the limit, which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for BoundedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.peak.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() > self.max_allocation {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.peak.fetch_max(new_size, Ordering::Relaxed);
        if new_size > self.max_allocation {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`; `ptr` and `layout` come from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// One way of damaging a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// One to four bits flipped anywhere.
    BitFlips,
    /// Bytes in the first 512 (headers, pickles' first opcodes) set to edge values.
    HeaderBytes,
    /// A 4- or 8-byte field overwritten with a huge or negative length.
    LengthField,
    /// A run of digits in text replaced by a huge number.
    HugeNumber,
    /// Cut short at a random point.
    Truncation,
    /// A random chunk deleted or repeated.
    Splice,
}

const MUTATIONS: [Mutation; 6] =
    [Mutation::BitFlips, Mutation::HeaderBytes, Mutation::LengthField, Mutation::HugeNumber, Mutation::Truncation, Mutation::Splice];

/// A mutant of `original` (never empty unless truncated to nothing).
pub fn mutate(original: &[u8], mutation: Mutation, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = original.to_vec();
    if bytes.is_empty() {
        return bytes;
    }
    let len = bytes.len();
    match mutation {
        Mutation::BitFlips => {
            for _ in 0..rng.random_range(1..=4) {
                let at = rng.random_range(0..len);
                bytes[at] ^= 1 << rng.random_range(0..8);
            }
        }
        Mutation::HeaderBytes => {
            for _ in 0..rng.random_range(1..=3) {
                let at = rng.random_range(0..len.min(512));
                bytes[at] = [0x00, 0xff, 0x7f, 0x80, b'\n', b'.', b'('][rng.random_range(0..7)];
            }
        }
        Mutation::LengthField => {
            let width = if rng.random_bool(0.5) { 4 } else { 8 };
            let at = rng.random_range(0..len.saturating_sub(width).max(1));
            let value: u64 = [u64::MAX, u32::MAX as u64, 0x7fff_ffff, 100 << 30, 0x8000_0000, 1 << 40][rng.random_range(0..6)];
            let field = value.to_le_bytes();
            let end = (at + width).min(len);
            bytes[at..end].copy_from_slice(&field[..end - at]);
        }
        Mutation::HugeNumber => {
            let digits: Vec<usize> = (0..len).filter(|&i| bytes[i].is_ascii_digit()).collect();
            if digits.is_empty() {
                return mutate(original, Mutation::BitFlips, rng);
            }
            let start = digits[rng.random_range(0..digits.len())];
            let end = (start..len).find(|&i| !bytes[i].is_ascii_digit()).unwrap_or(len);
            let huge = ["99999999999999999999", "4294967296", "100000000000", "-1", "0"][rng.random_range(0..5)];
            bytes.splice(start..end, huge.bytes());
        }
        Mutation::Truncation => bytes.truncate(rng.random_range(0..len)),
        Mutation::Splice => {
            let start = rng.random_range(0..len);
            let end = (start + rng.random_range(1..=64)).min(len);
            if rng.random_bool(0.5) {
                bytes.drain(start..end);
            } else {
                let chunk = bytes[start..end].to_vec();
                bytes.splice(start..start, chunk);
            }
        }
    }
    bytes
}

/// What [`check_reader`] saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Mutants tried.
    pub cases: usize,
    /// Read without error (the damage did not matter, e.g. in a weight's value).
    pub accepted: usize,
    /// Refused with an error naming the file.
    pub refused: usize,
    /// Slowest case.
    pub slowest: Duration,
}

/// Longest any one case may take.
pub const CASE_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Writes `cases` mutants of `seed_file` (seeded by `seed`) to `dir/<name>` and reads each
/// with `read`; panics (the test fails) on a panic inside the reader, an error whose
/// message (`{:#}`) does not name the file, or a case slower than [`CASE_TIME_LIMIT`].
/// `read` returns the error as text. Runs on the calling thread.
pub fn check_reader(seed_file: &Path, name: &str, dir: &Path, cases: usize, seed: u64, read: impl Fn(&Path) -> Result<(), String>) -> Report {
    let original = std::fs::read(seed_file).unwrap_or_else(|e| panic!("{}: {e}", seed_file.display()));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let path = dir.join(name);
    let mut report = Report::default();
    // The unmutated file must read: the cases start from something valid.
    std::fs::write(&path, &original).unwrap();
    if let Err(e) = read(&path) {
        panic!("the seed file {} does not read: {e}", seed_file.display());
    }
    for case in 0..cases {
        let mutation = MUTATIONS[rng.random_range(0..MUTATIONS.len())];
        let mutant = mutate(&original, mutation, &mut rng);
        std::fs::write(&path, &mutant).unwrap();
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| read(&path)));
        let elapsed = start.elapsed();
        report.slowest = report.slowest.max(elapsed);
        let keep = || {
            let kept = dir.join(format!("{name}.case{case}"));
            std::fs::write(&kept, &mutant).unwrap();
            kept.display().to_string()
        };
        match outcome {
            Err(_) => panic!("case {case} ({mutation:?}) of {name} panicked; the mutant is at {}", keep()),
            Ok(Err(message)) if !message.contains(name) => {
                panic!("case {case} ({mutation:?}) of {name}: the error does not name the file: {message} (mutant: {})", keep())
            }
            Ok(Err(_)) => report.refused += 1,
            Ok(Ok(())) => report.accepted += 1,
        }
        assert!(elapsed < CASE_TIME_LIMIT, "case {case} ({mutation:?}) of {name} took {elapsed:?} (mutant: {})", keep());
        report.cases += 1;
    }
    eprintln!(
        "{name}: {} mutants of {}: {} refused with the file named, {} read (damage in values), slowest {:?}",
        report.cases,
        seed_file.display(),
        report.refused,
        report.accepted,
        report.slowest
    );
    report
}
