//! A's loaded kexec image, read back in B: which of A's pages hold what A
//! had in the kjump region.
//!
//! Every page of the region is a kexec destination. When A jumps, its
//! `relocate_kernel` swaps each destination page with its source page, so
//! A's old contents of region page `d` now sit in source page `s`, a page
//! A allocated for the image. B saves `s` like any page A uses. But when `d`
//! was *free* in A, `s` holds stale data A does not care about, and up to
//! the whole region's worth of it would be compressed and written for
//! nothing. This module finds the pairs, so B can leave those out.
//!
//! What Linux does on x86_64, and what this module relies on
//! (`arch/x86/kernel/relocate_kernel_64.S`, `machine_kexec_64.c`,
//! `kernel/kexec_core.c`):
//! - B's `kexec_jump_back_entry` is an address inside A's control page
//!   (the return address of `relocate_kernel`'s call into the purgatory);
//! - `relocate_kernel` keeps the image's first entry (`image->head`, the
//!   "backup pages map") in the control page, and swaps pages back from it
//!   on the way home. Where, depends on A's release ([`Layout`]): up to
//!   6.13 at `KEXEC_CONTROL_CODE_MAX_SIZE + 0x30`; from 6.14 on (the
//!   rework that moved `relocate_kernel`'s variables into its own data
//!   section, copied into the control page with its code) in
//!   `pa_backup_pages_map`, after `kexec_va_control_page`,
//!   `kexec_pa_table_page` and `kexec_pa_swap_page`, at an offset that
//!   depends on the size of the code before it. That block is found by
//!   its contents: `kexec_va_control_page` is the address through which
//!   A's own page tables (from VMCOREINFO) reach the control page, and the
//!   fields around it must look as `relocate_kernel` leaves them. Exactly
//!   one place in the copied code and data may match;
//! - an entry is a physical address with one flag in its low bits:
//!   destination (the next source goes there, and each source moves the
//!   destination on by a page), indirection (the entries continue in that
//!   page), done, or source;
//! - a source page inside the region is always its own destination (the
//!   allocator handed out that very page; the swap leaves it alone).
//!
//! Nothing read from A is trusted. A's release (VMCOREINFO's `OSRELEASE`)
//! picks the layout; no other layout is tried. The walk is accepted only
//! if it names every page of the region exactly once, in order, ends with
//! "done", and every source is outside the region (or is its own
//! destination) and used once. Any other shape is an error, and B then
//! saves every source page as before: bigger, never wrong.

use core::fmt;

use crate::inspect::pagetable::{PageTables, PhysRead};
use crate::inspect::vmcoreinfo::VmcoreInfo;
use crate::le;
use crate::range::PhysRange;
use crate::units::PAGE_SIZE;

/// `KEXEC_CONTROL_CODE_MAX_SIZE`: how much of the control page holds
/// `relocate_kernel`'s code (and, from 6.14 on, its data).
const CONTROL_CODE_MAX_SIZE: u64 = 2048;
/// Where `relocate_kernel` keeps `image->head` in the control page up to
/// Linux 6.13: `DATA(0x30)`, after the code.
pub const HEAD_IN_CONTROL_PAGE: u64 = CONTROL_CODE_MAX_SIZE + 0x30;
/// The first release whose `relocate_kernel` keeps its variables in its
/// own data section, copied into the control page (Linux 6.14).
pub const DATA_SECTION_SINCE: (u32, u32, u32) = (6, 14, 0);
/// `X86_CR0_PE | X86_CR0_PG`: set in any CR0 that `relocate_kernel` saves.
const CR0_PE_PG: u64 = 0x8000_0001;
/// `X86_CR4_PAE`: set in any CR4 of a 64-bit kernel.
const CR4_PAE: u64 = 1 << 5;
/// `IND_DESTINATION`.
const IND_DESTINATION: u64 = 0x1;
/// `IND_INDIRECTION`.
const IND_INDIRECTION: u64 = 0x2;
/// `IND_DONE`.
const IND_DONE: u64 = 0x4;
/// `IND_SOURCE`.
const IND_SOURCE: u64 = 0x8;
/// Entries in one indirection page.
const ENTRIES_PER_PAGE: usize = (PAGE_SIZE / 8) as usize;

