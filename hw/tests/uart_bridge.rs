//! RTL simulation of the UART bridge against the frames of `crew_core::uart`: request bytes go
//! into the `rx` pin as 8N1 bit streams, the `tx` pin is decoded back into bytes and compared with
//! the response `crew_core::uart` expects. The bus side is a register model with the handshake
//! timing of `bus::Shell` (`ready` one cycle after `valid`, read data with it).

use crew_core::regs;
use crew_core::uart::{
    cmd, crc16_update, encode_request, encode_response, expected_response, Request, Response, Status, REQ_SYNC,
};
use crew_hw::sim::UartRxModel;
use crew_hw::uart_bridge::{Crc16Byte, UartBridge};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use std::collections::{HashMap, VecDeque};

const SETTLE: usize = 100;

/// The bridge, a bus-slave model and UART line models, stepped one clock at a time.
struct Bench {
    uut: Box<UartBridge>,
    div: u32,
    /// `rx` levels still to drive, one per clock.
    rx: VecDeque<bool>,
    mem: HashMap<u32, u32>,
    ack: bool,
    rdata: u32,
    accesses: u64,
    // The `tx` decoder.
    /// The host's receiver on `tx`.
    line: UartRxModel,
    cycles: u64,
    /// Tag of the last request [`Bench::check`] sent.
    tag: u8,
    /// Bus writes per address.
    writes: HashMap<u32, u32>,
}

impl Bench {
    fn new(div: u32) -> Bench {
        let mut uut = Box::new(UartBridge::new(div));
        uut.connect_all();
        let mut b = Bench {
            uut,
            div,
            rx: VecDeque::new(),
            mem: HashMap::new(),
            ack: false,
            rdata: 0,
            accesses: 0,
            line: UartRxModel::new(div),
            cycles: 0,
            tag: 0,
            writes: HashMap::new(),
        };
        b.uut.rx.next = true;
        b.settle();
        // Let the receiver's synchroniser see an idle line.
        b.run(4 * div as u64);
        b
    }

    fn settle(&mut self) {
        assert!(simulate(&mut *self.uut, SETTLE), "the circuit did not settle");
    }

    /// Queue bytes on `rx` (8N1, LSB first), with `gap` idle bits after each.
    fn send(&mut self, bytes: &[u8], gap: u32) {
        for &b in bytes {
            let bits = std::iter::once(false).chain((0..8).map(|k| b >> k & 1 == 1)).chain(std::iter::once(true));
            for bit in bits.chain((0..gap).map(|_| true)) {
                for _ in 0..self.div {
                    self.rx.push_back(bit);
                }
            }
        }
    }

    fn step(&mut self) {
        self.uut.rx.next = self.rx.pop_front().unwrap_or(true);
        self.uut.ready.next = self.ack;
        self.uut.rdata.next = self.rdata.to_bits();
        self.settle();
        let valid = self.uut.valid.val();
        let we = self.uut.we.val();
        let addr = self.uut.addr.val().to_u64() as u32;
        let wdata = self.uut.wdata.val().to_u64() as u32;
        let tx = self.uut.tx.val();
        self.uut.clock.next = Clock { clk: false };
        self.settle();
        self.uut.clock.next = Clock { clk: true };
        self.settle();
        self.cycles += 1;
        // Bus slave: an access starts when valid meets !ack, and is acknowledged next cycle.
        let go = valid && !self.ack;
        if go {
            self.accesses += 1;
            assert_eq!(addr % 4, 0, "unaligned bus access {addr:#x}");
            if we {
                self.mem.insert(addr, wdata);
                *self.writes.entry(addr).or_default() += 1;
            } else {
                self.rdata = self.read_model(addr);
            }
        }
        self.ack = go;
        self.line.sample(tx, self.cycles);
    }

    fn read_model(&self, addr: u32) -> u32 {
        match addr {
            regs::ID => regs::ID_MAGIC,
            _ => self.mem.get(&addr).copied().unwrap_or(0),
        }
    }

    fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }

    /// Drive `bytes` and run until `expect` response bytes arrived (and the line is idle again).
    fn exchange(&mut self, bytes: &[u8], expect: usize) -> Vec<u8> {
        self.line.received.clear();
        self.send(bytes, 0);
        let bit = self.div as u64;
        // Line time of both frames, plus bus time (a few cycles per buffered word).
        let limit = (self.rx.len() as u64) + (expect as u64 + 4) * 12 * bit + 4 * bytes.len() as u64 + 200;
        let mut n = 0;
        while (self.line.received.len() < expect || !self.rx.is_empty()) && n < limit {
            self.step();
            n += 1;
        }
        // Nothing more may follow.
        self.run(24 * bit);
        std::mem::take(&mut self.line.received)
    }

    /// Send a request under `tag`; the response must be exactly the expected one.
    fn check_tagged(&mut self, req: &Request, tag: u8, resp: &Response) {
        let want = encode_response(resp).unwrap();
        let got = self.exchange(&encode_request(req, tag).unwrap(), want.len());
        assert_eq!(got, want, "response to {req:?} tag {tag}");
    }

    /// Send a request under the next tag; it must be answered OK (with `read` for a read).
    fn check(&mut self, req: &Request, read: Vec<u32>) {
        self.tag = self.tag.wrapping_add(1);
        let tag = self.tag;
        self.check_tagged(req, tag, &expected_response(req, tag, read));
    }
}

