//! XDMA transport: a CREW device behind the Xilinx XDMA (or QDMA-compatible) character devices.
//!
//! `xdma:/dev/xdma0[,channel=N]` uses three nodes of the XDMA driver:
//!
//! * `<path>_user`: the AXI-Lite BAR, for registers: one 4-byte `pread`/`pwrite` per word at the
//!   register's byte address (the XDMA driver moves exactly one 32-bit word per call there);
//! * `<path>_h2c_N`: host-to-card DMA, for bulk loads ([`Transport::write_burst`]): `pwrite` at
//!   the bus address from a 4 KiB-aligned buffer, looping over short transfers;
//! * `<path>_c2h_N`: card-to-host DMA, for bulk reads ([`Transport::read_burst`]): `pread` the
//!   same way.
//!
//! Bursts of at most [`Xdma::user_burst_max`] words (default [`DEFAULT_USER_BURST_MAX`]) go through
//! the user node word by word instead: a DMA descriptor costs more than a few register accesses.
//! The DMA engine is assumed to reach the same bus addresses as the user BAR (add an offset with
//! [`Xdma::with_dma_base`] when the design maps CREW elsewhere on its AXI-MM port).
//!
//! A CTRL write that carries a pulse bit is flushed as on the BAR backend: CTRL is read back
//! until the pulse bits read as 0 (bounded by the doorbell timeout).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crew_core::regs;

use crate::mmio::AlignedBuf;
use crate::pcie::{wait_pulse_taken, CTRL_PULSES, DEFAULT_DOORBELL_TIMEOUT};
use crate::transport::Transport;

/// Bursts up to this many words go through the user node.
pub const DEFAULT_USER_BURST_MAX: usize = 8;
/// Largest single DMA transfer (bytes); longer bursts are split.
pub const DMA_CHUNK_BYTES: usize = 1 << 20;
/// Default bound on one DMA transfer, retries of interrupted calls included.
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

/// Which XDMA node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// `_user`: register access.
    User,
    /// `_h2c_N`: host to card.
    H2c,
    /// `_c2h_N`: card to host.
    C2h,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Node::User => "user (register) node",
            Node::H2c => "host-to-card DMA node",
            Node::C2h => "card-to-host DMA node",
        })
    }
}

/// Errors of the XDMA backend.
#[derive(Debug, thiserror::Error)]
pub enum XdmaError {
    #[error("bad XDMA device string `{spec}`: {reason} (expected `xdma:/dev/xdma0[,channel=N]`)")]
    BadSpec { spec: String, reason: String },
    #[error("XDMA {node} {} does not exist: is the xdma kernel module loaded and the board enumerated?", path.display())]
    NodeMissing {
        node: Node,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "permission denied on XDMA {node} {}: run as root, or grant access with `sudo chmod 0666 {}` \
         (or a udev rule: KERNEL==\"xdma[0-9]*\", MODE=\"0666\")",
        path.display(), path.display()
    )]
    PermissionDenied {
        node: Node,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open XDMA {node} {}", path.display())]
    Open {
        node: Node,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("XDMA {node} transfer at 0x{addr:x} failed")]
    Io {
        node: Node,
        addr: u64,
        #[source]
        source: io::Error,
    },
    #[error("short XDMA {node} transfer at 0x{addr:x}: {done} of {wanted} bytes moved, then the node moved none")]
    ShortTransfer { node: Node, addr: u64, done: usize, wanted: usize },
    #[error("XDMA {node} transfer at 0x{addr:x} timed out after {waited:?} ({done} of {wanted} bytes moved)")]
    Timeout { node: Node, addr: u64, done: usize, wanted: usize, waited: Duration },
    #[error("unaligned XDMA access at 0x{addr:x}: addresses are 32-bit word aligned")]
    Unaligned { addr: u32 },
    #[error("access at 0x{addr:x} of {words} words runs past the end of the 32-bit bus")]
    OutOfRange { addr: u32, words: usize },
    #[error("cannot allocate a {bytes}-byte aligned DMA buffer")]
    Alloc { bytes: usize },
    #[error("the device did not take the CTRL pulse 0x{pulse:x} within {timeout:?}")]
    DoorbellTimeout { pulse: u32, timeout: Duration },
    #[error("the device reads all-ones at CTRL: it is not responding (link down, reset, or disabled)")]
    NotResponding,
}

