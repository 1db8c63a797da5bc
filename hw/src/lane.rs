//! One output lane and one table-fill multiplier.
//!
//! A [`Lane`] owns its slice of the accumulators (outputs `j` with `j % LANES == lane`, row
//! `j / LANES`) and, for CREW, its private copy of the double-buffered product table. Its
//! pipeline, for the output group `g` the engine issued in cycle `a` (the engine registers the
//! bank words in cycle `a + 1`):
//!
//! * stage 0 (cycle `a + 1`): the index's bit offset `s + lane * b` in the window, and its byte in
//!   the bank words (the window starts at bank word `lo`), registered;
//! * stage x (cycle `a + 2`): register the two bank words holding that byte and the next (a
//!   word rotate of the bank words);
//! * stage y (cycle `a + 3`): take the `b`-bit index from the byte's bit offset on and register
//!   it;
//! * stage 1 (cycle `a + 4`): check the index against the column's unique count, present the
//!   product-table row (straight from the index register: the table's block RAMs may sit across
//!   the 85F's die from the lane's logic, and that route takes most of a cycle by itself);
//! * stage 2 (cycle `a + 5`): the product-table row is registered (in the DP16KD's output
//!   register, scripts/pack-bram-outreg.py), or, dense, multiply weight by activation and
//!   register the product; present the accumulator row;
//! * stage 3 (cycle `a + 6`): the table row is registered again, in fabric; the accumulator is
//!   registered (its DP16KD output register);
//! * stage 4 (cycle `a + 7`): select the product from the row and register it; the accumulator
//!   is registered again, in fabric;
//! * stage 5 (cycle `a + 8`): add the product to the accumulator (or not, on the first column of
//!   a run without ACCUMULATE) and register the sum;
//! * stage 6 (cycle `a + 9`): write the sum back.
//!
//! The bank words come from block RAMs spread over the whole die (128 of them on the 85F), so
//! the rotate is two stages, each with a register the placer can put half-way: a whole-word
//! rotate (a `NBW / 32`-to-1 mux) straight out of the block RAMs' output registers, then a
//! byte select (4 to 1). As one stage, a far bank's word crossed the 85F die into a 32-to-1 byte
//! rotate in the same cycle: 14.4 ns.
//!
//! Select, add and write were one stage: a block RAM output through the select and the 32-bit add
//! into the accumulator's block RAM took 11.8 ns on the 25F; with the select a stage earlier the
//! accumulator's round trip (read data, forwarding mux, add, write data) still took 10.9 ns, of
//! which 5.2 ns were the routes between the block RAM and the adder; so the sum is registered
//! before it is written. On the 85F the table's and the accumulator's block RAMs may sit across
//! the die from the lane's logic (all 208 are used): a route from a block RAM's output register
//! alone took 5.7 ns of an 11.65 ns path into the add. So both outputs are registered once more
//! in fabric (`tq4`, `aq5`), and the select and the add start from registers the placer can put
//! beside them.
//!
//! Read-modify-write hazard: the accumulator read in stage 2 misses the writes of the four
//! groups ahead (their stage 6 is in the read's cycle or one of the next three; a read of the row
//! being written is undefined, [`BlockRam`]), so stage 5 takes the sum of the group one ahead,
//! else two, three or four ahead, when it has the same row (the match is registered a cycle
//! early). CREW reaches this only when a column phase is that short, which it never is (a phase
//! lasts at least FILL_LATENCY + 1 cycles); the dense baseline does whenever `N_OUT <= 4 LANES`.
//!
//! The product table holds `MULTS` products per row (`PW = 16 * MULTS` bits): the fill writes
//! one row per cycle, and entry `k` of buffer `buf` is product `k % MULTS` of row
//! `buf * 256 / MULTS + k / MULTS`.

