//! PCIe BAR transport: the register map of a CREW device behind a PCIe BAR, mapped from sysfs.
//!
//! `pcie:0000:01:00.0[,bar=0]` opens `<sysfs>/bus/pci/devices/0000:01:00.0/resource0` read-write
//! and maps it with `memmap2`. Every access is one volatile, aligned 32-bit read or write through
//! the crate's `mmio` module; no reference into the mapping is ever handed out. The sysfs root is `/sys`,
//! or the `CREW_SYSFS_ROOT` environment variable (tests lay out a fake sysfs tree in a temp dir).
//!
//! Writes to CTRL that carry a pulse bit (START, SOFT_RESET, CRC_START) are followed by a read
//! of CTRL until the pulse bits read back as 0, as they do on the device: the read flushes the
//! posted write, so a following STATUS read sees the effect of the pulse. On hardware that is
//! one extra read; a memory-backed emulator (see [`sim`]) clears the bits once it has served
//! the pulse.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crew_core::regs;

use crate::mmio::{MmioError, MmioRegion};
use crate::transport::Transport;

/// Environment variable overriding the sysfs root (default `/sys`).
pub const SYSFS_ROOT_ENV: &str = "CREW_SYSFS_ROOT";

/// CTRL bits that are self-clearing pulses.
pub(crate) const CTRL_PULSES: u32 = regs::ctrl::START | regs::ctrl::SOFT_RESET | regs::ctrl::CRC_START;

/// Bytes of the register block the driver must be able to read before anything else.
pub const REGISTER_BLOCK_BYTES: u64 = regs::SCRATCH as u64 + 4;

/// Default bound on the wait for a pulse written to CTRL to be taken by the device.
pub const DEFAULT_DOORBELL_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `pcie:` device string: PCI address and BAR number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcieSpec {
    /// Full PCI address `dddd:bb:dd.f` (lowercase hex).
    pub bdf: String,
    /// BAR number, 0..=5.
    pub bar: u8,
}

impl PcieSpec {
    /// Parse `[pcie:]dddd:bb:dd.f[,bar=N]`; the domain may be left out (`01:00.0` means `0000:01:00.0`).
    pub fn parse(spec: &str) -> Result<PcieSpec, PcieError> {
        let bad = |reason: String| PcieError::BadSpec { spec: spec.to_string(), reason };
        let body = spec.strip_prefix("pcie:").unwrap_or(spec);
        let mut parts = body.split(',');
        let bdf = parse_bdf(parts.next().unwrap_or("")).map_err(bad)?;
        let mut bar = 0u8;
        for opt in parts {
            match opt.split_once('=') {
                Some(("bar", n)) => {
                    bar = n
                        .parse::<u8>()
                        .ok()
                        .filter(|b| *b <= 5)
                        .ok_or_else(|| bad(format!("bar must be 0..=5, got `{n}`")))?;
                }
                _ => return Err(bad(format!("unknown option `{opt}` (expected `bar=N`)"))),
            }
        }
        Ok(PcieSpec { bdf, bar })
    }

    /// The device directory under a sysfs root.
    pub fn device_dir(&self, sysfs_root: &Path) -> PathBuf {
        sysfs_root.join("bus/pci/devices").join(&self.bdf)
    }
}

impl std::fmt::Display for PcieSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pcie:{},bar={}", self.bdf, self.bar)
    }
}

