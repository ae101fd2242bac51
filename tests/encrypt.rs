//! Encrypted images (format 4) across every boot they touch: A hibernates
//! with a key file or a passphrase key pair, the raw target never holds
//! what A had in RAM, C resumes only with the right key, a forged or
//! changed image is refused before D writes A's memory, and a consumed
//! image stays dead whatever its state block is edited to. After every
//! refusal the next power-on is a normal boot.

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{a_initramfs, fsck_clean, paths, sparse_disk, TempDir, Vm, VmConfig};
use kjump::image::{self, Chain, ChunkSums, BLOCK, CHUNK_HEADER, DATA_OFFSET};

/// A marker A holds in RAM (a tmpfs file) while it hibernates: it must
/// not appear anywhere on the target.
const MARKER: &str = "KJUMP-SECRET-4e1d7b LUKS master key stand-in";

/// A and C share this script. The key file is made the same way in both
/// (in a real system it would sit on separate media). Switches on C's
/// command line: `kjump_nokey` (the key file is missing), `kjump_pass=X`
/// (the passphrases piped to `kjump resume`, `,` between tries).
const SCRIPT: &str = r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /etc /data
printf 'kjump test key file: 0123456789abcdef0123456789abcdef\n' > /etc/kjump.key
chmod 600 /etc/kjump.key
if grep -q kjump_passphrase /proc/cmdline; then
  echo "encrypt = passphrase" > /etc/kjump.conf
else
  echo "encrypt = keyfile:/etc/kjump.key" > /etc/kjump.conf
fi
if grep -q kjump_boot=c /proc/cmdline; then
  echo "C: booting, trying kjump resume"
  if grep -q kjump_nokey /proc/cmdline; then rm /etc/kjump.key; fi
  pass=$(sed -n 's/.*kjump_pass=\([^ ]*\).*/\1/p' /proc/cmdline)
  if [ -n "$pass" ]; then
    echo "$pass" | tr ',' '\n' | kjump resume --target /dev/vda
  else
    kjump resume --target /dev/vda
  fi
  echo "C: normal boot (kjump resume exited $?)"
  poweroff -f
fi
if grep -q kjump_passphrase /proc/cmdline; then
  printf 'correct-horse-battery\ncorrect-horse-battery\n' | kjump keygen --argon2-memory 8192 && echo "A: key pair made"
fi
mount -t ext4 /dev/vdb /data
yes "KJUMP-SECRET-4e1d7b LUKS master key stand-in" | head -c 33554432 > /root/secret
head -c 33554432 /dev/urandom > /root/random
before=$(cat /root/secret /root/random | md5sum)
echo "A: workload ready"
exec 3>>/data/log.txt
echo "written before hibernate" >&3
kjump hibernate --target /dev/vda
echo "A: kjump exited $?"
echo "written after resume" >&3
exec 3>&-
after=$(cat /root/secret /root/random | md5sum)
if [ "$before" = "$after" ]; then echo "A: workload intact"; else echo "A: WORKLOAD CHANGED"; fi
umount /data && echo "A: unmounted /data"
poweroff -f
"#;

fn boot(name: &str, disks: &[PathBuf], append: &str) -> Vm {
    let p = paths();
    let initrd = a_initramfs(&p, SCRIPT);
    Vm::start(&p, VmConfig { name, memory_mib: 768, cpus: 2, initrd, append, echo: false, disks: disks.to_vec(), uuid: None })
}

fn disks(dir: &TempDir) -> Vec<PathBuf> {
    let target = sparse_disk(&dir.0, "target.img", 1000);
    let data = sparse_disk(&dir.0, "data.img", 64);
    assert!(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&data).status().unwrap().success());
    vec![target, data]
}

/// First power-on: A hibernates (encrypted) and powers off.
fn hibernate(name: &str, disks: &[PathBuf], append: &str) {
    let mut a = boot(name, disks, append);
    a.expect_in_order(&[
        "A: workload ready",
        "kjump: hibernating to /dev/vda (then poweroff, encrypted)",
        "kjump-init: encrypting the image",
        "kjump-init: image committed; powering off",
    ]);
    a.wait_exit();
}

