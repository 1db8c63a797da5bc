//! The UART bridge: a board's host link. It receives the framed requests of
//! [`crew_core::uart`] on `rx` (8N1), drives the 32-bit register bus as its master (the
//! `addr`/`wdata`/`we`/`valid` -> `rdata`/`ready` handshake of [`crate::bus::Shell`]) and sends
//! the responses on `tx`.
//!
//! * [`UartRx`] / [`UartTx`]: 8N1 at `clocks_per_bit` clock cycles per bit (at least 4; the
//!   receiver synchronises `rx` through two flip-flops and samples mid-bit).
//! * [`Crc16Byte`]: one byte into a CRC-16/CCITT-FALSE, combinational.
//! * [`UartBridge`]: the frame state machine. Write data is buffered (one 256 x 32 RAM) and written
//!   to the bus only after its CRC checked, so a corrupt write never reaches the device. Read
//!   data is streamed: each word is read from the bus as the previous one leaves. It keeps the
//!   tag of the last request it performed, and acknowledges a write carrying that tag again
//!   without writing (a host's retry after a lost acknowledgement: [`crew_core::uart::Dedup`]).
//!
//! Divisor math (`docs/uart.md`): `clocks_per_bit = f_clk / baud`, use
//! [`crew_core::uart::clocks_per_bit`]; 3 Mbaud needs a clock that is a multiple of 3 MHz
//! (75 MHz: 25), 25 MHz reaches 1 Mbaud exactly (25).

use crew_core::uart::{cmd, req_at, resp_at, Status, REQ_HEADER_LEN, REQ_SYNC, RESP_HEADER_LEN, RESP_SYNC};
use rust_hdl::prelude::*;

/// A UART receiver, 8N1. `strobe` pulses for one cycle with `data` valid after each stop bit.
#[derive(LogicBlock)]
pub struct UartRx {
    pub clock: Signal<In, Clock>,
    pub rx: Signal<In, bool>,
    pub data: Signal<Out, Bits<8>>,
    pub strobe: Signal<Out, bool>,
    // `rx` inverted through two flip-flops (inverted so that reset, 0, means an idle line).
    nrx1: DFF<bool>,
    nrx2: DFF<bool>,
    st: DFF<Bits<2>>,
    cnt: DFF<Bits<16>>,
    bitn: DFF<Bits<3>>,
    shift: DFF<Bits<8>>,
    out: DFF<Bits<8>>,
    stb: DFF<bool>,
    k_full: Constant<Bits<16>>,
    k_half: Constant<Bits<16>>,
    k_msb: Constant<Bits<8>>,
}

impl UartRx {
    pub fn new(clocks_per_bit: u32) -> UartRx {
        assert!((4..=65535).contains(&clocks_per_bit), "clocks_per_bit {clocks_per_bit} is outside 4..=65535");
        UartRx {
            clock: Default::default(),
            rx: Default::default(),
            data: Default::default(),
            strobe: Default::default(),
            nrx1: Default::default(),
            nrx2: Default::default(),
            st: Default::default(),
            cnt: Default::default(),
            bitn: Default::default(),
            shift: Default::default(),
            out: Default::default(),
            stb: Default::default(),
            k_full: Constant::new((clocks_per_bit as u64 - 1).to_bits()),
            k_half: Constant::new((clocks_per_bit as u64 / 2 - 1).to_bits()),
            k_msb: Constant::new(0x80u64.to_bits()),
        }
    }
}

impl Logic for UartRx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, nrx1, nrx2, st, cnt, bitn, shift, out, stb);
        self.nrx1.d.next = !self.rx.val();
        self.nrx2.d.next = self.nrx1.q.val();
        self.stb.d.next = false;
        self.data.next = self.out.q.val();
        self.strobe.next = self.stb.q.val();
        if self.cnt.q.val().any() {
            self.cnt.d.next = self.cnt.q.val() - 1;
        }
        match self.st.q.val().index() {
            0 => {
                // Idle: a low line is a start bit; check it again mid-bit.
                if self.nrx2.q.val() {
                    self.st.d.next = 1.into();
                    self.cnt.d.next = self.k_half.val();
                }
            }
            1 => {
                if !self.cnt.q.val().any() {
                    if self.nrx2.q.val() {
                        self.st.d.next = 2.into();
                        self.cnt.d.next = self.k_full.val();
                        self.bitn.d.next = 0.into();
                    } else {
                        self.st.d.next = 0.into();
                    }
                }
            }
            2 => {
                if !self.cnt.q.val().any() {
                    self.shift.d.next = self.shift.q.val() >> 1;
                    if !self.nrx2.q.val() {
                        self.shift.d.next = (self.shift.q.val() >> 1) | self.k_msb.val();
                    }
                    self.cnt.d.next = self.k_full.val();
                    self.bitn.d.next = self.bitn.q.val() + 1;
                    if self.bitn.q.val() == 7 {
                        self.st.d.next = 3.into();
                    }
                }
            }
            _ => {
                // Stop bit: deliver the byte if the line is high (else a framing error: drop it).
                if !self.cnt.q.val().any() {
                    self.st.d.next = 0.into();
                    if !self.nrx2.q.val() {
                        self.out.d.next = self.shift.q.val();
                        self.stb.d.next = true;
                    }
                }
            }
        }
    }
}

