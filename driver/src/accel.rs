//! The typed accelerator API over any [`Transport`].
//!
//! [`Accelerator::new`] identifies the device; [`load`](Accelerator::load) plans tiles for every
//! layer that does not fit the device's buffers or weight memory and writes (or, for models larger
//! than weight memory, later streams) the tile images, each verified by the device's CRC;
//! [`run_layer`](Accelerator::run_layer) and [`run_batch`](Accelerator::run_batch) run a layer
//! tile by tile and return the i32 accumulators with the summed counters.
//!
//! Tiling: output tiles split the rows (each at most OBUF_DEPTH, rounded to whole lane groups
//! where possible); input tiles split the columns (each at most IBUF_DEPTH, and packed so each
//! image fits weight memory). Input tiles of one output tile run back to back with CTRL.ACCUMULATE
//! so that the accumulators carry across them. Splitting by inputs is preferred because it does not
//! duplicate unique tables; rows are only split further when a single column does not fit.

use crate::emu::{crc_of_words, MAX_IBUF_DEPTH, MAX_OBUF_DEPTH, MAX_WMEM_WORDS};
use crate::error::{BoxedError, DriverError};
use crate::transport::Transport;
use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles::RunCounts;
use crew_core::encode::{self, index_bits_for, run_words, table_words, EncodedLayer, DESCRIPTOR_WORDS, MAX_OFFSET};
use crew_core::format::Model;
use crew_core::regs::{self, ctrl, status, ErrorCode};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Polls of STATUS before the wait loop starts sleeping between polls.
const SPIN_POLLS: u32 = 64;

/// How the driver talks to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Longest wait for DONE (or ERROR) after a START or CRC_START.
    pub timeout: Duration,
    /// Sleep between STATUS polls once the first few polls found the device busy.
    pub poll_interval: Duration,
    /// Check every written tile image with the device's CRC.
    pub verify_crc: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { timeout: Duration::from_secs(2), poll_interval: Duration::from_micros(50), verify_crc: true }
    }
}

impl OpenOptions {
    /// These options with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What [`Accelerator::identify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device string it was opened with (or a name given by the caller).
    pub device: String,
    pub version_major: u16,
    pub version_minor: u16,
    pub config: DeviceConfig,
}

/// One tile of a layer: the sub-matrix of outputs `rows` and inputs `cols`, and its image.
#[derive(Debug, Clone, PartialEq)]
pub struct TilePlan {
    pub rows: Range<usize>,
    pub cols: Range<usize>,
    /// Weight-memory word address of the image (0 for every tile when the model is streamed).
    pub base: u32,
    /// CRC-32 of the image bytes (little-endian words), as CRC_VALUE reports it.
    pub crc: u32,
    image: Vec<u32>,
}

impl TilePlan {
    /// The memory image written to the device (CREW image, or dense image on a dense core).
    pub fn image(&self) -> &[u32] {
        &self.image
    }
}

/// How a layer is laid out on the device.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlan {
    pub name: String,
    pub n_out: usize,
    pub n_in: usize,
    /// Row-tile-major; the input tiles of one row tile are consecutive, in column order.
    pub tiles: Vec<TilePlan>,
}

/// Summary of [`Accelerator::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub layers: usize,
    pub tiles: usize,
    /// Layers split into more than one tile.
    pub tiled_layers: usize,
    /// Total words of all tile images.
    pub image_words: u64,
    /// Whether every tile stays in weight memory; otherwise each tile is written when it runs.
    pub resident: bool,
}

/// The result of running one input vector through one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRun {
    /// The i32 accumulators, `n_out` of them.
    pub outputs: Vec<i32>,
    /// CYCLES, MULT_COUNT and ADD_COUNT summed over the layer's tiles.
    pub counts: RunCounts,
    /// Tiles the layer ran as.
    pub tiles: usize,
}

/// Register access with error mapping and STATUS polling.
struct Bus<T> {
    transport: T,
    opts: OpenOptions,
}

impl<T: Transport> Bus<T> {
    fn read32(&mut self, addr: u32) -> Result<u32, DriverError> {
        self.transport.read32(addr).map_err(|e| DriverError::Transport { addr, source: BoxedError::new(e) })
    }

    fn write32(&mut self, addr: u32, value: u32) -> Result<(), DriverError> {
        self.transport.write32(addr, value).map_err(|e| DriverError::Transport { addr, source: BoxedError::new(e) })
    }

    fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), DriverError> {
        self.transport.read_burst(addr, out).map_err(|e| DriverError::Transport { addr, source: BoxedError::new(e) })
    }

    fn write_burst(&mut self, addr: u32, data: &[u32]) -> Result<(), DriverError> {
        self.transport.write_burst(addr, data).map_err(|e| DriverError::Transport { addr, source: BoxedError::new(e) })
    }

    /// Poll STATUS until DONE, ERROR or the timeout.
    fn wait(&mut self, op: &dyn Fn() -> String, layer: usize, tile: usize) -> Result<(), DriverError> {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            let st = self.read32(regs::STATUS)?;
            if st & status::ERROR != 0 {
                let code = ((st & status::CODE_MASK) >> status::CODE_LSB) as u8;
                return Err(match ErrorCode::from_code(code) {
                    Some(code) => DriverError::Device { code, layer, tile },
                    None => DriverError::UnknownErrorCode { code, layer, tile },
                });
            }
            if st & (status::BUSY | status::DONE) == status::DONE {
                return Ok(());
            }
            let waited = start.elapsed();
            if waited >= self.opts.timeout {
                return Err(DriverError::Timeout { op: op(), waited });
            }
            polls += 1;
            if polls > SPIN_POLLS {
                std::thread::sleep(self.opts.poll_interval.min(self.opts.timeout - waited));
            } else {
                std::hint::spin_loop();
            }
        }
    }

    fn counters(&mut self) -> Result<RunCounts, DriverError> {
        let mut w = [0u32; 4];
        self.read_burst(regs::CYCLES_LO, &mut w)?;
        Ok(RunCounts { cycles: (w[1] as u64) << 32 | w[0] as u64, mults: w[2] as u64, adds: w[3] as u64 })
    }

    /// Write a tile image at `base` and check it with the device's CRC.
    fn write_image(
        &mut self,
        layer: usize,
        tile: usize,
        base: u32,
        image: &[u32],
        crc: u32,
    ) -> Result<(), DriverError> {
        self.write_burst(regs::WEIGHT_WINDOW + 4 * base, image)?;
        if !self.opts.verify_crc {
            return Ok(());
        }
        self.write32(regs::CRC_BASE, base)?;
        self.write32(regs::CRC_LEN, image.len() as u32)?;
        self.write32(regs::CTRL, ctrl::CRC_START)?;
        self.wait(&|| format!("CRC check of layer {layer}, tile {tile}"), layer, tile)?;
        let found = self.read32(regs::CRC_VALUE)?;
        if found != crc {
            return Err(DriverError::CrcMismatch { layer, tile, expected: crc, found });
        }
        Ok(())
    }
}

/// A loaded model.
struct Loaded {
    layers: Vec<LayerPlan>,
    report: LoadReport,
}

/// A CREW device behind a transport.
pub struct Accelerator<T: Transport> {
    bus: Bus<T>,
    info: DeviceInfo,
    loaded: Option<Loaded>,
    /// The tile whose image is in weight memory at 0, when streaming.
    streamed: Option<(usize, usize)>,
}

