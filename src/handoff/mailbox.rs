//! A page of A's memory where B (or D) leaves its result for A.
//!
//! `kjump` maps and locks a page, pins it (a pipe holds a reference to it,
//! so the kernel cannot migrate it), finds its physical address through
//! `/proc/self/pagemap`, and passes it as `kjump.mailbox=`. B writes a
//! record there through `/dev/mem` before it jumps back; when `reboot()`
//! returns in A, `kjump` reads it. The page is chosen outside the kjump
//! region (A's pages there are swapped aside while B runs).
//!
//! B and D write a physical page of A's by address, so they write only
//! where they find A's request ([`post`]): a page that held anything else
//! is left alone, whatever the address says.

use std::os::fd::OwnedFd;

use crate::le;
use crate::range::PhysRange;
use crate::sys::devmem::DevMem;
use crate::sys::mapping::Mapping;
use crate::target::in_use::{decode_table, encode_table, InUse, TABLE_LEN};
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
    let crc = crate::image::crc32(&page[..16 + text.len()]);
    page[PAGE_SIZE as usize - 4..].copy_from_slice(&crc.to_le_bytes());
    page
}

/// Decodes a mailbox page; `None` when nothing valid was left there.
pub fn decode(page: &[u8]) -> Option<Report> {
    if page.len() < PAGE_SIZE as usize || &page[..8] != MAGIC {
        return None;
    }
    let ok = match le::u32_at(page, 8)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let len = le::u32_at(page, 12)? as usize;
    if len > MAX_TEXT {
        return None;
    }
    let crc = le::u32_at(page, PAGE_SIZE as usize - 4)?;
    if crate::image::crc32(&page[..16 + len]) != crc {
        return None;
    }
    Some(Report { ok, text: String::from_utf8_lossy(&page[16..16 + len]).into_owned() })
}

const REQUEST_MAGIC: &[u8; 8] = b"KJMREQ01";
/// Where an encrypted image's key starts in the request page, and where
/// its key block (length, then bytes) follows.
const KEY_OFF: usize = 2304;
const KEY_BLOCK_LEN_OFF: usize = KEY_OFF + crate::handoff::keypage::LEN;
const KEY_BLOCK_OFF: usize = KEY_BLOCK_LEN_OFF + 4;
/// Where the nonce salt follows the key block.
const SALT_OFF: usize = KEY_BLOCK_OFF + crate::image::KEY_BLOCK_LEN;
/// Where the address and size of A's VMCOREINFO note are, between the
/// device table and the key.
const VMCOREINFO_OFF: usize = 8 + TABLE_LEN;
const _: () = assert!(VMCOREINFO_OFF + 16 <= KEY_OFF && SALT_OFF + crate::image::seal::ID_LEN <= PAGE_SIZE as usize - 4);

/// What A tells B before the jump.
#[derive(Clone, Debug)]
pub struct Request {
    /// The block devices A uses (B must not write them, and records them
    /// in the image header).
    pub uses: Vec<InUse>,
    /// Encrypt the image: its key, and the wrapped key to store with it.
    pub key: Option<crate::save::ImageKey>,
    /// Where A's VMCOREINFO note is (`/sys/kernel/vmcoreinfo`): B records
    /// it in the image so that `kjump image export` finds the note among
    /// A's pages. B's `/proc/vmcore` holds a copy made when B was loaded,
    /// whose address in A it does not tell.
    pub vmcoreinfo: Option<crate::load::elf_core::Note>,
}

