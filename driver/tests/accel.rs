//! The accelerator API on the emulated device: runs against the reference, tiling, identify,
//! device strings, timeouts, CRC checks and device errors.

mod common;

use common::{model, random_input, random_layer, realistic_layer};
use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles::{run_counts, RunCounts};
use crew_core::encode::EncodedLayer;
use crew_core::reference::{gemv_crew, gemv_i8};
use crew_core::regs::{self, ErrorCode};
use crew_driver::{open, Accelerator, DriverError, EmuTransport, Fault, OpenOptions, Transport};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn accel(cfg: DeviceConfig) -> Accelerator<EmuTransport> {
    Accelerator::new(EmuTransport::new(cfg), OpenOptions::default()).unwrap()
}

fn small(kind: CoreKind, wmem: u32) -> DeviceConfig {
    DeviceConfig { kind, lanes: 4, groups: 2, mults: 2, wmem_words: wmem, ibuf_depth: 24, obuf_depth: 20 }
}

/// The counts the device must report for a layer, summed over its plan's tiles.
fn expected_counts(a: &Accelerator<EmuTransport>, layer_index: usize, layer: &EncodedLayer) -> RunCounts {
    let cfg = a.config();
    let mut sum = RunCounts::default();
    for t in &a.plan(layer_index).unwrap().tiles {
        let tile = layer.tile(t.rows.clone(), t.cols.clone());
        let uniq: Vec<u16> = tile.descriptors.iter().map(|d| d.unique_count).collect();
        let c = run_counts(&cfg, t.rows.len(), &uniq);
        sum.cycles += c.cycles;
        sum.mults += c.mults;
        sum.adds += c.adds;
    }
    sum
}

#[test]
fn untiled_runs_match_reference_and_cycle_model() {
    let configs = [
        DeviceConfig::ECP5_85F,
        DeviceConfig::ECP5_25F,
        DeviceConfig { lanes: 3, groups: 5, mults: 1, ..DeviceConfig::ECP5_25F },
    ];
    for base in configs {
        for kind in [CoreKind::Crew, CoreKind::Dense] {
            let cfg = base.with_kind(kind);
            let layers: Vec<EncodedLayer> = [(7, 1), (40, 33), (64, 64), (129, 17)]
                .iter()
                .enumerate()
                .map(|(k, &(o, i))| EncodedLayer::encode(&random_layer("l", o, i, k as u64)))
                .collect();
            let mut a = accel(cfg);
            let report = a.load(&model(layers.clone())).unwrap();
            assert!(report.resident);
            assert_eq!(report.tiles, layers.len());
            for (li, l) in layers.iter().enumerate() {
                let q = l.decode_weights();
                for s in 0..2 {
                    let x = random_input(l.n_in, 100 + s);
                    let run = a.run_layer(li, &x).unwrap();
                    assert_eq!(run.outputs, gemv_i8(&q, l.n_out, l.n_in, &x), "{kind:?} layer {li}");
                    assert_eq!(run.tiles, 1);
                    let uniq: Vec<u16> = l.descriptors.iter().map(|d| d.unique_count).collect();
                    assert_eq!(run.counts, run_counts(&cfg, l.n_out, &uniq));
                    assert_eq!(a.counters().unwrap(), run.counts);
                }
            }
        }
    }
}

/// A layer larger than the buffers and the weight memory in both directions: bit-exact, in
/// resident and streamed mode, single and batched, for both kinds.
#[test]
fn tiling_is_bit_exact() {
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        for wmem in [700u32, 1 << 16] {
            let cfg = small(kind, wmem);
            let l = EncodedLayer::encode(&random_layer("big", 70, 50, 11));
            let l2 = EncodedLayer::encode(&realistic_layer("big2", 45, 61, 12));
            let mut a = accel(cfg);
            let report = a.load(&model(vec![l.clone(), l2.clone()])).unwrap();
            assert_eq!(report.resident, wmem > 700, "{report:?}");
            assert_eq!(report.tiled_layers, 2);
            for (li, layer) in [&l, &l2].into_iter().enumerate() {
                let plan = a.plan(li).unwrap();
                assert!(plan.tiles.iter().any(|t| t.rows.start > 0), "split by outputs");
                assert!(plan.tiles.iter().any(|t| t.cols.start > 0), "split by inputs");
                for t in &plan.tiles {
                    assert!(t.rows.len() <= 20 && t.cols.len() <= 24 && t.image().len() <= wmem as usize);
                }
                let q = layer.decode_weights();
                let xs: Vec<Vec<i8>> = (0..3).map(|s| random_input(layer.n_in, s + 7)).collect();
                let batch = a.run_batch(li, &xs).unwrap();
                for (x, b) in xs.iter().zip(&batch) {
                    let single = a.run_layer(li, x).unwrap();
                    let want = gemv_i8(&q, layer.n_out, layer.n_in, x);
                    assert_eq!(single.outputs, want, "{kind:?} wmem {wmem} layer {li}");
                    assert_eq!(&single, b, "batch equals single runs");
                    assert_eq!(single.tiles, a.plan(li).unwrap().tiles.len());
                    if kind == CoreKind::Crew {
                        assert_eq!(single.counts, expected_counts(&a, li, layer));
                    }
                }
            }
        }
    }
}