impl<T: Transport> std::fmt::Debug for Accelerator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accelerator")
            .field("info", &self.info)
            .field("opts", &self.bus.opts)
            .field("load", &self.loaded.as_ref().map(|l| &l.report))
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Accelerator<T> {
    /// Identify the device behind `transport` (see [`identify`](Self::identify)).
    pub fn new(transport: T, opts: OpenOptions) -> Result<Self, DriverError> {
        Self::with_name(transport, opts, "transport")
    }

    /// As [`new`](Self::new), recording `device` as the device's name in [`DeviceInfo`].
    pub fn with_name(transport: T, opts: OpenOptions, device: &str) -> Result<Self, DriverError> {
        let mut a = Accelerator {
            bus: Bus { transport, opts },
            info: DeviceInfo {
                device: device.to_string(),
                version_major: 0,
                version_minor: 0,
                config: Default::default(),
            },
            loaded: None,
            streamed: None,
        };
        a.identify()?;
        Ok(a)
    }

    /// Read ID, VERSION, CAPS and the sizes; refuse a device that is not a CREW device of this
    /// register-map major version, of a known kind, with a usable configuration.
    pub fn identify(&mut self) -> Result<DeviceInfo, DriverError> {
        let id = self.bus.read32(regs::ID)?;
        if id != regs::ID_MAGIC {
            return Err(DriverError::BadMagic { found: id, expected: regs::ID_MAGIC });
        }
        let version = self.bus.read32(regs::VERSION_REG)?;
        let (major, minor) = ((version >> 16) as u16, version as u16);
        if major != regs::VERSION_MAJOR {
            return Err(DriverError::VersionMismatch {
                found_major: major,
                found_minor: minor,
                expected_major: regs::VERSION_MAJOR,
            });
        }
        let caps_reg = self.bus.read32(regs::CAPS)?;
        let wmem = self.bus.read32(regs::WMEM_WORDS)?;
        let ibuf = self.bus.read32(regs::IBUF_DEPTH)?;
        let obuf = self.bus.read32(regs::OBUF_DEPTH)?;
        let config = regs::config_from_regs(caps_reg, wmem, ibuf, obuf).ok_or(DriverError::UnknownKind {
            found: (caps_reg >> regs::caps::KIND_LSB) & ((1 << regs::caps::KIND_WIDTH) - 1),
        })?;
        let checks: [(&'static str, u32, u32); 6] = [
            ("CAPS.LANES", config.lanes, u32::MAX),
            ("CAPS.GROUPS", config.groups, u32::MAX),
            ("CAPS.MULTS", config.mults, u32::MAX),
            ("WMEM_WORDS", config.wmem_words, MAX_WMEM_WORDS),
            ("IBUF_DEPTH", config.ibuf_depth, MAX_IBUF_DEPTH),
            ("OBUF_DEPTH", config.obuf_depth, MAX_OBUF_DEPTH),
        ];
        for (field, found, max) in checks {
            if found == 0 {
                return Err(DriverError::BadConfig { field, found: 0, reason: "must be at least 1" });
            }
            if found > max {
                return Err(DriverError::BadConfig {
                    field,
                    found: found as u64,
                    reason: "larger than its register window can address",
                });
            }
        }
        self.info = DeviceInfo { device: self.info.device.clone(), version_major: major, version_minor: minor, config };
        Ok(self.info.clone())
    }

    /// What [`identify`](Self::identify) found last.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The device's configuration.
    pub fn config(&self) -> DeviceConfig {
        self.info.config
    }

    pub fn options(&self) -> &OpenOptions {
        &self.bus.opts
    }

    pub fn transport(&self) -> &T {
        &self.bus.transport
    }

    /// The transport, e.g. to inject faults into an emulated device. Writing weight memory behind
    /// the driver's back invalidates what [`load`](Self::load) wrote.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.bus.transport
    }

    pub fn into_transport(self) -> T {
        self.bus.transport
    }

    /// Read one register or window word.
    pub fn read32(&mut self, addr: u32) -> Result<u32, DriverError> {
        self.bus.read32(addr)
    }

    /// Write one register or window word.
    pub fn write32(&mut self, addr: u32, value: u32) -> Result<(), DriverError> {
        self.bus.write32(addr, value)
    }

    /// CYCLES, MULT_COUNT and ADD_COUNT of the last run.
    pub fn counters(&mut self) -> Result<RunCounts, DriverError> {
        self.bus.counters()
    }

    /// Pulse CTRL.SOFT_RESET: abort any run, clear STATUS and the counters. Memories are kept.
    pub fn soft_reset(&mut self) -> Result<(), DriverError> {
        self.bus.write32(regs::CTRL, ctrl::SOFT_RESET)
    }

    /// Every register of [`regs::REGISTERS`] with its current value, in address order.
    pub fn regs_dump(&mut self) -> Result<Vec<(&'static str, u32)>, DriverError> {
        regs::REGISTERS.iter().map(|r| Ok((r.name, self.bus.read32(r.offset)?))).collect()
    }

    /// The plan of a loaded layer.
    pub fn plan(&self, layer: usize) -> Option<&LayerPlan> {
        self.loaded.as_ref()?.layers.get(layer)
    }

    /// The summary of the last successful [`load`](Self::load).
    pub fn load_report(&self) -> Option<&LoadReport> {
        self.loaded.as_ref().map(|l| &l.report)
    }

    /// Plan tiles for every layer and write them: all of them now if the model fits weight
    /// memory (resident), otherwise each tile when it runs (streamed). Every image written is
    /// checked with the device's CRC.
    pub fn load(&mut self, model: &Model) -> Result<LoadReport, DriverError> {
        self.loaded = None;
        self.streamed = None;
        let cfg = self.info.config;
        let mut layers = Vec::with_capacity(model.layers.len());
        for (li, layer) in model.layers.iter().enumerate() {
            layer.validate().map_err(|source| DriverError::InvalidLayer {
                layer: li,
                name: layer.name.clone(),
                source,
            })?;
            layers.push(plan_layer(&cfg, li, layer)?);
        }
        let image_words: u64 = layers.iter().flat_map(|l| &l.tiles).map(|t| t.image.len() as u64).sum();
        let resident = image_words <= cfg.wmem_words as u64;
        if resident {
            let mut base = 0u32;
            for l in &mut layers {
                for t in &mut l.tiles {
                    t.base = base;
                    base += t.image.len() as u32;
                }
            }
            for (li, l) in layers.iter().enumerate() {
                for (ti, t) in l.tiles.iter().enumerate() {
                    self.bus.write_image(li, ti, t.base, &t.image, t.crc)?;
                }
            }
        }
        let report = LoadReport {
            layers: layers.len(),
            tiles: layers.iter().map(|l| l.tiles.len()).sum(),
            tiled_layers: layers.iter().filter(|l| l.tiles.len() > 1).count(),
            image_words,
            resident,
        };
        self.loaded = Some(Loaded { layers, report: report.clone() });
        Ok(report)
    }

    /// Run one input vector through layer `layer`.
    pub fn run_layer(&mut self, layer: usize, input: &[i8]) -> Result<LayerRun, DriverError> {
        let mut runs = self.run_batch(layer, &[input])?;
        runs.pop().ok_or(DriverError::NoModel)
    }

    /// Run several input vectors through layer `layer`. Each tile image is written (when
    /// streaming) once for the whole batch; with more than one vector, the partial sums of input
    /// tiles are carried through the host (preloaded into the OUTPUT window before each
    /// accumulating run).
    pub fn run_batch<I: AsRef<[i8]>>(&mut self, layer: usize, inputs: &[I]) -> Result<Vec<LayerRun>, DriverError> {
        let loaded = self.loaded.as_ref().ok_or(DriverError::NoModel)?;
        let plan = loaded.layers.get(layer).ok_or(DriverError::NoSuchLayer { layer, layers: loaded.layers.len() })?;
        for (vector, x) in inputs.iter().enumerate() {
            if x.as_ref().len() != plan.n_in {
                return Err(DriverError::InputLength { layer, vector, expected: plan.n_in, found: x.as_ref().len() });
            }
        }
        let resident = loaded.report.resident;
        let mut runs: Vec<LayerRun> = inputs
            .iter()
            .map(|_| LayerRun { outputs: vec![0; plan.n_out], counts: RunCounts::default(), tiles: plan.tiles.len() })
            .collect();
        let carry_on_device = inputs.len() == 1;
        let mut words = Vec::new();
        for (t, tile) in plan.tiles.iter().enumerate() {
            if !resident && self.streamed != Some((layer, t)) {
                self.streamed = None;
                self.bus.write_image(layer, t, 0, &tile.image, tile.crc)?;
                self.streamed = Some((layer, t));
            }
            let rows = tile.rows.clone();
            self.bus.write32(regs::N_OUT, rows.len() as u32)?;
            self.bus.write32(regs::N_IN, tile.cols.len() as u32)?;
            self.bus.write32(regs::LAYER_BASE, tile.base)?;
            let accumulate = tile.cols.start != 0;
            let last_of_row = tile.cols.end == plan.n_in;
            for (x, run) in inputs.iter().zip(runs.iter_mut()) {
                self.bus.write_burst(regs::INPUT_WINDOW, &encode::pack_i8(&x.as_ref()[tile.cols.clone()]))?;
                if accumulate && !carry_on_device {
                    words.clear();
                    words.extend(run.outputs[rows.clone()].iter().map(|&v| v as u32));
                    self.bus.write_burst(regs::OUTPUT_WINDOW, &words)?;
                }
                let go = ctrl::START | if accumulate { ctrl::ACCUMULATE } else { 0 };
                self.bus.write32(regs::CTRL, go)?;
                self.bus.wait(&|| format!("run of layer {layer}, tile {t}"), layer, t)?;
                let c = self.bus.counters()?;
                run.counts.cycles += c.cycles;
                run.counts.mults += c.mults;
                run.counts.adds += c.adds;
                if last_of_row || !carry_on_device {
                    words.clear();
                    words.resize(rows.len(), 0);
                    self.bus.read_burst(regs::OUTPUT_WINDOW, &mut words)?;
                    for (o, &w) in run.outputs[rows.clone()].iter_mut().zip(&words) {
                        *o = w as i32;
                    }
                }
            }
        }
        Ok(runs)
    }
}

