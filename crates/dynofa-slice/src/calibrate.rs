//! BatchNorm re-calibration, exactly as OFA's `set_running_statistics`.
//!
//! Each calibration batch runs a forward in which every BN normalises with the batch's
//! own statistics (mean and biased variance over N, H, W) and records them; the new running
//! statistics are the averages over batches, weighted by batch size.

use std::collections::BTreeMap;

use burn::prelude::*;
use dynofa_supernet::layers::{BatchNorm, param};

use crate::static_net::{Normalizer, StaticNet};

/// Weighted sums of batch statistics per BN layer.
#[derive(Default)]
struct Recorder {
    /// name → (Σ n·mean, Σ n·var, Σ n)
    sums: BTreeMap<String, (Tensor<1>, Tensor<1>, usize)>,
}

impl Normalizer for Recorder {
    fn bn(&mut self, name: &str, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
        let [n, c, _, _] = x.dims();
        let mean = x.clone().mean_dim(0).mean_dim(2).mean_dim(3); // [1, C, 1, 1]
        let centred = x - mean.clone();
        let var = (centred.clone() * centred.clone()).mean_dim(0).mean_dim(2).mean_dim(3); // [1, C, 1, 1] biased
        let (m1, v1) = (mean.clone().reshape([c]), var.clone().reshape([c]));
        self.sums
            .entry(name.to_string())
            .and_modify(|(sm, sv, count)| {
                *sm = sm.clone() + m1.clone() * n as f64;
                *sv = sv.clone() + v1.clone() * n as f64;
                *count += n;
            })
            .or_insert_with(|| (m1 * n as f64, v1 * n as f64, n));
        let gamma = bn.weight.val().reshape([1, c, 1, 1]);
        let beta = bn.bias.val().reshape([1, c, 1, 1]);
        centred / (var + dynofa_supernet::layers::BN_EPS).sqrt() * gamma + beta // [B, C, H, W]
    }
}

/// Re-estimates the BN running statistics of `net` on `batches` (each `[B, 3, R, R]`).
/// `progress` is called after each batch with (done, total).
pub fn recalibrate(net: &mut StaticNet, batches: impl IntoIterator<Item = Tensor<4>>, mut progress: impl FnMut(usize)) {
    let mut recorder = Recorder::default();
    for (i, batch) in batches.into_iter().enumerate() {
        let _ = net.forward_with(batch, &mut recorder);
        progress(i + 1);
    }
    let names = crate::static_net::bn_layers(&net.arch);
    for ((name, _), bn) in names.iter().zip(net.batch_norms_mut()) {
        if let Some((sum_mean, sum_var, count)) = recorder.sums.remove(name) {
            bn.running_mean = param(sum_mean / count as f64);
            bn.running_var = param(sum_var / count as f64);
        }
    }
}
