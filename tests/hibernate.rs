//! `kjump hibernate` in QEMU: B saves A's memory to a real virtual disk;
//! the host then checks the image with `kjump image verify` and decodes
//! its pages.

mod harness;

use std::path::Path;
use std::process::Command;

use harness::{a_initramfs, fsck_clean, paths, sparse_disk, TempDir, Vm, VmConfig};
use kjump::image::{Reader, DATA_OFFSET, PAGE};

const MIB: u64 = 1 << 20;
const MARKER: &str = "KJUMP-MARKER-7f3a9c";

/// A's workload: 128 MiB random, 128 MiB repeated text with the marker,
/// 128 MiB zeros, hashed; then `cmd`; then the hash again.
fn workload(cmd: &str) -> String {
    format!(
        r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
head -c 134217728 /dev/urandom > /root/random
yes "{MARKER} the quick brown fox jumps over the lazy dog" | head -c 134217728 > /root/text
head -c 134217728 /dev/zero > /root/zeros
before=$(cat /root/random /root/text /root/zeros | md5sum)
echo "A: workload ready, md5 $before"
{cmd}
echo "A: kjump exited $?"
after=$(cat /root/random /root/text /root/zeros | md5sum)
if [ "$before" = "$after" ]; then echo "A: workload intact"; else echo "A: WORKLOAD CHANGED $after"; fi
echo "A: done"
poweroff -f
"#
    )
}

