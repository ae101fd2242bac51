//! `make test-distro`: a Debian 12 system with systemd, kjump installed
//! from its package (`make deb`, `dpkg -i`), and an initramfs made by Debian's own `mkinitramfs` with
//! kjump's initramfs-tools hook, on a machine with a TPM 2.0 (swtpm), images
//! encrypted with `encrypt = tpm2`. logind offers hibernation (kjump's
//! generator); `systemctl hibernate` runs the system-sleep hooks and powers
//! the VM off through kjump; the next boot resumes it through the hook (C
//! unseals the key with Debian's tpm2-tools), and A logs and records how
//! it went. Then `systemctl suspend-then-hibernate`: suspended to RAM, the
//! wake alarm rings, kjump hibernates; the next boot resumes again. Then
//! suspend-then-hibernate woken by the user (QEMU's `system_wakeup`) before
//! its alarm: the system stays up. Then a lid switch closes and logind
//! starts a hybrid sleep: B saves, suspends to RAM, is woken, marks the
//! image consumed and goes back to A. The
//! workload service is the same process with its memory-only state
//! intact, systemd is not degraded, the hooks ran with systemd's arguments,
//! the journal holds B's and D's reports, A advanced the TPM's counter,
//! and the root filesystem is clean after a clean shutdown. Then the image
//! as it was before the first resume (a copy an attacker kept) is put
//! back: the next boot refuses it, gives it up, and is a normal boot, with
//! the root filesystem clean.
//!
//! The second test boots the same system with Debian's dracut instead of
//! initramfs-tools: the resume goes through kjump's dracut module.
//!
//! A and C run the distro flavour of the test kernel (a TPM driver); B and
//! D, kjump's hibernation kernel, have none.
//!
//! Not part of `cargo test` by default (`test = false` in Cargo.toml): it
//! needs root and the Debian root filesystem, which `make test-distro`
//! builds (scripts/debian-rootfs.sh) and passes in `KJUMP_DEBIAN_ROOTFS`
//! (and `KJUMP_DEBIAN_DRACUT_ROOTFS`, its dracut variant).

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::{fsck_clean, paths, sparse_disk, TempDir, Vm, VmConfig};

/// Booting systemd under emulation is slow; be generous.
const PHASE: Duration = Duration::from_secs(900);

/// Debian's kernel command line, as a bootloader would give it.
const APPEND: &str = "root=/dev/vda ro";

fn rootfs_tarball() -> PathBuf {
    let t = std::env::var_os("KJUMP_DEBIAN_ROOTFS")
        .expect("KJUMP_DEBIAN_ROOTFS is not set: run this test through 'make test-distro', which builds the Debian root filesystem");
    PathBuf::from(t)
}

fn boot(name: &str, initrd: &[u8], disks: &[PathBuf], append: &str, tpm: &Path) -> Vm {
    let p = paths();
    Vm::start_with_tpm(&p, VmConfig { name, memory_mib: 1024, cpus: 2, initrd: initrd.to_vec(), append, echo: false, disks: disks.to_vec(), uuid: None }, tpm)
}

