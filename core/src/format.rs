//! The `.crew` model file: a small header, then CRC-protected sections, little-endian throughout.
//!
//! ```text
//! file     = header section*
//! header   = magic[8] "\x89CREW\r\n\x1a" | version u16 (=1) | flags u16 (=0) | section_count u32 | crc u32
//! section  = tag[4] | length u32 (payload bytes, a multiple of 4) | payload | crc u32
//! ```
//!
//! The header CRC covers the 16 bytes before it; a section CRC covers its tag, length and payload.
//! The first section is `MODL` (model metadata: layer count and a provenance string), then one
//! `LAYR` section per layer, in layer order. Sections with any other tag are checked (length,
//! CRC) and skipped, so later versions can add sections that older readers ignore.
//!
//! A `LAYR` payload is a fixed 28-byte header, the name, the scales, the optional bias, and then
//! the layer's memory image exactly as the hardware reads it (descriptors in their two-word form,
//! tables, runs): see [`crate::encode`] and `docs/format.md`, which lays the file out byte by byte.
//!
//! [`Model::from_bytes`] checks everything before it trusts anything: magic, version, flags, every
//! length against the bytes that are really there (so no allocation is larger than the input),
//! CRCs, UTF-8 names, finite scales and bias, and then every invariant of
//! [`EncodedLayer::validate`] (widths against counts, offsets inside the image, sorted tables,
//! every index below its column's count). Its errors say what is wrong and where.

use crate::encode::{ColumnDescriptor, EncodeError, EncodedLayer, DESCRIPTOR_WORDS};
use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

/// The first 8 bytes of every `.crew` file (PNG-style: a non-ASCII byte, the name, CR LF, ^Z).
pub const MAGIC: [u8; 8] = *b"\x89CREW\r\n\x1a";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of the file header: magic, version, flags, section count, header CRC.
pub const HEADER_LEN: usize = 20;
/// Bytes before a section's payload: tag and length.
pub const SECTION_HEADER_LEN: usize = 8;
/// Bytes after a section's payload: its CRC.
pub const SECTION_CRC_LEN: usize = 4;
/// The model metadata section; it must be the first section.
pub const TAG_MODEL: SectionTag = SectionTag(*b"MODL");
/// One layer.
pub const TAG_LAYER: SectionTag = SectionTag(*b"LAYR");
/// Bytes of the fixed part of a `MODL` payload: layer count, source length.
pub const MODEL_HEADER_LEN: usize = 8;
/// Bytes of the fixed part of a `LAYR` payload.
pub const LAYER_HEADER_LEN: usize = 28;
/// `LAYR` flags bit 0: a bias of `n_out` f32 follows the scales.
pub const LAYER_FLAG_BIAS: u32 = 1;
/// Longest layer name, in UTF-8 bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest model source (provenance) string, in UTF-8 bytes.
pub const MAX_SOURCE_LEN: usize = 65536;
/// Largest `n_out` and `n_in` (the range of a descriptor offset).
pub const MAX_DIM: usize = 1 << 24;
/// A layer may hold at most this many weights per byte of its `LAYR` payload. Real layers hold
/// at most 8 per byte (1-bit indices) plus constant columns; the limit keeps the work of checking
/// a hostile file proportional to its size.
pub const MAX_WEIGHTS_PER_BYTE: u64 = 4096;

/// A section tag: four bytes, printable ASCII for the known tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SectionTag(pub [u8; 4]);

impl fmt::Display for SectionTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Where in a file an error is: a byte offset, and the section and layer around it when known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// Byte offset from the start of the file.
    pub offset: usize,
    /// Index of the section, counting `MODL` as 0.
    pub section: Option<usize>,
    pub tag: Option<SectionTag>,
    /// Index of the layer in the model.
    pub layer: Option<usize>,
    /// The layer's name, once it has been read.
    pub name: Option<String>,
}

impl Location {
    fn at(offset: usize) -> Box<Location> {
        Box::new(Location { offset, ..Location::default() })
    }
    fn with_offset(&self, offset: usize) -> Box<Location> {
        Box::new(Location { offset, ..self.clone() })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}", self.offset)?;
        if let Some(s) = self.section {
            write!(f, ", section {s}")?;
            if let Some(t) = self.tag {
                write!(f, " {t}")?;
            }
        }
        if let Some(l) = self.layer {
            write!(f, ", layer {l}")?;
        }
        if let Some(n) = &self.name {
            write!(f, " {n:?}")?;
        }
        Ok(())
    }
}

