//! `crew-host run`: run a model on a device and prove every result against the CPU reference.

use crate::builtin;
use crate::table::Table;
use anyhow::{bail, Context};
use crew_core::cycles::RunCounts;
use crew_core::format::Model;
use crew_core::quant::quantize_activations;
use crew_core::reference::gemv_i8;
use crew_driver::{Accelerator, BoxedTransport, LayerRun, OpenOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Device to run on: `emu`, `emu:config=ecp5-25f`, `emu:kind=dense,lanes=16`, `sim:config=test25`, ...
    #[arg(long, default_value = "emu")]
    pub device: String,
    /// Model: .crew, .safetensors, .npy or .npz. Without it, the built-in Silero VAD LSTM cell runs.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Regex selecting layers of --model (default: its FC weights).
    #[arg(long, value_name = "REGEX")]
    pub layers: Option<regex::Regex>,
    /// Quantize an imported model with one scale per output row.
    #[arg(long)]
    pub per_row_scales: bool,
    /// Input vectors (.npy, f32, 1-D or 2-D [vectors][inputs]); every selected layer must take that many inputs.
    #[arg(long, conflicts_with = "random")]
    pub input: Option<PathBuf>,
    /// Seed of the random input vectors (the default input).
    #[arg(long)]
    pub random: Option<u64>,
    /// Input vectors per layer (or sequences, for the built-in LSTM), run as one batch.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Time steps of the built-in LSTM.
    #[arg(long, default_value_t = 32)]
    pub steps: usize,
    /// Longest wait for the device to finish one run, in milliseconds (default: 2000, an hour on `sim`).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Record every bus transaction (with the values read) into FILE, for `crew-host replay`.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Write a waveform (VCD, every clock edge) of the RTL simulation into FILE (`--device sim` only).
    #[arg(long, value_name = "FILE")]
    pub vcd: Option<PathBuf>,
}

/// What one layer did over all its runs.
#[derive(Default)]
struct LayerTally {
    runs: u64,
    counts: RunCounts,
    tiles: usize,
    wall: Duration,
}

impl LayerTally {
    fn add(&mut self, runs: &[LayerRun], wall: Duration) {
        for r in runs {
            self.runs += 1;
            self.counts.cycles += r.counts.cycles;
            self.counts.mults += r.counts.mults;
            self.counts.adds += r.counts.adds;
            self.tiles = r.tiles;
        }
        self.wall += wall;
    }
}

/// Checks device results against the dense int8 reference on the decoded weights.
struct Checker {
    weights: Vec<Vec<i8>>,
}

impl Checker {
    fn new(model: &Model) -> Checker {
        Checker { weights: model.layers.iter().map(|l| l.decode_weights()).collect() }
    }

    fn check(&self, model: &Model, layer: usize, vector: usize, input: &[i8], got: &[i32]) -> anyhow::Result<()> {
        let l = &model.layers[layer];
        let want = gemv_i8(&self.weights[layer], l.n_out, l.n_in, input);
        if let Some(j) = (0..l.n_out).find(|&j| got.get(j) != Some(&want[j])) {
            bail!(
                "MISMATCH in layer {layer} ({}), vector {vector}, output {j}: device {}, CPU reference {}",
                l.name,
                got.get(j).map_or("missing".to_string(), |v| v.to_string()),
                want[j]
            );
        }
        Ok(())
    }
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let timeout = args.timeout_ms.map_or_else(|| crate::device::default_timeout(&args.device), Duration::from_millis);
    let opts = OpenOptions::default().with_timeout(timeout);
    let mut session = crate::device::open(&args.device, &opts, args.trace.as_deref(), args.vcd.as_deref())?;
    let accel = &mut session.accel;
    let info = accel.info().clone();
    let cfg = info.config;
    println!("device {}: {}, version {}.{}", info.device, cfg.describe(), info.version_major, info.version_minor);
    let (model, source) = match &args.model {
        None => (builtin::model()?, builtin::NAME.to_string()),
        Some(p) => {
            let mode = super::encode::scale_mode(args.per_row_scales);
            (super::encode::load_model(p, args.layers.as_ref(), mode)?, p.display().to_string())
        }
    };
    let load = accel.load(&model).context("loading the model")?;
    println!(
        "model {source}: {} layers, {} tiles ({} layers tiled), {} image words, {}",
        load.layers,
        load.tiles,
        load.tiled_layers,
        load.image_words,
        if load.resident { "resident in weight memory" } else { "streamed tile by tile" }
    );
    let checker = Checker::new(&model);
    let seed = args.random.unwrap_or(0);
    let tallies = if args.model.is_none() {
        run_lstm(accel, &model, &checker, seed, args.batch, args.steps)?
    } else {
        run_layers(accel, &model, &checker, &args, seed)?
    };
    println!();
    print!("{}", layer_table(&model, &tallies, &cfg).render());
    let total_runs: u64 = tallies.iter().map(|t| t.runs).sum();
    println!("\nOK: all {total_runs} layer runs are bit-exact with the CPU int8 reference");
    session.finish()
}

