//! Hibernate, power off, boot again, resume: two QEMU processes on the
//! same disks. A's workload, its counter, an open file on an ext4 disk and
//! CPU 1 all carry on; a third boot finds the image consumed.

mod harness;

use std::path::PathBuf;
use std::process::Command;

use harness::{a_initramfs, fsck_clean, paths, sparse_disk, TempDir, Vm, VmConfig};

const SCRIPT: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if grep -q kjump_boot=c /proc/cmdline; then
  echo "C: booting, trying kjump resume"
  # Test switches: D looks for a disk that is not there; C mounts A's
  # data disk before it tries to resume (and writes it); C resumes a snapshot.
  if grep -q kjump_lose_target /proc/cmdline; then export KJUMP_TEST_UNCHECKED_APPEND="kjump.target=/dev/vdz kjump.wait=1"; fi
  if grep -q kjump_mount_first /proc/cmdline; then mkdir -p /data; mount -t ext4 /dev/vdb /data && echo "C: mounted /data"; fi
  snapshot=""; if grep -q kjump_resume_snapshot /proc/cmdline; then snapshot=--snapshot; fi
  kjump resume --target /dev/vda $snapshot
  echo "C: normal boot (kjump resume exited $?)"
  if grep -q kjump_mount_first /proc/cmdline; then echo "written by another boot" > /data/other.txt; umount /data && echo "C: unmounted /data"; fi
  poweroff -f
fi
after=""; if grep -q kjump_snapshot /proc/cmdline; then after="--after resume"; fi
if grep -q kjump_hybrid /proc/cmdline; then after="--after suspend"; fi
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
kjump hibernate --target /dev/vda $after
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
    Vm::start(&p, VmConfig { name, memory_mib: 1024, cpus: 2, initrd, append, echo: false, disks: disks.to_vec(), uuid: None })
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

    // D discarded the image's data: the sparse disk file gave its blocks back.
    let kept = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&disks[0]).unwrap()) * 512;
    assert!(kept < 1 << 20, "{kept} bytes of the image are still on the target after the resume");
    c.expect_in_order(&["kjump-init: discarded the image's data"]);

    // The filesystem A had open is clean, and the file reads back.
    fsck_clean(&data);
    let cat = Command::new("debugfs").args(["-R", "cat /log.txt"]).arg(&data).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "written before hibernate\nwritten after resume\n");

    // Third power-on: the image was consumed; a normal boot.
    let mut again = boot("resume-again", &disks, "kjump_boot=c");
    again.expect_in_order(&[
        "C: booting, trying kjump resume",
        "resume: not resuming: the image on /dev/vda is consumed",
        "C: normal boot (kjump resume exited 3)",
    ]);
    again.wait_exit();
}

/// The disks of a hybrid sleep test: a raw target and an ext4 data disk A
/// has mounted and writes.
fn hybrid_disks(dir: &TempDir) -> Vec<PathBuf> {
    let target = sparse_disk(&dir.0, "target.img", 1200);
    let data = sparse_disk(&dir.0, "data.img", 64);
    assert!(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&data).status().unwrap().success());
    vec![target, data]
}

/// Hybrid sleep (`--after suspend`) until B is asleep in RAM with the
/// image committed.
fn hybrid_asleep(name: &str, disks: &[PathBuf]) -> Vm {
    let mut a = boot(name, disks, "kjump_hybrid");
    a.expect_in_order(&[
        "A: workload ready",
        "kjump: hibernating to /dev/vda (then suspend)",
        "kjump-init: mode save",
        "kjump-init: summary: ",
        "kjump-init: image committed; suspending to RAM (hybrid sleep",
    ]);
    a.wait_suspended();
    a
}

