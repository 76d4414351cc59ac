//! How kernels split their work over threads: as tasks on the current rayon pool, or in
//! order on the calling thread inside [`serial`] — the one-thread case, which then needs
//! no pool and no hand-over to one (handing a forward to a pool thread and waiting for it
//! costs two wake-ups, ~0.1 ms per call measured in this project's VM). Beside them, the
//! pools a caller runs forwards on and [`with_threads_awake`], which keeps a pool's
//! threads polling for the length of a forward.

use std::cell::Cell;

use rayon::prelude::*;

thread_local! {
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Threads the kernels split their work over here: 1 inside [`serial`], else the current
/// rayon pool's.
pub fn current() -> usize {
    if SERIAL.with(Cell::get) { 1 } else { rayon::current_num_threads() }
}

/// Threads a kernel of `work` multiply–adds (or values, for a pass over memory) splits
/// over: one below [`SERIAL_BELOW`], else [`current`].
pub fn for_work(work: usize) -> usize {
    if work < SERIAL_BELOW { 1 } else { current() }
}

/// Work below which a kernel runs as one task: handing half of it to another thread
/// (a rayon join, ~1–2 µs here with the other thread awake) costs more than it saves.
/// Measured on 2 threads: 2¹⁸ and 2²⁰ were no faster on any of the three networks.
pub const SERIAL_BELOW: usize = 1 << 16;

/// Runs `f` with every kernel it calls running on this thread alone (no rayon call).
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.with(|serial| serial.set(self.0));
        }
    }
    let _restore = Restore(SERIAL.with(|serial| serial.replace(true)));
    f()
}

/// `task(i)` for each `i` in `0..tasks`: as rayon tasks, or in order on this thread when
/// there is one task or one [`current`] thread.
pub fn for_each_task(tasks: usize, task: impl Fn(usize) + Send + Sync) {
    if tasks <= 1 || current() == 1 { (0..tasks).for_each(task) } else { (0..tasks).into_par_iter().for_each(task) }
}

/// `task(i, chunk)` for each chunk `i` of `chunk` values of `out` (the last may be
/// shorter), as [`for_each_task`] runs tasks.
pub fn for_each_chunk_mut<T: Send>(out: &mut [T], chunk: usize, task: impl Fn(usize, &mut [T]) + Send + Sync) {
    if out.len() <= chunk || current() == 1 {
        out.chunks_mut(chunk).enumerate().for_each(|(i, chunk)| task(i, chunk))
    } else {
        out.par_chunks_mut(chunk).enumerate().for_each(|(i, chunk)| task(i, chunk))
    }
}

/// A rayon pool of `threads` threads, for [`with_threads_awake`] to run forwards on.
pub fn pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build()
}

/// Runs `work` on the current rayon pool while every other thread of the pool polls for
/// tasks instead of going to sleep. A forward is a hundred short parallel kernels; between
/// two of them an idle rayon worker parks, and waking it (a futex round trip, tens of
/// microseconds in a VM) cost more than the kernels gained from a second thread. ONNX
/// Runtime's intra-op threads spin the same way. The pollers stop when `work` returns.
pub fn with_threads_awake<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if helpers == 0 {
        return work();
    }
    /// Stops the pollers when dropped: after `work` returns, and also when it panics
    /// (else the scope would wait for them forever instead of passing the panic on).
    struct Done<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Release);
        }
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut result = None;
    rayon::scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| {
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        let _done = Done(&done);
        result = Some(work());
    });
    result.expect("work ran")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_runs_every_task_on_the_calling_thread_and_restores() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
        let caller = std::thread::current().id();
        let ran_on = |tasks: usize| {
            let ids = std::sync::Mutex::new(Vec::new());
            for_each_task(tasks, |_| ids.lock().unwrap().push(std::thread::current().id()));
            ids.into_inner().unwrap()
        };
        pool.install(|| {
            assert_eq!(current(), 2);
            let inside = std::thread::current().id();
            serial(|| {
                assert_eq!(current(), 1);
                assert_eq!(ran_on(8), vec![inside; 8]);
                let mut values = vec![0; 10];
                for_each_chunk_mut(&mut values, 3, |i, chunk| chunk.iter_mut().for_each(|v| *v = i));
                assert_eq!(values, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
            });
            assert_eq!(current(), 2, "restored after serial");
        });
        // Outside any pool: serial still runs everything here.
        serial(|| assert_eq!(ran_on(4), vec![caller; 4]));
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller_instead_of_hanging() {
        let pool = pool(2).unwrap();
        let caught = pool.install(|| std::panic::catch_unwind(|| with_threads_awake(|| panic!("kernel failed"))));
        assert!(caught.is_err());
        // The pool still works afterwards.
        assert_eq!(pool.install(|| with_threads_awake(|| 7)), 7);
    }
}
