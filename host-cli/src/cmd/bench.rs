//! `crew-host bench`: the CPU kernels against the CREW core and the dense baseline core.
//!
//! For every FC layer of a model (and in total) it measures, in one process:
//!
//! * the wall time of the three CPU kernels of `crew_core::kernels` (dense f32 through `gemm`,
//!   dense int8 and CREW in software, AVX2 when the CPU has it): the median over `--reps`
//!   repetitions, the three kernels interleaved within each repetition (in a rotating order), so
//!   that a noisy machine slows all three alike;
//! * the cycles of the CREW core and of the dense baseline core at the same lanes, as the driver
//!   reports them: the model is loaded on an `emu` device of each kind (same options) and one
//!   vector is run per layer; `LayerRun.counts` sums the tiles the driver runs, and the emulator
//!   counts exactly what `crew_core::cycles` predicts and the RTL counts;
//! * the device time those cycles take at the Fmax of each `bitstreams/*/manifest.json`, or at a
//!   nominal clock (clearly labelled) when there is none yet;
//! * weight-memory bits moved, multiplications and additions, and an energy estimate from
//!   per-operation energies of Horowitz, ISSCC 2014 (45 nm).
//!
//! `--report` writes all of it as markdown, `--plot-dir` the SVG plots.

use crate::builtin;
use crate::table::Table;
use anyhow::{bail, Context};
use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles::RunCounts;
use crew_core::kernels::crew::PreparedCrewLayer;
use crew_core::kernels::dense_f32::gemv_f32_batch;
use crew_core::kernels::int8::gemv_i8_batch;
use crew_core::kernels::Backend;
use crew_core::quant::{quantize_activations, ScaleMode};
use crew_core::reference::gemv_i8;
use crew_core::stats::ModelStats;
use crew_driver::device::emu_device;
use crew_driver::OpenOptions;
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `crew-host bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Model: .crew, .safetensors, .npy or .npz. Without it, the built-in Silero VAD LSTM cell.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Regex selecting layers of --model (default: its FC weights).
    #[arg(long, value_name = "REGEX")]
    pub layers: Option<String>,
    /// Device whose cycles are counted: `emu`, `emu:config=ecp5-25f`, `emu:lanes=32`, ... The CREW
    /// core and the dense baseline both get these options (only the kind differs). With
    /// `sim[:options]` the emulator of the simulated configuration counts every layer, and the
    /// RTL simulation runs a sample of layers (`--sim-sample`) to confirm the counts.
    #[arg(long, default_value = "emu")]
    pub device: String,
    /// With `--device sim`: layers (evenly spaced, first and last included) run on the RTL too.
    #[arg(long, default_value_t = 3)]
    pub sim_sample: usize,
    /// Input vectors per kernel call (the CPU kernels process them together).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed repetitions per kernel and layer (the median is reported).
    #[arg(long, default_value_t = 15)]
    pub reps: usize,
    /// Seed of the random input vectors.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory of bitstream manifests (`*/manifest.json`, with `core.clock_mhz` or
    /// `fmax_mhz.achieved`); default
    /// `$CREW_BITSTREAMS_DIR` or `bitstreams`.
    #[arg(long, value_name = "DIR")]
    pub bitstreams: Option<PathBuf>,
    /// Clock for the device-time projection when no manifest exists (labelled nominal).
    #[arg(long, default_value_t = 100.0)]
    pub nominal_mhz: f64,
    /// Write the results as markdown to this file.
    #[arg(long, value_name = "FILE.md")]
    pub report: Option<PathBuf>,
    /// Write SVG plots (speedup, storage, unique-weight distribution) into this directory.
    #[arg(long, value_name = "DIR")]
    pub plot_dir: Option<PathBuf>,
}

/// Per-operation energies (pJ), Horowitz, "Computing's Energy Problem (and what we can do about
/// it)", ISSCC 2014, 45 nm.
mod energy {
    pub const SOURCE: &str =
        "M. Horowitz, \"Computing's Energy Problem (and what we can do about it)\", ISSCC 2014, 45 nm";
    pub const INT8_MULT: f64 = 0.2;
    pub const INT32_ADD: f64 = 0.1;
    pub const SRAM_8K_64B: f64 = 10.0;
    pub const SRAM_32K_64B: f64 = 20.0;
    pub const SRAM_1M_64B: f64 = 100.0;
    /// The low end of the quoted 1.3-2.6 nJ per 64 bits.
    pub const DRAM_64B: f64 = 1300.0;

    /// The quoted SRAM read energy for the smallest quoted size that holds `bytes`.
    pub fn sram_64b(bytes: u64) -> (f64, &'static str) {
        if bytes <= 8 << 10 {
            (SRAM_8K_64B, "8 KB")
        } else if bytes <= 32 << 10 {
            (SRAM_32K_64B, "32 KB")
        } else {
            (SRAM_1M_64B, "1 MB")
        }
    }
}

/// One design's counts for one layer (one input vector).
#[derive(Debug, Clone, Copy, Default)]
struct Hw {
    counts: RunCounts,
    tiles: usize,
    weight_bits: u64,
}

/// What was measured for one layer.
struct LayerResult {
    name: String,
    n_out: usize,
    n_in: usize,
    mean_unique: f64,
    /// Mean index width `b_i` over the input columns.
    mean_bits: f64,
    /// Median seconds per call (one batch) of f32, int8, CREW.
    cpu: [f64; 3],
    crew: Hw,
    dense: Hw,
    int8_bits: u64,
}

impl LayerResult {
    fn weights(&self) -> u64 {
        (self.n_out * self.n_in) as u64
    }
}

/// A clock to project device time at.
#[derive(Debug, Clone)]
struct Clock {
    label: String,
    /// The clock the bitstream runs at (its manifest's `core.clock_mhz`, the PLL output), else
    /// nextpnr's achieved Fmax (older manifests), else the nominal clock.
    mhz: f64,
    /// nextpnr's achieved Fmax, when `mhz` is the run clock below it.
    achieved: Option<f64>,
    /// The core kind the bitstream implements, when its manifest says.
    kind: Option<CoreKind>,
    /// The core configuration of the manifest, when given, as text.
    core: Option<String>,
    nominal: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    if !(args.nominal_mhz.is_finite() && args.nominal_mhz > 0.0) {
        bail!("--nominal-mhz must be a positive number of MHz, not {}", args.nominal_mhz);
    }
    let (scheme, rest) = args.device.split_once(':').unwrap_or((args.device.as_str(), ""));
    if scheme != "emu" && scheme != "sim" {
        bail!(
            "--device must be `emu[:options]` or `sim[:options]`: bench counts cycles with the emulator, which the RTL \
             matches (sim confirms it on a sample of layers)"
        );
    }
    let with_kind = |kind: &str| {
        if rest.trim().is_empty() {
            format!("{scheme}:kind={kind}")
        } else {
            format!("{scheme}:{rest},kind={kind}")
        }
    };
    let (mut crew_dev, mut dense_dev) = (with_kind("crew"), with_kind("dense"));
    let (model, source) = match &args.model {
        None => (builtin::model()?, builtin::NAME.to_string()),
        Some(p) => {
            let filter = args.layers.as_deref().map(regex::Regex::new).transpose().context("bad --layers regex")?;
            let m = crew_core::import::load_any(p, filter.as_ref(), ScaleMode::PerTensor)
                .with_context(|| format!("cannot load {}", p.display()))?;
            (m, p.display().to_string())
        }
    };
    if model.layers.is_empty() {
        bail!("{source} has no FC layer to benchmark (check --layers)");
    }
    let bitstreams = args.bitstreams.clone().unwrap_or_else(|| {
        std::env::var_os(crate::cmd::program::BITSTREAMS_ENV).map_or_else(|| PathBuf::from("bitstreams"), PathBuf::from)
    });
    let load_before = loadavg();
    let opts = OpenOptions::default();
    // With `sim`, the RTL runs the sample and the emulator of the same configuration counts all.
    let mut rtl = None;
    if scheme == "sim" {
        let sim_opts = opts.clone().with_timeout(crate::device::default_timeout(&crew_dev));
        let c = crate::device::open_plain(&crew_dev, &sim_opts)?;
        let d = crate::device::open_plain(&dense_dev, &sim_opts)?;
        let names = (crew_dev.clone(), dense_dev.clone());
        (crew_dev, dense_dev) = (emu_device(&c.config()), emu_device(&d.config()));
        rtl = Some((c, d, names));
    }
    let mut crew_acc = crate::device::open_plain(&crew_dev, &opts)?;
    let mut dense_acc = crate::device::open_plain(&dense_dev, &opts)?;
    let (crew_cfg, dense_cfg) = (crew_acc.config(), dense_acc.config());
    let sample = sample_layers(model.layers.len(), if rtl.is_some() { args.sim_sample } else { 0 });
    if let Some((c, d, _)) = rtl.as_mut() {
        c.load(&model).context("loading the model on the simulated CREW core")?;
        d.load(&model).context("loading the model on the simulated dense core")?;
    }
    let clocks = clocks(&bitstreams, &crew_cfg, args.nominal_mhz)?;
    crew_acc.load(&model).context("loading the model on the CREW core")?;
    dense_acc.load(&model).context("loading the model on the dense core")?;
    let backend = Backend::Auto;
    println!(
        "bench {source}: {} layers, batch {}, {} reps; CPU kernels: {}; devices {crew_dev} and {dense_dev} ({})",
        model.layers.len(),
        args.batch,
        args.reps,
        backend.describe(),
        crew_cfg.describe()
    );
    let pb = ProgressBar::new(model.layers.len() as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_prefix("layers");
    let mut results = Vec::with_capacity(model.layers.len());
    let mut confirmed = Vec::new();
    for (li, l) in model.layers.iter().enumerate() {
        pb.set_message(l.name.clone());
        let inputs: Vec<Vec<i8>> = crate::lstm::input_sequence(args.seed.wrapping_add(li as u64), args.batch, l.n_in)
            .iter()
            .map(|x| quantize_activations(x).0)
            .collect();
        let cpu = time_kernels(l, &inputs, args.reps, backend).with_context(|| format!("layer {li} ({})", l.name))?;
        let mut hw = [Hw::default(); 2];
        for (h, acc) in hw.iter_mut().zip([&mut crew_acc, &mut dense_acc]) {
            let kind = acc.config().kind.name();
            let r = acc.run_layer(li, &inputs[0]).with_context(|| format!("running layer {li} on the {kind} core"))?;
            let want = gemv_i8(&l.decode_weights(), l.n_out, l.n_in, &inputs[0]);
            if r.outputs != want {
                bail!("the {kind} core's result for layer {li} ({}) differs from the CPU reference", l.name);
            }
            let image_words: u64 = acc.plan(li).map_or(0, |p| p.tiles.iter().map(|t| t.image().len() as u64).sum());
            *h = Hw { counts: r.counts, tiles: r.tiles, weight_bits: 32 * image_words };
        }
        if let (Some((c, d, _)), true) = (rtl.as_mut(), sample.contains(&li)) {
            pb.set_message(format!("{} (on the RTL)", l.name));
            for (h, acc) in hw.iter().zip([c, d]) {
                let kind = acc.config().kind.name();
                let r = acc
                    .run_layer(li, &inputs[0])
                    .with_context(|| format!("layer {li} on the simulated {kind} core"))?;
                if r.counts != h.counts || r.outputs != gemv_i8(&l.decode_weights(), l.n_out, l.n_in, &inputs[0]) {
                    bail!(
                        "the simulated {kind} core disagrees with the emulator on layer {li} ({}): RTL {:?}, emulator {:?}",
                        l.name,
                        r.counts,
                        h.counts
                    );
                }
            }
            confirmed.push(li);
        }
        // The dense baseline reads 8 bits per weight.
        hw[1].weight_bits = 8 * (l.n_out * l.n_in) as u64;
        results.push(LayerResult {
            name: l.name.clone(),
            n_out: l.n_out,
            n_in: l.n_in,
            mean_unique: l.descriptors.iter().map(|d| d.unique_count as f64).sum::<f64>() / l.n_in as f64,
            mean_bits: l.descriptors.iter().map(|d| d.index_bits as f64).sum::<f64>() / l.n_in as f64,
            cpu,
            crew: hw[0],
            dense: hw[1],
            int8_bits: 8 * (l.n_out * l.n_in) as u64,
        });
        pb.inc(1);
    }
    pb.finish_and_clear();
    let load_after = loadavg();
    let ctx = Run {
        source,
        args: &args,
        crew_dev,
        dense_dev,
        crew_cfg,
        dense_cfg,
        backend,
        clocks,
        bitstreams,
        load: (load_before, load_after),
        confirmed: rtl.map(|(_, _, names)| (names, confirmed)),
    };
    let text = render_text(&ctx, &results);
    print!("{text}");
    let stats = ModelStats::of_model(&model);
    let mut plots = Vec::new();
    if let Some(dir) = &args.plot_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let prefix = plot_prefix(args.model.as_deref());
        let speedup = dir.join(format!("{prefix}-speedup.svg"));
        plot_speedup(&speedup, &ctx, &results).with_context(|| format!("cannot write {}", speedup.display()))?;
        let storage = dir.join(format!("{prefix}-storage.svg"));
        plot_storage(&storage, &ctx, &results).with_context(|| format!("cannot write {}", storage.display()))?;
        let cdf = dir.join(format!("{prefix}-unique-cdf.svg"));
        crate::cmd::stats::write_plot(&cdf, &short_source(&ctx.source), &stats)
            .with_context(|| format!("cannot write {}", cdf.display()))?;
        for p in [&speedup, &storage, &cdf] {
            eprintln!("wrote {}", p.display());
        }
        plots = vec![
            ("CREW core vs dense core: cycle speedup per layer", speedup),
            ("Weight storage per layer: CREW image vs int8", storage),
            ("Unique weights per input column (cumulative)", cdf),
        ];
    }
    if let Some(path) = &args.report {
        let md = render_markdown(&ctx, &results, &stats, &plots, path);
        write_atomically(path, md.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Everything about a run that the renderers need besides the per-layer results.
struct Run<'a> {
    source: String,
    args: &'a Args,
    crew_dev: String,
    dense_dev: String,
    crew_cfg: DeviceConfig,
    dense_cfg: DeviceConfig,
    backend: Backend,
    clocks: Vec<Clock>,
    bitstreams: PathBuf,
    load: (Option<String>, Option<String>),
    /// With `--device sim`: the two simulated devices and the layers they confirmed.
    confirmed: Option<((String, String), Vec<usize>)>,
}

/// `n` layer indices of `layers`, evenly spaced, first and last included.
fn sample_layers(layers: usize, n: usize) -> Vec<usize> {
    match (layers, n) {
        (0, _) | (_, 0) => vec![],
        (_, 1) => vec![0],
        _ => {
            let mut v: Vec<usize> = (0..n).map(|k| k * (layers - 1) / (n - 1)).collect();
            v.dedup();
            v
        }
    }
}

/// One line on the RTL confirmation, if there was one.
fn confirmation(ctx: &Run, results: &[LayerResult]) -> Option<String> {
    let ((c, d), layers) = ctx.confirmed.as_ref()?;
    let names: Vec<String> = layers.iter().map(|&l| format!("{} (`{}`)", l, results[l].name)).collect();
    Some(format!(
        "Confirmed on the RTL: layers {} ran on `{c}` and `{d}` too, with accumulators and CYCLES, MULT_COUNT and \
         ADD_COUNT identical to the emulator's.",
        names.join(", ")
    ))
}

/// Median wall time per call of the three kernels. Each sample runs a kernel enough times to take
/// about a millisecond; within a repetition the kernels run one after the other, in an order that
/// rotates from one repetition to the next.
fn time_kernels(
    l: &crew_core::EncodedLayer,
    inputs: &[Vec<i8>],
    reps: usize,
    backend: Backend,
) -> anyhow::Result<[f64; 3]> {
    let (n_out, n_in) = (l.n_out, l.n_in);
    let q = l.decode_weights();
    let w: Vec<f32> = q
        .iter()
        .enumerate()
        .map(|(k, &v)| v as f32 * l.scales[if l.scales.len() == 1 { 0 } else { k / n_in }])
        .collect();
    let xs: Vec<Vec<f32>> = inputs.iter().map(|a| a.iter().map(|&v| v as f32 / 127.0).collect()).collect();
    let prepared = PreparedCrewLayer::new(l)?;
    let want: Vec<Vec<i32>> = inputs.iter().map(|a| gemv_i8(&q, n_out, n_in, a)).collect();
    if gemv_i8_batch(&q, n_out, n_in, inputs, backend)? != want {
        bail!("the int8 kernel differs from the CPU reference");
    }
    if prepared.gemv_batch(inputs, backend)? != want {
        bail!("the CREW kernel differs from the CPU reference");
    }
    let call = |k: usize| -> anyhow::Result<()> {
        match k {
            0 => drop(std::hint::black_box(gemv_f32_batch(&w, n_out, n_in, &xs)?)),
            1 => drop(std::hint::black_box(gemv_i8_batch(&q, n_out, n_in, inputs, backend)?)),
            _ => drop(std::hint::black_box(prepared.gemv_batch(inputs, backend)?)),
        }
        Ok(())
    };
    // Calibrate: calls per sample so that a sample takes about 1 ms.
    let mut inner = [1usize; 3];
    for (k, n) in inner.iter_mut().enumerate() {
        call(k)?;
        let t = Instant::now();
        call(k)?;
        let once = t.elapsed().max(Duration::from_nanos(100));
        *n = (Duration::from_millis(1).as_secs_f64() / once.as_secs_f64()).ceil().clamp(1.0, 10_000.0) as usize;
    }
    let mut samples = [Vec::with_capacity(reps), Vec::with_capacity(reps), Vec::with_capacity(reps)];
    for rep in 0..reps {
        for j in 0..3 {
            let k = (rep + j) % 3;
            let t = Instant::now();
            for _ in 0..inner[k] {
                call(k)?;
            }
            samples[k].push(t.elapsed().as_secs_f64() / inner[k] as f64);
        }
    }
    Ok(samples.map(|mut s| {
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }))
}

/// The projection clocks: every manifest under `dir` whose core has the datapath of `cfg` (lanes,
/// groups, multipliers: the cycles counted are only valid for that datapath), or one nominal clock.
fn clocks(dir: &Path, cfg: &DeviceConfig, nominal_mhz: f64) -> anyhow::Result<Vec<Clock>> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path().join("manifest.json")).collect();
        paths.sort();
        for p in paths.into_iter().filter(|p| p.is_file()) {
            let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", p.display()))?;
            let positive = |ptr: &str| v.pointer(ptr).and_then(|x| x.as_f64()).filter(|m| m.is_finite() && *m > 0.0);
            let achieved = positive("/fmax_mhz/achieved");
            let run_clock = positive("/core/clock_mhz");
            let Some(mhz) = run_clock.or(achieved) else {
                eprintln!(
                    "note: {} has neither a positive core.clock_mhz nor fmax_mhz.achieved; not used for projections",
                    p.display()
                );
                continue;
            };
            let achieved = run_clock.and(achieved);
            let part = v.get("part").and_then(|x| x.as_str()).unwrap_or("unknown part").to_string();
            let core = ["core", "config"].iter().find_map(|k| v.get(*k)).filter(|c| c.is_object());
            let kind = core.and_then(|c| c.get("kind")).or_else(|| v.get("kind")).and_then(|k| k.as_str()).and_then(
                |k| match k {
                    "crew" => Some(CoreKind::Crew),
                    "dense" => Some(CoreKind::Dense),
                    _ => None,
                },
            );
            let field = |k: &str| core.and_then(|c| c.get(k)).and_then(|x| x.as_u64());
            let datapath = (field("lanes"), field("groups"), field("mults"));
            let wanted = (Some(cfg.lanes as u64), Some(cfg.groups as u64), Some(cfg.mults as u64));
            if datapath != wanted {
                eprintln!(
                    "note: {} is a core of {:?} lanes/groups/mults, not the device's {:?}; not used for projections",
                    p.display(),
                    datapath,
                    wanted
                );
                continue;
            }
            let dir_name =
                p.parent().and_then(|d| d.file_name()).map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            out.push(Clock {
                label: format!("{dir_name} ({part})"),
                mhz,
                achieved,
                kind,
                core: core.map(|c| c.to_string()),
                nominal: false,
            });
        }
    }
    if out.is_empty() {
        out.push(Clock {
            label: format!("nominal {nominal_mhz} MHz (no bitstream manifest of this datapath yet)"),
            mhz: nominal_mhz,
            achieved: None,
            kind: None,
            core: None,
            nominal: true,
        });
    }
    Ok(out)
}

/// The clock at which a design of `kind` is projected: the manifest of that kind if any, else the
/// first clock without a kind, else the first clock.
fn clock_for(clocks: &[Clock], kind: CoreKind) -> &Clock {
    clocks
        .iter()
        .find(|c| c.kind == Some(kind))
        .or_else(|| clocks.iter().find(|c| c.kind.is_none()))
        .unwrap_or(&clocks[0])
}

fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn cpu_model() -> (String, usize) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| std::env::consts::ARCH.to_string(), |(_, m)| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (model, cores)
}

/// Energy (pJ) of one run: multiplications, additions and weight-memory reads.
struct Energy {
    mults: f64,
    adds: f64,
    sram: f64,
    dram: f64,
}

impl Energy {
    fn of(hw: &Hw, cfg: &DeviceConfig) -> Energy {
        let (sram, _) = energy::sram_64b(cfg.wmem_words as u64 * 4);
        Energy {
            mults: hw.counts.mults as f64 * energy::INT8_MULT,
            adds: hw.counts.adds as f64 * energy::INT32_ADD,
            sram: hw.weight_bits as f64 / 64.0 * sram,
            dram: hw.weight_bits as f64 / 64.0 * energy::DRAM_64B,
        }
    }
    fn on_chip(&self) -> f64 {
        self.mults + self.adds + self.sram
    }
    fn streamed(&self) -> f64 {
        self.mults + self.adds + self.dram
    }
}

/// Totals over layers (per vector for the devices, per batch for the CPU).
struct Totals {
    cpu: [f64; 3],
    crew: Hw,
    dense: Hw,
    weights: u64,
    int8_bits: u64,
}

fn totals(results: &[LayerResult]) -> Totals {
    let mut t = Totals { cpu: [0.0; 3], crew: Hw::default(), dense: Hw::default(), weights: 0, int8_bits: 0 };
    for r in results {
        for k in 0..3 {
            t.cpu[k] += r.cpu[k];
        }
        for (a, b) in [(&mut t.crew, &r.crew), (&mut t.dense, &r.dense)] {
            a.counts.cycles += b.counts.cycles;
            a.counts.mults += b.counts.mults;
            a.counts.adds += b.counts.adds;
            a.tiles += b.tiles;
            a.weight_bits += b.weight_bits;
        }
        t.weights += r.weights();
        t.int8_bits += r.int8_bits;
    }
    t
}

fn fmt_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Energy given in pJ, in nJ or µJ.
fn fmt_energy(pj: f64) -> String {
    if pj >= 1e6 {
        format!("{:.2} µJ", pj / 1e6)
    } else {
        format!("{:.1} nJ", pj / 1e3)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn util(hw: &Hw, cfg: &DeviceConfig, weights: u64) -> f64 {
    100.0 * weights as f64 / (cfg.total_lanes() as f64 * hw.counts.cycles.max(1) as f64)
}

/// The per-layer CPU table, the per-layer device table and the summary, as plain-text tables.
fn tables(ctx: &Run, results: &[LayerResult]) -> (Table, Table, Table, Table) {
    let batch = ctx.args.batch as f64;
    let (cc, cd) = (clock_for(&ctx.clocks, CoreKind::Crew), clock_for(&ctx.clocks, CoreKind::Dense));
    let mut cpu = Table::new(&[
        "layer",
        "shape",
        "uniq/in",
        "bits",
        "f32",
        "int8",
        "CREW",
        "int8 vs f32",
        "CREW vs int8",
        "CREW vs f32",
    ]);
    let mut dev = Table::new(&[
        "layer",
        "tiles",
        "CREW cycles",
        "util",
        "dense cycles",
        "util",
        "speedup",
        "CREW time",
        "dense time",
        "CREW speedup over CPU int8",
        "dense speedup over CPU int8",
    ]);
    let mut ops = Table::new(&[
        "layer",
        "CREW bits",
        "dense bits",
        "CREW/int8",
        "CREW mults",
        "dense mults",
        "CREW adds",
        "dense adds",
    ]);
    let row_cpu = |name: String, shape: String, u: String, bits: String, c: &[f64; 3]| {
        vec![
            name,
            shape,
            u,
            bits,
            fmt_time(c[0]),
            fmt_time(c[1]),
            fmt_time(c[2]),
            format!("{:.2}x", ratio(c[0], c[1])),
            format!("{:.2}x", ratio(c[1], c[2])),
            format!("{:.2}x", ratio(c[0], c[2])),
        ]
    };
    let row_dev = |name: String, crew: &Hw, dense: &Hw, weights: u64, cpu_int8: f64| {
        let tc = crew.counts.cycles as f64 * batch / (cc.mhz * 1e6);
        let td = dense.counts.cycles as f64 * batch / (cd.mhz * 1e6);
        vec![
            name,
            format!("{}/{}", crew.tiles, dense.tiles),
            crew.counts.cycles.to_string(),
            format!("{:.1}%", util(crew, &ctx.crew_cfg, weights)),
            dense.counts.cycles.to_string(),
            format!("{:.1}%", util(dense, &ctx.dense_cfg, weights)),
            format!("{:.2}x", ratio(dense.counts.cycles as f64, crew.counts.cycles as f64)),
            fmt_time(tc),
            fmt_time(td),
            format!("{:.2}x", ratio(cpu_int8, tc)),
            format!("{:.2}x", ratio(cpu_int8, td)),
        ]
    };
    let row_ops = |name: String, crew: &Hw, dense: &Hw, int8_bits: u64| {
        vec![
            name,
            crew.weight_bits.to_string(),
            dense.weight_bits.to_string(),
            format!("{:.1}%", 100.0 * ratio(crew.weight_bits as f64, int8_bits as f64)),
            crew.counts.mults.to_string(),
            dense.counts.mults.to_string(),
            crew.counts.adds.to_string(),
            dense.counts.adds.to_string(),
        ]
    };
    // With many layers the plots label layers by index: show it in the tables too.
    let label = |i: usize, r: &LayerResult| if results.len() > 6 { format!("{i}: {}", r.name) } else { r.name.clone() };
    for (i, r) in results.iter().enumerate() {
        cpu.row(row_cpu(
            label(i, r),
            format!("{}x{}", r.n_out, r.n_in),
            format!("{:.1}", r.mean_unique),
            format!("{:.2}", r.mean_bits),
            &r.cpu,
        ));
        dev.row(row_dev(label(i, r), &r.crew, &r.dense, r.weights(), r.cpu[1]));
        ops.row(row_ops(label(i, r), &r.crew, &r.dense, r.int8_bits));
    }
    let t = totals(results);
    let cols: u64 = results.iter().map(|r| r.n_in as u64).sum();
    let mean_u = results.iter().map(|r| r.mean_unique * r.n_in as f64).sum::<f64>() / cols.max(1) as f64;
    let mean_b = results.iter().map(|r| r.mean_bits * r.n_in as f64).sum::<f64>() / cols.max(1) as f64;
    cpu.row(row_cpu(
        "total".into(),
        format!("{} w", t.weights),
        format!("{mean_u:.1}"),
        format!("{mean_b:.2}"),
        &t.cpu,
    ));
    dev.row(row_dev("total".into(), &t.crew, &t.dense, t.weights, t.cpu[1]));
    ops.row(row_ops("total".into(), &t.crew, &t.dense, t.int8_bits));
    // Summary: the paper's averages against what we measured.
    let speedup = ratio(t.dense.counts.cycles as f64, t.crew.counts.cycles as f64);
    let (ec, ed) = (Energy::of(&t.crew, &ctx.crew_cfg), Energy::of(&t.dense, &ctx.dense_cfg));
    let mut sum = Table::new(&["comparison", "speedup", "energy saving", "source"]);
    sum.row(vec!["CREW paper: CREW vs TPU-like (average)".into(), "2.61x".into(), "2.42x".into(), "paper".into()]);
    sum.row(vec!["CREW paper: CREW vs UCNN (average)".into(), "2.10x".into(), "2.08x".into(), "paper".into()]);
    sum.row(vec![
        format!("ours: CREW core vs dense core, equal lanes ({}x{})", ctx.crew_cfg.groups, ctx.crew_cfg.lanes),
        format!("{speedup:.2}x"),
        format!("{:.2}x", ratio(ed.on_chip(), ec.on_chip())),
        "cycles; energy with on-chip weight SRAM".into(),
    ]);
    sum.row(vec![
        "ours: same, weights streamed from DRAM".into(),
        format!("{speedup:.2}x"),
        format!("{:.2}x", ratio(ed.streamed(), ec.streamed())),
        "cycles; energy with DRAM weight reads".into(),
    ]);
    sum.row(vec!["ours: CREW vs UCNN".into(), "n/a".into(), "n/a".into(), "no UCNN core is built".into()]);
    sum.row(vec![
        format!("ours, CPU: CREW kernel vs int8 kernel ({})", ctx.backend.describe()),
        format!("{:.2}x", ratio(t.cpu[1], t.cpu[2])),
        "-".into(),
        "wall time, this machine".into(),
    ]);
    (cpu, dev, ops, sum)
}

fn render_text(ctx: &Run, results: &[LayerResult]) -> String {
    let (cpu, dev, ops, sum) = tables(ctx, results);
    let b = ctx.args.batch;
    let mut s = String::new();
    let _ = writeln!(s, "\nCPU kernels, median wall time per call of {b} vector(s):\n");
    s += &cpu.render();
    let clocks: Vec<String> = ctx.clocks.iter().map(|c| format!("{} at {} MHz", c.label, c.mhz)).collect();
    let _ = writeln!(s, "\nDevices (cycles per vector; times for {b} vector(s) at {}):\n", clocks.join(", "));
    s += &dev.render();
    let _ = writeln!(s, "\nWeight-memory bits moved, multiplications and additions per vector:\n");
    s += &ops.render();
    if let Some(line) = confirmation(ctx, results) {
        let _ = writeln!(s, "\n{line}");
    }
    let _ = writeln!(s, "\nSummary:\n");
    s += &sum.render();
    s
}

/// Markdown table from a plain table's cells.
fn md_table(t: &Table) -> String {
    // Re-render through the text table, then split its columns: cells never hold two spaces.
    let text = t.render();
    let mut lines = text.lines();
    let mut out = String::new();
    let split = |l: &str| -> Vec<String> {
        l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
    };
    let Some(header) = lines.next() else { return out };
    let h = split(header);
    let _ = writeln!(out, "| {} |", h.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(h.len()));
    for l in lines.skip(1) {
        let _ = writeln!(out, "| {} |", split(l).join(" | "));
    }
    out
}

fn short_source(source: &str) -> String {
    Path::new(source).file_name().map_or_else(|| source.to_string(), |n| n.to_string_lossy().into_owned())
}

fn plot_prefix(model: Option<&Path>) -> String {
    match model.and_then(|m| m.file_stem()) {
        Some(stem) => stem.to_string_lossy().into_owned(),
        None => "builtin-lstm".into(),
    }
}

fn render_markdown(
    ctx: &Run,
    results: &[LayerResult],
    stats: &ModelStats,
    plots: &[(&str, PathBuf)],
    report: &Path,
) -> String {
    let (cpu, dev, ops, sum) = tables(ctx, results);
    let (model, cores) = cpu_model();
    let b = ctx.args.batch;
    let t = totals(results);
    let cmd: Vec<String> =
        std::env::args().skip(1).map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect();
    let mut s = String::new();
    let _ = writeln!(s, "# CREW benchmark: {}\n", short_source(&ctx.source));
    let _ = writeln!(
        s,
        "Generated by `crew-host bench`. Reproduce with:\n\n    cargo run --release -p crew-host -- {}\n",
        cmd.join(" ")
    );
    let _ = writeln!(
        s,
        "* **Model**: {} ({} FC layers, {} weights, mean {:.1} unique values per input column, per-tensor int8).",
        ctx.source,
        results.len(),
        t.weights,
        stats.total.unique_mean
    );
    let _ = writeln!(
        s,
        "* **Machine**: {model}, {cores} logical cores (`/proc/cpuinfo`). Load average before/after: {} / {}. \
         The machine is a shared VM on which other builds may run: absolute times are noisy, so every \
         repetition runs the three kernels back to back (rotating their order) and the ratios within one \
         run are what to compare.",
        ctx.load.0.as_deref().unwrap_or("?"),
        ctx.load.1.as_deref().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "* **CPU kernels** (`crew_core::kernels`, {} path): dense f32 via the `gemm` crate (on the dequantized \
         weights), dense int8 with i32 accumulation, CREW in software (`PreparedCrewLayer`). Median of {} \
         repetitions, batch {b}; int8 and CREW results are checked bit-exact against `reference::gemv_i8` first.",
        ctx.backend.describe(),
        ctx.args.reps
    );
    let _ = writeln!(
        s,
        "* **Devices**: `{}` and `{}` (CREW: {}): the model is \
         loaded through the driver (tiled as it would be) and one vector is run per layer; cycles, \
         multiplications and additions are the device counters summed over the tiles (the emulator counts exactly \
         the cycle model the RTL matches). Device times are for {b} vector(s), cycles are per vector.",
        ctx.crew_dev,
        ctx.dense_dev,
        ctx.crew_cfg.describe()
    );
    for c in &ctx.clocks {
        if c.nominal {
            let _ = writeln!(
                s,
                "* **Clock**: no `{}/*/manifest.json` of this datapath exists yet, so device times are projected at a \
                 **nominal {} MHz**, not a measured Fmax.",
                ctx.bitstreams.display(),
                c.mhz
            );
        } else {
            let kind = c.kind.map_or("both designs".to_string(), |k| format!("the {} core", k.name()));
            let how = match c.achieved {
                Some(a) => format!("the clock (PLL) {kind} runs at; nextpnr achieved {a} MHz"),
                None => format!("achieved (nextpnr) for {kind}"),
            };
            let _ = writeln!(
                s,
                "* **Clock**: {} MHz, {} from `{}`{}.",
                c.mhz,
                how,
                c.label,
                c.core.as_ref().map_or(String::new(), |x| format!("; its core configuration: `{x}`"))
            );
        }
    }
    if let Some(line) = confirmation(ctx, results) {
        let _ = writeln!(s, "* **RTL**: {line}");
    }
    let _ = writeln!(s, "\n## Summary\n");
    s += &md_table(&sum);
    let _ = writeln!(
        s,
        "\nThe paper's figures are averages over its own networks and designs (M. Riera, J.-M. Arnau, A. González, \
         \"CREW: Computation Reuse and Efficient Weight Storage for Hardware-accelerated MLPs and RNNs\": speedup \
         and energy savings over a TPU-like accelerator and over UCNN). Ours compare the CREW core with the dense int8 core \
         built from the same components **at equal lanes**. No equal-area speedup is claimed: the measured \
         equal-area point (docs/fpga.md, the LANES sweep: both cores at 8 lanes on the LFE5U-25F) shows a CREW \
         lane costing more LUTs and block RAM than a dense lane costs in DSP slices on the ECP5, so at equal \
         area the dense core fits at least as many lanes.\n"
    );
    s += &findings(ctx, results);
    let _ = writeln!(s, "## CPU kernels (median wall time per call of {b} vector(s))\n");
    s += &md_table(&cpu);
    let _ = writeln!(s, "\n## Devices: cycles, lane utilization and projected time\n");
    s += &md_table(&dev);
    let _ = writeln!(
        s,
        "\n`util` is the share of lane-cycles that consumed a weight (`n_out * n_in / (lanes * groups * cycles)`); \
         `speedup over CPU int8` is the CPU int8 kernel's time over the projected device time (below 1x: the CPU is faster).\n"
    );
    let _ = writeln!(s, "## Weight memory moved, multiplications and additions (per vector)\n");
    s += &md_table(&ops);
    let _ = writeln!(
        s,
        "\nCREW bits are the memory image the device reads per run (`32 * image words` over the tiles: descriptors, \
         unique tables, index runs); dense bits are `8 * n_out * n_in`.\n"
    );
    let (ec, ed) = (Energy::of(&t.crew, &ctx.crew_cfg), Energy::of(&t.dense, &ctx.dense_cfg));
    let (sram, sram_size) = energy::sram_64b(ctx.crew_cfg.wmem_words as u64 * 4);
    let _ = writeln!(s, "## Energy estimate (per vector, all layers)\n");
    let _ = writeln!(
        s,
        "Per-operation energies from {}: 8-bit multiply {} pJ (every multiplication, both designs: int8 x int8), \
         32-bit add {} pJ (every addition into the 32-bit accumulators), SRAM read of 64 bits {} pJ (the quoted \
         {sram_size} figure, the smallest quoted size that holds the {} KB weight memory) per 64 weight-memory bits, \
         or DRAM {} pJ per 64 bits (the low end of the quoted 1.3-2.6 nJ) if the weights were streamed from DRAM. \
         Only counts we measured go in: product-table and accumulator-buffer accesses are not counted by the \
         devices and are left out (CREW reads a product per addition, which this estimate does not charge).\n",
        energy::SOURCE,
        energy::INT8_MULT,
        energy::INT32_ADD,
        sram,
        ctx.crew_cfg.wmem_words as u64 * 4 / 1024,
        energy::DRAM_64B
    );
    let mut e =
        Table::new(&["design", "mults", "adds", "weight SRAM", "total on-chip", "weight DRAM", "total streamed"]);
    for (name, x) in [("CREW", &ec), ("dense", &ed)] {
        e.row(vec![
            name.into(),
            fmt_energy(x.mults),
            fmt_energy(x.adds),
            fmt_energy(x.sram),
            fmt_energy(x.on_chip()),
            fmt_energy(x.dram),
            fmt_energy(x.streamed()),
        ]);
    }
    s += &md_table(&e);
    if !plots.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        let base = report.parent().unwrap_or(Path::new(""));
        for (title, p) in plots {
            let rel = relative(p, base);
            let _ = writeln!(s, "![{title}]({rel})\n");
        }
    }
    s
}

/// What the numbers say, computed from them (so the text cannot drift from the tables).
fn findings(ctx: &Run, results: &[LayerResult]) -> String {
    let t = totals(results);
    let n = results.len();
    let speed = |r: &LayerResult, k: usize| ratio(r.cpu[k], r.cpu[2]);
    let beats_int8: Vec<&LayerResult> = results.iter().filter(|r| speed(r, 1) > 1.0).collect();
    let beats_f32: Vec<&LayerResult> = results.iter().filter(|r| speed(r, 0) > 1.0).collect();
    let (lo, hi) = results.iter().map(|r| speed(r, 1)).fold((f64::MAX, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    let bits_range =
        |v: &[&LayerResult]| v.iter().map(|r| r.mean_bits).fold((f64::MAX, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    let mut s = String::from("## Findings\n\n");
    let _ = writeln!(
        s,
        "* **Software CREW vs dense int8 on this CPU** ({} kernels): the CREW kernel is faster on {} of {n} layers; \
         its speed relative to int8 ranges from {lo:.2}x to {hi:.2}x ({:.2}x over the model).",
        ctx.backend.describe(),
        beats_int8.len(),
        ratio(t.cpu[1], t.cpu[2])
    );
    if beats_f32.is_empty() {
        let _ = writeln!(s, "* It is faster than the dense f32 kernel on none of the layers.");
    } else {
        let (b0, b1) = bits_range(&beats_f32);
        let others: Vec<&LayerResult> = results.iter().filter(|r| speed(r, 0) <= 1.0).collect();
        let other_bits = if others.is_empty() {
            String::new()
        } else {
            let (o0, o1) = bits_range(&others);
            format!(", against {o0:.2}-{o1:.2} on the others")
        };
        let _ = writeln!(
            s,
            "* It is faster than the dense f32 kernel on {} of {n} layers: those with mean index widths of \
             {b0:.2}-{b1:.2} bits{other_bits}. Narrow indices need one 16-entry `vpshufb` table per byte; each \
             further bit doubles the lookups.",
            beats_f32.len()
        );
    }
    let saved = 100.0 - 100.0 * ratio(t.crew.counts.mults as f64, t.dense.counts.mults as f64);
    let bits = 100.0 - 100.0 * ratio(t.crew.weight_bits as f64, t.dense.weight_bits as f64);
    let bits = if bits >= 0.0 {
        format!("and {bits:.1}% of the weight bits")
    } else {
        format!("but reads {:.1}% more weight bits (tables and descriptors outweigh the narrower indices)", -bits)
    };
    let _ = writeln!(
        s,
        "* **CREW core vs dense core at equal lanes**: {:.3}x in cycles. Both consume one weight per lane per \
         cycle, so at equal lanes CREW can at best tie; its table fills hide behind the adds (lane utilization \
         {:.1}% vs {:.1}%). CREW saves {saved:.1}% of the multiplications {bits}: what it can buy is lanes \
         per part (a lane needs no multiplier) and energy, not cycles per lane.",
        ratio(t.dense.counts.cycles as f64, t.crew.counts.cycles as f64),
        util(&t.crew, &ctx.crew_cfg, t.weights),
        util(&t.dense, &ctx.dense_cfg, t.weights),
    );
    let cc = clock_for(&ctx.clocks, CoreKind::Crew);
    let b = ctx.args.batch as f64;
    let _ = writeln!(
        s,
        "* **Device vs CPU**: at {} MHz{} the CREW core takes {} for {} vector(s) of the whole model, the CPU \
         int8 kernel {} (the device takes {:.2}x as long) and the f32 kernel {}.\n",
        cc.mhz,
        if cc.nominal { " (nominal)" } else { "" },
        fmt_time(t.crew.counts.cycles as f64 * b / (cc.mhz * 1e6)),
        ctx.args.batch,
        fmt_time(t.cpu[1]),
        ratio(t.crew.counts.cycles as f64 * b / (cc.mhz * 1e6), t.cpu[1]),
        fmt_time(t.cpu[0])
    );
    s
}

/// `path` relative to the directory `base` (with `..` where needed), for links in the report.
fn relative(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, b) = (abs(path), abs(base));
    let (pc, bc): (Vec<_>, Vec<_>) = (p.components().collect(), b.components().collect());
    let common = pc.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return p.display().to_string();
    }
    let mut rel = PathBuf::new();
    for _ in common..bc.len() {
        rel.push("..");
    }
    for c in &pc[common..] {
        rel.push(c);
    }
    rel.to_string_lossy().replace('\\', "/")
}

/// Write a file atomically: a temporary file in the same directory, then a rename over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    // Temporary files are private (0600); a report is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn svg_to_file(path: &Path, svg: &str) -> anyhow::Result<()> {
    write_atomically(path, svg.as_bytes())
}

const CREW_COLOR: RGBColor = RGBColor(31, 119, 180);
const DENSE_COLOR: RGBColor = RGBColor(255, 127, 14);

/// Bars of the CREW-over-dense cycle speedup per layer, with the 1x line.
fn plot_speedup(path: &Path, ctx: &Run, results: &[LayerResult]) -> anyhow::Result<()> {
    let vals: Vec<f64> =
        results.iter().map(|r| ratio(r.dense.counts.cycles as f64, r.crew.counts.cycles as f64)).collect();
    let n = vals.len();
    let y_max = vals.iter().copied().fold(1.0f64, f64::max) * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let caption = format!(
            "CREW core vs dense core, {}x{} lanes: cycle speedup per layer ({})",
            ctx.crew_cfg.groups,
            ctx.crew_cfg.lanes,
            short_source(&ctx.source)
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..y_max)?;
        draw_layer_mesh(&mut chart, results, "dense cycles / CREW cycles", &|v| format!("{v:.1}x"))?;
        chart.draw_series(vals.iter().enumerate().map(|(i, &v)| {
            let color = if v >= 1.0 { CREW_COLOR } else { DENSE_COLOR };
            Rectangle::new([(i as f64 - 0.35, 0.0), (i as f64 + 0.35, v)], color.filled())
        }))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, 1.0), (n as f64 - 0.5, 1.0)],
            ShapeStyle { color: BLACK.mix(0.6), filled: false, stroke_width: 1 },
        )))?;
        if n <= 12 {
            chart.draw_series(vals.iter().enumerate().map(|(i, &v)| {
                Text::new(format!("{v:.3}x"), (i as f64 - 0.1, v + y_max * 0.05), ("sans-serif", 15).into_font())
            }))?;
        }
        root.present()?;
    }
    svg_to_file(path, &svg)
}

/// Grouped bars: CREW image bits and int8 bits per layer, in KiB.
fn plot_storage(path: &Path, ctx: &Run, results: &[LayerResult]) -> anyhow::Result<()> {
    let n = results.len();
    let kib = |bits: u64| bits as f64 / 8.0 / 1024.0;
    // Headroom above the bars for the legend.
    let y_max = results.iter().map(|r| kib(r.crew.weight_bits).max(kib(r.int8_bits))).fold(1.0f64, f64::max) * 1.3;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let caption = format!("Weight storage per layer: CREW memory image vs int8 ({})", short_source(&ctx.source));
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..y_max)?;
        draw_layer_mesh(&mut chart, results, "KiB", &|v| format!("{v}"))?;
        chart
            .draw_series(results.iter().enumerate().map(|(i, r)| {
                Rectangle::new([(i as f64 - 0.4, 0.0), (i as f64 - 0.02, kib(r.crew.weight_bits))], CREW_COLOR.filled())
            }))?
            .label("CREW image (descriptors, tables, index runs)")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], CREW_COLOR.filled()));
        chart
            .draw_series(results.iter().enumerate().map(|(i, r)| {
                Rectangle::new([(i as f64 + 0.02, 0.0), (i as f64 + 0.4, kib(r.int8_bits))], DENSE_COLOR.filled())
            }))?
            .label("int8 weights")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], DENSE_COLOR.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        root.present()?;
    }
    svg_to_file(path, &svg)
}

/// The mesh of a per-layer bar chart: one x label per layer (numbered, shortened), no x grid.
fn draw_layer_mesh(
    chart: &mut ChartContext<
        '_,
        SVGBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    results: &[LayerResult],
    y_desc: &str,
    y_format: &dyn Fn(&f64) -> String,
) -> anyhow::Result<()> {
    let n = results.len();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(24))
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                short_layer(i as usize, &results[i as usize].name, n)
            } else {
                String::new()
            }
        })
        .x_desc(if n > 6 { "layer (the number before its name in the report's tables)" } else { "layer" })
        .y_desc(y_desc)
        .y_label_formatter(y_format)
        .draw()?;
    Ok(())
}

/// A layer label for the x axis: a short name for a few layers, else the layer's index.
fn short_layer(index: usize, name: &str, layers: usize) -> String {
    if layers > 6 {
        return index.to_string();
    }
    let name = name.strip_suffix(".weight").unwrap_or(name);
    name.rsplit('.').next().unwrap_or(name).to_string()
}
