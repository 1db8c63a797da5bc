//! Bus-level stepping of a simulated core (each word access is a handful of clock cycles), and
//! [`run_layer_on_rtl`]: load a layer and its inputs through the bus, run it, read the results.

use crate::top::Accel;
use crew_core::config::DeviceConfig;
use crew_core::regs::{self, ctrl, status, ErrorCode};
use rust_hdl::core::vcd_probe::{write_vcd_change, write_vcd_header, VCDProbe};
use rust_hdl::prelude::*;

/// Settle iterations allowed per half clock.
const SETTLE: usize = 100;
/// A bus access that takes longer than this many cycles is a hang.
const ACCESS_TIMEOUT: u64 = 64;
/// A streamed VCD ([`VcdTrace::stream_to`]) is written out whenever this much has accumulated.
const VCD_CHUNK: usize = 1 << 20;

/// Why a simulated bus access did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    /// `ready` did not rise within [`ACCESS_TIMEOUT`] cycles.
    Hang { addr: u32, write: bool, cycles: u64 },
    /// The combinational logic did not settle (a combinational loop).
    Unsettled { cycle: u64 },
}

impl std::fmt::Display for AccessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            AccessError::Hang { addr, write, cycles } => write!(
                f,
                "the simulated core did not answer a bus {} of {addr:#010x} within {cycles} cycles",
                if write { "write" } else { "read" }
            ),
            AccessError::Unsettled { cycle } => {
                write!(f, "the simulated circuit did not settle at cycle {cycle} (a combinational loop?)")
            }
        }
    }
}

impl std::error::Error for AccessError {}

/// The bus interface of any simulated core.
pub trait SimBus {
    fn write(&mut self, addr: u32, data: u32);
    fn read(&mut self, addr: u32) -> u32;
    /// Clock cycles since construction.
    fn cycles(&self) -> u64;
    /// Advance `n` idle cycles.
    fn idle(&mut self, n: u64);
}

/// The pins of a simulated top with the register bus.
pub trait BusTop: Block {
    fn build(cfg: &DeviceConfig) -> Self;
    fn set_clock(&mut self, high: bool);
    fn drive(&mut self, addr: u32, wdata: u32, we: bool, valid: bool);
    fn ready(&self) -> bool;
    fn rdata(&self) -> u32;
    fn irq(&self) -> bool;
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
    > BusTop for Accel<IA, L, M, NB, BA, NBW, OBA, TA, PW>
{
    fn build(cfg: &DeviceConfig) -> Self {
        Accel::new(cfg)
    }
    fn set_clock(&mut self, high: bool) {
        self.clock.next = Clock { clk: high };
    }
    fn drive(&mut self, addr: u32, wdata: u32, we: bool, valid: bool) {
        self.addr.next = addr.to_bits();
        self.wdata.next = wdata.to_bits();
        self.we.next = we;
        self.valid.next = valid;
    }
    fn ready(&self) -> bool {
        self.ready.val()
    }
    fn rdata(&self) -> u32 {
        self.rdata.val().to_u64() as u32
    }
    fn irq(&self) -> bool {
        self.irq.val()
    }
}

/// A top driven directly, one clock edge at a time (no testbench threads).
///
/// With [`SimCore::with_vcd`] every edge is traced into memory, and the trace is written to
/// `target/vcd/<name>.vcd` if the thread panics while the core is alive (a failing test).
pub struct SimCore<T: BusTop> {
    pub uut: Box<T>,
    cycles: u64,
    vcd: Option<VcdTrace>,
}

/// An in-memory VCD trace of any block, for testbenches that step a design themselves: call
/// [`VcdTrace::record`] after every clock edge. If the trace is dropped while its thread panics
/// (a failing test), it is written to `target/vcd/<name>.vcd`; otherwise it is discarded,
/// unless it streams into a writer ([`stream_to`](VcdTrace::stream_to)).
pub struct VcdTrace {
    name: String,
    // Taken and put back by each record (the VCD writer moves the probe).
    probe: Option<VCDProbe<TraceBuf>>,
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    time_ps: u64,
    /// Streaming: the buffer moves here in chunks of [`VCD_CHUNK`].
    out: Option<Box<dyn std::io::Write + Send>>,
    /// The first error writing `out`, reported by [`finish`](VcdTrace::finish).
    out_error: Option<std::io::Error>,
}

impl VcdTrace {
    /// Start a trace of `uut` (its header and the current values).
    pub fn new<B: Block>(name: &str, uut: &B) -> VcdTrace {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let probe = write_vcd_header(TraceBuf(buf.clone()), uut);
        let mut t =
            VcdTrace { name: name.to_string(), probe: Some(probe), buf, time_ps: 0, out: None, out_error: None };
        t.record(uut);
        t
    }

