//! The ELF core header that B's kernel turns into `/proc/vmcore`
//! (`elfcorehdr=`): one PT_NOTE per note buffer in A (VMCOREINFO and each
//! CPU's `crash_notes`) and one PT_LOAD per range of A's RAM, whose
//! `p_offset` says where in physical memory B finds those bytes. Its
//! ELF and program header writers ([`ehdr`], [`phdr`]) also write the
//! core file of `kjump image export` (`image::export`).

use core::fmt;

use crate::inspect::elf::{self, ProgramHeader, EHDR_LEN, PHDR_LEN, PT_LOAD, PT_NOTE};

/// Most program headers kjump writes.
pub const MAX_PHDRS: usize = 256;
/// Bytes of the largest header kjump writes.
pub const MAX_LEN: usize = EHDR_LEN + MAX_PHDRS * PHDR_LEN;

/// `p_flags`: readable, writable, executable.
const PF_RWX: u32 = 7;

/// A note buffer in A's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    /// Physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A range of A's physical memory and where B reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// A's physical address of the range.
    pub paddr: u64,
    /// Physical address where the bytes are while B runs (equal to `paddr`
    /// except for A's low memory, which is read from its backup).
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Why a header could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No PT_NOTE: B's kernel would refuse to make `/proc/vmcore`.
    NoNotes,
    /// No PT_LOAD.
    NoLoads,
    /// More than [`MAX_PHDRS`] program headers.
    TooManyHeaders,
    /// A note or load of size zero.
    EmptyEntry,
    /// A range that wraps around the address space.
    Overflow,
    /// Loads not in address order, or overlapping.
    LoadsOverlap,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NoNotes => "no note buffers (is /sys/kernel/vmcoreinfo there?)",
            Error::NoLoads => "no memory ranges to describe",
            Error::TooManyHeaders => "too many program headers",
            Error::EmptyEntry => "an empty note or memory range",
            Error::Overflow => "a range wraps around the address space",
            Error::LoadsOverlap => "memory ranges overlap or are out of order",
        })
    }
}

impl std::error::Error for Error {}

/// Appends a program header (flags RWX, alignment 0, as the kernel's).
pub fn phdr(out: &mut Vec<u8>, p_type: u32, offset: u64, vaddr: u64, paddr: u64, size: u64) {
    out.extend_from_slice(&ProgramHeader { p_type, flags: PF_RWX, offset, vaddr, paddr, filesz: size, memsz: size, align: 0 }.encode());
}

/// Builds the header: the ELF header, then the PT_NOTEs, then the PT_LOADs.
pub fn build(notes: &[Note], loads: &[Load]) -> Result<Vec<u8>, Error> {
    if notes.is_empty() {
        return Err(Error::NoNotes);
    }
    if loads.is_empty() {
        return Err(Error::NoLoads);
    }
    let count = notes.len() + loads.len();
    if count > MAX_PHDRS {
        return Err(Error::TooManyHeaders);
    }
    let mut prev_end = 0u64;
    for l in loads {
        if l.size == 0 {
            return Err(Error::EmptyEntry);
        }
        let end = l.paddr.checked_add(l.size).ok_or(Error::Overflow)?;
        l.offset.checked_add(l.size).ok_or(Error::Overflow)?;
        if l.paddr < prev_end {
            return Err(Error::LoadsOverlap);
        }
        prev_end = end;
    }
    for n in notes {
        if n.size == 0 {
            return Err(Error::EmptyEntry);
        }
        n.addr.checked_add(n.size).ok_or(Error::Overflow)?;
    }
    // At most MAX_PHDRS: the count fits.
    let mut out = ehdr(count as u16);
    for n in notes {
        phdr(&mut out, PT_NOTE, n.addr, 0, 0, n.size);
    }
    // p_vaddr: A's virtual addresses are unknown to its user space.
    for l in loads {
        phdr(&mut out, PT_LOAD, l.offset, 0, l.paddr, l.size);
    }
    Ok(out)
}

