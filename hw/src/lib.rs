//! crew-hw: the RTL of the CREW accelerator (rust-hdl), its simulation and Verilog generation.
//!
//! [`top::Accel`] = [`bus::Shell`] (register file, CRC-32, checks) + [`engine::Engine`]
//! (banked weight memory, input buffer, table filler, index streamer, [`lane::Lane`]s). One
//! engine serves both kinds: `CAPS.KIND` (the config's `kind`) selects CREW or the dense
//! baseline at elaboration. `docs/hw.md` describes the microarchitecture.

pub mod bank;
pub mod board;
pub mod bus;
pub mod engine;
pub mod lane;
pub mod sim;
pub mod top;
pub mod uart_bridge;

use crew_core::config::{CoreKind, DeviceConfig};

/// The small configuration most simulation tests use.
pub const TEST_CONFIG: DeviceConfig = DeviceConfig {
    kind: CoreKind::Crew,
    lanes: 4,
    groups: 1,
    mults: 2,
    wmem_words: 1024,
    ibuf_depth: 64,
    obuf_depth: 256,
};

/// The lanes and multipliers of the `ecp5-25f` preset with small memories (fast simulation).
pub const TEST_CONFIG_25F_LANES: DeviceConfig = DeviceConfig {
    kind: CoreKind::Crew,
    lanes: 8,
    groups: 1,
    mults: 4,
    wmem_words: 1024,
    ibuf_depth: 64,
    obuf_depth: 64,
};

/// The lanes and multipliers of the `ecp5-85f` preset with small memories.
pub const TEST_CONFIG_85F_LANES: DeviceConfig = DeviceConfig {
    kind: CoreKind::Crew,
    lanes: 32,
    groups: 1,
    mults: 16,
    wmem_words: 1024,
    ibuf_depth: 64,
    obuf_depth: 256,
};

/// [`TEST_CONFIG`]: IA 4, lanes 4, mults 2, 2 banks of 512 words, 64 accumulator rows per lane.
pub type TestAccel = top::Accel<4, 4, 2, 2, 9, 64, 6, 8, 32>;
/// Stepping simulator of [`TestAccel`].
pub type TestSim = sim::SimCore<TestAccel>;
/// The ULX3S board top around [`TestAccel`] (build it with [`TEST_CONFIG`]).
pub type TestBoard = board::Ulx3sTop<4, 4, 2, 2, 9, 64, 6, 8, 32>;
/// [`TEST_CONFIG_25F_LANES`]: lanes 8, mults 4, 4 banks of 256 words, 8 rows per lane.
pub type Test25Accel = top::Accel<4, 8, 4, 4, 8, 128, 3, 7, 64>;
/// Stepping simulator of [`Test25Accel`].
pub type Test25Sim = sim::SimCore<Test25Accel>;
/// [`TEST_CONFIG_85F_LANES`]: lanes 32, mults 16, 16 banks of 64 words, 8 rows per lane.
pub type Test85Accel = top::Accel<4, 32, 16, 16, 6, 512, 3, 5, 256>;
/// The `ecp5-25f` preset.
pub type Ecp5_25fAccel = top::Accel<8, 8, 4, 4, 12, 128, 7, 7, 64>;
/// The `ecp5-85f` preset.
pub type Ecp5_85fAccel = top::Accel<9, 32, 16, 16, 12, 512, 6, 5, 256>;
