//! The hibernation target: where the image goes, how the user names it, and
//! how both kernels find the device behind the name.
//!
//! A target is written as one of
//! - `/dev/NAME` — a block device by its kernel name (`/dev/vdb`, `/dev/nvme0n1p3`);
//! - `UUID=…` — the ext2/3/4 filesystem with that UUID;
//! - `PARTUUID=…` — the GPT partition with that unique GUID, or the MBR
//!   primary partition `SSSSSSSS-NN` (disk signature, partition number);
//! - `LABEL=…` — the ext2/3/4 filesystem with that label;
//!
//! optionally followed by `:/path/in/filesystem`, meaning "the file at that
//! path on the ext4 filesystem on that device" (`LABEL=kjump:/images/a.kjump`).
//! [`Target`]'s `Display` prints the same syntax back, without spaces, so it
//! can travel on B's kernel command line.
//!
//! A (the user's system) checks the target with [`resolve`] and
//! [`device_size`] (and `kjump::target::in_use` for what A uses of its disks). B has no udev, only devtmpfs,
//! sysfs and proc: [`wait_for`] scans `/sys/class/block`, creates missing
//! device nodes itself and reads the on-disk signatures ([`ext4_identity`],
//! [`gpt_partitions`], [`mbr_partitions`]) the way the kernel and blkid do.
//!
//! Everything read from a disk is bounds-checked: garbage or truncated
//! input gives "no match", never a panic.
//!
//! This file holds the target's syntax ([`parse`], [`Target`], [`Error`]);
//! the rest lives beside it, and what other code calls is re-exported here:
//! - [`signature`](mod@signature): what the start of a device holds
//!   (ext2/3/4 superblocks, GPT and MBR partition tables, the formats kjump
//!   must never write over);
//! - [`discover`]: finding the device in sysfs without udev, and the
//!   identity B checks it by;
//! - [`mountinfo`]: A's checks: `/proc/self/mountinfo` and the size of a
//!   device or file;
//! - [`in_use`], [`freshness`], [`discard`]: what A uses of its disks,
//!   whether A's filesystems changed since an image was made, and throwing
//!   an image's data away.

// Finding the device in sysfs, A's checks, and what a device holds.
pub mod discover;
pub mod mountinfo;
pub mod signature;

// What A uses of its disks, whether A's filesystems changed since an
// image was made, and throwing an image's data away.
pub mod discard;
pub mod freshness;
pub mod in_use;

pub(crate) use discover::parse_devnum;
pub use discover::{check_identity, forget_disks, identity_of, read_head, resolve, wait_for, Identity};
pub use mountinfo::{device_size, parse_mountinfo, unescape_mount_field, MountEntry};
pub use signature::{check_overwrite, ext4_identity, format_uuid, gpt_partitions, mbr_partitions, overwrite_refusal, signature, Signature};

use core::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Longest target text accepted; B's whole command line is at most 2048 bytes.
pub const MAX_TARGET_LEN: usize = 1024;

/// Longest ext4 label, in bytes (`EXT4_LABEL_MAX`).
pub const MAX_LABEL_LEN: usize = 16;

/// Longest device name accepted after `/dev/` (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// Why a target was refused or could not be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No text, or nothing before the `:`.
    Empty,
    /// The text does not start with `/dev/`, `UUID=`, `PARTUUID=` or `LABEL=`.
    UnknownForm,
    /// A space, comma, double quote or control character.
    BadCharacter,
    /// More than [`MAX_TARGET_LEN`] bytes.
    TooLong,
    /// `/dev/` followed by nothing, a nested path, `.` or `..`.
    BadDeviceName,
    /// `UUID=` with something other than a 36-character UUID.
    BadUuid,
    /// `PARTUUID=` with neither a GPT nor an MBR partition UUID.
    BadPartUuid,
    /// `LABEL=` empty or longer than [`MAX_LABEL_LEN`] bytes.
    BadLabel,
    /// The file after `:` is not absolute or has `.`, `..` or empty components.
    BadFilePath,
    /// More than one device carries the name.
    Ambiguous {
        /// The name, as written.
        target: String,
        /// One device that matched.
        first: PathBuf,
        /// Another device that matched.
        second: PathBuf,
    },
    /// The device did not show up in time.
    Timeout {
        /// The name, as written.
        target: String,
        /// How long was waited.
        waited: Duration,
    },
    /// A path that must be a block device (see `kjump::target::in_use::conflict`) is not.
    NotBlockDevice {
        /// The path.
        path: PathBuf,
    },
    /// The path given to [`device_size`] is neither a block device nor a regular file.
    NotSizable {
        /// The path.
        path: PathBuf,
    },
}

