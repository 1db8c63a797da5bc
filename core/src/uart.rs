//! The UART host link: a small framed protocol for the 32-bit register bus, defined once.
//!
//! The driver's `uart:` transport, the emulated-board server behind a pseudo-terminal and the RTL
//! bridge's testbench all encode and decode frames with this module (pure functions, no I/O).
//! `docs/uart.md` is the prose version.
//!
//! # Frames
//!
//! Multi-byte fields: address and data little-endian; CRCs big-endian (high byte first), so that
//! the CRC run over a field *and* its CRC is 0 (the RTL checks exactly that).
//!
//! Request (host to board):
//!
//! ```text
//! 0xA5 | CMD | TAG | LEN | ADDR[4] | HCRC[2]  [ | DATA[4 * (LEN + 1)] | DCRC[2] ]   (write commands only)
//! ```
//!
//! Response (board to host):
//!
//! ```text
//! 0x5A | STATUS | CMD | TAG | LEN | HCRC[2]  [ | DATA[4 * (LEN + 1)] | DCRC[2] ]   (STATUS = OK, read commands only)
//! ```
//!
//! Byte offsets of the header fields: [`req_at`], [`resp_at`] (the RTL bridge takes them from there).
//!
//! * `CMD`: [`cmd::READ`], [`cmd::WRITE`], [`cmd::READ_BURST`], [`cmd::WRITE_BURST`]; a response
//!   echoes it (0 when the request header itself was corrupt).
//! * `TAG`: the transaction's sequence tag (see below); a response echoes it (0 when the request
//!   header was corrupt).
//! * `LEN`: words - 1 (a burst moves 1..=[`MAX_BURST`] words); single-word commands carry 0.
//! * `HCRC` covers the header from the sync byte on; `DCRC` covers the data alone. Checking the
//!   header on its own means that a corrupted `LEN` is caught before any data is consumed.
//! * Bursts move consecutive words: `ADDR`, `ADDR + 4`, ... (wrapping at 2^32).
//!
//! # Checksum: CRC-16/CCITT-FALSE
//!
//! Polynomial 0x1021, init 0xFFFF, not reflected, no final xor. A frame's data field is up to
//! 1024 bytes (8192 bits): 0x1021 keeps Hamming distance 4 up to 32751 bits, so every error of
//! 1, 2 or 3 bits, every odd number of bit errors and every burst of up to 16 bits is detected,
//! others with probability 1 - 2^-16. No 8-bit CRC has distance 3 beyond a few hundred bits, so
//! CRC-8 would miss two-bit errors in a long burst. The cost is one byte per check.
//!
//! # Errors and resynchronisation
//!
//! A receiver hunts for the sync byte, reads the header and checks `HCRC`: on a mismatch it
//! answers [`Status::BadChecksum`] (with `CMD` 0), drops the sync byte and hunts again (the
//! software decoder rescans from the byte after the sync; the RTL bridge from the next byte
//! received). A header with a good CRC but an unknown command or a nonzero `LEN` on a
//! single-word command is answered [`Status::BadFrame`]. A write whose `DCRC` fails is answered
//! [`Status::BadChecksum`] and **not performed**. The host, on any error or timeout, waits for the
//! line to go quiet, discards what it received and sends the request again (a bounded number of
//! times).
//!
//! # Sequence tags: a retried write runs once
//!
//! A retry after a lost *response* would repeat a write the board already performed, and a write
//! to `CTRL` with a pulse bit (`START`) must not run twice. So the host gives each new transaction
//! the next tag (mod 256) and a retry the same tag. The board remembers the tag of the last request
//! it performed ([`Dedup`]); a write whose tag equals it is a retry, and is acknowledged again
//! without touching the bus. Reads are always performed (they have no side effect) and also set
//! the remembered tag, so a host that starts a session with a read can never have its first write
//! mistaken for a retry of the previous session's last one. A frame rejected for a bad checksum
//! or as malformed was not performed and leaves the remembered tag alone.

/// Protocol version: 2 added the `TAG` byte to both headers (version 1 frames had none). A host
/// and a bridge of different versions cannot talk (every header fails its CRC).
pub const PROTOCOL_VERSION: u8 = 2;
/// First byte of every request.
pub const REQ_SYNC: u8 = 0xA5;
/// First byte of every response (distinct from [`REQ_SYNC`], so an echoing line is noticed).
pub const RESP_SYNC: u8 = 0x5A;
/// Most words one burst moves.
pub const MAX_BURST: usize = 256;
/// Request header bytes, CRC included.
pub const REQ_HEADER_LEN: usize = 10;
/// Response header bytes, CRC included.
pub const RESP_HEADER_LEN: usize = 7;

