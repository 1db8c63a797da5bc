//! Replaying a bus trace against the generated Verilog under Icarus Verilog.
//!
//! The trace comes from any device (`crew-host run --trace FILE`, usually on `emu` or `sim`);
//! the Verilog is what `crew-hw-gen` writes for the bitstream build, for the configuration the
//! trace identified (its reads of CAPS and the size registers). Two simulators run it:
//! Icarus Verilog with the testbench `verilog/replay_tb.v`, and Verilator through the same bus
//! master as `--device sim` ([`crate::verilator`]), hundreds of times faster. Both follow the same
//! rules and stop at the first read that differs.

use crew_core::config::DeviceConfig;
use crew_core::regs;
use crew_driver::trace::{self, Transaction};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The replay testbench, written next to the generated Verilog.
pub const TESTBENCH: &str = include_str!("../verilog/replay_tb.v");

/// A replay that matched the whole trace.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    pub config: DeviceConfig,
    /// Transactions in the trace.
    pub transactions: u64,
    /// Reads compared (STATUS reads the recording device saw busy are skipped).
    pub reads: u64,
    /// Clock cycles the Verilog simulation ran.
    pub cycles: u64,
    /// Wall time of the Verilog simulation alone (not compiling it).
    pub sim_wall: Duration,
    /// Wall time of generating and compiling the Verilog.
    pub build_wall: Duration,
}

impl ReplayReport {
    /// Simulated clock cycles per wall second of the Verilog simulation.
    pub fn cycles_per_second(&self) -> f64 {
        self.cycles as f64 / self.sim_wall.as_secs_f64().max(1e-9)
    }
}

/// Why a replay did not match (or could not run).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read the trace {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] trace::ParseError),
    /// The trace never read CAPS and the sizes, so it does not say which configuration it ran on.
    #[error("the trace does not identify the device (no reads of CAPS, WMEM_WORDS, IBUF_DEPTH, OBUF_DEPTH)")]
    Unidentified,
    /// The identified configuration has no RTL instantiation.
    #[error("the trace was recorded on {config}, which has no RTL instantiation; instantiated: {known}")]
    NoInstantiation { config: String, known: String },
    #[error("`{tool}` could not be run (install Icarus Verilog: scripts/install-fpga-tools.sh)")]
    Tool {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("iverilog failed to compile the generated Verilog:\n{log}")]
    Compile { log: String },
    /// The core returned another value than the trace.
    #[error(
        "the Verilog differs from the trace at line {line}: read of {register} ({addr:#010x}) gave {verilog}, the trace has {expected:#010x}"
    )]
    Mismatch { line: usize, addr: u32, register: String, expected: u32, verilog: String },
    /// The core stopped answering, or stayed busy.
    #[error("the Verilog simulation stopped at trace line {line}: {what}")]
    Stuck { line: usize, what: String },
    #[error("the Verilog simulation ended unexpectedly:\n{output}")]
    Unexpected { output: String },
    #[error(transparent)]
    Verilator(#[from] crate::verilator::VerilatorError),
}

/// The simulator a replay runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulator {
    /// Icarus Verilog with `verilog/replay_tb.v`.
    Iverilog,
    /// Verilator with the bus-master harness of `--device sim`.
    Verilator,
}

/// STATUS polls allowed per recorded STATUS read before the replay calls the core stuck.
const MAX_POLLS: u64 = 10_000_000;

/// Replay `trace_path` on `sim` (see [`replay`] for `work`, which only iverilog uses).
pub fn replay_on(sim: Simulator, trace_path: &Path, work: &Path) -> Result<ReplayReport, ReplayError> {
    match sim {
        Simulator::Iverilog => replay(trace_path, work),
        Simulator::Verilator => replay_verilator(trace_path),
    }
}

