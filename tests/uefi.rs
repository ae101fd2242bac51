//! kjump on a UEFI machine: A and C boot through the kernel's EFI stub on
//! OVMF, as on a laptop whose boot loader is an EFI application. B and D
//! are started by kexec without EFI tables. A hibernates and C resumes it
//! through the normal boot, and A's EFI runtime services still read and
//! write variables afterwards; `kjump boot-entry`, which cannot work under
//! UEFI (the EFI stub places the restore kernel itself), refuses in A
//! instead of writing an entry that D would refuse at every resume.

mod harness;

use std::path::{Path, PathBuf};

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
# EFI runtime services, through efivarfs: GetVariable and SetVariable.
vars=/sys/firmware/efi/efivars
guid=6b29fc40-ca47-1067-b31d-00dd010662da
mount -t efivarfs efivarfs $vars
efi_set() { printf '\007\000\000\000%s' "$2" > $vars/$1-$guid; }
efi_get() { tail -c +5 $vars/$1-$guid; }
efi_set KjumpBefore kjump-before && echo "A: efi variable before hibernating: $(efi_get KjumpBefore)"
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
echo "A: efi variable after resuming: $(efi_get KjumpBefore)"
efi_set KjumpAfter kjump-after && echo "A: efi variable set after resuming: $(efi_get KjumpAfter)"
echo "A: done"
poweroff -f
"#;

/// One power-on of the machine whose disks are `disks` and whose firmware
/// variable store is `vars`.
fn boot(name: &str, disks: &[PathBuf], vars: &Path, append: &str) -> Vm {
    let p = paths();
    let initrd = a_initramfs(&p, SCRIPT);
    Vm::start_uefi(&p, VmConfig { name, memory_mib: 1024, cpus: 2, initrd, append, echo: false, disks: disks.to_vec(), uuid: None }, vars)
}

#[test]
fn hibernate_and_resume_through_the_normal_boot_on_uefi() {
    let dir = TempDir::new("uefi-disks");
    let disks = vec![sparse_disk(&dir.0, "target.img", 1200)];
    let vars = dir.0.join("OVMF_VARS.fd");

    let mut a = boot("uefi-a", &disks, &vars, "");
    a.expect_in_order(&[
        "efi: EFI v",
        "A: booted through UEFI: yes",
        "A: efi variable before hibernating: kjump-before",
        "boot-entry: this machine booted through UEFI",
        "A: boot-entry refused",
        "A: workload ready",
        "kjump-init: mode save",
        "kjump-init: image committed; powering off",
    ]);
    a.wait_exit();
    a.expect_absent("A: BOOT-ENTRY WRITTEN");

    let mut c = boot("uefi-c", &disks, &vars, "kjump_boot=c");
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
        // A's EFI runtime services still answer, though C's boot has set
        // the firmware's virtual address map since A's.
        "A: efi variable after resuming: kjump-before",
        "A: efi variable set after resuming: kjump-after",
        "A: done",
    ]);
    c.wait_exit();
    c.expect_absent("WORKLOAD CHANGED");
}
