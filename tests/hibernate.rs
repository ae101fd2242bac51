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
    let (mut found, mut stored, mut zero) = (false, 0u64, 0u64);
    while let Some((_, bufs)) = r.next_chunk().unwrap() {
        stored += (bufs.pages.len() / PAGE) as u64;
        zero += bufs.zero_runs.iter().map(|r| r.count).sum::<u64>();
        found |= bufs.pages.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
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
    let cmd = "kjump hibernate -h > /dev/null
echo \"A: help exited $?\"
kjump hibernate --target /dev/vda extra
echo \"A: stray word exited $?\"
kjump check -h | head -1
kjump resume --target /dev/vdz --wait 60 > /dev/null 2>&1 &
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
        // Help and bad usage do nothing at all.
        "A: help exited 0",
        "A: stray word exited 2",
        "Usage: kjump check",
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
    assert!(lines[9].contains("/dev/vdz"), "{}", lines[9]);
    vm.wait_exit();
    // No hibernation reached the disk: it holds no image at all.
    let (ok, text) = kjump_host(&["image", "info", disk.to_str().unwrap()]);
    assert!(!ok, "{text}");
}

/// B's PID 1 (`rdinit=`) for [`makedumpfile_counts_b_s_vmcore_as_kjump_does`]: run
/// Debian's makedumpfile over `/proc/vmcore` (dry run: nothing written,
/// its report on the console), then become kjump-init, which saves as in
/// production (it is still PID 1).
const MAKEDUMPFILE_INIT: &str = r#"#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "test-init: cmdline $(/bin/busybox cat /proc/cmdline)"
for level in 31 17; do
  /usr/bin/makedumpfile -d $level --dry-run --message-level 22 /proc/vmcore /tmp/dumpfile > /tmp/report 2>&1
  echo "test-init: makedumpfile -d $level exited $?"
  /bin/busybox sed "s/^/test-init: d$level: /" /tmp/report
  /bin/busybox rm -f /tmp/report
done
exec /kjump-init
"#;

/// The page counts in a makedumpfile report (hexadecimal), by the text
/// before the colon, from the lines `test-init: d{level}: …`.
fn makedumpfile_count(log: &str, level: u32, name: &str) -> u64 {
    let prefix = format!("test-init: d{level}: ");
    log.lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, r)| r))
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            let value = value.trim().strip_prefix("0x")?;
            (key.trim() == name).then(|| u64::from_str_radix(value, 16).ok()).flatten()
        })
        .unwrap_or_else(|| panic!("makedumpfile -d {level} reported no {name:?}:\n{log}"))
}

