//! The fast path's kernels on shapes of the w1.2 supernet's largest sub-network at 224×224
//! (batch 1; one thread, or `BENCH_THREADS`), for every instruction set the CPU has
//! (`<isa>`: `avx512`, `avx2`, `neon`, `portable`), with throughput in multiply–adds per
//! second (GFLOP/s = 2 × that), next to a plain single-threaded GEMM from the `gemm` crate
//! as the machine's baseline (it picks the widest instruction set itself):
//! - `pointwise/<isa>/<M>x<K>x<N>`: 1×1 convolution with fused BN + activation from column
//!   panels of that instruction set's width (the family store's layout); `pointwise/
//!   <isa>-rowmajor/…` the same from row-major weights;
//! - `pointwise/gemm/<M>x<K>x<N>`: the bare GEMM on the same shape (packed by `gemm`
//!   itself); `sgemm-peak/gemm/512`: a 512³ product, the machine's sgemm peak;
//! - `depthwise/k<k>s<s>/<isa>/<H>x<W>x<C>`: depthwise convolution with fused BN + activation;
//! - `separable/{<isa>,pair}/<H>x<W>x<C>to<N>`: a depthwise 7×7 convolution of a
//!   pixel-major input and the projection after it, chunk by chunk
//!   (`dynofa_kernels::separable`) or as two calls (widest instruction set);
//! - `stem/<isa>/224`: the direct 3×3 stride-2 convolution of a 224×224 frame to 24 channels.

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dynofa_kernels::conv::conv2d_on;
use dynofa_kernels::depthwise::depthwise_on;
use dynofa_kernels::panels::{self, PanelMatrix};
use dynofa_kernels::pointwise::{pointwise, pointwise_on};
use dynofa_kernels::separable::{Depthwise, Pointwise, separable};
use dynofa_kernels::shape::ConvShape;
use dynofa_kernels::{Activation, AlignedBuf, Epilogue, Isa, Layout, MatRef};

/// `n` values starting on a 64-byte boundary (as the family store's buffers do).
struct Aligned {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let buf: Vec<f32> = (0..len + 16).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 1000.0).collect();
        let start = (16 - (buf.as_ptr() as usize / 4) % 16) % 16;
        Aligned { buf, start, len }
    }
    fn get(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }
    fn get_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

fn values(n: usize) -> Aligned {
    Aligned::new(n)
}

/// Runs `f` on a pool of `BENCH_THREADS` threads (default 1).
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let threads = std::env::var("BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool").install(f)
}

