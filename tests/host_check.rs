//! `kjump check` on the host (a Debian kernel without KEXEC_JUMP, not the
//! test VM) must say why it cannot hibernate and exit non-zero, not panic.

use std::process::Command;

#[test]
fn check_on_the_host_refuses_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_kjump")).args(["check", "--kernel", "/nonexistent/vmlinuz"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("hibernation kernel /nonexistent/vmlinuz"), "{stdout}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("kjump: check: this machine cannot hibernate with kjump: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_kjump")).args(["check", "--region-size", "lots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--region-size"));
    let out = Command::new(env!("CARGO_BIN_EXE_kjump")).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("kjump check"));
}

#[test]
fn initramfs_command_writes_an_archive_with_only_kjump_init() {
    let dir = std::env::temp_dir().join(format!("kjump-initramfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("initramfs.img");
    let out =
        Command::new(env!("CARGO_BIN_EXE_kjump")).args(["initramfs", "--init", env!("CARGO_BIN_EXE_kjump-init"), "--output"]).arg(&out_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img = std::fs::read(&out_path).unwrap();
    let cpio = kjump::init::gzip::decompress(&img, 256 << 20).unwrap();
    let entries = kjump::init::cpio::read(&cpio).unwrap();
    let files: Vec<_> = entries.iter().filter(|e| e.mode & 0o170000 == 0o100000).map(|e| e.name.as_str()).collect();
    assert_eq!(files, ["kjump-init"], "no shell, no busybox in B's initramfs");
    std::fs::remove_dir_all(&dir).unwrap();
}
