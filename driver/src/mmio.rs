//! The only module of the crate with `unsafe` code: volatile 32-bit access into a mapped region,
//! and a page-aligned byte buffer for DMA transfers.
//!
//! Every access is checked (in range, 4-byte aligned) before the raw pointer is formed, and no
//! reference into the mapped region is ever created or handed out: the region may be device
//! memory (a PCIe BAR) or memory another thread or process writes concurrently.

#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::sync::atomic::{fence, Ordering};

use memmap2::MmapRaw;

/// An access that does not fit the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MmioError {
    #[error("unaligned 32-bit access at byte offset 0x{offset:x}")]
    Unaligned { offset: u64 },
    #[error("access at byte offset 0x{offset:x} ({words} word(s)) runs past the end of the {len}-byte region")]
    OutOfRange { offset: u64, words: usize, len: usize },
}

/// A mapped region accessed only through volatile 32-bit reads and writes.
pub struct MmioRegion {
    map: MmapRaw,
}

impl std::fmt::Debug for MmioRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmioRegion").field("len", &self.map.len()).finish()
    }
}

impl MmioRegion {
    pub fn new(map: MmapRaw) -> MmioRegion {
        MmioRegion { map }
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Check an access of `words` consecutive words at byte `offset`; the offset as `usize`.
    fn check(&self, offset: u64, words: usize) -> Result<usize, MmioError> {
        if offset & 3 != 0 {
            return Err(MmioError::Unaligned { offset });
        }
        let len = self.map.len();
        let out_of_range = MmioError::OutOfRange { offset, words, len };
        let start = usize::try_from(offset).map_err(|_| out_of_range)?;
        let end = words.checked_mul(4).and_then(|b| b.checked_add(start)).ok_or(out_of_range)?;
        if end > len {
            return Err(out_of_range);
        }
        // The mapping itself is page-aligned, so an aligned offset gives an aligned pointer.
        debug_assert_eq!(self.map.as_mut_ptr() as usize % 4, 0);
        Ok(start)
    }

    /// Volatile read of the little-endian word at byte `offset`.
    pub fn read32(&self, offset: u64) -> Result<u32, MmioError> {
        let start = self.check(offset, 1)?;
        fence(Ordering::SeqCst);
        // SAFETY: `check` proved `start..start + 4` lies inside the live mapping (owned by
        // `self.map`, unmapped only on drop) and that `start` is a multiple of 4 from a
        // page-aligned base, so the pointer is valid and aligned for a `u32` read. The read is
        // volatile and no reference is created, so concurrent writers (the device, or another
        // mapping of the same file) do not invalidate any Rust reference.
        let raw = unsafe { std::ptr::read_volatile(self.map.as_mut_ptr().add(start) as *const u32) };
        Ok(u32::from_le(raw))
    }

    /// Volatile write of `value` as a little-endian word at byte `offset`.
    pub fn write32(&self, offset: u64, value: u32) -> Result<(), MmioError> {
        let start = self.check(offset, 1)?;
        // SAFETY: as in `read32`: in range, aligned, inside a mapping this value owns; the
        // mapping is writable (mapped read-write by the only constructor's callers) and the
        // write is volatile through a raw pointer.
        unsafe { std::ptr::write_volatile(self.map.as_mut_ptr().add(start) as *mut u32, value.to_le()) };
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Volatile reads of consecutive words starting at byte `offset`, one 32-bit access each.
    pub fn read_words(&self, offset: u64, out: &mut [u32]) -> Result<(), MmioError> {
        let start = self.check(offset, out.len())?;
        fence(Ordering::SeqCst);
        let base = self.map.as_mut_ptr();
        for (k, w) in out.iter_mut().enumerate() {
            // SAFETY: `check` proved the whole range `start..start + 4 * out.len()` is inside the
            // mapping and `start` is 4-aligned, so each `start + 4k` is a valid aligned word.
            let raw = unsafe { std::ptr::read_volatile(base.add(start + 4 * k) as *const u32) };
            *w = u32::from_le(raw);
        }
        Ok(())
    }

    /// Volatile writes of consecutive words starting at byte `offset`, one 32-bit access each.
    pub fn write_words(&self, offset: u64, data: &[u32]) -> Result<(), MmioError> {
        let start = self.check(offset, data.len())?;
        let base = self.map.as_mut_ptr();
        for (k, &w) in data.iter().enumerate() {
            // SAFETY: as in `read_words`: the whole range was checked, each word is in range
            // and aligned, and the write goes through a raw pointer.
            unsafe { std::ptr::write_volatile(base.add(start + 4 * k) as *mut u32, w.to_le()) };
        }
        fence(Ordering::SeqCst);
        Ok(())
    }
}

/// DMA buffer alignment: one page.
pub const DMA_ALIGN: usize = 4096;

/// A zero-initialised byte buffer whose start is aligned to [`DMA_ALIGN`] and whose capacity is
/// a whole number of pages, as the XDMA driver wants for zero-copy transfers.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    layout: Layout,
}

// SAFETY: `AlignedBuf` uniquely owns its allocation (like a `Box<[u8]>`); nothing else aliases it.
unsafe impl Send for AlignedBuf {}
// SAFETY: `&AlignedBuf` gives access to nothing but its capacity; the bytes need `&mut`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A buffer of at least `len` bytes (rounded up to whole pages, at least one page); `None`
    /// if the size overflows or the allocation fails.
    pub fn new(len: usize) -> Option<AlignedBuf> {
        let size = len.max(1).checked_next_multiple_of(DMA_ALIGN)?;
        let layout = Layout::from_size_align(size, DMA_ALIGN).ok()?;
        // SAFETY: `layout` has a non-zero size (at least one page).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = std::ptr::NonNull::new(raw)?;
        Some(AlignedBuf { ptr, layout })
    }