/// The Verilator replay: the testbench's rules, in Rust, over [`VerilatorTransport`](crate::verilator::VerilatorTransport).
fn replay_verilator(trace_path: &Path) -> Result<ReplayReport, ReplayError> {
    use crew_driver::Transport;
    let (numbered, cfg) = load(trace_path)?;
    let t0 = Instant::now();
    let mut dut = crate::verilator::VerilatorTransport::new(&cfg)?;
    let build_wall = t0.elapsed();
    let t1 = Instant::now();
    let mut reads = 0;
    for &(line, t) in &numbered {
        match t {
            Transaction::Write { addr, data } => dut.write32(addr, data)?,
            // The recording device was still busy here; this core's timing decides.
            Transaction::Read { addr, data } if addr == regs::STATUS && data & regs::status::BUSY != 0 => {}
            Transaction::Read { addr, data } => {
                let mut q = dut.read32(addr)?;
                reads += 1;
                let mut polls = 0;
                while addr == regs::STATUS && q & regs::status::BUSY != 0 {
                    polls += 1;
                    if polls > MAX_POLLS {
                        return Err(ReplayError::Stuck {
                            line,
                            what: format!("STATUS still busy after {polls} polls"),
                        });
                    }
                    q = dut.read32(addr)?;
                }
                if q != data {
                    return Err(ReplayError::Mismatch {
                        line,
                        addr,
                        register: describe_addr(addr),
                        expected: data,
                        verilog: format!("{q:#010x}"),
                    });
                }
            }
        }
    }
    let cycles = dut.cycles()?;
    Ok(ReplayReport {
        config: cfg,
        transactions: numbered.len() as u64,
        reads,
        cycles,
        sim_wall: t1.elapsed(),
        build_wall,
    })
}

/// The register or window an address falls in, for messages.
pub fn describe_addr(addr: u32) -> String {
    let window = |base: u32, name: &str| format!("{name}[{}]", (addr - base) / 4);
    if addr >= regs::WEIGHT_WINDOW {
        window(regs::WEIGHT_WINDOW, "WEIGHT_WINDOW")
    } else if addr >= regs::OUTPUT_WINDOW {
        window(regs::OUTPUT_WINDOW, "OUTPUT_WINDOW")
    } else if addr >= regs::INPUT_WINDOW {
        window(regs::INPUT_WINDOW, "INPUT_WINDOW")
    } else {
        regs::register_at(addr).map_or_else(|| format!("unmapped {addr:#x}"), |r| r.name.to_string())
    }
}

/// The configuration a trace's identification reads describe.
pub fn identified_config(t: &[Transaction]) -> Result<DeviceConfig, ReplayError> {
    let read = |a: u32| {
        t.iter().find_map(|x| match *x {
            Transaction::Read { addr, data } if addr == a => Some(data),
            _ => None,
        })
    };
    let (Some(caps), Some(w), Some(i), Some(o)) =
        (read(regs::CAPS), read(regs::WMEM_WORDS), read(regs::IBUF_DEPTH), read(regs::OBUF_DEPTH))
    else {
        return Err(ReplayError::Unidentified);
    };
    regs::config_from_regs(caps, w, i, o).ok_or(ReplayError::Unidentified)
}

/// Read and parse a trace (numbered transactions) and the configuration it identifies.
fn load(trace_path: &Path) -> Result<(Vec<(usize, Transaction)>, DeviceConfig), ReplayError> {
    let text = std::fs::read_to_string(trace_path)
        .map_err(|source| ReplayError::Read { path: trace_path.to_path_buf(), source })?;
    let numbered = trace::parse_numbered(&text)?;
    let plain: Vec<Transaction> = numbered.iter().map(|&(_, t)| t).collect();
    let cfg = identified_config(&plain)?;
    Ok((numbered, cfg))
}

