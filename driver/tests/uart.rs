//! The UART backend end to end without a board: the driver on a pseudo-terminal's slave side, the
//! emulated board ([`serve_emulated_board`], the protocol of `crew_core::uart`) on its master side.

mod common;

use common::{check_model, error_chain, layer, model, random_layer};
use crew_core::config::DeviceConfig;
use crew_core::encode::EncodedLayer;
use crew_core::reference::gemv_crew;
use crew_core::regs;
use crew_core::regs::ctrl;
use crew_core::uart::{encode_response, resp_at, Request, Response, Status, TaggedRequest, RESP_SYNC};
use crew_driver::uart::{serve_emulated_board, ServeOptions, ServeStats, Tamper, Uart, UartError};
use crew_driver::{open, Accelerator, DriverError, EmuDevice, OpenOptions, Transport};
use nix::pty::openpty;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A pseudo-terminal with an emulated board on its master side.
struct Board {
    path: PathBuf,
    /// Held open until the driver has opened the port, so the master does not read EIO early.
    slave: Option<OwnedFd>,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<std::io::Result<(EmuDevice, ServeStats)>>>,
}

impl Board {
    fn start(cfg: DeviceConfig, tamper: Option<Tamper>) -> Board {
        let pty = openpty(None, None).expect("openpty");
        let path = nix::unistd::ttyname(&pty.slave).expect("ttyname of the pty slave");
        let stop = Arc::new(AtomicBool::new(false));
        let opts = ServeOptions { idle_timeout: Duration::from_secs(20), stop: Some(stop.clone()), tamper };
        let master = pty.master;
        let server = std::thread::spawn(move || serve_emulated_board(master, EmuDevice::new(cfg), opts));
        Board { path, slave: Some(pty.slave), stop, server: Some(server) }
    }

    fn device(&self, extra: &str) -> String {
        format!("uart:{}{extra}", self.path.display())
    }

    fn uart(&mut self, timeout_ms: u64, retries: u32) -> Uart {
        let u = Uart::open(&self.path, 3_000_000)
            .expect("open the pty slave")
            .with_timeout(Duration::from_millis(timeout_ms))
            .with_retries(retries);
        self.slave = None;
        u
    }

    fn finish(self) -> ServeStats {
        self.finish_with_device().1
    }

    fn finish_with_device(mut self) -> (EmuDevice, ServeStats) {
        self.stop.store(true, Ordering::Relaxed);
        let h = self.server.take().expect("server thread");
        h.join().expect("server thread panicked").expect("server I/O")
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
    }
}

fn mixed_model() -> Vec<EncodedLayer> {
    vec![
        layer("fc512x128", 512, 128, 11),
        EncodedLayer::encode(&random_layer("r1", 37, 19, 3)),
        EncodedLayer::encode(&random_layer("r2", 100, 64, 4)),
        layer("fc512x128b", 512, 128, 12),
    ]
}

#[test]
fn whole_model_through_open_is_bit_exact() {
    let mut board = Board::start(DeviceConfig::ECP5_25F, None);
    let opts = OpenOptions::default().with_timeout(Duration::from_secs(5));
    let mut acc = open(&board.device(",baud=3000000,timeout_ms=2000"), &opts).expect("open uart device");
    board.slave = None;
    assert_eq!(acc.config(), DeviceConfig::ECP5_25F);
    let m = model(mixed_model());
    acc.load(&m).expect("load over the UART link");
    check_model(&mut acc, &m, 7);
    acc.write32(regs::SCRATCH, 0x5a5a_a5a5).unwrap();
    assert_eq!(acc.read32(regs::SCRATCH).unwrap(), 0x5a5a_a5a5);
    drop(acc);
    let stats = board.finish();
    assert!(stats.served > 100, "{stats:?}");
    assert_eq!(stats.rejected, 0, "no frame of a clean link is rejected: {stats:?}");
}

#[test]
fn bursts_longer_than_one_frame_round_trip() {
    let mut board = Board::start(DeviceConfig::ECP5_25F, None);
    let mut u = board.uart(2000, 0);
    let data: Vec<u32> = (0..1000u32).map(|k| k.wrapping_mul(0x9E37_79B9)).collect();
    u.write_burst(regs::WEIGHT_WINDOW + 12, &data).unwrap();
    let mut back = vec![0u32; data.len()];
    u.read_burst(regs::WEIGHT_WINDOW + 12, &mut back).unwrap();
    assert_eq!(back, data);
    // 1000 words are 4 frames each way, after one read of ID before the session's first write.
    assert_eq!(u.stats().requests, 9);
    assert_eq!(u.stats().tag_syncs, 1);
    assert!(matches!(u.read32(3), Err(UartError::Unaligned { addr: 3 })));
    drop(u);
    board.finish();
}

