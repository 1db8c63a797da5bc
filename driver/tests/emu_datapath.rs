//! The emulated device at the register level against the CPU reference, for both core kinds.

mod common;

use common::{random_input, random_layer};
use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles::run_counts;
use crew_core::encode::{dense_image, EncodedLayer};
use crew_core::quant::QuantizedLayer;
use crew_core::reference::{gemv_crew, gemv_i8};
use crew_core::regs::{self, ctrl, status, ErrorCode};
use crew_driver::emu::EmuDevice;
use proptest::prelude::*;

fn cfg(kind: CoreKind, lanes: u32, groups: u32, mults: u32) -> DeviceConfig {
    DeviceConfig { kind, lanes, groups, mults, wmem_words: 1 << 16, ibuf_depth: 512, obuf_depth: 512 }
}

/// Write `image` at `base`, the input, the dimensions; START with `extra` CTRL bits; return STATUS.
fn run(dev: &mut EmuDevice, image: &[u32], base: u32, n_out: usize, input: &[i8], extra: u32) -> u32 {
    dev.write_burst(regs::WEIGHT_WINDOW + 4 * base, image);
    dev.write_burst(regs::INPUT_WINDOW, &crew_core::encode::pack_i8(input));
    dev.write(regs::N_OUT, n_out as u32);
    dev.write(regs::N_IN, input.len() as u32);
    dev.write(regs::LAYER_BASE, base);
    dev.write(regs::CTRL, ctrl::START | extra);
    dev.read(regs::STATUS)
}

fn outputs(dev: &mut EmuDevice, n: usize) -> Vec<i32> {
    let mut w = vec![0u32; n];
    dev.read_burst(regs::OUTPUT_WINDOW, &mut w);
    w.into_iter().map(|v| v as i32).collect()
}

fn counters(dev: &mut EmuDevice) -> (u64, u64, u64) {
    let cycles = (dev.read(regs::CYCLES_HI) as u64) << 32 | dev.read(regs::CYCLES_LO) as u64;
    (cycles, dev.read(regs::MULT_COUNT) as u64, dev.read(regs::ADD_COUNT) as u64)
}

fn image_for(kind: CoreKind, l: &QuantizedLayer, e: &EncodedLayer) -> Vec<u32> {
    match kind {
        CoreKind::Crew => e.memory_image(),
        CoreKind::Dense => dense_image(&l.q, l.n_out, l.n_in),
    }
}

/// One layer on one configuration: outputs equal both references, counters equal the cycle
/// model, ACCUMULATE adds a second run onto the first, and a preloaded OUTPUT window is kept.
fn check(c: DeviceConfig, l: &QuantizedLayer, seed: u64, base: u32) -> Result<(), TestCaseError> {
    let e = EncodedLayer::encode(l);
    let input = random_input(l.n_in, seed);
    let want = gemv_i8(&l.q, l.n_out, l.n_in, &input);
    prop_assert_eq!(&gemv_crew(&e, &input), &want);
    let mut dev = EmuDevice::new(c);
    let image = image_for(c.kind, l, &e);
    prop_assert_eq!(run(&mut dev, &image, base, l.n_out, &input, 0), status::DONE);
    prop_assert_eq!(&outputs(&mut dev, l.n_out), &want);
    let uniq: Vec<u16> = e.descriptors.iter().map(|d| d.unique_count).collect();
    let rc = run_counts(&c, l.n_out, &uniq);
    prop_assert_eq!(counters(&mut dev), (rc.cycles, rc.mults, rc.adds));
    // Back to back with ACCUMULATE: twice the sums.
    dev.write(regs::CTRL, ctrl::START | ctrl::ACCUMULATE);
    prop_assert_eq!(dev.read(regs::STATUS), status::DONE);
    prop_assert_eq!(dev.read(regs::CTRL), ctrl::ACCUMULATE, "levels read back, pulses do not");
    let twice: Vec<i32> = want.iter().map(|v| v.wrapping_mul(2)).collect();
    prop_assert_eq!(&outputs(&mut dev, l.n_out), &twice);
    // Preloaded partial sums are added onto.
    let pre: Vec<u32> = (0..l.n_out as u32).map(|j| j.wrapping_mul(0x1234_5677)).collect();
    dev.write_burst(regs::OUTPUT_WINDOW, &pre);
    dev.write(regs::CTRL, ctrl::START | ctrl::ACCUMULATE);
    let got = outputs(&mut dev, l.n_out);
    for j in 0..l.n_out {
        prop_assert_eq!(got[j], (pre[j] as i32).wrapping_add(want[j]));
    }
    // Without ACCUMULATE the sums replace them again.
    dev.write(regs::CTRL, ctrl::START);
    prop_assert_eq!(&outputs(&mut dev, l.n_out), &want);
    Ok(())
}