/// A UART transmitter, 8N1. A one-cycle `start` while not `busy` sends `data`.
#[derive(LogicBlock)]
pub struct UartTx {
    pub clock: Signal<In, Clock>,
    pub data: Signal<In, Bits<8>>,
    pub start: Signal<In, bool>,
    pub busy: Signal<Out, bool>,
    pub tx: Signal<Out, bool>,
    run: DFF<bool>,
    // Stop bit, data (LSB first), start bit; bit 0 is on the line.
    sh: DFF<Bits<10>>,
    cnt: DFF<Bits<16>>,
    bitn: DFF<Bits<4>>,
    k_full: Constant<Bits<16>>,
    k_stop: Constant<Bits<10>>,
}

impl UartTx {
    pub fn new(clocks_per_bit: u32) -> UartTx {
        assert!((4..=65535).contains(&clocks_per_bit), "clocks_per_bit {clocks_per_bit} is outside 4..=65535");
        UartTx {
            clock: Default::default(),
            data: Default::default(),
            start: Default::default(),
            busy: Default::default(),
            tx: Default::default(),
            run: Default::default(),
            sh: Default::default(),
            cnt: Default::default(),
            bitn: Default::default(),
            k_full: Constant::new((clocks_per_bit as u64 - 1).to_bits()),
            k_stop: Constant::new(0x200u64.to_bits()),
        }
    }
}

impl Logic for UartTx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, run, sh, cnt, bitn);
        self.busy.next = self.run.q.val();
        self.tx.next = !self.run.q.val() || self.sh.q.val().get_bit(0);
        if !self.run.q.val() {
            if self.start.val() {
                self.run.d.next = true;
                self.sh.d.next = (bit_cast::<10, 8>(self.data.val()) << 1) | self.k_stop.val();
                self.cnt.d.next = self.k_full.val();
                self.bitn.d.next = 0.into();
            }
        } else if self.cnt.q.val().any() {
            self.cnt.d.next = self.cnt.q.val() - 1;
        } else if self.bitn.q.val() == 9 {
            self.run.d.next = false;
        } else {
            self.sh.d.next = self.sh.q.val() >> 1;
            self.bitn.d.next = self.bitn.q.val() + 1;
            self.cnt.d.next = self.k_full.val();
        }
    }
}

/// One byte into a CRC-16/CCITT-FALSE (polynomial 0x1021), combinational: the byte-wise form
/// `x = crc[15:8] ^ byte; x ^= x >> 4; crc' = (crc << 8) ^ (x << 12) ^ (x << 5) ^ x`.
#[derive(LogicBlock, Default)]
pub struct Crc16Byte {
    pub crc: Signal<In, Bits<16>>,
    pub din: Signal<In, Bits<8>>,
    pub out: Signal<Out, Bits<16>>,
    x1: Signal<Local, Bits<8>>,
    x: Signal<Local, Bits<16>>,
}

impl Logic for Crc16Byte {
    #[hdl_gen]
    fn update(&mut self) {
        self.x1.next = self.crc.val().get_bits::<8>(8) ^ self.din.val();
        self.x.next = bit_cast::<16, 8>(self.x1.val() ^ (self.x1.val() >> 4));
        self.out.next = (self.crc.val() << 8) ^ (self.x.val() << 12) ^ (self.x.val() << 5) ^ self.x.val();
    }
}

// Bridge states (literals in the HDL): 0 hunt, 1 header, 2 decide, 3 data, 4 data check, 5 write fetch,
// 6 write on the bus, 7 response header, 8 read on the bus, 9 send read word, 10 send data CRC.