/// Noise before some responses and bit flips inside others (writes' included: their retries are
/// acknowledged without running twice): every access still succeeds after a resynchronisation,
/// and the results stay bit-exact.
#[test]
fn corrupted_responses_are_recovered_by_resync() {
    let tamper: Tamper = Box::new(|i, _, bytes: &mut Vec<u8>| {
        if bytes.first() != Some(&RESP_SYNC) {
            return;
        }
        match i % 13 {
            3 => {
                // Garbage (with a stray sync byte) before an intact response.
                let mut noisy = vec![0x00, 0xFF, RESP_SYNC, 0x13, 0x37];
                noisy.append(bytes);
                *bytes = noisy;
            }
            7 => {
                let k = bytes.len() - 3;
                bytes[k] ^= 0x10; // a data bit
            }
            11 => bytes[resp_at::STATUS] ^= 0x01, // the header CRC catches it
            _ => {}
        }
    });
    let mut board = Board::start(DeviceConfig::ECP5_25F, Some(tamper));
    let uart = board.uart(300, 3);
    let mut acc = Accelerator::new(uart, OpenOptions::default().with_timeout(Duration::from_secs(5))).unwrap();
    let m = model(vec![layer("fc", 512, 128, 5), EncodedLayer::encode(&random_layer("r", 64, 33, 9))]);
    acc.load(&m).unwrap();
    check_model(&mut acc, &m, 21);
    let stats = acc.transport().stats();
    assert!(stats.retries >= 3, "the damaged responses were retried: {stats:?}");
    assert!(stats.discarded > 0, "{stats:?}");
    drop(acc);
    let served = board.finish();
    assert!(served.duplicates > 0, "some retried writes were acknowledged again: {served:?}");
}

/// The acknowledgement of a START is lost (silence) or corrupted: the driver retries under the
/// same tag, the board acknowledges again without a second START. The layer needs three input
/// tiles, so two of its STARTs carry ACCUMULATE: a repeated one would add the products twice.
#[test]
fn retried_start_runs_once() {
    let cfg = DeviceConfig { ibuf_depth: 64, ..DeviceConfig::ECP5_25F };
    // Damage the first response to each START (by tag), alternately dropped and corrupted.
    let mut seen: Vec<u8> = Vec::new();
    let tamper: Tamper = Box::new(move |_, req: Option<&TaggedRequest>, bytes: &mut Vec<u8>| {
        let Some(TaggedRequest { tag, req: Request::Write { addr: regs::CTRL, value } }) = req else { return };
        if value & ctrl::START == 0 || seen.contains(tag) {
            return;
        }
        seen.push(*tag);
        if seen.len() % 2 == 1 {
            bytes.clear();
        } else {
            let k = bytes.len() - 1;
            bytes[k] ^= 0x80; // the header CRC
        }
    });
    let mut board = Board::start(cfg, Some(tamper));
    let uart = board.uart(100, 3);
    let mut acc = Accelerator::new(uart, OpenOptions::default().with_timeout(Duration::from_secs(5))).unwrap();
    let l = EncodedLayer::encode(&random_layer("acc3", 40, 150, 17));
    let m = model(vec![l.clone()]);
    acc.load(&m).unwrap();
    let tiles = acc.plan(0).unwrap().tiles.len();
    assert_eq!(tiles, 3, "150 inputs in tiles of at most 64");
    let vectors = 2;
    for v in 0..vectors {
        let x = common::random_input(l.n_in, 40 + v);
        assert_eq!(acc.run_layer(0, &x).unwrap().outputs, gemv_crew(&l, &x), "vector {v}");
    }
    let ustats = acc.transport().stats();
    drop(acc);
    let (dev, stats) = board.finish_with_device();
    let starts = (tiles * vectors as usize) as u64;
    assert_eq!(dev.runs(), starts, "every START ran exactly once: {stats:?} {ustats:?}");
    assert_eq!(stats.duplicates, starts, "each damaged START ack was answered again: {stats:?}");
    assert!(ustats.retries >= starts, "{ustats:?}");
}

