//! What A is using of its block devices: mounted filesystems (read-write
//! or read-only), active swap, and devices held by device-mapper or md.
//!
//! Writing to any of them while A is frozen would corrupt it: A resumes
//! with its caches and its journal state from before, and never learns
//! what changed underneath. So `kjump hibernate` refuses a target that
//! overlaps anything here ([`conflict`]), and the list travels to B
//! (through the mailbox page) and into the image header, so that B and D
//! can check again before they write or mount ([`check_device`]), whatever
//! names their own kernels give the disks: filesystems and swap areas are
//! matched by the UUID in their superblock.

use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use crate::le;
use crate::Error;

/// How A uses a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A filesystem mounted read-write.
    MountedReadWrite,
    /// A filesystem mounted read-only.
    MountedReadOnly,
    /// Active swap.
    Swap,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::MountedReadWrite => 1,
            Kind::MountedReadOnly => 2,
            Kind::Swap => 3,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Kind::MountedReadWrite),
            2 => Some(Kind::MountedReadOnly),
            3 => Some(Kind::Swap),
            _ => None,
        }
    }

    /// How the kind reads in a sentence ("A has it …").
    pub fn describe(self) -> &'static str {
        match self {
            Kind::MountedReadWrite => "mounted read-write",
            Kind::MountedReadOnly => "mounted read-only",
            Kind::Swap => "in use as swap",
        }
    }
}

/// One block device A uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InUse {
    /// How.
    pub kind: Kind,
    /// Device number in A.
    pub major: u32,
    /// Minor device number in A.
    pub minor: u32,
    /// The filesystem's or swap area's UUID, when kjump can read it.
    pub uuid: Option<[u8; 16]>,
    /// A's name for the device (`vda1`), at most [`NAME_LEN`] bytes.
    pub name: String,
}

/// Most entries kept (in the mailbox page and in the image header).
pub const MAX_ENTRIES: usize = 40;
/// Bytes of one encoded entry.
pub const RECORD_LEN: usize = 56;
/// Longest device name kept.
pub const NAME_LEN: usize = 28;
/// Bytes of an encoded table: a count, then [`MAX_ENTRIES`] records.
pub const TABLE_LEN: usize = 8 + MAX_ENTRIES * RECORD_LEN;

/// Encodes `entries` (at most [`MAX_ENTRIES`]; more is an error) as a table.
///
/// Layout: u32 count, u32 zero, then per entry: u8 kind, u8 has-UUID,
/// 2 zero bytes, u32 major, u32 minor, 16 bytes UUID, 28 bytes name (NUL
/// padded).
pub fn encode_table(entries: &[InUse]) -> Result<[u8; TABLE_LEN], Error> {
    if entries.len() > MAX_ENTRIES {
        return Err(Error::Msg(format!("A uses {} block devices; kjump records at most {MAX_ENTRIES}", entries.len())));
    }
    let mut t = [0u8; TABLE_LEN];
    t[..4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    for (e, r) in entries.iter().zip(t[8..].chunks_exact_mut(RECORD_LEN)) {
        r[0] = e.kind.code();
        r[1] = u8::from(e.uuid.is_some());
        r[4..8].copy_from_slice(&e.major.to_le_bytes());
        r[8..12].copy_from_slice(&e.minor.to_le_bytes());
        r[12..28].copy_from_slice(&e.uuid.unwrap_or_default());
        let name = e.name.as_bytes();
        let n = name.len().min(NAME_LEN);
        r[28..28 + n].copy_from_slice(&name[..n]);
    }
    Ok(t)
}

/// Why a table could not be decoded: the field at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadTable(pub &'static str);

impl core::fmt::Display for BadTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "A's device table: bad {}", self.0)
    }
}

impl std::error::Error for BadTable {}

