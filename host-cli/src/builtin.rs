//! The built-in model: the Silero VAD v6 LSTM cell, embedded in the binary (see `assets/NOTICE`).
//!
//! `silero_lstm.safetensors` holds the original f32 tensors; `silero_lstm.crew` is their CREW
//! encoding (per-tensor int8 scales), produced by `encode_builtin` in this module's tests and checked to be current by
//! a test, so the committed file and the code that made it never drift apart.

use crate::lstm::LstmCell;
use anyhow::{anyhow, Context};
use crew_core::format::Model;
use safetensors::SafeTensors;

pub const SAFETENSORS: &[u8] = include_bytes!("../assets/silero_lstm.safetensors");
pub const CREW: &[u8] = include_bytes!("../assets/silero_lstm.crew");
pub const NAME: &str = "silero-vad 6.2.3 LSTM cell (built in)";

/// Index of the input-to-hidden layer in the built-in model, and of the hidden-to-hidden one.
pub const W_IH: usize = 0;
pub const W_HH: usize = 1;

fn tensor(st: &SafeTensors, name: &str) -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
    let t = st.tensor(name).with_context(|| format!("built-in model lacks tensor {name}"))?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(anyhow!("built-in tensor {name} is {:?}, expected F32", t.dtype()));
    }
    let data = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((t.shape().to_vec(), data))
}

/// The f32 LSTM cell of the built-in model.
pub fn cell() -> anyhow::Result<LstmCell> {
    let st = SafeTensors::deserialize(SAFETENSORS).context("built-in safetensors is corrupt")?;
    let (shape, w_ih) = tensor(&st, "lstm_cell.weight_ih")?;
    let (_, w_hh) = tensor(&st, "lstm_cell.weight_hh")?;
    let (_, b_ih) = tensor(&st, "lstm_cell.bias_ih")?;
    let (_, b_hh) = tensor(&st, "lstm_cell.bias_hh")?;
    let hidden = shape[0] / 4;
    Ok(LstmCell { hidden, inputs: shape[1], w_ih, w_hh, b_ih, b_hh })
}

/// The committed CREW encoding of the built-in model.
pub fn model() -> anyhow::Result<Model> {
    Model::from_bytes(CREW).context("built-in .crew model is corrupt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_core::encode::EncodedLayer;
    use crew_core::quant::{quantize_weights, ScaleMode};

    /// Encode the built-in cell's two matrices (with their biases) as a CREW model.
    pub fn encode_builtin() -> anyhow::Result<Model> {
        let c = cell()?;
        let layer = |name: &str, w: &[f32], n_in: usize, b: &[f32]| {
            EncodedLayer::encode(&quantize_weights(name, w, 4 * c.hidden, n_in, ScaleMode::PerTensor, Some(b.to_vec())))
        };
        Ok(Model {
            layers: vec![
                layer("lstm_cell.weight_ih", &c.w_ih, c.inputs, &c.b_ih),
                layer("lstm_cell.weight_hh", &c.w_hh, c.hidden, &c.b_hh),
            ],
        })
    }

    #[test]
    fn committed_crew_file_is_current() {
        let fresh = encode_builtin().unwrap().to_bytes();
        if fresh != CREW {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/silero_lstm.crew");
            if std::env::var_os("CREW_BLESS").is_some() {
                std::fs::write(path, &fresh).unwrap();
            } else {
                panic!("assets/silero_lstm.crew is stale: run `CREW_BLESS=1 cargo test -p crew-host builtin`");
            }
        }
        let m = model().unwrap();
        assert_eq!(m.layers.len(), 2);
        assert!(m.layers.iter().all(|l| l.n_out == 512 && l.n_in == 128 && l.bias.is_some()));
    }
}
