//! The generated Verilog, compiled by Verilator, as a [`Transport`]: the same RTL as the
//! rust-hdl engine (the Verilog that goes into the bitstream), a few hundred times faster, so
//! the real presets and whole models simulate in seconds (docs/cosim.md has the figures).
//!
//! The model runs in a child process (`verilator/harness.cpp`) that speaks one line per bus
//! access over its stdin/stdout. Builds are cached by the hash of the Verilog, the harness and
//! the Verilator version, under `$CREW_CACHE_DIR` (default `~/.cache/crew`)`/vsim/`.

use crew_core::config::DeviceConfig;
use crew_core::regs::{self, status};
use crew_driver::Transport;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The bus-master harness compiled with the Verilated core.
pub const HARNESS: &str = include_str!("../verilator/harness.cpp");

/// Verilator flags: the two warnings are rust-hdl's (see scripts/check-verilog.sh).
const FLAGS: &[&str] = &["--cc", "--exe", "--build", "-O2", "-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT"];

/// What went wrong with the Verilated model.
#[derive(Debug, thiserror::Error)]
pub enum VerilatorError {
    #[error("`verilator` could not be run (install it: scripts/install-fpga-tools.sh, or apt-get install verilator)")]
    Missing(#[source] std::io::Error),
    #[error("no RTL instantiation for {0}")]
    NoInstantiation(String),
    #[error("Verilator failed to build the model in {}:\n{log}", dir.display())]
    Build { dir: PathBuf, log: String },
    #[error("cannot prepare the Verilator build directory {}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Verilated model stopped: {0}")]
    Model(String),
    #[error("lost the Verilated model process")]
    Pipe(#[source] std::io::Error),
}

/// Where compiled models are kept.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CREW_CACHE_DIR") {
        return PathBuf::from(d).join("vsim");
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache/crew/vsim")
}

fn verilator_version() -> Result<String, VerilatorError> {
    let out = Command::new("verilator").arg("--version").output().map_err(VerilatorError::Missing)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The compiled model of `cfg`, building it if the cache does not have it; returns the executable.
pub fn build(cfg: &DeviceConfig) -> Result<PathBuf, VerilatorError> {
    let verilog = crew_hw::verilog_of(cfg).ok_or_else(|| VerilatorError::NoInstantiation(cfg.describe()))?;
    let version = verilator_version()?;
    let mut h = DefaultHasher::new();
    (&verilog, HARNESS, &version, FLAGS).hash(&mut h);
    let root = cache_dir();
    let dir = root.join(format!("{}-{}-{:016x}", cfg.kind.name(), cfg.lanes, h.finish()));
    let exe = dir.join("obj_dir/vsim");
    if exe.exists() {
        return Ok(exe);
    }
    let io = |dir: &Path| {
        let dir = dir.to_path_buf();
        move |source| VerilatorError::Io { dir, source }
    };
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    // Build in a private directory and rename it into place: concurrent builds of the same
    // model (parallel tests) never see a half-built one.
    let tmp = tempfile::Builder::new().prefix(".build-").tempdir_in(&root).map_err(io(&root))?;
    std::fs::write(tmp.path().join("top.v"), &verilog).map_err(io(tmp.path()))?;
    std::fs::write(tmp.path().join("harness.cpp"), HARNESS).map_err(io(tmp.path()))?;
    let out = Command::new("verilator")
        .args(FLAGS)
        .args(["--top-module", "top", "top.v", "harness.cpp", "-o", "vsim"])
        .current_dir(tmp.path())
        .output()
        .map_err(VerilatorError::Missing)?;
    if !out.status.success() {
        let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        return Err(VerilatorError::Build { dir: tmp.path().to_path_buf(), log });
    }
    let built = tmp.keep();
    if std::fs::rename(&built, &dir).is_err() {
        // Another build won the race; use its model.
        let _ = std::fs::remove_dir_all(&built);
    }
    Ok(exe)
}

/// Idle cycles after a STATUS read that found the core busy: doubling from the first up to
/// the last, so a long CRC check or run costs a few hundred round trips to the model, not one
/// per three cycles. A host on a real bus polls no faster (a PCIe read takes ~45 core cycles);
/// CYCLES counts the run itself, so the pacing changes no counter.
const POLL_IDLE: (u32, u32) = (16, 4096);

/// A [`Transport`] over a Verilated model of one configuration.
pub struct VerilatorTransport {
    /// Idle cycles to insert before the next access (see [`POLL_IDLE`]).
    poll_idle: u32,
    child: Child,
    tx: BufWriter<ChildStdin>,
    rx: BufReader<ChildStdout>,
    config: DeviceConfig,
}

impl std::fmt::Debug for VerilatorTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerilatorTransport").field("config", &self.config).finish_non_exhaustive()
    }
}

