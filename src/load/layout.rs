//! Laying out the hibernation kernel inside the kjump region.
//!
//! The region is a stretch of A's RAM at the top of memory below 4 GiB.
//! Nothing is reserved in A: every byte of the region is covered by a kexec
//! segment, so the kernel's preserve-context swap (`swap_pages` in
//! `relocate_kernel_64.S`) moves A's pages there aside into the segments'
//! source pages before B starts, and moves them back when B jumps back. The
//! cost is the region's size in free memory of A while the image is loaded.
//! C, which loads D and is never resumed, loads only the segments D needs
//! ([`Plan::kexec_segments`]).
//!
//! ```text
//! region.start                                                    region.end
//! | kernel (init_size) | zero page | cmdline | purgatory | ELF core header |
//!   [key for D] | low-memory backup | initrd | free RAM for B ...         |
//! ```
//! B's E820 map lists the region as RAM except the ELF core header, D's
//! key page when there is one, and the backup (reserved, so B keeps them
//! intact), RAM below 1 MiB (B needs some
//! for its real-mode trampoline), and A's non-RAM ranges (ACPI tables).

use core::fmt;
use std::borrow::Cow;

use crate::load::boot_params;
use crate::load::bzimage::{BzImage, ENTRY_64_OFFSET};
use crate::load::e820::{Kind, Range};
use crate::load::elf_core::{self, Load, Note};
use crate::load::memmap::{MemoryMap, Region};
use crate::load::purgatory::{self, Purgatory};
use crate::sys::kexec::Segment;
use crate::units::{align_up, MIB, PAGE_SIZE};

/// RAM that B needs for itself beyond what is loaded (its page cache, the
/// save pipeline's buffers).
pub const MIN_FREE_FOR_B: u64 = 32 * MIB;

/// Why the region cannot hold the hibernation kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Kernel, initrd and tables leave less than [`MIN_FREE_FOR_B`] for B.
    RegionTooSmall { needed: u64, size: u64 },
    /// B's command line plus what the purgatory appends is too long.
    CmdlineTooLong { len: usize, max: u64 },
    /// The command line contains a NUL byte.
    CmdlineHasNul,
    /// B's memory map has too many entries.
    TooManyRanges,
    /// The purgatory does not fit in one page.
    PurgatoryTooLarge,
    /// The key for D does not fit in one page.
    KeyPageTooLarge,
    /// Building a table failed.
    ElfCore(elf_core::Error),
    /// Building the zero page failed.
    BootParams(boot_params::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::RegionTooSmall { needed, size } => {
                write!(f, "a {} MiB region is too small; the hibernation kernel needs {} MiB (use --region-size)", size / MIB, needed.div_ceil(MIB))
            }
            Error::CmdlineTooLong { len, max } => {
                write!(f, "command line of {len} bytes is longer than the kernel's {max}")
            }
            Error::CmdlineHasNul => f.write_str("command line contains a NUL byte"),
            Error::TooManyRanges => f.write_str("too many memory ranges for B's E820 map"),
            Error::PurgatoryTooLarge => f.write_str("purgatory is larger than a page"),
            Error::KeyPageTooLarge => f.write_str("the key for the restore kernel is larger than a page"),
            Error::ElfCore(e) => write!(f, "ELF core header: {e}"),
            Error::BootParams(e) => write!(f, "boot_params: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::ElfCore(e) => Some(e),
            Error::BootParams(e) => Some(e),
            _ => None,
        }
    }
}

