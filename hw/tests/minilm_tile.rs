//! A tile of each real MiniLM layer shape on the RTL of both cores: bit-exact against the CPU
//! reference, and CYCLES / MULT_COUNT / ADD_COUNT exactly the cycle model's. The weights are the
//! real all-MiniLM-L6-v2 tensors (scripts/fetch-models.sh), quantized per tensor as the driver
//! would, then tiled as the driver tiles layers (EncodedLayer::tile).

use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles;
use crew_core::encode::{dense_image, EncodedLayer};
use crew_core::import::{encode_matrix, load_matrices};
use crew_core::quant::{quantize_activations, ScaleMode};
use crew_core::reference::gemv_i8;
use crew_hw::sim::{run_layer_on_rtl, SimCore};
use crew_hw::{Test85Accel, TEST_CONFIG_85F_LANES};
use std::path::PathBuf;

fn minilm_layer(name: &str) -> EncodedLayer {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-minilm-l6-v2.safetensors");
    assert!(path.exists(), "{} is missing: run scripts/fetch-models.sh first", path.display());
    let re = regex::Regex::new(&format!("^{}$", regex::escape(name))).unwrap();
    let m = load_matrices(&path, Some(&re)).unwrap();
    encode_matrix(&path, &m[0], ScaleMode::PerTensor).unwrap()
}

#[test]
fn one_tile_of_each_minilm_shape_on_both_cores() {
    // 64 outputs x 16 inputs: fits the test memories (1024 weight words, 256 outputs) at the
    // 85F preset's lanes (32) and multipliers (16).
    let shapes = [
        ("encoder.layer.3.attention.self.query.weight", 320..384, 100..116), // 384x384
        ("encoder.layer.3.intermediate.dense.weight", 1000..1064, 200..216), // 1536x384
        ("encoder.layer.3.output.dense.weight", 0..64, 1400..1416),          // 384x1536
    ];
    for (name, rows, cols) in shapes {
        let tile = minilm_layer(name).tile(rows, cols);
        tile.validate().unwrap();
        let q = tile.decode_weights();
        let x: Vec<i8> = quantize_activations(&activations(tile.n_in)).0;
        let want = gemv_i8(&q, tile.n_out, tile.n_in, &x);
        let uniques: Vec<u16> = tile.descriptors.iter().map(|d| d.unique_count).collect();
        for kind in [CoreKind::Crew, CoreKind::Dense] {
            let cfg: DeviceConfig = TEST_CONFIG_85F_LANES.with_kind(kind);
            let image = match kind {
                CoreKind::Crew => tile.memory_image(),
                CoreKind::Dense => dense_image(&q, tile.n_out, tile.n_in),
            };
            let mut sim = SimCore::<Test85Accel>::new(&cfg)
                .with_vcd(&format!("minilm_tile_{kind:?}_{}x{}", tile.n_out, tile.n_in));
            let r = run_layer_on_rtl(&mut sim, &image, 0, tile.n_out, &x, false).expect("run");
            let model = cycles::run_counts(&cfg, tile.n_out, &uniques);
            assert_eq!(r.acc, want, "{kind:?} {}", tile.name);
            assert_eq!(r.cycles, model.cycles, "{kind:?} {} CYCLES", tile.name);
            assert_eq!(r.mults as u64, model.mults, "{kind:?} {} MULT_COUNT", tile.name);
            assert_eq!(r.adds as u64, model.adds, "{kind:?} {} ADD_COUNT", tile.name);
        }
    }
}

/// Deterministic activations with a realistic spread.
fn activations(n: usize) -> Vec<f32> {
    (0..n).map(|k| ((k * 37 % 101) as f32 - 50.0) / 17.0).collect()
}
