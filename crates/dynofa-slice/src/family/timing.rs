//! Timing the store's own path: time per operation kind and per layer (what a latency
//! look-up table lists), recorded in place by a stopwatch the forward carries.

use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{Error, Result};

use super::FamilyStore;

/// Time per operation kind, summed over a forward (see [`FamilyStore::op_profile`]).
pub type OpTimes = std::collections::BTreeMap<&'static str, std::time::Duration>;

/// What a timed forward records: time per operation kind, and per layer in forward order
/// (stem, first block, each active block, final expansion, pooling, feature mix,
/// classifier — the layers of a latency look-up table).
#[derive(Default)]
pub(super) struct Timings {
    pub(super) ops: OpTimes,
    pub(super) layers: Vec<std::time::Duration>,
}

/// Adds the time since the previous lap to an operation kind, and the time since the
/// previous layer's end to the layer list, when timing is on.
pub(super) struct Stopwatch<'a> {
    timings: &'a mut Option<Timings>,
    last: std::time::Instant,
    layer_start: std::time::Instant,
}

impl<'a> Stopwatch<'a> {
    pub(super) fn new(timings: &'a mut Option<Timings>) -> Self {
        let now = std::time::Instant::now();
        Stopwatch { timings, last: now, layer_start: now }
    }

    pub(super) fn lap(&mut self, op: &'static str) {
        if let Some(timings) = self.timings.as_mut() {
            let now = std::time::Instant::now();
            *timings.ops.entry(op).or_default() += now - self.last;
            self.last = now;
        }
    }

    pub(super) fn end_layer(&mut self) {
        if let Some(timings) = self.timings.as_mut() {
            timings.layers.push(self.last - self.layer_start);
            self.layer_start = self.last;
        }
    }
}

/// The operation labels of a depthwise k×k convolution: alone, and fused with the
/// projection after it.
pub(super) fn depthwise_labels(k: usize) -> (&'static str, &'static str) {
    match k {
        3 => ("depthwise_k3", "depthwise_k3+project"),
        5 => ("depthwise_k5", "depthwise_k5+project"),
        7 => ("depthwise_k7", "depthwise_k7+project"),
        _ => ("depthwise", "depthwise+project"),
    }
}

impl FamilyStore {
    /// Milliseconds per operation kind (stem, first block, expand, depthwise by kernel size,
    /// squeeze-and-excitation, project, depthwise and project fused where a block has no
    /// squeeze-and-excitation, head layers) for one image of the active level, the
    /// median over `iters` forwards after two warm-up ones. Every kernel uses all threads.
    pub fn op_profile(&mut self, image: &Array, iters: usize) -> Result<Vec<(&'static str, f64)>> {
        let runs = self.timed_runs(image, 2, iters)?;
        let ops: Vec<&'static str> = runs[0].ops.keys().copied().collect();
        Ok(ops
            .into_iter()
            .map(|op| {
                let mut ms: Vec<f64> = runs.iter().map(|t| t.ops[op].as_secs_f64() * 1e3).collect();
                ms.sort_by(f64::total_cmp);
                (op, ms[ms.len() / 2])
            })
            .collect())
    }

    /// Milliseconds of each layer of the active level (stem, first block, each active
    /// block, final expansion, pooling, feature mix, classifier: the layers a latency
    /// look-up table lists), per run: `[iters][layers]`, after `warmup` untimed runs. One
    /// image, every kernel on all threads — the runtime's path, timed in place.
    pub fn layer_times(&mut self, image: &Array, warmup: usize, iters: usize) -> Result<Vec<Vec<f64>>> {
        let runs = self.timed_runs(image, warmup, iters)?;
        Ok(runs.iter().map(|t| t.layers.iter().map(|d| d.as_secs_f64() * 1e3).collect()).collect())
    }

    /// `iters` (at least one) timed forwards of one image after `warmup` untimed ones.
    fn timed_runs(&mut self, image: &Array, warmup: usize, iters: usize) -> Result<Vec<Timings>> {
        let r = self.levels[self.active].config.resolution();
        if image.shape != [1, 3, r, r] {
            return Err(Error::InvalidValue { field: "input".into(), value: format!("shape {:?}", image.shape), expected: format!("[1, 3, {r}, {r}]") });
        }
        self.reserve_workers(1);
        let mut ws = std::mem::take(&mut self.workspaces[0]);
        let mut head = std::mem::take(&mut self.head); // reserved for one image on construction
        let mut logits = vec![0.0; self.config.num_classes];
        let mut runs = Vec::new();
        let this = &*self;
        for i in 0..iters.max(1) + warmup {
            let mut timings = (i >= warmup).then(Timings::default);
            this.on_threads(|| this.forward_image_timed(&mut ws, &mut head, &image.data, r, &mut logits, &mut timings));
            runs.extend(timings);
        }
        (self.workspaces[0], self.head) = (ws, head);
        Ok(runs)
    }
}
