//! The XDMA backend without hardware: files in a temp directory stand in for the character
//! devices (`xdma0_user`, `xdma0_h2c_0`, `xdma0_c2h_0`), and an emulator thread serves them
//! through an [`EmuDevice`]. The driver goes through its real path: opening the nodes, `pread` /
//! `pwrite` of single words on the user node, aligned DMA buffers on the H2C/C2H nodes.

mod common;
use common::{check_model, error_chain, layer, model, random_input as input};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crew_core::config::DeviceConfig;
use crew_core::reference::gemv_crew;
use crew_core::regs;
use crew_driver::pcie::sim::{bar_size, fake_xdma, Mirror, Server};
use crew_driver::xdma::{open_xdma, Node, Xdma, XdmaError, XdmaSpec, DEFAULT_USER_BURST_MAX};
use crew_driver::{Accelerator, EmuDevice, OpenOptions, Transport};

fn node(base: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", base.display()))
}

/// Nodes in a temp dir, one address space, served by an emulated device.
fn serve(cfg: DeviceConfig) -> (tempfile::TempDir, PathBuf, Server<Xdma, EmuDevice>) {
    let dir = tempfile::tempdir().unwrap();
    let base = fake_xdma(dir.path(), "xdma0", bar_size(&cfg)).unwrap();
    let view = open_xdma(base.to_str().unwrap()).unwrap();
    let mirror = Mirror::new(view, EmuDevice::new(cfg)).unwrap();
    (dir, base, Server::spawn(mirror, Duration::from_secs(120)))
}

#[test]
fn resident_model_runs_bit_exact_through_xdma() {
    let cfg = DeviceConfig::ECP5_25F;
    let (_dir, base, server) = serve(cfg);
    let xdma = open_xdma(&format!("xdma:{}", base.display())).unwrap();
    let mut acc = Accelerator::new(xdma, OpenOptions::default()).unwrap();
    assert_eq!(acc.config(), cfg);
    let m = model(vec![layer("fc1", 64, 100, 1), layer("fc2", 150, 120, 2), layer("wide", 1500, 16, 3)]);
    assert!(acc.load(&m).unwrap().resident);
    check_model(&mut acc, &m, 40);
    let xs: Vec<Vec<i8>> = (0..3).map(|k| input(120, 70 + k)).collect();
    for (x, r) in xs.iter().zip(acc.run_batch(1, &xs).unwrap()) {
        assert_eq!(r.outputs, gemv_crew(&m.layers[1], x));
    }
    // The weights went through the H2C node, the wide layer's outputs came back through C2H.
    let stats = acc.transport().stats();
    assert!(stats.h2c_bytes >= 4 * acc.load_report().unwrap().image_words, "{stats:?}");
    assert!(stats.c2h_bytes > 0 && stats.user_bytes > 0, "{stats:?}");
    drop(acc);
    let (_, dev, served) = server.stop().expect("server thread").expect("server ok");
    assert!(served > 0 && dev.runs() > 0);
}

#[test]
fn streamed_model_runs_bit_exact_through_xdma() {
    let cfg = DeviceConfig { wmem_words: 4096, ibuf_depth: 256, obuf_depth: 256, ..DeviceConfig::ECP5_25F };
    let (_dir, base, _server) = serve(cfg);
    let xdma = open_xdma(base.to_str().unwrap()).unwrap().with_user_burst_max(0);
    let mut acc = Accelerator::new(xdma, OpenOptions::default()).unwrap();
    let m = model(vec![layer("big", 300, 400, 7), layer("small", 20, 30, 8)]);
    assert!(!acc.load(&m).unwrap().resident);
    check_model(&mut acc, &m, 900);
    drop(acc);
    // The device-string parser of the crate opens the same nodes.
    let mut acc = crew_driver::open(&format!("xdma:{},channel=0", base.display()), &OpenOptions::default()).unwrap();
    acc.load(&m).unwrap();
    let x = input(30, 5);
    assert_eq!(acc.run_layer(1, &x).unwrap().outputs, gemv_crew(&m.layers[1], &x));
    let e = error_chain(&crew_driver::open("xdma:/nonexistent/xdma9", &OpenOptions::default()).unwrap_err());
    assert!(e.contains("xdma9_user") && e.contains("does not exist"), "{e}");
}