/// Words of a column of `rows` outputs with `unique` values in the CREW image.
fn crew_column_words(rows: usize, unique: usize) -> usize {
    DESCRIPTOR_WORDS + table_words(unique) + run_words(rows, index_bits_for(unique))
}

/// Unique values of column `col` over `rows` of row-major `q`.
fn unique_in(q: &[i8], n_in: usize, rows: &Range<usize>, col: usize) -> usize {
    let mut seen = [false; 256];
    for j in rows.clone() {
        seen[q[j * n_in + col] as u8 as usize] = true;
    }
    seen.iter().filter(|&&s| s).count()
}

/// The rows of an output tile and the column ranges of its input tiles.
type RowTile = (Range<usize>, Vec<Range<usize>>);

/// Plan the tiles of one (validated) layer on `cfg`.
fn plan_layer(cfg: &DeviceConfig, li: usize, layer: &EncodedLayer) -> Result<LayerPlan, DriverError> {
    let (n_out, n_in) = (layer.n_out, layer.n_in);
    let budget = (cfg.wmem_words as usize).min(MAX_OFFSET as usize);
    let (max_rows, max_cols) = (cfg.obuf_depth as usize, cfg.ibuf_depth as usize);
    let whole_words = match cfg.kind {
        CoreKind::Crew => layer.image_words(),
        CoreKind::Dense => encode::dense_image_words(n_out, n_in),
    };
    let make = |rows: Range<usize>, cols: Range<usize>, image: Vec<u32>| TilePlan {
        rows,
        cols,
        base: 0,
        crc: crc_of_words(&image),
        image,
    };
    let plan = |tiles| LayerPlan { name: layer.name.clone(), n_out, n_in, tiles };
    if n_out <= max_rows && n_in <= max_cols && whole_words <= budget {
        let image = match cfg.kind {
            CoreKind::Crew => layer.memory_image(),
            CoreKind::Dense => encode::dense_image(&layer.decode_weights(), n_out, n_in),
        };
        return Ok(plan(vec![make(0..n_out, 0..n_in, image)]));
    }
    let q = layer.decode_weights();
    let lanes = cfg.lanes.max(1) as usize;
    let column_words = |rows: &Range<usize>, col: usize| match cfg.kind {
        CoreKind::Crew => crew_column_words(rows.len(), unique_in(&q, n_in, rows, col)),
        CoreKind::Dense => rows.len().div_ceil(4),
    };
    // Row tile sizes from the largest the output buffer allows down to one row, until every
    // single column of every row tile fits weight memory.
    let mut last_size = 0;
    let mut grid: Option<Vec<RowTile>> = None;
    for r in n_out.div_ceil(max_rows)..=n_out {
        let mut size = n_out.div_ceil(r);
        if size > lanes && size.next_multiple_of(lanes) <= max_rows {
            size = size.next_multiple_of(lanes);
        }
        if size == last_size {
            continue;
        }
        last_size = size;
        let mut tiles = Vec::new();
        let mut fits = true;
        for r0 in (0..n_out).step_by(size) {
            let rows = r0..(r0 + size).min(n_out);
            let mut cols = Vec::new();
            let (mut start, mut words) = (0, 0);
            for i in 0..n_in {
                let w = column_words(&rows, i);
                if w > budget {
                    fits = false;
                    break;
                }
                if i - start == max_cols || words + w > budget {
                    cols.push(start..i);
                    (start, words) = (i, 0);
                }
                words += w;
            }
            if !fits {
                break;
            }
            cols.push(start..n_in);
            tiles.push((rows, cols));
        }
        if fits {
            grid = Some(tiles);
            break;
        }
    }
    let grid = grid.ok_or_else(|| DriverError::DoesNotFit {
        layer: li,
        reason: format!("a single column of one output needs more than the {} words of weight memory", cfg.wmem_words),
    })?;
    let mut tiles = Vec::new();
    for (rows, cols) in grid {
        for cols in cols {
            let image = match cfg.kind {
                CoreKind::Crew => layer.tile(rows.clone(), cols.clone()).memory_image(),
                CoreKind::Dense => {
                    let mut sub = Vec::with_capacity(rows.len() * cols.len());
                    for j in rows.clone() {
                        sub.extend_from_slice(&q[j * n_in + cols.start..j * n_in + cols.end]);
                    }
                    encode::dense_image(&sub, rows.len(), cols.len())
                }
            };
            if image.len() > budget {
                return Err(DriverError::DoesNotFit {
                    layer: li,
                    reason: format!("tile image of {} words exceeds {} words", image.len(), budget),
                });
            }
            tiles.push(make(rows.clone(), cols, image));
        }
    }
    Ok(plan(tiles))
}
