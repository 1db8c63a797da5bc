//! The host link end to end in RTL simulation: the ULX3S board top (PLL model, reset, bus
//! arbiter with its STATUS poller, the UART bridge) around a real `top::Accel` of the small test
//! configuration, driven only through its pins. The testbench serialises request frames built by
//! `crew_core::uart` (the driver's encoder) into `ftdi_txd` and decodes `ftdi_rxd` with
//! `crew_core::uart::decode_response`: identify, load a CREW-encoded random layer and its inputs,
//! START, poll STATUS, read the accumulators, compare bit-exact with the CPU reference. A failing
//! run leaves its VCD trace in `target/vcd/`.

use crew_core::encode::{pack_i8, EncodedLayer};
use crew_core::quant::QuantizedLayer;
use crew_core::reference::{gemv_crew, gemv_i8};
use crew_core::regs::{self, ctrl, status};
use crew_core::uart::{decode_response, encode_request, Decoded, Request, Status};
use crew_hw::board::{BoardConfig, PllParams, OSC_MHZ};
use crew_hw::sim::{start_and_wait, SimBus, UartRxModel, VcdTrace};
use crew_hw::{TestBoard, TEST_CONFIG};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use std::collections::VecDeque;

const SETTLE: usize = 100;
/// Clocks per UART bit: the smallest divisor the bridge takes, for a short simulation.
const CPB: u32 = 4;

/// The board, stepped one 25 MHz period at a time (the simulated PLL passes the clock through),
/// with a UART line model on each of its serial pins.
struct Link {
    uut: Box<TestBoard>,
    trace: VcdTrace,
    /// `ftdi_txd` levels still to drive, one per clock.
    rx: VecDeque<bool>,
    /// The `ftdi_rxd` decoder: (clocks into the byte, bits taken, shift).
    /// The host's receiver on `ftdi_rxd`.
    line: UartRxModel,
    cycles: u64,
    tag: u8,
}

impl Link {
    fn new(name: &str) -> Link {
        let board = BoardConfig { pll: PllParams::search(OSC_MHZ, 75.0), clocks_per_bit: CPB, reset_cycles: 16 };
        let mut uut = Box::new(TestBoard::new(&TEST_CONFIG, &board));
        uut.btn_pwr_n.next = true;
        uut.ftdi_txd.next = true;
        uut.connect_all();
        assert!(simulate(&mut *uut, SETTLE), "the board did not settle");
        let trace = VcdTrace::new(name, &*uut);
        let mut l = Link { uut, trace, rx: VecDeque::new(), line: UartRxModel::new(CPB), cycles: 0, tag: 0 };
        // Past the reset and the board's SOFT_RESET write.
        l.idle(200);
        l
    }

    fn step(&mut self) {
        self.uut.ftdi_txd.next = self.rx.pop_front().unwrap_or(true);
        for clk in [false, true] {
            self.uut.clk_25mhz.next = Clock { clk };
            assert!(simulate(&mut *self.uut, SETTLE), "the board did not settle at cycle {}", self.cycles);
            self.trace.record(&*self.uut);
        }
        self.cycles += 1;
        let tx = self.uut.ftdi_rxd.val();
        self.line.sample(tx, self.cycles);
    }

    /// Queue bytes on `ftdi_txd`: 8N1, LSB first, one idle bit after each (like a USB UART).
    fn send(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let bits = std::iter::once(false).chain((0..8).map(|k| b >> k & 1 == 1)).chain([true, true]);
            for bit in bits {
                self.rx.extend(std::iter::repeat_n(bit, CPB as usize));
            }
        }
    }

    /// Send `req` under `tag` and return the words of its OK response (empty for a write).
    fn exchange(&mut self, req: &Request, tag: u8) -> Vec<u32> {
        self.line.received.clear();
        self.send(&encode_request(req, tag).expect("encodable request"));
        let want_len = crew_core::uart::expected_response(req, tag, vec![0; req.response_words()]).encoded_len();
        // Line time of both frames with slack; the bus may be held by the board's poller.
        let limit = self.rx.len() as u64 + 12 * CPB as u64 * (want_len as u64 + 4) + 500;
        let mut n = 0;
        while self.line.received.len() < want_len {
            assert!(n < limit, "no complete response to {req:?} after {n} cycles: {:02x?}", self.line.received);
            self.step();
            n += 1;
        }
        match decode_response(&self.line.received) {
            Decoded::Frame { frame, skipped: 0, consumed } if consumed == self.line.received.len() => {
                assert_eq!(frame.status, Status::Ok, "status of {req:?}");
                assert_eq!((frame.cmd, frame.tag), (req.cmd(), tag), "echo of {req:?}");
                assert_eq!(frame.data.len(), req.response_words());
                frame.data
            }
            d => panic!("bad response to {req:?}: {d:?} from {:02x?}", self.line.received),
        }
    }

    /// A transaction under the next tag.
    fn transact(&mut self, req: &Request) -> Vec<u32> {
        self.tag = self.tag.wrapping_add(1);
        self.exchange(req, self.tag)
    }

    fn write_burst(&mut self, addr: u32, data: &[u32]) {
        self.transact(&Request::WriteBurst { addr, data: data.to_vec() });
    }

    fn read_burst(&mut self, addr: u32, count: usize) -> Vec<u32> {
        self.transact(&Request::ReadBurst { addr, count: count as u16 })
    }
}