/// Encodes A's request.
pub fn encode_request(req: &Request) -> Result<[u8; PAGE_SIZE as usize], Error> {
    let mut page = [0u8; PAGE_SIZE as usize];
    page[..8].copy_from_slice(REQUEST_MAGIC);
    page[8..8 + TABLE_LEN].copy_from_slice(&encode_table(&req.uses)?);
    if let Some(k) = &req.key {
        if k.key_block.len() > crate::image::KEY_BLOCK_LEN {
            return Err(Error::Msg(format!("the wrapped key takes {} bytes, more than the image's {}", k.key_block.len(), crate::image::KEY_BLOCK_LEN)));
        }
        crate::handoff::keypage::encode(&k.key, k.id, &mut page[KEY_OFF..])?;
        page[KEY_BLOCK_LEN_OFF..KEY_BLOCK_OFF].copy_from_slice(&(k.key_block.len() as u32).to_le_bytes());
        page[KEY_BLOCK_OFF..KEY_BLOCK_OFF + k.key_block.len()].copy_from_slice(&k.key_block);
        page[SALT_OFF..SALT_OFF + crate::image::seal::ID_LEN].copy_from_slice(&k.salt);
    }
    if let Some(n) = req.vmcoreinfo {
        page[VMCOREINFO_OFF..VMCOREINFO_OFF + 8].copy_from_slice(&n.addr.to_le_bytes());
        page[VMCOREINFO_OFF + 8..VMCOREINFO_OFF + 16].copy_from_slice(&n.size.to_le_bytes());
    }
    seal_request(&mut page);
    Ok(page)
}

fn seal_request(page: &mut [u8; PAGE_SIZE as usize]) {
    let crc = crate::image::crc32(&page[..PAGE_SIZE as usize - 4]);
    page[PAGE_SIZE as usize - 4..].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes A's request; an error names what is wrong with it.
pub fn decode_request(page: &[u8]) -> Result<Request, Error> {
    let bad = |what: &str| Error::Msg(format!("A's request in the mailbox page: {what}"));
    if page.len() < PAGE_SIZE as usize || &page[..8] != REQUEST_MAGIC {
        return Err(bad("missing (no magic)"));
    }
    if le::u32_at(page, PAGE_SIZE as usize - 4) != Some(crate::image::crc32(&page[..PAGE_SIZE as usize - 4])) {
        return Err(bad("checksum mismatch"));
    }
    let uses = decode_table(&page[8..8 + TABLE_LEN]).map_err(|e| bad(&e.to_string()))?;
    let key = match crate::handoff::keypage::decode(&page[KEY_OFF..]).map_err(|why| bad(&format!("image key: {why}")))? {
        None => None,
        Some(k) => {
            let len = le::u32_at(page, KEY_BLOCK_LEN_OFF).ok_or_else(|| bad("wrapped key length"))? as usize;
            if len == 0 || len > crate::image::KEY_BLOCK_LEN {
                return Err(bad("wrapped key length"));
            }
            let mut salt = [0u8; crate::image::seal::ID_LEN];
            salt.copy_from_slice(&page[SALT_OFF..SALT_OFF + crate::image::seal::ID_LEN]);
            Some(crate::save::ImageKey { key: k.key, id: k.id, key_block: page[KEY_BLOCK_OFF..KEY_BLOCK_OFF + len].to_vec(), salt })
        }
    };
    // Zero from a kjump that did not pass it: B then records none.
    let vmcoreinfo = match (le::u64_at(page, VMCOREINFO_OFF), le::u64_at(page, VMCOREINFO_OFF + 8)) {
        (Some(addr), Some(size)) if size != 0 => Some(crate::load::elf_core::Note { addr, size }),
        _ => None,
    };
    Ok(Request { uses, key, vmcoreinfo })
}

/// B's side: reads A's request from the mailbox page at `phys`, and wipes
/// the image key from it at once (A's memory is about to be saved: the key
/// must not be in it).
pub fn read_request(mem: &DevMem, phys: u64) -> Result<Request, Error> {
    let mut w = mem.map(phys, PAGE_SIZE as usize)?;
    let req = decode_request(w.bytes())?;
    if req.key.is_some() {
        let mut page = [0u8; PAGE_SIZE as usize];
        page.copy_from_slice(w.bytes());
        zeroize::Zeroize::zeroize(&mut page[KEY_OFF..KEY_OFF + crate::handoff::keypage::LEN]);
        seal_request(&mut page);
        w.bytes_mut().copy_from_slice(&page);
        zeroize::Zeroize::zeroize(&mut page[..]);
    }
    Ok(req)
}

/// B's (and D's) side: writes `report` into A's mailbox page at `phys`,
/// if that page still holds A's request ([`may_post`]).
pub fn post(mem: &DevMem, phys: u64, report: &Report) -> Result<(), Error> {
    let mut w = mem.map(phys, PAGE_SIZE as usize)?;
    may_post(w.bytes(), phys)?;
    w.bytes_mut().copy_from_slice(&encode(report));
    Ok(())
}

/// Whether the page at `phys`, holding `page`, is A's mailbox: it must hold
/// A's request. Anything else there (a page A had freed or used for
/// something else) would be overwritten in A's memory, so B and D refuse.
pub fn may_post(page: &[u8], phys: u64) -> Result<(), Error> {
    decode_request(page)
        .map(|_| ())
        .map_err(|e| Error::Msg(format!("not writing a report to {phys:#x}: the page does not hold A's request ({e}); A's memory is left as it was")))
}

/// A's side: a locked, pinned page with a known physical address.
pub struct Mailbox {
    /// The page, locked (unmapped before `_pin` is dropped).
    page: Mapping,
    phys: u64,
    /// The pipe that holds a reference to the page (see [`pin`]); dropped
    /// after the page is unmapped, which frees it.
    _pin: (OwnedFd, OwnedFd),
}

/// Keeps the kernel from moving `page` (one locked page of this process)
/// to another physical address until the returned pipe is closed. `mlock`
/// alone does not: compaction migrates locked pages
/// (`vm.compact_unevictable_allowed` is 1 by default), and B and D would
/// then write to whatever A put in the old page. `vmsplice` leaves a
/// reference to the page itself (not a copy) in the pipe, and the kernel
/// does not migrate a page with references it cannot account for.
fn pin(page: &Mapping) -> Result<(OwnedFd, OwnedFd), Error> {
    let (read_end, write_end) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| Error::sys("making a pipe to pin the mailbox page", e))?;
    let n = page.splice_to_pipe(&write_end).map_err(|e| Error::sys("pinning the mailbox page (vmsplice)", e))?;
    if n != PAGE_SIZE as usize {
        return Err(Error::Msg(format!("pinning the mailbox page: vmsplice took {n} of {PAGE_SIZE} bytes")));
    }
    Ok((read_end, write_end))
}

