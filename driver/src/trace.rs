//! Recording every bus transaction of a session, so that the generated Verilog can replay it
//! (`sim/verilog/replay_tb.v`, `docs/cosim.md`).
//!
//! A trace is text, one transaction per line, each word access on its own line (bursts are
//! split into words): `W <addr> <data>` or `R <addr> <data read>`, both as 8 hex digits; lines
//! starting with `#` are comments. [`record`] wraps any transport; the file appears only when
//! [`TraceFile::finish`] succeeds (it is written to a temporary file beside it and renamed).

use crate::transport::Transport;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The first line of every trace.
pub const HEADER: &str = "# crew bus trace v1";

/// One recorded bus transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transaction {
    Write { addr: u32, data: u32 },
    Read { addr: u32, data: u32 },
}

impl std::fmt::Display for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Transaction::Write { addr, data } => write!(f, "W {addr:08x} {data:08x}"),
            Transaction::Read { addr, data } => write!(f, "R {addr:08x} {data:08x}"),
        }
    }
}

/// A trace line that is not a transaction or a comment.
#[derive(Debug, thiserror::Error)]
#[error("trace line {line}: {reason}: `{text}`")]
pub struct ParseError {
    pub line: usize,
    pub text: String,
    pub reason: &'static str,
}

/// Parse a trace (the format of the module docs).
pub fn parse(text: &str) -> Result<Vec<Transaction>, ParseError> {
    Ok(parse_numbered(text)?.into_iter().map(|(_, t)| t).collect())
}

/// [`parse`], with the (1-based) line number of every transaction.
pub fn parse_numbered(text: &str) -> Result<Vec<(usize, Transaction)>, ParseError> {
    let mut out = Vec::new();
    for (k, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let err = |reason| ParseError { line: k + 1, text: raw.to_string(), reason };
        let f: Vec<&str> = l.split_whitespace().collect();
        let [op, a, d] = f[..] else { return Err(err("expected `W|R <addr> <data>`")) };
        let hex = |s: &str| u32::from_str_radix(s, 16).map_err(|_| err("not a 32-bit hex number"));
        let (addr, data) = (hex(a)?, hex(d)?);
        let t = match op {
            "W" => Transaction::Write { addr, data },
            "R" => Transaction::Read { addr, data },
            _ => return Err(err("the operation is neither W nor R")),
        };
        out.push((k + 1, t));
    }
    Ok(out)
}

/// Writing the trace file failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the bus trace {}", path.display())]
pub struct TraceWriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

struct Log {
    out: Option<BufWriter<tempfile::NamedTempFile>>,
    transactions: u64,
    error: Option<std::io::Error>,
}

impl Log {
    fn push(&mut self, t: Transaction) {
        if self.error.is_some() {
            return;
        }
        if let Some(out) = self.out.as_mut() {
            match writeln!(out, "{t}") {
                Ok(()) => self.transactions += 1,
                Err(e) => self.error = Some(e),
            }
        }
    }
}

/// A transport that records every transaction of `inner` (see [`record`]).
pub struct Recorder<T> {
    inner: T,
    log: Arc<Mutex<Log>>,
}

/// The trace of a [`Recorder`]; [`finish`](TraceFile::finish) puts it in place.
pub struct TraceFile {
    log: Arc<Mutex<Log>>,
    path: PathBuf,
}

/// Record the transactions of `inner` into `path`; `comment` goes into the header (e.g. the
/// device string). Nothing appears at `path` until [`TraceFile::finish`].
pub fn record<T: Transport>(inner: T, path: &Path, comment: &str) -> Result<(Recorder<T>, TraceFile), TraceWriteError> {
    let fail = |source| TraceWriteError { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new().prefix(".crew-trace").tempfile_in(dir).map_err(fail)?;
    let mut out = BufWriter::new(tmp);
    writeln!(out, "{HEADER}").map_err(fail)?;
    for line in comment.lines() {
        writeln!(out, "# {line}").map_err(fail)?;
    }
    let log = Arc::new(Mutex::new(Log { out: Some(out), transactions: 0, error: None }));
    Ok((Recorder { inner, log: log.clone() }, TraceFile { log, path: path.to_path_buf() }))
}

impl TraceFile {
    /// Flush the trace and rename it into place; returns the number of transactions.
    pub fn finish(self) -> Result<u64, TraceWriteError> {
        let fail = |source| TraceWriteError { path: self.path.clone(), source };
        let mut log = self.log.lock().map_err(|_| fail(std::io::Error::other("trace log poisoned")))?;
        if let Some(e) = log.error.take() {
            return Err(fail(e));
        }
        let out = log.out.take().ok_or_else(|| fail(std::io::Error::other("trace already finished")))?;
        let tmp = out.into_inner().map_err(|e| fail(e.into_error()))?;
        tmp.persist(&self.path).map_err(|e| fail(e.error))?;
        Ok(log.transactions)
    }
}

impl<T> Recorder<T> {
    fn push(&self, t: Transaction) {
        if let Ok(mut log) = self.log.lock() {
            log.push(t);
        }
    }
}

impl<T: Transport> Transport for Recorder<T> {
    type Error = T::Error;

    fn read32(&mut self, addr: u32) -> Result<u32, T::Error> {
        let data = self.inner.read32(addr)?;
        self.push(Transaction::Read { addr, data });
        Ok(data)
    }

    fn write32(&mut self, addr: u32, data: u32) -> Result<(), T::Error> {
        self.inner.write32(addr, data)?;
        self.push(Transaction::Write { addr, data });
        Ok(())
    }

    fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), T::Error> {
        self.inner.read_burst(addr, out)?;
        for (k, &data) in out.iter().enumerate() {
            self.push(Transaction::Read { addr: addr + 4 * k as u32, data });
        }
        Ok(())
    }

    fn write_burst(&mut self, addr: u32, data: &[u32]) -> Result<(), T::Error> {
        self.inner.write_burst(addr, data)?;
        for (k, &d) in data.iter().enumerate() {
            self.push(Transaction::Write { addr: addr + 4 * k as u32, data: d });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emu::EmuTransport;
    use crew_core::regs;

    #[test]
    fn records_words_and_bursts_and_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let (mut rec, file) = record(EmuTransport::new(Default::default()), &path, "device emu").unwrap();
        assert_eq!(rec.read32(regs::ID).unwrap(), regs::ID_MAGIC);
        rec.write32(regs::SCRATCH, 0xdead_beef).unwrap();
        rec.write_burst(regs::INPUT_WINDOW, &[1, 2]).unwrap();
        assert!(!path.exists(), "the trace must not appear before finish");
        assert_eq!(file.finish().unwrap(), 4);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# crew bus trace v1\n# device emu\n"), "{text}");
        let t = parse(&text).unwrap();
        assert_eq!(t[0], Transaction::Read { addr: regs::ID, data: regs::ID_MAGIC });
        assert_eq!(t[1], Transaction::Write { addr: regs::SCRATCH, data: 0xdead_beef });
        assert_eq!(t[3], Transaction::Write { addr: regs::INPUT_WINDOW + 4, data: 2 });
        let n = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(n, 1, "no temporary file is left behind");
    }

    #[test]
    fn an_unfinished_trace_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let (mut rec, file) = record(EmuTransport::new(Default::default()), &path, "").unwrap();
        rec.read32(regs::ID).unwrap();
        drop(file);
        drop(rec);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let e = parse("# c\nW 0 1\nX 1 2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("neither W nor R"), "{e}");
        assert_eq!(parse("R 10 zz").unwrap_err().reason, "not a 32-bit hex number");
        assert!(parse("R 10").is_err());
    }
}
