//! Every kernel against a naive f64 implementation, for every instruction set this CPU
//! offers and the portable fallback, over odd sizes: channel counts that are not multiples
//! of a vector width (and below one), 1×1 and odd spatial sizes, stride 2 on odd inputs,
//! strided weight views, batches, one and two threads.

use dynofa_kernels::conv::conv2d_on;
use dynofa_kernels::depthwise::{depthwise_from, depthwise_on};
use dynofa_kernels::epilogue::apply_row_on;
use dynofa_kernels::panels::{self, PanelMatrix};
use dynofa_kernels::pointwise::{Weights, pointwise_on, pointwise_to};
use dynofa_kernels::pool::{mean_pixels_banded, mean_pixels_on, scale_channels_banded, scale_channels_on};
use dynofa_kernels::separable::{Depthwise, Pointwise, separable};
use dynofa_kernels::shape::{ConvShape, out_size};
use dynofa_kernels::threads;
use dynofa_kernels::{Activation, AlignedBuf, Epilogue, Isa, Layout, MatRef};

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= 1e-4 + 1e-4 * w.abs(), "{what}: [{i}] {g} vs {w}");
    }
}

fn act64(act: Activation, x: f64) -> f64 {
    let hsig = |x: f64| (x + 3.0).clamp(0.0, 6.0) / 6.0;
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::HSwish => x * hsig(x),
        Activation::HSigmoid => hsig(x),
    }
}

const ACTS: [Activation; 4] = [Activation::None, Activation::Relu, Activation::HSwish, Activation::HSigmoid];

/// Runs `f` with the kernels on `threads` threads: a rayon pool of that many, or — for
/// one — the calling thread alone ([`threads::serial`], what the family store does).
fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    match threads {
        1 => threads::serial(f),
        _ => rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool").install(f),
    }
}

#[test]
fn the_portable_fallback_is_always_available() {
    let available = Isa::available();
    assert_eq!(available.last(), Some(&Isa::Portable));
    assert!(available.contains(&Isa::best()));
    #[cfg(target_arch = "aarch64")]
    assert!(available.contains(&Isa::Neon));
}

#[test]
fn pointwise_matches_naive_on_strided_prefix_views() {
    // Vector–matrix products (M ≤ 2) and GEMMs, split by rows or (few rows) by columns.
    for (m, k, n) in [
        (1, 1, 1),
        (7, 13, 5),
        (37, 32, 19),
        (2001, 24, 24),
        (33, 17, 49),
        (20, 200, 100),
        (300, 24, 40),
        (5, 200, 3),
        (1, 64, 1000),
        (2, 301, 250),
        (2000, 40, 24),
        (150, 190, 200),
        (41, 600, 100),
    ] {
        let (ld_in, ld_w) = (k + 3, n + 2);
        let input = values(m * ld_in, 1);
        let weights = values((k + 2) * ld_w, 2);
        let (scale, shift, residual) = (values(n, 3), values(n, 4), values(m * n, 5));
        let input_view = MatRef::strided(&input, m, k, ld_in);
        let weight_view = MatRef::strided(&weights, k + 2, n + 2, ld_w).top_left(k, n);
        for (isa, threads) in Isa::available().into_iter().flat_map(|isa| [1, 2].map(|threads| (isa, threads))) {
            // Panels of this instruction set's width (the family store's layout), and of
            // another width than its kernel reads (copied to row-major first).
            let panels = PanelMatrix::from_row_major(&weights, k + 2, n + 2, panels::width(isa));
            let odd_panels = PanelMatrix::from_row_major(&weights, k + 2, n + 2, 3);
            for (act, with_residual) in [(Activation::HSwish, false), (Activation::None, true), (Activation::Relu, false)] {
                let mut out = vec![f32::NAN; m * n];
                let epilogue = Epilogue { scale: &scale, shift: &shift, act };
                let res = with_residual.then_some(&residual[..]);
                on_threads(threads, || pointwise_on(isa, input_view, weight_view, epilogue, res, &mut out));
                let mut from_panels = vec![f32::NAN; m * n];
                on_threads(threads, || pointwise_on(isa, input_view, panels.view(k, n), epilogue, res, &mut from_panels));
                let mut from_odd_panels = vec![f32::NAN; m * n];
                on_threads(threads, || pointwise_on(isa, input_view, odd_panels.view(k, n), epilogue, res, &mut from_odd_panels));
                let want: Vec<f64> = (0..m * n)
                    .map(|idx| {
                        let (r, c) = (idx / n, idx % n);
                        let dot: f64 = (0..k).map(|i| input[r * ld_in + i] as f64 * weights[i * ld_w + c] as f64).sum();
                        act64(act, dot * scale[c] as f64 + shift[c] as f64) + if with_residual { residual[idx] as f64 } else { 0.0 }
                    })
                    .collect();
                assert_close(&out, &want, &format!("pointwise {m}×{k}×{n}, {} on {threads} threads, {act:?}", isa.name()));
                assert_close(&from_panels, &want, &format!("pointwise {m}×{k}×{n} from panels, {} on {threads} threads, {act:?}", isa.name()));
                assert_close(&from_odd_panels, &want, &format!("pointwise {m}×{k}×{n} from panels of 3, {} on {threads} threads, {act:?}", isa.name()));
            }
        }
    }
}