/// `dddd:bb:dd.f` or `bb:dd.f`, hex; device 0..=0x1f, function 0..=7.
fn parse_bdf(s: &str) -> Result<String, String> {
    let fields: Vec<&str> = s.split(':').collect();
    let (domain, bus, devfn) = match fields.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0000", *b, *df),
        _ => return Err(format!("`{s}` is not a PCI address `dddd:bb:dd.f`")),
    };
    let (dev, func) =
        devfn.split_once('.').ok_or_else(|| format!("`{s}` has no function number (`bb:dd.f`, e.g. `01:00.0`)"))?;
    let hex = |field: &str, what: &str, digits: usize, max: u32| -> Result<u32, String> {
        let ok = !field.is_empty() && field.len() <= digits && field.chars().all(|c| c.is_ascii_hexdigit());
        let v = if ok { u32::from_str_radix(field, 16).ok() } else { None };
        v.filter(|v| *v <= max).ok_or_else(|| format!("bad {what} `{field}` in `{s}` (hex, at most 0x{max:x})"))
    };
    let domain = hex(domain, "domain", 4, 0xffff)?;
    let bus = hex(bus, "bus", 2, 0xff)?;
    let dev = hex(dev, "device", 2, 0x1f)?;
    let func = hex(func, "function", 1, 7)?;
    Ok(format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}"))
}

/// Errors of the PCIe BAR backend.
#[derive(Debug, thiserror::Error)]
pub enum PcieError {
    #[error("bad PCIe device string `{spec}`: {reason} (expected `pcie:0000:01:00.0[,bar=0]`)")]
    BadSpec { spec: String, reason: String },
    #[error("no PCIe device at {}: check the address with `lspci -D` and the BAR number", path.display())]
    DeviceMissing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "permission denied on {}: run as root, or grant access to the BAR with `sudo chmod 0666 {}` \
         (or a udev rule: SUBSYSTEM==\"pci\", KERNEL==\"{bdf}\", RUN+=\"/bin/chmod 0666 %S%p/resource*\"), \
         and enable the device once as root (`echo 1 > {}` or `setpci -s {bdf} COMMAND=0x02`)",
        path.display(), path.display(), enable.display()
    )]
    PermissionDenied {
        path: PathBuf,
        bdf: String,
        enable: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "BAR {} is too small: {size} bytes, the register map needs {needed} (weight window at 0x{:x} + {wmem_words} words); \
         wrong BAR number or not a CREW device?",
        path.display(), regs::WEIGHT_WINDOW
    )]
    BarTooSmall { path: PathBuf, size: u64, needed: u64, wmem_words: u64 },
    #[error("bad BAR access at 0x{addr:08x}")]
    Access {
        addr: u32,
        #[source]
        source: MmioError,
    },
    #[error("the device did not take the CTRL pulse 0x{pulse:x} within {timeout:?}")]
    DoorbellTimeout { pulse: u32, timeout: Duration },
    #[error("the device reads all-ones at CTRL: it is not responding (link down, reset, or disabled)")]
    NotResponding,
}

/// Map an open error: missing file, permission, or other.
fn open_error(path: &Path, bdf: &str, enable: &Path, what: &'static str, source: io::Error) -> PcieError {
    match source.kind() {
        io::ErrorKind::NotFound => PcieError::DeviceMissing { path: path.to_path_buf(), source },
        io::ErrorKind::PermissionDenied => PcieError::PermissionDenied {
            path: path.to_path_buf(),
            bdf: bdf.to_string(),
            enable: enable.to_path_buf(),
            source,
        },
        _ => PcieError::Io { what, path: path.to_path_buf(), source },
    }
}

