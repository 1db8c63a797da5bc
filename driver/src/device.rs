//! Opening a device by name, with the backend type erased.
//!
//! A device string is `scheme[:options]`. Each backend is one arm of the match in [`open`] plus
//! its own module; it returns a [`BoxedTransport`] through [`erase`].
//!
//! | scheme | backend |
//! |---|---|
//! | `emu[:key=value,...]` | the in-process emulator ([`crate::emu`]); keys `config` (a preset or simulation configuration, applied first), `kind` (`crew` / `dense`), `lanes`, `groups`, `mults`, `wmem`, `ibuf`, `obuf` |
//! | `pcie:dddd:bb:dd.f[,bar=N]` | a PCIe BAR mapped from sysfs ([`crate::pcie`], `docs/pcie.md`) |
//! | `xdma:/dev/xdma0[,channel=N]` | Xilinx XDMA character devices ([`crate::xdma`]) |
//! | `uart:/dev/ttyUSB0[,baud=N,timeout_ms=N,retries=N]` | a board's UART bridge ([`crate::uart`], `docs/uart.md`) |

use crate::accel::{Accelerator, OpenOptions};
use crate::emu::{EmuTransport, MAX_IBUF_DEPTH, MAX_OBUF_DEPTH, MAX_WMEM_WORDS};
use crate::error::{BoxedError, DriverError};
use crate::transport::Transport;
use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::regs::caps;

/// A transport whose error type is erased: what [`open`] hands out for any backend.
pub trait DynTransport: Transport<Error = BoxedError> + Send {}

impl<T: Transport<Error = BoxedError> + Send> DynTransport for T {}

/// A boxed transport of any backend.
pub type BoxedTransport = Box<dyn DynTransport>;

/// Adapter mapping a backend's errors into [`BoxedError`].
#[derive(Debug)]
pub struct ErasedErrors<T>(pub T);

impl<T: Transport> Transport for ErasedErrors<T> {
    type Error = BoxedError;

    fn read32(&mut self, addr: u32) -> Result<u32, BoxedError> {
        self.0.read32(addr).map_err(BoxedError::new)
    }

    fn write32(&mut self, addr: u32, value: u32) -> Result<(), BoxedError> {
        self.0.write32(addr, value).map_err(BoxedError::new)
    }

    fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), BoxedError> {
        self.0.read_burst(addr, out).map_err(BoxedError::new)
    }

    fn write_burst(&mut self, addr: u32, data: &[u32]) -> Result<(), BoxedError> {
        self.0.write_burst(addr, data).map_err(BoxedError::new)
    }
}

/// Box any backend as a [`BoxedTransport`].
pub fn erase<T: Transport + Send + 'static>(transport: T) -> BoxedTransport {
    Box::new(ErasedErrors(transport))
}

/// The schemes [`open`] knows, with a one-line description each.
pub const SCHEMES: &[(&str, &str)] = &[
    (
        "emu",
        "in-process emulator: emu[:config=ecp5-25f|ecp5-85f|test|test25|test85,kind=crew|dense,lanes=N,groups=N,mults=N,wmem=N,ibuf=N,obuf=N]",
    ),
    ("pcie", "PCIe BAR mapped from sysfs (root: $CREW_SYSFS_ROOT or /sys): pcie:0000:01:00.0[,bar=N]"),
    ("xdma", "Xilinx XDMA character devices: xdma:/dev/xdma0[,channel=N]"),
    ("uart", "UART bridge of a board (ULX3S): uart:/dev/ttyUSB0[,baud=3000000,timeout_ms=200,retries=3]"),
];

/// A backend that could not open its device, with the backend's error as the source.
fn open_failed<E: std::error::Error + Send + Sync + 'static>(device: &str) -> impl FnOnce(E) -> DriverError + '_ {
    move |e| DriverError::Open { device: device.to_string(), source: BoxedError::new(e) }
}

fn known_schemes() -> String {
    SCHEMES.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", ")
}

/// Open a device by its string (see the module docs), identify it and return the accelerator.
pub fn open(device: &str, opts: &OpenOptions) -> Result<Accelerator<BoxedTransport>, DriverError> {
    Accelerator::with_name(open_transport(device)?, opts.clone(), device)
}