/// Formats a duration as `10 s` or `2.5 s`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty => f.write_str("the target is empty: name a device as /dev/NAME, UUID=..., PARTUUID=... or LABEL=..."),
            Error::UnknownForm => f.write_str("the target must start with /dev/, UUID=, PARTUUID= or LABEL="),
            Error::BadCharacter => f.write_str("the target must not contain spaces, commas, double quotes or control characters"),
            Error::TooLong => write!(f, "the target is longer than {MAX_TARGET_LEN} bytes: use a shorter file path"),
            Error::BadDeviceName => f.write_str(
                "/dev/NAME must name a block device directly under /dev like /dev/vdb \
                 (for /dev/disk/by-* use UUID=, PARTUUID= or LABEL=)",
            ),
            Error::BadUuid => f.write_str("UUID= must be a filesystem UUID like 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 (see blkid)"),
            Error::BadPartUuid => f.write_str(
                "PARTUUID= must be a GPT partition UUID like 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 \
                 or an MBR one like 1234abcd-01 (see blkid)",
            ),
            Error::BadLabel => write!(f, "LABEL= must be 1 to {MAX_LABEL_LEN} bytes, as ext4 labels are"),
            Error::BadFilePath => f.write_str("the file after ':' must be an absolute path like /images/a.kjump, without '.', '..' or '//'"),
            Error::Ambiguous { target, first, second } => {
                write!(f, "target {target} matches both {} and {}: name the device as /dev/NAME or PARTUUID= instead", first.display(), second.display())
            }
            Error::Timeout { target, waited } => {
                write!(f, "target {target} did not appear within {}: check that the disk is attached and the name is right", seconds(*waited))
            }
            Error::NotBlockDevice { path } => {
                write!(f, "{} is not a block device: name the disk or partition itself", path.display())
            }
            Error::NotSizable { path } => {
                write!(f, "{} is neither a block device nor a regular file: name a disk, a partition or an image file", path.display())
            }
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The same error as kjump's common error type.
    pub fn into_crate(self) -> crate::Error {
        crate::Error::Msg(self.to_string())
    }
}

/// How the device holding the image is named.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// A device node by its kernel name, the whole path: `/dev/vdb`.
    Path(String),
    /// An ext2/3/4 filesystem UUID, lowercase with dashes.
    Uuid(String),
    /// A partition UUID (GPT GUID, or MBR `SSSSSSSS-NN`), lowercase.
    PartUuid(String),
    /// An ext2/3/4 filesystem label, as written.
    Label(String),
}

/// Where the hibernation image goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The block device.
    pub device: Device,
    /// A file on the ext4 filesystem on `device` (absolute path), or `None`
    /// for the raw device.
    pub file: Option<String>,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Path(p) => f.write_str(p),
            Device::Uuid(u) => write!(f, "UUID={u}"),
            Device::PartUuid(u) => write!(f, "PARTUUID={u}"),
            Device::Label(l) => write!(f, "LABEL={l}"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.device)?;
        if let Some(file) = &self.file {
            write!(f, ":{file}")?;
        }
        Ok(())
    }
}

impl core::str::FromStr for Target {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        parse(text)
    }
}

