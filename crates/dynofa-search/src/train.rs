//! Training an accuracy predictor from measured (sub-network, accuracy) pairs, as OFA's
//! users do for their own supernets and datasets (once-for-all issue #30): the same MLP
//! and encoding as the official predictor, mean-squared error, Adam (lr 1e-3, weight decay
//! 1e-4), the output bias initialised to the mean accuracy, a held-out split for the
//! error report. Matrix products go through the `gemm` crate.

use std::path::Path;

use dynofa_supernet::SubnetConfig;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::predictor::{AccuracyPredictor, FEATURES, HIDDEN};

/// Training settings (OFA's recipe by default).
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    /// Passes over the training split.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// L2 weight decay (added to the gradient, as `torch.optim.Adam` does).
    pub weight_decay: f64,
    /// Share of the samples held out for the error report.
    pub held_out: f64,
    /// Seed of the initialisation, the split and the shuffles.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { epochs: 50, batch: 256, lr: 1e-3, weight_decay: 1e-4, held_out: 0.2, seed: 0 }
    }
}

/// Errors of a trained predictor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Training samples.
    pub train: usize,
    /// Held-out samples.
    pub held_out: usize,
    /// Root-mean-square error on the training split.
    pub train_rmse: f64,
    /// Root-mean-square error on the held-out split.
    pub held_out_rmse: f64,
    /// Mean absolute error on the held-out split.
    pub held_out_mae: f64,
    /// Held-out RMSE of always predicting the training mean (the baseline to beat).
    pub held_out_rmse_of_mean: f64,
}

/// One layer in training: `W [out, in]`, `b [out]`, and Adam's moments.
struct Layer {
    w: Vec<f32>,
    b: Vec<f32>,
    inputs: usize,
    moments: [Vec<f32>; 4], // m_w, v_w, m_b, v_b
}

impl Layer {
    /// PyTorch's `nn.Linear` initialisation: U(−1/√in, 1/√in) for weights and bias.
    fn new(inputs: usize, outputs: usize, rng: &mut ChaCha8Rng) -> Self {
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut draw = |n| (0..n).map(|_| rng.random_range(-bound..bound)).collect::<Vec<f32>>();
        let (w, b) = (draw(inputs * outputs), draw(outputs));
        let moments = [vec![0.0; w.len()], vec![0.0; w.len()], vec![0.0; b.len()], vec![0.0; b.len()]];
        Layer { w, b, inputs, moments }
    }

    fn outputs(&self) -> usize {
        self.b.len()
    }
}

