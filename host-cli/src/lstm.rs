//! The built-in model: the Silero VAD v6 LSTM cell (PyTorch `nn.LSTMCell`, hidden 128).
//!
//! `gates = W_ih x + b_ih + W_hh h + b_hh`, split into input, forget, cell and output gates
//! (PyTorch order i, f, g, o); `c' = f c + i g`, `h' = o tanh(c')`. The two matrix products run on
//! the device as int8 CREW layers; the gates run here on the host.

/// The f32 weights of one LSTM cell, row-major `[4 * hidden][inputs]`.
#[derive(Debug, Clone)]
pub struct LstmCell {
    pub hidden: usize,
    pub inputs: usize,
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub b_ih: Vec<f32>,
    pub b_hh: Vec<f32>,
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl LstmCell {
    /// One step from the pre-activation gate sums (`4 * hidden` values, biases included).
    pub fn step_from_gates(&self, gates: &[f32], c: &mut [f32], h: &mut [f32]) {
        let n = self.hidden;
        for k in 0..n {
            let i = sigmoid(gates[k]);
            let f = sigmoid(gates[n + k]);
            let g = gates[2 * n + k].tanh();
            let o = sigmoid(gates[3 * n + k]);
            c[k] = f * c[k] + i * g;
            h[k] = o * c[k].tanh();
        }
    }

    /// One f32 step: the reference the quantized device path is compared with.
    pub fn step_f32(&self, x: &[f32], c: &mut [f32], h: &mut [f32]) {
        let rows = 4 * self.hidden;
        let gi = crew_core::reference::gemv_f32(&self.w_ih, rows, self.inputs, x);
        let gh = crew_core::reference::gemv_f32(&self.w_hh, rows, self.hidden, h);
        let gates: Vec<f32> = (0..rows).map(|r| gi[r] + self.b_ih[r] + gh[r] + self.b_hh[r]).collect();
        self.step_from_gates(&gates, c, h);
    }
}

/// A deterministic input sequence: `steps` vectors of `n` values, roughly N(0, 1), from `seed`.
pub fn input_sequence(seed: u64, steps: usize, n: usize) -> Vec<Vec<f32>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..steps)
        .map(|_| {
            (0..n)
                .map(|_| {
                    // Box-Muller: one normal sample from two uniforms.
                    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
                    let u2: f32 = rng.gen();
                    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_weights_give_half_gates() {
        let cell = LstmCell {
            hidden: 2,
            inputs: 1,
            w_ih: vec![0.0; 8],
            w_hh: vec![0.0; 16],
            b_ih: vec![0.0; 8],
            b_hh: vec![0.0; 8],
        };
        let (mut c, mut h) = (vec![1.0; 2], vec![0.0; 2]);
        cell.step_f32(&[3.0], &mut c, &mut h);
        // i = f = o = 0.5, g = 0: c = 0.5, h = 0.5 tanh(0.5).
        assert!((c[0] - 0.5).abs() < 1e-6);
        assert!((h[1] - 0.5 * 0.5f32.tanh()).abs() < 1e-6);
    }

    #[test]
    fn inputs_are_deterministic_and_spread() {
        let a = input_sequence(7, 3, 1000);
        assert_eq!(a, input_sequence(7, 3, 1000));
        let mean: f32 = a[0].iter().sum::<f32>() / 1000.0;
        let var: f32 = a[0].iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 1000.0;
        assert!(mean.abs() < 0.15 && (var - 1.0).abs() < 0.2, "mean {mean} var {var}");
    }
}