/// Hybrid sleep woken from RAM: B takes the image back and A carries on;
/// the next power-on finds the image consumed and boots normally.
#[test]
fn hybrid_sleep_woken_from_ram_returns_to_a_and_the_next_boot_is_normal() {
    let dir = TempDir::new("hybrid-wake-disks");
    let disks = hybrid_disks(&dir);
    let mut a = hybrid_asleep("hybrid-wake-a", &disks);
    a.wake();
    a.expect_in_order(&[
        "kjump-init: woken from RAM after ",
        "kjump-init: image marked consumed (its data discarded); going back to A",
        "kjump-init: restored A's low memory; jumping back to A",
        "kjump: back in A after",
        "suspended to RAM and woken after ",
        "A: kjump exited 0",
        "A: workload intact",
        "A: cpu1 online=1",
        "A: file: written before hibernate|written after resume|",
        "A: unmounted /data",
    ]);
    a.wait_exit();
    a.expect_absent("kjump-init: powering off");
    fsck_clean(&disks[1]);
    let kept = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&disks[0]).unwrap()) * 512;
    assert!(kept < 1 << 20, "{kept} bytes of the image are still on the target after the wake");

    // The next power-on: nothing to resume, a normal boot.
    let mut c = boot("hybrid-wake-c", &disks, "kjump_boot=c");
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        "resume: not resuming: the image on /dev/vda is consumed",
        "C: normal boot (kjump resume exited 3)",
    ]);
    c.wait_exit();
}

/// Hybrid sleep with the power lost while in RAM: the next power-on
/// resumes A from the image, its data disk intact.
#[test]
fn hybrid_sleep_power_lost_in_ram_resumes_from_the_image() {
    let dir = TempDir::new("hybrid-cut-disks");
    let disks = hybrid_disks(&dir);
    let mut a = hybrid_asleep("hybrid-cut-a", &disks);
    a.kill();
    a.expect_absent("kjump-init: woken from RAM");

    let mut c = boot("hybrid-cut-c", &disks, "kjump_boot=c");
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        "kjump resume: committed image on /dev/vda",
        "kjump-init: mode restore",
        "kjump-init: image marked consumed; jumping into A",
        "kjump: back in A after",
        "A: kjump exited 0",
        "A: workload intact",
        "A: file: written before hibernate|written after resume|",
        "A: unmounted /data",
    ]);
    c.wait_exit();
    fsck_clean(&disks[1]);
}

/// A committed image made once for the fault tests: (target, data) disks.
fn golden() -> &'static (PathBuf, PathBuf) {
    static GOLDEN: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    GOLDEN.get_or_init(|| {
        // One per test process: two suites (two kernels) may run at once in one tree.
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kjump-golden-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = sparse_disk(&dir, "target.img", 1200);
        let data = sparse_disk(&dir, "data.img", 64);
        assert!(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&data).status().unwrap().success());
        let mut a = boot("faults-a", &[target.clone(), data.clone()], "");
        a.expect_in_order(&["A: workload ready", "kjump-init: image committed; powering off"]);
        a.wait_exit();
        (target, data)
    })
}

/// Sparse copies of the golden disks in `dir`.
fn copies(dir: &TempDir) -> Vec<PathBuf> {
    let (t, d) = golden();
    [t, d]
        .iter()
        .map(|src| {
            let dst = dir.0.join(src.file_name().unwrap());
            assert!(Command::new("cp").arg("--sparse=always").arg(src).arg(&dst).status().unwrap().success());
            dst
        })
        .collect()
}

#[test]
fn power_cut_while_d_writes_then_resume_succeeds() {
    let dir = TempDir::new("powercut");
    let disks = copies(&dir);
    let mut c = boot("powercut-c", &disks, "kjump_boot=c");
    // Cut as soon as D starts writing A's memory: D now restores the
    // fixture's image in about 1.5 s, so waiting for its first progress
    // line (after 1 s) could miss the writes on a faster host.
    c.expect_in_order(&["kjump-init: mode restore", "kjump-init: image on /dev/vda"]);
    c.kill(); // the power cut
    c.expect_absent("kjump-init: restored ");
    let mut again = boot("powercut-again", &disks, "kjump_boot=c");
    again.expect_in_order(&[
        "kjump resume: committed image on /dev/vda",
        "kjump-init: image marked consumed",
        "A: kjump exited 0",
        "A: workload intact",
        "A: unmounted /data",
    ]);
    again.wait_exit();
}

