//! Physical memory through `/dev/mem`, always by `mmap` (the kernel limits
//! `read`/`write` on `/dev/mem` to below its own `high_memory`, and A's RAM
//! lies above B's).

use std::sync::Arc;

use rustix::fd::OwnedFd;
use rustix::fs::{open, Mode, OFlags};

use crate::range::PhysRange;
use crate::sys::mapping::Mapping;
use crate::units::PAGE_SIZE;
use crate::Error;

/// An open `/dev/mem`.
pub struct DevMem {
    fd: OwnedFd,
}

/// A mapping of `[phys, phys + len)`: the whole pages around it, of which
/// it shows `len` bytes from `skip`.
pub struct Window {
    pages: Mapping,
    skip: usize,
    len: usize,
}

impl DevMem {
    /// Opens `/dev/mem` for reading and writing.
    pub fn open() -> Result<Self, Error> {
        let fd = open("/dev/mem", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::sys("opening /dev/mem (needs CONFIG_DEVMEM, STRICT_DEVMEM off)", e))?;
        Ok(DevMem { fd })
    }

    /// Maps `len` bytes of physical memory at `phys`, readable and writable.
    pub fn map(&self, phys: u64, len: usize) -> Result<Window, Error> {
        let page = phys & !(PAGE_SIZE - 1);
        let skip = (phys - page) as usize;
        let map_len = skip
            .checked_add(len)
            .and_then(|n| n.checked_next_multiple_of(PAGE_SIZE as usize))
            .ok_or_else(|| Error::Msg(format!("mapping {len} bytes at {phys:#x}: size overflows")))?;
        // The memory behind it is physical RAM that no Rust object in this
        // process owns.
        let pages =
            Mapping::shared(&self.fd, page, map_len).map_err(|e| Error::sys(format!("mapping physical memory {phys:#x}+{len:#x} through /dev/mem"), e))?;
        Ok(Window { pages, skip, len })
    }

    /// Copies `len` bytes of physical memory from `src` to `dst`, in windows.
    pub fn copy(&self, src: u64, dst: u64, len: u64) -> Result<(), Error> {
        const STEP: u64 = 16 << 20;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(STEP) as usize;
            let from = self.map(src + done, n)?;
            let mut to = self.map(dst + done, n)?;
            store(to.bytes_mut(), Some(from.bytes()));
            done += n as u64;
        }
        Ok(())
    }

    /// Reads one page of physical memory.
    pub fn read_page(&self, phys: u64) -> Result<[u8; PAGE_SIZE as usize], Error> {
        let w = self.map(phys & !(PAGE_SIZE - 1), PAGE_SIZE as usize)?;
        let mut page = [0u8; PAGE_SIZE as usize];
        page.copy_from_slice(w.bytes());
        Ok(page)
    }
}

/// Writes physical memory through one cached window at a time, so that
/// many small writes near each other cost one `mmap`, not one each.
/// Windows never reach outside the RAM range being written.
pub struct Writer {
    mem: Arc<DevMem>,
    size: u64,
    /// The window mapped now, and what it maps.
    current: Option<(PhysRange, Window)>,
}

impl Writer {
    /// A writer whose windows are at most `size` bytes (a multiple of the page size).
    pub fn new(mem: Arc<DevMem>, size: u64) -> Self {
        Writer { mem, size: size.max(PAGE_SIZE) & !(PAGE_SIZE - 1), current: None }
    }