/// Where A's release keeps `image->head` in the control page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Linux up to 6.13: at [`HEAD_IN_CONTROL_PAGE`].
    AfterCode,
    /// Linux 6.14 on: in `relocate_kernel`'s data section, copied into the
    /// first [`CONTROL_CODE_MAX_SIZE`] bytes with its code: the eight
    /// words `saved_rsp`, `saved_cr0`, `saved_cr3`, `saved_cr4`,
    /// `kexec_va_control_page`, `kexec_pa_table_page`,
    /// `kexec_pa_swap_page`, `pa_backup_pages_map` (the head).
    DataSection,
}

impl Layout {
    /// The layout of kernel release `release` (major, minor, patch).
    pub fn of_release(release: (u32, u32, u32)) -> Layout {
        if release >= DATA_SECTION_SINCE {
            Layout::DataSection
        } else {
            Layout::AfterCode
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::AfterCode => "Linux 6.13 and earlier",
            Layout::DataSection => "Linux 6.14 and later",
        })
    }
}

/// Why A's image could not be read as a list of region swaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A's VMCOREINFO gives no kernel release, or one that does not parse.
    NoRelease,
    /// A's page tables cannot be found (needed for the 6.14+ layout).
    NoPageTables(crate::inspect::pagetable::Error),
    /// Not exactly one place in the control page holds `relocate_kernel`'s
    /// data as 6.14+ leaves it (`found` places do).
    NoDataSection { found: usize },
    /// The region is empty or not page aligned.
    BadRegion { start: u64, end: u64 },
    /// This physical page of A could not be read.
    Unreadable { paddr: u64 },
    /// The control page's head is not an indirection entry.
    BadHead { value: u64 },
    /// Entry number `index` has no flag, or more than one.
    BadEntry { index: u64, value: u64 },
    /// A destination is not the next page of the region.
    OutOfOrder { dest: u64, expected: u64 },
    /// A source lies in the region but is not its own destination.
    SourceInRegion { source: u64, dest: u64 },
    /// The same source page is given for two destinations.
    SourceTwice { source: u64 },
    /// The list goes on past every page of the region, or loops.
    TooLong,
    /// "Done" came after this many of the region's pages.
    Short { pages: u64, expected: u64 },
    /// The table of sources could not be allocated.
    OutOfMemory { pages: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoRelease => f.write_str("A's VMCOREINFO gives no kernel release that says where its kexec image starts"),
            Error::NoPageTables(e) => write!(f, "A's page tables cannot be found ({e})"),
            Error::NoDataSection { found } => {
                write!(f, "{found} places in the control page, not one, hold relocate_kernel's data as Linux 6.14 and later leave it")
            }
            Error::BadRegion { start, end } => write!(f, "the region {start:#x}..{end:#x} is not whole pages"),
            Error::Unreadable { paddr } => write!(f, "A's page at {paddr:#x} cannot be read"),
            Error::BadHead { value } => write!(f, "the control page holds {value:#x}, not an indirection entry"),
            Error::BadEntry { index, value } => write!(f, "entry {index} is {value:#x}, not one kind of entry"),
            Error::OutOfOrder { dest, expected } => {
                write!(f, "destination {dest:#x} where the region's page {expected:#x} was due")
            }
            Error::SourceInRegion { source, dest } => {
                write!(f, "source {source:#x} for {dest:#x} lies in the region")
            }
            Error::SourceTwice { source } => write!(f, "source {source:#x} is used twice"),
            Error::TooLong => f.write_str("the entry list is longer than the region"),
            Error::Short { pages, expected } => {
                write!(f, "the entry list ends after {pages} of the region's {expected} pages")
            }
            Error::OutOfMemory { pages } => write!(f, "no memory for a table of {pages} pages"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::NoPageTables(e) => Some(e),
            _ => None,
        }
    }
}

/// For each page of the region, in order, the pfn of the page that holds
/// A's contents of it while B runs (the page's own pfn when nothing moved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionSources {
    /// First pfn of the region.
    pub first_pfn: u64,
    /// `sources[i]` holds A's page `first_pfn + i`.
    pub sources: Vec<u64>,
}

