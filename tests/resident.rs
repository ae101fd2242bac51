//! A resident hibernation kernel: `kjump load` boots B ahead of time and B
//! parks itself in A's memory; `kjump hibernate` then enters B where it
//! left off instead of booting it. B must save A's memory as it is at the
//! hibernation (not at the load), and every other path — changed
//! settings, `kjump unload`, a return to A — must leave no B behind to be
//! entered by mistake.

mod harness;

use harness::{a_initramfs, paths, sparse_disk, TempDir, Vm, VmConfig};

const HIBERNATE: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if grep -q kjump_test_boot=c /proc/cmdline; then
  kjump resume --target /dev/vda
  echo "C: no resume (exit $?)"
  poweroff -f
fi
head -c 67108864 /dev/urandom > /root/random
kjump load --target /dev/vda
echo "A: load exited $?"
[ -s /run/kjump/resident ] && echo "A: resident recorded"
# Written after B was loaded: B must save A's memory as it is now.
head -c 33554432 /dev/urandom > /root/later
yes "KJUMP-MARKER-resident written after the load" | head -c 33554432 >> /root/later
before=$(cat /root/random /root/later | md5sum)
echo "A: workload ready"
kjump hibernate --target /dev/vda
echo "A: kjump exited $?"
after=$(cat /root/random /root/later | md5sum)
if [ "$before" = "$after" ]; then echo "A: workload intact"; else echo "A: WORKLOAD CHANGED $after"; fi
if [ -e /run/kjump/resident ]; then echo "A: RESIDENT RECORD LEFT"; else echo "A: no resident record"; fi
echo "A: kexec_loaded=$(cat /sys/kernel/kexec_loaded)"
poweroff -f
"#;

#[test]
fn resident_b_saves_memory_written_after_the_load_and_a_resumes() {
    let p = paths();
    let dir = TempDir::new("resident-disks");
    let disks = vec![sparse_disk(&dir.0, "target.img", 1200)];
    let initrd = a_initramfs(&p, HIBERNATE);
    let cfg = |name, append| VmConfig { name, memory_mib: 1024, cpus: 2, initrd: initrd.clone(), append, echo: false, disks: disks.clone(), uuid: None };

    let mut a = Vm::start(&p, cfg("resident-a", ""));
    a.expect_in_order(&[
        "kjump: starting the hibernation kernel in",
        "kjump-init: mode save (this kernel up after",
        "kjump-init: ready; going back to A until it enters this kernel again",
        "kjump: the hibernation kernel is resident (64 MiB of RAM held",
        "A: load exited 0",
        "A: resident recorded",
        "A: workload ready",
        "kjump: hibernating to /dev/vda (then poweroff); resident hibernation kernel in",
        "kjump-init: entered again by A",
        "kjump-init: summary:",
        "kjump-init: image committed; powering off",
    ]);
    a.wait_exit();
    // B booted once: the hibernation entered it, it did not boot again.
    assert_eq!(a.log().matches("kjump-init: mode save").count(), 1, "{}", a.log());

    let mut c = Vm::start(&p, cfg("resident-c", "kjump_test_boot=c"));
    c.expect_in_order(&["kjump-init: mode restore", "A: kjump exited 0", "A: workload intact", "A: no resident record", "A: kexec_loaded=0"]);
    c.wait_exit();
}

const SNAPSHOTS: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
head -c 33554432 /dev/urandom > /root/random
before=$(md5sum < /root/random)
kjump load --target /dev/vda --after resume
echo "A: load 1 exited $?"
kjump hibernate --target /dev/vda --after resume --compress deflate
echo "A: changed settings exited $?"
kjump load --target /dev/vda --after resume
echo "A: load 2 exited $?"
kjump hibernate --target /dev/vda --after resume
echo "A: same settings exited $?"
echo "A: kexec_loaded=$(cat /sys/kernel/kexec_loaded)"
kjump load --target /dev/vda --after resume
echo "A: load 3 exited $?"
kjump unload
echo "A: unload exited $? kexec_loaded=$(cat /sys/kernel/kexec_loaded)"
kjump unload
after=$(md5sum < /root/random)
if [ "$before" = "$after" ]; then echo "A: data intact"; else echo "A: DATA CHANGED"; fi
echo "A: done"
poweroff -f
"#;

#[test]
fn changed_settings_reload_and_nothing_resident_is_left_behind() {
    let p = paths();
    let dir = TempDir::new("resident-snap-disks");
    let disks = vec![sparse_disk(&dir.0, "target.img", 1200)];
    let initrd = a_initramfs(&p, SNAPSHOTS);
    let mut a = Vm::start(&p, VmConfig { name: "resident-snapshots", memory_mib: 1024, cpus: 2, initrd, append: "", echo: false, disks, uuid: None });
    a.expect_in_order(&[
        "A: load 1 exited 0",
        // Another compression than B was loaded with: B is loaded again.
        "kjump: not using the resident hibernation kernel: the settings, the hibernation kernel or its initramfs changed since 'kjump load'; loading it again",
        "kjump: hibernating to /dev/vda (then resume); hibernation kernel in",
        "kjump: back in A after",
        "A: changed settings exited 0",
        "A: load 2 exited 0",
        "kjump: hibernating to /dev/vda (then resume); resident hibernation kernel in",
        "kjump-init: entered again by A",
        "kjump: back in A after",
        "A: same settings exited 0",
        "A: kexec_loaded=0",
        "A: load 3 exited 0",
        "kjump: unloaded the resident hibernation kernel",
        "A: unload exited 0 kexec_loaded=0",
        "kjump: no resident hibernation kernel",
        "A: data intact",
        "A: done",
    ]);
    a.wait_exit();
}
