//! RTL simulation tests of the bus shell: registers, windows, CRC-32, error codes, CYCLES.

use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles;
use crew_core::encode::EncodedLayer;
use crew_core::quant::QuantizedLayer;
use crew_core::regs::{self, ctrl, status, ErrorCode};
use crew_hw::sim::{load_inputs, load_weights, SimBus};
use crew_hw::{TestAccel, TestSim, TEST_CONFIG};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;

fn status_of(s: &mut TestSim) -> u32 {
    s.read(regs::STATUS)
}

fn wait_idle(s: &mut TestSim, limit: u64) {
    for _ in 0..limit {
        if status_of(s) & status::BUSY == 0 {
            return;
        }
    }
    panic!("still busy after {limit} polls");
}

fn code(st: u32) -> u32 {
    (st & status::CODE_MASK) >> status::CODE_LSB
}

#[test]
fn identity_registers_come_from_crew_core() {
    let mut s = TestSim::new(&TEST_CONFIG);
    assert_eq!(s.read(regs::ID), regs::ID_MAGIC);
    assert_eq!(s.read(regs::VERSION_REG), regs::VERSION);
    assert_eq!(s.read(regs::CAPS), regs::caps_value(&TEST_CONFIG));
    assert_eq!(s.read(regs::WMEM_WORDS), TEST_CONFIG.wmem_words);
    assert_eq!(s.read(regs::IBUF_DEPTH), TEST_CONFIG.ibuf_depth);
    assert_eq!(s.read(regs::OBUF_DEPTH), TEST_CONFIG.obuf_depth);
    assert_eq!(s.read(regs::STATUS), 0);
}

#[test]
fn read_write_registers_and_ctrl_levels() {
    let mut s = TestSim::new(&TEST_CONFIG);
    for (i, r) in [regs::N_OUT, regs::N_IN, regs::LAYER_BASE, regs::CRC_BASE, regs::CRC_LEN, regs::SCRATCH]
        .into_iter()
        .enumerate()
    {
        let v = 0x1234_5678u32.rotate_left(4 * i as u32) ^ r;
        s.write(r, v);
        assert_eq!(s.read(r), v, "register {r:#x}");
    }
    s.write(regs::CTRL, ctrl::IRQ_EN | ctrl::ACCUMULATE | 0xffff_0000);
    assert_eq!(s.read(regs::CTRL), ctrl::IRQ_EN | ctrl::ACCUMULATE, "only the level bits read back");
    // Read-only registers ignore writes.
    s.write(regs::ID, 0);
    assert_eq!(s.read(regs::ID), regs::ID_MAGIC);
    // Like the emulator: the byte offset in the word is ignored, and addresses between the
    // registers and the input window read 0 and ignore writes.
    assert_eq!(s.read(regs::ID + 3), regs::ID_MAGIC);
    s.write(regs::SCRATCH + 2, 0xA5A5_0001);
    assert_eq!(s.read(regs::SCRATCH), 0xA5A5_0001);
    for a in [regs::SCRATCH + 4, 0x7C, 0x80, 0x80 + regs::SCRATCH, regs::INPUT_WINDOW - 4] {
        s.write(a, 0xFFFF_FFFF);
        assert_eq!(s.read(a), 0, "unmapped {a:#x}");
    }
    assert_eq!(s.read(regs::SCRATCH), 0xA5A5_0001, "an unmapped write aliased SCRATCH");
}

#[test]
fn memory_windows_round_trip() {
    let mut s = TestSim::new(&TEST_CONFIG);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut expect = vec![];
    for _ in 0..40 {
        let (base, depth) = match rng.gen_range(0..3) {
            0 => (regs::WEIGHT_WINDOW, TEST_CONFIG.wmem_words),
            1 => (regs::INPUT_WINDOW, TEST_CONFIG.ibuf_depth / 4),
            _ => (regs::OUTPUT_WINDOW, TEST_CONFIG.obuf_depth),
        };
        let addr = base + 4 * rng.gen_range(0..depth);
        let v: u32 = rng.gen();
        s.write(addr, v);
        expect.retain(|&(a, _)| a != addr);
        expect.push((addr, v));
    }
    for (a, v) in expect {
        assert_eq!(s.read(a), v, "window word {a:#x}");
    }
}