/// The sysfs root: `CREW_SYSFS_ROOT`, or `/sys`.
pub fn sysfs_root() -> PathBuf {
    std::env::var_os(SYSFS_ROOT_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/sys"))
}

/// Open a `pcie:` device string (the prefix is optional) under [`sysfs_root`].
pub fn open_pcie(spec: &str) -> Result<PcieBar, PcieError> {
    PcieBar::open(&PcieSpec::parse(spec)?, &sysfs_root())
}

/// A CREW register map behind a memory-mapped PCIe BAR.
#[derive(Debug)]
pub struct PcieBar {
    region: MmioRegion,
    path: PathBuf,
    doorbell_timeout: Duration,
}

impl PcieBar {
    /// Open BAR `spec.bar` of device `spec.bdf` under `sysfs_root`: enable the device if its
    /// `enable` file reads 0, map `resourceN` read-write, and check it covers the register map.
    pub fn open(spec: &PcieSpec, sysfs_root: &Path) -> Result<PcieBar, PcieError> {
        let dir = spec.device_dir(sysfs_root);
        let enable = dir.join("enable");
        let resource = dir.join(format!("resource{}", spec.bar));
        if let Err(source) = std::fs::metadata(&dir) {
            return Err(open_error(&dir, &spec.bdf, &enable, "stat", source));
        }
        // Enable memory decoding if the device is disabled (a fresh boot without a kernel driver).
        match std::fs::read_to_string(&enable) {
            Ok(s) if s.trim() == "0" => std::fs::write(&enable, "1")
                .map_err(|source| open_error(&enable, &spec.bdf, &enable, "write", source))?,
            Ok(_) => {}
            // No enable file (unusual sysfs, or a device node that is not a PCI function): go on.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(open_error(&enable, &spec.bdf, &enable, "read", source)),
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&resource)
            .map_err(|source| open_error(&resource, &spec.bdf, &enable, "open", source))?;
        Self::map(file, resource, &spec.bdf, &enable)
    }

    /// Map any file or device node laid out as the register map (no sysfs, no enable step):
    /// a resource file by path, or a memory-backed stand-in.
    pub fn open_resource(path: &Path) -> Result<PcieBar, PcieError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| open_error(path, "<bdf>", Path::new("<device>/enable"), "open", source))?;
        Self::map(file, path.to_path_buf(), "<bdf>", Path::new("<device>/enable"))
    }

    fn map(file: File, path: PathBuf, bdf: &str, enable: &Path) -> Result<PcieBar, PcieError> {
        let size = file.metadata().map_err(|source| PcieError::Io { what: "stat", path: path.clone(), source })?.len();
        if size < REGISTER_BLOCK_BYTES {
            return Err(PcieError::BarTooSmall { path, size, needed: REGISTER_BLOCK_BYTES, wmem_words: 0 });
        }
        let len = usize::try_from(size).map_err(|_| PcieError::Io {
            what: "map",
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "BAR larger than the address space"),
        })?;
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|source| open_error(&path, bdf, enable, "map", source))?;
        let bar = PcieBar { region: MmioRegion::new(map), path, doorbell_timeout: DEFAULT_DOORBELL_TIMEOUT };
        let wmem_words = bar.read32(regs::WMEM_WORDS)? as u64;
        let needed = regs::WEIGHT_WINDOW as u64 + 4 * wmem_words;
        if size < needed {
            return Err(PcieError::BarTooSmall { path: bar.path.clone(), size, needed, wmem_words });
        }
        Ok(bar)
    }

    /// Bound the wait for a CTRL pulse to be taken (default [`DEFAULT_DOORBELL_TIMEOUT`]).
    pub fn with_doorbell_timeout(mut self, timeout: Duration) -> PcieBar {
        self.doorbell_timeout = timeout;
        self
    }

    /// The mapped resource file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the mapped BAR in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Whether the mapping is empty (never, once opened).
    pub fn is_empty(&self) -> bool {
        self.region.len() == 0
    }

    fn read32(&self, addr: u32) -> Result<u32, PcieError> {
        self.region.read32(addr as u64).map_err(|source| PcieError::Access { addr, source })
    }
}

/// Wait until the pulse bits written to CTRL read back as 0 (bounded), reading through `read_ctrl`.
pub(crate) fn wait_pulse_taken<E>(
    timeout: Duration,
    mut read_ctrl: impl FnMut() -> Result<u32, E>,
    timed_out: impl FnOnce() -> E,
    not_responding: impl FnOnce() -> E,
) -> Result<(), E> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let ctrl = read_ctrl()?;
        if ctrl == u32::MAX {
            return Err(not_responding());
        }
        if ctrl & CTRL_PULSES == 0 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(timed_out());
        }
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else if spins < 1024 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

impl Transport for PcieBar {
    type Error = PcieError;