impl SimBus for Link {
    fn write(&mut self, addr: u32, data: u32) {
        self.transact(&Request::Write { addr, value: data });
    }
    fn read(&mut self, addr: u32) -> u32 {
        self.transact(&Request::Read { addr })[0]
    }
    fn cycles(&self) -> u64 {
        self.cycles
    }
    fn idle(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }
}

fn random_layer(rng: &mut ChaCha8Rng, n_out: usize, n_in: usize) -> QuantizedLayer {
    let q = (0..n_out * n_in).map(|_| rng.gen_range(-128..=127i16) as i8).collect();
    QuantizedLayer { name: "uart-e2e".into(), n_out, n_in, q, scales: vec![1.0], bias: None }
}

/// Identify, load, run and read back a random 12x10 layer through the board's UART pins; then
/// run it again accumulating onto preloaded sums, with the START frame sent twice under one tag
/// (a host's retry after a lost acknowledgement): the products are added once.
#[test]
fn layer_over_uart_through_the_board_is_bit_exact() {
    let mut link = Link::new("uart_board_layer");
    let t0 = std::time::Instant::now();

    // Identify: ID, VERSION, CAPS and the three sizes in one burst.
    let id = link.read_burst(regs::ID, 6);
    assert_eq!(id[0], regs::ID_MAGIC);
    assert_eq!(id[1], regs::VERSION);
    assert_eq!(regs::config_from_regs(id[2], id[3], id[4], id[5]), Some(TEST_CONFIG), "CAPS {:#x}", id[2]);

    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (n_out, n_in) = (12, 10);
    let layer = random_layer(&mut rng, n_out, n_in);
    let enc = EncodedLayer::encode(&layer);
    enc.validate().expect("valid encoding");
    let image = enc.memory_image();
    let x: Vec<i8> = (0..n_in).map(|_| rng.gen_range(-128..=127i16) as i8).collect();
    let expect = gemv_crew(&enc, &x);
    assert_eq!(expect, gemv_i8(&layer.q, n_out, n_in, &x));

    link.write_burst(regs::WEIGHT_WINDOW, &image);
    link.write_burst(regs::INPUT_WINDOW, &pack_i8(&x));
    assert_eq!(link.read_burst(regs::WEIGHT_WINDOW, image.len()), image, "weight memory reads back");
    let (cycles, _, _) = start_and_wait(&mut link, n_out, n_in, 0, false, 200).expect("the run ends with DONE");
    assert!(cycles > 0);
    let acc: Vec<i32> = link.read_burst(regs::OUTPUT_WINDOW, n_out).into_iter().map(|w| w as i32).collect();
    assert_eq!(acc, expect, "accumulators over the UART link");

    // Again, accumulating onto preloaded sums; START is sent, then retried under the same tag.
    let pre: Vec<i32> = (0..n_out).map(|_| rng.gen_range(-1_000_000..1_000_000)).collect();
    link.write_burst(regs::OUTPUT_WINDOW, &pre.iter().map(|&v| v as u32).collect::<Vec<_>>());
    let go = Request::Write { addr: regs::CTRL, value: ctrl::START | ctrl::ACCUMULATE };
    link.tag = link.tag.wrapping_add(1);
    let tag = link.tag;
    link.exchange(&go, tag);
    link.exchange(&go, tag);
    let mut polls = 0;
    let st = loop {
        let st = link.read(regs::STATUS);
        if st & status::BUSY == 0 {
            break st;
        }
        polls += 1;
        assert!(polls < 200, "still BUSY");
    };
    assert_eq!(st & (status::DONE | status::ERROR), status::DONE, "STATUS {st:#x}: one START, no StartWhileBusy");
    let acc: Vec<i32> = link.read_burst(regs::OUTPUT_WINDOW, n_out).into_iter().map(|w| w as i32).collect();
    let once: Vec<i32> = pre.iter().zip(&expect).map(|(p, e)| p.wrapping_add(*e)).collect();
    assert_eq!(acc, once, "preload + products, added once");
    eprintln!("{} board cycles in {:.1?}", link.cycles, t0.elapsed());
}
