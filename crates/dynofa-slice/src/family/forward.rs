//! The forward of the active level: one image layer by layer, or a batch (images in
//! parallel up to the level's split, then the whole batch layer by layer), on buffers
//! reused from call to call.

use rayon::prelude::*;

use dynofa_kernels::conv::conv2d;
use dynofa_kernels::depthwise::{depthwise, depthwise_from};
use dynofa_kernels::pointwise::{pointwise, pointwise_to};
use dynofa_kernels::pool::{mean_pixels, mean_pixels_banded, scale_channels_banded};
use dynofa_kernels::separable::{Depthwise, Pointwise, separable};
use dynofa_kernels::shape::{ConvShape, out_size};
use dynofa_kernels::{Activation, AlignedBuf, Epilogue, Isa, Layout, MatRef};
use dynofa_supernet::layers::SqueezeExcite;
use dynofa_supernet::supernet::BlockSpec;
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{Error, Result, SubnetConfig};

use super::FamilyStore;
use super::timing::{Stopwatch, Timings, depthwise_labels};
use super::weights::{Affine, LevelBlock, act};

/// A batch's trunk runs one image at a time while activations are large (each image's
/// stay in cache), then from the first block whose input is downsampled by this factor
/// (14×14 and 7×7 at r = 224, where the weights are larger than one image's activations)
/// layer by layer for the whole batch, so that each weight is read once per batch.
pub(super) const BATCH_FROM_DOWNSAMPLING: usize = 16;

/// Where a level's trunk switches to the whole batch: block index `block`, whose input is
/// `[h, w, channels]` per image (see [`BATCH_FROM_DOWNSAMPLING`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Split {
    pub(super) block: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) channels: usize,
}

impl Split {
    pub(super) fn of(specs: &[BlockSpec], config: &SubnetConfig, blocks: &[LevelBlock], stem: usize) -> Split {
        let r = config.resolution();
        let (mut h, mut w, mut channels) = (out_size(r, 3, 2), out_size(r, 3, 2), stem);
        for (i, lb) in blocks.iter().enumerate() {
            if h * BATCH_FROM_DOWNSAMPLING <= r {
                return Split { block: i, h, w, channels };
            }
            let spec = &specs[lb.slot];
            (h, w, channels) = (out_size(h, lb.kernel, spec.stride), out_size(w, lb.kernel, spec.stride), spec.out_channels);
        }
        Split { block: blocks.len(), h, w, channels }
    }

    /// Values of one image's activation here.
    pub(super) fn values(&self) -> usize {
        self.h * self.w * self.channels
    }
}

/// Reusable buffers, grown to the largest level's needs for the largest batch seen.
#[derive(Default)]
pub(super) struct Workspace {
    /// Activations `[B, H, W, C]`, 64-byte aligned.
    pub(super) bufs: [AlignedBuf; 4],
    /// Squeeze-and-excitation's channel vectors `[C]`: pooled features, squeezed features, gates.
    pub(super) pooled: Vec<f32>,
    pub(super) squeezed: Vec<f32>,
    pub(super) gates: Vec<f32>,
    /// Per-thread means of squeeze-and-excitation pooling `[threads, C]`.
    pub(super) band_means: Vec<f32>,
    /// Per-thread chunks of depthwise output on their way to the projection ([`separable`]).
    pub(super) separable: AlignedBuf,
}

/// The head's inputs and hidden layer for a whole batch: pooled features `[B,
/// final_expand]` and the feature mix `[B, feature_mix]` (grown to the largest batch seen).
#[derive(Default)]
pub(super) struct BatchHead {
    pub(super) features: Vec<f32>,
    pub(super) hidden: Vec<f32>,
}

impl BatchHead {
    pub(super) fn reserve(&mut self, batch: usize, final_expand: usize, feature_mix: usize) {
        for (b, values) in [(&mut self.features, batch * final_expand), (&mut self.hidden, batch * feature_mix)] {
            if b.len() < values {
                b.resize(values, 0.0);
            }
        }
    }
}

