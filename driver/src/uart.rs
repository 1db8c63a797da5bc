//! UART transport: a CREW board (ULX3S) behind its serial bridge, speaking the framed protocol of
//! [`crew_core::uart`] (`docs/uart.md`).
//!
//! `uart:/dev/ttyUSB0[,baud=N][,timeout_ms=N][,retries=N]`: the port is opened in raw mode
//! (8N1, no flow control) at `baud` (default [`DEFAULT_BAUD`], 3 Mbaud, the FT231X's maximum)
//! through termios (`nix`, no `unsafe`). Linux's standard rates up to 4 Mbaud are accepted
//! ([`SUPPORTED_BAUDS`]); the FTDI driver maps them to its own divisors.
//!
//! Every access is one request frame and one response frame. A response that does not arrive
//! within the timeout (plus the line time of its bytes), fails its CRC, reports an error status or
//! answers another command is retried after a resynchronisation (wait until the line is quiet for
//! a few milliseconds, discard the input), up to `retries` times; then the access fails with
//! [`UartError::Timeout`] when the board never said anything, or [`UartError::ResyncFailed`]
//! carrying the last error otherwise.
//!
//! Each new access carries the next sequence tag and its retries the same one, so the board
//! acknowledges a retried write it already performed without performing it again (a lost
//! acknowledgement of a START does not start a second run). A write is preceded by a read of ID
//! when no read succeeded since opening or since an access failed: reads set the board's
//! remembered tag, so the write cannot be mistaken for a retry of another session's last write
//! (or meet the tag left behind before a run of failed accesses).
//!
//! [`serve_emulated_board`] is the other end: it serves requests from an [`EmuDevice`] over any
//! file descriptor (a pseudo-terminal master in the tests), the software model of the RTL bridge.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crew_core::regs;
use crew_core::uart::{
    cmd, decode_response, encode_request, encode_response, Decoded, Dedup, Reject, Request, RequestDecoder, Response,
    Status, TaggedRequest, MAX_BURST, MAX_RESPONSE_LEN,
};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, BaudRate, ControlFlags, FlushArg, SetArg, SpecialCharacterIndices};

use crate::emu::EmuDevice;
use crate::transport::Transport;

pub use crew_core::uart::DEFAULT_BAUD;

/// Default wait for a response, beyond the line time of its bytes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// Default retries of one access after a failed exchange.
pub const DEFAULT_RETRIES: u32 = 3;
/// The line must be silent this long before a retry.
pub const QUIET: Duration = Duration::from_millis(5);

/// The rates the `baud=` option takes (Linux termios constants).
pub const SUPPORTED_BAUDS: &[(u32, BaudRate)] = &[
    (9_600, BaudRate::B9600),
    (19_200, BaudRate::B19200),
    (38_400, BaudRate::B38400),
    (57_600, BaudRate::B57600),
    (115_200, BaudRate::B115200),
    (230_400, BaudRate::B230400),
    (460_800, BaudRate::B460800),
    (500_000, BaudRate::B500000),
    (921_600, BaudRate::B921600),
    (1_000_000, BaudRate::B1000000),
    (1_500_000, BaudRate::B1500000),
    (2_000_000, BaudRate::B2000000),
    (3_000_000, BaudRate::B3000000),
    (4_000_000, BaudRate::B4000000),
];

