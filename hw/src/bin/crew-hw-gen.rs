//! Writes the Verilog of a configuration: `crew-hw-gen --config ecp5-85f --kind crew -o build/`.

use crew_core::config::CoreKind;
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: crew-hw-gen --config <ecp5-25f|ecp5-85f|test|test25|test85> --kind <crew|dense> -o <dir>");
    std::process::exit(2)
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
    let base = crew_hw::instantiated_config(&config).unwrap_or_else(|| usage());
    let kind = match kind.as_str() {
        "crew" => CoreKind::Crew,
        "dense" => CoreKind::Dense,
        _ => usage(),
    };
    let cfg = base.with_kind(kind);
    // Each instantiation's const parameters are checked against the config in `Accel::new`.
    let Some(v) = crew_hw::verilog_of(&cfg) else {
        eprintln!("crew-hw-gen: no instantiation for {}; add one in crew_hw::with_accel", cfg.describe());
        std::process::exit(1)
    };
    std::fs::create_dir_all(&out).expect("create output directory");
    let path = out.join(format!("crew_{}_{}.v", config.replace('-', "_"), kind.name()));
    std::fs::write(&path, v).expect("write Verilog");
    println!("{}", path.display());
}