#[test]
fn flipped_byte_makes_d_refuse_and_verify_name_the_chunk() {
    use kjump::image::{parse_chunk_header, CHUNK_HEADER, DATA_OFFSET};
    use std::io::{Read, Seek, SeekFrom, Write};
    let dir = TempDir::new("flip");
    let disks = copies(&dir);
    // Flip one byte in the pages of chunk 5.
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&disks[0]).unwrap();
    let mut at = DATA_OFFSET;
    let mut head = vec![0u8; 4096];
    for index in 0..=5 {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut head).unwrap();
        let info = parse_chunk_header(&head, index).unwrap();
        if index == 5 {
            let byte = at + (CHUNK_HEADER + (info.run_count + info.zero_run_count) * 16 + 100) as u64;
            let mut b = [0u8];
            f.seek(SeekFrom::Start(byte)).unwrap();
            f.read_exact(&mut b).unwrap();
            f.seek(SeekFrom::Start(byte)).unwrap();
            f.write_all(&[b[0] ^ 0x01]).unwrap();
        }
        at += info.disk_len as u64;
    }
    drop(f);
    let mut c = boot("flip-c", &disks, "kjump_boot=c");
    c.expect_in_order(&[
        "kjump-init: mode restore",
        "kjump-init: error: /dev/vda: chunk 5: checksum mismatch",
        "kjump-init: marked the image bad",
        "kjump-init: not resuming: rebooting into a normal boot",
    ]);
    c.wait_exit();
    c.expect_absent("jumping into A");
    let out = Command::new(env!("CARGO_BIN_EXE_kjump")).args(["image", "verify"]).arg(&disks[0]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("chunk 5: checksum mismatch"), "{text}");
    assert!(text.contains("bad (never to be resumed"), "{text}");
    // The next boot is a normal one.
    let mut again = boot("flip-again", &disks, "kjump_boot=c");
    again.expect_in_order(&["resume: not resuming: the image on /dev/vda is bad", "C: normal boot (kjump resume exited 3)"]);
    again.wait_exit();
}

#[test]
fn noresume_abandons_the_image() {
    let dir = TempDir::new("noresume");
    let disks = copies(&dir);
    // A boot with noresume goes on and may change A's filesystems: it
    // must not resume, and must give the image up.
    let mut c = boot("noresume-c", &disks, "kjump_boot=c noresume");
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        "resume: not resuming: 'noresume' is on the kernel command line",
        "marked the committed image on /dev/vda bad",
        "C: normal boot (kjump resume exited 3)",
    ]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
    let out = Command::new(env!("CARGO_BIN_EXE_kjump")).args(["image", "info"]).arg(&disks[0]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("not resumed: noresume given at boot"), "{text}");
    // The next boot, without noresume, does not resume the stale image.
    let mut again = boot("noresume-again", &disks, "kjump_boot=c");
    again.expect_in_order(&[
        "C: booting, trying kjump resume",
        "resume: not resuming: the image on /dev/vda is bad: not resumed: noresume given at boot",
        "C: normal boot (kjump resume exited 3)",
    ]);
    again.wait_exit();
    again.expect_absent("kjump-init: mode restore");
}

#[test]
fn image_from_a_different_memory_size_is_refused_before_d() {
    let dir = TempDir::new("othermem");
    let disks = copies(&dir);
    let p = paths();
    let initrd = a_initramfs(&p, SCRIPT);
    let mut c = Vm::start(&p, VmConfig { name: "othermem-c", memory_mib: 1536, cpus: 2, initrd, append: "kjump_boot=c", echo: false, disks, uuid: None });
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        // 1.5 GiB puts the region where 1 GiB does (512 MiB): the RAM map
        // check is the one that refuses.
        "resume: not resuming: the image's RAM map differs from this machine's",
        "C: normal boot (kjump resume exited 3)",
    ]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
}

