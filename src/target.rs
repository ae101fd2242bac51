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
//! [`device_size`] (and `kjump::in_use` for what A uses of its disks). B has no udev, only devtmpfs,
//! sysfs and proc: [`wait_for`] scans `/sys/class/block`, creates missing
//! device nodes itself and reads the on-disk signatures ([`ext4_identity`],
//! [`gpt_partitions`], [`mbr_partitions`]) the way the kernel and blkid do.
//!
//! Everything read from a disk is bounds-checked: garbage or truncated
//! input gives "no match", never a panic.

use core::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode, OFlags, CWD};

use crate::crc32::crc32;

/// Longest target text accepted; B's whole command line is at most 2048 bytes.
pub const MAX_TARGET_LEN: usize = 1024;

/// Longest ext4 label, in bytes (`EXT4_LABEL_MAX`).
pub const MAX_LABEL_LEN: usize = 16;

/// Longest device name accepted after `/dev/` (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// How much of each device [`resolve`] reads to find signatures.
/// (68 KiB: btrfs's superblock lies at 64 KiB.)
pub const HEAD_LEN: usize = 68 * 1024;

/// Most GPT entries looked at (the kernel stops at 255 partitions).
pub const MAX_GPT_ENTRIES: u32 = 256;

/// How often [`wait_for`] looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where the kernel lists block devices.
const SYS_CLASS_BLOCK: &str = "/sys/class/block";

/// Where device nodes live.
const DEV: &str = "/dev";

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
    /// A path that must be a block device (see `kjump::in_use::conflict`) is not.
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

// ---------------------------------------------------------------------------
// On-disk signatures.

fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    bytes(b, off).map(u16::from_le_bytes)
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    bytes(b, off).map(u32::from_le_bytes)
}

fn le64(b: &[u8], off: usize) -> Option<u64> {
    bytes(b, off).map(u64::from_le_bytes)
}

fn hex(out: &mut String, bytes: &[u8]) {
    use fmt::Write as _;
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// A UUID stored as 16 bytes in order (ext4's `s_uuid`), as blkid prints it.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    hex(&mut s, &u[0..4]);
    s.push('-');
    hex(&mut s, &u[4..6]);
    s.push('-');
    hex(&mut s, &u[6..8]);
    s.push('-');
    hex(&mut s, &u[8..10]);
    s.push('-');
    hex(&mut s, &u[10..16]);
    s
}

/// An EFI GUID (first three fields little-endian), as the kernel's `%pUl` prints it.
fn format_guid(g: &[u8; 16]) -> String {
    let mut u = *g;
    u[0..4].reverse();
    u[4..6].reverse();
    u[6..8].reverse();
    format_uuid(&u)
}

/// Byte offset of the ext2/3/4 superblock.
const EXT4_SUPERBLOCK: usize = 1024;
/// `s_magic` in the superblock.
const EXT4_MAGIC_OFF: usize = 0x38;
const EXT4_MAGIC: u16 = 0xEF53;
/// `s_feature_incompat`.
const EXT4_INCOMPAT_OFF: usize = 0x60;
/// An external journal: has the magic but is no filesystem.
const EXT4_INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
/// `s_uuid`.
const EXT4_UUID_OFF: usize = 0x68;
/// `s_volume_name`.
const EXT4_LABEL_OFF: usize = 0x78;

/// The UUID (lowercase, with dashes) and label of the ext2/3/4 filesystem
/// whose first bytes are `dev_head`, or `None` when there is none (or the
/// superblock lies beyond `dev_head`). External journal devices don't count.
pub fn ext4_identity(dev_head: &[u8]) -> Option<(String, String)> {
    let sb = dev_head.get(EXT4_SUPERBLOCK..)?;
    if le16(sb, EXT4_MAGIC_OFF)? != EXT4_MAGIC {
        return None;
    }
    if le32(sb, EXT4_INCOMPAT_OFF)? & EXT4_INCOMPAT_JOURNAL_DEV != 0 {
        return None;
    }
    let uuid: [u8; 16] = bytes(sb, EXT4_UUID_OFF)?;
    let name: [u8; MAX_LABEL_LEN] = bytes(sb, EXT4_LABEL_OFF)?;
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let label = String::from_utf8_lossy(name.get(..len)?).into_owned();
    Some((format_uuid(&uuid), label))
}

/// Start of the four MBR partition records.
const MBR_TABLE: usize = 0x1be;
/// Disk signature in the MBR.
const MBR_DISKSIG: usize = 0x1b8;
const MBR_RECORD_LEN: usize = 16;
/// Partition type of a GPT protective MBR entry.
const MBR_TYPE_GPT: u8 = 0xee;
/// DOS, Win98 and Linux extended partition types: no PARTUUID of their own.
const MBR_EXTENDED: [u8; 3] = [0x05, 0x0f, 0x85];

/// The four MBR records of `sector0` if it ends in `55 AA`.
fn mbr_records(sector0: &[u8]) -> Option<[[u8; MBR_RECORD_LEN]; 4]> {
    if bytes::<2>(sector0, 510)? != [0x55, 0xaa] {
        return None;
    }
    let mut records = [[0u8; MBR_RECORD_LEN]; 4];
    for (i, r) in records.iter_mut().enumerate() {
        *r = bytes(sector0, MBR_TABLE + i * MBR_RECORD_LEN)?;
    }
    Some(records)
}

/// Whether `sector0` is a protective (or hybrid) MBR as the kernel's
/// `is_pmbr_valid` wants it: an `0xEE` record starting at LBA 1.
fn protective_mbr(sector0: &[u8]) -> bool {
    mbr_records(sector0).is_some_and(|rs| rs.iter().any(|r| r[4] == MBR_TYPE_GPT && le32(r, 8) == Some(1)))
}

/// The GPT header's signature, `"EFI PART"`.
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
/// Size of the defined part of the header.
const GPT_HEADER_MIN: usize = 92;
/// Smallest GPT entry; the kernel accepts no other size.
const GPT_ENTRY_MIN: u32 = 128;
/// Largest GPT entry looked at.
const GPT_ENTRY_MAX: u32 = 4096;

fn gpt_inner(dev_head: &[u8], sector_size: usize) -> Option<Vec<(u32, String)>> {
    if !sector_size.is_power_of_two() || !(512..=65536).contains(&sector_size) {
        return None;
    }
    if !protective_mbr(dev_head) {
        return None;
    }
    let hdr = dev_head.get(sector_size..sector_size.checked_mul(2)?)?;
    if bytes::<8>(hdr, 0)? != *GPT_SIGNATURE {
        return None;
    }
    let header_size = usize::try_from(le32(hdr, 12)?).ok()?;
    if !(GPT_HEADER_MIN..=sector_size).contains(&header_size) {
        return None;
    }
    let mut copy = hdr.get(..header_size)?.to_vec();
    copy.get_mut(16..20)?.fill(0);
    if crc32(&copy) != le32(hdr, 16)? {
        return None;
    }
    if le64(hdr, 24)? != 1 || le64(hdr, 40)? > le64(hdr, 48)? {
        return None;
    }
    let entry_lba = le64(hdr, 72)?;
    let count = le32(hdr, 80)?;
    let entry_size = le32(hdr, 84)?;
    if !entry_size.is_power_of_two() || !(GPT_ENTRY_MIN..=GPT_ENTRY_MAX).contains(&entry_size) {
        return None;
    }
    let start = usize::try_from(entry_lba.checked_mul(u64::try_from(sector_size).ok()?)?).ok()?;
    let esz = usize::try_from(entry_size).ok()?;
    let total = usize::try_from(u64::from(count).checked_mul(u64::from(entry_size))?).ok()?;
    // Check the array's CRC when all of it was read; otherwise make do with
    // the entries that were (the header's CRC already vouches for the table).
    if let Some(array) = start.checked_add(total).and_then(|end| dev_head.get(start..end)) {
        if crc32(array) != le32(hdr, 88)? {
            return None;
        }
    }
    let mut out = Vec::new();
    for i in 0..count.min(MAX_GPT_ENTRIES) {
        let off = usize::try_from(i).ok()?.checked_mul(esz)?.checked_add(start)?;
        let Some(entry) = off.checked_add(esz).and_then(|end| dev_head.get(off..end)) else {
            break;
        };
        let type_guid: [u8; 16] = bytes(entry, 0)?;
        if type_guid == [0; 16] {
            continue;
        }
        let unique: [u8; 16] = bytes(entry, 16)?;
        out.push((i.checked_add(1)?, format_guid(&unique)));
    }
    Some(out)
}

/// The partitions of a GPT disk whose first bytes are `dev_head` (logical
/// sectors of `sector_size` bytes): `(number, PARTUUID)` with numbers from 1
/// and PARTUUIDs lowercase, as the kernel names them. Empty when there is no
/// valid protective MBR and primary GPT header (signature, header CRC, and
/// the entry array's CRC when all of it lies within `dev_head`). At most
/// [`MAX_GPT_ENTRIES`] entries of 128..=4096 bytes are looked at, and only
/// those within `dev_head`.
pub fn gpt_partitions(dev_head: &[u8], sector_size: usize) -> Vec<(u32, String)> {
    gpt_inner(dev_head, sector_size).unwrap_or_default()
}

/// The primary partitions of an MBR (DOS) disk whose first sector is
/// `sector0`: `(number 1..=4, PARTUUID "SSSSSSSS-NN")`, as the kernel names
/// them. Empty unless the sector ends in `55 AA` with valid boot indicators,
/// and for a GPT protective MBR. Empty and extended partitions are skipped;
/// logical partitions (5 and up) are not found.
pub fn mbr_partitions(sector0: &[u8]) -> Vec<(u32, String)> {
    let Some(records) = mbr_records(sector0) else {
        return Vec::new();
    };
    // The kernel's msdos_partition: a bad boot indicator means no table
    // (maybe a FAT boot sector), and a GPT entry leaves the disk to efi.
    if records.iter().any(|r| (r[0] != 0 && r[0] != 0x80) || r[4] == MBR_TYPE_GPT) {
        return Vec::new();
    }
    let Some(disksig) = le32(sector0, MBR_DISKSIG) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (slot, r) in (1u32..).zip(records.iter()) {
        if le32(r, 12) == Some(0) || MBR_EXTENDED.contains(&r[4]) {
            continue;
        }
        out.push((slot, format!("{disksig:08x}-{slot:02x}")));
    }
    out
}