#[test]
fn crc_block_matches_crew_core() {
    let mut c = Crc16Byte::default();
    c.connect_all();
    let mut r = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..2000 {
        let (crc, byte): (u16, u8) = (r.gen(), r.gen());
        c.crc.next = (crc as u64).to_bits();
        c.din.next = (byte as u64).to_bits();
        assert!(simulate(&mut c, SETTLE));
        assert_eq!(c.out.val().to_u64() as u16, crc16_update(crc, byte), "crc {crc:#06x} byte {byte:#04x}");
    }
}

#[test]
fn write_and_read_scratch() {
    let mut b = Bench::new(4);
    let w = Request::Write { addr: regs::SCRATCH, value: 0xC0DE_5EED };
    b.check(&w, vec![]);
    assert_eq!(b.mem.get(&regs::SCRATCH), Some(&0xC0DE_5EED));
    let r = Request::Read { addr: regs::SCRATCH };
    b.check(&r, vec![0xC0DE_5EED]);
    let r = Request::Read { addr: regs::ID };
    b.check(&r, vec![regs::ID_MAGIC]);
    assert_eq!(b.accesses, 3);
}

#[test]
fn burst_to_the_weight_window() {
    let mut b = Bench::new(4);
    let mut r = ChaCha8Rng::seed_from_u64(7);
    for (base, n) in [(regs::WEIGHT_WINDOW, 256usize), (regs::WEIGHT_WINDOW + 0x400, 3)] {
        let data: Vec<u32> = (0..n).map(|_| r.gen()).collect();
        let w = Request::WriteBurst { addr: base, data: data.clone() };
        b.check(&w, vec![]);
        for (k, &v) in data.iter().enumerate() {
            assert_eq!(b.mem.get(&(base + 4 * k as u32)), Some(&v), "word {k}");
        }
        let rd = Request::ReadBurst { addr: base, count: n as u16 };
        b.check(&rd, data);
    }
}

#[test]
fn bad_checksum_is_answered_and_the_next_frame_served() {
    let mut b = Bench::new(4);
    // Corrupt write data: answered BadChecksum with the command echoed, nothing written.
    let w = Request::WriteBurst { addr: regs::WEIGHT_WINDOW, data: vec![1, 2, 3, 4] };
    let mut f = encode_request(&w, 1).unwrap();
    f[13] ^= 0x08;
    let want = encode_response(&Response::error(Status::BadChecksum, cmd::WRITE_BURST, 1)).unwrap();
    assert_eq!(b.exchange(&f, want.len()), want);
    assert_eq!(b.accesses, 0, "a write with a bad CRC never reaches the bus");
    // The good frame right after is served (the same tag: the rejected one was not performed).
    b.check(&w, vec![]);
    assert_eq!(b.tag, 1);
    assert_eq!(b.mem.get(&(regs::WEIGHT_WINDOW + 12)), Some(&4));

    // A corrupt header: BadChecksum with command 0.
    let r = Request::Read { addr: regs::SCRATCH };
    let mut f = encode_request(&r, 9).unwrap();
    f[4] ^= 0x01;
    let want = encode_response(&Response::error(Status::BadChecksum, 0, 0)).unwrap();
    assert_eq!(b.exchange(&f, want.len()), want);
    let w = Request::Write { addr: regs::SCRATCH, value: 99 };
    b.check(&w, vec![]);
    b.check(&r, vec![99]);
}

#[test]
fn intact_but_invalid_headers_are_bad_frames() {
    let mut b = Bench::new(4);
    for (c, len, tag) in [(0x07u8, 0u8, 3u8), (cmd::READ, 1, 4), (cmd::WRITE, 5, 0xFF)] {
        let mut h = vec![REQ_SYNC, c, tag, len, 0x48, 0, 0, 0];
        let crc = h.iter().fold(0xFFFFu16, |a, &x| crc16_update(a, x));
        h.extend_from_slice(&crc.to_be_bytes());
        let want = encode_response(&Response::error(Status::BadFrame, c, tag)).unwrap();
        assert_eq!(b.exchange(&h, want.len()), want, "cmd {c:#x} len {len}");
    }
    assert_eq!(b.accesses, 0);
}

#[test]
fn garbage_before_a_frame_is_skipped() {
    let mut b = Bench::new(5);
    let w = Request::Write { addr: regs::SCRATCH, value: 0x1234_5678 };
    let mut bytes = vec![0x00, 0xFF, 0x13, 0x5A];
    bytes.extend_from_slice(&encode_request(&w, 1).unwrap());
    let want = encode_response(&expected_response(&w, 1, vec![])).unwrap();
    b.tag = 1;
    assert_eq!(b.exchange(&bytes, want.len()), want);
    let r = Request::ReadBurst { addr: regs::SCRATCH, count: 1 };
    b.check(&r, vec![0x1234_5678]);
}

