//! The three CPU GEMVs on MiniLM-sized layers: dense f32, dense int8, CREW.
//! Throughput is in weights (multiply-accumulates of the dense GEMV) per second.

mod common;

use crew_core::quant::{quantize_activations, ScaleMode};
use crew_core::reference::{gemv_crew, gemv_f32, gemv_i8};
use crew_core::EncodedLayer;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemv");
    for (n_out, n_in) in [(384, 384), (1536, 384), (384, 1536)] {
        let m = common::layer(n_out, n_in);
        let q = m.quantize(ScaleMode::PerTensor);
        let e = EncodedLayer::encode(&q);
        let x: Vec<f32> = (0..n_in).map(|i| ((i * 7919) % 257) as f32 / 128.0 - 1.0).collect();
        let (a, _) = quantize_activations(&x);
        assert_eq!(gemv_crew(&e, &a), gemv_i8(&q.q, n_out, n_in, &a), "CREW must be bit-exact");
        let mean_u = e.descriptors.iter().map(|d| d.unique_count as f64).sum::<f64>() / n_in as f64;
        eprintln!("gemv bench layer {n_out}x{n_in}: {} ({mean_u:.1} unique per input)", m.name);
        let shape = format!("{n_out}x{n_in}");
        g.throughput(Throughput::Elements((n_out * n_in) as u64));
        g.bench_function(format!("f32/{shape}"), |b| {
            b.iter(|| gemv_f32(black_box(&m.data), n_out, n_in, black_box(&x)))
        });
        g.bench_function(format!("i8/{shape}"), |b| b.iter(|| gemv_i8(black_box(&q.q), n_out, n_in, black_box(&a))));
        g.bench_function(format!("crew/{shape}"), |b| b.iter(|| gemv_crew(black_box(&e), black_box(&a))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
