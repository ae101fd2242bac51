//! This machine's identity, so an image is never resumed on another one:
//! the SMBIOS system UUID (`/sys/class/dmi/id/product_uuid`), which
//! firmware sets per machine and QEMU sets with `-uuid`.

/// Where the kernel shows the SMBIOS system UUID (readable by root only).
pub const PRODUCT_UUID: &str = "/sys/class/dmi/id/product_uuid";

/// The machine's system UUID, lowercase, or an empty string when the
/// firmware gives none (or the kernel lacks `CONFIG_DMIID`).
pub fn id() -> String {
    std::fs::read_to_string(PRODUCT_UUID).map(|s| normalize(&s)).unwrap_or_default()
}

/// Trims and lowercases a UUID as read from sysfs; placeholder values
/// that many firmwares leave (all zeros, all `f`) count as unknown.
pub fn normalize(text: &str) -> String {
    let s = text.trim().to_ascii_lowercase();
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    if digits.is_empty() || digits.len() > 32 || digits.chars().all(|c| c == '0') || digits.chars().all(|c| c == 'f') {
        return String::new();
    }
    s
}

/// Why an image made on machine `image_id` must not be resumed on `here`,
/// or `None` when they may be the same machine (equal, or either unknown).
pub fn mismatch(image_id: &str, here: &str) -> Option<String> {
    (!image_id.is_empty() && !here.is_empty() && image_id != here)
        .then(|| format!("the image was made on another machine (system UUID {image_id}; this one is {here})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(normalize(" 6B29FC40-CA47-1067-B31D-00DD010662DA\n"), "6b29fc40-ca47-1067-b31d-00dd010662da");
        assert_eq!(normalize("00000000-0000-0000-0000-000000000000"), "");
        assert_eq!(normalize("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"), "");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize(&"a".repeat(100)), "");
        assert!(mismatch("a", "b").unwrap().contains("another machine"));
        assert_eq!(mismatch("a", "a"), None);
        assert_eq!(mismatch("", "b"), None);
        assert_eq!(mismatch("a", ""), None);
    }
}