use crate::bank::BlockRam;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct Lane<const TA: usize, const OBA: usize, const PW: usize, const NBW: usize> {
    pub clock: Signal<In, Clock>,
    /// The engine owns the accumulators (a run is in progress).
    pub own: Signal<In, bool>,
    // Bus side of the accumulator slice.
    pub bus_row: Signal<In, Bits<OBA>>,
    pub bus_lane: Signal<In, Bits<16>>,
    pub bus_wdata: Signal<In, Bits<32>>,
    pub bus_we: Signal<In, bool>,
    /// Lane whose read data the bus wants (registered three times by the engine, to meet `aq4`).
    pub bus_sel: Signal<In, Bits<16>>,
    pub ord_in: Signal<In, Bits<32>>,
    pub ord_out: Signal<Out, Bits<32>>,
    // Product-table fill.
    pub tw_en: Signal<In, bool>,
    pub tw_row: Signal<In, Bits<TA>>,
    pub tw_data: Signal<In, Bits<PW>>,
    // Stage 0, broadcast to all lanes: the window's bit offset, index width and first bank word.
    pub s0_s: Signal<In, Bits<16>>,
    pub s0_b: Signal<In, Bits<4>>,
    pub s0_lo: Signal<In, Bits<16>>,
    /// Stage x: the bank words, unrotated, registered in the block RAMs.
    pub raw: Signal<In, Bits<NBW>>,
    /// Stage y: the index mask `2^b - 1`.
    pub sy_bmask: Signal<In, Bits<8>>,
    // Stage 1, broadcast to all lanes.
    pub s1_v: Signal<In, bool>,
    pub s1_count: Signal<In, Bits<9>>,
    pub s1_buf: Signal<In, bool>,
    pub s1_row: Signal<In, Bits<OBA>>,
    /// Outputs left in this group: lane `l` is valid when `l < s1_rem`.
    pub s1_rem: Signal<In, Bits<32>>,
    pub s1_first: Signal<In, bool>,
    /// Dense: the column's activation, at stage 2.
    pub act: Signal<In, Bits<8>>,
    pub err_in: Signal<In, bool>,
    pub err_out: Signal<Out, bool>,

    pub tab: BlockRam<PW, TA>,
    pub acc: BlockRam<32, OBA>,

    off: Signal<Local, Bits<32>>,
    rot: Signal<Local, Bits<NBW>>,
    wsh: Signal<Local, Bits<64>>,
    t0: Signal<Local, Bits<32>>,
    t1: Signal<Local, Bits<32>>,
    t2: Signal<Local, Bits<32>>,
    t3: Signal<Local, Bits<32>>,
    v1: Signal<Local, bool>,
    wx: Signal<Local, Bits<16>>,
    ax: Signal<Local, Bits<16>>,
    mul: Signal<Local, Bits<32>>,
    accv: Signal<Local, Bits<32>>,
    sum: Signal<Local, Bits<32>>,
    sext: Signal<Local, Bits<32>>,

    bsel: DFF<Bits<16>>,
    boff: DFF<Bits<3>>,
    boffx: DFF<Bits<3>>,
    bsub: DFF<Bits<2>>,
    w64: DFF<Bits<64>>,
    idx1: DFF<Bits<8>>,
    v2: DFF<bool>,
    row2: DFF<Bits<OBA>>,
    first2: DFF<bool>,
    sel2: DFF<Bits<8>>,
    w2: DFF<Bits<8>>,
    v3: DFF<bool>,
    row3: DFF<Bits<OBA>>,
    first3: DFF<bool>,
    sel3: DFF<Bits<8>>,
    tq3: DFF<Bits<PW>>,
    v4: DFF<bool>,
    row4: DFF<Bits<OBA>>,
    first4: DFF<bool>,
    sel4: DFF<Bits<8>>,
    tq4: DFF<Bits<PW>>,
    aq4: DFF<Bits<32>>,
    v5: DFF<bool>,
    row5: DFF<Bits<OBA>>,
    first5: DFF<bool>,
    pq5: DFF<Bits<16>>,
    aq5: DFF<Bits<32>>,
    v6: DFF<bool>,
    row6: DFF<Bits<OBA>>,
    v7: DFF<bool>,
    row7: DFF<Bits<OBA>>,
    v8: DFF<bool>,
    row8: DFF<Bits<OBA>>,
    fwd1: DFF<bool>,
    fwd2: DFF<bool>,
    fwd3: DFF<bool>,
    fwd4: DFF<bool>,
    sum6: DFF<Bits<32>>,
    sum7: DFF<Bits<32>>,
    sum8: DFF<Bits<32>>,
    sum9: DFF<Bits<32>>,
    errq: DFF<bool>,
    /// The accumulator read address, registered after the bus/engine choice: nothing but a route
    /// between it and the block RAM, which may sit across the 85F's die.
    ar2: DFF<Bits<OBA>>,

    k_lane: Constant<Bits<16>>,
    k_lane32: Constant<Bits<32>>,
    k_logm: Constant<Bits<8>>,
    k_mmask: Constant<Bits<8>>,
    k_bufbit: Constant<Bits<TA>>,
    k_dense: Constant<bool>,
    k_hi16: Constant<Bits<32>>,
    k_nbw: Constant<Bits<16>>,
    k_bytemask: Constant<Bits<32>>,
}

