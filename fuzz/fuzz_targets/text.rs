//! The other text kjump reads from files it does not control, each parser
//! on every input: `/etc/kjump.conf` (`config::Config::parse`), targets
//! (`target::parse`, `target::Identity::parse`), `/proc/self/mountinfo` (`target::parse_mountinfo`),
//! `/sys/kernel/vmcoreinfo` (`crash_info::parse_vmcoreinfo`), kernel
//! releases and configs (`check`), `/sys/firmware/efi/systab` (`acpi`),
//! the initramfs hooks' records (`initramfs_digest`), and the number and
//! size syntax (`units`).

#![no_main]

use kjump::host::{check, config, initramfs_digest};
use kjump::load::{acpi, crash_info};
use kjump::{target, units};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = config::Config::parse(text) {
        for key in config::KEYS {
            let _ = c.get(key);
        }
    }
    if let Ok(t) = target::parse(text) {
        let _ = format!("{t:?}");
    }
    for m in target::parse_mountinfo(text) {
        let _ = m.mount_point.len() + m.fstype.len() + m.source.len();
    }
    if let Ok(id) = target::Identity::parse(text) {
        assert_eq!(target::Identity::parse(&id.to_string()), Ok(id));
    }
    if let Some(note) = crash_info::parse_vmcoreinfo(text) {
        assert!(note.size > 0);
    }
    if let Some(r) = check::parse_release(text) {
        let _ = check::has_gdt_fix(r);
    }
    let _ = check::config_has_kexec_jump(text);
    let _ = acpi::rsdp_from_efi_systab(text);
    if let Ok(d) = initramfs_digest::Digest::parse(text) {
        assert_eq!(initramfs_digest::Digest::parse(&d.encode()), Ok(d));
    }
    let _ = initramfs_digest::valid_release(text);
    let _ = units::parse_u64(text);
    let _ = units::parse_size(text);
});
