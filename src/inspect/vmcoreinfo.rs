//! VMCOREINFO: the `KEY=VALUE` text A's kernel exports so that a tool
//! outside it (makedumpfile, crash, or B) can find its data structures.
//!
//! Linux writes it in `kernel/vmcore_info.c` and, for x86_64, in
//! `arch/x86/kernel/vmcore_info_64.c`, one `vmcoreinfo_append_str` per line:
//! - `OSRELEASE=6.12.117`, `BUILD-ID=<40 hex digits>`, `PAGESIZE=4096`;
//! - `SYMBOL(name)=ffff…` — an address in hexadecimal without `0x`;
//! - `SIZE(name)=N`, `OFFSET(struct.field)=N`, `LENGTH(name)=N` — decimal;
//! - `NUMBER(name)=N` — decimal, possibly negative (printed with `%ld`),
//!   though a few (`NUMBER(VMALLOC_START)=0x…`) are hexadecimal.
//!
//! The text travels in an ELF note named `VMCOREINFO`; [`find_in_notes`]
//! picks it out of a buffer of notes. Nothing here panics or fails: a line
//! that is not `KEY=VALUE` is skipped, and a value that does not parse reads
//! as absent.

use crate::le;

/// The name of the ELF note that carries the text (`VMCOREINFO_NOTE_NAME`).
pub const NOTE_NAME: &str = "VMCOREINFO";

/// A's VMCOREINFO text, parsed on demand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmcoreInfo {
    text: String,
}

impl VmcoreInfo {
    /// Keeps `text`; lines without `=` are ignored when looking keys up.
    pub fn parse(text: &str) -> VmcoreInfo {
        VmcoreInfo { text: text.to_owned() }
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value of the first line `key=value`, without trailing whitespace.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.text.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k == key).then(|| v.trim_end())
        })
    }

    fn get_fmt(&self, kind: &str, name: &str) -> Option<&str> {
        self.text.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            let inner = k.strip_prefix(kind)?.strip_prefix('(')?.strip_suffix(')')?;
            (inner == name).then(|| v.trim_end())
        })
    }

    /// `SYMBOL(name)`: an address, hexadecimal (an optional `0x` is accepted).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        parse_hex(self.get_fmt("SYMBOL", name)?)
    }

    /// `NUMBER(name)`: decimal with an optional minus sign, or `0x`
    /// hexadecimal (read as the bits of a 64-bit two's complement number,
    /// as the kernel's `%ld` would have printed them).
    pub fn number(&self, name: &str) -> Option<i64> {
        let v = self.get_fmt("NUMBER", name)?;
        match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => parse_hex(hex).map(|u| i64::from_ne_bytes(u.to_ne_bytes())),
            None => parse_signed(v),
        }
    }

    /// `OFFSET(name)`, where `name` is `struct.field`: decimal.
    pub fn offset(&self, name: &str) -> Option<u64> {
        parse_dec(self.get_fmt("OFFSET", name)?)
    }

    /// `SIZE(name)`: decimal.
    pub fn size(&self, name: &str) -> Option<u64> {
        parse_dec(self.get_fmt("SIZE", name)?)
    }

    /// `LENGTH(name)`: decimal.
    pub fn length(&self, name: &str) -> Option<u64> {
        parse_dec(self.get_fmt("LENGTH", name)?)
    }

    /// `OSRELEASE`: A's `uname -r`.
    pub fn osrelease(&self) -> Option<&str> {
        self.get("OSRELEASE").filter(|v| !v.is_empty())
    }

    /// `BUILD-ID`: the GNU build ID of A's vmlinux, as hexadecimal text.
    pub fn build_id(&self) -> Option<&str> {
        self.get("BUILD-ID").filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    /// `PAGESIZE`: A's page size in bytes.
    pub fn page_size(&self) -> Option<u64> {
        parse_dec(self.get("PAGESIZE")?)
    }
}

