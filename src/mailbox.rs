//! A page of A's memory where B (or D) leaves its result for A.
//!
//! `kjump` maps and locks a page, finds its physical address through
//! `/proc/self/pagemap`, and passes it as `kjump.mailbox=`. B writes a
//! record there through `/dev/mem` before it jumps back; when `reboot()`
//! returns in A, `kjump` reads it. The page is chosen outside the kjump
//! region (A's pages there are swapped aside while B runs).

use core::ptr::NonNull;

use crate::devmem::DevMem;
use crate::units::PAGE_SIZE;
use crate::Error;

const MAGIC: &[u8; 8] = b"KJMBOX01";
/// Longest message a record carries.
pub const MAX_TEXT: usize = 4000;

/// What B reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Whether B did what it was asked.
    pub ok: bool,
    /// One line: what was done, or why not.
    pub text: String,
}

/// Encodes a report as the page B writes.
pub fn encode(report: &Report) -> [u8; PAGE_SIZE as usize] {
    let mut page = [0u8; PAGE_SIZE as usize];
    let text = &report.text.as_bytes()[..report.text.len().min(MAX_TEXT)];
    page[..8].copy_from_slice(MAGIC);
    page[8..12].copy_from_slice(&(if report.ok { 1u32 } else { 2 }).to_le_bytes());
    page[12..16].copy_from_slice(&(text.len() as u32).to_le_bytes());
    page[16..16 + text.len()].copy_from_slice(text);
    let crc = crate::crc32::crc32(&page[..16 + text.len()]);
    page[PAGE_SIZE as usize - 4..].copy_from_slice(&crc.to_le_bytes());
    page
}

/// Decodes a mailbox page; `None` when nothing valid was left there.
pub fn decode(page: &[u8]) -> Option<Report> {
    if page.len() < PAGE_SIZE as usize || &page[..8] != MAGIC {
        return None;
    }
    let ok = match u32::from_le_bytes(page[8..12].try_into().ok()?) {
        1 => true,
        2 => false,
        _ => return None,
    };
    let len = u32::from_le_bytes(page[12..16].try_into().ok()?) as usize;
    if len > MAX_TEXT {
        return None;
    }
    let crc = u32::from_le_bytes(page[PAGE_SIZE as usize - 4..PAGE_SIZE as usize].try_into().ok()?);
    if crate::crc32::crc32(&page[..16 + len]) != crc {
        return None;
    }
    Some(Report { ok, text: String::from_utf8_lossy(&page[16..16 + len]).into_owned() })
}

/// B's side: writes `report` into A's mailbox page at `phys`.
pub fn post(mem: &DevMem, phys: u64, report: &Report) -> Result<(), Error> {
    let mut w = mem.map(phys, PAGE_SIZE as usize)?;
    w.bytes_mut().copy_from_slice(&encode(report));
    Ok(())
}

/// A's side: a locked page with a known physical address.
pub struct Mailbox {
    pages: Vec<(NonNull<u8>, u64)>,
    chosen: usize,
}

fn physical_address(virt: usize) -> Result<u64, Error> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open("/proc/self/pagemap").map_err(|e| Error::io("opening /proc/self/pagemap", e))?;
    let mut entry = [0u8; 8];
    f.read_exact_at(&mut entry, (virt as u64 / PAGE_SIZE) * 8)
        .map_err(|e| Error::io("reading /proc/self/pagemap", e))?;
    let e = u64::from_le_bytes(entry);
    let pfn = e & ((1 << 55) - 1);
    if e & (1 << 63) == 0 || pfn == 0 {
        return Err(Error::Msg("cannot see physical addresses in /proc/self/pagemap (run as root)".into()));
    }
    Ok(pfn * PAGE_SIZE)
}

impl Mailbox {
    /// Maps and locks pages until one lies outside `[avoid_start, avoid_end)`.
    pub fn new(avoid: (u64, u64)) -> Result<Self, Error> {
        let mut mb = Mailbox { pages: Vec::new(), chosen: 0 };
        for _ in 0..64 {
            // SAFETY: a new private anonymous mapping at an address the
            // kernel picks; it aliases nothing and is unmapped in Drop.
            let ptr = unsafe {
                rustix::mm::mmap_anonymous(
                    core::ptr::null_mut(),
                    PAGE_SIZE as usize,
                    rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                    rustix::mm::MapFlags::PRIVATE,
                )
            }
            .map_err(|e| Error::sys("mapping the mailbox page", e))?;
            let Some(base) = NonNull::new(ptr.cast::<u8>()) else { break };
            // SAFETY: the mapping is PAGE_SIZE bytes, readable and writable.
            unsafe { base.as_ptr().write_bytes(0, PAGE_SIZE as usize) };
            // SAFETY: locks exactly the mapping made above.
            unsafe { rustix::mm::mlock(base.as_ptr().cast(), PAGE_SIZE as usize) }
                .map_err(|e| Error::sys("locking the mailbox page in memory", e))?;
            let phys = physical_address(base.as_ptr() as usize)?;
            mb.pages.push((base, phys));
            if phys + PAGE_SIZE <= avoid.0 || phys >= avoid.1 {
                mb.chosen = mb.pages.len() - 1;
                return Ok(mb);
            }
        }
        Err(Error::Msg("could not find a mailbox page outside the kjump region".into()))
    }

    /// Physical address of the page B writes.
    pub fn phys(&self) -> u64 {
        self.pages[self.chosen].1
    }

    /// What B left, if anything.
    pub fn read(&self) -> Option<Report> {
        let base = self.pages[self.chosen].0;
        let mut copy = [0u8; PAGE_SIZE as usize];
        for (i, b) in copy.iter_mut().enumerate() {
            // SAFETY: reads inside the live, locked mapping; volatile because
            // another kernel wrote it behind the compiler's back.
            *b = unsafe { base.as_ptr().add(i).read_volatile() };
        }
        decode(&copy)
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        for (base, _) in &self.pages {
            // SAFETY: unmaps a mapping made in `new`; no reference to it remains.
            let _ = unsafe { rustix::mm::munmap(base.as_ptr().cast(), PAGE_SIZE as usize) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let r = Report { ok: false, text: "target /dev/vdz did not appear within 5 s".into() };
        assert_eq!(decode(&encode(&r)), Some(r.clone()));
        assert_eq!(decode(&[0u8; 4096]), None);
        let mut p = encode(&r);
        p[20] ^= 1;
        assert_eq!(decode(&p), None);
        let mut p = encode(&r);
        p[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&p), None);
        assert_eq!(decode(&p[..100]), None);
        let long = Report { ok: true, text: "x".repeat(9000) };
        assert_eq!(decode(&encode(&long)).unwrap().text.len(), MAX_TEXT);
    }
}