impl Workspace {
    pub(super) fn reserve(&mut self, activations: usize, channels: usize) {
        for b in self.bufs.iter_mut() {
            b.reserve(activations);
        }
        for b in [&mut self.pooled, &mut self.squeezed, &mut self.gates] {
            if b.len() < channels {
                b.resize(channels, 0.0);
            }
        }
    }
}

/// Where a forward is in its level's own BatchNorm list (in forward order), if it has one.
pub(super) type BnCursor<'a> = Option<std::slice::Iter<'a, Affine>>;

/// The next per-level BN if the level has its own, else the shared one.
pub(super) fn pick<'a>(own: &mut BnCursor<'a>, shared: &'a Affine) -> &'a Affine {
    own.as_mut().and_then(Iterator::next).unwrap_or(shared)
}

impl FamilyStore {
    /// Logits `[B, classes]` of the active level on a batch `[B, 3, r, r]` (NCHW values).
    pub fn forward(&mut self, input: &Array) -> Result<Array> {
        let r = self.levels[self.active].config.resolution();
        if input.shape.len() != 4 || input.shape[1..] != [3, r, r] {
            return Err(Error::InvalidValue {
                field: "input".into(),
                value: format!("shape {:?}", input.shape),
                expected: format!("[B, 3, {r}, {r}] for level {}", self.active),
            });
        }
        let batch = input.shape[0];
        let classes = self.config.num_classes;
        let widths = self.config.widths();
        let (fe, fm) = (widths.final_expand, widths.feature_mix);
        let mut logits = vec![0.0; batch * classes];
        // Up to the level's split, images run in parallel, one per worker (each with its
        // own buffers, which stay in cache better than a whole batch layer by layer);
        // within an image, every kernel splits its work over the threads left idle. From
        // the split on, the batch runs layer by layer on all threads, and so does the
        // head, so that the weights of those layers are read once per batch.
        let workers = self.threads.min(batch).max(1);
        self.reserve_workers(workers);
        let split = self.levels[self.active].split;
        if batch > 1 {
            self.batched.reserve(batch * self.per_image_batched, batch * self.per_image.1);
        }
        let per_worker = batch.div_ceil(workers);
        let mut workspaces = std::mem::take(&mut self.workspaces);
        let mut batched = std::mem::take(&mut self.batched);
        let mut head = std::mem::take(&mut self.head);
        head.reserve(batch, fe, fm);
        let this = &*self;
        this.on_threads(|| {
            let features = &mut head.features[..batch * fe];
            if batch == 1 {
                this.trunk(&mut workspaces[0], &input.data, r, features, &mut Stopwatch::new(&mut None));
            } else {
                // Each image up to the split, into its slot of the batch.   → [B, h, w, C]
                // (Returns the BatchNorm cursor there, the same for every image.)
                let to_split = |ws: &mut Workspace, images: &[f32], slots: &mut [f32]| {
                    let mut bn = None;
                    for (image, slot) in images.chunks(3 * r * r).zip(slots.chunks_mut(split.values())) {
                        bn = Some(this.layers_to_split(ws, image, r, &mut Stopwatch::new(&mut None)));
                        slot.copy_from_slice(&ws.bufs[0][..split.values()]);
                    }
                    bn
                };
                let slots = &mut batched.bufs[0][..batch * split.values()];
                let bn = if workers == 1 {
                    to_split(&mut workspaces[0], &input.data, slots)
                } else {
                    workspaces
                        .par_iter_mut()
                        .zip(input.data.par_chunks(per_worker * 3 * r * r))
                        .zip(slots.par_chunks_mut(per_worker * split.values()))
                        .map(|((ws, images), slots)| to_split(ws, images, slots))
                        .reduce_with(Option::or)
                        .flatten()
                };
                let mut bn = bn.expect("a batch of more than one image");
                this.layers_from_split(&mut batched, batch, &mut bn, features, &mut Stopwatch::new(&mut None));
            }
            this.head(batch, &head.features[..batch * fe], &mut head.hidden[..batch * fm], &mut logits, &mut Stopwatch::new(&mut None));
        });
        self.workspaces = workspaces;
        self.batched = batched;
        self.head = head;
        Ok(Array { shape: vec![batch, classes], data: logits })
    }