/// The bridge: UART in, register-bus master out. See the module docs.
#[derive(LogicBlock)]
pub struct UartBridge {
    pub clock: Signal<In, Clock>,
    pub rx: Signal<In, bool>,
    pub tx: Signal<Out, bool>,
    /// Bus master: byte address, write data, write strobe, access request.
    pub addr: Signal<Out, Bits<32>>,
    pub wdata: Signal<Out, Bits<32>>,
    pub we: Signal<Out, bool>,
    pub valid: Signal<Out, bool>,
    pub rdata: Signal<In, Bits<32>>,
    pub ready: Signal<In, bool>,

    pub urx: UartRx,
    pub utx: UartTx,
    crc_rx: Crc16Byte,
    crc_tx: Crc16Byte,
    /// Write data of one burst, checked before it is written.
    wbuf: RAM<Bits<32>, 8>,

    st: DFF<Bits<4>>,
    crc: DFF<Bits<16>>,
    hidx: DFF<Bits<4>>,
    rcmd: DFF<Bits<8>>,
    rtag: DFF<Bits<8>>,
    rlen: DFF<Bits<8>>,
    // The tag of the last request performed, and whether there was one since configuration.
    last_tag: DFF<Bits<8>>,
    last_ok: DFF<bool>,
    raddr: DFF<Bits<32>>,
    // Data bytes (plus CRC) still to receive.
    left: DFF<Bits<11>>,
    bidx: DFF<Bits<2>>,
    widx: DFF<Bits<9>>,
    word: DFF<Bits<32>>,
    ram_we: DFF<bool>,
    ram_wa: DFF<Bits<8>>,
    ram_wd: DFF<Bits<32>>,
    // Response: status, echoed command, tag and length, byte index.
    status: DFF<Bits<8>>,
    ecmd: DFF<Bits<8>>,
    etag: DFF<Bits<8>>,
    elen: DFF<Bits<8>>,
    tidx: DFF<Bits<3>>,
    tx_go: DFF<bool>,
    tx_byte: DFF<Bits<8>>,

    can_send: Signal<Local, bool>,
    send: Signal<Local, bool>,
    send_byte: Signal<Local, Bits<8>>,
    crc_upd: Signal<Local, bool>,
    assembled: Signal<Local, Bits<32>>,

    k_req_sync: Constant<Bits<8>>,
    k_resp_sync: Constant<Bits<8>>,
    k_read: Constant<Bits<8>>,
    k_write: Constant<Bits<8>>,
    k_read_burst: Constant<Bits<8>>,
    k_write_burst: Constant<Bits<8>>,
    k_ok: Constant<Bits<8>>,
    k_bad_crc: Constant<Bits<8>>,
    k_bad_frame: Constant<Bits<8>>,
    k_crc_init: Constant<Bits<16>>,
    // Header byte offsets (crew_core::uart::req_at, resp_at).
    k_h_cmd: Constant<Bits<4>>,
    k_h_tag: Constant<Bits<4>>,
    k_h_len: Constant<Bits<4>>,
    k_h_addr_first: Constant<Bits<4>>,
    k_h_addr_last: Constant<Bits<4>>,
    k_h_last: Constant<Bits<4>>,
    k_r_sync: Constant<Bits<3>>,
    k_r_status: Constant<Bits<3>>,
    k_r_cmd: Constant<Bits<3>>,
    k_r_tag: Constant<Bits<3>>,
    k_r_len: Constant<Bits<3>>,
    k_r_crc_hi: Constant<Bits<3>>,
    k_r_crc_lo: Constant<Bits<3>>,
}

// The byte indices fit the counters `hidx` (4 bits) and `tidx` (3 bits).
const _: () = assert!(REQ_HEADER_LEN <= 16 && RESP_HEADER_LEN <= 8);

fn k4(v: usize) -> Constant<Bits<4>> {
    Constant::new((v as u64).to_bits())
}

fn k3(v: usize) -> Constant<Bits<3>> {
    Constant::new((v as u64).to_bits())
}

fn k8(v: u8) -> Constant<Bits<8>> {
    Constant::new((v as u64).to_bits())
}