// ---------------------------------------------------------------------------
// Wrong and hostile images: each refused before D writes a page of A's
// memory. The images are edited on the host with every checksum made good
// again, so that only the named problem remains.

/// An image on a disk file, opened for editing.
struct Edit {
    f: std::fs::File,
}

impl Edit {
    fn open(disk: &std::path::Path) -> Self {
        Edit { f: std::fs::OpenOptions::new().read(true).write(true).open(disk).unwrap() }
    }

    fn read(&mut self, at: u64, len: usize) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut b = vec![0u8; len];
        self.f.read_exact_at(&mut b, at).unwrap();
        b
    }

    fn write(&mut self, at: u64, b: &[u8]) {
        use std::os::unix::fs::FileExt;
        self.f.write_all_at(b, at).unwrap();
    }

    fn header(&mut self) -> kjump::image::Header {
        kjump::image::Header::decode(&self.read(0, 4096)).unwrap()
    }

    /// Offsets of every chunk.
    fn chunks(&mut self) -> Vec<(u64, kjump::image::ChunkInfo)> {
        let state = kjump::image::StateBlock::decode(&self.read(4096, 4096)).unwrap();
        let mut at = kjump::image::DATA_OFFSET;
        (0..state.chunk_count)
            .map(|i| {
                let info = kjump::image::parse_chunk_header(&self.read(at, 4096), i).unwrap();
                let here = at;
                at += info.disk_len as u64;
                (here, info)
            })
            .collect()
    }

    /// Sets run `run` of chunk `index` to start at page frame `pfn`, then
    /// makes the chunk's checksums, the chain and the state block good.
    fn set_run_start(&mut self, index: usize, run: usize, pfn: u64) {
        use kjump::image::crc32;
        use kjump::image::CHUNK_HEADER;
        let chunks = self.chunks();
        let (at, info) = chunks[index];
        let body_len = (info.run_count + info.zero_run_count) * 16 + info.stored_len;
        let mut chunk = self.read(at, CHUNK_HEADER + body_len);
        chunk[CHUNK_HEADER + run * 16..CHUNK_HEADER + run * 16 + 8].copy_from_slice(&pfn.to_le_bytes());
        let data_sum = kjump::image::data_sum(&chunk[CHUNK_HEADER..]);
        chunk[32..36].copy_from_slice(&data_sum.to_le_bytes());
        let header_crc = crc32(&chunk[..CHUNK_HEADER - 4]);
        chunk[CHUNK_HEADER - 4..CHUNK_HEADER].copy_from_slice(&header_crc.to_le_bytes());
        self.write(at, &chunk);
        let mut chain = crc32fast::Hasher::new();
        for (_, c) in self.chunks() {
            chain.update(&c.data_sum.to_le_bytes());
        }
        let mut state = kjump::image::StateBlock::decode(&self.read(4096, 4096)).unwrap();
        state.chain_crc = chain.finalize();
        self.write(4096, &state.encode());
    }

    /// Run `run` of chunk `index`: (pfn, count).
    fn run(&mut self, index: usize, run: usize) -> (u64, u64) {
        let (at, _) = self.chunks()[index];
        let b = self.read(at + kjump::image::CHUNK_HEADER as u64 + run as u64 * 16, 16);
        (u64::from_le_bytes(b[..8].try_into().unwrap()), u64::from_le_bytes(b[8..].try_into().unwrap()))
    }
}

