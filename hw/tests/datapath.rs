//! RTL simulation of both datapaths against the CPU reference and the cycle model.

use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles;
use crew_core::encode::{dense_image, EncodedLayer};
use crew_core::quant::QuantizedLayer;
use crew_core::reference::{gemv_crew, gemv_i8};
use crew_core::regs::ErrorCode;
use crew_hw::sim::{
    load_accumulators, load_inputs, load_weights, run_layer_on_rtl, start_and_wait, BusTop, RtlError, RtlRun, SimBus,
    SimCore,
};
use crew_hw::{Test25Accel, Test85Accel, TestAccel, TEST_CONFIG, TEST_CONFIG_25F_LANES, TEST_CONFIG_85F_LANES};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random `n_out x n_in` layer whose column `i` draws from `uniques[i]` distinct values.
fn random_layer(rng: &mut ChaCha8Rng, n_out: usize, uniques: &[usize]) -> QuantizedLayer {
    let n_in = uniques.len();
    let mut q = vec![0i8; n_out * n_in];
    for (i, &u) in uniques.iter().enumerate() {
        // u distinct values out of [-128, 127]; every row takes one of them.
        let mut pool: Vec<i16> = (-128..=127).collect();
        for k in 0..u {
            let j = rng.gen_range(k..256);
            pool.swap(k, j);
        }
        let vals = &pool[..u];
        // Every value occurs (rows j < u take value j), so the column has exactly u values.
        assert!(u <= n_out);
        for j in 0..n_out {
            q[j * n_in + i] = vals[if j < u { j } else { rng.gen_range(0..u) }] as i8;
        }
    }
    QuantizedLayer { name: "t".into(), n_out, n_in, q, scales: vec![1.0], bias: None }
}

fn random_inputs(rng: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.gen_range(-128..=127i16) as i8).collect()
}

/// Run a layer on the RTL of `cfg`'s kind and check results, counters and CYCLES.
fn check_run<T: BusTop>(
    s: &mut SimCore<T>,
    cfg: &DeviceConfig,
    layer: &QuantizedLayer,
    x: &[i8],
    base: u32,
    preload: Option<&[i32]>,
) -> RtlRun {
    let enc = EncodedLayer::encode(layer);
    enc.validate().unwrap();
    let (image, expect) = match cfg.kind {
        CoreKind::Crew => (enc.memory_image(), gemv_crew(&enc, x)),
        CoreKind::Dense => {
            (dense_image(&layer.q, layer.n_out, layer.n_in), gemv_i8(&layer.q, layer.n_out, layer.n_in, x))
        }
    };
    assert_eq!(expect, gemv_i8(&layer.q, layer.n_out, layer.n_in, x));
    let expect: Vec<i32> = match preload {
        Some(p) => {
            load_accumulators(s, p);
            expect.iter().zip(p).map(|(e, p)| e.wrapping_add(*p)).collect()
        }
        None => expect,
    };
    let r = run_layer_on_rtl(s, &image, base, layer.n_out, x, preload.is_some()).expect("run");
    let uniques: Vec<u16> = enc.descriptors.iter().map(|d| d.unique_count).collect();
    let model = cycles::run_counts(cfg, layer.n_out, &uniques);
    let tag = format!("{:?} {}x{} uniques {:?}", cfg.kind, layer.n_out, layer.n_in, uniques);
    assert_eq!(r.acc, expect, "{tag}");
    assert_eq!(r.cycles, model.cycles, "CYCLES {tag}");
    assert_eq!(r.mults as u64, model.mults, "MULT_COUNT {tag}");
    assert_eq!(r.adds as u64, model.adds, "ADD_COUNT {tag}");
    r
}