fn config_strategy() -> impl Strategy<Value = DeviceConfig> {
    (prop_oneof![Just(CoreKind::Crew), Just(CoreKind::Dense)], 1u32..20, 1u32..6, 1u32..10)
        .prop_map(|(k, lanes, groups, mults)| cfg(k, lanes, groups, mults))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// Random shapes (n_in = 1, n_out below or not a multiple of the lanes), column kinds
    /// (|U_i| = 1, all zero, up to 255 unique), configurations and layer bases.
    #[test]
    fn emu_equals_reference(c in config_strategy(), n_out in 1usize..90, n_in in 1usize..40, seed in any::<u64>(), base in 0u32..300) {
        let l = random_layer("p", n_out, n_in, seed);
        check(c, &l, seed ^ 0x5a5a, base)?;
    }

    /// Every register and weight-memory content gives DONE or ERROR plus a known code; never a
    /// panic, never BUSY.
    #[test]
    fn arbitrary_contents_never_panic(
        kind in prop_oneof![Just(CoreKind::Crew), Just(CoreKind::Dense)],
        mem in proptest::collection::vec(any::<u32>(), 0..64),
        n_out in prop_oneof![Just(0u32), 1u32..40, any::<u32>()],
        n_in in prop_oneof![Just(0u32), 1u32..20, any::<u32>()],
        base in prop_oneof![0u32..64, any::<u32>()],
        crc in (any::<u32>(), any::<u32>()),
        input in any::<u32>(),
    ) {
        let c = DeviceConfig { kind, lanes: 4, groups: 2, mults: 2, wmem_words: 64, ibuf_depth: 32, obuf_depth: 48 };
        let mut dev = EmuDevice::new(c);
        dev.write_burst(regs::WEIGHT_WINDOW, &mem);
        for k in 0..8 {
            dev.write(regs::INPUT_WINDOW + 4 * k, input.rotate_left(k));
        }
        dev.write(regs::N_OUT, n_out);
        dev.write(regs::N_IN, n_in);
        dev.write(regs::LAYER_BASE, base);
        dev.write(regs::CTRL, ctrl::START);
        let st = dev.read(regs::STATUS);
        prop_assert_eq!(st & status::BUSY, 0);
        prop_assert!(st == status::DONE || (st & status::ERROR != 0 && ErrorCode::from_code((st >> 8) as u8).is_some()), "{st:#x}");
        dev.write(regs::CRC_BASE, crc.0);
        dev.write(regs::CRC_LEN, crc.1);
        dev.write(regs::CTRL, ctrl::CRC_START);
        let st = dev.read(regs::STATUS);
        prop_assert!(st == status::DONE || st == status::ERROR | (ErrorCode::CrcOutOfRange as u32) << 8, "{st:#x}");
        // Every address reads without a panic.
        for a in [0u32, 0x4c, 0xfffc, 0x1_fffc, 0xf_fffc, u32::MAX, u32::MAX - 3, 0x8000_0000] {
            dev.read(a);
            dev.write(a, 1);
        }
    }
}

/// Columns with 255 unique values (the whole int8 range a quantizer produces) and with 256
/// (-128 included, 8-bit indices, a full product table).
#[test]
fn full_tables() {
    for (n_out, lo) in [(255usize, -127i32), (300, -127), (256, -128), (513, -128)] {
        let n_in = 3;
        let mut q = vec![0i8; n_out * n_in];
        for j in 0..n_out {
            q[j * n_in] = (lo + (j as i32 % (128 - lo))) as i8;
            q[j * n_in + 1] = (127 - (j as i32 * 7 % (128 - lo))) as i8;
            q[j * n_in + 2] = 5;
        }
        let l = QuantizedLayer { name: "full".into(), n_out, n_in, q, scales: vec![1.0], bias: None };
        let e = EncodedLayer::encode(&l);
        assert_eq!(e.descriptors[0].unique_count as i32, 128 - lo);
        for kind in [CoreKind::Crew, CoreKind::Dense] {
            let c = DeviceConfig { obuf_depth: 1024, ..cfg(kind, 16, 4, 8) };
            check(c, &l, 9, 7).unwrap();
        }
    }
}

