//! The emulated CREW device: the register map of [`crew_core::regs`], in process.
//!
//! [`EmuDevice`] behaves like the hardware at the register level; [`EmuTransport`] wraps it in the
//! [`Transport`] trait so the accelerator API can drive it like any other backend.
//!
//! # Register semantics (as the emulator implements them)
//!
//! * The bus decodes word addresses: the two low address bits are ignored.
//! * ID, VERSION, CAPS, WMEM_WORDS, IBUF_DEPTH, OBUF_DEPTH, STATUS, CRC_VALUE, CYCLES_LO/HI,
//!   MULT_COUNT and ADD_COUNT are read-only: writes are ignored.
//! * N_OUT, N_IN, LAYER_BASE, CRC_BASE, CRC_LEN and SCRATCH hold any 32-bit value.
//! * CTRL: a write sets the levels (IRQ_EN, ACCUMULATE) from the written value, then acts on the
//!   pulses in the order SOFT_RESET, CRC_START, START. Reads return the levels only.
//! * SOFT_RESET clears STATUS (BUSY, DONE, ERROR, CODE) and CYCLES, MULT_COUNT and ADD_COUNT.
//!   Memories, CRC_VALUE and the dimension registers keep their values.
//! * START and CRC_START clear DONE, ERROR and CODE. START also clears the three counters. While
//!   BUSY (only with [`Fault::StuckBusy`]), either one sets ERROR with code StartWhileBusy and
//!   leaves BUSY set.
//! * A run ends with DONE, or with ERROR plus a code (DONE stays clear). Counters are only defined
//!   after DONE; the emulator leaves them at zero after an error.
//! * MULT_COUNT and ADD_COUNT hold the low 32 bits of the counts.
//! * Windows: INPUT holds `ceil(IBUF_DEPTH / 4)` words (4 int8 inputs each, LSB-first), OUTPUT
//!   `OBUF_DEPTH` i32 words, WEIGHT `WMEM_WORDS` words; all read/write.
//! * **Unmapped addresses** (between registers, past a window's depth, or between windows) read 0
//!   and ignore writes.
//!
//! # Timing
//!
//! A run or CRC completes within the CTRL write that starts it: the next STATUS read shows DONE (or
//! ERROR), never BUSY. The CYCLES register still reports the cycle count the hardware would take,
//! from [`crew_core::cycles::run_counts`]. Only [`Fault::StuckBusy`] makes BUSY visible.
//!
//! # Run validation
//!
//! START checks, in this order, and stops with ERROR and the first failing code:
//! 1. `1 <= N_OUT <= OBUF_DEPTH` and `1 <= N_IN <= IBUF_DEPTH` (BadDimensions);
//! 2. the layer's descriptors `[LAYER_BASE, LAYER_BASE + 2 N_IN)` (CREW) or its dense image
//!    `[LAYER_BASE, LAYER_BASE + N_IN ceil(N_OUT / 4))` lie in weight memory (LayerOutOfRange);
//! 3. CREW, per column in column order: the index width matches the unique count (BadWidth); the
//!    table and the index run lie in weight memory (DescriptorOutOfRange); every index is below
//!    the count (IndexOutOfRange).
//!
//! On an error the emulator leaves the accumulators untouched (the hardware may have updated some:
//! the driver treats them as undefined). Without CTRL.ACCUMULATE, a run overwrites accumulators
//! `[0, N_OUT)` with its sums; with it, it adds onto them. All adds wrap in i32, like the hardware.

use crate::transport::Transport;
use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles::{run_counts, RunCounts};
use crew_core::encode::{index_bits_for, run_words, table_words, ColumnDescriptor, DESCRIPTOR_WORDS};
use crew_core::regs::{self, caps, ctrl, status, ErrorCode};
use std::convert::Infallible;

