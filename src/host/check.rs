//! `kjump check`: can this machine hibernate with kjump? Each check is one
//! line; the first failure is the reason `kjump check` exits non-zero.

use std::fmt::Write as _;

use crate::load::bzimage::BzImage;
use crate::load::memmap::MemoryMap;
use crate::units::{human_size, MIB};

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Whether it passed.
    pub ok: bool,
    /// What was checked and what was found.
    pub text: String,
}

/// Where to look and how big a region to ask for.
#[derive(Clone, Debug)]
pub struct Config {
    /// Hibernation kernel (bzImage).
    pub kernel: String,
    /// Hibernation initramfs.
    pub initrd: String,
    /// Region size in bytes.
    pub region_size: u64,
}

fn item(ok: bool, text: impl Into<String>) -> Item {
    Item { ok, text: text.into() }
}

fn read_trim(path: &str) -> Option<String> {
    crate::load::crash_info::read_trimmed(path).ok()
}

/// Parses `MAJOR.MINOR[.PATCH]` at the start of a kernel release string
/// (`uname -r`, VMCOREINFO's `OSRELEASE`): "6.12.118+deb12-amd64",
/// "7.3.4", "6.6.66-rc1", "6.13". Whatever follows the numbers is left
/// alone; a missing patch level is 0. `None` when the string does not
/// start that way, or a number does not fit a `u32`.
pub fn parse_release(release: &str) -> Option<(u32, u32, u32)> {
    fn number(s: &str) -> Option<(u32, &str)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 10 {
            return None;
        }
        Some((s[..digits].parse().ok()?, &s[digits..]))
    }
    let (major, rest) = number(release)?;
    let (minor, rest) = number(rest.strip_prefix('.')?)?;
    let (patch, rest) = match rest.strip_prefix('.') {
        Some(r) => number(r)?,
        None => (0, rest),
    };
    let _ = rest; // a fourth number, a local version, anything
    Some((major, minor, patch))
}

/// The fix a kernel needs to come back from B: the GDT restore on return
/// from a preserve-context kexec (upstream 07fa619f2a40).
pub const GDT_FIX: &str = "the GDT restore on return from a preserve-context kexec (upstream 07fa619f2a40; in 6.6.66+, 6.12.5+ and 6.13+)";

/// Whether a kernel release has [`GDT_FIX`]: 6.13 and later, and the
/// stable series it was backported to, 6.12.5+ and 6.6.66+. Never in
/// 6.1.y, 5.15.y or 6.7 to 6.11.
pub fn has_gdt_fix(release: (u32, u32, u32)) -> bool {
    match release {
        (6, 12, patch) => patch >= 5,
        (6, 6, patch) => patch >= 66,
        r => r >= (6, 13, 0),
    }
}

/// The `kjump check` line for the running kernel's release.
pub fn gdt_fix_item(release: &str) -> Item {
    match parse_release(release) {
        Some(r) if has_gdt_fix(r) => item(true, format!("kernel {release} restores its GDT when jumped back to (6.6.66+, 6.12.5+, 6.13+)")),
        Some(_) => item(false, format!("kernel {release} lacks {GDT_FIX}: it could not come back from B; boot a newer kernel")),
        None => item(false, format!("cannot tell from release {release:?} whether the kernel has {GDT_FIX}")),
    }
}

/// Looks up `CONFIG_KEXEC_JUMP` in a kernel config text: `Some(true)` when
/// set, `Some(false)` when not set, `None` when the text says nothing.
pub fn config_has_kexec_jump(config: &str) -> Option<bool> {
    for line in config.lines() {
        if line == "CONFIG_KEXEC_JUMP=y" {
            return Some(true);
        }
        if line == "# CONFIG_KEXEC_JUMP is not set" {
            return Some(false);
        }
    }
    config.contains("CONFIG_KEXEC=").then_some(false)
}

fn running_config(release: &str) -> Option<String> {
    if let Ok(z) = std::fs::read("/proc/config.gz") {
        if let Ok(text) = crate::init::gzip::decompress(&z, 64 << 20) {
            return String::from_utf8(text).ok();
        }
    }
    read_trim(&format!("/boot/config-{release}"))
}

