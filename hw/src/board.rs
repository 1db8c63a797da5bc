//! ULX3S board top: the 25 MHz oscillator through an ECP5 PLL to the core clock, a power-on /
//! button reset, the [`UartBridge`] on the FT231X USB serial pins as master of the core's
//! register bus, and status LEDs. [`generate_lpf`] writes the pin and clock constraints from the
//! constraints attached to the top's signals (`add_location`, `add_signal_type`, timing).
//!
//! Pins (ULX3S v2.x, CABGA381, `ulx3s_v20.lpf`): `clk_25mhz` G2; `ftdi_txd` M1 (FTDI TXD, the
//! FPGA receives); `ftdi_rxd` L4 (FTDI RXD, the FPGA transmits); `led[0..8]` B2 C2 C1 D2 D1 E2 E1
//! H3; `btn_pwr_n` D6 (BTN_PWRn, active low, pull-up); `wifi_gpio0` L2 (held high so that the
//! ESP32, if fitted, does not reset the board).
//!
//! LEDs: 0 heartbeat, 1 BUSY, 2 DONE, 3 ERROR (STATUS, polled by the board), 4 PLL locked,
//! 5 UART activity, 6 in reset, 7 interrupt line.
//!
//! The board shares the core's bus with the bridge through a small arbiter. When the bridge is
//! idle, the board reads STATUS (read-only, no side effects) every 1024 cycles for the LEDs, and
//! after a reset (configuration, PLL lock, BTN_PWRn) it writes CTRL.SOFT_RESET once. The bridge
//! waits (its `ready` is held low) while the board owns the bus; the core never sees two masters.

use crate::top::Accel;
use crate::uart_bridge::UartBridge;
use crew_core::config::DeviceConfig;
use crew_core::regs::{self, ctrl, status};
use rust_hdl::prelude::*;
use std::collections::BTreeMap;

/// The ULX3S oscillator, MHz.
pub const OSC_MHZ: f64 = 25.0;

/// STATUS bits 0..3 are BUSY, DONE, ERROR: the board copies them as one 3-bit field.
const _: () = assert!(status::BUSY == 1 && status::DONE == 2 && status::ERROR == 4);

/// EHXPLLL settings for one output frequency (CLKOP, fed back from CLKOP).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PllParams {
    pub clki_div: u32,
    pub clkfb_div: u32,
    pub clkop_div: u32,
    pub clkop_cphase: u32,
    /// Input frequency, MHz.
    pub fin_mhz: f64,
}

impl PllParams {
    /// Output frequency, MHz.
    pub fn fout_mhz(&self) -> f64 {
        self.fin_mhz * self.clkfb_div as f64 / self.clki_div as f64
    }

    /// VCO frequency, MHz.
    pub fn fvco_mhz(&self) -> f64 {
        self.fout_mhz() * self.clkop_div as f64
    }

    /// The dividers nearest to `fout_mhz` with the PFD in 3.125..=400 MHz and the VCO in
    /// 400..=800 MHz, ties broken by the VCO nearest 600 MHz (prjtrellis `ecppll`'s search).
    /// The CLKOP coarse phase is `(clkop_div - 1) / 2`; the bitstream build takes the exact
    /// values from `yowasp-ecppll` instead (`--pll`), which agree on the dividers.
    pub fn search(fin_mhz: f64, fout_mhz: f64) -> PllParams {
        let mut best: Option<(f64, f64, PllParams)> = None;
        for clki_div in 1..=128u32 {
            let fpfd = fin_mhz / clki_div as f64;
            if !(3.125..=400.0).contains(&fpfd) {
                continue;
            }
            for clkfb_div in 1..=80u32 {
                for clkop_div in 1..=128u32 {
                    let fvco = fpfd * clkfb_div as f64 * clkop_div as f64;
                    if !(400.0..=800.0).contains(&fvco) {
                        continue;
                    }
                    let err = (fvco / clkop_div as f64 - fout_mhz).abs();
                    let vco_off = (fvco - 600.0).abs();
                    let better = match &best {
                        None => true,
                        Some((e, v, _)) => err < *e - 1e-9 || ((err - *e).abs() <= 1e-9 && vco_off < *v),
                    };
                    if better {
                        let p =
                            PllParams { clki_div, clkfb_div, clkop_div, clkop_cphase: (clkop_div - 1) / 2, fin_mhz };
                        best = Some((err, vco_off, p));
                    }
                }
            }
        }
        best.map(|(_, _, p)| p).expect("some PLL setting exists")
    }
}

