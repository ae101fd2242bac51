//! `make demo`: the mission in one command. A QEMU VM (A) runs a small
//! visible workload — a counter printing every second and 256 MiB of data
//! with a known hash — and hibernates with kjump; QEMU powers off. A new
//! QEMU process boots the same disks, `kjump resume` brings A back, and
//! the counter goes on where it stopped with the hash intact. The image is
//! encrypted with a key file (`encrypt = keyfile:…`): the demo shows that
//! the raw disk holds none of A's data in the clear.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::Instant;

use harness::{a_initramfs, paths, sparse_disk, TempDir, Vm, VmConfig};

const SCRIPT: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The key file that wraps each image's key (on a real machine: on separate
# media, or use 'kjump keygen' and encrypt = passphrase).
mkdir -p /etc
printf 'kjump demo key file 0123456789abcdef0123456789abcdef\n' > /etc/kjump.key
chmod 600 /etc/kjump.key
echo "encrypt = keyfile:/etc/kjump.key" > /etc/kjump.conf
if grep -q kjump_boot=c /proc/cmdline; then
  echo "C: a normal boot of the same machine; first thing: kjump resume"
  kjump resume --target /dev/vda
  echo "C: nothing to resume (kjump resume exited $?); normal boot would go on"
  poweroff -f
fi
echo "A: making 256 MiB of data (half random, half text)"
head -c 134217728 /dev/urandom > /root/random
yes "kjump demo data" | head -c 134217728 > /root/text
before=$(cat /root/random /root/text | md5sum)
echo "A: data hash $before"
( i=0; while true; do i=$((i+1)); echo "A: counter $i"; sleep 1; done ) &
sleep 5
echo "A: kjump hibernate --target /dev/vda"
kjump hibernate --target /dev/vda
echo "A: kjump hibernate exited $?"
after=$(cat /root/random /root/text | md5sum)
if [ "$before" = "$after" ]; then echo "A: data hash $after (intact)"; else echo "A: DATA CHANGED $after"; fi
sleep 4
echo "A: done"
poweroff -f
"#;

fn main() {
    let p = paths();
    let dir = TempDir::new("demo");
    let disks = vec![sparse_disk(&dir.0, "target.img", 1200)];
    let initrd = a_initramfs(&p, SCRIPT);

    println!("kjump demo, part 1: boot A (QEMU, TCG, 1 GiB, 2 CPUs) and hibernate it. A's console:\n");
    let mut a =
        Vm::start(&p, VmConfig { name: "demo-a", memory_mib: 1024, cpus: 2, initrd: initrd.clone(), append: "", echo: true, disks: disks.clone(), uuid: None });
    a.expect_in_order(&["A: kjump hibernate --target /dev/vda"]);
    let t0 = Instant::now();
    let lines = a.expect_in_order(&["kjump-init: summary: ", "kjump-init: image committed; powering off"]);
    a.wait_exit();
    let hibernate = t0.elapsed();
    let summary = lines[0].clone();
    let bytes: u64 = summary.split_whitespace().find_map(|w| w.strip_prefix("bytes_on_disk=")).and_then(|v| v.parse().ok()).unwrap_or(0);
    let raw = std::fs::read(&disks[0]).expect("reading the target");
    let in_clear = raw.windows(15).any(|w| w == b"kjump demo data");
    drop(raw);

    println!("\n\nkjump demo, part 2: QEMU exited. A new QEMU boots the same disks and resumes A. Console:\n");
    let t1 = Instant::now();
    let mut c = Vm::start(&p, VmConfig { name: "demo-c", memory_mib: 1024, cpus: 2, initrd, append: "kjump_boot=c", echo: true, disks, uuid: None });
    c.expect_in_order(&["A: kjump hibernate exited 0"]);
    let resume = t1.elapsed();
    c.expect_in_order(&["(intact)", "A: done"]);
    c.wait_exit();
    println!("\n\nkjump demo: done.");
    println!("  hibernate: {:.1} s from 'kjump hibernate' to QEMU powering off", hibernate.as_secs_f64());
    println!("  image:     {:.1} MiB on disk, encrypted (XChaCha20-Poly1305, key wrapped with /etc/kjump.key)", bytes as f64 / 1048576.0);
    println!("  the raw target {} A's text \"kjump demo data\" in the clear", if in_clear { "HOLDS (encryption failed!)" } else { "does not hold" });
    println!("  resume:    {:.1} s from starting QEMU to A running again", resume.as_secs_f64());
    println!("  (under QEMU's TCG emulation, no KVM: a real machine is much faster)");
    assert!(!in_clear, "A's data is on the target in the clear");
}
