//! `crew-host encode` and `crew-host stats`, run as the real binary.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn crew_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crew-host")).args(args).output().expect("run crew-host")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "crew-host failed: {}", stderr(&o));
    o
}

/// A `.npy` v1.0 file of little-endian f32, C order.
fn npy(shape: &[usize], data: &[f32]) -> Vec<u8> {
    crew_core::import::npy_f32(shape, data)
}

/// Deterministic weights with a limited number of distinct values.
fn weights(n_out: usize, n_in: usize, seed: usize) -> Vec<f32> {
    (0..n_out * n_in).map(|k| (((k * 2654435761 + seed * 97) >> 7) % 41) as f32 / 20.0 - 1.0).collect()
}

fn write_npz(path: &Path, arrays: &[(&str, Vec<usize>, Vec<f32>)]) {
    let mut zw = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, shape, data) in arrays {
        zw.start_file(format!("{name}.npy"), opts).unwrap();
        zw.write_all(&npy(shape, data)).unwrap();
    }
    zw.finish().unwrap();
}

fn stats_json(input: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["stats", s(input), "--json"];
    args.extend_from_slice(extra);
    let o = ok(crew_host(&args));
    serde_json::from_slice(&o.stdout).expect("stats --json prints JSON")
}

/// Encode `input`, then check that stats of the .crew equal stats of the input.
fn round_trip(input: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["encode", s(input), "-o", s(out)];
    args.extend_from_slice(extra);
    ok(crew_host(&args));
    assert!(out.is_file());
    let direct = stats_json(input, extra);
    let via_crew = stats_json(out, &[]);
    assert_eq!(direct["layers"], via_crew["layers"], "per-layer stats differ after encode");
    assert_eq!(direct["total"], via_crew["total"], "totals differ after encode");
    direct
}

#[test]
fn npz_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("small.npz");
    write_npz(
        &npz,
        &[
            ("fc1.weight", vec![24, 16], weights(24, 16, 1)),
            ("fc1.bias", vec![24], vec![0.5; 24]),
            ("fc2.weight", vec![8, 24], weights(8, 24, 2)),
        ],
    );
    for extra in [&[][..], &["--per-row-scales"][..]] {
        let out = dir.path().join("small.crew");
        let j = round_trip(&npz, &out, extra);
        assert_eq!(j["total"]["layers"], 2);
        assert_eq!(j["total"]["weights"], 24 * 16 + 8 * 24);
        assert_eq!(j["layers"][0]["name"], "fc1.weight");
        assert_eq!(j["layers"][1]["n_in"], 24);
    }
    // --layers selects by regex, for imports and for .crew files alike.
    let j = stats_json(&npz, &["--layers", "^fc2"]);
    assert_eq!(j["total"]["layers"], 1);
    let j = stats_json(&dir.path().join("small.crew"), &["--layers", "fc1"]);
    assert_eq!(j["layers"][0]["name"], "fc1.weight");
    assert_eq!(j["total"]["layers"], 1);
}

#[test]
fn npy_round_trip_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.npy");
    std::fs::write(&p, npy(&[32, 20], &weights(32, 20, 3))).unwrap();
    let j = round_trip(&p, &dir.path().join("w.crew"), &[]);
    assert_eq!(j["layers"][0]["name"], "w");
    let o = ok(crew_host(&["stats", s(&p)]));
    let table = String::from_utf8_lossy(&o.stdout);
    for word in ["layer", "CREW", "UCNN", "storage", "32x20", "total"] {
        assert!(table.contains(word), "table lacks {word}:\n{table}");
    }
}

#[test]
fn plot_is_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.npy");
    std::fs::write(&p, npy(&[64, 16], &weights(64, 16, 4))).unwrap();
    let svg = dir.path().join("cdf.svg");
    ok(crew_host(&["stats", s(&p), "--plot", s(&svg)]));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "not an SVG");
    assert!(text.contains("Unique weights per input"));
    // Only the SVG is left in the directory: no temporary files.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