/// Whether this kernel counts on free pages being zero: with
/// `init_on_free` it zeroes pages as they are freed and does not zero them
/// again when they are allocated, even for `__GFP_ZERO`, so the restore
/// kernel must write zeros over A's free pages rather than leave them.
/// Page poisoning checks a pattern in free pages; zeros are what kjump
/// always wrote there, so it is treated the same. When the kernel's config
/// cannot be read, the answer is yes (slower, never wrong).
pub fn free_pages_must_be_zero() -> bool {
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    free_pages_must_be_zero_from(&cmdline, running_config(&release).as_deref())
}

fn free_pages_must_be_zero_from(cmdline: &str, config: Option<&str>) -> bool {
    let on = |v: &str| matches!(v, "1" | "on" | "y" | "yes" | "true");
    let mut init_on_free = None;
    let mut poison = false;
    for word in cmdline.split_ascii_whitespace() {
        if let Some(v) = word.strip_prefix("init_on_free=") {
            init_on_free = Some(on(v));
        } else if let Some(v) = word.strip_prefix("page_poison=") {
            poison = on(v);
        }
    }
    if poison {
        return true;
    }
    match (init_on_free, config) {
        (Some(v), _) => v,
        (None, Some(c)) => c.lines().any(|l| l.trim() == "CONFIG_INIT_ON_FREE_DEFAULT_ON=y"),
        (None, None) => true,
    }
}

/// A line of `/proc/meminfo`, in bytes.
pub fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_ascii_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

fn has_cap_sys_boot() -> bool {
    let Some(status) = std::fs::read_to_string("/proc/self/status").ok() else { return false };
    status.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).is_some_and(|caps| caps & (1 << 22) != 0)
}

