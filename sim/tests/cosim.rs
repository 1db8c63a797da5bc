//! Co-simulation: the same driver code on the emulator and on the RTL must give identical
//! accumulators and identical CYCLES, MULT_COUNT and ADD_COUNT, for the CREW core and the dense
//! baseline, on random and edge-case layers, the built-in LSTM and a real MiniLM layer. Both
//! engines: rust-hdl (the Rust source, slow: small configurations) and Verilator (the generated
//! Verilog: the real presets too). Verilator tests need `verilator` (set CREW_SKIP_VERILATOR to skip).

use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::encode::EncodedLayer;
use crew_core::format::Model;
use crew_core::quant::QuantizedLayer;
use crew_core::reference::gemv_i8;
use crew_core::regs::{self, ctrl, status, ErrorCode};
use crew_driver::{erase, Accelerator, BoxedTransport, EmuTransport, OpenOptions, Transport};
use crew_sim::verilator::VerilatorTransport;
use crew_sim::{Engine, SimTransport};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

fn opts() -> OpenOptions {
    // The RTL simulation runs a few thousand cycles a second: wall-clock timeouts are generous.
    OpenOptions::default().with_timeout(Duration::from_secs(600))
}

fn have_verilator() -> bool {
    let ok = std::process::Command::new("verilator").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CREW_SKIP_VERILATOR").is_some(),
        "verilator not found (set CREW_SKIP_VERILATOR to skip)"
    );
    ok
}

fn dut(engine: Engine, cfg: &DeviceConfig) -> BoxedTransport {
    match engine {
        Engine::RustHdl => erase(SimTransport::new(cfg).expect("instantiated")),
        Engine::Verilator => erase(VerilatorTransport::new(cfg).expect("Verilator builds the model")),
    }
}

struct Pair {
    emu: Accelerator<EmuTransport>,
    sim: Accelerator<BoxedTransport>,
}

impl Pair {
    fn new(engine: Engine, cfg: &DeviceConfig) -> Pair {
        let emu = Accelerator::new(EmuTransport::new(*cfg), opts()).expect("emu identifies");
        let sim = Accelerator::new(dut(engine, cfg), opts()).expect("sim identifies");
        assert_eq!(emu.info().config, sim.info().config, "both identify as the same device");
        Pair { emu, sim }
    }

    fn load(&mut self, model: &Model) {
        let a = self.emu.load(model).expect("emu load");
        let b = self.sim.load(model).expect("sim load");
        assert_eq!((a.tiles, a.image_words), (b.tiles, b.image_words));
    }

    /// Run `layer` on both and compare with each other and with the CPU reference.
    fn run(&mut self, model: &Model, layer: usize, x: &[i8], what: &str) {
        let e = self.emu.run_layer(layer, x).unwrap_or_else(|err| panic!("{what}: emu: {err}"));
        let s = self.sim.run_layer(layer, x).unwrap_or_else(|err| panic!("{what}: sim: {err}"));
        let l = &model.layers[layer];
        let want = gemv_i8(&l.decode_weights(), l.n_out, l.n_in, x);
        assert_eq!(e.outputs, want, "{what}: emu vs reference");
        assert_eq!(s.outputs, e.outputs, "{what}: RTL vs emu accumulators");
        assert_eq!(s.counts, e.counts, "{what}: RTL vs emu CYCLES/MULT/ADD");
        assert_eq!(s.tiles, e.tiles, "{what}: tiles");
    }
}

fn random_layer(rng: &mut ChaCha8Rng, name: &str, n_out: usize, n_in: usize, spread: i32) -> QuantizedLayer {
    let q = (0..n_out * n_in).map(|_| rng.gen_range(-spread..=spread).clamp(-127, 127) as i8).collect();
    QuantizedLayer { name: name.into(), n_out, n_in, q, scales: vec![1.0], bias: None }
}

fn random_input(rng: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.gen_range(-128..=127i32) as i8).collect()
}

/// Random and edge-case layers on one configuration, both kinds.
fn random_and_edge(engine: Engine, base: DeviceConfig, seed: u64) {
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let cfg = base.with_kind(kind);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lanes = cfg.lanes as usize;
        let mut layers = vec![
            random_layer(&mut rng, "random", 3 * lanes + 1, 11, 40),
            random_layer(&mut rng, "n_in_1", lanes + 3, 1, 127),
            random_layer(&mut rng, "n_out_below_lanes", lanes.saturating_sub(1).max(1), 7, 127),
            random_layer(&mut rng, "n_out_multiple", 2 * lanes, 5, 3),
        ];
        // |U| = 1 in every column (0-bit indices), and 8-bit indices (256 distinct values).
        let mut one = random_layer(&mut rng, "unique_1", 9, 6, 0);
        one.q.iter_mut().for_each(|w| *w = -5);
        layers.push(one);
        let mut wide = random_layer(&mut rng, "b8", 254, 2, 0);
        for (k, w) in wide.q.iter_mut().enumerate() {
            *w = ((k / 2) as i32 - 127) as i8;
        }
        layers.push(wide);
        let model = Model { layers: layers.iter().map(EncodedLayer::encode).collect() };
        let mut pair = Pair::new(engine, &cfg);
        pair.load(&model);
        for (li, l) in model.layers.iter().enumerate() {
            let x = random_input(&mut rng, l.n_in);
            pair.run(&model, li, &x, &format!("{kind:?} {} {}x{}", l.name, l.n_out, l.n_in));
        }
        // Back to back on the same layer, another input.
        let x = random_input(&mut rng, model.layers[0].n_in);
        pair.run(&model, 0, &x, &format!("{kind:?} again"));
    }
}

