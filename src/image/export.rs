//! An image as an ELF64 core file (`kjump image export --elf`), in the
//! shape of the `/proc/vmcore` B saved it from, so that `crash` and
//! `makedumpfile` read a hibernated system as they read a kdump.
//!
//! The file: the ELF header; a PT_NOTE and one PT_LOAD per RAM range of
//! the header (`p_paddr` the physical address, `p_vaddr` the direct-map
//! address `PAGE_OFFSET + p_paddr` when B found the base, else 0, as in
//! B's `/proc/vmcore`); the note, A's VMCOREINFO note read from the
//! image's own pages; then each range's bytes, from a page boundary on
//! (`p_offset` ≡ `p_paddr` modulo the page size). Stored pages are written
//! where they belong; zero pages and pages left out as free are not
//! written at all: they read as zeros, and take no room on a filesystem
//! with holes.

use core::fmt;

use crate::image::{Header, ReadError, Reader, RunCheck, State};
use crate::inspect::elf::{EHDR_LEN, PHDR_LEN, PT_LOAD, PT_NOTE};
use crate::inspect::vmcoreinfo::{find_in_notes, note_range, VmcoreInfo};
use crate::load::elf_core::{ehdr, phdr};
use crate::range::PhysRange;
use crate::units::PAGE_SIZE;

/// The longest VMCOREINFO note an export accepts (Linux's is at most a
/// page and a little: `VMCOREINFO_NOTE_SIZE`).
pub const MAX_NOTE: u64 = 64 << 10;

/// The lowest kernel address under five-level paging: a direct-map base
/// below it is impossible.
const KERNEL_HALF: u64 = 0xff00_0000_0000_0000;

/// Why an image could not be exported.
#[derive(Debug)]
pub enum Error {
    /// Made before B recorded A's VMCOREINFO note (or B could not).
    NotRecorded,
    /// The image was never committed, or its state block commits another header.
    NotCommitted,
    /// An encrypted image whose key was not given.
    Locked,
    /// The header lists no RAM.
    NoRam,
    /// The header's note length is below a note header or above [`MAX_NOTE`].
    NoteLength {
        /// The note's length in the header, in bytes.
        len: u64,
    },
    /// The header's note does not lie within one RAM range.
    NoteOutsideRam {
        /// The note's physical address in A, from the header.
        addr: u64,
        /// Its length, in bytes.
        len: u64,
    },
    /// The note's pages are not in the image (left out as free).
    NoteNotSaved {
        /// The note's physical address in A.
        addr: u64,
    },
    /// The image's pages at the note's address hold no VMCOREINFO note of that length.
    BadNote {
        /// The note's physical address in A.
        addr: u64,
    },
    /// The note's release differs from the header's.
    ReleaseMismatch {
        /// The note's `OSRELEASE`.
        note: String,
        /// The header's [`Header::kernel_release`].
        header: String,
    },
    /// The header's direct-map base cannot be one.
    BadPageOffset {
        /// The base the header gives (A's `PAGE_OFFSET`).
        base: u64,
    },
    /// The file would be larger than a file offset can say.
    TooLarge,
    /// The chunks hold another number of pages than the header counts.
    PageCount {
        /// The pages the chunks hold.
        stored: u64,
        /// The pages the header says are stored.
        header: u64,
    },
    /// Reading the image failed, or it is damaged.
    Read(ReadError),
    /// Writing the core file failed.
    Write(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotRecorded => {
                f.write_str("this image predates export (its header does not say where A's VMCOREINFO note is): hibernate again with this kjump")
            }
            Error::NotCommitted => f.write_str("the image is incomplete (never committed, or its state block commits another header)"),
            Error::Locked => f.write_str("the image is encrypted and its key was not given"),
            Error::NoRam => f.write_str("the header lists no RAM ranges"),
            Error::NoteLength { len } => write!(f, "the header's VMCOREINFO note length {len} is impossible"),
            Error::NoteOutsideRam { addr, len } => write!(f, "the header puts A's VMCOREINFO note at {addr:#x}+{len:#x}, outside A's RAM ranges"),
            Error::NoteNotSaved { addr } => write!(f, "A's VMCOREINFO note at {addr:#x} is not among the image's pages (they were left out as free)"),
            Error::BadNote { addr } => write!(f, "the image's pages at {addr:#x} do not hold the VMCOREINFO note the header describes"),
            Error::ReleaseMismatch { note, header } => write!(
                f,
                "the image's VMCOREINFO note says OSRELEASE={} but its header says {}",
                crate::image::printable(note),
                crate::image::printable(header)
            ),
            Error::BadPageOffset { base } => write!(f, "the header's direct-map base {base:#x} is impossible"),
            Error::TooLarge => f.write_str("the core file would be larger than a file can be"),
            Error::PageCount { stored, header } => write!(f, "the chunks hold {stored} pages, the header says {header}"),
            Error::Read(e) => e.fmt(f),
            Error::Write(e) => write!(f, "writing the core file: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read(e) => Some(e),
            Error::Write(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        Error::Read(e)
    }
}

/// Where the core file is written: at any offset, in any order.
pub trait Output {
    /// Writes all of `bytes` at `offset`.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes the output `len` bytes long (the holes at its end included).
    fn set_len(&mut self, len: u64) -> std::io::Result<()>;
}

impl Output for std::fs::File {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, bytes, offset)
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        std::fs::File::set_len(self, len)
    }
}