#[test]
fn crc32_matches_zlib_and_range_is_checked() {
    let mut s = TestSim::new(&TEST_CONFIG);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let words: Vec<u32> = (0..9).map(|_| rng.gen()).collect();
    let base = TEST_CONFIG.wmem_words - words.len() as u32;
    for (k, &w) in words.iter().enumerate() {
        s.write(regs::WEIGHT_WINDOW + 4 * (base + k as u32), w);
    }
    for (b, n) in [(base, words.len()), (base + 3, 4), (base, 0)] {
        s.write(regs::CRC_BASE, b);
        s.write(regs::CRC_LEN, n as u32);
        s.write(regs::CTRL, ctrl::CRC_START);
        wait_idle(&mut s, 200);
        assert_eq!(status_of(&mut s), status::DONE);
        let k = (b - base) as usize;
        let bytes: Vec<u8> = words[k..k + n].iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(s.read(regs::CRC_VALUE), crc32fast::hash(&bytes), "range {b}+{n}");
    }
    s.write(regs::CRC_BASE, base);
    s.write(regs::CRC_LEN, words.len() as u32 + 1);
    s.write(regs::CTRL, ctrl::CRC_START);
    let st = status_of(&mut s);
    assert_eq!(st & (status::ERROR | status::BUSY), status::ERROR);
    assert_eq!(code(st), ErrorCode::CrcOutOfRange as u32);
}

/// START with these dimensions and base must fail with `err` within a few cycles, and leave the
/// counters at 0 (as the emulator does: docs/registers.md).
fn start_fails(n_out: u32, n_in: u32, base: u32, err: ErrorCode) {
    start_fails_on(&TEST_CONFIG, n_out, n_in, base, err);
}

fn start_fails_on(cfg: &DeviceConfig, n_out: u32, n_in: u32, base: u32, err: ErrorCode) {
    let mut s = TestSim::new(cfg);
    s.write(regs::N_OUT, n_out);
    s.write(regs::N_IN, n_in);
    s.write(regs::LAYER_BASE, base);
    s.write(regs::CTRL, ctrl::START);
    wait_idle(&mut s, 10);
    let st = status_of(&mut s);
    assert_eq!(st & (status::ERROR | status::DONE | status::BUSY), status::ERROR, "{n_out}x{n_in}@{base}");
    assert_eq!(code(st), err as u32, "{n_out}x{n_in}@{base}");
    assert_eq!(s.read(regs::CYCLES_LO), 0);
    assert_eq!(s.read(regs::CYCLES_HI), 0);
    assert_eq!(s.read(regs::MULT_COUNT), 0);
    assert_eq!(s.read(regs::ADD_COUNT), 0);
}

#[test]
fn start_checks_dimensions_and_layer_range() {
    let c = TEST_CONFIG;
    start_fails(0, 4, 0, ErrorCode::BadDimensions);
    start_fails(4, 0, 0, ErrorCode::BadDimensions);
    start_fails(c.obuf_depth + 1, 4, 0, ErrorCode::BadDimensions);
    start_fails(4, c.ibuf_depth + 1, 0, ErrorCode::BadDimensions);
    // Descriptors (2 words per input) run past the end of weight memory.
    start_fails(4, 8, c.wmem_words - 15, ErrorCode::LayerOutOfRange);
}

#[test]
fn dense_start_checks_the_layer_size() {
    let c = TEST_CONFIG.with_kind(CoreKind::Dense);
    // 9 outputs x 8 inputs: 8 columns of ceil(9 / 4) = 3 words, 24 in all.
    start_fails_on(&c, 9, 8, c.wmem_words - 23, ErrorCode::LayerOutOfRange);
    // Written right before START, the new dimensions are the ones checked (256 x 64 would need
    // 4096 words).
    let mut s = TestSim::new(&c);
    s.write(regs::N_OUT, c.obuf_depth);
    s.write(regs::N_IN, c.ibuf_depth);
    s.write(regs::LAYER_BASE, c.wmem_words - 24);
    s.write(regs::N_OUT, 9);
    s.write(regs::N_IN, 8);
    s.write(regs::CTRL, ctrl::START);
    wait_idle(&mut s, 200);
    assert_eq!(status_of(&mut s), status::DONE, "an image that ends at the last word fits");
    assert_eq!(u64::from(s.read(regs::CYCLES_LO)), cycles::dense_counts(&c, 9, 8).cycles);
}