/// Byte offsets in a request header.
pub mod req_at {
    pub const SYNC: usize = 0;
    pub const CMD: usize = 1;
    pub const TAG: usize = 2;
    pub const LEN: usize = 3;
    /// First of the four address bytes (little-endian).
    pub const ADDR: usize = 4;
    /// First of the two HCRC bytes (high byte first).
    pub const HCRC: usize = 8;
}

/// Byte offsets in a response header.
pub mod resp_at {
    pub const SYNC: usize = 0;
    pub const STATUS: usize = 1;
    pub const CMD: usize = 2;
    pub const TAG: usize = 3;
    pub const LEN: usize = 4;
    /// First of the two HCRC bytes (high byte first).
    pub const HCRC: usize = 5;
}

const _: () = assert!(req_at::HCRC + CRC_LEN == REQ_HEADER_LEN && resp_at::HCRC + CRC_LEN == RESP_HEADER_LEN);
/// Bytes of a data CRC.
pub const CRC_LEN: usize = 2;
/// Longest request frame: a full write burst.
pub const MAX_REQUEST_LEN: usize = REQ_HEADER_LEN + 4 * MAX_BURST + CRC_LEN;
/// Longest response frame: a full read burst.
pub const MAX_RESPONSE_LEN: usize = RESP_HEADER_LEN + 4 * MAX_BURST + CRC_LEN;
/// Default line rate: the FT231X's maximum (8N1: 300 000 bytes/s).
pub const DEFAULT_BAUD: u32 = 3_000_000;
/// Largest baud-rate mismatch [`clocks_per_bit`] accepts, in percent (8N1 with mid-bit sampling
/// tolerates about 4.5 % in total between both ends; half of it is left for the other end).
pub const MAX_BAUD_ERROR_PERCENT: f64 = 2.0;

/// Command codes.
pub mod cmd {
    /// Read one word.
    pub const READ: u8 = 0x01;
    /// Write one word.
    pub const WRITE: u8 = 0x02;
    /// Read `LEN + 1` consecutive words.
    pub const READ_BURST: u8 = 0x03;
    /// Write `LEN + 1` consecutive words.
    pub const WRITE_BURST: u8 = 0x04;

    /// Whether `c` is a known command.
    pub fn is_known(c: u8) -> bool {
        (READ..=WRITE_BURST).contains(&c)
    }
    /// Whether a request with command `c` carries data.
    pub fn has_request_data(c: u8) -> bool {
        c == WRITE || c == WRITE_BURST
    }
    /// Whether an OK response to command `c` carries data.
    pub fn has_response_data(c: u8) -> bool {
        c == READ || c == READ_BURST
    }
    /// Whether `c` moves one word (its `LEN` must be 0).
    pub fn is_single(c: u8) -> bool {
        c == READ || c == WRITE
    }
}

/// CRC-16/CCITT-FALSE parameters.
pub const CRC16_POLY: u16 = 0x1021;
/// CRC-16/CCITT-FALSE initial value.
pub const CRC16_INIT: u16 = 0xFFFF;

/// One byte into a CRC-16/CCITT-FALSE (MSB first, as the RTL does it bit by bit).
pub fn crc16_update(mut crc: u16, byte: u8) -> u16 {
    crc ^= (byte as u16) << 8;
    for _ in 0..8 {
        crc = if crc & 0x8000 != 0 { (crc << 1) ^ CRC16_POLY } else { crc << 1 };
    }
    crc
}

/// CRC-16/CCITT-FALSE of `data` (check value of `b"123456789"`: 0x29B1).
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(CRC16_INIT, |c, &b| crc16_update(c, b))
}

/// Response status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Done; a read response carries the data.
    Ok = 0,
    /// The request's header or data CRC did not match; nothing was done.
    BadChecksum = 1,
    /// The header was intact but not a valid request (unknown command, bad length).
    BadFrame = 2,
}

impl Status {
    /// The status of a status byte.
    pub fn from_byte(b: u8) -> Option<Status> {
        match b {
            0 => Some(Status::Ok),
            1 => Some(Status::BadChecksum),
            2 => Some(Status::BadFrame),
            _ => None,
        }
    }

    /// What the status means, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::BadChecksum => "the board saw a bad checksum in the request",
            Status::BadFrame => "the board saw a malformed request (unknown command or length)",
        }
    }
}

/// A register-bus request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Read {
        addr: u32,
    },
    Write {
        addr: u32,
        value: u32,
    },
    /// `count` words, 1..=[`MAX_BURST`].
    ReadBurst {
        addr: u32,
        count: u16,
    },
    /// 1..=[`MAX_BURST`] words.
    WriteBurst {
        addr: u32,
        data: Vec<u32>,
    },
}