/// Runs every check.
pub fn run(cfg: &Config) -> Vec<Item> {
    let mut items = Vec::new();
    let root = has_cap_sys_boot();
    items.push(item(root, if root { "privileges: CAP_SYS_BOOT".into() } else { "privileges: no CAP_SYS_BOOT; run kjump as root".to_string() }));

    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    let config = running_config(&release);
    let loaded = read_trim("/sys/kernel/kexec_loaded");
    let jump = match (loaded.as_deref(), root) {
        (None, _) => Some(Err("the kernel has no kexec (CONFIG_KEXEC=y and CONFIG_KEXEC_JUMP=y needed)".to_string())),
        (Some("0"), true) => match crate::sys::kexec::probe_preserve_context() {
            Ok(true) => Some(Ok("kernel accepts KEXEC_PRESERVE_CONTEXT (CONFIG_KEXEC_JUMP)".to_string())),
            Ok(false) => Some(Err(format!("kernel {release} rejects KEXEC_PRESERVE_CONTEXT: it lacks CONFIG_KEXEC_JUMP=y; boot a kernel built with it"))),
            Err(_) => None,
        },
        _ => None,
    };
    let jump = jump.unwrap_or_else(|| match config.as_deref().and_then(config_has_kexec_jump) {
        Some(true) => Ok(format!("kernel {release} has CONFIG_KEXEC_JUMP=y (from its config)")),
        Some(false) => Err(format!("kernel {release} lacks CONFIG_KEXEC_JUMP=y; boot a kernel built with it")),
        None => Err(format!("cannot tell whether kernel {release} has CONFIG_KEXEC_JUMP (no /proc/config.gz, /boot/config-{release}, or root)")),
    });
    items.push(match jump {
        Ok(t) => item(true, t),
        Err(t) => item(false, t),
    });

    items.push(gdt_fix_item(&release));

    match read_trim("/proc/sys/kernel/kexec_load_disabled").as_deref() {
        Some("1") => items.push(item(false, "kexec_load is disabled (/proc/sys/kernel/kexec_load_disabled = 1, until reboot)")),
        _ => items.push(item(true, "kexec_load is enabled")),
    }

    match read_trim("/sys/kernel/security/lockdown") {
        Some(l) if !l.contains("[none]") => items.push(item(false, format!("kernel lockdown is on ({l}): it forbids kexec_load; boot without lockdown"))),
        _ => items.push(item(true, "no kernel lockdown")),
    }

    match crate::load::crash_info::vmcoreinfo() {
        Ok(_) => items.push(item(true, "VMCOREINFO is exported (B can build /proc/vmcore)")),
        Err(e) => items.push(item(false, e.to_string())),
    }

    match MemoryMap::read() {
        Err(e) => items.push(item(false, format!("memory map: {e}"))),
        Ok(map) => match map.choose_region(cfg.region_size) {
            Err(e) => items.push(item(false, e.to_string())),
            Ok(r) => {
                let total = meminfo("MemTotal:").unwrap_or(0);
                let avail = meminfo("MemAvailable:").unwrap_or(0);
                let need = r.len() + 16 * MIB;
                if r.len() > total / 2 {
                    items.push(item(
                        false,
                        format!("the {} region is more than half of RAM ({}); use a smaller --region-size", human_size(r.len()), human_size(total)),
                    ));
                } else if avail < need {
                    items.push(item(false, format!("only {} available; kjump needs {} free to set the region aside", human_size(avail), human_size(need))));
                } else {
                    items.push(item(true, format!("kjump region {r} ({}), {} available", human_size(r.len()), human_size(avail))));
                }
            }
        },
    }

    match std::fs::read(&cfg.kernel) {
        Err(e) => items.push(item(false, format!("hibernation kernel {}: {e} (install it or pass --kernel)", cfg.kernel))),
        Ok(bytes) => match BzImage::parse(&bytes) {
            Err(e) => items.push(item(false, format!("hibernation kernel {}: {e}", cfg.kernel))),
            Ok(bz) => items.push(item(
                true,
                format!("hibernation kernel {} (boot protocol {}.{}, needs {})", cfg.kernel, bz.version >> 8, bz.version & 0xff, human_size(bz.init_size)),
            )),
        },
    }
    match std::fs::metadata(&cfg.initrd) {
        Err(e) => items.push(item(false, format!("hibernation initramfs {}: {e} (make it with 'kjump initramfs' or pass --initrd)", cfg.initrd))),
        Ok(m) => items.push(item(true, format!("hibernation initramfs {} ({})", cfg.initrd, human_size(m.len())))),
    }
    items
}

