//! `crew-host program` without a board: manifest checks on a temporary bitstreams tree, and a fake
//! openFPGALoader on a temporary PATH for the "no board", "missing tool" and success paths.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIT: &[u8] = b"\xff\x00fake ECP5 bitstream\x00\x01\x02";
/// SHA-256 of [`BIT`], computed independently of the code under test (`sha256sum`).
fn bit_sha256() -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b");
    std::fs::write(&p, BIT).unwrap();
    let o = Command::new("sha256sum").arg(&p).output().expect("sha256sum runs");
    String::from_utf8(o.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// `bitstreams/<target>/{crew.bit,manifest.json}` with the given part and hash.
    fn new(target: &str, part: &str, sha: &str) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("bitstreams").join(target);
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("crew.bit"), BIT).unwrap();
        let manifest = serde_json::json!({
            "target": target,
            "part": part,
            "package": "CABGA381",
            "git_commit": "0123456789abcdef",
            "core": {"kind": "crew", "lanes": 16, "groups": 4, "mults": 4, "wmem_words": 65536, "ibuf_depth": 1024},
            "tools": {"yosys": "0.40", "nextpnr-ecp5": "0.7"},
            "fmax_mhz": {"achieved": 103.2, "constraint": 100.0},
            "utilization": {"TRELLIS_SLICE": {"used": 1000, "available": 41820}},
            "bitstream": "crew.bit",
            "sha256": sha,
        });
        std::fs::write(t.join("manifest.json"), serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
        Tree { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("bitstreams")
    }

    fn bin(&self) -> PathBuf {
        let b = self.dir.path().join("bin");
        std::fs::create_dir_all(&b).unwrap();
        b
    }

    /// A fake openFPGALoader that logs its arguments, prints `say` and exits with `code`.
    fn fake_loader(&self, say: &str, code: i32) -> PathBuf {
        let bin = self.bin();
        let log = self.dir.path().join("loader.log");
        let script = format!("#!/bin/sh\necho \"$@\" > '{}'\necho '{say}' >&2\nexit {code}\n", log.display());
        let p = bin.join("openFPGALoader");
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        log
    }
}

fn crew_host(args: &[&str], path_env: Option<&Path>, bitstreams_env: Option<&Path>) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crew-host"));
    c.arg("program").args(args).env_remove("CREW_BITSTREAMS_DIR");
    if let Some(p) = path_env {
        c.env("PATH", p);
    }
    if let Some(b) = bitstreams_env {
        c.env("CREW_BITSTREAMS_DIR", b);
    }
    let o: Output = c.output().expect("crew-host runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn dry_run_prints_the_exact_command() {
    let t = Tree::new("ulx3s-85f", "LFE5U-85F", &bit_sha256());
    let root = t.root();
    let bit = root.join("ulx3s-85f/crew.bit");
    let (ok, out, err) = crew_host(&["--dry-run", "--bitstreams-dir", root.to_str().unwrap()], None, None);
    assert!(ok, "{out}\n{err}");
    assert!(out.lines().any(|l| l == format!("openFPGALoader -b ulx3s {}", bit.display())), "{out}");
    // The environment variable, the 25F target and --flash.
    let t25 = Tree::new("ulx3s-25f", "LFE5U-25F", &bit_sha256());
    let (ok, out, err) = crew_host(&["--dry-run", "--target", "ulx3s-25f", "--flash"], None, Some(&t25.root()));
    assert!(ok, "{out}\n{err}");
    let bit25 = t25.root().join("ulx3s-25f/crew.bit");
    assert!(out.lines().any(|l| l == format!("openFPGALoader -b ulx3s -f {}", bit25.display())), "{out}");
}

#[test]
fn explicit_bitstream_uses_the_manifest_beside_it() {
    let t = Tree::new("ulx3s-85f", "LFE5U-85F", &bit_sha256());
    let bit = t.root().join("ulx3s-85f/crew.bit");
    let (ok, out, err) = crew_host(&["--dry-run", "--bitstream", bit.to_str().unwrap()], None, None);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("-b ulx3s {}", bit.display())), "{out}");
}