/// Decodes a table written by [`encode_table`], checking every field.
pub fn decode_table(t: &[u8]) -> Result<Vec<InUse>, BadTable> {
    if t.len() < TABLE_LEN {
        return Err(BadTable("length"));
    }
    // The table's length is checked above, and each record is RECORD_LEN
    // bytes: no field is ever missing (it would be a bad length).
    let n = le::u32_at(t, 0).ok_or(BadTable("length"))? as usize;
    if n > MAX_ENTRIES {
        return Err(BadTable("entry count"));
    }
    let mut out = Vec::with_capacity(n);
    for r in t[8..].chunks_exact(RECORD_LEN).take(n) {
        let kind = Kind::from_code(r[0]).ok_or(BadTable("kind"))?;
        let uuid = match r[1] {
            0 => None,
            1 => {
                let mut u = [0u8; 16];
                u.copy_from_slice(&r[12..28]);
                Some(u)
            }
            _ => return Err(BadTable("UUID flag")),
        };
        let raw = &r[28..28 + NAME_LEN];
        let len = raw.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        let name = core::str::from_utf8(&raw[..len]).map_err(|_| BadTable("name"))?.to_string();
        let major = le::u32_at(r, 4).ok_or(BadTable("length"))?;
        let minor = le::u32_at(r, 8).ok_or(BadTable("length"))?;
        out.push(InUse { kind, major, minor, uuid, name });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Signatures: which filesystem or swap area a device holds.

/// The ext2/3/4 superblock's `s_uuid`.
const EXT4_UUID_OFF: usize = 1024 + 0x68;
/// The swap header's `sws_uuid`.
const SWAP_UUID_OFF: usize = 1024 + 12;

/// The UUID of the ext2/3/4 filesystem or swap area whose first bytes are
/// `head` (at least 4096 bytes for swap), or `None`. What the device holds
/// is `kjump::target::signature`'s answer.
pub fn signature_uuid(head: &[u8]) -> Option<[u8; 16]> {
    let off = match crate::target::signature(head) {
        crate::target::Signature::Ext => EXT4_UUID_OFF,
        crate::target::Signature::Swap => SWAP_UUID_OFF,
        _ => return None,
    };
    head.get(off..off.checked_add(16)?)?.try_into().ok()
}

// ---------------------------------------------------------------------------
// Reading A's state.

/// The active swap areas in `/proc/swaps`: (path, is a partition).
pub fn parse_swaps(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_ascii_whitespace();
            let path = f.next()?;
            let kind = f.next()?;
            Some((crate::target::unescape_mount_field(path), kind == "partition"))
        })
        .collect()
}

/// `/sys/dev/block/MAJ:MIN`, resolved to its directory under `/sys/devices`.
fn sysfs_dir(major: u32, minor: u32) -> Option<PathBuf> {
    std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()
}

/// The dm-crypt device under the block device whose sysfs directory is
/// `dir` (itself, or one it is stacked on: LVM on LUKS, say), if any, by
/// name. dm-crypt devices say so in `dm/uuid` (`CRYPT-…`); the devices a
/// device-mapper device is built on are its `slaves`.
fn crypt_under(dir: &Path, depth: u32) -> Option<String> {
    if depth > 8 {
        return None;
    }
    let name = || dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if std::fs::read_to_string(dir.join("dm").join("uuid")).is_ok_and(|u| u.starts_with("CRYPT-")) {
        let dm_name = std::fs::read_to_string(dir.join("dm").join("name")).map(|n| n.trim().to_string()).unwrap_or_default();
        return Some(if dm_name.is_empty() { name() } else { format!("{} ({dm_name})", name()) });
    }
    let slaves = std::fs::read_dir(dir.join("slaves")).ok()?;
    slaves.flatten().find_map(|e| crypt_under(&e.path(), depth + 1))
}

/// The first of A's devices `uses` that sits on dm-crypt, worded for the
/// user: an image of A's memory then holds that volume's key, which the
/// user had kept off the disk. `sys_dev_block` is `/sys/dev/block`.
pub fn on_dm_crypt_in(sys_dev_block: &Path, uses: &[InUse]) -> Option<String> {
    uses.iter().find_map(|u| {
        let dir = std::fs::canonicalize(sys_dev_block.join(format!("{}:{}", u.major, u.minor))).ok()?;
        crypt_under(&dir, 0).map(|c| format!("{} ({}) is on the encrypted volume {c}", u.name, u.kind.describe()))
    })
}

