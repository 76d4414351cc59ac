//! The checkpoint guard's pickle machine on arbitrary bytes (no file involved).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = dynofa_supernet::pickle_guard::check_pickle(data, 1 << 20);
});