/// The ELF header of an x86_64 core file whose `count` program headers
/// follow it, with room reserved for them.
pub fn ehdr(count: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(EHDR_LEN + usize::from(count) * PHDR_LEN);
    // The fields not set are 0: the SysV ABI, no entry point, no sections.
    out.resize(EHDR_LEN, 0);
    elf::EI_MAG.set(&mut out, elf::ELFMAG);
    elf::EI_CLASS.set(&mut out, [elf::ELFCLASS64]);
    elf::EI_DATA.set(&mut out, [elf::ELFDATA2LSB]);
    elf::EI_VERSION.set(&mut out, [elf::EV_CURRENT]);
    elf::E_TYPE.set(&mut out, elf::ET_CORE.to_le_bytes());
    elf::E_MACHINE.set(&mut out, elf::EM_X86_64.to_le_bytes());
    elf::E_VERSION.set(&mut out, u32::from(elf::EV_CURRENT).to_le_bytes());
    elf::E_PHOFF.set(&mut out, (EHDR_LEN as u64).to_le_bytes());
    elf::E_EHSIZE.set(&mut out, (EHDR_LEN as u16).to_le_bytes());
    elf::E_PHENTSIZE.set(&mut out, (PHDR_LEN as u16).to_le_bytes());
    elf::E_PHNUM.set(&mut out, count.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::le;

    #[test]
    fn builds_what_vmcore_checks() {
        let notes = [Note { addr: 0x2000000, size: 0x1000 }, Note { addr: 0x2001000, size: 0x150 }];
        let loads = [Load { paddr: 0, offset: 0x38000000, size: 0xa0000 }, Load { paddr: 0x100000, offset: 0x100000, size: 0x37d00000 }];
        let h = build(&notes, &loads).unwrap();
        assert_eq!(h.len(), 64 + 4 * 56);
        assert_eq!(&h[..4], b"\x7fELF");
        assert_eq!(h[4], 2);
        assert_eq!(le::u16_at(&h, 16), Some(4));
        assert_eq!(le::u16_at(&h, 18), Some(62));
        assert_eq!(le::u16_at(&h, 52), Some(64));
        assert_eq!(le::u16_at(&h, 54), Some(56));
        assert_eq!(le::u16_at(&h, 56), Some(4));
        let third = 64 + 2 * 56;
        assert_eq!(le::u32_at(&h, third), Some(PT_LOAD));
        assert_eq!(le::u64_at(&h, third + 8), Some(0x38000000)); // p_offset: the backup
        assert_eq!(le::u64_at(&h, third + 24), Some(0)); // p_paddr
        assert_eq!(le::u64_at(&h, third + 32), Some(0xa0000));
    }

    #[test]
    fn refuses_bad_input() {
        let n = [Note { addr: 0x1000, size: 16 }];
        let l = [Load { paddr: 0x100000, offset: 0x100000, size: 0x1000 }];
        assert_eq!(build(&[], &l), Err(Error::NoNotes));
        assert_eq!(build(&n, &[]), Err(Error::NoLoads));
        assert_eq!(build(&[Note { addr: 1, size: 0 }], &l), Err(Error::EmptyEntry));
        assert_eq!(build(&n, &[Load { paddr: u64::MAX, offset: 0, size: 2 }]), Err(Error::Overflow));
        assert_eq!(build(&n, &[Load { paddr: 0, offset: u64::MAX, size: 2 }]), Err(Error::Overflow));
        let overlapping = [l[0], Load { paddr: 0x100800, offset: 0, size: 1 }];
        assert_eq!(build(&n, &overlapping), Err(Error::LoadsOverlap));
        let many = vec![n[0]; MAX_PHDRS];
        assert_eq!(build(&many, &l), Err(Error::TooManyHeaders));
    }
}