/// Three separate files: each access must land in the node it belongs to.
#[test]
fn accesses_go_to_the_right_node() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("xdma3");
    for n in ["_user", "_h2c_1", "_c2h_1"] {
        std::fs::File::create(node(&base, n)).unwrap().set_len(1 << 21).unwrap();
    }
    // Something to read back through C2H.
    let c2h = std::fs::OpenOptions::new().write(true).open(node(&base, "_c2h_1")).unwrap();
    let pattern: Vec<u8> = (0..4000u32).flat_map(|k| (k ^ 0xa5a5_0000).to_le_bytes()).collect();
    c2h.write_all_at(&pattern, regs::WEIGHT_WINDOW as u64).unwrap();

    let mut x = open_xdma(&format!("xdma:{},channel=1", base.display())).unwrap();
    assert_eq!(x.user_burst_max(), DEFAULT_USER_BURST_MAX);
    x.write32(regs::SCRATCH, 0xfeed_f00d).unwrap();
    assert_eq!(x.read32(regs::SCRATCH).unwrap(), 0xfeed_f00d);
    let big: Vec<u32> = (0..3000).map(|k| k + 1).collect();
    x.write_burst(regs::WEIGHT_WINDOW + 8, &big).unwrap();
    x.write_burst(regs::INPUT_WINDOW, &[1, 2, 3]).unwrap();
    let mut back = vec![0u32; 4000];
    x.read_burst(regs::WEIGHT_WINDOW, &mut back).unwrap();
    assert!(back.iter().enumerate().all(|(k, &w)| w == k as u32 ^ 0xa5a5_0000));
    let mut small = [0u32; 3];
    x.read_burst(regs::INPUT_WINDOW, &mut small).unwrap();
    assert_eq!(small, [1, 2, 3]);
    assert_eq!(
        x.stats(),
        crew_driver::xdma::XdmaStats { user_bytes: 4 + 4 + 12 + 12, h2c_bytes: 12000, c2h_bytes: 16000 }
    );

    let read = |suffix: &str, addr: u32, len: usize| {
        let mut b = vec![0u8; len];
        std::fs::File::open(node(&base, suffix)).unwrap().read_exact_at(&mut b, addr as u64).unwrap();
        b
    };
    assert_eq!(read("_user", regs::SCRATCH, 4), 0xfeed_f00du32.to_le_bytes());
    assert_eq!(read("_user", regs::INPUT_WINDOW, 12), [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
    let h2c = read("_h2c_1", regs::WEIGHT_WINDOW + 8, 12000);
    assert_eq!(h2c, big.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<_>>());
    // Nothing of the burst leaked into the user node.
    assert!(read("_user", regs::WEIGHT_WINDOW, 12008).iter().all(|&b| b == 0));
    // A DMA base offset moves the card address of bulk transfers only.
    let mut x = x.with_dma_base(0x1000);
    x.write_burst(regs::INPUT_WINDOW, &big[..100]).unwrap();
    assert_eq!(
        read("_h2c_1", 0x1000 + regs::INPUT_WINDOW, 400),
        big[..100].iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<_>>()
    );
}

#[test]
fn missing_nodes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("xdma0");
    let e = open_xdma(base.to_str().unwrap()).unwrap_err();
    assert!(matches!(&e, XdmaError::NodeMissing { node: Node::User, path, .. } if path.ends_with("xdma0_user")), "{e}");
    assert!(e.to_string().contains("xdma0_user") && e.to_string().contains("user"), "{e}");
    std::fs::write(node(&base, "_user"), [0u8; 64]).unwrap();
    std::fs::write(node(&base, "_h2c_0"), []).unwrap();
    let e = open_xdma(base.to_str().unwrap()).unwrap_err();
    assert!(matches!(&e, XdmaError::NodeMissing { node: Node::C2h, path, .. } if path.ends_with("xdma0_c2h_0")), "{e}");
    assert!(e.to_string().contains("card-to-host"), "{e}");
    assert!(std::error::Error::source(&e).is_some());
    assert!(matches!(open_xdma("xdma:"), Err(XdmaError::BadSpec { .. })));
}

