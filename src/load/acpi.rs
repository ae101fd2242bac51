//! Finding the ACPI RSDP of the running machine, to hand to B in
//! `boot_params.acpi_rsdp_addr`.

use crate::sys::devmem::DevMem;

/// Parses `/sys/firmware/efi/systab` (`ACPI20=0x…` preferred over `ACPI=0x…`).
pub fn rsdp_from_efi_systab(text: &str) -> Option<u64> {
    let find = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| crate::units::parse_u64(v.trim()));
    find("ACPI20=").or_else(|| find("ACPI="))
}

/// Finds `RSD PTR ` on a 16-byte boundary in `area` (physical base `base`)
/// whose first 20 bytes sum to zero.
pub fn scan_for_rsdp(area: &[u8], base: u64) -> Option<u64> {
    (0..area.len().saturating_sub(20)).step_by(16).find_map(|off| {
        let cand = &area[off..off + 20];
        let sum = cand.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        (&cand[..8] == b"RSD PTR " && sum == 0).then_some(base + off as u64)
    })
}

/// The RSDP address, or 0 when it cannot be found (B then searches itself).
pub fn find_rsdp() -> u64 {
    if let Ok(text) = std::fs::read_to_string("/sys/firmware/efi/systab") {
        if let Some(a) = rsdp_from_efi_systab(&text) {
            return a;
        }
    }
    let Ok(mem) = DevMem::open() else { return 0 };
    // The BIOS area 0xE0000–0xFFFFF, where legacy firmware puts it.
    mem.map(0xe0000, 0x20000).ok().and_then(|w| scan_for_rsdp(w.bytes(), 0xe0000)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efi_systab() {
        assert_eq!(rsdp_from_efi_systab("ACPI=0x7fb7e000\nACPI20=0x7fb7e014\nSMBIOS=0x1\n"), Some(0x7fb7e014));
        assert_eq!(rsdp_from_efi_systab("ACPI=0x7fb7e000\n"), Some(0x7fb7e000));
        assert_eq!(rsdp_from_efi_systab("SMBIOS=0x1\n"), None);
    }

    #[test]
    fn scans_bios_area() {
        let mut area = vec![0u8; 256];
        area[0x40..0x48].copy_from_slice(b"RSD PTR ");
        assert_eq!(scan_for_rsdp(&area, 0xe0000), None, "bad checksum");
        let sum = area[0x40..0x54].iter().fold(0u8, |a, &b| a.wrapping_add(b));
        area[0x48] = 0u8.wrapping_sub(sum);
        assert_eq!(scan_for_rsdp(&area, 0xe0000), Some(0xe0040));
        assert_eq!(scan_for_rsdp(&area[..10], 0), None);
    }
}
