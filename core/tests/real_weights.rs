//! Statistics on real weights, against the figures of the architecture notes (section 2).
//!
//! The weight files come from `scripts/fetch-models.sh` (CI runs it before the tests). Without
//! them these tests fail, on purpose, with a hint.

use crew_core::import::{load_any, load_matrices};
use crew_core::quant::ScaleMode;
use crew_core::reference::{gemv_crew, gemv_i8};
use crew_core::stats::{LayerStats, ModelStats};
use crew_core::EncodedLayer;
use std::path::{Path, PathBuf};

const MINILM: &str = "all-minilm-l6-v2.safetensors";
const SILERO: &str = "silero_vad_16k.safetensors";

fn model_path(file: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("models").join(file);
    assert!(p.is_file(), "{} is missing: run scripts/fetch-models.sh first", p.display());
    p
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "{what}: got {got:.3}, expected {want} (within {tol})");
}

fn stats_of(file: &str) -> ModelStats {
    let model = load_any(&model_path(file), None, ScaleMode::PerTensor).expect("import");
    ModelStats::of_model(&model)
}

/// Pool the layers whose names contain `part`.
fn group(s: &ModelStats, part: &str) -> ModelStats {
    ModelStats::from_layers(s.layers.iter().filter(|l| l.name.contains(part)).cloned().collect::<Vec<LayerStats>>())
}

#[test]
fn minilm_default_selection_is_its_36_fc_matrices() {
    let ms = load_matrices(&model_path(MINILM), None).unwrap();
    assert_eq!(ms.len(), 36);
    for layer in 0..6 {
        let p = format!("encoder.layer.{layer}.");
        let shape = |suffix: &str| {
            let m = ms.iter().find(|m| m.name == format!("{p}{suffix}")).unwrap_or_else(|| panic!("{p}{suffix}"));
            assert_eq!(m.bias.as_ref().map(Vec::len), Some(m.n_out), "{} bias", m.name);
            (m.n_out, m.n_in)
        };
        for s in ["attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight"] {
            assert_eq!(shape(s), (384, 384));
        }
        assert_eq!(shape("attention.output.dense.weight"), (384, 384));
        assert_eq!(shape("intermediate.dense.weight"), (1536, 384));
        assert_eq!(shape("output.dense.weight"), (384, 1536));
    }
    assert_eq!(ms.iter().map(|m| m.len()).sum::<usize>(), 10_616_832);
}

#[test]
fn minilm_figures() {
    let s = stats_of(MINILM);
    let t = &s.total;
    assert_eq!(t.layers, 36);
    assert_eq!(t.weights, 10_616_832);
    close("mean unique per input", t.unique_mean, 54.4, 0.5);
    assert_eq!(t.unique_median, 64.0);
    assert_eq!(t.unique_max, 156);
    close("CREW mults saved %", t.crew_mults_saved_pct, 89.4, 0.3);
    close("UCNN mults saved %", t.ucnn_mults_saved_pct, 86.3, 0.3);
    close("CREW storage % of int8", t.crew_storage_vs_int8_pct, 84.5, 0.3);
    // Per layer type (architecture notes, section 2).
    close("ffn1 mults saved %", group(&s, "intermediate.dense").total.crew_mults_saved_pct, 94.3, 0.3);
    let ffn2 = group(&s, ".output.dense");
    let ffn2 = ModelStats::from_layers(ffn2.layers.into_iter().filter(|l| !l.name.contains("attention")).collect());
    close("ffn2 mults saved %", ffn2.total.crew_mults_saved_pct, 96.4, 0.3);
    close("ffn2 storage %", ffn2.total.crew_storage_vs_int8_pct, 53.5, 0.5);
    for part in ["self.query", "self.key", "self.value"] {
        let g = group(&s, part).total;
        assert!((75.5..=78.5).contains(&g.crew_mults_saved_pct), "{part}: {}", g.crew_mults_saved_pct);
        assert!(g.crew_storage_vs_int8_pct > 100.0, "{part} stores more than int8");
    }
}

#[test]
fn silero_lstm_figures() {
    let path = model_path(SILERO);
    let ms = load_matrices(&path, None).unwrap();
    let names: Vec<_> = ms.iter().map(|m| (m.name.as_str(), m.n_out, m.n_in, m.bias.is_some())).collect();
    assert_eq!(names, vec![("lstm_cell.weight_ih", 512, 128, true), ("lstm_cell.weight_hh", 512, 128, true)]);
    let t = stats_of(SILERO).total;
    close("mean unique per input", t.unique_mean, 80.5, 0.5);
    assert_eq!(t.unique_median, 77.0);
    assert_eq!(t.unique_max, 127);
    close("CREW mults saved %", t.crew_mults_saved_pct, 84.3, 0.5);
    close("UCNN mults saved %", t.ucnn_mults_saved_pct, 59.2, 0.5);
    close("CREW storage % of int8", t.crew_storage_vs_int8_pct, 101.8, 0.5);
}

#[test]
fn real_layer_crew_gemv_is_bit_exact() {
    let ms = load_matrices(
        &model_path(MINILM),
        Some(&regex::Regex::new(r"^encoder\.layer\.0\.output\.dense\.weight$").unwrap()),
    )
    .unwrap();
    assert_eq!(ms.len(), 1);
    for mode in [ScaleMode::PerTensor, ScaleMode::PerRow] {
        let q = ms[0].quantize(mode);
        let e = EncodedLayer::encode(&q);
        e.validate().unwrap();
        let a: Vec<i8> = (0..q.n_in).map(|i| ((i * 37 + 11) % 255) as i8).collect();
        assert_eq!(gemv_crew(&e, &a), gemv_i8(&q.q, q.n_out, q.n_in, &a));
    }
}