/// Boots C on `disks` and expects D to refuse with `why` before writing,
/// and to mark the image bad; then boots again and expects a normal boot
/// that does not start D (no boot loop).
fn d_refuses(name: &str, disks: Vec<PathBuf>, why: &str) {
    let mut c = boot(name, &disks, "kjump_boot=c");
    c.expect_in_order(&[
        "kjump resume: committed image on /dev/vda",
        "kjump-init: mode restore",
        &format!("kjump-init: error: {why}"),
        "kjump-init: marked the image bad",
        "kjump-init: not resuming: rebooting into a normal boot",
    ]);
    c.wait_exit();
    c.expect_absent("kjump-init: checked the layout");
    c.expect_absent("kjump-init: restoring");
    c.expect_absent("jumping into A");
    normal_boot_next(&format!("{name}-next"), &disks, "the image on /dev/vda is bad");
}

/// The next power-on after a refusal: `kjump resume` says `why` without
/// starting D, and the boot goes on.
fn normal_boot_next(name: &str, disks: &[PathBuf], why: &str) {
    let mut next = boot(name, disks, "kjump_boot=c");
    next.expect_in_order(&["C: booting, trying kjump resume", &format!("resume: not resuming: {why}"), "C: normal boot (kjump resume exited 3)"]);
    next.wait_exit();
    next.expect_absent("kjump-init: mode restore");
}

/// `kjump image info` on `disk`: its text.
fn image_info(disk: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kjump")).args(["image", "info"]).arg(disk).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn d_failing_for_another_reason_twice_then_the_next_boot_is_normal() {
    let dir = TempDir::new("dfails");
    let disks = copies(&dir);
    // D cannot find the target (it is told another disk): not the image's
    // fault, so it is left as it is, but each start of D is counted.
    for round in 1..=2 {
        let mut c = boot(&format!("dfails-{round}"), &disks, "kjump_boot=c kjump_lose_target");
        c.expect_in_order(&[
            "kjump resume: committed image on /dev/vda",
            "kjump-init: mode restore",
            "kjump-init: error: ",
            "kjump-init: the image is left as it was",
            "kjump-init: not resuming: rebooting into a normal boot",
        ]);
        c.wait_exit();
        c.expect_absent("jumping into A");
    }
    // The third boot gives the image up instead of starting D again.
    let mut c = boot("dfails-3", &disks, "kjump_boot=c kjump_lose_target");
    c.expect_in_order(&[
        "resume: not resuming: the restore kernel was started 2 time(s) for the image on /dev/vda without resuming it; marked the image bad, never to be resumed",
        "C: normal boot (kjump resume exited 3)",
    ]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
    assert!(image_info(&disks[0]).contains("started 2 time(s)"));
    normal_boot_next("dfails-4", &disks, "the image on /dev/vda is bad: not resumed: the restore kernel was started 2 time(s)");
    // What the user is left with: A's data disk as A synced it.
    fsck_clean_after_replay(&disks[1]);
}

/// `e2fsck -fn` on a copy of `disk` whose journal was replayed first (A
/// never came back to unmount it: a later mount replays it the same way).
fn fsck_clean_after_replay(disk: &std::path::Path) {
    let copy = disk.with_extension("replayed");
    assert!(Command::new("cp").arg("--sparse=always").arg(disk).arg(&copy).status().unwrap().success());
    let out = Command::new("e2fsck").arg("-fy").arg(&copy).output().unwrap();
    // 0: clean; 1: the journal replay (and nothing else) changed it.
    assert!(matches!(out.status.code(), Some(0 | 1)), "e2fsck -fy {}: {}", copy.display(), String::from_utf8_lossy(&out.stdout));
    fsck_clean(&copy);
    let cat = Command::new("debugfs").args(["-R", "cat /log.txt"]).arg(&copy).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "written before hibernate\n");
    let _ = std::fs::remove_file(&copy);
}