/// Why a `.crew` file was rejected (or could not be read or written).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {what} needs {needed} bytes but only {available} remain (truncated file?)")]
    Truncated { at: Box<Location>, what: &'static str, needed: u64, available: u64 },
    #[error("not a .crew file: the magic is \"{}\", expected \"{}\"", .found.escape_ascii(), MAGIC.escape_ascii())]
    BadMagic { found: [u8; 8] },
    #[error("format version {found} is not supported (this reader reads version {supported})")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("{at}: {what} has unknown flag bits {flags:#x}")]
    UnknownFlags { at: Box<Location>, what: &'static str, flags: u32 },
    #[error("{at}: CRC-32 mismatch in the {what}: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { at: Box<Location>, what: &'static str, stored: u32, computed: u32 },
    #[error("{at}: section length {len} is not a multiple of 4")]
    Misaligned { at: Box<Location>, len: u32 },
    #[error("{count} trailing bytes after the last section, from byte {offset}")]
    TrailingBytes { offset: usize, count: usize },
    #[error("{at}: expected the MODL section first")]
    MissingModelSection { at: Box<Location> },
    #[error("{at}: a second MODL section")]
    DuplicateModelSection { at: Box<Location> },
    #[error("the MODL section declares {declared} layers but the file holds {found} LAYR sections")]
    LayerCountMismatch { declared: u32, found: usize },
    #[error("{at}: the section's fields declare {expected} payload bytes but it holds {found}")]
    LengthMismatch { at: Box<Location>, expected: u64, found: u64 },
    #[error("{at}: {what} is {len} bytes long, more than the limit of {max}")]
    StringTooLong { at: Box<Location>, what: &'static str, len: u32, max: usize },
    #[error("{at}: {what} is not valid UTF-8")]
    BadUtf8 {
        at: Box<Location>,
        what: &'static str,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("{at}: non-zero padding after the {what}")]
    NonZeroPadding { at: Box<Location>, what: &'static str },
    #[error("{at}: {what} = {value} exceeds the limit of {max}")]
    DimensionTooLarge { at: Box<Location>, what: &'static str, value: u32, max: usize },
    #[error(
        "{at}: {n_out}x{n_in} weights in a {bytes}-byte section is more than {} weights per byte",
        MAX_WEIGHTS_PER_BYTE
    )]
    ImplausibleShape { at: Box<Location>, n_out: u32, n_in: u32, bytes: u64 },
    #[error("{at}: {what} {index} is {value}, not a finite number")]
    NonFinite { at: Box<Location>, what: &'static str, index: usize, value: f32 },
    #[error("{at}: invalid CREW encoding")]
    Layer {
        at: Box<Location>,
        #[source]
        source: EncodeError,
    },
}

/// A CREW model: its encoded FC layers, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    pub layers: Vec<EncodedLayer>,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// A `usize` length as the file's `u32`; too large a value saturates, which the reader rejects.
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Appends one section: tag, length, the payload that `body` writes, CRC.
fn write_section(out: &mut Vec<u8>, tag: SectionTag, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&tag.0);
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = len32(out.len() - start - SECTION_HEADER_LEN);
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_padded(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.resize(out.len() + pad4(s.len()), 0);
}

/// One section as [`section_spans`] finds it.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionSpan {
    pub tag: SectionTag,
    /// Byte offset of the section's tag.
    pub offset: usize,
    /// Byte range of its payload.
    pub payload: Range<usize>,
}

/// The sections of a file, as far as their lengths stay inside it; CRCs are not checked. For
/// tests and tools that edit files on purpose.
#[doc(hidden)]
pub fn section_spans(bytes: &[u8]) -> Vec<SectionSpan> {
    let mut spans = Vec::new();
    let mut pos = HEADER_LEN;
    while let (Some(tag), Some(len)) = (bytes.get(pos..pos + 4), u32_at(bytes, pos + 4)) {
        let start = pos + SECTION_HEADER_LEN;
        let end = start.saturating_add(len as usize);
        if end.saturating_add(SECTION_CRC_LEN) > bytes.len() {
            break;
        }
        let tag = SectionTag(tag.try_into().unwrap_or([0; 4]));
        spans.push(SectionSpan { tag, offset: pos, payload: start..end });
        pos = end + SECTION_CRC_LEN;
    }
    spans
}

/// Recompute the header CRC and the CRC of every section that [`section_spans`] finds, so that a
/// file edited on purpose reaches the checks behind the CRCs. For tests and fuzzing.
#[doc(hidden)]
pub fn reseal_crcs(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_LEN {
        let crc = crc32fast::hash(&bytes[..HEADER_LEN - 4]);
        bytes[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    }
    for s in section_spans(bytes) {
        let crc = crc32fast::hash(&bytes[s.offset..s.payload.end]);
        bytes[s.payload.end..s.payload.end + SECTION_CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    }
}

impl Model {
    /// Serialize to the `.crew` byte format. The bytes of a model that [`validate`](Self::validate)
    /// rejects are rejected by [`from_bytes`](Self::from_bytes) too.
    pub fn to_bytes(&self) -> Vec<u8> {
        let image: usize = self.layers.iter().map(|l| 4 * l.image_words() + 8 * l.n_out + 64 + l.name.len()).sum();
        let mut out = Vec::with_capacity(HEADER_LEN + 32 + image);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        put_u32(&mut out, len32(self.layers.len().saturating_add(1)));
        let crc = crc32fast::hash(&out);
        put_u32(&mut out, crc);
        write_section(&mut out, TAG_MODEL, |p| {
            put_u32(p, len32(self.layers.len()));
            // The provenance string: the reader checks it; `Model` does not carry one yet.
            put_u32(p, 0);
        });
        for l in &self.layers {
            write_section(&mut out, TAG_LAYER, |p| {
                put_u32(p, len32(l.name.len()));
                put_u32(p, len32(l.n_out));
                put_u32(p, len32(l.n_in));
                put_u32(p, len32(l.scales.len()));
                put_u32(p, if l.bias.is_some() { LAYER_FLAG_BIAS } else { 0 });
                put_u32(p, len32(l.tables.len()));
                put_u32(p, len32(l.runs.len()));
                put_padded(p, l.name.as_bytes());
                for v in l.scales.iter().chain(l.bias.iter().flatten()) {
                    p.extend_from_slice(&v.to_le_bytes());
                }
                for w in l.descriptors.iter().flat_map(|d| d.to_words()).chain(l.tables.iter().copied()) {
                    put_u32(p, w);
                }
                for &w in &l.runs {
                    put_u32(p, w);
                }
            });
        }
        out
    }

    /// Check that the model can be written and read back: every check of
    /// [`from_bytes`](Self::from_bytes), with byte offsets into the bytes it would be written as.
    pub fn validate(&self) -> Result<(), FormatError> {
        Model::from_bytes(&self.to_bytes()).map(drop)
    }

    /// Parse and fully validate a `.crew` file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, FormatError> {
        let total = bytes.len();
        let header: &[u8; HEADER_LEN] =
            bytes.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(FormatError::Truncated {
                at: Location::at(0),
                what: "file header",
                needed: HEADER_LEN as u64,
                available: total as u64,
            })?;
        let (magic, rest) = header.split_at(8);
        if magic != MAGIC {
            return Err(FormatError::BadMagic { found: magic.try_into().unwrap_or([0; 8]) });
        }
        let version = u16::from_le_bytes([rest[0], rest[1]]);
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion { found: version, supported: VERSION });
        }
        let stored = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let computed = crc32fast::hash(&header[..HEADER_LEN - 4]);
        if stored != computed {
            return Err(FormatError::CrcMismatch { at: Location::at(16), what: "file header", stored, computed });
        }
        let flags = u16::from_le_bytes([rest[2], rest[3]]);
        if flags != 0 {
            return Err(FormatError::UnknownFlags { at: Location::at(10), what: "file header", flags: flags as u32 });
        }
        let section_count = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        if section_count == 0 {
            return Err(FormatError::MissingModelSection { at: Location::at(12) });
        }

        let mut model = Model::default();
        let mut declared_layers = None;
        let mut pos = HEADER_LEN;
        for section in 0..section_count {
            let start = pos;
            let remaining = (total - pos) as u64;
            let mut at = Location { offset: start, section: Some(section), ..Location::default() };
            let (Some(tag), Some(len)) = (bytes.get(pos..pos + 4), u32_at(bytes, pos + 4)) else {
                return Err(FormatError::Truncated {
                    at: Box::new(at),
                    what: "section header",
                    needed: SECTION_HEADER_LEN as u64,
                    available: remaining,
                });
            };
            let tag = SectionTag(tag.try_into().unwrap_or([0; 4]));
            at.tag = Some(tag);
            if len % 4 != 0 {
                return Err(FormatError::Misaligned { at: at.with_offset(start + 4), len });
            }
            let needed = (SECTION_HEADER_LEN + SECTION_CRC_LEN) as u64 + len as u64;
            if needed > remaining {
                return Err(FormatError::Truncated { at: Box::new(at), what: "section", needed, available: remaining });
            }
            let end = start + SECTION_HEADER_LEN + len as usize;
            let (Some(body), Some(stored)) = (bytes.get(start..end), u32_at(bytes, end)) else {
                return Err(FormatError::Truncated { at: Box::new(at), what: "section", needed, available: remaining });
            };
            let computed = crc32fast::hash(body);
            if stored != computed {
                return Err(FormatError::CrcMismatch { at: at.with_offset(end), what: "section", stored, computed });
            }
            let payload = body.get(SECTION_HEADER_LEN..).unwrap_or_default();
            let payload_at = start + SECTION_HEADER_LEN;
            pos = end + SECTION_CRC_LEN;
            if section == 0 && tag != TAG_MODEL {
                return Err(FormatError::MissingModelSection { at: Box::new(at) });
            }
            if tag == TAG_MODEL {
                if section != 0 {
                    return Err(FormatError::DuplicateModelSection { at: Box::new(at) });
                }
                let (count, _source) = parse_model(payload, payload_at, &at)?;
                declared_layers = Some(count);
            } else if tag == TAG_LAYER {
                at.layer = Some(model.layers.len());
                model.layers.push(parse_layer(payload, payload_at, at)?);
            }
        }
        if pos != total {
            return Err(FormatError::TrailingBytes { offset: pos, count: total - pos });
        }
        let declared = declared_layers.unwrap_or(0);
        if declared as usize != model.layers.len() {
            return Err(FormatError::LayerCountMismatch { declared, found: model.layers.len() });
        }
        Ok(model)
    }

    /// Read and validate a `.crew` file.
    pub fn read_file(path: &Path) -> Result<Model, FormatError> {
        let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
        Model::from_bytes(&bytes)
    }

    /// Validate, then write atomically: a temporary file in the same directory, synced, then
    /// renamed over `path`. On any error no file is left behind (and `path` is unchanged).
    pub fn write_file(&self, path: &Path) -> Result<(), FormatError> {
        let bytes = self.to_bytes();
        Model::from_bytes(&bytes)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".crew-").suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let mut tmp = builder.tempfile_in(dir).map_err(|e| io_error(path, e))?;
        tmp.write_all(&bytes).and_then(|()| tmp.as_file().sync_all()).map_err(|e| io_error(path, e))?;
        tmp.persist(path).map_err(|e| io_error(path, e.error))?;
        Ok(())
    }
}

fn io_error(path: &Path, source: std::io::Error) -> FormatError {
    FormatError::Io { path: path.display().to_string(), source }
}

/// Reads a padded UTF-8 string of `len` bytes at `pos` of `payload` (whose length was checked).
fn padded_str(
    payload: &[u8],
    pos: usize,
    len: usize,
    payload_at: usize,
    at: &Location,
    what: &'static str,
) -> Result<String, FormatError> {
    let end = pos + len;
    let truncated = || FormatError::Truncated {
        at: at.with_offset(payload_at + pos),
        what,
        needed: (len + pad4(len)) as u64,
        available: payload.len().saturating_sub(pos) as u64,
    };
    let raw = payload.get(pos..end).ok_or_else(truncated)?;
    let pad = payload.get(end..end + pad4(len)).ok_or_else(truncated)?;
    let s = std::str::from_utf8(raw).map_err(|source| FormatError::BadUtf8 {
        at: at.with_offset(payload_at + pos + source.valid_up_to()),
        what,
        source,
    })?;
    if let Some(k) = pad.iter().position(|&b| b != 0) {
        return Err(FormatError::NonZeroPadding { at: at.with_offset(payload_at + end + k), what });
    }
    Ok(s.to_string())
}

/// The `MODL` payload: layer count, source length, source (padded).
fn parse_model(payload: &[u8], payload_at: usize, at: &Location) -> Result<(u32, String), FormatError> {
    let (Some(count), Some(source_len)) = (u32_at(payload, 0), u32_at(payload, 4)) else {
        return Err(FormatError::Truncated {
            at: at.with_offset(payload_at),
            what: "MODL header",
            needed: MODEL_HEADER_LEN as u64,
            available: payload.len() as u64,
        });
    };
    if source_len as usize > MAX_SOURCE_LEN {
        return Err(FormatError::StringTooLong {
            at: at.with_offset(payload_at + 4),
            what: "model source",
            len: source_len,
            max: MAX_SOURCE_LEN,
        });
    }
    let expected = (MODEL_HEADER_LEN + source_len as usize + pad4(source_len as usize)) as u64;
    if expected != payload.len() as u64 {
        return Err(FormatError::LengthMismatch {
            at: at.with_offset(payload_at),
            expected,
            found: payload.len() as u64,
        });
    }
    let source = padded_str(payload, MODEL_HEADER_LEN, source_len as usize, payload_at, at, "model source")?;
    Ok((count, source))
}

/// Reads `n` little-endian words at `pos` of `payload` (whose length was checked).
fn words_at(payload: &[u8], pos: usize, n: usize) -> Vec<u32> {
    let end = pos.saturating_add(n.saturating_mul(4));
    let raw = payload.get(pos..end).unwrap_or_default();
    raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Reads `n` f32 at `pos` and checks that they are finite.
fn floats_at(
    payload: &[u8],
    pos: usize,
    n: usize,
    payload_at: usize,
    at: &Location,
    what: &'static str,
) -> Result<Vec<f32>, FormatError> {
    let v: Vec<f32> = words_at(payload, pos, n).into_iter().map(f32::from_bits).collect();
    if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(FormatError::NonFinite { at: at.with_offset(payload_at + pos + 4 * index), what, index, value });
    }
    Ok(v)
}

/// The `LAYR` payload:
/// `name_len, n_out, n_in, scale_count, flags, table_words, run_words` (u32 each), the name
/// (padded), `scale_count` f32 scales, `n_out` f32 bias if flagged, then the memory image:
/// `2 * n_in` descriptor words, `table_words` table words, `run_words` run words.
fn parse_layer(payload: &[u8], payload_at: usize, mut at: Location) -> Result<EncodedLayer, FormatError> {
    let field = |k: usize| u32_at(payload, 4 * k);
    let (Some(name_len), Some(n_out), Some(n_in), Some(scale_count), Some(flags), Some(table_words), Some(run_words)) =
        (field(0), field(1), field(2), field(3), field(4), field(5), field(6))
    else {
        return Err(FormatError::Truncated {
            at: at.with_offset(payload_at),
            what: "LAYR header",
            needed: LAYER_HEADER_LEN as u64,
            available: payload.len() as u64,
        });
    };
    let field_at = |k: usize| at.with_offset(payload_at + 4 * k);
    if name_len as usize > MAX_NAME_LEN {
        return Err(FormatError::StringTooLong {
            at: field_at(0),
            what: "layer name",
            len: name_len,
            max: MAX_NAME_LEN,
        });
    }
    for (k, what, value) in [(1, "n_out", n_out), (2, "n_in", n_in)] {
        if value as usize > MAX_DIM {
            return Err(FormatError::DimensionTooLarge { at: field_at(k), what, value, max: MAX_DIM });
        }
    }
    if flags & !LAYER_FLAG_BIAS != 0 {
        return Err(FormatError::UnknownFlags { at: field_at(4), what: "layer", flags });
    }
    let has_bias = flags & LAYER_FLAG_BIAS != 0;
    let name_bytes = name_len as usize + pad4(name_len as usize);
    let bias_len = if has_bias { n_out as u64 } else { 0 };
    let image_words = DESCRIPTOR_WORDS as u64 * n_in as u64 + table_words as u64 + run_words as u64;
    let expected = (LAYER_HEADER_LEN + name_bytes) as u64 + 4 * (scale_count as u64 + bias_len + image_words);
    if expected != payload.len() as u64 {
        return Err(FormatError::LengthMismatch { at: field_at(0), expected, found: payload.len() as u64 });
    }
    // From here on every count fits in the payload, so allocations are bounded by the input.
    let name = padded_str(payload, LAYER_HEADER_LEN, name_len as usize, payload_at, &at, "layer name")?;
    at.name = Some(name.clone());
    let field_at = |k: usize| at.with_offset(payload_at + 4 * k);
    if n_out as u64 * n_in as u64 > MAX_WEIGHTS_PER_BYTE * payload.len() as u64 {
        return Err(FormatError::ImplausibleShape { at: field_at(1), n_out, n_in, bytes: payload.len() as u64 });
    }
    let scales_pos = LAYER_HEADER_LEN + name_bytes;
    let scales = floats_at(payload, scales_pos, scale_count as usize, payload_at, &at, "scale")?;
    let bias_pos = scales_pos + 4 * scale_count as usize;
    let bias =
        if has_bias { Some(floats_at(payload, bias_pos, n_out as usize, payload_at, &at, "bias")?) } else { None };
    let image_pos = bias_pos + 4 * bias_len as usize;
    let image_at = payload_at + image_pos;
    let desc_words = DESCRIPTOR_WORDS * n_in as usize;
    let descriptors = words_at(payload, image_pos, desc_words)
        .chunks_exact(DESCRIPTOR_WORDS)
        .map(|w| ColumnDescriptor::from_words([w[0], w[1]]))
        .collect();
    let tables_pos = image_pos + 4 * desc_words;
    let tables = words_at(payload, tables_pos, table_words as usize);
    let runs = words_at(payload, tables_pos + 4 * table_words as usize, run_words as usize);
    let layer =
        EncodedLayer { name, n_out: n_out as usize, n_in: n_in as usize, scales, bias, descriptors, tables, runs };
    layer.validate().map_err(|source| {
        let offset = encode_error_offset(&source, &layer, payload_at, image_at);
        FormatError::Layer { at: at.with_offset(offset), source }
    })?;
    Ok(layer)
}

/// The file byte offset that an encoding error points at: the faulty descriptor, table byte or
/// run word, or the header field.
fn encode_error_offset(e: &EncodeError, layer: &EncodedLayer, payload_at: usize, image_at: usize) -> usize {
    let word = |w: usize| image_at.saturating_add(w.saturating_mul(4));
    let desc = |c: usize| word(c.saturating_mul(DESCRIPTOR_WORDS));
    match *e {
        EncodeError::EmptyShape { n_out, .. } => payload_at + if n_out == 0 { 4 } else { 8 },
        EncodeError::LengthMismatch { .. } => payload_at + 12,
        EncodeError::TooLarge { .. } => payload_at + 20,
        EncodeError::UniqueCount { column, .. }
        | EncodeError::WidthMismatch { column, .. }
        | EncodeError::OffsetOutOfRange { column, .. } => desc(column),
        EncodeError::TableNotSorted { column, entry } => {
            layer.descriptors.get(column).map_or(desc(column), |d| word(d.table_offset as usize).saturating_add(entry))
        }
        EncodeError::IndexOutOfRange { column, row, .. } => layer.descriptors.get(column).map_or(desc(column), |d| {
            word((d.run_offset as usize).saturating_add(row.saturating_mul(d.index_bits as usize) / 32))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::QuantizedLayer;

    fn qlayer(name: &str, n_out: usize, n_in: usize, q: Vec<i8>) -> QuantizedLayer {
        QuantizedLayer { name: name.into(), n_out, n_in, q, scales: vec![0.5], bias: None }
    }

    /// The worked example of docs/format.md, plus a 4x1 layer with a 3-value column (2-bit
    /// indices, so index 3 is representable and out of range) and a bias.
    fn sample() -> Model {
        let a = EncodedLayer::encode(&qlayer("fc1", 4, 3, vec![3, -1, 0, 3, 5, 0, -2, -1, 0, 3, 5, 0]));
        let mut b = qlayer("fc2", 4, 1, vec![1, 2, 3, 1]);
        b.scales = vec![0.25, 0.5, 1.0, 2.0];
        b.bias = Some(vec![1.0, -1.0, 0.5, 0.0]);
        Model { layers: vec![a, EncodedLayer::encode(&b)] }
    }

    fn span(bytes: &[u8], k: usize) -> SectionSpan {
        section_spans(bytes)[k].clone()
    }

    fn put(bytes: &mut [u8], at: usize, v: u32) {
        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn update(bytes: &mut [u8], at: usize, f: impl FnOnce(u32) -> u32) {
        let v = get(bytes, at);
        put(bytes, at, f(v));
    }

    fn get(bytes: &[u8], at: usize) -> u32 {
        u32_at(bytes, at).unwrap()
    }

    /// Byte offset of layer `k`'s memory image (section `k + 1`).
    fn image_at(bytes: &[u8], k: usize) -> usize {
        let p = span(bytes, k + 1).payload.start;
        let name_len = get(bytes, p) as usize;
        let scales = get(bytes, p + 12) as usize;
        let bias = if get(bytes, p + 16) & 1 != 0 { get(bytes, p + 4) as usize } else { 0 };
        p + LAYER_HEADER_LEN + name_len + pad4(name_len) + 4 * (scales + bias)
    }

    fn edit(f: impl FnOnce(&mut Vec<u8>)) -> FormatError {
        let mut bytes = sample().to_bytes();
        f(&mut bytes);
        reseal_crcs(&mut bytes);
        Model::from_bytes(&bytes).unwrap_err()
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = m.to_bytes();
        assert_eq!(Model::from_bytes(&bytes).unwrap(), m);
        assert_eq!(Model::from_bytes(&Model::default().to_bytes()).unwrap(), Model::default());
    }

    #[test]
    fn worked_example_file_of_docs_format() {
        // The 132-byte file of docs/format.md: the 4x3 worked example, scale 0.5, no bias.
        let l = EncodedLayer::encode(&qlayer("fc1", 4, 3, vec![3, -1, 0, 3, 5, 0, -2, -1, 0, 3, 5, 0]));
        let hex = "\
            89435245570d0a1a010000000200000044fa641b4d4f444c0800000001000000\
            00000000cc6178e04c415952500000000300000004000000030000000100000000000000\
            0300000002000000666331000000003f060000010900000107000001\
            0a000001080000000b000000fe030000ff050000000000000b0000000a000000893abb20";
        let hex: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
        let expected: Vec<u8> =
            hex.chunks(2).map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap()).collect();
        let m = Model { layers: vec![l] };
        assert_eq!(m.to_bytes(), expected);
        assert_eq!(Model::from_bytes(&expected).unwrap(), m);
    }

    #[test]
    fn layer_payload_holds_the_memory_image() {
        let m = sample();
        let bytes = m.to_bytes();
        for (k, l) in m.layers.iter().enumerate() {
            let at = image_at(&bytes, k);
            let img: Vec<u32> = (0..l.image_words()).map(|w| get(&bytes, at + 4 * w)).collect();
            assert_eq!(img, l.memory_image());
            assert_eq!(at + 4 * l.image_words(), span(&bytes, k + 1).payload.end);
        }
    }

    #[test]
    fn header_layout() {
        let bytes = sample().to_bytes();
        assert_eq!(&bytes[..8], b"\x89CREW\r\n\x1a");
        assert_eq!(&bytes[8..12], &[1, 0, 0, 0]);
        assert_eq!(get(&bytes, 12), 3);
        assert_eq!(get(&bytes, 16), crc32fast::hash(&bytes[..16]));
        let s = section_spans(&bytes);
        assert_eq!(s.iter().map(|s| s.tag).collect::<Vec<_>>(), vec![TAG_MODEL, TAG_LAYER, TAG_LAYER]);
        assert_eq!(s[0].offset, HEADER_LEN);
        assert_eq!(s[2].payload.end + 4, bytes.len());
    }

    #[test]
    fn truncated_everywhere() {
        let bytes = sample().to_bytes();
        for n in 0..bytes.len() {
            let e = Model::from_bytes(&bytes[..n]).unwrap_err();
            assert!(matches!(e, FormatError::Truncated { .. }), "{n}: {e}");
        }
    }

    #[test]
    fn bad_magic() {
        let e = edit(|b| b[1] = b'X');
        assert!(matches!(e, FormatError::BadMagic { found } if &found[..2] == b"\x89X"), "{e}");
    }

    #[test]
    fn bad_version() {
        let e = edit(|b| b[8] = 2);
        assert!(matches!(e, FormatError::UnsupportedVersion { found: 2, supported: 1 }), "{e}");
    }

    #[test]
    fn header_crc() {
        let mut bytes = sample().to_bytes();
        bytes[12] ^= 1;
        let e = Model::from_bytes(&bytes).unwrap_err();
        assert!(matches!(e, FormatError::CrcMismatch { what: "file header", .. }), "{e}");
    }

    #[test]
    fn section_crc() {
        let mut bytes = sample().to_bytes();
        let s = span(&bytes, 2);
        bytes[s.payload.start + 40] ^= 0x10;
        let e = Model::from_bytes(&bytes).unwrap_err();
        match e {
            FormatError::CrcMismatch { at, what: "section", .. } => {
                assert_eq!((at.section, at.tag, at.offset), (Some(2), Some(TAG_LAYER), s.payload.end));
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn unknown_flags() {
        let e = edit(|b| b[10] = 4);
        assert!(matches!(e, FormatError::UnknownFlags { what: "file header", flags: 4, .. }), "{e}");
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            b[p + 16] |= 2;
        });
        assert!(matches!(e, FormatError::UnknownFlags { what: "layer", flags: 2, .. }), "{e}");
    }

    #[test]
    fn misaligned_section() {
        let e = edit(|b| b[HEADER_LEN + 4] += 1);
        assert!(matches!(e, FormatError::Misaligned { .. }), "{e}");
    }

    #[test]
    fn trailing_bytes() {
        let mut bytes = sample().to_bytes();
        let n = bytes.len();
        bytes.extend_from_slice(&[0; 3]);
        let e = Model::from_bytes(&bytes).unwrap_err();
        assert!(matches!(e, FormatError::TrailingBytes { offset, count: 3 } if offset == n), "{e}");
        // A section count that is too small leaves a whole section trailing.
        let e = edit(|b| b[12] = 2);
        assert!(matches!(e, FormatError::TrailingBytes { .. }), "{e}");
    }

    #[test]
    fn model_section_first_and_once() {
        let e = edit(|b| b[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(b"XXXX"));
        assert!(matches!(e, FormatError::MissingModelSection { .. }), "{e}");
        let e = edit(|b| b[12] = 0);
        assert!(matches!(e, FormatError::MissingModelSection { .. }), "{e}");
        let e = edit(|b| {
            let o = span(b, 2).offset;
            b[o..o + 4].copy_from_slice(b"MODL");
        });
        assert!(matches!(e, FormatError::DuplicateModelSection { .. }), "{e}");
    }

    #[test]
    fn unknown_sections_are_skipped() {
        let m = sample();
        let mut bytes = m.to_bytes();
        let at = span(&bytes, 1).offset;
        let mut extra = Vec::new();
        write_section(&mut extra, SectionTag(*b"ZZZZ"), |p| p.extend_from_slice(&[7; 12]));
        bytes.splice(at..at, extra);
        bytes[12] = 4;
        reseal_crcs(&mut bytes);
        assert_eq!(Model::from_bytes(&bytes).unwrap(), m);
    }

    /// A MODL section with a provenance string (which later writers may fill) is read.
    fn with_source(source: &[u8]) -> Vec<u8> {
        let m = sample();
        let mut bytes = m.to_bytes();
        let s = span(&bytes, 0);
        let mut modl = Vec::new();
        write_section(&mut modl, TAG_MODEL, |p| {
            put_u32(p, 2);
            put_u32(p, source.len() as u32);
            put_padded(p, source);
        });
        bytes.splice(s.offset..s.payload.end + 4, modl);
        bytes
    }

    #[test]
    fn model_source() {
        assert_eq!(Model::from_bytes(&with_source("imported from x.safetensors ✓".as_bytes())).unwrap(), sample());
        let e = Model::from_bytes(&with_source(b"ab\xc3(")).unwrap_err();
        match e {
            FormatError::BadUtf8 { at, what: "model source", .. } => assert_eq!(at.offset, HEADER_LEN + 16 + 2),
            e => panic!("{e}"),
        }
        let mut bytes = with_source(b"abc");
        bytes[HEADER_LEN + 16 + 3] = 9;
        reseal_crcs(&mut bytes);
        assert!(matches!(Model::from_bytes(&bytes), Err(FormatError::NonZeroPadding { what: "model source", .. })));
    }

    #[test]
    fn layer_count_mismatch() {
        let e = edit(|b| {
            let p = span(b, 0).payload.start;
            put(b, p, 3);
        });
        assert!(matches!(e, FormatError::LayerCountMismatch { declared: 3, found: 2 }), "{e}");
    }

    #[test]
    fn length_mismatch() {
        // One more table word declared than there is: the payload length no longer adds up.
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            update(b, p + 20, |v| v + 1);
        });
        match e {
            FormatError::LengthMismatch { at, expected, found } => {
                assert_eq!(expected, found + 4);
                assert_eq!(at.layer, Some(0));
            }
            e => panic!("{e}"),
        }
        let e = edit(|b| {
            let p = span(b, 0).payload.start;
            put(b, p + 4, 3);
        });
        assert!(matches!(e, FormatError::LengthMismatch { .. }), "{e}");
    }

    #[test]
    fn strings() {
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            put(b, p, MAX_NAME_LEN as u32 + 1);
        });
        assert!(matches!(e, FormatError::StringTooLong { what: "layer name", .. }), "{e}");
        let e = edit(|b| {
            let p = span(b, 0).payload.start;
            put(b, p + 4, MAX_SOURCE_LEN as u32 + 1);
        });
        assert!(matches!(e, FormatError::StringTooLong { what: "model source", .. }), "{e}");
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            b[p + LAYER_HEADER_LEN + 1] = 0xff;
        });
        match e {
            FormatError::BadUtf8 { at, what: "layer name", .. } => {
                assert_eq!(at.offset, span(&sample().to_bytes(), 1).payload.start + LAYER_HEADER_LEN + 1);
            }
            e => panic!("{e}"),
        }
        // "fc1" is padded with one zero byte.
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            b[p + LAYER_HEADER_LEN + 3] = 1;
        });
        assert!(matches!(e, FormatError::NonZeroPadding { what: "layer name", .. }), "{e}");
    }

    #[test]
    fn dimensions() {
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            put(b, p + 4, MAX_DIM as u32 + 1);
        });
        assert!(matches!(e, FormatError::DimensionTooLarge { what: "n_out", .. }), "{e}");
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            put(b, p + 4, 1 << 23);
        });
        assert!(matches!(e, FormatError::ImplausibleShape { n_out: 0x80_0000, n_in: 3, .. }), "{e}");
    }

    #[test]
    fn non_finite_scale_and_bias() {
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            put(b, p + LAYER_HEADER_LEN + 4, f32::NAN.to_bits());
        });
        assert!(matches!(e, FormatError::NonFinite { what: "scale", index: 0, .. }), "{e}");
        let e = edit(|b| {
            let p = span(b, 2).payload.start;
            put(b, p + LAYER_HEADER_LEN + 4 + 4 * 4 + 4 * 2, f32::INFINITY.to_bits());
        });
        match e {
            FormatError::NonFinite { at, what: "bias", index: 2, .. } => {
                assert_eq!((at.layer, at.name.as_deref()), (Some(1), Some("fc2")));
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn index_out_of_range() {
        // Layer 1 is [1, 2, 3, 1]: 3 unique values in 2 bits, run 0b00_10_01_00; row 3 := 3.
        let e = edit(|b| {
            let at = image_at(b, 1) + 4 * 3;
            update(b, at, |v| v | 0b11 << 6);
        });
        match e {
            FormatError::Layer { at, source } => {
                assert_eq!(source, EncodeError::IndexOutOfRange { column: 0, row: 3, index: 3, count: 3 });
                assert_eq!(at.layer, Some(1));
                assert_eq!(at.offset, image_at(&sample().to_bytes(), 1) + 12);
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn width_offset_and_order_errors() {
        // Column 1 of the worked example: 2 unique values, 1-bit indices; claim 2 bits.
        let e = edit(|b| {
            let at = image_at(b, 0) + 4 * 3;
            update(b, at, |v| v + (1 << 24));
        });
        assert!(
            matches!(e, FormatError::Layer { source: EncodeError::WidthMismatch { column: 1, bits: 2, .. }, .. }),
            "{e}"
        );
        let e = edit(|b| {
            let at = image_at(b, 0) + 4 * 5;
            update(b, at, |v| v + 5);
        });
        assert!(matches!(e, FormatError::Layer { source: EncodeError::OffsetOutOfRange { column: 2, .. }, .. }), "{e}");
        // Table of column 0 is [-2, 3] = 0x03fe: swap to [3, -2].
        let e = edit(|b| {
            let at = image_at(b, 0) + 4 * 6;
            put(b, at, 0xfe03);
        });
        assert!(
            matches!(e, FormatError::Layer { source: EncodeError::TableNotSorted { column: 0, entry: 1 }, .. }),
            "{e}"
        );
        // Scale count 2 for a 4-row layer (and one fewer table word keeps the length right).
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            put(b, p + 12, 2);
            update(b, p + 20, |v| v - 1);
        });
        assert!(
            matches!(e, FormatError::Layer { source: EncodeError::LengthMismatch { what: "scales", .. }, .. }),
            "{e}"
        );
        let e = edit(|b| {
            let p = span(b, 1).payload.start;
            put(b, p + 4, 0);
        });
        assert!(matches!(e, FormatError::Layer { source: EncodeError::EmptyShape { .. }, .. }), "{e}");
    }

    #[test]
    fn errors_say_where() {
        let e = edit(|b| {
            let at = image_at(b, 1) + 4 * 3;
            update(b, at, |v| v | 0b11 << 6);
        });
        let msg = e.to_string();
        assert!(msg.contains("section 2 \"LAYR\", layer 1 \"fc2\""), "{msg}");
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert!(src.contains("column 0, row 3"), "{src}");
    }

    #[test]
    fn write_file_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.crew");
        let m = sample();
        m.write_file(&path).unwrap();
        assert_eq!(Model::read_file(&path).unwrap(), m);
        // An invalid model is not written, and leaves the old file and no temporary behind.
        let mut bad = m.clone();
        bad.layers[0].scales[0] = f32::NAN;
        assert!(matches!(bad.write_file(&path), Err(FormatError::NonFinite { .. })));
        assert_eq!(Model::read_file(&path).unwrap(), m);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("m.crew")]);
        let missing = dir.path().join("no/such/dir/m.crew");
        assert!(matches!(m.write_file(&missing), Err(FormatError::Io { .. })));
        assert!(matches!(Model::read_file(&missing), Err(FormatError::Io { .. })));
        // Renaming over a directory fails; the temporary is removed.
        std::fs::create_dir(dir.path().join("d")).unwrap();
        assert!(matches!(m.write_file(&dir.path().join("d")), Err(FormatError::Io { .. })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