/// The kernel's name for partition `number` of `disk`: `vdb1`, but
/// `nvme0n1p2` and `mmcblk0p1` when the disk's name ends in a digit.
pub fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

// ---------------------------------------------------------------------------
// What a device holds: the one place that tells kjump's own image, an
// empty start, and the formats kjump must never write over.

/// What [`signature`] found at the start of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// A kjump image (`KJUMPIMG` at byte 0): kjump may write it again.
    Kjump,
    /// Nothing but zero bytes in what was read.
    Empty,
    /// Bytes in none of the formats below (old data, random fill).
    Unknown,
    /// A Linux swap area (`SWAPSPACE2`); kjump refuses it in A only when
    /// it is active swap there.
    Swap,
    /// A swap area holding a swsusp hibernation image.
    SwsuspImage,
    /// LUKS, the version in the header (1 or 2).
    Luks(u16),
    /// An LVM2 physical volume.
    Lvm2,
    /// An md RAID member (superblock 1.1 or 1.2).
    MdRaid,
    /// ext2/3/4 (or an ext4 external journal).
    Ext,
    /// XFS.
    Xfs,
    /// btrfs.
    Btrfs,
    /// bcachefs (or a bcache device).
    Bcachefs,
    /// F2FS.
    F2fs,
    /// NTFS.
    Ntfs,
    /// exFAT.
    Exfat,
    /// FAT12/16/32 (vfat).
    Vfat,
    /// ISO 9660.
    Iso9660,
    /// A GPT partition table.
    Gpt,
    /// An MBR (DOS) partition table with at least one partition.
    Mbr,
}

impl Signature {
    /// Whether B may write an image over what it found: a kjump image, an
    /// empty or unrecognised start, or a swap area that A does not use
    /// (kept from before: A refuses its own active swap, see
    /// `kjump::in_use`).
    pub fn may_overwrite(self) -> bool {
        matches!(self, Signature::Kjump | Signature::Empty | Signature::Unknown | Signature::Swap)
    }

    /// The format's name, as blkid would say it.
    pub fn name(self) -> String {
        match self {
            Signature::Kjump => "a kjump image".into(),
            Signature::Empty => "nothing (zeros)".into(),
            Signature::Unknown => "no known format".into(),
            Signature::Swap => "a swap area".into(),
            Signature::SwsuspImage => "a swap area holding a swsusp hibernation image".into(),
            Signature::Luks(v) => format!("a LUKS{v} encrypted volume"),
            Signature::Lvm2 => "an LVM2 physical volume".into(),
            Signature::MdRaid => "an md RAID member".into(),
            Signature::Ext => "an ext2/3/4 filesystem".into(),
            Signature::Xfs => "an XFS filesystem".into(),
            Signature::Btrfs => "a btrfs filesystem".into(),
            Signature::Bcachefs => "a bcachefs (or bcache) device".into(),
            Signature::F2fs => "an F2FS filesystem".into(),
            Signature::Ntfs => "an NTFS filesystem".into(),
            Signature::Exfat => "an exFAT filesystem".into(),
            Signature::Vfat => "a FAT filesystem".into(),
            Signature::Iso9660 => "an ISO 9660 filesystem".into(),
            Signature::Gpt => "a GPT partition table".into(),
            Signature::Mbr => "an MBR partition table".into(),
        }
    }
}

/// `KJUMPIMG`, the image header's magic (`kjump::image::MAGIC`).
const KJUMP_MAGIC: &[u8; 8] = crate::image::MAGIC;
/// LUKS1/2 primary header magic, at byte 0; the version follows (big-endian).
const LUKS_MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
/// LUKS2 secondary header magic, at one of the offsets after it.
const LUKS2_SECONDARY_MAGIC: &[u8; 6] = b"SKUL\xba\xbe";
/// Where a LUKS2 secondary header can be (its JSON area sizes), within [`HEAD_LEN`].
const LUKS2_SECONDARY_OFFS: [usize; 2] = [0x4000, 0x8000];
/// LVM2: a label in one of the first four sectors: `LABELONE`, then the type at byte 24.
const LVM_LABEL: &[u8; 8] = b"LABELONE";
const LVM_TYPE: &[u8; 8] = b"LVM2 001";
/// md superblock 1.x magic (little-endian), at byte 0 (1.1) or 4096 (1.2).
const MD_MAGIC: u32 = 0xa92b_4efc;
/// XFS superblock magic at byte 0.
const XFS_MAGIC: &[u8; 4] = b"XFSB";
/// btrfs: superblock at 64 KiB, magic at 0x40 in it.
const BTRFS_MAGIC_OFF: usize = 0x1_0000 + 0x40;
const BTRFS_MAGIC: &[u8; 8] = b"_BHRfS_M";
/// bcache/bcachefs: superblock at 4 KiB, magic (a UUID) at 24 in it.
const BCACHE_MAGIC_OFF: usize = 0x1000 + 24;
const BCACHE_MAGIC: [u8; 16] = [0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81];
const BCHFS_MAGIC: [u8; 16] = [0xc6, 0x85, 0x73, 0xf6, 0x66, 0xce, 0x90, 0xa9, 0xd9, 0x6a, 0x60, 0xcf, 0x80, 0x3d, 0xf7, 0xef];
/// F2FS superblock magic (little-endian) at 1 KiB.
const F2FS_MAGIC: u32 = 0xf2f5_2010;
/// The swap header's magic ends the first 4 KiB page.
const SWAP_MAGIC_OFF: usize = 4096 - 10;
const SWAP_MAGIC: &[u8; 10] = b"SWAPSPACE2";
/// swsusp's replacements for it while a hibernation image is in the area.
const SWSUSP_MAGICS: [&[u8]; 4] = [b"S1SUSPEND", b"S2SUSPEND", b"ULSUSPEND", b"LINHIB0001"];
/// NTFS and exFAT: the OEM name at byte 3 of the boot sector.
const NTFS_OEM: &[u8; 8] = b"NTFS    ";
const EXFAT_OEM: &[u8; 8] = b"EXFAT   ";
/// ISO 9660: the first volume descriptor at 32 KiB, `CD001` at byte 1 of it.
const ISO9660_MAGIC_OFF: usize = 0x8001;

fn at(b: &[u8], off: usize, magic: &[u8]) -> bool {
    off.checked_add(magic.len()).and_then(|end| b.get(off..end)) == Some(magic)
}

/// A FAT boot sector: a jump instruction, `55 AA`, and the type string of
/// FAT12/16 (at 0x36) or FAT32 (at 0x52), as mkfs.vfat writes them.
fn is_fat(b: &[u8]) -> bool {
    matches!(b.first(), Some(0xeb | 0xe9)) && at(b, 510, &[0x55, 0xaa]) && (at(b, 0x36, b"FAT") || at(b, 0x52, b"FAT32"))
}

/// An MBR partition table: `55 AA`, valid boot indicators, one record in use.
fn is_mbr(b: &[u8]) -> bool {
    mbr_records(b).is_some_and(|rs| rs.iter().all(|r| r[0] == 0 || r[0] == 0x80) && rs.iter().any(|r| r[4] != 0 && le32(r, 12).is_some_and(|n| n != 0)))
}

/// What the first bytes of a device (`head`, up to [`HEAD_LEN`]) hold, the
/// way blkid would tell it for the formats kjump knows: a kjump image
/// first, then encryption and volume managers, filesystems, swap, and
/// partition tables last (a filesystem may keep `55 AA` from an old table).
/// Short or garbage input gives [`Signature::Unknown`] or
/// [`Signature::Empty`], never a panic.
pub fn signature(head: &[u8]) -> Signature {
    if at(head, 0, KJUMP_MAGIC) {
        return Signature::Kjump;
    }
    if at(head, 0, LUKS_MAGIC) {
        return Signature::Luks(bytes::<2>(head, 6).map_or(0, u16::from_be_bytes));
    }
    if LUKS2_SECONDARY_OFFS.iter().any(|&o| at(head, o, LUKS2_SECONDARY_MAGIC)) {
        return Signature::Luks(2);
    }
    if (0..4).any(|s| at(head, s * 512, LVM_LABEL) && at(head, s * 512 + 24, LVM_TYPE)) {
        return Signature::Lvm2;
    }
    if le32(head, 0) == Some(MD_MAGIC) || le32(head, 4096) == Some(MD_MAGIC) {
        return Signature::MdRaid;
    }
    if at(head, 0, XFS_MAGIC) {
        return Signature::Xfs;
    }
    if at(head, BTRFS_MAGIC_OFF, BTRFS_MAGIC) {
        return Signature::Btrfs;
    }
    if at(head, BCACHE_MAGIC_OFF, &BCACHE_MAGIC) || at(head, BCACHE_MAGIC_OFF, &BCHFS_MAGIC) {
        return Signature::Bcachefs;
    }
    if le16(head, EXT4_SUPERBLOCK + EXT4_MAGIC_OFF) == Some(EXT4_MAGIC) {
        return Signature::Ext;
    }
    if le32(head, 1024) == Some(F2FS_MAGIC) {
        return Signature::F2fs;
    }
    if at(head, SWAP_MAGIC_OFF, SWAP_MAGIC) {
        return Signature::Swap;
    }
    if SWSUSP_MAGICS.iter().any(|m| at(head, SWAP_MAGIC_OFF, m)) {
        return Signature::SwsuspImage;
    }
    if at(head, 3, NTFS_OEM) {
        return Signature::Ntfs;
    }
    if at(head, 3, EXFAT_OEM) {
        return Signature::Exfat;
    }
    if is_fat(head) {
        return Signature::Vfat;
    }
    if at(head, ISO9660_MAGIC_OFF, b"CD001") {
        return Signature::Iso9660;
    }
    if at(head, 512, GPT_SIGNATURE) || at(head, 4096, GPT_SIGNATURE) {
        return Signature::Gpt;
    }
    if is_mbr(head) {
        return Signature::Mbr;
    }
    if head.iter().all(|&b| b == 0) {
        Signature::Empty
    } else {
        Signature::Unknown
    }
}