/// Hexadecimal digits only (optional `0x`); `from_str_radix` alone would
/// also take a leading `+`.
fn parse_hex(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Decimal digits only.
fn parse_dec(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Decimal digits with an optional leading `-`.
fn parse_signed(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// Finds the note named `VMCOREINFO` in a buffer of ELF64 notes laid end to
/// end (12-byte header `namesz, descsz, type`, then the name and the
/// descriptor, each padded to 4 bytes, little-endian) and returns its
/// descriptor as text: invalid UTF-8 replaced, trailing NULs removed.
/// The walk stops at a note with `namesz == 0` (the kernel's `final_note`)
/// and at the first note that does not fit in the buffer.
pub fn find_in_notes(notes: &[u8]) -> Option<String> {
    let (_, desc) = locate(notes)?;
    let desc = notes.get(desc)?;
    Some(String::from_utf8_lossy(trim_nuls(desc)).into_owned())
}

/// Where the `VMCOREINFO` note is in a buffer of notes ([`find_in_notes`]):
/// the bytes of the whole note, from its header to the end of its
/// descriptor's padding (or of the buffer, when that ends first).
pub fn note_range(notes: &[u8]) -> Option<std::ops::Range<usize>> {
    locate(notes).map(|(note, _)| note)
}

/// The whole note's bytes and its descriptor's, for [`find_in_notes`] and
/// [`note_range`].
fn locate(notes: &[u8]) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut pos = 0usize;
    loop {
        let namesz = usize::try_from(le::u32_at(notes, pos)?).ok()?;
        let descsz = usize::try_from(le::u32_at(notes, pos.checked_add(4)?)?).ok()?;
        if namesz == 0 {
            return None;
        }
        let name_start = pos.checked_add(12)?;
        let name = notes.get(name_start..name_start.checked_add(namesz)?)?;
        let desc_start = name_start.checked_add(align4(namesz)?)?;
        let desc_end = desc_start.checked_add(descsz)?;
        let next = desc_start.checked_add(align4(descsz)?)?;
        if trim_nuls(name) == NOTE_NAME.as_bytes() {
            notes.get(desc_start..desc_end)?;
            return Some((pos..next.min(notes.len()), desc_start..desc_end));
        }
        pos = next;
    }
}

fn trim_nuls(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes.get(..end).unwrap_or(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The beginning of a real 6.12 VMCOREINFO (x86_64, nokaslr), cut down.
    pub const SAMPLE: &str = "\
OSRELEASE=6.12.117
BUILD-ID=0123456789abcdef0123456789abcdef01234567
PAGESIZE=4096
SYMBOL(init_uts_ns)=ffffffff82a1a360
OFFSET(uts_namespace.name)=0
SYMBOL(_stext)=ffffffff81000000
NUMBER(VMALLOC_START)=0xffffc90000000000
SYMBOL(vmemmap)=ffffea0000000000
SYMBOL(mem_section)=ffff88803ffd5000
LENGTH(mem_section)=2048
SIZE(mem_section)=16
OFFSET(mem_section.section_mem_map)=0
NUMBER(SECTION_SIZE_BITS)=27
NUMBER(MAX_PHYSMEM_BITS)=46
SIZE(page)=64
OFFSET(page.flags)=0
OFFSET(page._mapcount)=48
OFFSET(page.private)=40
LENGTH(zone.free_area)=11
NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456
NUMBER(phys_base)=0
SYMBOL(init_top_pgt)=ffffffff82a0e000
NUMBER(pgtable_l5_enabled)=0
KERNELOFFSET=0
NUMBER(sme_mask)=0
CRASHTIME=1732630000
";

    /// An ELF note as the kernel's `append_elf_note` writes it.
    pub fn note(name: &str, ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn reads_every_kind_of_key() {
        let i = VmcoreInfo::parse(SAMPLE);
        assert_eq!(i.osrelease(), Some("6.12.117"));
        assert_eq!(i.build_id(), Some("0123456789abcdef0123456789abcdef01234567"));
        assert_eq!(i.page_size(), Some(4096));
        assert_eq!(i.symbol("mem_section"), Some(0xffff88803ffd5000));
        assert_eq!(i.symbol("init_top_pgt"), Some(0xffffffff82a0e000));
        assert_eq!(i.length("mem_section"), Some(2048));
        assert_eq!(i.size("mem_section"), Some(16));
        assert_eq!(i.size("page"), Some(64));
        assert_eq!(i.offset("mem_section.section_mem_map"), Some(0));
        assert_eq!(i.offset("page._mapcount"), Some(48));
        assert_eq!(i.offset("page.private"), Some(40));
        assert_eq!(i.number("SECTION_SIZE_BITS"), Some(27));
        assert_eq!(i.number("PAGE_BUDDY_MAPCOUNT_VALUE"), Some(-268435456));
        assert_eq!(i.number("pgtable_l5_enabled"), Some(0));
        assert_eq!(i.number("VMALLOC_START"), Some(0xffffc90000000000u64 as i64));
        assert_eq!(i.get("KERNELOFFSET"), Some("0"));
        assert_eq!(i.get("CRASHTIME"), Some("1732630000"));
        assert_eq!(i.symbol("nonexistent"), None);
        // Kinds do not leak into each other.
        assert_eq!(i.size("mem_section.section_mem_map"), None);
        assert_eq!(i.number("mem_section"), None);
    }

    #[test]
    fn garbage_lines_and_values() {
        let text = "no equals sign here\n=\n==\nSYMBOL(a)=\nSYMBOL(b)=+12\nSYMBOL(c)=xyz\n\
            SYMBOL(d)=1ffffffffffffffff\nNUMBER(e)=--1\nNUMBER(f)=-\nNUMBER(g)=+5\n\
            OFFSET(h)=-1\nSIZE(i)=12 34\nLENGTH(j)=99999999999999999999\nSYMBOL(k\n\
            SYMBOL(l)=0x10\r\nNUMBER(m)=-9223372036854775808\nSYMBOL=1\nSYMBOL()=2\n\
            PAGESIZE=4k\nNUMBER(n)=0x\nBUILD-ID=zz\nOSRELEASE=\n\u{fffd}=\u{fffd}\n";
        let i = VmcoreInfo::parse(text);
        for name in ["a", "b", "c", "d", "k"] {
            assert_eq!(i.symbol(name), None, "{name}");
        }
        assert_eq!(i.number("e"), None);
        assert_eq!(i.number("f"), None);
        assert_eq!(i.number("g"), None);
        assert_eq!(i.number("n"), None);
        assert_eq!(i.offset("h"), None);
        assert_eq!(i.size("i"), None);
        assert_eq!(i.length("j"), None);
        assert_eq!(i.symbol("l"), Some(0x10));
        assert_eq!(i.number("m"), Some(i64::MIN));
        assert_eq!(i.symbol(""), Some(2));
        assert_eq!(i.page_size(), None);
        assert_eq!(i.build_id(), None);
        assert_eq!(i.osrelease(), None);
        assert_eq!(i.get(""), Some(""));
        assert_eq!(VmcoreInfo::parse("").get("PAGESIZE"), None);
    }

    #[test]
    fn first_occurrence_wins() {
        let i = VmcoreInfo::parse("PAGESIZE=4096\nPAGESIZE=65536\n");
        assert_eq!(i.page_size(), Some(4096));
    }

    #[test]
    fn finds_the_note_among_others() {
        let mut buf = note("CORE", 1, &[7u8; 336]);
        buf.extend(note("CORE", 1, &[8u8; 335]));
        let mut desc = SAMPLE.as_bytes().to_vec();
        desc.extend_from_slice(&[0, 0, 0]);
        buf.extend(note(NOTE_NAME, 0, &desc));
        buf.extend_from_slice(&[0u8; 12]);
        assert_eq!(find_in_notes(&buf).as_deref(), Some(SAMPLE));
    }

    #[test]
    fn the_whole_note_among_others() {
        let first = note("CORE", 1, &[7u8; 335]);
        let info = note(NOTE_NAME, 0, b"OSRELEASE=6.1\n");
        let mut buf = first.clone();
        buf.extend(&info);
        buf.extend_from_slice(&[0u8; 12]);
        assert_eq!(note_range(&buf), Some(first.len()..first.len() + info.len()));
        // Its padding cut off: the note still ends with the buffer.
        let cut = first.len() + info.len() - 2;
        assert_eq!(note_range(&buf[..cut]), Some(first.len()..cut));
        assert_eq!(note_range(&first), None);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let buf = note(NOTE_NAME, 0, b"OSRELEASE=6.\xff\n\0");
        assert_eq!(find_in_notes(&buf).as_deref(), Some("OSRELEASE=6.\u{fffd}\n"));
        assert_eq!(find_in_notes(&note(NOTE_NAME, 0, b"")).as_deref(), Some(""));
    }

    #[test]
    fn hostile_notes() {
        let good = note(NOTE_NAME, 0, SAMPLE.as_bytes());
        // Every truncation of a valid buffer, and no panic on any of them.
        for cut in 0..good.len() {
            let found = find_in_notes(&good[..cut]);
            // The descriptor is complete once its last byte is there.
            let desc_end = 12 + 12 + SAMPLE.len();
            assert_eq!(found.is_some(), cut >= desc_end, "cut at {cut}");
        }
        // namesz 0 stops the walk before the note.
        let mut buf = vec![0u8; 12];
        buf.extend_from_slice(&good);
        assert_eq!(find_in_notes(&buf), None);
        // Huge sizes.
        for (namesz, descsz) in [(u32::MAX, 4), (11, u32::MAX), (u32::MAX, u32::MAX), (0xffff_fffd, 0)] {
            let mut bad = Vec::new();
            bad.extend_from_slice(&namesz.to_le_bytes());
            bad.extend_from_slice(&descsz.to_le_bytes());
            bad.extend_from_slice(&0u32.to_le_bytes());
            bad.extend_from_slice(b"VMCOREINFO\0\0");
            bad.extend_from_slice(&[b'A'; 64]);
            assert_eq!(find_in_notes(&bad), None);
        }
        // A note that claims to be longer than it is hides the one after it.
        let mut bad = note("CORE", 1, &[1u8; 16]);
        bad[4..8].copy_from_slice(&1000u32.to_le_bytes());
        bad.extend(note(NOTE_NAME, 0, b"PAGESIZE=4096\n"));
        assert_eq!(find_in_notes(&bad), None);
        // Names that only resemble it.
        assert_eq!(find_in_notes(&note("VMCOREINF", 0, b"x")), None);
        assert_eq!(find_in_notes(&note("VMCOREINFOX", 0, b"x")), None);
        assert_eq!(find_in_notes(&[]), None);
        assert_eq!(find_in_notes(&[1, 2, 3]), None);
    }
}
