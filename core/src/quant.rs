//! Symmetric int8 quantization.
//!
//! Weights map to `[-127, 127]` with one scale per tensor or one per output row; activations map
//! to `[-127, 127]` with one scale per vector. Rounding is half to even in f32 arithmetic, exactly
//! as `np.clip(np.round(w / s), -127, 127)` does on float32 arrays, so figures match a Python check.

/// The largest magnitude of a quantized value.
pub const QMAX: f32 = 127.0;

/// How weight scales are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleMode {
    /// One scale for the whole tensor.
    #[default]
    PerTensor,
    /// One scale per output row.
    PerRow,
}

/// An int8-quantized FC layer, `q` in row-major `[n_out][n_in]` order (PyTorch `nn.Linear`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedLayer {
    pub name: String,
    pub n_out: usize,
    pub n_in: usize,
    /// Row-major `[n_out][n_in]`, every value in `[-127, 127]`.
    pub q: Vec<i8>,
    /// One scale (per tensor) or `n_out` scales (per row): `w[j][i] ≈ scale(j) * q[j][i]`.
    pub scales: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

impl QuantizedLayer {
    /// The weight scale of output row `j`.
    pub fn scale(&self, j: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[j]
        }
    }

    /// The quantized weight at output `j`, input `i`.
    pub fn at(&self, j: usize, i: usize) -> i8 {
        self.q[j * self.n_in + i]
    }
}

/// The scale that maps `max_abs` onto 127; 1.0 for an all-zero tensor, so that it quantizes to 0.
pub fn scale_for(max_abs: f32) -> f32 {
    if max_abs > 0.0 && max_abs.is_finite() {
        max_abs / QMAX
    } else {
        1.0
    }
}

/// Quantize one value with the given scale: round half to even, clamp to `[-127, 127]`.
pub fn quantize_value(v: f32, scale: f32) -> i8 {
    let r = round_half_even(v / scale);
    if r.is_nan() {
        0
    } else {
        r.clamp(-QMAX, QMAX) as i8
    }
}

/// `x.round_ties_even()`, without the libm call that baseline x86-64 makes of it: adding and
/// subtracting 1.5 * 2^23 rounds to the nearest integer, ties to even, in IEEE default rounding.
#[inline(always)]
fn round_half_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    if x.abs() < 4_194_304.0 {
        (x + MAGIC) - MAGIC
    } else {
        x.round_ties_even()
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Quantize a row-major `[n_out][n_in]` f32 weight matrix.
///
/// # Panics
/// If `w.len() != n_out * n_in`; importers check shapes before calling.
pub fn quantize_weights(
    name: &str,
    w: &[f32],
    n_out: usize,
    n_in: usize,
    mode: ScaleMode,
    bias: Option<Vec<f32>>,
) -> QuantizedLayer {
    assert_eq!(w.len(), n_out * n_in, "weight buffer does not match its shape");
    let scales: Vec<f32> = match mode {
        ScaleMode::PerTensor => vec![scale_for(max_abs(w))],
        ScaleMode::PerRow => w.chunks(n_in.max(1)).map(|row| scale_for(max_abs(row))).collect(),
    };
    let q = w
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let s = if scales.len() == 1 { scales[0] } else { scales[k / n_in] };
            quantize_value(v, s)
        })
        .collect();
    QuantizedLayer { name: name.to_string(), n_out, n_in, q, scales, bias }
}

/// Quantize an activation vector with one scale; returns the int8 values and the scale.
pub fn quantize_activations(x: &[f32]) -> (Vec<i8>, f32) {
    let s = scale_for(max_abs(x));
    (x.iter().map(|&v| quantize_value(v, s)).collect(), s)
}

/// Dequantize accumulators: `y_j = s_x * s_w(j) * acc[j] + bias_j`.
pub fn dequantize_outputs(layer: &QuantizedLayer, acc: &[i32], x_scale: f32) -> Vec<f32> {
    acc.iter()
        .enumerate()
        .map(|(j, &a)| {
            let b = layer.bias.as_ref().map_or(0.0, |b| b[j]);
            x_scale * layer.scale(j) * a as f32 + b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_to_even_like_numpy() {
        // np.round([0.5, 1.5, 2.5, -0.5, -1.5]) == [0, 2, 2, -0, -2]
        let got: Vec<i8> = [0.5f32, 1.5, 2.5, -0.5, -1.5].iter().map(|&v| quantize_value(v, 1.0)).collect();
        assert_eq!(got, vec![0, 2, 2, 0, -2]);
    }

    #[test]
    fn fast_rounding_matches_round_ties_even() {
        let mut x = -300.0f32;
        while x < 300.0 {
            assert_eq!(round_half_even(x), x.round_ties_even(), "{x}");
            x += 0.03125;
        }
        for x in [0.49999997f32, 2.5, -2.5, 4_194_303.5, 5e6, -1e9, 1e-30] {
            assert_eq!(round_half_even(x), x.round_ties_even(), "{x}");
        }
    }

    #[test]
    fn per_tensor_maps_max_to_127() {
        let l = quantize_weights("t", &[0.5, -1.0, 0.25, 0.0], 2, 2, ScaleMode::PerTensor, None);
        assert_eq!(l.q, vec![64, -127, 32, 0]);
        assert_eq!(l.scales.len(), 1);
    }

    #[test]
    fn per_row_scales_each_row() {
        let l = quantize_weights("t", &[0.5, -1.0, 0.1, 0.05], 2, 2, ScaleMode::PerRow, None);
        assert_eq!(l.scales.len(), 2);
        assert_eq!(l.q, vec![64, -127, 127, 64]);
    }

    #[test]
    fn zero_and_nan_are_safe() {
        let l = quantize_weights("t", &[0.0; 4], 2, 2, ScaleMode::PerTensor, None);
        assert_eq!(l.q, vec![0; 4]);
        assert_eq!(quantize_value(f32::NAN, 1.0), 0);
        assert_eq!(quantize_value(1e9, 1.0), 127);
    }
}
