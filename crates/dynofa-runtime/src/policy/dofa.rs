//! The reference Dynamic-OFA manager (`runtime_demo` of the paper's code), in-process.
//!
//! At each level it ignores the first `warmup` frames, then keeps the last `window`
//! latencies: when their mean exceeds the target it steps down one level. After
//! `warmup + settle + window` frames at a level whose accuracy is below the floor it
//! steps up one level — unless the last two switches were up into that level and down out
//! of it again (the two-level history that stops ping-pong); that block lapses after as
//! many frames again, so that a load that has gone is noticed. It never steps up for
//! latency alone, and always runs on every thread — of the first processor given: the
//! reference manages one processor's family.

use super::{Configuration, Decision, Observation, Policy, Reason, thread_counts};
use crate::level_table::LevelTable;
use crate::monitor::LatencyWindow;
use crate::requirements::Requirements;

/// The reference policy; [`Default`] has the reference's constants (20, 30, 20).
#[derive(Debug, Clone)]
pub struct Dofa {
    warmup: u64,
    settle: u64,
    frames_at_level: u64,
    window: LatencyWindow,
    /// The last two switches, oldest first: `(from, to)`.
    history: [Option<(usize, usize)>; 2],
}

impl Default for Dofa {
    fn default() -> Self {
        // The reference records frames after the 20th and checks accuracy after the 50th
        // once 20 more are recorded.
        Dofa::new(20, 30, 20)
    }
}

impl Dofa {
    /// Ignores `warmup` frames after a switch, averages `window` frames, and waits
    /// `settle` more frames before an accuracy step up.
    pub fn new(warmup: u64, settle: u64, window: usize) -> Self {
        Dofa { warmup, settle, frames_at_level: 0, window: LatencyWindow::new(window, 1.0), history: [None; 2] }
    }

    fn switch(&mut self, from: Configuration, to: usize, reason: Reason) -> Decision {
        self.history = [self.history[1], Some((from.level, to))];
        self.frames_at_level = 0;
        self.window.clear();
        Decision::new(Configuration { level: to, ..from }, reason)
    }

    /// Frames at a level before an accuracy step up: warm-up, settling, one window.
    fn frames_to_settle(&self) -> u64 {
        self.warmup + self.settle + self.window.capacity() as u64
    }

    /// Whether stepping up from `level` would repeat a recent up-then-down bounce.
    fn would_bounce(&self, level: usize) -> bool {
        let recent = self.frames_at_level <= 2 * self.frames_to_settle();
        recent && self.history == [Some((level, level + 1)), Some((level + 1, level))]
    }
}

impl Policy for Dofa {
    fn name(&self) -> String {
        "dofa".into()
    }

    fn start(&mut self, models: &[LevelTable], _: &Requirements, max_threads: usize) -> Decision {
        self.frames_at_level = 0;
        self.window.clear();
        let model = &models[0];
        let config = Configuration { device: 0, level: model.levels().saturating_sub(1), threads: thread_counts(model, max_threads) };
        Decision::new(config, Reason::Start)
    }

    fn decide(&mut self, o: &Observation) -> Decision {
        self.frames_at_level += 1;
        let hold = Decision::new(o.config, Reason::Hold);
        if self.frames_at_level <= self.warmup {
            return hold;
        }
        self.window.push(o.latency_ms);
        let (requirements, level) = (o.requirements, o.config.level);
        if self.window.is_full() && self.window.mean().is_some_and(|m| m > requirements.target_ms) && level > 0 {
            return self.switch(o.config, level - 1, Reason::Down);
        }
        let accurate_enough = requirements.accepts_accuracy(o.model().accuracy[level]);
        let settled = self.frames_at_level > self.frames_to_settle() && self.window.is_full();
        if settled && !accurate_enough && level + 1 < o.model().levels() && !self.would_bounce(level) {
            return self.switch(o.config, level + 1, Reason::Floor);
        }
        hold
    }
}
