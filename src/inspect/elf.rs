//! The ELF64 file header and program headers (little-endian, as on
//! x86_64): their fields declared once, and the one checked reader of
//! them. B reads `/proc/vmcore` with it (`vmcore`), A reads
//! `/proc/kcore` (`load::crash_info`), and the writer of the ELF core
//! header B's kernel is given (`load::elf_core`, also the writer of
//! `kjump image export`'s core file) uses the same fields.
//! Every offset and count is checked: a header that is short, a table
//! that lies past the data or past the end of the address space, is an
//! error, never a panic.

use core::fmt;

use crate::le::Field;

/// Size of the ELF64 file header.
pub const EHDR_LEN: usize = 64;
/// Size of an ELF64 program header.
pub const PHDR_LEN: usize = 56;

/// `e_ident[EI_MAG0..4]`: [`ELFMAG`].
pub const EI_MAG: Field<4> = Field { at: 0 };
/// `e_ident[EI_CLASS]`: [`ELFCLASS64`].
pub const EI_CLASS: Field<1> = Field { at: 4 };
/// `e_ident[EI_DATA]`: [`ELFDATA2LSB`].
pub const EI_DATA: Field<1> = Field { at: 5 };
/// `e_ident[EI_VERSION]`: [`EV_CURRENT`].
pub const EI_VERSION: Field<1> = Field { at: 6 };
/// `e_type`.
pub const E_TYPE: Field<2> = Field { at: 16 };
/// `e_machine`.
pub const E_MACHINE: Field<2> = Field { at: 18 };
/// `e_version`: [`EV_CURRENT`].
pub const E_VERSION: Field<4> = Field { at: 20 };
/// `e_phoff`: where the program headers start in the file.
pub const E_PHOFF: Field<8> = Field { at: 32 };
/// `e_ehsize`: [`EHDR_LEN`].
pub const E_EHSIZE: Field<2> = Field { at: 52 };
/// `e_phentsize`: [`PHDR_LEN`].
pub const E_PHENTSIZE: Field<2> = Field { at: 54 };
/// `e_phnum`: how many program headers.
pub const E_PHNUM: Field<2> = Field { at: 56 };

/// `p_type`.
pub const P_TYPE: Field<4> = Field { at: 0 };
/// `p_flags`.
pub const P_FLAGS: Field<4> = Field { at: 4 };
/// `p_offset`: where the segment's bytes are in the file.
pub const P_OFFSET: Field<8> = Field { at: 8 };
/// `p_vaddr`.
pub const P_VADDR: Field<8> = Field { at: 16 };
/// `p_paddr`.
pub const P_PADDR: Field<8> = Field { at: 24 };
/// `p_filesz`.
pub const P_FILESZ: Field<8> = Field { at: 32 };
/// `p_memsz`.
pub const P_MEMSZ: Field<8> = Field { at: 40 };
/// `p_align`.
pub const P_ALIGN: Field<8> = Field { at: 48 };

/// The ELF magic.
pub const ELFMAG: [u8; 4] = *b"\x7fELF";
/// 64-bit objects.
pub const ELFCLASS64: u8 = 2;
/// Little-endian data.
pub const ELFDATA2LSB: u8 = 1;
/// The ELF version.
pub const EV_CURRENT: u8 = 1;
/// A core file.
pub const ET_CORE: u16 = 4;
/// x86_64.
pub const EM_X86_64: u16 = 62;
/// A loadable segment.
pub const PT_LOAD: u32 = 1;
/// A note segment.
pub const PT_NOTE: u32 = 4;

/// Why an ELF file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not a whole 64-bit little-endian ELF header.
    NotElf64,
    /// Program headers of another size, none, beyond the data given, or
    /// beyond the end of the address space.
    BadProgramHeaders,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NotElf64 => "not a 64-bit little-endian ELF file",
            Error::BadProgramHeaders => "bad program headers",
        })
    }
}

impl std::error::Error for Error {}

/// What an ELF64 file header says (the fields kjump reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `e_type`.
    pub e_type: u16,
    /// `e_phoff`.
    pub phoff: u64,
    /// `e_phentsize`.
    pub phentsize: u16,
    /// `e_phnum`.
    pub phnum: u16,
}