/// Reads A's image entry list through the control page that `reentry`
/// points into, and checks it covers `region` (byte range) exactly. `info`
/// is A's VMCOREINFO: its release picks the [`Layout`], and its page
/// tables confirm the 6.14+ one.
pub fn region_sources(mem: &impl PhysRead, info: &VmcoreInfo, reentry: u64, region: PhysRange) -> Result<RegionSources, Error> {
    let release = info.osrelease().and_then(crate::host::check::parse_release).ok_or(Error::NoRelease)?;
    match Layout::of_release(release) {
        Layout::AfterCode => region_sources_in(mem, Layout::AfterCode, None, reentry, region),
        Layout::DataSection => {
            let tables = PageTables::from_vmcoreinfo(info).map_err(Error::NoPageTables)?;
            region_sources_in(mem, Layout::DataSection, Some(&tables), reentry, region)
        }
    }
}

/// Where the head is in the control page at `control`, by `layout`.
fn head_address(mem: &impl PhysRead, layout: Layout, tables: Option<&PageTables>, control: u64) -> Result<u64, Error> {
    match (layout, tables) {
        (Layout::AfterCode, _) => Ok(control + HEAD_IN_CONTROL_PAGE),
        (Layout::DataSection, None) => Err(Error::NoDataSection { found: 0 }),
        (Layout::DataSection, Some(t)) => {
            let mut code = [0u8; CONTROL_CODE_MAX_SIZE as usize];
            mem.read_phys(control, &mut code).map_err(|_| Error::Unreadable { paddr: control })?;
            // Only words within `code` are asked for (i + 3 < code.len() / 8).
            let word = |i: usize| le::u64_at(&code, i * 8).unwrap_or_default();
            let kernel_half = |v: u64| v >> 63 == 1;
            let page_aligned = |v: u64| v != 0 && v % PAGE_SIZE == 0;
            let mut found = Vec::new();
            // `kexec_va_control_page` is word i; the block is words i-4..=i+3.
            for i in 4..code.len() / 8 - 3 {
                let va = word(i);
                if !kernel_half(va) || !page_aligned(va) || t.translate(mem, va) != Ok(control) {
                    continue;
                }
                let (rsp, cr0, cr4) = (word(i - 4), word(i - 3), word(i - 1));
                let (table, swap, head) = (word(i + 1), word(i + 2), word(i + 3));
                if kernel_half(rsp)
                    && cr0 & CR0_PE_PG == CR0_PE_PG
                    && cr4 & CR4_PAE != 0
                    && page_aligned(table)
                    && page_aligned(swap)
                    && swap != control
                    && head & (PAGE_SIZE - 1) == IND_INDIRECTION
                {
                    found.push(control + (i as u64 + 3) * 8);
                }
            }
            match found[..] {
                [at] => Ok(at),
                _ => Err(Error::NoDataSection { found: found.len() }),
            }
        }
    }
}

/// [`region_sources`] for a known layout; `tables` are A's page tables
/// (needed for [`Layout::DataSection`]).
pub fn region_sources_in(mem: &impl PhysRead, layout: Layout, tables: Option<&PageTables>, reentry: u64, region: PhysRange) -> Result<RegionSources, Error> {
    if !region.is_page_aligned() || region.is_empty() {
        return Err(Error::BadRegion { start: region.start, end: region.end });
    }
    let expected = region.len() / PAGE_SIZE;
    let control = reentry & !(PAGE_SIZE - 1);
    let head = read_u64(mem, head_address(mem, layout, tables, control)?)?;
    if head & (PAGE_SIZE - 1) != IND_INDIRECTION {
        return Err(Error::BadHead { value: head });
    }
    let mut sources = Vec::new();
    let len = usize::try_from(expected).map_err(|_| Error::OutOfMemory { pages: expected })?;
    sources.try_reserve_exact(len).map_err(|_| Error::OutOfMemory { pages: expected })?;

    // Each page holds 511 entries and a link; a region of n pages needs at
    // most n sources, n destinations and "done".
    let most_pages = expected.saturating_mul(2).saturating_add(1) / (ENTRIES_PER_PAGE as u64 - 1) + 2;
    let mut page = [0u8; PAGE_SIZE as usize];
    let mut pages_read = 0u64;
    let mut dest = region.start;
    let mut index = 0u64;
    let mut entry = head;
    let mut next_slot = ENTRIES_PER_PAGE; // no page loaded yet
    loop {
        let addr = entry & !(PAGE_SIZE - 1);
        match entry & (PAGE_SIZE - 1) {
            IND_INDIRECTION => {
                pages_read += 1;
                if pages_read > most_pages {
                    return Err(Error::TooLong);
                }
                mem.read_phys(addr, &mut page).map_err(|_| Error::Unreadable { paddr: addr })?;
                next_slot = 0;
            }
            IND_DESTINATION => {
                if addr != dest {
                    return Err(Error::OutOfOrder { dest: addr, expected: dest });
                }
            }
            IND_SOURCE => {
                if dest >= region.end {
                    return Err(Error::TooLong);
                }
                if region.contains(addr) && addr != dest {
                    return Err(Error::SourceInRegion { source: addr, dest });
                }
                sources.push(addr / PAGE_SIZE);
                dest += PAGE_SIZE;
            }
            IND_DONE => break,
            _ => return Err(Error::BadEntry { index, value: entry }),
        }
        if next_slot >= ENTRIES_PER_PAGE {
            // The last slot of a page must have been a link.
            return Err(Error::BadEntry { index, value: entry });
        }
        // Always there: ENTRIES_PER_PAGE entries fill the page.
        entry = le::u64_at(&page, next_slot * 8).ok_or(Error::BadEntry { index, value: entry })?;
        next_slot += 1;
        index += 1;
    }
    let pages = sources.len() as u64;
    if pages != expected {
        return Err(Error::Short { pages, expected });
    }
    let r = RegionSources { first_pfn: region.start / PAGE_SIZE, sources };
    check_each_source_once(&r)?;
    Ok(r)
}