/// [`on_dm_crypt_in`] on this system.
pub fn on_dm_crypt(uses: &[InUse]) -> Option<String> {
    on_dm_crypt_in(Path::new("/sys/dev/block"), uses)
}

fn name_of(major: u32, minor: u32) -> String {
    sysfs_dir(major, minor).and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| format!("{major}:{minor}"))
}

fn uuid_of(name: &str) -> Option<[u8; 16]> {
    crate::target::read_head(&Path::new("/dev").join(name)).ok().as_deref().and_then(signature_uuid)
}

/// Where btrfs lists the devices of each filesystem (`<fsid>/devices/*`).
const SYS_FS_BTRFS: &str = "/sys/fs/btrfs";

/// The device number of `path` if it is a block device node.
fn block_devnum(path: &str) -> Option<(u32, u32)> {
    let st = rustix::fs::stat(path).ok()?;
    (FileType::from_raw_mode(st.st_mode) == FileType::BlockDevice).then(|| (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)))
}

/// The block devices under a mount whose own device number is anonymous
/// (major 0, as btrfs and bcachefs show): the device paths of its source
/// (bcachefs joins several with `:`) as `devnum` resolves them, and for
/// btrfs every device of each filesystem in `btrfs` (`/sys/fs/btrfs`)
/// that lists one of those (`<fsid>/devices/*/dev`). Sources that name
/// no block device (tmpfs, overlay, NFS) give nothing.
fn backing_devices(m: &crate::target::MountEntry, btrfs: &Path, devnum: &dyn Fn(&str) -> Option<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = m.source.split(':').filter(|p| p.starts_with('/')).filter_map(devnum).collect();
    if m.fstype == "btrfs" && !out.is_empty() {
        for fs in std::fs::read_dir(btrfs).into_iter().flatten().flatten() {
            let devices: Vec<(u32, u32)> = std::fs::read_dir(fs.path().join("devices"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|d| crate::target::parse_devnum(std::fs::read_to_string(d.path().join("dev")).ok()?.trim()))
                .collect();
            if devices.iter().any(|d| out.contains(d)) {
                out.extend(devices);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Opens `dev` read-only with `O_EXCL` and keeps it so (while the returned
/// descriptor lives), so that nothing here can mount it, swap on it or
/// stack a device on it between kjump's checks and the jump; or says, for
/// the user, why it cannot: a block device held by a mounted filesystem of
/// any type, active swap, device-mapper or md makes the kernel answer
/// `EBUSY`, whatever kjump knows of them.
pub fn hold_exclusive(dev: &Path) -> Result<Result<rustix::fd::OwnedFd, String>, Error> {
    use rustix::fs::{Mode, OFlags};
    match rustix::fs::open(dev, OFlags::RDONLY | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NONBLOCK, Mode::empty()) {
        Ok(fd) => Ok(Ok(fd)),
        Err(rustix::io::Errno::BUSY) => {
            Ok(Err(format!("{} is busy: the kernel says something here holds it (a mounted filesystem, swap, device-mapper or md)", dev.display())))
        }
        Err(e) => Err(Error::sys(format!("opening {} exclusively to see whether this system uses it", dev.display()), e)),
    }
}

/// What A uses now: block-backed mounts and swap partitions (swap files
/// count as the mount they live on).
pub fn collect() -> Result<Vec<InUse>, Error> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::io("reading /proc/self/mountinfo", e))?;
    let mut out: Vec<InUse> = Vec::new();
    let mut add = |kind: Kind, major: u32, minor: u32| {
        if let Some(e) = out.iter_mut().find(|e| e.major == major && e.minor == minor) {
            // Read-write wins over read-only when a device is mounted twice.
            if kind == Kind::MountedReadWrite {
                e.kind = kind;
            }
            return;
        }
        // Only real block devices: a major of 0 is an anonymous device
        // (proc, tmpfs, overlay...), and sysfs knows every block device.
        if major == 0 || sysfs_dir(major, minor).is_none() {
            return;
        }
        let name = name_of(major, minor);
        let uuid = uuid_of(&name);
        out.push(InUse { kind, major, minor, uuid, name });
    };
    for m in crate::target::parse_mountinfo(&mounts) {
        let kind = if m.read_write { Kind::MountedReadWrite } else { Kind::MountedReadOnly };
        if m.major == 0 {
            // btrfs and bcachefs show an anonymous device number: find
            // the disks under them.
            for (major, minor) in backing_devices(&m, Path::new(SYS_FS_BTRFS), &block_devnum) {
                add(kind, major, minor);
            }
        } else {
            add(kind, m.major, m.minor);
        }
    }
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    for (path, partition) in parse_swaps(&swaps) {
        if !partition {
            continue;
        }
        if let Ok(st) = rustix::fs::stat(path.as_str()) {
            add(Kind::Swap, rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
        }
    }
    if out.len() > MAX_ENTRIES {
        out.truncate(MAX_ENTRIES);
    }
    Ok(out)
}

/// The whole disk a partition's sysfs directory belongs to (itself for a disk).
fn whole_disk(dir: &Path) -> PathBuf {
    if dir.join("partition").exists() {
        if let Some(parent) = dir.parent() {
            return parent.to_path_buf();
        }
    }
    dir.to_path_buf()
}

/// Names of the devices holding `dir` (device-mapper, md), and those of
/// its partitions.
fn holders(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut look = |d: &Path| {
        if let Ok(rd) = std::fs::read_dir(d.join("holders")) {
            names.extend(rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())));
        }
    };
    look(dir);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().join("partition").exists() {
                look(&e.path());
            }
        }
    }
    names
}

/// The part of `uses` that goes to B and into the image header: devices
/// A writes (mounted read-write, swap) first, then read-only mounts, at
/// most [`MAX_ENTRIES`].
pub fn table_for_b(uses: &[InUse]) -> Vec<InUse> {
    let mut table = uses.to_vec();
    table.sort_by_key(|u| u.kind == Kind::MountedReadOnly);
    table.truncate(MAX_ENTRIES);
    table
}

/// Why A must not let B write `dev`, or `None` when nothing of A's is on
/// it: `dev` itself, a partition of it, or the disk it is a partition of
/// is mounted (in any mode) or active swap, or device-mapper or md holds
/// it. Worded for the user.
pub fn conflict(dev: &Path, uses: &[InUse]) -> Result<Option<String>, Error> {
    let st = rustix::fs::stat(dev).map_err(|e| Error::sys(format!("examining {}", dev.display()), e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::BlockDevice {
        return Err(crate::target::Error::NotBlockDevice { path: dev.to_path_buf() }.into_crate());
    }
    let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    let Some(dir) = sysfs_dir(major, minor) else {
        return Ok(None);
    };
    let disk = whole_disk(&dir);
    for u in uses {
        let used = if u.major == major && u.minor == minor {
            Some(String::new())
        } else {
            sysfs_dir(u.major, u.minor).and_then(|d| {
                if d.parent() == Some(dir.as_path()) && d.join("partition").exists() {
                    Some(format!(" (its partition {})", u.name))
                } else if disk != dir && d == disk {
                    Some(format!(" (its whole disk {})", u.name))
                } else {
                    None
                }
            })
        };
        if let Some(which) = used {
            return Ok(Some(format!("{}{which} is {} here", dev.display(), u.kind.describe())));
        }
    }
    let held = holders(&dir);
    if !held.is_empty() {
        return Ok(Some(format!("{} is in use by device-mapper or md ({})", dev.display(), held.join(", "))));
    }
    Ok(None)
}

/// B's and D's check before writing or mounting `dev`: refuses when the
/// filesystem or swap area on it, or on one of its partitions, is one A
/// was using (matched by UUID).
pub fn check_device(dev: &Path, uses: &[InUse]) -> Result<(), Error> {
    let mut heads: Vec<(String, Vec<u8>)> = Vec::new();
    if let Ok(h) = crate::target::read_head(dev) {
        heads.push((dev.display().to_string(), h));
    }
    if let Ok(st) = rustix::fs::stat(dev) {
        if let Some(dir) = sysfs_dir(rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)) {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.path().join("partition").exists() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if let Ok(h) = crate::target::read_head(&Path::new("/dev").join(&name)) {
                            heads.push((format!("/dev/{name}"), h));
                        }
                    }
                }
            }
        }
    }
    for (name, head) in &heads {
        let Some(uuid) = signature_uuid(head) else { continue };
        if let Some(u) = uses.iter().find(|u| u.uuid == Some(uuid)) {
            return Err(Error::Msg(format!(
                "refusing to touch {name}: it holds UUID {}, which A has {} (as {}); writing it would corrupt A",
                crate::target::format_uuid(&uuid),
                u.kind.describe(),
                u.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<InUse> {
        vec![
            InUse { kind: Kind::MountedReadWrite, major: 254, minor: 0, uuid: Some([7; 16]), name: "vda".into() },
            InUse { kind: Kind::Swap, major: 254, minor: 17, uuid: None, name: "vdb1".into() },
            InUse { kind: Kind::MountedReadOnly, major: 8, minor: 3, uuid: Some([1; 16]), name: "x".repeat(40) },
        ]
    }

    #[test]
    fn table_round_trip_truncates_long_names() {
        let t = encode_table(&sample()).unwrap();
        let back = decode_table(&t).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[..2], sample()[..2]);
        assert_eq!(back[2].name, "x".repeat(NAME_LEN));
        assert_eq!(decode_table(&[0u8; TABLE_LEN]).unwrap(), vec![]);
    }

    #[test]
    fn hostile_tables_are_refused() {
        assert_eq!(decode_table(&[0u8; 10]), Err(BadTable("length")));
        let mut t = encode_table(&sample()).unwrap();
        t[0] = 41;
        assert_eq!(decode_table(&t), Err(BadTable("entry count")));
        let mut t = encode_table(&sample()).unwrap();
        t[8] = 9;
        assert_eq!(decode_table(&t), Err(BadTable("kind")));
        let mut t = encode_table(&sample()).unwrap();
        t[9] = 2;
        assert_eq!(decode_table(&t), Err(BadTable("UUID flag")));
        let mut t = encode_table(&sample()).unwrap();
        t[8 + 28] = 0xff;
        assert_eq!(decode_table(&t), Err(BadTable("name")));
        let many = vec![sample()[0].clone(); MAX_ENTRIES + 1];
        assert!(encode_table(&many).is_err());
    }

    #[test]
    fn signatures() {
        let mut ext4 = vec![0u8; 8192];
        ext4[1024 + 0x38] = 0x53;
        ext4[1024 + 0x39] = 0xef;
        ext4[1024 + 0x68..1024 + 0x78].copy_from_slice(&[0xab; 16]);
        assert_eq!(signature_uuid(&ext4), Some([0xab; 16]));
        let mut swap = vec![0u8; 4096];
        swap[4086..].copy_from_slice(b"SWAPSPACE2");
        swap[1036..1052].copy_from_slice(&[3; 16]);
        assert_eq!(signature_uuid(&swap), Some([3; 16]));
        assert_eq!(signature_uuid(&swap[..4000]), None);
        assert_eq!(signature_uuid(&[0u8; 8192]), None);
        assert_eq!(signature_uuid(&[]), None);
        assert_eq!(crate::target::format_uuid(&[0xab; 16]), "abababab-abab-abab-abab-abababababab");
    }

    #[test]
    fn table_for_b_keeps_what_a_writes_first() {
        let mut many = vec![InUse { kind: Kind::MountedReadOnly, major: 8, minor: 1, uuid: None, name: "ro".into() }; MAX_ENTRIES];
        many.push(sample()[0].clone());
        many.push(sample()[1].clone());
        let t = table_for_b(&many);
        assert_eq!(t.len(), MAX_ENTRIES);
        assert_eq!(t[..2], sample()[..2]);
        assert!(encode_table(&t).is_ok());
    }

    #[test]
    fn conflict_needs_a_block_device() {
        let f = std::env::temp_dir().join(format!("kjump-in-use-{}", std::process::id()));
        std::fs::write(&f, b"x").unwrap();
        let err = conflict(&f, &[]).unwrap_err().to_string();
        let _ = std::fs::remove_file(&f);
        assert!(err.contains("is not a block device"), "{err}");
        assert!(conflict(&f, &[]).is_err(), "a missing path");
    }

    /// A sysfs-like tree: disk `sda` held by `dm-0`, its partition `sda1`
    /// held by `md127`, partition `sda2` held by nothing, and a `queue`
    /// directory that is no partition (its `holders` must not count).
    #[test]
    fn holders_of_a_disk_and_of_its_partitions_are_found() {
        let root = std::env::temp_dir().join(format!("kjump-holders-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let disk = root.join("sda");
        for d in ["holders/dm-0", "sda1/holders/md127", "sda2/holders", "queue/holders/not-a-holder"] {
            std::fs::create_dir_all(disk.join(d)).unwrap();
        }
        for p in ["sda1", "sda2"] {
            std::fs::write(disk.join(p).join("partition"), b"1\n").unwrap();
        }
        let mut held = holders(&disk);
        held.sort();
        let (of_sda1, of_sda2) = (holders(&disk.join("sda1")), holders(&disk.join("sda2")));
        let wholes = (whole_disk(&disk.join("sda1")), whole_disk(&disk));
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(held, ["dm-0", "md127"]);
        assert_eq!(of_sda1, ["md127"]);
        assert!(of_sda2.is_empty());
        assert_eq!(wholes, (disk.clone(), disk));
        assert!(holders(&root.join("gone")).is_empty(), "a missing directory holds nothing");
    }

    /// A fake `/sys/fs/btrfs`: filesystem `aaaa` on vdb and vdc, `bbbb`
    /// on vdd; devices named by their mount source through a fake stat.
    #[test]
    fn devices_under_anonymous_mounts_are_found() {
        let root = std::env::temp_dir().join(format!("kjump-btrfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (fs, dev, num) in [("aaaa", "vdb", "254:16"), ("aaaa", "vdc", "254:32"), ("bbbb", "vdd", "254:48")] {
            let d = root.join(fs).join("devices").join(dev);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("dev"), format!("{num}\n")).unwrap();
        }
        std::fs::create_dir_all(root.join("features")).unwrap();
        std::fs::create_dir_all(root.join("cccc/devices/broken")).unwrap();
        let devnum = |p: &str| match p {
            "/dev/vdb" => Some((254, 16)),
            "/dev/vdd" => Some((254, 48)),
            "/dev/vde" => Some((254, 64)),
            "/dev/vdf" => Some((254, 80)),
            _ => None,
        };
        let mount = |fstype: &str, source: &str| crate::target::MountEntry {
            major: 0,
            minor: 40,
            mount_point: "/m".into(),
            read_write: true,
            fstype: fstype.into(),
            source: source.into(),
        };
        let btrfs = backing_devices(&mount("btrfs", "/dev/vdb"), &root, &devnum);
        let btrfs_d = backing_devices(&mount("btrfs", "/dev/vdd"), &root, &devnum);
        let bcachefs = backing_devices(&mount("bcachefs", "/dev/vde:/dev/vdf"), &root, &devnum);
        let missing_sysfs = backing_devices(&mount("btrfs", "/dev/vdb"), &root.join("gone"), &devnum);
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(btrfs, [(254, 16), (254, 32)]);
        assert_eq!(btrfs_d, [(254, 48)]);
        assert_eq!(bcachefs, [(254, 64), (254, 80)]);
        assert_eq!(missing_sysfs, [(254, 16)], "the source alone when sysfs says nothing");
        for (fstype, source) in [("tmpfs", "tmpfs"), ("overlay", "overlay"), ("nfs", "server:/export"), ("btrfs", "/dev/unknown"), ("btrfs", "")] {
            assert!(backing_devices(&mount(fstype, source), &root, &devnum).is_empty(), "{fstype} {source}");
        }
    }

    #[test]
    fn exclusive_open_of_a_file_is_no_refusal() {
        // O_EXCL without O_CREAT means nothing for a regular file; a
        // missing path is an error that says what was done.
        let f = std::env::temp_dir().join(format!("kjump-excl-{}", std::process::id()));
        std::fs::write(&f, b"x").unwrap();
        let ok = hold_exclusive(&f);
        let _ = std::fs::remove_file(&f);
        assert!(matches!(ok, Ok(Ok(_))), "{ok:?}");
        let err = hold_exclusive(&f).unwrap_err().to_string();
        assert!(err.contains("opening") && err.contains("exclusively"), "{err}");
    }

    #[test]
    fn devices_on_dm_crypt_are_found_through_lvm() {
        // /sys/block: dm-1 (LVM root) on dm-0 (LUKS) on nvme0n1p2; vda plain.
        let root = std::env::temp_dir().join(format!("kjump-crypt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let block = root.join("block");
        let dev = root.join("dev-block");
        for d in ["dm-0/dm", "dm-0/slaves", "dm-1/dm", "dm-1/slaves", "vda/slaves", "nvme0n1p2"] {
            std::fs::create_dir_all(block.join(d)).unwrap();
        }
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(block.join("dm-0/dm/uuid"), "CRYPT-LUKS2-0123abcd-luks-0123\n").unwrap();
        std::fs::write(block.join("dm-0/dm/name"), "luks-0123\n").unwrap();
        std::fs::write(block.join("dm-1/dm/uuid"), "LVM-abcdef\n").unwrap();
        std::os::unix::fs::symlink(block.join("nvme0n1p2"), block.join("dm-0/slaves/nvme0n1p2")).unwrap();
        std::os::unix::fs::symlink(block.join("dm-0"), block.join("dm-1/slaves/dm-0")).unwrap();
        std::os::unix::fs::symlink(block.join("dm-1"), dev.join("253:1")).unwrap();
        std::os::unix::fs::symlink(block.join("vda"), dev.join("254:0")).unwrap();
        let root_fs = InUse { kind: Kind::MountedReadWrite, major: 253, minor: 1, uuid: None, name: "dm-1".into() };
        let plain = InUse { kind: Kind::MountedReadWrite, major: 254, minor: 0, uuid: None, name: "vda".into() };
        assert_eq!(on_dm_crypt_in(&dev, std::slice::from_ref(&plain)), None);
        let why = on_dm_crypt_in(&dev, &[plain, root_fs]).unwrap();
        assert_eq!(why, "dm-1 (mounted read-write) is on the encrypted volume dm-0 (luks-0123)");
        // A loop of slaves (a hostile tree) ends.
        std::os::unix::fs::symlink(block.join("dm-1"), block.join("dm-0/slaves/loop")).unwrap();
        std::fs::write(block.join("dm-0/dm/uuid"), "LVM-x\n").unwrap();
        let looped = InUse { kind: Kind::Swap, major: 253, minor: 1, uuid: None, name: "dm-1".into() };
        assert_eq!(on_dm_crypt_in(&dev, &[looped]), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn swaps() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/vdb1                               partition\t1048572\t\t0\t\t-2\n/swap\\040file file 100 0 -3\n";
        assert_eq!(parse_swaps(text), vec![("/dev/vdb1".to_string(), true), ("/swap file".to_string(), false)]);
        assert_eq!(parse_swaps(""), vec![]);
        assert_eq!(parse_swaps("header only\n"), vec![]);
    }
}
