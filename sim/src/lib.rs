//! crew-sim: the unchanged CREW driver against the cycle-accurate RTL.
//!
//! [`SimTransport`] implements the driver's [`Transport`] over the rust-hdl simulation of the
//! `crew-hw` core ([`crew_hw::sim::SimCore`]): every 32-bit access is a bus handshake of a few
//! clock cycles, exactly as a bus master in the FPGA would make it. So `crew-host run --device
//! sim` exercises the same driver code as `--device emu`, and the two must agree on every
//! accumulator and every counter (`tests/cosim.rs`).
//!
//! [`verilator::VerilatorTransport`] is the same, over the generated Verilog compiled by
//! Verilator: a few hundred times faster, so it is the default engine of `--device sim`.
//!
//! [`replay`] runs a recorded bus trace (`crew-host run --trace`, [`crew_driver::trace`])
//! against the *generated Verilog* under Icarus Verilog (`verilog/replay_tb.v`), which is what
//! ties the bitstream's Verilog to the simulated Rust. `docs/cosim.md` has the whole picture.

pub mod replay;
pub mod verilator;

use crew_core::config::{CoreKind, DeviceConfig};
use crew_driver::device::parse_options;
use crew_driver::{erase, BoxedError, BoxedTransport, DriverError, Transport};
use crew_hw::sim::{AccessError, BusTop, SimCore};
use crew_hw::AccelVisitor;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The `sim` scheme's description, for device lists.
pub const SCHEME_HELP: &str = "cycle-accurate RTL simulation: sim[:engine=verilator|rust-hdl,config=ecp5-85f|ecp5-25f|test|test25|test85,kind=crew|dense]";

/// How the RTL is simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The generated Verilog compiled by Verilator ([`verilator`]): fast; the default.
    Verilator,
    /// The rust-hdl simulation of the Rust source itself ([`SimTransport`]): slow, with `--vcd`.
    RustHdl,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Verilator => "verilator",
            Engine::RustHdl => "rust-hdl",
        }
    }

    /// The configuration without a `config` option: the emulator's default for Verilator (so
    /// `--device sim` and `--device emu` are the same device), and the small [`RUST_HDL_CONFIG`]
    /// for rust-hdl, which runs the 85F core at a few hundred cycles per second.
    pub fn default_config(self) -> DeviceConfig {
        match self {
            Engine::Verilator => DeviceConfig::default(),
            Engine::RustHdl => DeviceConfig::named(RUST_HDL_CONFIG).expect("a named configuration"),
        }
    }
}

/// Why the simulation could not serve an access.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The simulated core did not answer or did not settle.
    #[error("RTL simulation failed at cycle {cycle}")]
    Access {
        cycle: u64,
        #[source]
        source: AccessError,
    },
    /// An earlier access panicked inside the simulator, so its state is unknown.
    #[error("the RTL simulation stopped after an earlier failure")]
    Poisoned,
    /// The configuration has no RTL instantiation (the const parameters are compile-time).
    #[error("no RTL instantiation for {config}; instantiated configurations: {known}")]
    NoInstantiation { config: String, known: String },
    /// The waveform file could not be written.
    #[error("cannot write the waveform {}", path.display())]
    Vcd {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What [`SimTransport`] needs of a [`SimCore`], with the core's type erased.
trait Backend: Send {
    fn access(&mut self, addr: u32, data: u32, we: bool) -> Result<u32, AccessError>;
    fn cycles(&self) -> u64;
    fn finish_vcd(&mut self) -> std::io::Result<()>;
}

impl<T: BusTop + Send> Backend for SimCore<T> {
    fn access(&mut self, addr: u32, data: u32, we: bool) -> Result<u32, AccessError> {
        self.try_access(addr, data, we)
    }
    fn cycles(&self) -> u64 {
        crew_hw::sim::SimBus::cycles(self)
    }
    fn finish_vcd(&mut self) -> std::io::Result<()> {
        SimCore::finish_vcd(self)
    }
}

type SharedCore = Arc<Mutex<dyn Backend>>;

/// A [`Transport`] over the RTL simulation of one configuration.
pub struct SimTransport {
    core: SharedCore,
    config: DeviceConfig,
}

impl std::fmt::Debug for SimTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTransport").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A waveform being written by a [`SimTransport`]; [`finish`](VcdFile::finish) puts it in place.
pub struct VcdFile {
    core: SharedCore,
    tmp: tempfile::TempPath,
    path: PathBuf,
}

impl VcdFile {
    /// Write the rest of the waveform and rename it into place.
    pub fn finish(self) -> Result<PathBuf, SimError> {
        let fail = |source| SimError::Vcd { path: self.path.clone(), source };
        self.core.lock().map_err(|_| SimError::Poisoned)?.finish_vcd().map_err(fail)?;
        self.tmp.persist(&self.path).map_err(|e| fail(e.error))?;
        Ok(self.path)
    }
}

struct Build<'a> {
    vcd: Option<(&'a str, Box<dyn Write + Send>)>,
}

impl AccelVisitor for Build<'_> {
    type Output = SharedCore;
    fn visit<T: BusTop + Send + 'static>(self, cfg: &DeviceConfig) -> SharedCore {
        let core = SimCore::<T>::new(cfg);
        let core = match self.vcd {
            Some((name, out)) => core.with_vcd_writer(name, out),
            None => core,
        };
        Arc::new(Mutex::new(core))
    }
}

