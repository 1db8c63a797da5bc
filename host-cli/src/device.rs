//! `--device` for every command: the driver's schemes, plus `sim` (the RTL, cargo feature
//! `sim`, on by default), with an optional bus trace (any device) and waveform (`sim` only).

use anyhow::{bail, Context};
use crew_driver::trace::TraceFile;
use crew_driver::{Accelerator, BoxedTransport, OpenOptions};
use std::path::Path;
use std::time::Duration;

/// Whether `device` is the RTL simulation.
pub fn is_sim(device: &str) -> bool {
    device == "sim" || device.starts_with("sim:")
}

/// The longest wait for one run when the user gives none: the rust-hdl engine simulates a few
/// thousand cycles per second, so its runs take seconds where a device takes microseconds.
pub fn default_timeout(device: &str) -> Duration {
    if is_sim(device) {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(2)
    }
}

/// An open device, with the recorders to finish when the work succeeded.
pub struct Session {
    pub accel: Accelerator<BoxedTransport>,
    trace: Option<(TraceFile, String)>,
    #[cfg(feature = "sim")]
    vcd: Option<crew_sim::VcdFile>,
}

impl Session {
    /// Put the trace and waveform files in place (they appear only after a successful run).
    pub fn finish(self) -> anyhow::Result<()> {
        if let Some((trace, path)) = self.trace {
            let n = trace.finish()?;
            println!("bus trace: {path} ({n} transactions); replay it with `crew-host replay {path}`");
        }
        #[cfg(feature = "sim")]
        if let Some(vcd) = self.vcd {
            let p = vcd.finish()?;
            println!("waveform: {}", p.display());
        }
        Ok(())
    }
}

/// Open `device` (identifying it), recording every bus transaction into `trace` and, on `sim`,
/// every clock edge into the VCD file `vcd`.
pub fn open(device: &str, opts: &OpenOptions, trace: Option<&Path>, vcd: Option<&Path>) -> anyhow::Result<Session> {
    let cannot = || format!("cannot open {device}");
    if vcd.is_some() && !is_sim(device) {
        bail!("--vcd needs the rust-hdl simulation (--device sim:engine=rust-hdl[,...]); {device} has no waveform");
    }
    let (transport, vcd_file) = open_transport(device, vcd).with_context(cannot)?;
    let (transport, trace_file) = match trace {
        None => (transport, None),
        Some(p) => {
            let (rec, file) = crew_driver::trace::record(transport, p, &format!("device {device}"))?;
            (Box::new(rec) as BoxedTransport, Some((file, p.display().to_string())))
        }
    };
    let accel = Accelerator::with_name(transport, opts.clone(), device).with_context(cannot)?;
    #[cfg(not(feature = "sim"))]
    let _ = vcd_file;
    Ok(Session {
        accel,
        trace: trace_file,
        #[cfg(feature = "sim")]
        vcd: vcd_file,
    })
}

/// Open `device` with no recorders.
pub fn open_plain(device: &str, opts: &OpenOptions) -> anyhow::Result<Accelerator<BoxedTransport>> {
    Ok(open(device, opts, None, None)?.accel)
}

#[cfg(feature = "sim")]
type VcdOut = Option<crew_sim::VcdFile>;
#[cfg(not(feature = "sim"))]
type VcdOut = Option<()>;

fn open_transport(device: &str, vcd: Option<&Path>) -> anyhow::Result<(BoxedTransport, VcdOut)> {
    if is_sim(device) {
        #[cfg(feature = "sim")]
        {
            let options = device.split_once(':').map_or("", |(_, o)| o);
            return Ok(crew_sim::open(device, options, vcd)?);
        }
        #[cfg(not(feature = "sim"))]
        bail!("this crew-host was built without the `sim` feature (cargo build -p crew-host --features sim)");
    }
    let _ = vcd;
    Ok((crew_driver::open_transport(device)?, None))
}