impl<const TA: usize, const OBA: usize, const PW: usize, const NBW: usize> Lane<TA, OBA, PW, NBW> {
    /// Lane `lane` of a core with `mults` multipliers.
    pub fn new(lane: usize, mults: usize, dense: bool) -> Self {
        assert!(mults.is_power_of_two() && PW == 16 * mults && (1usize << TA) == 512 / mults);
        Lane {
            clock: Default::default(),
            own: Default::default(),
            bus_row: Default::default(),
            bus_lane: Default::default(),
            bus_wdata: Default::default(),
            bus_we: Default::default(),
            bus_sel: Default::default(),
            ord_in: Default::default(),
            ord_out: Default::default(),
            tw_en: Default::default(),
            tw_row: Default::default(),
            tw_data: Default::default(),
            s0_s: Default::default(),
            s0_b: Default::default(),
            s0_lo: Default::default(),
            raw: Default::default(),
            sy_bmask: Default::default(),
            s1_v: Default::default(),
            s1_count: Default::default(),
            s1_buf: Default::default(),
            s1_row: Default::default(),
            s1_rem: Default::default(),
            s1_first: Default::default(),
            act: Default::default(),
            err_in: Default::default(),
            err_out: Default::default(),
            tab: Default::default(),
            acc: Default::default(),
            off: Default::default(),
            rot: Default::default(),
            wsh: Default::default(),
            t0: Default::default(),
            t1: Default::default(),
            t2: Default::default(),
            t3: Default::default(),
            v1: Default::default(),
            wx: Default::default(),
            ax: Default::default(),
            mul: Default::default(),
            accv: Default::default(),
            sum: Default::default(),
            sext: Default::default(),
            bsel: Default::default(),
            boff: Default::default(),
            boffx: Default::default(),
            bsub: Default::default(),
            w64: Default::default(),
            idx1: Default::default(),
            v2: Default::default(),
            row2: Default::default(),
            first2: Default::default(),
            sel2: Default::default(),
            w2: Default::default(),
            v3: Default::default(),
            row3: Default::default(),
            first3: Default::default(),
            sel3: Default::default(),
            tq3: Default::default(),
            v4: Default::default(),
            row4: Default::default(),
            first4: Default::default(),
            sel4: Default::default(),
            tq4: Default::default(),
            aq4: Default::default(),
            v5: Default::default(),
            row5: Default::default(),
            first5: Default::default(),
            pq5: Default::default(),
            aq5: Default::default(),
            v6: Default::default(),
            row6: Default::default(),
            v7: Default::default(),
            row7: Default::default(),
            v8: Default::default(),
            row8: Default::default(),
            fwd1: Default::default(),
            fwd2: Default::default(),
            fwd3: Default::default(),
            fwd4: Default::default(),
            sum6: Default::default(),
            sum7: Default::default(),
            sum8: Default::default(),
            sum9: Default::default(),
            errq: Default::default(),
            ar2: Default::default(),
            k_lane: Constant::new((lane as u64).to_bits()),
            k_lane32: Constant::new((lane as u64).to_bits()),
            k_logm: Constant::new((mults.trailing_zeros() as u64).to_bits()),
            k_mmask: Constant::new(((mults - 1) as u64).to_bits()),
            k_bufbit: Constant::new((1u64 << (TA - 1)).to_bits()),
            k_dense: Constant::new(dense),
            k_hi16: Constant::new(0xFFFF_0000u64.to_bits()),
            k_nbw: Constant::new((NBW as u64).to_bits()),
            k_bytemask: Constant::new((NBW as u64 / 8 - 1).to_bits()),
        }
    }
}

