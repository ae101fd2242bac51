//! Runs in B, C and D: whether A's filesystems were written since the
//! image was made.
//!
//! Resuming A over a filesystem that another system (a rescue stick, the
//! same system booted with `noresume`, A itself after a snapshot) mounted
//! and wrote in between brings A back with stale metadata in its memory:
//! the classic way hibernation corrupts a filesystem. So B records, for
//! every device in A's device table, a *stamp*: a digest of the on-disk
//! fields that any mount or write changes. C and D read the devices again
//! and refuse an image whose stamps differ.
//!
//! What a stamp covers, per kind:
//! - ext2/3/4: the superblock's mount and write times, mount count, state,
//!   incompatible features (the journal's needs-recovery flag: a replay
//!   clears it), orphan list head, lifetime kbytes written and error count.
//!   Every read-write mount changes the mount count and time; a journal
//!   replay (even by a read-only mount) clears needs-recovery.
//! - btrfs: the superblock's generation and tree roots (every transaction
//!   commit changes the generation).
//! - swap: the swap header (a `mkswap` changes it). Another system that
//!   swaps on the area without reformatting it is not seen.
//! - anything else (XFS, for one): kjump cannot vouch; C and D say so and
//!   go on.
//!
//! Stamps compare on-disk bytes with on-disk bytes (B's reading against
//! C's or D's): A's own unwritten superblock changes never enter them.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::target::in_use::InUse;

/// What B found on one of A's devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stamp {
    /// Nothing recorded (an image from before stamps, or no entry).
    #[default]
    None,
    /// An ext2/3/4 filesystem: the digest of its superblock's write fields.
    Ext(u64),
    /// A btrfs filesystem: the digest of its generation and roots.
    Btrfs(u64),
    /// A swap area: the digest of its header.
    Swap(u64),
    /// A device whose contents kjump cannot vouch for (XFS, LUKS, …).
    Unvouched,
    /// B did not find the device (no driver in B, unplugged).
    Missing,
}

impl Stamp {
    /// The kind's code in the image header (0 for [`Stamp::None`]).
    pub fn code(self) -> u8 {
        match self {
            Stamp::None => 0,
            Stamp::Ext(_) => 1,
            Stamp::Btrfs(_) => 2,
            Stamp::Swap(_) => 3,
            Stamp::Unvouched => 4,
            Stamp::Missing => 5,
        }
    }

    /// The digest, 0 for the kinds without one.
    pub fn digest(self) -> u64 {
        match self {
            Stamp::Ext(d) | Stamp::Btrfs(d) | Stamp::Swap(d) => d,
            _ => 0,
        }
    }

    /// Rebuilds a stamp from its code and digest; `None` for an unknown code.
    pub fn from_parts(code: u8, digest: u64) -> Option<Self> {
        Some(match code {
            0 => Stamp::None,
            1 => Stamp::Ext(digest),
            2 => Stamp::Btrfs(digest),
            3 => Stamp::Swap(digest),
            4 => Stamp::Unvouched,
            5 => Stamp::Missing,
            _ => return None,
        })
    }
}

/// Where the ext2/3/4 superblock starts.
const EXT_SB: usize = 1024;
/// The ext superblock's magic and where it is in the superblock.
const EXT_MAGIC: [u8; 2] = [0x53, 0xef];
const EXT_MAGIC_OFF: usize = 0x38;
/// The ext superblock's fields that a mount or a write changes, as
/// (offset in the superblock, length): s_mtime, s_wtime, s_mnt_count
/// (0x2c..0x36), s_state (0x3a), s_feature_incompat (0x60), s_last_orphan
/// (0xe8), s_kbytes_written (0x178), s_error_count (0x194), and the high
/// bytes of the times (0x274..0x277).
const EXT_FIELDS: [(usize, usize); 7] = [(0x2c, 10), (0x3a, 2), (0x60, 4), (0xe8, 4), (0x178, 8), (0x194, 4), (0x274, 3)];
/// Bytes of the ext superblock read.
const EXT_SB_LEN: usize = 0x400;
/// The ext superblock's UUID.
const EXT_UUID_OFF: usize = 0x68;

