//! Writes the seed corpus of the fuzz targets into `fuzz/corpus/<target>/`:
//! small, valid inputs made with kjump's own encoders, so that the fuzzer
//! starts from the shapes kjump really reads. Run by `make fuzz-seeds`
//! (`scripts/fuzz.sh seeds`); the output is committed.

use std::fs;
use std::path::{Path, PathBuf};

use kjump::image::crc32;
use kjump::image::{Chain, ChunkEncoder, Compression, Header, State, StateBlock, DATA_OFFSET, PAGE};
use kjump::range::{PfnRun, PhysRange};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).expect("create corpus directory");
    fs::write(d.join(name), bytes).expect("write seed");
}

/// A committed image of two chunks; the first byte is the fuzz target's
/// mode (1: reseal the CRCs before reading).
fn image(compression: Compression, mode: u8) -> Vec<u8> {
    image_sealed(compression, mode, None)
}

/// The same, its chunks sealed and its blocks under their MACs with a
/// fixed key ([7; 32], the key the fuzz target tries) when `sealed`.
fn image_sealed(compression: Compression, mode: u8, sealed: Option<u8>) -> Vec<u8> {
    image_with(compression, mode, sealed, false)
}

/// An image `kjump image export` makes a core file of: page 0x300 holds
/// A's VMCOREINFO note, and the header says so and gives A's direct map.
fn exportable_image(mode: u8) -> Vec<u8> {
    image_with(Compression::Lz4, mode, None, true)
}

fn image_with(compression: Compression, mode: u8, sealed: Option<u8>, exportable: bool) -> Vec<u8> {
    let sealer = sealed.map(|seed| kjump::image::Sealer {
        keys: std::sync::Arc::new(kjump::image::seal::Keys::derive(&kjump::image::seal::DataKey::from_bytes([7; 32]), kjump::image::seal::ImageId([seed; 16]))),
        salt: [seed; 16],
    });
    let mut enc = ChunkEncoder::new(compression, sealer.clone());
    let mut chunks = Vec::new();
    let mut chain = Chain::default();
    let text: Vec<u8> = b"kjump fuzz seed ".iter().cycle().take(3 * PAGE).copied().collect();
    let mut noise = vec![0u8; PAGE];
    let mut x: u32 = 12345;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let vmcoreinfo = note("VMCOREINFO", 0, VMCOREINFO.as_bytes());
    if exportable {
        noise = vmcoreinfo.clone();
        noise.resize(PAGE, 0);
    }
    let run = PfnRun::new;
    chain.add(&enc.encode(0, &[run(0x100, 2), run(0x200, 1)], &[run(0x102, 3)], &text, &mut chunks));
    chain.add(&enc.encode(1, &[run(0x300, 1)], &[run(0x301, 1)], &noise, &mut chunks));
    let keys = sealer.as_ref().map(|s| &*s.keys);
    let header = Header {
        compression: Some(compression),
        created_unix: 1_800_000_000,
        reentry: 0x234_f0a4,
        region: PhysRange::new(0x1c60_0000, 0x2460_0000),
        backup: PhysRange::new(0x1c6e_2000, 0x1c6e_2000 + 0xa_0000),
        ram_pages: 10,
        zero_pages: 4,
        free_pages: 2,
        stored_pages: 4,
        chunk_count: 2,
        data_bytes: chunks.len() as u64,
        zero_free: false,
        kernel_release: "6.12.117".into(),
        build_id: "0123456789abcdef0123456789abcdef01234567".into(),
        ram: vec![PhysRange::new(0x1000, 0x9_fc00), PhysRange::new(0x10_0000, 0x1c60_0000), PhysRange::new(0x2460_0000, 0x3ffe_0000)],
        mailbox: 0x123_4000,
        machine_id: "6b29fc40-ca47-1067-b31d-00dd010662da".into(),
        in_use: vec![kjump::target::in_use::InUse { kind: kjump::target::in_use::Kind::MountedReadWrite, major: 254, minor: 0, uuid: Some([7; 16]), name: "vda".into() }],
        stamps: vec![kjump::target::freshness::Stamp::Ext(0x0123_4567_89ab_cdef)],
        cipher: if sealer.is_some() { kjump::image::seal::Cipher::XChaCha20Poly1305 } else { kjump::image::seal::Cipher::None },
        image_id: sealer.as_ref().map(|s| s.keys.id()).unwrap_or_default(),
        nonce_salt: sealer.as_ref().map(|s| s.salt).unwrap_or_default(),
        vmcoreinfo: exportable.then_some(kjump::load::elf_core::Note { addr: 0x30_0000, size: vmcoreinfo.len() as u64 }),
        page_offset: exportable.then_some(0xffff_8880_0000_0000),
    }
    .encode_sealed(keys)
    .expect("header encodes");
    let state = StateBlock {
        state: State::Committed,
        header_crc: Header::crc(&header),
        chain_crc: chain.value(),
        chunk_count: 2,
        data_end: DATA_OFFSET + chunks.len() as u64,
        note: String::new(),
        attempts: 0,
        save_ms: 0,
        tags: chain.tags(),
        key_block: Vec::new(),
    };
    let mut img = vec![mode];
    img.extend_from_slice(&header);
    img.extend_from_slice(&state.encode_sealed(keys));
    img.extend_from_slice(&chunks);
    img
}

