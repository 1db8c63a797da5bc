//! `crew-host program`: load a CREW bitstream onto a board with openFPGALoader, after checking it
//! against its build manifest (part, SHA-256).
//!
//! By default the bitstream is `bitstreams/<target>/crew.bit` with `manifest.json` beside it (the
//! bitstream build writes both); `--bitstreams-dir` or `$CREW_BITSTREAMS_DIR` moves the root.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The openFPGALoader executable.
pub const LOADER: &str = "openFPGALoader";
/// Environment variable overriding the bitstreams root.
pub const BITSTREAMS_ENV: &str = "CREW_BITSTREAMS_DIR";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Board (openFPGALoader's `-b`).
    #[arg(long, value_enum, default_value_t = Board::Ulx3s)]
    pub board: Board,
    /// Board variant: selects `bitstreams/<target>/` and the FPGA part the manifest must name.
    #[arg(long, value_enum, default_value_t = Target::Ulx3s85f)]
    pub target: Target,
    /// Bitstream to load (default: `<bitstreams-dir>/<target>/crew.bit`); its `manifest.json`
    /// must be beside it.
    #[arg(long)]
    pub bitstream: Option<PathBuf>,
    /// Root of the built bitstreams (default: `$CREW_BITSTREAMS_DIR`, else `bitstreams`).
    #[arg(long)]
    pub bitstreams_dir: Option<PathBuf>,
    /// Write the SPI flash (persists across power cycles) instead of configuring the SRAM.
    #[arg(long)]
    pub flash: bool,
    /// Check the bitstream and print the openFPGALoader command without running it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    Ulx3s,
}

impl Board {
    /// openFPGALoader's board name.
    pub fn loader_name(self) -> &'static str {
        match self {
            Board::Ulx3s => "ulx3s",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    #[value(name = "ulx3s-85f")]
    Ulx3s85f,
    #[value(name = "ulx3s-25f")]
    Ulx3s25f,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Ulx3s85f => "ulx3s-85f",
            Target::Ulx3s25f => "ulx3s-25f",
        }
    }

    /// The ECP5 part of the target.
    pub fn part(self) -> &'static str {
        match self {
            Target::Ulx3s85f => "LFE5U-85F",
            Target::Ulx3s25f => "LFE5U-25F",
        }
    }
}

/// `manifest.json` of a built bitstream.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Manifest {
    pub target: String,
    /// FPGA part, e.g. `LFE5U-85F`.
    pub part: String,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub git_commit: Option<String>,
    #[serde(default)]
    pub core: Option<CoreInfo>,
    /// Tool name -> version.
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
    #[serde(default)]
    pub fmax_mhz: Option<Fmax>,
    /// nextpnr's utilization report, as is.
    #[serde(default)]
    pub utilization: serde_json::Value,
    /// Bitstream file name, relative to the manifest.
    #[serde(default = "default_bitstream")]
    pub bitstream: String,
    /// SHA-256 of the bitstream, hex.
    pub sha256: String,
}

fn default_bitstream() -> String {
    "crew.bit".into()
}

/// The core configuration a bitstream was built with.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CoreInfo {
    pub kind: String,
    pub lanes: u32,
    pub groups: u32,
    pub mults: u32,
    pub wmem_words: u32,
    /// Further fields (buffer depths, ...), kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Timing of the placed design.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Fmax {
    pub achieved: f64,
    pub constraint: f64,
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The checked bitstream: its path and manifest.
#[derive(Debug)]
pub struct Checked {
    pub bitstream: PathBuf,
    pub manifest: Manifest,
}