/// A range of A's RAM and where its bytes are in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    ram: PhysRange,
    offset: u64,
}

/// Where everything goes in the core file, from the image's header alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    segments: Vec<Segment>,
    /// A's VMCOREINFO note, where it lies in A's memory.
    note: PhysRange,
    note_offset: u64,
    page_offset: Option<u64>,
    /// The file's length.
    pub file_len: u64,
}

impl Layout {
    /// The layout of the core file of an image with header `h`.
    pub fn new(h: &Header) -> Result<Layout, Error> {
        let n = h.vmcoreinfo.ok_or(Error::NotRecorded)?;
        let (addr, len) = (n.addr, n.size);
        if !(12..=MAX_NOTE).contains(&len) {
            return Err(Error::NoteLength { len });
        }
        // The header's ranges ascend, so the last one ends highest.
        let last_end = h.ram.last().ok_or(Error::NoRam)?.end;
        let note = PhysRange::at(addr, len).ok_or(Error::NoteOutsideRam { addr, len })?;
        if !h.ram.iter().any(|r| r.contains_range(&note)) {
            return Err(Error::NoteOutsideRam { addr, len });
        }
        if let Some(base) = h.page_offset {
            if base < KERNEL_HALF || base.checked_add(last_end).is_none() {
                return Err(Error::BadPageOffset { base });
            }
        }
        // The header allows at most 64 ranges: the count fits.
        let phnum = 1 + h.ram.len() as u64;
        let note_offset = EHDR_LEN as u64 + phnum * PHDR_LEN as u64;
        let mut at = note_offset + len;
        let mut segments = Vec::with_capacity(h.ram.len());
        for &ram in &h.ram {
            let offset = at.checked_next_multiple_of(PAGE_SIZE).and_then(|o| o.checked_add(ram.start % PAGE_SIZE)).ok_or(Error::TooLarge)?;
            at = offset.checked_add(ram.len()).filter(|&e| e <= i64::MAX as u64).ok_or(Error::TooLarge)?;
            segments.push(Segment { ram, offset });
        }
        Ok(Layout { segments, note, note_offset, page_offset: h.page_offset, file_len: at })
    }

