//! crew-driver: the userspace driver for CREW devices.
//!
//! One [`Transport`] trait, several backends, and a typed accelerator API over any of them.

pub mod transport;

pub use transport::Transport;
