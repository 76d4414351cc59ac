//! The DNN's latency over the last frames: windowed mean and p95, and a smoothed estimate.

use std::collections::VecDeque;

/// The last `capacity` frame latencies, with an exponentially smoothed estimate.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    recent: VecDeque<f64>,
    capacity: usize,
    smoothed: Option<f64>,
    alpha: f64,
}

impl LatencyWindow {
    /// A window of `capacity` frames; the smoothed estimate moves by `alpha` of each new
    /// frame's difference.
    pub fn new(capacity: usize, alpha: f64) -> Self {
        LatencyWindow { recent: VecDeque::with_capacity(capacity.max(1)), capacity: capacity.max(1), smoothed: None, alpha }
    }

    /// Adds one frame's latency.
    pub fn push(&mut self, ms: f64) {
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        self.smoothed = Some(match self.smoothed {
            Some(s) => s + self.alpha * (ms - s),
            None => ms,
        });
    }

    /// Forgets every frame (e.g. after a switch: the old level's latencies say little).
    pub fn clear(&mut self) {
        self.recent.clear();
        self.smoothed = None;
    }

    /// Frames in the window.
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// Whether no frame was pushed since the last clear.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// Frames the window holds when full.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the window holds `capacity` frames.
    pub fn is_full(&self) -> bool {
        self.recent.len() == self.capacity
    }

    /// Mean over the window.
    pub fn mean(&self) -> Option<f64> {
        (!self.recent.is_empty()).then(|| self.recent.iter().sum::<f64>() / self.recent.len() as f64)
    }

    /// 95th percentile over the window (nearest rank).
    pub fn p95(&self) -> Option<f64> {
        if self.recent.is_empty() {
            return None;
        }
        Some(crate::stats::nearest_rank(&crate::stats::sorted(self.recent.iter().copied()), 0.95))
    }

    /// The exponentially smoothed latency.
    pub fn smoothed(&self) -> Option<f64> {
        self.smoothed
    }

    /// The latest frame's latency.
    pub fn last(&self) -> Option<f64> {
        self.recent.back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_statistics() {
        let mut w = LatencyWindow::new(4, 0.5);
        assert_eq!(w.mean(), None);
        for ms in [10.0, 20.0, 30.0, 40.0, 50.0] {
            w.push(ms);
        }
        assert_eq!(w.len(), 4);
        assert_eq!(w.mean(), Some(35.0));
        assert_eq!(w.p95(), Some(50.0));
        assert_eq!(w.last(), Some(50.0));
        // 10 → 15 → 22.5 → 31.25 → 40.625
        assert!((w.smoothed().unwrap() - 40.625).abs() < 1e-12);
        w.clear();
        assert!(w.is_empty() && w.smoothed().is_none());
    }
}
