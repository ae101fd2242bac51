//! Reading A's memory in B through `/proc/vmcore`: its ELF header says
//! where in the file each range of A's physical memory is.

use core::fmt;
use std::os::unix::fs::FileExt;

use crate::inspect::elf;
use crate::inspect::pagetable::{PhysRead, Unreadable};
use crate::Error;

/// A range of A's physical memory and where it is in `/proc/vmcore`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// A's physical address.
    pub paddr: u64,
    /// Offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

/// What the ELF header of `/proc/vmcore` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The PT_LOADs, in the order of the header.
    pub segments: Vec<Segment>,
    /// The PT_NOTE segments: (offset, size).
    pub notes: Vec<(u64, u64)>,
}

/// Why the header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not a 64-bit little-endian ELF core file.
    NotElfCore,
    /// Program headers beyond the data given, or an absurd count.
    BadProgramHeaders,
    /// A segment whose offset or address wraps around.
    Overflow,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::NotElfCore => "/proc/vmcore is not a 64-bit ELF core file",
            ParseError::BadProgramHeaders => "/proc/vmcore has bad program headers",
            ParseError::Overflow => "/proc/vmcore has a segment that wraps around",
        })
    }
}

impl std::error::Error for ParseError {}

impl From<elf::Error> for ParseError {
    fn from(e: elf::Error) -> Self {
        match e {
            elf::Error::NotElf64 => ParseError::NotElfCore,
            elf::Error::BadProgramHeaders => ParseError::BadProgramHeaders,
        }
    }
}

/// Parses the ELF header and program headers at the start of `/proc/vmcore`.
pub fn parse(head: &[u8]) -> Result<Layout, ParseError> {
    let header = elf::Header::parse(head)?;
    if header.e_type != elf::ET_CORE {
        return Err(ParseError::NotElfCore);
    }
    let mut layout = Layout::default();
    for ph in header.program_headers(head)? {
        let ph = ph?;
        let (offset, paddr, size) = (ph.offset, ph.paddr, ph.filesz);
        offset.checked_add(size).ok_or(ParseError::Overflow)?;
        match ph.p_type {
            elf::PT_LOAD => {
                paddr.checked_add(size).ok_or(ParseError::Overflow)?;
                layout.segments.push(Segment { paddr, offset, size });
            }
            elf::PT_NOTE => layout.notes.push((offset, size)),
            _ => {}
        }
    }
    Ok(layout)
}

/// An open `/proc/vmcore`.
pub struct Vmcore {
    file: std::fs::File,
    /// Its layout.
    pub layout: Layout,
    /// Its notes, concatenated.
    pub notes: Vec<u8>,
}

impl Vmcore {
    /// Opens and parses `/proc/vmcore`.
    pub fn open(path: &str) -> Result<Self, Error> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {path}"), e))?;
        let mut head = vec![0u8; elf::EHDR_LEN];
        file.read_exact_at(&mut head, 0).map_err(|e| Error::io(format!("reading {path}"), e))?;
        // The program headers too (a header that is not ELF is refused below).
        let need = elf::Header::parse(&head).map_or(0, |h| h.phdrs_end().unwrap_or(u64::MAX)).min(1 << 20);
        head.resize(need.max(elf::EHDR_LEN as u64) as usize, 0);
        file.read_exact_at(&mut head, 0).map_err(|e| Error::io(format!("reading {path}"), e))?;
        let layout = parse(&head).map_err(|e| Error::Msg(e.to_string()))?;
        let mut notes = Vec::new();
        for &(off, size) in &layout.notes {
            let mut buf = vec![0u8; size.min(1 << 20) as usize];
            file.read_exact_at(&mut buf, off).map_err(|e| Error::io(format!("reading the notes of {path}"), e))?;
            notes.extend_from_slice(&buf);
        }
        Ok(Vmcore { file, layout, notes })
    }

    /// Reads `buf.len()` bytes at file offset `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Maps `len` bytes of `/proc/vmcore` at file offset `offset` (page
    /// aligned) read-only. Reading a mapping costs a memory copy at most;
    /// `read` on `/proc/vmcore` maps and unmaps every page in the kernel.
    pub fn map(&self, offset: u64, len: usize) -> Result<Mapping, Error> {
        if offset % crate::units::PAGE_SIZE != 0 || len == 0 {
            return Err(Error::Msg(format!("cannot map /proc/vmcore at {offset:#x} (+{len:#x}): not page aligned")));
        }
        crate::sys::mapping::ReadOnly::map(&self.file, offset, len).map_err(|e| Error::sys(format!("mapping /proc/vmcore at {offset:#x}"), e))
    }

    /// Total bytes of A's memory described.
    pub fn total_bytes(&self) -> u64 {
        self.layout.segments.iter().map(|s| s.size).sum()
    }
}

/// A read-only window of `/proc/vmcore`.
pub type Mapping = crate::sys::mapping::ReadOnly;

impl PhysRead for Vmcore {
    fn read_phys(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let end = paddr.checked_add(buf.len() as u64).ok_or(Unreadable { paddr })?;
        let seg = self.layout.segments.iter().find(|s| paddr >= s.paddr && end <= s.paddr + s.size).ok_or(Unreadable { paddr })?;
        self.read_at(seg.offset + (paddr - seg.paddr), buf).map_err(|_| Unreadable { paddr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_our_own_header_shape() {
        let notes = [crate::load::elf_core::Note { addr: 0x1000, size: 0x20 }];
        let loads = [crate::load::elf_core::Load { paddr: 0, offset: 0x5000, size: 0xa0000 }];
        let h = crate::load::elf_core::build(&notes, &loads).unwrap();
        let l = parse(&h).unwrap();
        assert_eq!(l.notes, [(0x1000, 0x20)]);
        assert_eq!(l.segments, [Segment { paddr: 0, offset: 0x5000, size: 0xa0000 }]);
        for n in 0..h.len() {
            let _ = parse(&h[..n]);
        }
        assert_eq!(parse(b"\x7fELF"), Err(ParseError::NotElfCore));
        let mut bad = h.clone();
        bad[56] = 0xff; // phnum beyond the data
        assert_eq!(parse(&bad), Err(ParseError::BadProgramHeaders));
    }

    /// An `e_phoff` so close to the end of the address space that the end
    /// of the first program header overflowed (a panic with overflow checks).
    #[test]
    fn program_headers_at_the_end_of_the_address_space() {
        let mut h = vec![0u8; 64];
        h[..6].copy_from_slice(b"\x7fELF\x02\x01");
        h[16] = 4; // ET_CORE
        h[32..40].copy_from_slice(&0xffff_ffff_ffff_fff0u64.to_le_bytes());
        h[54] = 56; // e_phentsize
        h[56] = 1; // e_phnum
        assert_eq!(parse(&h), Err(ParseError::BadProgramHeaders));
    }
}