/// A power-on that must be a normal boot: `kjump resume` refuses with
/// `why` and A is not entered.
fn normal_boot(name: &str, disks: &[PathBuf], append: &str, why: &str, exit: u8) {
    let mut c = boot(name, disks, &format!("kjump_boot=c {append}"));
    c.expect_in_order(&["C: booting, trying kjump resume", why, &format!("C: normal boot (kjump resume exited {exit})")]);
    c.wait_exit();
    c.expect_absent("kjump-init: mode restore");
}

/// A power-on that resumes A, which finds its memory and files intact.
fn resume(name: &str, disks: &[PathBuf], append: &str) {
    let mut c = boot(name, disks, &format!("kjump_boot=c {append}"));
    c.expect_in_order(&[
        "C: booting, trying kjump resume",
        "kjump resume: committed image on /dev/vda",
        "kjump-init: mode restore",
        "kjump-init: image marked consumed; jumping into A",
        "kjump: back in A after",
        "A: kjump exited 0",
        "A: workload intact",
        "A: unmounted /data",
    ]);
    c.wait_exit();
    fsck_clean(&disks[1]);
    let cat = Command::new("debugfs").args(["-R", "cat /log.txt"]).arg(&disks[1]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "written before hibernate\nwritten after resume\n");
}

fn read_at(path: &Path, at: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut b = vec![0u8; len];
    std::fs::File::open(path).unwrap().read_exact_at(&mut b, at).unwrap();
    b
}

fn write_at(path: &Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(bytes, at).unwrap();
}