impl UartBridge {
    /// A bridge at `clocks_per_bit` clock cycles per bit (at least 4).
    pub fn new(clocks_per_bit: u32) -> UartBridge {
        UartBridge {
            clock: Default::default(),
            rx: Default::default(),
            tx: Default::default(),
            addr: Default::default(),
            wdata: Default::default(),
            we: Default::default(),
            valid: Default::default(),
            rdata: Default::default(),
            ready: Default::default(),
            urx: UartRx::new(clocks_per_bit),
            utx: UartTx::new(clocks_per_bit),
            crc_rx: Default::default(),
            crc_tx: Default::default(),
            wbuf: Default::default(),
            st: Default::default(),
            crc: Default::default(),
            hidx: Default::default(),
            rcmd: Default::default(),
            rtag: Default::default(),
            rlen: Default::default(),
            last_tag: Default::default(),
            last_ok: Default::default(),
            raddr: Default::default(),
            left: Default::default(),
            bidx: Default::default(),
            widx: Default::default(),
            word: Default::default(),
            ram_we: Default::default(),
            ram_wa: Default::default(),
            ram_wd: Default::default(),
            status: Default::default(),
            ecmd: Default::default(),
            etag: Default::default(),
            elen: Default::default(),
            tidx: Default::default(),
            tx_go: Default::default(),
            tx_byte: Default::default(),
            can_send: Default::default(),
            send: Default::default(),
            send_byte: Default::default(),
            crc_upd: Default::default(),
            assembled: Default::default(),
            k_req_sync: k8(REQ_SYNC),
            k_resp_sync: k8(RESP_SYNC),
            k_read: k8(cmd::READ),
            k_write: k8(cmd::WRITE),
            k_read_burst: k8(cmd::READ_BURST),
            k_write_burst: k8(cmd::WRITE_BURST),
            k_ok: k8(Status::Ok as u8),
            k_bad_crc: k8(Status::BadChecksum as u8),
            k_bad_frame: k8(Status::BadFrame as u8),
            k_crc_init: Constant::new(0xFFFFu64.to_bits()),
            k_h_cmd: k4(req_at::CMD),
            k_h_tag: k4(req_at::TAG),
            k_h_len: k4(req_at::LEN),
            k_h_addr_first: k4(req_at::ADDR),
            k_h_addr_last: k4(req_at::ADDR + 3),
            k_h_last: k4(REQ_HEADER_LEN - 1),
            k_r_sync: k3(resp_at::SYNC),
            k_r_status: k3(resp_at::STATUS),
            k_r_cmd: k3(resp_at::CMD),
            k_r_tag: k3(resp_at::TAG),
            k_r_len: k3(resp_at::LEN),
            k_r_crc_hi: k3(resp_at::HCRC),
            k_r_crc_lo: k3(resp_at::HCRC + 1),
        }
    }
}

