//! Binary structures kjump reads, each parser on every input: the ELF
//! header of `/proc/vmcore` (`vmcore::parse`), disk signatures (ext4
//! superblock, MBR, GPT, `target::signature`), the mailbox page (`mailbox::decode`),
//! newc cpio (`cpio::read`), gzip (`gzip::decompress`, as for
//! `/proc/config.gz`), crash note buffers (`crash_info::notes_len`), the
//! BIOS-area RSDP scan (`acpi::scan_for_rsdp`) and A's kexec entry list in
//! each layout (`kimage::region_sources_in`, the input being A's memory
//! from address 0; for the 6.14+ layout, A's page tables at 0x3000).

#![no_main]

use kjump::inspect::kimage::Layout;
use kjump::inspect::pagetable::{PageTables, PhysRead, Unreadable};
use kjump::handoff::mailbox;
use kjump::init::{cpio, gzip};
use kjump::inspect::{kimage, vmcore};
use kjump::load::{acpi, crash_info};
use kjump::range::PhysRange;
use kjump::target;
use libfuzzer_sys::fuzz_target;

/// The input as physical memory from address 0.
struct Memory<'a>(&'a [u8]);

impl PhysRead for Memory<'_> {
    fn read_phys(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let start = usize::try_from(paddr).map_err(|_| Unreadable { paddr })?;
        let src = start.checked_add(buf.len()).and_then(|end| self.0.get(start..end)).ok_or(Unreadable { paddr })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// The region the kexec seed covers: 8 pages at 1 MiB.
const KIMAGE_REGION: PhysRange = PhysRange::new(0x10_0000, 0x10_8000);

fuzz_target!(|data: &[u8]| {
    if let Ok(layout) = vmcore::parse(data) {
        assert!(layout.segments.len() + layout.notes.len() <= usize::from(u16::MAX));
    }
    let _ = target::ext4_identity(data);
    let found = target::signature(data);
    assert_eq!(target::overwrite_refusal(std::path::Path::new("/dev/x"), data, false).is_none(), found.may_overwrite());
    for sector in [512, 4096] {
        for (n, uuid) in target::gpt_partitions(data, sector) {
            assert!(n >= 1);
            assert_eq!(uuid.len(), 36);
        }
    }
    for (n, _) in target::mbr_partitions(data) {
        assert!((1..=4).contains(&n));
    }
    if let Some(r) = mailbox::decode(data) {
        assert!(r.text.len() <= mailbox::MAX_TEXT * 3);
    }
    if let Some(entries) = cpio::read(data) {
        let total: usize = entries.iter().map(|e| e.data.len() + e.name.len()).sum();
        assert!(total <= data.len());
    }
    if let Ok(out) = gzip::decompress(data, 1 << 20) {
        assert!(out.len() <= 1 << 20);
    }
    assert!(crash_info::notes_len(data) <= data.len());
    if let Some(at) = acpi::scan_for_rsdp(data, 0xe0000) {
        assert!(at >= 0xe0000 && at - 0xe0000 + 20 <= data.len() as u64);
    }
    // The control page is page 0.
    let tables = PageTables::new(0x3000, false);
    for (layout, tables) in [(Layout::AfterCode, None), (Layout::DataSection, Some(&tables))] {
        if let Ok(r) = kimage::region_sources_in(&Memory(data), layout, tables, 0xa4, KIMAGE_REGION) {
            assert_eq!(r.sources.len(), 8);
            for (page, holder) in r.moved() {
                assert!((0x100..0x108).contains(&page));
                assert!(!(0x100..0x108).contains(&holder));
            }
        }
    }
});
