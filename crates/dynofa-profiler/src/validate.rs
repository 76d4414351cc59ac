//! How good a table's predictions are: random sub-networks measured whole (timed with
//! the tables, in the same interleaved canary-relative rounds: [`crate::measure()`]) against
//! the sum of their layers' entries. A linear correction (`scale × sum + offset`, or
//! `scale × sum`) is chosen by leave-one-out cross-validation and applied only where it
//! lowers the held-out error; the report gives nn-Meter's yardstick — the share of
//! networks predicted within ±5% and ±10% — beside the mean and worst error.

use dynofa_supernet::arch::{SLOTS, STAGES};
use dynofa_supernet::{SubnetConfig, SupernetConfig};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::measure::Measured;
use crate::table::LatencyTables;

/// One validation sub-network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The sub-network.
    pub subnet: SubnetConfig,
    /// The table's prediction (sum of layers), ms.
    pub predicted_ms: f64,
    /// Measured whole (canary-relative estimate), ms.
    pub measured_ms: f64,
    /// The corrected prediction with the correction fitted on the other points (the
    /// held-out prediction; equal to `predicted_ms` when no correction is applied), ms.
    pub held_out_ms: f64,
}

/// `latency ≈ scale × Σ layers + offset_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    /// Multiplier of the summed prediction.
    pub scale: f64,
    /// Added, ms.
    pub offset_ms: f64,
}

/// The shapes of correction cross-validation chooses between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionModel {
    /// None: the sum of layers as it is.
    Identity,
    /// `scale × sum`.
    Scale,
    /// `scale × sum + offset`.
    Affine,
}

impl Correction {
    /// No correction.
    pub const IDENTITY: Correction = Correction { scale: 1.0, offset_ms: 0.0 };

    /// The corrected prediction.
    pub fn apply(&self, summed_ms: f64) -> f64 {
        self.scale * summed_ms + self.offset_ms
    }

    /// Least squares of measured on predicted over `(predicted, measured)` pairs (identity
    /// below two points or when all predictions are equal).
    pub fn fit(model: CorrectionModel, xy: &[(f64, f64)]) -> Self {
        let n = xy.len() as f64;
        match model {
            CorrectionModel::Identity => Self::IDENTITY,
            _ if xy.len() < 2 => Self::IDENTITY,
            CorrectionModel::Scale => {
                let sxx: f64 = xy.iter().map(|p| p.0 * p.0).sum();
                if sxx <= 0.0 {
                    return Self::IDENTITY;
                }
                Correction { scale: xy.iter().map(|p| p.0 * p.1).sum::<f64>() / sxx, offset_ms: 0.0 }
            }
            CorrectionModel::Affine => {
                let (mx, my) = (xy.iter().map(|p| p.0).sum::<f64>() / n, xy.iter().map(|p| p.1).sum::<f64>() / n);
                let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
                if sxx <= f64::EPSILON * mx * mx {
                    return Self::IDENTITY;
                }
                let scale = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
                Correction { scale, offset_ms: my - scale * mx }
            }
        }
    }

    /// Each pair's prediction by `model` fitted on the other pairs (leave one out).
    pub fn held_out(model: CorrectionModel, xy: &[(f64, f64)]) -> Vec<f64> {
        (0..xy.len())
            .map(|i| {
                let others: Vec<(f64, f64)> = xy.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &p)| p).collect();
                Self::fit(model, &others).apply(xy[i].0)
            })
            .collect()
    }
}

/// Errors of a set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorStats {
    /// Mean absolute percentage error, %.
    pub mape: f64,
    /// Largest absolute percentage error, %.
    pub worst: f64,
    /// Share of predictions within ±5% of the measurement, %.
    #[serde(default)]
    pub within_5_pct: f64,
    /// Share of predictions within ±10% of the measurement, % (nn-Meter's yardstick).
    #[serde(default)]
    pub within_10_pct: f64,
}

