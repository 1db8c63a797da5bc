//! `crew-host info` and `crew-host regs`: identity, capabilities and registers of a device.

use crew_driver::OpenOptions;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Device: `emu`, `emu:config=ecp5-25f`, ...
    #[arg(long, default_value = "emu")]
    pub device: String,
    /// Longest wait for the device, in milliseconds (default: 2000, or an hour on `sim`).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}

#[derive(clap::Args)]
pub struct RegsArgs {
    #[command(flatten)]
    pub dev: Args,
    /// Print the register map documentation (docs/registers.md) instead of reading a device.
    #[arg(long)]
    pub markdown: bool,
}

fn open(a: &Args) -> anyhow::Result<crew_driver::Accelerator<crew_driver::BoxedTransport>> {
    let timeout = a.timeout_ms.map_or_else(|| crate::device::default_timeout(&a.device), Duration::from_millis);
    crate::device::open_plain(&a.device, &OpenOptions::default().with_timeout(timeout))
}

pub fn info(a: Args) -> anyhow::Result<()> {
    let accel = open(&a)?;
    let i = accel.info();
    let c = i.config;
    println!("device      {}", i.device);
    println!("id          0x{:08X} (CREW)", crew_core::regs::ID_MAGIC);
    println!("version     {}.{}", i.version_major, i.version_minor);
    println!("core        {}", c.describe());
    println!("weights     {} words ({} KiB)", c.wmem_words, c.wmem_words / 256);
    println!("buffers     {} inputs, {} outputs", c.ibuf_depth, c.obuf_depth);
    Ok(())
}

pub fn regs(a: RegsArgs) -> anyhow::Result<()> {
    if a.markdown {
        print!("{}", crew_core::regs::markdown());
        return Ok(());
    }
    let mut accel = open(&a.dev)?;
    for (name, value) in accel.regs_dump()? {
        let offset = crew_core::regs::REGISTERS.iter().find(|r| r.name == name).map_or(0, |r| r.offset);
        println!("0x{offset:04X}  {name:<12} 0x{value:08X}  {value}");
    }
    Ok(())
}
