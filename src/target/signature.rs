//! Runs in A, B, C and D: what the first bytes of a device hold. The
//! ext2/3/4 superblock's UUID and label, the GPT and MBR partition tables
//! the way the kernel names their partitions, and the one place that tells
//! kjump's own image, an empty start, and the formats kjump must never
//! write over.

use core::fmt;
use std::path::Path;

use super::discover::read_head;
use super::MAX_LABEL_LEN;
use crate::image::crc32;
use crate::le;

/// How much of each device [`resolve`](super::resolve) reads to find signatures.
/// (68 KiB: btrfs's superblock lies at 64 KiB.)
pub const HEAD_LEN: usize = 68 * 1024;

/// Most GPT entries looked at (the kernel stops at 255 partitions).
pub const MAX_GPT_ENTRIES: u32 = 256;

// ---------------------------------------------------------------------------
// On-disk signatures.

pub(super) fn hex(out: &mut String, bytes: &[u8]) {
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
    if le::u16_at(sb, EXT4_MAGIC_OFF)? != EXT4_MAGIC {
        return None;
    }
    if le::u32_at(sb, EXT4_INCOMPAT_OFF)? & EXT4_INCOMPAT_JOURNAL_DEV != 0 {
        return None;
    }
    let uuid: [u8; 16] = le::array_at(sb, EXT4_UUID_OFF)?;
    let name: [u8; MAX_LABEL_LEN] = le::array_at(sb, EXT4_LABEL_OFF)?;
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
    if le::array_at::<2>(sector0, 510)? != [0x55, 0xaa] {
        return None;
    }
    let mut records = [[0u8; MBR_RECORD_LEN]; 4];
    for (i, r) in records.iter_mut().enumerate() {
        *r = le::array_at(sector0, MBR_TABLE + i * MBR_RECORD_LEN)?;
    }
    Some(records)
}