impl SimTransport {
    /// Simulate configuration `cfg` (one of [`DeviceConfig::named`], either kind).
    pub fn new(cfg: &DeviceConfig) -> Result<SimTransport, SimError> {
        let core = crew_hw::with_accel(cfg, Build { vcd: None }).ok_or_else(|| no_instantiation(cfg))?;
        Ok(SimTransport { core, config: *cfg })
    }

    /// As [`new`](Self::new), tracing every clock edge into the VCD file `path`.
    pub fn with_vcd(cfg: &DeviceConfig, path: &Path) -> Result<(SimTransport, VcdFile), SimError> {
        let fail = |source| SimError::Vcd { path: path.to_path_buf(), source };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new().prefix(".crew-vcd").tempfile_in(dir).map_err(fail)?;
        let (file, tmp) = tmp.into_parts();
        let out: Box<dyn Write + Send> = Box::new(BufWriter::with_capacity(1 << 20, file));
        let core = crew_hw::with_accel(cfg, Build { vcd: Some(("crew", out)) }).ok_or_else(|| no_instantiation(cfg))?;
        Ok((SimTransport { core: core.clone(), config: *cfg }, VcdFile { core, tmp, path: path.to_path_buf() }))
    }

    /// The simulated configuration.
    pub fn config(&self) -> DeviceConfig {
        self.config
    }

    /// Clock cycles simulated so far.
    pub fn cycles(&self) -> u64 {
        self.core.lock().map_or(0, |c| c.cycles())
    }

    fn access(&mut self, addr: u32, data: u32, we: bool) -> Result<u32, SimError> {
        let mut core = self.core.lock().map_err(|_| SimError::Poisoned)?;
        core.access(addr, data, we).map_err(|source| SimError::Access { cycle: core.cycles(), source })
    }
}

fn no_instantiation(cfg: &DeviceConfig) -> SimError {
    SimError::NoInstantiation { config: cfg.describe(), known: DeviceConfig::names().join(", ") }
}

impl Transport for SimTransport {
    type Error = SimError;

    fn read32(&mut self, addr: u32) -> Result<u32, SimError> {
        self.access(addr, 0, false)
    }

    fn write32(&mut self, addr: u32, value: u32) -> Result<(), SimError> {
        self.access(addr, value, true).map(|_| ())
    }
}

/// The rust-hdl engine's default configuration: the 25F preset's 8 lanes and 4 multipliers
/// with small memories. The presets simulate too, but slowly (docs/cosim.md).
pub const RUST_HDL_CONFIG: &str = "test25";

/// The engine and configuration of a `sim:` option string (`options` is what follows `sim:`):
/// `engine` is `verilator` (default) or `rust-hdl`; `config` names a configuration of
/// [`DeviceConfig::named`] (default: [`Engine::default_config`]; the emulator takes the same
/// names, so `emu:config=test25` is the same device); `kind` is `crew` or `dense`.
pub fn sim_config(device: &str, options: &str) -> Result<(Engine, DeviceConfig), DriverError> {
    let bad = |key: &str, reason: String| DriverError::BadOption {
        device: device.to_string(),
        option: key.to_string(),
        reason,
    };
    let mut engine = Engine::Verilator;
    let (mut cfg, mut kind) = (None, None);
    for (k, v) in parse_options(device, options)? {
        match k {
            "engine" => {
                engine = match v {
                    "verilator" => Engine::Verilator,
                    "rust-hdl" => Engine::RustHdl,
                    _ => return Err(bad(k, format!("unknown engine `{v}`; known engines: verilator, rust-hdl"))),
                }
            }
            "config" => {
                cfg = Some(crew_hw::instantiated_config(v).ok_or_else(|| {
                    bad(k, format!("no RTL instantiation named `{v}`; known: {}", DeviceConfig::names().join(", ")))
                })?)
            }
            "kind" => {
                kind = Some(match v {
                    "crew" => CoreKind::Crew,
                    "dense" => CoreKind::Dense,
                    _ => return Err(bad(k, format!("unknown kind `{v}`; known kinds: crew, dense"))),
                })
            }
            _ => return Err(bad(k, "unknown option; known options: engine, config, kind".into())),
        }
    }
    let cfg = cfg.unwrap_or_else(|| engine.default_config());
    Ok((engine, cfg.with_kind(kind.unwrap_or(cfg.kind))))
}

