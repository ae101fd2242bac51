//! Where A keeps the note buffers that `/proc/vmcore` in B exposes: the
//! VMCOREINFO note (`/sys/kernel/vmcoreinfo`) and each CPU's `crash_notes`.

use crate::elf_core::Note;
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

fn read_trimmed(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io(format!("reading {path}"), e))
}

/// The VMCOREINFO note of the running kernel.
pub fn vmcoreinfo() -> Result<Note, Error> {
    let text = read_trimmed("/sys/kernel/vmcoreinfo")
        .map_err(|e| Error::Msg(format!("{e} (the kernel needs CONFIG_CRASH_DUMP=y)")))?;
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
        let addr = hex(&addr)
            .map_err(|_| Error::Msg(format!("{dir}/crash_notes: not an address: {addr:?}")))?;
        let size = parse_u64(&size).ok_or_else(|| Error::Msg(format!("{dir}/crash_notes_size: {size:?}")))?;
        if size > 0 {
            notes.push(Note { addr, size });
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

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