/// Largest IBUF_DEPTH the INPUT window can address (4 inputs per word).
pub const MAX_IBUF_DEPTH: u32 = regs::OUTPUT_WINDOW - regs::INPUT_WINDOW;
/// Largest OBUF_DEPTH the OUTPUT window can address.
pub const MAX_OBUF_DEPTH: u32 = (regs::WEIGHT_WINDOW - regs::OUTPUT_WINDOW) / 4;
/// Largest WMEM_WORDS the WEIGHT window can address.
pub const MAX_WMEM_WORDS: u32 = (u32::MAX - regs::WEIGHT_WINDOW) / 4 + 1;

/// A fault to inject into an [`EmuDevice`], for testing the driver's error paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every later START or CRC_START leaves STATUS.BUSY set and never finishes (SOFT_RESET
    /// clears BUSY; the fault stays armed until [`EmuDevice::clear_faults`]).
    StuckBusy,
    /// Bit `bit` of weight word `word` is stuck inverted: it flips once now and in every later
    /// write to that word (until [`EmuDevice::clear_faults`]). A CRC check after a load catches it.
    /// Out-of-range words or bits are ignored.
    WeightBitFlip { word: u32, bit: u8 },
    /// The next START or CRC_START (one shot) ends with STATUS.ERROR and this code.
    ErrorStatus(ErrorCode),
}

/// Reused buffers of the datapath.
#[derive(Default)]
struct Work {
    acts: Vec<i8>,
    sums: Vec<i32>,
    unique: Vec<u16>,
}

/// The emulated device.
pub struct EmuDevice {
    cfg: DeviceConfig,
    wmem: Vec<u32>,
    ibuf: Vec<u32>,
    obuf: Vec<i32>,
    ctrl: u32,
    status: u32,
    n_out: u32,
    n_in: u32,
    layer_base: u32,
    crc_base: u32,
    crc_len: u32,
    crc_value: u32,
    cycles: u64,
    mult_count: u32,
    add_count: u32,
    scratch: u32,
    stuck_busy: bool,
    pending_error: Option<ErrorCode>,
    /// (word, mask) of stuck-inverted weight bits.
    stuck_bits: Vec<(u32, u32)>,
    runs: u64,
    work: Work,
}

impl std::fmt::Debug for EmuDevice {
    /// The configuration and registers; not the memories.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmuDevice")
            .field("cfg", &self.cfg)
            .field("ctrl", &self.ctrl)
            .field("status", &self.status)
            .field("n_out", &self.n_out)
            .field("n_in", &self.n_in)
            .field("layer_base", &self.layer_base)
            .field("cycles", &self.cycles)
            .field("stuck_busy", &self.stuck_busy)
            .field("pending_error", &self.pending_error)
            .field("stuck_bits", &self.stuck_bits)
            .finish_non_exhaustive()
    }
}

fn clamp_field(v: u32, width: u32) -> u32 {
    v.clamp(1, (1 << width) - 1)
}

impl EmuDevice {
    /// A device of this configuration, memories zeroed.
    ///
    /// The configuration is normalized so that the registers can report it: LANES, GROUPS and
    /// MULTS are clamped to `1..=` their CAPS field's maximum, and the sizes to what the windows
    /// address ([`MAX_IBUF_DEPTH`], [`MAX_OBUF_DEPTH`], [`MAX_WMEM_WORDS`]). [`config`](Self::config)
    /// returns the normalized configuration. Memories are allocated at full size.
    pub fn new(cfg: DeviceConfig) -> EmuDevice {
        let cfg = DeviceConfig {
            kind: cfg.kind,
            lanes: clamp_field(cfg.lanes, caps::LANES_WIDTH),
            groups: clamp_field(cfg.groups, caps::GROUPS_WIDTH),
            mults: clamp_field(cfg.mults, caps::MULTS_WIDTH),
            wmem_words: cfg.wmem_words.min(MAX_WMEM_WORDS),
            ibuf_depth: cfg.ibuf_depth.min(MAX_IBUF_DEPTH),
            obuf_depth: cfg.obuf_depth.min(MAX_OBUF_DEPTH),
        };
        EmuDevice {
            cfg,
            wmem: vec![0; cfg.wmem_words as usize],
            ibuf: vec![0; cfg.ibuf_depth.div_ceil(4) as usize],
            obuf: vec![0; cfg.obuf_depth as usize],
            ctrl: 0,
            status: 0,
            n_out: 0,
            n_in: 0,
            layer_base: 0,
            crc_base: 0,
            crc_len: 0,
            crc_value: 0,
            cycles: 0,
            mult_count: 0,
            add_count: 0,
            scratch: 0,
            stuck_busy: false,
            pending_error: None,
            stuck_bits: Vec::new(),
            runs: 0,
            work: Work::default(),
        }
    }

