//! Encoder throughput: quantize + CREW-encode a 1536x384 layer (weights per second).

mod common;

use crew_core::quant::ScaleMode;
use crew_core::EncodedLayer;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let m = common::layer(1536, 384);
    let q = m.quantize(ScaleMode::PerTensor);
    let e = EncodedLayer::encode(&q);
    let mean_u = e.descriptors.iter().map(|d| d.unique_count as f64).sum::<f64>() / e.n_in as f64;
    eprintln!("encode bench layer: {} ({:.1} unique per input)", m.name, mean_u);
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(m.len() as u64));
    g.bench_function("encode/1536x384", |b| b.iter(|| EncodedLayer::encode(black_box(&q))));
    g.bench_function("quantize+encode/1536x384", |b| {
        b.iter(|| EncodedLayer::encode(&black_box(&m).quantize(ScaleMode::PerTensor)))
    });
    g.bench_function("validate/1536x384", |b| b.iter(|| black_box(&e).validate()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