#[test]
fn run_rejects_start_while_busy_and_soft_reset_aborts() {
    let mut s = TestSim::new(&TEST_CONFIG);
    // A layer long enough to poll while it runs: 256 outputs (64 cycles per column), 4 inputs.
    let (n_out, n_in) = (256usize, 4usize);
    let q: Vec<i8> = (0..n_out * n_in).map(|k| ((k * 37) % 19) as i8 - 9).collect();
    let layer = QuantizedLayer { name: "t".into(), n_out, n_in, q, scales: vec![1.0], bias: None };
    let enc = EncodedLayer::encode(&layer);
    load_weights(&mut s, 0, &enc.memory_image());
    load_inputs(&mut s, &[1, -2, 3, -4]);
    s.write(regs::N_OUT, n_out as u32);
    s.write(regs::N_IN, n_in as u32);
    s.write(regs::LAYER_BASE, 0);
    s.write(regs::CTRL, ctrl::START | ctrl::IRQ_EN);
    assert_eq!(status_of(&mut s) & status::BUSY, status::BUSY, "the datapath runs");
    s.write(regs::CTRL, ctrl::START | ctrl::IRQ_EN);
    let st = status_of(&mut s);
    assert_eq!(st & (status::BUSY | status::ERROR), status::BUSY | status::ERROR);
    assert_eq!(code(st), ErrorCode::StartWhileBusy as u32);
    s.write(regs::CTRL, ctrl::SOFT_RESET);
    assert_eq!(status_of(&mut s), 0);
    assert_eq!(s.read(regs::CYCLES_LO), 0);
    assert!(!s.irq());
    // After the abort, a full run completes with the modelled cycle count and raises IRQ.
    s.write(regs::CTRL, ctrl::START | ctrl::IRQ_EN);
    wait_idle(&mut s, 1000);
    assert_eq!(status_of(&mut s), status::DONE);
    assert!(s.irq());
    let uniques: Vec<u16> = enc.descriptors.iter().map(|d| d.unique_count).collect();
    let model = cycles::run_counts(&TEST_CONFIG, n_out, &uniques);
    assert_eq!(s.read(regs::CYCLES_LO) as u64, model.cycles);
    assert_eq!(s.read(regs::MULT_COUNT) as u64, model.mults);
}

/// The same checks through rust-hdl's threaded `Simulation`; a failure writes a VCD.
#[test]
fn testbench_scratch_and_id_with_vcd() {
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<TestAccel>| x.clock.next = !x.clock.val());
    sim.add_testbench(move |mut sim: Sim<TestAccel>| {
        let mut x = sim.init()?;
        for (addr, data, we) in [(regs::SCRATCH, 0xdead_beefu32, true), (regs::SCRATCH, 0, false), (regs::ID, 0, false)]
        {
            wait_clock_true!(sim, clock, x);
            x.addr.next = addr.to_bits();
            x.wdata.next = data.to_bits();
            x.we.next = we;
            x.valid.next = true;
            x = sim.watch(|x| x.ready.val(), x)?;
            if !we {
                let expect = if addr == regs::ID { regs::ID_MAGIC } else { 0xdead_beef };
                sim_assert_eq!(sim, x.rdata.val(), expect.to_bits::<32>(), x);
            }
            wait_clock_cycle!(sim, clock, x);
            x.valid.next = false;
            wait_clock_cycle!(sim, clock, x);
        }
        sim.done(x)
    });
    let mut uut = TestAccel::new(&TEST_CONFIG);
    uut.connect_all();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/vcd");
    std::fs::create_dir_all(dir).unwrap();
    let path = format!("{dir}/testbench_scratch_and_id.vcd");
    let res = sim.run_to_file(Box::new(uut), 10_000, &path);
    if res.is_ok() {
        let _ = std::fs::remove_file(&path);
    }
    res.unwrap();
}