/// Formats the items as the report `kjump check` prints.
pub fn report(items: &[Item]) -> String {
    let mut out = String::new();
    for i in items {
        let _ = writeln!(out, "  {}  {}", if i.ok { "ok  " } else { "FAIL" }, i.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.12.117-amd64"), Some((6, 12, 117)));
        assert_eq!(parse_release("6.12.118+deb12-amd64"), Some((6, 12, 118)));
        assert_eq!(parse_release("6.1.0-41-amd64"), Some((6, 1, 0)));
        assert_eq!(parse_release("7.3.4"), Some((7, 3, 4)));
        assert_eq!(parse_release("6.6.66-rc1"), Some((6, 6, 66)));
        assert_eq!(parse_release("6.13"), Some((6, 13, 0)));
        assert_eq!(parse_release("6.13-rc7"), Some((6, 13, 0)));
        assert_eq!(parse_release("6.14.0-rc1"), Some((6, 14, 0)));
        assert_eq!(parse_release("6.8.0-51-generic"), Some((6, 8, 0)));
        assert_eq!(parse_release("6.15.2-arch1-1"), Some((6, 15, 2)));
        assert_eq!(parse_release("7.1.3-200.fc44.x86_64"), Some((7, 1, 3)));
        assert_eq!(parse_release("6.12.5.1"), Some((6, 12, 5)));
        assert_eq!(parse_release("4294967295.0.0"), Some((u32::MAX, 0, 0)));
    }

    #[test]
    fn hostile_releases_parse_to_nothing() {
        for r in [
            "",
            "garbage",
            "6",
            "6.",
            "6.x",
            ".6.12",
            "-6.12.5",
            "+6.12.5",
            " 6.12.5",
            "6..12",
            "6.12.",
            "6.12.-rc1",
            "6-12-5",
            "6_12_5",
            "v6.12.5",
            "99999999999999.1",
            "4294967296.0",
            "6.99999999999999999999",
            "6.12.99999999999999999999",
            "٦.١٢.٥",
            "6.12\u{0}",
            "\u{feff}6.12.5",
        ] {
            let p = parse_release(r);
            assert!(p.is_none() || r == "6.12\u{0}", "{r:?} parsed as {p:?}");
        }
        assert_eq!(parse_release("6.12\u{0}"), Some((6, 12, 0)));
        // Never a panic, whatever the bytes.
        for len in 0..6 {
            for seed in 0..2000u32 {
                let s: String = (0..len).map(|i| ['6', '.', '1', '2', '-', '9', '\u{e9}', '0'][((seed >> (i * 3)) & 7) as usize]).collect();
                let _ = parse_release(&s);
                let _ = gdt_fix_item(&s);
            }
        }
    }

    #[test]
    fn the_gdt_fix_gate() {
        for ok in [(6, 6, 66), (6, 6, 120), (6, 12, 5), (6, 12, 118), (6, 13, 0), (6, 14, 3), (6, 18, 0), (7, 0, 0), (7, 3, 4), (8, 0, 0)] {
            assert!(has_gdt_fix(ok), "{ok:?}");
        }
        for old in [
            (6, 6, 65),
            (6, 6, 0),
            (6, 12, 4),
            (6, 12, 0),
            (6, 11, 11),
            (6, 7, 0),
            (6, 8, 12),
            (6, 1, 192),
            (5, 15, 180),
            (5, 10, 999),
            (4, 19, 325),
            (0, 0, 0),
        ] {
            assert!(!has_gdt_fix(old), "{old:?}");
        }
        assert!(gdt_fix_item("6.12.118+deb12-amd64").ok);
        assert!(gdt_fix_item("6.6.66-rc1").ok);
        assert!(gdt_fix_item("7.3.4").ok);
        for bad in ["6.1.0-41-amd64", "5.15.0-130-generic", "6.8.0-51-generic", "6.6.65", "6.12.4"] {
            let i = gdt_fix_item(bad);
            assert!(!i.ok && i.text.contains("07fa619f2a40") && i.text.contains("GDT restore"), "{bad}: {}", i.text);
        }
        let i = gdt_fix_item("weird");
        assert!(!i.ok && i.text.contains("cannot tell") && i.text.contains("07fa619f2a40"));
    }

    #[test]
    fn kernel_configs() {
        assert_eq!(config_has_kexec_jump("CONFIG_KEXEC=y\nCONFIG_KEXEC_JUMP=y\n"), Some(true));
        assert_eq!(config_has_kexec_jump("CONFIG_KEXEC=y\n# CONFIG_KEXEC_JUMP is not set\n"), Some(false));
        assert_eq!(config_has_kexec_jump("CONFIG_KEXEC=y\n"), Some(false));
        assert_eq!(config_has_kexec_jump(""), None);
    }

    #[test]
    fn free_pages_must_be_zero_with_init_on_free_or_unknown_config() {
        let off = "# CONFIG_INIT_ON_FREE_DEFAULT_ON is not set\nCONFIG_KEXEC_JUMP=y\n";
        let on = "CONFIG_INIT_ON_FREE_DEFAULT_ON=y\n";
        assert!(!free_pages_must_be_zero_from("root=/dev/vda ro quiet", Some(off)));
        assert!(free_pages_must_be_zero_from("root=/dev/vda ro quiet", Some(on)));
        assert!(free_pages_must_be_zero_from("root=/dev/vda init_on_free=1", Some(off)));
        assert!(!free_pages_must_be_zero_from("init_on_free=0", Some(on)));
        assert!(free_pages_must_be_zero_from("page_poison=1", Some(off)));
        assert!(free_pages_must_be_zero_from("quiet", None));
        assert!(!free_pages_must_be_zero_from("init_on_free=off", None));
    }
}