impl Logic for UartBridge {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, st, crc, hidx, rcmd, rtag, rlen, last_tag, last_ok, raddr, left, bidx, widx, word, ram_we,
            ram_wa, ram_wd, status, ecmd, etag, elen, tidx, tx_go, tx_byte
        );
        clock!(self, clock, urx, utx);
        self.wbuf.read_clock.next = self.clock.val();
        self.wbuf.write_clock.next = self.clock.val();

        // UART ends.
        self.urx.rx.next = self.rx.val();
        self.tx.next = self.utx.tx.val();
        self.utx.data.next = self.tx_byte.q.val();
        self.utx.start.next = self.tx_go.q.val();
        self.tx_go.d.next = false;
        self.can_send.next = !self.utx.busy.val() && !self.tx_go.q.val();

        // CRC of a received byte and of a sent byte.
        self.crc_rx.crc.next = self.crc.q.val();
        if self.st.q.val() == 0 {
            self.crc_rx.crc.next = self.k_crc_init.val();
        }
        self.crc_rx.din.next = self.urx.data.val();
        self.crc_tx.crc.next = self.crc.q.val();

        // Write-data buffer.
        self.wbuf.write_enable.next = self.ram_we.q.val();
        self.wbuf.write_address.next = self.ram_wa.q.val();
        self.wbuf.write_data.next = self.ram_wd.q.val();
        self.wbuf.read_address.next = self.widx.q.val().get_bits::<8>(0);
        self.ram_we.d.next = false;
        self.assembled.next = (bit_cast::<32, 8>(self.urx.data.val()) << 24) | (self.word.q.val() >> 8);

        // Bus master.
        self.addr.next = self.raddr.q.val();
        self.wdata.next = self.wbuf.read_data.val();
        self.we.next = self.st.q.val() == 6;
        self.valid.next = (self.st.q.val() == 6) || (self.st.q.val() == 8);

        self.send.next = false;
        self.send_byte.next = 0.into();
        self.crc_upd.next = true;

        match self.st.q.val().index() {
            0 => {
                // S_HUNT
                if self.urx.strobe.val() && (self.urx.data.val() == self.k_req_sync.val()) {
                    self.crc.d.next = self.crc_rx.out.val();
                    self.hidx.d.next = 1.into();
                    self.st.d.next = 1.into();
                }
            }
            1 => {
                // S_HDR: CMD, TAG, LEN, ADDR (LE), HCRC.
                if self.urx.strobe.val() {
                    self.crc.d.next = self.crc_rx.out.val();
                    self.hidx.d.next = self.hidx.q.val() + 1;
                    if self.hidx.q.val() == self.k_h_cmd.val() {
                        self.rcmd.d.next = self.urx.data.val();
                    }
                    if self.hidx.q.val() == self.k_h_tag.val() {
                        self.rtag.d.next = self.urx.data.val();
                    }
                    if self.hidx.q.val() == self.k_h_len.val() {
                        self.rlen.d.next = self.urx.data.val();
                    }
                    if (self.hidx.q.val() >= self.k_h_addr_first.val())
                        && (self.hidx.q.val() <= self.k_h_addr_last.val())
                    {
                        self.raddr.d.next = (bit_cast::<32, 8>(self.urx.data.val()) << 24) | (self.raddr.q.val() >> 8);
                    }
                    if self.hidx.q.val() == self.k_h_last.val() {
                        self.st.d.next = 2.into();
                    }
                }
            }
            2 => {
                // S_DECIDE: the header CRC ran over its own CRC bytes, so intact means 0.
                self.ecmd.d.next = self.rcmd.q.val();
                self.etag.d.next = self.rtag.q.val();
                self.elen.d.next = 0.into();
                self.status.d.next = self.k_ok.val();
                self.tidx.d.next = 0.into();
                self.widx.d.next = 0.into();
                self.bidx.d.next = 0.into();
                self.left.d.next = (bit_cast::<11, 8>(self.rlen.q.val()) << 2) + 6;
                self.st.d.next = 7.into();
                if self.crc.q.val().any() {
                    self.status.d.next = self.k_bad_crc.val();
                    self.ecmd.d.next = 0.into();
                    self.etag.d.next = 0.into();
                } else if (self.rcmd.q.val() == self.k_read.val()) || (self.rcmd.q.val() == self.k_write.val()) {
                    if self.rlen.q.val().any() {
                        self.status.d.next = self.k_bad_frame.val();
                    } else if self.rcmd.q.val() == self.k_read.val() {
                        // Reads always run, and set the remembered tag.
                        self.last_tag.d.next = self.rtag.q.val();
                        self.last_ok.d.next = true;
                        self.st.d.next = 7.into();
                    } else {
                        self.st.d.next = 3.into();
                    }
                } else if self.rcmd.q.val() == self.k_read_burst.val() {
                    self.elen.d.next = self.rlen.q.val();
                    self.last_tag.d.next = self.rtag.q.val();
                    self.last_ok.d.next = true;
                } else if self.rcmd.q.val() == self.k_write_burst.val() {
                    self.st.d.next = 3.into();
                } else {
                    self.status.d.next = self.k_bad_frame.val();
                }
                self.crc.d.next = self.k_crc_init.val();
            }
            3 => {
                // S_DATA: words into the buffer, then the data CRC.
                if self.urx.strobe.val() {
                    self.crc.d.next = self.crc_rx.out.val();
                    self.left.d.next = self.left.q.val() - 1;
                    if self.left.q.val() > 2 {
                        self.word.d.next = self.assembled.val();
                        self.bidx.d.next = self.bidx.q.val() + 1;
                        if self.bidx.q.val() == 3 {
                            self.ram_we.d.next = true;
                            self.ram_wa.d.next = self.widx.q.val().get_bits::<8>(0);
                            self.ram_wd.d.next = self.assembled.val();
                            self.widx.d.next = self.widx.q.val() + 1;
                        }
                    }
                    if self.left.q.val() == 1 {
                        self.st.d.next = 4.into();
                    }
                }
            }
            4 => {
                // S_DCHECK: write the buffer out only if its CRC held, and only once per tag: a
                // write carrying the tag of the last request performed is a retry, acknowledged
                // again without touching the bus.
                self.widx.d.next = 0.into();
                if self.crc.q.val().any() {
                    self.status.d.next = self.k_bad_crc.val();
                    self.st.d.next = 7.into();
                } else {
                    self.last_tag.d.next = self.rtag.q.val();
                    self.last_ok.d.next = true;
                    if self.last_ok.q.val() && (self.last_tag.q.val() == self.rtag.q.val()) {
                        self.st.d.next = 7.into();
                    } else {
                        self.st.d.next = 5.into();
                    }
                }
                self.crc.d.next = self.k_crc_init.val();
            }
            5 => {
                // S_WR_FETCH: the buffer's read port takes a cycle.
                self.st.d.next = 6.into();
            }
            6 => {
                // S_WR_BUS
                if self.ready.val() {
                    self.raddr.d.next = self.raddr.q.val() + 4;
                    self.widx.d.next = self.widx.q.val() + 1;
                    self.st.d.next = 5.into();
                    if self.widx.q.val().get_bits::<8>(0) == self.rlen.q.val() {
                        self.st.d.next = 7.into();
                    }
                }
            }
            7 => {
                // S_RESP: sync, status, command, tag, length, header CRC (high byte first).
                if self.can_send.val() {
                    self.send.next = true;
                    self.tidx.d.next = self.tidx.q.val() + 1;
                    if self.tidx.q.val() == self.k_r_sync.val() {
                        self.send_byte.next = self.k_resp_sync.val();
                    }
                    if self.tidx.q.val() == self.k_r_status.val() {
                        self.send_byte.next = self.status.q.val();
                    }
                    if self.tidx.q.val() == self.k_r_cmd.val() {
                        self.send_byte.next = self.ecmd.q.val();
                    }
                    if self.tidx.q.val() == self.k_r_tag.val() {
                        self.send_byte.next = self.etag.q.val();
                    }
                    if self.tidx.q.val() == self.k_r_len.val() {
                        self.send_byte.next = self.elen.q.val();
                    }
                    if self.tidx.q.val() == self.k_r_crc_hi.val() {
                        self.send_byte.next = self.crc.q.val().get_bits::<8>(8);
                        self.crc_upd.next = false;
                    }
                    if self.tidx.q.val() == self.k_r_crc_lo.val() {
                        self.send_byte.next = self.crc.q.val().get_bits::<8>(0);
                        self.crc_upd.next = false;
                        self.crc.d.next = self.k_crc_init.val();
                        self.tidx.d.next = 0.into();
                        self.widx.d.next = 0.into();
                        self.st.d.next = 0.into();
                        if (self.status.q.val() == self.k_ok.val())
                            && ((self.ecmd.q.val() == self.k_read.val())
                                || (self.ecmd.q.val() == self.k_read_burst.val()))
                        {
                            self.st.d.next = 8.into();
                        }
                    }
                }
            }
            8 => {
                // S_RD_BUS
                if self.ready.val() {
                    self.word.d.next = self.rdata.val();
                    self.raddr.d.next = self.raddr.q.val() + 4;
                    self.tidx.d.next = 0.into();
                    self.st.d.next = 9.into();
                }
            }
            9 => {
                // S_RD_SEND: the word, LSB first.
                if self.can_send.val() {
                    self.send.next = true;
                    self.send_byte.next = self.word.q.val().get_bits::<8>(0);
                    self.word.d.next = self.word.q.val() >> 8;
                    self.tidx.d.next = self.tidx.q.val() + 1;
                    if self.tidx.q.val() == 3 {
                        self.tidx.d.next = 0.into();
                        self.widx.d.next = self.widx.q.val() + 1;
                        self.st.d.next = 8.into();
                        if self.widx.q.val().get_bits::<8>(0) == self.rlen.q.val() {
                            self.st.d.next = 10.into();
                        }
                    }
                }
            }
            10 => {
                // S_RD_CRC
                if self.can_send.val() {
                    self.send.next = true;
                    self.crc_upd.next = false;
                    self.tidx.d.next = self.tidx.q.val() + 1;
                    if self.tidx.q.val() == 0 {
                        self.send_byte.next = self.crc.q.val().get_bits::<8>(8);
                    } else {
                        self.send_byte.next = self.crc.q.val().get_bits::<8>(0);
                        self.st.d.next = 0.into();
                    }
                }
            }
            _ => {
                self.st.d.next = 0.into();
            }
        }

        // A byte to send: hand it to the transmitter and run it through the CRC.
        self.crc_tx.din.next = self.send_byte.val();
        if self.send.val() {
            self.tx_byte.d.next = self.send_byte.val();
            self.tx_go.d.next = true;
            if self.crc_upd.val() {
                self.crc.d.next = self.crc_tx.out.val();
            }
        }
    }
}
