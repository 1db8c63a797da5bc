//! Bus-level stepping of a simulated core: each word access is a handful of clock cycles.
//! A later `sim` transport drives the RTL through [`SimBus`].

use crate::bus::Shell;
use crew_core::config::DeviceConfig;
use rust_hdl::prelude::*;

/// Settle iterations allowed per half clock.
const SETTLE: usize = 100;
/// A bus access that takes longer than this many cycles is a hang.
const ACCESS_TIMEOUT: u64 = 64;

/// The bus interface of any simulated core.
pub trait SimBus {
    fn write(&mut self, addr: u32, data: u32);
    fn read(&mut self, addr: u32) -> u32;
    /// Clock cycles since construction.
    fn cycles(&self) -> u64;
    /// Advance `n` idle cycles.
    fn idle(&mut self, n: u64);
}

/// A [`Shell`] driven directly, one clock edge at a time (no testbench threads).
pub struct SimShell<const WA: usize, const IA: usize, const OA: usize> {
    pub uut: Box<Shell<WA, IA, OA>>,
    cycles: u64,
}

impl<const WA: usize, const IA: usize, const OA: usize> SimShell<WA, IA, OA> {
    pub fn new(cfg: &DeviceConfig) -> Self {
        let mut uut = Box::new(Shell::<WA, IA, OA>::new(cfg));
        uut.connect_all();
        let mut s = SimShell { uut, cycles: 0 };
        s.settle();
        s
    }

    fn settle(&mut self) {
        assert!(simulate(&mut *self.uut, SETTLE), "the circuit did not settle");
    }

    /// One full clock cycle: falling then rising edge.
    pub fn step(&mut self) {
        self.uut.clock.next = Clock { clk: false };
        self.settle();
        self.uut.clock.next = Clock { clk: true };
        self.settle();
        self.cycles += 1;
    }

    fn access(&mut self, addr: u32, data: u32, we: bool) -> u32 {
        self.uut.addr.next = addr.to_bits();
        self.uut.wdata.next = data.to_bits();
        self.uut.we.next = we;
        self.uut.valid.next = true;
        self.settle();
        let mut n = 0;
        loop {
            self.step();
            n += 1;
            if self.uut.ready.val() {
                break;
            }
            assert!(n < ACCESS_TIMEOUT, "bus access to {addr:#x} hung");
        }
        let r = self.uut.rdata.val().to_u64() as u32;
        self.uut.valid.next = false;
        self.uut.we.next = false;
        self.settle();
        self.step();
        r
    }
}

impl<const WA: usize, const IA: usize, const OA: usize> SimBus for SimShell<WA, IA, OA> {
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