impl RegionSources {
    /// The pairs `(region pfn, source pfn)` where a page actually moved.
    pub fn moved(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (self.first_pfn..).zip(self.sources.iter().copied()).filter(|(d, s)| d != s)
    }
}

/// Fails if a source outside the region appears twice.
fn check_each_source_once(r: &RegionSources) -> Result<(), Error> {
    let mut moved: Vec<u64> = Vec::new();
    let n = r.sources.len();
    moved.try_reserve_exact(n).map_err(|_| Error::OutOfMemory { pages: n as u64 })?;
    moved.extend(r.moved().map(|(_, s)| s));
    moved.sort_unstable();
    match moved.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(Error::SourceTwice { source: w[0] * PAGE_SIZE }),
        None => Ok(()),
    }
}

fn read_u64(mem: &impl PhysRead, paddr: u64) -> Result<u64, Error> {
    let mut b = [0u8; 8];
    mem.read_phys(paddr, &mut b).map_err(|_| Error::Unreadable { paddr: paddr & !(PAGE_SIZE - 1) })?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::pagetable::tests::FakeMem;

    const CONTROL: u64 = 0x0234_f000;
    const REENTRY: u64 = CONTROL + 0xa4;
    const REGION: PhysRange = PhysRange::new(0x1e60_0000, 0x1e60_0000 + 8 * PAGE_SIZE);
    const IND: u64 = 0x0300_0000;

    /// The 6.13-and-earlier walk.
    fn after_code(m: &FakeMem, reentry: u64, region: PhysRange) -> Result<RegionSources, Error> {
        region_sources_in(m, Layout::AfterCode, None, reentry, region)
    }

    /// An image as A's kernel builds it: entries written from `IND` on,
    /// continuing in the next page at each page's last slot.
    fn image(entries: &[u64]) -> FakeMem {
        let mut m = FakeMem::new(0x4000_0000);
        m.write_u64(CONTROL + HEAD_IN_CONTROL_PAGE, IND | IND_INDIRECTION);
        let mut page = IND;
        let mut slot = 0;
        for &e in entries {
            if slot == ENTRIES_PER_PAGE - 1 {
                let next = page + PAGE_SIZE;
                m.write_u64(page + slot as u64 * 8, next | IND_INDIRECTION);
                page = next;
                slot = 0;
            }
            m.write_u64(page + slot as u64 * 8, e);
            slot += 1;
        }
        m
    }

    /// Sources for the 8 region pages: page 2 is its own source.
    fn good_entries() -> Vec<u64> {
        let mut e = vec![REGION.start | IND_DESTINATION];
        for i in 0..8u64 {
            let s = if i == 2 { REGION.start + 2 * PAGE_SIZE } else { 0x0100_0000 + i * 0x3000 };
            e.push(s | IND_SOURCE);
        }
        e.push(IND_DONE);
        e
    }

    #[test]
    fn reads_the_pairs_of_a_whole_region() {
        let m = image(&good_entries());
        let r = after_code(&m, REENTRY, REGION).unwrap();
        assert_eq!(r.first_pfn, REGION.start / PAGE_SIZE);
        assert_eq!(r.sources.len(), 8);
        assert_eq!(r.sources[2], REGION.start / PAGE_SIZE + 2);
        assert_eq!(r.sources[3], (0x0100_0000 + 3 * 0x3000) / PAGE_SIZE);
        let moved: Vec<_> = r.moved().collect();
        assert_eq!(moved.len(), 7, "the page that is its own source did not move");
        assert!(moved.iter().all(|&(d, s)| d != s));
    }

    #[test]
    fn follows_links_and_repeated_destinations() {
        // One segment per page, as for a region of many small segments,
        // over enough entries to span several indirection pages.
        let region = PhysRange::new(REGION.start, REGION.start + 600 * PAGE_SIZE);
        let mut e = Vec::new();
        for i in 0..600u64 {
            e.push((region.start + i * PAGE_SIZE) | IND_DESTINATION);
            e.push((0x0100_0000 + i * PAGE_SIZE) | IND_SOURCE);
        }
        e.push(IND_DONE);
        let r = after_code(&image(&e), REENTRY, region).unwrap();
        assert_eq!(r.sources.len(), 600);
        assert_eq!(r.sources[599], (0x0100_0000 + 599 * PAGE_SIZE) / PAGE_SIZE);
    }

    #[test]
    fn refuses_what_is_not_a_whole_region() {
        let with = |f: &dyn Fn(&mut Vec<u64>)| {
            let mut e = good_entries();
            f(&mut e);
            after_code(&image(&e), REENTRY, REGION)
        };
        // "Done" early.
        assert_eq!(with(&|e| e[5] = IND_DONE), Err(Error::Short { pages: 4, expected: 8 }));
        // A page too many.
        assert_eq!(with(&|e| e.insert(8, 0x0200_0000 | IND_SOURCE)), Err(Error::TooLong));
        // A destination that skips a page.
        assert_eq!(
            with(&|e| e.insert(4, (REGION.start + 4 * PAGE_SIZE) | IND_DESTINATION)),
            Err(Error::OutOfOrder { dest: REGION.start + 4 * PAGE_SIZE, expected: REGION.start + 3 * PAGE_SIZE })
        );
        // A destination outside the region.
        assert!(matches!(with(&|e| e[0] = 0x1000 | IND_DESTINATION), Err(Error::OutOfOrder { .. })));
        // A region page as another page's source.
        assert_eq!(
            with(&|e| e[1] = (REGION.start + 5 * PAGE_SIZE) | IND_SOURCE),
            Err(Error::SourceInRegion { source: REGION.start + 5 * PAGE_SIZE, dest: REGION.start })
        );
        // The same source twice.
        assert_eq!(with(&|e| e[5] = e[4]), Err(Error::SourceTwice { source: 0x0100_0000 + 3 * 0x3000 }));
        // No flag, two flags, an unknown flag.
        assert_eq!(with(&|e| e[3] = 0x0100_0000), Err(Error::BadEntry { index: 4, value: 0x0100_0000 }));
        assert!(matches!(with(&|e| e[3] |= IND_DESTINATION), Err(Error::BadEntry { .. })));
        assert!(matches!(with(&|e| e[3] |= 0x10), Err(Error::BadEntry { .. })));
        // Zeroes where the list should go on.
        assert!(matches!(with(&|e| e.truncate(5)), Err(Error::BadEntry { value: 0, .. })));
    }

    #[test]
    fn refuses_a_bad_head_or_unreadable_pages() {
        let mut m = image(&good_entries());
        m.write_u64(CONTROL + HEAD_IN_CONTROL_PAGE, IND | IND_SOURCE);
        assert_eq!(after_code(&m, REENTRY, REGION), Err(Error::BadHead { value: IND | IND_SOURCE }));
        m.write_u64(CONTROL + HEAD_IN_CONTROL_PAGE, 0);
        assert_eq!(after_code(&m, REENTRY, REGION), Err(Error::BadHead { value: 0 }));

        let mut m = image(&good_entries());
        m.broken.insert(IND);
        assert_eq!(after_code(&m, REENTRY, REGION), Err(Error::Unreadable { paddr: IND }));
        let m = FakeMem::new(0x4000_0000);
        assert_eq!(after_code(&m, REENTRY, REGION), Err(Error::Unreadable { paddr: CONTROL }));
    }

    #[test]
    fn refuses_a_list_that_loops() {
        // An indirection page whose link points at itself.
        let mut m = FakeMem::new(0x4000_0000);
        m.write_u64(CONTROL + HEAD_IN_CONTROL_PAGE, IND | IND_INDIRECTION);
        m.write_u64(IND, REGION.start | IND_DESTINATION);
        m.write_u64(IND + 8, IND | IND_INDIRECTION);
        assert_eq!(after_code(&m, REENTRY, REGION), Err(Error::TooLong));
    }

    #[test]
    fn refuses_a_region_that_is_not_whole_pages() {
        let m = image(&good_entries());
        assert!(matches!(after_code(&m, REENTRY, PhysRange::new(REGION.start + 1, REGION.end)), Err(Error::BadRegion { .. })));
        assert!(matches!(after_code(&m, REENTRY, PhysRange::new(REGION.start, REGION.start)), Err(Error::BadRegion { .. })));
    }

    // The 6.14+ layout, as 7.3.4's relocate_kernel leaves it: A's page
    // tables at TABLES map the control page at CONTROL_VA (the direct map);
    // the data block sits after the code, at DATA in the control page.
    const TABLES: u64 = 0x0a00_0000;
    const CONTROL_VA: u64 = 0xffff_8880_0000_0000 + CONTROL;
    const DATA: u64 = 0x5d0;

    /// `saved_rsp`, `saved_cr0`, `saved_cr3`, `saved_cr4`,
    /// `kexec_va_control_page`, `kexec_pa_table_page`, `kexec_pa_swap_page`,
    /// `pa_backup_pages_map`.
    fn data_block(va: u64) -> [u64; 8] {
        [0xffff_c900_0001_3e58, 0x8005_0033, 0x0247_0000, 0x0035_06f0, va, 0x0235_0000, 0x0235_1000, IND | IND_INDIRECTION]
    }

    /// A 6.14+ image: the entries of `image`, the data block at `at`, and
    /// what the 6.13 layout's slot holds on 7.3 (a stack word).
    fn data_section_image(entries: &[u64], at: u64) -> FakeMem {
        let mut m = image(entries);
        m.write_u64(CONTROL + HEAD_IN_CONTROL_PAGE, 0xffff_ffff_8123_4567);
        // Some code before the data.
        for i in 0..at / 8 {
            m.write_u64(CONTROL + i * 8, 0x4850_5453_4155_4156 ^ i);
        }
        for (i, w) in data_block(CONTROL_VA).iter().enumerate() {
            m.write_u64(CONTROL + at + i as u64 * 8, *w);
        }
        m.map(TABLES, false, CONTROL_VA, CONTROL, PAGE_SIZE, 0);
        m
    }

    fn data_section(m: &FakeMem) -> Result<RegionSources, Error> {
        region_sources_in(m, Layout::DataSection, Some(&PageTables::new(TABLES, false)), REENTRY, REGION)
    }

    #[test]
    fn layouts_by_release() {
        assert_eq!(Layout::of_release((6, 12, 118)), Layout::AfterCode);
        assert_eq!(Layout::of_release((6, 13, 12)), Layout::AfterCode);
        assert_eq!(Layout::of_release((6, 14, 0)), Layout::DataSection);
        assert_eq!(Layout::of_release((7, 3, 4)), Layout::DataSection);
    }

    #[test]
    fn reads_the_pairs_through_the_data_section() {
        let m = data_section_image(&good_entries(), DATA);
        let r = data_section(&m).unwrap();
        assert_eq!(r.sources.len(), 8);
        assert_eq!(r.sources[3], (0x0100_0000 + 3 * 0x3000) / PAGE_SIZE);
        assert_eq!(r.moved().count(), 7);
        // What the 6.13 layout would have read there.
        assert_eq!(after_code(&m, REENTRY, REGION), Err(Error::BadHead { value: 0xffff_ffff_8123_4567 }));
    }

    #[test]
    fn refuses_a_data_section_that_does_not_match_exactly() {
        let with = |f: &dyn Fn(&mut FakeMem)| {
            let mut m = data_section_image(&good_entries(), DATA);
            f(&mut m);
            data_section(&m)
        };
        let field = |i: u64| CONTROL + DATA + i * 8;
        // kexec_va_control_page that A's page tables map elsewhere, or not at all.
        assert_eq!(with(&|m| m.map(TABLES, false, CONTROL_VA, CONTROL + PAGE_SIZE, PAGE_SIZE, 0)), Err(Error::NoDataSection { found: 0 }));
        assert_eq!(with(&|m| m.write_u64(field(4), CONTROL_VA + 0x20_0000)), Err(Error::NoDataSection { found: 0 }));
        // A saved CR0 without paging, a CR4 without PAE, a user-space stack.
        assert_eq!(with(&|m| m.write_u64(field(1), 0x11)), Err(Error::NoDataSection { found: 0 }));
        assert_eq!(with(&|m| m.write_u64(field(3), 0x0035_06d0)), Err(Error::NoDataSection { found: 0 }));
        assert_eq!(with(&|m| m.write_u64(field(0), 0x7ffc_0000_0000)), Err(Error::NoDataSection { found: 0 }));
        // Table or swap pages not page aligned; the head not an indirection entry.
        assert_eq!(with(&|m| m.write_u64(field(5), 0x0235_0008)), Err(Error::NoDataSection { found: 0 }));
        assert_eq!(with(&|m| m.write_u64(field(6), 0)), Err(Error::NoDataSection { found: 0 }));
        assert_eq!(with(&|m| m.write_u64(field(7), IND | IND_SOURCE)), Err(Error::NoDataSection { found: 0 }));
        // Two blocks that both match: no guessing between them.
        let twice = |m: &mut FakeMem| {
            for (i, w) in data_block(CONTROL_VA).iter().enumerate() {
                m.write_u64(CONTROL + 0x100 + i as u64 * 8, *w);
            }
        };
        assert_eq!(with(&twice), Err(Error::NoDataSection { found: 2 }));
        // Past the copied code and data (the stack half of the page) does not count.
        let m = data_section_image(&good_entries(), CONTROL_CODE_MAX_SIZE);
        assert_eq!(data_section(&m), Err(Error::NoDataSection { found: 0 }));
        // Without A's page tables there is no telling.
        let m = data_section_image(&good_entries(), DATA);
        assert_eq!(region_sources_in(&m, Layout::DataSection, None, REENTRY, REGION), Err(Error::NoDataSection { found: 0 }));
        // The walk after the head is as strict as ever.
        let mut e = good_entries();
        e[5] = IND_DONE;
        assert_eq!(data_section(&data_section_image(&e, DATA)), Err(Error::Short { pages: 4, expected: 8 }));
    }

    #[test]
    fn picks_the_layout_from_a_s_vmcoreinfo() {
        let info = |release: &str| {
            VmcoreInfo::parse(&format!(
                "OSRELEASE={release}\nSYMBOL(init_top_pgt)={:x}\nNUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\n",
                crate::inspect::pagetable::START_KERNEL_MAP + TABLES
            ))
        };
        let old = image(&good_entries());
        let new = data_section_image(&good_entries(), DATA);
        assert!(region_sources(&old, &info("6.12.118+deb12-amd64"), REENTRY, REGION).is_ok());
        assert!(region_sources(&new, &info("7.3.4"), REENTRY, REGION).is_ok());
        assert!(region_sources(&new, &info("6.14.0-rc1"), REENTRY, REGION).is_ok());
        // The release decides; the other layout is not tried.
        assert_eq!(region_sources(&new, &info("6.12.118"), REENTRY, REGION), Err(Error::BadHead { value: 0xffff_ffff_8123_4567 }));
        assert_eq!(region_sources(&old, &info("7.3.4"), REENTRY, REGION), Err(Error::NoDataSection { found: 0 }));
        assert_eq!(region_sources(&new, &info(""), REENTRY, REGION), Err(Error::NoRelease));
        assert_eq!(region_sources(&new, &info("seven"), REENTRY, REGION), Err(Error::NoRelease));
        let no_tables = VmcoreInfo::parse("OSRELEASE=7.3.4\n");
        assert!(matches!(region_sources(&new, &no_tables, REENTRY, REGION), Err(Error::NoPageTables(_))));
    }
}
