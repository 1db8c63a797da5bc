//! `crew-host encode IN -o OUT.crew`: quantize and CREW-encode FC layers into a `.crew` file.

use anyhow::Context;
use crew_core::format::Model;
use crew_core::import::{self, FileKind};
use crew_core::quant::ScaleMode;
use indicatif::{ProgressBar, ProgressStyle};
use regex::Regex;
use std::path::{Path, PathBuf};

/// Arguments of `crew-host encode`.
#[derive(clap::Args)]
pub struct Args {
    /// Input weights: .safetensors (f32/f16/bf16), .npy or .npz (f32, [out][in]), or a .crew file.
    pub input: PathBuf,
    /// The .crew file to write (atomically: nothing is written when anything fails).
    #[arg(short, long, value_name = "OUT.crew")]
    pub output: PathBuf,
    /// Only the 2-D tensors whose names match this regex. Default: every 2-D float tensor
    /// except embeddings and poolers (the FC weights).
    #[arg(long, value_name = "REGEX")]
    pub layers: Option<Regex>,
    /// One weight scale per output row instead of one per tensor.
    #[arg(long)]
    pub per_row_scales: bool,
}

/// The scale mode a `--per-row-scales` flag selects.
pub(crate) fn scale_mode(per_row: bool) -> ScaleMode {
    if per_row {
        ScaleMode::PerRow
    } else {
        ScaleMode::PerTensor
    }
}

/// Load any supported input as an encoded model, with a progress bar over weights while
/// quantizing and encoding (hidden when stderr is not a terminal).
pub(crate) fn load_model(input: &Path, layers: Option<&Regex>, mode: ScaleMode) -> anyhow::Result<Model> {
    if FileKind::of(input) == Some(FileKind::Crew) {
        if mode == ScaleMode::PerRow {
            eprintln!("note: {} is already encoded; --per-row-scales has no effect", input.display());
        }
        return Ok(import::load_any(input, layers, mode)?);
    }
    let matrices = import::load_matrices(input, layers)?;
    let total: usize = matrices.iter().map(|m| m.len()).sum();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} encoding [{bar:32}] {human_pos}/{human_len} weights, {eta} left  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut out = Vec::with_capacity(matrices.len());
    for m in &matrices {
        bar.set_message(m.name.clone());
        out.push(import::encode_matrix(input, m, mode)?);
        bar.inc(m.len() as u64);
    }
    bar.finish_and_clear();
    Ok(Model { layers: out })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = load_model(&args.input, args.layers.as_ref(), scale_mode(args.per_row_scales))?;
    let weights: usize = model.layers.iter().map(|l| l.n_out * l.n_in).sum();
    let image_words: usize = model.layers.iter().map(|l| l.image_words()).sum();
    model.write_file(&args.output).with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "wrote {}: {} layers, {} weights, weight image {} words ({:.1}% of int8)",
        args.output.display(),
        model.layers.len(),
        weights,
        image_words,
        100.0 * 32.0 * image_words as f64 / (8.0 * weights.max(1) as f64)
    );
    Ok(())
}