    /// Stream the trace into `out` instead of keeping it for a failure; call
    /// [`finish`](Self::finish) at the end.
    pub fn stream_to(mut self, out: Box<dyn std::io::Write + Send>) -> VcdTrace {
        self.out = Some(out);
        self
    }

    /// Write the rest of a streamed trace and flush it (a no-op for an in-memory trace).
    pub fn finish(mut self) -> std::io::Result<()> {
        let Some(mut out) = self.out.take() else { return Ok(()) };
        if let Some(e) = self.out_error.take() {
            return Err(e);
        }
        drop(self.probe.take());
        let rest = std::mem::take(&mut *self.buf.lock().map_err(|_| std::io::Error::other("trace buffer poisoned"))?);
        out.write_all(&rest)?;
        out.flush()
    }

    /// Record the signals after an edge; edges are 5 ns apart (a 100 MHz clock).
    pub fn record<B: Block>(&mut self, uut: &B) {
        if let Some(mut p) = self.probe.take() {
            let _ = p.timestamp(self.time_ps);
            self.probe = Some(write_vcd_change(p, uut));
            self.time_ps += 5_000;
        }
        if let (Some(out), None) = (self.out.as_mut(), self.out_error.as_ref()) {
            if let Ok(mut buf) = self.buf.lock() {
                if buf.len() >= VCD_CHUNK {
                    if let Err(e) = out.write_all(&buf) {
                        self.out_error = Some(e);
                    }
                    buf.clear();
                }
            }
        }
    }
}

impl Drop for VcdTrace {
    fn drop(&mut self) {
        if !std::thread::panicking() || self.out.is_some() {
            return;
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/vcd");
        let path = format!("{dir}/{}.vcd", self.name);
        drop(self.probe.take());
        let bytes = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        // Best effort: the test is failing already; say where the trace went.
        let _ = std::fs::create_dir_all(dir);
        match std::fs::write(&path, bytes) {
            Ok(()) => eprintln!("VCD trace of the failing simulation: {path}"),
            Err(e) => eprintln!("could not write the VCD trace {path}: {e}"),
        }
    }
}

#[derive(Clone)]
struct TraceBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for TraceBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("trace buffer poisoned"))?.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<T: BusTop> SimCore<T> {
    pub fn new(cfg: &DeviceConfig) -> Self {
        let mut uut = Box::new(T::build(cfg));
        uut.connect_all();
        let mut s = SimCore { uut, cycles: 0, vcd: None };
        s.settle();
        s
    }

    /// Trace every clock edge; the trace is written to `target/vcd/<name>.vcd` on a panic.
    pub fn with_vcd(mut self, name: &str) -> Self {
        self.vcd = Some(VcdTrace::new(name, &*self.uut));
        self
    }

    /// Trace every clock edge into `out` (streamed in 1 MiB chunks); call
    /// [`finish_vcd`](Self::finish_vcd) at the end to write the rest and learn of write errors.
    pub fn with_vcd_writer(mut self, name: &str, out: Box<dyn std::io::Write + Send>) -> Self {
        self.vcd = Some(VcdTrace::new(name, &*self.uut).stream_to(out));
        self
    }

    /// Write the rest of a [`with_vcd_writer`](Self::with_vcd_writer) trace; stops tracing.
    pub fn finish_vcd(&mut self) -> std::io::Result<()> {
        self.vcd.take().map_or(Ok(()), VcdTrace::finish)
    }

