//! The datapath: weight-memory banks, input buffer, table filler, index streamer and lanes, for
//! both core kinds (`k_dense` selects the dense baseline; the unused parts fold away in
//! synthesis because it is a constant).
//!
//! Const parameters (rust-hdl widths must be literal, so derived sizes are parameters too and
//! [`Engine::new`] checks them against the configuration):
//! `IA` input-buffer word address bits, `L` lanes, `M` multipliers, `NB` weight banks,
//! `BA` bank row address bits, `NBW = 32 NB` window bits, `OBA` accumulator rows per lane
//! (address bits), `TA` product-table row address bits (`512 / M` rows), `PW = 16 M`.
//!
//! # Schedule (CREW)
//!
//! The run is a sequence of phases. Phase 0 fills the product table of column 0. Phase `s + 1`
//! accumulates column `s` (one output group of `L` outputs per cycle, `acc = ceil(n_out / L)`
//! cycles) while the filler fills column `s + 1` into the other table buffer
//! (`fill = FILL_LATENCY + ceil(|U| / M)` cycles). A phase ends when both are done, so it lasts
//! `max(acc, fill)`. `DRAIN_CYCLES` (10) after the last group (the banks' address register, the
//! bank-word register, the lanes' word and index-bits registers, lane stages 1 to 6), the last accumulator
//! write happens and `done` pulses. That is `crew_core::cycles::crew_counts` term by term.
//!
//! Every bank registers its row addresses beside its block RAMs, so a port reads two cycles
//! after its address and the engine registers the bank words a cycle later (port A twice: its
//! first register is packed into the DP16KDs, the second is in fabric, half-way across the die).
//! Filler, relative cycle `t`: 0 present the descriptor address (port A window) and the input
//! word; 1 the block RAMs read; 2 and 3 register the bank words; 4 rotate, register the
//! descriptor words; 5 decode; `6 .. C + 5` present table chunk `t - 6` (`M` bytes; the range
//! check ends at 8); four cycles later rotate and register its bytes, then multiply, and write
//! the products to every lane's table the cycle after. The phase ends at `t = C + 8`
//! (FILL_LATENCY = 9), so the last chunk's write lands in the third cycle of the next phase, three
//! cycles before the lanes first read that table (its first group is issued in the phase's
//! first cycle and reads at lane stage 1, five cycles later).
//! Every block RAM output is registered before it feeds logic (Fmax, docs/hw.md).
//!
//! # Schedule (dense)
//!
//! No fill: column `s` streams its `n_out` int8 weights (index width 8) in `acc` cycles, the
//! columns back to back; each lane multiplies weight by activation.

use crate::bank::{Bank, LutRam};
use crate::lane::{Lane, Mult};
use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles;
use crew_core::regs::ErrorCode;
use rust_hdl::prelude::*;

/// Weight banks a core with `lanes` lanes needs: the index window must hold 31 + 8 `lanes` bits
/// (a bit offset inside the first word plus one 8-bit index per lane), and at least two words
/// (a descriptor).
pub fn banks_for(lanes: u32) -> u32 {
    (8 * lanes + 31).div_ceil(32).max(2).next_power_of_two()
}