/// `[B, ho, wo, C]` of a depthwise convolution of `[B, h, w, C]` with kernels `[k², C]`.
fn naive_depthwise(input: &[f32], batch: usize, shape: ConvShape, kernels: &[f32]) -> Vec<f64> {
    let ConvShape { h, w, channels: c, k, stride } = shape;
    let (ho, wo) = shape.out_hw();
    let pad = (k / 2) as isize;
    let mut out = vec![0.0; batch * ho * wo * c];
    for b in 0..batch {
        for oy in 0..ho {
            for ox in 0..wo {
                for ch in 0..c {
                    let mut acc = 0.0f64;
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * stride) as isize + ky as isize - pad;
                            let ix = (ox * stride) as isize + kx as isize - pad;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            acc += input[((b * h + iy as usize) * w + ix as usize) * c + ch] as f64 * kernels[(ky * k + kx) * c + ch] as f64;
                        }
                    }
                    out[((b * ho + oy) * wo + ox) * c + ch] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn depthwise_matches_naive_for_every_isa() {
    for isa in Isa::available() {
        // 48×9×29 and 20×6×31: wide enough for interior blocks of 8 pixels with k = 7.
        for &(c, h, w) in &[(1, 1, 1), (3, 5, 7), (17, 9, 9), (33, 14, 14), (8, 11, 6), (40, 7, 7), (24, 13, 3), (16, 2, 17), (48, 9, 29), (20, 6, 31)] {
            for k in [3, 5, 7, 9] {
                for stride in [1, 2] {
                    let shape = ConvShape { h, w, channels: c, k, stride };
                    let (ho, wo) = shape.out_hw();
                    let batch = 2;
                    let input = values(batch * h * w * c, 5);
                    // Kernels read as a prefix of wider rows (a level's view of the store).
                    let ld = c + 5;
                    let store = values(k * k * ld, 6);
                    let view = MatRef::strided(&store, k * k, c, ld);
                    let dense: Vec<f32> = (0..k * k).flat_map(|r| view.row(r).to_vec()).collect();
                    let (scale, shift) = (values(c, 7), values(c, 8));
                    let act = ACTS[(c + k + stride) % ACTS.len()];
                    let mut out = vec![f32::NAN; batch * ho * wo * c];
                    let epi = Epilogue { scale: &scale, shift: &shift, act };
                    let threads = 1 + (c + h) % 2; // both cases over the shapes
                    on_threads(threads, || depthwise_on(isa, &input, batch, shape, view, epi, &mut out));
                    let want: Vec<f64> = naive_depthwise(&input, batch, shape, &dense)
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| act64(act, v * scale[i % c] as f64 + shift[i % c] as f64))
                        .collect();
                    assert_close(&out, &want, &format!("{} depthwise c{c} {h}×{w} k{k} s{stride} {act:?} on {threads} threads", isa.name()));
                }
            }
        }
    }
}

#[test]
fn stem_conv_matches_naive() {
    for &(batch, c_in, c_out, h, w, k, stride) in
        &[(1, 3, 24, 17, 17, 3, 2), (2, 3, 5, 8, 9, 3, 2), (1, 2, 3, 4, 4, 3, 1), (3, 3, 16, 1, 1, 3, 2), (1, 3, 40, 37, 35, 3, 2), (2, 3, 19, 23, 40, 5, 1)]
    {
        let input = values(batch * c_in * h * w, 9); // [B, C_in, h, w]
        let weight = values(c_out * c_in * k * k, 10); // [C_out, C_in, k, k]
        let transposed: Vec<f32> = (0..c_in * k * k).flat_map(|j| (0..c_out).map(move |o| (o, j))).map(|(o, j)| weight[o * c_in * k * k + j]).collect();
        let (ho, wo) = (out_size(h, k, stride), out_size(w, k, stride));
        let (scale, shift) = (vec![1.0; c_out], vec![0.0; c_out]);
        let epi = Epilogue { scale: &scale, shift: &shift, act: Activation::None };
        let shape = ConvShape { h, w, channels: c_in, k, stride };
        let outs: Vec<(String, Vec<f32>)> = Isa::available()
            .into_iter()
            .flat_map(|isa| [1, 2].map(|threads| (isa, threads)))
            .map(|(isa, threads)| {
                let mut out = vec![f32::NAN; batch * ho * wo * c_out];
                on_threads(threads, || conv2d_on(isa, &input, batch, shape, MatRef::dense(&transposed, c_in * k * k, c_out), epi, &mut out));
                (format!("{} on {threads} threads", isa.name()), out)
            })
            .collect();
        let pad = (k / 2) as isize;
        let mut want = vec![0.0f64; batch * ho * wo * c_out];
        for b in 0..batch {
            for (o, oy, ox) in (0..c_out).flat_map(|o| (0..ho).flat_map(move |oy| (0..wo).map(move |ox| (o, oy, ox)))) {
                let mut acc = 0.0;
                for c in 0..c_in {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = ((oy * stride) as isize + ky as isize - pad, (ox * stride) as isize + kx as isize - pad);
                            if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                acc += input[((b * c_in + c) * h + iy as usize) * w + ix as usize] as f64 * weight[((o * c_in + c) * k + ky) * k + kx] as f64;
                            }
                        }
                    }
                }
                want[((b * ho + oy) * wo + ox) * c_out + o] = acc;
            }
        }
        for (how, out) in &outs {
            assert_close(out, &want, &format!("conv b{batch} {c_in}→{c_out} {h}×{w} k{k} s{stride}, {how}"));
        }
    }
}

