//! Simulated clock cycles per wall second of every way to run the core, side by side in one
//! process on one workload: the emulator (modelled cycles), the rust-hdl simulation, the
//! Verilated model and the iverilog replay of the same bus trace.
//!
//!     cargo bench -p crew-sim --bench sim_speed            # prints a Markdown table
//!
//! The workload: load a 96x64 CREW layer, then run it `RUNS` times with new inputs. Every
//! simulator counts the clock cycles it simulated (bus accesses included); the emulator's
//! figure is the cycles the cycle model charges for the runs alone, per wall second.

use crew_core::config::DeviceConfig;
use crew_core::encode::EncodedLayer;
use crew_core::format::Model;
use crew_core::quant::QuantizedLayer;
use crew_driver::{Accelerator, EmuTransport, OpenOptions, Transport};
use crew_sim::verilator::VerilatorTransport;
use crew_sim::SimTransport;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

const RUNS: usize = 4;

fn model() -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n_out, n_in) = (96, 64);
    let q = (0..n_out * n_in).map(|_| rng.gen_range(-8..=8i32) as i8).collect();
    Model {
        layers: vec![EncodedLayer::encode(&QuantizedLayer {
            name: "b".into(),
            n_out,
            n_in,
            q,
            scales: vec![1.0],
            bias: None,
        })],
    }
}

/// Load and run the workload; returns (device cycles of the runs, wall time).
fn workload<T: Transport>(t: T, model: &Model) -> (u64, Duration) {
    let opts = OpenOptions::default().with_timeout(Duration::from_secs(3600));
    let t0 = Instant::now();
    let mut a = Accelerator::new(t, opts).expect("identify");
    a.load(model).expect("load");
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut cycles = 0;
    for _ in 0..RUNS {
        let x: Vec<i8> = (0..model.layers[0].n_in).map(|_| rng.gen_range(-128..=127i32) as i8).collect();
        cycles += a.run_layer(0, &x).expect("run").counts.cycles;
    }
    (cycles, t0.elapsed())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench --no-run` and test listing
    }
    let model = model();
    let mut rows: Vec<(String, String, f64)> = Vec::new();
    let emu_rate = {
        // The emulator is fast: repeat the workload for a measurable time.
        let t0 = Instant::now();
        let mut cycles = 0;
        let mut reps = 0;
        while t0.elapsed() < Duration::from_millis(500) {
            cycles += workload(EmuTransport::new(DeviceConfig::ECP5_25F), &model).0;
            reps += 1;
        }
        let rate = cycles as f64 / t0.elapsed().as_secs_f64();
        rows.push(("emulator (modelled run cycles)".into(), format!("ecp5-25f, {reps} repetitions"), rate));
        rate
    };
    for name in ["test25", "ecp5-25f", "test85"] {
        let cfg = DeviceConfig::named(name).unwrap();
        let mut t = SimTransport::new(&cfg).expect("instantiated");
        let t0 = Instant::now();
        workload(&mut t, &model);
        let wall = t0.elapsed();
        rows.push(("rust-hdl".into(), name.into(), t.cycles() as f64 / wall.as_secs_f64()));
        eprintln!("rust-hdl {name}: done");
    }
    if std::process::Command::new("verilator").arg("--version").output().is_ok() {
        for name in ["test25", "ecp5-25f", "ecp5-85f"] {
            let cfg = DeviceConfig::named(name).unwrap();
            let mut t = VerilatorTransport::new(&cfg).expect("Verilator model");
            let t0 = Instant::now();
            workload(&mut t, &model);
            let wall = t0.elapsed();
            rows.push((
                "Verilator (generated Verilog)".into(),
                name.into(),
                t.cycles().unwrap() as f64 / wall.as_secs_f64(),
            ));
        }
    }
    // iverilog: record the workload's trace on the emulator, replay it on the generated Verilog.
    let dir = tempfile::tempdir().unwrap();
    for name in ["test25", "ecp5-25f"] {
        let cfg = DeviceConfig::named(name).unwrap();
        let path = dir.path().join(format!("{name}.trace"));
        let (rec, file) = crew_driver::trace::record(EmuTransport::new(cfg), &path, "sim_speed").unwrap();
        workload(rec, &model);
        file.finish().unwrap();
        match crew_sim::replay::replay(&path, &dir.path().join(name)) {
            Ok(r) => rows.push(("iverilog (trace replay)".into(), name.into(), r.cycles_per_second())),
            Err(e) => eprintln!("iverilog {name}: {e}"),
        }
    }
    println!("| simulator | configuration | simulated cycles/s | vs emulator |");
    println!("|---|---|---|---|");
    for (what, cfg, rate) in rows {
        println!("| {what} | {cfg} | {rate:.0} | {:.2e} |", rate / emu_rate);
    }
}
