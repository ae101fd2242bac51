//! kjump on a UEFI machine: A and C boot through the kernel's EFI stub on
//! OVMF, as on a laptop whose boot loader is an EFI application. B and D
//! are started by kexec without EFI tables. A hibernates and C resumes it
//! through the normal boot; `kjump boot-entry`, which cannot work under
//! UEFI (the EFI stub places the restore kernel itself), refuses in A
//! instead of writing an entry that D would refuse at every resume.

mod harness;

use std::path::PathBuf;

use harness::{a_initramfs, paths, sparse_disk, TempDir, Vm, VmConfig};

const SCRIPT: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if [ -d /sys/firmware/efi ]; then uefi=yes; else uefi=no; fi
if grep -q kjump_boot=c /proc/cmdline; then
  echo "C: booted through UEFI: $uefi"
  kjump resume --target /dev/vda
  echo "C: normal boot (kjump resume exited $?)"
  poweroff -f
fi
echo "A: booted through UEFI: $uefi"
head -c 67108864 /dev/urandom > /root/random
yes "KJUMP-MARKER-uefi the quick brown fox" | head -c 67108864 > /root/text
before=$(cat /root/random /root/text | md5sum)
if kjump boot-entry --target /dev/vda --output /root/entry; then echo "A: BOOT-ENTRY WRITTEN"; else echo "A: boot-entry refused"; fi
echo "A: workload ready"
kjump hibernate --target /dev/vda
echo "A: kjump exited $?"
after=$(cat /root/random /root/text | md5sum)
if [ "$before" = "$after" ]; then echo "A: workload intact"; else echo "A: WORKLOAD CHANGED $after"; fi
echo "A: cpu1 online=$(cat /sys/devices/system/cpu/cpu1/online)"
echo "A: done"
poweroff -f
"#;

fn boot(name: &str, disks: &[PathBuf], append: &str) -> Vm {
    let p = paths();
    let initrd = a_initramfs(&p, SCRIPT);
    Vm::start_uefi(&p, VmConfig { name, memory_mib: 1024, cpus: 2, initrd, append, echo: false, disks: disks.to_vec(), uuid: None })
}

#[test]
fn hibernate_and_resume_through_the_normal_boot_on_uefi() {
    let dir = TempDir::new("uefi-disks");
    let disks = vec![sparse_disk(&dir.0, "target.img", 1200)];

    let mut a = boot("uefi-a", &disks, "");
    a.expect_in_order(&[
        "efi: EFI v",
        "A: booted through UEFI: yes",
        "boot-entry: this machine booted through UEFI",
        "A: boot-entry refused",
        "A: workload ready",
        "kjump-init: mode save",
        "kjump-init: image committed; powering off",
    ]);
    a.wait_exit();
    a.expect_absent("A: BOOT-ENTRY WRITTEN");

    let mut c = boot("uefi-c", &disks, "kjump_boot=c");
    c.expect_in_order(&[
        "efi: EFI v",
        "C: booted through UEFI: yes",
        "kjump resume: committed image on /dev/vda",
        "kjump-init: mode restore",
        "kjump-init: image marked consumed; jumping into A",
        "kjump: back in A after",
        "A: kjump exited 0",
        "A: workload intact",
        "A: cpu1 online=1",
        "A: done",
    ]);
    c.wait_exit();
    c.expect_absent("WORKLOAD CHANGED");
}