/// Wrapping i32 accumulation: sums past i32::MAX wrap like the hardware's adders.
#[test]
fn accumulators_wrap() {
    let l = QuantizedLayer { name: "w".into(), n_out: 2, n_in: 1, q: vec![127, -127], scales: vec![1.0], bias: None };
    let e = EncodedLayer::encode(&l);
    let mut dev = EmuDevice::new(cfg(CoreKind::Crew, 4, 1, 1));
    dev.write_burst(regs::OUTPUT_WINDOW, &[i32::MAX as u32, i32::MIN as u32]);
    assert_eq!(run(&mut dev, &e.memory_image(), 0, 2, &[127], ctrl::ACCUMULATE), status::DONE);
    assert_eq!(outputs(&mut dev, 2), vec![i32::MAX.wrapping_add(127 * 127), i32::MIN.wrapping_sub(127 * 127)]);
}

#[test]
fn identity_and_scratch() {
    let c = DeviceConfig::ECP5_25F;
    let mut dev = EmuDevice::new(c);
    assert_eq!(dev.read(regs::ID), regs::ID_MAGIC);
    assert_eq!(dev.read(regs::VERSION_REG), regs::VERSION);
    assert_eq!(
        regs::config_from_regs(
            dev.read(regs::CAPS),
            dev.read(regs::WMEM_WORDS),
            dev.read(regs::IBUF_DEPTH),
            dev.read(regs::OBUF_DEPTH)
        ),
        Some(c)
    );
    dev.write(regs::ID, 0);
    dev.write(regs::STATUS, 0xff);
    assert_eq!(dev.read(regs::ID), regs::ID_MAGIC);
    assert_eq!(dev.read(regs::STATUS), 0);
    dev.write(regs::SCRATCH, 0xa5a5_0f0f);
    assert_eq!(dev.read(regs::SCRATCH), 0xa5a5_0f0f);
    assert_eq!(dev.read(regs::SCRATCH + 2), 0xa5a5_0f0f, "low address bits are ignored");
    assert_eq!(dev.config(), c);
    dev.write(regs::CTRL, ctrl::IRQ_EN | ctrl::SOFT_RESET);
    assert_eq!(dev.read(regs::CTRL), ctrl::IRQ_EN);
    assert!(!dev.irq());
}

