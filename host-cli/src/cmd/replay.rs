//! `crew-host replay TRACE`: replay a bus trace (`run --trace`) against the generated Verilog of
//! the configuration the trace identifies, under Icarus Verilog; fails on the first read that
//! differs (`docs/cosim.md`).

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The trace written by `crew-host run --trace FILE`.
    pub trace: PathBuf,
    /// Where the Verilog, the testbench and the compiled simulation go (iverilog; default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// `iverilog` (the testbench sim/verilog/replay_tb.v) or `verilator` (the bus master of `--device sim`, much faster).
    #[arg(long, default_value = "iverilog", value_parser = ["iverilog", "verilator"])]
    pub simulator: String,
}

#[cfg(feature = "sim")]
pub fn run(a: Args) -> anyhow::Result<()> {
    let tmp;
    let work = match &a.work_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let sim = match a.simulator.as_str() {
        "verilator" => crew_sim::replay::Simulator::Verilator,
        _ => crew_sim::replay::Simulator::Iverilog,
    };
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(format!("generating the Verilog and replaying {} under {}", a.trace.display(), a.simulator));
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    let r = crew_sim::replay::replay_on(sim, &a.trace, &work);
    pb.finish_and_clear();
    let r = r?;
    println!(
        "OK: the generated Verilog of {} matches all {} reads of {} ({} transactions, {} cycles)",
        r.config.describe(),
        r.reads,
        a.trace.display(),
        r.transactions,
        r.cycles
    );
    println!(
        "{}: {:.0} simulated cycles/s ({:.1} s; generating and compiling took {:.1} s)",
        a.simulator,
        r.cycles_per_second(),
        r.sim_wall.as_secs_f64(),
        r.build_wall.as_secs_f64()
    );
    Ok(())
}

#[cfg(not(feature = "sim"))]
pub fn run(_: Args) -> anyhow::Result<()> {
    anyhow::bail!("this crew-host was built without the `sim` feature (cargo build -p crew-host --features sim)")
}
