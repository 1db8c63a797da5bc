//! Import real weights: safetensors (f32, f16, bf16), `.npy` and `.npz` (little-endian floats, C
//! order), and `.crew` files.
//!
//! Matrices are `[n_out][n_in]`, row-major, as PyTorch stores `nn.Linear` weights.
//!
//! **Which tensors.** [`load_matrices`] selects 2-D tensors by a name regex. Without one, the
//! default selection is every 2-D floating-point tensor whose name does not contain `embed`
//! (embedding tables are gathered, not multiplied) or `pooler` (the BERT pooler, which
//! sentence-transformers models such as all-MiniLM-L6-v2 never run: they mean-pool). On
//! all-MiniLM-L6-v2 that gives its 36 FC matrices; on Silero VAD its two LSTM matrices.
//!
//! **Biases.** A weight named `P.weightS` (last name component starting with `weight`, e.g.
//! `dense.weight`, `lstm_cell.weight_ih`) is paired with a 1-D tensor `P.biasS` of length `n_out`
//! when one exists (`dense.bias`, `lstm_cell.bias_ih`).
//!
//! **Order.** Tensors come in file order: by data offset in safetensors, by member order in npz.
//!
//! Nothing here panics on a corrupt file: every problem is an [`ImportError`] naming the file and,
//! where there is one, the tensor.

