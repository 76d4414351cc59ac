//! Order statistics of latency samples, one rule each: the interpolated median, and the
//! nearest-rank quantile of sorted samples.

/// Median of `samples`, the mean of the two middle ones for an even count (0 for none).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

/// The `q` quantile of `sorted` (ascending) by nearest rank: the sample at index
/// `round((len − 1) · q)`; 0 for none. At `q = 0.5` it is the upper middle sample.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[((n - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize],
    }
}

/// `samples` sorted ascending.
pub fn sorted(samples: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut sorted: Vec<f64> = samples.into_iter().collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_nearest_ranks() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        let s = sorted([4.0, 1.0, 3.0, 2.0]);
        assert_eq!(nearest_rank(&s, 0.5), 3.0);
        assert_eq!(nearest_rank(&s, 0.95), 4.0);
        assert_eq!(nearest_rank(&s, 0.25), 2.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
    }
}
