//! `kjump image export --elf` on an image made in QEMU: A hibernates to a
//! virtual disk, and on the host the image becomes an ELF core file that
//! Debian's makedumpfile and crash read as they read a kdump.

mod harness;

use std::path::Path;
use std::process::Command;

use harness::{a_initramfs, paths, sparse_disk, TempDir, Vm, VmConfig};
use kjump::image::{Reader, PAGE};
use kjump::inspect::elf::{self, ProgramHeader};
use kjump::range::PhysRange;

const MARKER: &str = "KJUMP-EXPORT-MARKER-5d1e08";

/// A's script: its release, a file of marker text in the page cache, then
/// a hibernation that powers off.
fn script() -> String {
    format!(
        r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "A: release $(uname -r)"
yes "{MARKER} the quick brown fox jumps over the lazy dog" | head -c 16777216 > /root/text
echo "A: workload ready"
kjump hibernate --target /dev/vda
echo "A: kjump exited $?"
poweroff -f
"#
    )
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn kjump_host(args: &[&str]) -> (bool, String) {
    run(env!("CARGO_BIN_EXE_kjump"), args)
}

/// The program headers of the core file `core`.
fn program_headers(core: &[u8]) -> Vec<ProgramHeader> {
    let h = elf::Header::parse(core).expect("a 64-bit little-endian ELF file");
    assert_eq!(h.e_type, elf::ET_CORE);
    assert_eq!(elf::E_MACHINE.u16(core), Some(elf::EM_X86_64));
    h.program_headers(core).unwrap().collect::<Result<_, _>>().unwrap()
}

/// Every page the image stores is in the core file at its physical
/// address, and the core file covers exactly the image's RAM ranges.
fn check_pages(image: &Path, core: &[u8], page_offset: u64) {
    let phdrs = program_headers(core);
    assert_eq!(phdrs[0].p_type, elf::PT_NOTE, "PT_NOTE first");
    let loads = &phdrs[1..];
    let mut r = Reader::open(std::io::BufReader::new(std::fs::File::open(image).unwrap())).unwrap();
    let ram: Vec<PhysRange> = loads.iter().map(|l| PhysRange::at(l.paddr, l.filesz).unwrap()).collect();
    assert_eq!(ram, r.header.ram, "a PT_LOAD per RAM range");
    for l in loads {
        assert_eq!(l.p_type, elf::PT_LOAD);
        assert_eq!(l.vaddr, page_offset + l.paddr, "p_vaddr is the direct-map address");
        assert_eq!(l.offset % PAGE as u64, l.paddr % PAGE as u64);
    }
    let at = |paddr: u64| {
        let page = PhysRange::at(paddr, PAGE as u64).unwrap();
        let l = loads.iter().find(|l| PhysRange::at(l.paddr, l.filesz).unwrap().contains_range(&page)).expect("page in a PT_LOAD");
        (l.offset + paddr - l.paddr) as usize
    };
    let mut compared = 0u64;
    while let Some((_, bufs)) = r.next_chunk().unwrap() {
        let mut pages = bufs.pages.chunks_exact(PAGE);
        for run in &bufs.runs {
            for f in run.first..run.end().unwrap() {
                let o = at(f * PAGE as u64);
                assert!(core[o..o + PAGE] == *pages.next().unwrap(), "page {f:#x} differs");
                compared += 1;
            }
        }
        for run in &bufs.zero_runs {
            let o = at(run.addr().unwrap());
            assert!(core[o..o + run.bytes().unwrap() as usize].iter().all(|&b| b == 0), "zero run at {:#x}", run.first);
        }
    }
    assert_eq!(compared, r.header.stored_pages);
}

#[test]
fn an_exported_image_reads_as_a_kdump() {
    let makedumpfile = "/usr/bin/makedumpfile";
    let crash = "/usr/bin/crash";
    for tool in [makedumpfile, crash] {
        assert!(Path::new(tool).exists(), "{tool} is missing: run 'make deps' (it installs makedumpfile and crash)");
    }
    let p = paths();
    let dir = TempDir::new("export-disk");
    let disk = sparse_disk(&dir.0, "target.img", 800);
    let initrd = a_initramfs(&p, &script());
    let mut vm = Vm::start(&p, VmConfig { name: "export", memory_mib: 512, cpus: 1, initrd, append: "", echo: false, disks: vec![disk.clone()], uuid: None });
    let lines = vm.expect_in_order(&[
        "A: release ",
        "A: workload ready",
        "kjump-init: mode save",
        "kjump-init: summary: ",
        "kjump-init: image committed; powering off",
    ]);
    vm.wait_exit();
    let release = lines[0].split_once("A: release ").unwrap().1.trim().to_string();
    // B found what the export needs.
    vm.expect_absent("will not be exported");
    vm.expect_absent("no virtual addresses");
    let disk_text = disk.to_str().unwrap();

    // The test kernel has no KASLR, and QEMU's CPU no 5-level paging: the
    // direct map is at its default place.
    let page_offset = 0xffff_8880_0000_0000u64;
    let (ok, info) = kjump_host(&["image", "info", disk_text]);
    assert!(ok, "{info}");
    assert!(info.contains(&format!("direct map at {page_offset:#x}")), "{info}");

    let elf = dir.0.join("a.elf");
    let elf_text = elf.to_str().unwrap();
    let (ok, text) = kjump_host(&["image", "export", "--elf", elf_text, disk_text]);
    assert!(ok, "{text}");
    println!("{text}");
    assert!(text.contains(&format!("kernel {release}, direct map at {page_offset:#x}")), "{text}");
    // Never over a file without --force; with it, the same file again.
    let (ok, text) = kjump_host(&["image", "export", "--elf", elf_text, disk_text]);
    assert!(!ok && text.contains("exists: give --force"), "{text}");
    let first = std::fs::read(&elf).unwrap();
    let (ok, text) = kjump_host(&["image", "export", "--force", "--elf", elf_text, disk_text]);
    assert!(ok, "{text}");
    let bytes = std::fs::read(&elf).unwrap();
    assert!(first == bytes, "two exports of one image differ");
    assert!(!dir.0.join("a.elf.tmp").exists());
    let meta = std::fs::metadata(&elf).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "the core file holds A's memory");
    println!("core file: {} MiB, {} MiB on disk", meta.len() >> 20, (meta.blocks() * 512) >> 20);
    assert!(meta.blocks() * 512 < meta.len(), "zero and free pages are holes");
    assert!(bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()), "A's page cache is in the core file");
    check_pages(&disk, &bytes, page_offset);

    // makedumpfile: a filtered dump (dry run), counting A's RAM as the
    // image does; and A's kernel log, read through its printk ring buffer
    // (symbols and structures from VMCOREINFO, pages through the PT_LOADs).
    let r = Reader::open(std::fs::File::open(&disk).unwrap()).unwrap();
    let dump = dir.0.join("dump");
    let (ok, text) = run(makedumpfile, &["-d", "31", "--dry-run", "--message-level", "31", elf_text, dump.to_str().unwrap()]);
    println!("makedumpfile -d 31 --dry-run:\n{text}");
    assert!(ok, "makedumpfile refused the core file:\n{text}");
    // It took A's direct map from the PT_LOADs' virtual addresses.
    assert!(text.contains(&format!("page_offset  : {page_offset:x} (pt_load)")), "{text}");
    let original = text
        .lines()
        .find_map(|l| l.split_once("Original pages").map(|(_, v)| v.trim_start_matches([' ', ':']).trim()))
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| panic!("no Original pages in:\n{text}"));
    assert_eq!(original, r.header.ram_pages, "makedumpfile sees the image's RAM");
    let dmesg = dir.0.join("dmesg.txt");
    let (ok, text) = run(makedumpfile, &["--dump-dmesg", elf_text, dmesg.to_str().unwrap()]);
    assert!(ok, "makedumpfile --dump-dmesg:\n{text}");
    let log = std::fs::read_to_string(&dmesg).unwrap();
    assert!(log.contains(&format!("Linux version {release}")), "A's kernel log:\n{}", &log[..log.len().min(2000)]);

    // crash: the dump's release, from VMCOREINFO.
    let (ok, text) = run(crash, &["--osrelease", elf_text]);
    assert!(ok, "crash --osrelease:\n{text}");
    assert_eq!(text.trim(), release, "crash --osrelease");
}