    fn read32(&mut self, addr: u32) -> Result<u32, PcieError> {
        PcieBar::read32(self, addr)
    }

    fn write32(&mut self, addr: u32, value: u32) -> Result<(), PcieError> {
        self.region.write32(addr as u64, value).map_err(|source| PcieError::Access { addr, source })?;
        if addr == regs::CTRL && value & CTRL_PULSES != 0 {
            let pulse = value & CTRL_PULSES;
            let timeout = self.doorbell_timeout;
            wait_pulse_taken(
                timeout,
                || PcieBar::read32(self, regs::CTRL),
                || PcieError::DoorbellTimeout { pulse, timeout },
                || PcieError::NotResponding,
            )?;
        }
        Ok(())
    }

    fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), PcieError> {
        self.region.read_words(addr as u64, out).map_err(|source| PcieError::Access { addr, source })
    }

    fn write_burst(&mut self, addr: u32, data: &[u32]) -> Result<(), PcieError> {
        let ctrl = regs::CTRL as u64;
        let (lo, hi) = (addr as u64, addr as u64 + 4 * data.len() as u64);
        if (lo..hi).contains(&ctrl) {
            // A burst over CTRL: word by word, so a pulse gets its flush.
            for (k, &w) in data.iter().enumerate() {
                Transport::write32(self, addr + 4 * k as u32, w)?;
            }
            return Ok(());
        }
        self.region.write_words(addr as u64, data).map_err(|source| PcieError::Access { addr, source })
    }
}

/// Running the BAR and XDMA backends without hardware: a memory-backed stand-in for the device
/// (a file laid out like sysfs, or like XDMA nodes) served by an emulated device on a thread.
///
/// The [`Mirror`](sim::Mirror) watches CTRL in the stand-in. When a pulse appears it sets STATUS to BUSY,
/// copies the writable registers and the changed window words into the device, writes CTRL to
/// it, copies the results (read-only registers, accumulators) back, writes the final STATUS,
/// and last clears the pulse bits, which is what the driver's CTRL flush waits for.
pub mod sim {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use crew_core::config::DeviceConfig;
    use crew_core::regs;

    use super::CTRL_PULSES;
    use crate::transport::Transport;

    /// A register-level device model: what the mirror forwards to.
    pub trait Device {
        fn read(&mut self, addr: u32) -> u32;
        fn write(&mut self, addr: u32, value: u32);
    }

    impl Device for crate::emu::EmuDevice {
        fn read(&mut self, addr: u32) -> u32 {
            crate::emu::EmuDevice::read(self, addr)
        }
        fn write(&mut self, addr: u32, value: u32) {
            crate::emu::EmuDevice::write(self, addr, value)
        }
    }

    /// Bytes a stand-in BAR needs for `cfg`: the map up to the end of weight memory, rounded up
    /// to a power of two as PCIe BARs are.
    pub fn bar_size(cfg: &DeviceConfig) -> u64 {
        (regs::WEIGHT_WINDOW as u64 + 4 * cfg.wmem_words as u64).next_power_of_two()
    }