/// MiniLM-shaped layers on the 85F preset: 1536x384 and 384x1536 need input tiles; the model is
/// larger than weight memory, so it streams.
#[test]
fn minilm_shapes_stream_and_match() {
    let layers: Vec<EncodedLayer> = [(384, 384), (1536, 384), (384, 1536)]
        .iter()
        .enumerate()
        .map(|(k, &(o, i))| EncodedLayer::encode(&realistic_layer("ffn", o, i, k as u64)))
        .collect();
    let mut a = accel(DeviceConfig::ECP5_85F);
    let report = a.load(&model(layers.clone())).unwrap();
    assert!(!report.resident, "{report:?}");
    for round in 0..2 {
        for (li, l) in layers.iter().enumerate() {
            let x = random_input(l.n_in, li as u64 + round);
            let run = a.run_layer(li, &x).unwrap();
            assert_eq!(run.outputs, gemv_crew(l, &x));
            assert_eq!(run.counts, expected_counts(&a, li, l));
        }
    }
}

#[test]
fn device_strings() {
    let opts = OpenOptions::default();
    let a = open("emu", &opts).unwrap();
    assert_eq!(a.config(), DeviceConfig::default());
    let a = open("emu:lanes=16,mults=2,groups=4,kind=dense,config=ecp5-25f,wmem=4096,ibuf=64,obuf=32", &opts).unwrap();
    let want = DeviceConfig {
        kind: CoreKind::Dense,
        lanes: 16,
        groups: 4,
        mults: 2,
        wmem_words: 4096,
        ibuf_depth: 64,
        obuf_depth: 32,
    };
    assert_eq!(a.config(), want);
    assert_eq!(a.info().device, "emu:lanes=16,mults=2,groups=4,kind=dense,config=ecp5-25f,wmem=4096,ibuf=64,obuf=32");
    match open("pciex:0000:01:00.0", &opts) {
        Err(DriverError::UnknownScheme { scheme, known, .. }) => {
            assert_eq!(scheme, "pciex");
            assert!(known.contains("emu"));
        }
        other => panic!("{other:?}"),
    }
    for (dev, opt) in [
        ("emu:frobs=2", "frobs"),
        ("emu:lanes=abc", "lanes"),
        ("emu:lanes=0", "lanes"),
        ("emu:lanes=1024", "lanes"),
        ("emu:kind=sparse", "kind"),
        ("emu:config=ecp5-12f", "config"),
        ("emu:lanes", "lanes"),
        ("emu:wmem=99999999999", "wmem"),
    ] {
        match open(dev, &opts) {
            Err(e @ DriverError::BadOption { .. }) => {
                let DriverError::BadOption { option, .. } = &e else { unreachable!() };
                assert_eq!(option, opt, "{dev}");
                assert!(e.to_string().contains(opt), "{e}");
            }
            other => panic!("{dev}: {other:?}"),
        }
    }
    // The boxed backend runs like any other.
    let mut a = open("emu:config=ecp5-25f", &opts).unwrap();
    let l = EncodedLayer::encode(&random_layer("b", 30, 20, 5));
    a.load(&model(vec![l.clone()])).unwrap();
    let x = random_input(20, 1);
    assert_eq!(a.run_layer(0, &x).unwrap().outputs, gemv_crew(&l, &x));
}

/// A transport that rewrites the values read from some addresses.
struct Rewrite<T> {
    inner: T,
    reads: HashMap<u32, u32>,
}