/// Open the transport of a device string, without identifying the device (for wrapping it, e.g.
/// in a [`trace::Recorder`](crate::trace::Recorder), before [`Accelerator::with_name`]).
pub fn open_transport(device: &str) -> Result<BoxedTransport, DriverError> {
    let (scheme, rest) = device.split_once(':').unwrap_or((device, ""));
    Ok(match scheme {
        "emu" => erase(EmuTransport::new(emu_config(device, rest)?)),
        "pcie" => erase(crate::pcie::open_pcie(rest).map_err(open_failed(device))?),
        "xdma" => erase(crate::xdma::open_xdma(rest).map_err(open_failed(device))?),
        "uart" => erase(crate::uart::open_uart(rest).map_err(open_failed(device))?),
        _ => {
            return Err(DriverError::UnknownScheme {
                device: device.to_string(),
                scheme: scheme.to_string(),
                known: known_schemes(),
            })
        }
    })
}

/// Split `key=value,key=value` options; an empty string has none. Errors name the bad option.
pub fn parse_options<'a>(device: &str, options: &'a str) -> Result<Vec<(&'a str, &'a str)>, DriverError> {
    options
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|opt| {
            opt.split_once('=').map(|(k, v)| (k.trim(), v.trim())).ok_or_else(|| DriverError::BadOption {
                device: device.to_string(),
                option: opt.to_string(),
                reason: "expected key=value".into(),
            })
        })
        .collect()
}

/// The `emu:` device string of `cfg` (every field spelled out): [`emu_config`] reads it back.
pub fn emu_device(cfg: &DeviceConfig) -> String {
    format!(
        "emu:kind={},lanes={},groups={},mults={},wmem={},ibuf={},obuf={}",
        cfg.kind.name(),
        cfg.lanes,
        cfg.groups,
        cfg.mults,
        cfg.wmem_words,
        cfg.ibuf_depth,
        cfg.obuf_depth
    )
}

/// The emulator configuration of an `emu:` option string (`options` is what follows `emu:`).
pub fn emu_config(device: &str, options: &str) -> Result<DeviceConfig, DriverError> {
    let opts = parse_options(device, options)?;
    let bad = |key: &str, reason: String| DriverError::BadOption {
        device: device.to_string(),
        option: key.to_string(),
        reason,
    };
    let mut cfg = DeviceConfig::default();
    // The preset first, so that the other keys override it whatever their order.
    for &(k, v) in &opts {
        if k == "config" {
            cfg = DeviceConfig::named(v).ok_or_else(|| {
                bad(k, format!("unknown configuration `{v}`; known: {}", DeviceConfig::names().join(", ")))
            })?;
        }
    }
    for &(k, v) in &opts {
        let num = |max: u32| -> Result<u32, DriverError> {
            let n: u32 = v.parse().map_err(|_| bad(k, format!("`{v}` is not a number")))?;
            if n == 0 || n > max {
                return Err(bad(k, format!("{n} is outside 1..={max}")));
            }
            Ok(n)
        };
        match k {
            "config" => {}
            "kind" => {
                cfg.kind = match v {
                    "crew" => CoreKind::Crew,
                    "dense" => CoreKind::Dense,
                    _ => return Err(bad(k, format!("unknown kind `{v}`; known kinds: crew, dense"))),
                }
            }
            "lanes" => cfg.lanes = num((1 << caps::LANES_WIDTH) - 1)?,
            "groups" => cfg.groups = num((1 << caps::GROUPS_WIDTH) - 1)?,
            "mults" => cfg.mults = num((1 << caps::MULTS_WIDTH) - 1)?,
            "wmem" => cfg.wmem_words = num(MAX_WMEM_WORDS)?,
            "ibuf" => cfg.ibuf_depth = num(MAX_IBUF_DEPTH)?,
            "obuf" => cfg.obuf_depth = num(MAX_OBUF_DEPTH)?,
            _ => {
                return Err(bad(
                    k,
                    "unknown option; known options: config, kind, lanes, groups, mults, wmem, ibuf, obuf".into(),
                ))
            }
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emu_device_strings_read_back() {
        for name in DeviceConfig::names() {
            for kind in [CoreKind::Crew, CoreKind::Dense] {
                let cfg = DeviceConfig::named(name).unwrap().with_kind(kind);
                let s = emu_device(&cfg);
                assert_eq!(emu_config(&s, s.strip_prefix("emu:").unwrap()).unwrap(), cfg, "{s}");
            }
        }
    }
}
