//! The cycle model: the exact value of the CYCLES register after a run.
//!
//! The emulator reports it and the RTL must count exactly the same (the co-simulation tests hold
//! the two equal). `docs/cycle-model.md` explains each term.
//!
//! CREW: the inputs are processed in steps of `G = groups` columns. While the lanes of step `s`
//! add products, the multipliers fill the product tables of step `s + 1` (double buffering):
//!
//! ```text
//! fill(i)  = FILL_LATENCY + ceil(|U_i| / MULTS)
//! F(s)     = max { fill(i) : i in step s },  F(S) = 0,  S = ceil(n_in / G)
//! acc      = ceil(n_out / LANES)
//! cycles   = START_CYCLES + F(0) + sum_{s<S} max(acc, F(s+1)) + DRAIN_CYCLES
//! ```
//!
//! Dense: every lane multiplies, one column per group per step, no fill:
//! `cycles = START_CYCLES + ceil(n_in / G) * ceil(n_out / LANES) + DRAIN_CYCLES`.

use crate::config::{CoreKind, DeviceConfig};

/// Cycles from START to the first descriptor request (dimension checks).
pub const START_CYCLES: u64 = 2;
/// Cycles of a column's table fill beyond its multiplications (crew-hw's filler): descriptor
/// address (registered in the banks), block RAM read, two bank-word registers (the second in
/// fabric, so that a far block RAM's word can cross the 85F's die in two cycles), rotate, decode
/// (the range check overlaps the chunk reads), then after the last chunk read the same four
/// register stages, multiply and table write.
pub const FILL_LATENCY: u64 = 9;
/// Cycles after the last output group is issued until DONE (crew-hw's lane pipeline): the banks
/// register the address, the bank words arrive and are registered, each lane registers the two
/// words holding its index, then its index bits, unpacks its index with the product-table read,
/// registers the table row with the accumulator read, registers the row again (in fabric, beside
/// the lane) and the accumulator, selects the product and registers the accumulator again, adds
/// and registers the sum, then writes it back.
pub const DRAIN_CYCLES: u64 = 10;

/// Operation counts and cycles of one run of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunCounts {
    pub cycles: u64,
    pub mults: u64,
    pub adds: u64,
}

impl RunCounts {
    /// Fraction of lane-cycles that did useful work (one weight each).
    pub fn lane_utilization(&self, cfg: &DeviceConfig, n_out: usize, n_in: usize) -> f64 {
        (n_out * n_in) as f64 / (cfg.total_lanes() as u64 * self.cycles.max(1)) as f64
    }
}

/// Table-fill cycles of one CREW column with `unique` values.
pub fn fill_cycles(cfg: &DeviceConfig, unique: usize) -> u64 {
    FILL_LATENCY + (unique as u64).div_ceil(cfg.mults as u64)
}

/// Counts for a CREW run, from the per-column unique counts.
pub fn crew_counts(cfg: &DeviceConfig, n_out: usize, unique_counts: &[u16]) -> RunCounts {
    let g = cfg.groups as usize;
    let acc = (n_out as u64).div_ceil(cfg.lanes as u64);
    let step_fill = |s: usize| -> u64 {
        unique_counts.chunks(g).nth(s).map_or(0, |c| c.iter().map(|&u| fill_cycles(cfg, u as usize)).max().unwrap_or(0))
    };
    let steps = unique_counts.len().div_ceil(g);
    let mut cycles = START_CYCLES + step_fill(0) + DRAIN_CYCLES;
    for s in 0..steps {
        cycles += acc.max(step_fill(s + 1));
    }
    RunCounts {
        cycles,
        mults: unique_counts.iter().map(|&u| u as u64).sum(),
        adds: (n_out * unique_counts.len()) as u64,
    }
}

/// Counts for a dense-baseline run.
pub fn dense_counts(cfg: &DeviceConfig, n_out: usize, n_in: usize) -> RunCounts {
    let steps = (n_in as u64).div_ceil(cfg.groups as u64);
    let acc = (n_out as u64).div_ceil(cfg.lanes as u64);
    RunCounts {
        cycles: START_CYCLES + steps * acc + DRAIN_CYCLES,
        mults: (n_out * n_in) as u64,
        adds: (n_out * n_in) as u64,
    }
}

/// Counts for a run of `kind` on a layer with these per-column unique counts.
pub fn run_counts(cfg: &DeviceConfig, n_out: usize, unique_counts: &[u16]) -> RunCounts {
    match cfg.kind {
        CoreKind::Crew => crew_counts(cfg, n_out, unique_counts),
        CoreKind::Dense => dense_counts(cfg, n_out, unique_counts.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crew_hand_computed() {
        let cfg = DeviceConfig { lanes: 4, groups: 2, mults: 2, ..DeviceConfig::ECP5_25F };
        // n_out = 10 -> acc = 3; fills: 9+1=10, 9+3=12 | 9+2=11 -> steps F = [12, 11], F(2) = 0.
        let c = crew_counts(&cfg, 10, &[2, 5, 4]);
        assert_eq!((START_CYCLES, FILL_LATENCY, DRAIN_CYCLES), (2, 9, 10));
        assert_eq!(c.cycles, 2 + 12 + 11 + 3 + 10);
        assert_eq!(c.mults, 11);
        assert_eq!(c.adds, 30);
    }

    #[test]
    fn dense_hand_computed() {
        let cfg = DeviceConfig { lanes: 4, groups: 2, ..DeviceConfig::ECP5_25F };
        assert_eq!(dense_counts(&cfg, 10, 3).cycles, START_CYCLES + 2 * 3 + DRAIN_CYCLES);
    }
}