impl<T: Transport> Transport for Rewrite<T> {
    type Error = T::Error;
    fn read32(&mut self, addr: u32) -> Result<u32, T::Error> {
        let v = self.inner.read32(addr)?;
        Ok(self.reads.get(&addr).copied().unwrap_or(v))
    }
    fn write32(&mut self, addr: u32, value: u32) -> Result<(), T::Error> {
        self.inner.write32(addr, value)
    }
}

fn rewritten(reads: &[(u32, u32)]) -> Result<Accelerator<Rewrite<EmuTransport>>, DriverError> {
    let t = Rewrite { inner: EmuTransport::new(DeviceConfig::ECP5_25F), reads: reads.iter().copied().collect() };
    Accelerator::new(t, OpenOptions::default())
}

#[test]
fn identify_refuses_what_it_does_not_know() {
    let caps = regs::caps_value(&DeviceConfig::ECP5_25F);
    match rewritten(&[(regs::VERSION_REG, 2 << 16 | 3)]) {
        Err(DriverError::VersionMismatch { found_major: 2, found_minor: 3, expected_major }) => {
            assert_eq!(expected_major, regs::VERSION_MAJOR)
        }
        other => panic!("{other:?}"),
    }
    match rewritten(&[(regs::CAPS, caps & !(0xf << 24) | 5 << 24)]) {
        Err(e @ DriverError::UnknownKind { found: 5 }) => assert!(e.to_string().contains('5')),
        other => panic!("{other:?}"),
    }
    match rewritten(&[(regs::ID, 0xdead_beef)]) {
        Err(DriverError::BadMagic { found: 0xdead_beef, expected: regs::ID_MAGIC }) => {}
        other => panic!("{other:?}"),
    }
    match rewritten(&[(regs::CAPS, caps & !0x3ff)]) {
        Err(DriverError::BadConfig { field: "CAPS.LANES", found: 0, .. }) => {}
        other => panic!("{other:?}"),
    }
    match rewritten(&[(regs::IBUF_DEPTH, 0x0100_0000)]) {
        Err(DriverError::BadConfig { field: "IBUF_DEPTH", .. }) => {}
        other => panic!("{other:?}"),
    }
    // A newer minor version is accepted.
    let a = rewritten(&[(regs::VERSION_REG, (regs::VERSION_MAJOR as u32) << 16 | 9)]).unwrap();
    assert_eq!((a.info().version_major, a.info().version_minor), (regs::VERSION_MAJOR, 9));
    assert_eq!(a.config(), DeviceConfig::ECP5_25F);
}

fn loaded(cfg: DeviceConfig, timeout: Duration) -> (Accelerator<EmuTransport>, Vec<EncodedLayer>) {
    let layers: Vec<EncodedLayer> =
        (0..3).map(|k| EncodedLayer::encode(&random_layer("f", 20 + 9 * k, 13 + k, k as u64))).collect();
    let mut a = Accelerator::new(EmuTransport::new(cfg), OpenOptions::default().with_timeout(timeout)).unwrap();
    a.load(&model(layers.clone())).unwrap();
    (a, layers)
}

#[test]
fn stuck_busy_times_out_and_recovers() {
    let timeout = Duration::from_millis(50);
    let (mut a, layers) = loaded(DeviceConfig::ECP5_25F, timeout);
    a.transport_mut().device_mut().inject(Fault::StuckBusy);
    let x = random_input(layers[1].n_in, 3);
    let t0 = Instant::now();
    let err = a.run_layer(1, &x).unwrap_err();
    let took = t0.elapsed();
    match &err {
        DriverError::Timeout { op, waited } => {
            assert!(op.contains("layer 1"), "{op}");
            assert!(*waited >= timeout);
        }
        other => panic!("{other:?}"),
    }
    assert!(took >= timeout && took < Duration::from_millis(500), "{took:?}");
    assert_eq!(a.read32(regs::STATUS).unwrap(), regs::status::BUSY);
    // Still busy: the CRC check of a new load is refused.
    match a.load(&model(layers.clone())) {
        Err(DriverError::Device { code: ErrorCode::StartWhileBusy, layer: 0, tile: 0 }) => {}
        other => panic!("{other:?}"),
    }
    // After a reset, with the fault still armed, the CRC check hangs and times out.
    a.soft_reset().unwrap();
    match a.load(&model(layers.clone())) {
        Err(DriverError::Timeout { op, .. }) => assert!(op.contains("CRC"), "{op}"),
        other => panic!("{other:?}"),
    }
    a.transport_mut().device_mut().clear_faults();
    a.soft_reset().unwrap();
    assert_eq!(a.read32(regs::STATUS).unwrap(), 0);
    a.load(&model(layers.clone())).unwrap();
    assert_eq!(a.run_layer(1, &x).unwrap().outputs, gemv_crew(&layers[1], &x));
}

