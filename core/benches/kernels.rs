//! The fast CPU kernels (`crew_core::kernels`) on MiniLM-sized layers, batch 1 and 8: dense f32
//! (`gemm`), dense int8 (AVX2 when available) and CREW in software (AVX2 when available).
//! Throughput counts the `n_out * n_in * batch` multiply-accumulates of the dense GEMV.
//!
//!     cargo bench -p crew-core --bench kernels -- --warm-up-time 1 --measurement-time 3

mod common;

use crew_core::kernels::crew::PreparedCrewLayer;
use crew_core::kernels::dense_f32::gemv_f32_batch;
use crew_core::kernels::int8::gemv_i8_batch;
use crew_core::kernels::Backend;
use crew_core::quant::{quantize_activations, ScaleMode};
use crew_core::reference::gemv_i8;
use crew_core::EncodedLayer;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let backend = Backend::Auto;
    eprintln!("kernels bench: {} path", backend.describe());
    let mut g = c.benchmark_group("kernels");
    for (n_out, n_in) in [(384, 384), (1536, 384), (384, 1536)] {
        let m = common::layer(n_out, n_in);
        let q = m.quantize(ScaleMode::PerTensor);
        let e = EncodedLayer::encode(&q);
        let p = PreparedCrewLayer::new(&e).expect("a freshly encoded layer is valid");
        eprintln!("layer {n_out}x{n_in}: {}; columns by index width 0..=8: {:?}", m.name, p.width_histogram());
        for batch in [1usize, 8] {
            let xs: Vec<Vec<f32>> = (0..batch)
                .map(|b| (0..n_in).map(|i| ((i * 7919 + b * 104729) % 257) as f32 / 128.0 - 1.0).collect())
                .collect();
            let a: Vec<Vec<i8>> = xs.iter().map(|x| quantize_activations(x).0).collect();
            let want: Vec<Vec<i32>> = a.iter().map(|x| gemv_i8(&q.q, n_out, n_in, x)).collect();
            assert_eq!(p.gemv_batch(&a, backend).ok(), Some(want.clone()), "CREW kernel must be bit-exact");
            assert_eq!(gemv_i8_batch(&q.q, n_out, n_in, &a, backend).ok(), Some(want), "int8 kernel must be bit-exact");
            let id = format!("{n_out}x{n_in}/b{batch}");
            g.throughput(Throughput::Elements((n_out * n_in * batch) as u64));
            g.bench_function(format!("f32/{id}"), |b| {
                b.iter(|| gemv_f32_batch(black_box(&m.data), n_out, n_in, black_box(&xs)))
            });
            g.bench_function(format!("i8/{id}"), |b| {
                b.iter(|| gemv_i8_batch(black_box(&q.q), n_out, n_in, black_box(&a), backend))
            });
            g.bench_function(format!("crew/{id}"), |b| b.iter(|| p.gemv_batch(black_box(&a), backend)));
            // The same kernels with the portable path forced, for scale.
            g.bench_function(format!("i8-portable/{id}"), |b| {
                b.iter(|| gemv_i8_batch(black_box(&q.q), n_out, n_in, black_box(&a), Backend::Portable))
            });
            g.bench_function(format!("crew-portable/{id}"), |b| {
                b.iter(|| p.gemv_batch(black_box(&a), Backend::Portable))
            });
        }
    }
    g.finish();
}

/// CREW against int8 by index width: 384x1536 layers whose every column has exactly `2^b`
/// unique values (b = 1..=8), batch 1. int8's time does not depend on the values.
fn by_width(c: &mut Criterion) {
    let (n_out, n_in) = (384, 1536);
    let mut g = c.benchmark_group("kernels-width");
    g.throughput(Throughput::Elements((n_out * n_in) as u64));
    let a: Vec<i8> = (0..n_in).map(|i| ((i * 7919) % 255) as i8).collect();
    for bits in 1..=8u32 {
        let count = 1usize << bits;
        // Column i takes values spread over [-127, 127]; row j picks value (j * 37 + i) % count.
        let q: Vec<i8> = (0..n_out * n_in)
            .map(|k| {
                let (j, i) = (k / n_in, k % n_in);
                let v = ((j * 37 + i) % count) as i32;
                (-127 + v * 254 / (count as i32 - 1).max(1)) as i8
            })
            .collect();
        let e = EncodedLayer::encode(&crew_core::QuantizedLayer {
            name: format!("b{bits}"),
            n_out,
            n_in,
            q: q.clone(),
            scales: vec![1.0],
            bias: None,
        });
        let p = PreparedCrewLayer::new(&e).expect("valid");
        assert_eq!(p.width_histogram()[bits as usize], n_in, "every column has width {bits}");
        assert_eq!(p.gemv(&a, Backend::Auto).ok(), Some(gemv_i8(&q, n_out, n_in, &a)));
        if bits == 1 {
            g.bench_function("i8", |b| {
                b.iter(|| gemv_i8_batch(black_box(&q), n_out, n_in, &[black_box(&a)], Backend::Auto))
            });
        }
        g.bench_function(format!("crew/b{bits}"), |b| b.iter(|| p.gemv(black_box(&a), Backend::Auto)));
    }
    g.finish();
}

criterion_group!(benches, bench, by_width);
criterion_main!(benches);