/// The ECP5 PLL (`EHXPLLL`) as a black box: CLKI in, CLKOP out and fed back, LOCK. In simulation
/// it passes the input clock through and reports lock at once.
#[derive(LogicBlock)]
pub struct Ecp5Pll {
    pub clkin: Signal<In, Clock>,
    pub clkout: Signal<Out, Clock>,
    pub locked: Signal<Out, bool>,
    k_clki_div: Constant<Bits<8>>,
    k_clkfb_div: Constant<Bits<8>>,
    k_clkop_div: Constant<Bits<8>>,
    k_clkop_cphase: Constant<Bits<8>>,
    k_fin_khz: Constant<Bits<32>>,
}

impl Ecp5Pll {
    pub fn new(p: &PllParams) -> Ecp5Pll {
        assert!((1..=128).contains(&p.clki_div) && (1..=80).contains(&p.clkfb_div) && (1..=128).contains(&p.clkop_div));
        assert!(p.clkop_cphase < p.clkop_div, "CLKOP_CPHASE {} >= CLKOP_DIV {}", p.clkop_cphase, p.clkop_div);
        Ecp5Pll {
            clkin: Default::default(),
            clkout: Default::default(),
            locked: Default::default(),
            k_clki_div: Constant::new((p.clki_div as u64).to_bits()),
            k_clkfb_div: Constant::new((p.clkfb_div as u64).to_bits()),
            k_clkop_div: Constant::new((p.clkop_div as u64).to_bits()),
            k_clkop_cphase: Constant::new((p.clkop_cphase as u64).to_bits()),
            k_fin_khz: Constant::new(((p.fin_mhz * 1000.0).round() as u64).to_bits()),
        }
    }

    /// The settings this instance was built with.
    pub fn params(&self) -> PllParams {
        PllParams {
            clki_div: self.k_clki_div.val().to_u64() as u32,
            clkfb_div: self.k_clkfb_div.val().to_u64() as u32,
            clkop_div: self.k_clkop_div.val().to_u64() as u32,
            clkop_cphase: self.k_clkop_cphase.val().to_u64() as u32,
            fin_mhz: self.k_fin_khz.val().to_u64() as f64 / 1000.0,
        }
    }
}

