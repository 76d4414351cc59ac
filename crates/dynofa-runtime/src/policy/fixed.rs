//! `static:LEVEL[@T]` / `static:DEVICE:LEVEL`: one level of one processor, on every
//! thread (or `T`), never switches (the comparison baseline).

use super::{Configuration, Decision, Observation, Policy, Reason, thread_counts};
use crate::level_table::LevelTable;
use crate::requirements::Requirements;

/// Runs one level of one processor (on all threads of the CPU).
#[derive(Debug, Clone)]
pub struct Fixed {
    device: usize,
    level: usize,
    /// Threads, when not all.
    threads: Option<usize>,
    /// `static:LEVEL` on the CPU, `static:DEVICE:LEVEL` elsewhere.
    name: String,
}

impl Fixed {
    /// Always `level` of `model`, the runtime's family number `device`.
    pub fn new(device: usize, model: &LevelTable, level: usize) -> Self {
        let name = match model.device.as_str() {
            "cpu" => format!("static:{level}"),
            other => format!("static:{other}:{level}"),
        };
        Fixed { device, level, threads: None, name }
    }

    /// On `threads` threads (capped at those allowed) instead of all, when `Some`.
    pub fn with_threads(mut self, threads: Option<usize>) -> Self {
        if let Some(t) = threads {
            self.name = format!("{}@{t}", self.name);
        }
        self.threads = threads;
        self
    }
}

impl Policy for Fixed {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn start(&mut self, models: &[LevelTable], _: &Requirements, max_threads: usize) -> Decision {
        let config = match models.get(self.device) {
            Some(model) => {
                let all = thread_counts(model, max_threads);
                Configuration {
                    device: self.device,
                    level: self.level.min(model.levels().saturating_sub(1)),
                    threads: self.threads.map_or(all, |t| t.clamp(1, all)),
                }
            }
            // Made for other families: the runtime refuses a processor it does not have.
            None => Configuration { device: self.device, level: self.level, threads: 1 },
        };
        Decision::new(config, Reason::Start)
    }

    fn decide(&mut self, o: &Observation) -> Decision {
        Decision::new(o.config, Reason::Hold)
    }
}
