//! kjump never writes what A is using, and a power cut while B writes
//! leaves a normal boot and clean disks.

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{a_initramfs, fsck_clean, paths, sparse_disk, TempDir, Vm, VmConfig};

fn boot(name: &str, script: &str, disks: &[PathBuf], append: &str) -> Vm {
    let p = paths();
    let initrd = a_initramfs(&p, script);
    Vm::start(&p, VmConfig { name, memory_mib: 1024, cpus: 2, initrd, append, echo: false, disks: disks.to_vec(), uuid: None })
}

/// `mkfs.ext4` on `disk`, with `extra` options and an optional size.
fn mkfs(disk: &Path, extra: &[&str], size: Option<&str>) {
    let ok = Command::new("mkfs.ext4").args(["-q", "-F"]).args(extra).arg(disk).args(size).status().unwrap().success();
    assert!(ok, "mkfs.ext4 {}", disk.display());
}

const POWER_CUT: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /data
if grep -q kjump_boot=c /proc/cmdline; then
  echo "C: booting, trying kjump resume"
  kjump resume --target /dev/vda
  echo "C: normal boot (kjump resume exited $?)"
  mount -t ext4 /dev/vdb /data
  echo "C: file: $(cat /data/log.txt | tr '\n' '|')"
  umount /data && echo "C: unmounted /data"
  poweroff -f
fi
mount -t ext4 /dev/vdb /data
head -c 268435456 /dev/urandom > /root/random
echo "written before hibernate" > /data/log.txt
echo "A: workload ready"
# deflate keeps B writing for seconds, so the cut lands while it writes
# (with lz4 a fast host saved 256 MiB of random bytes before the first
# progress line).
kjump hibernate --target /dev/vda --compress deflate
echo "A: kjump exited $?"
poweroff -f
"#;

/// QEMU is killed while B writes the image. The next boot is a normal
/// one (the image is incomplete), A's data written before the hibernate
/// is on disk (kjump synced), and the filesystem is clean.
#[test]
fn power_cut_while_b_writes_then_normal_boot_and_clean_disks() {
    let dir = TempDir::new("savecut-disks");
    let target = sparse_disk(&dir.0, "target.img", 1200);
    let data = sparse_disk(&dir.0, "data.img", 64);
    mkfs(&data, &[], None);
    let disks = vec![target.clone(), data.clone()];
    let mut a = boot("savecut-a", POWER_CUT, &disks, "");
    a.expect_in_order(&["A: workload ready", "kjump-init: mode save", "kjump-init: writing the image to /dev/vda", "kjump-init: saving "]);
    a.kill(); // the power cut, while B writes

    let out = Command::new(env!("CARGO_BIN_EXE_kjump")).args(["image", "verify"]).arg(&target).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains("incomplete"), "{text}");

    let mut c = boot("savecut-c", POWER_CUT, &disks, "kjump_boot=c");
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        "resume: not resuming: the image on /dev/vda is incomplete: its save never finished",
        "C: normal boot (kjump resume exited 3)",
        "C: file: written before hibernate|",
        "C: unmounted /data",
    ]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
    fsck_clean(&data);
}

const REFUSALS: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /data /ro /part
mount -t ext4 /dev/vda /data
mount -t ext4 -o ro /dev/vdb /ro
mount -t ext4 /dev/vdc1 /part
mkswap /dev/vdd > /dev/null && swapon /dev/vdd
echo "A: ready"
try() { echo "A: try $*"; kjump hibernate --after resume "$@" 2>&1; echo "A: exit $?"; }
try --target /dev/vda
try --target /dev/vdb
try --target /dev/vdb:/kjump.img
try --target /dev/vdc
try --target /dev/vdd
echo "A: try B on /dev/vda"; KJUMP_TEST_UNCHECKED_APPEND=kjump.target=/dev/vda kjump hibernate --after resume --target /dev/vde 2>&1; echo "A: exit $?"
echo "still here" > /data/after.txt
swapoff /dev/vdd
umount /data /ro /part && echo "A: unmounted"
poweroff -f
"#;

