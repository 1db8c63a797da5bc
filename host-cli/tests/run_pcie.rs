//! `crew-host run` over the real PCIe BAR and XDMA code paths: the binary maps a fake sysfs
//! resource (or opens fake XDMA nodes) that an emulator thread in this test process serves.

use crew_core::config::DeviceConfig;
use crew_driver::pcie::sim::{bar_size, fake_sysfs, fake_xdma, Mirror, Server};
use crew_driver::pcie::{PcieBar, SYSFS_ROOT_ENV};
use crew_driver::xdma::open_xdma;
use crew_driver::EmuDevice;
use std::process::Command;
use std::time::Duration;

const BDF: &str = "0000:01:00.0";

fn run_builtin(device: &str, sysfs_root: Option<&std::path::Path>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crew-host"));
    cmd.args(["run", "--device", device, "--steps", "8", "--timeout-ms", "5000"]);
    if let Some(root) = sysfs_root {
        cmd.env(SYSFS_ROOT_ENV, root);
    }
    let o = cmd.output().expect("crew-host runs");
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "crew-host run --device {device} failed\nstdout:\n{out}\nstderr:\n{err}");
    out.into_owned()
}

#[test]
fn builtin_model_runs_bit_exact_through_an_emulated_bar() {
    let cfg = DeviceConfig::ECP5_25F;
    let root = tempfile::tempdir().unwrap();
    let resource = fake_sysfs(root.path(), BDF, 0, bar_size(&cfg), false).unwrap();
    let mirror = Mirror::new(PcieBar::open_resource(&resource).unwrap(), EmuDevice::new(cfg)).unwrap();
    let server = Server::spawn(mirror, Duration::from_secs(120));
    let out = run_builtin(&format!("pcie:{BDF},bar=0"), Some(root.path()));
    assert!(out.contains("OK: all 16 layer runs are bit-exact"), "{out}");
    // The driver enabled the device on the way in.
    let enable = std::fs::read_to_string(root.path().join(format!("bus/pci/devices/{BDF}/enable"))).unwrap();
    assert_eq!(enable.trim(), "1");
    assert!(server.stop().expect("server ran").expect("server saw no error").2 > 0);
}

#[test]
fn builtin_model_runs_bit_exact_through_emulated_xdma_nodes() {
    let cfg = DeviceConfig::ECP5_25F;
    let dir = tempfile::tempdir().unwrap();
    let base = fake_xdma(dir.path(), "xdma0", bar_size(&cfg)).unwrap();
    let mirror = Mirror::new(open_xdma(base.to_str().unwrap()).unwrap(), EmuDevice::new(cfg)).unwrap();
    let server = Server::spawn(mirror, Duration::from_secs(120));
    let out = run_builtin(&format!("xdma:{}", base.display()), None);
    assert!(out.contains("OK: all 16 layer runs are bit-exact"), "{out}");
    assert!(server.stop().expect("server ran").expect("server saw no error").2 > 0);
}