    /// The (normalized) configuration this device reports.
    pub fn config(&self) -> DeviceConfig {
        self.cfg
    }

    /// Inject a fault (see [`Fault`]).
    pub fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::StuckBusy => self.stuck_busy = true,
            Fault::ErrorStatus(code) => self.pending_error = Some(code),
            Fault::WeightBitFlip { word, bit } => {
                if let (Some(mask), Some(w)) = (1u32.checked_shl(bit as u32), self.wmem.get_mut(word as usize)) {
                    *w ^= mask;
                    self.stuck_bits.push((word, mask));
                }
            }
        }
    }

    /// Disarm every injected fault. Memory contents stay as they are; a BUSY left by
    /// [`Fault::StuckBusy`] stays until SOFT_RESET.
    pub fn clear_faults(&mut self) {
        self.stuck_busy = false;
        self.pending_error = None;
        self.stuck_bits.clear();
    }

    /// STARTs that ran the datapath (successfully or not), for tests.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Whether the interrupt line is raised: CTRL.IRQ_EN and STATUS shows DONE or ERROR.
    pub fn irq(&self) -> bool {
        self.ctrl & ctrl::IRQ_EN != 0 && self.status & (status::DONE | status::ERROR) != 0
    }

    /// Weight memory, for inspection.
    pub fn weights(&self) -> &[u32] {
        &self.wmem
    }

    /// Read the word at byte address `addr`.
    pub fn read(&mut self, addr: u32) -> u32 {
        let addr = addr & !3;
        if addr >= regs::WEIGHT_WINDOW {
            return self.wmem.get(((addr - regs::WEIGHT_WINDOW) / 4) as usize).copied().unwrap_or(0);
        }
        if addr >= regs::OUTPUT_WINDOW {
            return self.obuf.get(((addr - regs::OUTPUT_WINDOW) / 4) as usize).map_or(0, |&v| v as u32);
        }
        if addr >= regs::INPUT_WINDOW {
            return self.ibuf.get(((addr - regs::INPUT_WINDOW) / 4) as usize).copied().unwrap_or(0);
        }
        match addr {
            regs::ID => regs::ID_MAGIC,
            regs::VERSION_REG => regs::VERSION,
            regs::CAPS => regs::caps_value(&self.cfg),
            regs::WMEM_WORDS => self.cfg.wmem_words,
            regs::IBUF_DEPTH => self.cfg.ibuf_depth,
            regs::OBUF_DEPTH => self.cfg.obuf_depth,
            regs::CTRL => self.ctrl,
            regs::STATUS => self.status,
            regs::N_OUT => self.n_out,
            regs::N_IN => self.n_in,
            regs::LAYER_BASE => self.layer_base,
            regs::CRC_BASE => self.crc_base,
            regs::CRC_LEN => self.crc_len,
            regs::CRC_VALUE => self.crc_value,
            regs::CYCLES_LO => self.cycles as u32,
            regs::CYCLES_HI => (self.cycles >> 32) as u32,
            regs::MULT_COUNT => self.mult_count,
            regs::ADD_COUNT => self.add_count,
            regs::SCRATCH => self.scratch,
            _ => 0,
        }
    }

    /// Write `value` to the word at byte address `addr`.
    pub fn write(&mut self, addr: u32, value: u32) {
        let addr = addr & !3;
        if addr >= regs::WEIGHT_WINDOW {
            let k = (addr - regs::WEIGHT_WINDOW) / 4;
            if let Some(w) = self.wmem.get_mut(k as usize) {
                *w = value;
                self.apply_stuck_bits(k, 1);
            }
            return;
        }
        if addr >= regs::OUTPUT_WINDOW {
            if let Some(w) = self.obuf.get_mut(((addr - regs::OUTPUT_WINDOW) / 4) as usize) {
                *w = value as i32;
            }
            return;
        }
        if addr >= regs::INPUT_WINDOW {
            if let Some(w) = self.ibuf.get_mut(((addr - regs::INPUT_WINDOW) / 4) as usize) {
                *w = value;
            }
            return;
        }
        match addr {
            regs::CTRL => self.write_ctrl(value),
            regs::N_OUT => self.n_out = value,
            regs::N_IN => self.n_in = value,
            regs::LAYER_BASE => self.layer_base = value,
            regs::CRC_BASE => self.crc_base = value,
            regs::CRC_LEN => self.crc_len = value,
            regs::SCRATCH => self.scratch = value,
            _ => {}
        }
    }

    /// Read consecutive words from `addr`: slice copies inside one window, word reads otherwise.
    pub fn read_burst(&mut self, addr: u32, out: &mut [u32]) {
        let a = addr & !3;
        let n = out.len();
        if let Some(k) = window_index(a, regs::WEIGHT_WINDOW, u32::MAX, n, self.wmem.len()) {
            out.copy_from_slice(&self.wmem[k..k + n]);
        } else if let Some(k) = window_index(a, regs::OUTPUT_WINDOW, regs::WEIGHT_WINDOW, n, self.obuf.len()) {
            for (o, &v) in out.iter_mut().zip(&self.obuf[k..k + n]) {
                *o = v as u32;
            }
        } else if let Some(k) = window_index(a, regs::INPUT_WINDOW, regs::OUTPUT_WINDOW, n, self.ibuf.len()) {
            out.copy_from_slice(&self.ibuf[k..k + n]);
        } else {
            for (k, o) in out.iter_mut().enumerate() {
                *o = self.read(a.wrapping_add(4 * k as u32));
            }
        }
    }

    /// Write consecutive words from `addr`: slice copies inside one window, word writes otherwise.
    pub fn write_burst(&mut self, addr: u32, data: &[u32]) {
        let a = addr & !3;
        let n = data.len();
        if let Some(k) = window_index(a, regs::WEIGHT_WINDOW, u32::MAX, n, self.wmem.len()) {
            self.wmem[k..k + n].copy_from_slice(data);
            self.apply_stuck_bits(k as u32, n);
        } else if let Some(k) = window_index(a, regs::OUTPUT_WINDOW, regs::WEIGHT_WINDOW, n, self.obuf.len()) {
            for (o, &v) in self.obuf[k..k + n].iter_mut().zip(data) {
                *o = v as i32;
            }
        } else if let Some(k) = window_index(a, regs::INPUT_WINDOW, regs::OUTPUT_WINDOW, n, self.ibuf.len()) {
            self.ibuf[k..k + n].copy_from_slice(data);
        } else {
            for (k, &v) in data.iter().enumerate() {
                self.write(a.wrapping_add(4 * k as u32), v);
            }
        }
    }

    fn apply_stuck_bits(&mut self, first: u32, len: usize) {
        for &(word, mask) in &self.stuck_bits {
            if word >= first && ((word - first) as usize) < len {
                if let Some(w) = self.wmem.get_mut(word as usize) {
                    *w ^= mask;
                }
            }
        }
    }

    fn write_ctrl(&mut self, value: u32) {
        self.ctrl = value & ctrl::LEVEL_MASK;
        if value & ctrl::SOFT_RESET != 0 {
            self.status = 0;
            self.cycles = 0;
            self.mult_count = 0;
            self.add_count = 0;
        }
        if value & ctrl::CRC_START != 0 {
            self.crc_start();
        }
        if value & ctrl::START != 0 {
            self.start();
        }
    }

    fn set_error(&mut self, code: ErrorCode) {
        self.status = (self.status & status::BUSY) | status::ERROR | ((code as u32) << status::CODE_LSB);
    }

    /// Common START / CRC_START entry: false if the operation must not proceed.
    fn begin(&mut self) -> bool {
        if self.status & status::BUSY != 0 {
            self.set_error(ErrorCode::StartWhileBusy);
            return false;
        }
        self.status = 0;
        if let Some(code) = self.pending_error.take() {
            self.set_error(code);
            return false;
        }
        if self.stuck_busy {
            self.status = status::BUSY;
            return false;
        }
        true
    }

    fn crc_start(&mut self) {
        if !self.begin() {
            return;
        }
        let (base, len) = (self.crc_base as u64, self.crc_len as u64);
        if base + len > self.wmem.len() as u64 {
            self.set_error(ErrorCode::CrcOutOfRange);
            return;
        }
        self.crc_value = crc_of_words(&self.wmem[base as usize..(base + len) as usize]);
        self.status = status::DONE;
    }

    fn start(&mut self) {
        self.cycles = 0;
        self.mult_count = 0;
        self.add_count = 0;
        if !self.begin() {
            return;
        }
        self.runs += 1;
        match self.execute() {
            Ok(c) => {
                self.cycles = c.cycles;
                self.mult_count = c.mults as u32;
                self.add_count = c.adds as u32;
                self.status = status::DONE;
            }
            Err(code) => self.set_error(code),
        }
    }

    /// Run the layer at LAYER_BASE. Works on weight memory directly; accumulators are only
    /// written once the whole run has succeeded.
    fn execute(&mut self) -> Result<RunCounts, ErrorCode> {
        let cfg = self.cfg;
        let (n_out, n_in) = (self.n_out as usize, self.n_in as usize);
        if n_out == 0 || n_in == 0 || n_out > self.obuf.len() || n_in > cfg.ibuf_depth as usize {
            return Err(ErrorCode::BadDimensions);
        }
        let Work { acts, sums, unique } = &mut self.work;
        acts.clear();
        acts.extend((0..n_in).map(|k| (self.ibuf[k / 4] >> (8 * (k % 4))) as u8 as i8));
        sums.clear();
        sums.resize(n_out, 0);
        unique.clear();
        let wmem = &self.wmem[..];
        let wlen = wmem.len() as u64;
        let base = self.layer_base as u64;
        match cfg.kind {
            CoreKind::Crew => {
                if base + (DESCRIPTOR_WORDS * n_in) as u64 > wlen {
                    return Err(ErrorCode::LayerOutOfRange);
                }
                let mut products = [0i32; 256];
                for (i, &a) in acts.iter().enumerate() {
                    let d0 = base as usize + DESCRIPTOR_WORDS * i;
                    let d = ColumnDescriptor::from_words([wmem[d0], wmem[d0 + 1]]);
                    let count = d.unique_count as usize;
                    if d.index_bits != index_bits_for(count) {
                        return Err(ErrorCode::BadWidth);
                    }
                    let t0 = base + d.table_offset as u64;
                    let tw = table_words(count) as u64;
                    let r0 = base + d.run_offset as u64;
                    let rw = run_words(n_out, d.index_bits) as u64;
                    if t0 + tw > wlen || r0 + rw > wlen {
                        return Err(ErrorCode::DescriptorOutOfRange);
                    }
                    let table = &wmem[t0 as usize..(t0 + tw) as usize];
                    let a = a as i32;
                    for (k, p) in products[..count].iter_mut().enumerate() {
                        *p = a * (table[k / 4] >> (8 * (k % 4))) as u8 as i8 as i32;
                    }
                    let run = &wmem[r0 as usize..(r0 + rw) as usize];
                    let max = gather_add(run, d.index_bits, &products, sums);
                    if max as usize >= count {
                        return Err(ErrorCode::IndexOutOfRange);
                    }
                    unique.push(count as u16);
                }
            }
            CoreKind::Dense => {
                let per_col = n_out.div_ceil(4);
                if base + (per_col * n_in) as u64 > wlen {
                    return Err(ErrorCode::LayerOutOfRange);
                }
                for (i, &a) in acts.iter().enumerate() {
                    unique.push(0);
                    if a == 0 {
                        continue;
                    }
                    let a = a as i32;
                    let c0 = base as usize + i * per_col;
                    for (s4, &w) in sums.chunks_mut(4).zip(&wmem[c0..c0 + per_col]) {
                        for (k, s) in s4.iter_mut().enumerate() {
                            *s = s.wrapping_add(a * (w >> (8 * k)) as u8 as i8 as i32);
                        }
                    }
                }
            }
        }
        let acc = &mut self.obuf[..n_out];
        if self.ctrl & ctrl::ACCUMULATE != 0 {
            for (o, &s) in acc.iter_mut().zip(sums.iter()) {
                *o = o.wrapping_add(s);
            }
        } else {
            acc.copy_from_slice(sums);
        }
        Ok(run_counts(&cfg, n_out, unique))
    }
}