impl Request {
    /// The command byte.
    pub fn cmd(&self) -> u8 {
        match self {
            Request::Read { .. } => cmd::READ,
            Request::Write { .. } => cmd::WRITE,
            Request::ReadBurst { .. } => cmd::READ_BURST,
            Request::WriteBurst { .. } => cmd::WRITE_BURST,
        }
    }

    /// The (first) address.
    pub fn addr(&self) -> u32 {
        match *self {
            Request::Read { addr }
            | Request::Write { addr, .. }
            | Request::ReadBurst { addr, .. }
            | Request::WriteBurst { addr, .. } => addr,
        }
    }

    /// Words the request moves.
    pub fn words(&self) -> usize {
        match self {
            Request::Read { .. } | Request::Write { .. } => 1,
            Request::ReadBurst { count, .. } => *count as usize,
            Request::WriteBurst { data, .. } => data.len(),
        }
    }

    /// Words of data in the OK response.
    pub fn response_words(&self) -> usize {
        if cmd::has_response_data(self.cmd()) {
            self.words()
        } else {
            0
        }
    }

    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        REQ_HEADER_LEN + if cmd::has_request_data(self.cmd()) { 4 * self.words() + CRC_LEN } else { 0 }
    }
}

/// A request as on the wire: the operation and its sequence tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedRequest {
    pub tag: u8,
    pub req: Request,
}

/// The board side's duplicate filter: the tag of the last request performed. The RTL bridge keeps
/// the same state and applies the same rule (`hw/src/uart_bridge.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dedup {
    last: Option<u8>,
}

impl Dedup {
    pub fn new() -> Dedup {
        Dedup::default()
    }

    /// The tag of the last request performed (`None` after reset).
    pub fn last(&self) -> Option<u8> {
        self.last
    }

    /// Whether an intact request must be performed: every read, and a write unless its tag is
    /// that of the last request performed (then it is a retry of it, to acknowledge again).
    /// Records the tag either way.
    pub fn admit(&mut self, r: &TaggedRequest) -> bool {
        let retry = cmd::has_request_data(r.req.cmd()) && self.last == Some(r.tag);
        self.last = Some(r.tag);
        !retry
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    /// The request's command (0 when the request header was corrupt).
    pub cmd: u8,
    /// The request's tag (0 when the request header was corrupt).
    pub tag: u8,
    /// `LEN` as sent: words - 1 of an OK read, else 0.
    pub len: u8,
    /// The words read (OK read responses only).
    pub data: Vec<u32>,
}

impl Response {
    /// The OK response to a write (`data` empty) or a read (`data`: the words read).
    pub fn ok(cmd: u8, tag: u8, data: Vec<u32>) -> Response {
        let len = data.len().saturating_sub(1).min(255) as u8;
        Response { status: Status::Ok, cmd, tag, len, data }
    }

    /// An error response.
    pub fn error(status: Status, cmd: u8, tag: u8) -> Response {
        Response { status, cmd, tag, len: 0, data: Vec::new() }
    }

    /// Whether the response carries data on the wire.
    pub fn has_data(&self) -> bool {
        self.status == Status::Ok && cmd::has_response_data(self.cmd)
    }

    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        RESP_HEADER_LEN + if self.has_data() { 4 * (self.len as usize + 1) + CRC_LEN } else { 0 }
    }
}

/// A request or response that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a burst moves 1..={MAX_BURST} words, not {words}")]
    BadCount { words: usize },
    #[error("response to command {cmd:#04x} carries {words} words; expected {expected}")]
    BadData { cmd: u8, words: usize, expected: String },
}

fn burst_len(words: usize) -> Result<u8, FrameError> {
    if (1..=MAX_BURST).contains(&words) {
        Ok((words - 1) as u8)
    } else {
        Err(FrameError::BadCount { words })
    }
}

