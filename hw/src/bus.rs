//! The register-bus shell shared by the CREW core and the dense baseline: register file,
//! bus decode of the memory windows, CRC-32 engine, dimension and range checks. The memories
//! themselves live in [`crate::engine::Engine`]; the shell drives their bus side.
//!
//! Every constant comes from `crew_core::regs` / `crew_core::config` and is emitted as a Verilog
//! `localparam` (rust-hdl `Constant`).

use crew_core::config::DeviceConfig;
use crew_core::cycles;
use crew_core::regs::{self, ctrl, status, ErrorCode};
use rust_hdl::prelude::*;

/// Address widths of one configuration (log2 of the memory depths in words).
pub fn log2_exact(n: u32) -> usize {
    assert!(n.is_power_of_two(), "{n} is not a power of two");
    n.trailing_zeros() as usize
}

/// The bus shell.
#[derive(LogicBlock)]
pub struct Shell {
    pub clock: Signal<In, Clock>,
    /// Byte address of the access.
    pub addr: Signal<In, Bits<32>>,
    pub wdata: Signal<In, Bits<32>>,
    /// Write strobe (1 = write, 0 = read), sampled with `valid`.
    pub we: Signal<In, bool>,
    /// The master holds `valid` (and addr, wdata, we) until `ready`; one access per handshake.
    pub valid: Signal<In, bool>,
    pub rdata: Signal<Out, Bits<32>>,
    pub ready: Signal<Out, bool>,
    /// Interrupt: DONE or ERROR with CTRL.IRQ_EN.
    pub irq: Signal<Out, bool>,
    /// Engine hand-off: one-cycle pulse when START passed the dimension and range checks.
    pub run_go: Signal<Out, bool>,
    /// Engine hand-off: the datapath finished (this cycle is the last one counted in CYCLES).
    pub run_done: Signal<In, bool>,
    /// Engine hand-off: the datapath stopped on an error with `run_code`.
    pub run_err: Signal<In, bool>,
    pub run_code: Signal<In, Bits<8>>,
    /// Engine hand-off: MULT_COUNT and ADD_COUNT, latched with `run_done`.
    pub run_mul: Signal<In, Bits<32>>,
    pub run_add: Signal<In, Bits<32>>,
    /// The run's parameters (the engine latches them at `run_go`).
    pub run_nout: Signal<Out, Bits<32>>,
    pub run_nin: Signal<Out, Bits<32>>,
    pub run_base: Signal<Out, Bits<32>>,
    pub run_accum: Signal<Out, bool>,
    /// SOFT_RESET: the engine stops.
    pub run_abort: Signal<Out, bool>,

    // Memory bus side: word offset in the addressed window, write data, write strobes (never
    // while busy), the weight read address (the bus, or the CRC engine while busy) and the read
    // data, four cycles after the address (the banks register their addresses, the block RAMs
    // their outputs, the engine port A's words once more; the master holds the address meanwhile).
    pub m_word: Signal<Out, Bits<32>>,
    pub m_wdata: Signal<Out, Bits<32>>,
    pub m_wwe: Signal<Out, bool>,
    pub m_iwe: Signal<Out, bool>,
    pub m_owe: Signal<Out, bool>,
    pub m_wraddr: Signal<Out, Bits<32>>,
    pub m_wrdata: Signal<In, Bits<32>>,
    pub m_irdata: Signal<In, Bits<32>>,
    pub m_ordata: Signal<In, Bits<32>>,