/// Random layers with the edge cases: |U_i| = 1 (0-bit indices), |U_i| > 128 (8-bit indices),
/// N_out < LANES, N_out not a multiple of LANES, N_out = 1, N_in = 1, a non-zero layer base;
/// all back to back on one device without reset.
fn random_layers_back_to_back<T: BusTop>(cfg: &DeviceConfig, seed: u64) {
    let mut s = SimCore::<T>::new(cfg).with_vcd(&format!("random_layers_{:?}_{}lanes_seed{seed}", cfg.kind, cfg.lanes));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let lanes = cfg.lanes as usize;
    let shapes: Vec<(usize, Vec<usize>)> = vec![
        (10, vec![3, 1, 5]),
        (lanes - 1, vec![2, 1, 3, 3]),
        (1, vec![1, 1]),
        (2 * lanes + 1, vec![1]),
        (150, vec![150, 1, 129, 7]),
        (37, (0..12).map(|i| [1, 2, 5, 17, 33, 37][i % 6]).collect()),
        (3 * lanes, vec![1, 1, 1]),
        // Two, three and four groups per column: the dense accumulator row comes back two, three
        // or four groups later (forwarding from the sums not yet written).
        (lanes + 3, vec![2, 5, 1]),
        (2 * lanes + 3, vec![2, 5, 1]),
        (3 * lanes + 3, vec![2, 5, 1]),
    ];
    // Plus random shapes.
    let mut shapes = shapes;
    for _ in 0..6 {
        let n_out = rng.gen_range(1..=cfg.obuf_depth as usize);
        let n_in = rng.gen_range(1..=6);
        shapes.push((n_out, (0..n_in).map(|_| rng.gen_range(1..=n_out.min(256))).collect()));
    }
    for (k, (n_out, uniques)) in shapes.into_iter().enumerate() {
        let layer = random_layer(&mut rng, n_out, &uniques);
        let x = random_inputs(&mut rng, uniques.len());
        let base = if k % 2 == 1 { 100 } else { 0 };
        let r = check_run(&mut s, cfg, &layer, &x, base, None);
        if k == 4 && cfg.kind == CoreKind::Crew {
            let bits: Vec<u8> = EncodedLayer::encode(&layer).descriptors.iter().map(|d| d.index_bits).collect();
            assert_eq!(bits, [8, 0, 8, 3], "the edge-case widths are exercised");
            assert_eq!(r.mults, 150 + 1 + 129 + 7);
        }
    }
}

#[test]
fn crew_random_layers_are_bit_and_cycle_exact() {
    random_layers_back_to_back::<TestAccel>(&TEST_CONFIG, 11);
}

#[test]
fn dense_random_layers_are_bit_and_cycle_exact() {
    random_layers_back_to_back::<TestAccel>(&TEST_CONFIG.with_kind(CoreKind::Dense), 12);
}

#[test]
fn preset_25f_lanes_and_mults_on_small_layers() {
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let cfg = TEST_CONFIG_25F_LANES.with_kind(kind);
        let mut s = SimCore::<Test25Accel>::new(&cfg).with_vcd(&format!("preset_25f_{kind:?}"));
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        for (n_out, uniques) in [(20, vec![9, 1, 13, 20, 2]), (5, vec![4, 5]), (64, vec![64, 33, 1])] {
            let layer = random_layer(&mut rng, n_out, &uniques);
            let x = random_inputs(&mut rng, uniques.len());
            check_run(&mut s, &cfg, &layer, &x, 7, None);
        }
    }
}

#[test]
fn preset_85f_lanes_and_mults_on_a_small_layer() {
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let cfg = TEST_CONFIG_85F_LANES.with_kind(kind);
        let mut s = SimCore::<Test85Accel>::new(&cfg).with_vcd(&format!("preset_85f_{kind:?}"));
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        for (n_out, uniques) in [(70, vec![40, 1, 70]), (31, vec![17, 2])] {
            let layer = random_layer(&mut rng, n_out, &uniques);
            let x = random_inputs(&mut rng, uniques.len());
            check_run(&mut s, &cfg, &layer, &x, 3, None);
        }
    }
}

#[test]
fn accumulate_adds_onto_preloaded_accumulators() {
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let cfg = TEST_CONFIG.with_kind(kind);
        let mut s = SimCore::<TestAccel>::new(&cfg).with_vcd(&format!("accumulate_{kind:?}"));
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        for (n_out, uniques) in [(13, vec![4, 1, 6]), (3, vec![2]), (4, vec![3, 3])] {
            let layer = random_layer(&mut rng, n_out, &uniques);
            let x = random_inputs(&mut rng, uniques.len());
            let pre: Vec<i32> = (0..n_out).map(|_| rng.gen()).collect();
            check_run(&mut s, &cfg, &layer, &x, 0, Some(&pre));
        }
    }
}

/// A CREW layer whose image is tampered with by `tamper` must stop with `code`, and the device
/// must run the untampered layer correctly afterwards.
fn crew_error(tamper: impl Fn(&mut Vec<u32>, &EncodedLayer), code: ErrorCode) {
    crew_error_n(9, tamper, code)
}