/// Open `sim:<options>` (see [`sim_config`]), with a waveform into `vcd` if given (rust-hdl only).
pub fn open(device: &str, options: &str, vcd: Option<&Path>) -> Result<(BoxedTransport, Option<VcdFile>), DriverError> {
    let (engine, cfg) = sim_config(device, options)?;
    let failed = |e: BoxedError| DriverError::Open { device: device.to_string(), source: e };
    Ok(match (engine, vcd) {
        (Engine::RustHdl, Some(p)) => {
            let (t, f) = SimTransport::with_vcd(&cfg, p).map_err(|e| failed(BoxedError::new(e)))?;
            (erase(t), Some(f))
        }
        (Engine::RustHdl, None) => (erase(SimTransport::new(&cfg).map_err(|e| failed(BoxedError::new(e)))?), None),
        (Engine::Verilator, Some(_)) => {
            return Err(DriverError::BadOption {
                device: device.to_string(),
                option: "engine".into(),
                reason: "a waveform (--vcd) needs engine=rust-hdl".into(),
            })
        }
        (Engine::Verilator, None) => {
            (erase(verilator::VerilatorTransport::new(&cfg).map_err(|e| failed(BoxedError::new(e)))?), None)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_core::regs;

    #[test]
    fn identifies_through_the_rtl() {
        let mut t = SimTransport::new(&crew_hw::TEST_CONFIG).unwrap();
        assert_eq!(t.read32(regs::ID).unwrap(), regs::ID_MAGIC);
        assert_eq!(t.read32(regs::CAPS).unwrap(), regs::caps_value(&crew_hw::TEST_CONFIG));
        t.write32(regs::SCRATCH, 0x1234_5678).unwrap();
        assert_eq!(t.read32(regs::SCRATCH).unwrap(), 0x1234_5678);
        assert!(t.cycles() > 6);
    }

    #[test]
    fn options_name_what_is_wrong() {
        assert_eq!(sim_config("sim", "").unwrap(), (Engine::Verilator, DeviceConfig::default()));
        let (e, c) = sim_config("sim", "engine=rust-hdl").unwrap();
        assert_eq!((e, c), (Engine::RustHdl, crew_hw::TEST_CONFIG_25F_LANES));
        let (_, c) = sim_config("sim", "kind=dense,config=test25").unwrap();
        assert_eq!((c.lanes, c.kind), (8, CoreKind::Dense));
        let e = sim_config("sim", "engine=modelsim").unwrap_err().to_string();
        assert!(e.contains("known engines: verilator, rust-hdl"), "{e}");
        let e = sim_config("sim:config=x", "config=x").unwrap_err().to_string();
        assert!(e.contains("no RTL instantiation named `x`") && e.contains("ecp5-25f"), "{e}");
        let e = sim_config("sim:lanes=3", "lanes=3").unwrap_err().to_string();
        assert!(e.contains("known options: engine, config, kind"), "{e}");
        let odd = DeviceConfig { lanes: 3, ..DeviceConfig::default() };
        let e = SimTransport::new(&odd).unwrap_err().to_string();
        assert!(e.contains("no RTL instantiation for") && e.contains("test25"), "{e}");
    }

    #[test]
    fn vcd_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.vcd");
        let (mut t, vcd) = SimTransport::with_vcd(&crew_hw::TEST_CONFIG, &path).unwrap();
        t.read32(regs::ID).unwrap();
        assert!(!path.exists());
        assert_eq!(vcd.finish().unwrap(), path);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$enddefinitions") && text.contains("#5000"), "{}", &text[..text.len().min(400)]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
