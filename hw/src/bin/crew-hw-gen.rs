//! Writes the Verilog of a configuration: `crew-hw-gen --config ecp5-85f --kind crew -o build/`.

use crew_core::config::{CoreKind, DeviceConfig};
use crew_hw::bus::Shell;
use rust_hdl::prelude::*;
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: crew-hw-gen --config <ecp5-25f|ecp5-85f|test> --kind <crew|dense> -o <dir>");
    std::process::exit(2)
}

fn verilog<const WA: usize, const IA: usize, const OA: usize>(cfg: &DeviceConfig) -> String {
    let mut uut = Shell::<WA, IA, OA>::new(cfg);
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
    let base =
        if config == "test" { crew_hw::TEST_CONFIG } else { DeviceConfig::preset(&config).unwrap_or_else(|| usage()) };
    let kind = match kind.as_str() {
        "crew" => CoreKind::Crew,
        "dense" => CoreKind::Dense,
        _ => usage(),
    };
    let cfg = base.with_kind(kind);
    let ia = |d: u32| d.div_ceil(4);
    let v = match (cfg.wmem_words, ia(cfg.ibuf_depth), cfg.obuf_depth) {
        (1024, 16, 64) => verilog::<10, 4, 6>(&cfg),
        (16384, 256, 1024) => verilog::<14, 8, 10>(&cfg),
        (65536, 512, 2048) => verilog::<16, 9, 11>(&cfg),
        (w, i, o) => {
            eprintln!("crew-hw-gen: no instantiation for memory sizes {w}/{i}/{o}; add one to crew-hw-gen");
            std::process::exit(1)
        }
    };
    std::fs::create_dir_all(&out).expect("create output directory");
    let path = out.join(format!("crew_{}_{}.v", config.replace('-', "_"), kind.name()));
    std::fs::write(&path, v).expect("write Verilog");
    println!("{}", path.display());
}
