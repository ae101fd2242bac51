//! Sizes and addresses: alignment helpers and parsing of `0x…`, decimal and
//! `K`/`M`/`G`-suffixed numbers, the way the kernel's `memparse` reads them.

/// 4 KiB, the x86_64 page size: kjump's one definition of it.
pub const PAGE_SIZE: u64 = 4096;
/// 1 KiB.
pub const KIB: u64 = 1024;
/// 1 MiB.
pub const MIB: u64 = 1024 * 1024;
/// 1 GiB.
pub const GIB: u64 = 1024 * 1024 * 1024;

/// Rounds `value` up to a multiple of `align` (a power of two); `None` on overflow.
pub fn align_up(value: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// Rounds `value` down to a multiple of `align` (a power of two).
pub fn align_down(value: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    value & !(align - 1)
}

/// Parses an unsigned number: `0x` hexadecimal or decimal.
pub fn parse_u64(text: &str) -> Option<u64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.is_empty() {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    } else {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    }
}

/// Parses a size like the kernel's `memparse`: a number (`0x` hex or decimal)
/// with an optional `K`, `M` or `G` suffix (either case).
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, mult) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], KIB),
        b'm' | b'M' => (&text[..text.len() - 1], MIB),
        b'g' | b'G' => (&text[..text.len() - 1], GIB),
        _ => (text, 1),
    };
    parse_u64(digits)?.checked_mul(mult)
}

/// An RFC 3339 UTC date of `unix` seconds since 1970, when a date can say
/// it (up to the year 9999).
pub fn date(unix: u64) -> Option<String> {
    let t = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(unix))?;
    (unix < 253_402_300_800).then(|| humantime::format_rfc3339_seconds(t).to_string())
}

/// Formats a byte count for people: `512 KiB`, `128 MiB`, `1.5 GiB`.
pub fn human_size(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0x10"), Some(16));
        assert_eq!(parse_u64("42"), Some(42));
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("0x"), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64("0xffffffffffffffffff"), None);
        assert_eq!(parse_u64("18446744073709551616"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("128M"), Some(128 * MIB));
        assert_eq!(parse_size("640k"), Some(640 * KIB));
        assert_eq!(parse_size("0x1000"), Some(4096));
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
        assert_eq!(parse_size("17179869184G"), None);
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(1, 4096), Some(4096));
        assert_eq!(align_up(4096, 4096), Some(4096));
        assert_eq!(align_up(u64::MAX, 4096), None);
        assert_eq!(align_down(8191, 4096), 4096);
    }
}