/// Why kjump must not write what `head` holds, or `None` when it may: a
/// raw target (`file == false`) must hold what [`Signature::may_overwrite`]
/// allows; the device of a file target must hold an ext2/3/4 filesystem.
/// `dev` names the device in the reason.
pub fn overwrite_refusal(dev: &Path, head: &[u8], file: bool) -> Option<String> {
    let found = signature(head);
    if file {
        return (found != Signature::Ext).then(|| {
            format!(
                "{} holds {}, not ext4: a file target must be on an ext2/3/4 filesystem; name the device alone (/dev/NAME) to write it raw",
                dev.display(),
                found.name()
            )
        });
    }
    (!found.may_overwrite()).then(|| {
        format!(
            "refusing to write over {}: it holds {}; kjump writes only over a kjump image, an empty device or an inactive swap area (wipe it yourself, e.g. with wipefs -a, if its contents are no longer wanted, or choose another target)",
            dev.display(),
            found.name()
        )
    })
}

/// Reads the start of `dev` and refuses (an error worded for the user)
/// what [`overwrite_refusal`] refuses.
pub fn check_overwrite(dev: &Path, file: bool) -> Result<(), crate::Error> {
    let head = read_head(dev)?;
    match overwrite_refusal(dev, &head, file) {
        Some(why) => Err(crate::Error::Msg(why)),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Finding the device in sysfs (B has no udev).

/// Creates a block device node `(path, major, minor)`.
type MakeNode<'a> = &'a dyn Fn(&Path, u32, u32) -> rustix::io::Result<()>;

/// Where to look: the real roots, or a fake tree in tests.
struct Roots<'a> {
    /// `/sys/class/block`.
    sys_block: &'a Path,
    /// `/dev`.
    dev: &'a Path,
    /// mknod.
    make_node: MakeNode<'a>,
}

fn real_mknod(path: &Path, major: u32, minor: u32) -> rustix::io::Result<()> {
    rustix::fs::mknodat(CWD, path, FileType::BlockDevice, Mode::from_raw_mode(0o600), rustix::fs::makedev(major, minor))
}

fn real_roots() -> Roots<'static> {
    Roots { sys_block: Path::new(SYS_CLASS_BLOCK), dev: Path::new(DEV), make_node: &real_mknod }
}

/// A sysfs attribute, trimmed; `None` if it cannot be read.
fn attr(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// `MAJ:MIN`.
pub(crate) fn parse_devnum(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

impl Roots<'_> {
    /// Names in `/sys/class/block`, sorted.
    fn entries(&self) -> Result<Vec<String>, crate::Error> {
        let dir = std::fs::read_dir(self.sys_block).map_err(|e| crate::Error::io(format!("listing {} (is sysfs mounted?)", self.sys_block.display()), e))?;
        let mut names: Vec<String> = dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        names.sort();
        Ok(names)
    }

    /// The partition number of `name`, `None` for a whole disk.
    fn partition_number(&self, name: &str) -> Option<u32> {
        attr(&self.sys_block.join(name).join("partition"))?.parse().ok()
    }

    /// The partitions of whole disk `disk`, as `(number, name)`, sorted.
    fn partitions_of(&self, disk: &str) -> Vec<(u32, String)> {
        let Ok(dir) = std::fs::read_dir(self.sys_block.join(disk)) else {
            return Vec::new();
        };
        let mut parts: Vec<(u32, String)> = dir
            .filter_map(|e| {
                let e = e.ok()?;
                let number = attr(&e.path().join("partition"))?.parse().ok()?;
                Some((number, e.file_name().into_string().ok()?))
            })
            .collect();
        parts.sort();
        parts
    }

    /// The name of partition `number` of `disk`, if the kernel has made it.
    fn partition(&self, disk: &str, number: u32) -> Option<String> {
        if let Some((_, name)) = self.partitions_of(disk).into_iter().find(|(n, _)| *n == number) {
            return Some(name);
        }
        let name = partition_name(disk, number);
        (self.partition_number(&name) == Some(number)).then_some(name)
    }

    /// Whether sysfs says the device holds no bytes (an unbound loop device).
    fn is_empty(&self, name: &str) -> bool {
        attr(&self.sys_block.join(name).join("size")).as_deref() == Some("0")
    }

    /// The node of `name` under `/dev` (a `!` in sysfs is a `/` there),
    /// created from sysfs's `dev` when missing; `None` when the device is gone.
    fn node(&self, name: &str) -> Result<Option<PathBuf>, crate::Error> {
        let path = self.dev.join(name.replace('!', "/"));
        if path.symlink_metadata().is_ok() {
            return Ok(Some(path));
        }
        let Some((major, minor)) = attr(&self.sys_block.join(name).join("dev")).as_deref().and_then(parse_devnum) else {
            return Ok(None);
        };
        match (self.make_node)(&path, major, minor) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(Some(path)),
            Err(e) => Err(crate::Error::sys(format!("creating {} for block device {major}:{minor}", path.display()), e)),
        }
    }

    /// The logical sector size of whole disk `disk`, if sysfs tells.
    fn sector_size(&self, disk: &str) -> Option<usize> {
        attr(&self.sys_block.join(disk).join("queue").join("logical_block_size"))?.parse().ok()
    }
}

/// Up to [`HEAD_LEN`] first bytes of a device. `O_NONBLOCK` keeps an empty
/// CD drive from closing its tray.
pub fn read_head(path: &Path) -> Result<Vec<u8>, crate::Error> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK, Mode::empty())
        .map_err(|e| crate::Error::sys(format!("opening {}", path.display()), e))?;
    let mut head = Vec::with_capacity(HEAD_LEN);
    File::from(fd).take(HEAD_LEN as u64).read_to_end(&mut head).map_err(|e| crate::Error::io(format!("reading {}", path.display()), e))?;
    Ok(head)
}

/// The partition table of a whole disk's head, GPT first as in the kernel.
fn partition_table(head: &[u8], sector_size: Option<usize>) -> Vec<(u32, String)> {
    let sizes: &[usize] = match sector_size {
        Some(s) => &[s],
        None => &[512, 4096],
    };
    for &size in sizes {
        let parts = gpt_partitions(head, size);
        if !parts.is_empty() {
            return parts;
        }
    }
    mbr_partitions(head)
}

/// The `PARTUUID=` the kernel puts in a partition's uevent (Linux 6.13 on).
fn uevent_partuuid(roots: &Roots<'_>, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(roots.sys_block.join(name).join("uevent")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("PARTUUID=")).map(|u| u.trim().to_ascii_lowercase())
}

/// The first bytes of device `name`; problems go to `note`.
fn head_of(roots: &Roots<'_>, name: &str, note: &mut dyn FnMut(String)) -> Option<Vec<u8>> {
    let node = match roots.node(name) {
        Ok(node) => node?,
        Err(e) => {
            note(e.to_string());
            return None;
        }
    };
    read_head(&node).map_err(|e| note(e.to_string())).ok()
}