/// A number `name=N` or `name N` in one of kjump-init's lines.
fn field(line: &str, name: &str) -> u64 {
    let rest = line.split_once(name).map(|(_, r)| r.trim_start_matches('=').trim_start()).unwrap_or("");
    rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

/// An independent reader of B's `/proc/vmcore`, Debian's makedumpfile,
/// counts A's pages as kjump does, but for one difference, explained:
///
/// - Both see the same RAM: the ELF core header's PT_LOADs, A's RAM outside
///   the region (makedumpfile's "Original pages" is kjump's `ram_pages`).
/// - Both find A's free pages the same way, from the buddy marks in A's
///   `struct page`s, and count as many in the PT_LOADs.
/// - The region's pages are not in the PT_LOADs: they hold B. A's contents
///   of each sit in the page A's `kexec_load` allocated as that page's
///   source (outside the region), moved there by the preserve-context
///   swap. To A's allocator a source page is in use (kexec's, reserved),
///   and makedumpfile keeps it or counts it as zero. kjump reads A's kexec
///   image (`kimage`), and where the region page was free in A leaves its
///   source page out as free too: A does not care what a free page held.
///   B prints how many: "left out N pages that hold the region's free
///   pages".
///
/// So kjump's free pages = makedumpfile's + N, exactly. In this test's
/// freshly booted A nearly every page of the region is free, so N is about
/// the region's size (16384 pages of 64 MiB; runs gave 16384 and 16294: a
/// region page A had in use, or that A's `kexec_load` took as its own
/// source, is not free). Those source pages hold what A's free pages held,
/// zeros in a fresh machine, so with `-d 17` (zero and free pages, what
/// kjump leaves out) makedumpfile keeps as many pages as kjump stores, and
/// at most N more if some held stale data. (`-d 31` also drops A's page
/// cache and user pages, which kjump must keep: only its free count
/// compares.)
#[test]
fn makedumpfile_counts_b_s_vmcore_as_kjump_does() {
    let makedumpfile = Path::new("/usr/bin/makedumpfile");
    assert!(makedumpfile.exists(), "{} is missing: run 'make deps' (it installs makedumpfile)", makedumpfile.display());
    let p = paths();
    let mut files = harness::with_libraries(makedumpfile);
    files.push(("bin/busybox".to_string(), 0o755, std::fs::read(&p.busybox).unwrap()));
    files.push(("test-init".to_string(), 0o755, MAKEDUMPFILE_INIT.as_bytes().to_vec()));
    let b_initrd = harness::b_initramfs_with(&p, &files, &[("bin/sh", "busybox")]);

    let dir = TempDir::new("makedumpfile-disk");
    let disk = sparse_disk(&dir.0, "target.img", 1200);
    let cmd = "KJUMP_TEST_UNCHECKED_APPEND=rdinit=/test-init kjump hibernate --target /dev/vda --after resume";
    let initrd = harness::a_initramfs_with_b(&p, &workload(cmd), &b_initrd);
    let mut vm =
        Vm::start(&p, VmConfig { name: "makedumpfile", memory_mib: 1024, cpus: 2, initrd, append: "", echo: false, disks: vec![disk.clone()], uuid: None });
    let lines = vm.expect_in_order(&[
        "A: workload ready",
        "test-init: cmdline ",
        "test-init: makedumpfile -d 31 exited 0",
        "test-init: makedumpfile -d 17 exited 0",
        "kjump-init: mode save",
        "kjump-init: found ",
        "kjump-init: left out ",
        "kjump-init: summary: ",
        "kjump: back in A after",
        "A: workload intact",
        "A: done",
    ]);
    vm.wait_exit();
    let log = vm.log();
    check_image(&disk, &lines[7]);

    let region = kjump::handoff::cmdline::parse(lines[1].split_once("cmdline ").unwrap().1).unwrap().region.expect("no kjump.region= on B's command line");
    let region_pages = region.len() / PAGE as u64;
    // A's free pages kjump found, in the PT_LOADs and in the region, before
    // it added the holders.
    let found = field(&lines[5], "found");
    let holders = field(&lines[6], "left out");
    let summary = &lines[7];
    let (ram, zero, free, stored) = (field(summary, "ram_pages"), field(summary, "zero_pages"), field(summary, "free_pages"), field(summary, "stored_pages"));
    println!("kjump: ram {ram} zero {zero} free {free} stored {stored}; region {region_pages} pages, {holders} of their holders left out");
    for level in [31, 17] {
        let count = |name| makedumpfile_count(&log, level, name);
        let (original, m_zero, m_free, remaining) = (count("Original pages"), count("Pages filled with zero"), count("Free pages"), count("Remaining pages"));
        println!("makedumpfile -d {level}: original {original} zero {m_zero} free {m_free} remaining {remaining}");
        assert_eq!(original, ram, "-d {level}: the same RAM");
        assert_eq!(m_free + holders, free, "-d {level}: the same free pages, and the source pages of the region's free pages");
    }
    // The difference is really there to explain: the region's free pages
    // were found through A's kexec image, a holder for at most each of them
    // (the rest of what kjump found free lies in the PT_LOADs, where
    // makedumpfile counts it).
    let m_free = makedumpfile_count(&log, 31, "Free pages");
    let region_free = found.checked_sub(m_free).unwrap_or_else(|| panic!("kjump found {found} free pages, makedumpfile {m_free} outside the region"));
    assert!(region_free <= region_pages, "{region_free} free pages in a region of {region_pages}");
    assert!(holders > 0 && holders <= region_free, "{holders} holders left out for {region_free} free pages in the region");
    // Of the pages makedumpfile keeps (neither zero nor free), kjump stores
    // every one but the holders it left out.
    let remaining = makedumpfile_count(&log, 17, "Remaining pages");
    assert!(
        stored <= remaining && remaining <= stored + holders,
        "makedumpfile -d 17 keeps {remaining} pages, kjump stores {stored}, left out {holders} holders"
    );
}
