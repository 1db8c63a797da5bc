//! Elaborates a ULX3S board top for the bitstream build (`scripts/build-bitstream.sh` runs the
//! ECP5 tools on its output):
//!
//!     crew-hw-build --target ulx3s-85f [--lanes 32] [--kind crew] [--mhz 75] [--baud 3000000]
//!                   [--pll CLKI,CLKFB,CLKOP,CPHASE] -o build/ulx3s-85f
//!
//! writes `top.v` (module `top`), `top.lpf` (pins, IO standards, clock frequencies, from the
//! constraints on the top's signals) and `core.json` (the core configuration, clock and UART
//! divisor, for the manifest). `--lanes` changes the lanes of the target's preset (multipliers
//! follow at lanes / 2, memories stay); `--pll` takes the dividers `yowasp-ecppll` printed,
//! otherwise they are searched here.

use crew_core::config::{CoreKind, DeviceConfig};
use crew_hw::board::{board_verilog, generate_lpf, BoardConfig, PllParams, Ulx3sTop, OSC_MHZ};
use rust_hdl::prelude::*;
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: crew-hw-build --target <ulx3s-25f|ulx3s-85f> [--lanes N] [--kind crew|dense] [--mhz F] \
         [--baud B] [--pll CLKI,CLKFB,CLKOP,CPHASE] -o <dir>"
    );
    std::process::exit(2)
}

fn fail(msg: String) -> ! {
    eprintln!("crew-hw-build: {msg}");
    std::process::exit(1)
}

/// Verilog and LPF of one board top.
fn emit<
    const IA: usize,
    const L: usize,
    const M: usize,
    const NB: usize,
    const BA: usize,
    const NBW: usize,
    const OBA: usize,
    const TA: usize,
    const PW: usize,