/// `Some(k)` if `[a, a + 4n)` lies in the window starting at `base` (ending before `end`) and
/// `[k, k + n)` inside its `len` words.
fn window_index(a: u32, base: u32, end: u32, n: usize, len: usize) -> Option<usize> {
    if a < base || a >= end {
        return None;
    }
    let k = ((a - base) / 4) as usize;
    (k.checked_add(n)? <= len).then_some(k)
}

/// CRC-32 (IEEE, as zlib) of words as little-endian bytes: the CRC_VALUE the device computes.
pub fn crc_of_words(words: &[u32]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    let mut buf = [0u8; 4096];
    for chunk in words.chunks(buf.len() / 4) {
        for (b, w) in buf.chunks_exact_mut(4).zip(chunk) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        h.update(&buf[..4 * chunk.len()]);
    }
    h.finalize()
}

/// `sums[j] += products[index j]` for the `sums.len()` indices of `bits` bits (an LSB-first
/// stream) in `words`, missing words reading as zero; returns the largest index seen. Indices
/// are below 256 (`bits <= 8`: the width check comes first), so the table lookup cannot fail.
fn gather_add(words: &[u32], bits: u8, products: &[i32; 256], sums: &mut [i32]) -> u32 {
    match bits {
        0 => gather_bits::<0>(words, products, sums),
        1 => gather_bits::<1>(words, products, sums),
        2 => gather_bits::<2>(words, products, sums),
        3 => gather_bits::<3>(words, products, sums),
        4 => gather_bits::<4>(words, products, sums),
        5 => gather_bits::<5>(words, products, sums),
        6 => gather_bits::<6>(words, products, sums),
        7 => gather_bits::<7>(words, products, sums),
        _ => gather_bits::<8>(words, products, sums),
    }
}

