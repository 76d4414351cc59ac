//! The GPU family on the first GPU adapter (skipped, with a message, where there is none):
//! which layout a level should have on a GPU.
//!
//! - `gpu_layout/per_level/{name}`: the level as the GPU family runs it — a network of its
//!   own, resident, BatchNorm folded (what dynofa does);
//! - `gpu_layout/shared_weights/{name}`: the same sub-network by the supernet's dynamic
//!   forward on the device, one copy of the weights for every level (each frame slices
//!   them, which on a GPU copies the slices);
//! - `gpu_layout/static_conv/{name}`: the extracted static network as Burn runs it (every
//!   layer a convolution, BatchNorm as its own pass);
//! - `gpu_switch`: `switch_to` between the GPU family's levels;
//!
//! at batch 1 and 8 on the smallest, a middle and the largest sub-network (w1.2, seeded
//! weights; the time is the whole frame: input up, logits back).

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;

use burn::prelude::*;
use criterion::{Criterion, criterion_group, criterion_main};
use dynofa_device::DeviceId;
use dynofa_slice::{GpuFamily, LoadedFamily, extract};
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{SubnetConfig, SupernetConfig, Width};

fn subnet(name: &str) -> SubnetConfig {
    SubnetConfig::from_spec(&format!("{}/../assets/subnets/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn input(batch: usize, r: usize) -> Array {
    Array::benchmark_input(batch, r)
}

fn gpu_family(c: &mut Criterion) {
    let gpu = match dynofa_device::open_gpu(DeviceId::Gpu(None)) {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("gpu_family: SKIPPED, no GPU ({e})");
            return;
        }
    };
    eprintln!("gpu_family: on {}", gpu.adapter.describe());
    let device = gpu.device;
    let host = Device::flex();
    let net = SupernetConfig::ofa_mbv3(Width::W12).init(&host);
    let names = ["smallest_r160", "middle_r192", "largest_r224"];
    let levels: Vec<SubnetConfig> = names.iter().map(|n| subnet(n)).collect();
    let mut family = GpuFamily::new(&net, &levels, &[], &device).unwrap();
    eprintln!("GPU family: {:.1} MB of weights for {} levels", family.memory_bytes() as f64 / 1e6, levels.len());
    let shared = net.clone().to_device(&device);

    c.bench_function("gpu_switch", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % levels.len();
            family.switch_to(black_box(i)).unwrap();
        })
    });

    let mut group = c.benchmark_group("gpu_layout");
    group.sample_size(10);
    // `cargo test` runs each benchmark once, to see that it works (on a software Vulkan
    // adapter in CI, where every batch size compiles its own kernels): batch 1 only.
    let smoke_test = !std::env::args().any(|arg| arg == "--bench");
    let batches: &[usize] = if smoke_test { &[1] } else { &[1, 8] };
    for &batch in batches {
        for (i, (name, level)) in names.iter().zip(&levels).enumerate() {
            let x = input(batch, level.resolution());
            family.switch_to(i).unwrap();
            group.bench_function(format!("per_level/b{batch}/{name}"), |b| b.iter(|| family.forward(&x).unwrap()));
            group.bench_function(format!("shared_weights/b{batch}/{name}"), |b| {
                b.iter(|| Array::from_tensor(&shared.forward(x.to_tensor::<4>(&device).unwrap(), level).unwrap()))
            });
            let static_net = extract(&net, level).unwrap().to_device(&device);
            group.bench_function(format!("static_conv/b{batch}/{name}"), |b| {
                b.iter(|| Array::from_tensor(&static_net.forward(x.to_tensor::<4>(&device).unwrap())))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, gpu_family);
criterion_main!(benches);