/// `kjump image info` of the image on `disk`, run on the host.
fn image_info(disk: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kjump")).args(["image", "info"]).arg(disk).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// One test machine: its directory, the initramfs scripts/distro-image.sh
/// made (with Debian's mkinitramfs, or with `tool`), the root disk, an
/// empty target disk, both disks in boot order, and its TPM's state.
struct Machine {
    dir: TempDir,
    initrd: Vec<u8>,
    root: PathBuf,
    target: PathBuf,
    disks: Vec<PathBuf>,
    tpm: PathBuf,
}

/// Makes the disks of a machine called `name` from the root filesystem
/// `tarball` (scripts/distro-image.sh; `tool` "dracut" for a dracut
/// initramfs).
fn machine(name: &str, tarball: &Path, tool: Option<&str>) -> Machine {
    let p = paths();
    let dir = TempDir::new(name);
    let made = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/distro-image.sh"))
        .arg(tarball)
        .arg(&p.kernel)
        .arg(&dir.0)
        .args(tool)
        .status()
        .expect("running scripts/distro-image.sh");
    assert!(made.success(), "scripts/distro-image.sh {} failed (see above)", tool.unwrap_or(""));
    let initrd = std::fs::read(dir.0.join("initrd.img")).unwrap();
    let root = dir.0.join("root.img");
    let target = sparse_disk(&dir.0, "target.img", 1200);
    let disks = vec![root.clone(), target.clone()];
    let tpm = dir.0.join("tpm");
    Machine { dir, initrd, root, target, disks, tpm }
}

/// The number after `key ` in `line`.
fn number_after(line: &str, key: &str) -> u64 {
    line.split(key).nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no {key:?} number in {line:?}"))
}

#[test]
fn debian_hibernates_with_systemctl_and_suspend_then_hibernate_and_resumes_through_initramfs_tools() {
    let Machine { dir: _dir, initrd, root, target, disks, tpm } = machine("distro", &rootfs_tarball(), None);

    // A: systemd up, workload running; logind offers hibernation (kjump's
    // generator); `systemctl hibernate` runs the sleep hooks, then kjump.
    let mut a = boot("distro-a", &initrd, &disks, APPEND, &tpm);
    let got = a.expect_in_order_within(&["DISTRO: booted: system ", "DISTRO: A ready: workload ", "DISTRO: logind: "], PHASE);
    assert!(got[0].ends_with("system running"), "A did not boot cleanly: {}", got[0]);
    assert!(got[1].contains("workload active pid "), "{}", got[1]);
    assert!(got[2].ends_with("CanHibernate yes CanSuspendThenHibernate yes CanHybridSleep yes"), "logind does not offer kjump's hibernation: {}", got[2]);
    let pid = number_after(&got[1], "pid");
    let ticks = number_after(&got[1], "ticks");
    // kjump check: systemd reaches kjump, and the initramfs was built with
    // this kjump and these settings.
    let log = a.log();
    let check: Vec<&str> = log.lines().filter(|l| l.contains("DISTRO: check: ")).collect();
    assert!(
        check.iter().any(|l| l.contains("ok") && l.contains("systemd: systemctl hibernate, suspend-then-hibernate and hybrid-sleep use kjump")),
        "{check:#?}"
    );
    assert!(check.iter().any(|l| l.contains("ok") && l.contains("initramfs")) && !check.iter().any(|l| l.contains("warn")), "{check:#?}");
    assert!(check.iter().any(|l| l.contains("ok") && l.contains("hybrid sleep: the hibernation kernel can suspend to RAM")), "{check:#?}");
    a.expect_in_order_within(&["DISTRO: sleep hook: pre hibernate hibernate", "kjump-init: summary:"], PHASE);
    assert!(a.try_exit(PHASE), "B did not power the machine off after saving");
    let log = a.log();
    assert!(!log.contains("DISTRO: back from"), "A went on before B ran:\n{log}");
    assert!(!log.contains("sleep hook: post"), "the post hooks ran before the resume:\n{log}");
    drop(a);
    let info = image_info(&target);
    assert!(info.contains("key sealed to the TPM under PCRs sha256:7"), "the image is not sealed to the TPM:\n{info}");
    // What someone who can read the disks keeps: both as they are now. The
    // root filesystem too, so that the freshness stamps cannot tell the
    // copy from the real thing later: only the TPM's counter can.
    let copies: Vec<(PathBuf, PathBuf)> = [&root, &target].iter().map(|d| (d.to_path_buf(), d.with_extension("copy"))).collect();
    for (d, copy) in &copies {
        assert!(Command::new("cp").arg("--sparse=always").arg(d).arg(copy).status().unwrap().success());
    }

    // The next boot: Debian's initramfs resumes A through kjump's hook; A
    // runs the post hooks and records the outcome. Then
    // `systemctl suspend-then-hibernate`: suspended to RAM, the wake alarm
    // (HibernateDelaySec=20s) rings, kjump hibernates.
    let mut c = boot("distro-c", &initrd, &disks, APPEND, &tpm);
    c.expect_in_order_within(&["Run /init as init process", "kjump-init: restored ", "DISTRO: sleep hook: post hibernate hibernate"], PHASE);
    let got = c.expect_in_order_within(&["DISTRO: back from hibernate: ", "DISTRO: status: report: "], PHASE);
    assert!(got[0].contains("last hibernation: worked"), "{}", got[0]);
    assert!(
        got[1].contains("resumed from the image on ") && got[1].contains("B saved ") && got[1].contains("D restored it"),
        "A does not know how the save went: {}",
        got[1]
    );
    c.expect_in_order_within(
        &[
            "DISTRO: sleep hook: pre suspend-then-hibernate suspend",
            "DISTRO: sleep hook: post suspend-then-hibernate suspend",
            "DISTRO: sleep hook: pre suspend-then-hibernate hibernate",
            "kjump-init: summary:",
        ],
        PHASE,
    );
    assert!(c.try_exit(PHASE), "B did not power the machine off after saving (suspend-then-hibernate)");
    drop(c);

    // The resume after suspend-then-hibernate: the same system throughout.
    let mut c = boot("distro-c2", &initrd, &disks, APPEND, &tpm);
    c.expect_in_order_within(&["Run /init as init process", "kjump-init: restored ", "DISTRO: sleep hook: post suspend-then-hibernate hibernate"], PHASE);
    let got = c.expect_in_order_within(&["DISTRO: back from suspend-then-hibernate: "], PHASE);
    assert!(got[0].contains("last hibernation: worked"), "{}", got[0]);

    // suspend-then-hibernate again, woken by the user (a key: QEMU's
    // system_wakeup) long before its alarm: the system stays up.
    c.expect_in_order_within(&["DISTRO: sleep hook: pre suspend-then-hibernate suspend"], PHASE);
    c.wait_suspended();
    c.wake();
    let got = c.expect_in_order_within(&["DISTRO: sleep hook: post suspend-then-hibernate suspend", "DISTRO: woken early: "], PHASE);
    assert!(got[1].ends_with("1 early wake(s) in the journal"), "kjump did not see the early wake: {}", got[1]);

    // The lid closed: logind starts a hybrid sleep; B saves the image and
    // suspends to RAM; the user wakes the machine (and opens the lid): B
    // takes the image back and A carries on.
    let got = c.expect_in_order_within(
        &[
            "DISTRO: lid: ",
            "DISTRO: sleep hook: pre hybrid-sleep hybrid-sleep",
            "kjump-init: summary:",
            "kjump-init: image committed; suspending to RAM (hybrid sleep",
        ],
        PHASE,
    );
    assert!(got[0].contains("1 lid switch(es) watched by logind"), "logind does not watch the lid: {}", got[0]);
    c.wait_suspended();
    c.wake();
    let got = c.expect_in_order_within(
        &[
            "kjump-init: woken from RAM after ",
            "kjump-init: image marked consumed",
            "jumping back to A",
            "DISTRO: sleep hook: post hybrid-sleep hybrid-sleep",
            "DISTRO: back from hybrid-sleep: ",
            "DISTRO: status: report: ",
        ],
        PHASE,
    );
    assert!(got[4].contains("last hibernation: worked"), "{}", got[4]);
    assert!(got[5].contains("suspended to RAM and woken after"), "A does not know the hybrid sleep was woken from RAM: {}", got[5]);
    let info = image_info(&target);
    assert!(info.contains("consumed") && info.contains("key destroyed"), "the image of the hybrid sleep was not taken back:\n{info}");

    let got = c.expect_in_order_within(&["DISTRO: after resume: system ", "DISTRO: workload: "], PHASE);
    let log = c.log();
    assert!(!log.contains("DISTRO: booted:"), "a boot started systemd afresh instead of resuming:\n{log}");
    assert!(
        got[0].ends_with("system running"),
        "systemd after resume: {}\n{}",
        got[0],
        log.lines().filter(|l| l.contains("failed unit")).collect::<Vec<_>>().join("\n")
    );
    let w = &got[1];
    assert!(w.contains("workload: active pid "), "the workload service is not running: {w}");
    assert_eq!(number_after(w, "pid"), pid, "the workload is another process: {w}");
    assert!(number_after(w, "ticks") > ticks, "the workload's counter did not carry on from {ticks}: {w}");
    assert!(w.ends_with("data intact"), "the workload's memory changed: {w}");
    // Each hook ran once per step, with systemd's arguments and action.
    let hooks: Vec<&str> = log.lines().filter_map(|l| l.split("DISTRO: hook ran: ").nth(1)).map(str::trim).collect();
    assert_eq!(
        hooks,
        [
            "pre hibernate hibernate",
            "post hibernate hibernate",
            "pre suspend-then-hibernate suspend",
            "post suspend-then-hibernate suspend",
            "pre suspend-then-hibernate hibernate",
            "post suspend-then-hibernate hibernate",
            "pre suspend-then-hibernate suspend",
            "post suspend-then-hibernate suspend",
            "pre hybrid-sleep hybrid-sleep",
            "post hybrid-sleep hybrid-sleep"
        ],
        "the sleep hooks did not run as systemd runs them"
    );
    c.expect_in_order_within(&["DISTRO: shutting down"], PHASE);
    let log = c.log();
    // The journal holds what A said on each return: B's save and D's
    // restore, and the TPM counter that retires every copy.
    let journal: Vec<&str> = log.lines().filter(|l| l.contains("DISTRO: journal: ")).collect();
    assert_eq!(journal.iter().filter(|l| l.contains("kjump: back in A after") && l.contains("B saved")).count(), 2, "{journal:#?}");
    // suspend-then-hibernate suspended first: the write to /sys/power/state
    // returned, and the wake alarm had rung.
    assert!(journal.iter().any(|l| l.contains("kjump: the wake alarm rang after 20s: hibernating")), "{journal:#?}");
    assert!(journal.iter().any(|l| l.contains("kjump: woken before the alarm: not hibernating")), "{journal:#?}");
    assert_eq!(journal.iter().filter(|l| l.contains("kjump: back in A after") && l.contains("suspended to RAM and woken after")).count(), 1, "{journal:#?}");
    // Each return to A, the hybrid sleep's too, moved the counter on.
    assert_eq!(journal.iter().filter(|l| l.contains("TPM counter at") && l.contains("no copy of the image can be resumed now")).count(), 3, "{journal:#?}");
    assert!(c.try_exit(PHASE), "the resumed system did not shut down");
    drop(c);
    fsck_clean(&root);

    // The old copies put back: the TPM's counter moved on, so the image's
    // key never unseals; C gives it up and this boot is a normal one, of
    // the root filesystem as the hibernated system left it (its journal
    // replayed).
    for (d, copy) in &copies {
        std::fs::rename(copy, d).unwrap();
    }
    let append = format!("{APPEND} kjump_distro_test=check");
    let mut c = boot("distro-replay", &initrd, &disks, &append, &tpm);
    let got = c.expect_in_order_within(&["Run /init as init process", "kjump: ", "DISTRO: booted: system ", "DISTRO: normal boot"], PHASE);
    let log = c.log();
    assert!(
        log.contains("sealed at TPM counter") && log.contains("it can never be resumed") && log.contains("marked the image bad"),
        "C did not refuse the old copy as stale and give it up:\n{}",
        log.lines().filter(|l| l.contains("kjump")).collect::<Vec<_>>().join("\n")
    );
    assert!(!log.contains("kjump-init: restored"), "the old copy was restored:\n{log}");
    assert!(got[2].ends_with("system running"), "the boot after the refusal is not a clean normal boot: {}", got[2]);
    assert!(c.try_exit(PHASE), "the normal boot did not shut down");
    drop(c);
    fsck_clean(&root);
    // What is left on the target: the copy, marked bad with its key destroyed.
    // The root filesystem, checked clean above, is the copy's.
    let info = image_info(&target);
    assert!(info.contains("bad") && info.contains("key destroyed"), "the old copy is not given up on disk:\n{info}");
}

fn dracut_rootfs_tarball() -> PathBuf {
    let t = std::env::var_os("KJUMP_DEBIAN_DRACUT_ROOTFS")
        .expect("KJUMP_DEBIAN_DRACUT_ROOTFS is not set: run this test through 'make test-distro', which builds the Debian root filesystem with dracut");
    PathBuf::from(t)
}

/// The same Debian 12 system with Debian's `dracut` instead of
/// initramfs-tools: the initramfs is dracut's, with kjump's module
/// (contrib/dracut/90kjump), and the resume goes through its pre-mount
/// hook. `systemctl hibernate` once (`kjump_distro_test=hibernate`), the
/// resume, a clean shutdown; then a power-on with the image consumed, a
/// normal boot. Runs beside the test above (its own directory and TPM):
/// two guests at once.
#[test]
fn debian_hibernates_with_systemctl_and_resumes_through_dracut() {
    let Machine { dir: _dir, initrd, root, target, disks, tpm } = machine("distro-dracut", &dracut_rootfs_tarball(), Some("dracut"));
    let append = format!("{APPEND} kjump_distro_test=hibernate");

    // A: dracut's initramfs mounts the root; `systemctl hibernate`.
    let mut a = boot("dracut-a", &initrd, &disks, &append, &tpm);
    let got = a.expect_in_order_within(&["Run /init as init process", "DISTRO: booted: system ", "DISTRO: A ready: workload ", "DISTRO: logind: "], PHASE);
    assert!(got[1].ends_with("system running"), "A did not boot cleanly through dracut's initramfs: {}", got[1]);
    assert!(got[2].contains("workload active pid "), "{}", got[2]);
    assert!(got[3].ends_with("CanHibernate yes CanSuspendThenHibernate yes CanHybridSleep yes"), "logind does not offer kjump's hibernation: {}", got[3]);
    let pid = number_after(&got[2], "pid");
    let ticks = number_after(&got[2], "ticks");
    // kjump check: the initramfs dracut built records this kjump and these
    // settings (the module's digest).
    let log = a.log();
    let check: Vec<&str> = log.lines().filter(|l| l.contains("DISTRO: check: ")).collect();
    assert!(check.iter().any(|l| l.contains("ok") && l.contains("initramfs")) && !check.iter().any(|l| l.contains("warn")), "{check:#?}");
    a.expect_in_order_within(&["DISTRO: sleep hook: pre hibernate hibernate", "kjump-init: summary:"], PHASE);
    assert!(a.try_exit(PHASE), "B did not power the machine off after saving");
    drop(a);
    let info = image_info(&target);
    assert!(info.contains("key sealed to the TPM under PCRs sha256:7"), "the image is not sealed to the TPM:\n{info}");

    // C: dracut's pre-mount hook runs `kjump resume`; A comes back.
    let mut c = boot("dracut-c", &initrd, &disks, &append, &tpm);
    c.expect_in_order_within(
        &["Run /init as init process", "dracut pre-mount hook", "kjump-init: restored ", "DISTRO: sleep hook: post hibernate hibernate"],
        PHASE,
    );
    let got = c.expect_in_order_within(&["DISTRO: back from hibernate: ", "DISTRO: after resume: system ", "DISTRO: workload: "], PHASE);
    assert!(got[0].contains("last hibernation: worked"), "{}", got[0]);
    let log = c.log();
    assert!(!log.contains("DISTRO: booted:"), "the boot started systemd afresh instead of resuming:\n{log}");
    assert!(got[1].ends_with("system running"), "systemd after resume: {}", got[1]);
    let w = &got[2];
    assert!(w.contains("workload: active pid "), "the workload service is not running: {w}");
    assert_eq!(number_after(w, "pid"), pid, "the workload is another process: {w}");
    assert!(number_after(w, "ticks") > ticks, "the workload's counter did not carry on from {ticks}: {w}");
    assert!(w.ends_with("data intact"), "the workload's memory changed: {w}");
    c.expect_in_order_within(&["DISTRO: shutting down"], PHASE);
    assert!(c.try_exit(PHASE), "the resumed system did not shut down");
    drop(c);
    fsck_clean(&root);

    // The image was consumed: the next power-on is a normal boot, the hook
    // having found nothing to resume, and said so in the kernel log (on the
    // console).
    let append = format!("{APPEND} kjump_distro_test=check");
    let mut c = boot("dracut-normal", &initrd, &disks, &append, &tpm);
    let got = c.expect_in_order_within(&["Run /init as init process", "kjump: resume: ", "DISTRO: booted: system ", "DISTRO: normal boot: "], PHASE);
    assert!(
        got[1].ends_with("kjump: resume: not resuming: the image on /dev/vdb is consumed (already resumed)"),
        "dracut's hook did not find the image consumed: {}",
        got[1]
    );
    assert!(got[2].ends_with("system running"), "the boot after the resume is not a clean normal boot: {}", got[2]);
    assert!(!c.log().contains("kjump-init: restored"), "the consumed image was restored again:\n{}", c.log());
    assert!(c.try_exit(PHASE), "the normal boot did not shut down");
    drop(c);
    fsck_clean(&root);
}
