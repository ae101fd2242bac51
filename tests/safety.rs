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