#[inline(always)]
fn gather_bits<const B: u32>(words: &[u32], products: &[i32; 256], sums: &mut [i32]) -> u32 {
    let mut max = 0u32;
    if B == 0 {
        let p = products[0];
        for s in sums.iter_mut() {
            *s = s.wrapping_add(p);
        }
        return 0;
    }
    let mask = (1u32 << B) - 1;
    if 32 % B == 0 {
        // Indices never straddle words.
        let per = (32 / B) as usize;
        let n_words = sums.len().div_ceil(per).min(words.len());
        let (head, tail) = sums.split_at_mut((n_words * per).min(sums.len()));
        for (chunk, &w) in head.chunks_mut(per).zip(&words[..n_words]) {
            let mut w = w;
            for s in chunk {
                let k = w & mask;
                max = max.max(k);
                *s = s.wrapping_add(products[(k & 0xff) as usize]);
                w >>= B;
            }
        }
        // Past the end of the words, zero indices.
        for s in tail {
            *s = s.wrapping_add(products[0]);
        }
    } else {
        let (mut buf, mut avail) = (0u64, 0u32);
        let mut it = words.iter();
        for s in sums.iter_mut() {
            if avail < B {
                buf |= (it.next().copied().unwrap_or(0) as u64) << avail;
                avail += 32;
            }
            let k = buf as u32 & mask;
            max = max.max(k);
            *s = s.wrapping_add(products[(k & 0xff) as usize]);
            buf >>= B;
            avail -= B;
        }
    }
    max
}

