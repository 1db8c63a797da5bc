//! The PCIe BAR backend without hardware: a file laid out like sysfs stands in for the BAR, and an
//! emulator thread maps the same file and serves it through an [`EmuDevice`]. The driver goes
//! through its real path: sysfs lookup, enable, `open`, `mmap`, volatile 32-bit accesses.

mod common;
use common::{check_model, error_chain, layer, model, random_input as input};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crew_core::config::DeviceConfig;
use crew_core::reference::gemv_crew;
use crew_core::regs;
use crew_driver::pcie::sim::{bar_size, fake_sysfs, Mirror, Server};
use crew_driver::pcie::{open_pcie, PcieBar, PcieError, PcieSpec, SYSFS_ROOT_ENV};
use crew_driver::{Accelerator, EmuDevice, OpenOptions, Transport};

const BDF: &str = "0000:01:00.0";

/// A fake sysfs tree with an emulated device behind `resource0`, and the server thread.
struct Bench {
    root: tempfile::TempDir,
    resource: PathBuf,
    server: Server<PcieBar, EmuDevice>,
}

fn serve(cfg: DeviceConfig, enabled: bool) -> Bench {
    let root = tempfile::tempdir().unwrap();
    let resource = fake_sysfs(root.path(), BDF, 0, bar_size(&cfg), enabled).unwrap();
    let view = PcieBar::open_resource(&resource).unwrap();
    let mirror = Mirror::new(view, EmuDevice::new(cfg)).unwrap();
    let server = Server::spawn(mirror, Duration::from_secs(120));
    Bench { root, resource, server }
}

fn spec() -> PcieSpec {
    PcieSpec::parse(&format!("pcie:{BDF}")).unwrap()
}

#[test]
fn resident_model_runs_bit_exact_through_the_bar() {
    let cfg = DeviceConfig::ECP5_25F;
    let b = serve(cfg, false);
    let bar = PcieBar::open(&spec(), b.root.path()).unwrap();
    assert_eq!(bar.path(), b.resource);
    assert_eq!(bar.len() as u64, bar_size(&cfg));
    // The device was disabled: opening it wrote 1 to `enable`.
    let enable = b.resource.with_file_name("enable");
    assert_eq!(std::fs::read_to_string(&enable).unwrap().trim(), "1");

    let mut acc = Accelerator::new(bar, OpenOptions::default()).unwrap();
    assert_eq!(acc.config(), cfg);
    // Layers that fit, one with more outputs than OBUF_DEPTH (row tiles).
    let m = model(vec![layer("fc1", 64, 100, 1), layer("fc2", 150, 120, 2), layer("wide", 1500, 16, 3)]);
    let report = acc.load(&m).unwrap();
    assert!(report.resident);
    assert!(report.tiled_layers >= 1);
    check_model(&mut acc, &m, 100);
    // Batches carry partial sums through the host: preloaded OUTPUT window.
    let xs: Vec<Vec<i8>> = (0..3).map(|k| input(120, 500 + k)).collect();
    let runs = acc.run_batch(1, &xs).unwrap();
    for (x, r) in xs.iter().zip(&runs) {
        assert_eq!(r.outputs, gemv_crew(&m.layers[1], x));
    }
    drop(acc);
    let (_, dev, served) = b.server.stop().expect("server thread").expect("server ok");
    assert!(served > 0);
    assert!(dev.runs() > 0);
}

#[test]
fn streamed_model_runs_bit_exact_through_the_bar() {
    // A model larger than weight memory: every tile is written (and CRC-checked) when it runs.
    let cfg = DeviceConfig { wmem_words: 4096, ibuf_depth: 256, obuf_depth: 256, ..DeviceConfig::ECP5_25F };
    let b = serve(cfg, true);
    let mut acc = Accelerator::new(PcieBar::open(&spec(), b.root.path()).unwrap(), OpenOptions::default()).unwrap();
    let m = model(vec![layer("big", 300, 400, 7), layer("small", 20, 30, 8)]);
    let report = acc.load(&m).unwrap();
    assert!(!report.resident);
    check_model(&mut acc, &m, 900);
}

#[test]
fn sysfs_root_comes_from_the_environment() {
    let cfg = DeviceConfig { wmem_words: 1024, ibuf_depth: 64, obuf_depth: 64, ..DeviceConfig::ECP5_25F };
    let b = serve(cfg, true);
    // The only test that sets the variable; every other test passes its root explicitly.
    std::env::set_var(SYSFS_ROOT_ENV, b.root.path());
    let bar = open_pcie(&format!("pcie:{BDF},bar=0"));
    // The device-string parser of the crate goes the same way.
    let opened = crew_driver::open(&format!("pcie:{BDF}"), &OpenOptions::default());
    let missing = crew_driver::open("pcie:0000:02:00.0", &OpenOptions::default());
    std::env::remove_var(SYSFS_ROOT_ENV);
    let mut acc = Accelerator::new(bar.unwrap(), OpenOptions::default()).unwrap();
    let m = model(vec![layer("l", 40, 50, 11)]);
    acc.load(&m).unwrap();
    check_model(&mut acc, &m, 1);
    drop(acc);
    let mut acc = opened.unwrap();
    assert_eq!(acc.config(), EmuDevice::new(cfg).config());
    acc.load(&m).unwrap();
    let x = input(50, 3);
    assert_eq!(acc.run_layer(0, &x).unwrap().outputs, gemv_crew(&m.layers[0], &x));
    let e = error_chain(&missing.unwrap_err());
    assert!(e.contains("no PCIe device") && e.contains("0000:02:00.0"), "{e}");
}