/// Whether the page at `phys` lies wholly outside `avoid`.
fn outside(phys: u64, avoid: PhysRange) -> bool {
    !PhysRange::new(phys, phys + PAGE_SIZE).overlaps(&avoid)
}

/// Pages mapped per attempt while looking for one outside the region.
const BATCH_PAGES: usize = 256;

/// Reads the physical addresses of `pages` pages starting at `virt`.
fn physical_addresses(virt: usize, out: &mut [u64]) -> Result<(), Error> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open("/proc/self/pagemap").map_err(|e| Error::io("opening /proc/self/pagemap", e))?;
    let mut entries = vec![0u8; out.len() * 8];
    f.read_exact_at(&mut entries, (virt as u64 / PAGE_SIZE) * 8).map_err(|e| Error::io("reading /proc/self/pagemap", e))?;
    for (slot, raw) in out.iter_mut().zip(entries.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(raw);
        let e = u64::from_le_bytes(b);
        let pfn = e & ((1 << 55) - 1);
        if e & (1 << 63) == 0 || pfn == 0 {
            return Err(Error::Msg("cannot see physical addresses in /proc/self/pagemap (run as root)".into()));
        }
        *slot = pfn * PAGE_SIZE;
    }
    Ok(())
}

impl Mailbox {
    /// Maps and locks memory in batches until a page lies outside
    /// `avoid`, keeps that page and gives the rest back.
    ///
    /// The kernel may hand out many free pages from inside the region
    /// before any from outside (when most free memory lies there), so
    /// batches stay held while searching, up to the region's size plus
    /// 64 MiB.
    pub fn new(avoid: PhysRange) -> Result<Self, Error> {
        let batch_bytes = BATCH_PAGES * PAGE_SIZE as usize;
        let limit = avoid.len().saturating_add(64 << 20);
        // Every batch is unmapped when dropped, on every way out.
        let mut held: Vec<Mapping> = Vec::new();
        let mut found = None;
        let mut phys = [0u64; BATCH_PAGES];
        while (held.len() as u64) * (batch_bytes as u64) < limit {
            let batch = Mapping::anonymous(batch_bytes).map_err(|e| Error::sys("mapping memory for the mailbox page", e))?;
            // mlock faults every page in, so each has a physical page from here on.
            batch.lock().map_err(|e| Error::sys("locking the mailbox page in memory", e))?;
            physical_addresses(batch.addr(), &mut phys)?;
            if let Some(i) = phys.iter().position(|&p| outside(p, avoid)) {
                found = Some((batch, i));
                break;
            }
            held.push(batch);
        }
        let Some((batch, index)) = found else {
            return Err(Error::Msg(format!(
                "could not find a free page outside the kjump region after locking {} MiB; free some memory and try again",
                limit >> 20
            )));
        };
        drop(held);
        // Keep only the chosen page of its batch.
        let mut page = batch.keep_page(index).map_err(|e| Error::sys("keeping the mailbox page", e))?;
        page.bytes_mut().fill(0);
        // Where the page is now that it cannot move (it may have moved
        // since the batch was read).
        let mailbox = Mailbox::pinned(page)?;
        if !outside(mailbox.phys, avoid) {
            return Err(Error::Msg("the mailbox page moved into the kjump region while being pinned; try again".into()));
        }
        Ok(mailbox)
    }

