//! The memory-bandwidth load (`mem`), as `dynofa experiment` runs it (a streaming thread
//! per core), measurably slows a memory-bound kernel beside it. How much of that is
//! bandwidth rather than CPU time depends on the machine: on a 2-vCPU AMD EPYC VM one
//! streaming thread slowed a memory-bound kernel on the other vCPU by only 1.07× (one vCPU
//! cannot saturate its memory), so the test also prints the slowdown of a compute-bound
//! kernel for comparison.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dynofa_runtime::contention::{memory_load_bytes, stream_triad, stream_until};
use dynofa_runtime::stats::median;

/// A compute-bound kernel: dependent multiply-adds in registers, as long as a triad pass.
fn compute(iterations: u64) -> f64 {
    let mut x = 1.0f64;
    for i in 0..iterations {
        x = x.mul_add(0.999_999, (i & 7) as f64 * 1e-9);
    }
    std::hint::black_box(x)
}

/// Median seconds of `kernel`, with or without the memory load on another thread.
fn timed(mut kernel: impl FnMut(), with_load: bool) -> f64 {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        if with_load {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let stop = &stop;
            scope.spawn(move || stream_until(cores, stop));
            // Its buffer allocated and streaming.
            std::thread::sleep(Duration::from_millis(150));
        }
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                kernel();
                start.elapsed().as_secs_f64()
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        times.sort_by(f64::total_cmp);
        times[2]
    })
}

#[test]
fn the_memory_load_slows_a_memory_bound_kernel() {
    let mut buffer = vec![1.0f64; memory_load_bytes() / std::mem::size_of::<f64>()];
    stream_triad(&mut buffer);
    // The compute kernel sized to take about as long as a triad pass alone.
    let start = Instant::now();
    stream_triad(&mut buffer);
    let pass_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    compute(1_000_000);
    let iterations = (1e6 * pass_s / start.elapsed().as_secs_f64().max(1e-6)) as u64;

    // Interleaved rounds, so that a slow phase of the machine touches every condition.
    let (mut memory_alone, mut memory_loaded, mut compute_alone, mut compute_loaded) = (vec![], vec![], vec![], vec![]);
    for _ in 0..5 {
        memory_alone.push(timed(|| stream_triad(&mut buffer), false));
        memory_loaded.push(timed(|| stream_triad(&mut buffer), true));
        compute_alone.push(timed(
            || {
                compute(iterations);
            },
            false,
        ));
        compute_loaded.push(timed(
            || {
                compute(iterations);
            },
            true,
        ));
    }
    let memory_slowdown = median(&memory_loaded) / median(&memory_alone);
    let compute_slowdown = median(&compute_loaded) / median(&compute_alone);
    eprintln!(
        "beside the memory load ({} MiB streamed): a memory-bound kernel {memory_slowdown:.2}× slower, a compute-bound one {compute_slowdown:.2}×",
        memory_load_bytes() >> 20
    );
    assert!(memory_slowdown > 1.2, "the memory load slowed a memory-bound kernel only {memory_slowdown:.2}×");
}