/// Everything the plan is made from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// A's memory map.
    pub map: &'a MemoryMap,
    /// The region.
    pub region: Region,
    /// B's kernel.
    pub kernel: &'a BzImage<'a>,
    /// B's initramfs.
    pub initrd: &'a [u8],
    /// B's command line, without what the plan and the purgatory add.
    pub cmdline: &'a str,
    /// Copies of A's ELF notes (VMCOREINFO first), each a whole note
    /// (header, name, descriptor). They are carried in the ELF core header's
    /// segment: the buffers in A may lie in the region, where B's own
    /// memory is while B runs.
    pub notes: &'a [Vec<u8>],
    /// ACPI RSDP, or 0.
    pub acpi_rsdp: u64,
    /// List A's RAM (outside the region, above 1 MiB) in B's map as ACPI
    /// tables (E820 type 3), which B's kernel never uses but maps into the
    /// page tables of its own kexec jumps. (ACPI NVS would be mapped too,
    /// but the kernel keeps a record per page of NVS for suspend: 14 MiB of
    /// B's memory for a 1 GiB A.) A resident B (`kjump::handoff::resident`)
    /// needs that to jump back to A through a segment of its own instead of
    /// A's re-entry page (see `jump::load_jump_back_via`).
    pub map_a_ram: bool,
    /// An encrypted image's key for D ([`crate::handoff::keypage`]): placed in a
    /// page of its own that D's map reserves, named by `kjump.keypage=`.
    pub key_page: Option<&'a [u8]>,
}

/// A named kexec segment.
#[derive(Clone, Debug)]
pub struct PlannedSegment<'a> {
    /// What it holds, for messages.
    pub what: &'static str,
    /// Contents (may be shorter than `memsz`).
    pub data: Cow<'a, [u8]>,
    /// Physical destination.
    pub mem: u64,
    /// Bytes at the destination.
    pub memsz: u64,
    /// Holds nothing B needs: the segment is there only so that the
    /// preserve-context swap sets A's pages in the region aside.
    pub sets_aside_only: bool,
}

/// The result: segments, entry point and where things are.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    /// The region.
    pub region: Region,
    /// Segments in address order; together they cover the region exactly.
    pub segments: Vec<PlannedSegment<'a>>,
    /// The purgatory's address: the image's entry.
    pub entry: u64,
    /// Where B's kernel is loaded.
    pub kernel_addr: u64,
    /// Where the ELF core header is.
    pub elfcorehdr: u64,
    /// Where A's low memory is copied.
    pub backup_addr: u64,
    /// How much low memory is copied.
    pub backup_len: u64,
    /// B's command line as loaded (the purgatory appends to it).
    pub cmdline: String,
    /// B's memory map.
    pub e820: Vec<Range>,
    /// The PT_LOADs of `/proc/vmcore`.
    pub loads: Vec<Load>,
}

impl Plan<'_> {
    /// Gives B the screen `si` describes (a `struct screen_info`, see
    /// [`boot_params::screen_info_of_this_boot`]): it goes at the start of
    /// B's zero page, which `plan` leaves zeroed.
    pub fn set_screen_info(&mut self, si: &[u8; boot_params::SCREEN_INFO_LEN]) {
        if let Some(seg) = self.segments.iter_mut().find(|s| s.what == "boot_params and command line") {
            seg.data.to_mut()[..si.len()].copy_from_slice(si);
        }
    }

    /// The segments as `kexec_load` takes them: all of them when the
    /// loading kernel is to come back (A: the swap must set every page of
    /// the region aside), else only those B needs. C, which loads D and is
    /// never resumed, then allocates, fills and swaps about a quarter of
    /// the region instead of all of it: C's load and jump went from 0.9 s
    /// to 0.4 s under QEMU.
    pub fn kexec_segments(&self, set_region_aside: bool) -> Vec<Segment<'_>> {
        self.segments.iter().filter(|s| set_region_aside || !s.sets_aside_only).map(|s| Segment { buf: &s.data, mem: s.mem, memsz: s.memsz }).collect()
    }
}

fn page_up(n: u64) -> u64 {
    align_up(n, PAGE_SIZE).unwrap_or(!(PAGE_SIZE - 1))
}

/// The PT_LOADs: A's low memory read from its backup, then A's RAM above it
/// outside the region.
pub fn vmcore_loads(map: &MemoryMap, region: Region, backup_addr: u64, backup_len: u64) -> Vec<Load> {
    let mut loads = vec![Load { paddr: 0, offset: backup_addr, size: backup_len }];
    for r in map.ram_outside(region, backup_len) {
        loads.push(Load { paddr: r.start, offset: r.start, size: r.len() });
    }
    loads
}