    // The request, latched and decoded a cycle before it is executed, so that no path runs from
    // the bus master (the board's arbiter, the UART bridge) through the decode into the memories.
    go: DFF<bool>,
    /// The latched request's register number (byte offset / 4), or `NO_REG` for any address that
    /// is not a register: the read mux and the write decode compare 5 bits instead of 32.
    q_reg: DFF<Bits<5>>,
    q_wdata: DFF<Bits<32>>,
    q_we: DFF<bool>,
    q_word: DFF<Bits<32>>,
    q_is_w: DFF<bool>,
    q_is_i: DFF<bool>,
    q_is_o: DFF<bool>,
    /// The latched request addresses CTRL (decoded while latching, off the execute cycle's path).
    q_ctrl: DFF<bool>,
    /// CRC_START's range check on CRC_BASE and CRC_LEN, evaluated every cycle: the registers
    /// cannot change in the cycle before a CTRL write executes (one request at a time).
    crc_bad: DFF<bool>,
    // Registers.
    ack: DFF<bool>,
    /// The access acknowledged now is a memory read: its data and `ready` come a cycle later.
    slow: DFF<bool>,
    slow2: DFF<bool>,
    slow3: DFF<bool>,
    ackm: DFF<bool>,
    rsel: DFF<Bits<2>>,
    rreg: DFF<Bits<32>>,
    r_ctrl: DFF<Bits<32>>,
    r_nout: DFF<Bits<32>>,
    r_nin: DFF<Bits<32>>,
    r_base: DFF<Bits<32>>,
    r_crcb: DFF<Bits<32>>,
    r_crcl: DFF<Bits<32>>,
    r_crcv: DFF<Bits<32>>,
    r_cyc: DFF<Bits<64>>,
    r_mul: DFF<Bits<32>>,
    r_add: DFF<Bits<32>>,
    r_scr: DFF<Bits<32>>,
    busy: DFF<bool>,
    done: DFF<bool>,
    err: DFF<bool>,
    code: DFF<Bits<8>>,
    // Engine state: 0 idle, 1 start check, 2 start decide, 8.. CRC.
    st: DFF<Bits<4>>,
    crc_addr: DFF<Bits<32>>,
    crc_left: DFF<Bits<32>>,
    crc_word: DFF<Bits<32>>,
    crc_bit: DFF<Bits<6>>,
    limit_sum: DFF<Bits<33>>,

    // Combinational helpers.
    word: Signal<Local, Bits<32>>,
    reg_no: Signal<Local, Bits<5>>,
    is_w: Signal<Local, bool>,
    is_i: Signal<Local, bool>,
    is_o: Signal<Local, bool>,
    lat_go: Signal<Local, bool>,
    acc_go: Signal<Local, bool>,
    wr: Signal<Local, bool>,
    crc_fb: Signal<Local, bool>,
    s_busy: Signal<Local, Bits<32>>,
    s_done: Signal<Local, Bits<32>>,
    s_err: Signal<Local, Bits<32>>,

    // Constants from crew_core.
    k_id: Constant<Bits<32>>,
    k_version: Constant<Bits<32>>,
    k_caps: Constant<Bits<32>>,
    k_wmem: Constant<Bits<32>>,
    k_ibuf: Constant<Bits<32>>,
    k_obuf: Constant<Bits<32>>,
    k_level_mask: Constant<Bits<32>>,
    k_start: Constant<Bits<32>>,
    k_soft_reset: Constant<Bits<32>>,
    k_crc_start: Constant<Bits<32>>,
    k_irq_en: Constant<Bits<32>>,
    k_weight_window: Constant<Bits<32>>,
    k_output_window: Constant<Bits<32>>,
    k_input_window: Constant<Bits<32>>,
    k_code_lsb: Constant<Bits<32>>,
    k_busy: Constant<Bits<32>>,
    k_done: Constant<Bits<32>>,
    k_error: Constant<Bits<32>>,
    k_e_dims: Constant<Bits<8>>,
    k_e_layer: Constant<Bits<8>>,
    k_e_busy: Constant<Bits<8>>,
    k_e_crc: Constant<Bits<8>>,
    k_crc_poly: Constant<Bits<32>>,
    k_ones: Constant<Bits<32>>,
    k_start_cycles: Constant<Bits<64>>,
    k_dense: Constant<bool>,
    k_r_id: Constant<Bits<5>>,
    k_r_version: Constant<Bits<5>>,
    k_r_caps: Constant<Bits<5>>,
    k_r_wmem: Constant<Bits<5>>,
    k_r_ibuf: Constant<Bits<5>>,
    k_r_obuf: Constant<Bits<5>>,
    k_r_ctrl: Constant<Bits<5>>,
    k_r_status: Constant<Bits<5>>,
    k_r_nout: Constant<Bits<5>>,
    k_r_nin: Constant<Bits<5>>,
    k_r_base: Constant<Bits<5>>,
    k_r_crcb: Constant<Bits<5>>,
    k_r_crcl: Constant<Bits<5>>,
    k_r_crcv: Constant<Bits<5>>,
    k_r_cyclo: Constant<Bits<5>>,
    k_r_cychi: Constant<Bits<5>>,
    k_r_mul: Constant<Bits<5>>,
    k_r_add: Constant<Bits<5>>,
    k_r_scr: Constant<Bits<5>>,
    k_accumulate: Constant<Bits<32>>,
    /// Address bits that make an address no register (past the register block; like the
    /// emulator, the decode ignores the byte offset in the word).
    k_not_reg: Constant<Bits<32>>,
    k_no_reg: Constant<Bits<5>>,
}