    /// Buffers for `workers` images at a time (allocates only when growing).
    pub(super) fn reserve_workers(&mut self, workers: usize) {
        if self.workspaces.len() < workers {
            self.workspaces.resize_with(workers, Workspace::default);
        }
        for ws in &mut self.workspaces {
            ws.reserve(self.per_image.0, self.per_image.1);
        }
    }

    /// Largest activation (values) and channel count that level `i` needs for one image,
    /// and its largest activation (values per image) from its split on.
    pub(super) fn buffer_sizes(&self, i: usize) -> (usize, usize, usize) {
        let level = &self.levels[i];
        let widths = self.config.widths();
        let r = level.config.resolution();
        let (mut h, mut w) = (out_size(r, 3, 2), out_size(r, 3, 2));
        let mut values = widths.stem * h * w; // the stem's output
        let mut batched = level.split.values();
        let mut channels = widths.feature_mix.max(widths.final_expand);
        for (b, lb) in level.blocks.iter().enumerate() {
            let spec = &self.blocks[lb.slot].as_ref().expect("stored").spec;
            let mut block_values = lb.mid * h * w;
            h = out_size(h, lb.kernel, spec.stride);
            w = out_size(w, lb.kernel, spec.stride);
            block_values = block_values.max(spec.out_channels * h * w);
            values = values.max(block_values);
            if b >= level.split.block {
                batched = batched.max(block_values);
            }
            channels = channels.max(lb.mid);
        }
        let final_expand = widths.final_expand * h * w;
        (values.max(final_expand), channels, batched.max(final_expand))
    }

    /// Logits `[classes]` of the active level for one image `[3, r, r]` (trunk and head),
    /// on the current rayon pool, with buffers `ws` and `head`, recording operation and
    /// layer times when `timings` is given.
    pub(super) fn forward_image_timed(
        &self,
        ws: &mut Workspace,
        head: &mut BatchHead,
        image: &[f32],
        r: usize,
        logits: &mut [f32],
        timings: &mut Option<Timings>,
    ) {
        let widths = self.config.widths();
        let (features, hidden) = (&mut head.features[..widths.final_expand], &mut head.hidden[..widths.feature_mix]);
        let mut clock = Stopwatch::new(timings);
        self.trunk(ws, image, r, features, &mut clock);
        self.head(1, features, hidden, logits, &mut clock);
    }

    /// Pooled features `[final_expand]` of the active level for one image `[3, r, r]`:
    /// every layer up to the head's pooling. Activations are pixel-major, `[H, W, C]`,
    /// except expanded ones on their way to a depthwise convolution where
    /// [`Layout::for_depthwise`] picks channel blocks.
    fn trunk(&self, ws: &mut Workspace, image: &[f32], r: usize, features: &mut [f32], clock: &mut Stopwatch) {
        let mut bn = self.layers_to_split(ws, image, r, clock);
        self.layers_from_split(ws, 1, &mut bn, features, clock);
    }

