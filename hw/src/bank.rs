//! One bank of the word-interleaved weight memory.
//!
//! Weight word `w` lives in bank `w % NB`, row `w / NB`. Every bank decodes a *window* address
//! itself: for a window of `NB` consecutive words starting at word `x`, bank `k` reads row
//! `x / NB + (k < x % NB)`, so one cycle fetches words `[x, x + NB)` at any `x`, in bank order.
//! A write of word `w` (port A) goes to bank `w % NB` only, at row `w / NB`: the same row the
//! window decode gives for that bank, so reads and writes share one address per port.
//!
//! Port A reads or writes (bus writes and reads when idle, descriptor and table reads while the
//! engine runs); port B only reads (the index stream). That is the true-dual-port shape of an
//! ECP5 DP16KD; port A is "no change" on a write (its read data keeps the previous value) and
//! port B does not read in a bus-write cycle, so yosys maps a bank to the minimum number of
//! DP16KD with no collision logic (reading port B during a write doubled the blocks).
//! Each bank registers its own row addresses, write strobe and write data before the block RAMs
//! (these registers sit beside the bank's DP16KDs, so no path runs from the engine's address
//! muxes across the die into a block RAM's address pins), and the block RAM registers its read
//! data: a read takes two cycles from address to data, a write lands a cycle after its strobe.
//!
//! The banks' read data travel to the engine on an OR chain (`*_cin` -> `*_cout`), each bank
//! placing its word at bit `32 k`: rust-hdl's generator cannot index two arrays in one name, so
//! the `NB * 32`-bit concatenation is built bank by bank.

use rust_hdl::prelude::*;
use std::collections::BTreeMap;

#[derive(LogicBlock, Default)]
pub struct Bank<const BA: usize, const NBW: usize> {
    pub clock: Signal<In, Clock>,
    /// Port A window (or write) word address.
    pub a_addr: Signal<In, Bits<32>>,
    pub a_wdata: Signal<In, Bits<32>>,
    /// Write word `a_addr` (only the bank holding it writes).
    pub a_we: Signal<In, bool>,
    /// Port B window word address.
    pub b_addr: Signal<In, Bits<32>>,
    pub a_cin: Signal<In, Bits<NBW>>,
    pub a_cout: Signal<Out, Bits<NBW>>,
    pub b_cin: Signal<In, Bits<NBW>>,
    pub b_cout: Signal<Out, Bits<NBW>>,
    _k: usize,
    _lognb: usize,
    _a_q: Bits<32>,
    _b_q: Bits<32>,
    // The registered port inputs: rows, this bank's write strobe, any bank's write strobe, data.
    _ra: u64,
    _rb: u64,
    _we_k: bool,
    _we_any: bool,
    _wdata: Bits<32>,
    _mem: BTreeMap<u64, Bits<32>>,
}

impl<const BA: usize, const NBW: usize> Bank<BA, NBW> {
    /// Bank `k` of `nb` (a power of two).
    pub fn new(k: usize, nb: usize) -> Self {
        assert!(nb.is_power_of_two() && k < nb && nb * 32 == NBW);
        Bank { _k: k, _lognb: nb.trailing_zeros() as usize, ..Default::default() }
    }

    fn row(&self, x: u64) -> u64 {
        let nb = 1u64 << self._lognb;
        ((x >> self._lognb) + u64::from((self._k as u64) < (x & (nb - 1)))) & ((1u64 << BA) - 1)
    }
}

