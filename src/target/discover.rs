//! Runs in A, B, C and D: finding the device a target names, without
//! udev (B has none): scanning `/sys/class/block`, making missing device
//! nodes, reading each device's first bytes; and the device's identity,
//! which A records and B checks so that a disk the kernels name differently
//! is never taken for the target.

use core::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode, OFlags, CWD};

use super::signature::{ext4_identity, gpt_partitions, hex, mbr_partitions, partition_name, HEAD_LEN};
use super::{is_mbr_partuuid, is_uuid, seconds, Device, Error, Target};

/// How often [`wait_for`] looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where the kernel lists block devices.
const SYS_CLASS_BLOCK: &str = "/sys/class/block";

/// Where device nodes live.
const DEV: &str = "/dev";

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

/// Makes this kernel forget what it read from its disks: every block
/// device's cached data is dropped and every whole disk's partition table
/// is read again. A resident hibernation kernel (`kjump::handoff::resident`) calls
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
        crate::sys::blockdev::flush_buffers(&fd).map_err(|e| crate::Error::sys(format!("dropping the cached data of {}", node.display()), e))?;
        if !roots.sys_block.join(&name).join("partition").exists() {
            disks.push((node, fd));
        }
    }
    for (node, fd) in disks {
        match crate::sys::blockdev::reread_partitions(&fd) {
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

impl std::error::Error for BadIdentity {}

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::target::signature::tests::{ext4, guid, guid_text, mbr, Gpt, ESP_TEXT, FS_UUID, FS_UUID_TEXT};
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    // ---- resolution against a fake sysfs and /dev ---------------------------

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A temporary tree with `sys/class/block`, `dev` and `images`.
    pub(crate) struct Tree {
        pub(crate) root: PathBuf,
    }

    impl Tree {
        pub(crate) fn new() -> Self {
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
}