impl Header {
    /// Reads the file header at the start of `b`: refused unless all
    /// [`EHDR_LEN`] bytes are there and it is a 64-bit little-endian ELF.
    pub fn parse(b: &[u8]) -> Result<Self, Error> {
        let head = b.get(..EHDR_LEN).ok_or(Error::NotElf64)?;
        if EI_MAG.array(head) != Some(ELFMAG) || EI_CLASS.u8(head) != Some(ELFCLASS64) || EI_DATA.u8(head) != Some(ELFDATA2LSB) {
            return Err(Error::NotElf64);
        }
        // `head` holds the whole header: every field is there.
        Ok(Header {
            e_type: E_TYPE.u16(head).unwrap_or_default(),
            phoff: E_PHOFF.u64(head).unwrap_or_default(),
            phentsize: E_PHENTSIZE.u16(head).unwrap_or_default(),
            phnum: E_PHNUM.u16(head).unwrap_or_default(),
        })
    }

    /// Where program header `i` starts in the file, or `None` past the
    /// end of the address space. Says nothing of whether it is there.
    pub fn phdr_at(&self, i: u16) -> Option<u64> {
        self.phoff.checked_add(u64::from(i) * PHDR_LEN as u64)
    }

    /// Where the program headers end in the file, or `None` past the end
    /// of the address space.
    pub fn phdrs_end(&self) -> Option<u64> {
        self.phoff.checked_add(u64::from(self.phnum) * PHDR_LEN as u64)
    }

    /// The program headers of `file` (the start of the file, up to the end
    /// of its program headers at least), in order. Refused when they are
    /// not [`PHDR_LEN`] bytes each or there are none; each is then refused
    /// in its turn when it does not lie wholly within `file`.
    pub fn program_headers<'a>(&self, file: &'a [u8]) -> Result<impl Iterator<Item = Result<ProgramHeader, Error>> + 'a, Error> {
        if usize::from(self.phentsize) != PHDR_LEN || self.phnum == 0 {
            return Err(Error::BadProgramHeaders);
        }
        let h = *self;
        Ok((0..self.phnum).map(move |i| {
            let at = h.phdr_at(i).and_then(|at| usize::try_from(at).ok()).ok_or(Error::BadProgramHeaders)?;
            let b = at.checked_add(PHDR_LEN).and_then(|end| file.get(at..end)).ok_or(Error::BadProgramHeaders)?;
            ProgramHeader::parse(b).ok_or(Error::BadProgramHeaders)
        }))
    }
}