/// The sysfs names of the devices that carry `device`'s name. Problems with
/// single devices are passed to `note` and the device is skipped.
fn candidates(roots: &Roots<'_>, device: &Device, note: &mut dyn FnMut(String)) -> Result<Vec<String>, crate::Error> {
    let mut found: Vec<String> = Vec::new();
    for name in roots.entries()? {
        if roots.is_empty(&name) {
            continue;
        }
        let is_partition = roots.partition_number(&name).is_some();
        match device {
            Device::Uuid(_) | Device::Label(_) => {
                // A partitioned disk's own bytes may hold a stale superblock.
                if !is_partition && !roots.partitions_of(&name).is_empty() {
                    continue;
                }
                let Some((uuid, label)) = head_of(roots, &name, note).as_deref().and_then(ext4_identity) else {
                    continue;
                };
                let hit = match device {
                    Device::Uuid(u) => uuid.eq_ignore_ascii_case(u),
                    _ => matches!(device, Device::Label(l) if *l == label),
                };
                if hit {
                    found.push(name);
                }
            }
            Device::PartUuid(want) => {
                if is_partition {
                    if uevent_partuuid(roots, &name).is_some_and(|u| u.eq_ignore_ascii_case(want)) {
                        found.push(name);
                    }
                    continue;
                }
                let Some(bytes) = head_of(roots, &name, note) else {
                    continue;
                };
                for (number, uuid) in partition_table(&bytes, roots.sector_size(&name)) {
                    if uuid.eq_ignore_ascii_case(want) {
                        if let Some(part) = roots.partition(&name, number) {
                            found.push(part);
                        }
                    }
                }
            }
            Device::Path(_) => {}
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn resolve_in(roots: &Roots<'_>, device: &Device, note: &mut dyn FnMut(String)) -> Result<Option<PathBuf>, crate::Error> {
    if let Device::Path(path) = device {
        let Some(name) = path.strip_prefix("/dev/").filter(|n| !n.is_empty() && !n.contains('/')) else {
            // Not a name this module made; take it as it is.
            return Ok(Path::new(path).symlink_metadata().is_ok().then(|| PathBuf::from(path)));
        };
        return roots.node(name);
    }
    let names = candidates(roots, device, note)?;
    let mut nodes = Vec::new();
    for name in &names {
        match roots.node(name) {
            Ok(Some(node)) => nodes.push(node),
            Ok(None) => {}
            Err(e) => note(e.to_string()),
        }
    }
    match nodes.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        [first, second, ..] => Err(Error::Ambiguous { target: device.to_string(), first: first.clone(), second: second.clone() }.into_crate()),
    }
}

/// Finds the device node for `device` now, without udev: `/dev/NAME`
/// directly, the others by scanning `/sys/class/block` and reading each
/// device's first [`HEAD_LEN`] bytes. Missing nodes are created with mknod.
/// `Ok(None)` when no device carries the name (yet); an error when sysfs
/// cannot be read, the named node cannot be made, or several devices match.
/// For `UUID=`/`LABEL=`, whole disks with partitions are not looked at.
pub fn resolve(device: &Device) -> Result<Option<PathBuf>, crate::Error> {
    resolve_in(&real_roots(), device, &mut |_| {})
}

fn wait_in(roots: &Roots<'_>, device: &Device, timeout: Duration, poll: Duration, progress: &mut dyn FnMut(&str)) -> Result<PathBuf, crate::Error> {
    const MAX_NOTES: usize = 32;
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut announced = false;
    loop {
        let mut note = |m: String| {
            if seen.len() < MAX_NOTES && !seen.contains(&m) {
                progress(&m);
                seen.push(m);
            }
        };
        let found = resolve_in(roots, device, &mut note)?;
        let waited = start.elapsed();
        if let Some(path) = found {
            // A disk's node appears (devtmpfs) a moment before the disk
            // can be opened: a USB disk's open failed with ENXIO between
            // the two, and C booted normally instead of resuming. Such a
            // node is waited for like a missing one (then returned, for
            // the caller's open to say why).
            let opening = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK, Mode::empty());
            if !matches!(opening, Err(rustix::io::Errno::NXIO)) || waited >= timeout {
                return Ok(path);
            }
            note(format!("{} is there but cannot be opened yet", path.display()));
        }
        if waited >= timeout {
            return Err(Error::Timeout { target: device.to_string(), waited: timeout }.into_crate());
        }
        if !announced {
            progress(&format!("waiting up to {} for {device}", seconds(timeout)));
            announced = true;
        }
        std::thread::sleep(poll.min(timeout.saturating_sub(waited)));
    }
}

/// `BLKFLSBUF`, `_IO(0x12, 97)`: drop a block device's cached data.
const BLKFLSBUF: rustix::ioctl::Opcode = rustix::ioctl::opcode::none(0x12, 97);
/// `BLKRRPART`, `_IO(0x12, 95)`: read a disk's partition table again.
const BLKRRPART: rustix::ioctl::Opcode = rustix::ioctl::opcode::none(0x12, 95);

/// Makes this kernel forget what it read from its disks: every block
/// device's cached data is dropped and every whole disk's partition table
/// is read again. A resident hibernation kernel (`kjump::resident`) calls
/// it when A enters it again: A may have written its disks and changed
/// their partitions since this kernel booted.
pub fn forget_disks() -> Result<(), crate::Error> {
    let roots = real_roots();
    let names = std::fs::read_dir(roots.sys_block).map_err(|e| crate::Error::io(format!("listing {}", roots.sys_block.display()), e))?;
    let mut disks = Vec::new();
    for entry in names {
        let name = entry.map_err(|e| crate::Error::io(format!("listing {}", roots.sys_block.display()), e))?.file_name().to_string_lossy().into_owned();
        let Some(node) = roots.node(&name)? else { continue };
        // A device this kernel cannot open (an empty drive) it cannot read
        // or write later either.
        let Ok(fd) = rustix::fs::open(&node, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK, Mode::empty()) else { continue };
        // SAFETY: BLKFLSBUF takes no argument.
        unsafe { rustix::ioctl::ioctl(&fd, rustix::ioctl::NoArg::<BLKFLSBUF>::new()) }
            .map_err(|e| crate::Error::sys(format!("dropping the cached data of {}", node.display()), e))?;
        if !roots.sys_block.join(&name).join("partition").exists() {
            disks.push((node, fd));
        }
    }
    for (node, fd) in disks {
        // SAFETY: BLKRRPART takes no argument.
        match unsafe { rustix::ioctl::ioctl(&fd, rustix::ioctl::NoArg::<BLKRRPART>::new()) } {
            // EINVAL: a device without partitions (a loop device, a CD).
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(crate::Error::sys(format!("reading the partition table of {} again", node.display()), e)),
        }
    }
    Ok(())
}

/// Waits until [`resolve`] finds `device`, looking every [`POLL_INTERVAL`],
/// for at most `timeout`. `progress` hears once that the wait began, and
/// each distinct problem met on the way (a device that cannot be read).
pub fn wait_for(device: &Device, timeout: Duration, mut progress: impl FnMut(&str)) -> Result<PathBuf, crate::Error> {
    wait_in(&real_roots(), device, timeout, POLL_INTERVAL, &mut progress)
}

// ---------------------------------------------------------------------------
// The target's identity: what A saw, for B to check it found the same device.

/// Longest disk serial number or WWN kept, in bytes.
pub const MAX_SERIAL_LEN: usize = 64;

/// What A knows of the target's device beyond its name, which B's kernel
/// may give to another disk: its size, its PARTUUID when it is a
/// partition, and its whole disk's WWN or serial number when sysfs shows
/// one. Travels as `kjump.target_id=sectors:N[,partuuid:U][,serial:HEX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Size in 512-byte sectors (sysfs `size`).
    pub sectors: u64,
    /// The partition's PARTUUID, lowercase.
    pub partuuid: Option<String>,
    /// The whole disk's `wwid` or `serial` attribute, trimmed.
    pub serial: Option<Vec<u8>>,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sectors:{}", self.sectors)?;
        if let Some(p) = &self.partuuid {
            write!(f, ",partuuid:{p}")?;
        }
        if let Some(s) = &self.serial {
            let mut h = String::with_capacity(2 * s.len());
            hex(&mut h, s);
            write!(f, ",serial:{h}")?;
        }
        Ok(())
    }
}

/// Why a `kjump.target_id=` value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadIdentity(pub &'static str);

impl fmt::Display for BadIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kjump.target_id=: {}", self.0)
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes().chunks_exact(2).map(|p| u8::from_str_radix(core::str::from_utf8(p).ok()?, 16).ok()).collect()
}

impl Identity {
    /// Parses what [`Identity`]'s `Display` prints; every field checked.
    pub fn parse(text: &str) -> Result<Identity, BadIdentity> {
        if text.len() > 64 + 2 * MAX_SERIAL_LEN + 64 {
            return Err(BadIdentity("too long"));
        }
        let (mut sectors, mut partuuid, mut serial) = (None, None, None);
        for field in text.split(',') {
            let (key, value) = field.split_once(':').ok_or(BadIdentity("a field without ':'"))?;
            match key {
                "sectors" if sectors.is_none() => {
                    let n = value.parse::<u64>().ok().filter(|&n| n > 0 && value.bytes().all(|b| b.is_ascii_digit()));
                    sectors = Some(n.ok_or(BadIdentity("sectors must be a positive decimal number"))?);
                }
                "partuuid" if partuuid.is_none() => {
                    if !is_uuid(value) && !is_mbr_partuuid(value) {
                        return Err(BadIdentity("partuuid must be a GPT or MBR partition UUID"));
                    }
                    partuuid = Some(value.to_ascii_lowercase());
                }
                "serial" if serial.is_none() => {
                    let s = unhex(value).filter(|s| !s.is_empty() && s.len() <= MAX_SERIAL_LEN);
                    serial = Some(s.ok_or(BadIdentity("serial must be 1 to 64 bytes in hexadecimal"))?);
                }
                "sectors" | "partuuid" | "serial" => return Err(BadIdentity("a field given twice")),
                _ => return Err(BadIdentity("unknown field (sectors, partuuid and serial are known)")),
            }
        }
        Ok(Identity { sectors: sectors.ok_or(BadIdentity("no sectors"))?, partuuid, serial })
    }

    /// Why `found` (the device B found) is not the device A described,
    /// or `None`: the size must match exactly, and the PARTUUID and serial
    /// number too when A had them.
    pub fn mismatch(&self, found: &Identity) -> Option<String> {
        if found.sectors != self.sectors {
            return Some(format!("it has {} sectors, A's target had {}", found.sectors, self.sectors));
        }
        if let Some(p) = &self.partuuid {
            if found.partuuid.as_ref() != Some(p) {
                return Some(format!("its PARTUUID is {}, A's target had {p}", found.partuuid.as_deref().unwrap_or("none")));
            }
        }
        if let Some(s) = &self.serial {
            if found.serial.as_ref() != Some(s) {
                let show = |s: Option<&Vec<u8>>| s.map_or("none".to_string(), |s| String::from_utf8_lossy(s).into_owned());
                return Some(format!("its disk's serial number is {}, A's target's was {}", show(found.serial.as_ref()), show(Some(s))));
            }
        }
        None
    }
}

impl Roots<'_> {
    /// The whole disk a device of `/sys/class/block` belongs to (itself for a disk).
    fn disk_of(&self, name: &str) -> Option<String> {
        if self.partition_number(name).is_none() {
            return Some(name.to_string());
        }
        // A disk's directory holds its partitions' directories.
        self.entries().ok()?.into_iter().find(|d| self.partition_number(d).is_none() && self.sys_block.join(d).join(name).join("partition").exists())
    }

    /// The PARTUUID of partition `name`: from its uevent, else from its
    /// disk's partition table.
    fn partuuid(&self, name: &str) -> Option<String> {
        let number = self.partition_number(name)?;
        if let Some(u) = uevent_partuuid(self, name) {
            return Some(u);
        }
        let disk = self.disk_of(name)?;
        let head = head_of(self, &disk, &mut |_| {})?;
        partition_table(&head, self.sector_size(&disk)).into_iter().find(|(n, _)| *n == number).map(|(_, u)| u)
    }

    /// The whole disk's WWN (`wwid`) or serial number, the first sysfs shows.
    fn serial(&self, disk: &str) -> Option<Vec<u8>> {
        let dir = self.sys_block.join(disk);
        ["wwid", "device/wwid", "serial", "device/serial"]
            .iter()
            .filter_map(|a| attr(&dir.join(a)))
            .find(|s| !s.is_empty() && s.len() <= MAX_SERIAL_LEN)
            .map(String::into_bytes)
    }

    /// The identity of device `name` of `/sys/class/block`.
    fn identity(&self, name: &str) -> Result<Identity, crate::Error> {
        let size = self.sys_block.join(name).join("size");
        let sectors = attr(&size)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| crate::Error::Msg(format!("reading the size of {name} from {}: missing or not a number", size.display())))?;
        let serial = self.disk_of(name).and_then(|d| self.serial(&d));
        Ok(Identity { sectors, partuuid: self.partuuid(name), serial })
    }
}

