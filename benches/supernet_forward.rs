//! Dynamic forward of the w1.2 supernet (Burn, flex backend) at batch 1, for the smallest,
//! a middle and the largest sub-network at their resolutions. Weights: the seeded default
//! (timing does not depend on the values).

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use burn::prelude::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dynofa_supernet::{SubnetConfig, SupernetConfig, Width};

fn subnets(supernet: &SupernetConfig) -> Vec<(&'static str, SubnetConfig)> {
    let middle = SubnetConfig { ks: vec![5; 20], e: vec![4; 20], d: vec![3; 5], r: vec![192] };
    vec![("smallest_r160", supernet.smallest(160)), ("middle_r192", middle), ("largest_r224", supernet.largest(224))]
}

fn dynamic_forward(c: &mut Criterion) {
    let device = Device::flex();
    let config = SupernetConfig::ofa_mbv3(Width::W12);
    let net = config.init(&device);
    let mut group = c.benchmark_group("dynamic_forward_w12_b1");
    group.sample_size(20);
    for (name, subnet) in subnets(&config) {
        let r = subnet.resolution();
        let mflops = config.counts(&subnet).unwrap().mflops;
        group.throughput(Throughput::Elements((mflops * 1e6) as u64)); // multiply-adds per image
        let x = Tensor::<4>::ones([1, 3, r, r], &device);
        group.bench_function(name, |b| {
            b.iter(|| {
                let y = net.forward(x.clone(), &subnet).unwrap();
                y.into_data() // wait for the result
            })
        });
    }
    group.finish();
}

criterion_group!(benches, dynamic_forward);
criterion_main!(benches);
