//! Writes the Verilog of a configuration: `crew-hw-gen --config ecp5-85f --kind crew -o build/`.

use crew_core::config::{CoreKind, DeviceConfig};
use crew_hw::sim::BusTop;
use crew_hw::{Ecp5_25fAccel, Ecp5_85fAccel, Test25Accel, Test85Accel, TestAccel};
use rust_hdl::prelude::*;
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: crew-hw-gen --config <ecp5-25f|ecp5-85f|test|test25|test85> --kind <crew|dense> -o <dir>");
    std::process::exit(2)
}

fn verilog<T: BusTop>(cfg: &DeviceConfig) -> String {
    let mut uut = T::build(cfg);
    uut.connect_all();
    generate_verilog(&uut)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut config, mut kind, mut out) = (None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next(),
            "--kind" => kind = args.next(),
            "-o" | "--out" => out = args.next().map(PathBuf::from),
            _ => usage(),
        }
    }
    let (Some(config), Some(kind), Some(out)) = (config, kind, out) else { usage() };
    let base = match config.as_str() {
        "test" => crew_hw::TEST_CONFIG,
        "test25" => crew_hw::TEST_CONFIG_25F_LANES,
        "test85" => crew_hw::TEST_CONFIG_85F_LANES,
        _ => DeviceConfig::preset(&config).unwrap_or_else(|| usage()),
    };
    let kind = match kind.as_str() {
        "crew" => CoreKind::Crew,
        "dense" => CoreKind::Dense,
        _ => usage(),
    };
    let cfg = base.with_kind(kind);
    // Each instantiation's const parameters are checked against the config in `Accel::new`.
    let v = match (cfg.lanes, cfg.mults, cfg.wmem_words, cfg.ibuf_depth, cfg.obuf_depth) {
        (4, 2, 1024, 64, 256) => verilog::<TestAccel>(&cfg),
        (8, 4, 1024, 64, 64) => verilog::<Test25Accel>(&cfg),
        (32, 16, 1024, 64, 256) => verilog::<Test85Accel>(&cfg),
        (8, 4, 16384, 1024, 1024) => verilog::<Ecp5_25fAccel>(&cfg),
        (32, 16, 65536, 2048, 2048) => verilog::<Ecp5_85fAccel>(&cfg),
        (l, m, w, i, o) => {
            eprintln!("crew-hw-gen: no instantiation for lanes {l}, mults {m}, memories {w}/{i}/{o}; add one");
            std::process::exit(1)
        }
    };
    std::fs::create_dir_all(&out).expect("create output directory");
    let path = out.join(format!("crew_{}_{}.v", config.replace('-', "_"), kind.name()));
    std::fs::write(&path, v).expect("write Verilog");
    println!("{}", path.display());
}