    /// Writes `len` bytes at physical `addr`: `data` (exactly `len`
    /// bytes), or zeros when `data` is `None` (where a page is not zero
    /// already). `[addr, addr + len)` must lie inside `range`, a RAM range
    /// that may be mapped whole.
    pub fn write(&mut self, addr: u64, len: u64, data: Option<&[u8]>, range: PhysRange) -> Result<(), Error> {
        let mut done = 0u64;
        while done < len {
            let at = addr + done;
            let fits = matches!(&self.current, Some((mapped, _)) if mapped.contains(at));
            if !fits {
                self.current = None;
                let start = (at / self.size * self.size).max(range.start & !(PAGE_SIZE - 1));
                let end = (start + self.size).min(range.end);
                if end <= at {
                    return Err(Error::Msg(format!("writing physical memory at {at:#x}: outside the range {range}")));
                }
                let w = self.mem.map(start, (end - start) as usize)?;
                self.current = Some((PhysRange::new(start, end), w));
            }
            let Some((mapped, w)) = self.current.as_mut() else {
                return Err(Error::Msg(format!("writing physical memory at {at:#x}: no window")));
            };
            let n = (len - done).min(mapped.end - at);
            let off = (at - mapped.start) as usize;
            let dst = &mut w.bytes_mut()[off..off + n as usize];
            match data {
                Some(d) => store(dst, Some(&d[done as usize..(done + n) as usize])),
                // Only pages that are not zero already: reading costs less
                // than writing (no read-for-ownership; under emulation no
                // host page for memory nobody has touched since power-on).
                None => dst.chunks_mut(PAGE_SIZE as usize).filter(|p| !crate::image::is_zero(p)).for_each(|p| store(p, None)),
            }
            done += n;
        }
        Ok(())
    }
}

/// Writes `src` (or zeros) over `dst`, mapped physical memory, with
/// plain eight-byte stores. `copy_from_slice` and `fill` call the C
/// library's `memcpy`/`memset`, whose `rep movsq`/`rep stosq` wrote a
/// `/dev/mem` mapping under QEMU's emulation at 0.14–1.1 GB/s from one
/// boot to the next, where plain stores ran at 2.8–4.6 GB/s (memory
/// already touched; the first touch of a page costs the host a page
/// fault either way); on hardware the two are alike. Volatile stores keep
/// the compiler from turning the loop back into a `memcpy` call.
fn store(dst: &mut [u8], src: Option<&[u8]>) {
    if dst.as_ptr().align_offset(8) != 0 || dst.len() % 8 != 0 || src.is_some_and(|s| s.len() != dst.len()) {
        match src {
            Some(s) => {
                let n = dst.len().min(s.len());
                dst[..n].copy_from_slice(&s[..n]);
            }
            None => dst.fill(0),
        }
        return;
    }
    let words = dst.chunks_exact_mut(8);
    match src {
        Some(s) => words.zip(s.chunks_exact(8)).for_each(|(word, from)| store_word(word, from.try_into().unwrap_or([0; 8]))),
        None => words.for_each(|word| store_word(word, [0; 8])),
    }
}

/// One eight-byte store of `value` over `word`.
#[inline(always)]
fn store_word(word: &mut [u8], value: [u8; 8]) {
    debug_assert!(word.len() == 8 && word.as_ptr().align_offset(8) == 0);
    // SAFETY: `word` is eight bytes, borrowed mutably and eight-byte
    // aligned (`store` checked `dst`'s alignment and steps by eight).
    unsafe { core::ptr::write_volatile(word.as_mut_ptr().cast::<u64>(), u64::from_ne_bytes(value)) };
}

impl Window {
    /// The mapped bytes (`skip + len` lies inside the pages mapped).
    pub fn bytes(&self) -> &[u8] {
        self.pages.bytes().get(self.skip..self.skip + self.len).unwrap_or_default()
    }

    /// The mapped bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.pages.bytes_mut().get_mut(self.skip..self.skip + self.len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::store;

    #[test]
    fn store_copies_and_zeroes_aligned_and_unaligned() {
        let src: Vec<u8> = (0..64u8).collect();
        let mut buf = vec![u64::MAX; 9];
        // SAFETY: (a test) a byte view of a Vec<u64> of 72 bytes, eight-byte
        // aligned, borrowed mutably once for as long as `buf` lives.
        let bytes = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), 72) };
        store(&mut bytes[..64], Some(&src));
        assert_eq!(&bytes[..64], &src[..]);
        store(&mut bytes[1..33], Some(&src[..32]));
        assert_eq!(&bytes[1..33], &src[..32]);
        store(&mut bytes[8..24], None);
        assert!(bytes[8..24].iter().all(|&b| b == 0));
        store(&mut bytes[3..9], None);
        assert!(bytes[3..9].iter().all(|&b| b == 0));
        // A source of the wrong length copies what fits, never panics.
        store(&mut bytes[..16], Some(&src[..4]));
        assert_eq!(&bytes[..4], &src[..4]);
        assert_eq!(bytes[64..72], [0xff; 8]);
    }
}
