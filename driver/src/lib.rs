//! crew-driver: the userspace driver for CREW devices.
//!
//! One [`Transport`] trait, several backends, and a typed accelerator API over any of them.
//!
//! * [`transport`]: the trait every backend implements.
//! * [`emu`]: the in-process emulated device ([`EmuDevice`], [`EmuTransport`]).
//! * [`accel`]: the typed API ([`Accelerator`]): identify, load with tiling and CRC checks, run.
//! * [`device`]: [`open`] a device by string (`emu:lanes=16,...`), with the backend type erased.
//! * [`error`]: the error types, [`DriverError`] first.
//! * [`trace`]: recording every bus transaction of a session (`crew-host run --trace`).
//! * [`uart`]: the UART bridge backend (`uart:/dev/ttyUSB0`) and its emulated-board server.

#![deny(unsafe_code)]

pub mod accel;
pub mod device;
pub mod emu;
pub mod error;
mod mmio;
pub mod pcie;
pub mod trace;
pub mod transport;
pub mod uart;
pub mod xdma;

pub use accel::{Accelerator, DeviceInfo, LayerPlan, LayerRun, LoadReport, OpenOptions, TilePlan};
pub use device::{erase, open, open_transport, BoxedTransport, DynTransport};
pub use emu::{EmuDevice, EmuTransport, Fault};
pub use error::{BoxedError, DriverError};
pub use transport::Transport;