impl<const BA: usize, const NBW: usize> Logic for Bank<BA, NBW> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            // The block RAM, on last cycle's registered inputs. Port B does not read in a bus-write
            // cycle (never needed: the engine does not run then), so yosys need not emulate a
            // cross-port read-during-write.
            if !self._we_any {
                self._b_q = self._mem.get(&self._rb).copied().unwrap_or_default();
            }
            // Port A writes or reads (DP16KD "no change" mode: a write leaves the read data).
            if self._we_k {
                self._mem.insert(self._ra, self._wdata);
            } else {
                self._a_q = self._mem.get(&self._ra).copied().unwrap_or_default();
            }
            // The input registers.
            let nb = 1u64 << self._lognb;
            let a = self.a_addr.val().to_u64();
            self._ra = self.row(a);
            self._rb = self.row(self.b_addr.val().to_u64());
            self._we_any = self.a_we.val();
            self._we_k = self.a_we.val() && (a & (nb - 1)) == self._k as u64;
            self._wdata = self.a_wdata.val();
        }
        let pos = 32 * self._k as u64;
        self.a_cout.next = self.a_cin.val() | (bit_cast::<NBW, 32>(self._a_q) << pos);
        self.b_cout.next = self.b_cin.val() | (bit_cast::<NBW, 32>(self._b_q) << pos);
    }

    fn connect(&mut self) {
        self.a_cout.connect();
        self.b_cout.connect();
    }

    fn hdl(&self) -> Verilog {
        let nb = 1usize << self._lognb;
        let l = self._lognb;
        let k = self._k;
        let rows = 1usize << BA;
        Verilog::Custom(format!(
            "\
reg [31:0] mem[0:{last}];
reg [31:0] a_q;
reg [31:0] b_q;
wire [31:0] a_row = (a_addr >> {l}) + ((a_addr & {mask}) > {k} ? 1 : 0);
wire [31:0] b_row = (b_addr >> {l}) + ((b_addr & {mask}) > {k} ? 1 : 0);
reg [{ba1}:0] a_row_q;
reg [{ba1}:0] b_row_q;
reg sel_k_q;
reg we_any_q;
reg [31:0] wdata_q;

always @(posedge clock) begin
   a_row_q <= a_row[{ba1}:0];
   b_row_q <= b_row[{ba1}:0];
   sel_k_q <= ((a_addr & {mask}) == {k});
   we_any_q <= a_we;
   wdata_q <= a_wdata;
end

always @(posedge clock) begin
   // The write enable is `we_any_q && sel_k_q`, port B's read enable `!we_any_q`: visibly
   // exclusive, so yosys adds no cross-port collision logic (which doubles the DP16KD).
   if (we_any_q && sel_k_q) begin
      mem[a_row_q] <= wdata_q;
   end else begin
      a_q <= mem[a_row_q];
   end
end

always @(posedge clock) begin
   if (!we_any_q) begin
      b_q <= mem[b_row_q];
   end
end

always @(*) begin
   a_cout = a_cin | ({{{{{pad}{{1'b0}}}}, a_q}} << {pos});
   b_cout = b_cin | ({{{{{pad}{{1'b0}}}}, b_q}} << {pos});
end
",
            last = rows - 1,
            mask = nb - 1,
            ba1 = BA - 1,
            pad = NBW - 32,
            pos = 32 * k,
        ))
    }
}

/// A 32-bit memory with one write port and one registered read port that synthesis must build
/// from LUT RAM (`ram_style = "distributed"`): the input buffer, so that the block RAMs are left
/// for weights, tables and accumulators. Ports as rust-hdl's `RAM`.
#[derive(LogicBlock, Default)]
pub struct LutRam<const N: usize> {
    pub read_address: Signal<In, Bits<N>>,
    pub read_clock: Signal<In, Clock>,
    pub read_data: Signal<Out, Bits<32>>,
    pub write_address: Signal<In, Bits<N>>,
    pub write_clock: Signal<In, Clock>,
    pub write_data: Signal<In, Bits<32>>,
    pub write_enable: Signal<In, bool>,
    _mem: BTreeMap<u64, Bits<32>>,
}

impl<const N: usize> Logic for LutRam<N> {
    fn update(&mut self) {
        if self.read_clock.pos_edge() {
            self.read_data.next = self._mem.get(&self.read_address.val().to_u64()).copied().unwrap_or_default();
        }
        if self.write_clock.pos_edge() && self.write_enable.val() {
            self._mem.insert(self.write_address.val().to_u64(), self.write_data.val());
        }
    }

    fn connect(&mut self) {
        self.read_data.connect();
    }

    fn hdl(&self) -> Verilog {
        memory_verilog("ram_style = \"distributed\"", 32, N)
    }
}

/// A `W`-bit memory with one write port and one registered read port, for block RAM, whose read
/// of a row in the cycle that row is written is *undefined*: the Verilog carries yosys's
/// `no_rw_check`, so synthesis builds no collision logic. Without it yosys puts a bypass mux (and
/// a register of the write data, `W` flip-flops) behind every port, which keeps the DP16KD's output
/// register from absorbing the read register after it (scripts/pack-bram-outreg.py).
///
/// The core never uses such a read: a lane reads one product-table buffer while the fill writes
/// the other, and an accumulator read that misses a write in flight is replaced by forwarding.
/// The simulation model holds it to that: a colliding read returns the stored word inverted, so a
/// test that used one would see wrong sums. Ports as rust-hdl's `RAM`.
#[derive(LogicBlock, Default)]
pub struct BlockRam<const W: usize, const N: usize> {
    pub read_address: Signal<In, Bits<N>>,
    pub read_clock: Signal<In, Clock>,
    pub read_data: Signal<Out, Bits<W>>,
    pub write_address: Signal<In, Bits<N>>,
    pub write_clock: Signal<In, Clock>,
    pub write_data: Signal<In, Bits<W>>,
    pub write_enable: Signal<In, bool>,
    _mem: BTreeMap<u64, Bits<W>>,
}

impl<const W: usize, const N: usize> Logic for BlockRam<W, N> {
    fn update(&mut self) {
        let writes = self.write_clock.pos_edge() && self.write_enable.val();
        if self.read_clock.pos_edge() {
            let ra = self.read_address.val().to_u64();
            let stored = self._mem.get(&ra).copied().unwrap_or_default();
            let collides = writes && self.write_address.val().to_u64() == ra;
            self.read_data.next = if collides { !stored } else { stored };
        }
        if writes {
            self._mem.insert(self.write_address.val().to_u64(), self.write_data.val());
        }
    }

    fn connect(&mut self) {
        self.read_data.connect();
    }

    fn hdl(&self) -> Verilog {
        memory_verilog("no_rw_check", W, N)
    }
}

/// The Verilog of a `width`-bit memory of `2^abits` rows with one write port and one registered
/// read port (rust-hdl `RAM`'s port names), its array carrying the yosys attribute `attr`.
fn memory_verilog(attr: &str, width: usize, abits: usize) -> Verilog {
    Verilog::Custom(format!(
        "\
(* {attr} *) reg [{w1}:0] mem[0:{last}];

always @(posedge read_clock) begin
   read_data <= mem[read_address];
end

always @(posedge write_clock) begin
   if (write_enable) begin
      mem[write_address] <= write_data;
   end
end
",
        w1 = width - 1,
        last = (1usize << abits) - 1
    ))
}