impl VerilatorTransport {
    /// Build (or reuse) the model of `cfg` and start it.
    pub fn new(cfg: &DeviceConfig) -> Result<VerilatorTransport, VerilatorError> {
        let exe = build(cfg)?;
        let mut child = Command::new(&exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(VerilatorError::Pipe)?;
        let tx = BufWriter::with_capacity(1 << 16, child.stdin.take().expect("piped stdin"));
        let rx = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(VerilatorTransport { poll_idle: 0, child, tx, rx, config: *cfg })
    }

    /// The simulated configuration.
    pub fn config(&self) -> DeviceConfig {
        self.config
    }

    /// Clock cycles simulated so far.
    pub fn cycles(&mut self) -> Result<u64, VerilatorError> {
        let line = self.ask("C\n")?;
        line.strip_prefix("C ")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| VerilatorError::Model(format!("unexpected answer `{}`", line.trim())))
    }

    /// Send `cmd` and read one answer line (writes before it go in the same flush).
    fn ask(&mut self, cmd: &str) -> Result<String, VerilatorError> {
        self.tx.write_all(cmd.as_bytes()).and_then(|()| self.tx.flush()).map_err(VerilatorError::Pipe)?;
        self.answer()
    }

    /// The answer to a read: `D <hex>`.
    fn answer_word(&mut self) -> Result<u32, VerilatorError> {
        let line = self.answer()?;
        line.strip_prefix("D ")
            .and_then(|v| u32::from_str_radix(v.trim(), 16).ok())
            .ok_or_else(|| VerilatorError::Model(format!("unexpected answer `{}` to a read", line.trim())))
    }

    /// The next answer line; `E <message>` and a closed pipe are errors.
    fn answer(&mut self) -> Result<String, VerilatorError> {
        let mut line = String::new();
        let n = self.rx.read_line(&mut line).map_err(VerilatorError::Pipe)?;
        if n == 0 {
            let status = self.child.try_wait().ok().flatten();
            return Err(VerilatorError::Model(format!("the process exited ({status:?})")));
        }
        if let Some(msg) = line.strip_prefix("E ") {
            return Err(VerilatorError::Model(msg.trim().to_string()));
        }
        Ok(line)
    }
}

impl Drop for VerilatorTransport {
    fn drop(&mut self) {
        // Closing stdin ends the model; kill it if it does not.
        let _ = self.tx.flush();
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Transport for VerilatorTransport {
    type Error = VerilatorError;

    fn read32(&mut self, addr: u32) -> Result<u32, VerilatorError> {
        if self.poll_idle > 0 {
            writeln!(self.tx, "I {:x}", self.poll_idle).map_err(VerilatorError::Pipe)?;
        }
        writeln!(self.tx, "R {addr:x}").and_then(|()| self.tx.flush()).map_err(VerilatorError::Pipe)?;
        let word = self.answer_word()?;
        self.poll_idle = if addr == regs::STATUS && word & status::BUSY != 0 {
            (self.poll_idle * 2).clamp(POLL_IDLE.0, POLL_IDLE.1)
        } else {
            0
        };
        Ok(word)
    }

    fn write32(&mut self, addr: u32, value: u32) -> Result<(), VerilatorError> {
        // Writes have no answer: they are buffered and reach the model with the next read.
        writeln!(self.tx, "W {addr:x} {value:x}").map_err(VerilatorError::Pipe)
    }

    /// All the reads in one flush, then all the answers in order: one round trip, not `out.len()`.
    fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), VerilatorError> {
        for k in 0..out.len() {
            writeln!(self.tx, "R {:x}", addr + 4 * k as u32).map_err(VerilatorError::Pipe)?;
        }
        self.tx.flush().map_err(VerilatorError::Pipe)?;
        for w in out.iter_mut() {
            *w = self.answer_word()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_and_keeps_a_register() {
        let mut t = VerilatorTransport::new(&crew_hw::TEST_CONFIG).unwrap();
        assert_eq!(t.read32(regs::ID).unwrap(), regs::ID_MAGIC);
        assert_eq!(t.read32(regs::CAPS).unwrap(), regs::caps_value(&crew_hw::TEST_CONFIG));
        t.write32(regs::SCRATCH, 0xfeed_f00d).unwrap();
        assert_eq!(t.read32(regs::SCRATCH).unwrap(), 0xfeed_f00d);
        assert!(t.cycles().unwrap() >= 8);
    }
}