    /// The mailbox of `page` (one locked page), pinned ([`pin`]) and with
    /// its physical address read after pinning; the page is unmapped if
    /// either fails.
    fn pinned(page: Mapping) -> Result<Self, Error> {
        let mut now = [0u64; 1];
        let pin = pin(&page)?;
        physical_addresses(page.addr(), &mut now)?;
        Ok(Mailbox { page, phys: now[0], _pin: pin })
    }

    /// A mailbox page that outlives this process, for a resident B
    /// (`kjump::handoff::resident`): the one page of file `path` on a memory
    /// filesystem (tmpfs or ramfs: `/run`). B is given the page's address
    /// when it is loaded, and a later `kjump hibernate` finds the same page
    /// through the file. The page is pinned while `self` lives; between
    /// runs it stays in memory but may move, so callers compare
    /// [`Mailbox::phys`] with the address B was given.
    ///
    /// With `fresh`, any old file is replaced, and a page that lies inside
    /// `avoid` is set aside (held until this call ends) and another tried.
    pub fn in_file(path: &std::path::Path, avoid: PhysRange, fresh: bool) -> Result<Self, Error> {
        use rustix::fs::{Mode, OFlags};
        const TRIES: usize = 16;
        let mut held: Vec<Mailbox> = Vec::new();
        for _ in 0..TRIES {
            if fresh {
                let _ = std::fs::remove_file(path);
            }
            let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::from_raw_mode(0o600))
                .map_err(|e| Error::sys(format!("opening the mailbox file {}", path.display()), e))?;
            let fs = rustix::fs::fstatfs(&fd).map_err(|e| Error::sys(format!("looking at the filesystem of {}", path.display()), e))?;
            // TMPFS_MAGIC and RAMFS_MAGIC: the page lives in memory only.
            if !matches!(fs.f_type as u64, 0x0102_1994 | 0x8584_58f6) {
                return Err(Error::Msg(format!(
                    "{} is not on a memory filesystem (tmpfs): mount one on {} first",
                    path.display(),
                    path.parent().map_or("/run".into(), |p| p.display().to_string())
                )));
            }
            rustix::fs::ftruncate(&fd, PAGE_SIZE).map_err(|e| Error::sys(format!("sizing {}", path.display()), e))?;
            let page = Mapping::shared(&fd, 0, PAGE_SIZE as usize).map_err(|e| Error::sys(format!("mapping {}", path.display()), e))?;
            page.lock().map_err(|e| Error::sys("locking the mailbox page (mlock)", e))?;
            let mailbox = Mailbox::pinned(page)?;
            if outside(mailbox.phys, avoid) {
                return Ok(mailbox);
            }
            if !fresh {
                return Err(Error::Msg(format!("the mailbox page of {} lies in the kjump region", path.display())));
            }
            held.push(mailbox);
        }
        let _ = std::fs::remove_file(path);
        Err(Error::Msg(format!("every page {} got lay in the kjump region ({TRIES} tries); free some memory and try again", path.display())))
    }

    /// Physical address of the page B writes.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Leaves A's request for B in the page (see [`encode_request`]),
    /// with volatile writes so the bytes reach memory before the jump.
    pub fn write_request(&mut self, req: &Request) -> Result<(), Error> {
        let mut page = encode_request(req)?;
        self.page.write_volatile(&page);
        zeroize::Zeroize::zeroize(&mut page[..]);
        Ok(())
    }

    /// Wipes the page (A's copy of an image key with it), once B is back.
    pub fn wipe(&mut self) {
        self.page.write_volatile(&[0u8; PAGE_SIZE as usize]);
    }

    /// What B left, if anything.
    pub fn read(&self) -> Option<Report> {
        let mut copy = [0u8; PAGE_SIZE as usize];
        self.page.read_volatile(&mut copy);
        decode(&copy)
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        // An image key B never read (it failed first) goes with the page.
        self.wipe();
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
        let uses = vec![InUse { kind: crate::target::in_use::Kind::Swap, major: 1, minor: 2, uuid: None, name: "vdb".into() }];
        let req = encode_request(&Request { uses: uses.clone(), key: None, vmcoreinfo: None }).unwrap();
        let back = decode_request(&req).unwrap();
        assert_eq!((back.uses, back.key.is_none(), back.vmcoreinfo), (uses.clone(), true, None));
        // A's VMCOREINFO note comes back.
        let note = crate::load::elf_core::Note { addr: 0x2b4_c000, size: 0x1024 };
        let with_note = encode_request(&Request { uses: uses.clone(), key: None, vmcoreinfo: Some(note) }).unwrap();
        assert_eq!(decode_request(&with_note).unwrap().vmcoreinfo, Some(note));
        // With an image key: it comes back, and any change to it is refused.
        let key = crate::save::ImageKey {
            key: crate::image::seal::DataKey::from_bytes([5; 32]),
            id: crate::image::seal::ImageId([6; 16]),
            key_block: vec![9; 300],
            salt: [4; 16],
        };
        let with_key = encode_request(&Request { uses: uses.clone(), key: Some(key.clone()), vmcoreinfo: None }).unwrap();
        let back = decode_request(&with_key).unwrap().key.unwrap();
        assert_eq!((back.key, back.id, back.key_block, back.salt), (key.key.clone(), key.id, key.key_block.clone(), key.salt));
        let too_long = crate::save::ImageKey { key_block: vec![1; crate::image::KEY_BLOCK_LEN + 1], ..key };
        assert!(encode_request(&Request { uses: uses.clone(), key: Some(too_long), vmcoreinfo: None }).is_err());
        let mut bad = req;
        bad[100] ^= 1;
        assert!(decode_request(&bad).unwrap_err().to_string().contains("checksum"));
        assert!(decode_request(&encode(&r)).unwrap_err().to_string().contains("missing"));
        let long = Report { ok: true, text: "x".repeat(9000) };
        assert_eq!(decode(&encode(&long)).unwrap().text.len(), MAX_TEXT);
    }

    #[test]
    fn reports_go_only_where_a_request_is() {
        let req = encode_request(&Request { uses: Vec::new(), key: None, vmcoreinfo: None }).unwrap();
        assert!(may_post(&req, 0x1000).is_ok());
        let report = encode(&Report { ok: true, text: "done".into() });
        let zero = [0u8; 4096];
        let mut stale = req;
        stale[4000] ^= 0x40;
        for page in [&report[..], &zero[..], &stale[..], &req[..16]] {
            let e = may_post(page, 0x5000).unwrap_err().to_string();
            assert!(e.contains("0x5000") && e.contains("left as it was"), "{e}");
        }
    }

    /// Needs root (physical addresses in /proc/self/pagemap), as kjump does.
    #[test]
    fn the_pipe_holds_the_mailbox_page_itself() {
        let mut m = Mailbox::new(PhysRange::new(0, 0)).unwrap();
        assert!(m.phys() > 0 && m.phys() % PAGE_SIZE == 0);
        // Written after pinning: the pipe shows it, so it holds a reference
        // to the page, not a copy made when it was pinned.
        m.write_request(&Request { uses: Vec::new(), key: None, vmcoreinfo: None }).unwrap();
        let mut seen = [0u8; PAGE_SIZE as usize];
        let n = rustix::io::read(&m._pin.0, &mut seen).unwrap();
        assert_eq!(n, PAGE_SIZE as usize);
        assert_eq!(seen, encode_request(&Request { uses: Vec::new(), key: None, vmcoreinfo: None }).unwrap());
    }
}