/// B's memory map: A's non-RAM ranges, A's RAM below 1 MiB, and the region
/// with `[reserved_start, reserved_end)` taken out.
pub fn b_memory_map(map: &MemoryMap, region: Region, reserved_start: u64, reserved_end: u64, a_ram_as_nvs: bool) -> Vec<Range> {
    let mut e820: Vec<Range> = map
        .ranges()
        .iter()
        .filter(|r| r.kind != Kind::Ram || r.start < MIB)
        .map(|r| if r.kind == Kind::Ram { Range { end: r.end.min(MIB), ..*r } } else { *r })
        .collect();
    if a_ram_as_nvs {
        for r in map.ram_outside(region, MIB) {
            e820.push(Range { start: r.start, end: r.end, kind: Kind::Acpi });
        }
    }
    e820.push(Range { start: region.start, end: reserved_start, kind: Kind::Ram });
    e820.push(Range { start: reserved_start, end: reserved_end, kind: Kind::Reserved });
    e820.push(Range { start: reserved_end, end: region.end, kind: Kind::Ram });
    e820.retain(|r| !r.is_empty());
    e820.sort_by_key(|r| r.start);
    e820
}

/// Lays out B in the region.
pub fn plan<'a>(inp: &Inputs<'a>) -> Result<Plan<'a>, Error> {
    let region = inp.region;
    let bz = inp.kernel;
    let too_small = |needed: u64| Error::RegionTooSmall { needed, size: region.len() };

    let kernel_addr = align_up(region.start, bz.alignment.max(PAGE_SIZE)).ok_or(too_small(u64::MAX))?;
    let kernel_memsz = page_up(bz.init_size.max(bz.kernel.len() as u64));
    let zero_page = kernel_addr + kernel_memsz;
    let cmdline_addr = zero_page + PAGE_SIZE;
    let purgatory_addr = cmdline_addr + PAGE_SIZE;
    let backup_len = inp.map.low_memory_end();
    let elfcorehdr = purgatory_addr + PAGE_SIZE;
    let header_space = page_up(crate::load::elf_core::MAX_LEN as u64);
    let notes_len: u64 = inp.notes.iter().map(|n| align_up(n.len() as u64, 8).unwrap_or(u64::MAX)).sum();
    let key_addr = elfcorehdr + header_space + page_up(notes_len);
    let key_len = match inp.key_page {
        Some(k) if k.len() as u64 > PAGE_SIZE => return Err(Error::KeyPageTooLarge),
        Some(_) => PAGE_SIZE,
        None => 0,
    };
    let backup_addr = key_addr + key_len;
    let initrd_addr = backup_addr + page_up(backup_len);
    let used_end = initrd_addr + page_up(inp.initrd.len() as u64);
    let needed = used_end - region.start + MIN_FREE_FOR_B;
    if used_end.checked_add(MIN_FREE_FOR_B).map_or(true, |end| end > region.end) {
        return Err(too_small(needed));
    }

    // Command line: what the caller gave, what only the plan knows, and
    // room for what the purgatory appends.
    if inp.cmdline.contains('\0') {
        return Err(Error::CmdlineHasNul);
    }
    let mut cmdline =
        format!("{} elfcorehdr={:#x} kjump.backup_size={:#x} kjump.region={:#x}-{:#x}", inp.cmdline.trim(), elfcorehdr, backup_len, region.start, region.end);
    if inp.key_page.is_some() {
        cmdline.push_str(&format!(" kjump.keypage={key_addr:#x}"));
    }
    let max = bz.cmdline_max.min(PAGE_SIZE - 1);
    if (cmdline.len() + purgatory::CMDLINE_APPEND_MAX) as u64 > max {
        return Err(Error::CmdlineTooLong { len: cmdline.len() + purgatory::CMDLINE_APPEND_MAX, max });
    }

    let loads = vmcore_loads(inp.map, region, backup_addr, backup_len);
    let mut note_entries = Vec::with_capacity(inp.notes.len());
    let mut header_segment = vec![0u8; header_space as usize];
    for n in inp.notes {
        let addr = elfcorehdr + header_segment.len() as u64;
        note_entries.push(Note { addr, size: n.len() as u64 });
        header_segment.extend_from_slice(n);
        header_segment.resize(align_up(header_segment.len() as u64, 8).unwrap_or(0) as usize, 0);
    }
    let header = elf_core::build(&note_entries, &loads).map_err(Error::ElfCore)?;
    header_segment[..header.len()].copy_from_slice(&header);
    let e820 = b_memory_map(inp.map, region, elfcorehdr, initrd_addr, inp.map_a_ram);
    if e820.len() > boot_params::MAX_E820 {
        return Err(Error::TooManyRanges);
    }
    let zero =
        boot_params::build(bz, &boot_params::Config { cmdline_addr, initrd_addr, initrd_size: inp.initrd.len() as u64, acpi_rsdp: inp.acpi_rsdp, e820: &e820 })
            .map_err(Error::BootParams)?;
    let mut zero_and_cmdline = Vec::with_capacity(2 * PAGE_SIZE as usize);
    zero_and_cmdline.extend_from_slice(&zero[..]);
    zero_and_cmdline.extend_from_slice(cmdline.as_bytes());
    zero_and_cmdline.push(0);

    let purgatory = Purgatory::patch(&purgatory::Params {
        kernel_entry: kernel_addr + ENTRY_64_OFFSET,
        boot_params: zero_page,
        cmdline_end: cmdline_addr + cmdline.len() as u64,
        backup_src: 0,
        backup_dst: backup_addr,
        backup_len,
    });
    if purgatory.bytes().len() as u64 > PAGE_SIZE {
        return Err(Error::PurgatoryTooLarge);
    }

    let mut segments = Vec::new();
    if kernel_addr > region.start {
        segments.push(PlannedSegment {
            what: "region head",
            data: Cow::Borrowed(&[]),
            mem: region.start,
            memsz: kernel_addr - region.start,
            sets_aside_only: true,
        });
    }
    segments.extend([
        PlannedSegment { what: "kernel", data: Cow::Borrowed(bz.kernel), mem: kernel_addr, memsz: kernel_memsz, sets_aside_only: false },
        PlannedSegment {
            what: "boot_params and command line",
            data: Cow::Owned(zero_and_cmdline),
            mem: zero_page,
            memsz: 2 * PAGE_SIZE,
            sets_aside_only: false,
        },
        PlannedSegment { what: "purgatory", data: Cow::Owned(purgatory.bytes().to_vec()), mem: purgatory_addr, memsz: PAGE_SIZE, sets_aside_only: false },
        PlannedSegment { what: "ELF core header", data: Cow::Owned(header_segment), mem: elfcorehdr, memsz: key_addr - elfcorehdr, sets_aside_only: false },
        PlannedSegment { what: "low-memory backup", data: Cow::Borrowed(&[]), mem: backup_addr, memsz: initrd_addr - backup_addr, sets_aside_only: false },
        PlannedSegment { what: "initramfs", data: Cow::Borrowed(inp.initrd), mem: initrd_addr, memsz: used_end - initrd_addr, sets_aside_only: false },
        PlannedSegment { what: "free RAM for B", data: Cow::Borrowed(&[]), mem: used_end, memsz: region.end - used_end, sets_aside_only: true },
    ]);
    if let Some(key) = inp.key_page {
        let at = segments.iter().position(|s| s.mem > key_addr).unwrap_or(segments.len());
        segments.insert(at, PlannedSegment { what: "key for D", data: Cow::Borrowed(key), mem: key_addr, memsz: key_len, sets_aside_only: false });
    }
    Ok(Plan { region, segments, entry: purgatory_addr, kernel_addr, elfcorehdr, backup_addr, backup_len, cmdline, e820, loads })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::bzimage::tests::fake_bzimage;
    use crate::load::memmap::tests::QEMU_1G;
    use crate::sys::kexec;

    #[test]
    fn a_resident_b_sees_a_ram_as_acpi_tables_and_still_only_the_region_as_ram() {
        let map = MemoryMap::parse_iomem(QEMU_1G).unwrap();
        let region = map.choose_region(64 << 20).unwrap();
        let plain = b_memory_map(&map, region, region.start + 0x100000, region.start + 0x200000, false);
        let mapped = b_memory_map(&map, region, region.start + 0x100000, region.start + 0x200000, true);
        let kinds = |m: &[Range], k: Kind| m.iter().filter(|r| r.kind == k).map(|r| (r.start, r.end)).collect::<Vec<_>>();
        assert_eq!(kinds(&plain, Kind::Ram), kinds(&mapped, Kind::Ram));
        // A's RAM from 1 MiB up, the region left out, added to A's own
        // ACPI ranges.
        let added: Vec<_> = kinds(&mapped, Kind::Acpi).into_iter().filter(|r| !kinds(&plain, Kind::Acpi).contains(r)).collect();
        assert_eq!(added, [(0x100000, region.start), (region.end, 0x3ffe0000)]);
        assert!(mapped.windows(2).all(|w| w[0].end <= w[1].start));
    }

    fn plan_for(region_size: u64, initrd: &[u8], cmdline: &str) -> Result<(), Error> {
        let map = MemoryMap::parse_iomem(QEMU_1G).unwrap();
        let f = fake_bzimage(3 << 20);
        let bz = BzImage::parse(&f).unwrap();
        let notes = [vec![0x55u8; 0x1024]];
        let region = map.choose_region(region_size).unwrap();
        let inp = Inputs { map: &map, region, kernel: &bz, initrd, cmdline, notes: &notes, acpi_rsdp: 0, map_a_ram: false, key_page: None };
        let p = plan(&inp)?;
        // The segments are acceptable to kexec_load and tile the region.
        kexec::validate(&p.kexec_segments(true)).unwrap();
        // For a caller that is not resumed (C), only what B needs: the
        // kernel, its tables, the backup area and the initramfs, a small
        // part of the region.
        let needed = p.kexec_segments(false);
        kexec::validate(&needed).unwrap();
        assert!(needed.len() < p.segments.len() && needed.iter().all(|s| !s.buf.is_empty() || s.mem == p.backup_addr));
        assert!(needed.iter().map(|s| s.memsz).sum::<u64>() < p.region.len() / 2);
        assert_eq!(p.segments.first().unwrap().mem, p.region.start);
        for w in p.segments.windows(2) {
            assert_eq!(w[0].mem + w[0].memsz, w[1].mem, "{} / {}", w[0].what, w[1].what);
        }
        let last = p.segments.last().unwrap();
        assert_eq!(last.mem + last.memsz, p.region.end);
        assert_eq!(p.kernel_addr % 0x200000, 0);
        assert_eq!(p.backup_addr % 1024, 0);
        assert_eq!(p.backup_len, 0xa0000);
        // /proc/vmcore: low memory from the backup, the rest outside the region.
        assert_eq!(p.loads[0], Load { paddr: 0, offset: p.backup_addr, size: 0xa0000 });
        assert_eq!(p.loads[1], Load { paddr: 0x100000, offset: 0x100000, size: p.region.start - 0x100000 });
        assert_eq!(p.loads[2], Load { paddr: p.region.end, offset: p.region.end, size: 0x3ffe0000 - p.region.end });
        assert_eq!(p.loads.len(), 3);
        // B's map: RAM only below 1 MiB and in the region, header and backup reserved.
        let ram: Vec<_> = p.e820.iter().filter(|r| r.kind == Kind::Ram).map(|r| (r.start, r.end)).collect();
        assert_eq!(ram, [(0x1000, 0x9fc00), (p.region.start, p.elfcorehdr), (p.backup_addr + 0xa0000, p.region.end)]);
        assert!(p.e820.iter().any(|r| r.kind == Kind::Reserved && r.start == p.elfcorehdr));
        assert!(p.e820.windows(2).all(|w| w[0].end <= w[1].start));
        assert!(p.cmdline.contains(&format!("elfcorehdr={:#x}", p.elfcorehdr)));
        // The note travels inside the header's segment, which B keeps reserved.
        let hdr = p.segments.iter().find(|s| s.mem == p.elfcorehdr).unwrap();
        let note_at = crate::le::u64_at(&hdr.data, 64 + 8).unwrap();
        let off = (note_at - p.elfcorehdr) as usize;
        assert_eq!(&hdr.data[off..off + 0x1024], &[0x55u8; 0x1024][..]);
        assert!(note_at + 0x1024 <= p.backup_addr);
        // The screen goes at the start of the zero page, the rest unchanged.
        let zero_of = |p: &Plan<'_>| p.segments.iter().find(|s| s.what.starts_with("boot_params")).unwrap().data.to_vec();
        let before = zero_of(&p);
        assert!(before[..0x40].iter().all(|&b| b == 0));
        let mut p = p;
        p.set_screen_info(&[0x33; 0x40]);
        let after = zero_of(&p);
        assert_eq!((&after[..0x40], &after[0x40..]), (&[0x33u8; 0x40][..], &before[0x40..]));
        Ok(())
    }

    #[test]
    fn lays_out_b_in_a_128m_region() {
        plan_for(128 * MIB, &[7u8; 3 << 20], "console=ttyS0 rdinit=/kjump-init kjump.mode=roundtrip").unwrap();
    }

    #[test]
    fn the_key_for_d_has_a_reserved_page_of_its_own() {
        let map = MemoryMap::parse_iomem(QEMU_1G).unwrap();
        let f = fake_bzimage(3 << 20);
        let bz = BzImage::parse(&f).unwrap();
        let key = [0x4bu8; 60];
        let region = map.choose_region(128 * MIB).unwrap();
        let notes = [vec![0x55u8; 0x1024]];
        let inp =
            Inputs { map: &map, region, kernel: &bz, initrd: &[1; 4096], cmdline: "x", notes: &notes, acpi_rsdp: 0, map_a_ram: false, key_page: Some(&key) };
        let p = plan(&inp).unwrap();
        let seg = p.segments.iter().find(|s| s.what == "key for D").unwrap();
        assert_eq!((&seg.data[..], seg.memsz), (&key[..], PAGE_SIZE));
        assert!(p.cmdline.ends_with(&format!(" kjump.keypage={:#x}", seg.mem)));
        // D's kernel never uses it: it lies in the reserved range.
        assert!(p.e820.iter().any(|r| r.kind == Kind::Reserved && r.start <= seg.mem && seg.mem + PAGE_SIZE <= r.end));
        kexec::validate(&p.kexec_segments(true)).unwrap();
        kexec::validate(&p.kexec_segments(false)).unwrap();
        assert!(p.kexec_segments(false).iter().any(|s| s.mem == seg.mem));
        for w in p.segments.windows(2) {
            assert_eq!(w[0].mem + w[0].memsz, w[1].mem, "{} / {}", w[0].what, w[1].what);
        }
        let inp = Inputs { key_page: Some(&[0; 5000]), ..inp };
        assert_eq!(plan(&inp).map(|_| ()), Err(Error::KeyPageTooLarge));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert!(matches!(plan_for(32 * MIB, &[0u8; 1 << 20], ""), Err(Error::RegionTooSmall { .. })));
        assert!(matches!(plan_for(128 * MIB, &[], &"x".repeat(2000)), Err(Error::CmdlineTooLong { .. })));
        assert_eq!(plan_for(128 * MIB, &[], "a\0b"), Err(Error::CmdlineHasNul));
    }
}
