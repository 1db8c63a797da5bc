//! Model load (MB/s) and layer runs (layers/s) through the emulated PCIe BAR and the emulated
//! XDMA nodes, side by side with the in-process emulator, in one process.
//!
//! The BAR and XDMA stand-ins are files in a temp dir served by an emulator thread (see
//! `crew_driver::pcie::sim`), so the figures measure the driver's real mmap / pread-pwrite paths
//! plus the mirror's copying and its doorbell latency, not a PCIe link.
//!
//! `cargo bench -p crew-driver --bench pcie`

use std::hint::black_box;
use std::time::Duration;

use crew_core::config::DeviceConfig;
use crew_core::encode::EncodedLayer;
use crew_core::format::Model;
use crew_core::quant::QuantizedLayer;
use crew_driver::pcie::sim::{bar_size, fake_sysfs, fake_xdma, Mirror, Server};
use crew_driver::pcie::{PcieBar, PcieSpec};
use crew_driver::xdma::{open_xdma, Xdma};
use crew_driver::{Accelerator, EmuDevice, EmuTransport, OpenOptions, Transport};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CFG: DeviceConfig = DeviceConfig::ECP5_85F;

fn layer(name: &str, n_out: usize, n_in: usize, seed: u64) -> EncodedLayer {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let q = (0..n_out * n_in)
        .map(|_| {
            let s: f32 = (0..4).map(|_| r.gen_range(-1.0f32..1.0)).sum();
            (s * 14.0).round().clamp(-127.0, 127.0) as i8
        })
        .collect();
    EncodedLayer::encode(&QuantizedLayer { name: name.into(), n_out, n_in, q, scales: vec![1.0], bias: None })
}

/// A model that stays resident in the 85F's weight memory (about 190 KiB of images).
#[allow(clippy::field_reassign_with_default)] // `Model` may grow fields
fn bench_model() -> Model {
    let mut m = Model::default();
    m.layers = vec![layer("fc1", 512, 256, 1), layer("fc2", 256, 320, 2), layer("fc3", 64, 256, 3)];
    m
}

/// Keeps the temp dir and the server alive as long as the accelerator.
struct Rig<T: Transport> {
    acc: Accelerator<T>,
    _keep: Box<dyn std::any::Any>,
}

fn emu() -> Rig<EmuTransport> {
    Rig { acc: Accelerator::new(EmuTransport::new(CFG), OpenOptions::default()).unwrap(), _keep: Box::new(()) }
}

fn pcie() -> Rig<PcieBar> {
    let root = tempfile::tempdir().unwrap();
    let resource = fake_sysfs(root.path(), "0000:01:00.0", 0, bar_size(&CFG), true).unwrap();
    let mirror = Mirror::new(PcieBar::open_resource(&resource).unwrap(), EmuDevice::new(CFG)).unwrap();
    let server = Server::spawn(mirror, Duration::from_secs(600));
    let bar = PcieBar::open(&PcieSpec::parse("pcie:0000:01:00.0").unwrap(), root.path()).unwrap();
    // Drop order: the accelerator first (field order), then the server, then the directory.
    Rig { acc: Accelerator::new(bar, OpenOptions::default()).unwrap(), _keep: Box::new((server, root)) }
}

fn xdma() -> Rig<Xdma> {
    let dir = tempfile::tempdir().unwrap();
    let base = fake_xdma(dir.path(), "xdma0", bar_size(&CFG)).unwrap();
    let mirror = Mirror::new(open_xdma(base.to_str().unwrap()).unwrap(), EmuDevice::new(CFG)).unwrap();
    let server = Server::spawn(mirror, Duration::from_secs(600));
    let x = open_xdma(base.to_str().unwrap()).unwrap();
    Rig { acc: Accelerator::new(x, OpenOptions::default()).unwrap(), _keep: Box::new((server, dir)) }
}

fn bench_backend<T: Transport>(c: &mut Criterion, name: &str, mut rig: Rig<T>) {
    let m = bench_model();
    let report = rig.acc.load(&m).unwrap();
    assert!(report.resident, "the bench model must fit weight memory: {report:?}");
    let image_bytes = 4 * report.image_words;
    let mut g = c.benchmark_group("load");
    g.throughput(Throughput::Bytes(image_bytes));
    g.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| rig.acc.load(black_box(&m)).unwrap()));
    g.finish();

    let x: Vec<i8> = (0..256).map(|k| (k % 251) as i8).collect();
    let mut g = c.benchmark_group("run_layer_512x256");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| rig.acc.run_layer(0, black_box(&x)).unwrap()));
    g.finish();
}

fn backends(c: &mut Criterion) {
    bench_backend(c, "emu", emu());
    bench_backend(c, "pcie-bar", pcie());
    bench_backend(c, "xdma", xdma());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = backends
}
criterion_main!(benches);
