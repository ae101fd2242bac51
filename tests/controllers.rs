//! The hibernation kernel on the disk controllers of real machines: for a
//! target on NVMe, AHCI (SATA), USB (xHCI, usb-storage) and virtio-scsi,
//! hibernate, power off, boot again and resume, with A's data disk on
//! another controller, written before and after and clean after A
//! unmounts it. Then `kjump check` refusing a target whose controller the
//! hibernation kernel lacks, and B's progress on a VGA screen.

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{a_initramfs, foreground_pixels, fsck_clean, paths, sparse_disk, Bus, Disk, TempDir, Vm, VmConfig};

/// A's and C's script: `@TARGET@` and `@DATA@` are the device names in
/// this machine.
const SCRIPT: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if grep -q kjump_boot=c /proc/cmdline; then
  echo "C: booting, trying kjump resume"
  kjump resume --target @TARGET@
  echo "C: normal boot (kjump resume exited $?)"
  poweroff -f
fi
mkdir -p /data
mount -t ext4 @DATA@ /data && echo "A: mounted @DATA@"
head -c 67108864 /dev/urandom > /root/random
before=$(md5sum < /root/random)
echo "A: workload ready, md5 $before"
exec 3>>/data/log.txt
echo "written before hibernate" >&3
kjump hibernate --target @TARGET@
echo "A: kjump exited $?"
echo "written after resume" >&3
exec 3>&-
head -c 4194304 /dev/urandom > /data/after.bin && sync && echo "A: wrote 4 MiB to @DATA@"
echo "A: read back $(md5sum < /data/after.bin | cut -c1-8) $(md5sum < /data/after.bin | cut -c1-8)"
after=$(md5sum < /root/random)
if [ "$before" = "$after" ]; then echo "A: workload intact"; else echo "A: WORKLOAD CHANGED $after"; fi
echo "A: file: $(cat /data/log.txt | tr '\n' '|')"
umount /data && echo "A: unmounted /data"
poweroff -f
"#;

fn boot(name: &str, script: &str, virtio: &[PathBuf], disks: &[Disk], append: &str) -> Vm {
    let p = paths();
    let initrd = a_initramfs(&p, script);
    let cfg = VmConfig { name, memory_mib: 1024, cpus: 2, initrd, append, echo: false, disks: virtio.to_vec(), uuid: None };
    Vm::start_with_extras(&p, None, cfg, disks, false)
}

/// A 1200 MiB target and a 64 MiB ext4 data disk in `dir`.
fn target_and_data(dir: &Path) -> (PathBuf, PathBuf) {
    let target = sparse_disk(dir, "target.img", 1200);
    let data = sparse_disk(dir, "data.img", 64);
    assert!(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&data).status().unwrap().success());
    (target, data)
}

/// Hibernate with the target `target_dev` on `target_bus`, power off,
/// resume; A's data disk `data_dev` is on `data_bus`.
fn round_trip(name: &str, target_bus: Bus, target_dev: &str, data_bus: Bus, data_dev: &str) {
    let dir = TempDir::new(&format!("{name}-disks"));
    let (target, data) = target_and_data(&dir.0);
    // Virtio disks come first in QEMU's arguments (`cfg.disks`), the
    // others each on a controller of its own.
    let (mut virtio, mut others) = (Vec::new(), Vec::new());
    for (path, bus) in [(&target, target_bus), (&data, data_bus)] {
        if bus == Bus::Virtio {
            virtio.push(path.clone());
        } else {
            others.push(Disk::new(path, bus));
        }
    }
    let script = SCRIPT.replace("@TARGET@", target_dev).replace("@DATA@", data_dev);

    let mut a = boot(&format!("{name}-a"), &script, &virtio, &others, "");
    a.expect_in_order(&[
        &format!("A: mounted {data_dev}"),
        "A: workload ready",
        "kjump-init: mode save",
        &format!("kjump-init: writing the image to {target_dev}"),
        "kjump-init: image committed; powering off",
    ]);
    a.wait_exit();

    let mut c = boot(&format!("{name}-c"), &script, &virtio, &others, "kjump_boot=c");
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        &format!("kjump resume: committed image on {target_dev}"),
        "kjump-init: mode restore",
        "kjump-init: restored ",
        "kjump-init: image marked consumed; jumping into A",
        "kjump: back in A after",
        "A: kjump exited 0",
        &format!("A: wrote 4 MiB to {data_dev}"),
        "A: read back",
        "A: workload intact",
        "A: file: written before hibernate|written after resume|",
        "A: unmounted /data",
    ]);
    c.wait_exit();
    // The two reads of the new file agreed.
    let log = c.log();
    let line = log.lines().find_map(|l| l.trim_end().strip_prefix("A: read back ")).unwrap();
    let sums: Vec<&str> = line.split_whitespace().collect();
    assert!(sums.len() == 2 && sums[0] == sums[1], "{line}");
    fsck_clean(&data);
    let cat = Command::new("debugfs").args(["-R", "cat /log.txt"]).arg(&data).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "written before hibernate\nwritten after resume\n");
}