    /// Lay out `<root>/bus/pci/devices/<bdf>/{resource<bar>,enable}`: a zero-filled resource
    /// file of `size` bytes and an `enable` file reading `enabled`. Returns the resource path.
    pub fn fake_sysfs(root: &Path, bdf: &str, bar: u8, size: u64, enabled: bool) -> io::Result<PathBuf> {
        let dir = root.join("bus/pci/devices").join(bdf);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("enable"), if enabled { "1\n" } else { "0\n" })?;
        let resource = dir.join(format!("resource{bar}"));
        let f = std::fs::File::create(&resource)?;
        f.set_len(size)?;
        Ok(resource)
    }

    /// Lay out XDMA-style nodes `<dir>/<name>_user`, `<name>_h2c_0`, `<name>_c2h_0` as views of
    /// one zero-filled file of `size` bytes (hard links): one address space, as on a design whose
    /// AXI-Lite and AXI-MM ports reach the same bus. Returns the base path `<dir>/<name>`.
    pub fn fake_xdma(dir: &Path, name: &str, size: u64) -> io::Result<PathBuf> {
        let base = dir.join(name);
        let user = PathBuf::from(format!("{}_user", base.display()));
        std::fs::File::create(&user)?.set_len(size)?;
        for node in ["h2c_0", "c2h_0"] {
            std::fs::hard_link(&user, format!("{}_{node}", base.display()))?;
        }
        Ok(base)
    }

    /// The registers the driver writes and the device reads.
    const WRITABLE: [u32; 6] =
        [regs::N_OUT, regs::N_IN, regs::LAYER_BASE, regs::CRC_BASE, regs::CRC_LEN, regs::SCRATCH];
    /// The registers the device writes.
    const RESULTS: [u32; 6] =
        [regs::CRC_VALUE, regs::CYCLES_LO, regs::CYCLES_HI, regs::MULT_COUNT, regs::ADD_COUNT, regs::SCRATCH];
    /// Registers fixed at reset.
    const IDENTITY: [u32; 6] =
        [regs::ID, regs::VERSION_REG, regs::CAPS, regs::WMEM_WORDS, regs::IBUF_DEPTH, regs::OBUF_DEPTH];

    /// One memory window: base address and the device's view of its contents.
    struct Window {
        base: u32,
        shadow: Vec<u32>,
    }

    /// Serves a [`Device`] behind a memory-backed view `T` of the register map.
    pub struct Mirror<T: Transport, D: Device> {
        view: T,
        dev: D,
        windows: [Window; 3],
        scratch: Vec<u32>,
        served: u64,
    }

    impl<T: Transport, D: Device> Mirror<T, D> {
        /// Write the device's identity registers and memories into the view.
        pub fn new(mut view: T, mut dev: D) -> Result<Self, T::Error> {
            for r in IDENTITY.into_iter().chain(RESULTS).chain(WRITABLE) {
                view.write32(r, dev.read(r))?;
            }
            view.write32(regs::STATUS, dev.read(regs::STATUS))?;
            view.write32(regs::CTRL, dev.read(regs::CTRL) & regs::ctrl::LEVEL_MASK)?;
            let words = |n: u32| n as usize;
            let ibuf = words(dev.read(regs::IBUF_DEPTH).div_ceil(4));
            let obuf = words(dev.read(regs::OBUF_DEPTH));
            let wmem = words(dev.read(regs::WMEM_WORDS));
            let mut windows = [
                Window { base: regs::INPUT_WINDOW, shadow: vec![0; ibuf] },
                Window { base: regs::OUTPUT_WINDOW, shadow: vec![0; obuf] },
                Window { base: regs::WEIGHT_WINDOW, shadow: vec![0; wmem] },
            ];
            for w in &mut windows {
                for (k, s) in w.shadow.iter_mut().enumerate() {
                    *s = dev.read(w.base + 4 * k as u32);
                }
                view.write_burst(w.base, &w.shadow)?;
            }
            Ok(Mirror { view, dev, windows, scratch: Vec::new(), served: 0 })
        }

        /// Pulses served so far.
        pub fn served(&self) -> u64 {
            self.served
        }

        /// The device behind the mirror.
        pub fn device(&mut self) -> &mut D {
            &mut self.dev
        }

        /// Serve a pending CTRL pulse, if any; `Ok(true)` if one was served.
        pub fn poll(&mut self) -> Result<bool, T::Error> {
            let ctrl = self.view.read32(regs::CTRL)?;
            if ctrl & CTRL_PULSES == 0 {
                return Ok(false);
            }
            self.view.write32(regs::STATUS, regs::status::BUSY)?;
            for r in WRITABLE {
                let v = self.view.read32(r)?;
                self.dev.write(r, v);
            }
            for w in &mut self.windows {
                self.scratch.resize(w.shadow.len(), 0);
                self.view.read_burst(w.base, &mut self.scratch)?;
                for (k, (s, &v)) in w.shadow.iter_mut().zip(&self.scratch).enumerate() {
                    if *s != v {
                        self.dev.write(w.base + 4 * k as u32, v);
                        *s = v;
                    }
                }
            }
            self.dev.write(regs::CTRL, ctrl);
            // The device may take a while (or model BUSY); bounded.
            for _ in 0..1_000_000 {
                if self.dev.read(regs::STATUS) & regs::status::BUSY == 0 {
                    break;
                }
            }
            for r in RESULTS {
                let v = self.dev.read(r);
                self.view.write32(r, v)?;
            }
            let out = &mut self.windows[1];
            for (k, s) in out.shadow.iter_mut().enumerate() {
                *s = self.dev.read(out.base + 4 * k as u32);
            }
            self.view.write_burst(out.base, &out.shadow)?;
            self.view.write32(regs::STATUS, self.dev.read(regs::STATUS))?;
            self.view.write32(regs::CTRL, ctrl & regs::ctrl::LEVEL_MASK)?;
            self.served += 1;
            Ok(true)
        }

        /// Poll until `stop` is set or `deadline` passes; returns the view, the device and the
        /// pulses served.
        pub fn serve(mut self, stop: &AtomicBool, deadline: Instant) -> Served<T, D> {
            let mut idle = 0u32;
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                if self.poll()? {
                    idle = 0;
                } else {
                    idle += 1;
                    if idle < 256 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
            }
            Ok((self.view, self.dev, self.served))
        }
    }

    /// What a stopped mirror hands back: the view, the device and the pulses served.
    pub type Served<T, D> = Result<(T, D, u64), <T as Transport>::Error>;

    /// A mirror running on its own thread; stops when told, when dropped, or at its deadline.
    pub struct Server<T: Transport, D: Device> {
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<Served<T, D>>>,
    }

    impl<T, D> Server<T, D>
    where
        T: Transport + Send + 'static,
        D: Device + Send + 'static,
    {
        /// Start serving `mirror` on a thread for at most `max_time`.
        pub fn spawn(mirror: Mirror<T, D>, max_time: Duration) -> Self {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let deadline = Instant::now() + max_time;
            let thread = std::thread::spawn(move || mirror.serve(&flag, deadline));
            Server { stop, thread: Some(thread) }
        }

        /// Stop the thread and return the view, the device and the pulses served; `None` if the
        /// thread panicked.
        pub fn stop(mut self) -> Option<Served<T, D>> {
            self.stop.store(true, Ordering::Release);
            self.thread.take().and_then(|t| t.join().ok())
        }
    }

    impl<T: Transport, D: Device> Drop for Server<T, D> {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Release);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s = PcieSpec::parse("pcie:0000:01:00.0").unwrap();
        assert_eq!(s, PcieSpec { bdf: "0000:01:00.0".into(), bar: 0 });
        assert_eq!(PcieSpec::parse("01:00.1,bar=2").unwrap(), PcieSpec { bdf: "0000:01:00.1".into(), bar: 2 });
        assert!(PcieSpec::parse("pcie:10000:01:00.0").map_err(|e| e.to_string()).unwrap_err().contains("domain"));
        assert_eq!(PcieSpec::parse("0000:AB:1F.7").unwrap().bdf, "0000:ab:1f.7");
        assert_eq!(PcieSpec::parse("0000:AB:1F.7").unwrap().to_string(), "pcie:0000:ab:1f.7,bar=0");
        for bad in [
            "",
            "pcie:",
            "0000:01:00",
            "0000:01:20.0",
            "0000:01:00.8",
            "0000:1g:00.0",
            "01:00.0,bar=6",
            "01:00.0,x=1",
            "a:b:c:d.0",
        ] {
            assert!(matches!(PcieSpec::parse(bad), Err(PcieError::BadSpec { .. })), "{bad}");
        }
    }
}