#[test]
fn persistent_garbage_gives_resync_failed() {
    let tamper: Tamper = Box::new(|i, _, bytes: &mut Vec<u8>| {
        *bytes = vec![RESP_SYNC, 0x00, (i as u8) | 0x80, 0x12, 0x34, 0x56, RESP_SYNC, 0xAA];
    });
    let mut board = Board::start(DeviceConfig::ECP5_25F, Some(tamper));
    let mut u = board.uart(100, 2);
    let t0 = Instant::now();
    let e = u.read32(regs::ID).unwrap_err();
    assert!(matches!(e, UartError::ResyncFailed { attempts: 3, .. }), "{e:?}");
    assert!(error_chain(&e).contains("lost synchronisation"), "{}", error_chain(&e));
    assert!(error_chain(&e).contains("checksum"), "the last cause is kept: {}", error_chain(&e));
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(u.stats().requests, 3);
    drop(u);
    board.finish();
}

#[test]
fn error_status_from_the_board_is_reported() {
    let tamper: Tamper = Box::new(|_, req, bytes: &mut Vec<u8>| {
        let (c, t) = req.map_or((0, 0), |r| (r.req.cmd(), r.tag));
        *bytes = encode_response(&Response::error(Status::BadFrame, c, t)).unwrap();
    });
    let mut board = Board::start(DeviceConfig::ECP5_25F, Some(tamper));
    let mut u = board.uart(100, 1);
    let e = u.write32(regs::SCRATCH, 1).unwrap_err();
    match &e {
        UartError::ResyncFailed { last, .. } => {
            assert!(matches!(**last, UartError::Board { status: Status::BadFrame, .. }), "{last:?}")
        }
        other => panic!("expected ResyncFailed, got {other:?}"),
    }
    drop(u);
    board.finish();
}

#[test]
fn silent_board_gives_timeout() {
    let tamper: Tamper = Box::new(|_, _, bytes: &mut Vec<u8>| bytes.clear());
    let mut board = Board::start(DeviceConfig::ECP5_25F, Some(tamper));
    let mut u = board.uart(50, 2);
    let t0 = Instant::now();
    let e = u.read32(regs::STATUS).unwrap_err();
    assert!(matches!(e, UartError::Timeout { addr: regs::STATUS, .. }), "{e:?}");
    assert!(e.to_string().contains("no response"), "{e}");
    assert!(t0.elapsed() >= Duration::from_millis(150), "each of the 3 attempts waited");
    assert!(t0.elapsed() < Duration::from_secs(5));
    drop(u);
    let stats = board.finish();
    assert_eq!(stats.served, 3, "the board did receive every attempt: {stats:?}");
}

#[test]
fn open_errors_name_the_port() {
    let e = Uart::open(std::path::Path::new("/dev/ttyUSB-crew-missing"), 3_000_000).unwrap_err();
    assert!(matches!(e, UartError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("/dev/ttyUSB-crew-missing"), "{e}");
    let e = open("uart:/dev/ttyUSB-crew-missing", &OpenOptions::default()).unwrap_err();
    assert!(matches!(e, DriverError::Open { .. }), "{e:?}");
    assert!(error_chain(&e).contains("/dev/ttyUSB-crew-missing"), "{}", error_chain(&e));

    // A regular file is not a tty.
    let f = tempfile::NamedTempFile::new().unwrap();
    let e = Uart::open(f.path(), 3_000_000).unwrap_err();
    assert!(matches!(e, UartError::Configure { .. }), "{e:?}");
    assert!(e.to_string().contains("tty"), "{e}");

    for (spec, needle) in [
        ("uart:", "no serial port path"),
        ("uart:/dev/ttyUSB0,baud=12345", "unsupported baud rate 12345"),
        ("uart:/dev/ttyUSB0,baud=fast", "not a number"),
        ("uart:/dev/ttyUSB0,parity=odd", "unknown option `parity`"),
        ("uart:/dev/ttyUSB0,timeout_ms=0", "at least 1"),
    ] {
        let e = open(spec, &OpenOptions::default()).unwrap_err();
        assert!(error_chain(&e).contains(needle), "{spec}: {}", error_chain(&e));
    }
    assert!(crew_driver::device::SCHEMES.iter().any(|(s, _)| *s == "uart"));
}
