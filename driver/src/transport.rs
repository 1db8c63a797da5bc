//! The one trait every backend implements: 32-bit register and memory access on the CREW bus.
//!
//! Addresses are byte addresses of the register map in [`crew_core::regs`]; every access is one
//! aligned 32-bit word. Backends (emulator, RTL simulation, PCIe BAR, XDMA, UART bridge) differ
//! only in how a word crosses to the device.

/// 32-bit access to a CREW device.
pub trait Transport {
    /// The backend's own error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Read one word.
    fn read32(&mut self, addr: u32) -> Result<u32, Self::Error>;

    /// Write one word.
    fn write32(&mut self, addr: u32, value: u32) -> Result<(), Self::Error>;

    /// Read consecutive words starting at `addr`. Backends with a faster bulk path override it.
    fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), Self::Error> {
        for (k, w) in out.iter_mut().enumerate() {
            *w = self.read32(addr + 4 * k as u32)?;
        }
        Ok(())
    }

    /// Write consecutive words starting at `addr`. Backends with a faster bulk path override it.
    fn write_burst(&mut self, addr: u32, data: &[u32]) -> Result<(), Self::Error> {
        for (k, &w) in data.iter().enumerate() {
            self.write32(addr + 4 * k as u32, w)?;
        }
        Ok(())
    }
}

/// Forwarding impls: a boxed transport, and a borrowed one (so an
/// [`Accelerator`](crate::Accelerator) can drive a backend the caller keeps, to read its
/// statistics afterwards).
macro_rules! forward_transport {
    ($($ty:ty),*) => {$(
        impl<T: Transport + ?Sized> Transport for $ty {
            type Error = T::Error;
            fn read32(&mut self, addr: u32) -> Result<u32, Self::Error> {
                (**self).read32(addr)
            }
            fn write32(&mut self, addr: u32, value: u32) -> Result<(), Self::Error> {
                (**self).write32(addr, value)
            }
            fn read_burst(&mut self, addr: u32, out: &mut [u32]) -> Result<(), Self::Error> {
                (**self).read_burst(addr, out)
            }
            fn write_burst(&mut self, addr: u32, data: &[u32]) -> Result<(), Self::Error> {
                (**self).write_burst(addr, data)
            }
        }
    )*};
}

forward_transport!(Box<T>, &mut T);
