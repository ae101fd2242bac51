//! Where A keeps the note buffers that `/proc/vmcore` in B exposes: the
//! VMCOREINFO note (`/sys/kernel/vmcoreinfo`) and each CPU's `crash_notes`.

use crate::inspect::elf;
use crate::le;
use crate::load::elf_core::Note;
use crate::units::parse_u64;
use crate::Error;

fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x").unwrap_or(text), 16).ok()
}

/// Parses `/sys/kernel/vmcoreinfo`: `ADDR SIZE`, both hexadecimal (the
/// address printed with `%pa`, so with `0x`).
pub fn parse_vmcoreinfo(text: &str) -> Option<Note> {
    let mut it = text.split_ascii_whitespace();
    let addr = hex(it.next()?)?;
    let size = hex(it.next()?)?;
    (size > 0 && it.next().is_none()).then_some(Note { addr, size })
}

/// Reads a small text file (sysfs, procfs), trimmed.
pub fn read_trimmed(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|e| Error::io(format!("reading {path}"), e))
}

/// The VMCOREINFO note of the running kernel.
pub fn vmcoreinfo() -> Result<Note, Error> {
    let text = read_trimmed("/sys/kernel/vmcoreinfo").map_err(|e| Error::Msg(format!("{e} (the kernel needs CONFIG_CRASH_DUMP=y)")))?;
    parse_vmcoreinfo(&text).ok_or_else(|| Error::Msg(format!("/sys/kernel/vmcoreinfo: cannot parse {text:?}")))
}

/// The `crash_notes` buffers of every CPU that has one.
pub fn cpu_notes() -> Result<Vec<Note>, Error> {
    let mut notes = Vec::new();
    for cpu in 0.. {
        let dir = format!("/sys/devices/system/cpu/cpu{cpu}");
        if std::fs::metadata(&dir).is_err() {
            break;
        }
        let Ok(addr) = read_trimmed(&format!("{dir}/crash_notes")) else { continue };
        let size = read_trimmed(&format!("{dir}/crash_notes_size"))?;
        let addr = hex(&addr).ok_or_else(|| Error::Msg(format!("{dir}/crash_notes: not an address: {addr:?}")))?;
        let size = parse_u64(&size).ok_or_else(|| Error::Msg(format!("{dir}/crash_notes_size: {size:?}")))?;
        if size > 0 {
            notes.push(Note { addr, size });
        }
    }
    Ok(notes)
}

/// The length of the notes at the start of `buf`: whole notes up to the
/// first with an empty name, as B's kernel counts them. 0 for an empty buffer
/// (a CPU's `crash_notes` before any crash).
pub fn notes_len(buf: &[u8]) -> usize {
    let mut at = 0usize;
    loop {
        let Some(head) = buf.get(at..at + 12) else { return at };
        let (Some(namesz), Some(descsz)) = (le::u32_at(head, 0), le::u32_at(head, 4)) else { return at };
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        if namesz == 0 {
            return at;
        }
        let size = 12 + namesz.next_multiple_of(4) + descsz.next_multiple_of(4);
        match at.checked_add(size) {
            Some(end) if end <= buf.len() => at = end,
            _ => return at,
        }
    }
}

/// Reads `len` bytes of A's physical memory at `addr` from `/proc/kcore`
/// (whose RAM program headers carry physical addresses), or from
/// `/dev/mem` when there is no kcore.
pub fn read_phys(addr: u64, len: usize) -> Result<Vec<u8>, Error> {
    use std::os::unix::fs::FileExt;
    let Ok(kcore) = std::fs::File::open("/proc/kcore") else {
        let mem = crate::sys::devmem::DevMem::open()?;
        return Ok(mem.map(addr, len)?.bytes().to_vec());
    };
    let mut ehdr = [0u8; elf::EHDR_LEN];
    kcore.read_exact_at(&mut ehdr, 0).map_err(|e| Error::io("reading /proc/kcore", e))?;
    let header = elf::Header::parse(&ehdr).map_err(|_| Error::Msg("/proc/kcore is not a 64-bit ELF file".into()))?;
    for i in 0..header.phnum {
        let at = header.phdr_at(i).ok_or_else(|| Error::Msg("/proc/kcore has bad program headers".into()))?;
        let mut ph = [0u8; elf::PHDR_LEN];
        kcore.read_exact_at(&mut ph, at).map_err(|e| Error::io("reading /proc/kcore", e))?;
        // `ph` is a whole program header: it always parses.
        let ph = elf::ProgramHeader::parse(&ph).unwrap_or_default();
        let (p_type, offset, paddr, size) = (ph.p_type, ph.offset, ph.paddr, ph.memsz);
        if p_type == elf::PT_LOAD && paddr != u64::MAX && addr >= paddr && addr + len as u64 <= paddr.saturating_add(size) {
            let mut buf = vec![0u8; len];
            kcore.read_exact_at(&mut buf, offset + (addr - paddr)).map_err(|e| Error::io("reading /proc/kcore", e))?;
            return Ok(buf);
        }
    }
    Err(Error::Msg(format!("physical address {addr:#x} is not in /proc/kcore")))
}

/// Copies of A's notes that have content: VMCOREINFO first, then any CPU
/// notes that are filled (they are empty unless the kernel crashed).
pub fn read_notes() -> Result<Vec<Vec<u8>>, Error> {
    let mut out = Vec::new();
    let info = vmcoreinfo()?;
    for (i, n) in std::iter::once(info).chain(cpu_notes()?).enumerate() {
        let mut bytes = read_phys(n.addr, n.size as usize)?;
        bytes.truncate(notes_len(&bytes));
        if i == 0 && bytes.is_empty() {
            return Err(Error::Msg("the VMCOREINFO note is empty".into()));
        }
        if !bytes.is_empty() {
            out.push(bytes);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_lengths() {
        let mut n = Vec::new();
        n.extend_from_slice(&11u32.to_le_bytes());
        n.extend_from_slice(&5u32.to_le_bytes());
        n.extend_from_slice(&0u32.to_le_bytes());
        n.extend_from_slice(b"VMCOREINFO\0\0");
        n.extend_from_slice(b"OSREL\0\0\0");
        let one = n.len();
        n.extend_from_slice(&[0u8; 40]);
        assert_eq!(notes_len(&n), one);
        assert_eq!(notes_len(&[0u8; 100]), 0);
        assert_eq!(notes_len(&n[..one - 1]), 0, "truncated note");
        let mut huge = n.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(notes_len(&huge), 0);
    }

    #[test]
    fn vmcoreinfo_text() {
        assert_eq!(parse_vmcoreinfo("1b4c000 1024\n"), Some(Note { addr: 0x1b4c000, size: 0x1024 }));
        assert_eq!(parse_vmcoreinfo("0x0000000100c66000 1024\n"), Some(Note { addr: 0x100c66000, size: 0x1024 }));
        assert_eq!(parse_vmcoreinfo(""), None);
        assert_eq!(parse_vmcoreinfo("1b4c000"), None);
        assert_eq!(parse_vmcoreinfo("1b4c000 0"), None);
        assert_eq!(parse_vmcoreinfo("zz 10"), None);
        assert_eq!(parse_vmcoreinfo("10 10 10"), None);
    }
}