#[test]
fn idle_gaps_between_bytes_are_fine_at_another_divisor() {
    let mut b = Bench::new(7);
    let w = Request::WriteBurst { addr: regs::INPUT_WINDOW, data: vec![5, 6, 7] };
    b.line.received.clear();
    b.send(&encode_request(&w, 0x80).unwrap(), 3);
    let want = encode_response(&expected_response(&w, 0x80, vec![])).unwrap();
    let got = b.exchange(&[], want.len());
    assert_eq!(got, want);
    assert_eq!(b.mem.get(&(regs::INPUT_WINDOW + 8)), Some(&7));
}

/// A write frame repeated under the same tag (a host's retry after a lost acknowledgement) is
/// acknowledged again but reaches the bus once; a new tag is performed.
#[test]
fn a_repeated_write_tag_is_acknowledged_once_performed_once() {
    let mut b = Bench::new(4);
    let ok = |req: &Request, tag| expected_response(req, tag, vec![]);
    // After configuration no tag counts as seen: tag 0 is performed.
    let go = Request::Write { addr: regs::CTRL, value: 1 };
    b.check_tagged(&go, 0, &ok(&go, 0));
    assert_eq!(b.writes.get(&regs::CTRL), Some(&1));
    b.check_tagged(&go, 0, &ok(&go, 0));
    assert_eq!(b.writes.get(&regs::CTRL), Some(&1), "the retry did not reach the bus");
    assert_eq!(b.accesses, 1);
    // The same frame under a new tag is a new write.
    b.check_tagged(&go, 1, &ok(&go, 1));
    assert_eq!(b.writes.get(&regs::CTRL), Some(&2));

    // Bursts too: the whole retried burst is skipped.
    let w = Request::WriteBurst { addr: regs::WEIGHT_WINDOW, data: vec![10, 11, 12] };
    b.check_tagged(&w, 2, &ok(&w, 2));
    let before = b.accesses;
    b.check_tagged(&w, 2, &ok(&w, 2));
    assert_eq!(b.accesses, before);
    assert_eq!(b.writes.get(&(regs::WEIGHT_WINDOW + 8)), Some(&1));

    // A read always runs and sets the remembered tag.
    let r = Request::Read { addr: regs::WEIGHT_WINDOW + 4 };
    b.check_tagged(&r, 3, &expected_response(&r, 3, vec![11]));
    b.check_tagged(&r, 3, &expected_response(&r, 3, vec![11]));
    assert_eq!(b.accesses, before + 2);
    let s = Request::Write { addr: regs::SCRATCH, value: 5 };
    b.check_tagged(&s, 3, &ok(&s, 3));
    assert_eq!(b.writes.get(&regs::SCRATCH), None, "a write under the tag of the last read is a retry");
    b.check_tagged(&s, 4, &ok(&s, 4));
    assert_eq!(b.mem.get(&regs::SCRATCH), Some(&5));

    // A write rejected for its data CRC was not performed and does not set the tag: its
    // retry under the same tag is performed.
    let s2 = Request::Write { addr: regs::SCRATCH, value: 6 };
    let mut f = encode_request(&s2, 5).unwrap();
    f[11] ^= 0x20;
    let want = encode_response(&Response::error(Status::BadChecksum, cmd::WRITE, 5)).unwrap();
    assert_eq!(b.exchange(&f, want.len()), want);
    assert_eq!(b.mem.get(&regs::SCRATCH), Some(&5));
    b.check_tagged(&s2, 5, &ok(&s2, 5));
    assert_eq!(b.mem.get(&regs::SCRATCH), Some(&6));
    assert_eq!(b.writes.get(&regs::SCRATCH), Some(&2));
}

#[test]
fn bridge_generates_verilog_that_iverilog_accepts() {
    let mut uut = UartBridge::new(25);
    uut.connect_all();
    let v = generate_verilog(&uut);
    assert!(v.contains("module top"), "no top module");
    assert!(v.contains("reg[31:0] mem[255:0]"), "the write buffer is one 256 x 32 memory");
    let Ok(path) = which_iverilog() else {
        eprintln!("iverilog not on PATH (scripts/install-fpga-tools.sh installs it): Verilog not compiled");
        return;
    };
    let dir = std::env::temp_dir().join(format!("crew-uart-bridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bridge.v");
    std::fs::write(&f, &v).unwrap();
    let o = std::process::Command::new(path).arg("-o").arg(dir.join("bridge.vvp")).arg(&f).output().unwrap();
    if o.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(o.status.success(), "iverilog rejected the bridge:\n{}", String::from_utf8_lossy(&o.stderr));
}

fn which_iverilog() -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path).map(|d| d.join("iverilog")).find(|p| p.is_file()).ok_or(())
}