impl<const TA: usize, const OBA: usize, const PW: usize, const NBW: usize> Logic for Lane<TA, OBA, PW, NBW> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, bsel, boff, boffx, bsub, w64, idx1, v2, row2, first2, sel2, w2, v3, row3, first3, sel3, tq3,
            v4, row4, first4, sel4, tq4, aq4, v5, row5, first5, pq5, aq5, v6, row6, v7, row7, v8, row8, fwd1, fwd2,
            fwd3, fwd4, sum6, sum7, sum8, sum9, errq, ar2
        );
        self.tab.read_clock.next = self.clock.val();
        self.tab.write_clock.next = self.clock.val();
        self.acc.read_clock.next = self.clock.val();
        self.acc.write_clock.next = self.clock.val();

        // Stage 0: off = s + b * lane, as shifts and adds (no multiplier for a constant factor);
        // its byte in the unrotated bank words is off / 8 + 4 lo (mod the window's bytes).
        self.t0.next = 0.into();
        if self.s0_b.val().get_bit(0) {
            self.t0.next = self.k_lane32.val();
        }
        self.t1.next = 0.into();
        if self.s0_b.val().get_bit(1) {
            self.t1.next = self.k_lane32.val() << 1;
        }
        self.t2.next = 0.into();
        if self.s0_b.val().get_bit(2) {
            self.t2.next = self.k_lane32.val() << 2;
        }
        self.t3.next = 0.into();
        if self.s0_b.val().get_bit(3) {
            self.t3.next = self.k_lane32.val() << 3;
        }
        self.off.next =
            bit_cast::<32, 16>(self.s0_s.val()) + self.t0.val() + self.t1.val() + self.t2.val() + self.t3.val();
        self.bsel.d.next = bit_cast::<16, 32>(
            ((self.off.val() >> 3) + (bit_cast::<32, 16>(self.s0_lo.val()) << 2)) & self.k_bytemask.val(),
        );
        self.boff.d.next = bit_cast::<3, 32>(self.off.val());

        // Stage x: the word holding that byte and the next word, wrapping around the bank words.
        self.rot.next = (self.raw.val() >> ((self.bsel.q.val() >> 2) << 5))
            | (self.raw.val() << (self.k_nbw.val() - ((self.bsel.q.val() >> 2) << 5)));
        self.w64.d.next = self.rot.val().get_bits::<64>(0);
        self.bsub.d.next = bit_cast::<2, 16>(self.bsel.q.val());
        self.boffx.d.next = self.boff.q.val();

        // Stage y: the index, at bit 8 bsub + boffx of the two words (a 5-bit shift amount made
        // by concatenation, no adder).
        self.wsh.next =
            self.w64.q.val() >> ((bit_cast::<64, 2>(self.bsub.q.val()) << 3) | bit_cast::<64, 3>(self.boffx.q.val()));
        self.idx1.d.next = self.wsh.val().get_bits::<8>(0) & self.sy_bmask.val();

        // Stage 1: check, address the product table and the accumulator.
        self.v1.next = self.s1_v.val() && (self.k_lane32.val() < self.s1_rem.val());
        // The index check is registered; the engine sees it one cycle after stage 1.
        self.errq.d.next = self.v1.val() && (bit_cast::<9, 8>(self.idx1.q.val()) >= self.s1_count.val());
        self.err_out.next = self.err_in.val() || self.errq.q.val();
        self.tab.read_address.next = bit_cast::<TA, 8>(self.idx1.q.val() >> self.k_logm.val());
        if self.s1_buf.val() {
            self.tab.read_address.next =
                bit_cast::<TA, 8>(self.idx1.q.val() >> self.k_logm.val()) | self.k_bufbit.val();
        }
        // Valid bits die while the engine does not own the lanes (abort, error), so that an
        // aborted run's groups never write into the next run's accumulators.
        self.v2.d.next = self.v1.val() && self.own.val();
        self.row2.d.next = self.s1_row.val();
        self.first2.d.next = self.s1_first.val();
        self.sel2.d.next = self.idx1.q.val() & self.k_mmask.val();
        self.w2.d.next = self.idx1.q.val();

        // Stage 2: register the table row; dense multiplies here. The accumulator read starts.
        self.wx.next = bit_cast::<16, 8>(self.w2.q.val());
        if self.w2.q.val().get_bit(7) {
            self.wx.next = bit_cast::<16, 8>(self.w2.q.val()) | 0xFF00;
        }
        self.ax.next = bit_cast::<16, 8>(self.act.val());
        if self.act.val().get_bit(7) {
            self.ax.next = bit_cast::<16, 8>(self.act.val()) | 0xFF00;
        }
        self.mul.next = self.wx.val() * self.ax.val();
        self.tq3.d.next = self.tab.read_data.val();
        self.sel3.d.next = self.sel2.q.val();
        if self.k_dense.val() {
            self.tq3.d.next = bit_cast::<PW, 16>(bit_cast::<16, 32>(self.mul.val()));
            self.sel3.d.next = 0.into();
        }
        self.v3.d.next = self.v2.q.val() && self.own.val();
        self.row3.d.next = self.row2.q.val();
        self.first3.d.next = self.first2.q.val();

        // Stage 3: the table row again, in fabric; register the accumulator.
        self.tq4.d.next = self.tq3.q.val();
        self.aq4.d.next = self.acc.read_data.val();
        self.sel4.d.next = self.sel3.q.val();
        self.v4.d.next = self.v3.q.val() && self.own.val();
        self.row4.d.next = self.row3.q.val();
        self.first4.d.next = self.first3.q.val();

        // Stage 4: select the product; the accumulator again, in fabric.
        self.pq5.d.next = self.tq4.q.val().get_bits::<16>(self.sel4.q.val().index() * 16);
        self.aq5.d.next = self.aq4.q.val();
        self.v5.d.next = self.v4.q.val() && self.own.val();
        self.row5.d.next = self.row4.q.val();
        self.first5.d.next = self.first4.q.val();
        // Forwarding, decided one cycle ahead: the group now in stage 5 (its sum is in sum6 next
        // cycle) wins over the one writing now (in sum7 next cycle), which wins over the ones that
        // wrote one and two cycles ago (in sum8 and sum9 next cycle).
        self.fwd1.d.next = self.v4.q.val() && self.v5.q.val() && (self.row4.q.val() == self.row5.q.val());
        self.fwd2.d.next = self.v4.q.val() && self.v6.q.val() && (self.row4.q.val() == self.row6.q.val());
        self.fwd3.d.next = self.v4.q.val() && self.v7.q.val() && (self.row4.q.val() == self.row7.q.val());
        self.fwd4.d.next = self.v4.q.val() && self.v8.q.val() && (self.row4.q.val() == self.row8.q.val());

        // Stage 5: add, register the sum. Stage 6: write it back.
        self.sext.next = bit_cast::<32, 16>(self.pq5.q.val());
        if self.pq5.q.val().get_bit(15) {
            self.sext.next = bit_cast::<32, 16>(self.pq5.q.val()) | self.k_hi16.val();
        }
        self.accv.next = self.aq5.q.val();
        if self.fwd4.q.val() {
            self.accv.next = self.sum9.q.val();
        }
        if self.fwd3.q.val() {
            self.accv.next = self.sum8.q.val();
        }
        if self.fwd2.q.val() {
            self.accv.next = self.sum7.q.val();
        }
        if self.fwd1.q.val() {
            self.accv.next = self.sum6.q.val();
        }
        if self.first5.q.val() {
            self.accv.next = 0.into();
        }
        self.sum.next = self.sext.val() + self.accv.val();
        self.v6.d.next = self.v5.q.val() && self.own.val();
        self.row6.d.next = self.row5.q.val();
        self.v7.d.next = self.v6.q.val() && self.own.val();
        self.row7.d.next = self.row6.q.val();
        self.v8.d.next = self.v7.q.val() && self.own.val();
        self.row8.d.next = self.row7.q.val();
        self.sum6.d.next = self.sum.val();
        self.sum7.d.next = self.sum6.q.val();
        self.sum8.d.next = self.sum7.q.val();
        self.sum9.d.next = self.sum8.q.val();

        // Accumulator ports: the engine while it runs, the bus otherwise. The read address is
        // chosen a cycle ahead (stage 1's row, or the bus's, which the bus master holds).
        self.ar2.d.next = self.bus_row.val();
        if self.own.val() {
            self.ar2.d.next = self.s1_row.val();
        }
        self.acc.read_address.next = self.ar2.q.val();
        self.acc.write_address.next = self.bus_row.val();
        self.acc.write_data.next = self.bus_wdata.val();
        self.acc.write_enable.next = self.bus_we.val() && (self.bus_lane.val() == self.k_lane.val());
        if self.own.val() {
            self.acc.write_address.next = self.row6.q.val();
            self.acc.write_data.next = self.sum6.q.val();
            self.acc.write_enable.next = self.v6.q.val();
        }
        self.ord_out.next = self.ord_in.val();
        if self.bus_sel.val() == self.k_lane.val() {
            self.ord_out.next = self.ord_in.val() | self.aq4.q.val();
        }

        // Product-table fill.
        self.tab.write_enable.next = self.tw_en.val();
        self.tab.write_address.next = self.tw_row.val();
        self.tab.write_data.next = self.tw_data.val();
    }
}