/// Whether `sector0` is a protective (or hybrid) MBR as the kernel's
/// `is_pmbr_valid` wants it: an `0xEE` record starting at LBA 1.
fn protective_mbr(sector0: &[u8]) -> bool {
    mbr_records(sector0).is_some_and(|rs| rs.iter().any(|r| r[4] == MBR_TYPE_GPT && le::u32_at(r, 8) == Some(1)))
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
    if le::array_at::<8>(hdr, 0)? != *GPT_SIGNATURE {
        return None;
    }
    let header_size = usize::try_from(le::u32_at(hdr, 12)?).ok()?;
    if !(GPT_HEADER_MIN..=sector_size).contains(&header_size) {
        return None;
    }
    let mut copy = hdr.get(..header_size)?.to_vec();
    copy.get_mut(16..20)?.fill(0);
    if crc32(&copy) != le::u32_at(hdr, 16)? {
        return None;
    }
    if le::u64_at(hdr, 24)? != 1 || le::u64_at(hdr, 40)? > le::u64_at(hdr, 48)? {
        return None;
    }
    let entry_lba = le::u64_at(hdr, 72)?;
    let count = le::u32_at(hdr, 80)?;
    let entry_size = le::u32_at(hdr, 84)?;
    if !entry_size.is_power_of_two() || !(GPT_ENTRY_MIN..=GPT_ENTRY_MAX).contains(&entry_size) {
        return None;
    }
    let start = usize::try_from(entry_lba.checked_mul(u64::try_from(sector_size).ok()?)?).ok()?;
    let esz = usize::try_from(entry_size).ok()?;
    let total = usize::try_from(u64::from(count).checked_mul(u64::from(entry_size))?).ok()?;
    // Check the array's CRC when all of it was read; otherwise make do with
    // the entries that were (the header's CRC already vouches for the table).
    if let Some(array) = start.checked_add(total).and_then(|end| dev_head.get(start..end)) {
        if crc32(array) != le::u32_at(hdr, 88)? {
            return None;
        }
    }
    let mut out = Vec::new();
    for i in 0..count.min(MAX_GPT_ENTRIES) {
        let off = usize::try_from(i).ok()?.checked_mul(esz)?.checked_add(start)?;
        let Some(entry) = off.checked_add(esz).and_then(|end| dev_head.get(off..end)) else {
            break;
        };
        let type_guid: [u8; 16] = le::array_at(entry, 0)?;
        if type_guid == [0; 16] {
            continue;
        }
        let unique: [u8; 16] = le::array_at(entry, 16)?;
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
    let Some(disksig) = le::u32_at(sector0, MBR_DISKSIG) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (slot, r) in (1u32..).zip(records.iter()) {
        if le::u32_at(r, 12) == Some(0) || MBR_EXTENDED.contains(&r[4]) {
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
    /// `kjump::target::in_use`).
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
    mbr_records(b).is_some_and(|rs| rs.iter().all(|r| r[0] == 0 || r[0] == 0x80) && rs.iter().any(|r| r[4] != 0 && le::u32_at(r, 12).is_some_and(|n| n != 0)))
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
        return Signature::Luks(le::array_at::<2>(head, 6).map_or(0, u16::from_be_bytes));
    }
    if LUKS2_SECONDARY_OFFS.iter().any(|&o| at(head, o, LUKS2_SECONDARY_MAGIC)) {
        return Signature::Luks(2);
    }
    if (0..4).any(|s| at(head, s * 512, LVM_LABEL) && at(head, s * 512 + 24, LVM_TYPE)) {
        return Signature::Lvm2;
    }
    if le::u32_at(head, 0) == Some(MD_MAGIC) || le::u32_at(head, 4096) == Some(MD_MAGIC) {
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
    if le::u16_at(head, EXT4_SUPERBLOCK + EXT4_MAGIC_OFF) == Some(EXT4_MAGIC) {
        return Signature::Ext;
    }
    if le::u32_at(head, 1024) == Some(F2FS_MAGIC) {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    // ---- synthetic disks ---------------------------------------------------

    pub(crate) const FS_UUID: [u8; 16] = [0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0];
    pub(crate) const FS_UUID_TEXT: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    /// An ext4 filesystem's first 4 KiB.
    pub(crate) fn ext4(uuid: [u8; 16], label: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        let sb = 1024;
        d[sb + 0x38..sb + 0x3a].copy_from_slice(&0xef53u16.to_le_bytes());
        d[sb + 0x68..sb + 0x78].copy_from_slice(&uuid);
        d[sb + 0x78..sb + 0x78 + label.len()].copy_from_slice(label);
        d
    }

    /// The EFI System Partition type GUID, on disk and as text.
    const ESP_GUID: [u8; 16] = [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
    pub(crate) const ESP_TEXT: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

    pub(crate) fn guid(n: u8) -> [u8; 16] {
        let mut g = [0u8; 16];
        for (i, b) in g.iter_mut().enumerate() {
            *b = n.wrapping_mul(16).wrapping_add(i as u8);
        }
        g
    }

    pub(crate) fn guid_text(n: u8) -> String {
        format_guid(&guid(n))
    }

    pub(crate) struct Gpt {
        sector: usize,
        count: u32,
        entry_size: u32,
        entry_lba: u64,
        /// (slot index, type GUID, unique GUID)
        entries: Vec<(usize, [u8; 16], [u8; 16])>,
    }

    impl Gpt {
        pub(crate) fn new(sector: usize) -> Self {
            Gpt { sector, count: 128, entry_size: 128, entry_lba: 2, entries: Vec::new() }
        }

        pub(crate) fn with(mut self, slot: usize, unique: [u8; 16]) -> Self {
            self.entries.push((slot, ESP_GUID, unique));
            self
        }

        pub(crate) fn build(&self) -> Vec<u8> {
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
    pub(crate) fn mbr(disksig: u32, parts: &[(usize, u8, u32)]) -> Vec<u8> {
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
}