/// Parsed `xdma:` device string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdmaSpec {
    /// Node prefix, e.g. `/dev/xdma0`.
    pub path: PathBuf,
    /// DMA channel (`_h2c_N`, `_c2h_N`).
    pub channel: u8,
}

impl XdmaSpec {
    /// Parse `[xdma:]<path>[,channel=N]`.
    pub fn parse(spec: &str) -> Result<XdmaSpec, XdmaError> {
        let bad = |reason: String| XdmaError::BadSpec { spec: spec.to_string(), reason };
        let body = spec.strip_prefix("xdma:").unwrap_or(spec);
        let mut parts = body.split(',');
        let path = parts.next().unwrap_or("");
        if path.is_empty() {
            return Err(bad("no node path".into()));
        }
        let mut channel = 0u8;
        for opt in parts {
            match opt.split_once('=') {
                Some(("channel", n)) => {
                    channel = n
                        .parse::<u8>()
                        .ok()
                        .filter(|c| *c < 4)
                        .ok_or_else(|| bad(format!("channel must be 0..=3, got `{n}`")))?
                }
                _ => return Err(bad(format!("unknown option `{opt}` (expected `channel=N`)"))),
            }
        }
        Ok(XdmaSpec { path: PathBuf::from(path), channel })
    }

    /// The path of one node.
    pub fn node_path(&self, node: Node) -> PathBuf {
        let suffix = match node {
            Node::User => "_user".to_string(),
            Node::H2c => format!("_h2c_{}", self.channel),
            Node::C2h => format!("_c2h_{}", self.channel),
        };
        let mut s = self.path.clone().into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    }
}

/// Open an `xdma:` device string (the prefix is optional).
pub fn open_xdma(path: &str) -> Result<Xdma, XdmaError> {
    Xdma::open(&XdmaSpec::parse(path)?)
}

fn open_node(node: Node, path: &Path, read: bool, write: bool) -> Result<File, XdmaError> {
    OpenOptions::new().read(read).write(write).open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => XdmaError::NodeMissing { node, path: path.to_path_buf(), source },
        io::ErrorKind::PermissionDenied => XdmaError::PermissionDenied { node, path: path.to_path_buf(), source },
        _ => XdmaError::Open { node, path: path.to_path_buf(), source },
    })
}

/// A CREW device behind XDMA character devices.
#[derive(Debug)]
pub struct Xdma {
    user: File,
    h2c: File,
    c2h: File,
    buf: Option<AlignedBuf>,
    user_burst_max: usize,
    dma_base: u64,
    transfer_timeout: Duration,
    doorbell_timeout: Duration,
    stats: XdmaStats,
}

/// Bytes moved through each node so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdmaStats {
    pub user_bytes: u64,
    pub h2c_bytes: u64,
    pub c2h_bytes: u64,
}

impl Xdma {
    /// Open the user node read-write, the H2C node write-only and the C2H node read-only.
    pub fn open(spec: &XdmaSpec) -> Result<Xdma, XdmaError> {
        let user = open_node(Node::User, &spec.node_path(Node::User), true, true)?;
        let h2c = open_node(Node::H2c, &spec.node_path(Node::H2c), false, true)?;
        let c2h = open_node(Node::C2h, &spec.node_path(Node::C2h), true, false)?;
        Ok(Xdma {
            user,
            h2c,
            c2h,
            buf: None,
            user_burst_max: DEFAULT_USER_BURST_MAX,
            dma_base: 0,
            transfer_timeout: DEFAULT_TRANSFER_TIMEOUT,
            doorbell_timeout: DEFAULT_DOORBELL_TIMEOUT,
            stats: XdmaStats::default(),
        })
    }

    /// Bursts of at most `words` words go through the user node (0: every burst uses DMA).
    pub fn with_user_burst_max(mut self, words: usize) -> Xdma {
        self.user_burst_max = words;
        self
    }

    /// The AXI-MM address of bus address 0 for DMA transfers.
    pub fn with_dma_base(mut self, base: u64) -> Xdma {
        self.dma_base = base;
        self
    }

    /// Bound on one DMA transfer, retries included.
    pub fn with_transfer_timeout(mut self, timeout: Duration) -> Xdma {
        self.transfer_timeout = timeout;
        self
    }

    /// Bound on the wait for a CTRL pulse to be taken.
    pub fn with_doorbell_timeout(mut self, timeout: Duration) -> Xdma {
        self.doorbell_timeout = timeout;
        self
    }