    /// The ELF header and program headers, followed by `note` (the
    /// VMCOREINFO note, as long as the header says): the file's first bytes.
    pub fn headers(&self, note: &[u8]) -> Vec<u8> {
        // At most 65 program headers: the count fits.
        let mut out = ehdr(1 + self.segments.len() as u16);
        phdr(&mut out, PT_NOTE, self.note_offset, 0, 0, self.note.len());
        for s in &self.segments {
            // Checked in `new`: the base plus any address of A's RAM fits.
            let vaddr = self.page_offset.map_or(0, |base| base + s.ram.start);
            phdr(&mut out, PT_LOAD, s.offset, vaddr, s.ram.start, s.ram.len());
        }
        out.extend_from_slice(note);
        out
    }

    /// Writes `bytes`, A's memory from physical address `paddr` on, where
    /// they belong; what lies outside every range is not written.
    fn write(&self, out: &mut impl Output, paddr: u64, bytes: &[u8]) -> Result<(), Error> {
        let span = PhysRange::new(paddr, paddr.saturating_add(bytes.len() as u64));
        let first = self.segments.partition_point(|s| s.ram.end <= span.start);
        for s in self.segments[first..].iter().take_while(|s| s.ram.start < span.end) {
            if let Some(part) = s.ram.intersect(&span) {
                let b = &bytes[(part.start - paddr) as usize..(part.end - paddr) as usize];
                out.write_at(s.offset + (part.start - s.ram.start), b).map_err(Error::Write)?;
            }
        }
        Ok(())
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// The core file's length in bytes (holes included).
    pub file_len: u64,
    /// Pages written.
    pub stored_pages: u64,
    /// A's kernel release, from the VMCOREINFO note.
    pub release: String,
    /// A's direct-map base, when the header has it (else the PT_LOADs
    /// have no virtual addresses).
    pub page_offset: Option<u64>,
}

/// Writes the core file of the image `r` reads (opened, and unlocked when
/// encrypted) to `out`, which should be empty. `progress` hears of every
/// chunk written (chunks done, chunk count). Every check that `kjump image
/// verify` makes is made; the note is checked against the header.
pub fn export<R: std::io::Read>(r: &mut Reader<R>, out: &mut impl Output, mut progress: impl FnMut(u64, u64)) -> Result<Exported, Error> {
    if matches!(r.state.state, State::Writing) || !r.header_committed() {
        return Err(Error::NotCommitted);
    }
    if !r.pages_readable() {
        return Err(Error::Locked);
    }
    let h = r.header.clone();
    let layout = Layout::new(&h)?;
    let note_at = layout.note;
    let mut note = vec![0u8; note_at.len() as usize];
    // Bytes of the note found in stored or zero pages.
    let mut found = 0u64;
    let mut check = RunCheck::new(&h.ram, h.region);
    let mut stored = 0u64;
    while let Some((info, bufs)) = r.next_chunk()? {
        check.check(info.index, &bufs.runs, &bufs.zero_runs).map_err(|e| Error::Read(ReadError::Format(crate::image::Error::Run(e))))?;
        let mut pages = bufs.pages.as_slice();
        for run in &bufs.runs {
            // Runs were checked to lie in A's RAM (so their bytes have an
            // address) and add up to the chunk's pages.
            let span = run.phys().ok_or(Error::TooLarge)?;
            let (bytes, rest) = pages.split_at(span.len() as usize);
            pages = rest;
            layout.write(out, span.start, bytes)?;
            if let Some(part) = span.intersect(&note_at) {
                note[(part.start - note_at.start) as usize..(part.end - note_at.start) as usize]
                    .copy_from_slice(&bytes[(part.start - span.start) as usize..(part.end - span.start) as usize]);
                found += part.len();
            }
            stored += run.count;
        }
        for run in &bufs.zero_runs {
            found += run.phys().and_then(|span| span.intersect(&note_at)).map_or(0, |part| part.len());
        }
        progress(info.index + 1, h.chunk_count);
    }
    if stored != h.stored_pages {
        return Err(Error::PageCount { stored, header: h.stored_pages });
    }
    if found != note_at.len() {
        return Err(Error::NoteNotSaved { addr: note_at.start });
    }
    let release = note_release(&note).ok_or(Error::BadNote { addr: note_at.start })?;
    if !h.kernel_release.is_empty() && release != h.kernel_release {
        return Err(Error::ReleaseMismatch { note: release, header: h.kernel_release });
    }
    out.write_at(0, &layout.headers(&note)).map_err(Error::Write)?;
    out.set_len(layout.file_len).map_err(Error::Write)?;
    Ok(Exported { file_len: layout.file_len, stored_pages: stored, release, page_offset: h.page_offset })
}

/// The release a note read from the image names, if it is exactly one
/// whole VMCOREINFO note with an `OSRELEASE`.
fn note_release(note: &[u8]) -> Option<String> {
    if note_range(note) != Some(0..note.len()) {
        return None;
    }
    VmcoreInfo::parse(&find_in_notes(note)?).osrelease().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Chain, ChunkEncoder, Compression, Sealer, StateBlock, BLOCK, DATA_OFFSET, PAGE};
    use crate::inspect::elf;
    use crate::inspect::vmcoreinfo::tests::{note, SAMPLE};
    use crate::load::elf_core::Note;
    use crate::range::PfnRun;

