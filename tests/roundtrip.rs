//! A → B → A in QEMU: `kjump check --jump` on A loads B with our own
//! loader and purgatory, B's `kjump-init` reports what it found and jumps
//! back, and A carries on with its memory intact.

mod harness;

use harness::{a_initramfs, a_script, paths, Vm, VmConfig};

fn round_trip(name: &str, cpus: u32) -> Vm {
    let p = paths();
    let initrd = a_initramfs(&p, &a_script("kjump check --jump"));
    let mut vm = Vm::start(&p, VmConfig { name, memory_mib: 1024, cpus, initrd, append: "", echo: false, disks: vec![], uuid: None });
    let lines = vm.expect_in_order(&[
        "A: data written, md5",
        "kjump check: this machine can hibernate with kjump",
        "kjump: loaded the hibernation kernel in",
        "kjump-init: mode roundtrip",
        "kjump-init: jump-back entry 0x",
        "kjump-init: A's low memory backup at 0x",
        "kjump-init: /proc/vmcore is ",
        "kjump-init: restored A's low memory; jumping back to A",
        "kjump: back in A after ",
        "A: kjump exited 0",
        "A: data intact",
    ]);
    // B saw A's memory: /proc/vmcore holds at least the 64 MiB A wrote.
    let vmcore = &lines[6];
    let mib: u64 = vmcore
        .split(" bytes (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the size in {vmcore:?}"));
    assert!(mib >= 512, "/proc/vmcore should cover most of A's 1 GiB, got {mib} MiB: {vmcore}");
    assert!(lines[8].contains(" s (round trip"), "{}", lines[8]);
    vm
}

#[test]
fn round_trip_one_cpu() {
    let mut vm = round_trip("roundtrip-smp1", 1);
    vm.expect_in_order(&["A: done"]);
    vm.wait_exit();
    vm.expect_absent("DATA CHANGED");
}

#[test]
fn round_trip_two_cpus_brings_cpu1_back() {
    let mut vm = round_trip("roundtrip-smp2", 2);
    vm.expect_in_order(&["A: up with 2 CPUs", "A: cpu1 online=1", "A: pinned task ran on cpu 1", "A: done"]);
    vm.wait_exit();
}