#[test]
fn short_transfers_report_counts() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("xdma0");
    std::fs::write(node(&base, "_user"), [0u8; 16]).unwrap();
    std::fs::write(node(&base, "_h2c_0"), []).unwrap();
    std::fs::write(node(&base, "_c2h_0"), [7u8; 100]).unwrap();
    let mut x = Xdma::open(&XdmaSpec::parse(base.to_str().unwrap()).unwrap()).unwrap();
    // The C2H node runs dry after 100 bytes of a 400-byte read.
    let mut out = vec![0u32; 100];
    let e = x.read_burst(0, &mut out).unwrap_err();
    assert!(matches!(e, XdmaError::ShortTransfer { node: Node::C2h, addr: 0, done: 100, wanted: 400 }), "{e}");
    assert!(e.to_string().contains("100 of 400 bytes"), "{e}");
    // The user node has no word at STATUS.
    let e = x.read32(regs::STATUS).unwrap_err();
    assert!(matches!(e, XdmaError::ShortTransfer { node: Node::User, done: 0, wanted: 4, .. }), "{e}");
    // Unaligned and past-the-bus accesses never reach a node.
    assert!(matches!(x.read32(3), Err(XdmaError::Unaligned { addr: 3 })));
    assert!(matches!(x.write_burst(u32::MAX - 3, &[0; 20]), Err(XdmaError::OutOfRange { .. })));
}

#[test]
fn failing_dma_writes_keep_their_cause() {
    // /dev/full refuses every write with ENOSPC: an I/O error of the H2C node, with its source.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("xdma0");
    std::fs::write(node(&base, "_user"), [0u8; 256]).unwrap();
    std::fs::write(node(&base, "_c2h_0"), []).unwrap();
    if std::os::unix::fs::symlink("/dev/full", node(&base, "_h2c_0")).is_err() || !Path::new("/dev/full").exists() {
        return;
    }
    let mut x = open_xdma(base.to_str().unwrap()).unwrap();
    let e = x.write_burst(regs::WEIGHT_WINDOW, &[0; 64]).unwrap_err();
    assert!(matches!(e, XdmaError::Io { node: Node::H2c, .. }), "{e:?}");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn doorbell_without_a_device_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let base = fake_xdma(dir.path(), "xdma0", 1 << 21).unwrap();
    let mut x = open_xdma(base.to_str().unwrap()).unwrap().with_doorbell_timeout(Duration::from_millis(30));
    let e = x.write32(regs::CTRL, regs::ctrl::CRC_START).unwrap_err();
    assert!(matches!(e, XdmaError::DoorbellTimeout { pulse: regs::ctrl::CRC_START, .. }), "{e}");
    assert!(matches!(x.write32(regs::CTRL, u32::MAX), Err(XdmaError::NotResponding)));
}

#[test]
fn permission_denied_says_how_to_grant_access() {
    // The unprivileged child this test starts below (as `nobody`, through setpriv) takes this branch.
    if let Some(base) = std::env::var_os("CREW_PERMISSION_CHILD_BASE") {
        let e = open_xdma(Path::new(&base).to_str().unwrap()).unwrap_err();
        assert!(matches!(e, XdmaError::PermissionDenied { node: Node::User, .. }), "{e:?}");
        for hint in ["run as root", "chmod", "udev", "xdma0_user"] {
            assert!(e.to_string().contains(hint), "missing `{hint}` in: {e}");
        }
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let base = fake_xdma(dir.path(), "xdma0", 4096).unwrap();
    let user = node(&base, "_user");
    let check = |e: &XdmaError| {
        assert!(matches!(e, XdmaError::PermissionDenied { node: Node::User, .. }), "{e:?}");
        for hint in ["run as root", "chmod", "udev", "xdma0_user"] {
            assert!(e.to_string().contains(hint), "missing `{hint}` in: {e}");
        }
        assert!(std::error::Error::source(e).is_some());
    };
    std::fs::set_permissions(&user, std::fs::Permissions::from_mode(0o000)).unwrap();
    let e = match open_xdma(base.to_str().unwrap()) {
        Err(e) => return check(&e),
        Ok(_) => XdmaError::PermissionDenied {
            node: Node::User,
            path: user.clone(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        },
    };
    // Root bypasses file modes: drop privileges in a child process (this test binary, running
    // this test with the child's variable set) when `setpriv` is there; else check the message built.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "permission_denied_says_how_to_grant_access", "--test-threads=1"])
        .env("CREW_PERMISSION_CHILD_BASE", &base)
        .output();
    match out {
        Ok(out) if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed") => {
            println!("checked in an unprivileged child process");
        }
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("permission_denied_says_how_to_grant_access") => {
            panic!("unprivileged child failed:\n{}", String::from_utf8_lossy(&out.stdout))
        }
        _ => check(&e),
    }
}