/// Replay `trace_path` against the Verilog of the configuration it identifies, compiling in
/// `work` (created if missing; `top.v` there is reused when it is for the same configuration).
pub fn replay(trace_path: &Path, work: &Path) -> Result<ReplayReport, ReplayError> {
    let (_, cfg) = load(trace_path)?;
    let t0 = Instant::now();
    let verilog = crew_hw::verilog_of(&cfg).ok_or_else(|| ReplayError::NoInstantiation {
        config: cfg.describe(),
        known: DeviceConfig::names().join(", "),
    })?;
    let write = |name: &str, body: &str| {
        let path = work.join(name);
        std::fs::create_dir_all(work)
            .and_then(|()| std::fs::write(&path, body))
            .map_err(|source| ReplayError::Write { path, source })
    };
    write("top.v", &verilog)?;
    write("replay_tb.v", TESTBENCH)?;
    let vvp_file = work.join("replay.vvp");
    let out = Command::new("iverilog")
        .args(["-g2012", "-o"])
        .arg(&vvp_file)
        .arg(work.join("replay_tb.v"))
        .arg(work.join("top.v"))
        .output()
        .map_err(|source| ReplayError::Tool { tool: "iverilog", source })?;
    if !out.status.success() {
        let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        return Err(ReplayError::Compile { log });
    }
    let build_wall = t0.elapsed();
    let t1 = Instant::now();
    let trace_abs = std::fs::canonicalize(trace_path)
        .map_err(|source| ReplayError::Read { path: trace_path.to_path_buf(), source })?;
    let out = Command::new("vvp")
        .arg("-n")
        .arg(&vvp_file)
        .arg(format!("+trace={}", trace_abs.display()))
        .arg(format!("+status={:x}", regs::STATUS))
        .arg(format!("+busy={:x}", regs::status::BUSY))
        .output()
        .map_err(|source| ReplayError::Tool { tool: "vvp", source })?;
    let sim_wall = t1.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let outcome = parse_outcome(&stdout, &String::from_utf8_lossy(&out.stderr))?;
    Ok(ReplayReport { config: cfg, transactions: outcome.0, reads: outcome.1, cycles: outcome.2, sim_wall, build_wall })
}

/// The testbench's verdict line: `(transactions, reads, cycles)` or the error it names.
fn parse_outcome(stdout: &str, stderr: &str) -> Result<(u64, u64, u64), ReplayError> {
    let unexpected = || ReplayError::Unexpected { output: format!("{stdout}{stderr}") };
    let line = stdout.lines().find(|l| l.starts_with("REPLAY ")).ok_or_else(unexpected)?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let num = |s: &str| s.parse::<u64>().map_err(|_| unexpected());
    let hex = |s: &str| u32::from_str_radix(s, 16).map_err(|_| unexpected());
    match f.get(1).copied() {
        Some("OK") if f.len() == 8 => Ok((num(f[3])?, num(f[5])?, num(f[7])?)),
        Some("MISMATCH") if f.len() == 10 => {
            let line_no = num(f[3])? as usize;
            let addr = hex(f[5])?;
            Err(ReplayError::Mismatch {
                line: line_no,
                addr,
                register: describe_addr(addr),
                expected: hex(f[7])?,
                // May hold x or z bits, so it stays text.
                verilog: format!("0x{}", f[9]),
            })
        }
        Some("HANG") | Some("BUSY") => {
            let line_no = f.get(3).and_then(|s| s.trim_end_matches(':').parse().ok()).unwrap_or(0);
            Err(ReplayError::Stuck { line: line_no, what: line.to_string() })
        }
        _ => Err(unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_parsed() {
        assert_eq!(parse_outcome("REPLAY OK transactions 10 reads 4 cycles 99\n", "").unwrap(), (10, 4, 99));
        let e = parse_outcome("REPLAY MISMATCH line 7 addr 00000038 trace 00000010 verilog 0000001x\n", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 7: read of CYCLES_LO (0x00000038) gave 0x0000001x, the trace has 0x00000010"), "{e}");
        let e = parse_outcome("REPLAY HANG line 3: no ready\n", "").unwrap_err();
        assert!(matches!(e, ReplayError::Stuck { line: 3, .. }), "{e:?}");
        assert!(matches!(parse_outcome("", "boom"), Err(ReplayError::Unexpected { .. })));
    }

    #[test]
    fn addresses_are_named() {
        assert_eq!(describe_addr(regs::STATUS), "STATUS");
        assert_eq!(describe_addr(regs::OUTPUT_WINDOW + 8), "OUTPUT_WINDOW[2]");
        assert_eq!(describe_addr(regs::WEIGHT_WINDOW), "WEIGHT_WINDOW[0]");
    }
}
