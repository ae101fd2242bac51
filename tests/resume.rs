//! Hibernate, power off, boot again, resume: two QEMU processes on the
//! same disks. A's workload, its counter, an open file on an ext4 disk and
//! CPU 1 all carry on; a third boot finds the image consumed.

mod harness;

use std::path::PathBuf;
use std::process::Command;

use harness::{a_initramfs, paths, sparse_disk, TempDir, Vm, VmConfig};

const SCRIPT: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if grep -q kjump_boot=c /proc/cmdline; then
  echo "C: booting, trying kjump resume"
  kjump resume --target /dev/vda
  echo "C: normal boot (kjump resume exited $?)"
  poweroff -f
fi
mkdir -p /data
mount -t ext4 /dev/vdb /data
head -c 134217728 /dev/urandom > /root/random
yes "KJUMP-MARKER-7f3a9c the quick brown fox" | head -c 134217728 > /root/text
head -c 134217728 /dev/zero > /root/zeros
before=$(cat /root/random /root/text /root/zeros | md5sum)
echo "A: workload ready, md5 $before"
( i=0; while true; do i=$((i+1)); echo "A: counter $i"; sleep 1; done ) &
counter=$!
sleep 3
exec 3>>/data/log.txt
echo "written before hibernate" >&3
kjump hibernate --target /dev/vda
echo "A: kjump exited $?"
echo "written after resume" >&3
exec 3>&-
after=$(cat /root/random /root/text /root/zeros | md5sum)
if [ "$before" = "$after" ]; then echo "A: workload intact"; else echo "A: WORKLOAD CHANGED $after"; fi
echo "A: cpu1 online=$(cat /sys/devices/system/cpu/cpu1/online)"
taskset 2 sh -c 'echo "A: pinned task ran on cpu $(cut -d" " -f39 /proc/self/stat)"'
sleep 2
kill $counter
echo "A: file: $(cat /data/log.txt | tr '\n' '|')"
umount /data && echo "A: unmounted /data"
poweroff -f
"#;

fn boot(name: &str, disks: &[PathBuf], append: &str) -> Vm {
    let p = paths();
    let initrd = a_initramfs(&p, SCRIPT);
    Vm::start(&p, VmConfig { name, memory_mib: 1024, cpus: 2, initrd, append, echo: false, disks: disks.to_vec() })
}

fn counters(log: &str) -> Vec<u64> {
    log.lines().filter_map(|l| l.trim().strip_prefix("A: counter ")).filter_map(|n| n.trim().parse().ok()).collect()
}

#[test]
fn hibernate_power_off_resume_then_boot_normally() {
    let dir = TempDir::new("resume-disks");
    let target = sparse_disk(&dir.0, "target.img", 1200);
    let data = sparse_disk(&dir.0, "data.img", 64);
    assert!(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&data).status().unwrap().success());
    let disks = vec![target, data.clone()];

    // First power-on: A works, hibernates, the machine powers off.
    let mut a = boot("resume-a", &disks, "");
    a.expect_in_order(&["A: workload ready", "A: counter 3", "kjump-init: mode save", "kjump-init: image committed; powering off"]);
    a.wait_exit();
    let before = counters(&a.log());
    let last = *before.last().unwrap();

    // Second power-on: C resumes A from the image.
    let mut c = boot("resume-c", &disks, "kjump_boot=c");
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        "kjump resume: committed image on /dev/vda",
        "kjump-init: mode restore",
        "kjump-init: restored ",
        "kjump-init: image marked consumed; jumping into A",
        "kjump: back in A after",
        "A: kjump exited 0",
        "A: workload intact",
        "A: cpu1 online=1",
        "A: pinned task ran on cpu 1",
        "A: file: written before hibernate|written after resume|",
        "A: unmounted /data",
    ]);
    c.wait_exit();
    let after = counters(&c.log());
    let first = *after.first().expect("the counter did not go on after the resume");
    assert!(first > last && first <= last + 3, "counter went from {last} to {first}");

    // The filesystem A had open is clean.
    let fsck = Command::new("e2fsck").arg("-fn").arg(&data).output().unwrap();
    assert!(fsck.status.success(), "e2fsck: {}", String::from_utf8_lossy(&fsck.stdout));

    // Third power-on: the image was consumed; a normal boot.
    let mut again = boot("resume-again", &disks, "kjump_boot=c");
    again.expect_in_order(&["C: booting, trying kjump resume", "resume: not resuming: the image on /dev/vda is consumed", "C: normal boot (kjump resume exited 1)"]);
    again.wait_exit();
}
