//! The emulator against the CPU reference on MiniLM-sized layers, same process, same layer.
//!
//! `emu` is a whole run at the register level: input words written through the transport, the
//! registers set, START, a STATUS read, and the accumulators read back. `reference` is
//! `crew_core::reference::gemv_crew` on the same encoded layer and input.
//!
//! `cargo bench -p crew-driver --bench emu`; docs/cycle-model.md records the ratio.

use crew_core::config::DeviceConfig;
use crew_core::encode::{pack_i8, EncodedLayer};
use crew_core::quant::QuantizedLayer;
use crew_core::reference::gemv_crew;
use crew_core::regs;
use crew_driver::{EmuTransport, Transport};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::{Rng, SeedableRng};
use std::hint::black_box;

/// Roughly Gaussian int8 weights, like a quantized FC layer (|U_i| around 50-70).
fn layer(n_out: usize, n_in: usize, seed: u64) -> EncodedLayer {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let q = (0..n_out * n_in)
        .map(|_| {
            let s: f32 = (0..4).map(|_| r.gen_range(-1.0f32..1.0)).sum();
            (s * 14.0).round().clamp(-127.0, 127.0) as i8
        })
        .collect();
    EncodedLayer::encode(&QuantizedLayer { name: "bench".into(), n_out, n_in, q, scales: vec![1.0], bias: None })
}

fn emu_run(t: &mut EmuTransport, input: &[i8], out: &mut [u32]) {
    let r = (|| -> Result<(), std::convert::Infallible> {
        t.write_burst(regs::INPUT_WINDOW, &pack_i8(input))?;
        t.write32(regs::CTRL, regs::ctrl::START)?;
        let st = t.read32(regs::STATUS)?;
        assert_eq!(st, regs::status::DONE);
        t.read_burst(regs::OUTPUT_WINDOW, out)
    })();
    if let Err(e) = r {
        match e {}
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemv");
    for (n_out, n_in) in [(384, 384), (1536, 384), (384, 1536)] {
        let l = layer(n_out, n_in, (n_out * 7 + n_in) as u64);
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let input: Vec<i8> = (0..n_in).map(|_| r.gen_range(-127..=127)).collect();
        let cfg = DeviceConfig { wmem_words: 1 << 18, ..DeviceConfig::ECP5_85F };
        let mut t = EmuTransport::new(cfg);
        t.write_burst(regs::WEIGHT_WINDOW, &l.memory_image()).unwrap_or_else(|e| match e {});
        for (reg, v) in [(regs::N_OUT, n_out as u32), (regs::N_IN, n_in as u32), (regs::LAYER_BASE, 0)] {
            t.write32(reg, v).unwrap_or_else(|e| match e {});
        }
        let mut out = vec![0u32; n_out];
        emu_run(&mut t, &input, &mut out);
        let want = gemv_crew(&l, &input);
        assert!(out.iter().zip(&want).all(|(&a, &b)| a as i32 == b), "emu != reference");
        let id = format!("{n_out}x{n_in}");
        g.bench_with_input(BenchmarkId::new("emu", &id), &input, |b, x| {
            b.iter(|| emu_run(&mut t, black_box(x), &mut out))
        });
        g.bench_with_input(BenchmarkId::new("reference", &id), &input, |b, x| b.iter(|| gemv_crew(&l, black_box(x))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