fn put_crc(block: &mut [u8]) {
    let n = block.len();
    let crc = kjump::image::crc32(&block[..n - 4]);
    block[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

/// Where each chunk of the image on `target` starts.
fn chunk_offsets(target: &Path) -> Vec<u64> {
    let state = image::StateBlock::decode(&read_at(target, BLOCK as u64, BLOCK)).unwrap();
    let mut at = DATA_OFFSET;
    (0..state.chunk_count)
        .map(|i| {
            // A header whose index was changed may fail its CRC: its length is all that is needed here.
            let mut head = read_at(target, at, CHUNK_HEADER);
            put_crc(&mut head);
            head[8..16].copy_from_slice(&i.to_le_bytes());
            put_crc(&mut head);
            let info = image::parse_chunk_header(&head, i).unwrap();
            let here = at;
            at += info.disk_len as u64;
            here
        })
        .collect()
}

/// What an attacker who can write the target but has no key can do to
/// keep every checksum right: recompute each chunk's header CRC and data
/// checksum, the header's CRC, and with `fix_state` the chain and the
/// header CRC in the state block and the state block's CRC (which makes
/// the state fail its MAC: without it, the chain does not match). Only
/// the MACs and tags stay as they were.
fn recompute_checksums(target: &Path, fix_state: bool) {
    let offsets = chunk_offsets(target);
    let mut chain = Chain::default();
    for (i, &at) in offsets.iter().enumerate() {
        let head = read_at(target, at, CHUNK_HEADER);
        let info = image::parse_chunk_header(&head, i as u64).unwrap_or_else(|_| {
            // The header CRC no longer matches: fix it first.
            let mut h = head.clone();
            put_crc(&mut h);
            image::parse_chunk_header(&h, i as u64).unwrap()
        });
        let body_len = (info.run_count + info.zero_run_count) * 16 + info.stored_len;
        let mut chunk = read_at(target, at, CHUNK_HEADER + body_len);
        let sum = image::data_sum(&chunk[CHUNK_HEADER..]);
        chunk[32..36].copy_from_slice(&sum.to_le_bytes());
        put_crc(&mut chunk[..CHUNK_HEADER]);
        write_at(target, at, &chunk[..CHUNK_HEADER]);
        chain.add(&ChunkSums { sum, tag: info.tag });
    }
    let mut header = read_at(target, 0, BLOCK);
    put_crc(&mut header);
    write_at(target, 0, &header);
    if !fix_state {
        return;
    }
    let mut state = read_at(target, BLOCK as u64, BLOCK);
    state[16..20].copy_from_slice(&header[BLOCK - 4..]);
    state[20..24].copy_from_slice(&chain.value().to_le_bytes());
    put_crc(&mut state);
    write_at(target, BLOCK as u64, &state);
}

/// Changes one byte of the first chunk's stored (sealed) pages.
fn change_a_page(target: &Path) {
    let at = chunk_offsets(target)[0];
    let info = image::parse_chunk_header(&read_at(target, at, CHUNK_HEADER), 0).unwrap();
    let byte_at = at + (CHUNK_HEADER + (info.run_count + info.zero_run_count) * 16 + info.stored_len / 2) as u64;
    let b = read_at(target, byte_at, 1)[0];
    write_at(target, byte_at, &[b ^ 0x5a]);
}

fn state_of(target: &Path) -> image::StateBlock {
    image::StateBlock::decode(&read_at(target, BLOCK as u64, BLOCK)).unwrap()
}

#[test]
fn key_file_hibernate_resume_and_the_disk_never_holds_a_s_memory() {
    let dir = TempDir::new("encrypt-keyfile");
    let disks = disks(&dir);
    hibernate("keyfile-a", &disks, "");

    // The raw target: committed, encrypted, and no trace of A's marker.
    let raw = std::fs::read(&disks[0]).unwrap();
    let header = image::Header::decode(&raw[..BLOCK]).unwrap();
    assert_eq!(header.cipher, kjump::image::seal::Cipher::XChaCha20Poly1305);
    assert_eq!(state_of(&disks[0]).state, image::State::Committed);
    assert!(!raw.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()), "A's marker is on the target in the clear");
    assert!(!raw.windows(19).any(|w| w == b"KJUMP-SECRET-4e1d7b"), "part of A's marker is on the target in the clear");
    drop(raw);

    // Power-on without the key file: refused with the reason, image kept,
    // no attempt counted; the boot goes on.
    normal_boot("keyfile-nokey", &disks, "kjump_nokey", "resume: not resuming the image on /dev/vda: opening the key file /etc/kjump.key", 1);
    let st = state_of(&disks[0]);
    assert_eq!((st.state, st.attempts), (image::State::Committed, 0), "a missing key file changed the image");

    // Power-on with the key file: A resumes.
    resume("keyfile-c", &disks, "");
    let st = state_of(&disks[0]);
    assert_eq!(st.state, image::State::Consumed);
    assert!(st.key_block.is_empty(), "the consumed image kept its wrapped key");

    // Someone edits the consumed image's state back to committed (and
    // fixes its CRC): its key is gone, so it is refused; a normal boot.
    let mut state = read_at(&disks[0], BLOCK as u64, BLOCK);
    state[12..16].copy_from_slice(&2u32.to_le_bytes());
    put_crc(&mut state);
    write_at(&disks[0], BLOCK as u64, &state);
    normal_boot("keyfile-edited", &disks, "", "the image's key was destroyed when it was consumed or given up", 3);
}

#[test]
fn a_wrong_passphrase_three_times_boots_normally_and_the_right_one_resumes() {
    let dir = TempDir::new("encrypt-passphrase");
    let disks = disks(&dir);
    let mut a = boot("pass-a", &disks, "kjump_passphrase");
    a.expect_in_order(&["A: key pair made", "kjump: hibernating to /dev/vda (then poweroff, encrypted)", "kjump-init: image committed; powering off"]);
    a.wait_exit();

    normal_boot("pass-wrong", &disks, "kjump_passphrase kjump_pass=guess1,guess2,guess3", "wrong passphrase 3 times; the image is kept for the next boot", 1);
    let st = state_of(&disks[0]);
    assert_eq!((st.state, st.attempts), (image::State::Committed, 0), "wrong passphrases changed the image");

    resume("pass-right", &disks, "kjump_passphrase kjump_pass=nope,correct-horse-battery");
}

/// A committed encrypted image made once for the forgery tests.
fn golden() -> &'static Vec<PathBuf> {
    static GOLDEN: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    GOLDEN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kjump-golden-enc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = sparse_disk(&dir, "target.img", 1000);
        let data = sparse_disk(&dir, "data.img", 64);
        assert!(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&data).status().unwrap().success());
        let disks = vec![target, data];
        hibernate("forge-a", &disks, "");
        disks
    })
}