/// A synthetic bzImage: 4 setup sectors, protocol 2.15, 64-bit, relocatable.
fn bzimage(kernel_len: usize) -> Vec<u8> {
    let setup_len = 5 * 512;
    let mut f = vec![0u8; setup_len + kernel_len];
    f[0x1f1] = 4;
    f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    f[0x200] = 0xeb;
    f[0x201] = 0x6a;
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    f[0x234] = 1;
    f[0x236..0x238].copy_from_slice(&(kjump::load::bzimage::XLF_KERNEL_64 | 2).to_le_bytes());
    f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
    f[0x260..0x264].copy_from_slice(&(16u32 << 20).to_le_bytes());
    for (i, b) in f[setup_len..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

const VMCOREINFO: &str = "\
OSRELEASE=6.12.117
BUILD-ID=0123456789abcdef0123456789abcdef01234567
PAGESIZE=4096
SYMBOL(init_uts_ns)=ffffffff82a1a360
SYMBOL(_stext)=ffffffff81000000
NUMBER(VMALLOC_START)=0xffffc90000000000
SYMBOL(mem_section)=ffff88803ffd5000
LENGTH(mem_section)=2048
SIZE(mem_section)=16
OFFSET(mem_section.section_mem_map)=0
NUMBER(SECTION_SIZE_BITS)=27
NUMBER(MAX_PHYSMEM_BITS)=46
SIZE(page)=64
OFFSET(page.flags)=0
OFFSET(page._mapcount)=48
OFFSET(page.private)=40
LENGTH(zone.free_area)=11
NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456
NUMBER(phys_base)=0
SYMBOL(init_top_pgt)=ffffffff82a0e000
NUMBER(pgtable_l5_enabled)=0
KERNELOFFSET=0
NUMBER(sme_mask)=0
CRASHTIME=1732630000
";

/// An ELF note as the kernel's `append_elf_note` writes it.
fn note(name: &str, ty: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v.extend_from_slice(desc);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

const IOMEM_QEMU: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000c0000-000c99ff : Video ROM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-3ffdffff : System RAM
  01000000-01bfffff : Kernel code
  01c00000-0245ffff : Kernel rodata
3ffe0000-3fffffff : Reserved
40000000-febfffff : PCI Bus 0000:00
fec00000-fec003ff : IOAPIC 0
fed00000-fed003ff : HPET 0
feffc000-feffffff : Reserved
fffc0000-ffffffff : Reserved
";

const IOMEM_BIG: &str = "\
00000000-00000fff : Reserved
00001000-0009efff : System RAM
0009f000-000fffff : Reserved
00100000-76b3efff : System RAM
76b3f000-7a0bdfff : Reserved
7a0be000-7a1c9fff : ACPI Tables
7a1ca000-7a4c0fff : ACPI Non-volatile Storage
7a4c1000-7befefff : Reserved
7beff000-7bffffff : System RAM
7c000000-7fffffff : Reserved
100000000-47fffffff : System RAM
";

/// A protective MBR, a GPT header and two entries, 512-byte sectors.
fn gpt_disk() -> Vec<u8> {
    let mut d = vec![0u8; 4 * 512];
    d[0x1be + 4] = 0xee;
    d[0x1be + 8..0x1be + 12].copy_from_slice(&1u32.to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xaa;
    let mut entries = vec![0u8; 4 * 128];
    for (i, e) in entries.chunks_mut(128).take(2).enumerate() {
        e[..16].copy_from_slice(&[0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4]);
        e[16..32].copy_from_slice(&[i as u8 + 1; 16]);
        e[32..40].copy_from_slice(&(2048u64 << i).to_le_bytes());
    }
    d[1024..1536].copy_from_slice(&entries);
    let h = &mut d[512..1024];
    h[..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&1u64.to_le_bytes());
    h[40..48].copy_from_slice(&34u64.to_le_bytes());
    h[48..56].copy_from_slice(&100_000u64.to_le_bytes());
    h[72..80].copy_from_slice(&2u64.to_le_bytes());
    h[80..84].copy_from_slice(&4u32.to_le_bytes());
    h[84..88].copy_from_slice(&128u32.to_le_bytes());
    h[88..92].copy_from_slice(&crc32(&entries).to_le_bytes());
    let hcrc = crc32(&h[..92]);
    h[16..20].copy_from_slice(&hcrc.to_le_bytes());
    d
}

/// An MBR with two primary partitions.
fn mbr_disk() -> Vec<u8> {
    let mut d = vec![0u8; 512];
    d[0x1b8..0x1bc].copy_from_slice(&0x1234_abcdu32.to_le_bytes());
    for (i, ty) in [0x83u8, 0x82].into_iter().enumerate() {
        let r = 0x1be + i * 16;
        d[r] = if i == 0 { 0x80 } else { 0 };
        d[r + 4] = ty;
        d[r + 8..r + 12].copy_from_slice(&(2048u32 << i).to_le_bytes());
        d[r + 12..r + 16].copy_from_slice(&4096u32.to_le_bytes());
    }
    d[510] = 0x55;
    d[511] = 0xaa;
    d
}

/// The first 2 KiB of an ext4 filesystem: its superblock.
fn ext4_head() -> Vec<u8> {
    let mut d = vec![0u8; 2048];
    let sb = &mut d[1024..];
    sb[0x38..0x3a].copy_from_slice(&0xef53u16.to_le_bytes());
    sb[0x60..0x64].copy_from_slice(&0x2c2u32.to_le_bytes());
    sb[0x68..0x78].copy_from_slice(&[0x5a; 16]);
    sb[0x78..0x7e].copy_from_slice(b"kjump\0");
    d
}

/// Reads every chunk of an image (without the mode byte).
fn read_image(img: &[u8]) -> usize {
    let mut r = kjump::image::Reader::open(img).expect("seed image opens");
    assert!(r.header_committed());
    if r.encrypted() {
        r.unlock(&kjump::image::seal::DataKey::from_bytes([7; 32])).expect("seed image authenticates");
    }
    let mut n = 0;
    while r.next_chunk().expect("seed chunk reads").is_some() {
        n += 1;
    }
    n
}

/// A core file that keeps nothing.
struct Discard;

impl kjump::image::export::Output for Discard {
    fn write_at(&mut self, _: u64, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }

    fn set_len(&mut self, _: u64) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks that the seeds are what they claim: each is read successfully
/// by the parser it is for, so the fuzzer starts on the accepting paths.
fn check_seeds() {
    for c in [Compression::None, Compression::Lz4, Compression::Deflate] {
        assert_eq!(read_image(&image(c, 0)[1..]), 2);
        assert_eq!(read_image(&image_sealed(c, 2, Some(3))[1..]), 2);
    }
    let img = exportable_image(4);
    let mut r = kjump::image::Reader::open(&img[1..]).expect("seed image opens");
    let done = kjump::image::export::export(&mut r, &mut Discard, |_, _| {}).expect("seed image exports");
    assert_eq!(done.release, "6.12.117");
    assert!(kjump::load::bzimage::BzImage::parse(&bzimage(512)).is_ok());
    let info = kjump::inspect::vmcoreinfo::VmcoreInfo::parse(VMCOREINFO);
    assert!(kjump::inspect::pagetable::PageTables::from_vmcoreinfo(&info).is_ok());
    let mut notes = note("CORE", 1, &[7u8; 64]);
    notes.extend(note("VMCOREINFO", 0, VMCOREINFO.as_bytes()));
    assert_eq!(kjump::inspect::vmcoreinfo::find_in_notes(&notes).as_deref(), Some(VMCOREINFO));
    for text in [IOMEM_QEMU, IOMEM_BIG] {
        let map = kjump::load::memmap::MemoryMap::parse_iomem(text).expect("seed iomem parses");
        assert!(map.choose_region(128 << 20).is_ok());
    }
    assert_eq!(kjump::target::gpt_partitions(&gpt_disk(), 512).len(), 2);
    assert_eq!(kjump::target::mbr_partitions(&mbr_disk()).len(), 2);
    assert_eq!(kjump::target::ext4_identity(&ext4_head()).map(|(_, label)| label).as_deref(), Some("kjump"));
}

/// The keyblock target's seeds: a key-file block, a passphrase block and
/// a TPM block for its fixed image ID, key file and passphrase (Argon2id
/// at 8 KiB, so the target tries them; the TPM block's key wrapped under
/// the key file's bytes, its sealed object made up), and the two key files.
fn key_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use kjump::image::seal::{DataKey, ImageId};
    use kjump::host::wrap::{self, Argon2Params};
    let id = ImageId([0x1d; 16]);
    let key = DataKey::from_bytes([0x33; 32]);
    let (public, sealed) = wrap::keygen(b"kjump fuzz", Argon2Params { m_kib: 8, t: 1, p: 1 }).expect("key pair");
    let key_file = wrap::wrap_with_key_file(&key, id, &[0x4b; 32]).expect("key-file block");
    let passphrase = wrap::wrap_to_public_key(&key, id, &public, &sealed).expect("passphrase block");
    assert_eq!(wrap::unwrap_with_key_file(&key_file, id, &[0x4b; 32]).expect("seed unwraps"), key);
    assert_eq!(wrap::unwrap_with_passphrase(&passphrase, id, b"kjump fuzz").expect("seed unwraps"), key);
    let sealed_object = kjump::host::tpm::Sealed {
        pcrs: kjump::host::tpm::PcrSet::DEFAULT,
        index: kjump::host::tpm::COUNTER_INDEX,
        counter: 7,
        public: vec![0x50; 80],
        private: vec![0x70; 160],
    };
    let tpm = wrap::wrap_with_sealed_kek(&key, id, &[0x4b; 32], sealed_object).expect("TPM block");
    assert_eq!(wrap::unwrap_with_kek(&tpm, id, &[0x4b; 32]).expect("seed unwraps"), key);
    vec![
        ("tpm-block", tpm.encode().to_vec()),
        ("key-file-block", key_file.encode().to_vec()),
        ("passphrase-block", passphrase.encode().to_vec()),
        ("public-key", public.encode().to_vec()),
        ("private-key", sealed.encode().to_vec()),
    ]
}

fn main() {
    check_seeds();
    let dir: PathBuf = std::env::args_os().nth(1).map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"), PathBuf::from);

    write(&dir, "image", "lz4-exact", &image(Compression::Lz4, 0));
    write(&dir, "image", "deflate-reseal", &image(Compression::Deflate, 1));
    write(&dir, "image", "raw-reseal", &image(Compression::None, 1));
    write(&dir, "image", "lz4-sealed", &image_sealed(Compression::Lz4, 2, Some(3)));
    write(&dir, "image", "raw-sealed-reseal", &image_sealed(Compression::None, 3, Some(4)));
    write(&dir, "image", "export", &exportable_image(4));
    write(&dir, "image", "export-reseal", &exportable_image(5));
    // Regression: a low-memory backup longer than 1 MiB (CRCs resealed).
    let mut huge_backup = image(Compression::Lz4, 1);
    huge_backup[1 + 64..1 + 72].copy_from_slice(&0x100a_0000u64.to_le_bytes());
    write(&dir, "image", "backup-too-long-reseal", &huge_backup);

    write(&dir, "cmdline", "b-roundtrip", b"console=ttyS0 rdinit=/kjump-init kjump.mode=roundtrip nokaslr elfcorehdr=0x37f0a000 kjump.backup_size=0xa0000 kjump.region=0x1c600000-0x24600000 kexec_jump_back_entry=0x000000000234f0a4 kexec_jump_buf_pfn=9039 kexec_backup=917544K\n");
    write(&dir, "cmdline", "b-save", b"console=ttyS0 kjump.mode=save kjump.target=PARTUUID=1234abcd-02:/kjump.img kjump.after=poweroff kjump.compress=lz4 kjump.wait=10 kjump.mailbox=0x1234000 elfcorehdr=64M@0x37f0a000\n");
    write(&dir, "cmdline", "d-restore", b"console=ttyS0,115200 earlyprintk=serial quiet kjump.mode=restore kjump.target=LABEL=\"kjump swap\" kjump.region=0x1c600000-0x24600000 kjump.wait=30\n");
    write(
        &dir,
        "cmdline",
        "a-proc-cmdline",
        b"BOOT_IMAGE=/boot/vmlinuz-6.12.117 root=UUID=5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a ro quiet splash crashkernel=256M\n",
    );

    write(&dir, "bzimage", "synthetic", &bzimage(512));

    let mut with_memory = VMCOREINFO.as_bytes().to_vec();
    with_memory.push(0);
    with_memory.extend((0..256u32).flat_map(|i| (0x1000u64 * u64::from(i) | 0x63).to_le_bytes()));
    write(&dir, "vmcoreinfo", "text-and-memory", &with_memory);
    let mut notes = note("CORE", 1, &[7u8; 64]);
    notes.extend(note("VMCOREINFO", 0, VMCOREINFO.as_bytes()));
    notes.extend_from_slice(&[0u8; 12]);
    write(&dir, "vmcoreinfo", "notes", &notes);

    write(&dir, "iomem", "qemu-1g", IOMEM_QEMU.as_bytes());
    write(&dir, "iomem", "laptop-16g", IOMEM_BIG.as_bytes());

    write(&dir, "text", "kjump-conf", b"# /etc/kjump.conf\ntarget = PARTUUID=1234abcd-02:/kjump.img\nafter = poweroff # or reboot\ncompress=lz4\nwait = 10\nregion-size = 128M\nappend = \"quiet loglevel=3\"\n");
    write(&dir, "text", "mountinfo", b"22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n30 22 8:2 / /mnt/with\\040space rw,relatime - ext4 /dev/sda2 ro,errors=remount-ro\n");
    write(&dir, "text", "target", b"UUID=5A5A5A5A-5a5a-5a5a-5a5a-5a5a5a5a5a5a:/var/lib/kjump/image");
    write(&dir, "text", "sys-vmcoreinfo", b"0x0000000100c66000 1024\n");
    write(&dir, "text", "efi-systab", b"SMBIOS3=0x7f7e5000\nACPI20=0x7fb7e014\nACPI=0x7fb7e000\n");
    write(&dir, "text", "kernel-config", b"CONFIG_KEXEC=y\nCONFIG_KEXEC_JUMP=y\n# CONFIG_HIBERNATION is not set\n");
    write(&dir, "text", "release", b"6.12.5-amd64");
    {
        use kjump::host::initramfs_digest::{Digest, Hash};
        let digest = Digest {
            kernel_release: "6.12.5-amd64".into(),
            version: "0.1.0".into(),
            kjump: Hash::of(b"kjump"),
            settings: Hash::of(b"target = /dev/vdb\n"),
            kernel: Hash::of(b"vmlinuz"),
            initrd: Hash::of(b"initramfs.img"),
        };
        write(&dir, "text", "initramfs-digest", digest.encode().as_bytes());
    }

    let layout = kjump::load::elf_core::build(
        &[kjump::load::elf_core::Note { addr: 0x200_0000, size: 0x1000 }],
        &[
            kjump::load::elf_core::Load { paddr: 0, offset: 0x3800_0000, size: 0xa_0000 },
            kjump::load::elf_core::Load { paddr: 0x10_0000, offset: 0x10_0000, size: 0x3700_0000 },
        ],
    )
    .expect("ELF core header");
    write(&dir, "blobs", "elf-core-header", &layout);
    // Regression: program headers at the end of the address space.
    let mut far = layout[..64].to_vec();
    far[32..40].copy_from_slice(&0xffff_ffff_ffff_fff0u64.to_le_bytes());
    write(&dir, "blobs", "elf-phoff-at-end", &far);
    write(&dir, "blobs", "gpt-disk", &gpt_disk());
    write(&dir, "blobs", "mbr-disk", &mbr_disk());
    write(&dir, "blobs", "ext4-superblock", &ext4_head());
    write(&dir, "blobs", "mailbox", &kjump::handoff::mailbox::encode(&kjump::handoff::mailbox::Report { ok: true, text: "saved 1024 pages".into() }));
    let mut w = kjump::init::cpio::Writer::new();
    w.dir("dev", 0o755).expect("dir");
    w.char_dev("dev/console", 0o600, 5, 1).expect("char dev");
    w.file("kjump-init", 0o755, b"\x7fELF...").expect("file");
    w.symlink("bin/sh", "busybox").expect("symlink");
    write(&dir, "blobs", "cpio", &w.finish());
    write(&dir, "blobs", "gzip-config", &kjump::init::gzip::compress(b"CONFIG_KEXEC=y\nCONFIG_KEXEC_JUMP=y\n", 6));
    write(&dir, "blobs", "crash-notes", &note("CORE", 1, &[1u8; 336]));
    let mut bios = vec![0u8; 64];
    bios[16..24].copy_from_slice(b"RSD PTR ");
    let sum = bios[16..36].iter().fold(0u8, |a, &b| a.wrapping_add(b));
    bios[24] = 0u8.wrapping_sub(sum);
    write(&dir, "blobs", "bios-rsdp", &bios);
    write(&dir, "blobs", "kexec-entry-list", &kexec_entry_list());
    write(&dir, "blobs", "kexec-entry-list-6.14", &kexec_entry_list_data_section());

    for (name, bytes) in key_seeds() {
        write(&dir, "keyblock", name, &bytes);
    }
}

/// A's memory from address 0 with a kexec image as 6.12 leaves it: the
/// control page at 0 holds the head (an indirection page at 0x1000),
/// whose entries cover the 8-page region at 1 MiB, one page being its own
/// source.
fn kexec_entry_list() -> Vec<u8> {
    let mut m = vec![0u8; 0x2000];
    let mut put = |at: usize, v: u64| m[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(kjump::inspect::kimage::HEAD_IN_CONTROL_PAGE as usize, 0x1000 | 2);
    put(0x1000, 0x10_0000 | 1);
    for i in 0..8u64 {
        let source = if i == 5 { 0x10_0000 + i * 0x1000 } else { 0x20_0000 + i * 0x1000 };
        put(0x1008 + 8 * i as usize, source | 8);
    }
    put(0x1048, 4);
    m
}

/// The same image as 6.14 and later leave it: the head in
/// `relocate_kernel`'s data block inside the control page's first 2 KiB,
/// next to `kexec_va_control_page`, which the page tables at 0x3000 map to
/// physical 0 (a 1 GiB page at the direct map's usual base).
fn kexec_entry_list_data_section() -> Vec<u8> {
    let mut m = kexec_entry_list();
    m.resize(0x5000, 0);
    let mut put = |at: usize, v: u64| m[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(kjump::inspect::kimage::HEAD_IN_CONTROL_PAGE as usize, 0xffff_c900_0001_3f00);
    let va: u64 = 0xffff_8880_0000_0000;
    let block = [0xffff_c900_0001_3e58, 0x8005_0033, 0x0247_0000, 0x0035_06f0, va, 0x6000, 0x7000, 0x1000 | 2];
    for (i, w) in block.iter().enumerate() {
        put(0x5d0 + 8 * i, *w);
    }
    put(0x3000 + 8 * ((va >> 39) & 511) as usize, 0x4000 | 0x63);
    put(0x4000 + 8 * ((va >> 30) & 511) as usize, 0x80 | 0x63);
    m
}