/// Errors of the UART backend.
#[derive(Debug, thiserror::Error)]
pub enum UartError {
    #[error(
        "bad UART device string `{spec}`: {reason} (expected `uart:/dev/ttyUSB0[,baud=N][,timeout_ms=N][,retries=N]`)"
    )]
    BadSpec { spec: String, reason: String },
    #[error("unsupported baud rate {baud}; supported: {}", supported_list())]
    UnsupportedBaud { baud: u32 },
    #[error("serial port {} does not exist: is the board plugged in? (`ls /dev/ttyUSB* /dev/serial/by-id/`)", path.display())]
    NotFound {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "permission denied on serial port {}: add yourself to the `dialout` group \
         (`sudo usermod -aG dialout $USER`, then log in again)",
        path.display()
    )]
    PermissionDenied {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open serial port {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot configure {} as a serial port (raw 8N1 at {baud} baud): is it a tty?", path.display())]
    Configure {
        path: PathBuf,
        baud: u32,
        #[source]
        source: nix::Error,
    },
    #[error("I/O error on serial port {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no response from the board to {what} at {addr:#010x} within {waited:?}: is the bitstream loaded and the baud rate right?")]
    Timeout { what: &'static str, addr: u32, waited: Duration },
    #[error("bad checksum in the response to {what} at {addr:#010x} ({reason})")]
    BadChecksum {
        what: &'static str,
        addr: u32,
        #[source]
        reason: Reject,
    },
    #[error("the board answered {what} at {addr:#010x} with status {status:?}: {}", status.describe())]
    Board { what: &'static str, addr: u32, status: Status },
    #[error("unexpected response to {what} at {addr:#010x}: {reason}")]
    Unexpected { what: &'static str, addr: u32, reason: String },
    #[error("lost synchronisation with the board: {what} at {addr:#010x} failed {attempts} times")]
    ResyncFailed {
        what: &'static str,
        addr: u32,
        attempts: u32,
        #[source]
        last: Box<UartError>,
    },
    #[error("unaligned access at {addr:#x}: addresses are 32-bit word aligned")]
    Unaligned { addr: u32 },
}

fn supported_list() -> String {
    SUPPORTED_BAUDS.iter().map(|(b, _)| b.to_string()).collect::<Vec<_>>().join(", ")
}

/// The termios constant of a baud rate.
pub fn baud_rate(baud: u32) -> Result<BaudRate, UartError> {
    SUPPORTED_BAUDS.iter().find(|(b, _)| *b == baud).map(|(_, r)| *r).ok_or(UartError::UnsupportedBaud { baud })
}

/// Parsed `uart:` device string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UartSpec {
    pub path: PathBuf,
    pub baud: u32,
    pub timeout: Duration,
    pub retries: u32,
}

impl UartSpec {
    /// Parse what follows `uart:`.
    pub fn parse(spec: &str) -> Result<UartSpec, UartError> {
        let bad = |reason: String| UartError::BadSpec { spec: spec.to_string(), reason };
        let mut parts = spec.split(',');
        let path = parts.next().unwrap_or("").trim();
        if path.is_empty() {
            return Err(bad("no serial port path".into()));
        }
        let mut s = UartSpec {
            path: PathBuf::from(path),
            baud: DEFAULT_BAUD,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
        };
        for opt in parts.filter(|p| !p.trim().is_empty()) {
            let (k, v) = opt.split_once('=').ok_or_else(|| bad(format!("option `{opt}` is not key=value")))?;
            let (k, v) = (k.trim(), v.trim());
            let num = || v.parse::<u32>().map_err(|_| bad(format!("`{v}` is not a number for `{k}`")));
            match k {
                "baud" => {
                    s.baud = num()?;
                    baud_rate(s.baud)?;
                }
                "timeout_ms" => {
                    let ms = num()?;
                    if ms == 0 {
                        return Err(bad("timeout_ms must be at least 1".into()));
                    }
                    s.timeout = Duration::from_millis(ms as u64);
                }
                "retries" => s.retries = num()?.min(100),
                _ => return Err(bad(format!("unknown option `{k}`; known options: baud, timeout_ms, retries"))),
            }
        }
        Ok(s)
    }
}

/// Open the port of a `uart:` device string (what follows `uart:`).
pub fn open_uart(spec: &str) -> Result<Uart, UartError> {
    let s = UartSpec::parse(spec)?;
    Uart::open(&s.path, s.baud).map(|u| u.with_timeout(s.timeout).with_retries(s.retries))
}

/// Put a tty in raw 8N1 mode at `baud`, receiver on, modem lines ignored, no flow control.
fn configure(fd: impl AsFd, baud: BaudRate) -> nix::Result<()> {
    let mut t = termios::tcgetattr(&fd)?;
    termios::cfmakeraw(&mut t);
    t.control_flags &= !(ControlFlags::CSTOPB | ControlFlags::PARENB | ControlFlags::CRTSCTS | ControlFlags::CSIZE);
    t.control_flags |= ControlFlags::CS8 | ControlFlags::CREAD | ControlFlags::CLOCAL;
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::cfsetspeed(&mut t, baud)?;
    termios::tcsetattr(&fd, SetArg::TCSANOW, &t)?;
    termios::tcflush(&fd, FlushArg::TCIOFLUSH)
}

/// Wait until `file` is readable or `timeout` passes; `Ok(false)` on timeout.
fn wait_readable(file: &File, timeout: Duration) -> io::Result<bool> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as u32;
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Read what is there after waiting up to `timeout`: `Ok(0)` on timeout.
fn read_some(file: &mut File, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
    if !wait_readable(file, timeout)? {
        return Ok(0);
    }
    match file.read(buf) {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// Counters of a [`Uart`], for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UartStats {
    /// Request frames sent (retries included).
    pub requests: u64,
    /// Exchanges that failed and were retried.
    pub retries: u64,
    /// Bytes discarded while resynchronising or skipped as garbage before a response.
    pub discarded: u64,
    /// Reads of ID sent before the session's first write (see the module docs).
    pub tag_syncs: u64,
}

/// A CREW board behind a serial port.
#[derive(Debug)]
pub struct Uart {
    file: File,
    path: PathBuf,
    baud: u32,
    timeout: Duration,
    retries: u32,
    stats: UartStats,
    /// Tag of the last transaction started.
    tag: u8,
    /// Whether a read succeeded since opening or the last failed access: then the board's
    /// remembered tag is one of ours, and the next tag differs from it.
    tag_synced: bool,
}

impl Uart {
    /// Open and configure the serial port at `path`.
    pub fn open(path: &Path, baud: u32) -> Result<Uart, UartError> {
        let rate = baud_rate(baud)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NOCTTY.bits())
            .open(path)
            .map_err(|source| {
                let path = path.to_path_buf();
                match source.kind() {
                    io::ErrorKind::NotFound => UartError::NotFound { path, source },
                    io::ErrorKind::PermissionDenied => UartError::PermissionDenied { path, source },
                    _ => UartError::Open { path, source },
                }
            })?;
        configure(&file, rate).map_err(|source| UartError::Configure { path: path.to_path_buf(), baud, source })?;
        Ok(Uart {
            file,
            path: path.to_path_buf(),
            baud,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            stats: UartStats::default(),
            tag: 0,
            tag_synced: false,
        })
    }

    /// Set the response timeout (beyond the line time of the response).
    pub fn with_timeout(mut self, timeout: Duration) -> Uart {
        self.timeout = timeout;
        self
    }

    /// Set how many times a failed exchange is retried.
    pub fn with_retries(mut self, retries: u32) -> Uart {
        self.retries = retries;
        self
    }

    /// The port's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line rate.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// Counters since opening.
    pub fn stats(&self) -> UartStats {
        self.stats
    }

    fn io(&self, source: io::Error) -> UartError {
        UartError::Io { path: self.path.clone(), source }
    }

    /// Line time of `bytes` bytes (10 bits each), doubled for slack.
    fn line_time(&self, bytes: usize) -> Duration {
        Duration::from_micros(2 * 10 * 1_000_000 * bytes as u64 / self.baud.max(1) as u64)
    }

    /// Discard input until the line has been quiet for [`QUIET`] (bounded by a few timeouts).
    fn resync(&mut self) -> Result<(), UartError> {
        let limit = Instant::now() + 4 * self.timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < limit {
            let n = read_some(&mut self.file, &mut buf, QUIET).map_err(|e| self.io(e))?;
            if n == 0 {
                break;
            }
            self.stats.discarded += n as u64;
        }
        termios::tcflush(&self.file, FlushArg::TCIFLUSH).map_err(|e| self.io(e.into()))
    }

    /// One exchange: send the frame, wait for one response. `Ok(None)`: nothing came back.
    fn exchange(
        &mut self,
        req: &Request,
        tag: u8,
        frame: &[u8],
    ) -> Result<Option<Result<Vec<u32>, UartError>>, UartError> {
        let (what, addr) = (what(req), req.addr());
        self.stats.requests += 1;
        self.file.write_all(frame).map_err(|e| self.io(e))?;
        let expect = Response::ok(req.cmd(), tag, vec![0; req.response_words()]).encoded_len();
        let deadline = Instant::now() + self.timeout + self.line_time(frame.len() + expect);
        let mut buf: Vec<u8> = Vec::with_capacity(MAX_RESPONSE_LEN);
        let mut chunk = [0u8; 2048];
        let mut heard = false;
        let mut bad_header = None;
        loop {
            match decode_response(&buf) {
                Decoded::Frame { frame: resp, skipped, .. } => {
                    self.stats.discarded += skipped as u64;
                    return Ok(Some(check_response(req, tag, resp)));
                }
                // A corrupt header, or a stray sync byte in noise: the response may still follow.
                Decoded::Rejected { reason: reason @ Reject::HeaderCrc, consumed, .. } => {
                    buf.drain(..consumed);
                    self.stats.discarded += consumed as u64;
                    bad_header = Some(reason);
                    continue;
                }
                Decoded::Rejected { reason, .. } => {
                    return Ok(Some(Err(UartError::BadChecksum { what, addr, reason })));
                }
                Decoded::Incomplete { skip } => {
                    if skip > 0 {
                        buf.drain(..skip);
                        self.stats.discarded += skip as u64;
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(match (heard, bad_header) {
                    (false, _) => None,
                    (true, Some(reason)) => Some(Err(UartError::BadChecksum { what, addr, reason })),
                    (true, None) => Some(Err(UartError::Unexpected {
                        what,
                        addr,
                        reason: format!("incomplete or no response frame ({} bytes pending)", buf.len()),
                    })),
                });
            }
            let n = read_some(&mut self.file, &mut chunk, deadline - now).map_err(|e| self.io(e))?;
            heard |= n > 0;
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A request with retries; returns the words read (empty for writes).
    pub fn transact(&mut self, req: &Request) -> Result<Vec<u32>, UartError> {
        if !req.addr().is_multiple_of(4) {
            return Err(UartError::Unaligned { addr: req.addr() });
        }
        if cmd::has_request_data(req.cmd()) && !self.tag_synced {
            self.stats.tag_syncs += 1;
            self.transact_once(&Request::Read { addr: regs::ID })?;
        }
        self.transact_once(req)
    }

    /// One transaction under a new tag, retried under the same tag.
    fn transact_once(&mut self, req: &Request) -> Result<Vec<u32>, UartError> {
        let (what, addr) = (what(req), req.addr());
        self.tag = self.tag.wrapping_add(1);
        let tag = self.tag;
        let frame =
            encode_request(req, tag).map_err(|e| UartError::Unexpected { what, addr, reason: e.to_string() })?;
        let started = Instant::now();
        let mut last = None;
        let mut heard = false;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                self.stats.retries += 1;
                self.resync()?;
            }
            match self.exchange(req, tag, &frame)? {
                Some(Ok(words)) => {
                    self.tag_synced |= !cmd::has_request_data(req.cmd());
                    return Ok(words);
                }
                Some(Err(e)) => {
                    heard = true;
                    last = Some(e);
                }
                None => {}
            }
        }
        // The board may have performed none of this transaction's attempts: read before the next
        // write, so that the tags this one used up can never meet the board's remembered tag.
        self.tag_synced = false;
        match last {
            Some(e) if heard => {
                Err(UartError::ResyncFailed { what, addr, attempts: self.retries + 1, last: Box::new(e) })
            }
            _ => Err(UartError::Timeout { what, addr, waited: started.elapsed() }),
        }
    }
}

fn what(req: &Request) -> &'static str {
    match req {
        Request::Read { .. } => "a read",
        Request::Write { .. } => "a write",
        Request::ReadBurst { .. } => "a burst read",
        Request::WriteBurst { .. } => "a burst write",
    }
}

fn check_response(req: &Request, tag: u8, resp: Response) -> Result<Vec<u32>, UartError> {
    let (what, addr) = (what(req), req.addr());
    if resp.status != Status::Ok {
        return Err(UartError::Board { what, addr, status: resp.status });
    }
    if resp.cmd != req.cmd() {
        return Err(UartError::Unexpected {
            what,
            addr,
            reason: format!("response is for command {:#04x}, not {:#04x}", resp.cmd, req.cmd()),
        });
    }
    if resp.tag != tag {
        // A late response to an earlier transaction.
        return Err(UartError::Unexpected {
            what,
            addr,
            reason: format!("response carries tag {:#04x}, not {tag:#04x}", resp.tag),
        });
    }
    if resp.data.len() != req.response_words() {
        return Err(UartError::Unexpected {
            what,
            addr,
            reason: format!("{} words returned, {} expected", resp.data.len(), req.response_words()),
        });
    }
    Ok(resp.data)
}

impl Transport for Uart {
    type Error = UartError;

    fn read32(&mut self, addr: u32) -> Result<u32, UartError> {
        let w = self.transact(&Request::Read { addr })?;
        Ok(w.first().copied().unwrap_or(0))
    }

    fn write32(&mut self, addr: u32, value: u32) -> Result<(), UartError> {
        self.transact(&Request::Write { addr, value }).map(|_| ())
    }

    fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), UartError> {
        for (k, chunk) in out.chunks_mut(MAX_BURST).enumerate() {
            let a = addr.wrapping_add((4 * MAX_BURST * k) as u32);
            let words = self.transact(&Request::ReadBurst { addr: a, count: chunk.len() as u16 })?;
            chunk.copy_from_slice(&words);
        }
        Ok(())
    }

    fn write_burst(&mut self, addr: u32, data: &[u32]) -> Result<(), UartError> {
        for (k, chunk) in data.chunks(MAX_BURST).enumerate() {
            let a = addr.wrapping_add((4 * MAX_BURST * k) as u32);
            self.transact(&Request::WriteBurst { addr: a, data: chunk.to_vec() })?;
        }
        Ok(())
    }
}

/// What [`serve_emulated_board`] does to each response before sending it: called with the
/// response's index (from 0), the request it answers (`None` for a rejected frame) and its bytes,
/// which it may change, extend or clear (to stay silent).
pub type Tamper = Box<dyn FnMut(u64, Option<&TaggedRequest>, &mut Vec<u8>) + Send>;

/// Options of [`serve_emulated_board`].
pub struct ServeOptions {
    /// Stop after this long without receiving a byte.
    pub idle_timeout: Duration,
    /// Stop when this turns true (checked at least every 10 ms).
    pub stop: Option<Arc<AtomicBool>>,
    /// Fault injection on the responses.
    pub tamper: Option<Tamper>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { idle_timeout: Duration::from_secs(5), stop: None, tamper: None }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("idle_timeout", &self.idle_timeout)
            .field("stop", &self.stop)
            .field("tamper", &self.tamper.is_some())
            .finish()
    }
}

/// What a [`serve_emulated_board`] session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Requests served.
    pub served: u64,
    /// Frames rejected (answered with an error status).
    pub rejected: u64,
    /// Retried writes acknowledged again without being performed (counted in `served`).
    pub duplicates: u64,
    /// Bytes received.
    pub bytes_in: u64,
}

/// Answer one request from `dev`, as the RTL bridge does: a write that `dedup` finds to be a
/// retry is acknowledged without being performed. Returns the response and whether the request
/// was performed.
pub fn serve_request(dev: &mut EmuDevice, dedup: &mut Dedup, r: &TaggedRequest) -> (Response, bool) {
    let (req, tag) = (&r.req, r.tag);
    if !dedup.admit(r) {
        return (Response::ok(req.cmd(), tag, Vec::new()), false);
    }
    let resp = match req {
        Request::Read { addr } => Response::ok(req.cmd(), tag, vec![dev.read(*addr)]),
        Request::Write { addr, value } => {
            dev.write(*addr, *value);
            Response::ok(req.cmd(), tag, Vec::new())
        }
        Request::ReadBurst { addr, count } => {
            let mut out = vec![0u32; *count as usize];
            dev.read_burst(*addr, &mut out);
            Response::ok(req.cmd(), tag, out)
        }
        Request::WriteBurst { addr, data } => {
            dev.write_burst(*addr, data);
            Response::ok(req.cmd(), tag, Vec::new())
        }
    };
    (resp, true)
}

/// Serve the bridge protocol from an emulated device over `port` (for example a pseudo-terminal
/// master) until the peer hangs up, `opts.stop` is set or nothing arrives for
/// `opts.idle_timeout`. Returns the device and what was done.
pub fn serve_emulated_board(
    port: OwnedFd,
    mut dev: EmuDevice,
    mut opts: ServeOptions,
) -> io::Result<(EmuDevice, ServeStats)> {
    let mut file = File::from(port);
    let mut dec = RequestDecoder::new();
    let mut dedup = Dedup::new();
    let mut stats = ServeStats::default();
    let mut chunk = [0u8; 4096];
    let mut idle_since = Instant::now();
    let mut index = 0u64;
    loop {
        if opts.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) || idle_since.elapsed() >= opts.idle_timeout {
            return Ok((dev, stats));
        }
        let n = match read_some(&mut file, &mut chunk, Duration::from_millis(10)) {
            Ok(n) => n,
            // A pseudo-terminal master reads EIO once the last slave descriptor is closed.
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => return Ok((dev, stats)),
            Err(e) => return Err(e),
        };
        if n == 0 {
            continue;
        }
        idle_since = Instant::now();
        stats.bytes_in += n as u64;
        dec.feed(&chunk[..n]);
        while let Some(r) = dec.next_frame() {
            let (resp, req) = match r {
                Ok(req) => {
                    stats.served += 1;
                    let (resp, performed) = serve_request(&mut dev, &mut dedup, &req);
                    stats.duplicates += u64::from(!performed);
                    (resp, Some(req))
                }
                Err(resp) => {
                    stats.rejected += 1;
                    (resp, None)
                }
            };
            let mut bytes = encode_response(&resp).map_err(io::Error::other)?;
            if let Some(t) = opts.tamper.as_mut() {
                t(index, req.as_ref(), &mut bytes);
            }
            index += 1;
            file.write_all(&bytes)?;
        }
    }
}