#[test]
fn registers_read_and_write_through_the_mapping() {
    let cfg = DeviceConfig::ECP5_25F;
    let b = serve(cfg, true);
    let mut bar = PcieBar::open(&spec(), b.root.path()).unwrap();
    assert_eq!(bar.read32(regs::ID).unwrap(), regs::ID_MAGIC);
    assert_eq!(bar.read32(regs::WMEM_WORDS).unwrap(), cfg.wmem_words);
    bar.write32(regs::SCRATCH, 0x1234_5678).unwrap();
    assert_eq!(bar.read32(regs::SCRATCH).unwrap(), 0x1234_5678);
    // The bytes are little-endian in the resource file.
    let bytes = std::fs::read(&b.resource).unwrap();
    assert_eq!(&bytes[regs::SCRATCH as usize..][..4], &0x1234_5678u32.to_le_bytes());
    let data: Vec<u32> = (0..1000u32).map(|k| k.wrapping_mul(0x0101_0101)).collect();
    bar.write_burst(regs::WEIGHT_WINDOW + 64, &data).unwrap();
    let mut back = vec![0; 1000];
    bar.read_burst(regs::WEIGHT_WINDOW + 64, &mut back).unwrap();
    assert_eq!(back, data);
    // A soft reset goes through the doorbell and comes back with STATUS clear.
    bar.write32(regs::CTRL, regs::ctrl::SOFT_RESET).unwrap();
    assert_eq!(bar.read32(regs::STATUS).unwrap(), 0);
    assert_eq!(bar.read32(regs::CTRL).unwrap(), 0);
}

#[test]
fn bad_accesses_are_errors_not_panics() {
    let cfg = DeviceConfig { wmem_words: 1024, ..DeviceConfig::ECP5_25F };
    let root = tempfile::tempdir().unwrap();
    let resource = fake_sysfs(root.path(), BDF, 0, bar_size(&cfg), true).unwrap();
    write_word(&resource, regs::WMEM_WORDS, cfg.wmem_words);
    let mut bar = PcieBar::open(&spec(), root.path()).unwrap();
    let len = bar.len() as u32;
    assert!(matches!(bar.read32(2), Err(PcieError::Access { addr: 2, .. })));
    assert!(matches!(bar.write32(len, 0), Err(PcieError::Access { .. })));
    assert!(matches!(bar.read32(u32::MAX - 3), Err(PcieError::Access { .. })));
    let mut out = [0u32; 4];
    assert!(matches!(bar.read_burst(len - 8, &mut out), Err(PcieError::Access { .. })));
    assert!(matches!(bar.write_burst(len - 4, &[1, 2]), Err(PcieError::Access { .. })));
    let e = bar.read32(6).unwrap_err();
    assert!(e.to_string().contains("0x00000006"), "{e}");
    assert!(std::error::Error::source(&e).unwrap().to_string().contains("unaligned"));
    let e = bar.read32(len).unwrap_err();
    assert!(std::error::Error::source(&e).unwrap().to_string().contains("past the end"), "{e}");
}

fn write_word(path: &Path, addr: u32, value: u32) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&value.to_le_bytes(), addr as u64).unwrap();
}