>(
    cfg: &DeviceConfig,
    board: &BoardConfig,
) -> (String, String) {
    let mut uut = Ulx3sTop::<IA, L, M, NB, BA, NBW, OBA, TA, PW>::new(cfg, board);
    uut.connect_all();
    (board_verilog(&uut), generate_lpf(&uut))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut target, mut lanes, mut kind, mut mhz, mut baud, mut pll, mut out) =
        (None, None, CoreKind::Crew, None, crew_core::uart::DEFAULT_BAUD, None, None);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--target" => target = Some(val()),
            "--lanes" => lanes = Some(val().parse::<u32>().unwrap_or_else(|_| usage())),
            "--kind" => {
                kind = match val().as_str() {
                    "crew" => CoreKind::Crew,
                    "dense" => CoreKind::Dense,
                    _ => usage(),
                }
            }
            "--mhz" => mhz = Some(val().parse::<f64>().unwrap_or_else(|_| usage())),
            "--baud" => baud = val().parse::<u32>().unwrap_or_else(|_| usage()),
            "--pll" => {
                let v: Vec<u32> = val().split(',').map(|x| x.trim().parse().unwrap_or_else(|_| usage())).collect();
                let [clki_div, clkfb_div, clkop_div, clkop_cphase] = v[..] else { usage() };
                pll = Some(PllParams { clki_div, clkfb_div, clkop_div, clkop_cphase, fin_mhz: OSC_MHZ });
            }
            "-o" | "--out" => out = Some(PathBuf::from(val())),
            _ => usage(),
        }
    }
    let (Some(target), Some(out)) = (target, out) else { usage() };
    let (preset_name, default_mhz) = match target.as_str() {
        "ulx3s-25f" => ("ecp5-25f", 75.0),
        "ulx3s-85f" => ("ecp5-85f", 75.0),
        _ => usage(),
    };
    let preset = DeviceConfig::preset(preset_name).expect("preset");
    let mut cfg = preset.with_kind(kind);
    if let Some(l) = lanes {
        cfg.lanes = l;
        cfg.mults = (l / 2).max(1);
    }
    let pll = pll.unwrap_or_else(|| PllParams::search(OSC_MHZ, mhz.unwrap_or(default_mhz)));
    let fout = pll.fout_mhz();
    if let Some(m) = mhz {
        if (fout - m).abs() > 1e-6 {
            fail(format!("the PLL dividers give {fout} MHz, not the asked {m} MHz"));
        }
    }
    let div =
        crew_core::uart::clocks_per_bit((fout * 1e6).round() as u32, baud).unwrap_or_else(|e| fail(e.to_string()));
    let board = BoardConfig { pll, clocks_per_bit: div.clocks_per_bit, reset_cycles: 1 << 20 };
    // The const parameters of `Accel` for this configuration (checked again in `Engine::new`).
    let nb = crew_hw::engine::banks_for(cfg.lanes);
    let log2 = |n: u32| n.trailing_zeros() as usize;
    let params = (
        log2(cfg.ibuf_depth.div_ceil(4)),
        cfg.lanes as usize,
        cfg.mults as usize,
        nb as usize,
        log2(cfg.wmem_words / nb),
        log2(cfg.obuf_depth / cfg.lanes),
        log2(512 / cfg.mults),
    );
    let (v, lpf) = match params {
        (8, 4, 2, 2, 13, 8, 8) => emit::<8, 4, 2, 2, 13, 64, 8, 8, 32>(&cfg, &board),
        (8, 8, 4, 4, 12, 7, 7) => emit::<8, 8, 4, 4, 12, 128, 7, 7, 64>(&cfg, &board),
        (8, 16, 8, 8, 11, 6, 6) => emit::<8, 16, 8, 8, 11, 256, 6, 6, 128>(&cfg, &board),
        (9, 8, 4, 4, 14, 8, 7) => emit::<9, 8, 4, 4, 14, 128, 8, 7, 64>(&cfg, &board),
        (9, 16, 8, 8, 13, 7, 6) => emit::<9, 16, 8, 8, 13, 256, 7, 6, 128>(&cfg, &board),
        (9, 32, 16, 16, 12, 6, 5) => emit::<9, 32, 16, 16, 12, 512, 6, 5, 256>(&cfg, &board),
        (9, 64, 32, 32, 11, 5, 4) => emit::<9, 64, 32, 32, 11, 1024, 5, 4, 512>(&cfg, &board),
        (ia, l, m, nb, ba, oba, ta) => fail(format!(
            "no instantiation for {cfg:?}: add emit::<{ia}, {l}, {m}, {nb}, {ba}, {}, {oba}, {ta}, {}> to crew-hw-build",
            32 * nb,
            16 * m
        )),
    };
    std::fs::create_dir_all(&out).unwrap_or_else(|e| fail(format!("create {}: {e}", out.display())));
    let core = format!(
        concat!(
            "{{\n  \"preset\": \"{}\",\n  \"kind\": \"{}\",\n  \"lanes\": {},\n  \"groups\": {},\n  \"mults\": {},\n",
            "  \"wmem_words\": {},\n  \"ibuf_depth\": {},\n  \"obuf_depth\": {},\n  \"clock_mhz\": {},\n",
            "  \"pll\": {{\"clki_div\": {}, \"clkfb_div\": {}, \"clkop_div\": {}, \"clkop_cphase\": {}, \"vco_mhz\": {}}},\n",
            "  \"uart_baud\": {},\n  \"uart_clocks_per_bit\": {},\n  \"uart_baud_error_percent\": {:.4}\n}}\n"
        ),
        preset_name,
        cfg.kind.name(),
        cfg.lanes,
        cfg.groups,
        cfg.mults,
        cfg.wmem_words,
        cfg.ibuf_depth,
        cfg.obuf_depth,
        fout,
        pll.clki_div,
        pll.clkfb_div,
        pll.clkop_div,
        pll.clkop_cphase,
        pll.fvco_mhz(),
        baud,
        div.clocks_per_bit,
        div.error_percent,
    );
    for (name, text) in [("top.v", v), ("top.lpf", lpf), ("core.json", core)] {
        let path = out.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| fail(format!("write {}: {e}", path.display())));
        println!("{}", path.display());
    }
}