    impl Output for Vec<u8> {
        fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
            let end = offset as usize + bytes.len();
            if self.len() < end {
                self.resize(end, 0);
            }
            self[offset as usize..end].copy_from_slice(bytes);
            Ok(())
        }

        fn set_len(&mut self, len: u64) -> std::io::Result<()> {
            self.resize(len as usize, 0);
            Ok(())
        }
    }

    const BASE: u64 = 0xffff_9a3c_4000_0000;
    /// A's RAM: low memory, and 8 MiB above 1 MiB, a region of 2 MiB taken out.
    const RAM: [PhysRange; 3] = [PhysRange::new(0x1000, 0xa_0000), PhysRange::new(0x10_0000, 0x60_0000), PhysRange::new(0x80_0000, 0x90_0000)];
    const REGION: PhysRange = PhysRange::new(0x60_0000, 0x80_0000);
    /// The page holding A's VMCOREINFO note.
    const NOTE_PFN: u64 = 0x210;

    /// A's VMCOREINFO note as the kernel writes it, with `release`.
    fn vmcoreinfo(release: &str) -> Vec<u8> {
        note("VMCOREINFO", 0, SAMPLE.replace("6.12.117", release).as_bytes())
    }

    /// A page holding `note`, zero after it.
    fn note_page(note: &[u8]) -> Vec<u8> {
        let mut page = note.to_vec();
        page.resize(PAGE, 0);
        page
    }

    /// A page of A's memory: its pfn over and over.
    fn page_of(pfn: u64) -> Vec<u8> {
        pfn.to_le_bytes().iter().cycle().take(PAGE).copied().collect()
    }

    /// What an image holds: runs of stored pages (each page [`page_of`]
    /// its pfn, but the note's page) and zero runs, a chunk per entry.
    struct Plan {
        header: Header,
        chunks: Vec<(Vec<PfnRun>, Vec<PfnRun>)>,
        note_page: Vec<u8>,
        state: State,
    }

    fn plan() -> Plan {
        let note = vmcoreinfo("6.12.117");
        let ram_pages: u64 = RAM.iter().map(|r| r.pfns().count() as u64).sum();
        let run = PfnRun::new;
        let chunks = vec![
            (vec![run(0x1, 2), run(0x9f, 1)], vec![run(0x10, 3)]),
            (vec![run(0x100, 1), run(NOTE_PFN, 1), run(0x5ff, 1), run(0x800, 2)], vec![run(0x8ff, 1)]),
        ];
        let header = Header {
            kernel_release: "6.12.117".into(),
            ram: RAM.to_vec(),
            region: REGION,
            ram_pages,
            vmcoreinfo: Some(Note { addr: NOTE_PFN * PAGE_SIZE, size: note.len() as u64 }),
            page_offset: Some(BASE),
            ..Header::default()
        };
        Plan { header, chunks, note_page: note_page(&note), state: State::Committed }
    }

    /// The image `p` describes, its chunks sealed by `sealer`.
    fn build(p: &Plan, sealer: Option<&Sealer>) -> Vec<u8> {
        let mut enc = ChunkEncoder::new(Compression::Lz4, sealer.cloned());
        let (mut chunks, mut chain, mut h) = (Vec::new(), Chain::default(), p.header.clone());
        for (i, (runs, zero_runs)) in p.chunks.iter().enumerate() {
            let mut pages = Vec::new();
            for r in runs {
                for f in r.first..r.first + r.count {
                    pages.extend(if f == NOTE_PFN { p.note_page.clone() } else { page_of(f) });
                }
            }
            h.stored_pages += runs.iter().map(|r| r.count).sum::<u64>();
            h.zero_pages += zero_runs.iter().map(|r| r.count).sum::<u64>();
            chain.add(&enc.encode(i as u64, runs, zero_runs, &pages, &mut chunks));
        }
        h.free_pages = h.ram_pages - h.stored_pages - h.zero_pages;
        h.chunk_count = p.chunks.len() as u64;
        h.data_bytes = chunks.len() as u64;
        if let Some(s) = sealer {
            (h.cipher, h.image_id, h.nonce_salt) = (crate::image::seal::Cipher::XChaCha20Poly1305, s.keys.id(), s.salt);
        }
        let keys = sealer.map(|s| &*s.keys);
        let hb = h.encode_sealed(keys).unwrap();
        let state = StateBlock {
            state: p.state,
            header_crc: Header::crc(&hb),
            chain_crc: chain.value(),
            chunk_count: h.chunk_count,
            data_end: DATA_OFFSET + chunks.len() as u64,
            note: String::new(),
            attempts: 0,
            save_ms: 0,
            tags: chain.tags(),
            key_block: if sealer.is_some() { vec![0x6b; 100] } else { Vec::new() },
        };
        let mut img = hb.to_vec();
        img.extend_from_slice(&state.encode_sealed(keys));
        img.extend_from_slice(&chunks);
        img
    }

    fn export_bytes(img: &[u8]) -> Result<(Vec<u8>, Exported), Error> {
        let mut r = Reader::open(img)?;
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let done = export(&mut r, &mut out, |i, n| seen.push((i, n)))?;
        assert_eq!(seen, (1..=r.header.chunk_count).map(|i| (i, r.header.chunk_count)).collect::<Vec<_>>());
        Ok((out, done))
    }

    /// The program headers of the core file `elf`, read back by kjump's
    /// ELF reader.
    fn program_headers(elf: &[u8]) -> Vec<elf::ProgramHeader> {
        let h = elf::Header::parse(elf).unwrap();
        assert_eq!(h.e_type, elf::ET_CORE);
        h.program_headers(elf).unwrap().collect::<Result<_, _>>().unwrap()
    }

    /// The bytes of physical address `paddr` in the core file `elf`, read
    /// through its program headers as a reader of core files would.
    fn at_paddr(elf: &[u8], paddr: u64, len: usize) -> Option<&[u8]> {
        let layout = crate::inspect::vmcore::parse(elf).ok()?;
        let s = layout.segments.iter().find(|s| s.paddr <= paddr && paddr + len as u64 <= s.paddr + s.size)?;
        let at = (s.offset + paddr - s.paddr) as usize;
        elf.get(at..at + len)
    }

    #[test]
    fn headers_parse_back_and_pages_are_where_they_belong() {
        let p = plan();
        let (elf, done) = export_bytes(&build(&p, None)).unwrap();
        assert_eq!(done.release, "6.12.117");
        assert_eq!(done.stored_pages, 8);
        assert_eq!(done.file_len, elf.len() as u64);
        // The note first, then a PT_LOAD per RAM range.
        let phdrs = program_headers(&elf);
        assert_eq!(phdrs.len(), 4);
        assert_eq!(phdrs[0].p_type, PT_NOTE);
        let (off, len) = (phdrs[0].offset as usize, phdrs[0].filesz as usize);
        assert_eq!(elf[off..off + len], vmcoreinfo("6.12.117"));
        assert_eq!(find_in_notes(&elf[off..]).as_deref(), Some(SAMPLE));
        let ranges: Vec<PhysRange> = phdrs[1..].iter().map(|p| PhysRange::at(p.paddr, p.filesz).unwrap()).collect();
        assert_eq!(ranges, RAM);
        for p in &phdrs[1..] {
            assert_eq!((p.p_type, p.memsz), (PT_LOAD, p.filesz));
            assert_eq!(p.vaddr, BASE + p.paddr, "p_vaddr: the direct map");
            assert_eq!(p.offset % PAGE_SIZE, p.paddr % PAGE_SIZE, "pages on file blocks");
        }
        // Stored pages.
        for pfn in [0x1, 0x2, 0x9f, 0x100, 0x5ff, 0x800, 0x801] {
            assert_eq!(at_paddr(&elf, pfn * 4096, PAGE), Some(&page_of(pfn)[..]), "{pfn:#x}");
        }
        assert_eq!(at_paddr(&elf, NOTE_PFN * 4096, PAGE), Some(&p.note_page[..]));
        // Zero pages and free ones read as zeros.
        for pfn in [0x10, 0x12, 0x3, 0x200, 0x8ff] {
            assert!(at_paddr(&elf, pfn * 4096, PAGE).unwrap().iter().all(|&b| b == 0), "{pfn:#x}");
        }

        // Without the direct-map base: no virtual addresses, as in B's /proc/vmcore.
        let mut p = plan();
        p.header.page_offset = None;
        let (elf, done) = export_bytes(&build(&p, None)).unwrap();
        assert_eq!(done.page_offset, None);
        assert_eq!(program_headers(&elf)[1].vaddr, 0);
    }

    #[test]
    fn an_encrypted_image_exports_with_its_key_only() {
        let key = crate::image::seal::DataKey::from_bytes([3; 32]);
        let sealer = Sealer { keys: std::sync::Arc::new(crate::image::seal::Keys::derive(&key, crate::image::seal::ImageId([3; 16]))), salt: [3; 16] };
        let img = build(&plan(), Some(&sealer));
        let mut r = Reader::open(&img[..]).unwrap();
        assert!(matches!(export(&mut r, &mut Vec::new(), |_, _| {}), Err(Error::Locked)));
        let mut r = Reader::open(&img[..]).unwrap();
        r.unlock(&key).unwrap();
        let mut elf = Vec::new();
        export(&mut r, &mut elf, |_, _| {}).unwrap();
        assert_eq!(elf, export_bytes(&build(&plan(), None)).unwrap().0);
    }

    /// Rewrites the header of `img` with `edit` (the state block
    /// following), as a forger who recomputes the checksums would.
    fn with_header(img: &mut [u8], edit: impl Fn(&mut Header)) {
        let mut h = Header::decode(&img[..BLOCK]).unwrap();
        edit(&mut h);
        let hb = h.encode().unwrap();
        img[..BLOCK].copy_from_slice(&hb);
        let mut st = StateBlock::decode(&img[BLOCK..2 * BLOCK]).unwrap();
        st.header_crc = Header::crc(&hb);
        img[BLOCK..2 * BLOCK].copy_from_slice(&st.encode());
    }

    #[test]
    fn hostile_images_are_refused_in_one_clear_line() {
        type Edit = Box<dyn Fn(&mut Plan)>;
        let at = |addr: u64, size: u64| -> Edit { Box::new(move |p: &mut Plan| p.header.vmcoreinfo = Some(Note { addr, size })) };
        let cases: Vec<(&str, Edit)> = vec![
            ("this image predates export", Box::new(|p| p.header.vmcoreinfo = None)),
            ("note length 5 is impossible", at(NOTE_PFN * 4096, 5)),
            ("note length 1048576 is impossible", at(NOTE_PFN * 4096, 1 << 20)),
            ("outside A's RAM ranges", at(REGION.start, 100)),
            ("outside A's RAM ranges", at(0x5f_ff00, 0x200)),
            ("outside A's RAM ranges", at(u64::MAX - 20, 100)),
            ("left out as free", at(0x300 * 4096, 100)),
            ("do not hold the VMCOREINFO note", at(0x100 * 4096, 100)),
            ("do not hold the VMCOREINFO note", at(NOTE_PFN * 4096, 24)),
            ("do not hold the VMCOREINFO note", Box::new(|p| p.note_page = note_page(&vmcoreinfo("6.12.117").iter().map(|b| b ^ 1).collect::<Vec<_>>()))),
            ("OSRELEASE=6.6.1? but its header says 6.12.117", Box::new(|p| p.note_page = note_page(&vmcoreinfo("6.6.1\u{1b}")))),
            ("direct-map base 0x8000 is impossible", Box::new(|p| p.header.page_offset = Some(0x8000))),
            ("direct-map base 0xffffffffffffff00 is impossible", Box::new(|p| p.header.page_offset = Some(u64::MAX - 0xff))),
            ("incomplete", Box::new(|p| p.state = State::Writing)),
            ("outside A's RAM", Box::new(|p| p.chunks[0].0 = vec![PfnRun::new(0xa0, 1)])),
            ("kjump region", Box::new(|p| p.chunks[1].0[2] = PfnRun::new(0x600, 1))),
        ];
        for (want, edit) in cases {
            let mut p = plan();
            edit(&mut p);
            let e = match export_bytes(&build(&p, None)) {
                Ok(_) => panic!("{want}: exported"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(want), "want {want:?}, got {e:?}");
            assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e:?}");
        }
        // Chunks that hold another number of pages than the header counts.
        let mut img = build(&plan(), None);
        with_header(&mut img, |h| (h.stored_pages, h.free_pages) = (h.stored_pages + 1, h.free_pages - 1));
        assert_eq!(export_bytes(&img).unwrap_err().to_string(), "the chunks hold 8 pages, the header says 9");
        // A state block that commits another header.
        let mut img = build(&plan(), None);
        let other = Header { created_unix: 1, ..Header::decode(&img[..BLOCK]).unwrap() }.encode().unwrap();
        img[..BLOCK].copy_from_slice(&other);
        assert!(export_bytes(&img).unwrap_err().to_string().contains("incomplete"));
        // No RAM at all.
        let h = Header { ram: Vec::new(), ..plan().header };
        assert_eq!(Layout::new(&h).unwrap_err().to_string(), "the header lists no RAM ranges");
    }

    /// Any damage to the image, and any cut, ends in an error, never a panic.
    #[test]
    fn damaged_and_truncated_images() {
        let img = build(&plan(), None);
        let good = export_bytes(&img).unwrap().0;
        for cut in (0..img.len()).step_by(97) {
            assert!(export_bytes(&img[..cut]).is_err(), "cut at {cut}");
        }
        for at in (0..img.len()).step_by(61) {
            let mut bad = img.clone();
            bad[at] ^= 0x10;
            if let Ok((elf, _)) = export_bytes(&bad) {
                // Only the padding of blocks and chunks goes unchecked.
                assert_eq!(elf, good, "byte {at} changed and not noticed");
            }
        }
    }
}