#[test]
fn a_boot_that_writes_a_filesystem_of_a_makes_the_image_stale() {
    let dir = TempDir::new("stale");
    let disks = copies(&dir);
    // This boot mounts A's data disk before trying to resume (as a system
    // booted without kjump's hook would): kjump resume refuses to replace
    // a running system's mounted filesystem; the boot goes on and writes it.
    let mut c = boot("stale-c", &disks, "kjump_boot=c kjump_mount_first");
    c.expect_in_order(&[
        "C: mounted /data",
        "resume: not resuming: vdb (UUID ",
        "one of A's devices, is mounted read-write here",
        "C: normal boot (kjump resume exited 1)",
        "C: unmounted /data",
    ]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
    // The next boot finds A's data disk written since the image: refused,
    // named, marked bad.
    let mut next = boot("stale-next", &disks, "kjump_boot=c");
    next.expect_in_order(&[
        "resume: not resuming: vdb (UUID ",
        "written since the image was made",
        "marked the image bad, never to be resumed",
        "C: normal boot (kjump resume exited 3)",
    ]);
    next.wait_exit();
    next.expect_absent("kjump-init: mode restore");
    assert!(image_info(&disks[0]).contains("written since the image was made"));
    normal_boot_next("stale-last", &disks, "the image on /dev/vda is bad: not resumed: vdb");
    // What the user is left with: the other boot's file, a clean filesystem.
    fsck_clean(&disks[1]);
    let cat = Command::new("debugfs").args(["-R", "cat /other.txt"]).arg(&disks[1]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "written by another boot\n");
}

#[test]
fn a_snapshot_is_never_resumed_by_a_boot_on_its_own() {
    let dir = TempDir::new("snapshot-state");
    let target = sparse_disk(&dir.0, "target.img", 1200);
    let data = sparse_disk(&dir.0, "data.img", 64);
    assert!(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&data).status().unwrap().success());
    let disks = vec![target.clone(), data.clone()];
    // A saves a snapshot and goes on: it writes its data disk, unmounts it
    // and powers off.
    let mut a = boot("snapshot-a", &disks, "kjump_snapshot");
    a.expect_in_order(&[
        "A: workload ready",
        "kjump-init: mode save",
        "kjump-init: restored A's low memory; jumping back to A",
        "A: kjump exited 0",
        "A: unmounted /data",
    ]);
    a.wait_exit();
    assert!(image_info(&target).contains("a snapshot"));
    // The next boot does not resume it.
    let mut c = boot("snapshot-c", &disks, "kjump_boot=c");
    c.expect_in_order(&["resume: not resuming: the image on /dev/vda is a snapshot", "C: normal boot (kjump resume exited 3)"]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
    // Asked for explicitly, it is refused all the same: A wrote its data
    // disk after the snapshot.
    let mut c = boot("snapshot-asked", &disks, "kjump_boot=c kjump_resume_snapshot");
    c.expect_in_order(&["resume: not resuming: vdb (UUID ", "written since the image was made", "C: normal boot (kjump resume exited 3)"]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
    // What the user is left with: what A wrote after the snapshot, clean.
    fsck_clean(&data);
    let cat = Command::new("debugfs").args(["-R", "cat /log.txt"]).arg(&data).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "written before hibernate\nwritten after resume\n");
}

#[test]
fn chunk_with_pages_outside_a_ram_is_refused_before_any_write() {
    let dir = TempDir::new("outside");
    let disks = copies(&dir);
    let mut e = Edit::open(&disks[0]);
    // Page 0xfec00 (the I/O APIC) is no RAM of A's.
    let last = e.chunks()[3].1.run_count - 1;
    e.set_run_start(3, last, 0xfec00);
    drop(e);
    d_refuses("outside-c", disks, "/dev/vda: chunk 3: pages at 0xfec00000 lie outside A's RAM");
}

#[test]
fn chunk_with_pages_in_the_kjump_region_is_refused_before_any_write() {
    let dir = TempDir::new("inregion");
    let disks = copies(&dir);
    let mut e = Edit::open(&disks[0]);
    let h = e.header();
    // The last chunk wholly below the region gets its last run moved
    // inside it (still after the chunk's other runs).
    let chunks = e.chunks();
    let index = (0..chunks.len())
        .rev()
        .find(|&i| {
            let (pfn, n) = e.run(i, chunks[i].1.run_count - 1);
            (pfn + n) * 4096 <= h.region.start
        })
        .unwrap();
    let last = chunks[index].1.run_count - 1;
    e.set_run_start(index, last, h.region.start / 4096 + 16);
    drop(e);
    d_refuses("inregion-c", disks, &format!("/dev/vda: chunk {index}: pages at {:#x} lie inside the kjump region", h.region.start + 16 * 4096));
}

#[test]
fn overlapping_chunks_are_refused_before_any_write() {
    let dir = TempDir::new("overlap");
    let disks = copies(&dir);
    let mut e = Edit::open(&disks[0]);
    let (pfn, _) = e.run(6, 0);
    e.set_run_start(7, 0, pfn);
    drop(e);
    d_refuses("overlap-c", disks, &format!("/dev/vda: chunk 7: pages at {:#x} overlap pages stored before them", pfn * 4096));
}

#[test]
fn truncated_image_is_refused_before_any_write() {
    let dir = TempDir::new("truncated");
    let disks = copies(&dir);
    let mut e = Edit::open(&disks[0]);
    let (at, _) = e.chunks()[40];
    drop(e);
    // The disk ends one block into chunk 40: its pages are gone.
    std::fs::OpenOptions::new().write(true).open(&disks[0]).unwrap().set_len(at + 4096).unwrap();
    d_refuses("truncated-c", disks, "/dev/vda: chunk 41: truncated");
}

#[test]
fn image_from_another_kjump_version_is_refused() {
    let dir = TempDir::new("version");
    let disks = copies(&dir);
    let mut e = Edit::open(&disks[0]);
    let mut h = e.read(0, 4096);
    let other = kjump::image::VERSION + 1;
    h[8..12].copy_from_slice(&other.to_le_bytes());
    let crc = kjump::image::crc32(&h[..4092]);
    h[4092..].copy_from_slice(&crc.to_le_bytes());
    e.write(0, &h);
    let mut state = kjump::image::StateBlock::decode(&e.read(4096, 4096)).unwrap();
    state.header_crc = crc;
    e.write(4096, &state.encode());
    drop(e);
    let mut c = boot("version-c", &disks, "kjump_boot=c");
    let why = format!("header: version {other} is not supported (this kjump reads {})", kjump::image::VERSION);
    c.expect_in_order(&["C: booting, trying kjump resume", &why, "C: normal boot (kjump resume exited 3)"]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
}

#[test]
fn image_from_another_machine_is_refused() {
    let dir = TempDir::new("othermachine");
    let disks = copies(&dir);
    let p = paths();
    let initrd = a_initramfs(&p, SCRIPT);
    let other = "0f0e0d0c-0b0a-0908-0706-050403020100";
    let mut c =
        Vm::start(&p, VmConfig { name: "othermachine-c", memory_mib: 1024, cpus: 2, initrd, append: "kjump_boot=c", echo: false, disks, uuid: Some(other) });
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        &format!("resume: not resuming: the image was made on another machine (system UUID {}; this one is {other})", harness::MACHINE_UUID),
        "C: normal boot (kjump resume exited 3)",
    ]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
}

#[test]
fn wipe_erases_an_image_and_refuses_anything_else() {
    let dir = TempDir::new("wipe");
    let disks = copies(&dir);
    let kjump = env!("CARGO_BIN_EXE_kjump");
    // Not an image: the ext4 data disk is left exactly as it was.
    let before = std::fs::read(&disks[1]).unwrap();
    let out = Command::new(kjump).args(["image", "wipe"]).arg(&disks[1]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not hold a kjump image"), "{out:?}");
    assert!(std::fs::read(&disks[1]).unwrap() == before, "wipe changed a non-image");
    // The image: overwritten, then (a file) removed.
    let out = Command::new(kjump).args(["image", "wipe"]).arg(&disks[0]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("file removed"), "{out:?}");
    assert!(!disks[0].exists());
}
