//! Layers for the benchmarks: MiniLM's real weights when `models/` holds them
//! (`scripts/fetch-models.sh`), else synthetic Gaussian weights with about as many unique values
//! per input column.

use crew_core::import::{load_matrices, Matrix};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use regex::Regex;
use std::path::Path;

/// The MiniLM layer of each benchmark shape: encoder layer 3, whose unique counts are typical
/// (layer 0's are unusually low).
fn real_name(n_out: usize, n_in: usize) -> &'static str {
    match (n_out, n_in) {
        (1536, 384) => "encoder.layer.3.intermediate.dense.weight",
        (384, 1536) => "encoder.layer.3.output.dense.weight",
        _ => "encoder.layer.3.attention.output.dense.weight",
    }
}

/// A Gaussian matrix in f32 (sigma 0.04) whose largest magnitude is set to 0.42, so that
/// per-tensor int8 quantization puts sigma at about 12 steps: about 59 unique values per
/// 384-row column and 72 per 1536-row column.
fn synthetic(n_out: usize, n_in: usize) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0c4e_3000 + (n_out * 7 + n_in) as u64);
    let mut data: Vec<f32> = (0..n_out * n_in)
        .map(|_| {
            // Box-Muller.
            let (u1, u2): (f32, f32) = (rng.gen_range(f32::EPSILON..1.0), rng.gen());
            let g = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
            (0.04 * g).clamp(-0.42, 0.42)
        })
        .collect();
    data[0] = 0.42;
    Matrix { name: format!("synthetic Gaussian {n_out}x{n_in}"), n_out, n_in, data, bias: None }
}

/// A `n_out x n_in` layer: real MiniLM weights if available, else synthetic.
pub fn layer(n_out: usize, n_in: usize) -> Matrix {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/all-minilm-l6-v2.safetensors");
    if path.is_file() {
        let re = Regex::new(&format!("^{}$", regex::escape(real_name(n_out, n_in)))).expect("regex");
        if let Ok(mut m) = load_matrices(&path, Some(&re)) {
            if m.len() == 1 && m[0].n_out == n_out && m[0].n_in == n_in {
                return m.remove(0);
            }
        }
    }
    synthetic(n_out, n_in)
}