/// An [`EmuDevice`] behind the [`Transport`] trait. Bursts are slice copies.
#[derive(Debug)]
pub struct EmuTransport {
    dev: EmuDevice,
}

impl EmuTransport {
    /// A transport to a fresh emulated device of this configuration.
    pub fn new(cfg: DeviceConfig) -> EmuTransport {
        EmuTransport { dev: EmuDevice::new(cfg) }
    }

    /// Wrap an existing device.
    pub fn from_device(dev: EmuDevice) -> EmuTransport {
        EmuTransport { dev }
    }

    pub fn device(&self) -> &EmuDevice {
        &self.dev
    }

    /// The device, e.g. to [`inject`](EmuDevice::inject) faults.
    pub fn device_mut(&mut self) -> &mut EmuDevice {
        &mut self.dev
    }

    pub fn into_device(self) -> EmuDevice {
        self.dev
    }
}

impl Transport for EmuTransport {
    type Error = Infallible;

    fn read32(&mut self, addr: u32) -> Result<u32, Infallible> {
        Ok(self.dev.read(addr))
    }

    fn write32(&mut self, addr: u32, value: u32) -> Result<(), Infallible> {
        self.dev.write(addr, value);
        Ok(())
    }

    fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), Infallible> {
        self.dev.read_burst(addr, out);
        Ok(())
    }

    fn write_burst(&mut self, addr: u32, data: &[u32]) -> Result<(), Infallible> {
        self.dev.write_burst(addr, data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_matches_index_reader() {
        use crew_core::encode::IndexReader;
        let words: Vec<u32> = (0..40u32).map(|k| k.wrapping_mul(0x9E37_79B9) ^ 0x5555_1234).collect();
        let mut products = [0i32; 256];
        for (k, p) in products.iter_mut().enumerate() {
            *p = (k as i32 - 100) * 37;
        }
        for bits in 0..=8u8 {
            for n in [1, 17, 150, 40 * 32 / bits.max(1) as usize, 1300] {
                let mut sums: Vec<i32> = (0..n as i32).collect();
                let max = gather_add(&words, bits, &products, &mut sums);
                let mut r = IndexReader::new(&words, bits);
                let mut want_max = 0;
                for (j, &s) in sums.iter().enumerate() {
                    let k = r.next_index();
                    want_max = want_max.max(k as u32);
                    assert_eq!(s, j as i32 + products[k], "bits {bits} n {n} index {j}");
                }
                assert_eq!(max, want_max, "bits {bits} n {n}");
            }
        }
    }

    #[test]
    fn crc_matches_byte_crc() {
        let words = [0x0403_0201u32, 0xdead_beef, 7];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(crc_of_words(&words), crc32fast::hash(&bytes));
        let long: Vec<u32> = (0..5000).collect();
        let bytes: Vec<u8> = long.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(crc_of_words(&long), crc32fast::hash(&bytes));
    }

    #[test]
    fn window_edges() {
        let mut d = EmuDevice::new(DeviceConfig { wmem_words: 4, ibuf_depth: 5, obuf_depth: 3, ..Default::default() });
        d.write(regs::WEIGHT_WINDOW + 12, 9);
        d.write(regs::WEIGHT_WINDOW + 16, 9);
        assert_eq!(d.read(regs::WEIGHT_WINDOW + 12), 9);
        assert_eq!(d.read(regs::WEIGHT_WINDOW + 16), 0);
        d.write(regs::INPUT_WINDOW + 4, 0x0102_0304);
        assert_eq!(d.read(regs::INPUT_WINDOW + 4), 0x0102_0304);
        assert_eq!(d.read(regs::INPUT_WINDOW + 8), 0);
        d.write(regs::OUTPUT_WINDOW + 8, u32::MAX);
        assert_eq!(d.read(regs::OUTPUT_WINDOW + 8), u32::MAX);
        let mut out = [1u32; 3];
        d.read_burst(regs::OUTPUT_WINDOW + 4, &mut out);
        assert_eq!(out, [0, u32::MAX, 0]);
        d.write_burst(regs::WEIGHT_WINDOW + 8, &[1, 2, 3]);
        assert_eq!(d.weights(), &[0, 0, 1, 2]);
        assert_eq!(d.read(u32::MAX), 0);
        assert_eq!(d.read(0x4C), 0);
    }
}
