//! VMCOREINFO: the note walk that finds it (`find_in_notes`), the text
//! parser and every lookup (`VmcoreInfo`), and the two readers that trust
//! its values the most: the page-table root (`PageTables::from_vmcoreinfo`)
//! and the free-page walk (`find_free_pages`) over A's memory.
//!
//! Input: the VMCOREINFO text up to the first NUL, then bytes that stand
//! for A's physical memory (repeated over the low 4 GiB). The whole input
//! is also tried as a buffer of ELF notes.

#![no_main]

use kjump::inspect::free_pages::find_free_pages;
use kjump::inspect::pagetable::{PageTables, PhysRead, Unreadable};
use kjump::inspect::vmcoreinfo::{find_in_notes, VmcoreInfo};
use libfuzzer_sys::fuzz_target;

/// A's memory: `bytes` repeated from physical address 0 up to 4 GiB.
struct Mem<'a> {
    bytes: &'a [u8],
}

impl PhysRead for Mem<'_> {
    fn read_phys(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let end = paddr.checked_add(buf.len() as u64).ok_or(Unreadable { paddr })?;
        if self.bytes.is_empty() || end > 1 << 32 {
            return Err(Unreadable { paddr });
        }
        let mut at = (paddr % self.bytes.len() as u64) as usize;
        let mut done = 0;
        while done < buf.len() {
            let n = (self.bytes.len() - at).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&self.bytes[at..at + n]);
            done += n;
            at = 0;
        }
        Ok(())
    }
}

fn lookups(info: &VmcoreInfo, mem: &Mem<'_>) {
    let _ = (info.osrelease(), info.build_id(), info.page_size());
    // Every key the text names, looked up with every accessor.
    for line in info.text().lines().take(64) {
        let Some((key, _)) = line.split_once('=') else { continue };
        let _ = info.get(key);
        let inner = key.find('(').and_then(|i| key.get(i + 1..)).and_then(|k| k.strip_suffix(')')).unwrap_or(key);
        let _ = (info.symbol(inner), info.number(inner), info.offset(inner), info.size(inner), info.length(inner));
    }
    if let Ok(tables) = PageTables::from_vmcoreinfo(info) {
        let _ = tables.translate(mem, 0xffff_ffff_8100_0000);
        let mut buf = [0u8; 64];
        let _ = tables.read_virt(mem, 0xffff_8880_0000_0ff0, &mut buf);
    }
    // 8 MiB of A's RAM, in two ranges.
    if let Ok(free) = find_free_pages(info, mem, &[0x100..0x400, 0x500..0x900]) {
        assert!(free.count() + free.unknown() <= 0x900);
        assert!(free.max_pfn() <= 0x900);
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, memory) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let mem = Mem { bytes: memory };
    lookups(&VmcoreInfo::parse(&String::from_utf8_lossy(text)), &mem);
    if let Some(found) = find_in_notes(data) {
        assert!(found.len() <= data.len() * 3);
        lookups(&VmcoreInfo::parse(&found), &mem);
    }
});