#[test]
fn epilogue_pooling_and_gating_for_every_isa() {
    for isa in Isa::available() {
        for c in [1, 5, 16, 37] {
            let pixels = 9;
            let (scale, shift, res) = (values(c, 12), values(c, 13), values(c, 14));
            for act in ACTS {
                let mut row = values(c, 11);
                let orig = row.clone();
                apply_row_on(isa, &mut row, Epilogue { scale: &scale, shift: &shift, act }, Some(&res));
                let want: Vec<f64> = (0..c).map(|i| act64(act, orig[i] as f64 * scale[i] as f64 + shift[i] as f64) + res[i] as f64).collect();
                assert_close(&row, &want, &format!("{} epilogue {act:?} c{c}", isa.name()));
            }
            let image = values(pixels * c, 15);
            let mut means = vec![f32::NAN; c];
            mean_pixels_on(isa, &image, &mut means);
            let want: Vec<f64> = (0..c).map(|ch| (0..pixels).map(|p| image[p * c + ch] as f64).sum::<f64>() / pixels as f64).collect();
            assert_close(&means, &want, &format!("{} mean c{c}", isa.name()));
            let mut gated = image.clone();
            scale_channels_on(isa, &mut gated, &res);
            let want: Vec<f64> = (0..pixels * c).map(|i| image[i] as f64 * res[i % c] as f64).collect();
            assert_close(&gated, &want, &format!("{} gate c{c}", isa.name()));
        }
    }
}

#[test]
fn banded_pooling_and_gating_match_naive_on_1_and_2_threads() {
    // One image: rows that split evenly, unevenly (7 → 4 + 3; 65 → 33 + 32) and not at
    // all (1; too little work: see `threads::SERIAL_BELOW`). Batches: whole images per
    // thread (3 and 5 images ≥ 2 threads), or too little work to split.
    for (batch, rows, w, c) in
        [(1, 28, 28, 96), (1, 7, 7, 1400), (1, 65, 33, 31), (1, 1, 5, 16), (1, 3, 1, 20), (3, 7, 7, 1400), (5, 14, 14, 36), (2, 3, 1, 20)]
    {
        let pixels = rows * w;
        let images = values(batch * pixels * c, 16);
        let gates = values(batch * c, 17);
        for threads in [1, 2] {
            let (mut means, mut partial) = (vec![f32::NAN; batch * c], Vec::new());
            let mut gated = images.clone();
            on_threads(threads, || {
                mean_pixels_banded(&images, batch, rows, &mut means, &mut partial);
                scale_channels_banded(&mut gated, batch, rows, &gates);
            });
            let what = format!("{batch}×{rows}×{w}×{c} on {threads} threads");
            let want: Vec<f64> =
                (0..batch * c).map(|bc| (0..pixels).map(|p| images[((bc / c) * pixels + p) * c + bc % c] as f64).sum::<f64>() / pixels as f64).collect();
            assert_close(&means, &want, &format!("banded mean {what}"));
            let want: Vec<f64> = (0..batch * pixels * c).map(|i| images[i] as f64 * gates[(i / (pixels * c)) * c + i % c] as f64).collect();
            assert_close(&gated, &want, &format!("banded gate {what}"));
        }
    }
}