fn kjump_host(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kjump")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Verifies the image with `kjump image verify`, decodes every page, and
/// checks it against B's summary line.
fn check_image(image: &Path, summary: &str) {
    let (ok, text) = kjump_host(&["image", "verify", image.to_str().unwrap()]);
    assert!(ok, "kjump image verify failed:\n{text}");
    assert!(text.contains("every checksum good"), "{text}");

    let mut r = Reader::open(std::io::BufReader::new(std::fs::File::open(image).unwrap())).unwrap();
    let h = r.header.clone();
    let (mut runs, mut zero_runs, mut pages, mut found, mut stored, mut zero) = (Vec::new(), Vec::new(), Vec::new(), false, 0u64, 0u64);
    while r.next_chunk(&mut runs, &mut zero_runs, &mut pages).unwrap().is_some() {
        stored += (pages.len() / PAGE) as u64;
        zero += zero_runs.iter().map(|r| r.1).sum::<u64>();
        found |= pages.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
    }
    assert!(found, "the workload's marker is not in the decoded pages");
    assert_eq!(stored, h.stored_pages);
    assert_eq!(zero, h.zero_pages, "the zero runs list every zero page the header counts");

    // The summary B printed agrees with the file.
    let field = |name: &str| -> u64 {
        summary
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {summary:?}"))
    };
    assert_eq!(field("ram_pages"), h.ram_pages);
    assert_eq!(field("zero_pages"), h.zero_pages);
    assert_eq!(field("free_pages"), h.free_pages);
    assert_eq!(field("stored_pages"), h.stored_pages);
    assert_eq!(field("bytes_on_disk"), DATA_OFFSET + h.data_bytes);
    // Zero and free pages were left out: well below A's 1 GiB, above the
    // 128 MiB of random data that cannot shrink.
    let on_disk = DATA_OFFSET + h.data_bytes;
    assert!(on_disk > 128 * MIB && on_disk < 512 * MIB, "image is {} MiB", on_disk / MIB);
    assert!(h.zero_pages > 0 && h.free_pages > 0, "zero {} free {}", h.zero_pages, h.free_pages);
}

fn start(name: &str, dir: &TempDir, cmd: &str, disks: Vec<std::path::PathBuf>) -> Vm {
    let _ = dir;
    let p = paths();
    let initrd = a_initramfs(&p, &workload(cmd));
    Vm::start(&p, VmConfig { name, memory_mib: 1024, cpus: 2, initrd, append: "", echo: false, disks, uuid: None })
}

#[test]
fn snapshot_saves_and_a_carries_on() {
    let dir = TempDir::new("snapshot-disk");
    let disk = sparse_disk(&dir.0, "target.img", 1200);
    let mut vm = start("snapshot", &dir, "kjump hibernate --target /dev/vda --after resume", vec![disk.clone()]);
    let lines = vm.expect_in_order(&[
        "A: workload ready",
        "kjump: hibernating to /dev/vda (then resume)",
        "kjump-init: mode save",
        "kjump-init: found ",
        // A's kexec image read back: the walk of its entry list succeeded.
        "kjump-init: left out ",
        // A saw the disk use MSI and B booted with acpi=noirq; B agrees.
        "kjump-init: /dev/vda uses MSI: booted without legacy interrupt routing",
        "kjump-init: summary: ",
        "kjump-init: restored A's low memory; jumping back to A",
        "kjump: back in A after",
        "A: kjump exited 0",
        "A: workload intact",
        "A: done",
    ]);
    vm.wait_exit();
    check_image(&disk, &lines[6]);
    println!("{}", lines[4]);
}

#[test]
fn hibernate_powers_off_with_the_image_on_disk() {
    let dir = TempDir::new("hibernate-disk");
    let disk = sparse_disk(&dir.0, "target.img", 1200);
    let mut vm = start("hibernate", &dir, "kjump hibernate --target /dev/vda", vec![disk.clone()]);
    let lines = vm.expect_in_order(&["A: workload ready", "kjump-init: mode save", "kjump-init: summary: ", "kjump-init: image committed; powering off"]);
    vm.wait_exit();
    vm.expect_absent("A: kjump exited");
    check_image(&disk, &lines[2]);
}

#[test]
fn hibernate_to_a_file_on_ext4() {
    let dir = TempDir::new("ext4-disk");
    let disk = sparse_disk(&dir.0, "ext4.img", 1400);
    let mkfs = Command::new("mkfs.ext4").args(["-q", "-F", "-L", "kjumpdata"]).arg(&disk).status().expect("mkfs.ext4 (make deps installs e2fsprogs)");
    assert!(mkfs.success());
    let mut vm = start("ext4", &dir, "kjump hibernate --target LABEL=kjumpdata:/kjump.img", vec![disk.clone()]);
    let lines = vm.expect_in_order(&[
        "A: workload ready",
        "kjump-init: writing the image to /dev/vda:/kjump.img",
        "kjump-init: summary: ",
        "kjump-init: image committed; powering off",
    ]);
    vm.wait_exit();
    let image = dir.0.join("kjump.img");
    let out = Command::new("debugfs").arg("-R").arg(format!("dump /kjump.img {}", image.display())).arg(&disk).output().unwrap();
    assert!(image.exists(), "debugfs could not extract the image: {}", String::from_utf8_lossy(&out.stderr));
    fsck_clean(&disk);
    // The image holds all of A's memory: only its owner may read it.
    let stat = Command::new("debugfs").args(["-R", "stat /kjump.img"]).arg(&disk).output().unwrap();
    let stat = String::from_utf8_lossy(&stat.stdout);
    assert!(stat.contains("Mode:  0600"), "{stat}");
    check_image(&image, &lines[2]);
}

#[test]
fn failure_in_b_returns_to_a_with_the_reason() {
    let dir = TempDir::new("failure-disk");
    let disk = sparse_disk(&dir.0, "target.img", 1200);
    // First, a second kjump command while one runs is refused. Then A
    // checks /dev/vda; B is told (by a later parameter, which wins, added
    // past A's checks by the tests' own variable) to use a device that does
    // not exist there. Then a word B's parser refuses: `--append` refuses it
    // in A; slipped past A, B still goes back to A with the reason instead
    // of powering off. Last, A's session goes on (the workload is intact).
    let cmd = "kjump resume --target /dev/vdz --wait 60 > /dev/null 2>&1 &
holder=$!
while [ ! -e /run/kjump/lock ]; do sleep 0.1; done; sleep 1
kjump hibernate --target /dev/vda
echo \"A: second command exited $?\"
kill $holder; wait $holder
KJUMP_TEST_UNCHECKED_APPEND='kjump.target=/dev/vdz kjump.wait=2' kjump hibernate --target /dev/vda
echo \"A: missing target exited $?\"
kjump hibernate --target /dev/vda --append kjump.foo=1
echo \"A: bad append exited $?\"
KJUMP_TEST_UNCHECKED_APPEND=kjump.foo=1 kjump hibernate --target /dev/vda";
    let mut vm = start("failure", &dir, cmd, vec![disk.clone()]);
    let lines = vm.expect_in_order(&[
        "A: workload ready",
        // One kjump command at a time: a waiting `kjump resume` holds the lock.
        "kjump: hibernate: another kjump command is running",
        "A: second command exited 1",
        "kjump-init: mode save",
        "kjump-init: error: ",
        "kjump-init: the image was not saved; going back to A, nothing is lost",
        "kjump: hibernate failed in the hibernation kernel: ",
        "A: missing target exited 1",
        "kjump: append \"kjump.foo=1\": kjump sets kjump.foo itself",
        "A: bad append exited 1",
        "kjump-init: error: kernel command line: unknown kjump.* option",
        "kjump-init: going back to A, nothing is lost",
        "kjump: hibernate failed in the hibernation kernel: kernel command line: unknown kjump.* option",
        "A: kjump exited 1",
        "A: workload intact",
    ]);
    assert!(lines[6].contains("/dev/vdz"), "{}", lines[6]);
    vm.wait_exit();
    // No hibernation reached the disk: it holds no image at all.
    let (ok, text) = kjump_host(&["image", "info", disk.to_str().unwrap()]);
    assert!(!ok, "{text}");
}