    fn trace(&mut self) {
        if let Some(t) = self.vcd.as_mut() {
            t.record(&*self.uut);
        }
    }

    fn settle(&mut self) {
        assert!(self.try_settle().is_ok(), "the circuit did not settle");
    }

    fn try_settle(&mut self) -> Result<(), AccessError> {
        if simulate(&mut *self.uut, SETTLE) {
            Ok(())
        } else {
            Err(AccessError::Unsettled { cycle: self.cycles })
        }
    }

    /// One full clock cycle: falling then rising edge.
    pub fn step(&mut self) {
        assert!(self.try_step().is_ok(), "the circuit did not settle");
    }

    /// [`step`](Self::step) that reports an unsettled circuit instead of panicking.
    pub fn try_step(&mut self) -> Result<(), AccessError> {
        self.uut.set_clock(false);
        self.try_settle()?;
        self.trace();
        self.uut.set_clock(true);
        self.try_settle()?;
        self.trace();
        self.cycles += 1;
        Ok(())
    }

    pub fn irq(&self) -> bool {
        self.uut.irq()
    }

    /// One bus access: hold `valid` until `ready`, take `rdata`, then one idle cycle.
    pub fn try_access(&mut self, addr: u32, data: u32, we: bool) -> Result<u32, AccessError> {
        self.uut.drive(addr, data, we, true);
        self.try_settle()?;
        let mut n = 0;
        loop {
            self.try_step()?;
            n += 1;
            if self.uut.ready() {
                break;
            }
            if n >= ACCESS_TIMEOUT {
                self.uut.drive(addr, data, false, false);
                return Err(AccessError::Hang { addr, write: we, cycles: n });
            }
        }
        let r = self.uut.rdata();
        self.uut.drive(addr, data, false, false);
        self.try_settle()?;
        self.try_step()?;
        Ok(r)
    }