/// `out[m, n] = input[m, k] · weights[k, n]` by the `gemm` crate on this thread.
fn gemm_of(m: usize, k: usize, n: usize, input: &[f32], weights: &[f32], out: &mut [f32]) {
    // SAFETY: dense row-major operands of these sizes.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            black_box(out).as_mut_ptr(),
            1,
            n as isize,
            false,
            input.as_ptr(),
            1,
            k as isize,
            weights.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

fn kernels(c: &mut Criterion) {
    let ones = vec![1.0f32; 4096];
    let zeros = vec![0.0f32; 4096];
    let mut group = c.benchmark_group("sgemm-peak");
    let (input, weights, mut out) = (values(512 * 512), values(512 * 512), values(512 * 512));
    group.throughput(Throughput::Elements(512 * 512 * 512));
    group.bench_function(BenchmarkId::new("gemm", 512), |b| b.iter(|| gemm_of(512, 512, 512, input.get(), weights.get(), out.get_mut())));
    group.finish();
    let mut group = c.benchmark_group("pointwise");
    // (pixels, in, out): the first block's project, an early expand and project, a middle
    // project, a late expand, the last stage's expand and project, the classifier.
    for (m, k, n) in [(12544, 24, 24), (3136, 32, 192), (3136, 192, 32), (784, 288, 48), (196, 136, 816), (49, 192, 1152), (49, 1152, 192), (1, 1536, 1000)] {
        let (input, weights) = (values(m * k), values(k * n));
        let mut out = values(m * n);
        group.throughput(Throughput::Elements((m * k * n) as u64));
        let epilogue = Epilogue { scale: &ones[..n], shift: &zeros[..n], act: Activation::HSwish };
        for isa in Isa::available() {
            let panels = PanelMatrix::from_row_major(weights.get(), k, n, panels::width(isa));
            group.bench_function(BenchmarkId::new(isa.name(), format!("{m}x{k}x{n}")), |b| {
                on_pool(|| b.iter(|| pointwise_on(isa, MatRef::dense(input.get(), m, k), panels.view(k, n), epilogue, None, black_box(out.get_mut()))))
            });
        }
        let isa = Isa::best();
        group.bench_function(BenchmarkId::new(format!("{}-rowmajor", isa.name()), format!("{m}x{k}x{n}")), |b| {
            on_pool(|| {
                b.iter(|| pointwise_on(isa, MatRef::dense(input.get(), m, k), MatRef::dense(weights.get(), k, n), epilogue, None, black_box(out.get_mut())))
            })
        });
        group.bench_function(BenchmarkId::new("gemm", format!("{m}x{k}x{n}")), |b| b.iter(|| gemm_of(m, k, n, input.get(), weights.get(), out.get_mut())));
    }
    group.finish();
    let mut group = c.benchmark_group("depthwise");
    for (h, ch, k, stride) in [(112, 96, 7, 2), (56, 144, 7, 1), (28, 288, 7, 1), (14, 816, 7, 1), (7, 1152, 7, 1), (56, 144, 3, 1)] {
        let shape = ConvShape { h, w: h, channels: ch, k, stride };
        let (ho, wo) = shape.out_hw();
        let (input, kernels) = (values(h * h * ch), values(k * k * ch));
        let mut out = values(ho * wo * ch);
        group.throughput(Throughput::Elements((ho * wo * ch * k * k) as u64));
        let epilogue = Epilogue { scale: &ones[..ch], shift: &zeros[..ch], act: Activation::HSwish };
        for isa in Isa::available() {
            group.bench_function(BenchmarkId::new(format!("k{k}s{stride}/{}", isa.name()), format!("{h}x{h}x{ch}")), |b| {
                on_pool(|| b.iter(|| depthwise_on(isa, input.get(), 1, shape, MatRef::dense(kernels.get(), k * k, ch), epilogue, black_box(out.get_mut()))))
            });
        }
    }
    group.finish();
    let mut group = c.benchmark_group("separable");
    for (h, ch, n) in [(56, 192, 32), (14, 576, 96)] {
        let shape = ConvShape { h, w: h, channels: ch, k: 7, stride: 1 };
        let (input, kernels, weights) = (values(h * h * ch), values(49 * ch), values(ch * n));
        let panels = PanelMatrix::from_row_major(weights.get(), ch, n, panels::width(Isa::best()));
        let (mut mid, mut out, mut scratch) = (values(h * h * ch), values(h * h * n), AlignedBuf::default());
        group.throughput(Throughput::Elements((h * h * ch * (49 + n)) as u64));
        let dw_epilogue = Epilogue { scale: &ones[..ch], shift: &zeros[..ch], act: Activation::HSwish };
        let pw_epilogue = Epilogue { scale: &ones[..n], shift: &zeros[..n], act: Activation::None };
        let depthwise = Depthwise { shape, kernels: MatRef::dense(kernels.get(), 49, ch), epilogue: dw_epilogue };
        for isa in Isa::available() {
            let panels = PanelMatrix::from_row_major(weights.get(), ch, n, panels::width(isa));
            let project = Pointwise { weights: panels.view(ch, n).into(), epilogue: pw_epilogue };
            group.bench_function(BenchmarkId::new(isa.name(), format!("{h}x{h}x{ch}to{n}")), |b| {
                on_pool(|| b.iter(|| separable(isa, input.get(), Layout::PixelMajor, 1, depthwise, project, None, &mut scratch, black_box(out.get_mut()))))
            });
        }
        group.bench_function(BenchmarkId::new("pair", format!("{h}x{h}x{ch}to{n}")), |b| {
            on_pool(|| {
                b.iter(|| {
                    depthwise_on(Isa::best(), input.get(), 1, shape, depthwise.kernels, dw_epilogue, mid.get_mut());
                    pointwise(MatRef::dense(mid.get(), h * h, ch), panels.view(ch, n), pw_epilogue, None, black_box(out.get_mut()))
                })
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("stem");
    let (shape, c_out) = (ConvShape { h: 224, w: 224, channels: 3, k: 3, stride: 2 }, 24);
    let (ho, wo) = shape.out_hw();
    let (input, weights) = (values(3 * 224 * 224), values(27 * c_out));
    let mut out = values(ho * wo * c_out);
    group.throughput(Throughput::Elements((ho * wo * c_out * 27) as u64));
    let epilogue = Epilogue { scale: &ones[..c_out], shift: &zeros[..c_out], act: Activation::HSwish };
    for isa in Isa::available() {
        group.bench_function(BenchmarkId::new(isa.name(), 224), |b| {
            on_pool(|| b.iter(|| conv2d_on(isa, input.get(), 1, shape, MatRef::dense(weights.get(), 27, c_out), epilogue, black_box(out.get_mut()))))
        });
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