#[test]
fn weight_bit_flip_is_caught_by_the_crc() {
    // Resident: at load.
    let mut a = accel(DeviceConfig::ECP5_25F);
    a.transport_mut().device_mut().inject(Fault::WeightBitFlip { word: 5, bit: 3 });
    let l = EncodedLayer::encode(&random_layer("f", 30, 10, 1));
    match a.load(&model(vec![l.clone()])) {
        Err(DriverError::CrcMismatch { layer: 0, tile: 0, expected, found }) => {
            assert_eq!(expected, a.plan(0).map_or(expected, |p| p.tiles[0].crc));
            assert_ne!(expected, found);
        }
        other => panic!("{other:?}"),
    }
    assert!(a.load_report().is_none());
    assert!(matches!(a.run_layer(0, &[0; 10]), Err(DriverError::NoModel)));
    // Streamed: when the tile is written before its run.
    let cfg = small(CoreKind::Crew, 700);
    let mut a = accel(cfg);
    let big = EncodedLayer::encode(&random_layer("big", 70, 50, 11));
    assert!(!a.load(&model(vec![big.clone()])).unwrap().resident);
    a.transport_mut().device_mut().inject(Fault::WeightBitFlip { word: 2, bit: 30 });
    match a.run_layer(0, &random_input(50, 1)) {
        Err(DriverError::CrcMismatch { layer: 0, tile: 0, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Without the check the corrupted image runs (and a descriptor bit 30 is a bad width).
    let opts = OpenOptions { verify_crc: false, ..OpenOptions::default() };
    let mut a = Accelerator::new(EmuTransport::new(cfg), opts).unwrap();
    a.transport_mut().device_mut().inject(Fault::WeightBitFlip { word: 2, bit: 30 });
    a.load(&model(vec![big])).unwrap();
    match a.run_layer(0, &random_input(50, 1)) {
        Err(DriverError::Device { code: ErrorCode::BadWidth, layer: 0, tile: 0 }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_status_faults_become_device_errors() {
    let (mut a, layers) = loaded(DeviceConfig::ECP5_25F, Duration::from_secs(2));
    for code in [ErrorCode::IndexOutOfRange, ErrorCode::BadDimensions, ErrorCode::StartWhileBusy] {
        a.transport_mut().device_mut().inject(Fault::ErrorStatus(code));
        let x = random_input(layers[2].n_in, 1);
        match a.run_layer(2, &x) {
            Err(e @ DriverError::Device { .. }) => {
                assert!(matches!(e, DriverError::Device { code: c, layer: 2, tile: 0 } if c == code), "{e}");
                assert!(e.to_string().contains(code.describe()), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // One shot: the next run works.
        assert_eq!(a.run_layer(2, &x).unwrap().outputs, gemv_crew(&layers[2], &x));
    }
}

/// Descriptors corrupted in device memory after a resident load: each run stops with the code.
#[test]
fn malformed_descriptors_give_device_errors() {
    let cfg = DeviceConfig::ECP5_25F;
    let (mut a, layers) = loaded(cfg, Duration::from_secs(2));
    let base = a.plan(1).unwrap().tiles[0].base;
    let n_in = layers[1].n_in;
    let d = |k: u32| regs::WEIGHT_WINDOW + 4 * (base + k);
    // Column c's descriptor words: table offset pushed out of memory, then a 9-bit width.
    let c = n_in as u32 - 1;
    type Corrupt = fn(u32) -> u32;
    let mut cases: Vec<(u32, Corrupt, ErrorCode)> = vec![
        (d(2 * c), |w| w | 0x00ff_ffff, ErrorCode::DescriptorOutOfRange),
        (d(2 * c + 1), |w| w & 0x00ff_ffff | 9 << 24, ErrorCode::BadWidth),
    ];
    // A column whose count is not a power of two: all-ones indices are out of range.
    let (i, desc) = layers[1]
        .descriptors
        .iter()
        .enumerate()
        .find(|(_, d)| !(d.unique_count as usize).is_power_of_two())
        .expect("a column with a non-power-of-two count");
    let run_word = d(desc.run_offset);
    cases.push((run_word, |_| u32::MAX, ErrorCode::IndexOutOfRange));
    for (addr, corrupt, code) in cases {
        let old = a.read32(addr).unwrap();
        a.write32(addr, corrupt(old)).unwrap();
        match a.run_layer(1, &random_input(n_in, 1)) {
            Err(DriverError::Device { code: c, layer: 1, tile: 0 }) => assert_eq!(c, code, "column {i}"),
            other => panic!("{other:?}"),
        }
        a.write32(addr, old).unwrap();
    }
    // Other layers are untouched and still run.
    let x = random_input(layers[0].n_in, 2);
    assert_eq!(a.run_layer(0, &x).unwrap().outputs, gemv_crew(&layers[0], &x));
}

#[test]
fn api_errors_and_introspection() {
    let mut a = accel(DeviceConfig::ECP5_25F);
    assert!(matches!(a.run_layer(0, &[1, 2]), Err(DriverError::NoModel)));
    let (mut a2, layers) = loaded(DeviceConfig::ECP5_25F, Duration::from_secs(1));
    match a2.run_layer(0, &vec![0; layers[0].n_in + 1]) {
        Err(DriverError::InputLength { layer: 0, vector: 0, expected, found }) => {
            assert_eq!((expected, found), (layers[0].n_in, layers[0].n_in + 1))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(a2.run_layer(3, &[0]), Err(DriverError::NoSuchLayer { layer: 3, layers: 3 })));
    assert!(a2.run_batch::<Vec<i8>>(0, &[]).unwrap().is_empty());
    // regs_dump follows the register table.
    let dump = a.regs_dump().unwrap();
    assert_eq!(dump.len(), regs::REGISTERS.len());
    assert_eq!(dump[0], ("ID", regs::ID_MAGIC));
    assert!(dump.iter().zip(regs::REGISTERS).all(|(d, r)| d.0 == r.name));
    // A layer that cannot fit even as one-column tiles.
    let mut tiny = accel(DeviceConfig { wmem_words: 2, ..DeviceConfig::ECP5_25F });
    let l = EncodedLayer::encode(&random_layer("x", 8, 8, 1));
    assert!(matches!(tiny.load(&model(vec![l])), Err(DriverError::DoesNotFit { layer: 0, .. })));
    // An invalid layer is refused with its encode error as the source.
    let mut bad = EncodedLayer::encode(&random_layer("bad", 8, 2, 1));
    bad.descriptors[1].index_bits = 7;
    match a.load(&model(vec![layers[0].clone(), bad])) {
        Err(e @ DriverError::InvalidLayer { layer: 1, .. }) => {
            assert!(std::error::Error::source(&e).is_some())
        }
        other => panic!("{other:?}"),
    }
}

/// Transport errors surface as DriverError::Transport with the backend's error as source.
#[test]
fn transport_errors_are_wrapped() {
    struct Failing {
        inner: EmuTransport,
        fail_at: u32,
    }
    impl Transport for Failing {
        type Error = std::io::Error;
        fn read32(&mut self, addr: u32) -> Result<u32, std::io::Error> {
            if addr == self.fail_at {
                return Err(std::io::Error::other("link down"));
            }
            Ok(self.inner.read32(addr).unwrap_or_else(|e| match e {}))
        }
        fn write32(&mut self, addr: u32, value: u32) -> Result<(), std::io::Error> {
            self.inner.write32(addr, value).map_err(|e| match e {})
        }
    }
    let t = Failing { inner: EmuTransport::new(DeviceConfig::ECP5_25F), fail_at: regs::CAPS };
    let e = Accelerator::new(crew_driver::erase(t), OpenOptions::default()).unwrap_err();
    match &e {
        DriverError::Transport { addr, .. } => assert_eq!(*addr, regs::CAPS),
        other => panic!("{other:?}"),
    }
    let src = std::error::Error::source(&e).expect("source");
    assert!(src.to_string().contains("link down"), "{src}");
}