#[test]
fn target_on_nvme_data_on_ahci() {
    round_trip("nvme", Bus::Nvme, "/dev/nvme0n1", Bus::Ahci, "/dev/sda");
}

#[test]
fn target_on_ahci_data_on_virtio() {
    round_trip("ahci", Bus::Ahci, "/dev/sda", Bus::Virtio, "/dev/vda");
}

#[test]
fn target_on_usb_data_on_virtio() {
    round_trip("usb", Bus::Usb, "/dev/sda", Bus::Virtio, "/dev/vda");
}

#[test]
fn target_on_virtio_scsi_data_on_nvme() {
    round_trip("vscsi", Bus::VirtioScsi, "/dev/sda", Bus::Nvme, "/dev/nvme0n1");
}

/// A hibernation kernel whose manifest lacks NVMe: `kjump check` names
/// the driver, and `kjump hibernate` refuses before any jump.
#[test]
fn check_refuses_a_target_whose_controller_the_kernel_lacks() {
    let dir = TempDir::new("nodriver-disks");
    let target = sparse_disk(&dir.0, "target.img", 1200);
    let kernel = kjump::host::config::default_kernel();
    let manifest = kjump::host::drivers::manifest_path(&kernel);
    let script = format!(
        r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
kjump check --target /dev/nvme0n1 | grep -E 'nvme' | sed 's/^/A: check: /'
cp {kernel} /root/vmlinuz
grep -v '^CONFIG_BLK_DEV_NVME=' {manifest} > /root/vmlinuz.config
kjump check --kernel /root/vmlinuz --target /dev/nvme0n1 > /root/check.txt 2>&1
echo "A: check without nvme exited $?"
sed 's/^/A: check: /' /root/check.txt | grep -E 'FAIL|cannot'
kjump hibernate --kernel /root/vmlinuz --target /dev/nvme0n1
echo "A: hibernate without nvme exited $?"
poweroff -f
"#
    );
    let mut a = boot("nodriver-a", &script, &[], &[Disk::new(&target, Bus::Nvme)], "");
    a.expect_in_order(&[
        "A: check:   ok    hibernation kernel drives target /dev/nvme0n1 (nvme)",
        "A: check without nvme exited 1",
        "A: check:   FAIL  the hibernation kernel /root/vmlinuz lacks the nvme driver that target /dev/nvme0n1 needs (CONFIG_BLK_DEV_NVME=y built in",
        "hibernate: this machine cannot hibernate with kjump: the hibernation kernel /root/vmlinuz lacks the nvme driver",
        "A: hibernate without nvme exited 1",
    ]);
    a.wait_exit();
    a.expect_absent("kjump-init");
    // Nothing was written to the target.
    let used = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&target).unwrap());
    assert_eq!(used, 0, "the target was written");
}

/// B's progress on a VGA screen: A clears the screen; the picture is
/// blank then, and shows text while B saves.
#[test]
fn b_shows_its_progress_on_the_screen() {
    let dir = TempDir::new("vga-disks");
    let target = sparse_disk(&dir.0, "target.img", 1200);
    // The host tells A to go on by writing this disk (A reads it uncached).
    let signal = sparse_disk(&dir.0, "signal.img", 1);
    // A prints on the serial port only (its kernel never draws on the
    // screen); B gets the screen as a console of its own as well.
    let script = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
printf '\033[H\033[2J' > /dev/tty0
echo "A: screen cleared"
until dd if=/dev/vdb bs=4096 count=1 iflag=direct 2>/dev/null | grep -q KJUMP-GO; do sleep 1; done
kjump hibernate --target /dev/vda --append "console=tty0 console=ttyS0"
echo "A: kjump exited $?"
poweroff -f
"#;
    let p = paths();
    let initrd = a_initramfs(&p, script);
    let cfg = VmConfig { name: "vga-a", memory_mib: 1024, cpus: 2, initrd, append: "", echo: false, disks: vec![target, signal.clone()], uuid: None };
    let mut a = Vm::start_with_extras(&p, None, cfg, &[], true);
    a.expect_in_order(&["A: screen cleared"]);
    let (w, h, blank) = a.screendump();
    let before = foreground_pixels(&blank);
    assert!(before < 200, "A's cleared {w}x{h} screen shows {before} pixels of text");
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().write(true).open(&signal).unwrap();
        f.write_all(b"KJUMP-GO\n").unwrap();
    }
    a.expect_in_order(&["kjump-init: mode save"]);
    let (w, h, saving) = a.screendump();
    let during = foreground_pixels(&saving);
    assert!(during > 1000, "while B saves, the {w}x{h} screen shows only {during} pixels of text");
    a.expect_in_order(&["kjump-init: image committed; powering off"]);
    a.wait_exit();
}