/// An ELF64 program header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramHeader {
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags`.
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_paddr`.
    pub paddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_align`.
    pub align: u64,
}

impl ProgramHeader {
    /// Reads the program header at the start of `b`: `None` unless all
    /// [`PHDR_LEN`] bytes are there.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b = b.get(..PHDR_LEN)?;
        Some(ProgramHeader {
            p_type: P_TYPE.u32(b)?,
            flags: P_FLAGS.u32(b)?,
            offset: P_OFFSET.u64(b)?,
            vaddr: P_VADDR.u64(b)?,
            paddr: P_PADDR.u64(b)?,
            filesz: P_FILESZ.u64(b)?,
            memsz: P_MEMSZ.u64(b)?,
            align: P_ALIGN.u64(b)?,
        })
    }

    /// Encodes it as the [`PHDR_LEN`] bytes of a program header.
    pub fn encode(&self) -> [u8; PHDR_LEN] {
        let mut b = [0u8; PHDR_LEN];
        P_TYPE.set(&mut b, self.p_type.to_le_bytes());
        P_FLAGS.set(&mut b, self.flags.to_le_bytes());
        P_OFFSET.set(&mut b, self.offset.to_le_bytes());
        P_VADDR.set(&mut b, self.vaddr.to_le_bytes());
        P_PADDR.set(&mut b, self.paddr.to_le_bytes());
        P_FILESZ.set(&mut b, self.filesz.to_le_bytes());
        P_MEMSZ.set(&mut b, self.memsz.to_le_bytes());
        P_ALIGN.set(&mut b, self.align.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header for `phnum` program headers at `phoff`, followed by them:
    /// a PT_NOTE, then PT_LOADs.
    fn file(phoff: u64, phnum: u16) -> Vec<u8> {
        let mut f = vec![0u8; EHDR_LEN];
        EI_MAG.set(&mut f, ELFMAG);
        EI_CLASS.set(&mut f, [ELFCLASS64]);
        EI_DATA.set(&mut f, [ELFDATA2LSB]);
        E_TYPE.set(&mut f, ET_CORE.to_le_bytes());
        E_PHOFF.set(&mut f, phoff.to_le_bytes());
        E_PHENTSIZE.set(&mut f, (PHDR_LEN as u16).to_le_bytes());
        E_PHNUM.set(&mut f, phnum.to_le_bytes());
        if let Ok(at) = usize::try_from(phoff) {
            if at < 4096 {
                f.resize(at, 0);
                for i in 0..phnum {
                    let p_type = if i == 0 { PT_NOTE } else { PT_LOAD };
                    let n = u64::from(i);
                    f.extend_from_slice(
                        &ProgramHeader { p_type, offset: 0x1000 * n, paddr: 0x10_0000 * n, filesz: 0x1000, memsz: 0x1000, ..Default::default() }.encode(),
                    );
                }
            }
        }
        f
    }

    fn read_all(f: &[u8]) -> Result<Vec<ProgramHeader>, Error> {
        Header::parse(f)?.program_headers(f)?.collect()
    }

    #[test]
    fn reads_what_it_wrote() {
        let f = file(EHDR_LEN as u64, 3);
        let h = Header::parse(&f).unwrap();
        assert_eq!(h, Header { e_type: ET_CORE, phoff: 64, phentsize: 56, phnum: 3 });
        assert_eq!((h.phdr_at(2), h.phdrs_end()), (Some(64 + 2 * 56), Some(f.len() as u64)));
        let p = read_all(&f).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].p_type, PT_NOTE);
        assert_eq!((p[2].p_type, p[2].offset, p[2].paddr, p[2].filesz), (PT_LOAD, 0x2000, 0x20_0000, 0x1000));
        // A table elsewhere in the file.
        assert_eq!(read_all(&file(200, 2)).unwrap().len(), 2);
    }

    #[test]
    fn truncated_headers_are_refused() {
        let f = file(EHDR_LEN as u64, 2);
        for n in 0..EHDR_LEN {
            assert_eq!(Header::parse(&f[..n]), Err(Error::NotElf64), "{n} bytes");
        }
        for n in EHDR_LEN..f.len() {
            assert_eq!(read_all(&f[..n]), Err(Error::BadProgramHeaders), "{n} bytes");
        }
        assert!(ProgramHeader::parse(&[0u8; PHDR_LEN - 1]).is_none());
    }

    #[test]
    fn other_elf_files_are_refused() {
        for (field, value) in [(EI_MAG.at, 0x7e), (EI_CLASS.at, 1), (EI_DATA.at, 2)] {
            let mut f = file(EHDR_LEN as u64, 1);
            f[field] = value;
            assert_eq!(Header::parse(&f), Err(Error::NotElf64));
        }
        assert_eq!(Header::parse(b"\x7fELF"), Err(Error::NotElf64));
    }

    #[test]
    fn bad_tables_are_refused() {
        // No program headers, or of another size.
        assert_eq!(read_all(&file(EHDR_LEN as u64, 0)), Err(Error::BadProgramHeaders));
        let mut f = file(EHDR_LEN as u64, 1);
        E_PHENTSIZE.set(&mut f, 32u16.to_le_bytes());
        assert_eq!(read_all(&f), Err(Error::BadProgramHeaders));
        // More than the data holds (a phnum overflow), the largest count.
        let mut f = file(EHDR_LEN as u64, 2);
        E_PHNUM.set(&mut f, u16::MAX.to_le_bytes());
        let h = Header::parse(&f).unwrap();
        let got: Vec<_> = h.program_headers(&f).unwrap().collect();
        assert_eq!(got.len(), usize::from(u16::MAX));
        assert!(got[..2].iter().all(Result::is_ok) && got[2..].iter().all(|p| *p == Err(Error::BadProgramHeaders)));
        // Offsets past the end of the data, and of the address space.
        let mut f = file(EHDR_LEN as u64, 1);
        for phoff in [f.len() as u64, f.len() as u64 - 1, u64::MAX - 100, u64::MAX] {
            E_PHOFF.set(&mut f, phoff.to_le_bytes());
            assert_eq!(read_all(&f), Err(Error::BadProgramHeaders), "phoff {phoff:#x}");
        }
        let h = Header::parse(&file(u64::MAX - 50, u16::MAX)).unwrap();
        assert_eq!((h.phdr_at(0), h.phdr_at(1), h.phdrs_end()), (Some(u64::MAX - 50), None, None));
    }
}
