//! Runs in A, B and C: A's checks of a target. What is mounted where
//! (`/proc/self/mountinfo`, which C reads too, to list its own devices)
//! and how big a device or file is.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use super::discover::parse_devnum;
use super::Error;

// ---------------------------------------------------------------------------
// A's checks.

/// One line of `/proc/self/mountinfo`, the parts kjump needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Major device number of the mounted filesystem.
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
    /// Where it is mounted, with `\040`-style escapes decoded.
    pub mount_point: String,
    /// The mount's options say `rw` and the superblock's do not say `ro`.
    pub read_write: bool,
    /// The filesystem type (`ext4`, `btrfs`).
    pub fstype: String,
    /// The mount source (`/dev/vda1`; `/dev/vdb:/dev/vdc` for bcachefs),
    /// with escapes decoded.
    pub source: String,
}

/// Decodes the kernel's `\ooo` octal escapes (space, tab, newline, backslash).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(&[b'\\', d0, d1, d2]) = b.get(i..i.saturating_add(4)) {
            if [d0, d1, d2].iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = u32::from(d0 - b'0') * 64 + u32::from(d1 - b'0') * 8 + u32::from(d2 - b'0');
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        if let Some(&c) = b.get(i) {
            out.push(c);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes the `\\ooo` escapes the kernel uses in `/proc/self/mountinfo`
/// and `/proc/swaps` fields.
pub fn unescape_mount_field(field: &str) -> String {
    unescape(field)
}

fn parse_mount_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split_ascii_whitespace();
    let _mount_id = fields.next()?;
    let _parent_id = fields.next()?;
    let (major, minor) = parse_devnum(fields.next()?)?;
    let _root = fields.next()?;
    let mount_point = unescape(fields.next()?);
    let options = fields.next()?;
    // Optional fields up to "-", then fstype, source and superblock options.
    let mut rest = fields.skip_while(|f| *f != "-").skip(1);
    let fstype = unescape(rest.next().unwrap_or(""));
    let source = unescape(rest.next().unwrap_or(""));
    let super_options = rest.next().unwrap_or("");
    let read_write = options.split(',').any(|o| o == "rw") && !super_options.split(',').any(|o| o == "ro");
    Some(MountEntry { major, minor, mount_point, read_write, fstype, source })
}

/// Parses `/proc/self/mountinfo`; lines that are not understood are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_mount_line).collect()
}

/// The size in bytes of a block device (by seeking to its end) or of a
/// regular file.
pub fn device_size(path: &Path) -> Result<u64, crate::Error> {
    let mut file = File::open(path).map_err(|e| crate::Error::io(format!("opening {}", path.display()), e))?;
    let meta = file.metadata().map_err(|e| crate::Error::io(format!("examining {}", path.display()), e))?;
    if meta.is_file() {
        Ok(meta.len())
    } else if meta.file_type().is_block_device() {
        file.seek(SeekFrom::End(0)).map_err(|e| crate::Error::io(format!("finding the size of {}", path.display()), e))
    } else {
        Err(Error::NotSizable { path: path.to_path_buf() }.into_crate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::discover::tests::Tree;

    // ---- mountinfo and sizes -----------------------------------------------

    const MOUNTINFO: &str = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 253:2 / /mnt/my\\040disk\\011x rw,relatime shared:30 master:2 - ext4 /dev/vda2 rw
41 22 253:3 / /ro ro,relatime - ext4 /dev/vda3 ro
42 22 253:4 / /super-ro rw,relatime - ext4 /dev/vda4 ro,data=ordered
43 22 8:16 /sub /bind rw - ext4 /dev/sdb rw
44 22 8:17 / /back\\134slash\\777 rw
garbage line
45 22 x:y / /bad rw - ext4 /dev/x rw

46 22 8:18 / /short
47 22 0:50 / /btrfs rw - btrfs /dev/my\\040disk rw,space_cache=v2,subvolid=5
";

    #[test]
    fn parses_mountinfo() {
        let m = parse_mountinfo(MOUNTINFO);
        let e = |major, minor, mp: &str, rw, fs: &str, src: &str| MountEntry {
            major,
            minor,
            mount_point: mp.into(),
            read_write: rw,
            fstype: fs.into(),
            source: src.into(),
        };
        assert_eq!(
            m,
            vec![
                e(253, 1, "/", true, "ext4", "/dev/vda1"),
                e(0, 21, "/proc", true, "proc", "proc"),
                e(253, 2, "/mnt/my disk\tx", true, "ext4", "/dev/vda2"),
                e(253, 3, "/ro", false, "ext4", "/dev/vda3"),
                e(253, 4, "/super-ro", false, "ext4", "/dev/vda4"),
                e(8, 16, "/bind", true, "ext4", "/dev/sdb"),
                e(8, 17, "/back\\slash\\777", true, "", ""),
                e(0, 50, "/btrfs", true, "btrfs", "/dev/my disk"),
            ]
        );
        assert!(parse_mountinfo("").is_empty());
        // Every prefix parses without panicking.
        for i in 0..=MOUNTINFO.len() {
            if MOUNTINFO.is_char_boundary(i) {
                let _ = parse_mountinfo(&MOUNTINFO[..i]);
            }
        }
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("\\101\\102"), "AB");
        assert_eq!(unescape("\\303\\251"), "\u{e9}");
    }

    #[test]
    fn reads_this_systems_mountinfo() {
        // Whatever /proc holds here parses, and / is in it.
        if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") {
            assert!(parse_mountinfo(&text).iter().any(|m| m.mount_point == "/"));
        }
    }

    #[test]
    fn sizes_of_files_and_refusals() {
        let t = Tree::new();
        let f = t.root.join("image");
        std::fs::write(&f, vec![0u8; 12345]).unwrap();
        assert_eq!(device_size(&f).unwrap(), 12345);
        let err = device_size(&t.root).unwrap_err().to_string();
        assert!(err.contains("neither a block device nor a regular file"), "{err}");
        assert!(device_size(&t.root.join("missing")).is_err());
        // /dev/null is a character device.
        assert!(device_size(Path::new("/dev/null")).is_err());
    }
}