    /// The current limit for bursts through the user node.
    pub fn user_burst_max(&self) -> usize {
        self.user_burst_max
    }

    /// Bytes moved through each node so far.
    pub fn stats(&self) -> XdmaStats {
        self.stats
    }

    fn check(addr: u32, words: usize) -> Result<(), XdmaError> {
        if addr & 3 != 0 {
            return Err(XdmaError::Unaligned { addr });
        }
        if addr as u64 + 4 * words as u64 > 1 << 32 {
            return Err(XdmaError::OutOfRange { addr, words });
        }
        Ok(())
    }

    fn user_read(&mut self, addr: u32) -> Result<u32, XdmaError> {
        let mut b = [0u8; 4];
        transfer(Node::User, addr as u64, 4, self.transfer_timeout, |done| {
            self.user.read_at(&mut b[done..], addr as u64 + done as u64)
        })?;
        self.stats.user_bytes += 4;
        Ok(u32::from_le_bytes(b))
    }

    fn user_write(&mut self, addr: u32, value: u32) -> Result<(), XdmaError> {
        let b = value.to_le_bytes();
        transfer(Node::User, addr as u64, 4, self.transfer_timeout, |done| {
            self.user.write_at(&b[done..], addr as u64 + done as u64)
        })?;
        self.stats.user_bytes += 4;
        Ok(())
    }

    /// The DMA buffer, grown to at least `bytes`.
    fn buffer(&mut self, bytes: usize) -> Result<AlignedBuf, XdmaError> {
        match self.buf.take() {
            Some(b) if b.capacity() >= bytes => Ok(b),
            _ => AlignedBuf::new(bytes).ok_or(XdmaError::Alloc { bytes }),
        }
    }
}

/// Move `wanted` bytes through `step(done) -> bytes moved`, looping over short transfers,
/// retrying interrupted and would-block calls until `timeout`; a call that moves nothing is a
/// short transfer, `ETIMEDOUT` from the driver a timeout.
fn transfer(
    node: Node,
    addr: u64,
    wanted: usize,
    timeout: Duration,
    mut step: impl FnMut(usize) -> io::Result<usize>,
) -> Result<(), XdmaError> {
    let start = Instant::now();
    let mut done = 0;
    while done < wanted {
        match step(done) {
            Ok(0) => return Err(XdmaError::ShortTransfer { node, addr, done, wanted }),
            Ok(n) => done += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {
                if start.elapsed() > timeout {
                    return Err(XdmaError::Timeout { node, addr, done, wanted, waited: start.elapsed() });
                }
                std::thread::yield_now();
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(XdmaError::Timeout { node, addr, done, wanted, waited: start.elapsed() })
            }
            Err(source) => return Err(XdmaError::Io { node, addr, source }),
        }
    }
    Ok(())
}

impl Transport for Xdma {
    type Error = XdmaError;

    fn read32(&mut self, addr: u32) -> Result<u32, XdmaError> {
        Self::check(addr, 1)?;
        self.user_read(addr)
    }

    fn write32(&mut self, addr: u32, value: u32) -> Result<(), XdmaError> {
        Self::check(addr, 1)?;
        self.user_write(addr, value)?;
        if addr == regs::CTRL && value & CTRL_PULSES != 0 {
            let pulse = value & CTRL_PULSES;
            let timeout = self.doorbell_timeout;
            wait_pulse_taken(
                timeout,
                || self.user_read(regs::CTRL),
                || XdmaError::DoorbellTimeout { pulse, timeout },
                || XdmaError::NotResponding,
            )?;
        }
        Ok(())
    }

    fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), XdmaError> {
        Self::check(addr, out.len())?;
        if out.len() <= self.user_burst_max {
            for (k, w) in out.iter_mut().enumerate() {
                *w = self.user_read(addr + 4 * k as u32)?;
            }
            return Ok(());
        }
        let chunk_words = DMA_CHUNK_BYTES / 4;
        let mut buf = self.buffer(out.len().min(chunk_words) * 4)?;
        let mut result = Ok(());
        for (c, words) in out.chunks_mut(chunk_words).enumerate() {
            let bytes = words.len() * 4;
            let card = self.dma_base + addr as u64 + (c * DMA_CHUNK_BYTES) as u64;
            let slice = &mut buf.as_mut_slice()[..bytes];
            result = transfer(Node::C2h, card, bytes, self.transfer_timeout, |done| {
                self.c2h.read_at(&mut slice[done..], card + done as u64)
            });
            if result.is_err() {
                break;
            }
            for (w, b) in words.iter_mut().zip(slice.chunks_exact(4)) {
                *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            self.stats.c2h_bytes += bytes as u64;
        }
        self.buf = Some(buf);
        result
    }

    fn write_burst(&mut self, addr: u32, data: &[u32]) -> Result<(), XdmaError> {
        Self::check(addr, data.len())?;
        let ctrl = regs::CTRL as u64;
        let covers_ctrl = (addr as u64..addr as u64 + 4 * data.len() as u64).contains(&ctrl);
        if data.len() <= self.user_burst_max || covers_ctrl {
            // Registers (and CTRL with its flush) word by word through the user node.
            for (k, &w) in data.iter().enumerate() {
                Transport::write32(self, addr + 4 * k as u32, w)?;
            }
            return Ok(());
        }
        let chunk_words = DMA_CHUNK_BYTES / 4;
        let mut buf = self.buffer(data.len().min(chunk_words) * 4)?;
        let mut result = Ok(());
        for (c, words) in data.chunks(chunk_words).enumerate() {
            let bytes = words.len() * 4;
            let card = self.dma_base + addr as u64 + (c * DMA_CHUNK_BYTES) as u64;
            let slice = &mut buf.as_mut_slice()[..bytes];
            for (b, w) in slice.chunks_exact_mut(4).zip(words) {
                b.copy_from_slice(&w.to_le_bytes());
            }
            let slice = &*slice;
            result = transfer(Node::H2c, card, bytes, self.transfer_timeout, |done| {
                self.h2c.write_at(&slice[done..], card + done as u64)
            });
            if result.is_err() {
                break;
            }
            self.stats.h2c_bytes += bytes as u64;
        }
        self.buf = Some(buf);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s = XdmaSpec::parse("xdma:/dev/xdma0").unwrap();
        assert_eq!(s.node_path(Node::User), PathBuf::from("/dev/xdma0_user"));
        assert_eq!(s.node_path(Node::H2c), PathBuf::from("/dev/xdma0_h2c_0"));
        let s = XdmaSpec::parse("/dev/xdma1,channel=2").unwrap();
        assert_eq!(s.node_path(Node::C2h), PathBuf::from("/dev/xdma1_c2h_2"));
        for bad in ["", "xdma:", "/dev/xdma0,channel=9", "/dev/xdma0,foo"] {
            assert!(matches!(XdmaSpec::parse(bad), Err(XdmaError::BadSpec { .. })), "{bad}");
        }
    }

    #[test]
    fn transfer_loops_and_classifies() {
        // Short steps add up.
        let mut calls = 0;
        transfer(Node::H2c, 0, 10, Duration::from_secs(1), |done| {
            calls += 1;
            Ok((10 - done).min(3))
        })
        .unwrap();
        assert_eq!(calls, 4);
        // A step that moves nothing is a short transfer with the counts.
        let e =
            transfer(Node::C2h, 0x40, 8, Duration::from_secs(1), |done| Ok(if done == 0 { 4 } else { 0 })).unwrap_err();
        assert!(matches!(e, XdmaError::ShortTransfer { node: Node::C2h, addr: 0x40, done: 4, wanted: 8 }), "{e}");
        assert!(e.to_string().contains("4 of 8 bytes"), "{e}");
        // ETIMEDOUT from the driver.
        let e = transfer(Node::H2c, 0, 8, Duration::from_secs(1), |_| Err(io::Error::from(io::ErrorKind::TimedOut)))
            .unwrap_err();
        assert!(matches!(e, XdmaError::Timeout { node: Node::H2c, done: 0, wanted: 8, .. }), "{e}");
        // Endless EINTR runs into the deadline.
        let e =
            transfer(Node::H2c, 0, 8, Duration::from_millis(20), |_| Err(io::Error::from(io::ErrorKind::Interrupted)))
                .unwrap_err();
        assert!(matches!(e, XdmaError::Timeout { .. }), "{e}");
        // Other errors keep their source.
        let e = transfer(Node::User, 0, 4, Duration::from_secs(1), |_| Err(io::Error::other("boom"))).unwrap_err();
        assert!(matches!(e, XdmaError::Io { node: Node::User, .. }));
        assert!(std::error::Error::source(&e).is_some());
    }
}