/// Locate the bitstream and its manifest and check part and hash.
pub fn check(args: &Args) -> anyhow::Result<Checked> {
    let target = args.target;
    let (bit, manifest_path) = match &args.bitstream {
        Some(b) => {
            let dir = b.parent().map(Path::to_path_buf).unwrap_or_default();
            (b.clone(), dir.join("manifest.json"))
        }
        None => {
            let root = args
                .bitstreams_dir
                .clone()
                .or_else(|| std::env::var_os(BITSTREAMS_ENV).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("bitstreams"));
            let dir = root.join(target.name());
            (dir.join("crew.bit"), dir.join("manifest.json"))
        }
    };
    if !manifest_path.is_file() {
        bail!(
            "missing manifest {}: the bitstream build writes it beside the bitstream; build the {} bitstream \
             first (or pass --bitstream / --bitstreams-dir)",
            manifest_path.display(),
            target.name()
        );
    }
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read manifest {}", manifest_path.display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("malformed manifest {}", manifest_path.display()))?;
    if !manifest.part.eq_ignore_ascii_case(target.part()) {
        bail!(
            "wrong part: {} was built for {} (target `{}`), but --target {} is an {}",
            manifest_path.display(),
            manifest.part,
            manifest.target,
            target.name(),
            target.part()
        );
    }
    if !bit.is_file() {
        bail!("missing bitstream {}: build the {} bitstream first", bit.display(), target.name());
    }
    let found = sha256_file(&bit)?;
    if !found.eq_ignore_ascii_case(manifest.sha256.trim()) {
        bail!(
            "hash mismatch: {} has SHA-256 {found}, but {} says {}: the bitstream was rebuilt or damaged \
             after its manifest was written",
            bit.display(),
            manifest_path.display(),
            manifest.sha256.trim()
        );
    }
    Ok(Checked { bitstream: bit, manifest })
}

/// openFPGALoader's arguments.
pub fn loader_args(args: &Args, bit: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["-b".into(), args.board.loader_name().into()];
    if args.flash {
        v.push("-f".into());
    }
    v.push(bit.as_os_str().to_owned());
    v
}

/// The first executable `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Echo a child's stream line by line while keeping a copy.
fn tee<R: Read + Send + 'static>(r: R, to_stderr: bool) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if to_stderr {
                let _ = writeln!(std::io::stderr(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let checked = check(&args)?;
    let m = &checked.manifest;
    let largs = loader_args(&args, &checked.bitstream);
    let command = std::iter::once(LOADER.to_string())
        .chain(largs.iter().map(|a| shell_quote(&a.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "bitstream   {} ({} {}, commit {}, sha256 {}…)",
        checked.bitstream.display(),
        m.part,
        m.package.as_deref().unwrap_or("?"),
        m.git_commit.as_deref().unwrap_or("?"),
        &m.sha256.get(..12).unwrap_or(&m.sha256)
    );
    if args.dry_run {
        println!("{command}");
        return Ok(());
    }
    let Some(loader) = find_on_path(LOADER) else {
        bail!(
            "{LOADER} is not installed (not found on PATH): install it with scripts/install-fpga-tools.sh \
             (or `apt-get install openfpgaloader`)"
        );
    };
    println!("running     {command}");
    let mut child = Command::new(&loader)
        .args(&largs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", loader.display()))?;
    let out = tee(child.stdout.take().context("child stdout")?, false);
    let err = tee(child.stderr.take().context("child stderr")?, true);
    let status = child.wait().with_context(|| format!("waiting for {}", loader.display()))?;
    let text = format!("{}{}", out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if status.success() {
        println!(
            "{} {} loaded onto the {}",
            if args.flash { "flashed:" } else { "done:" },
            m.part,
            args.board.loader_name()
        );
        return Ok(());
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("unable to open ftdi device")
        || lower.contains("no device found")
        || lower.contains("ftdi_usb_open")
    {
        bail!(
            "no board found: {LOADER} could not open the {}'s FTDI USB device ({status}). Is the board plugged in \
             (`lsusb` shows 0403:6015)? Without root, install openFPGALoader's udev rules \
             (99-openfpgaloader.rules into /etc/udev/rules.d, then `sudo udevadm control --reload && sudo udevadm trigger`) \
             and add yourself to the plugdev group (`sudo usermod -aG plugdev $USER`, then log in again)",
            args.board.loader_name()
        );
    }
    bail!("{LOADER} failed ({status}); its output is above")
}