    /// The active level's layers before its split for one image `[3, r, r]`: stem, first
    /// block, blocks before `split.block`. Leaves the activation `[h, w, C]` (the split's)
    /// in `ws.bufs[0]`, and returns where the BatchNorm cursor is.
    fn layers_to_split<'a>(&'a self, ws: &mut Workspace, image: &[f32], r: usize, clock: &mut Stopwatch) -> BnCursor<'a> {
        let level = &self.levels[self.active];
        let mut bn = level.bn.as_ref().map(|v| v.iter());
        let stem = self.config.widths().stem;
        let (h, w) = (out_size(r, 3, 2), out_size(r, 3, 2));
        let [cur, t1, t2, _] = &mut ws.bufs;

        // Stem: conv 3×3 s2 → BN → h-swish.                         [3, r, r] → [h, w, stem]
        let a = pick(&mut bn, &self.stem_bn);
        let shape = ConvShape { h: r, w: r, channels: 3, k: 3, stride: 2 };
        conv2d(image, 1, shape, self.stem.view(27, stem), a.epilogue(stem, Activation::HSwish), cur);
        clock.lap("stem");
        clock.end_layer();
        // Block 0: depthwise 3×3 → BN → ReLU → 1×1 → BN, + input.    [h, w, stem]
        let a = pick(&mut bn, &self.block0_depthwise_bn);
        let shape = ConvShape { h, w, channels: stem, k: 3, stride: 1 };
        depthwise(cur, 1, shape, self.block0_depthwise.view(9, stem), a.epilogue(stem, Activation::Relu), t1);
        let a = pick(&mut bn, &self.block0_project_bn);
        pointwise(MatRef::dense(t1, h * w, stem), self.block0_project.view(stem, stem), a.epilogue(stem, Activation::None), Some(cur), t2);
        std::mem::swap(cur, t2);
        clock.lap("first_block");
        clock.end_layer();

        let (ho, wo) = self.blocks(ws, 1, &level.blocks[..level.split.block], (h, w), &mut bn, clock);
        debug_assert_eq!((ho, wo), (level.split.h, level.split.w));
        bn
    }

    /// The active level's layers from its split to the head's pooling, for a `batch` of
    /// activations `[B, h, w, C]` (the split's) in `ws.bufs[0]`, layer by layer: pooled
    /// features `[B, final_expand]`.
    fn layers_from_split<'a>(&'a self, ws: &mut Workspace, batch: usize, bn: &mut BnCursor<'a>, features: &mut [f32], clock: &mut Stopwatch) {
        let level = &self.levels[self.active];
        let Split { block, h, w, .. } = level.split;
        let (h, w) = self.blocks(ws, batch, &level.blocks[block..], (h, w), bn, clock);

        // Final expansion 1×1 → BN → h-swish → mean.                 [B, h, w, last] → [B, fe]
        let widths = self.config.widths();
        let (fe, n) = (widths.final_expand, h * w);
        let last = widths.stages[4];
        let [cur, t1, ..] = &mut ws.bufs;
        let a = pick(bn, &self.final_expand_bn);
        pointwise(MatRef::dense(cur, batch * n, last), self.final_expand.view(last, fe), a.epilogue(fe, Activation::HSwish), None, t1);
        clock.lap("final_expand");
        clock.end_layer();
        for (image, features) in t1[..batch * n * fe].chunks(n * fe).zip(features.chunks_mut(fe)) {
            mean_pixels(image, features);
        }
        clock.lap("pool");
        clock.end_layer();
    }

    /// Runs `blocks` layer by layer on a `batch` of activations `[B, h, w, C]` in
    /// `ws.bufs[0]`, leaving the output there; returns its `(h, w)`.
    fn blocks<'a>(
        &'a self,
        ws: &mut Workspace,
        batch: usize,
        blocks: &[LevelBlock],
        (mut h, mut w): (usize, usize),
        bn: &mut BnCursor<'a>,
        clock: &mut Stopwatch,
    ) -> (usize, usize) {
        let [cur, t1, t2, t3] = &mut ws.bufs;
        for lb in blocks {
            let sb = self.blocks[lb.slot].as_ref().expect("every level's slots are stored");
            let spec = &sb.spec;
            let (mid, k) = (lb.mid, lb.kernel);
            let activation = act(spec.act);
            // Expand 1×1 → BN → act, in channel blocks where the AVX-512 bodies run (the
            // depthwise convolution then reads a block's rows as contiguous runs).
            //                                                          [B, h, w, in] → [B, h, w, mid]
            let isa = Isa::best();
            let layout = Layout::for_depthwise(isa, mid);
            let a = pick(bn, &sb.expand_bn);
            pointwise_to(
                isa,
                MatRef::dense(cur, batch * h * w, spec.in_channels),
                sb.expand.view(spec.in_channels, mid),
                a.epilogue(mid, activation),
                None,
                t1,
                layout,
            );
            clock.lap("expand");
            // Depthwise k×k → BN → act.                              → [B, h', w', mid]
            let kernels = match &lb.own_kernels {
                Some(m) => m.view(k * k, mid),
                None => sb.depthwise.view(k * k, mid),
            };
            let a = pick(bn, &sb.depthwise_bn);
            let shape = ConvShape { h, w, channels: mid, k, stride: spec.stride };
            let depthwise = Depthwise { shape, kernels, epilogue: a.epilogue(mid, activation) };
            (h, w) = shape.out_hw();
            let n = h * w;
            // Project 1×1 → BN (+ input).                            → [B, h', w', out]
            let out = spec.out_channels;
            let residual = spec.residual.then_some(&cur[..batch * n * out]);
            let a = pick(bn, &sb.project_bn);
            let project = Pointwise { weights: sb.project.view(mid, out).into(), epilogue: a.epilogue(out, Activation::None) };
            match &sb.se {
                // Without squeeze-and-excitation, the projection follows the depthwise
                // convolution chunk by chunk (the depthwise output stays in cache).
                None => {
                    separable(isa, t1, layout, batch, depthwise, project, residual, &mut ws.separable, t3);
                    clock.lap(depthwise_labels(k).1);
                }
                // Else squeeze-and-excitation between them: pool → 1×1 → ReLU → 1×1 →
                // h-sigmoid → gate.
                Some(se) => {
                    depthwise_from(isa, t1, layout, batch, shape, kernels, depthwise.epilogue, t2);
                    clock.lap(depthwise_labels(k).0);
                    let reduced = SqueezeExcite::reduced(mid);
                    let (pooled, squeezed, gates) = (&mut ws.pooled[..batch * mid], &mut ws.squeezed[..batch * reduced], &mut ws.gates[..batch * mid]);
                    mean_pixels_banded(&t2[..batch * n * mid], batch, h, pooled, &mut ws.band_means);
                    clock.lap("se_pool");
                    let reduce = Epilogue { scale: &self.ones[..reduced], shift: &se.reduce_bias[..reduced], act: Activation::Relu };
                    pointwise(MatRef::dense(pooled, batch, mid), se.reduce.view(mid, reduced), reduce, None, squeezed);
                    let expand = Epilogue { scale: &self.ones[..mid], shift: &se.expand_bias[..mid], act: Activation::HSigmoid };
                    pointwise(MatRef::dense(squeezed, batch, reduced), se.expand.view(reduced, mid), expand, None, gates);
                    clock.lap("se_fc");
                    scale_channels_banded(&mut t2[..batch * n * mid], batch, h, gates);
                    clock.lap("squeeze_excite");
                    pointwise(MatRef::dense(t2, batch * n, mid), project.weights, project.epilogue, residual, t3);
                    clock.lap("project");
                }
            }
            clock.end_layer();
            std::mem::swap(cur, t3);
        }

        (h, w)
    }

    /// Logits `[B, classes]` from pooled features `[B, final_expand]`: feature mix 1×1 →
    /// h-swish → classifier, each one product for the whole batch. `hidden`: `[B, feature_mix]`.
    fn head(&self, batch: usize, features: &[f32], hidden: &mut [f32], logits: &mut [f32], clock: &mut Stopwatch) {
        let widths = self.config.widths();
        let (fe, fm, classes) = (widths.final_expand, widths.feature_mix, self.config.num_classes);
        let mix = Epilogue { scale: &self.ones[..fm], shift: &self.zeros[..fm], act: Activation::HSwish };
        pointwise(MatRef::dense(features, batch, fe), self.feature_mix.view(fe, fm), mix, None, hidden);
        clock.lap("feature_mix");
        clock.end_layer();
        let classify = Epilogue { scale: &self.ones[..classes], shift: &self.classifier_bias, act: Activation::None };
        pointwise(MatRef::dense(hidden, batch, fm), self.classifier.view(fm, classes), classify, None, logits);
        clock.lap("classifier");
        clock.end_layer();
    }
}