/// The name under `/sys/class/block` of block device `dev`.
fn sysfs_name(dev: &Path) -> Result<String, crate::Error> {
    let st = rustix::fs::stat(dev).map_err(|e| crate::Error::sys(format!("examining {}", dev.display()), e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::BlockDevice {
        return Err(Error::NotBlockDevice { path: dev.to_path_buf() }.into_crate());
    }
    let link = format!("/sys/dev/block/{}:{}", rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    let real = std::fs::canonicalize(&link).map_err(|e| crate::Error::io(format!("finding {} in sysfs ({link})", dev.display()), e))?;
    real.file_name().and_then(|n| n.to_str()).map(str::to_string).ok_or_else(|| crate::Error::Msg(format!("{link} names no device")))
}

/// The identity of block device `dev`, from sysfs (and its disk's
/// partition table for the PARTUUID on kernels before 6.13).
pub fn identity(dev: &Path) -> Result<Identity, crate::Error> {
    real_roots().identity(&sysfs_name(dev)?)
}

/// What A tells B of the device `target` names here, so that B can check
/// the device it finds (`kjump.target_id=`); `None` when it cannot be
/// found or described (B then checks nothing).
pub fn identity_of(target: &Target) -> Option<Identity> {
    resolve(&target.device).ok().flatten().and_then(|dev| identity(&dev).ok())
}

/// B's check that `dev`, found by the target's name, is the device A
/// described in `want` (the text of `kjump.target_id=`).
pub fn check_identity(target: &Target, dev: &Path, want: &str) -> Result<(), crate::Error> {
    let want = Identity::parse(want).map_err(|e| crate::Error::Msg(e.to_string()))?;
    let found = identity(dev)?;
    match want.mismatch(&found) {
        None => Ok(()),
        Some(why) => Err(crate::Error::Msg(format!(
            "refusing {}: it is not the device A named {target} ({why}); this kernel may name the disks differently: name the target by PARTUUID= or UUID=",
            dev.display()
        ))),
    }
}

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
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    // ---- synthetic disks ---------------------------------------------------

    const FS_UUID: [u8; 16] = [0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0];
    const FS_UUID_TEXT: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    /// An ext4 filesystem's first 4 KiB.
    fn ext4(uuid: [u8; 16], label: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        let sb = 1024;
        d[sb + 0x38..sb + 0x3a].copy_from_slice(&0xef53u16.to_le_bytes());
        d[sb + 0x68..sb + 0x78].copy_from_slice(&uuid);
        d[sb + 0x78..sb + 0x78 + label.len()].copy_from_slice(label);
        d
    }

    /// The EFI System Partition type GUID, on disk and as text.
    const ESP_GUID: [u8; 16] = [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
    const ESP_TEXT: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

    fn guid(n: u8) -> [u8; 16] {
        let mut g = [0u8; 16];
        for (i, b) in g.iter_mut().enumerate() {
            *b = n.wrapping_mul(16).wrapping_add(i as u8);
        }
        g
    }

    fn guid_text(n: u8) -> String {
        format_guid(&guid(n))
    }

    struct Gpt {
        sector: usize,
        count: u32,
        entry_size: u32,
        entry_lba: u64,
        /// (slot index, type GUID, unique GUID)
        entries: Vec<(usize, [u8; 16], [u8; 16])>,
    }

    impl Gpt {
        fn new(sector: usize) -> Self {
            Gpt { sector, count: 128, entry_size: 128, entry_lba: 2, entries: Vec::new() }
        }

        fn with(mut self, slot: usize, unique: [u8; 16]) -> Self {
            self.entries.push((slot, ESP_GUID, unique));
            self
        }

        fn build(&self) -> Vec<u8> {
            let array_len = self.count as usize * self.entry_size as usize;
            let start = self.entry_lba as usize * self.sector;
            let mut d = vec![0u8; (start + array_len).max(2 * self.sector).next_multiple_of(self.sector)];
            // Protective MBR.
            d[0x1be + 4] = 0xee;
            d[0x1be + 8..0x1be + 12].copy_from_slice(&1u32.to_le_bytes());
            d[0x1be + 12..0x1be + 16].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
            d[510] = 0x55;
            d[511] = 0xaa;
            for &(slot, ty, unique) in &self.entries {
                let e = start + slot * self.entry_size as usize;
                d[e..e + 16].copy_from_slice(&ty);
                d[e + 16..e + 32].copy_from_slice(&unique);
                d[e + 32..e + 40].copy_from_slice(&2048u64.to_le_bytes());
                d[e + 40..e + 48].copy_from_slice(&4095u64.to_le_bytes());
            }
            let array_crc = crc32(&d[start..start + array_len]);
            let h = self.sector;
            d[h..h + 8].copy_from_slice(b"EFI PART");
            d[h + 8..h + 12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
            d[h + 12..h + 16].copy_from_slice(&92u32.to_le_bytes());
            d[h + 24..h + 32].copy_from_slice(&1u64.to_le_bytes());
            d[h + 32..h + 40].copy_from_slice(&1_000_000u64.to_le_bytes());
            d[h + 40..h + 48].copy_from_slice(&34u64.to_le_bytes());
            d[h + 48..h + 56].copy_from_slice(&999_966u64.to_le_bytes());
            d[h + 56..h + 72].copy_from_slice(&guid(0xdd));
            d[h + 72..h + 80].copy_from_slice(&self.entry_lba.to_le_bytes());
            d[h + 80..h + 84].copy_from_slice(&self.count.to_le_bytes());
            d[h + 84..h + 88].copy_from_slice(&self.entry_size.to_le_bytes());
            d[h + 88..h + 92].copy_from_slice(&array_crc.to_le_bytes());
            let crc = crc32(&d[h..h + 92]);
            d[h + 16..h + 20].copy_from_slice(&crc.to_le_bytes());
            d
        }
    }

    /// Re-seals a GPT header after a test changed it.
    fn reseal(d: &mut [u8], sector: usize) {
        d[sector + 16..sector + 20].fill(0);
        let crc = crc32(&d[sector..sector + 92]);
        d[sector + 16..sector + 20].copy_from_slice(&crc.to_le_bytes());
    }

    /// An MBR with `(slot, type, sectors)` records.
    fn mbr(disksig: u32, parts: &[(usize, u8, u32)]) -> Vec<u8> {
        let mut d = vec![0u8; 512];
        d[0x1b8..0x1bc].copy_from_slice(&disksig.to_le_bytes());
        for &(slot, ty, size) in parts {
            let r = 0x1be + (slot - 1) * 16;
            d[r + 4] = ty;
            d[r + 8..r + 12].copy_from_slice(&2048u32.to_le_bytes());
            d[r + 12..r + 16].copy_from_slice(&size.to_le_bytes());
        }
        d[510] = 0x55;
        d[511] = 0xaa;
        d
    }

    // ---- ext4 --------------------------------------------------------------

    #[test]
    fn reads_ext4_uuid_and_label() {
        let d = ext4(FS_UUID, b"kjump");
        assert_eq!(ext4_identity(&d), Some((FS_UUID_TEXT.to_string(), "kjump".to_string())));
        // A full 16-byte label has no NUL.
        let d = ext4(FS_UUID, b"0123456789abcdef");
        assert_eq!(ext4_identity(&d).unwrap().1, "0123456789abcdef");
        // No label.
        assert_eq!(ext4_identity(&ext4(FS_UUID, b"")).unwrap().1, "");
        // Bytes after the NUL do not count.
        let mut d = ext4(FS_UUID, b"ab\0cd");
        d[1024 + 0x78 + 6] = b'z';
        assert_eq!(ext4_identity(&d).unwrap().1, "ab");
        // Just long enough: up to the end of s_volume_name.
        assert!(ext4_identity(&d[..1024 + 0x88]).is_some());
    }

    #[test]
    fn ext4_rejects_garbage_and_truncation() {
        let d = ext4(FS_UUID, b"kjump");
        for len in 0..1024 + 0x88 {
            assert_eq!(ext4_identity(&d[..len]), None, "{len}");
        }
        let mut bad = d.clone();
        bad[1024 + 0x38] = 0x54;
        assert_eq!(ext4_identity(&bad), None);
        let mut journal = d.clone();
        journal[1024 + 0x60] = 0x08;
        assert_eq!(ext4_identity(&journal), None);
        assert_eq!(ext4_identity(&vec![0u8; 65536]), None);
        assert_eq!(ext4_identity(&vec![0xffu8; 65536]), None);
        // Invalid UTF-8 in a label is replaced, not a panic.
        let d = ext4(FS_UUID, &[0xff, 0xfe, b'a']);
        assert_eq!(ext4_identity(&d).unwrap().1, "\u{fffd}\u{fffd}a");
    }

    // ---- signatures --------------------------------------------------------

    /// A device head of [`HEAD_LEN`] zero bytes with `magic` at `off`.
    fn head_with(parts: &[(usize, &[u8])]) -> Vec<u8> {
        let mut d = vec![0u8; HEAD_LEN];
        for &(off, magic) in parts {
            d[off..off + magic.len()].copy_from_slice(magic);
        }
        d
    }

    fn fat(type_off: usize, name: &[u8]) -> Vec<u8> {
        head_with(&[(0, &[0xeb, 0x3c, 0x90]), (3, b"mkfs.fat"), (type_off, name), (510, &[0x55, 0xaa])])
    }

    /// Every format, built at the offsets of its specification (and of
    /// util-linux's libblkid).
    fn formats() -> Vec<(&'static str, Vec<u8>, Signature)> {
        let mut ext = vec![0u8; HEAD_LEN];
        ext[..4096].copy_from_slice(&ext4(FS_UUID, b"x"));
        let mut gpt = vec![0u8; HEAD_LEN];
        let g = Gpt::new(512).with(0, guid(1)).build();
        gpt[..g.len()].copy_from_slice(&g);
        let mut gpt4k = vec![0u8; HEAD_LEN];
        let g = Gpt::new(4096).with(0, guid(1)).build();
        gpt4k[..g.len()].copy_from_slice(&g);
        let mut table = vec![0u8; HEAD_LEN];
        table[..512].copy_from_slice(&mbr(0x1234_5678, &[(2, 0x83, 100)]));
        vec![
            ("kjump", head_with(&[(0, b"KJUMPIMG")]), Signature::Kjump),
            ("LUKS1", head_with(&[(0, b"LUKS\xba\xbe\x00\x01")]), Signature::Luks(1)),
            ("LUKS2", head_with(&[(0, b"LUKS\xba\xbe\x00\x02")]), Signature::Luks(2)),
            ("LUKS2 secondary only", head_with(&[(0x4000, b"SKUL\xba\xbe\x00\x02")]), Signature::Luks(2)),
            ("LUKS2 secondary, 64 KiB areas", head_with(&[(0x8000, b"SKUL\xba\xbe\x00\x02")]), Signature::Luks(2)),
            ("LVM2 in sector 1", head_with(&[(512, b"LABELONE"), (512 + 24, b"LVM2 001")]), Signature::Lvm2),
            ("LVM2 in sector 3", head_with(&[(1536, b"LABELONE"), (1536 + 24, b"LVM2 001")]), Signature::Lvm2),
            ("md 1.1", head_with(&[(0, &0xa92b_4efcu32.to_le_bytes())]), Signature::MdRaid),
            ("md 1.2", head_with(&[(4096, &0xa92b_4efcu32.to_le_bytes())]), Signature::MdRaid),
            ("XFS", head_with(&[(0, b"XFSB\x00\x00\x10\x00")]), Signature::Xfs),
            ("btrfs", head_with(&[(0x10040, b"_BHRfS_M")]), Signature::Btrfs),
            ("bcachefs", head_with(&[(0x1018, &BCHFS_MAGIC)]), Signature::Bcachefs),
            ("bcache", head_with(&[(0x1018, &BCACHE_MAGIC)]), Signature::Bcachefs),
            ("ext4", ext, Signature::Ext),
            ("F2FS", head_with(&[(1024, &0xf2f5_2010u32.to_le_bytes())]), Signature::F2fs),
            ("swap", head_with(&[(4086, b"SWAPSPACE2")]), Signature::Swap),
            ("swsusp", head_with(&[(4086, b"S1SUSPEND\0")]), Signature::SwsuspImage),
            ("NTFS", head_with(&[(0, &[0xeb, 0x52, 0x90]), (3, b"NTFS    "), (510, &[0x55, 0xaa])]), Signature::Ntfs),
            ("exFAT", head_with(&[(0, &[0xeb, 0x76, 0x90]), (3, b"EXFAT   "), (510, &[0x55, 0xaa])]), Signature::Exfat),
            ("FAT16", fat(0x36, b"FAT16   "), Signature::Vfat),
            ("FAT32", fat(0x52, b"FAT32   "), Signature::Vfat),
            ("ISO 9660", head_with(&[(0x8000, b"\x01CD001\x01")]), Signature::Iso9660),
            ("GPT", gpt, Signature::Gpt),
            ("GPT, 4 KiB sectors", gpt4k, Signature::Gpt),
            ("MBR", table, Signature::Mbr),
            ("zeros", vec![0u8; HEAD_LEN], Signature::Empty),
            ("old data", vec![0x5au8; HEAD_LEN], Signature::Unknown),
        ]
    }

    #[test]
    fn recognises_every_signature() {
        for (what, head, want) in formats() {
            assert_eq!(signature(&head), want, "{what}");
        }
        // A kjump image keeps what lies past its first blocks (here a
        // stale btrfs superblock): it is still an image.
        assert_eq!(signature(&head_with(&[(0, b"KJUMPIMG"), (0x10040, b"_BHRfS_M")])), Signature::Kjump);
        // Only the magics count: near misses are not a format.
        for (what, head) in [
            ("LVM label of another type", head_with(&[(512, b"LABELONE"), (512 + 24, b"LVM1 001")])),
            ("LVM label in sector 4", head_with(&[(2048, b"LABELONE"), (2048 + 24, b"LVM2 001")])),
            ("btrfs magic one byte off", head_with(&[(0x10041, b"_BHRfS_M")])),
            ("FAT type without a boot sector", head_with(&[(0x36, b"FAT16   ")])),
            ("MBR with a bad boot indicator", head_with(&[(0x1be, &[0x7f, 0, 0, 0, 0x83, 0, 0, 0, 0, 8, 0, 0, 1, 0, 0, 0]), (510, &[0x55, 0xaa])])),
            ("MBR with empty records", head_with(&[(510, &[0x55, 0xaa])])),
        ] {
            assert_eq!(signature(&head), Signature::Unknown, "{what}");
        }
        assert_eq!(signature(&[]), Signature::Empty);
    }

    #[test]
    fn only_images_empty_unknown_and_swap_may_be_overwritten() {
        let dev = Path::new("/dev/vdz");
        for (what, head, found) in formats() {
            let allowed = matches!(found, Signature::Kjump | Signature::Empty | Signature::Unknown | Signature::Swap);
            assert_eq!(found.may_overwrite(), allowed, "{what}");
            let refusal = overwrite_refusal(dev, &head, false);
            assert_eq!(refusal.is_none(), allowed, "{what}: {refusal:?}");
            if let Some(why) = refusal {
                assert!(why.starts_with("refusing to write over /dev/vdz: it holds ") && why.contains(&found.name()) && !why.contains('\n'), "{why}");
            }
            // A file target needs ext2/3/4 under it, and nothing else.
            let file = overwrite_refusal(dev, &head, true);
            assert_eq!(file.is_none(), found == Signature::Ext, "{what} as a file target's device: {file:?}");
        }
    }

    #[test]
    fn truncated_and_garbage_heads_never_panic() {
        for (what, head, want) in formats() {
            for len in (0..=head.len()).step_by(7).chain([head.len()]) {
                let got = signature(&head[..len]);
                if len == head.len() {
                    assert_eq!(got, want, "{what}");
                }
            }
        }
        // A magic cut by the end of what was read is not there.
        let btrfs = head_with(&[(0x10040, b"_BHRfS_M")]);
        assert_eq!(signature(&btrfs[..0x10047]), Signature::Unknown);
        let mut x: u32 = 99;
        let mut buf = vec![0u8; HEAD_LEN];
        for round in 0..200 {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let _ = signature(&buf[..(x as usize) % HEAD_LEN]);
            let _ = overwrite_refusal(Path::new("/dev/x"), &buf, round % 2 == 0);
        }
    }

    // ---- identity ----------------------------------------------------------

    #[test]
    fn identity_round_trips_and_refuses_bad_text() {
        let ids = [
            Identity { sectors: 2_457_600, partuuid: None, serial: None },
            Identity { sectors: 8, partuuid: Some("1234abcd-01".into()), serial: Some(b"QM00001".to_vec()) },
            Identity { sectors: 1, partuuid: Some(ESP_TEXT.into()), serial: Some(b"a b,c:\"d\"".to_vec()) },
        ];
        for id in ids {
            let text = id.to_string();
            assert!(!text.contains([' ', '"', '=']), "{text}");
            assert_eq!(Identity::parse(&text), Ok(id));
        }
        assert_eq!(Identity::parse("sectors:8,serial:514d"), Ok(Identity { sectors: 8, partuuid: None, serial: Some(b"QM".to_vec()) }));
        assert_eq!(Identity::parse("sectors:8,partuuid:1234ABCD-01").unwrap().partuuid.as_deref(), Some("1234abcd-01"));
        let long_serial = format!("sectors:8,serial:{}", "ab".repeat(MAX_SERIAL_LEN + 1));
        for bad in [
            "",
            "sectors",
            "sectors:",
            "sectors:0",
            "sectors:-1",
            "sectors:+1",
            "sectors:0x10",
            "sectors:18446744073709551616",
            "partuuid:1234abcd-01",
            "sectors:8,partuuid:xyz",
            "sectors:8,serial:",
            "sectors:8,serial:abc",
            "sectors:8,serial:zz",
            "sectors:8,sectors:8",
            "sectors:8,serial:61,serial:61",
            "sectors:8,size:9",
            "sectors:8,",
            long_serial.as_str(),
        ] {
            assert!(Identity::parse(bad).is_err(), "{bad:?}");
            assert!(!Identity::parse(bad).unwrap_err().to_string().contains('\n'));
        }
        let soup = "sectorpartuid:,0123456789abcdef-";
        let chars: Vec<char> = soup.chars().collect();
        let mut x: u32 = 3;
        for _ in 0..3000 {
            let mut s = String::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                s.push(chars[(x as usize) % chars.len()]);
            }
            if let Ok(id) = Identity::parse(&s) {
                assert_eq!(Identity::parse(&id.to_string()), Ok(id), "{s:?}");
            }
        }
    }

    #[test]
    fn identity_mismatches_name_the_difference() {
        let a = Identity { sectors: 100, partuuid: Some("1234abcd-01".into()), serial: Some(b"S1".to_vec()) };
        assert_eq!(a.mismatch(&a.clone()), None);
        let smaller = Identity { sectors: 99, ..a.clone() };
        assert!(a.mismatch(&smaller).unwrap().contains("99 sectors, A's target had 100"));
        let other_part = Identity { partuuid: Some("1234abcd-02".into()), ..a.clone() };
        assert!(a.mismatch(&other_part).unwrap().contains("PARTUUID is 1234abcd-02"));
        let no_part = Identity { partuuid: None, ..a.clone() };
        assert!(a.mismatch(&no_part).unwrap().contains("PARTUUID is none"));
        let other_disk = Identity { serial: Some(b"S2".to_vec()), ..a.clone() };
        assert!(a.mismatch(&other_disk).unwrap().contains("serial number is S2, A's target's was S1"));
        // What A did not have is not asked for: size alone then.
        let size_only = Identity { sectors: 100, partuuid: None, serial: None };
        assert_eq!(size_only.mismatch(&a), None);
        assert!(size_only.mismatch(&smaller).is_some());
    }

    #[test]
    fn identity_from_sysfs() {
        let t = machine();
        std::fs::write(t.sys().join("vda/serial"), "QM00001\n").unwrap();
        std::fs::write(t.sys().join("vda1/size"), "4096\n").unwrap();
        std::fs::write(t.sys().join("nvme0n1/wwid"), "eui.0011223344556677\n").unwrap();
        std::fs::create_dir_all(t.sys().join("nvme0n1/device")).unwrap();
        std::fs::write(t.sys().join("nvme0n1/device/serial"), "ignored, wwid wins\n").unwrap();
        std::fs::write(t.sys().join("nvme0n1p1/size"), "100\n").unwrap();
        // vda1: PARTUUID from the GPT (no uevent), serial of its disk.
        let vda1 = t.identity("vda1").unwrap();
        assert_eq!(vda1, Identity { sectors: 4096, partuuid: Some(guid_text(1)), serial: Some(b"QM00001".to_vec()) });
        // A whole disk: size and serial, no PARTUUID.
        assert_eq!(t.identity("vda").unwrap(), Identity { sectors: t.identity("vda").unwrap().sectors, partuuid: None, serial: Some(b"QM00001".to_vec()) });
        // MBR partition; the WWN comes before the serial number.
        let nvme = t.identity("nvme0n1p1").unwrap();
        assert_eq!(nvme, Identity { sectors: 100, partuuid: Some("cafef00d-01".into()), serial: Some(b"eui.0011223344556677".to_vec()) });
        // The kernel's uevent wins over the table.
        std::fs::write(t.sys().join("vda1/uevent"), "PARTUUID=AAAAAAAA-01\n").unwrap();
        assert_eq!(t.identity("vda1").unwrap().partuuid.as_deref(), Some("aaaaaaaa-01"));
        // A disk without a serial (virtio without serial=): size alone.
        assert_eq!(t.identity("sr0").unwrap(), Identity { sectors: 0, partuuid: None, serial: None });
        // No size: an error naming what was read.
        let err = t.identity("vda2").unwrap_err().to_string();
        assert!(err.contains("reading the size of vda2"), "{err}");
        assert!(t.identity("gone").is_err());
    }

    // ---- GPT ---------------------------------------------------------------

    #[test]
    fn formats_guids_like_linux() {
        assert_eq!(format_guid(&ESP_GUID), ESP_TEXT);
        assert_eq!(format_uuid(&FS_UUID), FS_UUID_TEXT);
    }

    #[test]
    fn reads_gpt_partitions() {
        let d = Gpt::new(512).with(0, ESP_GUID).with(1, guid(2)).with(4, guid(5)).build();
        assert_eq!(gpt_partitions(&d, 512), vec![(1, ESP_TEXT.to_string()), (2, guid_text(2)), (5, guid_text(5))]);
        // Wrong sector size: no header there.
        assert!(gpt_partitions(&d, 4096).is_empty());
        // 4 KiB sectors.
        let d = Gpt::new(4096).with(0, guid(1)).build();
        assert_eq!(gpt_partitions(&d, 4096), vec![(1, guid_text(1))]);
        assert!(gpt_partitions(&d, 512).is_empty());
        // Larger entries, a different array place, few entries.
        let mut g = Gpt::new(512).with(3, guid(4));
        g.entry_size = 256;
        g.entry_lba = 10;
        g.count = 4;
        assert_eq!(gpt_partitions(&g.build(), 512), vec![(4, guid_text(4))]);
    }

    #[test]
    fn gpt_refuses_damaged_tables() {
        let good = Gpt::new(512).with(0, guid(1)).build();
        assert_eq!(gpt_partitions(&good, 512).len(), 1);

        let mut d = good.clone();
        d[512 + 20] ^= 1; // header changed, CRC not updated
        assert!(gpt_partitions(&d, 512).is_empty());

        let mut d = good.clone();
        d[1024 + 17] ^= 1; // entry changed, array CRC not updated
        assert!(gpt_partitions(&d, 512).is_empty());

        let mut d = good.clone();
        d[512] = b'X';
        reseal(&mut d, 512);
        assert!(gpt_partitions(&d, 512).is_empty());

        let mut d = good.clone();
        d[0x1be + 4] = 0x83; // no protective MBR
        assert!(gpt_partitions(&d, 512).is_empty());

        let mut d = good.clone();
        d[510] = 0; // no 55 AA
        assert!(gpt_partitions(&d, 512).is_empty());

        let mut d = good.clone();
        d[512 + 24] = 2; // my_lba
        reseal(&mut d, 512);
        assert!(gpt_partitions(&d, 512).is_empty());

        for size in [0u32, 64, 127, 129, 192, 8192, u32::MAX] {
            let mut d = good.clone();
            d[512 + 84..512 + 88].copy_from_slice(&size.to_le_bytes());
            reseal(&mut d, 512);
            assert!(gpt_partitions(&d, 512).is_empty(), "entry size {size}");
        }
        for hs in [0u32, 91, 513, u32::MAX] {
            let mut d = good.clone();
            d[512 + 12..512 + 16].copy_from_slice(&hs.to_le_bytes());
            reseal(&mut d, 512);
            assert!(gpt_partitions(&d, 512).is_empty(), "header size {hs}");
        }
        // Entry array beyond any usize, or far beyond the head.
        for lba in [u64::MAX, u64::MAX / 512 + 1, 1 << 40] {
            let mut d = good.clone();
            d[512 + 72..512 + 80].copy_from_slice(&lba.to_le_bytes());
            reseal(&mut d, 512);
            assert!(gpt_partitions(&d, 512).is_empty(), "entry lba {lba}");
        }
        // Silly sector sizes.
        for ss in [0, 1, 100, 511, 513, 1 << 20, usize::MAX] {
            assert!(gpt_partitions(&good, ss).is_empty(), "sector {ss}");
        }
        // Every truncation is "nothing" or a prefix of the full answer.
        let full = gpt_partitions(&good, 512);
        for len in 0..good.len() {
            let got = gpt_partitions(&good[..len], 512);
            assert!(full.starts_with(&got), "{len}");
        }
        assert!(gpt_partitions(&vec![0u8; 65536], 512).is_empty());
        assert!(gpt_partitions(&vec![0xffu8; 65536], 512).is_empty());
    }

    #[test]
    fn gpt_reads_what_fits_of_a_huge_array() {
        // 100000 entries claimed: the array's CRC cannot be checked from the
        // head, so the entries within it are read, capped at MAX_GPT_ENTRIES.
        let mut g = Gpt::new(512);
        for slot in 0..300 {
            g = g.with(slot, guid(slot as u8));
        }
        g.count = 300;
        let mut d = g.build();
        d[512 + 80..512 + 84].copy_from_slice(&100_000u32.to_le_bytes());
        reseal(&mut d, 512);
        let parts = gpt_partitions(&d, 512);
        assert_eq!(parts.len(), MAX_GPT_ENTRIES as usize);
        assert_eq!(parts[255], (256, guid_text(255)));
        let head = &d[..1024 + 10 * 128 + 100];
        assert_eq!(gpt_partitions(head, 512).len(), 10);
    }

    // ---- MBR ---------------------------------------------------------------

    #[test]
    fn reads_mbr_partitions() {
        let d = mbr(0x1234_abcd, &[(1, 0x83, 1000), (2, 0x05, 1000), (3, 0x82, 0), (4, 0x0c, 5)]);
        assert_eq!(mbr_partitions(&d), vec![(1, "1234abcd-01".into()), (4, "1234abcd-04".into())]);
        let d = mbr(0x0000_00ff, &[(2, 0x83, 1)]);
        assert_eq!(mbr_partitions(&d), vec![(2, "000000ff-02".into())]);
        // Longer input (a whole head) is fine.
        let mut head = d.clone();
        head.resize(65536, 0xaa);
        assert_eq!(mbr_partitions(&head), vec![(2, "000000ff-02".into())]);
    }

    #[test]
    fn mbr_refuses_non_tables() {
        let good = mbr(0x1234_abcd, &[(1, 0x83, 1000)]);
        for len in 0..512 {
            assert!(mbr_partitions(&good[..len]).is_empty(), "{len}");
        }
        let mut d = good.clone();
        d[511] = 0x55;
        assert!(mbr_partitions(&d).is_empty());
        let mut d = good.clone();
        d[0x1be] = 0x12; // bad boot indicator
        assert!(mbr_partitions(&d).is_empty());
        let mut d = good.clone();
        d[0x1be] = 0x80;
        assert_eq!(mbr_partitions(&d).len(), 1);
        // A GPT protective MBR is for gpt_partitions.
        let gpt = Gpt::new(512).with(0, guid(1)).build();
        assert!(mbr_partitions(&gpt).is_empty());
        assert!(mbr_partitions(&[0u8; 512]).is_empty());
        assert!(mbr_partitions(&[0xffu8; 512]).is_empty());
    }

    #[test]
    fn names_partitions_like_the_kernel() {
        assert_eq!(partition_name("vdb", 1), "vdb1");
        assert_eq!(partition_name("sda", 12), "sda12");
        assert_eq!(partition_name("nvme0n1", 2), "nvme0n1p2");
        assert_eq!(partition_name("mmcblk0", 1), "mmcblk0p1");
    }

    #[test]
    fn signatures_survive_byte_soup() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 8192];
        for round in 0..300 {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            // Sometimes plant the magics so the parsers go deeper.
            if round % 2 == 0 {
                buf[510] = 0x55;
                buf[511] = 0xaa;
                buf[0x1be + 4] = 0xee;
                buf[0x1be + 8..0x1be + 12].copy_from_slice(&1u32.to_le_bytes());
                buf[512..520].copy_from_slice(b"EFI PART");
                buf[512 + 12..512 + 16].copy_from_slice(&92u32.to_le_bytes());
                reseal(&mut buf, 512);
                buf[1024 + 0x38..1024 + 0x3a].copy_from_slice(&0xef53u16.to_le_bytes());
            }
            let len = (x as usize) % buf.len();
            let _ = ext4_identity(&buf[..len]);
            let _ = gpt_partitions(&buf[..len], 512);
            let _ = gpt_partitions(&buf[..len], 4096);
            let _ = mbr_partitions(&buf[..len]);
        }
    }

    // ---- resolution against a fake sysfs and /dev ---------------------------

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A temporary tree with `sys/class/block`, `dev` and `images`.
    struct Tree {
        root: PathBuf,
    }

    impl Tree {
        fn new() -> Self {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let root = std::env::temp_dir().join(format!("kjump-target-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            for d in ["sys/class/block", "dev", "images"] {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
            Tree { root }
        }

        fn sys(&self) -> PathBuf {
            self.root.join("sys/class/block")
        }

        fn dev(&self) -> PathBuf {
            self.root.join("dev")
        }

        /// A whole disk `name` = `major:minor` holding `bytes`; its node is
        /// created now when `node`, else left for mknod.
        fn disk(&self, name: &str, major: u32, minor: u32, bytes: &[u8], node: bool) {
            let d = self.sys().join(name);
            std::fs::create_dir_all(d.join("queue")).unwrap();
            std::fs::write(d.join("dev"), format!("{major}:{minor}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{}\n", bytes.len() / 512)).unwrap();
            self.store(name, major, minor, bytes, node);
        }

        /// Partition `number` named `name` of `disk`, holding `bytes`.
        fn part(&self, disk: &str, name: &str, number: u32, dev: (u32, u32), bytes: &[u8], node: bool) {
            for d in [self.sys().join(name), self.sys().join(disk).join(name)] {
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join("dev"), format!("{}:{}\n", dev.0, dev.1)).unwrap();
                std::fs::write(d.join("partition"), format!("{number}\n")).unwrap();
            }
            self.store(name, dev.0, dev.1, bytes, node);
        }

        fn store(&self, name: &str, major: u32, minor: u32, bytes: &[u8], node: bool) {
            std::fs::write(self.root.join("images").join(format!("{major}_{minor}")), bytes).unwrap();
            if node {
                std::fs::write(self.dev().join(name), bytes).unwrap();
            }
        }

        /// A fake mknod: copies the stored bytes of `major:minor` to `path`.
        fn mknod(&self) -> impl Fn(&Path, u32, u32) -> rustix::io::Result<()> + '_ {
            move |path: &Path, major: u32, minor: u32| {
                let bytes = std::fs::read(self.root.join("images").join(format!("{major}_{minor}"))).map_err(|_| rustix::io::Errno::NODEV)?;
                std::fs::write(path, bytes).map_err(|_| rustix::io::Errno::IO)
            }
        }

        fn identity(&self, name: &str) -> Result<Identity, crate::Error> {
            let mknod = self.mknod();
            let (sys, dev) = (self.sys(), self.dev());
            Roots { sys_block: &sys, dev: &dev, make_node: &mknod }.identity(name)
        }

        fn resolve(&self, device: &Device) -> Result<Option<PathBuf>, crate::Error> {
            let mknod = self.mknod();
            let sys = self.sys();
            let dev = self.dev();
            let roots = Roots { sys_block: &sys, dev: &dev, make_node: &mknod };
            resolve_in(&roots, device, &mut |_| {})
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    fn label(l: &str) -> Device {
        Device::Label(l.into())
    }

    /// vda: GPT with an ext4 "root" on vda1 and "kjump" on vda2;
    /// nvme0n1: MBR with partition 1; sr0: empty; loop0: size 0.
    fn machine() -> Tree {
        let t = Tree::new();
        let gpt = Gpt::new(512).with(0, guid(1)).with(1, guid(2)).build();
        t.disk("vda", 253, 0, &gpt, true);
        t.part("vda", "vda1", 1, (253, 1), &ext4(guid(7), b"root"), true);
        t.part("vda", "vda2", 2, (253, 2), &ext4(FS_UUID, b"kjump"), false);
        t.disk("nvme0n1", 259, 0, &mbr(0xcafe_f00d, &[(1, 0x83, 100)]), true);
        t.part("nvme0n1", "nvme0n1p1", 1, (259, 1), &ext4(guid(9), b"data"), true);
        t.disk("sr0", 11, 0, &[], true);
        t.disk("loop0", 7, 0, &[], true);
        std::fs::write(t.sys().join("loop0/size"), "0\n").unwrap();
        t
    }

    #[test]
    fn resolves_paths_and_makes_missing_nodes() {
        let t = machine();
        assert_eq!(t.resolve(&Device::Path("/dev/vda".into())).unwrap(), Some(t.dev().join("vda")));
        // vda2 has no node yet: it is made from sysfs's dev.
        assert!(!t.dev().join("vda2").exists());
        assert_eq!(t.resolve(&Device::Path("/dev/vda2".into())).unwrap(), Some(t.dev().join("vda2")));
        assert_eq!(std::fs::read(t.dev().join("vda2")).unwrap(), ext4(FS_UUID, b"kjump"));
        // Not there at all.
        assert_eq!(t.resolve(&Device::Path("/dev/vdz".into())).unwrap(), None);
    }

    #[test]
    fn resolves_labels_and_uuids() {
        let t = machine();
        assert_eq!(t.resolve(&label("kjump")).unwrap(), Some(t.dev().join("vda2")));
        assert_eq!(t.resolve(&label("data")).unwrap(), Some(t.dev().join("nvme0n1p1")));
        assert_eq!(t.resolve(&label("Data")).unwrap(), None);
        assert_eq!(t.resolve(&label("nothing")).unwrap(), None);
        let uuid = Device::Uuid(FS_UUID_TEXT.into());
        assert_eq!(t.resolve(&uuid).unwrap(), Some(t.dev().join("vda2")));
        let upper = Device::Uuid(FS_UUID_TEXT.to_ascii_uppercase());
        assert_eq!(t.resolve(&upper).unwrap(), Some(t.dev().join("vda2")));
    }

    #[test]
    fn resolves_partuuids() {
        let t = machine();
        let gpt2 = Device::PartUuid(guid_text(2));
        assert_eq!(t.resolve(&gpt2).unwrap(), Some(t.dev().join("vda2")));
        let mbr1 = Device::PartUuid("cafef00d-01".into());
        assert_eq!(t.resolve(&mbr1).unwrap(), Some(t.dev().join("nvme0n1p1")));
        // In the table but not (yet) a partition in sysfs.
        assert_eq!(t.resolve(&Device::PartUuid("cafef00d-02".into())).unwrap(), None);
        assert_eq!(t.resolve(&Device::PartUuid(guid_text(3))).unwrap(), None);
    }

    #[test]
    fn partuuid_from_uevent_and_by_kernel_name() {
        let t = Tree::new();
        // A disk the head cannot explain, but the kernel's uevent does.
        t.disk("vdb", 253, 16, &[0u8; 4096], true);
        t.part("vdb", "vdb5", 5, (253, 21), &[], true);
        std::fs::write(t.sys().join("vdb5/uevent"), "MAJOR=253\nMINOR=21\nPARTN=5\nPARTUUID=DEADBEEF-05\n").unwrap();
        assert_eq!(t.resolve(&Device::PartUuid("deadbeef-05".into())).unwrap(), Some(t.dev().join("vdb5")));
        // A partition found by its kernel name when the disk directory does
        // not list it (as a fallback).
        let t = Tree::new();
        t.disk("mmcblk0", 179, 0, &mbr(0x11, &[(1, 0x83, 8)]), true);
        std::fs::create_dir_all(t.sys().join("mmcblk0p1")).unwrap();
        std::fs::write(t.sys().join("mmcblk0p1/dev"), "179:1\n").unwrap();
        std::fs::write(t.sys().join("mmcblk0p1/partition"), "1\n").unwrap();
        t.store("mmcblk0p1", 179, 1, &[], false);
        assert_eq!(t.resolve(&Device::PartUuid("00000011-01".into())).unwrap(), Some(t.dev().join("mmcblk0p1")));
    }

    #[test]
    fn sector_size_from_sysfs() {
        let t = Tree::new();
        let gpt = Gpt::new(4096).with(2, guid(3)).build();
        t.disk("sda", 8, 0, &gpt, true);
        std::fs::write(t.sys().join("sda/queue/logical_block_size"), "4096\n").unwrap();
        t.part("sda", "sda3", 3, (8, 3), &[], true);
        assert_eq!(t.resolve(&Device::PartUuid(guid_text(3))).unwrap(), Some(t.dev().join("sda3")));
        // Told 512: no GPT there.
        std::fs::write(t.sys().join("sda/queue/logical_block_size"), "512\n").unwrap();
        assert_eq!(t.resolve(&Device::PartUuid(guid_text(3))).unwrap(), None);
    }

    #[test]
    fn ambiguous_names_are_refused() {
        let t = machine();
        // A cloned partition: same filesystem twice.
        t.disk("vdc", 253, 32, &ext4(FS_UUID, b"kjump"), true);
        let err = t.resolve(&label("kjump")).unwrap_err().to_string();
        assert!(err.contains("matches both") && err.contains("vda2") && err.contains("vdc"), "{err}");
        // A cloned disk: same PARTUUID twice.
        let t = machine();
        let gpt = Gpt::new(512).with(0, guid(1)).with(1, guid(2)).build();
        t.disk("vdd", 253, 48, &gpt, true);
        t.part("vdd", "vdd2", 2, (253, 50), &[], true);
        let err = t.resolve(&Device::PartUuid(guid_text(2))).unwrap_err().to_string();
        assert!(err.contains("vda2") && err.contains("vdd2"), "{err}");
    }

    #[test]
    fn partitioned_disks_are_not_read_as_filesystems() {
        let t = Tree::new();
        // A stale ext4 superblock on a disk that has an MBR and partitions.
        let mut d = ext4(FS_UUID, b"stale");
        d[..512].copy_from_slice(&mbr(1, &[(1, 0x83, 8)]));
        t.disk("sdb", 8, 16, &d, true);
        t.part("sdb", "sdb1", 1, (8, 17), &[], true);
        assert_eq!(t.resolve(&label("stale")).unwrap(), None);
        // An unpartitioned disk is.
        t.disk("sdc", 8, 32, &ext4(guid(4), b"whole"), true);
        assert_eq!(t.resolve(&label("whole")).unwrap(), Some(t.dev().join("sdc")));
    }

    #[test]
    fn broken_devices_are_skipped() {
        let t = machine();
        // A device whose node cannot be made and whose sysfs dev is garbage.
        std::fs::create_dir_all(t.sys().join("vde")).unwrap();
        std::fs::write(t.sys().join("vde/dev"), "garbage\n").unwrap();
        std::fs::create_dir_all(t.sys().join("vdf")).unwrap();
        std::fs::write(t.sys().join("vdf/dev"), "253:80\n").unwrap(); // no image: mknod fails
                                                                      // A node that is a directory cannot be read.
        std::fs::create_dir_all(t.dev().join("vdg")).unwrap();
        std::fs::create_dir_all(t.sys().join("vdg")).unwrap();
        assert_eq!(t.resolve(&label("kjump")).unwrap(), Some(t.dev().join("vda2")));
        // But a named device whose node cannot be made is an error.
        let err = t.resolve(&Device::Path("/dev/vdf".into())).unwrap_err().to_string();
        assert!(err.contains("creating") && err.contains("253:80"), "{err}");
        // No sysfs at all is an error.
        std::fs::remove_dir_all(t.sys()).unwrap();
        assert!(t.resolve(&label("kjump")).is_err());
    }

    #[test]
    fn waits_and_times_out() {
        let t = Tree::new();
        let mknod = t.mknod();
        let (sys, dev) = (t.sys(), t.dev());
        let roots = Roots { sys_block: &sys, dev: &dev, make_node: &mknod };
        let heard = RefCell::new(Vec::<String>::new());
        let start = Instant::now();
        let err = wait_in(&roots, &label("late"), Duration::from_millis(300), Duration::from_millis(20), &mut |m| heard.borrow_mut().push(m.to_string()))
            .unwrap_err()
            .to_string();
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(err.starts_with("target LABEL=late did not appear within 0.3 s"), "{err}");
        assert_eq!(heard.borrow().as_slice(), ["waiting up to 0.3 s for LABEL=late"]);

        // The device shows up while waiting.
        let root = t.root.clone();
        let maker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let d = root.join("sys/class/block/vdh");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(root.join("images/253_112"), ext4(FS_UUID, b"late")).unwrap();
            std::fs::write(d.join("dev"), "253:112\n").unwrap();
        });
        let found = wait_in(&roots, &label("late"), Duration::from_secs(20), Duration::from_millis(10), &mut |_| {});
        maker.join().unwrap();
        assert_eq!(found.unwrap(), t.dev().join("vdh"));
    }

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