/// Register numbers are 5 bits (offset / 4); `NO_REG` is none of them.
const NO_REG: u32 = 31;

/// The register number of register offset `offset`.
fn kreg(offset: u32) -> Constant<Bits<5>> {
    assert!(offset.is_multiple_of(4) && offset / 4 < NO_REG, "register 0x{offset:X} outside the 5-bit decode");
    Constant::new(u64::from(offset / 4).to_bits())
}

fn k32(v: u32) -> Constant<Bits<32>> {
    Constant::new(v.to_bits())
}
fn k8(v: u8) -> Constant<Bits<8>> {
    Constant::new((v as u32).to_bits())
}

impl Shell {
    /// A shell for `cfg`.
    pub fn new(cfg: &DeviceConfig) -> Self {
        Shell {
            clock: Default::default(),
            addr: Default::default(),
            wdata: Default::default(),
            we: Default::default(),
            valid: Default::default(),
            rdata: Default::default(),
            ready: Default::default(),
            irq: Default::default(),
            run_go: Default::default(),
            run_done: Default::default(),
            run_err: Default::default(),
            run_code: Default::default(),
            run_mul: Default::default(),
            run_add: Default::default(),
            run_nout: Default::default(),
            run_nin: Default::default(),
            run_base: Default::default(),
            run_accum: Default::default(),
            run_abort: Default::default(),
            m_word: Default::default(),
            m_wdata: Default::default(),
            m_wwe: Default::default(),
            m_iwe: Default::default(),
            m_owe: Default::default(),
            m_wraddr: Default::default(),
            m_wrdata: Default::default(),
            m_irdata: Default::default(),
            m_ordata: Default::default(),
            go: Default::default(),
            q_reg: Default::default(),
            q_wdata: Default::default(),
            q_we: Default::default(),
            q_word: Default::default(),
            q_is_w: Default::default(),
            q_is_i: Default::default(),
            q_is_o: Default::default(),
            q_ctrl: Default::default(),
            crc_bad: Default::default(),
            ack: Default::default(),
            slow: Default::default(),
            slow2: Default::default(),
            slow3: Default::default(),
            ackm: Default::default(),
            rsel: Default::default(),
            rreg: Default::default(),
            r_ctrl: Default::default(),
            r_nout: Default::default(),
            r_nin: Default::default(),
            r_base: Default::default(),
            r_crcb: Default::default(),
            r_crcl: Default::default(),
            r_crcv: Default::default(),
            r_cyc: Default::default(),
            r_mul: Default::default(),
            r_add: Default::default(),
            r_scr: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            err: Default::default(),
            code: Default::default(),
            st: Default::default(),
            crc_addr: Default::default(),
            crc_left: Default::default(),
            crc_word: Default::default(),
            crc_bit: Default::default(),
            limit_sum: Default::default(),
            word: Default::default(),
            reg_no: Default::default(),
            is_w: Default::default(),
            is_i: Default::default(),
            is_o: Default::default(),
            lat_go: Default::default(),
            acc_go: Default::default(),
            wr: Default::default(),
            crc_fb: Default::default(),
            s_busy: Default::default(),
            s_done: Default::default(),
            s_err: Default::default(),
            k_id: k32(regs::ID_MAGIC),
            k_version: k32(regs::VERSION),
            k_caps: k32(regs::caps_value(cfg)),
            k_wmem: k32(cfg.wmem_words),
            k_ibuf: k32(cfg.ibuf_depth),
            k_obuf: k32(cfg.obuf_depth),
            k_level_mask: k32(ctrl::LEVEL_MASK),
            k_start: k32(ctrl::START),
            k_soft_reset: k32(ctrl::SOFT_RESET),
            k_crc_start: k32(ctrl::CRC_START),
            k_irq_en: k32(ctrl::IRQ_EN),
            k_weight_window: k32(regs::WEIGHT_WINDOW),
            k_output_window: k32(regs::OUTPUT_WINDOW),
            k_input_window: k32(regs::INPUT_WINDOW),
            k_code_lsb: k32(status::CODE_LSB),
            k_busy: k32(status::BUSY),
            k_done: k32(status::DONE),
            k_error: k32(status::ERROR),
            k_e_dims: k8(ErrorCode::BadDimensions as u8),
            k_e_layer: k8(ErrorCode::LayerOutOfRange as u8),
            k_e_busy: k8(ErrorCode::StartWhileBusy as u8),
            k_e_crc: k8(ErrorCode::CrcOutOfRange as u8),
            k_crc_poly: k32(0xEDB8_8320),
            k_ones: k32(u32::MAX),
            k_start_cycles: Constant::new((cycles::START_CYCLES).to_bits()),
            k_dense: Constant::new(cfg.kind == crew_core::config::CoreKind::Dense),
            k_r_id: kreg(regs::ID),
            k_r_version: kreg(regs::VERSION_REG),
            k_r_caps: kreg(regs::CAPS),
            k_r_wmem: kreg(regs::WMEM_WORDS),
            k_r_ibuf: kreg(regs::IBUF_DEPTH),
            k_r_obuf: kreg(regs::OBUF_DEPTH),
            k_r_ctrl: kreg(regs::CTRL),
            k_r_status: kreg(regs::STATUS),
            k_r_nout: kreg(regs::N_OUT),
            k_r_nin: kreg(regs::N_IN),
            k_r_base: kreg(regs::LAYER_BASE),
            k_r_crcb: kreg(regs::CRC_BASE),
            k_r_crcl: kreg(regs::CRC_LEN),
            k_r_crcv: kreg(regs::CRC_VALUE),
            k_r_cyclo: kreg(regs::CYCLES_LO),
            k_r_cychi: kreg(regs::CYCLES_HI),
            k_r_mul: kreg(regs::MULT_COUNT),
            k_r_add: kreg(regs::ADD_COUNT),
            k_r_scr: kreg(regs::SCRATCH),
            k_accumulate: k32(ctrl::ACCUMULATE),
            k_not_reg: k32(!((NO_REG << 2) | 3)),
            k_no_reg: Constant::new(u64::from(NO_REG).to_bits()),
        }
    }
}