#[test]
fn wrong_part_is_refused() {
    let t = Tree::new("ulx3s-85f", "LFE5U-25F", &bit_sha256());
    let (ok, _, err) = crew_host(&["--dry-run"], None, Some(&t.root()));
    assert!(!ok);
    assert!(err.contains("wrong part") && err.contains("LFE5U-25F") && err.contains("LFE5U-85F"), "{err}");
}

#[test]
fn hash_mismatch_is_refused() {
    let t = Tree::new("ulx3s-85f", "LFE5U-85F", &"0".repeat(64));
    let (ok, _, err) = crew_host(&["--dry-run"], None, Some(&t.root()));
    assert!(!ok);
    assert!(err.contains("hash mismatch") && err.contains(&bit_sha256()), "{err}");
}

#[test]
fn missing_files_are_named() {
    let t = Tree::new("ulx3s-85f", "LFE5U-85F", &bit_sha256());
    // No 25F tree at all: the manifest is missing.
    let (ok, _, err) = crew_host(&["--dry-run", "--target", "ulx3s-25f"], None, Some(&t.root()));
    assert!(!ok);
    assert!(err.contains("missing manifest") && err.contains("ulx3s-25f/manifest.json"), "{err}");
    // The manifest is there, the bitstream is not.
    std::fs::remove_file(t.root().join("ulx3s-85f/crew.bit")).unwrap();
    let (ok, _, err) = crew_host(&["--dry-run"], None, Some(&t.root()));
    assert!(!ok);
    assert!(err.contains("missing bitstream") && err.contains("ulx3s-85f/crew.bit"), "{err}");
    // A manifest that is not JSON.
    std::fs::write(t.root().join("ulx3s-85f/manifest.json"), "{not json").unwrap();
    let (ok, _, err) = crew_host(&["--dry-run"], None, Some(&t.root()));
    assert!(!ok);
    assert!(err.contains("malformed manifest"), "{err}");
}

#[test]
fn missing_tool_says_how_to_install() {
    let t = Tree::new("ulx3s-85f", "LFE5U-85F", &bit_sha256());
    let empty = t.bin();
    let (ok, _, err) = crew_host(&[], Some(&empty), Some(&t.root()));
    assert!(!ok);
    assert!(err.contains("openFPGALoader is not installed") && err.contains("scripts/install-fpga-tools.sh"), "{err}");
}

#[test]
fn no_board_gives_the_udev_hint() {
    let t = Tree::new("ulx3s-85f", "LFE5U-85F", &bit_sha256());
    t.fake_loader("unable to open ftdi device: -3 (device not found)", 1);
    let (ok, _, err) = crew_host(&[], Some(&t.bin()), Some(&t.root()));
    assert!(!ok);
    assert!(err.contains("no board found") && err.contains("udev") && err.contains("plugdev"), "{err}");
}

#[test]
fn other_loader_failures_are_reported() {
    let t = Tree::new("ulx3s-85f", "LFE5U-85F", &bit_sha256());
    t.fake_loader("JTAG init failed", 2);
    let (ok, _, err) = crew_host(&[], Some(&t.bin()), Some(&t.root()));
    assert!(!ok);
    assert!(err.contains("JTAG init failed"), "the tool's output is passed on: {err}");
    assert!(err.contains("openFPGALoader failed") && !err.contains("no board found"), "{err}");
}

#[test]
fn success_runs_the_loader_with_board_and_flash() {
    let t = Tree::new("ulx3s-85f", "LFE5U-85F", &bit_sha256());
    let log = t.fake_loader("Done", 0);
    let (ok, out, err) = crew_host(&["--flash"], Some(&t.bin()), Some(&t.root()));
    assert!(ok, "{out}\n{err}");
    let args = std::fs::read_to_string(log).unwrap();
    assert_eq!(args.trim(), format!("-b ulx3s -f {}", t.root().join("ulx3s-85f/crew.bit").display()));
    assert!(out.contains("flashed"), "{out}");
}
