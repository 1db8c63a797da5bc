//! crew-hw: the RTL of the CREW accelerator (rust-hdl), its simulation and Verilog generation.
//!
//! Status: [`bus::Shell`] (register file, memories, CRC-32, checks) is complete and tested; the
//! CREW and dense datapaths attach through its `run_go` / `run_done` / `run_err` hand-off ports
//! and are not built yet.

pub mod bus;
pub mod sim;

use crew_core::config::DeviceConfig;

/// The small configuration the simulation tests use.
pub const TEST_CONFIG: DeviceConfig = DeviceConfig {
    kind: crew_core::config::CoreKind::Crew,
    lanes: 4,
    groups: 1,
    mults: 2,
    wmem_words: 1024,
    ibuf_depth: 64,
    obuf_depth: 64,
};

/// Address widths of [`TEST_CONFIG`]: weight words, input words, accumulator words.
pub type TestShell = bus::Shell<10, 4, 6>;
/// Stepping simulator of [`TestShell`].
pub type TestSim = sim::SimShell<10, 4, 6>;
