//! `make test-distro`: a Debian 12 system with systemd, kjump put in by
//! `make install`, and an initramfs made by Debian's own `mkinitramfs` with
//! kjump's initramfs-tools hook. `systemctl start kjump-hibernate` powers the
//! VM off; the next boot resumes it through the hook; the workload service
//! is the same process with its memory-only state intact, systemd is not
//! degraded, and the root filesystem is clean after a clean shutdown.
//!
//! Not part of `cargo test` by default (`test = false` in Cargo.toml): it
//! needs root and the Debian root filesystem, which `make test-distro`
//! builds (scripts/debian-rootfs.sh) and passes in `KJUMP_DEBIAN_ROOTFS`.

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

fn boot(name: &str, initrd: &[u8], disks: &[PathBuf]) -> Vm {
    let p = paths();
    Vm::start(&p, VmConfig { name, memory_mib: 1024, cpus: 2, initrd: initrd.to_vec(), append: APPEND, echo: false, disks: disks.to_vec(), uuid: None })
}

/// The number after `key ` in `line`.
fn number_after(line: &str, key: &str) -> u64 {
    line.split(key).nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no {key:?} number in {line:?}"))
}

#[test]
fn debian_hibernates_with_systemctl_and_resumes_through_initramfs_tools() {
    let p = paths();
    let dir = TempDir::new("distro");
    let made = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/distro-image.sh"))
        .arg(rootfs_tarball())
        .arg(&p.kernel)
        .arg(&dir.0)
        .status()
        .expect("running scripts/distro-image.sh");
    assert!(made.success(), "scripts/distro-image.sh failed (see above)");
    let initrd = std::fs::read(dir.0.join("initrd.img")).unwrap();
    let root = dir.0.join("root.img");
    let target = sparse_disk(&dir.0, "target.img", 1200);
    let disks = vec![root.clone(), target];

    // A: systemd up, workload running; systemctl start kjump-hibernate.
    let mut a = boot("distro-a", &initrd, &disks);
    let got = a.expect_in_order_within(&["DISTRO: booted: system ", "DISTRO: A ready: workload "], PHASE);
    assert!(got[0].ends_with("system running"), "A did not boot cleanly: {}", got[0]);
    assert!(got[1].contains("workload active pid "), "{}", got[1]);
    let pid = number_after(&got[1], "pid");
    let ticks = number_after(&got[1], "ticks");
    a.expect_in_order_within(&["kjump-init: summary:"], PHASE);
    assert!(a.try_exit(PHASE), "B did not power the machine off after saving");
    let log = a.log();
    assert!(!log.contains("kjump-hibernate finished"), "systemctl start kjump-hibernate returned in A before B ran:\n{log}");
    drop(a);

    // The next boot: Debian's initramfs resumes A through kjump's hook.
    let mut c = boot("distro-c", &initrd, &disks);
    c.expect_in_order_within(&["Run /init as init process", "kjump-init: restored ", "DISTRO: kjump-hibernate finished: exit 0"], PHASE);
    let got = c.expect_in_order_within(&["DISTRO: after resume: system ", "DISTRO: workload: "], PHASE);
    let log = c.log();
    assert!(!log.contains("DISTRO: booted:"), "the second boot started systemd afresh instead of resuming:\n{log}");
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
    c.expect_in_order_within(&["DISTRO: shutting down"], PHASE);
    assert!(c.try_exit(PHASE), "the resumed system did not shut down");
    drop(c);
    fsck_clean(&root);
}