fn layer_table(model: &Model, tallies: &[LayerTally], cfg: &crew_core::config::DeviceConfig) -> Table {
    let mut t = Table::new(&[
        "layer",
        "shape",
        "uniq/in",
        "tiles",
        "runs",
        "cycles/run",
        "lane util",
        "mults/run",
        "adds/run",
        "wall/run",
        "check",
    ]);
    for (l, tally) in model.layers.iter().zip(tallies) {
        let runs = tally.runs.max(1);
        let mean_unique = l.descriptors.iter().map(|d| d.unique_count as f64).sum::<f64>() / l.n_in as f64;
        let util =
            (l.n_out * l.n_in) as f64 * runs as f64 / (cfg.total_lanes() as f64 * tally.counts.cycles.max(1) as f64);
        t.row(vec![
            l.name.clone(),
            format!("{}x{}", l.n_out, l.n_in),
            format!("{mean_unique:.1}"),
            tally.tiles.to_string(),
            tally.runs.to_string(),
            (tally.counts.cycles / runs).to_string(),
            format!("{:.1}%", 100.0 * util),
            (tally.counts.mults / runs).to_string(),
            (tally.counts.adds / runs).to_string(),
            format!("{:.1?}", tally.wall / runs as u32),
            "OK".into(),
        ]);
    }
    t
}

/// Random activations, roughly N(0, 1), quantized per vector.
fn random_inputs(seed: u64, count: usize, n: usize) -> Vec<Vec<i8>> {
    crate::lstm::input_sequence(seed, count, n).iter().map(|x| quantize_activations(x).0).collect()
}