/// Where the btrfs superblock starts, its magic and its fields.
const BTRFS_SB: u64 = 64 << 10;
const BTRFS_MAGIC: &[u8; 8] = b"_BHRfS_M";
const BTRFS_MAGIC_OFF: usize = 0x40;
/// fsid.
const BTRFS_FSID_OFF: usize = 0x20;
/// generation, root, chunk_root, log_root (0x48..0x68).
const BTRFS_FIELDS: (usize, usize) = (0x48, 0x20);

/// The swap header's page, magic and the part that `mkswap` writes.
const SWAP_PAGE: usize = 4096;
const SWAP_MAGIC: &[u8; 10] = b"SWAPSPACE2";
/// version, last_page, nr_badpages, uuid, label (1024..1024+12+16+16).
const SWAP_FIELDS: (usize, usize) = (1024, 44);
const SWAP_UUID_OFF: usize = 1024 + 12;

/// XFS's superblock magic, at byte 0.
const XFS_MAGIC: &[u8; 4] = b"XFSB";

/// What a device holds, read through `read_at(offset, buf)` (which fills
/// what it can and returns the bytes read): its UUID (the one A's device
/// table records) and its stamp.
pub fn identify(read_at: &mut dyn FnMut(u64, &mut [u8]) -> usize) -> Option<([u8; 16], Stamp)> {
    let mut head = vec![0u8; SWAP_PAGE];
    let n = read_at(0, &mut head);
    head.truncate(n);
    let uuid_at = |b: &[u8], off: usize| -> Option<[u8; 16]> { b.get(off..off + 16)?.try_into().ok() };
    if let Some(sb) = head.get(EXT_SB..EXT_SB + EXT_SB_LEN) {
        if sb[EXT_MAGIC_OFF..EXT_MAGIC_OFF + 2] == EXT_MAGIC {
            let mut fields = Vec::with_capacity(64);
            for (off, len) in EXT_FIELDS {
                fields.extend_from_slice(&sb[off..off + len]);
            }
            return Some((uuid_at(sb, EXT_UUID_OFF)?, Stamp::Ext(xxhash_rust::xxh64::xxh64(&fields, 0))));
        }
    }
    if head.len() == SWAP_PAGE && &head[SWAP_PAGE - SWAP_MAGIC.len()..] == SWAP_MAGIC {
        let (off, len) = SWAP_FIELDS;
        return Some((uuid_at(&head, SWAP_UUID_OFF)?, Stamp::Swap(xxhash_rust::xxh64::xxh64(&head[off..off + len], 0))));
    }
    if head.get(..4) == Some(&XFS_MAGIC[..]) {
        // sb_uuid is at byte 32 of the XFS superblock.
        return Some((uuid_at(&head, 32)?, Stamp::Unvouched));
    }
    let mut sb = vec![0u8; SWAP_PAGE];
    if read_at(BTRFS_SB, &mut sb) == SWAP_PAGE && &sb[BTRFS_MAGIC_OFF..BTRFS_MAGIC_OFF + 8] == BTRFS_MAGIC {
        let (off, len) = BTRFS_FIELDS;
        return Some((uuid_at(&sb, BTRFS_FSID_OFF)?, Stamp::Btrfs(xxhash_rust::xxh64::xxh64(&sb[off..off + len], 0))));
    }
    None
}

/// Reads as much of `buf` as `file` holds at `offset`.
fn read_file_at(file: &File, offset: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// The UUID and stamp of the device at `path`, if it holds something kjump knows.
pub fn identify_device(path: &Path) -> Option<([u8; 16], Stamp)> {
    let file = File::open(path).ok()?;
    identify(&mut |off, buf| read_file_at(&file, off, buf))
}

/// Every block device of this kernel with something kjump knows on it:
/// its node, UUID and stamp. Nodes missing from `/dev` are made (B and D
/// have no udev).
pub fn scan() -> Vec<(PathBuf, [u8; 16], Stamp)> {
    let mut names: Vec<String> = match std::fs::read_dir("/sys/class/block") {
        Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => return Vec::new(),
    };
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let device = crate::target::Device::Path(format!("/dev/{name}"));
        let Ok(Some(node)) = crate::target::resolve(&device) else { continue };
        if let Some((uuid, stamp)) = identify_device(&node) {
            out.push((node, uuid, stamp));
        }
    }
    out
}