/// One malformed image per error code, with the code STATUS must show.
#[test]
fn malformed_images_give_their_codes() {
    let q: Vec<i8> = (0..40).map(|k| (k * 7 % 13) as i8 - 6).collect();
    let l = QuantizedLayer { name: "m".into(), n_out: 10, n_in: 4, q, scales: vec![1.0], bias: None };
    let e = EncodedLayer::encode(&l);
    assert!(e.descriptors.iter().all(|d| d.index_bits > 0));
    let good = e.memory_image();
    let c = DeviceConfig { wmem_words: 256, ibuf_depth: 16, obuf_depth: 16, ..cfg(CoreKind::Crew, 4, 2, 2) };
    let input = random_input(4, 1);
    let err = |code: ErrorCode| status::ERROR | (code as u32) << status::CODE_LSB;
    let mut cases: Vec<(&str, Vec<u32>, u32, usize, ErrorCode)> = vec![
        ("n_out above OBUF_DEPTH", good.clone(), 0, 17, ErrorCode::BadDimensions),
        ("n_out zero", good.clone(), 0, 0, ErrorCode::BadDimensions),
        ("descriptors past the end", good.clone(), 250, 10, ErrorCode::LayerOutOfRange),
    ];
    let mut bad = good.clone();
    bad[2] = (bad[2] & 0xff00_0000) | 0x00ff_ffff; // column 1's table offset far outside
    cases.push(("table outside memory", bad, 0, 10, ErrorCode::DescriptorOutOfRange));
    let mut bad = good.clone();
    bad[3] = (bad[3] & 0xff00_0000) | 256; // column 1's run starts at the end of memory
    cases.push(("run outside memory", bad, 0, 10, ErrorCode::DescriptorOutOfRange));
    let mut bad = good.clone();
    bad[1] = (bad[1] & 0x00ff_ffff) | 9 << 24; // 9-bit indices
    cases.push(("width does not match", bad, 0, 10, ErrorCode::BadWidth));
    // A 3-value column with a 2-bit index of 3.
    let l3 = QuantizedLayer { name: "i".into(), n_out: 4, n_in: 1, q: vec![1, 2, 3, 1], scales: vec![1.0], bias: None };
    let mut e3 = EncodedLayer::encode(&l3);
    e3.runs[0] |= 0b11 << 6;
    cases.push(("index not below count", e3.memory_image(), 0, 4, ErrorCode::IndexOutOfRange));
    for (what, image, base, n_out, code) in cases {
        let mut dev = EmuDevice::new(c);
        let n_in = if code == ErrorCode::IndexOutOfRange { 1 } else { 4 };
        let before: Vec<u32> = (0..16).map(|k| k * 3).collect();
        dev.write_burst(regs::OUTPUT_WINDOW, &before);
        let image = &image[..image.len().min(256 - base as usize)];
        let st = run(&mut dev, image, base, n_out, &input[..n_in], 0);
        assert_eq!(st, err(code), "{what}");
        assert_eq!(counters(&mut dev), (0, 0, 0), "{what}: counters are zero after an error");
        assert_eq!(outputs(&mut dev, 16), before.iter().map(|&v| v as i32).collect::<Vec<_>>(), "{what}");
        // STATUS clears at SOFT_RESET.
        dev.write(regs::CTRL, ctrl::SOFT_RESET);
        assert_eq!(dev.read(regs::STATUS), 0);
    }
    // Dense: the image must lie in memory.
    let mut dev = EmuDevice::new(DeviceConfig { kind: CoreKind::Dense, ..c });
    dev.write(regs::N_OUT, 16);
    dev.write(regs::N_IN, 16);
    dev.write(regs::LAYER_BASE, 200);
    dev.write(regs::CTRL, ctrl::START);
    assert_eq!(dev.read(regs::STATUS), err(ErrorCode::LayerOutOfRange));
}

#[test]
fn crc_register() {
    let mut dev = EmuDevice::new(DeviceConfig { wmem_words: 100, ..DeviceConfig::ECP5_25F });
    let words: Vec<u32> = (0..100u32).map(|k| k.wrapping_mul(0x0101_0103)).collect();
    dev.write_burst(regs::WEIGHT_WINDOW, &words);
    let bytes: Vec<u8> = words[10..60].iter().flat_map(|w| w.to_le_bytes()).collect();
    dev.write(regs::CRC_BASE, 10);
    dev.write(regs::CRC_LEN, 50);
    dev.write(regs::CTRL, ctrl::CRC_START);
    assert_eq!(dev.read(regs::STATUS), status::DONE);
    assert_eq!(dev.read(regs::CRC_VALUE), crc32fast::hash(&bytes));
    dev.write(regs::CRC_LEN, 91);
    dev.write(regs::CTRL, ctrl::CRC_START);
    assert_eq!(dev.read(regs::STATUS), status::ERROR | (ErrorCode::CrcOutOfRange as u32) << 8);
    dev.write(regs::CRC_BASE, u32::MAX);
    dev.write(regs::CRC_LEN, u32::MAX);
    dev.write(regs::CTRL, ctrl::CRC_START);
    assert_eq!(dev.read(regs::STATUS) >> 8, ErrorCode::CrcOutOfRange as u32);
    dev.write(regs::CRC_BASE, 100);
    dev.write(regs::CRC_LEN, 0);
    dev.write(regs::CTRL, ctrl::CRC_START);
    assert_eq!(dev.read(regs::STATUS), status::DONE);
    assert_eq!(dev.read(regs::CRC_VALUE), 0);
}

