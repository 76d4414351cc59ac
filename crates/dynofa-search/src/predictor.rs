//! OFA's accuracy predictor: an MLP 128 → 400 → 400 → 400 → 1 (ReLU between) on a
//! one-hot encoding of the sub-network, loaded from the official `acc_predictor.pth`
//! (keys `0.weight … 6.bias`, torch's legacy or zip format, through the supernet crate's
//! guarded checkpoint reader).

use std::collections::HashSet;
use std::path::Path;

use dynofa_supernet::arch::SLOTS;
use dynofa_supernet::checkpoint::Checkpoint;
use dynofa_supernet::pth::{NamedTensor, write_state_dict};
use dynofa_supernet::state_dict::TensorSource;
use dynofa_supernet::{Result, SubnetConfig};

/// Input features: one-hot kernel size per slot (60), expand ratio per slot (60),
/// resolution bucket (8).
pub const FEATURES: usize = 128;
/// Hidden width.
pub const HIDDEN: usize = 400;
/// Kernel sizes, in one-hot order.
const KERNELS: [usize; 3] = [3, 5, 7];
/// Expand ratios, in one-hot order.
const EXPANDS: [usize; 3] = [3, 4, 6];
/// Resolution buckets: `(r − 112) / 16`.
const RESOLUTION_BUCKETS: usize = 8;

/// One fully connected layer, `y = W x + b`, with `W` kept transposed (`[in, out]`) so
/// that `y` is a sum of weight rows scaled by the inputs: it vectorises along `out`, and
/// zero inputs (most of the one-hot features, about half after a ReLU) are skipped.
#[derive(Debug, Clone, PartialEq)]
struct Dense {
    weight_t: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    /// From PyTorch's `[out, in]` weight.
    fn new(weight: Vec<f32>, bias: Vec<f32>, inputs: usize) -> Self {
        let outputs = bias.len();
        let weight_t = (0..inputs).flat_map(|i| (0..outputs).map(move |o| (o, i))).map(|(o, i)| weight[o * inputs + i]).collect();
        Dense { weight_t, bias }
    }

    fn apply(&self, x: &[f32], relu: bool) -> Vec<f32> {
        let mut y = self.bias.clone();
        for (&xi, row) in x.iter().zip(self.weight_t.chunks_exact(y.len())) {
            if xi != 0.0 {
                y.iter_mut().zip(row).for_each(|(y, w)| *y += xi * w);
            }
        }
        if relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        y
    }
}

/// The accuracy predictor (its output is a top-1 accuracy as a fraction).
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyPredictor {
    layers: Vec<Dense>,
}

/// Layer shapes `(name prefix, outputs, inputs)` of the MLP, as `nn.Sequential` numbers them.
const LAYERS: [(&str, usize, usize); 4] = [("0", HIDDEN, FEATURES), ("2", HIDDEN, HIDDEN), ("4", HIDDEN, HIDDEN), ("6", 1, HIDDEN)];

impl AccuracyPredictor {
    /// Loads the official predictor file (every key and shape checked, errors name them).
    pub fn load(path: &Path) -> Result<Self> {
        let known: HashSet<String> = LAYERS.iter().flat_map(|(p, _, _)| [format!("{p}.weight"), format!("{p}.bias")]).collect();
        let mut file = Checkpoint::open(path, &known)?;
        let layers = LAYERS
            .iter()
            .map(|&(prefix, out, inputs)| {
                Ok(Dense::new(file.tensor(&format!("{prefix}.weight"), &[out, inputs])?, file.tensor(&format!("{prefix}.bias"), &[out])?, inputs))
            })
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.in_file(path))?;
        Ok(AccuracyPredictor { layers })
    }

    /// A predictor from trained layers `(W [out, in], b, in)`.
    pub(crate) fn from_layers(layers: Vec<(Vec<f32>, Vec<f32>, usize)>) -> Self {
        AccuracyPredictor { layers: layers.into_iter().map(|(w, b, inputs)| Dense::new(w, b, inputs)).collect() }
    }

    /// Writes it in the official file's layout (PyTorch zip, keys `0.weight … 6.bias`), so
    /// that `--predictor` takes it like the official one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: Vec<NamedTensor> = self
            .layers
            .iter()
            .zip(LAYERS)
            .flat_map(|(layer, (prefix, out, inputs))| {
                let weight = (0..out).flat_map(|o| (0..inputs).map(move |i| (o, i))).map(|(o, i)| layer.weight_t[i * out + o]).collect();
                [
                    NamedTensor { name: format!("{prefix}.weight"), shape: vec![out, inputs], data: weight },
                    NamedTensor { name: format!("{prefix}.bias"), shape: vec![out], data: layer.bias.clone() },
                ]
            })
            .collect();
        write_state_dict(path, &tensors, false)
    }

    /// OFA's encoding of `subnet` (`spec2feats`): slots beyond a stage's depth are zeros.
    pub fn encode(subnet: &SubnetConfig) -> [f32; FEATURES] {
        let mut x = [0.0; FEATURES];
        for slot in subnet.active_slots().filter(|&s| s < SLOTS) {
            if let Some(i) = KERNELS.iter().position(|&k| k == subnet.ks[slot]) {
                x[slot * 3 + i] = 1.0;
            }
            if let Some(i) = EXPANDS.iter().position(|&e| e == subnet.e[slot]) {
                x[3 * SLOTS + slot * 3 + i] = 1.0;
            }
        }
        let bucket = subnet.resolution().saturating_sub(112) / 16;
        x[6 * SLOTS + bucket.min(RESOLUTION_BUCKETS - 1)] = 1.0;
        x
    }

    /// Predicted top-1 accuracy of `subnet` (a fraction). Trained on r = 160…224.
    pub fn predict(&self, subnet: &SubnetConfig) -> f64 {
        let mut x = Self::encode(subnet).to_vec();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.apply(&x, i + 1 < self.layers.len());
        }
        x[0] as f64
    }
}
