//! The generated Verilog replays bus traces recorded by the driver: a small model on each
//! configuration (both presets, both kinds), a trace recorded on the RTL simulation itself,
//! and a tampered trace that must fail naming the line, the register and both values.
//! Needs `iverilog`/`vvp` (scripts/install-fpga-tools.sh); set CREW_SKIP_IVERILOG to skip.

use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::encode::EncodedLayer;
use crew_core::format::Model;
use crew_core::quant::QuantizedLayer;
use crew_core::regs;
use crew_driver::trace::{self, Transaction};
use crew_driver::{Accelerator, EmuTransport, OpenOptions, Transport};
use crew_sim::replay::{replay, replay_on, ReplayError, Simulator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::time::Duration;

fn have_iverilog() -> bool {
    let ok = std::process::Command::new("iverilog").arg("-V").output().is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CREW_SKIP_IVERILOG").is_some(),
        "iverilog not found (set CREW_SKIP_IVERILOG to skip)"
    );
    ok
}

/// Two small layers: a CREW-typical one (few distinct weights per column) and a wide-index one.
fn small_model(seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut layer = |name: &str, n_out: usize, n_in: usize, spread: i32| {
        let q = (0..n_out * n_in).map(|_| rng.gen_range(-spread..=spread) as i8).collect();
        EncodedLayer::encode(&QuantizedLayer { name: name.into(), n_out, n_in, q, scales: vec![1.0], bias: None })
    };
    Model { layers: vec![layer("fc1", 40, 24, 6), layer("fc2", 19, 40, 100)] }
}

/// Load and run `model` once per layer on `transport`, recording into `path`.
fn record_run<T: Transport>(transport: T, model: &Model, path: &Path) {
    let (rec, file) = trace::record(transport, path, "device test").unwrap();
    let mut a = Accelerator::new(rec, OpenOptions::default().with_timeout(Duration::from_secs(600))).unwrap();
    a.load(model).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for (li, l) in model.layers.iter().enumerate() {
        let x: Vec<i8> = (0..l.n_in).map(|_| rng.gen_range(-128..=127i32) as i8).collect();
        a.run_layer(li, &x).unwrap();
    }
    file.finish().unwrap();
}

fn replay_config(cfg: DeviceConfig) {
    if have_iverilog() {
        replay_on_simulator(Simulator::Iverilog, cfg, 1);
    }
}

/// Record a small model's run on the emulator of `cfg` and replay it on `sim`.
fn replay_on_simulator(sim: Simulator, cfg: DeviceConfig, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.trace");
    record_run(EmuTransport::new(cfg), &small_model(seed), &path);
    let r = replay_on(sim, &path, &dir.path().join("work")).unwrap_or_else(|e| panic!("{}: {e}", cfg.describe()));
    assert_eq!(r.config, cfg);
    assert!(r.reads > 60 && r.cycles > 1000, "{r:?}");
    eprintln!(
        "{sim:?} {}: {} transactions, {} reads, {} cycles, {:.0} cycles/s",
        cfg.describe(),
        r.transactions,
        r.reads,
        r.cycles,
        r.cycles_per_second()
    );
}

#[test]
fn ecp5_25f_crew() {
    replay_config(DeviceConfig::ECP5_25F);
}

#[test]
fn ecp5_25f_dense() {
    replay_config(DeviceConfig::ECP5_25F.with_kind(CoreKind::Dense));
}

#[test]
fn ecp5_85f_crew() {
    replay_config(DeviceConfig::ECP5_85F);
}

#[test]
fn ecp5_85f_dense() {
    replay_config(DeviceConfig::ECP5_85F.with_kind(CoreKind::Dense));
}

/// A trace recorded on the rust-hdl simulation replays on the Verilog generated from it.
#[test]
fn a_trace_of_the_rtl_simulation_replays() {
    if !have_iverilog() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.trace");
    record_run(crew_sim::SimTransport::new(&crew_hw::TEST_CONFIG).unwrap(), &small_model(2), &path);
    let text = std::fs::read_to_string(&path).unwrap();
    // The RTL was busy for a while: the trace has STATUS polls that saw BUSY.
    let busy = trace::parse(&text)
        .unwrap()
        .iter()
        .filter(|t| matches!(t, Transaction::Read { addr, data } if *addr == regs::STATUS && data & regs::status::BUSY != 0))
        .count();
    assert!(busy > 0);
    let r = replay(&path, &dir.path().join("work")).unwrap();
    assert_eq!(r.config, crew_hw::TEST_CONFIG);
}

/// Tampering with one recorded accumulator makes the replay fail on exactly that read, on both
/// simulators.
#[test]
fn a_differing_read_fails_with_line_register_and_values() {
    if have_iverilog() {
        differing_read(Simulator::Iverilog);
    }
    let verilator = std::process::Command::new("verilator").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(verilator || std::env::var_os("CREW_SKIP_VERILATOR").is_some(), "verilator not found");
    if verilator {
        differing_read(Simulator::Verilator);
    }
}

/// The Verilator replay of a preset's trace (the fast path of `crew-host replay --simulator verilator`).
#[test]
fn verilator_replays_the_presets() {
    if std::process::Command::new("verilator").arg("--version").output().is_err() {
        assert!(std::env::var_os("CREW_SKIP_VERILATOR").is_some(), "verilator not found");
        return;
    }
    for cfg in [DeviceConfig::ECP5_25F, DeviceConfig::ECP5_85F.with_kind(CoreKind::Dense)] {
        replay_on_simulator(Simulator::Verilator, cfg, 4);
    }
}

fn differing_read(sim: Simulator) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.trace");
    let cfg = crew_hw::TEST_CONFIG;
    record_run(EmuTransport::new(cfg), &small_model(3), &path);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let target = format!("R {:08x} ", regs::OUTPUT_WINDOW + 4 * 5);
    let k = lines.iter().position(|l| l.starts_with(&target)).expect("a read of accumulator 5");
    let value = u32::from_str_radix(&lines[k][11..], 16).unwrap();
    lines[k] = format!("{target}{:08x}", value ^ 0x100);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    match replay_on(sim, &path, &dir.path().join("work")) {
        Err(ReplayError::Mismatch { line, addr, register, expected, verilog }) => {
            assert_eq!(line, k + 1);
            assert_eq!(addr, regs::OUTPUT_WINDOW + 20);
            assert_eq!(register, "OUTPUT_WINDOW[5]");
            assert_eq!(expected, value ^ 0x100);
            assert_eq!(verilog, format!("0x{value:08x}"));
        }
        other => panic!("{sim:?}: expected a mismatch, got {other:?}"),
    }
}

/// A trace without the identification reads cannot be replayed, and says why.
#[test]
fn an_unidentified_trace_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trace");
    std::fs::write(&path, "# crew bus trace v1\nW 00000048 00000001\n").unwrap();
    let e = replay(&path, dir.path()).unwrap_err();
    assert!(matches!(e, ReplayError::Unidentified), "{e}");
}