/// Writes an MBR with one Linux partition from 1 MiB to the end of a
/// `mib` MiB disk.
fn partition(disk: &Path, mib: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&(((mib << 20) / 512 - 2048) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let mut f = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&mbr).unwrap();
}

/// `kjump hibernate` refuses every target A uses: mounted read-write,
/// mounted read-only (raw and as a file's filesystem), a disk whose
/// partition is mounted, active swap. And B refuses, on its own, a device
/// whose filesystem A has mounted (the target switched behind A's back on
/// B's command line), going back to A with the reason.
#[test]
fn targets_a_uses_are_refused_in_a_and_in_b() {
    let dir = TempDir::new("refusals-disks");
    let rw = sparse_disk(&dir.0, "rw.img", 64);
    let ro = sparse_disk(&dir.0, "ro.img", 64);
    let parted = sparse_disk(&dir.0, "parted.img", 64);
    let swap = sparse_disk(&dir.0, "swap.img", 64);
    let free = sparse_disk(&dir.0, "free.img", 1200);
    mkfs(&rw, &[], None);
    mkfs(&ro, &[], None);
    mkfs(&parted, &["-E", "offset=1048576"], Some("63M"));
    partition(&parted, 64);
    let disks = vec![rw.clone(), ro.clone(), parted, swap, free.clone()];
    let mut a = boot("refusals-a", REFUSALS, &disks, "");
    a.expect_in_order(&[
        "A: ready",
        "A: try --target /dev/vda",
        "hibernate: /dev/vda is mounted read-write here",
        "A: exit 1",
        "A: try --target /dev/vdb",
        "hibernate: /dev/vdb is mounted read-only here",
        "A: exit 1",
        "A: try --target /dev/vdb:/kjump.img",
        "hibernate: /dev/vdb is mounted read-only here",
        "A: exit 1",
        "A: try --target /dev/vdc",
        "hibernate: /dev/vdc (its partition vdc1) is mounted read-write here",
        "A: exit 1",
        "A: try --target /dev/vdd",
        "hibernate: /dev/vdd is in use as swap here",
        "A: exit 1",
        "A: try B on /dev/vda",
        "kjump-init: mode save",
        "kjump-init: error: refusing to touch /dev/vda: it holds UUID",
        "kjump-init: restored A's low memory; jumping back to A",
        "hibernate failed in the hibernation kernel: refusing to touch /dev/vda",
        "A: exit 1",
        "A: unmounted",
    ]);
    a.wait_exit();
    a.expect_absent("kjump-init: writing the image");
    fsck_clean(&rw);
    fsck_clean(&ro);
    let cat = Command::new("debugfs").args(["-R", "cat /after.txt"]).arg(&rw).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "still here\n");
    // Nothing was written to the free disk either: B stopped first.
    let allocated = std::fs::metadata(&free).map(|m| std::os::unix::fs::MetadataExt::blocks(&m)).unwrap();
    assert_eq!(allocated, 0, "B wrote to {}", free.display());
}