impl Logic for Shell {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, go, q_reg, q_wdata, q_we, q_word, q_is_w, q_is_i, q_is_o, q_ctrl, crc_bad, ack, slow, slow2,
            slow3, ackm, rsel, rreg, r_ctrl, r_nout, r_nin, r_base, r_crcb, r_crcl, r_crcv, r_cyc, r_mul, r_add, r_scr,
            busy, done, err, code, st, crc_addr, crc_left, crc_word, crc_bit, limit_sum
        );
        // Address decode.
        self.is_w.next = self.addr.val() >= self.k_weight_window.val();
        self.is_o.next = !self.is_w.val() && (self.addr.val() >= self.k_output_window.val());
        self.is_i.next = !self.is_w.val() && !self.is_o.val() && (self.addr.val() >= self.k_input_window.val());
        self.word.next = self.addr.val() >> 2;
        if self.is_w.val() {
            self.word.next = (self.addr.val() - self.k_weight_window.val()) >> 2;
        }
        if self.is_o.val() {
            self.word.next = (self.addr.val() - self.k_output_window.val()) >> 2;
        }
        if self.is_i.val() {
            self.word.next = (self.addr.val() - self.k_input_window.val()) >> 2;
        }
        self.reg_no.next = bit_cast::<5, 32>(self.addr.val() >> 2);
        if (self.addr.val() & self.k_not_reg.val()).any() {
            self.reg_no.next = self.k_no_reg.val();
        }
        // Latch a new request when none is in flight (the master holds it until `ready`); execute
        // it from the registers a cycle later.
        self.lat_go.next = self.valid.val()
            && !self.go.q.val()
            && !self.ack.q.val()
            && !self.slow2.q.val()
            && !self.slow3.q.val()
            && !self.ackm.q.val();
        self.go.d.next = self.lat_go.val();
        if self.lat_go.val() {
            self.q_reg.d.next = self.reg_no.val();
            self.q_wdata.d.next = self.wdata.val();
            self.q_we.d.next = self.we.val();
            self.q_word.d.next = self.word.val();
            self.q_is_w.d.next = self.is_w.val();
            self.q_is_i.d.next = self.is_i.val();
            self.q_is_o.d.next = self.is_o.val();
            self.q_ctrl.d.next = self.reg_no.val() == self.k_r_ctrl.val();
        }
        self.acc_go.next = self.go.q.val();
        self.wr.next = self.acc_go.val() && self.q_we.q.val();
        self.ack.d.next = self.acc_go.val();
        self.slow.d.next = self.acc_go.val()
            && !self.q_we.q.val()
            && (self.q_is_w.q.val() || self.q_is_i.q.val() || self.q_is_o.q.val());
        self.slow2.d.next = self.slow.q.val();
        self.slow3.d.next = self.slow2.q.val();
        self.ackm.d.next = self.slow3.q.val();
        self.ready.next = (self.ack.q.val() && !self.slow.q.val()) || self.ackm.q.val();

        // Memory ports: the bus owns them when idle; the CRC engine reads weight memory.
        self.m_word.next = self.q_word.q.val();
        self.m_wdata.next = self.q_wdata.q.val();
        self.m_wwe.next = self.wr.val() && self.q_is_w.q.val() && !self.busy.q.val();
        self.m_iwe.next = self.wr.val() && self.q_is_i.q.val() && !self.busy.q.val();
        self.m_owe.next = self.wr.val() && self.q_is_o.q.val() && !self.busy.q.val();
        self.m_wraddr.next = self.q_word.q.val();
        if self.busy.q.val() {
            self.m_wraddr.next = self.crc_addr.q.val();
        }
        self.run_nout.next = self.r_nout.q.val();
        self.run_nin.next = self.r_nin.q.val();
        self.run_base.next = self.r_base.q.val();
        self.run_accum.next = (self.r_ctrl.q.val() & self.k_accumulate.val()).any();
        self.run_abort.next =
            self.wr.val() && self.q_ctrl.q.val() && (self.q_wdata.q.val() & self.k_soft_reset.val()).any();

        // Read path: register value latched now (ready next cycle), memory data four cycles later
        // (rsel still holds the held address's window then).
        self.rsel.d.next = 0.into();
        if self.q_is_w.q.val() {
            self.rsel.d.next = 1.into();
        }
        if self.q_is_i.q.val() {
            self.rsel.d.next = 2.into();
        }
        if self.q_is_o.q.val() {
            self.rsel.d.next = 3.into();
        }
        self.rreg.d.next = 0.into();
        if self.q_reg.q.val() == self.k_r_id.val() {
            self.rreg.d.next = self.k_id.val();
        }
        if self.q_reg.q.val() == self.k_r_version.val() {
            self.rreg.d.next = self.k_version.val();
        }
        if self.q_reg.q.val() == self.k_r_caps.val() {
            self.rreg.d.next = self.k_caps.val();
        }
        if self.q_reg.q.val() == self.k_r_wmem.val() {
            self.rreg.d.next = self.k_wmem.val();
        }
        if self.q_reg.q.val() == self.k_r_ibuf.val() {
            self.rreg.d.next = self.k_ibuf.val();
        }
        if self.q_reg.q.val() == self.k_r_obuf.val() {
            self.rreg.d.next = self.k_obuf.val();
        }
        if self.q_reg.q.val() == self.k_r_ctrl.val() {
            self.rreg.d.next = self.r_ctrl.q.val();
        }
        self.s_busy.next = 0.into();
        if self.busy.q.val() {
            self.s_busy.next = self.k_busy.val();
        }
        self.s_done.next = 0.into();
        if self.done.q.val() {
            self.s_done.next = self.k_done.val();
        }
        self.s_err.next = 0.into();
        if self.err.q.val() {
            self.s_err.next = self.k_error.val();
        }
        if self.q_reg.q.val() == self.k_r_status.val() {
            self.rreg.d.next = (bit_cast::<32, 8>(self.code.q.val()) << self.k_code_lsb.val())
                | self.s_busy.val()
                | self.s_done.val()
                | self.s_err.val();
        }
        if self.q_reg.q.val() == self.k_r_nout.val() {
            self.rreg.d.next = self.r_nout.q.val();
        }
        if self.q_reg.q.val() == self.k_r_nin.val() {
            self.rreg.d.next = self.r_nin.q.val();
        }
        if self.q_reg.q.val() == self.k_r_base.val() {
            self.rreg.d.next = self.r_base.q.val();
        }
        if self.q_reg.q.val() == self.k_r_crcb.val() {
            self.rreg.d.next = self.r_crcb.q.val();
        }
        if self.q_reg.q.val() == self.k_r_crcl.val() {
            self.rreg.d.next = self.r_crcl.q.val();
        }
        if self.q_reg.q.val() == self.k_r_crcv.val() {
            self.rreg.d.next = self.r_crcv.q.val();
        }
        if self.q_reg.q.val() == self.k_r_cyclo.val() {
            self.rreg.d.next = self.r_cyc.q.val().get_bits::<32>(0);
        }
        if self.q_reg.q.val() == self.k_r_cychi.val() {
            self.rreg.d.next = self.r_cyc.q.val().get_bits::<32>(32);
        }
        if self.q_reg.q.val() == self.k_r_mul.val() {
            self.rreg.d.next = self.r_mul.q.val();
        }
        if self.q_reg.q.val() == self.k_r_add.val() {
            self.rreg.d.next = self.r_add.q.val();
        }
        if self.q_reg.q.val() == self.k_r_scr.val() {
            self.rreg.d.next = self.r_scr.q.val();
        }
        self.rdata.next = self.rreg.q.val();
        if self.rsel.q.val() == 1 {
            self.rdata.next = self.m_wrdata.val();
        }
        if self.rsel.q.val() == 2 {
            self.rdata.next = self.m_irdata.val();
        }
        if self.rsel.q.val() == 3 {
            self.rdata.next = self.m_ordata.val();
        }
        self.irq.next = (self.done.q.val() || self.err.q.val()) && (self.r_ctrl.q.val() & self.k_irq_en.val()).any();

        // Register writes.
        self.crc_fb.next = self.crc_word.q.val().get_bit(0) ^ self.r_crcv.q.val().get_bit(0);
        if self.wr.val() && !self.q_is_w.q.val() && !self.q_is_i.q.val() && !self.q_is_o.q.val() {
            if self.q_reg.q.val() == self.k_r_nout.val() {
                self.r_nout.d.next = self.q_wdata.q.val();
            }
            if self.q_reg.q.val() == self.k_r_nin.val() {
                self.r_nin.d.next = self.q_wdata.q.val();
            }
            if self.q_reg.q.val() == self.k_r_base.val() {
                self.r_base.d.next = self.q_wdata.q.val();
            }
            if self.q_reg.q.val() == self.k_r_crcb.val() {
                self.r_crcb.d.next = self.q_wdata.q.val();
            }
            if self.q_reg.q.val() == self.k_r_crcl.val() {
                self.r_crcl.d.next = self.q_wdata.q.val();
            }
            if self.q_reg.q.val() == self.k_r_scr.val() {
                self.r_scr.d.next = self.q_wdata.q.val();
            }
        }

        // Engines.
        self.run_go.next = false;
        match self.st.q.val().index() {
            // Run: dimension check, then the layer-range check (START_CYCLES = 2).
            1 => {
                self.r_cyc.d.next = self.r_cyc.q.val() + 1;
                self.limit_sum.d.next =
                    bit_cast::<33, 32>(self.r_base.q.val()) + bit_cast::<33, 32>(self.r_nin.q.val() << 1);
                if self.k_dense.val() {
                    self.limit_sum.d.next = bit_cast::<33, 32>(self.r_base.q.val())
                        + bit_cast::<33, 32>(
                            bit_cast::<16, 32>(self.r_nin.q.val()) * bit_cast::<16, 32>((self.r_nout.q.val() + 3) >> 2),
                        );
                }
                if self.r_nout.q.val() == 0
                    || self.r_nin.q.val() == 0
                    || self.r_nout.q.val() > self.k_obuf.val()
                    || self.r_nin.q.val() > self.k_ibuf.val()
                {
                    self.err.d.next = true;
                    self.code.d.next = self.k_e_dims.val();
                    // After an error the counters read 0, as in the emulator (docs/registers.md).
                    self.r_cyc.d.next = 0.into();
                    self.busy.d.next = false;
                    self.st.d.next = 0.into();
                } else {
                    self.st.d.next = 2.into();
                }
            }
            2 => {
                self.r_cyc.d.next = self.r_cyc.q.val() + 1;
                if self.limit_sum.q.val() > bit_cast::<33, 32>(self.k_wmem.val()) {
                    self.err.d.next = true;
                    self.code.d.next = self.k_e_layer.val();
                    self.r_cyc.d.next = 0.into();
                    self.busy.d.next = false;
                    self.st.d.next = 0.into();
                } else {
                    self.run_go.next = true;
                    self.st.d.next = 3.into();
                }
            }
            // The datapath runs; CYCLES counts until it reports done or an error.
            3 => {
                self.r_cyc.d.next = self.r_cyc.q.val() + 1;
                if self.run_err.val() {
                    self.err.d.next = true;
                    self.code.d.next = self.run_code.val();
                    self.r_cyc.d.next = 0.into();
                    self.busy.d.next = false;
                    self.st.d.next = 0.into();
                } else if self.run_done.val() {
                    self.done.d.next = true;
                    self.r_mul.d.next = self.run_mul.val();
                    self.r_add.d.next = self.run_add.val();
                    self.busy.d.next = false;
                    self.st.d.next = 0.into();
                }
            }
            // CRC: state 8 issues a read, 9, 12 and 13 wait, 11 takes the data, 10 shifts 32 bits.
            8 => {
                if self.crc_left.q.val() == 0 {
                    self.r_crcv.d.next = !self.r_crcv.q.val();
                    self.busy.d.next = false;
                    self.done.d.next = true;
                    self.st.d.next = 0.into();
                } else {
                    self.st.d.next = 9.into();
                }
            }
            9 => {
                self.st.d.next = 12.into();
            }
            12 => {
                self.st.d.next = 13.into();
            }
            13 => {
                self.st.d.next = 11.into();
            }
            11 => {
                self.crc_word.d.next = self.m_wrdata.val();
                self.crc_bit.d.next = 0.into();
                self.crc_addr.d.next = self.crc_addr.q.val() + 1;
                self.crc_left.d.next = self.crc_left.q.val() - 1;
                self.st.d.next = 10.into();
            }
            10 => {
                self.crc_word.d.next = self.crc_word.q.val() >> 1;
                self.r_crcv.d.next = self.r_crcv.q.val() >> 1;
                if self.crc_fb.val() {
                    self.r_crcv.d.next = (self.r_crcv.q.val() >> 1) ^ self.k_crc_poly.val();
                }
                self.crc_bit.d.next = self.crc_bit.q.val() + 1;
                if self.crc_bit.q.val() == 31 {
                    self.st.d.next = 8.into();
                }
            }
            _ => {}
        }

        // CTRL writes (after the engines, so that SOFT_RESET wins).
        self.crc_bad.d.next = (self.r_crcb.q.val() > self.k_wmem.val())
            || (self.r_crcl.q.val() > (self.k_wmem.val() - self.r_crcb.q.val()));
        if self.wr.val() && self.q_ctrl.q.val() {
            self.r_ctrl.d.next = self.q_wdata.q.val() & self.k_level_mask.val();
            if (self.q_wdata.q.val() & (self.k_start.val() | self.k_crc_start.val())).any() {
                if self.busy.q.val() {
                    self.err.d.next = true;
                    self.code.d.next = self.k_e_busy.val();
                } else {
                    self.done.d.next = false;
                    self.err.d.next = false;
                    self.code.d.next = 0.into();
                    if (self.q_wdata.q.val() & self.k_start.val()).any() {
                        self.busy.d.next = true;
                        self.r_cyc.d.next = 0.into();
                        self.r_mul.d.next = 0.into();
                        self.r_add.d.next = 0.into();
                        self.st.d.next = 1.into();
                    } else {
                        self.crc_addr.d.next = self.r_crcb.q.val();
                        self.crc_left.d.next = self.r_crcl.q.val();
                        self.r_crcv.d.next = self.k_ones.val();
                        if self.crc_bad.q.val() {
                            self.err.d.next = true;
                            self.code.d.next = self.k_e_crc.val();
                        } else {
                            self.busy.d.next = true;
                            self.st.d.next = 8.into();
                        }
                    }
                }
            }
            if (self.q_wdata.q.val() & self.k_soft_reset.val()).any() {
                self.busy.d.next = false;
                self.done.d.next = false;
                self.err.d.next = false;
                self.code.d.next = 0.into();
                self.r_cyc.d.next = 0.into();
                self.r_mul.d.next = 0.into();
                self.r_add.d.next = 0.into();
                self.st.d.next = 0.into();
            }
        }
    }
}
