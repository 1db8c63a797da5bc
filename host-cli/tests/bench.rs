//! `crew-host bench` end to end: the built-in model with one repetition (summary, report, plots),
//! a bitstream manifest's Fmax used for the projection, and clear failures on bad arguments.

use std::process::{Command, Output};

fn crew_host(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crew-host"));
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("crew-host runs")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn builtin_model_report_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("out/results.md");
    let plots = dir.path().join("img");
    let empty = dir.path().join("no-bitstreams");
    let args = [
        "bench",
        "--reps",
        "1",
        "--report",
        report.to_str().unwrap(),
        "--plot-dir",
        plots.to_str().unwrap(),
        "--bitstreams",
        empty.to_str().unwrap(),
    ];
    let o = crew_host(&args, &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    for want in [
        "CPU kernels",
        "lstm_cell.weight_ih",
        "lstm_cell.weight_hh",
        "Summary",
        "2.61x",
        "2.42x",
        "CREW core vs dense core",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.starts_with("# CREW benchmark"), "{md}");
    assert!(md.contains("Horowitz") && md.contains("ISSCC 2014"), "{md}");
    assert!(md.contains("nominal 100 MHz"), "{md}");
    assert!(
        md.contains("cargo run --release -p crew-host -- bench --reps 1 --report"),
        "the report names its command:\n{md}"
    );
    assert!(md.contains("**Machine**") && md.contains("logical cores"), "{md}");
    assert!(md.contains("](../img/builtin-lstm-speedup.svg)"), "{md}");
    assert!(md.lines().any(|l| l.starts_with("| lstm_cell.weight_ih |")), "{md}");
    for name in ["builtin-lstm-speedup.svg", "builtin-lstm-storage.svg", "builtin-lstm-unique-cdf.svg"] {
        let svg = std::fs::read_to_string(plots.join(name)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{name}");
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(report.parent().unwrap()).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

/// `crew-host bench --reps 1` with one 85F manifest of `core` (the `ecp5-85f` datapath plus
/// `extra` fields) and `fmax`: its stdout and the report.
fn bench_with_manifest(extra: &str, fmax: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ulx3s-85f");
    std::fs::create_dir_all(&target).unwrap();
    let manifest = format!(
        r#"{{"target": "ulx3s-85f", "part": "LFE5U-85F", "sha256": "00",
            "core": {{"kind": "crew", "lanes": 16, "groups": 1, "mults": 8, "wmem_words": 65536{extra}}},
            "fmax_mhz": {fmax}}}"#
    );
    std::fs::write(target.join("manifest.json"), manifest).unwrap();
    let report = dir.path().join("r.md");
    let o = crew_host(
        &["bench", "--reps", "1", "--report", report.to_str().unwrap()],
        &[("CREW_BITSTREAMS_DIR", dir.path().to_str().unwrap())],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    (out, std::fs::read_to_string(&report).unwrap())
}

#[test]
fn manifest_fmax_is_used() {
    let (out, md) = bench_with_manifest("", r#"{"achieved": 50.0, "constraint": 50.0}"#);
    assert!(out.contains("ulx3s-85f (LFE5U-85F) at 50 MHz"), "{out}");
    assert!(md.contains("50 MHz, achieved (nextpnr) for the crew core"), "{md}");
    assert!(!md.contains("nominal"), "{md}");
}

/// A manifest with the bitstream's run clock: device times are at that clock, not at the
/// (higher) Fmax nextpnr achieved.
#[test]
fn manifest_run_clock_is_used_over_fmax() {
    let (out, md) = bench_with_manifest(r#", "clock_mhz": 45"#, r#"{"achieved": 50.0, "constraint": 45.0}"#);
    assert!(out.contains("ulx3s-85f (LFE5U-85F) at 45 MHz"), "{out}");
    assert!(md.contains("45 MHz, the clock (PLL) the crew core runs at; nextpnr achieved 50 MHz"), "{md}");
}

#[test]
fn bad_arguments_fail_clearly() {
    let cases: [(&[&str], &str); 6] = [
        (&["bench", "--reps", "0"], "--reps must be at least 1"),
        (&["bench", "--batch", "0"], "--batch must be at least 1"),
        (&["bench", "--device", "pcie:0000:01:00.0"], "must be `emu[:options]` or `sim[:options]`"),
        (&["bench", "--device", "emu:lanes=abc"], "not a number"),
        (&["bench", "--model", "/nonexistent/model.safetensors"], "cannot load"),
        (&["bench", "--nominal-mhz", "0"], "--nominal-mhz"),
    ];
    for (args, want) in cases {
        let o = crew_host(args, &[]);
        let (out, err) = text(&o);
        assert!(!o.status.success(), "{args:?} should fail\n{out}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in stderr:\n{err}");
    }
}

/// `--device sim`: the emulator counts, the RTL (Verilator) confirms a sample of layers.
#[test]
fn sim_confirms_a_sample_on_the_rtl() {
    let have = Command::new("verilator").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CREW_SKIP_VERILATOR").is_some(),
            "verilator not found (set CREW_SKIP_VERILATOR to skip)"
        );
        return;
    }
    let o = crew_host(&["bench", "--device", "sim:config=ecp5-25f", "--reps", "1"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("Confirmed on the RTL: layers 0 (`lstm_cell.weight_ih`), 1 (`lstm_cell.weight_hh`)"), "{out}");
    assert!(out.contains("sim:config=ecp5-25f,kind=dense"), "{out}");
}