/// [`crew_error`] on a layer of `n_out` outputs.
fn crew_error_n(n_out: usize, tamper: impl Fn(&mut Vec<u32>, &EncodedLayer), code: ErrorCode) {
    let cfg = TEST_CONFIG;
    let mut s = SimCore::<TestAccel>::new(&cfg).with_vcd(&format!("crew_error_{n_out}_{code:?}"));
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    // Column 0: 3 values (2-bit indices), column 1: 5 values (3 bits), column 2: 3 values.
    let q: Vec<i8> =
        (0..n_out).flat_map(|j| [[-5, 0, 7][j % 3], [-9, -1, 2, 6, 100][j % 5], [1, 2, 3][j % 3]]).collect();
    let layer = QuantizedLayer { name: "e".into(), n_out, n_in: 3, q, scales: vec![1.0], bias: None };
    let x = random_inputs(&mut rng, 3);
    let enc = EncodedLayer::encode(&layer);
    assert_eq!(enc.descriptors.iter().map(|d| d.index_bits).collect::<Vec<_>>(), [2, 3, 2]);
    let mut image = enc.memory_image();
    tamper(&mut image, &enc);
    load_weights(&mut s, 0, &image);
    load_inputs(&mut s, &x);
    assert_eq!(start_and_wait(&mut s, n_out, 3, 0, false, 400), Err(RtlError::Device(code)));
    check_run(&mut s, &cfg, &layer, &x, 0, None);
}

#[test]
fn malformed_descriptors_and_indices_report_their_codes() {
    // Column 1's index width does not match its 5 values.
    crew_error(|img, _| img[3] = (img[3] & 0x00ff_ffff) | 4 << 24, ErrorCode::BadWidth);
    // Column 0's table lies past the end of weight memory.
    crew_error(|img, _| img[0] = (img[0] & 0xff00_0000) | TEST_CONFIG.wmem_words, ErrorCode::DescriptorOutOfRange);
    // Column 2's index run lies past the end of weight memory.
    crew_error(|img, _| img[5] = (img[5] & 0xff00_0000) | TEST_CONFIG.wmem_words, ErrorCode::DescriptorOutOfRange);
    // Column 0 has 3 values in 2 bits: index 3 (row 8) is out of range.
    crew_error(|img, e| img[e.descriptors[0].run_offset as usize] |= 0b11 << 16, ErrorCode::IndexOutOfRange);
    // An index error in column 0 comes before a bad descriptor in column 1 (column order, as
    // the emulator checks).
    crew_error(
        |img, e| {
            img[e.descriptors[0].run_offset as usize] |= 0b11;
            img[3] = (img[3] & 0x00ff_ffff) | 4 << 24;
        },
        ErrorCode::IndexOutOfRange,
    );
    // The same with the error in column 0's last index (group 2): the bad descriptor waits
    // until that index has been checked (the engine's `pend`).
    crew_error(
        |img, e| {
            img[e.descriptors[0].run_offset as usize] |= 0b11 << 16;
            img[3] = (img[3] & 0x00ff_ffff) | 4 << 24;
        },
        ErrorCode::IndexOutOfRange,
    );
    // The same on a lane-bound layer (64 outputs: 16 groups, longer than column 1's fill), so
    // column 1's bad descriptor is found well before column 0's last group is even issued, and
    // only `pend` (DRAIN_CYCLES - 2 from that issue) holds it back: output 63's index, word 3 of
    // the run, bits 30..31.
    crew_error_n(
        64,
        |img, e| {
            img[e.descriptors[0].run_offset as usize + 3] |= 0b11 << 30;
            img[3] = (img[3] & 0x00ff_ffff) | 4 << 24;
        },
        ErrorCode::IndexOutOfRange,
    );
    // An index error in the last column, detected in the drain.
    crew_error(|img, e| img[e.descriptors[2].run_offset as usize] |= 0b11 << 8, ErrorCode::IndexOutOfRange);
}

#[test]
fn preset_configs_elaborate() {
    use crew_core::config::DeviceConfig;
    use crew_hw::{Ecp5_25fAccel, Ecp5_85fAccel};
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        let _ = Ecp5_25fAccel::build(&DeviceConfig::ECP5_25F.with_kind(kind));
        let _ = Ecp5_85fAccel::build(&DeviceConfig::ECP5_85F.with_kind(kind));
    }
}

/// A simulation that fails leaves its VCD trace in target/vcd/.
#[test]
fn a_failing_simulation_writes_its_vcd() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/vcd/vcd_on_failure_check.vcd");
    let _ = std::fs::remove_file(path);
    let failed = std::panic::catch_unwind(|| {
        let mut s = SimCore::<TestAccel>::new(&TEST_CONFIG).with_vcd("vcd_on_failure_check");
        s.write(crew_core::regs::SCRATCH, 0x1234_5678);
        assert_eq!(s.read(crew_core::regs::SCRATCH), 0, "deliberate failure");
    });
    assert!(failed.is_err());
    let vcd = std::fs::read_to_string(path).expect("the trace was written");
    assert!(vcd.contains("$enddefinitions") && vcd.contains("#5000"), "{}", &vcd[..vcd.len().min(400)]);
}