fn push_data(out: &mut Vec<u8>, data: &[u32]) {
    let start = out.len();
    for w in data {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let crc = crc16(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Append the frame of `req` with sequence tag `tag` to `out`.
pub fn encode_request_into(req: &Request, tag: u8, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = match req {
        Request::Read { .. } | Request::Write { .. } => 0,
        Request::ReadBurst { count, .. } => burst_len(*count as usize)?,
        Request::WriteBurst { data, .. } => burst_len(data.len())?,
    };
    let start = out.len();
    out.push(REQ_SYNC);
    out.push(req.cmd());
    out.push(tag);
    out.push(len);
    out.extend_from_slice(&req.addr().to_le_bytes());
    let crc = crc16(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    match req {
        Request::Write { value, .. } => push_data(out, &[*value]),
        Request::WriteBurst { data, .. } => push_data(out, data),
        _ => {}
    }
    Ok(())
}

/// The frame of `req` with sequence tag `tag`.
pub fn encode_request(req: &Request, tag: u8) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(req.encoded_len());
    encode_request_into(req, tag, &mut out)?;
    Ok(out)
}

/// The frame of `resp`. An OK read response must carry 1..=[`MAX_BURST`] words (exactly 1 for
/// [`cmd::READ`]), any other response none.
pub fn encode_response(resp: &Response) -> Result<Vec<u8>, FrameError> {
    let words = resp.data.len();
    let len = if resp.has_data() {
        if resp.cmd == cmd::READ && words != 1 {
            return Err(FrameError::BadData { cmd: resp.cmd, words, expected: "1".into() });
        }
        burst_len(words)?
    } else {
        if words != 0 {
            return Err(FrameError::BadData { cmd: resp.cmd, words, expected: "0".into() });
        }
        0
    };
    let mut out = Vec::with_capacity(RESP_HEADER_LEN + 4 * words + CRC_LEN);
    out.extend_from_slice(&[RESP_SYNC, resp.status as u8, resp.cmd, resp.tag, len]);
    let crc = crc16(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    if resp.has_data() {
        push_data(&mut out, &resp.data);
    }
    Ok(out)
}

/// The response a correct board gives to `req` sent with `tag`: OK, with `read_data` for reads.
pub fn expected_response(req: &Request, tag: u8, read_data: Vec<u32>) -> Response {
    Response::ok(req.cmd(), tag, if cmd::has_response_data(req.cmd()) { read_data } else { Vec::new() })
}

/// Why a frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("header checksum mismatch")]
    HeaderCrc,
    #[error("data checksum mismatch")]
    DataCrc,
    #[error("unknown command {cmd:#04x}")]
    UnknownCommand { cmd: u8 },
    #[error("length {len} on single-word command {cmd:#04x} (must be 0)")]
    BadLength { cmd: u8, len: u8 },
    #[error("unknown status {status:#04x}")]
    UnknownStatus { status: u8 },
}

impl Reject {
    /// The status a board answers a request rejected for this reason with.
    pub fn status(self) -> Status {
        match self {
            Reject::HeaderCrc | Reject::DataCrc => Status::BadChecksum,
            Reject::UnknownCommand { .. } | Reject::BadLength { .. } | Reject::UnknownStatus { .. } => Status::BadFrame,
        }
    }
}

/// What one decoding step found at the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// A good frame after `skipped` bytes of garbage; drop `consumed` bytes (garbage included).
    Frame { frame: T, skipped: usize, consumed: usize },
    /// A frame failed a check after `skipped` bytes of garbage: drop `consumed` bytes (for a bad
    /// header only the sync byte, so the bytes after it are searched again). `cmd` and `tag` are
    /// the command and tag to echo (0 when the header was not intact).
    Rejected { reason: Reject, cmd: u8, tag: u8, skipped: usize, consumed: usize },
    /// More bytes are needed. The first `skip` bytes hold no sync byte and can be dropped.
    Incomplete { skip: usize },
}

impl<T> Decoded<T> {
    /// Bytes to drop from the front of the buffer after this step.
    pub fn consumed(&self) -> usize {
        match self {
            Decoded::Frame { consumed, .. } | Decoded::Rejected { consumed, .. } => *consumed,
            Decoded::Incomplete { skip } => *skip,
        }
    }
}

fn check(bytes: &[u8]) -> bool {
    crc16(bytes) == 0
}

fn words_of(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The data field (and its CRC) of `words` words at `buf[at..]`; `None` if incomplete,
/// `Some(Err)` if the CRC fails.
fn data_field(buf: &[u8], at: usize, words: usize) -> Option<Result<Vec<u32>, ()>> {
    let field = buf.get(at..at + 4 * words + CRC_LEN)?;
    if check(field) {
        Some(Ok(words_of(&field[..4 * words])))
    } else {
        Some(Err(()))
    }
}

/// Decode the request at the front of `buf` (never panics, whatever the bytes).
pub fn decode_request(buf: &[u8]) -> Decoded<TaggedRequest> {
    let Some(s) = buf.iter().position(|&b| b == REQ_SYNC) else {
        return Decoded::Incomplete { skip: buf.len() };
    };
    let f = &buf[s..];
    let Some(h) = f.get(..REQ_HEADER_LEN) else {
        return Decoded::Incomplete { skip: s };
    };
    let reject =
        |reason, cmd, tag, consumed| Decoded::Rejected { reason, cmd, tag, skipped: s, consumed: s + consumed };
    if !check(h) {
        return reject(Reject::HeaderCrc, 0, 0, 1);
    }
    let (c, tag, len) = (h[req_at::CMD], h[req_at::TAG], h[req_at::LEN]);
    let a = req_at::ADDR;
    let addr = u32::from_le_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
    if !cmd::is_known(c) {
        return reject(Reject::UnknownCommand { cmd: c }, c, tag, REQ_HEADER_LEN);
    }
    if cmd::is_single(c) && len != 0 {
        return reject(Reject::BadLength { cmd: c, len }, c, tag, REQ_HEADER_LEN);
    }
    let words = len as usize + 1;
    let (frame, used) = match c {
        cmd::READ => (Request::Read { addr }, REQ_HEADER_LEN),
        cmd::READ_BURST => (Request::ReadBurst { addr, count: words as u16 }, REQ_HEADER_LEN),
        _ => {
            let used = REQ_HEADER_LEN + 4 * words + CRC_LEN;
            match data_field(f, REQ_HEADER_LEN, words) {
                None => return Decoded::Incomplete { skip: s },
                Some(Err(())) => return reject(Reject::DataCrc, c, tag, used),
                Some(Ok(data)) if c == cmd::WRITE => (Request::Write { addr, value: data[0] }, used),
                Some(Ok(data)) => (Request::WriteBurst { addr, data }, used),
            }
        }
    };
    Decoded::Frame { frame: TaggedRequest { tag, req: frame }, skipped: s, consumed: s + used }
}

/// Decode the response at the front of `buf` (never panics, whatever the bytes).
pub fn decode_response(buf: &[u8]) -> Decoded<Response> {
    let Some(s) = buf.iter().position(|&b| b == RESP_SYNC) else {
        return Decoded::Incomplete { skip: buf.len() };
    };
    let f = &buf[s..];
    let Some(h) = f.get(..RESP_HEADER_LEN) else {
        return Decoded::Incomplete { skip: s };
    };
    let reject =
        |reason, cmd, tag, consumed| Decoded::Rejected { reason, cmd, tag, skipped: s, consumed: s + consumed };
    if !check(h) {
        return reject(Reject::HeaderCrc, 0, 0, 1);
    }
    let (st, c, tag, len) = (h[resp_at::STATUS], h[resp_at::CMD], h[resp_at::TAG], h[resp_at::LEN]);
    let Some(status) = Status::from_byte(st) else {
        return reject(Reject::UnknownStatus { status: st }, c, tag, RESP_HEADER_LEN);
    };
    let mut resp = Response { status, cmd: c, tag, len, data: Vec::new() };
    if !resp.has_data() {
        return Decoded::Frame { frame: resp, skipped: s, consumed: s + RESP_HEADER_LEN };
    }
    if c == cmd::READ && len != 0 {
        return reject(Reject::BadLength { cmd: c, len }, c, tag, RESP_HEADER_LEN);
    }
    let words = len as usize + 1;
    let used = RESP_HEADER_LEN + 4 * words + CRC_LEN;
    match data_field(f, RESP_HEADER_LEN, words) {
        None => Decoded::Incomplete { skip: s },
        Some(Err(())) => reject(Reject::DataCrc, c, tag, used),
        Some(Ok(data)) => {
            resp.data = data;
            Decoded::Frame { frame: resp, skipped: s, consumed: s + used }
        }
    }
}

/// A streaming request decoder for a board (or its emulation): feed it bytes as they arrive,
/// take out requests and rejections. Its buffer never holds more than one frame's bytes beyond
/// what was fed since the last [`RequestDecoder::next_frame`].
#[derive(Debug, Default, Clone)]
pub struct RequestDecoder {
    buf: Vec<u8>,
}

impl RequestDecoder {
    pub fn new() -> RequestDecoder {
        RequestDecoder::default()
    }

    /// Append received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held (a partial frame, or bytes not yet examined).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next decoded request (`Ok`) or rejected frame (`Err`, with the response to send),
    /// or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<TaggedRequest, Response>> {
        let d = decode_request(&self.buf);
        self.buf.drain(..d.consumed().min(self.buf.len()));
        match d {
            Decoded::Frame { frame, .. } => Some(Ok(frame)),
            Decoded::Rejected { reason, cmd, tag, .. } => Some(Err(Response::error(reason.status(), cmd, tag))),
            Decoded::Incomplete { .. } => None,
        }
    }
}

/// The line rate a divisor gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Divisor {
    /// Clock cycles per bit (the RTL bridge's parameter).
    pub clocks_per_bit: u32,
    /// The baud rate it gives.
    pub actual_baud: f64,
    /// Its error against the asked rate, in percent (signed).
    pub error_percent: f64,
}

/// A baud rate no divisor of the clock reaches closely enough.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{baud} baud from a {clock_hz} Hz clock: the nearest divisor {clocks_per_bit} gives {actual:.0} baud \
     ({error:+.2} %, limit ±{MAX_BAUD_ERROR_PERCENT} %); use a clock that is a multiple of the rate"
)]
pub struct BaudError {
    pub clock_hz: u32,
    pub baud: u32,
    pub clocks_per_bit: u32,
    pub actual: f64,
    pub error: f64,
}