/// A frequency for a Verilog attribute or an LPF line: up to 4 decimals, no trailing zeros.
pub fn mhz_text(f: f64) -> String {
    let s = format!("{f:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Logic for Ecp5Pll {
    fn update(&mut self) {
        self.clkout.next = self.clkin.val();
        self.locked.next = true;
    }

    fn connect(&mut self) {
        self.clkout.connect();
        self.locked.connect();
    }

    fn hdl(&self) -> Verilog {
        let p = self.params();
        Verilog::Wrapper(Wrapper {
            code: format!(
                r#"
(* FREQUENCY_PIN_CLKI="{fin}" *)
(* FREQUENCY_PIN_CLKOP="{fout}" *)
(* ICP_CURRENT="12" *) (* LPF_RESISTOR="8" *) (* MFG_ENABLE_FILTEROPAMP="1" *) (* MFG_GMCREF_SEL="2" *)
EHXPLLL #(
    .PLLRST_ENA("DISABLED"),
    .INTFB_WAKE("DISABLED"),
    .STDBY_ENABLE("DISABLED"),
    .DPHASE_SOURCE("DISABLED"),
    .OUTDIVIDER_MUXA("DIVA"),
    .OUTDIVIDER_MUXB("DIVB"),
    .OUTDIVIDER_MUXC("DIVC"),
    .OUTDIVIDER_MUXD("DIVD"),
    .CLKI_DIV({clki}),
    .CLKOP_ENABLE("ENABLED"),
    .CLKOP_DIV({clkop}),
    .CLKOP_CPHASE({cphase}),
    .CLKOP_FPHASE(0),
    .FEEDBK_PATH("CLKOP"),
    .CLKFB_DIV({clkfb})
) pll_i (
    .RST(1'b0),
    .STDBY(1'b0),
    .CLKI(clkin),
    .CLKOP(clkout),
    .CLKFB(clkout),
    .CLKINTFB(),
    .PHASESEL0(1'b0),
    .PHASESEL1(1'b0),
    .PHASEDIR(1'b1),
    .PHASESTEP(1'b1),
    .PHASELOADREG(1'b1),
    .PLLWAKESYNC(1'b0),
    .ENCLKOP(1'b0),
    .LOCK(locked)
);
"#,
                fin = mhz_text(p.fin_mhz),
                fout = mhz_text(p.fout_mhz()),
                clki = p.clki_div,
                clkop = p.clkop_div,
                cphase = p.clkop_cphase,
                clkfb = p.clkfb_div,
            ),
            cores: String::new(),
        })
    }
}

/// ULX3S pins.
pub mod pins {
    pub const CLK_25MHZ: &str = "G2";
    /// FTDI TXD: the FPGA receives.
    pub const FTDI_TXD: &str = "M1";
    /// FTDI RXD: the FPGA transmits.
    pub const FTDI_RXD: &str = "L4";
    pub const LED: [&str; 8] = ["B2", "C2", "C1", "D2", "D1", "E2", "E1", "H3"];
    /// BTN_PWRn, active low.
    pub const BTN_PWR_N: &str = "D6";
    pub const WIFI_GPIO0: &str = "L2";
}

/// Build-time settings of a board top.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoardConfig {
    pub pll: PllParams,
    /// UART bridge divisor (`crew_core::uart::clocks_per_bit` of the core clock).
    pub clocks_per_bit: u32,
    /// Reset length after PLL lock or a button press, in core cycles (2..=2^20).
    pub reset_cycles: u32,
}

/// Width of the reset counter.
const RB: usize = 20;

/// The ULX3S top with one core configuration (the const parameters of [`Accel`]).
#[derive(LogicBlock)]
pub struct Ulx3sTop<
    const IA: usize,
    const L: usize,
    const M: usize,
    const NB: usize,
    const BA: usize,
    const NBW: usize,
    const OBA: usize,
    const TA: usize,
    const PW: usize,
> {
    pub clk_25mhz: Signal<In, Clock>,
    pub btn_pwr_n: Signal<In, bool>,
    pub ftdi_txd: Signal<In, bool>,
    pub ftdi_rxd: Signal<Out, bool>,
    pub led: Signal<Out, Bits<8>>,
    pub wifi_gpio0: Signal<Out, bool>,

    pub pll: Ecp5Pll,
    pub bridge: UartBridge,
    pub core: Accel<IA, L, M, NB, BA, NBW, OBA, TA, PW>,

    clk: Signal<Local, Clock>,
    lock1: DFF<bool>,
    lock2: DFF<bool>,
    btn1: DFF<bool>,
    btn2: DFF<bool>,
    rst_cnt: DFF<Bits<RB>>,
    sr_req: DFF<bool>,
    own: DFF<bool>,
    own_we: DFF<bool>,
    /// STATUS bits 2..0 (ERROR, DONE, BUSY) as last polled.
    st: DFF<Bits<3>>,
    beat: DFF<Bits<27>>,
    uart1: DFF<bool>,
    uart2: DFF<bool>,
    act: DFF<Bits<22>>,
    f_lock: DFF<Bits<1>>,
    f_act: DFF<Bits<1>>,
    f_rst: DFF<Bits<1>>,
    f_irq: DFF<Bits<1>>,
    led_r: DFF<Bits<8>>,

    in_reset: Signal<Local, bool>,
    poll_tick: Signal<Local, bool>,

    k_rst_max: Constant<Bits<RB>>,
    k_rst_last: Constant<Bits<RB>>,
    k_act_max: Constant<Bits<22>>,
    k_ctrl: Constant<Bits<32>>,
    k_status: Constant<Bits<32>>,
    k_soft_reset: Constant<Bits<32>>,
}

impl<
        const IA: usize,
        const L: usize,
        const M: usize,
        const NB: usize,
        const BA: usize,
        const NBW: usize,
        const OBA: usize,
        const TA: usize,
        const PW: usize,
    > Ulx3sTop<IA, L, M, NB, BA, NBW, OBA, TA, PW>
{
    /// The board top; its pins carry their LPF constraints, the core clock its frequency.
    pub fn new(cfg: &DeviceConfig, board: &BoardConfig) -> Self {
        assert!((2..=1 << RB).contains(&board.reset_cycles), "reset_cycles {} outside 2..=2^{RB}", board.reset_cycles);
        let mut clk_25mhz = Signal::<In, Clock>::default();
        clk_25mhz.add_location(0, pins::CLK_25MHZ);
        clk_25mhz.add_signal_type(0, SignalType::LowVoltageCMOS_3v3);
        clk_25mhz.add_constraint(PinConstraint {
            index: 0,
            constraint: Constraint::Timing(Timing::Periodic(PeriodicTiming {
                net: "clk_25mhz".into(),
                period_nanoseconds: 1000.0 / board.pll.fin_mhz,
                duty_cycle: 50.0,
            })),
        });
        let mut btn_pwr_n = Signal::<In, bool>::default();
        btn_pwr_n.add_location(0, pins::BTN_PWR_N);
        btn_pwr_n.add_signal_type(0, SignalType::LowVoltageCMOS_3v3);
        btn_pwr_n.add_constraint(PinConstraint { index: 0, constraint: Constraint::Custom("PULLMODE=UP".into()) });
        let mut ftdi_txd = Signal::<In, bool>::default();
        ftdi_txd.add_location(0, pins::FTDI_TXD);
        ftdi_txd.add_signal_type(0, SignalType::LowVoltageCMOS_3v3);
        ftdi_txd.add_constraint(PinConstraint { index: 0, constraint: Constraint::Custom("PULLMODE=UP".into()) });
        let mut ftdi_rxd = Signal::<Out, bool>::default();
        ftdi_rxd.add_location(0, pins::FTDI_RXD);
        ftdi_rxd.add_signal_type(0, SignalType::LowVoltageCMOS_3v3);
        ftdi_rxd.add_constraint(PinConstraint { index: 0, constraint: Constraint::Custom("DRIVE=4".into()) });
        let mut led = Signal::<Out, Bits<8>>::default();
        for (i, pin) in pins::LED.iter().enumerate() {
            led.add_location(i, pin);
            led.add_signal_type(i, SignalType::LowVoltageCMOS_3v3);
            led.add_constraint(PinConstraint { index: i, constraint: Constraint::Custom("DRIVE=4".into()) });
        }
        let mut wifi_gpio0 = Signal::<Out, bool>::default();
        wifi_gpio0.add_location(0, pins::WIFI_GPIO0);
        wifi_gpio0.add_signal_type(0, SignalType::LowVoltageCMOS_3v3);

        // The core clock's net is named by yosys (after a flip-flop's clock pin), so the LPF does not
        // name it: nextpnr derives its constraint from the 25 MHz input and the PLL dividers
        // ("Derived frequency constraint of ... MHz"); the build also passes --freq.
        let mut pll = Ecp5Pll::new(&board.pll);
        pll.clkout.add_constraint(PinConstraint {
            index: 0,
            constraint: Constraint::Timing(Timing::Custom(format!(
                "# core clock {} MHz: EHXPLLL CLKI {} MHz x CLKFB_DIV {} / CLKI_DIV {} (derived by nextpnr)",
                mhz_text(board.pll.fout_mhz()),
                mhz_text(board.pll.fin_mhz),
                board.pll.clkfb_div,
                board.pll.clki_div
            ))),
        });
        Ulx3sTop {
            clk_25mhz,
            btn_pwr_n,
            ftdi_txd,
            ftdi_rxd,
            led,
            wifi_gpio0,
            pll,
            bridge: UartBridge::new(board.clocks_per_bit),
            core: Accel::new(cfg),
            clk: Default::default(),
            lock1: Default::default(),
            lock2: Default::default(),
            btn1: Default::default(),
            btn2: Default::default(),
            rst_cnt: Default::default(),
            sr_req: Default::default(),
            own: Default::default(),
            own_we: Default::default(),
            st: Default::default(),
            beat: Default::default(),
            uart1: Default::default(),
            uart2: Default::default(),
            act: Default::default(),
            f_lock: Default::default(),
            f_act: Default::default(),
            f_rst: Default::default(),
            f_irq: Default::default(),
            led_r: Default::default(),
            in_reset: Default::default(),
            poll_tick: Default::default(),
            k_rst_max: Constant::new(((board.reset_cycles - 1) as u64).to_bits()),
            k_rst_last: Constant::new(((board.reset_cycles - 2) as u64).to_bits()),
            k_act_max: Constant::new(((1u64 << 22) - 1).to_bits()),
            k_ctrl: Constant::new(regs::CTRL.to_bits()),
            k_status: Constant::new(regs::STATUS.to_bits()),
            k_soft_reset: Constant::new(ctrl::SOFT_RESET.to_bits()),
        }
    }
}

impl<
        const IA: usize,
        const L: usize,
        const M: usize,
        const NB: usize,
        const BA: usize,
        const NBW: usize,
        const OBA: usize,
        const TA: usize,
        const PW: usize,
    > Logic for Ulx3sTop<IA, L, M, NB, BA, NBW, OBA, TA, PW>
{
    #[hdl_gen]
    fn update(&mut self) {
        self.pll.clkin.next = self.clk_25mhz.val();
        self.clk.next = self.pll.clkout.val();
        dff_setup!(
            self, clk, lock1, lock2, btn1, btn2, rst_cnt, sr_req, own, own_we, st, beat, uart1, uart2, act, f_lock,
            f_act, f_rst, f_irq, led_r
        );
        self.core.clock.next = self.clk.val();
        self.bridge.clock.next = self.clk.val();

        // Reset: PLL lock and the button, each through two flip-flops; then `reset_cycles`.
        self.lock1.d.next = self.pll.locked.val();
        self.lock2.d.next = self.lock1.q.val();
        self.btn1.d.next = !self.btn_pwr_n.val();
        self.btn2.d.next = self.btn1.q.val();
        self.in_reset.next = self.rst_cnt.q.val() != self.k_rst_max.val();
        if !self.lock2.q.val() || self.btn2.q.val() {
            self.rst_cnt.d.next = 0.into();
        } else if self.in_reset.val() {
            self.rst_cnt.d.next = self.rst_cnt.q.val() + 1;
            if self.rst_cnt.q.val() == self.k_rst_last.val() {
                self.sr_req.d.next = true;
            }
        }
        self.beat.d.next = self.beat.q.val() + 1;
        self.poll_tick.next = !self.beat.q.val().get_bits::<10>(0).any();

        // UART: the line reads idle while in reset.
        self.bridge.rx.next = self.ftdi_txd.val() || self.in_reset.val();
        self.ftdi_rxd.next = self.bridge.tx.val();
        self.wifi_gpio0.next = true;

        // Bus arbiter: the bridge, unless the board owns the bus for one access.
        self.core.addr.next = self.bridge.addr.val();
        self.core.wdata.next = self.bridge.wdata.val();
        self.core.we.next = self.bridge.we.val();
        self.core.valid.next = self.bridge.valid.val();
        self.bridge.rdata.next = self.core.rdata.val();
        self.bridge.ready.next = self.core.ready.val() && !self.own.q.val();
        if self.own.q.val() {
            self.core.valid.next = true;
            self.core.we.next = self.own_we.q.val();
            self.core.wdata.next = self.k_soft_reset.val();
            self.core.addr.next = self.k_status.val();
            if self.own_we.q.val() {
                self.core.addr.next = self.k_ctrl.val();
            }
            if self.core.ready.val() {
                self.own.d.next = false;
                if !self.own_we.q.val() {
                    self.st.d.next = self.core.rdata.val().get_bits::<3>(0);
                }
            }
        } else if !self.bridge.valid.val() && !self.in_reset.val() {
            if self.sr_req.q.val() {
                self.own.d.next = true;
                self.own_we.d.next = true;
                self.sr_req.d.next = false;
            } else if self.poll_tick.val() {
                self.own.d.next = true;
                self.own_we.d.next = false;
            }
        }

        // LEDs.
        self.uart1.d.next = !self.ftdi_txd.val() || !self.bridge.tx.val();
        self.uart2.d.next = self.uart1.q.val();
        if self.uart2.q.val() {
            self.act.d.next = self.k_act_max.val();
        } else if self.act.q.val().any() {
            self.act.d.next = self.act.q.val() - 1;
        }
        self.f_lock.d.next = 0.into();
        if self.lock2.q.val() {
            self.f_lock.d.next = 1.into();
        }
        self.f_act.d.next = 0.into();
        if self.act.q.val().any() {
            self.f_act.d.next = 1.into();
        }
        self.f_rst.d.next = 0.into();
        if self.in_reset.val() {
            self.f_rst.d.next = 1.into();
        }
        self.f_irq.d.next = 0.into();
        if self.core.irq.val() {
            self.f_irq.d.next = 1.into();
        }
        self.led_r.d.next = bit_cast::<8, 1>(self.beat.q.val().get_bits::<1>(26))
            | (bit_cast::<8, 3>(self.st.q.val()) << 1)
            | (bit_cast::<8, 1>(self.f_lock.q.val()) << 4)
            | (bit_cast::<8, 1>(self.f_act.q.val()) << 5)
            | (bit_cast::<8, 1>(self.f_rst.q.val()) << 6)
            | (bit_cast::<8, 1>(self.f_irq.q.val()) << 7);
        self.led.next = self.led_r.q.val();
    }
}

/// The board top's Verilog: rust-hdl's, with the UART bridge's 256-word write buffer marked
/// `ram_style = "distributed"` (LUT RAM), so that every block RAM is left to the core (the
/// `ecp5-25f` preset's core alone uses all 56 DP16KD of the LFE5U-25F).
pub fn board_verilog<U: Block>(uut: &U) -> String {
    let v = generate_verilog(uut);
    let start = v.find("module top$bridge$wbuf(").expect("the bridge's write buffer module");
    let end = start + v[start..].find("endmodule").expect("endmodule");
    let decl = "reg[31:0] mem[255:0];";
    let at = start + v[start..end].find(decl).expect("the write buffer's memory declaration");
    format!("{}(* ram_style = \"distributed\" *) {}", &v[..at], &v[at..])
}

/// Collects the pin and timing constraints of a design's signals.
#[derive(Default)]
struct LpfProbe {
    path: Vec<String>,
    namespace: Vec<String>,
    /// LOCATE lines in visit order.
    locate: Vec<String>,
    /// IOBUF attributes per port, in first-seen order.
    iobuf: Vec<(String, Vec<String>)>,
    timing: Vec<String>,
}

impl LpfProbe {
    fn attr(&mut self, port: &str, a: String) {
        match self.iobuf.iter_mut().find(|(p, _)| p == port) {
            Some((_, v)) => {
                if !v.contains(&a) {
                    v.push(a)
                }
            }
            None => self.iobuf.push((port.to_string(), vec![a])),
        }
    }
}

fn io_type(k: &SignalType) -> String {
    match k {
        SignalType::LowVoltageCMOS_1v8 => "LVCMOS18".into(),
        SignalType::LowVoltageCMOS_3v3 => "LVCMOS33".into(),
        SignalType::StubSeriesTerminatedLogic_II => "SSTL18_II".into(),
        SignalType::DifferentialStubSeriesTerminatedLogic_II => "SSTL18D_II".into(),
        SignalType::StubSeriesTerminatedLogic_II_No_Termination => "SSTL18_II".into(),
        SignalType::DifferentialStubSeriesTerminatedLogic_II_No_Termination => "SSTL18D_II".into(),
        SignalType::LowVoltageDifferentialSignal_2v5 => "LVDS".into(),
        SignalType::StubSeriesTerminatedLogic_1v5 => "SSTL15_I".into(),
        SignalType::LowVoltageCMOS_1v5 => "LVCMOS15".into(),
        SignalType::DifferentialStubSeriesTerminatedLogic_1v5 => "SSTL15D_I".into(),
        SignalType::Custom(s) => s.clone(),
    }
}

impl Probe for LpfProbe {
    fn visit_start_scope(&mut self, name: &str, _node: &dyn Block) {
        self.path.push(name.to_string());
        self.namespace.clear();
    }
    fn visit_start_namespace(&mut self, name: &str, _node: &dyn Block) {
        self.namespace.push(name.to_string());
    }
    fn visit_atom(&mut self, name: &str, signal: &dyn Atom) {
        let mut parts = self.namespace.clone();
        parts.push(name.to_string());
        let local = parts.join("$");
        // Ports of the top (depth 1) are PORTs; signals below are NETs named by their path.
        let top_level = self.path.len() == 1;
        let base = if top_level { local } else { format!("{}${local}", self.path[1..].join("$")) };
        for pc in signal.constraints() {
            let pin = if signal.bits() == 1 { base.clone() } else { format!("{base}[{}]", pc.index) };
            match &pc.constraint {
                Constraint::Location(site) => self.locate.push(format!("LOCATE COMP \"{pin}\" SITE \"{site}\";")),
                Constraint::Kind(k) => self.attr(&pin, format!("IO_TYPE={}", io_type(k))),
                Constraint::Custom(a) => self.attr(&pin, a.clone()),
                Constraint::Slew(s) => {
                    self.attr(&pin, format!("SLEWRATE={}", if matches!(s, SlewType::Fast) { "FAST" } else { "SLOW" }))
                }
                Constraint::Timing(Timing::Periodic(p)) => self.timing.push(format!(
                    "FREQUENCY {} \"{pin}\" {} MHz;",
                    if top_level { "PORT" } else { "NET" },
                    mhz_text(1000.0 / p.period_nanoseconds)
                )),
                Constraint::Timing(Timing::Custom(line)) => self.timing.push(line.clone()),
                Constraint::Timing(other) => panic!("no LPF form for the timing constraint {other:?} on {pin}"),
            }
        }
    }
    fn visit_end_namespace(&mut self, _name: &str, _node: &dyn Block) {
        self.namespace.pop();
    }
    fn visit_end_scope(&mut self, _name: &str, _node: &dyn Block) {
        self.path.pop();
    }
}

/// The LPF (nextpnr-ecp5 constraints) of a design whose top is named `top`: a LOCATE and an
/// IOBUF line per constrained pin, FREQUENCY lines for the clocks.
pub fn generate_lpf<U: Block>(uut: &U) -> String {
    let mut p = LpfProbe::default();
    uut.accept("top", &mut p);
    let mut out = vec!["BLOCK RESETPATHS;".to_string(), "BLOCK ASYNCPATHS;".to_string()];
    out.extend(p.locate);
    out.extend(p.iobuf.into_iter().map(|(port, attrs)| format!("IOBUF PORT \"{port}\" {};", attrs.join(" "))));
    out.extend(p.timing);
    out.join("\n") + "\n"
}

/// The pins of a generated LPF: port -> site (for checks and the docs).
pub fn lpf_sites(lpf: &str) -> BTreeMap<String, String> {
    lpf.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("LOCATE COMP \"")?;
            let (port, rest) = rest.split_once('"')?;
            let site = rest.trim().strip_prefix("SITE \"")?.split('"').next()?;
            Some((port.to_string(), site.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_core::uart::{self, Request, Response};

    use crate::TestBoard;

    #[test]
    fn pll_search_matches_ecppll() {
        // Values printed by `yowasp-ecppll -i 25 -o F` (prjtrellis 1.4).
        for (f, clki, clkfb, clkop) in [(75.0, 1, 3, 8), (90.0, 5, 18, 7), (105.0, 5, 21, 6), (100.0, 1, 4, 6)] {
            let p = PllParams::search(OSC_MHZ, f);
            assert_eq!((p.clki_div, p.clkfb_div, p.clkop_div), (clki, clkfb, clkop), "{f} MHz");
            assert!((p.fout_mhz() - f).abs() < 1e-9);
            assert!((400.0..=800.0).contains(&p.fvco_mhz()));
        }
    }

    fn board(cpb: u32) -> TestBoard {
        let b = BoardConfig { pll: PllParams::search(OSC_MHZ, 75.0), clocks_per_bit: cpb, reset_cycles: 16 };
        TestBoard::new(&crate::TEST_CONFIG, &b)
    }

    #[test]
    fn lpf_has_every_pin_and_the_clocks() {
        let mut uut = board(25);
        uut.connect_all();
        let lpf = generate_lpf(&uut);
        let sites = lpf_sites(&lpf);
        assert_eq!(sites["clk_25mhz"], "G2");
        assert_eq!(sites["ftdi_txd"], "M1");
        assert_eq!(sites["ftdi_rxd"], "L4");
        assert_eq!(sites["btn_pwr_n"], "D6");
        for (i, s) in pins::LED.iter().enumerate() {
            assert_eq!(&sites[&format!("led[{i}]")], s);
        }
        assert!(lpf.contains("IOBUF PORT \"btn_pwr_n\" IO_TYPE=LVCMOS33 PULLMODE=UP;"), "{lpf}");
        assert!(lpf.contains("FREQUENCY PORT \"clk_25mhz\" 25 MHz;"), "{lpf}");
        assert!(lpf.contains("# core clock 75 MHz: EHXPLLL CLKI 25 MHz x CLKFB_DIV 3 / CLKI_DIV 1"), "{lpf}");
        let v = board_verilog(&uut);
        assert!(v.contains("(* ram_style = \"distributed\" *) reg[31:0] mem[255:0];"));
        assert!(v.contains("EHXPLLL") && v.contains(".CLKFB_DIV(3)") && v.contains(".CLKOP_DIV(8)"));
        assert!(v.contains("module top("));
    }

    /// Clock the board one 25 MHz period (the simulated PLL passes it through).
    fn tick(uut: &mut TestBoard) {
        for clk in [false, true] {
            uut.clk_25mhz.next = Clock { clk };
            let mut n = 0;
            while {
                uut.update_all();
                uut.has_changed()
            } {
                n += 1;
                assert!(n < 200, "no settle");
            }
        }
    }

    /// A UART read of ID through the board's pins, with the status poller running.
    #[test]
    fn uart_read_through_the_board() {
        const CPB: usize = 4;
        let mut uut = board(CPB as u32);
        uut.btn_pwr_n.next = true;
        uut.ftdi_txd.next = true;
        uut.connect_all();
        // Past reset (16 cycles), the soft-reset write and a few STATUS polls (every 1024 cycles).
        for _ in 0..3000 {
            tick(&mut uut);
        }
        assert!(!uut.own.q.val() || uut.beat.q.val().get_bits::<10>(0).to_u64() < 4, "the poller holds the bus");
        let mut line = vec![true; 8];
        for &b in &uart::encode_request(&Request::Read { addr: regs::ID }, 0x42).unwrap() {
            line.extend(std::iter::repeat_n(false, CPB));
            for i in 0..8 {
                line.extend(std::iter::repeat_n(b >> i & 1 == 1, CPB));
            }
            line.extend(std::iter::repeat_n(true, 2 * CPB));
        }
        let expect = uart::encode_response(&Response::ok(uart::cmd::READ, 0x42, vec![regs::ID_MAGIC])).unwrap();
        // Receive bytes from ftdi_rxd: sample mid-bit.
        let mut bytes = Vec::new();
        let (mut busy, mut cnt, mut cur, mut nbit) = (false, 0usize, 0u8, 0usize);
        for cycle in 0..20_000usize {
            uut.ftdi_txd.next = line.get(cycle).copied().unwrap_or(true);
            tick(&mut uut);
            let tx = uut.ftdi_rxd.val();
            if !busy {
                if !tx {
                    busy = true;
                    cnt = CPB + CPB / 2;
                    nbit = 0;
                    cur = 0;
                }
            } else {
                cnt -= 1;
                if cnt == 0 {
                    if nbit < 8 {
                        cur |= (tx as u8) << nbit;
                        nbit += 1;
                        cnt = CPB;
                    } else {
                        assert!(tx, "stop bit");
                        bytes.push(cur);
                        busy = false;
                    }
                }
            }
            if bytes.len() == expect.len() {
                break;
            }
        }
        assert_eq!(bytes, expect);
        // The poller ran (beat passed several 1024-cycle ticks) and the LEDs show lock.
        let led = uut.led.val().to_u64();
        assert_eq!(led >> 4 & 1, 1, "PLL lock LED, leds {led:08b}");
        assert_eq!(led >> 1 & 7, 0, "idle core: not busy, done or error");
    }
}
