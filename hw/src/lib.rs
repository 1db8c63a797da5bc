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

use crew_core::config::DeviceConfig;

/// The small configuration most simulation tests use (`DeviceConfig::named("test")`).
pub const TEST_CONFIG: DeviceConfig = DeviceConfig::SIM_CONFIGS[0].1;

/// The lanes and multipliers of the `ecp5-25f` preset with small memories (fast simulation).
pub const TEST_CONFIG_25F_LANES: DeviceConfig = DeviceConfig::SIM_CONFIGS[1].1;

/// 32 lanes and 16 multipliers with small memories: the widest core the RTL tests simulate.
pub const TEST_CONFIG_85F_LANES: DeviceConfig = DeviceConfig::SIM_CONFIGS[2].1;

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
pub type Ecp5_85fAccel = top::Accel<9, 16, 8, 8, 13, 256, 7, 6, 128>;

/// Something to do with the accelerator type of a configuration: the const parameters of
/// [`top::Accel`] are fixed at compile time, so each supported configuration is one
/// instantiation, and [`with_accel`] is the one place that maps configurations to them.
pub trait AccelVisitor {
    type Output;
    fn visit<T: sim::BusTop + Send + 'static>(self, cfg: &DeviceConfig) -> Self::Output;
}

/// The configuration named `name` if it has an instantiation: every name of
/// [`DeviceConfig::named`] (the presets and the simulation configurations) has one.
pub fn instantiated_config(name: &str) -> Option<DeviceConfig> {
    DeviceConfig::named(name).filter(|c| with_accel(c, Probe).is_some())
}

struct Probe;
impl AccelVisitor for Probe {
    type Output = ();
    fn visit<T: sim::BusTop + Send + 'static>(self, _: &DeviceConfig) {}
}

/// Call `v` with the accelerator type of `cfg` (any kind), or `None` if `cfg` has no
/// instantiation (then add one here).
pub fn with_accel<V: AccelVisitor>(cfg: &DeviceConfig, v: V) -> Option<V::Output> {
    Some(match (cfg.lanes, cfg.groups, cfg.mults, cfg.wmem_words, cfg.ibuf_depth, cfg.obuf_depth) {
        // The rows of `DeviceConfig::SIM_CONFIGS` and `DeviceConfig::PRESETS`; a test checks that
        // every named configuration has one.
        (4, 1, 2, 1024, 64, 256) => v.visit::<TestAccel>(cfg),
        (8, 1, 4, 1024, 64, 64) => v.visit::<Test25Accel>(cfg),
        (32, 1, 16, 1024, 64, 256) => v.visit::<Test85Accel>(cfg),
        (8, 1, 4, 16384, 1024, 1024) => v.visit::<Ecp5_25fAccel>(cfg),
        (16, 1, 8, 65536, 2048, 2048) => v.visit::<Ecp5_85fAccel>(cfg),
        _ => return None,
    })
}

/// The Verilog of configuration `cfg` (module `top`), or `None` without an instantiation.
pub fn verilog_of(cfg: &DeviceConfig) -> Option<String> {
    struct Gen;
    impl AccelVisitor for Gen {
        type Output = String;
        fn visit<T: sim::BusTop + Send + 'static>(self, cfg: &DeviceConfig) -> String {
            use rust_hdl::prelude::*;
            let mut uut = T::build(cfg);
            uut.connect_all();
            generate_verilog(&uut)
        }
    }
    with_accel(cfg, Gen)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_named_configuration_is_instantiated() {
        for name in crew_core::config::DeviceConfig::names() {
            assert!(super::instantiated_config(name).is_some(), "{name} has no instantiation in with_accel");
        }
    }
}