#[test]
fn missing_device_and_missing_bar_name_the_path() {
    let root = tempfile::tempdir().unwrap();
    let e = PcieBar::open(&spec(), root.path()).unwrap_err();
    match &e {
        PcieError::DeviceMissing { path, .. } => assert_eq!(path, &root.path().join("bus/pci/devices").join(BDF)),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(BDF) && e.to_string().contains("lspci"), "{e}");
    assert!(std::error::Error::source(&e).is_some());

    fake_sysfs(root.path(), BDF, 0, 1 << 21, true).unwrap();
    let e = PcieBar::open(&PcieSpec::parse(&format!("{BDF},bar=2")).unwrap(), root.path()).unwrap_err();
    match &e {
        PcieError::DeviceMissing { path, .. } => assert!(path.ends_with("resource2"), "{path:?}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(open_pcie("pcie:0000:01:00"), Err(PcieError::BadSpec { .. })));
    assert!(matches!(open_pcie("pcie:0000:01:00.0,bar=9"), Err(PcieError::BadSpec { .. })));
}

#[test]
fn too_small_bars_are_refused_with_sizes() {
    let root = tempfile::tempdir().unwrap();
    // Smaller than the register block.
    fake_sysfs(root.path(), BDF, 0, 16, true).unwrap();
    match PcieBar::open(&spec(), root.path()).unwrap_err() {
        PcieError::BarTooSmall { size: 16, needed, .. } => assert_eq!(needed, regs::SCRATCH as u64 + 4),
        other => panic!("{other:?}"),
    }
    // Holds the registers, but not the weight window the device reports.
    let resource = fake_sysfs(root.path(), BDF, 0, 1 << 20, true).unwrap();
    write_word(&resource, regs::WMEM_WORDS, 16384);
    let e = PcieBar::open(&spec(), root.path()).unwrap_err();
    match &e {
        PcieError::BarTooSmall { size, needed, wmem_words, .. } => {
            assert_eq!((*size, *needed, *wmem_words), (1 << 20, regs::WEIGHT_WINDOW as u64 + 4 * 16384, 16384))
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("1048576 bytes") && e.to_string().contains("1114112"), "{e}");
    // A device that reads all-ones (gone from the bus) needs an absurd size: refused, no overflow.
    write_word(&resource, regs::WMEM_WORDS, u32::MAX);
    assert!(matches!(PcieBar::open(&spec(), root.path()), Err(PcieError::BarTooSmall { .. })));
}

#[test]
fn an_enabled_device_is_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let resource = fake_sysfs(root.path(), BDF, 0, 1 << 21, true).unwrap();
    let enable = resource.with_file_name("enable");
    std::fs::write(&enable, "1\n").unwrap();
    let before = std::fs::metadata(&enable).unwrap().modified().unwrap();
    PcieBar::open(&spec(), root.path()).unwrap();
    assert_eq!(std::fs::read_to_string(&enable).unwrap(), "1\n");
    assert_eq!(std::fs::metadata(&enable).unwrap().modified().unwrap(), before);
}

#[test]
fn doorbell_without_a_device_times_out() {
    let root = tempfile::tempdir().unwrap();
    fake_sysfs(root.path(), BDF, 0, 1 << 21, true).unwrap();
    // No server: nobody clears the pulse.
    let mut bar = PcieBar::open(&spec(), root.path()).unwrap().with_doorbell_timeout(Duration::from_millis(30));
    let e = bar.write32(regs::CTRL, regs::ctrl::START).unwrap_err();
    assert!(matches!(e, PcieError::DoorbellTimeout { pulse: 1, .. }), "{e}");
    // A device that fell off the bus reads all-ones.
    let e = bar.write32(regs::CTRL, u32::MAX).unwrap_err();
    assert!(matches!(e, PcieError::NotResponding), "{e}");
    // Level bits alone are no doorbell.
    bar.write32(regs::CTRL, regs::ctrl::IRQ_EN).unwrap();
}

/// Whether this process can open a mode-000 file anyway (root, CAP_DAC_OVERRIDE).
fn permission_checks_bypassed(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    std::fs::write(&probe, "x").unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::OpenOptions::new().read(true).write(true).open(&probe).is_ok()
}

#[test]
fn permission_denied_says_how_to_grant_access() {
    // The unprivileged child this test starts below (as `nobody`, through setpriv) takes this branch.
    if let Some(root) = std::env::var_os("CREW_PERMISSION_CHILD_ROOT") {
        let e = PcieBar::open(&spec(), Path::new(&root)).unwrap_err();
        assert!(matches!(e, PcieError::PermissionDenied { .. }), "{e:?}");
        // (The path may be the device directory if the temp dir itself is out of reach.)
        for hint in ["run as root", "chmod", "udev", "setpci", "enable"] {
            assert!(e.to_string().contains(hint), "missing `{hint}` in: {e}");
        }
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let resource = fake_sysfs(root.path(), BDF, 0, 1 << 21, true).unwrap();
    let check = |e: &PcieError| {
        let msg = e.to_string();
        assert!(matches!(e, PcieError::PermissionDenied { .. }), "{e:?}");
        for hint in ["run as root", "chmod", "udev", "setpci", "resource0", "enable"] {
            assert!(msg.contains(hint), "missing `{hint}` in: {msg}");
        }
        assert!(std::error::Error::source(e).is_some());
    };
    if !permission_checks_bypassed(root.path()) {
        std::fs::set_permissions(&resource, std::fs::Permissions::from_mode(0o000)).unwrap();
        check(&PcieBar::open(&spec(), root.path()).unwrap_err());
        return;
    }
    // Running as root: the kernel bypasses file modes. Drop privileges in a child process (the
    // test binary itself, running this test with the child's variable set) when `setpriv` is there.
    // tempfile makes the root 0700; the directories below it are 0755.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&resource, std::fs::Permissions::from_mode(0o600)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let child = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["--exact", "permission_denied_says_how_to_grant_access", "--test-threads=1", "--nocapture"])
        .env("CREW_PERMISSION_CHILD_ROOT", root.path())
        .output();
    match child {
        Ok(out) if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed") => {
            println!("checked in an unprivileged child process");
        }
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("permission_denied_says_how_to_grant_access") => {
            panic!(
                "unprivileged child failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        }
        _ => {
            // No way to drop privileges here: check the message the error builds.
            let e = PcieError::PermissionDenied {
                path: resource.clone(),
                bdf: BDF.into(),
                enable: resource.with_file_name("enable"),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            };
            check(&e);
        }
    }
}
