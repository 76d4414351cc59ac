//! Every kernel against a naive implementation, over odd sizes: channel counts that are
//! not multiples of a vector width, 1×1 and odd spatial sizes, stride 2 on odd inputs,
//! strided weight views.

use dynofa_kernels::conv::conv2d;
use dynofa_kernels::depthwise::{depthwise, out_size, Epilogue};
use dynofa_kernels::epilogue::{affine_act, Activation};
use dynofa_kernels::matrix::{matmul, matvec, MatRef};

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

#[test]
fn matmul_on_strided_prefix_views() {
    for (m, k, n) in [(1, 1, 1), (7, 13, 5), (33, 17, 49), (96, 24, 1), (5, 200, 3)] {
        let (ld_a, ld_b) = (k + 3, n + 2);
        let a = values((m + 1) * ld_a, 1);
        let b = values((k + 2) * ld_b, 2);
        let a_view = MatRef::strided(&a, m + 1, k + 3, ld_a).top_left(m, k);
        let b_view = MatRef::strided(&b, k + 2, n + 2, ld_b).top_left(k, n);
        for threads in [1, 2] {
            let mut c = vec![f32::NAN; m * n];
            matmul(&mut c, a_view, b_view, threads);
            let want: Vec<f64> = (0..m * n)
                .map(|idx| (0..k).map(|i| a[(idx / n) * ld_a + i] as f64 * b[i * ld_b + idx % n] as f64).sum())
                .collect();
            assert_close(&c, &want, &format!("matmul {m}×{k}×{n}, {threads} threads"));
        }
        let x = values(k, 3);
        let bias = values(m, 4);
        let mut y = vec![0.0; m];
        matvec(&mut y, a_view, &x, Some(&bias));
        let want: Vec<f64> =
            (0..m).map(|r| (0..k).map(|i| a[r * ld_a + i] as f64 * x[i] as f64).sum::<f64>() + bias[r] as f64).collect();
        assert_close(&y, &want, "matvec");
    }
}

fn naive_conv(input: &[f32], c_in: usize, h: usize, w: usize, weight: &[f32], c_out: usize, k: usize, stride: usize, groups: usize) -> Vec<f64> {
    let (ho, wo) = (out_size(h, k, stride), out_size(w, k, stride));
    let pad = k as isize / 2;
    let per_group = c_in / groups;
    let mut out = vec![0.0; c_out * ho * wo];
    for o in 0..c_out {
        let g = o / (c_out / groups);
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = 0.0f64;
                for ci in 0..per_group {
                    let c = g * per_group + ci;
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * stride) as isize + ky as isize - pad;
                            let ix = (ox * stride) as isize + kx as isize - pad;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            acc += input[(c * h + iy as usize) * w + ix as usize] as f64
                                * weight[((o * per_group + ci) * k + ky) * k + kx] as f64;
                        }
                    }
                }
                out[(o * ho + oy) * wo + ox] = acc;
            }
        }
    }
    out
}

#[test]
fn depthwise_matches_naive() {
    for &(c, h, w) in &[(1, 1, 1), (3, 5, 7), (17, 9, 9), (33, 14, 14), (8, 11, 6)] {
        for k in [3, 5, 7] {
            for stride in [1, 2] {
                let input = values(c * h * w, 5);
                // Kernels stored with a wider row (a prefix view of 7×7 storage).
                let ld = 49.max(k * k);
                let store = values(c * ld, 6);
                let view = MatRef::strided(&store, c, k * k, ld);
                let dense: Vec<f32> = (0..c).flat_map(|r| view.row(r).to_vec()).collect();
                let scale = values(c, 7);
                let shift = values(c, 8);
                let (ho, wo) = (out_size(h, k, stride), out_size(w, k, stride));
                let mut out = vec![f32::NAN; c * ho * wo];
                let epi = Epilogue { scale: &scale, shift: &shift, act: Activation::HSwish };
                depthwise(&input, h, w, view, k, stride, epi, &mut out);
                let raw = naive_conv(&input, c, h, w, &dense, c, k, stride, c);
                let want: Vec<f64> = raw
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| Activation::HSwish.apply((v * scale[i / (ho * wo)] as f64 + shift[i / (ho * wo)] as f64) as f32) as f64)
                    .collect();
                assert_close(&out, &want, &format!("depthwise c{c} {h}×{w} k{k} s{stride}"));
            }
        }
    }
}

#[test]
fn dense_conv_matches_naive() {
    for &(c_in, c_out, h, w, k, stride) in &[(3, 24, 17, 17, 3, 2), (3, 5, 8, 9, 3, 2), (2, 3, 4, 4, 3, 1), (3, 16, 1, 1, 3, 2)] {
        let input = values(c_in * h * w, 9);
        let weight = values(c_out * c_in * k * k, 10);
        let (ho, wo) = (out_size(h, k, stride), out_size(w, k, stride));
        let mut cols = vec![0.0; c_in * k * k * ho * wo];
        let mut out = vec![f32::NAN; c_out * ho * wo];
        conv2d(&input, c_in, h, w, MatRef::dense(&weight, c_out, c_in * k * k), k, stride, &mut cols, &mut out, 2);
        let want = naive_conv(&input, c_in, h, w, &weight, c_out, k, stride, 1);
        assert_close(&out, &want, &format!("conv {c_in}→{c_out} {h}×{w} k{k} s{stride}"));
    }
}

#[test]
fn epilogue_with_residual() {
    let (c, n) = (5, 7);
    let mut data = values(c * n, 11);
    let orig = data.clone();
    let (scale, shift, res) = (values(c, 12), values(c, 13), values(c * n, 14));
    affine_act(&mut data, n, &scale, &shift, Activation::Relu, Some(&res));
    let want: Vec<f64> =
        (0..c * n).map(|i| ((orig[i] * scale[i / n] + shift[i / n]).max(0.0) + res[i]) as f64).collect();
    assert_close(&data, &want, "affine + relu + residual");
}