#[test]
fn rust_hdl_random_and_edge_layers_test_config() {
    random_and_edge(Engine::RustHdl, crew_hw::TEST_CONFIG, 1);
}

#[test]
fn rust_hdl_random_and_edge_layers_25f_lanes() {
    random_and_edge(Engine::RustHdl, crew_hw::TEST_CONFIG_25F_LANES, 2);
}

#[test]
fn verilator_random_and_edge_layers_every_configuration() {
    if !have_verilator() {
        return;
    }
    for (k, name) in DeviceConfig::names().into_iter().enumerate() {
        random_and_edge(Engine::Verilator, DeviceConfig::named(name).unwrap(), 10 + k as u64);
    }
}

#[test]
fn rust_hdl_a_layer_on_the_85f_lanes() {
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let cfg = crew_hw::TEST_CONFIG_85F_LANES.with_kind(kind);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let model = Model { layers: vec![EncodedLayer::encode(&random_layer(&mut rng, "l", 70, 9, 30))] };
        let mut pair = Pair::new(Engine::RustHdl, &cfg);
        pair.load(&model);
        let x = random_input(&mut rng, 9);
        pair.run(&model, 0, &x, &format!("85F lanes {kind:?}"));
    }
}

fn builtin_lstm() -> Model {
    Model::from_bytes(include_bytes!("../../host-cli/assets/silero_lstm.crew")).expect("built-in model")
}

/// The built-in Silero LSTM cell (host-cli/assets), both matrices, on `cfg`, `steps` inputs.
fn lstm_steps(engine: Engine, base: DeviceConfig, steps: usize) {
    let model = builtin_lstm();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let cfg = base.with_kind(kind);
        let mut pair = Pair::new(engine, &cfg);
        pair.load(&model);
        for step in 0..steps {
            for li in 0..model.layers.len() {
                let x = random_input(&mut rng, model.layers[li].n_in);
                pair.run(&model, li, &x, &format!("LSTM {} {kind:?} step {step} layer {li}", cfg.describe()));
            }
        }
    }
}

/// One step on rust-hdl: 8 lanes and 1024 weight words, so the 512-row layers run as many tiles.
#[test]
fn rust_hdl_builtin_lstm_one_step() {
    lstm_steps(Engine::RustHdl, crew_hw::TEST_CONFIG_25F_LANES, 1);
}

/// Four steps on Verilator, on both presets: streamed tile by tile on the 25F, resident on the 85F.
#[test]
fn verilator_builtin_lstm_four_steps_on_the_presets() {
    if !have_verilator() {
        return;
    }
    lstm_steps(Engine::Verilator, DeviceConfig::ECP5_25F, 4);
    lstm_steps(Engine::Verilator, DeviceConfig::ECP5_85F, 4);
}

/// The first MiniLM query matrix (after scripts/fetch-models.sh), or `None` when allowed to skip.
fn minilm_query() -> Option<QuantizedLayer> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/all-minilm-l6-v2.safetensors");
    if !std::path::Path::new(path).exists() {
        assert!(std::env::var_os("CREW_SKIP_MODELS").is_some(), "{path} missing: run scripts/fetch-models.sh");
        return None;
    }
    let re = regex::Regex::new(r"layer\.0\.attention\.self\.query\.weight$").unwrap();
    let layers = crew_core::import::load_matrices(std::path::Path::new(path), Some(&re)).expect("MiniLM");
    Some(layers.into_iter().next().expect("the query matrix").quantize(crew_core::quant::ScaleMode::PerTensor))
}

fn minilm_tiled(engine: Engine, base: DeviceConfig, q: QuantizedLayer) {
    let model = Model { layers: vec![EncodedLayer::encode(&q)] };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = random_input(&mut rng, q.n_in);
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let mut pair = Pair::new(engine, &base.with_kind(kind));
        pair.load(&model);
        assert!(pair.emu.plan(0).unwrap().tiles.len() > 1, "the layer must be tiled");
        pair.run(&model, 0, &x, &format!("MiniLM {} {}x{} {kind:?}", q.name, q.n_out, q.n_in));
    }
}

