//! Binary structures kjump reads, each parser on every input: the ELF
//! header of `/proc/vmcore` (`vmcore::parse`), disk signatures (ext4
//! superblock, MBR, GPT in `target`), the mailbox page (`mailbox::decode`),
//! newc cpio (`cpio::read`), gzip (`gzip::decompress`, as for
//! `/proc/config.gz`), crash note buffers (`crash_info::notes_len`) and the
//! BIOS-area RSDP scan (`acpi::scan_for_rsdp`).

#![no_main]

use kjump::{acpi, cpio, crash_info, gzip, mailbox, target, vmcore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(layout) = vmcore::parse(data) {
        assert!(layout.segments.len() + layout.notes.len() <= usize::from(u16::MAX));
    }
    let _ = target::ext4_identity(data);
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
});