/// One table-fill multiplier: `act * byte` (both int8) as a 16-bit product, OR-ed into the
/// packed product row at bit `16 * k` (`pin` -> `pout` chain, see [`crate::bank`]).
#[derive(LogicBlock)]
pub struct Mult<const PW: usize> {
    pub act: Signal<In, Bits<8>>,
    pub wbyte: Signal<In, Bits<8>>,
    pub pin: Signal<In, Bits<PW>>,
    pub pout: Signal<Out, Bits<PW>>,
    ax: Signal<Local, Bits<16>>,
    bx: Signal<Local, Bits<16>>,
    p: Signal<Local, Bits<32>>,
    k_pos: Constant<Bits<16>>,
}

impl<const PW: usize> Mult<PW> {
    pub fn new(k: usize) -> Self {
        assert!(16 * (k + 1) <= PW);
        Mult {
            act: Default::default(),
            wbyte: Default::default(),
            pin: Default::default(),
            pout: Default::default(),
            ax: Default::default(),
            bx: Default::default(),
            p: Default::default(),
            k_pos: Constant::new((16 * k as u64).to_bits()),
        }
    }
}

impl<const PW: usize> Logic for Mult<PW> {
    #[hdl_gen]
    fn update(&mut self) {
        self.ax.next = bit_cast::<16, 8>(self.act.val());
        if self.act.val().get_bit(7) {
            self.ax.next = bit_cast::<16, 8>(self.act.val()) | 0xFF00;
        }
        self.bx.next = bit_cast::<16, 8>(self.wbyte.val());
        if self.wbyte.val().get_bit(7) {
            self.bx.next = bit_cast::<16, 8>(self.wbyte.val()) | 0xFF00;
        }
        self.p.next = self.ax.val() * self.bx.val();
        self.pout.next = self.pin.val() | (bit_cast::<PW, 16>(bit_cast::<16, 32>(self.p.val())) << self.k_pos.val());
    }
}
