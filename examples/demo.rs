//! `make demo`: boots a QEMU VM (the test kernel as A), runs
//! `kjump check --jump` there, and shows the serial console live: A loads
//! the hibernation kernel B, jumps, B reports and jumps back, A carries on.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::{a_initramfs, a_script, paths, Vm, VmConfig};

fn main() {
    let p = paths();
    println!("kjump demo: booting A (QEMU, TCG, 1 GiB, 2 CPUs); its console follows.\n");
    let initrd = a_initramfs(&p, &a_script("kjump check --jump"));
    let mut vm = Vm::start(&p, VmConfig { name: "demo", memory_mib: 1024, cpus: 2, initrd, append: "", echo: true, disks: vec![] });
    let lines = vm.expect_in_order(&["kjump: back in A after", "A: data intact", "A: cpu1 online=1", "A: done"]);
    vm.wait_exit();
    println!("\nkjump demo: done. {}", lines[0].trim_start_matches(|c: char| c != 'k'));
}