/// Writes `bytes` at byte `offset` of the disk image `disk`.
fn poke(disk: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// The first `len` bytes from `offset` of `disk`.
fn peek(disk: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(disk).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact(&mut b).unwrap();
    b
}

/// An XFS superblock's start: magic, block size 4096.
const XFS_SB: &[u8] = b"XFSB\x00\x00\x10\x00";
/// A LUKS2 header's start (magic, version 2, header size 16 KiB) and its
/// secondary header's, at 16 KiB.
const LUKS2_HDR: &[u8] = b"LUKS\xba\xbe\x00\x02\x00\x00\x00\x00\x00\x00\x40\x00";
const LUKS2_SECONDARY: &[u8] = b"SKUL\xba\xbe\x00\x02\x00\x00\x00\x00\x00\x00\x40\x00";
const MIB: u64 = 1 << 20;

const FOREIGN: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "session token 4711" > /root/session
try() { echo "A: try $*"; kjump hibernate --after resume "$@" 2>&1; echo "A: exit $?"; }
try --target /dev/vda
try --target /dev/vdb
# A's check passes, B's must catch it: the partitions' page cache keeps
# their empty start in A (held open, read once), while the signature is
# written through the whole disk below them, so only B, booting fresh,
# reads what the disk holds.
exec 3</dev/vdc1 4</dev/vdd1
head -c 69632 /dev/vdc1 > /dev/null
head -c 69632 /dev/vdd1 > /dev/null
printf 'XFSB\000\000\020\000' | dd of=/dev/vdc bs=1048576 seek=1 conv=notrunc 2>/dev/null
printf 'LUKS\272\276\000\002\000\000\000\000\000\000\100\000' | dd of=/dev/vdd bs=1048576 seek=1 conv=notrunc 2>/dev/null
sync
try --target /dev/vdc1
try --target /dev/vdd1
exec 3<&- 4<&-
echo "A: after: $(cat /root/session)"
poweroff -f
"#;

/// Targets holding an XFS filesystem or a LUKS2 volume (written onto the
/// disk from the host) are refused in A; and when A's check is bypassed
/// (A reads a stale cached start of the partition, the disk below holds
/// the signature), B refuses them on its own and goes back to A with the
/// reason. A's session goes on after each refusal, and not a byte of the
/// disks changed.
#[test]
fn xfs_and_luks2_targets_are_refused_in_a_and_in_b() {
    let dir = TempDir::new("foreign-disks");
    let xfs = sparse_disk(&dir.0, "xfs.img", 1200);
    let luks = sparse_disk(&dir.0, "luks.img", 1200);
    let xfs_b = sparse_disk(&dir.0, "xfs-b.img", 1200);
    let luks_b = sparse_disk(&dir.0, "luks-b.img", 1200);
    poke(&xfs, 0, XFS_SB);
    poke(&luks, 0, LUKS2_HDR);
    poke(&luks, 0x4000, LUKS2_SECONDARY);
    partition(&xfs_b, 1200);
    partition(&luks_b, 1200);
    let disks = vec![xfs.clone(), luks.clone(), xfs_b.clone(), luks_b.clone()];
    let before: Vec<Vec<u8>> = disks.iter().map(|d| peek(d, 0, 2 * MIB as usize)).collect();
    let mut a = boot("foreign-a", FOREIGN, &disks, "");
    a.expect_in_order(&[
        "A: try --target /dev/vda",
        "hibernate: refusing to write over /dev/vda: it holds an XFS filesystem",
        "A: exit 1",
        "A: try --target /dev/vdb",
        "hibernate: refusing to write over /dev/vdb: it holds a LUKS2 encrypted volume",
        "A: exit 1",
        "A: try --target /dev/vdc1",
        "kjump-init: mode save",
        "kjump-init: error: refusing to write over /dev/vdc1: it holds an XFS filesystem",
        "kjump-init: restored A's low memory; jumping back to A",
        "hibernate failed in the hibernation kernel: refusing to write over /dev/vdc1: it holds an XFS filesystem",
        "A: exit 1",
        "A: try --target /dev/vdd1",
        "kjump-init: error: refusing to write over /dev/vdd1: it holds a LUKS2 encrypted volume",
        "hibernate failed in the hibernation kernel: refusing to write over /dev/vdd1: it holds a LUKS2 encrypted volume",
        "A: exit 1",
        "A: after: session token 4711",
    ]);
    a.wait_exit();
    a.expect_absent("kjump-init: writing the image");
    // The host's disks hold what the test put there, and A's writes of
    // the signatures through the whole disks: nothing from kjump.
    assert_eq!(peek(&xfs, 0, 2 * MIB as usize), before[0], "xfs disk changed");
    assert_eq!(peek(&luks, 0, 2 * MIB as usize), before[1], "luks disk changed");
    let mut want = before[2].clone();
    want[MIB as usize..MIB as usize + XFS_SB.len()].copy_from_slice(XFS_SB);
    assert!(peek(&xfs_b, 0, 2 * MIB as usize) == want, "the XFS partition changed beyond its signature");
    let mut want = before[3].clone();
    want[MIB as usize..MIB as usize + LUKS2_HDR.len()].copy_from_slice(LUKS2_HDR);
    assert!(peek(&luks_b, 0, 2 * MIB as usize) == want, "the LUKS2 partition changed beyond its signature");
}

const FILES: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /data
if grep -q kjump_boot=c /proc/cmdline; then
  echo "C: booting, trying kjump resume"
  kjump resume --target /dev/vda:/old.kjump
  echo "C: normal boot (kjump resume exited $?)"
  poweroff -f
fi
mount -t ext4 /dev/vda /data
mkdir /data/real
echo precious > /data/real/keep.txt
ln -s /real/keep.txt /data/link.kjump
ln -s /real /data/dirlink
mkfifo /data/fifo.kjump
echo old > /data/old.kjump && chmod 0644 /data/old.kjump
umount /data
echo "session token 4712" > /root/session
try() { echo "A: try $*"; kjump hibernate "$@" 2>&1; echo "A: exit $?"; }
try --target /dev/vda:/link.kjump --after resume
try --target /dev/vda:/dirlink/new.kjump --after resume
try --target /dev/vda:/fifo.kjump --after resume
try --target /dev/vda:/old.kjump
mount -t ext4 /dev/vda /data
echo "A: keep: $(cat /data/real/keep.txt)"
echo "A: mode $(stat -c %a /data/old.kjump)"
[ -e /data/real/new.kjump ] && echo "A: FOLLOWED THE LINK"
umount /data && echo "A: unmounted"
echo "A: after: $(cat /root/session)"
poweroff -f
"#;

/// B opens a file target without following symbolic links (neither the
/// file nor a directory on its path), refuses a FIFO, and leaves an image
/// file it writes owner-only (0600), even one that existed as 0644; D
/// opens that file the same way and resumes A from it.
#[test]
fn file_targets_follow_no_symlinks_and_end_owner_only() {
    let dir = TempDir::new("file-targets");
    let data = sparse_disk(&dir.0, "data.img", 1200);
    mkfs(&data, &[], None);
    let disks = vec![data.clone()];
    let mut a = boot("files-a", FILES, &disks, "");
    a.expect_in_order(&[
        "A: try --target /dev/vda:/link.kjump",
        "kjump-init: error: opening the image file /link.kjump (on /mnt): the path goes through a symbolic link",
        "hibernate failed in the hibernation kernel: opening the image file /link.kjump",
        "A: exit 1",
        "A: try --target /dev/vda:/dirlink/new.kjump",
        "hibernate failed in the hibernation kernel: opening the image file /dirlink/new.kjump (on /mnt): the path goes through a symbolic link",
        "A: exit 1",
        "A: try --target /dev/vda:/fifo.kjump",
        "hibernate failed in the hibernation kernel: opening the image file /fifo.kjump (on /mnt): it is not a regular file",
        "A: exit 1",
        "A: try --target /dev/vda:/old.kjump",
        "kjump-init: writing the image to /dev/vda:/old.kjump",
        "kjump-init: image committed; powering off",
    ]);
    a.wait_exit();
    // While A is hibernated, the image file is owner-only.
    let stat = Command::new("debugfs").args(["-R", "stat /old.kjump"]).arg(&data).output().unwrap();
    let text = String::from_utf8_lossy(&stat.stdout);
    assert!(text.contains("Mode:  0600"), "{text}");

    let mut c = boot("files-c", FILES, &disks, "kjump_boot=c");
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        "kjump-init: mode restore",
        "A: exit 0",
        "A: keep: precious",
        "A: mode 600",
        "A: unmounted",
        "A: after: session token 4712",
    ]);
    c.wait_exit();
    c.expect_absent("A: FOLLOWED THE LINK");
    c.expect_absent("C: normal boot");
    fsck_clean(&data);
}