#[derive(LogicBlock)]
pub struct Engine<
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
    pub clock: Signal<In, Clock>,
    // Bus side (from the shell).
    pub b_word: Signal<In, Bits<32>>,
    pub b_wdata: Signal<In, Bits<32>>,
    pub b_wwe: Signal<In, bool>,
    pub b_iwe: Signal<In, bool>,
    pub b_owe: Signal<In, bool>,
    /// Weight read address of the bus or the CRC engine.
    pub b_wraddr: Signal<In, Bits<32>>,
    pub b_wrdata: Signal<Out, Bits<32>>,
    pub b_irdata: Signal<Out, Bits<32>>,
    pub b_ordata: Signal<Out, Bits<32>>,
    // Run hand-off.
    pub go: Signal<In, bool>,
    pub abort: Signal<In, bool>,
    pub n_out: Signal<In, Bits<32>>,
    pub n_in: Signal<In, Bits<32>>,
    pub base: Signal<In, Bits<32>>,
    pub accum: Signal<In, bool>,
    pub done: Signal<Out, bool>,
    pub err: Signal<Out, bool>,
    pub code: Signal<Out, Bits<8>>,
    pub mults: Signal<Out, Bits<32>>,
    pub adds: Signal<Out, Bits<32>>,

    pub banks: Vec<Bank<BA, NBW>>,
    pub ibuf: LutRam<IA>,
    pub lanes: Vec<Lane<TA, OBA, PW, NBW>>,
    pub mul: Vec<Mult<PW>>,

    // Combinational.
    own: Signal<Local, bool>,
    pa: Signal<Local, Bits<32>>,
    pb: Signal<Local, Bits<32>>,
    rawa: Signal<Local, Bits<NBW>>,
    rawb: Signal<Local, Bits<NBW>>,
    winr: Signal<Local, Bits<NBW>>,
    shr: Signal<Local, Bits<16>>,
    ibyte: Signal<Local, Bits<8>>,
    ibsel: Signal<Local, Bits<2>>,
    d0: Signal<Local, Bits<32>>,
    d1: Signal<Local, Bits<32>>,
    cm1: Signal<Local, Bits<8>>,
    cnt: Signal<Local, Bits<9>>,
    dbits: Signal<Local, Bits<8>>,
    xbits: Signal<Local, Bits<8>>,
    nb0: Signal<Local, Bits<32>>,
    nb1: Signal<Local, Bits<32>>,
    nb2: Signal<Local, Bits<32>>,
    nb3: Signal<Local, Bits<32>>,
    f_rd: Signal<Local, bool>,
    f_fin: Signal<Local, bool>,
    a_fin: Signal<Local, bool>,
    bnd: Signal<Local, bool>,
    /// Any lane's index error, registered after the lanes' OR chain (off the shell's error path).
    lerr: DFF<bool>,

    // Run state.
    running: DFF<bool>,
    drain: DFF<Bits<4>>,
    pend: DFF<Bits<4>>,
    nout: DFF<Bits<32>>,
    nin: DFF<Bits<32>>,
    basev: DFF<Bits<32>>,
    accv: DFF<bool>,
    gm1: DFF<Bits<32>>,
    percol: DFF<Bits<32>>,
    mcnt: DFF<Bits<32>>,
    acnt: DFF<Bits<32>>,
    lo_a: DFF<Bits<16>>,
    lo_b: DFF<Bits<16>>,
    // The bank read data registered right after the block RAMs (their clock-to-out is ~5.6 ns),
    // with the window offsets delayed to match.
    ra: DFF<Bits<NBW>>,
    rb: DFF<Bits<NBW>>,
    // Port A's bank words registered once more, in fabric: `ra` is packed into the DP16KDs'
    // output registers, which on the 85F are spread over the die, so the window rotate gets a
    // register the placer can put half-way.
    ra2: DFF<Bits<NBW>>,
    lo_a2: DFF<Bits<16>>,
    lo_a3: DFF<Bits<16>>,
    lo_a4: DFF<Bits<16>>,
    // The window offset of the issued group, a cycle on (the banks register their addresses).
    lo_bw: DFF<Bits<16>>,
    // The memories' bus read data registered once (accumulators) or twice more (input buffer), to
    // meet the weight window's four cycles.
    ird_q: DFF<Bits<32>>,
    ird_q2: DFF<Bits<32>>,
    ord_q: DFF<Bits<32>>,
    osel: DFF<Bits<16>>,
    osel2: DFF<Bits<16>>,
    osel3: DFF<Bits<16>>,
    // The phase-end conditions, registered a cycle ahead: `a_g == gm1` (the issued group is the
    // column's last; `g_one`: a column has one group) and `f_c + 8` (the filler's last cycle, all
    // ones until `f_c` is known at t = 6).
    a_last: DFF<bool>,
    g_one: DFF<bool>,
    f_cend: DFF<Bits<10>>,
    // Filler.
    f_busy: DFF<bool>,
    f_t: DFF<Bits<10>>,
    // Port A's filler addresses, registered ahead of their cycle (the address mux feeds every
    // bank's row decode): `f_t == 0`, the descriptor address and the table chunk address.
    f_t0: DFF<bool>,
    f_dadr: DFF<Bits<32>>,
    f_cadr: DFF<Bits<32>>,
    f_col: DFF<Bits<32>>,
    f_c: DFF<Bits<10>>,
    f_buf: DFF<bool>,
    f_err: DFF<bool>,
    f_code: DFF<Bits<8>>,
    f_count: DFF<Bits<9>>,
    f_bits: DFF<Bits<4>>,
    f_bmask: DFF<Bits<8>>,
    f_tab: DFF<Bits<32>>,
    f_r0: DFF<Bits<32>>,
    f_act: DFF<Bits<8>>,
    f_act1: DFF<Bits<8>>,
    dd0: DFF<Bits<32>>,
    dd1: DFF<Bits<32>>,
    f_bpos: DFF<Bits<16>>,
    f_boff: DFF<Bits<2>>,
    f_boff2: DFF<Bits<2>>,
    f_boff3: DFF<Bits<2>>,
    f_boff4: DFF<Bits<2>>,
    f_rv: DFF<bool>,
    f_row: DFF<Bits<TA>>,
    f_rv2: DFF<bool>,
    f_row2: DFF<Bits<TA>>,
    f_rv3: DFF<bool>,
    f_row3: DFF<Bits<TA>>,
    f_rv4: DFF<bool>,
    f_row4: DFF<Bits<TA>>,
    f_rv5: DFF<bool>,
    f_row5: DFF<Bits<TA>>,
    // The chunk's M weight bytes, registered before the multipliers (a MULT18X18D without its
    // registers takes 3.9 ns; behind the rotate it was the critical path).
    f_mb: DFF<Bits<PW>>,
    // Descriptor check, pipelined over t = 5..8: width check, n_out * bits in two halves, then
    // their sum, the table and run ends, and the comparison at t = 8.
    f_wbad: DFF<bool>,
    f_p01: DFF<Bits<32>>,
    f_p23: DFF<Bits<32>>,
    f_nb: DFF<Bits<32>>,
    tend: DFF<Bits<32>>,
    rend: DFF<Bits<32>>,
    f_wv: DFF<bool>,
    f_wrow: DFF<Bits<TA>>,
    f_prod: DFF<Bits<PW>>,
    // Accumulation (issue stage).
    a_busy: DFF<bool>,
    a_col: DFF<Bits<32>>,
    a_g: DFF<Bits<32>>,
    a_p: DFF<Bits<32>>,
    a_r0: DFF<Bits<32>>,
    a_b: DFF<Bits<4>>,
    a_bmask: DFF<Bits<8>>,
    a_count: DFF<Bits<9>>,
    a_buf: DFF<bool>,
    a_first: DFF<bool>,
    a_rem: DFF<Bits<32>>,
    // The issued group's parameters at a + 1 (stage 0, bank words arriving), a + 2 (stage x),
    // a + 3 (stage y) and a + 4 (stage 1, the lanes take these).
    // The issued group's parameters at a + 1 while its bank addresses are registered in the banks.
    sw_v: DFF<bool>,
    sw_s: DFF<Bits<16>>,
    sw_b: DFF<Bits<4>>,
    sw_bmask: DFF<Bits<8>>,
    sw_count: DFF<Bits<9>>,
    sw_buf: DFF<bool>,
    sw_row: DFF<Bits<OBA>>,
    sw_rem: DFF<Bits<32>>,
    sw_first: DFF<bool>,
    sw_col: DFF<Bits<32>>,
    s0_v: DFF<bool>,
    s0_s: DFF<Bits<16>>,
    s0_b: DFF<Bits<4>>,
    s0_bmask: DFF<Bits<8>>,
    s0_count: DFF<Bits<9>>,
    s0_buf: DFF<bool>,
    s0_row: DFF<Bits<OBA>>,
    s0_rem: DFF<Bits<32>>,
    s0_first: DFF<bool>,
    s0_byte: DFF<Bits<2>>,
    sx_v: DFF<bool>,
    sx_bmask: DFF<Bits<8>>,
    sx_count: DFF<Bits<9>>,
    sx_buf: DFF<bool>,
    sx_row: DFF<Bits<OBA>>,
    sx_rem: DFF<Bits<32>>,
    sx_first: DFF<bool>,
    sy_v: DFF<bool>,
    sy_bmask: DFF<Bits<8>>,
    sy_count: DFF<Bits<9>>,
    sy_buf: DFF<bool>,
    sy_row: DFF<Bits<OBA>>,
    sy_rem: DFF<Bits<32>>,
    sy_first: DFF<bool>,
    act1: DFF<Bits<8>>,
    act2: DFF<Bits<8>>,
    s1_v: DFF<bool>,
    s1_count: DFF<Bits<9>>,
    s1_buf: DFF<bool>,
    s1_row: DFF<Bits<OBA>>,
    s1_rem: DFF<Bits<32>>,
    s1_first: DFF<bool>,
    s2_act: DFF<Bits<8>>,
    // The input buffer's read address, registered (its LUT-RAM read mux is deep), and the dense
    // byte select that meets its data.
    ibuf_ra: DFF<Bits<IA>>,
    sx_byte: DFF<Bits<2>>,

    k_dense: Constant<bool>,
    k_drain: Constant<Bits<4>>,
    k_pend: Constant<Bits<4>>,
    k_nbmask: Constant<Bits<32>>,
    k_lognb: Constant<Bits<32>>,
    k_nbw: Constant<Bits<16>>,
    k_logl: Constant<Bits<32>>,
    k_lmask: Constant<Bits<32>>,
    k_lanes: Constant<Bits<32>>,
    k_logm: Constant<Bits<32>>,
    k_mults: Constant<Bits<16>>,
    k_mm1: Constant<Bits<10>>,
    k_bufbit: Constant<Bits<TA>>,
    k_wmem: Constant<Bits<32>>,
    k_e_desc: Constant<Bits<8>>,
    k_e_width: Constant<Bits<8>>,
    k_e_index: Constant<Bits<8>>,
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
    > Engine<IA, L, M, NB, BA, NBW, OBA, TA, PW>
{
    /// The datapath of `cfg`; panics when a const parameter does not match it.
    pub fn new(cfg: &DeviceConfig) -> Self {
        assert_eq!(cfg.groups, 1, "the RTL builds groups = 1");
        assert_eq!(L, cfg.lanes as usize, "L");
        assert_eq!(M, cfg.mults as usize, "M");
        assert!(L.is_power_of_two() && M.is_power_of_two() && M <= 256, "lanes and mults are powers of two");
        assert_eq!(NB, banks_for(cfg.lanes) as usize, "NB");
        assert!(NB * 4 >= M, "a table chunk of M bytes fits one window");
        assert_eq!(NBW, 32 * NB, "NBW");
        assert_eq!(1usize << BA, cfg.wmem_words as usize / NB, "BA");
        assert_eq!(cfg.wmem_words as usize % NB, 0, "wmem_words is a multiple of NB");
        assert_eq!(1usize << IA, cfg.ibuf_depth.div_ceil(4) as usize, "IA");
        assert_eq!(1usize << OBA, cfg.obuf_depth as usize / L, "OBA");
        assert_eq!(1usize << TA, 512 / M, "TA");
        assert_eq!(PW, 16 * M, "PW");
        let dense = cfg.kind == CoreKind::Dense;
        let k32 = |v: u64| Constant::new(v.to_bits());
        let k8 = |e: ErrorCode| Constant::new((e as u64).to_bits());
        Engine {
            clock: Default::default(),
            b_word: Default::default(),
            b_wdata: Default::default(),
            b_wwe: Default::default(),
            b_iwe: Default::default(),
            b_owe: Default::default(),
            b_wraddr: Default::default(),
            b_wrdata: Default::default(),
            b_irdata: Default::default(),
            b_ordata: Default::default(),
            go: Default::default(),
            abort: Default::default(),
            n_out: Default::default(),
            n_in: Default::default(),
            base: Default::default(),
            accum: Default::default(),
            done: Default::default(),
            err: Default::default(),
            code: Default::default(),
            mults: Default::default(),
            adds: Default::default(),
            banks: (0..NB).map(|k| Bank::new(k, NB)).collect(),
            ibuf: Default::default(),
            lanes: (0..L).map(|l| Lane::new(l, M, dense)).collect(),
            mul: (0..M).map(Mult::new).collect(),
            own: Default::default(),
            pa: Default::default(),
            pb: Default::default(),
            rawa: Default::default(),
            rawb: Default::default(),
            winr: Default::default(),
            shr: Default::default(),
            ibyte: Default::default(),
            ibsel: Default::default(),
            d0: Default::default(),
            d1: Default::default(),
            cm1: Default::default(),
            cnt: Default::default(),
            dbits: Default::default(),
            xbits: Default::default(),
            nb0: Default::default(),
            nb1: Default::default(),
            nb2: Default::default(),
            nb3: Default::default(),
            f_rd: Default::default(),
            f_fin: Default::default(),
            a_fin: Default::default(),
            bnd: Default::default(),
            lerr: Default::default(),
            running: Default::default(),
            drain: Default::default(),
            pend: Default::default(),
            nout: Default::default(),
            nin: Default::default(),
            basev: Default::default(),
            accv: Default::default(),
            gm1: Default::default(),
            percol: Default::default(),
            mcnt: Default::default(),
            acnt: Default::default(),
            lo_a: Default::default(),
            lo_b: Default::default(),
            ra: Default::default(),
            rb: Default::default(),
            ra2: Default::default(),
            lo_a2: Default::default(),
            lo_a3: Default::default(),
            lo_a4: Default::default(),
            lo_bw: Default::default(),
            ird_q: Default::default(),
            ird_q2: Default::default(),
            ord_q: Default::default(),
            osel: Default::default(),
            osel2: Default::default(),
            osel3: Default::default(),
            a_last: Default::default(),
            g_one: Default::default(),
            f_cend: Default::default(),
            f_busy: Default::default(),
            f_t: Default::default(),
            f_t0: Default::default(),
            f_dadr: Default::default(),
            f_cadr: Default::default(),
            f_col: Default::default(),
            f_c: Default::default(),
            f_buf: Default::default(),
            f_err: Default::default(),
            f_code: Default::default(),
            f_count: Default::default(),
            f_bits: Default::default(),
            f_bmask: Default::default(),
            f_tab: Default::default(),
            f_r0: Default::default(),
            f_act: Default::default(),
            f_act1: Default::default(),
            dd0: Default::default(),
            dd1: Default::default(),
            f_bpos: Default::default(),
            f_boff: Default::default(),
            f_boff2: Default::default(),
            f_boff3: Default::default(),
            f_boff4: Default::default(),
            f_rv: Default::default(),
            f_row: Default::default(),
            f_rv2: Default::default(),
            f_row2: Default::default(),
            f_rv3: Default::default(),
            f_row3: Default::default(),
            f_rv4: Default::default(),
            f_row4: Default::default(),
            f_rv5: Default::default(),
            f_row5: Default::default(),
            f_mb: Default::default(),
            f_wbad: Default::default(),
            f_p01: Default::default(),
            f_p23: Default::default(),
            f_nb: Default::default(),
            tend: Default::default(),
            rend: Default::default(),
            f_wv: Default::default(),
            f_wrow: Default::default(),
            f_prod: Default::default(),
            a_busy: Default::default(),
            a_col: Default::default(),
            a_g: Default::default(),
            a_p: Default::default(),
            a_r0: Default::default(),
            a_b: Default::default(),
            a_bmask: Default::default(),
            a_count: Default::default(),
            a_buf: Default::default(),
            a_first: Default::default(),
            a_rem: Default::default(),
            sw_v: Default::default(),
            sw_s: Default::default(),
            sw_b: Default::default(),
            sw_bmask: Default::default(),
            sw_count: Default::default(),
            sw_buf: Default::default(),
            sw_row: Default::default(),
            sw_rem: Default::default(),
            sw_first: Default::default(),
            sw_col: Default::default(),
            s0_v: Default::default(),
            s0_s: Default::default(),
            s0_b: Default::default(),
            s0_bmask: Default::default(),
            s0_count: Default::default(),
            s0_buf: Default::default(),
            s0_row: Default::default(),
            s0_rem: Default::default(),
            s0_first: Default::default(),
            s0_byte: Default::default(),
            sx_v: Default::default(),
            sx_bmask: Default::default(),
            sx_count: Default::default(),
            sx_buf: Default::default(),
            sx_row: Default::default(),
            sx_rem: Default::default(),
            sx_first: Default::default(),
            sy_v: Default::default(),
            sy_bmask: Default::default(),
            sy_count: Default::default(),
            sy_buf: Default::default(),
            sy_row: Default::default(),
            sy_rem: Default::default(),
            sy_first: Default::default(),
            act1: Default::default(),
            act2: Default::default(),
            s1_v: Default::default(),
            s1_count: Default::default(),
            s1_buf: Default::default(),
            s1_row: Default::default(),
            s1_rem: Default::default(),
            s1_first: Default::default(),
            s2_act: Default::default(),
            ibuf_ra: Default::default(),
            sx_byte: Default::default(),
            k_dense: Constant::new(dense),
            // The lane pipeline after the last issue (crew_core's DRAIN_CYCLES), and three less:
            // the cycle its index check reaches the engine (lane stage 2, then `lerr`; stages 4 to
            // 6 select, add and write back), when a pending descriptor error may follow.
            k_drain: Constant::new((cycles::DRAIN_CYCLES as u32).to_bits()),
            k_pend: Constant::new((cycles::DRAIN_CYCLES as u32 - 3).to_bits()),
            k_nbmask: k32(NB as u64 - 1),
            k_lognb: k32(NB.trailing_zeros() as u64),
            k_nbw: Constant::new((NBW as u64).to_bits()),
            k_logl: k32(L.trailing_zeros() as u64),
            k_lmask: k32(L as u64 - 1),
            k_lanes: k32(L as u64),
            k_logm: k32(M.trailing_zeros() as u64),
            k_mults: Constant::new((M as u64).to_bits()),
            k_mm1: Constant::new((M as u64 - 1).to_bits()),
            k_bufbit: Constant::new((1u64 << (TA - 1)).to_bits()),
            k_wmem: k32(cfg.wmem_words as u64),
            k_e_desc: k8(ErrorCode::DescriptorOutOfRange),
            k_e_width: k8(ErrorCode::BadWidth),
            k_e_index: k8(ErrorCode::IndexOutOfRange),
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
    > Logic for Engine<IA, L, M, NB, BA, NBW, OBA, TA, PW>
{
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, running, drain, pend, lerr, nout, nin, basev, accv, gm1, percol, mcnt, acnt, lo_a, lo_b, ra,
            rb, ra2, lo_a2, lo_a3, lo_a4, lo_bw, ird_q, ird_q2, ord_q, osel, osel2, osel3, a_last, g_one, f_cend,
            f_busy, f_t, f_t0, f_dadr, f_cadr, f_col, f_c, f_buf, f_err, f_code, f_count, f_bits, f_bmask, f_tab, f_r0,
            f_act, f_act1, dd0, dd1, f_bpos, f_boff, f_boff2, f_boff3, f_boff4, f_rv, f_row, f_rv2, f_row2, f_rv3,
            f_row3, f_rv4, f_row4, f_rv5, f_row5, f_mb, f_wbad, f_p01, f_p23, f_nb, tend, rend, f_wv, f_wrow, f_prod,
            a_busy, a_col, a_g, a_p, a_r0, a_b, a_bmask, a_count, a_buf, a_first, a_rem, sw_v, sw_s, sw_b, sw_bmask,
            sw_count, sw_buf, sw_row, sw_rem, sw_first, sw_col, s0_v, s0_s, s0_b, s0_bmask, s0_count, s0_buf, s0_row,
            s0_rem, s0_first, s0_byte, sx_v, sx_bmask, sx_count, sx_buf, sx_row, sx_rem, sx_first, sy_v, sy_bmask,
            sy_count, sy_buf, sy_row, sy_rem, sy_first, act1, act2, s1_v, s1_count, s1_buf, s1_row, s1_rem, s1_first,
            s2_act, ibuf_ra, sx_byte
        );
        self.ibuf.read_clock.next = self.clock.val();
        self.ibuf.write_clock.next = self.clock.val();
        self.own.next = self.running.q.val();
        self.done.next = false;
        self.err.next = false;
        self.code.next = 0.into();
        self.mults.next = self.mcnt.q.val();
        self.adds.next = self.acnt.q.val();

        // ---- Memory ports. Port A: filler (descriptor, table chunks) or bus/CRC.
        self.pa.next = self.f_cadr.q.val();
        if self.f_t0.q.val() {
            self.pa.next = self.f_dadr.q.val();
        }
        if !self.own.val() {
            self.pa.next = self.b_wraddr.val();
        }
        // Port B: the index stream of the group issued this cycle.
        self.pb.next = self.a_r0.q.val() + (self.a_p.q.val() >> 5);
        for k in 0..NB {
            self.banks[k].clock.next = self.clock.val();
            self.banks[k].a_addr.next = self.pa.val();
            self.banks[k].a_wdata.next = self.b_wdata.val();
            self.banks[k].a_we.next = self.b_wwe.val() && !self.own.val();
            self.banks[k].b_addr.next = self.pb.val();
            self.banks[k].a_cin.next = 0.into();
            self.banks[k].b_cin.next = 0.into();
        }
        for k in 0..(NB - 1usize) {
            self.banks[k].a_cin.next = self.banks[k + 1].a_cout.val();
            self.banks[k].b_cin.next = self.banks[k + 1].b_cout.val();
        }
        self.lo_a.d.next = bit_cast::<16, 32>(self.pa.val() & self.k_nbmask.val());
        self.lo_bw.d.next = bit_cast::<16, 32>(self.pb.val() & self.k_nbmask.val());
        self.lo_b.d.next = self.lo_bw.q.val();
        self.lo_a2.d.next = self.lo_a.q.val();
        self.lo_a3.d.next = self.lo_a2.q.val();
        self.lo_a4.d.next = self.lo_a3.q.val();
        // Windows: the bank words, registered after the block RAMs (port A twice), rotated so that
        // word 0 is the addressed one (the shell gives bus and CRC reads of port A four cycles).
        self.rawa.next = self.banks[0].a_cout.val();
        self.rawb.next = self.banks[0].b_cout.val();
        self.ra.d.next = self.rawa.val();
        self.rb.d.next = self.rawb.val();
        self.ra2.d.next = self.ra.q.val();
        self.shr.next = self.lo_a4.q.val() << 5;
        self.winr.next =
            (self.ra2.q.val() >> self.shr.val()) | (self.ra2.q.val() << (self.k_nbw.val() - self.shr.val()));
        self.b_wrdata.next = self.winr.val().get_bits::<32>(0);

        // Input buffer: the filler's column (CREW) or the issued column (dense); bus when idle.
        // Read data two cycles after the address (registered twice more for the bus's four); the filler's
        // column stays put for a whole phase; dense meets it with sx_byte and act1/act2/s2_act.
        self.ibuf_ra.d.next = bit_cast::<IA, 32>(self.f_col.q.val() >> 2);
        if self.k_dense.val() {
            self.ibuf_ra.d.next = bit_cast::<IA, 32>(self.sw_col.q.val() >> 2);
        }
        if !self.own.val() {
            self.ibuf_ra.d.next = bit_cast::<IA, 32>(self.b_word.val());
        }
        self.ibuf.read_address.next = self.ibuf_ra.q.val();
        self.ibuf.write_address.next = bit_cast::<IA, 32>(self.b_word.val());
        self.ibuf.write_data.next = self.b_wdata.val();
        self.ibuf.write_enable.next = self.b_iwe.val() && !self.own.val();
        self.ird_q.d.next = self.ibuf.read_data.val();
        self.ird_q2.d.next = self.ird_q.q.val();
        self.b_irdata.next = self.ird_q2.q.val();
        self.sx_byte.d.next = self.s0_byte.q.val();
        self.ibsel.next = self.sx_byte.q.val();
        if !self.k_dense.val() {
            self.ibsel.next = bit_cast::<2, 32>(self.f_col.q.val());
        }
        self.ibyte.next = bit_cast::<8, 32>(self.ibuf.read_data.val() >> (bit_cast::<32, 2>(self.ibsel.val()) << 3));
        self.act1.d.next = self.ibyte.val();
        self.act2.d.next = self.act1.q.val();
        self.s2_act.d.next = self.act2.q.val();
        // The index stream: the bank words are registered at a + 1 (stage 0); each lane picks its
        // two words of them at a + 2 (stage x), its index at a + 3 (stage y) and checks its index
        // at a + 4 (stage 1).
        self.sx_v.d.next = self.s0_v.q.val();
        self.sx_bmask.d.next = self.s0_bmask.q.val();
        self.sx_count.d.next = self.s0_count.q.val();
        self.sx_buf.d.next = self.s0_buf.q.val();
        self.sx_row.d.next = self.s0_row.q.val();
        self.sx_rem.d.next = self.s0_rem.q.val();
        self.sx_first.d.next = self.s0_first.q.val();
        self.sy_v.d.next = self.sx_v.q.val();
        self.s1_v.d.next = self.sy_v.q.val();
        self.sy_bmask.d.next = self.sx_bmask.q.val();
        self.sy_count.d.next = self.sx_count.q.val();
        self.s1_count.d.next = self.sy_count.q.val();
        self.sy_buf.d.next = self.sx_buf.q.val();
        self.s1_buf.d.next = self.sy_buf.q.val();
        self.sy_row.d.next = self.sx_row.q.val();
        self.s1_row.d.next = self.sy_row.q.val();
        self.sy_rem.d.next = self.sx_rem.q.val();
        self.s1_rem.d.next = self.sy_rem.q.val();
        self.sy_first.d.next = self.sx_first.q.val();
        self.s1_first.d.next = self.sy_first.q.val();

        // ---- Lanes.
        // The lanes answer a bus read from their registered accumulator read (three cycles: the
        // address is registered in the lane; registered once more here for the bus's four).
        self.osel.d.next = bit_cast::<16, 32>(self.b_word.val() & self.k_lmask.val());
        self.osel2.d.next = self.osel.q.val();
        self.osel3.d.next = self.osel2.q.val();
        for l in 0..L {
            self.lanes[l].clock.next = self.clock.val();
            self.lanes[l].own.next = self.own.val();
            self.lanes[l].bus_row.next = bit_cast::<OBA, 32>(self.b_word.val() >> self.k_logl.val());
            self.lanes[l].bus_lane.next = bit_cast::<16, 32>(self.b_word.val() & self.k_lmask.val());
            self.lanes[l].bus_wdata.next = self.b_wdata.val();
            self.lanes[l].bus_we.next = self.b_owe.val() && !self.own.val();
            self.lanes[l].bus_sel.next = self.osel3.q.val();
            self.lanes[l].ord_in.next = 0.into();
            self.lanes[l].err_in.next = false;
            self.lanes[l].tw_en.next = self.f_wv.q.val();
            self.lanes[l].tw_row.next = self.f_wrow.q.val();
            self.lanes[l].tw_data.next = self.f_prod.q.val();
            self.lanes[l].s0_s.next = self.s0_s.q.val();
            self.lanes[l].s0_b.next = self.s0_b.q.val();
            self.lanes[l].s0_lo.next = self.lo_b.q.val();
            self.lanes[l].raw.next = self.rb.q.val();
            self.lanes[l].sy_bmask.next = self.sy_bmask.q.val();
            self.lanes[l].s1_v.next = self.s1_v.q.val();
            self.lanes[l].s1_count.next = self.s1_count.q.val();
            self.lanes[l].s1_buf.next = self.s1_buf.q.val();
            self.lanes[l].s1_row.next = self.s1_row.q.val();
            self.lanes[l].s1_rem.next = self.s1_rem.q.val();
            self.lanes[l].s1_first.next = self.s1_first.q.val();
            self.lanes[l].act.next = self.s2_act.q.val();
        }
        for l in 0..(L - 1usize) {
            self.lanes[l].ord_in.next = self.lanes[l + 1].ord_out.val();
            self.lanes[l].err_in.next = self.lanes[l + 1].err_out.val();
        }
        self.ord_q.d.next = self.lanes[0].ord_out.val();
        self.b_ordata.next = self.ord_q.q.val();
        self.lerr.d.next = self.lanes[0].err_out.val();

        // ---- Multipliers: chunk bytes of the registered port-A window times the activation.
        self.f_mb.d.next = bit_cast::<PW, NBW>(self.winr.val() >> (bit_cast::<16, 2>(self.f_boff4.q.val()) << 3));
        for k in 0..M {
            self.mul[k].act.next = self.f_act.q.val();
            self.mul[k].wbyte.next = self.f_mb.q.val().get_bits::<8>(k * 8);
            self.mul[k].pin.next = 0.into();
        }
        for k in 0..(M - 1usize) {
            self.mul[k].pin.next = self.mul[k + 1].pout.val();
        }

        // ---- Filler (CREW).
        // The descriptor address is registered in the banks at t = 0, read at 1, its words
        // registered at 2 and 3, rotated and registered at 4, decoded at 5 and checked from 6 to 8.
        self.dd0.d.next = self.winr.val().get_bits::<32>(0);
        self.dd1.d.next = self.winr.val().get_bits::<32>(32);
        self.f_act1.d.next = self.ibyte.val();
        self.d0.next = self.dd0.q.val();
        self.d1.next = self.dd1.q.val();
        self.cm1.next = self.d0.val().get_bits::<8>(24);
        self.cnt.next = bit_cast::<9, 8>(self.cm1.val()) + 1;
        self.dbits.next = self.d1.val().get_bits::<8>(24);
        self.xbits.next = 0.into();
        if self.cm1.val() >= 1 {
            self.xbits.next = 1.into();
        }
        if self.cm1.val() >= 2 {
            self.xbits.next = 2.into();
        }
        if self.cm1.val() >= 4 {
            self.xbits.next = 3.into();
        }
        if self.cm1.val() >= 8 {
            self.xbits.next = 4.into();
        }
        if self.cm1.val() >= 16 {
            self.xbits.next = 5.into();
        }
        if self.cm1.val() >= 32 {
            self.xbits.next = 6.into();
        }
        if self.cm1.val() >= 64 {
            self.xbits.next = 7.into();
        }
        if self.cm1.val() >= 128 {
            self.xbits.next = 8.into();
        }
        // n_out * bits as shifts and adds.
        self.nb0.next = 0.into();
        if self.dbits.val().get_bit(0) {
            self.nb0.next = self.nout.q.val();
        }
        self.nb1.next = 0.into();
        if self.dbits.val().get_bit(1) {
            self.nb1.next = self.nout.q.val() << 1;
        }
        self.nb2.next = 0.into();
        if self.dbits.val().get_bit(2) {
            self.nb2.next = self.nout.q.val() << 2;
        }
        self.nb3.next = 0.into();
        if self.dbits.val().get_bit(3) {
            self.nb3.next = self.nout.q.val() << 3;
        }
        // The range check's sums (as before, regrouped), registered every cycle from the values
        // latched at t = 5: f_nb and tend are valid from t = 7, rend from t = 8.
        self.f_nb.d.next = self.f_p01.q.val() + self.f_p23.q.val();
        self.tend.d.next = self.f_tab.q.val() + ((bit_cast::<32, 9>(self.f_count.q.val()) + 3) >> 2);
        self.rend.d.next = self.f_r0.q.val() + ((self.f_nb.q.val() + 31) >> 5);
        self.f_rd.next = self.f_busy.q.val() && (self.f_t.q.val() >= 6) && (self.f_t.q.val() < self.f_c.q.val() + 6);
        self.f_rv.d.next = self.f_rd.val();
        self.f_row.d.next = bit_cast::<TA, 10>(self.f_t.q.val() - 6);
        if self.f_buf.q.val() {
            self.f_row.d.next = bit_cast::<TA, 10>(self.f_t.q.val() - 6) | self.k_bufbit.val();
        }
        self.f_boff.d.next = bit_cast::<2, 16>(self.f_bpos.q.val());
        self.f_boff2.d.next = self.f_boff.q.val();
        self.f_boff3.d.next = self.f_boff2.q.val();
        self.f_boff4.d.next = self.f_boff3.q.val();
        self.f_rv2.d.next = self.f_rv.q.val();
        self.f_row2.d.next = self.f_row.q.val();
        self.f_rv3.d.next = self.f_rv2.q.val();
        self.f_row3.d.next = self.f_row2.q.val();
        self.f_rv4.d.next = self.f_rv3.q.val();
        self.f_row4.d.next = self.f_row3.q.val();
        self.f_rv5.d.next = self.f_rv4.q.val();
        self.f_row5.d.next = self.f_row4.q.val();
        self.f_wv.d.next = self.f_rv5.q.val();
        self.f_wrow.d.next = self.f_row5.q.val();
        self.f_prod.d.next = self.mul[0].pout.val();
        if self.f_busy.q.val() {
            // Count up to the column's last write, then hold until the phase ends.
            if self.f_t.q.val() == 6 {
                self.f_cend.d.next = self.f_c.q.val() + 8;
            }
            if self.f_t.q.val() != self.f_cend.q.val() {
                self.f_t.d.next = self.f_t.q.val() + 1;
                self.f_t0.d.next = false;
            }
            if self.f_t.q.val() >= 6 {
                self.f_bpos.d.next = self.f_bpos.q.val() + self.k_mults.val();
                self.f_cadr.d.next =
                    self.f_tab.q.val() + (bit_cast::<32, 16>(self.f_bpos.q.val() + self.k_mults.val()) >> 2);
            }
            if self.f_t.q.val() == 5 {
                self.f_bpos.d.next = 0.into();
                self.f_wbad.d.next = self.dbits.val() != self.xbits.val();
                self.f_p01.d.next = self.nb0.val() + self.nb1.val();
                self.f_p23.d.next = self.nb2.val() + self.nb3.val();
                self.mcnt.d.next = self.mcnt.q.val() + bit_cast::<32, 9>(self.cnt.val());
                self.f_count.d.next = self.cnt.val();
                self.f_bits.d.next = bit_cast::<4, 8>(self.dbits.val());
                self.f_bmask.d.next = bit_cast::<8, 9>((bit_cast::<9, 8>(1.into()) << self.dbits.val()) - 1);
                self.f_tab.d.next = self.basev.q.val() + (self.d0.val() & 0xFF_FFFF);
                self.f_cadr.d.next = self.basev.q.val() + (self.d0.val() & 0xFF_FFFF);
                self.f_r0.d.next = self.basev.q.val() + (self.d1.val() & 0xFF_FFFF);
                self.f_c.d.next = (bit_cast::<10, 9>(self.cnt.val()) + self.k_mm1.val()) >> self.k_logm.val();
                self.f_act.d.next = self.f_act1.q.val();
            }
            // The chunk reads start at t = 6, before the check; a bad descriptor raises `f_err` and
            // stops the filler from t = 9, before its column can reach the lanes (the phase ends at
            // t = C + 8 >= 9). MULT_COUNT is only reported by a run that ends without error.
            if self.f_t.q.val() == 8 {
                if self.f_wbad.q.val() {
                    self.f_err.d.next = true;
                    self.f_code.d.next = self.k_e_width.val();
                    self.f_busy.d.next = false;
                } else if (self.tend.q.val() > self.k_wmem.val()) || (self.rend.q.val() > self.k_wmem.val()) {
                    self.f_err.d.next = true;
                    self.f_code.d.next = self.k_e_desc.val();
                    self.f_busy.d.next = false;
                }
            }
        }
        self.f_fin.next = self.k_dense.val() || !self.f_busy.q.val() || (self.f_t.q.val() == self.f_cend.q.val());

        // ---- Issue one output group per cycle.
        self.a_fin.next = !self.a_busy.q.val() || self.a_last.q.val();
        self.sw_v.d.next = self.a_busy.q.val();
        self.sw_s.d.next = bit_cast::<16, 32>(self.a_p.q.val() & 31);
        self.sw_b.d.next = self.a_b.q.val();
        self.sw_bmask.d.next = self.a_bmask.q.val();
        self.sw_count.d.next = self.a_count.q.val();
        self.sw_buf.d.next = self.a_buf.q.val();
        self.sw_row.d.next = bit_cast::<OBA, 32>(self.a_g.q.val());
        self.sw_rem.d.next = self.a_rem.q.val();
        self.sw_first.d.next = self.a_first.q.val();
        self.sw_col.d.next = self.a_col.q.val();
        self.s0_v.d.next = self.sw_v.q.val();
        self.s0_s.d.next = self.sw_s.q.val();
        self.s0_b.d.next = self.sw_b.q.val();
        self.s0_bmask.d.next = self.sw_bmask.q.val();
        self.s0_count.d.next = self.sw_count.q.val();
        self.s0_buf.d.next = self.sw_buf.q.val();
        self.s0_row.d.next = self.sw_row.q.val();
        self.s0_rem.d.next = self.sw_rem.q.val();
        self.s0_first.d.next = self.sw_first.q.val();
        self.s0_byte.d.next = bit_cast::<2, 32>(self.sw_col.q.val());
        if self.a_busy.q.val() {
            self.a_g.d.next = self.a_g.q.val() + 1;
            self.a_last.d.next = self.a_g.q.val() + 1 == self.gm1.q.val();
            self.a_p.d.next = self.a_p.q.val() + (bit_cast::<32, 4>(self.a_b.q.val()) << self.k_logl.val());
            self.a_rem.d.next = self.a_rem.q.val() - self.k_lanes.val();
            // The column's last group: wait for the phase end (the filler may still be busy).
            if self.a_last.q.val() {
                self.a_busy.d.next = false;
            }
        }

        // ---- Phase boundaries.
        self.bnd.next = self.running.q.val()
            && (self.drain.q.val() == 0)
            && (self.pend.q.val() == 0)
            && self.f_fin.val()
            && self.a_fin.val();
        if self.bnd.val() {
            if self.k_dense.val() {
                if self.a_col.q.val() + 1 < self.nin.q.val() {
                    self.a_busy.d.next = true;
                    self.a_col.d.next = self.a_col.q.val() + 1;
                    self.a_g.d.next = 0.into();
                    self.a_last.d.next = self.g_one.q.val();
                    self.a_p.d.next = 0.into();
                    self.a_r0.d.next = self.a_r0.q.val() + self.percol.q.val();
                    self.a_rem.d.next = self.nout.q.val();
                    self.a_first.d.next = false;
                    self.acnt.d.next = self.acnt.q.val() + self.nout.q.val();
                    self.mcnt.d.next = self.mcnt.q.val() + self.nout.q.val();
                } else {
                    self.a_busy.d.next = false;
                    self.drain.d.next = self.k_drain.val();
                }
            } else if self.f_err.q.val() {
                self.a_busy.d.next = false;
                self.pend.d.next = self.k_pend.val();
            } else if self.f_busy.q.val() {
                // The filled column moves to the lanes; the filler takes the next one.
                self.a_busy.d.next = true;
                self.a_col.d.next = self.f_col.q.val();
                self.a_g.d.next = 0.into();
                self.a_last.d.next = self.g_one.q.val();
                self.a_p.d.next = 0.into();
                self.a_r0.d.next = self.f_r0.q.val();
                self.a_b.d.next = self.f_bits.q.val();
                self.a_bmask.d.next = self.f_bmask.q.val();
                self.a_count.d.next = self.f_count.q.val();
                self.a_buf.d.next = self.f_buf.q.val();
                self.a_first.d.next = (self.f_col.q.val() == 0) && !self.accv.q.val();
                self.a_rem.d.next = self.nout.q.val();
                self.acnt.d.next = self.acnt.q.val() + self.nout.q.val();
                self.f_t.d.next = 0.into();
                self.f_cend.d.next = 0x3FF.into();
                self.f_t0.d.next = true;
                self.f_col.d.next = self.f_col.q.val() + 1;
                self.f_dadr.d.next = self.basev.q.val() + ((self.f_col.q.val() + 1) << 1);
                self.f_buf.d.next = !self.f_buf.q.val();
                if self.f_col.q.val() + 1 >= self.nin.q.val() {
                    self.f_busy.d.next = false;
                }
            } else {
                self.a_busy.d.next = false;
                self.drain.d.next = self.k_drain.val();
            }
        }
        if self.drain.q.val() != 0 {
            self.drain.d.next = self.drain.q.val() - 1;
            if self.drain.q.val() == 1 {
                self.done.next = true;
                self.running.d.next = false;
            }
        }

        // ---- Errors: an index error (registered after lane stage 1, and after the lanes' OR chain)
        // first, then a pending descriptor error, raised once the previous column's last index has
        // been checked.
        if self.pend.q.val() != 0 {
            self.pend.d.next = self.pend.q.val() - 1;
        }
        if self.running.q.val() && (self.lerr.q.val() || (self.pend.q.val() == 1)) {
            self.err.next = true;
            self.code.next = self.f_code.q.val();
            if self.lerr.q.val() {
                self.code.next = self.k_e_index.val();
            }
            self.done.next = false;
            self.running.d.next = false;
            self.drain.d.next = 0.into();
            self.pend.d.next = 0.into();
            self.f_busy.d.next = false;
            self.a_busy.d.next = false;
        }

        // ---- Start and abort.
        if self.go.val() {
            self.running.d.next = true;
            self.drain.d.next = 0.into();
            self.pend.d.next = 0.into();
            self.f_err.d.next = false;
            self.nout.d.next = self.n_out.val();
            self.nin.d.next = self.n_in.val();
            self.basev.d.next = self.base.val();
            self.accv.d.next = self.accum.val();
            self.gm1.d.next = ((self.n_out.val() + self.k_lmask.val()) >> self.k_logl.val()) - 1;
            self.g_one.d.next = self.n_out.val() <= self.k_lanes.val();
            self.percol.d.next = (self.n_out.val() + 3) >> 2;
            self.f_col.d.next = 0.into();
            self.f_t.d.next = 0.into();
            self.f_cend.d.next = 0x3FF.into();
            self.f_t0.d.next = true;
            self.f_dadr.d.next = self.base.val();
            self.f_buf.d.next = false;
            self.a_g.d.next = 0.into();
            self.a_last.d.next = self.n_out.val() <= self.k_lanes.val();
            self.a_p.d.next = 0.into();
            if self.k_dense.val() {
                self.f_busy.d.next = false;
                self.a_busy.d.next = true;
                self.a_col.d.next = 0.into();
                self.a_r0.d.next = self.base.val();
                self.a_b.d.next = 8.into();
                self.a_bmask.d.next = 0xFF.into();
                self.a_count.d.next = 256.into();
                self.a_buf.d.next = false;
                self.a_first.d.next = !self.accum.val();
                self.a_rem.d.next = self.n_out.val();
                self.acnt.d.next = self.n_out.val();
                self.mcnt.d.next = self.n_out.val();
            } else {
                self.f_busy.d.next = true;
                self.a_busy.d.next = false;
                self.acnt.d.next = 0.into();
                self.mcnt.d.next = 0.into();
            }
        }
        if self.abort.val() {
            self.running.d.next = false;
            self.drain.d.next = 0.into();
            self.pend.d.next = 0.into();
            self.f_busy.d.next = false;
            self.a_busy.d.next = false;
        }
    }
}