impl ErrorStats {
    /// The errors of `(predicted, measured)` pairs.
    pub fn of(pairs: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let errors: Vec<f64> = pairs.into_iter().map(|(predicted, measured)| 100.0 * (predicted - measured).abs() / measured).collect();
        let n = errors.len().max(1) as f64;
        let within = |pct: f64| 100.0 * errors.iter().filter(|&&e| e <= pct).count() as f64 / n;
        ErrorStats {
            mape: errors.iter().sum::<f64>() / n,
            worst: errors.iter().copied().fold(0.0, f64::max),
            within_5_pct: within(5.0),
            within_10_pct: within(10.0),
        }
    }
}

/// The outcome of [`validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Share of held-out networks the tables predict within ±5%, % (with the correction
    /// where it is applied).
    pub within_5_pct: f64,
    /// Share within ±10%, % (nn-Meter's yardstick).
    pub within_10_pct: f64,
    /// Every sub-network measured.
    pub points: Vec<Point>,
    /// The summed prediction's error (nothing fitted: every point is held out).
    pub raw: ErrorStats,
    /// The error of the predictions the tables give, held out: the corrected ones fitted
    /// without the point judged where the correction is applied, else the raw ones.
    pub held_out: ErrorStats,
    /// The correction's shape that cross-validation chose.
    pub model: CorrectionModel,
    /// The correction to apply (fitted on every point; the identity when none helps).
    pub correction: Correction,
}

/// `n` random sub-networks of `config` at resolutions drawn from `resolutions` (seeded).
pub fn random_subnets(config: &SupernetConfig, resolutions: &[usize], n: usize, seed: u64) -> Vec<SubnetConfig> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut pick = |choices: &[usize]| choices[rng.random_range(0..choices.len())];
    (0..n)
        .map(|_| SubnetConfig {
            ks: (0..SLOTS).map(|_| pick(&config.kernel_sizes)).collect(),
            e: (0..SLOTS).map(|_| pick(&config.expand_ratios)).collect(),
            d: (0..STAGES).map(|_| pick(&config.depths)).collect(),
            r: vec![pick(resolutions)],
        })
        .collect()
}

/// Points a correction shape needs before cross-validation may choose it (by
/// [`CorrectionModel`]): a line through two parameters fitted on a handful of points
/// follows their noise.
const MIN_POINTS: [usize; 3] = [0, 4, 8];

/// Percentage points of held-out mean error a richer correction must save to be chosen.
const MARGIN_PP: f64 = 0.1;

/// Judges `tables` on networks measured whole: chooses the correction by leave-one-out
/// cross-validation (the simplest shape whose held-out mean error no richer one lowers by
/// more than a tenth of a percentage point; none unless it beats the raw sum).
pub fn validate(config: &SupernetConfig, tables: &LatencyTables, measured: &[Measured]) -> Result<Validation> {
    let xy: Vec<(f64, f64)> = measured.iter().map(|m| Ok((tables.predict(config, &m.subnet)?, m.ms))).collect::<Result<_>>()?;
    let raw = ErrorStats::of(xy.iter().copied());
    // Shapes from the simplest; a richer one is chosen only if it lowers the held-out mean
    // error by more than MARGIN_PP.
    let mut chosen = (CorrectionModel::Identity, xy.iter().map(|p| p.0).collect::<Vec<f64>>(), raw.mape);
    for model in [CorrectionModel::Scale, CorrectionModel::Affine] {
        if xy.len() < MIN_POINTS[model as usize] {
            continue;
        }
        let predictions = Correction::held_out(model, &xy);
        let mape = ErrorStats::of(predictions.iter().copied().zip(xy.iter().map(|p| p.1))).mape;
        if mape < chosen.2 - MARGIN_PP {
            chosen = (model, predictions, mape);
        }
    }
    let (model, held_out, _) = chosen;
    let points: Vec<Point> = measured
        .iter()
        .zip(&xy)
        .zip(&held_out)
        .map(|((m, &(predicted_ms, measured_ms)), &held_out_ms)| Point { subnet: m.subnet.clone(), predicted_ms, measured_ms, held_out_ms })
        .collect();
    let held_out = ErrorStats::of(points.iter().map(|p| (p.held_out_ms, p.measured_ms)));
    Ok(Validation {
        within_5_pct: held_out.within_5_pct,
        within_10_pct: held_out.within_10_pct,
        points,
        raw,
        held_out,
        model,
        correction: Correction::fit(model, &xy),
    })
}