/// `c[m × n] = a[m × k] · b[k × n]`, each operand given by (data, row stride, column stride).
fn matmul(c: &mut [f32], (m, n, k): (usize, usize, usize), a: (&[f32], usize, usize), b: (&[f32], usize, usize)) {
    assert!(c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    // SAFETY: callers pass operands whose strides stay inside their slices (checked by the
    // shapes of the layers and batches they come from); `c` holds m × n values.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.0.as_ptr(),
            a.2 as isize,
            a.1 as isize,
            b.0.as_ptr(),
            b.2 as isize,
            b.1 as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// Forward of a batch `x [B, 128]`: every layer's pre-activation `z` and activation `a`.
fn forward(layers: &[Layer], x: &[f32], batch: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut out: Vec<(Vec<f32>, Vec<f32>)> = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let input = out.last().map_or(x, |(_, a)| a.as_slice());
        let (k, n) = (layer.inputs, layer.outputs());
        let mut z = vec![0.0; batch * n];
        // z = a · Wᵀ + b:  Wᵀ(i, o) = W[o·in + i].
        matmul(&mut z, (batch, n, k), (input, k, 1), (&layer.w, 1, k));
        z.chunks_mut(n).for_each(|row| row.iter_mut().zip(&layer.b).for_each(|(v, b)| *v += b));
        let last = i + 1 == layers.len();
        let a = if last { z.clone() } else { z.iter().map(|v| v.max(0.0)).collect() };
        out.push((z, a));
    }
    out
}

/// Encodes samples into a feature matrix and a target vector.
fn encode(samples: &[&(SubnetConfig, f64)]) -> (Vec<f32>, Vec<f32>) {
    let x = samples.iter().flat_map(|(s, _)| AccuracyPredictor::encode(s)).collect();
    let y = samples.iter().map(|(_, acc)| *acc as f32).collect();
    (x, y)
}

fn rmse_mae(layers: &[Layer], samples: &[&(SubnetConfig, f64)]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let (x, y) = encode(samples);
    let acts = forward(layers, &x, samples.len());
    let pred = &acts.last().expect("layers").1;
    let n = samples.len() as f64;
    let se: f64 = pred.iter().zip(&y).map(|(p, y)| ((p - y) as f64).powi(2)).sum();
    let ae: f64 = pred.iter().zip(&y).map(|(p, y)| ((p - y) as f64).abs()).sum();
    ((se / n).sqrt(), ae / n)
}

/// Trains a predictor on `samples` (accuracy as a fraction); `progress(epoch, epochs)`.
pub fn train(samples: &[(SubnetConfig, f64)], options: TrainOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<(AccuracyPredictor, TrainReport)> {
    if samples.len() < 10 {
        return Err(Error::InvalidValue { field: "training samples".into(), value: samples.len().to_string(), expected: "at least 10".into() });
    }
    if let Some((i, (_, acc))) = samples.iter().enumerate().find(|(_, (_, a))| !a.is_finite()) {
        return Err(Error::InvalidValue { field: format!("accuracy of sample {i}"), value: acc.to_string(), expected: "a number".into() });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut order: Vec<&(SubnetConfig, f64)> = samples.iter().collect();
    order.shuffle(&mut rng);
    let held = ((samples.len() as f64 * options.held_out).round() as usize).min(samples.len() - 1);
    let (held_out, mut training) = (order[..held].to_vec(), order[held..].to_vec());
    let mean = training.iter().map(|(_, a)| a).sum::<f64>() / training.len() as f64;

    let dims = [(FEATURES, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 1)];
    let mut layers: Vec<Layer> = dims.iter().map(|&(i, o)| Layer::new(i, o, &mut rng)).collect();
    layers.last_mut().expect("layers").b[0] = mean as f32;
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut step = 0i32;
    for epoch in 0..options.epochs {
        training.shuffle(&mut rng);
        for chunk in training.chunks(options.batch.max(1)) {
            let batch = chunk.len();
            let (x, y) = encode(chunk);
            let acts = forward(&layers, &x, batch);
            // dL/dz of the output for L = mean (ŷ − y)².
            let mut dz: Vec<f32> = acts.last().expect("layers").1.iter().zip(&y).map(|(p, y)| 2.0 * (p - y) / batch as f32).collect();
            step += 1;
            let (c1, c2) = (1.0 - beta1.powi(step), 1.0 - beta2.powi(step));
            for l in (0..layers.len()).rev() {
                let input = if l == 0 { x.as_slice() } else { acts[l - 1].1.as_slice() };
                let (k, n) = (layers[l].inputs, layers[l].outputs());
                // dW = dzᵀ · a  [n, k];  db = Σ_batch dz;  da = dz · W  [B, k].
                let mut dw = vec![0.0; n * k];
                matmul(&mut dw, (n, k, batch), (&dz, 1, n), (input, k, 1));
                let db: Vec<f32> = (0..n).map(|o| dz.iter().skip(o).step_by(n).sum()).collect();
                let next_dz = (l > 0).then(|| {
                    let mut da = vec![0.0; batch * k];
                    matmul(&mut da, (batch, k, n), (&dz, n, 1), (&layers[l].w, k, 1));
                    // Through the previous layer's ReLU.
                    da.iter_mut().zip(&acts[l - 1].0).for_each(|(d, z)| {
                        if *z <= 0.0 {
                            *d = 0.0
                        }
                    });
                    da
                });
                let layer = &mut layers[l];
                let [mw, vw, mb, vb] = &mut layer.moments;
                for (params, grads, m, v) in [(&mut layer.w, &dw, mw, vw), (&mut layer.b, &db, mb, vb)] {
                    for (((p, &g), m), v) in params.iter_mut().zip(grads.iter()).zip(m.iter_mut()).zip(v.iter_mut()) {
                        let g = g as f64 + options.weight_decay * *p as f64;
                        *m = (beta1 * *m as f64 + (1.0 - beta1) * g) as f32;
                        *v = (beta2 * *v as f64 + (1.0 - beta2) * g * g) as f32;
                        *p -= (options.lr * (*m as f64 / c1) / ((*v as f64 / c2).sqrt() + eps)) as f32;
                    }
                }
                if let Some(next) = next_dz {
                    dz = next;
                }
            }
        }
        progress(epoch + 1, options.epochs);
    }
    let (train_rmse, _) = rmse_mae(&layers, &training);
    let (held_out_rmse, held_out_mae) = rmse_mae(&layers, &held_out);
    let held_out_rmse_of_mean = (held_out.iter().map(|(_, a)| (a - mean).powi(2)).sum::<f64>() / held_out.len().max(1) as f64).sqrt();
    let report = TrainReport { train: training.len(), held_out: held_out.len(), train_rmse, held_out_rmse, held_out_mae, held_out_rmse_of_mean };
    let predictor = AccuracyPredictor::from_layers(layers.into_iter().map(|l| (l.w, l.b, l.inputs)).collect());
    Ok((predictor, report))
}

/// Reads `ks,e,d,r,acc` rows (lists space-separated, accuracy a fraction or a percentage
/// above 1, which is divided by 100); errors name the line.
pub fn read_csv(path: &Path) -> Result<Vec<(SubnetConfig, f64)>> {
    #[derive(Deserialize)]
    struct Row {
        ks: String,
        e: String,
        d: String,
        r: usize,
        acc: f64,
    }
    let bad = |line: u64, value: String| Error::InvalidValue {
        field: format!("{}:{line}", path.display()),
        value,
        expected: "a row `ks,e,d,r,acc` of whole numbers and an accuracy".into(),
    };
    let file = std::fs::File::open(path).map_err(|e| dynofa_supernet::Error::io(path, e))?;
    let mut reader = csv::Reader::from_reader(file);
    let mut out = Vec::new();
    for row in reader.deserialize::<Row>() {
        let row = row.map_err(|e| bad(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = out.len() as u64 + 2;
        let list = |field: &str, text: &str| -> Result<Vec<usize>> {
            text.split_whitespace().map(|v| v.parse().map_err(|_| bad(line, format!("{field}: '{v}' is not a whole number")))).collect()
        };
        let subnet = SubnetConfig { ks: list("ks", &row.ks)?, e: list("e", &row.e)?, d: list("d", &row.d)?, r: vec![row.r] };
        let acc = if row.acc > 1.0 { row.acc / 100.0 } else { row.acc };
        out.push((subnet, acc));
    }
    Ok(out)
}