    fn access(&mut self, addr: u32, data: u32, we: bool) -> u32 {
        self.try_access(addr, data, we).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl<T: BusTop> SimBus for SimCore<T> {
    fn write(&mut self, addr: u32, data: u32) {
        self.access(addr, data, true);
    }
    fn read(&mut self, addr: u32) -> u32 {
        self.access(addr, 0, false)
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

/// Why a run on the RTL did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtlError {
    /// The device stopped with ERROR and this code.
    Device(ErrorCode),
    /// ERROR with a code outside the register map.
    UnknownCode(u32),
    /// BUSY after the poll limit.
    Hang,
}

/// The results of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtlRun {
    pub acc: Vec<i32>,
    pub cycles: u64,
    pub mults: u32,
    pub adds: u32,
}

/// Write `words` to weight memory from word `base` on.
pub fn load_weights<B: SimBus>(bus: &mut B, base: u32, words: &[u32]) {
    for (k, &w) in words.iter().enumerate() {
        bus.write(regs::WEIGHT_WINDOW + 4 * (base + k as u32), w);
    }
}

/// Write int8 inputs to the input buffer (4 per word, LSB-first).
pub fn load_inputs<B: SimBus>(bus: &mut B, inputs: &[i8]) {
    for (k, w) in crew_core::encode::pack_i8(inputs).into_iter().enumerate() {
        bus.write(regs::INPUT_WINDOW + 4 * k as u32, w);
    }
}

/// Write accumulators `[0, values.len())`.
pub fn load_accumulators<B: SimBus>(bus: &mut B, values: &[i32]) {
    for (k, &v) in values.iter().enumerate() {
        bus.write(regs::OUTPUT_WINDOW + 4 * k as u32, v as u32);
    }
}

/// Read accumulators `[0, n)`.
pub fn read_accumulators<B: SimBus>(bus: &mut B, n: usize) -> Vec<i32> {
    (0..n).map(|k| bus.read(regs::OUTPUT_WINDOW + 4 * k as u32) as i32).collect()
}

/// START the layer already in memory and poll STATUS (at most `max_polls` times) until it ends.
pub fn start_and_wait<B: SimBus>(
    bus: &mut B,
    n_out: usize,
    n_in: usize,
    base: u32,
    accumulate: bool,
    max_polls: u64,
) -> Result<(u64, u32, u32), RtlError> {
    bus.write(regs::N_OUT, n_out as u32);
    bus.write(regs::N_IN, n_in as u32);
    bus.write(regs::LAYER_BASE, base);
    let level = if accumulate { ctrl::ACCUMULATE } else { 0 };
    bus.write(regs::CTRL, level | ctrl::START);
    let mut st = bus.read(regs::STATUS);
    let mut polls = 0;
    while st & status::BUSY != 0 {
        polls += 1;
        if polls > max_polls {
            return Err(RtlError::Hang);
        }
        st = bus.read(regs::STATUS);
    }
    if st & status::ERROR != 0 {
        let code = (st & status::CODE_MASK) >> status::CODE_LSB;
        return Err(ErrorCode::from_code(code as u8).map_or(RtlError::UnknownCode(code), RtlError::Device));
    }
    let cycles = bus.read(regs::CYCLES_LO) as u64 | (bus.read(regs::CYCLES_HI) as u64) << 32;
    Ok((cycles, bus.read(regs::MULT_COUNT), bus.read(regs::ADD_COUNT)))
}

/// Load a layer image at `base` and the inputs through the bus, START (adding onto the
/// accumulators with `accumulate`), wait for DONE or ERROR, and read the accumulators and
/// counters. Works for both kinds: `image` is the CREW memory image or the dense image.
pub fn run_layer_on_rtl<B: SimBus>(
    bus: &mut B,
    image: &[u32],
    base: u32,
    n_out: usize,
    inputs: &[i8],
    accumulate: bool,
) -> Result<RtlRun, RtlError> {
    load_weights(bus, base, image);
    load_inputs(bus, inputs);
    // A run takes far fewer cycles than loading its image; each poll is a few cycles.
    let max_polls = 1000 + 4 * (image.len() as u64 + (n_out * inputs.len()) as u64);
    let (cycles, mults, adds) = start_and_wait(bus, n_out, inputs.len(), base, accumulate, max_polls)?;
    Ok(RtlRun { acc: read_accumulators(bus, n_out), cycles, mults, adds })
}

/// A UART receiver model for testbenches: feed it the TX line once per clock; bytes (8N1,
/// `clocks_per_bit` clocks a bit, sampled mid-bit after the falling start edge) collect in
/// `received`. Panics on a start-bit glitch or a missing stop bit (a failing testbench).
#[derive(Debug, Clone)]
pub struct UartRxModel {
    clocks_per_bit: u32,
    /// (clocks into the frame, bits taken, shift register)
    state: Option<(u32, u32, u32)>,
    pub received: Vec<u8>,
}

impl UartRxModel {
    pub fn new(clocks_per_bit: u32) -> UartRxModel {
        UartRxModel { clocks_per_bit, state: None, received: Vec::new() }
    }

    /// One clock of the line; `cycle` is for the panic messages.
    pub fn sample(&mut self, tx: bool, cycle: u64) {
        let d = self.clocks_per_bit;
        match self.state.take() {
            None => {
                if !tx {
                    self.state = Some((0, 0, 0));
                }
            }
            Some((t, bits, shift)) => {
                let t = t + 1;
                // Bit k (0 = start) is centred at k * d + d / 2 clocks after the edge.
                if t == bits * d + d / 2 {
                    match bits {
                        0 => {
                            assert!(!tx, "tx start bit glitch at cycle {cycle}");
                            self.state = Some((t, 1, 0));
                        }
                        1..=8 => self.state = Some((t, bits + 1, shift | (tx as u32) << (bits - 1))),
                        _ => {
                            assert!(tx, "tx stop bit missing at cycle {cycle}");
                            self.received.push(shift as u8);
                        }
                    }
                } else {
                    self.state = Some((t, bits, shift));
                }
            }
        }
    }
}