/// B's stamps for A's devices `uses`, in the same order, from the devices
/// `found` (as [`scan`] gives them).
pub fn record(uses: &[InUse], found: &[(PathBuf, [u8; 16], Stamp)]) -> Vec<Stamp> {
    uses.iter()
        .map(|u| match u.uuid {
            None => Stamp::Unvouched,
            Some(uuid) => found.iter().find(|(_, id, _)| *id == uuid).map_or(Stamp::Missing, |&(_, _, s)| s),
        })
        .collect()
}

/// What C or D found when comparing the image's stamps with the devices now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// A's devices written since the image was made, worded for the user:
    /// the image must never be resumed.
    pub changed: Vec<String>,
    /// A's devices not found now (the image may be resumable once they are back).
    pub missing: Vec<String>,
    /// A's devices kjump cannot vouch for (resuming goes on).
    pub unvouched: Vec<String>,
}

impl Verdict {
    /// The one line that says why the image must not be resumed, if it must not.
    pub fn refusal(&self) -> Option<String> {
        if !self.changed.is_empty() {
            return Some(format!("{} written since the image was made (another system mounted it?); resuming would corrupt it", self.changed.join(", ")));
        }
        if !self.missing.is_empty() {
            return Some(format!("{} of A's not found: A would resume without it", self.missing.join(", ")));
        }
        None
    }
}

/// Compares the stamps B recorded (`stamps`, one per entry of `uses`)
/// with the devices `found` now.
pub fn compare(uses: &[InUse], stamps: &[Stamp], found: &[(PathBuf, [u8; 16], Stamp)]) -> Verdict {
    let mut v = Verdict::default();
    for (u, &then) in uses.iter().zip(stamps) {
        let who = || match u.uuid {
            Some(id) => format!("{} (UUID {})", u.name, crate::target::format_uuid(&id)),
            None => u.name.clone(),
        };
        match then {
            Stamp::None | Stamp::Unvouched | Stamp::Missing => v.unvouched.push(who()),
            Stamp::Ext(_) | Stamp::Btrfs(_) | Stamp::Swap(_) => {
                let now = u.uuid.and_then(|id| found.iter().find(|(_, f, _)| *f == id));
                match now {
                    None => v.missing.push(who()),
                    Some((path, _, s)) if *s != then => v.changed.push(format!("{} (now {})", who(), path.display())),
                    Some(_) => {}
                }
            }
        }
    }
    v
}