fn run_layers(
    accel: &mut Accelerator<BoxedTransport>,
    model: &Model,
    checker: &Checker,
    args: &Args,
    seed: u64,
) -> anyhow::Result<Vec<LayerTally>> {
    let file_inputs = match &args.input {
        Some(p) => {
            let v = crew_core::import::load_vectors(p)?;
            Some(v.iter().map(|x| quantize_activations(x).0).collect::<Vec<_>>())
        }
        None => None,
    };
    let pb = progress(model.layers.len() as u64, "layers");
    let mut tallies = Vec::new();
    for (li, l) in model.layers.iter().enumerate() {
        pb.set_message(l.name.clone());
        let inputs = match &file_inputs {
            Some(v) => {
                if v[0].len() != l.n_in {
                    bail!("--input vectors have {} values, but layer {li} ({}) takes {}", v[0].len(), l.name, l.n_in);
                }
                v.clone()
            }
            None => random_inputs(seed.wrapping_add(li as u64), args.batch, l.n_in),
        };
        let t0 = Instant::now();
        let runs = accel.run_batch(li, &inputs).with_context(|| format!("running layer {li} ({})", l.name))?;
        let wall = t0.elapsed();
        for (v, (x, r)) in inputs.iter().zip(&runs).enumerate() {
            checker.check(model, li, v, x, &r.outputs)?;
        }
        let mut tally = LayerTally::default();
        tally.add(&runs, wall);
        tallies.push(tally);
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(tallies)
}

/// The built-in LSTM: both matrix products of every step on the device, the gates on the host,
/// `batch` independent sequences in one batch. Ends with the deviation from the f32 LSTM.
fn run_lstm(
    accel: &mut Accelerator<BoxedTransport>,
    model: &Model,
    checker: &Checker,
    seed: u64,
    batch: usize,
    steps: usize,
) -> anyhow::Result<Vec<LayerTally>> {
    let cell = builtin::cell()?;
    let (w_ih, w_hh) = (&model.layers[builtin::W_IH], &model.layers[builtin::W_HH]);
    let rows = 4 * cell.hidden;
    let seqs: Vec<Vec<Vec<f32>>> =
        (0..batch).map(|b| crate::lstm::input_sequence(seed.wrapping_add(b as u64), steps, cell.inputs)).collect();
    let mut h = vec![vec![0f32; cell.hidden]; batch];
    let mut c = vec![vec![0f32; cell.hidden]; batch];
    let (mut h32, mut c32) = (h.clone(), c.clone());
    let mut tallies = vec![LayerTally::default(), LayerTally::default()];
    println!("LSTM: {steps} steps x {batch} sequence(s), both matmuls on the device, gates on the host");
    let pb = progress(steps as u64, "steps");
    for t in 0..steps {
        let (xs, x_scales): (Vec<Vec<i8>>, Vec<f32>) = seqs.iter().map(|s| quantize_activations(&s[t])).unzip();
        let (hs, h_scales): (Vec<Vec<i8>>, Vec<f32>) = h.iter().map(|v| quantize_activations(v)).unzip();
        let mut results = Vec::new();
        for (li, inputs) in [(builtin::W_IH, &xs), (builtin::W_HH, &hs)] {
            let t0 = Instant::now();
            let runs = accel.run_batch(li, inputs).with_context(|| format!("step {t}, layer {li}"))?;
            tallies[li].add(&runs, t0.elapsed());
            for (v, (x, r)) in inputs.iter().zip(&runs).enumerate() {
                checker.check(model, li, v, x, &r.outputs).with_context(|| format!("at LSTM step {t}"))?;
            }
            results.push(runs);
        }
        for b in 0..batch {
            let bias = |l: &crew_core::EncodedLayer, r: usize| l.bias.as_ref().map_or(0.0, |v| v[r]);
            let scale =
                |l: &crew_core::EncodedLayer, r: usize| if l.scales.len() == 1 { l.scales[0] } else { l.scales[r] };
            let gates: Vec<f32> = (0..rows)
                .map(|r| {
                    x_scales[b] * scale(w_ih, r) * results[0][b].outputs[r] as f32
                        + bias(w_ih, r)
                        + h_scales[b] * scale(w_hh, r) * results[1][b].outputs[r] as f32
                        + bias(w_hh, r)
                })
                .collect();
            cell.step_from_gates(&gates, &mut c[b], &mut h[b]);
            cell.step_f32(&seqs[b][t], &mut c32[b], &mut h32[b]);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let (mut max_dev, mut dot, mut n1, mut n2) = (0f32, 0f64, 0f64, 0f64);
    for (hd, hf) in h.iter().flatten().zip(h32.iter().flatten()) {
        max_dev = max_dev.max((hd - hf).abs());
        dot += (*hd as f64) * (*hf as f64);
        n1 += (*hd as f64).powi(2);
        n2 += (*hf as f64).powi(2);
    }
    println!(
        "final hidden state vs the f32 LSTM: max |diff| {max_dev:.4}, cosine similarity {:.5} (int8 weights and activations)",
        dot / (n1.sqrt() * n2.sqrt()).max(f64::MIN_POSITIVE)
    );
    Ok(tallies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_core::encode::EncodedLayer;
    use crew_core::quant::QuantizedLayer;

    #[test]
    fn a_mismatch_names_layer_output_and_both_values() {
        let q = QuantizedLayer {
            name: "fc1".into(),
            n_out: 3,
            n_in: 2,
            q: vec![1, 2, 3, 4, 5, 6],
            scales: vec![1.0],
            bias: None,
        };
        let model = Model { layers: vec![EncodedLayer::encode(&q)] };
        let checker = Checker::new(&model);
        // Reference: [1*1 + 2*1, 3 + 4, 5 + 6] = [3, 7, 11].
        assert!(checker.check(&model, 0, 0, &[1, 1], &[3, 7, 11]).is_ok());
        let e = checker.check(&model, 0, 4, &[1, 1], &[3, 8, 11]).unwrap_err().to_string();
        assert_eq!(e, "MISMATCH in layer 0 (fc1), vector 4, output 1: device 8, CPU reference 7");
        let e = checker.check(&model, 0, 0, &[1, 1], &[3, 7]).unwrap_err().to_string();
        assert!(e.contains("output 2: device missing, CPU reference 11"), "{e}");
    }
}