fn forbidden(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c == ',' || c == '"'
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// `SSSSSSSS-NN`, Linux's MBR partition UUID.
fn is_mbr_partuuid(s: &str) -> bool {
    s.len() == 11
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn parse_device(text: &str) -> Result<Device, Error> {
    if text.is_empty() {
        return Err(Error::Empty);
    }
    if let Some(u) = text.strip_prefix("UUID=") {
        if !is_uuid(u) {
            return Err(Error::BadUuid);
        }
        return Ok(Device::Uuid(u.to_ascii_lowercase()));
    }
    if let Some(u) = text.strip_prefix("PARTUUID=") {
        if !is_uuid(u) && !is_mbr_partuuid(u) {
            return Err(Error::BadPartUuid);
        }
        return Ok(Device::PartUuid(u.to_ascii_lowercase()));
    }
    if let Some(l) = text.strip_prefix("LABEL=") {
        if l.is_empty() || l.len() > MAX_LABEL_LEN {
            return Err(Error::BadLabel);
        }
        return Ok(Device::Label(l.to_string()));
    }
    if let Some(name) = text.strip_prefix("/dev/") {
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('/') || name == "." || name == ".." {
            return Err(Error::BadDeviceName);
        }
        return Ok(Device::Path(text.to_string()));
    }
    Err(Error::UnknownForm)
}

fn check_file(path: &str) -> Result<String, Error> {
    let rest = path.strip_prefix('/').ok_or(Error::BadFilePath)?;
    if rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(Error::BadFilePath);
    }
    Ok(path.to_string())
}

/// Parses a target: `/dev/NAME`, `UUID=…`, `PARTUUID=…` or `LABEL=…`, each
/// optionally followed by `:/path/of/file`. UUIDs are normalised to lowercase.
pub fn parse(text: &str) -> Result<Target, Error> {
    if text.is_empty() {
        return Err(Error::Empty);
    }
    if text.len() > MAX_TARGET_LEN {
        return Err(Error::TooLong);
    }
    if text.chars().any(forbidden) {
        return Err(Error::BadCharacter);
    }
    let (device, file) = match text.split_once(':') {
        Some((d, f)) => (d, Some(f)),
        None => (text, None),
    };
    let device = parse_device(device)?;
    let file = file.map(check_file).transpose()?;
    Ok(Target { device, file })
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- parsing -----------------------------------------------------------

    #[test]
    fn parses_every_form() {
        let t = parse("/dev/vdb").unwrap();
        assert_eq!(t, Target { device: Device::Path("/dev/vdb".into()), file: None });
        let t = parse("/dev/vdc:/kjump.img").unwrap();
        assert_eq!(t.device, Device::Path("/dev/vdc".into()));
        assert_eq!(t.file.as_deref(), Some("/kjump.img"));
        let t = parse("UUID=0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0").unwrap();
        assert_eq!(t.device, Device::Uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into()));
        let t = parse("PARTUUID=1234ABCD-01").unwrap();
        assert_eq!(t.device, Device::PartUuid("1234abcd-01".into()));
        let t = parse("PARTUUID=C12A7328-F81F-11D2-BA4B-00A0C93EC93B:/a/b").unwrap();
        assert_eq!(t.device, Device::PartUuid("c12a7328-f81f-11d2-ba4b-00a0c93ec93b".into()));
        assert_eq!(t.file.as_deref(), Some("/a/b"));
        let t = parse("LABEL=kjump:/images/a.kjump").unwrap();
        assert_eq!(t.device, Device::Label("kjump".into()));
        assert_eq!(t.file.as_deref(), Some("/images/a.kjump"));
        // Labels keep their case; 16 bytes fit; '=' and ':' in the file are fine.
        assert_eq!(parse("LABEL=Kjump").unwrap().device, Device::Label("Kjump".into()));
        assert_eq!(parse("LABEL=0123456789abcdef").unwrap().device, Device::Label("0123456789abcdef".into()));
        assert_eq!(parse("LABEL=a=b").unwrap().device, Device::Label("a=b".into()));
        assert_eq!(parse("/dev/vdb:/x:y").unwrap().file.as_deref(), Some("/x:y"));
        assert_eq!(parse("/dev/nvme0n1p2").unwrap().device, Device::Path("/dev/nvme0n1p2".into()));
        assert_eq!("LABEL=x".parse::<Target>().unwrap().device, Device::Label("x".into()));
    }

    #[test]
    fn refuses_bad_targets() {
        let long_label = "LABEL=0123456789abcdefg";
        let long_path = format!("/dev/vdb:/{}", "a".repeat(MAX_TARGET_LEN));
        let bad: [(&str, Error); 34] = [
            ("", Error::Empty),
            (":/file", Error::Empty),
            ("vdb", Error::UnknownForm),
            ("dev/vdb", Error::UnknownForm),
            ("uuid=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", Error::UnknownForm),
            ("/sys/block/vdb", Error::UnknownForm),
            ("/dev/", Error::BadDeviceName),
            ("/dev/disk/by-label/x", Error::BadDeviceName),
            ("/dev/..", Error::BadDeviceName),
            ("/dev/.", Error::BadDeviceName),
            ("UUID=", Error::BadUuid),
            ("UUID=0f1e2d3c4b5a69788796a5b4c3d2e1f0", Error::BadUuid),
            ("UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg", Error::BadUuid),
            ("UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f00", Error::BadUuid),
            ("UUID=1234abcd-01", Error::BadUuid),
            ("PARTUUID=", Error::BadPartUuid),
            ("PARTUUID=1234abcd-1", Error::BadPartUuid),
            ("PARTUUID=1234abcd-01/PARTNROFF=1", Error::BadPartUuid),
            ("PARTUUID=xyz", Error::BadPartUuid),
            ("LABEL=", Error::BadLabel),
            (long_label, Error::BadLabel),
            ("LABEL=a b", Error::BadCharacter),
            ("LABEL=a,b", Error::BadCharacter),
            ("LABEL=\"a\"", Error::BadCharacter),
            ("LABEL=a\tb", Error::BadCharacter),
            ("/dev/vdb\n", Error::BadCharacter),
            ("/dev/vdb:/a\u{0}b", Error::BadCharacter),
            ("/dev/vdb:", Error::BadFilePath),
            ("/dev/vdb:relative", Error::BadFilePath),
            ("/dev/vdb:/", Error::BadFilePath),
            ("/dev/vdb:/a/../b", Error::BadFilePath),
            ("/dev/vdb:/a//b", Error::BadFilePath),
            ("/dev/vdb:/a/", Error::BadFilePath),
            ("/dev/vdb:/./a", Error::BadFilePath),
        ];
        for (text, want) in bad {
            assert_eq!(parse(text), Err(want), "{text:?}");
        }
        assert_eq!(parse(&long_path), Err(Error::TooLong));
        // A 17-byte label of multibyte characters is also too long.
        assert_eq!(parse("LABEL=ääääääääö"), Err(Error::BadLabel));
        assert_eq!(parse("LABEL=äääääääää").map(|t| t.device), Err(Error::BadLabel));
        assert!(parse("LABEL=ääääääää").is_ok());
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "/dev/vdb",
            "/dev/vdc:/kjump.img",
            "UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0:/images/a.kjump",
            "PARTUUID=1234abcd-02",
            "PARTUUID=c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            "LABEL=kjump:/images/a.kjump",
            "LABEL=0123456789abcdef",
        ] {
            let t = parse(text).unwrap();
            assert_eq!(t.to_string(), text);
            assert!(!t.to_string().contains(char::is_whitespace));
        }
        // Uppercase UUIDs come back lowercase, and parse to the same target.
        let t = parse("UUID=0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0:/x").unwrap();
        assert_eq!(t.to_string(), "UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0:/x");
        assert_eq!(parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn parse_never_panics() {
        let alphabet = "UUIDPARTLABEL=:/dev .,\"-0aF\u{e9}\u{0}";
        let chars: Vec<char> = alphabet.chars().collect();
        let mut x: u32 = 7;
        for _ in 0..5000 {
            let mut s = String::new();
            for _ in 0..(x % 48) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                s.push(chars[(x as usize) % chars.len()]);
            }
            if let Ok(t) = parse(&s) {
                // Whatever parses prints back to something that parses the same.
                assert_eq!(parse(&t.to_string()).unwrap(), t, "{s:?}");
            }
        }
    }

    #[test]
    fn errors_read_as_one_line() {
        let errors = [
            Error::Empty,
            Error::UnknownForm,
            Error::BadCharacter,
            Error::TooLong,
            Error::BadDeviceName,
            Error::BadUuid,
            Error::BadPartUuid,
            Error::BadLabel,
            Error::BadFilePath,
            Error::Ambiguous { target: "LABEL=x".into(), first: "/dev/vda".into(), second: "/dev/vdb".into() },
            Error::Timeout { target: "LABEL=x".into(), waited: Duration::from_secs(10) },
            Error::NotBlockDevice { path: "/x".into() },
            Error::NotSizable { path: "/x".into() },
        ];
        for e in errors {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty(), "{s}");
            assert_eq!(e.into_crate().to_string(), s);
        }
        let t = Error::Timeout { target: "LABEL=x".into(), waited: Duration::from_secs(10) };
        assert!(t.to_string().starts_with("target LABEL=x did not appear within 10 s"));
        let t = Error::Timeout { target: "LABEL=x".into(), waited: Duration::from_millis(2500) };
        assert!(t.to_string().contains("within 2.5 s"));
    }
}