/// Why this system (C) must not resume over A's devices `image` now: one
/// of them, matched by UUID, is mounted read-write or used as swap
/// `here` (C's own devices, as [`crate::target::in_use::collect`] gives them).
pub fn mounted_here(here: &[InUse], image: &[InUse]) -> Option<String> {
    use crate::target::in_use::Kind;
    here.iter().filter(|h| h.kind != Kind::MountedReadOnly).find_map(|h| {
        let id = h.uuid?;
        image
            .iter()
            .any(|a| a.uuid == Some(id))
            .then(|| format!("{} (UUID {}), one of A's devices, is {} here", h.name, crate::target::format_uuid(&id), h.kind.describe()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext_image(mnt_count: u16) -> Vec<u8> {
        let mut d = vec![0u8; 8192];
        let sb = &mut d[EXT_SB..];
        sb[EXT_MAGIC_OFF..EXT_MAGIC_OFF + 2].copy_from_slice(&EXT_MAGIC);
        sb[EXT_UUID_OFF..EXT_UUID_OFF + 16].copy_from_slice(&[7; 16]);
        sb[0x34..0x36].copy_from_slice(&mnt_count.to_le_bytes());
        d
    }

    fn reader(d: &[u8]) -> impl FnMut(u64, &mut [u8]) -> usize + '_ {
        move |off, buf| {
            let Some(src) = usize::try_from(off).ok().and_then(|o| d.get(o..)) else { return 0 };
            let n = src.len().min(buf.len());
            buf[..n].copy_from_slice(&src[..n]);
            n
        }
    }

    fn use_of(uuid: [u8; 16]) -> InUse {
        InUse { kind: crate::target::in_use::Kind::MountedReadWrite, major: 254, minor: 1, uuid: Some(uuid), name: "vdb".into() }
    }

    #[test]
    fn a_mount_elsewhere_changes_an_ext4_stamp() {
        let (id, before) = identify(&mut reader(&ext_image(3))).unwrap();
        assert_eq!(id, [7; 16]);
        let (_, same) = identify(&mut reader(&ext_image(3))).unwrap();
        let (_, after) = identify(&mut reader(&ext_image(4))).unwrap();
        assert_eq!(before, same);
        assert_ne!(before, after);
        assert!(matches!(before, Stamp::Ext(_)));
        let uses = [use_of(id)];
        let v = compare(&uses, &[before], &[(PathBuf::from("/dev/vdb"), id, after)]);
        assert_eq!(v.changed.len(), 1, "{v:?}");
        assert!(v.refusal().unwrap().contains("vdb"));
        let v = compare(&uses, &[before], &[(PathBuf::from("/dev/vdb"), id, same)]);
        assert_eq!(v, Verdict::default());
        assert_eq!(v.refusal(), None);
    }

    #[test]
    fn a_missing_device_is_refused_and_an_unvouched_one_is_not() {
        let uses = [use_of([1; 16]), use_of([2; 16])];
        let v = compare(&uses, &[Stamp::Ext(5), Stamp::Unvouched], &[]);
        assert_eq!(v.missing.len(), 1);
        assert_eq!(v.unvouched.len(), 1);
        assert!(v.refusal().unwrap().contains("not found"));
    }

    #[test]
    fn swap_btrfs_and_xfs_are_told_apart() {
        let mut swap = vec![0u8; 4096];
        swap[4096 - 10..].copy_from_slice(SWAP_MAGIC);
        swap[SWAP_UUID_OFF..SWAP_UUID_OFF + 16].copy_from_slice(&[3; 16]);
        let (id, st) = identify(&mut reader(&swap)).unwrap();
        assert_eq!(id, [3; 16]);
        assert!(matches!(st, Stamp::Swap(_)));
        let mut btrfs = vec![0u8; (BTRFS_SB as usize) + 4096];
        let sb = &mut btrfs[BTRFS_SB as usize..];
        sb[BTRFS_MAGIC_OFF..BTRFS_MAGIC_OFF + 8].copy_from_slice(BTRFS_MAGIC);
        sb[BTRFS_FSID_OFF..BTRFS_FSID_OFF + 16].copy_from_slice(&[4; 16]);
        let (_, g1) = identify(&mut reader(&btrfs)).unwrap();
        btrfs[BTRFS_SB as usize + 0x48] = 9;
        let (id, g2) = identify(&mut reader(&btrfs)).unwrap();
        assert_eq!(id, [4; 16]);
        assert!(matches!(g1, Stamp::Btrfs(_)));
        assert_ne!(g1, g2);
        let mut xfs = vec![0u8; 4096];
        xfs[..4].copy_from_slice(XFS_MAGIC);
        assert_eq!(identify(&mut reader(&xfs)).map(|x| x.1), Some(Stamp::Unvouched));
    }

    #[test]
    fn short_and_empty_devices_are_nothing() {
        assert_eq!(identify(&mut reader(&[])), None);
        assert_eq!(identify(&mut reader(&[0x53; 1100])), None);
        assert_eq!(identify(&mut reader(&vec![0u8; 70000])), None);
    }

    #[test]
    fn c_refuses_while_it_writes_one_of_a_devices() {
        use crate::target::in_use::Kind;
        let a = [use_of([1; 16])];
        let mut here = use_of([1; 16]);
        assert!(mounted_here(&[here.clone()], &a).unwrap().contains("mounted read-write"));
        here.kind = Kind::MountedReadOnly;
        assert_eq!(mounted_here(&[here.clone()], &a), None);
        here.kind = Kind::Swap;
        assert!(mounted_here(&[here.clone()], &a).is_some());
        let other = InUse { uuid: Some([9; 16]), ..use_of([9; 16]) };
        assert_eq!(mounted_here(&[other], &a), None);
        let no_uuid = InUse { uuid: None, ..use_of([1; 16]) };
        assert_eq!(mounted_here(&[no_uuid], &a), None);
    }

    #[test]
    fn stamps_round_trip_through_their_parts() {
        for s in [Stamp::None, Stamp::Ext(1), Stamp::Btrfs(2), Stamp::Swap(3), Stamp::Unvouched, Stamp::Missing] {
            assert_eq!(Stamp::from_parts(s.code(), s.digest()), Some(s));
        }
        assert_eq!(Stamp::from_parts(6, 0), None);
    }
}