use crate::encode::{EncodeError, EncodedLayer};
use crate::format::{FormatError, Model};
use crate::quant::{quantize_weights, QuantizedLayer, ScaleMode};
use regex::Regex;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One weight matrix, `data` row-major `[n_out][n_in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub name: String,
    pub n_out: usize,
    pub n_in: usize,
    /// Row-major `[n_out][n_in]`.
    pub data: Vec<f32>,
    /// The paired bias, `n_out` long, when the file has one.
    pub bias: Option<Vec<f32>>,
}

impl Matrix {
    /// Number of weights.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True for a matrix without weights (never returned by the importers).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Quantize to int8 (round half to even).
    pub fn quantize(&self, mode: ScaleMode) -> QuantizedLayer {
        quantize_weights(&self.name, &self.data, self.n_out, self.n_in, mode, self.bias.clone())
    }
}

/// Why weights could not be imported. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid safetensors file", path.display())]
    SafeTensors {
        path: PathBuf,
        #[source]
        source: SafeTensorError,
    },
    #[error("{} is not a valid .npz (zip) archive", path.display())]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("{}: array `{tensor}`: bad .npy data", path.display())]
    Npy {
        path: PathBuf,
        tensor: String,
        #[source]
        source: NpyError,
    },
    #[error("{}: tensor `{tensor}` has dtype {dtype}; supported: f32, f16, bf16 (safetensors), <f4, <f2, <f8 (npy)", path.display())]
    UnsupportedDtype { path: PathBuf, tensor: String, dtype: String },
    #[error("{}: tensor `{tensor}` has shape {shape:?}; {expected}", path.display())]
    BadShape { path: PathBuf, tensor: String, shape: Vec<usize>, expected: &'static str },
    #[error("{}: tensor `{tensor}` holds a non-finite value ({value}) at flat index {index}", path.display())]
    NonFinite { path: PathBuf, tensor: String, index: usize, value: f32 },
    #[error("{}: no 2-D tensor matches {filter}; the 2-D tensors are: {}", path.display(), list_or_none(available))]
    NoMatch { path: PathBuf, filter: String, available: Vec<String> },
    #[error("{}: unknown file type; expected .safetensors, .npy, .npz or .crew", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: layer `{tensor}` does not encode", path.display())]
    Encode {
        path: PathBuf,
        tensor: String,
        #[source]
        source: EncodeError,
    },
    #[error("{} is not a valid .crew model", path.display())]
    Format {
        path: PathBuf,
        #[source]
        source: Box<FormatError>,
    },
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

/// What is wrong with a `.npy` byte stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpyError {
    #[error("missing the \\x93NUMPY magic")]
    Magic,
    #[error("unsupported .npy version {0}.{1}")]
    Version(u8, u8),
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("malformed header {header:?}: {reason}")]
    Header { header: String, reason: String },
    #[error("Fortran-order arrays are not supported; save with np.ascontiguousarray")]
    FortranOrder,
    #[error("data is {found} bytes, shape {shape:?} of {item} byte items needs {expected}")]
    Length { shape: Vec<usize>, item: usize, expected: usize, found: usize },
}

/// The file kinds this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    SafeTensors,
    Npy,
    Npz,
    Crew,
}

impl FileKind {
    /// The kind of a file, by its extension (case-insensitive).
    pub fn of(path: &Path) -> Option<FileKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" => Some(FileKind::SafeTensors),
            "npy" => Some(FileKind::Npy),
            "npz" => Some(FileKind::Npz),
            "crew" => Some(FileKind::Crew),
            _ => None,
        }
    }
}

/// Name fragments that the default selection skips (case-insensitive).
pub const DEFAULT_EXCLUDE: [&str; 2] = ["embed", "pooler"];

/// Whether the default selection takes a 2-D float tensor of this name.
pub fn default_selects(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !DEFAULT_EXCLUDE.iter().any(|x| lower.contains(x))
}

/// The name of the bias that pairs with weight `name`, if its last component starts with `weight`.
pub fn bias_name_for(name: &str) -> Option<String> {
    let (prefix, last) = match name.rfind('.') {
        Some(p) => (&name[..=p], &name[p + 1..]),
        None => ("", name),
    };
    last.strip_prefix("weight").map(|rest| format!("{prefix}bias{rest}"))
}

/// A tensor as read from a file, before selection.
struct RawTensor {
    name: String,
    shape: Vec<usize>,
    /// The file's name for the dtype, for messages.
    dtype: String,
    /// `None` for dtypes we do not convert (the dtype's name is kept for the error).
    data: Result<Vec<f32>, String>,
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path).map_err(|source| ImportError::Io { path: path.to_path_buf(), source })
}

fn decode_le<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

fn safetensors_tensors(path: &Path, bytes: &[u8]) -> Result<Vec<RawTensor>, ImportError> {
    let st_err = |source| ImportError::SafeTensors { path: path.to_path_buf(), source };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
    let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
    let mut infos: Vec<(String, (usize, usize))> =
        meta.tensors().into_iter().map(|(name, info)| (name, info.data_offsets)).collect();
    infos.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = Vec::with_capacity(infos.len());
    for (name, _) in infos {
        let view = st.tensor(&name).map_err(st_err)?;
        let raw = view.data();
        let dtype = format!("{:?}", view.dtype());
        let data = match view.dtype() {
            Dtype::F32 => Ok(decode_le(raw, f32::from_le_bytes)),
            Dtype::F16 => Ok(decode_le(raw, |b| half::f16::from_le_bytes(b).to_f32())),
            Dtype::BF16 => Ok(decode_le(raw, |b| half::bf16::from_le_bytes(b).to_f32())),
            other => Err(format!("{other:?}")),
        };
        out.push(RawTensor { name, shape: view.shape().to_vec(), dtype, data });
    }
    Ok(out)
}

/// A parsed `.npy` array: its shape and its values as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    /// The dtype descriptor from the header, e.g. `<f4`.
    pub descr: String,
    /// `Err(descr)` for a dtype that is not converted.
    pub data: Result<Vec<f32>, String>,
}

/// Encode a `.npy` v1.0 file of little-endian f32 in C order (what numpy writes for
/// `np.save(f, a.astype('<f4'))`), for input vectors and tests.
pub fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that the data starts on a 64-byte boundary, as numpy does.
    let pad = 63 - (10 + h.len()) % 64;
    h.push_str(&" ".repeat(pad));
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// Parse a `.npy` byte stream (format versions 1.0, 2.0 and 3.0).
///
/// Supported dtypes are little-endian `<f4`, `<f2` and `<f8`; others parse, with
/// `data = Err(descr)`. Fortran order, a bad header or a length that does not match the shape are
/// errors.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if bytes.len() < 8 {
        return Err(NpyError::Truncated("shorter than the magic and version"));
    }
    if &bytes[..6] != b"\x93NUMPY" {
        return Err(NpyError::Magic);
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start) = match major {
        1 => {
            let b = bytes.get(8..10).ok_or(NpyError::Truncated("header length"))?;
            (u16::from_le_bytes([b[0], b[1]]) as usize, 10usize)
        }
        2 | 3 => {
            let b = bytes.get(8..12).ok_or(NpyError::Truncated("header length"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        _ => return Err(NpyError::Version(major, minor)),
    };
    let end = start.checked_add(header_len).ok_or(NpyError::Truncated("header"))?;
    let header_bytes = bytes.get(start..end).ok_or(NpyError::Truncated("header"))?;
    let header = String::from_utf8_lossy(header_bytes).into_owned();
    let bad = |reason: &str| NpyError::Header { header: header.clone(), reason: reason.to_string() };
    let dict = parse_header_dict(&header).map_err(|r| bad(&r))?;
    let descr = match dict.get("descr") {
        Some(HeaderValue::Str(s)) => s.clone(),
        Some(_) => return Err(bad("'descr' is not a string (structured dtypes are not supported)")),
        None => return Err(bad("no 'descr' key")),
    };
    match dict.get("fortran_order") {
        Some(HeaderValue::Bool(false)) => {}
        Some(HeaderValue::Bool(true)) => return Err(NpyError::FortranOrder),
        Some(_) => return Err(bad("'fortran_order' is not True or False")),
        None => return Err(bad("no 'fortran_order' key")),
    }
    let shape = match dict.get("shape") {
        Some(HeaderValue::Tuple(t)) => t.clone(),
        Some(_) => return Err(bad("'shape' is not a tuple of integers")),
        None => return Err(bad("no 'shape' key")),
    };
    let item = match descr.as_str() {
        "<f4" => 4,
        "<f2" => 2,
        "<f8" => 8,
        _ => {
            return Ok(NpyArray { shape, data: Err(descr.clone()), descr });
        }
    };
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("shape overflows"))?;
    let expected = count.checked_mul(item).ok_or_else(|| bad("shape overflows"))?;
    let data = &bytes[end..];
    if data.len() != expected {
        return Err(NpyError::Length { shape, item, expected, found: data.len() });
    }
    let values = match item {
        4 => decode_le(data, f32::from_le_bytes),
        2 => decode_le(data, |b| half::f16::from_le_bytes(b).to_f32()),
        _ => decode_le(data, |b| f64::from_le_bytes(b) as f32),
    };
    Ok(NpyArray { shape, descr, data: Ok(values) })
}

#[derive(Debug, Clone, PartialEq)]
enum HeaderValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parse the Python dict literal of a `.npy` header: string keys; values are strings, `True`,
/// `False` or tuples of non-negative integers.
fn parse_header_dict(s: &str) -> Result<HashMap<String, HeaderValue>, String> {
    struct P<'a> {
        c: std::iter::Peekable<std::str::Chars<'a>>,
    }
    impl P<'_> {
        fn ws(&mut self) {
            while self.c.peek().is_some_and(|c| c.is_whitespace()) {
                self.c.next();
            }
        }
        fn eat(&mut self, ch: char) -> bool {
            self.ws();
            if self.c.peek() == Some(&ch) {
                self.c.next();
                true
            } else {
                false
            }
        }
        fn expect(&mut self, ch: char) -> Result<(), String> {
            if self.eat(ch) {
                Ok(())
            } else {
                Err(format!("expected `{ch}`"))
            }
        }
        fn string(&mut self) -> Result<String, String> {
            self.ws();
            let q = match self.c.next() {
                Some(q @ ('\'' | '"')) => q,
                _ => return Err("expected a quoted string".into()),
            };
            let mut out = String::new();
            loop {
                match self.c.next() {
                    Some(c) if c == q => return Ok(out),
                    Some('\\') => return Err("escapes in header strings are not supported".into()),
                    Some(c) => out.push(c),
                    None => return Err("unterminated string".into()),
                }
            }
        }
        fn word(&mut self) -> String {
            self.ws();
            let mut out = String::new();
            while self.c.peek().is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
                out.extend(self.c.next());
            }
            out
        }
        fn value(&mut self) -> Result<HeaderValue, String> {
            self.ws();
            match self.c.peek() {
                Some('\'' | '"') => Ok(HeaderValue::Str(self.string()?)),
                Some('(') => {
                    self.c.next();
                    let mut dims = Vec::new();
                    loop {
                        if self.eat(')') {
                            return Ok(HeaderValue::Tuple(dims));
                        }
                        let w = self.word();
                        let w = w.strip_suffix('L').unwrap_or(&w);
                        let d: usize = w.parse().map_err(|_| format!("bad dimension `{w}` in shape"))?;
                        dims.push(d);
                        if !self.eat(',') {
                            self.expect(')')?;
                            return Ok(HeaderValue::Tuple(dims));
                        }
                    }
                }
                _ => match self.word().as_str() {
                    "True" => Ok(HeaderValue::Bool(true)),
                    "False" => Ok(HeaderValue::Bool(false)),
                    w => Err(format!("unexpected value `{w}`")),
                },
            }
        }
    }
    let mut p = P { c: s.chars().peekable() };
    p.expect('{')?;
    let mut map = HashMap::new();
    loop {
        if p.eat('}') {
            break;
        }
        let k = p.string()?;
        p.expect(':')?;
        let v = p.value()?;
        if map.insert(k.clone(), v).is_some() {
            return Err(format!("duplicate key `{k}`"));
        }
        if !p.eat(',') {
            p.expect('}')?;
            break;
        }
    }
    p.ws();
    if p.c.next().is_some() {
        return Err("trailing characters after the dict".into());
    }
    Ok(map)
}

fn npy_raw(path: &Path, name: &str, bytes: &[u8]) -> Result<RawTensor, ImportError> {
    let a = parse_npy(bytes).map_err(|source| ImportError::Npy {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        source,
    })?;
    Ok(RawTensor { name: name.to_string(), shape: a.shape, dtype: a.descr, data: a.data })
}

fn npz_tensors(path: &Path) -> Result<Vec<RawTensor>, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io { path: path.to_path_buf(), source })?;
    let zip_err = |source| ImportError::Zip { path: path.to_path_buf(), source };
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err)?;
    let mut out = Vec::with_capacity(archive.len());
    for k in 0..archive.len() {
        let mut member = archive.by_index(k).map_err(zip_err)?;
        if member.is_dir() {
            continue;
        }
        let full = member.name().to_string();
        let name = full.strip_suffix(".npy").unwrap_or(&full).to_string();
        let mut bytes = Vec::with_capacity(member.size().min(1 << 30) as usize);
        member.read_to_end(&mut bytes).map_err(|source| ImportError::Io { path: path.to_path_buf(), source })?;
        out.push(npy_raw(path, &name, &bytes)?);
    }
    Ok(out)
}

fn raw_tensors(path: &Path) -> Result<Vec<RawTensor>, ImportError> {
    match FileKind::of(path) {
        Some(FileKind::SafeTensors) => safetensors_tensors(path, &read_bytes(path)?),
        Some(FileKind::Npy) => {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(vec![npy_raw(path, &name, &read_bytes(path)?)?])
        }
        Some(FileKind::Npz) => npz_tensors(path),
        Some(FileKind::Crew) | None => Err(ImportError::UnknownFormat { path: path.to_path_buf() }),
    }
}

fn check_finite(path: &Path, name: &str, v: &[f32]) -> Result<(), ImportError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => {
            Err(ImportError::NonFinite { path: path.to_path_buf(), tensor: name.to_string(), index, value: v[index] })
        }
        None => Ok(()),
    }
}

/// Load the weight matrices of a safetensors, `.npy` or `.npz` file.
///
/// With `filter`, every 2-D tensor whose name matches (`Regex::is_match`, so anchor it if you
/// need to) is taken, and one that cannot be (an integer dtype, a zero dimension) is an error.
/// Without it, the default selection described in the [module docs](self) applies (a `.npy`
/// file's one array is always taken). No match is an error that lists the file's 2-D tensors
/// with their shapes and dtypes.
pub fn load_matrices(path: &Path, filter: Option<&Regex>) -> Result<Vec<Matrix>, ImportError> {
    let tensors = raw_tensors(path)?;
    // A .npy file holds one array: without a filter it is taken whatever its name.
    let whole_file = FileKind::of(path) == Some(FileKind::Npy);
    let mut vectors: HashMap<&str, &Vec<f32>> = HashMap::new();
    for t in &tensors {
        if let (1, Ok(v)) = (t.shape.len(), &t.data) {
            vectors.insert(&t.name, v);
        }
    }
    let mut out = Vec::new();
    for t in tensors.iter().filter(|t| t.shape.len() == 2) {
        let selected = match filter {
            Some(re) => re.is_match(&t.name),
            None if whole_file => true,
            None => t.data.is_ok() && t.shape.iter().all(|&d| d > 0) && default_selects(&t.name),
        };
        if !selected {
            continue;
        }
        let data = match &t.data {
            Ok(d) => d,
            Err(dtype) => {
                return Err(ImportError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    tensor: t.name.clone(),
                    dtype: dtype.clone(),
                })
            }
        };
        let (n_out, n_in) = (t.shape[0], t.shape[1]);
        if n_out == 0 || n_in == 0 {
            return Err(ImportError::BadShape {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                shape: t.shape.clone(),
                expected: "a weight matrix needs at least one output and one input",
            });
        }
        if data.len() != n_out * n_in {
            // Cannot happen for safetensors (the crate validates) or npy (checked), kept as a guard.
            return Err(ImportError::BadShape {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                shape: t.shape.clone(),
                expected: "the data length does not match the shape",
            });
        }
        check_finite(path, &t.name, data)?;
        let bias =
            bias_name_for(&t.name).and_then(|b| vectors.get(b.as_str()).copied()).filter(|b| b.len() == n_out).cloned();
        if let Some(b) = &bias {
            check_finite(path, &t.name, b)?;
        }
        out.push(Matrix { name: t.name.clone(), n_out, n_in, data: data.clone(), bias });
    }
    if out.is_empty() {
        return Err(ImportError::NoMatch {
            path: path.to_path_buf(),
            filter: filter.map_or_else(|| "the default selection".to_string(), |r| format!("/{}/", r.as_str())),
            available: tensors
                .iter()
                .filter(|t| t.shape.len() == 2)
                .map(|t| format!("{} {:?} {}", t.name, t.shape, t.dtype))
                .collect(),
        });
    }
    Ok(out)
}

/// Load input vectors from a `.npy` file: a 1-D array is one vector, a 2-D array a batch of rows.
pub fn load_vectors(path: &Path) -> Result<Vec<Vec<f32>>, ImportError> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if FileKind::of(path) != Some(FileKind::Npy) {
        return Err(ImportError::UnknownFormat { path: path.to_path_buf() });
    }
    let t = npy_raw(path, &name, &read_bytes(path)?)?;
    let data = t.data.map_err(|dtype| ImportError::UnsupportedDtype {
        path: path.to_path_buf(),
        tensor: name.clone(),
        dtype,
    })?;
    check_finite(path, &name, &data)?;
    let bad = |expected| ImportError::BadShape {
        path: path.to_path_buf(),
        tensor: name.clone(),
        shape: t.shape.clone(),
        expected,
    };
    match t.shape.as_slice() {
        [n] if *n > 0 => Ok(vec![data]),
        [b, n] if *b > 0 && *n > 0 => Ok(data.chunks_exact(*n).map(<[f32]>::to_vec).collect()),
        _ => Err(bad("input vectors must be a non-empty 1-D array or a 2-D batch [vectors][inputs]")),
    }
}

/// Quantize and CREW-encode one matrix, checking the result.
pub fn encode_matrix(path: &Path, m: &Matrix, mode: ScaleMode) -> Result<EncodedLayer, ImportError> {
    let layer = EncodedLayer::encode(&m.quantize(mode));
    layer.validate().map_err(|source| ImportError::Encode {
        path: path.to_path_buf(),
        tensor: m.name.clone(),
        source,
    })?;
    Ok(layer)
}

/// Load any supported model file as a CREW [`Model`].
///
/// * `.crew`: read and validated by [`Model::read_file`]; `mode` is ignored (the file carries its
///   scales), and `filter`, when given, keeps only the layers whose names match.
/// * `.safetensors`, `.npy`, `.npz`: [`load_matrices`] with `filter`, then each matrix is
///   quantized with `mode` (round half to even) and encoded with [`EncodedLayer::encode`].
///
/// An empty selection is an error ([`ImportError::NoMatch`]).
pub fn load_any(path: &Path, filter: Option<&Regex>, mode: ScaleMode) -> Result<Model, ImportError> {
    match FileKind::of(path) {
        Some(FileKind::Crew) => {
            let model = Model::read_file(path)
                .map_err(|e| ImportError::Format { path: path.to_path_buf(), source: Box::new(e) })?;
            select_layers(path, model, filter)
        }
        Some(_) => {
            let matrices = load_matrices(path, filter)?;
            let layers = matrices.iter().map(|m| encode_matrix(path, m, mode)).collect::<Result<_, _>>()?;
            Ok(Model { layers })
        }
        None => Err(ImportError::UnknownFormat { path: path.to_path_buf() }),
    }
}

/// Keep the layers of a model whose names match `filter` (all of them without one).
pub fn select_layers(path: &Path, mut model: Model, filter: Option<&Regex>) -> Result<Model, ImportError> {
    let Some(re) = filter else { return Ok(model) };
    let available = model.layers.iter().map(|l| format!("{} [{}, {}]", l.name, l.n_out, l.n_in)).collect();
    model.layers.retain(|l| re.is_match(&l.name));
    if model.layers.is_empty() {
        return Err(ImportError::NoMatch { path: path.to_path_buf(), filter: format!("/{}/", re.as_str()), available });
    }
    Ok(model)
}

/// The `source` text of an imported model: file name, selection and scale mode.
pub fn source_description(path: &Path, filter: Option<&Regex>, mode: ScaleMode) -> String {
    let file = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let selection = filter.map_or_else(|| "default selection".to_string(), |r| format!("layers /{}/", r.as_str()));
    let scales = match mode {
        ScaleMode::PerTensor => "per-tensor scales",
        ScaleMode::PerRow => "per-row scales",
    };
    format!("{file} ({selection}, {scales}, round half to even)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip() {
        let a = parse_npy(&npy_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.descr, "<f4");
        assert_eq!(a.data.unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let a = parse_npy(&npy_f32(&[3], &[1.0, 2.0, 3.0])).unwrap();
        assert_eq!(a.shape, vec![3]);
    }

    #[test]
    fn npy_header_variants() {
        let d = parse_header_dict("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 3L)}").unwrap();
        assert_eq!(d["shape"], HeaderValue::Tuple(vec![2, 3]));
        let d = parse_header_dict("{'descr':'<f8','fortran_order':True,'shape':()}").unwrap();
        assert_eq!(d["shape"], HeaderValue::Tuple(vec![]));
        assert_eq!(d["fortran_order"], HeaderValue::Bool(true));
        for bad in ["", "{", "{'a' 1}", "{'shape': (1, x)}", "{'a': 'b'} extra", "{'a': 'b', 'a': 'c'}", "{'s': (1,,)}"]
        {
            assert!(parse_header_dict(bad).is_err(), "{bad:?} parsed");
        }
    }

    /// Replace one same-length-or-shorter ASCII span of an npy header (padding with spaces).
    fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
        let at = bytes.windows(from.len()).position(|w| w == from.as_bytes()).expect("pattern");
        let mut out = bytes.to_vec();
        let mut to = to.as_bytes().to_vec();
        assert!(to.len() <= from.len(), "replacement must not be longer");
        to.resize(from.len(), b' ');
        out[at..at + from.len()].copy_from_slice(&to);
        out
    }

    #[test]
    fn npy_errors() {
        let good = npy_f32(&[2, 2], &[1.0; 4]);
        assert_eq!(parse_npy(b"\x93NUM"), Err(NpyError::Truncated("shorter than the magic and version")));
        assert_eq!(parse_npy(b"PK\x03\x04xxxxxxxx"), Err(NpyError::Magic));
        let mut v = good.clone();
        v[6] = 9;
        assert_eq!(parse_npy(&v), Err(NpyError::Version(9, 0)));
        assert!(matches!(parse_npy(&good[..good.len() - 1]), Err(NpyError::Length { expected: 16, found: 15, .. })));
        assert!(matches!(parse_npy(&good[..20]), Err(NpyError::Truncated("header"))));
        let mut v = good.clone();
        v[8] = 0xff;
        v[9] = 0xff;
        assert!(parse_npy(&v).is_err());
        let f = replace(&good, "False", "True ");
        assert_eq!(parse_npy(&f).map(|_| ()), Err(NpyError::FortranOrder));
        // An unsupported dtype parses, with the data left as an error.
        let i = replace(&good, "<f4", "<i4");
        assert_eq!(parse_npy(&i).unwrap().data, Err("<i4".to_string()));
        // Huge shapes overflow cleanly.
        let h = replace(&good, "(2, 2), }                    ", "(99999999999999999, 999)}");
        assert!(matches!(parse_npy(&h), Err(NpyError::Header { .. })));
        let h = replace(&good, "(2, 2)", "(2, 3)");
        assert!(matches!(parse_npy(&h), Err(NpyError::Length { expected: 24, found: 16, .. })));
    }

    #[test]
    fn bias_names() {
        assert_eq!(bias_name_for("a.b.weight").as_deref(), Some("a.b.bias"));
        assert_eq!(bias_name_for("lstm_cell.weight_ih").as_deref(), Some("lstm_cell.bias_ih"));
        assert_eq!(bias_name_for("weight").as_deref(), Some("bias"));
        assert_eq!(bias_name_for("a.kernel"), None);
        assert!(default_selects("encoder.layer.0.output.dense.weight"));
        assert!(!default_selects("embeddings.word_embeddings.weight"));
        assert!(!default_selects("pooler.dense.weight"));
    }

    fn st_file(dir: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> PathBuf {
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.to_string(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let bytes = safetensors::serialize(views, &None).unwrap();
        let p = dir.join("m.safetensors");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn safetensors_dtypes_bias_and_selection() {
        let dir = tempfile::tempdir().unwrap();
        let w = [0.5f32, -1.0, 0.25, 2.0, 0.0, -0.75];
        let f16: Vec<u8> = w.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
        let bf16: Vec<u8> = w.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect();
        let p = st_file(
            dir.path(),
            &[
                ("a.weight", Dtype::F32, vec![2, 3], f32_bytes(&w)),
                ("a.bias", Dtype::F32, vec![2], f32_bytes(&[1.0, 2.0])),
                ("b.weight_ih", Dtype::F16, vec![3, 2], f16),
                ("b.bias_ih", Dtype::F32, vec![3], f32_bytes(&[1.0, 2.0, 3.0])),
                ("c.weight", Dtype::BF16, vec![2, 3], bf16),
                ("c.bias", Dtype::F32, vec![3], f32_bytes(&[1.0, 2.0, 3.0])),
                ("emb.word_embeddings.weight", Dtype::F32, vec![2, 3], f32_bytes(&w)),
                ("ids", Dtype::I64, vec![1, 2], vec![0; 16]),
            ],
        );
        let ms = load_matrices(&p, None).unwrap();
        // File order: the safetensors writer puts wider dtypes first.
        let names: Vec<_> = ms.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a.weight", "c.weight", "b.weight_ih"]);
        for m in &ms {
            assert_eq!(m.data, w.to_vec(), "{}", m.name);
        }
        assert_eq!(ms[0].bias, Some(vec![1.0, 2.0]));
        assert_eq!((ms[2].n_out, ms[2].n_in), (3, 2));
        assert_eq!(ms[2].bias, Some(vec![1.0, 2.0, 3.0]));
        // c.bias has the wrong length for c.weight's 2 outputs: not paired.
        assert_eq!(ms[1].bias, None);

        let re = Regex::new("^a").unwrap();
        assert_eq!(load_matrices(&p, Some(&re)).unwrap().len(), 1);
        let re = Regex::new("ids").unwrap();
        let e = load_matrices(&p, Some(&re)).unwrap_err();
        assert!(matches!(&e, ImportError::UnsupportedDtype { tensor, .. } if tensor == "ids"), "{e}");
        let re = Regex::new("nothing").unwrap();
        let e = load_matrices(&p, Some(&re)).unwrap_err().to_string();
        assert!(
            e.contains("no 2-D tensor matches /nothing/") && e.contains("a.weight [2, 3] F32") && e.contains("ids"),
            "{e}"
        );

        let m = load_any(&p, None, ScaleMode::PerTensor).unwrap();
        assert_eq!(m.layers.len(), 3);
        assert_eq!(m.layers[0].decode_weights(), vec![32, -64, 16, 127, 0, -48]);
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = st_file(dir.path(), &[("a.weight", Dtype::F32, vec![2, 2], f32_bytes(&[1.0; 4]))]);
        let bytes = std::fs::read(&p).unwrap();
        for cut in [0, 4, 9, bytes.len() - 1] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(matches!(load_matrices(&p, None), Err(ImportError::SafeTensors { .. })), "cut {cut}");
        }
        let p = st_file(dir.path(), &[("a.weight", Dtype::F32, vec![2, 2], f32_bytes(&[1.0, f32::NAN, 0.0, 0.0]))]);
        assert!(matches!(load_matrices(&p, None), Err(ImportError::NonFinite { index: 1, .. })));
        let p = st_file(dir.path(), &[("a.weight", Dtype::F32, vec![0, 2], vec![])]);
        let e = load_matrices(&p, Some(&Regex::new("a").unwrap())).unwrap_err();
        assert!(matches!(e, ImportError::BadShape { .. }), "{e}");
        assert!(matches!(load_matrices(&p, None), Err(ImportError::NoMatch { .. })));

        let z = dir.path().join("bad.npz");
        std::fs::write(&z, b"PK\x03\x04 not really a zip").unwrap();
        assert!(matches!(load_matrices(&z, None), Err(ImportError::Zip { .. })));
        let missing = dir.path().join("missing.npy");
        let e = load_matrices(&missing, None).unwrap_err();
        assert!(matches!(e, ImportError::Io { .. }) && e.to_string().contains("missing.npy"), "{e}");
        let t = dir.path().join("w.txt");
        std::fs::write(&t, b"1 2 3").unwrap();
        assert!(matches!(load_any(&t, None, ScaleMode::PerTensor), Err(ImportError::UnknownFormat { .. })));
        let n = dir.path().join("w.npy");
        std::fs::write(&n, &npy_f32(&[2, 2], &[1.0; 4])[..30]).unwrap();
        let e = load_matrices(&n, None).unwrap_err();
        assert!(matches!(&e, ImportError::Npy { tensor, .. } if tensor == "w"), "{e}");
    }

    #[test]
    fn npz_and_npy_files() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let z = dir.path().join("m.npz");
        let mut zw = zip::ZipWriter::new(std::fs::File::create(&z).unwrap());
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, shape, data) in [
            ("fc1.weight.npy", vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            ("fc1.bias.npy", vec![3], vec![0.1, 0.2, 0.3]),
            ("fc2.weight.npy", vec![1, 3], vec![-1.0, 0.0, 1.0]),
        ] {
            zw.start_file(name, opts).unwrap();
            zw.write_all(&npy_f32(&shape, &data)).unwrap();
        }
        zw.finish().unwrap();
        let ms = load_matrices(&z, None).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!((ms[0].name.as_str(), ms[0].n_out, ms[0].n_in), ("fc1.weight", 3, 2));
        assert_eq!(ms[0].bias, Some(vec![0.1, 0.2, 0.3]));
        assert_eq!((ms[1].name.as_str(), ms[1].n_out, ms[1].n_in, &ms[1].bias), ("fc2.weight", 1, 3, &None));

        let n = dir.path().join("x.npy");
        std::fs::write(&n, npy_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])).unwrap();
        assert_eq!(load_vectors(&n).unwrap(), vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
        let m = load_matrices(&n, None).unwrap();
        assert_eq!((m[0].name.as_str(), m[0].n_out, m[0].n_in), ("x", 2, 3));
        std::fs::write(&n, npy_f32(&[3], &[1.0, 2.0, 3.0])).unwrap();
        assert_eq!(load_vectors(&n).unwrap(), vec![vec![1.0, 2.0, 3.0]]);
        assert!(matches!(load_matrices(&n, None), Err(ImportError::NoMatch { .. })));
        std::fs::write(&n, npy_f32(&[1, 1, 3], &[1.0, 2.0, 3.0])).unwrap();
        assert!(matches!(load_vectors(&n), Err(ImportError::BadShape { .. })));
    }
}