#[test]
fn faults_at_register_level() {
    use crew_driver::Fault;
    let mut dev = EmuDevice::new(DeviceConfig { wmem_words: 16, ..DeviceConfig::ECP5_25F });
    // Stuck busy: START leaves BUSY; a second START reports StartWhileBusy; SOFT_RESET clears.
    dev.inject(Fault::StuckBusy);
    dev.write(regs::CTRL, ctrl::START);
    assert_eq!(dev.read(regs::STATUS), status::BUSY);
    dev.write(regs::CTRL, ctrl::CRC_START);
    assert_eq!(dev.read(regs::STATUS), status::BUSY | status::ERROR | (ErrorCode::StartWhileBusy as u32) << 8);
    dev.write(regs::CTRL, ctrl::SOFT_RESET);
    assert_eq!(dev.read(regs::STATUS), 0);
    dev.clear_faults();
    // Error status: one shot.
    dev.inject(Fault::ErrorStatus(ErrorCode::BadWidth));
    dev.write(regs::CTRL, ctrl::CRC_START);
    assert_eq!(dev.read(regs::STATUS), status::ERROR | (ErrorCode::BadWidth as u32) << 8);
    dev.write(regs::CTRL, ctrl::CRC_START);
    assert_eq!(dev.read(regs::STATUS), status::DONE);
    // A stuck inverted bit: every write to the word comes back with the bit flipped.
    dev.inject(Fault::WeightBitFlip { word: 3, bit: 31 });
    dev.inject(Fault::WeightBitFlip { word: 99, bit: 0 });
    dev.inject(Fault::WeightBitFlip { word: 0, bit: 200 });
    assert_eq!(dev.read(regs::WEIGHT_WINDOW + 12), 0x8000_0000);
    dev.write(regs::WEIGHT_WINDOW + 12, 5);
    assert_eq!(dev.read(regs::WEIGHT_WINDOW + 12), 0x8000_0005);
    dev.write_burst(regs::WEIGHT_WINDOW, &[1, 2, 3, 4, 5]);
    assert_eq!(dev.weights()[..5], [1, 2, 3, 0x8000_0004, 5]);
    dev.clear_faults();
    dev.write(regs::WEIGHT_WINDOW + 12, 5);
    assert_eq!(dev.read(regs::WEIGHT_WINDOW + 12), 5);
}

/// The numbers of docs/cycle-model.md.
#[test]
fn worked_examples_of_the_docs() {
    let c = DeviceConfig { lanes: 4, groups: 2, mults: 2, ..DeviceConfig::ECP5_25F };
    let r = run_counts(&c, 10, &[2, 5, 4]);
    assert_eq!((r.cycles, r.mults, r.adds), (38, 11, 30));
    assert_eq!(run_counts(&c.with_kind(CoreKind::Dense), 10, &[2, 5, 4]).cycles, 18);
    let c = DeviceConfig::ECP5_85F;
    assert_eq!(run_counts(&c, 384, &[54; 384]).cycles, 9244);
    assert_eq!(run_counts(&c.with_kind(CoreKind::Dense), 384, &[54; 384]).cycles, 9228);
    // The emulator reports exactly these.
    let mut q = vec![0i8; 10 * 3];
    for j in 0..10 {
        q[j * 3] = [3, -3][j % 2];
        q[j * 3 + 1] = (j % 5) as i8;
        q[j * 3 + 2] = (j % 4) as i8 - 9;
    }
    let l = QuantizedLayer { name: "doc".into(), n_out: 10, n_in: 3, q, scales: vec![1.0], bias: None };
    let e = EncodedLayer::encode(&l);
    let mut dev = EmuDevice::new(DeviceConfig { lanes: 4, groups: 2, mults: 2, ..DeviceConfig::ECP5_25F });
    assert_eq!(run(&mut dev, &e.memory_image(), 0, 10, &[1, 2, 3], 0), status::DONE);
    assert_eq!(counters(&mut dev), (38, 11, 30));
}

/// The edge shapes, on every kind and a few lane counts, deterministically: one output, one
/// input, fewer outputs than lanes, outputs one past a multiple of the lanes.
#[test]
fn edge_shapes() {
    for kind in [CoreKind::Crew, CoreKind::Dense] {
        for (lanes, groups) in [(1, 1), (8, 2), (16, 4), (7, 3)] {
            let c = cfg(kind, lanes, groups, 3);
            let l = lanes as usize;
            for (n_out, n_in) in [(1, 1), (1, 9), (l.max(2) - 1, 1), (l + 1, 5), (3 * l + 1, 2), (l, 1), (257, 1)] {
                for seed in 0..4 {
                    let layer = random_layer("e", n_out, n_in, seed);
                    check(c, &layer, seed, seed as u32 * 5).unwrap();
                }
            }
        }
    }
}