/// The RTL bridge's divisor for `baud` from a `clock_hz` clock: the nearest integer number of
/// clocks per bit (at least 4, so the receiver can sample mid-bit), refused when the rate is off
/// by more than [`MAX_BAUD_ERROR_PERCENT`]. 75 MHz / 25 = 3 Mbaud exactly; 25 MHz / 8 = 3.125
/// Mbaud is 4.2 % off and refused (25 MHz reaches 1 Mbaud exactly, divisor 25).
pub fn clocks_per_bit(clock_hz: u32, baud: u32) -> Result<Divisor, BaudError> {
    let d = if baud == 0 { 0 } else { ((clock_hz as u64 + baud as u64 / 2) / baud as u64) as u32 };
    let d = d.max(4);
    let actual = clock_hz as f64 / d as f64;
    let error = if baud == 0 { f64::INFINITY } else { (actual / baud as f64 - 1.0) * 100.0 };
    if error.abs() > MAX_BAUD_ERROR_PERCENT {
        return Err(BaudError { clock_hz, baud, clocks_per_bit: d, actual, error });
    }
    Ok(Divisor { clocks_per_bit: d, actual_baud: actual, error_percent: error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc16_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
        let mut v = b"123456789".to_vec();
        v.extend_from_slice(&0x29B1u16.to_be_bytes());
        assert_eq!(crc16(&v), 0, "a field followed by its big-endian CRC checks to 0");
    }

    #[test]
    fn known_frames() {
        let f = encode_request(&Request::Read { addr: 0x48 }, 0x3C).unwrap();
        assert_eq!(&f[..8], &[0xA5, 0x01, 0x3C, 0x00, 0x48, 0, 0, 0]);
        assert_eq!(f.len(), REQ_HEADER_LEN);
        let f = encode_request(&Request::Write { addr: 0x48, value: 0xDEAD_BEEF }, 7).unwrap();
        assert_eq!(f.len(), REQ_HEADER_LEN + 4 + CRC_LEN);
        assert_eq!(f[req_at::TAG], 7);
        assert_eq!(&f[10..14], &[0xEF, 0xBE, 0xAD, 0xDE]);
        let r = encode_response(&Response::ok(cmd::READ, 0x3C, vec![7])).unwrap();
        assert_eq!(&r[..5], &[0x5A, 0, 1, 0x3C, 0]);
        assert_eq!(r.len(), RESP_HEADER_LEN + 4 + CRC_LEN);
        let r = encode_response(&Response::error(Status::BadChecksum, 0, 0)).unwrap();
        assert_eq!(r.len(), RESP_HEADER_LEN);
    }

    #[test]
    fn encoder_refuses_bad_counts() {
        assert_eq!(
            encode_request(&Request::ReadBurst { addr: 0, count: 0 }, 0),
            Err(FrameError::BadCount { words: 0 })
        );
        assert_eq!(
            encode_request(&Request::WriteBurst { addr: 0, data: vec![0; 257] }, 0),
            Err(FrameError::BadCount { words: 257 })
        );
        assert!(encode_response(&Response::ok(cmd::READ, 0, vec![1, 2])).is_err());
        assert!(encode_response(&Response::ok(cmd::WRITE, 0, vec![1])).is_err());
        assert!(encode_response(&Response::ok(cmd::READ_BURST, 0, vec![0; 257])).is_err());
    }

    #[test]
    fn intact_headers_that_are_not_requests_are_bad_frames() {
        let mut h = vec![REQ_SYNC, 0x07, 9, 0, 0, 0, 0, 0];
        h.extend_from_slice(&crc16(&h).to_be_bytes());
        let d = decode_request(&h);
        assert_eq!(
            d,
            Decoded::Rejected { reason: Reject::UnknownCommand { cmd: 7 }, cmd: 7, tag: 9, skipped: 0, consumed: 10 }
        );
        let mut h = vec![REQ_SYNC, cmd::READ, 0, 3, 0, 0, 0, 0];
        h.extend_from_slice(&crc16(&h).to_be_bytes());
        match decode_request(&h) {
            Decoded::Rejected { reason, .. } => assert_eq!(reason.status(), Status::BadFrame),
            d => panic!("expected a rejection, got {d:?}"),
        }
    }

    #[test]
    fn bad_write_data_is_a_bad_checksum_and_the_whole_frame_is_dropped() {
        let mut f = encode_request(&Request::WriteBurst { addr: 0x10_0000, data: vec![1, 2, 3] }, 4).unwrap();
        f[13] ^= 0x40;
        let d = decode_request(&f);
        assert_eq!(
            d,
            Decoded::Rejected { reason: Reject::DataCrc, cmd: cmd::WRITE_BURST, tag: 4, skipped: 0, consumed: f.len() }
        );
    }

    #[test]
    fn streaming_decoder_answers_and_resynchronises() {
        let mut dec = RequestDecoder::new();
        let good = encode_request(&Request::Write { addr: 0x48, value: 5 }, 1).unwrap();
        let mut bad = good.clone();
        bad[4] ^= 1;
        dec.feed(&[0x00, 0x13]);
        assert_eq!(dec.next_frame(), None);
        dec.feed(&bad);
        assert_eq!(dec.next_frame(), Some(Err(Response::error(Status::BadChecksum, 0, 0))));
        dec.feed(&good[..5]);
        // The bytes of the bad frame after its sync hold no sync: nothing decodes yet.
        assert_eq!(dec.next_frame(), None);
        dec.feed(&good[5..]);
        assert_eq!(dec.next_frame(), Some(Ok(TaggedRequest { tag: 1, req: Request::Write { addr: 0x48, value: 5 } })));
        assert_eq!(dec.next_frame(), None);
        assert_eq!(dec.pending(), 0);
    }

    #[test]
    fn dedup_drops_a_repeated_write_tag_only() {
        let w = |tag| TaggedRequest { tag, req: Request::Write { addr: 0, value: 1 } };
        let b = |tag| TaggedRequest { tag, req: Request::WriteBurst { addr: 0, data: vec![1, 2] } };
        let r = |tag| TaggedRequest { tag, req: Request::Read { addr: 0 } };
        let mut d = Dedup::new();
        assert_eq!(d.last(), None);
        assert!(d.admit(&w(0)), "after reset no tag is a retry");
        assert!(!d.admit(&w(0)), "the same tag again is a retry");
        assert!(!d.admit(&b(0)));
        assert!(d.admit(&b(1)));
        assert!(d.admit(&r(1)), "reads always run");
        assert!(d.admit(&r(1)));
        assert!(!d.admit(&w(1)), "a write after a read of its tag is a retry");
        assert!(d.admit(&w(2)));
        // A session that starts with a read can reuse any tag for its first write.
        assert!(d.admit(&r(2)));
        assert!(d.admit(&w(3)));
        assert_eq!(d.last(), Some(3));
    }

    #[test]
    fn divisors() {
        let d = clocks_per_bit(75_000_000, DEFAULT_BAUD).unwrap();
        assert_eq!(d.clocks_per_bit, 25);
        assert!(d.error_percent.abs() < 1e-9);
        assert!(clocks_per_bit(25_000_000, DEFAULT_BAUD).is_err());
        assert_eq!(clocks_per_bit(25_000_000, 1_000_000).unwrap().clocks_per_bit, 25);
        let d = clocks_per_bit(100_000_000, DEFAULT_BAUD).unwrap();
        assert_eq!(d.clocks_per_bit, 33);
        assert!((d.error_percent - 1.0101).abs() < 1e-3);
        assert!(clocks_per_bit(25_000_000, 0).is_err());
        assert!(clocks_per_bit(1_000, 1_000_000).is_err());
    }

    fn request() -> impl Strategy<Value = TaggedRequest> {
        (any::<u8>(), op()).prop_map(|(tag, req)| TaggedRequest { tag, req })
    }

    fn op() -> impl Strategy<Value = Request> {
        prop_oneof![
            any::<u32>().prop_map(|addr| Request::Read { addr }),
            (any::<u32>(), any::<u32>()).prop_map(|(addr, value)| Request::Write { addr, value }),
            (any::<u32>(), 1..=MAX_BURST as u16).prop_map(|(addr, count)| Request::ReadBurst { addr, count }),
            (any::<u32>(), prop::collection::vec(any::<u32>(), 1..=MAX_BURST))
                .prop_map(|(addr, data)| Request::WriteBurst { addr, data }),
        ]
    }

    fn response() -> impl Strategy<Value = Response> {
        prop_oneof![
            (any::<u8>(), any::<u32>()).prop_map(|(t, w)| Response::ok(cmd::READ, t, vec![w])),
            (any::<u8>(), prop::collection::vec(any::<u32>(), 1..=MAX_BURST)).prop_map(|(t, d)| Response::ok(
                cmd::READ_BURST,
                t,
                d
            )),
            (any::<u8>(), prop_oneof![Just(cmd::WRITE), Just(cmd::WRITE_BURST)]).prop_map(|(t, c)| Response::ok(
                c,
                t,
                vec![]
            )),
            (prop_oneof![Just(Status::BadChecksum), Just(Status::BadFrame)], any::<u8>(), any::<u8>())
                .prop_map(|(s, c, t)| Response::error(s, c, t)),
        ]
    }

    /// Decode everything in `buf` step by step; each step must make progress or stop.
    fn drain<T>(mut buf: &[u8], decode: fn(&[u8]) -> Decoded<T>) -> Vec<(usize, Decoded<T>)> {
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            let d = decode(buf);
            let n = d.consumed();
            assert!(n <= buf.len());
            let stop = matches!(d, Decoded::Incomplete { .. });
            out.push((at, d));
            if stop {
                return out;
            }
            assert!(n > 0, "a step that is not incomplete consumes bytes");
            buf = &buf[n..];
            at += n;
        }
    }

    proptest! {
        #[test]
        fn request_round_trip(req in request(), garbage in prop::collection::vec(any::<u8>().prop_filter("no sync", |b| *b != REQ_SYNC), 0..16)) {
            let f = encode_request(&req.req, req.tag).unwrap();
            prop_assert_eq!(f.len(), req.req.encoded_len());
            let mut buf = garbage.clone();
            buf.extend_from_slice(&f);
            prop_assert_eq!(decode_request(&buf), Decoded::Frame { frame: req.clone(), skipped: garbage.len(), consumed: buf.len() });
            // Any strict prefix is incomplete.
            let cut = f.len() / 2;
            prop_assert!(matches!(decode_request(&f[..cut]), Decoded::Incomplete { skip: 0 }), "a prefix must be incomplete");
        }

        #[test]
        fn response_round_trip(resp in response()) {
            let f = encode_response(&resp).unwrap();
            prop_assert_eq!(f.len(), resp.encoded_len());
            prop_assert_eq!(decode_response(&f), Decoded::Frame { frame: resp.clone(), skipped: 0, consumed: f.len() });
            prop_assert!(matches!(decode_response(&f[..f.len() - 1]), Decoded::Incomplete { skip: 0 }), "a prefix must be incomplete");
        }

        /// Any corruption of one byte, or of two adjacent bytes (a burst of at most 16 bits), is
        /// detected: no frame decodes from the corrupted frame's first byte.
        #[test]
        fn corruption_is_detected(req in request(), resp in response(), pos in any::<prop::sample::Index>(), x in 1..=0xFFFFu32, two in any::<bool>()) {
            for (f, is_req) in [(encode_request(&req.req, req.tag).unwrap(), true), (encode_response(&resp).unwrap(), false)] {
                let mut g = f.clone();
                let i = pos.index(g.len());
                g[i] ^= x as u8;
                if two && i + 1 < g.len() {
                    g[i + 1] ^= (x >> 8) as u8;
                }
                if g == f {
                    continue;
                }
                let first_frame_at_0 = if is_req {
                    matches!(decode_request(&g), Decoded::Frame { skipped: 0, .. })
                } else {
                    matches!(decode_response(&g), Decoded::Frame { skipped: 0, .. })
                };
                prop_assert!(!first_frame_at_0, "corruption at byte {} not detected", i);
            }
        }

        /// Arbitrary bytes never panic the decoders, and each step makes progress.
        #[test]
        fn decoders_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            drain(&bytes, decode_request);
            drain(&bytes, decode_response);
        }

        /// Biased garbage (many sync bytes, headers that pass the CRC but are bogus) too.
        #[test]
        fn decoders_survive_sync_heavy_garbage(bytes in prop::collection::vec(prop_oneof![Just(REQ_SYNC), Just(RESP_SYNC), Just(0u8), Just(0xFFu8), any::<u8>()], 0..512)) {
            drain(&bytes, decode_request);
            drain(&bytes, decode_response);
        }

        /// After arbitrary garbage, the decoder finds the next good frame (unless the garbage
        /// itself happens to hold a frame whose CRCs pass, which overlaps it: such cases are
        /// skipped, they are not a resynchronisation failure).
        #[test]
        fn resynchronises_after_garbage(req in request(), garbage in prop::collection::vec(any::<u8>(), 0..64), sync_in_garbage in any::<bool>()) {
            let mut buf = garbage.clone();
            if sync_in_garbage {
                buf.push(REQ_SYNC);
            }
            let start = buf.len();
            buf.extend_from_slice(&encode_request(&req.req, req.tag).unwrap());
            let steps = drain(&buf, decode_request);
            let mut found = false;
            for (at, d) in &steps {
                match d {
                    // A header starting in the garbage passed its CRC (probability about 2^-16).
                    Decoded::Frame { skipped, .. } if at + skipped < start => return Ok(()),
                    Decoded::Rejected { reason, skipped, .. } if reason != &Reject::HeaderCrc && at + skipped < start => {
                        return Ok(())
                    }
                    Decoded::Incomplete { skip } if at + skip < start => return Ok(()),
                    Decoded::Frame { frame, skipped, consumed } => {
                        prop_assert_eq!(at + skipped, start);
                        prop_assert_eq!(at + consumed, buf.len());
                        prop_assert_eq!(frame, &req);
                        found = true;
                    }
                    _ => {}
                }
            }
            prop_assert!(found, "the frame after the garbage was not decoded: {:?}", steps);
        }
    }
}