    /// Capacity in bytes (a multiple of [`DMA_ALIGN`]).
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// The whole buffer (capacity bytes), mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised (zeroed at allocation) bytes owned
        // by `self`; the `&mut self` borrow keeps them alive and makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed` with exactly this `layout` and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf").field("capacity", &self.capacity()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(len: u64) -> (tempfile::NamedTempFile, MmioRegion) {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(len).unwrap();
        let map = memmap2::MmapOptions::new().map_raw(f.as_file()).unwrap();
        (f, MmioRegion::new(map))
    }

    #[test]
    fn round_trip_and_checks() {
        let (_f, r) = region(4096);
        r.write32(8, 0xdead_beef).unwrap();
        assert_eq!(r.read32(8).unwrap(), 0xdead_beef);
        r.write_words(4092, &[7]).unwrap();
        let mut out = [0; 2];
        r.read_words(4, &mut out).unwrap();
        assert_eq!(out, [0, 0xdead_beef]);
        assert_eq!(r.read32(4096), Err(MmioError::OutOfRange { offset: 4096, words: 1, len: 4096 }));
        assert_eq!(r.read32(6), Err(MmioError::Unaligned { offset: 6 }));
        assert!(matches!(r.write_words(4088, &[0; 3]), Err(MmioError::OutOfRange { .. })));
        assert!(matches!(r.read_words(u64::MAX - 3, &mut out), Err(MmioError::OutOfRange { .. })));
        assert!(r.read_words(4096, &mut []).is_ok());
    }

    #[test]
    fn aligned_buffer() {
        let mut b = AlignedBuf::new(5000).unwrap();
        assert_eq!(b.capacity(), 8192);
        assert_eq!(b.as_mut_slice().as_ptr() as usize % DMA_ALIGN, 0);
        assert!(b.as_mut_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[8191] = 3;
        assert_eq!(b.as_mut_slice()[8191], 3);
        assert_eq!(AlignedBuf::new(0).unwrap().capacity(), 4096);
        assert!(AlignedBuf::new(usize::MAX).is_none());
    }
}
