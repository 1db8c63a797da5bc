//! `crew-host run`, `info` and `regs` end to end: the built-in LSTM, a real MiniLM model with
//! tiling, the dense baseline, and clear failures.

use std::path::PathBuf;
use std::process::{Command, Output};

fn crew_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crew-host")).args(args).output().expect("crew-host runs")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn ok(args: &[&str]) -> String {
    let o = crew_host(args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "crew-host {args:?} failed\nstdout:\n{out}\nstderr:\n{err}");
    out
}

fn model(file: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(file);
    assert!(p.exists(), "{} is missing: run scripts/fetch-models.sh first", p.display());
    p.to_string_lossy().into_owned()
}

#[test]
fn builtin_lstm_runs_bit_exact() {
    let out = ok(&["run", "--device", "emu"]);
    assert!(out.contains("LSTM: 32 steps"), "{out}");
    assert!(out.contains("lstm_cell.weight_ih") && out.contains("lstm_cell.weight_hh"), "{out}");
    assert!(out.contains("OK: all 64 layer runs are bit-exact"), "{out}");
    // The quantized LSTM tracks the f32 one closely.
    let cos: f64 = out
        .split("cosine similarity ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("cosine similarity printed");
    assert!(cos > 0.99, "cosine similarity {cos}");
}

#[test]
fn builtin_lstm_on_small_dense_device_with_batch() {
    let out = ok(&["run", "--device", "emu:config=ecp5-25f,kind=dense", "--batch", "3", "--steps", "4"]);
    assert!(out.contains("dense core"), "{out}");
    assert!(out.contains("OK: all 24 layer runs are bit-exact"), "{out}");
}

#[test]
fn minilm_block_runs_bit_exact_with_tiling() {
    let m = model("all-minilm-l6-v2.safetensors");
    // A small device forces both output and input tiles on every layer shape.
    let out =
        ok(&["run", "--device", "emu:config=ecp5-25f,ibuf=256,obuf=256", "--model", &m, "--layers", r"layer\.0\."]);
    assert!(out.contains("6 layers"), "{out}");
    assert!(out.contains("OK: all 6 layer runs are bit-exact"), "{out}");
    assert!(out.contains("streamed tile by tile"), "{out}");
}

#[test]
fn unknown_device_and_corrupt_model_fail_clearly() {
    let o = crew_host(&["run", "--device", "warp:9"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("unknown device scheme `warp`"), "{}", text(&o).1);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.crew");
    std::fs::write(&bad, b"CREW but not really a model file").unwrap();
    let o = crew_host(&["run", "--model", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = text(&o).1;
    assert!(err.contains("bad.crew"), "{err}");
}

#[test]
fn info_and_regs_describe_the_device() {
    let out = ok(&["info", "--device", "emu:lanes=8,mults=2"]);
    assert!(out.contains("8 lanes x 1 group") && out.contains("2 multipliers"), "{out}");
    let regs = ok(&["regs", "--device", "emu"]);
    assert!(regs.contains("ID") && regs.contains("0x43524557"), "{regs}");
    let md = ok(&["regs", "--markdown"]);
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/registers.md")).unwrap();
    assert_eq!(md, committed);
}

#[test]
fn all_36_minilm_layers_run_bit_exact_on_both_cores() {
    let m = model("all-minilm-l6-v2.safetensors");
    for device in ["emu", "emu:kind=dense"] {
        let out = ok(&["run", "--device", device, "--model", &m]);
        assert!(out.contains("36 layers"), "{out}");
        assert!(out.contains("layers tiled"), "{out}");
        assert!(out.contains("OK: all 36 layer runs are bit-exact"), "{out}");
    }
}

/// Whether `tool` runs (`version_flag` is its harmless version option).
fn have(tool: &str, version_flag: &str, skip_var: &str) -> bool {
    let ok = Command::new(tool).arg(version_flag).output().is_ok_and(|o| o.status.success());
    assert!(ok || std::env::var_os(skip_var).is_some(), "{tool} not found (set {skip_var} to skip)");
    ok
}

/// The layer table without its wall-time column (the one column that differs between devices).
fn table_without_wall(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with("layer "))
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let mut f: Vec<&str> = l.split_whitespace().collect();
            f.remove(f.len() - 2);
            f.join(" ")
        })
        .collect()
}

#[test]
fn sim_prints_the_same_table_as_emu() {
    if !have("verilator", "--version", "CREW_SKIP_VERILATOR") {
        return;
    }
    let emu = ok(&["run", "--device", "emu", "--steps", "3"]);
    let sim = ok(&["run", "--device", "sim", "--steps", "3"]);
    assert!(sim.contains("device sim: crew core, 16 lanes"), "{sim}");
    let (e, s) = (table_without_wall(&emu), table_without_wall(&sim));
    assert_eq!(e.len(), 4, "{emu}");
    assert_eq!(s, e, "emu:\n{emu}\nsim:\n{sim}");
    let dense = ok(&["run", "--device", "sim:config=ecp5-25f,kind=dense", "--steps", "2"]);
    let dense_emu = ok(&["run", "--device", "emu:config=ecp5-25f,kind=dense", "--steps", "2"]);
    assert_eq!(table_without_wall(&dense), table_without_wall(&dense_emu));
}

/// A small .npy layer (24x16) in `dir`.
fn small_model(dir: &std::path::Path) -> String {
    let (n_out, n_in) = (24, 16);
    let w: Vec<f32> = (0..n_out * n_in).map(|k| ((k * 37 % 11) as f32 - 5.0) * 0.1).collect();
    let p = dir.join("small.npy");
    std::fs::write(&p, crew_core::import::npy_f32(&[n_out, n_in], &w)).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn trace_replays_on_the_verilog_and_vcd_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let m = small_model(dir.path());
    let trace = dir.path().join("run.trace").to_string_lossy().into_owned();
    let out = ok(&["run", "--device", "emu:config=test25", "--model", &m, "--trace", &trace]);
    assert!(out.contains("bus trace: ") && out.contains("transactions"), "{out}");
    if have("iverilog", "-V", "CREW_SKIP_IVERILOG") {
        let out = ok(&["replay", &trace]);
        assert!(out.contains("OK: the generated Verilog of crew core, 8 lanes"), "{out}");
        let out = ok(&["replay", &trace, "--simulator", "verilator"]);
        assert!(out.contains("OK: the generated Verilog") && out.contains("verilator: "), "{out}");
    }
    let vcd = dir.path().join("run.vcd").to_string_lossy().into_owned();
    let out = ok(&["run", "--device", "sim:engine=rust-hdl,config=test", "--model", &m, "--vcd", &vcd]);
    assert!(out.contains("waveform: "), "{out}");
    let head = std::fs::read_to_string(&vcd).unwrap();
    assert!(head.contains("$enddefinitions"), "not a VCD");
    // A waveform needs the rust-hdl engine; nothing is written otherwise.
    let bad = dir.path().join("bad.vcd").to_string_lossy().into_owned();
    let o = crew_host(&["run", "--device", "emu", "--model", &m, "--vcd", &bad]);
    let (_, err) = text(&o);
    assert!(!o.status.success() && err.contains("--vcd needs the rust-hdl simulation"), "{err}");
    assert!(!std::path::Path::new(&bad).exists());
}