#[test]
fn aligned_buffers_start_on_a_cache_line_and_keep_values_when_growing() {
    let mut buf = AlignedBuf::default();
    assert!(buf.is_empty());
    buf.reserve(20);
    assert!(buf.len() >= 20 && (buf.as_ptr() as usize).is_multiple_of(64));
    buf[..20].iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
    buf.reserve(1000);
    assert!(buf.len() >= 1000 && (buf.as_ptr() as usize).is_multiple_of(64));
    assert!(buf[..20].iter().enumerate().all(|(i, &v)| v == i as f32));
}

#[test]
fn expansion_hands_channel_blocks_to_depthwise_on_every_vector_instruction_set() {
    // Channel blocks (one vector of channels each) are chosen on every vector instruction
    // set, for channel counts that are multiples of its lanes; the portable fallback stays
    // pixel-major.
    for isa in Isa::available() {
        let blocked = |c: usize| if isa != Isa::Portable && c.is_multiple_of(isa.lanes()) { Layout::ChannelBlocks } else { Layout::PixelMajor };
        for c in [48, 40, 20, 6] {
            assert_eq!(Layout::for_depthwise(isa, c), blocked(c), "{} channels on {}", c, isa.name());
        }
    }
    for isa in Isa::available().into_iter().filter(|&isa| isa != Isa::Portable) {
        let lanes = isa.lanes();
        // Expansion `[B·h·w, in] → [C/L, B·h·w, L]`, then depthwise from those planes: equal to
        // the naive expansion then depthwise convolution. Batches (planes hold every image),
        // odd sizes, both strides, every kernel size, row blocks of 1–8 rows (M = 1 and 3).
        for &(batch, h, w, in_channels, c) in &[(1, 9, 7, 5, 16), (2, 13, 11, 8, 48), (3, 6, 15, 3, 32), (1, 1, 1, 4, 16), (1, 3, 1, 6, 64)] {
            let m = batch * h * w;
            let (input, weights) = (values(m * in_channels, 11), values(in_channels * c, 12));
            let (scale, shift) = (values(c, 13), values(c, 14));
            let expand = Epilogue { scale: &scale, shift: &shift, act: Activation::HSwish };
            let panels = PanelMatrix::from_row_major(&weights, in_channels, c, panels::width(isa));
            let expanded: Vec<f64> = (0..m * c)
                .map(|i| {
                    let (p, ch) = (i / c, i % c);
                    let dot: f64 = (0..in_channels).map(|j| input[p * in_channels + j] as f64 * weights[j * c + ch] as f64).sum();
                    act64(Activation::HSwish, dot * scale[ch] as f64 + shift[ch] as f64)
                })
                .collect();
            for threads in [1, 2] {
                let mut blocks = vec![f32::NAN; m * c];
                on_threads(threads, || {
                    pointwise_to(isa, MatRef::dense(&input, m, in_channels), panels.view(in_channels, c), expand, None, &mut blocks, Layout::ChannelBlocks)
                });
                // Channel `ch` of pixel `p` is at `[ch / L][p][ch % L]`.
                let pixel_major: Vec<f32> = (0..m * c).map(|i| blocks[(i % c / lanes * m + i / c) * lanes + i % lanes]).collect();
                assert_close(
                    &pixel_major,
                    &expanded,
                    &format!("expansion to channel blocks {batch}×{h}×{w}×{in_channels}→{c} on {threads} threads, {}", isa.name()),
                );
                for k in [3, 5, 7] {
                    for stride in [1, 2] {
                        let shape = ConvShape { h, w, channels: c, k, stride };
                        let (ho, wo) = shape.out_hw();
                        let kernels = values(k * k * c, 15);
                        let epi = Epilogue { scale: &shift, shift: &scale, act: Activation::Relu };
                        let mut out = vec![f32::NAN; batch * ho * wo * c];
                        on_threads(threads, || {
                            depthwise_from(isa, &blocks, Layout::ChannelBlocks, batch, shape, MatRef::dense(&kernels, k * k, c), epi, &mut out)
                        });
                        let want: Vec<f64> = naive_depthwise(&pixel_major, batch, shape, &kernels)
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| act64(Activation::Relu, v * shift[i % c] as f64 + scale[i % c] as f64))
                            .collect();
                        assert_close(
                            &out,
                            &want,
                            &format!("depthwise from channel blocks {batch}×{h}×{w}×{c} k{k} s{stride} on {threads} threads, {}", isa.name()),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn separable_equals_depthwise_then_pointwise() {
    // Depthwise then 1×1 by chunks of rows: equal to the naive pair for every instruction
    // set, one and two threads, both input layouts where channel blocks are allowed, both
    // weight layouts, with and without a residual. The 20×20×208 case has several chunks
    // per band (chunks of 6 rows), and with three images on two threads a band starts in
    // the middle of an image.
    let cases = [(1, 9, 7, 24, 5, 3, 1), (2, 13, 11, 32, 40, 5, 2), (3, 20, 20, 208, 24, 7, 1), (3, 6, 15, 16, 16, 7, 2), (1, 1, 1, 16, 3, 3, 1)];
    for &(batch, h, w, c, n, k, stride) in &cases {
        let shape = ConvShape { h, w, channels: c, k, stride };
        let (ho, wo) = shape.out_hw();
        let (m_in, m_out) = (batch * h * w, batch * ho * wo);
        let (input, kernels, weights) = (values(m_in * c, 21), values(k * k * c, 22), values(c * n, 23));
        let (dw_scale, dw_shift, pw_scale, pw_shift, residual) = (values(c, 24), values(c, 25), values(n, 26), values(n, 27), values(m_out * n, 28));
        let dw_epilogue = Epilogue { scale: &dw_scale, shift: &dw_shift, act: Activation::HSwish };
        let pw_epilogue = Epilogue { scale: &pw_scale, shift: &pw_shift, act: Activation::None };
        let convolved: Vec<f64> = naive_depthwise(&input, batch, shape, &kernels)
            .iter()
            .enumerate()
            .map(|(i, &v)| act64(Activation::HSwish, v * dw_scale[i % c] as f64 + dw_shift[i % c] as f64))
            .collect();
        let projected: Vec<f64> = (0..m_out * n)
            .map(|i| {
                let (p, ch) = (i / n, i % n);
                let dot: f64 = (0..c).map(|j| convolved[p * c + j] * weights[j * n + ch] as f64).sum();
                dot * pw_scale[ch] as f64 + pw_shift[ch] as f64
            })
            .collect();
        for isa in Isa::available() {
            // Channel `ch` of pixel `p` is at `[ch / L][p][ch % L]` in channel blocks.
            let l = isa.lanes();
            let blocks: Vec<f32> =
                if c % l == 0 { (0..m_in * c).map(|i| input[(i % (l * m_in) / l) * c + i / (l * m_in) * l + i % l]).collect() } else { Vec::new() };
            let panels = PanelMatrix::from_row_major(&weights, c, n, panels::width(isa));
            let layouts =
                if Layout::for_depthwise(isa, c) == Layout::ChannelBlocks { vec![Layout::PixelMajor, Layout::ChannelBlocks] } else { vec![Layout::PixelMajor] };
            for (layout, threads, with_residual, use_panels) in
                layouts.iter().flat_map(|&l| [(l, 1, true, false), (l, 2, false, true), (l, 2, true, false), (l, 1, false, true)])
            {
                let input = if layout == Layout::ChannelBlocks { &blocks } else { &input };
                let depthwise = Depthwise { shape, kernels: MatRef::dense(&kernels, k * k, c), epilogue: dw_epilogue };
                let weights: Weights = if use_panels { panels.view(c, n).into() } else { MatRef::dense(&weights, c, n).into() };
                let pointwise = Pointwise { weights, epilogue: pw_epilogue };
                let mut out = vec![f32::NAN; m_out * n];
                let mut scratch = AlignedBuf::default();
                on_threads(threads, || {
                    separable(isa, input, layout, batch, depthwise, pointwise, with_residual.then_some(&residual[..]), &mut scratch, &mut out)
                });
                let want: Vec<f64> = projected.iter().zip(&residual).map(|(&v, &r)| v + if with_residual { r as f64 } else { 0.0 }).collect();
                let what = format!(
                    "separable {batch}×{h}×{w}×{c} k{k} s{stride} → {n}, {layout:?}, {}, {threads} threads, residual {with_residual}, panels {use_panels}",
                    isa.name()
                );
                assert_close(&out, &want, &what);
            }
        }
    }
}