/// Run `encode` on a bad input: it must fail with a message naming the problem, and write nothing.
fn encode_fails(input: &Path, extra: &[&str], expect: &str) {
    let out = input.with_extension("out.crew");
    let mut args = vec!["encode", s(input), "-o", s(&out)];
    args.extend_from_slice(extra);
    let o = crew_host(&args);
    assert!(!o.status.success(), "encode of {} succeeded", input.display());
    let err = stderr(&o);
    assert!(err.contains(expect), "message lacks {expect:?}: {err}");
    assert!(!out.exists(), "an output file was left behind");
    let mut args = vec!["stats", s(input)];
    args.extend_from_slice(extra);
    let o = crew_host(&args);
    assert!(!o.status.success() && stderr(&o).contains(expect), "stats: {}", stderr(&o));
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { dir.path().join(name) };

    encode_fails(&d("missing.safetensors"), &[], "cannot read");

    std::fs::write(d("garbage.safetensors"), b"\xff\xff\xff\xff\xff\xff\xff\x7fnot json").unwrap();
    encode_fails(&d("garbage.safetensors"), &[], "not a valid safetensors file");

    let mut trunc = npy(&[4, 4], &[0.5; 16]);
    trunc.truncate(trunc.len() - 3);
    std::fs::write(d("trunc.npy"), trunc).unwrap();
    encode_fails(&d("trunc.npy"), &[], "bad .npy data");

    let ints = String::from_utf8_lossy(&npy(&[2, 2], &[0.0; 4])[10..]).replace("<f4", "<i4");
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend(npy(&[2, 2], &[0.0; 4])[8..10].iter());
    v.extend(ints.as_bytes());
    std::fs::write(d("ints.npy"), v).unwrap();
    encode_fails(&d("ints.npy"), &[], "dtype <i4");

    std::fs::write(d("nan.npy"), npy(&[2, 2], &[0.0, f32::NAN, 1.0, 2.0])).unwrap();
    encode_fails(&d("nan.npy"), &[], "non-finite");

    std::fs::write(d("ok.npy"), npy(&[2, 2], &[0.0, 0.5, 1.0, 2.0])).unwrap();
    encode_fails(&d("ok.npy"), &["--layers", "nomatch"], "no 2-D tensor matches /nomatch/");

    std::fs::write(d("not.npz"), b"PK\x03\x04 but not a zip").unwrap();
    encode_fails(&d("not.npz"), &[], "not a valid .npz");

    std::fs::write(d("weights.txt"), b"1 2 3").unwrap();
    encode_fails(&d("weights.txt"), &[], "unknown file type");

    std::fs::write(d("bad.crew"), b"CREW but not really").unwrap();
    encode_fails(&d("bad.crew"), &[], "not a valid .crew model");

    // A good input with an output in a missing directory: error, nothing written.
    let out = d("no/such/dir/out.crew");
    let o = crew_host(&["encode", s(&d("ok.npy")), "-o", s(&out)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("out.crew"), "{}", stderr(&o));
    assert!(!out.exists());
}

fn model(file: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(file);
    assert!(p.is_file(), "{} is missing: run scripts/fetch-models.sh first", p.display());
    p
}

#[test]
fn minilm_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let j = round_trip(&model("all-minilm-l6-v2.safetensors"), &dir.path().join("minilm.crew"), &[]);
    let t = &j["total"];
    assert_eq!(t["layers"], 36);
    assert_eq!(t["weights"], 10_616_832);
    assert_eq!(t["unique_median"], 64.0);
    assert_eq!(t["unique_max"], 156);
    let f = |k: &str| t[k].as_f64().unwrap();
    assert!((f("unique_mean") - 54.4).abs() < 0.5);
    assert!((f("crew_mults_saved_pct") - 89.4).abs() < 0.3);
    assert!((f("ucnn_mults_saved_pct") - 86.3).abs() < 0.3);
    assert!((f("crew_storage_vs_int8_pct") - 84.5).abs() < 0.3);
}
