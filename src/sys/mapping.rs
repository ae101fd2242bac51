//! Memory mappings: the one owner of `mmap`, `mlock`, `munmap` (and of
//! handing mapped pages to a pipe) in kjump.
//!
//! [`Mapping`] is readable and writable: anonymous memory (the mailbox's
//! pages, the `O_DIRECT` buffers) or a file's pages shared (`/dev/mem`
//! windows, the resident mailbox's file). [`ReadOnly`] is a file's pages
//! shared read-only (`/proc/vmcore`, A's memory in B). Both are unmapped
//! when dropped, and hand out their bytes only as borrows of themselves:
//! shared borrows read, and every write needs `&mut`.

use std::os::fd::AsFd;

use rustix::io::{Errno, Result};
use rustix::mm::{MapFlags, ProtFlags};

use crate::units::PAGE_SIZE;

/// `len` bytes mapped readable and writable, unmapped when dropped.
pub struct Mapping {
    base: core::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: a `Mapping` owns its pages alone: the pointer is never handed
// out, only borrows of `self`, so moving it to another thread moves the
// only access to them (mapped memory may be used and unmapped from any
// thread of the process).
unsafe impl Send for Mapping {}
// SAFETY: through `&Mapping` the pages are only read (`bytes`,
// `read_volatile`); every write takes `&mut Mapping`, which excludes any
// other borrow, as for a `Vec<u8>`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes (not zero) with `prot`: of `file` at `offset`
    /// (page aligned), shared, or anonymous and private.
    fn map(len: usize, prot: ProtFlags, file: Option<(std::os::fd::BorrowedFd<'_>, u64)>) -> Result<Mapping> {
        if len == 0 {
            return Err(Errno::INVAL);
        }
        let ptr = match file {
            // SAFETY: a new shared mapping of the file at an address the
            // kernel picks (no MAP_FIXED): it replaces nothing and aliases
            // no Rust object. What the file's pages hold is the caller's
            // to know (see `shared` and `ReadOnly`).
            Some((fd, offset)) => unsafe { rustix::mm::mmap(core::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, offset) },
            // SAFETY: a new private anonymous mapping at an address the
            // kernel picks: it aliases nothing.
            None => unsafe { rustix::mm::mmap_anonymous(core::ptr::null_mut(), len, prot, MapFlags::PRIVATE) },
        }?;
        let base = core::ptr::NonNull::new(ptr.cast::<u8>()).ok_or(Errno::FAULT)?;
        Ok(Mapping { base, len })
    }

    /// `len` bytes of new anonymous memory, zero-filled (untouched pages
    /// cost no memory).
    pub fn anonymous(len: usize) -> Result<Mapping> {
        Mapping::map(len, ProtFlags::READ | ProtFlags::WRITE, None)
    }

    /// `len` bytes of `file` at `offset` (page aligned), shared: writes
    /// reach the file (or, for `/dev/mem`, physical memory), and what
    /// others write there shows here.
    pub fn shared(file: impl AsFd, offset: u64, len: usize) -> Result<Mapping> {
        Mapping::map(len, ProtFlags::READ | ProtFlags::WRITE, Some((file.as_fd(), offset)))
    }

    /// Locks the pages in memory (`mlock`), faulting each in: from here on
    /// every page has a physical page.
    pub fn lock(&self) -> Result<()> {
        // SAFETY: locks exactly this mapping, which `self` keeps mapped;
        // mlock changes no byte of it.
        unsafe { rustix::mm::mlock(self.base.as_ptr().cast(), self.len) }
    }

    /// The virtual address of the first byte (to look its pages up in
    /// `/proc/self/pagemap`).
    pub fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never: a mapping holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `base..base + len` is mapped readable for as long as
        // `self` lives, and only `&mut self` writes it.
        unsafe { core::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, mapped writable too; `&mut self` makes
        // this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }

    /// Copies the first `out.len()` bytes (at most all) into `out`, byte by
    /// byte with volatile reads: for pages another kernel wrote while this
    /// one was away, behind the compiler's back.
    pub fn read_volatile(&self, out: &mut [u8]) {
        for (b, from) in out.iter_mut().zip(self.bytes()) {
            // SAFETY: `from` is a byte of this mapping, borrowed for the read.
            *b = unsafe { core::ptr::read_volatile(from) };
        }
    }

    /// Writes `data` over the first bytes (as many as fit), byte by byte
    /// with volatile writes: they reach memory, for another kernel to read,
    /// although nothing in this one reads them.
    pub fn write_volatile(&mut self, data: &[u8]) {
        for (to, b) in self.bytes_mut().iter_mut().zip(data) {
            // SAFETY: `to` is a byte of this mapping, borrowed mutably.
            unsafe { core::ptr::write_volatile(to, *b) };
        }
    }

    /// Keeps page `index` and gives the others back: the mapping of that
    /// one page. An `index` past the end is refused (and all is unmapped).
    pub fn keep_page(self, index: usize) -> Result<Mapping> {
        let page = PAGE_SIZE as usize;
        if index >= self.len / page {
            return Err(Errno::INVAL);
        }
        let whole = core::mem::ManuallyDrop::new(self);
        let (before, after) = (index * page, whole.len - (index + 1) * page);
        // The page kept lies inside the mapping (index < len / page).
        let kept = whole.base.as_ptr().wrapping_add(before);
        unmap(whole.base.as_ptr(), before);
        unmap(kept.wrapping_add(page), after);
        let base = core::ptr::NonNull::new(kept).ok_or(Errno::FAULT)?;
        Ok(Mapping { base, len: page })
    }

    /// Hands the pipe whose write end is `write_end` a reference to these
    /// pages themselves, not a copy (`vmsplice`): while the pipe holds it,
    /// the kernel keeps the pages in place (no migration), and what is
    /// written to them later shows when the pipe is read. Returns how many
    /// bytes the pipe took. `write_end` must be open write-only (a pipe's
    /// write end); anything else is refused (`EBADF`), since the kernel
    /// would write this memory through it.
    pub fn splice_to_pipe(&self, write_end: impl AsFd) -> Result<usize> {
        if rustix::fs::fcntl_getfl(&write_end)? & rustix::fs::OFlags::RWMODE != rustix::fs::OFlags::WRONLY {
            return Err(Errno::BADF);
        }
        // SAFETY: `write_end` is open write-only (checked above), so the
        // kernel only reads the pages; without SPLICE_F_GIFT they stay
        // this process's to change, and the pipe's reference keeps them
        // alive even once they are unmapped.
        unsafe { rustix::pipe::vmsplice(&write_end, &[rustix::pipe::IoSliceRaw::from_slice(self.bytes())], rustix::pipe::SpliceFlags::empty()) }
    }
}

/// Unmaps `len` bytes at `base` (nothing when `len` is 0), ignoring errors:
/// giving pages back is cleanup.
fn unmap(base: *mut u8, len: usize) {
    if len > 0 {
        // SAFETY: callers pass a part of a mapping they own and give up:
        // no borrow of it outlives this call, and it is never used again.
        let _ = unsafe { rustix::mm::munmap(base.cast(), len) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // `base`/`len` are what mmap returned (or the one page `keep_page`
        // kept); the borrow checker ends every slice of it before this runs.
        unmap(self.base.as_ptr(), self.len);
    }
}

/// `len` bytes of a file, mapped shared and read-only; unmapped when
/// dropped. The file must not change while it is mapped (for
/// `/proc/vmcore`: A is stopped, B only reads it).
pub struct ReadOnly(Mapping);

impl ReadOnly {
    /// Maps `len` bytes (not zero) of `file` at `offset` (page aligned).
    pub fn map(file: impl AsFd, offset: u64, len: usize) -> Result<ReadOnly> {
        Mapping::map(len, ProtFlags::READ, Some((file.as_fd(), offset))).map(ReadOnly)
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = PAGE_SIZE as usize;

    #[test]
    fn anonymous_memory_reads_back_what_is_written() {
        let mut m = Mapping::anonymous(3 * PAGE).unwrap();
        assert_eq!((m.len(), m.is_empty(), m.addr() % PAGE), (3 * PAGE, false, 0));
        assert!(m.bytes().iter().all(|&b| b == 0));
        m.bytes_mut()[PAGE..2 * PAGE].fill(7);
        m.write_volatile(&[1, 2, 3]);
        let mut out = [0u8; 4];
        m.read_volatile(&mut out);
        assert_eq!(out, [1, 2, 3, 0]);
        // Longer than the mapping: what fits, no more.
        m.write_volatile(&vec![9u8; 4 * PAGE]);
        let mut all = vec![0u8; 4 * PAGE];
        m.read_volatile(&mut all);
        assert!(all[..3 * PAGE].iter().all(|&b| b == 9) && all[3 * PAGE..].iter().all(|&b| b == 0));
        assert_eq!(Mapping::anonymous(0).err(), Some(Errno::INVAL));
    }

    #[test]
    fn keep_page_keeps_that_page_only() {
        let mut m = Mapping::anonymous(4 * PAGE).unwrap();
        for (i, page) in m.bytes_mut().chunks_mut(PAGE).enumerate() {
            page.fill(i as u8 + 1);
        }
        let base = m.addr();
        let kept = m.keep_page(2).unwrap();
        assert_eq!((kept.addr(), kept.len()), (base + 2 * PAGE, PAGE));
        assert!(kept.bytes().iter().all(|&b| b == 3));
        // The first and the last page, at either end.
        assert_eq!(Mapping::anonymous(2 * PAGE).unwrap().keep_page(0).unwrap().len(), PAGE);
        assert_eq!(Mapping::anonymous(2 * PAGE).unwrap().keep_page(1).unwrap().len(), PAGE);
        assert_eq!(Mapping::anonymous(2 * PAGE).unwrap().keep_page(2).err(), Some(Errno::INVAL));
        assert_eq!(Mapping::anonymous(100).unwrap().keep_page(0).err(), Some(Errno::INVAL));
    }

    #[test]
    fn only_a_write_end_takes_the_pages() {
        let mut m = Mapping::anonymous(PAGE).unwrap();
        m.lock().unwrap();
        let (read_end, write_end) = rustix::pipe::pipe().unwrap();
        assert_eq!(m.splice_to_pipe(&read_end).err(), Some(Errno::BADF));
        assert_eq!(m.splice_to_pipe(&write_end), Ok(PAGE));
        // The pipe holds the page itself: written after, read as written.
        m.write_volatile(b"after");
        let mut seen = [0u8; PAGE];
        assert_eq!(rustix::io::read(&read_end, &mut seen), Ok(PAGE));
        assert_eq!(&seen[..5], b"after");
    }

    #[test]
    fn a_file_maps_shared_or_read_only() {
        let path = std::env::temp_dir().join(format!("kjump-mapping-test-{}", std::process::id()));
        std::fs::write(&path, vec![5u8; 2 * PAGE]).unwrap();
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut w = Mapping::shared(&f, PAGE as u64, PAGE).unwrap();
        w.bytes_mut()[..2].copy_from_slice(b"ok");
        let r = ReadOnly::map(&f, PAGE as u64, PAGE).unwrap();
        assert_eq!(&r.bytes()[..3], b"ok\x05");
        drop((w, r));
        assert_eq!(&std::fs::read(&path).unwrap()[PAGE..PAGE + 2], b"ok");
        assert!(ReadOnly::map(&f, 0, 0).is_err() && ReadOnly::map(&f, 1, PAGE).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
