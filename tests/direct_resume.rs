//! Resuming without booting the system first: A writes a boot loader entry
//! (`kjump boot-entry`) and hibernates; the next power-on starts D straight
//! from that entry (QEMU's direct kernel boot stands in for the boot
//! loader). A kernel that is not where the entry says, or a machine with
//! less RAM than A had, is refused before anything is written; the entry's
//! own kernel resumes A.

mod harness;

use harness::{a_initramfs, entry_files, paths, sparse_disk, TempDir, Vm, VmConfig};

const SCRIPT: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
head -c 67108864 /dev/urandom > /root/random
yes "KJUMP-MARKER-direct the quick brown fox" | head -c 67108864 > /root/text
before=$(cat /root/random /root/text | md5sum)
kjump boot-entry --target /dev/vda --output /root/entry > /root/entry.txt || echo "A: BOOT-ENTRY FAILED $?"
grep -q "menuentry 'kjump resume'" /root/entry.txt && echo "A: entry printed for GRUB"
echo "A: entry cmdline $(cat /root/entry/cmdline)"
echo "A: entry kernel $(md5sum < /root/entry/vmlinuz)"
echo "A: workload ready"
kjump hibernate --target /dev/vda
echo "A: kjump exited $?"
after=$(cat /root/random /root/text | md5sum)
if [ "$before" = "$after" ]; then echo "A: workload intact"; else echo "A: WORKLOAD CHANGED $after"; fi
poweroff -f
"#;

fn md5(bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("md5sum").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string()
}

fn line_after<'a>(log: &'a str, prefix: &str) -> &'a str {
    log.lines().find_map(|l| l.trim_end().strip_prefix(prefix)).unwrap_or_else(|| panic!("no {prefix:?} line in A's console"))
}

#[test]
fn d_started_by_the_boot_loader_resumes_a_and_refuses_when_misplaced_or_short_of_ram() {
    let p = paths();
    let dir = TempDir::new("direct-resume-disks");
    let disks = vec![sparse_disk(&dir.0, "target.img", 1200)];
    let cfg = |name, initrd| VmConfig { name, memory_mib: 1024, cpus: 2, initrd, append: "", echo: false, disks: disks.clone(), uuid: None };

    // A writes the entry, then hibernates.
    let mut a = Vm::start(&p, cfg("direct-a", a_initramfs(&p, SCRIPT)));
    a.expect_in_order(&["A: entry printed for GRUB", "A: entry cmdline ", "A: workload ready", "kjump-init: image committed; powering off"]);
    a.wait_exit();
    let log = a.log();
    assert!(!log.contains("BOOT-ENTRY FAILED"), "{log}");
    let cmdline = line_after(&log, "A: entry cmdline ").to_string();
    for word in ["rdinit=/kjump-init", "kjump.mode=restore", "kjump.target=/dev/vda", "kjump.direct=1", "memmap=", "no5lvl"] {
        assert!(cmdline.contains(word), "{word} missing from {cmdline}");
    }
    let (entry_kernel, entry_cmdline, d_initrd) = entry_files(&p, &log, &dir.0).unwrap();
    assert_eq!(entry_cmdline, cmdline);
    let start = kjump::handoff::cmdline::parse(&cmdline).unwrap().region.unwrap().start;
    assert!(start.is_power_of_two(), "region at {start:#x}: QEMU's direct boot needs a power of two");
    // The entry's kernel is the test kernel asking for the region; the host
    // made the same bytes A wrote.
    assert_eq!(md5(&std::fs::read(&entry_kernel).unwrap()), line_after(&log, "A: entry kernel ").split_whitespace().next().unwrap());

    // The unchanged kernel lands at 16 MiB, inside A's memory: D refuses
    // and reboots, and the image stays committed.
    let mut wrong = Vm::start_with(&p.kernel, &cmdline, cfg("direct-misplaced", d_initrd.clone()));
    wrong.expect_in_order(&["kjump-init: mode restore", "outside the kjump region", "the image is left as it was", "rebooting into a normal boot"]);
    wrong.wait_exit();
    assert!(!wrong.log().contains("kjump-init: restored"), "{}", wrong.log());

    // The same machine with less RAM: the region is there, A's top memory
    // is not. D refuses before writing, and the image stays committed.
    let mut smaller = Vm::start_with(&entry_kernel, &cmdline, VmConfig { memory_mib: 768, ..cfg("direct-less-ram", d_initrd.clone()) });
    smaller.expect_in_order(&[
        "kjump-init: running inside the kjump region",
        "firmware does not list as RAM",
        "the image is left as it was",
        "rebooting into a normal boot",
    ]);
    smaller.wait_exit();
    assert!(!smaller.log().contains("kjump-init: restored"), "{}", smaller.log());

    // The entry's kernel runs in the region and resumes A.
    let mut d = Vm::start_with(&entry_kernel, &cmdline, cfg("direct-d", d_initrd));
    d.expect_in_order(&[
        "kjump-init: mode restore (this kernel up after",
        "started by the boot loader",
        "kjump-init: running inside the kjump region",
        "kjump-init: restored ",
        "kjump-init: image marked consumed; jumping into A",
        "kjump: back in A after",
        "A: kjump exited 0",
        "A: workload intact",
    ]);
    d.wait_exit();
}
