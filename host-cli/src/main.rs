//! `crew-host`: a thin command line over crew-core and crew-driver.

use clap::{Parser, Subcommand};

mod builtin;
mod cmd;
mod device;
mod lstm;
mod table;

#[derive(Parser)]
#[command(name = "crew-host", version, about = "Run, encode, inspect and benchmark CREW models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model on a device and check every result against the CPU reference.
    Run(cmd::run::Args),
    /// Quantize and CREW-encode FC layers into a .crew file.
    Encode(cmd::encode::Args),
    /// Per-layer reuse and storage statistics of a model.
    Stats(cmd::stats::Args),
    /// Identity and capabilities of a device.
    Info(cmd::info::Args),
    /// Dump a device's registers by name (or, with --markdown, the register map documentation).
    Regs(cmd::info::RegsArgs),
    /// Load a bitstream onto a board with openFPGALoader, after checking its manifest (part, SHA-256).
    Program(cmd::program::Args),
    /// Replay a bus trace (`run --trace`) against the generated Verilog under Icarus Verilog.
    Replay(cmd::replay::Args),
    /// CPU kernels vs the CREW core vs the dense core: times, cycles, storage, energy estimate.
    Bench(cmd::bench::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Encode(a) => cmd::encode::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Info(a) => cmd::info::info(a),
        Command::Regs(a) => cmd::info::regs(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Program(a) => cmd::program::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
