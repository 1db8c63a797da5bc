//! Co-simulation: the same driver code on the emulator and on the RTL (rust-hdl) must give
//! identical accumulators and identical CYCLES, MULT_COUNT and ADD_COUNT, for the CREW core and
//! the dense baseline, on random and edge-case layers, the built-in LSTM and a real MiniLM layer.

use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::encode::EncodedLayer;
use crew_core::format::Model;
use crew_core::quant::QuantizedLayer;
use crew_core::reference::gemv_i8;
use crew_core::regs::{self, ctrl, status, ErrorCode};
use crew_driver::{Accelerator, EmuTransport, OpenOptions, Transport};
use crew_sim::SimTransport;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

fn opts() -> OpenOptions {
    // The RTL simulation runs a few thousand cycles a second: wall-clock timeouts are generous.
    OpenOptions::default().with_timeout(Duration::from_secs(600))
}

struct Pair {
    emu: Accelerator<EmuTransport>,
    sim: Accelerator<SimTransport>,
}

impl Pair {
    fn new(cfg: &DeviceConfig) -> Pair {
        let emu = Accelerator::new(EmuTransport::new(*cfg), opts()).expect("emu identifies");
        let sim = Accelerator::new(SimTransport::new(cfg).expect("instantiated"), opts()).expect("sim identifies");
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
fn random_and_edge(base: DeviceConfig, seed: u64) {
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
        let mut pair = Pair::new(&cfg);
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
fn random_and_edge_layers_test_config() {
    random_and_edge(crew_hw::TEST_CONFIG, 1);
}

#[test]
fn random_and_edge_layers_25f_lanes() {
    random_and_edge(crew_hw::TEST_CONFIG_25F_LANES, 2);
}

#[test]
fn a_layer_on_the_85f_lanes() {
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let cfg = crew_hw::TEST_CONFIG_85F_LANES.with_kind(kind);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let model = Model { layers: vec![EncodedLayer::encode(&random_layer(&mut rng, "l", 70, 9, 30))] };
        let mut pair = Pair::new(&cfg);
        pair.load(&model);
        let x = random_input(&mut rng, 9);
        pair.run(&model, 0, &x, &format!("85F lanes {kind:?}"));
    }
}

/// The built-in Silero LSTM cell (host-cli/assets): both matrices, two steps' inputs, tiled on
/// the small memories.
#[test]
fn builtin_lstm_two_steps() {
    let model = Model::from_bytes(include_bytes!("../../host-cli/assets/silero_lstm.crew")).expect("built-in model");
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        // 4 lanes, 1024 weight words: the 512-row layers run as many tiles.
        let cfg = crew_hw::TEST_CONFIG.with_kind(kind);
        let mut pair = Pair::new(&cfg);
        pair.load(&model);
        for step in 0..2 {
            for li in 0..model.layers.len() {
                let x = random_input(&mut rng, model.layers[li].n_in);
                pair.run(&model, li, &x, &format!("LSTM {kind:?} step {step} layer {li}"));
            }
        }
    }
}

/// One real MiniLM layer (after scripts/fetch-models.sh), tiled onto the 25F-lanes test config.
#[test]
fn minilm_layer_tiled() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/all-minilm-l6-v2.safetensors");
    if !std::path::Path::new(path).exists() {
        assert!(std::env::var_os("CREW_SKIP_MODELS").is_some(), "{path} missing: run scripts/fetch-models.sh");
        return;
    }
    let re = regex::Regex::new(r"layer\.0\.attention\.self\.query\.weight$").unwrap();
    let layers = crew_core::import::load_matrices(std::path::Path::new(path), Some(&re)).expect("MiniLM");
    let m = layers.into_iter().next().expect("the query matrix");
    let (name, n_in) = (m.name.clone(), m.n_in);
    let q = m.quantize(crew_core::quant::ScaleMode::PerTensor);
    // A 64-row slice keeps the simulation short; the columns are the real ones (384 inputs).
    let rows = 64;
    let slice = QuantizedLayer { n_out: rows, q: q.q[..rows * n_in].to_vec(), ..q };
    let model = Model { layers: vec![EncodedLayer::encode(&slice)] };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = random_input(&mut rng, n_in);
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let mut pair = Pair::new(&crew_hw::TEST_CONFIG_25F_LANES.with_kind(kind));
        pair.load(&model);
        assert!(pair.emu.plan(0).unwrap().tiles.len() > 1, "the layer must be tiled");
        pair.run(&model, 0, &x, &format!("MiniLM {name} {kind:?}"));
    }
}

/// Register-level: every error the registers can provoke gives the same STATUS and counters
/// on both, and so do reads after a soft reset.
#[test]
fn error_paths_agree() {
    let cfg = crew_hw::TEST_CONFIG;
    let mut emu = EmuTransport::new(cfg);
    let mut sim = SimTransport::new(&cfg).unwrap();
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
    let check = |emu: &mut EmuTransport, sim: &mut SimTransport, what: &str| {
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
