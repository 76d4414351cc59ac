//! The shared-weight family store (w1.2 supernet, seeded weights, 6 levels, batch 1):
//! - `switch`: `switch_to` between levels;
//! - `forward_after_switch` vs `forward_steady`: a forward right after a switch, and one
//!   with no switch, on the same level;
//! - `level_forward` vs `static_forward`: a level run from the store, and the same
//!   sub-network extracted as a static Burn network (flex).

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;

use burn::prelude::*;
use criterion::{Criterion, criterion_group, criterion_main};
use dynofa_slice::{FamilyStore, extract};
use dynofa_supernet::tensor_io::Array;
use dynofa_supernet::{SubnetConfig, SupernetConfig, Width};

/// Six levels from small to large, like a Pareto family.
fn levels() -> Vec<SubnetConfig> {
    let level = |k, e, d, r| SubnetConfig { ks: vec![k; 20], e: vec![e; 20], d: vec![d; 5], r: vec![r] };
    vec![level(3, 3, 2, 160), level(3, 4, 2, 176), level(5, 4, 3, 192), level(5, 6, 3, 208), level(7, 4, 4, 224), level(7, 6, 4, 224)]
}

fn input(r: usize) -> Array {
    Array::benchmark_input(1, r)
}

fn family(c: &mut Criterion) {
    let device = Device::flex();
    let net = SupernetConfig::ofa_mbv3(Width::W12).init(&device);
    let levels = levels();
    let threads = rayon::current_num_threads();
    let mut store = FamilyStore::new(&net, &levels, threads).unwrap();
    eprintln!("family store: {:.2} MB for {} levels, {threads} threads", store.memory_bytes() as f64 / 1e6, levels.len());

    c.bench_function("switch", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % 6;
            store.switch_to(black_box(i)).unwrap();
        })
    });

    let mut group = c.benchmark_group("family_b1");
    group.sample_size(20);
    for (name, level) in [("smallest", 0), ("middle", 2), ("largest", 5)] {
        let x = input(levels[level].resolution());
        store.switch_to(level).unwrap();
        group.bench_function(format!("forward_steady/{name}"), |b| b.iter(|| store.forward(&x).unwrap()));
        let other = (level + 1) % levels.len();
        group.bench_function(format!("forward_after_switch/{name}"), |b| {
            b.iter(|| {
                store.switch_to(other).unwrap();
                store.switch_to(level).unwrap();
                store.forward(&x).unwrap()
            })
        });
        let static_net = extract(&net, &levels[level]).unwrap();
        let xt = x.to_tensor::<4>(&device).unwrap();
        group.bench_function(format!("static_forward/{name}"), |b| b.iter(|| static_net.forward(xt.clone()).into_data()));
    }
    group.finish();
}

criterion_group!(benches, family);
criterion_main!(benches);