/// A 64-row slice of the real layer (all 384 real columns) keeps rust-hdl short.
#[test]
fn rust_hdl_minilm_layer_tiled() {
    let Some(q) = minilm_query() else { return };
    let rows = 64;
    let bias = q.bias.as_ref().map(|b| b[..rows].to_vec());
    let slice = QuantizedLayer { n_out: rows, q: q.q[..rows * q.n_in].to_vec(), bias, ..q };
    minilm_tiled(Engine::RustHdl, crew_hw::TEST_CONFIG_25F_LANES, slice);
}

/// The whole 384x384 layer on the 25F preset (16384 weight words: it runs as tiles).
#[test]
fn verilator_minilm_layer_tiled_on_the_25f() {
    let Some(q) = minilm_query() else { return };
    if have_verilator() {
        minilm_tiled(Engine::Verilator, DeviceConfig::ECP5_25F, q);
    }
}

#[test]
fn rust_hdl_error_paths_agree() {
    error_paths_agree(Engine::RustHdl);
}

#[test]
fn verilator_error_paths_agree() {
    if have_verilator() {
        error_paths_agree(Engine::Verilator);
    }
}

/// Register-level: every error the registers can provoke gives the same STATUS and counters
/// on both, and so do reads after a soft reset.
fn error_paths_agree(engine: Engine) {
    let cfg = crew_hw::TEST_CONFIG;
    let mut emu = EmuTransport::new(cfg);
    let mut sim = dut(engine, &cfg);
    // A valid one-column layer at 0: descriptor, table, one run word.
    let l = EncodedLayer::encode(&QuantizedLayer {
        name: "e".into(),
        n_out: 3,
        n_in: 1,
        q: vec![1, 2, 3],
        scales: vec![1.0],
        bias: None,
    });
    let image = l.memory_image();
    let cases: Vec<(&str, Vec<(u32, u32)>)> = vec![
        ("n_out 0", vec![(regs::N_OUT, 0), (regs::N_IN, 1), (regs::LAYER_BASE, 0)]),
        ("n_in past ibuf", vec![(regs::N_OUT, 3), (regs::N_IN, cfg.ibuf_depth + 1), (regs::LAYER_BASE, 0)]),
        ("n_out past obuf", vec![(regs::N_OUT, cfg.obuf_depth + 1), (regs::N_IN, 1), (regs::LAYER_BASE, 0)]),
        ("base past memory", vec![(regs::N_OUT, 3), (regs::N_IN, 1), (regs::LAYER_BASE, cfg.wmem_words - 1)]),
        ("bad descriptor", vec![(regs::WEIGHT_WINDOW, 0xff00_0000 | (cfg.wmem_words - 1)), (regs::LAYER_BASE, 0)]),
        ("good", image.iter().enumerate().map(|(k, &w)| (regs::WEIGHT_WINDOW + 4 * k as u32, w)).collect()),
    ];
    let check = |emu: &mut EmuTransport, sim: &mut BoxedTransport, what: &str| {
        for a in [regs::STATUS, regs::CYCLES_LO, regs::CYCLES_HI, regs::MULT_COUNT, regs::ADD_COUNT, regs::CTRL] {
            let (e, s) = (emu.read32(a).unwrap(), sim.read32(a).unwrap());
            assert_eq!(s, e, "{what}: {} (RTL {s:#x}, emu {e:#x})", crew_sim::replay::describe_addr(a));
        }
    };
    for (what, writes) in cases {
        for &(a, d) in &writes {
            emu.write32(a, d).unwrap();
            sim.write32(a, d).unwrap();
        }
        if what == "good" {
            emu.write32(regs::N_OUT, 3).unwrap();
            sim.write32(regs::N_OUT, 3).unwrap();
            emu.write32(regs::N_IN, 1).unwrap();
            sim.write32(regs::N_IN, 1).unwrap();
        }
        emu.write32(regs::CTRL, ctrl::START).unwrap();
        sim.write32(regs::CTRL, ctrl::START).unwrap();
        let mut st = sim.read32(regs::STATUS).unwrap();
        while st & status::BUSY != 0 {
            st = sim.read32(regs::STATUS).unwrap();
        }
        let code = (st & status::CODE_MASK) >> status::CODE_LSB;
        if what == "good" {
            assert_eq!(st & (status::DONE | status::ERROR), status::DONE, "{what}: {st:#x}");
        } else {
            assert!(st & status::ERROR != 0 && code != ErrorCode::None as u32, "{what}: {st:#x}");
        }
        check(&mut emu, &mut sim, what);
        // A START while busy, then a soft reset.
        emu.write32(regs::CTRL, ctrl::SOFT_RESET).unwrap();
        sim.write32(regs::CTRL, ctrl::SOFT_RESET).unwrap();
        check(&mut emu, &mut sim, &format!("{what}, then soft reset"));
    }
}