fn copies(dir: &TempDir) -> Vec<PathBuf> {
    golden()
        .iter()
        .map(|g| {
            let to = dir.0.join(g.file_name().unwrap());
            assert!(Command::new("cp").arg("--sparse=always").arg(g).arg(&to).status().unwrap().success());
            to
        })
        .collect()
}

#[test]
fn a_forged_header_is_refused_before_the_restore_kernel_starts() {
    let dir = TempDir::new("encrypt-forged-header");
    let disks = copies(&dir);
    // A page changed and the re-entry address pointed elsewhere, every
    // checksum recomputed.
    change_a_page(&disks[0]);
    let mut header = read_at(&disks[0], 0, BLOCK);
    header[32..40].copy_from_slice(&0x1000u64.to_le_bytes());
    write_at(&disks[0], 0, &header);
    recompute_checksums(&disks[0], true);
    assert!(image::Header::decode(&read_at(&disks[0], 0, BLOCK)).is_ok(), "the forgery's checksums are not right");
    let before_data = read_at(&disks[1], 0, 1 << 20);
    normal_boot("forged-c", &disks, "", "is forged or damaged: header: fails authentication", 3);
    assert_eq!(state_of(&disks[0]).state, image::State::Bad);
    // The next power-on: a normal boot, the image bad; A's disk untouched.
    normal_boot("forged-next", &disks, "", "resume: not resuming: the image on /dev/vda is bad", 3);
    assert_eq!(read_at(&disks[1], 0, 1 << 20), before_data);
    fsck_clean(&disks[1]);
}

#[test]
fn a_changed_page_or_a_moved_chunk_is_refused_and_a_is_never_entered() {
    // A page changed, the chunk's checksums recomputed (the state block
    // left alone: changing it fails its MAC in C): the header and state still
    // authenticate, D finds the chunk's tag wrong before writing its pages,
    // gives the image up and reboots; the next power-on is a normal boot.
    let dir = TempDir::new("encrypt-changed-page");
    let disks = copies(&dir);
    change_a_page(&disks[0]);
    recompute_checksums(&disks[0], false);
    let mut c = boot("page-c", &disks, "kjump_boot=c");
    c.expect_in_order(&[
        "kjump-init: mode restore",
        "kjump-init: error: ",
        "chunk 0: fails authentication",
        "kjump-init: marked the image bad",
        "kjump-init: not resuming: rebooting into a normal boot",
    ]);
    c.wait_exit();
    c.expect_absent("jumping into A");
    assert_eq!(state_of(&disks[0]).state, image::State::Bad);
    normal_boot("page-next", &disks, "", "resume: not resuming: the image on /dev/vda is bad", 3);
    fsck_clean(&disks[1]);

    // Two chunks of one size swapped, their indexes and every checksum
    // made to fit: D's first pass, which reads only chunk headers and
    // runs, refuses the image before any page is written (the runs out
    // of order, or the tags not chaining to the state block's digest; a
    // chunk of another image, whose runs may fit, fails on its tag: the
    // unit tests in src/image/mod.rs make one).
    let dir = TempDir::new("encrypt-moved-chunk");
    let disks = copies(&dir);
    let data_end = state_of(&disks[0]).data_end;
    let mut offsets = chunk_offsets(&disks[0]);
    offsets.push(data_end);
    let i = (0..offsets.len() - 2).find(|&i| offsets[i + 1] - offsets[i] == offsets[i + 2] - offsets[i + 1]).expect("two chunks of one size");
    let (a, b, len) = (offsets[i], offsets[i + 1], (offsets[i + 1] - offsets[i]) as usize);
    let (mut ca, mut cb) = (read_at(&disks[0], a, len), read_at(&disks[0], b, len));
    ca[8..16].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    cb[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    write_at(&disks[0], a, &cb);
    write_at(&disks[0], b, &ca);
    recompute_checksums(&disks[0], false);
    let mut c = boot("moved-c", &disks, "kjump_boot=c");
    c.expect_in_order(&["kjump-init: mode restore", "kjump-init: error: ", "kjump-init: marked the image bad", "rebooting into a normal boot"]);
    c.wait_exit();
    c.expect_absent("kjump-init: restored ");
    c.expect_absent("checked the layout of");
    normal_boot("moved-next", &disks, "", "resume: not resuming: the image on /dev/vda is bad", 3);
}
