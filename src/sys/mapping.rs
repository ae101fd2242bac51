//! Runs in B: a read-only window of a file in memory (`/proc/vmcore`, A's
//! memory), the one safe owner of such a mapping.

use std::os::fd::AsFd;

/// `len` bytes of a file, mapped shared and read-only; unmapped when dropped.
pub struct ReadOnly {
    base: core::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: a `ReadOnly` is a read-only view of a file that nothing writes
// while it lives (for /proc/vmcore: A is stopped, B only reads it); the
// pointer is owned by the `ReadOnly` and unmapped only when it drops, so
// sharing it between threads, or moving it to one, is sound.
unsafe impl Send for ReadOnly {}
// SAFETY: as above; `bytes` hands out shared, read-only slices.
unsafe impl Sync for ReadOnly {}

impl ReadOnly {
    /// Maps `len` bytes (not zero) of `file` at `offset` (page aligned).
    pub fn map(file: impl AsFd, offset: u64, len: usize) -> rustix::io::Result<ReadOnly> {
        if len == 0 {
            return Err(rustix::io::Errno::INVAL);
        }
        // SAFETY: a new shared read-only mapping of the file, at an
        // address the kernel picks; it aliases no Rust object and is
        // unmapped in Drop. The caller maps only files that do not change
        // under it (see the type's doc).
        let ptr = unsafe { rustix::mm::mmap(core::ptr::null_mut(), len, rustix::mm::ProtFlags::READ, rustix::mm::MapFlags::SHARED, file, offset) }?;
        let base = core::ptr::NonNull::new(ptr.cast::<u8>()).ok_or(rustix::io::Errno::FAULT)?;
        Ok(ReadOnly { base, len })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `base..base + len` is a live read-only mapping owned by
        // `self`; nothing writes it while the slice lives.
        unsafe { core::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `map`; the borrow checker ends
        // every slice of it before this runs.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
