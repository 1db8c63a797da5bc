//! Device configurations: what a core instance is made of. The RTL generator, the emulator and
//! the driver all take their sizes from here; the CAPS registers report them.

/// Which datapath a core implements (CAPS.KIND).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoreKind {
    /// CREW: unique-weight products, then index-driven adds.
    Crew = 0,
    /// The dense "TPU-like" baseline: int8 weights, every lane multiplies.
    Dense = 1,
}

impl CoreKind {
    pub fn from_code(code: u32) -> Option<CoreKind> {
        match code {
            0 => Some(CoreKind::Crew),
            1 => Some(CoreKind::Dense),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            CoreKind::Crew => "crew",
            CoreKind::Dense => "dense",
        }
    }
}

/// The parameters of one core instance.
///
/// The datapath is `groups x lanes`: each of `groups` groups works on a different input column
/// at a time, with `lanes` output lanes; `mults` multipliers per group fill its product table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceConfig {
    pub kind: CoreKind,
    /// Output lanes per group.
    pub lanes: u32,
    /// Groups (input columns in flight at once).
    pub groups: u32,
    /// Multipliers per group (CREW product generation).
    pub mults: u32,
    /// Weight memory size in 32-bit words.
    pub wmem_words: u32,
    /// Input buffer depth: the largest `n_in` of one run.
    pub ibuf_depth: u32,
    /// Accumulator buffer depth: the largest `n_out` of one run.
    pub obuf_depth: u32,
}

impl DeviceConfig {
    /// Sized for the LFE5U-25F (56 EBR, 28 DSP). One group: every group would need its own
    /// index stream, i.e. its own copy of weight memory. 8 lanes read 8 x 8 + 31 bits a cycle,
    /// so weight memory is 4 word-interleaved banks of 4096 words (32 of the 56 EBR; product
    /// tables 16, accumulators 8, the input buffer is LUT RAM: 56 in all); MiniLM layers
    /// (n_out 384: 48 cycles per column) stay accumulate-bound up to |U_i| = 4 * (48 - 5) = 172.
    pub const ECP5_25F: DeviceConfig = DeviceConfig {
        kind: CoreKind::Crew,
        lanes: 8,
        groups: 1,
        mults: 4,
        wmem_words: 16384,
        ibuf_depth: 1024,
        obuf_depth: 1024,
    };
    /// Sized for the LFE5U-85F (208 EBR, 156 DSP). 16 lanes, 8 weight banks (65536 words =
    /// 128 EBR); n_out 384 gives 24 cycles per column, accumulate-bound up to |U_i| = 8 * (24 - 7)
    /// = 136 (MiniLM's mean is 54, its maximum 156). 32 lanes do not fit: the board build needs
    /// 88283 LUT4-equivalent cells of the 83640 (105%, docs/fpga.md).
    pub const ECP5_85F: DeviceConfig = DeviceConfig {
        kind: CoreKind::Crew,
        lanes: 16,
        groups: 1,
        mults: 8,
        wmem_words: 65536,
        ibuf_depth: 2048,
        obuf_depth: 2048,
    };
    /// The named presets.
    pub const PRESETS: [(&'static str, DeviceConfig); 2] = [("ecp5-25f", Self::ECP5_25F), ("ecp5-85f", Self::ECP5_85F)];

    /// Look up a preset by name (`ecp5-25f`, `ecp5-85f`).
    pub fn preset(name: &str) -> Option<DeviceConfig> {
        Self::PRESETS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    /// Small configurations for simulation: the 25F preset's lanes and multipliers, a 4-lane
    /// and a 32-lane one (wider than any part holds today), with small memories, so that the RTL simulation (`--device sim`) runs in seconds.
    /// The emulator takes the same names, so `emu:config=test25` and `sim:config=test25` are the
    /// same device.
    pub const SIM_CONFIGS: [(&'static str, DeviceConfig); 3] = [
        (
            "test",
            DeviceConfig {
                kind: CoreKind::Crew,
                lanes: 4,
                groups: 1,
                mults: 2,
                wmem_words: 1024,
                ibuf_depth: 64,
                obuf_depth: 256,
            },
        ),
        (
            "test25",
            DeviceConfig {
                kind: CoreKind::Crew,
                lanes: 8,
                groups: 1,
                mults: 4,
                wmem_words: 1024,
                ibuf_depth: 64,
                obuf_depth: 64,
            },
        ),
        (
            "test85",
            DeviceConfig {
                kind: CoreKind::Crew,
                lanes: 32,
                groups: 1,
                mults: 16,
                wmem_words: 1024,
                ibuf_depth: 64,
                obuf_depth: 256,
            },
        ),
    ];

    /// A preset or a simulation configuration by name.
    pub fn named(name: &str) -> Option<DeviceConfig> {
        Self::PRESETS.iter().chain(&Self::SIM_CONFIGS).find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    /// The names [`named`](Self::named) knows.
    pub fn names() -> Vec<&'static str> {
        Self::PRESETS.iter().chain(&Self::SIM_CONFIGS).map(|(n, _)| *n).collect()
    }

    /// The same configuration with another core kind.
    pub const fn with_kind(self, kind: CoreKind) -> DeviceConfig {
        DeviceConfig { kind, ..self }
    }

    /// One line for people: `crew core, 16 lanes x 1 group(s), 8 multipliers per group, 65536 weight words`.
    pub fn describe(&self) -> String {
        format!(
            "{} core, {} lanes x {} group(s), {} multipliers per group, {} weight words",
            self.kind.name(),
            self.lanes,
            self.groups,
            self.mults,
            self.wmem_words
        )
    }

    /// Lanes in all groups: products added (CREW) or MACs (dense) per cycle at full use.
    pub const fn total_lanes(&self) -> u32 {
        self.lanes * self.groups
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self::ECP5_85F
    }
}
