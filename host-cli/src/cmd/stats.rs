//! `crew-host stats IN`: per-layer reuse and storage statistics (definitions in
//! `crew_core::stats`), as a table or JSON, and optionally the distribution plot of unique weights
//! per input (the analogue of the CREW paper's Fig. 1).

use super::encode::{load_model, scale_mode};
use anyhow::Context;
use crew_core::stats::{LayerStats, ModelStats, UniqueHistogram};
use plotters::prelude::*;
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `crew-host stats`.
#[derive(clap::Args)]
pub struct Args {
    /// A model: .safetensors, .npy, .npz (quantized and encoded on the fly) or .crew.
    pub input: PathBuf,
    /// Only the 2-D tensors (or .crew layers) whose names match this regex.
    #[arg(long, value_name = "REGEX")]
    pub layers: Option<Regex>,
    /// One weight scale per output row instead of one per tensor (not for .crew inputs).
    #[arg(long)]
    pub per_row_scales: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also draw the cumulative distribution of unique weights per input to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    input: String,
    #[serde(flatten)]
    stats: &'a ModelStats,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = load_model(&args.input, args.layers.as_ref(), scale_mode(args.per_row_scales))?;
    let stats = ModelStats::of_model(&model);
    if let Some(plot) = &args.plot {
        let title = args.input.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        write_plot(plot, &title, &stats).with_context(|| format!("cannot write the plot {}", plot.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = Report { input: args.input.display().to_string(), stats: &stats };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", table(&args.input, &stats))?;
    }
    if let Some(plot) = &args.plot {
        eprintln!("wrote {}", plot.display());
    }
    Ok(())
}

/// The statistics as a text table: one row per layer, then the totals.
pub fn table(input: &Path, s: &ModelStats) -> String {
    let t = &s.total;
    let name_w = s.layers.iter().map(|l| l.name.len()).max().unwrap_or(0).max(5);
    let mut out = format!(
        "{}: {} layers, {} weights, {} input columns\n\
         unique = distinct int8 values per input column (zero included); saved = multiplications avoided\n\
         vs a dense GEMV; storage = index bits + 8-bit tables vs int8 (image adds descriptors, alignment)\n\n",
        input.display(),
        t.layers,
        t.weights,
        t.columns
    );
    let header = format!(
        "{:<name_w$}  {:>10}  {:>4} {:>6} {:>6} {:>4}  {:>5}  {:>7}  {:>7}  {:>8}  {:>7}\n",
        "layer", "shape", "min", "mean", "median", "max", "bits", "CREW", "UCNN", "storage", "image"
    );
    let units = format!(
        "{:<name_w$}  {:>10}  {:>23}  {:>5}  {:>7}  {:>7}  {:>8}  {:>7}\n",
        "", "out x in", "unique per input", "index", "saved", "saved", "% int8", "% int8"
    );
    out.push_str(&header);
    out.push_str(&units);
    out.push_str(&"-".repeat(header.len() - 1));
    out.push('\n');
    let row = |name: &str, shape: String, l: Row| {
        format!(
            "{:<name_w$}  {:>10}  {:>4} {:>6.1} {:>6.1} {:>4}  {:>5.2}  {:>6.1}%  {:>6.1}%  {:>7.1}%  {:>6.1}%\n",
            name, shape, l.min, l.mean, l.median, l.max, l.bits, l.crew, l.ucnn, l.storage, l.image
        )
    };
    for l in &s.layers {
        out.push_str(&row(&l.name, format!("{}x{}", l.n_out, l.n_in), Row::of(l)));
    }
    out.push_str(&"-".repeat(header.len() - 1));
    out.push('\n');
    let total = Row {
        min: t.unique_min,
        mean: t.unique_mean,
        median: t.unique_median,
        max: t.unique_max,
        bits: t.mean_index_bits,
        crew: t.crew_mults_saved_pct,
        ucnn: t.ucnn_mults_saved_pct,
        storage: t.crew_storage_vs_int8_pct,
        image: t.image_vs_int8_pct,
    };
    out.push_str(&row("total", format!("{} w", t.weights), total));
    out
}

struct Row {
    min: usize,
    mean: f64,
    median: f64,
    max: usize,
    bits: f64,
    crew: f64,
    ucnn: f64,
    storage: f64,
    image: f64,
}

impl Row {
    fn of(l: &LayerStats) -> Row {
        Row {
            min: l.unique_min,
            mean: l.unique_mean,
            median: l.unique_median,
            max: l.unique_max,
            bits: l.mean_index_bits,
            crew: l.crew_mults_saved_pct,
            ucnn: l.ucnn_mults_saved_pct,
            storage: l.crew_storage_vs_int8_pct,
            image: l.image_vs_int8_pct,
        }
    }
}

/// Curve colours (Tableau 10); the all-layers curve is black.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The curves to draw: one per layer for small models (up to [`PALETTE`]'s size), else one per
/// layer shape when there is more than one; always the pooled curve of all layers last.
fn curves(s: &ModelStats) -> Vec<(String, UniqueHistogram)> {
    let mut out = Vec::new();
    if s.layers.len() > 1 && s.layers.len() <= PALETTE.len() {
        for l in &s.layers {
            out.push((format!("{} ({}x{})", l.name, l.n_out, l.n_in), l.histogram.clone()));
        }
    } else {
        let mut by_shape: BTreeMap<(usize, usize), (usize, UniqueHistogram)> = BTreeMap::new();
        for l in &s.layers {
            let e = by_shape.entry((l.n_out, l.n_in)).or_default();
            e.0 += 1;
            e.1.merge(&l.histogram);
        }
        if by_shape.len() > 1 {
            for ((o, i), (n, h)) in by_shape {
                let plural = if n == 1 { "" } else { "s" };
                out.push((format!("{o}x{i} ({n} layer{plural})"), h));
            }
        }
    }
    out.push((format!("all {} layers, {} inputs", s.total.layers, s.total.columns), s.total.histogram.clone()));
    out
}

/// Draw the cumulative distribution of `|U_i|` to an SVG file, atomically (temp file + rename).
pub fn write_plot(path: &Path, title: &str, s: &ModelStats) -> anyhow::Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_max = (s.total.unique_max + 10).clamp(16, 256) as u32;
        let caption = format!("Unique weights per input, cumulative: {title}");
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0u32..x_max, 0f64..100f64)?;
        chart
            .configure_mesh()
            .x_desc("unique int8 weight values in the input's column, |U_i|")
            .y_desc("inputs with at most |U_i| unique values (%)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let all = curves(s);
        let n = all.len();
        for (k, (label, h)) in all.into_iter().enumerate() {
            let last = k + 1 == n;
            let color = if last { BLACK } else { PALETTE[k % PALETTE.len()] };
            let width = if last { 3 } else { 2 };
            let mut pts = vec![(0u32, 0.0)];
            // A step curve: the share stays flat between counts.
            let mut prev = 0.0;
            for (u, share) in h.cdf().into_iter().take_while(|&(u, _)| u as u32 <= x_max) {
                pts.push((u as u32, 100.0 * prev));
                pts.push((u as u32, 100.0 * share));
                prev = share;
            }
            let style = ShapeStyle { color: color.to_rgba(), filled: false, stroke_width: width };
            chart
                .draw_series(LineSeries::new(pts, style))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        let median = s.total.unique_median;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(median as u32, 0.0), (median as u32, 50.0)],
            ShapeStyle { color: BLACK.mix(0.5), filled: false, stroke_width: 1 },
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("median {median}"),
            (median as u32 + 1, 3.0),
            ("sans-serif", 14).into_font().color(&BLACK.mix(0.7)),
        )))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        root.present()?;
    }
    write_atomically(path, svg.as_bytes())?;
    Ok(())
}

/// Write a file atomically: a temporary file in the same directory, then a rename over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map_or_else(|| "plot".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}
