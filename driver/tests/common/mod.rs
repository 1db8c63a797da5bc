//! Shared helpers of the driver tests: random layers and inputs.

#![allow(dead_code)]

use crew_core::encode::EncodedLayer;
use crew_core::format::Model;
use crew_core::quant::QuantizedLayer;
use crew_core::reference::gemv_crew;
use crew_driver::{Accelerator, Transport};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A random `n_out x n_in` layer whose columns cycle through kinds: all zero, full int8 range
/// (up to 255 unique), a single value (|U_i| = 1), and a narrow band.
pub fn random_layer(name: &str, n_out: usize, n_in: usize, seed: u64) -> QuantizedLayer {
    let mut r = rng(seed);
    let mode = r.gen_range(0..4u32);
    let mut q = vec![0i8; n_out * n_in];
    for i in 0..n_in {
        let (lo, hi): (i32, i32) = match (mode + i as u32) % 4 {
            0 => (0, 0),
            1 => (-127, 127),
            2 => {
                let c = r.gen_range(-127..=127);
                (c, c)
            }
            _ => {
                let c = r.gen_range(-100..=100);
                (c - 20, c + 20)
            }
        };
        for j in 0..n_out {
            q[j * n_in + i] = r.gen_range(lo..=hi) as i8;
        }
    }
    QuantizedLayer { name: name.into(), n_out, n_in, q, scales: vec![1.0], bias: None }
}

/// A layer with roughly Gaussian weights, like a real quantized FC layer (|U_i| around 50-70).
pub fn realistic_layer(name: &str, n_out: usize, n_in: usize, seed: u64) -> QuantizedLayer {
    let mut r = rng(seed);
    let q = (0..n_out * n_in)
        .map(|_| {
            let s: f32 = (0..4).map(|_| r.gen_range(-1.0f32..1.0)).sum();
            (s * 14.0).round().clamp(-127.0, 127.0) as i8
        })
        .collect();
    QuantizedLayer { name: name.into(), n_out, n_in, q, scales: vec![1.0], bias: None }
}

pub fn random_input(n: usize, seed: u64) -> Vec<i8> {
    let mut r = rng(seed);
    (0..n).map(|_| r.gen_range(-127..=127)).collect()
}

pub fn model(layers: Vec<EncodedLayer>) -> Model {
    Model { layers }
}

/// A realistic layer, CREW-encoded.
pub fn layer(name: &str, n_out: usize, n_in: usize, seed: u64) -> EncodedLayer {
    EncodedLayer::encode(&realistic_layer(name, n_out, n_in, seed))
}

/// Two random vectors through every layer of `m`, bit-exact against the CPU reference.
pub fn check_model<T: Transport>(acc: &mut Accelerator<T>, m: &Model, seed: u64) {
    for (li, l) in m.layers.iter().enumerate() {
        for v in 0..2 {
            let x = random_input(l.n_in, seed + 10 * li as u64 + v);
            assert_eq!(acc.run_layer(li, &x).unwrap().outputs, gemv_crew(l, &x), "layer {li} vector {v}");
        }
    }
}

/// An error and all its sources, as one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s = format!("{s}: {c}");
        cause = c.source();
    }
    s
}
