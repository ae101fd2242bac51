//! Which of A's pages are free in A's buddy allocator, found the way
//! makedumpfile finds them: by reading A's `struct page` array through
//! `mem_section`, with nothing but VMCOREINFO to go on. B need not save
//! free pages: A does not care what they hold.
//!
//! What Linux 6.12 (x86_64) does, and what this module relies on:
//! - with `SPARSEMEM_EXTREME`, `mem_section` is a `struct mem_section **`
//!   (`include/linux/mmzone.h`), and VMCOREINFO prints it with
//!   `VMCOREINFO_SYMBOL_ARRAY`, that is the pointer's *value*: so
//!   `SYMBOL(mem_section)` is already the address of the array of
//!   `LENGTH(mem_section)` (`NR_SECTION_ROOTS`) root pointers; each root
//!   that is not 0 points to `PAGE_SIZE / SIZE(mem_section)` structs;
//! - section `n` covers pfns `[n << (SECTION_SIZE_BITS - 12), …)` of size
//!   `1 << (SECTION_SIZE_BITS - 12)`;
//! - `section_mem_map` holds flags in its low `SECTION_MAP_LAST_BIT` bits
//!   (4, or 5 with `CONFIG_ZONE_DEVICE`); the rest is the section's
//!   `mem_map` minus its first pfn, in `struct page` units, so the
//!   `struct page` of `pfn` is at `(section_mem_map & !0x1f) + pfn * SIZE(page)`.
//!   Masking 5 bits is right for both configurations: the encoded pointer
//!   is at least page aligned (`sparse_init_one_section` warns otherwise);
//! - a section without `SECTION_HAS_MEM_MAP` (bit 1) has no `struct page`s;
//! - a page is the head of a free block when the top byte of its 32-bit
//!   `page_type` (which shares its word with `_mapcount`) is `PGTY_buddy`,
//!   the top byte of `NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)`; the block's order
//!   is in `page.private`, and it covers `2^order` pages from that pfn,
//!   aligned to its size.
//!
//! Nothing read from A is trusted: every pfn whose `struct page` cannot be
//! read, or that lies in a section without a `mem_map`, is *not* free and
//! is counted in [`FreePages::unknown`]; a buddy mark with an impossible
//! order or a misaligned head is not taken as evidence either. Only missing
//! or impossible VMCOREINFO values make [`find_free_pages`] fail.

use core::fmt;

use crate::inspect::pagetable::{self, Mapping, PageTables, PhysRead};
use crate::inspect::vmcoreinfo::VmcoreInfo;
use crate::le;
use crate::range::PfnRange;
use crate::units::PAGE_SIZE;

/// `PAGE_SIZE` as a length.
const PAGE_LEN: usize = PAGE_SIZE as usize;
/// `PAGE_SHIFT`.
const PAGE_SHIFT: u64 = 12;
const _: () = assert!(1 << PAGE_SHIFT == PAGE_SIZE);
/// Flag bits at the bottom of `section_mem_map`: `SECTION_MAP_LAST_BIT` is
/// at most 5 in 6.12.
const SECTION_FLAG_BITS: u64 = 0x1f;
/// `SECTION_HAS_MEM_MAP`.
const SECTION_HAS_MEM_MAP: u64 = 1 << 1;
/// `MAX_PAGE_ORDER` of x86_64, used when VMCOREINFO lacks `LENGTH(zone.free_area)`.
const DEFAULT_MAX_ORDER: u64 = 10;
/// Largest `SIZE(page)` accepted (it is 64 on ordinary x86_64 kernels).
const MAX_STRUCT_PAGE: usize = 512;
/// `__PHYSICAL_MASK_SHIFT`: no x86_64 physical address is wider.
const MAX_PHYSMEM_BITS: u64 = 52;

/// Why free pages could not be looked for at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// VMCOREINFO lacks this key, or its value does not parse.
    MissingKey { key: &'static str },
    /// VMCOREINFO has this key with a value no 6.12 x86_64 kernel writes.
    BadValue { key: &'static str },
    /// A's page size is not 4 KiB.
    PageSize { size: u64 },
    /// A's page tables cannot be located.
    PageTables(pagetable::Error),
    /// A RAM range ends beyond the physical address space.
    RamBeyondPhysmem { end_pfn: u64 },
    /// The bitmap for this many pfns could not be allocated.
    OutOfMemory { pfns: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingKey { key } => write!(f, "VMCOREINFO has no valid {key}"),
            Error::BadValue { key } => write!(f, "VMCOREINFO has an unsupported {key}"),
            Error::PageSize { size } => write!(f, "A's page size is {size}, not 4096"),
            Error::PageTables(e) => write!(f, "A's page tables: {e}"),
            Error::RamBeyondPhysmem { end_pfn } => {
                write!(f, "a RAM range ends at pfn {end_pfn:#x}, beyond A's physical address space")
            }
            Error::OutOfMemory { pfns } => write!(f, "no memory for a bitmap of {pfns} pages"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::PageTables(e) => Some(e),
            _ => None,
        }
    }
}

impl From<pagetable::Error> for Error {
    fn from(e: pagetable::Error) -> Self {
        Error::PageTables(e)
    }
}

/// A's free pages: one bit per pfn below [`FreePages::max_pfn`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreePages {
    bits: Vec<u64>,
    max_pfn: u64,
    count: u64,
    unknown: u64,
}

impl FreePages {
    /// The pages `free` of `max_pfn` marked free (for tests elsewhere).
    #[cfg(test)]
    pub(crate) fn of(free: &[u64], max_pfn: u64) -> FreePages {
        let mut bits = vec![0u64; max_pfn.div_ceil(64) as usize];
        for &pfn in free.iter().filter(|&&p| p < max_pfn) {
            bits[(pfn / 64) as usize] |= 1 << (pfn % 64);
        }
        let count = bits.iter().map(|w| u64::from(w.count_ones())).sum();
        FreePages { bits, max_pfn, count, unknown: 0 }
    }

    /// Whether page `pfn` is free in A (false outside the bitmap).
    pub fn is_free(&self, pfn: u64) -> bool {
        if pfn >= self.max_pfn {
            return false;
        }
        let word = usize::try_from(pfn / 64).ok().and_then(|w| self.bits.get(w));
        word.is_some_and(|w| w & (1 << (pfn % 64)) != 0)
    }

    /// Number of free pages.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of RAM pages whose state could not be read (not free).
    pub fn unknown(&self) -> u64 {
        self.unknown
    }

    /// One past the highest pfn the bitmap covers (the end of A's RAM).
    pub fn max_pfn(&self) -> u64 {
        self.max_pfn
    }

    /// The bitmap: bit `pfn % 64` of word `pfn / 64` is set when `pfn` is free.
    pub fn bitmap(&self) -> &[u64] {
        &self.bits
    }

    /// Marks free each page that holds what A had in a free page: for each
    /// `(page, holder)` (see [`crate::inspect::kimage::RegionSources::moved`]),
    /// `holder` when `page` is free. Returns how many were not free before.
    pub fn mark_holders_of_free(&mut self, moved: impl Iterator<Item = (u64, u64)>) -> u64 {
        let mut marked = 0;
        for (page, holder) in moved {
            if self.is_free(page) && !self.is_free(holder) && holder < self.max_pfn {
                self.mark(holder, holder + 1);
                marked += 1;
            }
        }
        marked
    }

    /// Marks `[start, end)` free; `end` is at most `max_pfn`.
    fn mark(&mut self, start: u64, end: u64) {
        let mut pfn = start;
        while pfn < end {
            let bit = pfn % 64;
            let n = (64 - bit).min(end - pfn);
            let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << bit };
            if let Some(w) = usize::try_from(pfn / 64).ok().and_then(|w| self.bits.get_mut(w)) {
                self.count += u64::from((mask & !*w).count_ones());
                *w |= mask;
            }
            pfn += n;
        }
    }
}

/// What VMCOREINFO says about A's memory model, checked.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Address of the array of root pointers.
    mem_section: u64,
    /// `LENGTH(mem_section)`: entries in that array.
    roots: u64,
    /// `SIZE(mem_section)`.
    section_size: u64,
    /// `PAGE_SIZE / SIZE(mem_section)`.
    per_root: u64,
    /// `OFFSET(mem_section.section_mem_map)`.
    map_offset: u64,
    /// `SECTION_SIZE_BITS - PAGE_SHIFT`.
    pfn_section_shift: u64,
    /// First pfn beyond `MAX_PHYSMEM_BITS`.
    pfn_limit: u64,
    /// `SIZE(page)`.
    page_size: u64,
    /// `OFFSET(page._mapcount)`.
    mapcount_offset: usize,
    /// `OFFSET(page.private)`.
    private_offset: usize,
    /// Bytes of a `struct page` that are read.
    need: usize,
    /// Top byte of `page_type` for `PGTY_buddy`.
    buddy_type: u32,
    /// Highest order of a free block.
    max_order: u64,
}

fn need<T>(value: Option<T>, key: &'static str) -> Result<T, Error> {
    value.ok_or(Error::MissingKey { key })
}

fn check<T>(value: T, ok: bool, key: &'static str) -> Result<T, Error> {
    if ok {
        Ok(value)
    } else {
        Err(Error::BadValue { key })
    }
}

impl Layout {
    fn from_vmcoreinfo(info: &VmcoreInfo) -> Result<Layout, Error> {
        let page = need(info.page_size(), "PAGESIZE")?;
        if page != PAGE_SIZE {
            return Err(Error::PageSize { size: page });
        }

        let physmem_bits = match info.number("MAX_PHYSMEM_BITS") {
            None => MAX_PHYSMEM_BITS,
            Some(b) => {
                let b = u64::try_from(b).unwrap_or(0);
                check(b, (32..=MAX_PHYSMEM_BITS).contains(&b), "NUMBER(MAX_PHYSMEM_BITS)")?
            }
        };
        let section_bits = need(info.number("SECTION_SIZE_BITS"), "NUMBER(SECTION_SIZE_BITS)")?;
        let section_bits = u64::try_from(section_bits).unwrap_or(0);
        let section_bits = check(section_bits, section_bits > PAGE_SHIFT && section_bits <= physmem_bits, "NUMBER(SECTION_SIZE_BITS)")?;
        let pfn_section_shift = section_bits - PAGE_SHIFT;

        // NR_PAGE_ORDERS; the kernel refuses to build with blocks larger
        // than a section, so neither is accepted here.
        let max_order = match info.length("zone.free_area") {
            None => DEFAULT_MAX_ORDER,
            Some(n) => check(n, (1..=64).contains(&n), "LENGTH(zone.free_area)")? - 1,
        }
        .min(pfn_section_shift);

        let mem_section = need(info.symbol("mem_section"), "SYMBOL(mem_section)")?;
        let roots = need(info.length("mem_section"), "LENGTH(mem_section)")?;
        let section_size = need(info.size("mem_section"), "SIZE(mem_section)")?;
        let section_size = check(section_size, section_size.is_power_of_two() && (8..=PAGE_SIZE).contains(&section_size), "SIZE(mem_section)")?;
        let map_offset = need(info.offset("mem_section.section_mem_map"), "OFFSET(mem_section.section_mem_map)")?;
        let map_offset = check(map_offset, map_offset.checked_add(8).is_some_and(|end| end <= section_size), "OFFSET(mem_section.section_mem_map)")?;

        let page_size = need(info.size("page"), "SIZE(page)")?;
        let max_struct = u64::try_from(MAX_STRUCT_PAGE).unwrap_or(u64::MAX);
        let page_size = check(page_size, (8..=max_struct).contains(&page_size), "SIZE(page)")?;
        let field = |key: &'static str, name: &str, len: u64| -> Result<usize, Error> {
            let off = need(info.offset(name), key)?;
            let fits = off.checked_add(len).is_some_and(|end| end <= page_size);
            check(usize::try_from(off).unwrap_or(usize::MAX), fits, key)
        };
        let mapcount_offset = field("OFFSET(page._mapcount)", "page._mapcount", 4)?;
        let private_offset = field("OFFSET(page.private)", "page.private", 8)?;
        let need_bytes = (mapcount_offset + 4).max(private_offset + 8);

        // `PGTY_buddy << 24` printed as an int: its low 24 bits are zero, and
        // its top byte is above every mapcount's (0x00..0x7f) and below -1's.
        let key = "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)";
        let buddy = need(info.number("PAGE_BUDDY_MAPCOUNT_VALUE"), key)?;
        let buddy = i32::try_from(buddy).map(|v| u32::from_ne_bytes(v.to_ne_bytes())).or_else(|_| u32::try_from(buddy)).map_err(|_| Error::BadValue { key })?;
        let buddy_type = check(buddy >> 24, buddy & 0x00ff_ffff == 0 && (0x80..0xff).contains(&(buddy >> 24)), key)?;

        Ok(Layout {
            mem_section,
            roots,
            section_size,
            per_root: PAGE_SIZE / section_size,
            map_offset,
            pfn_section_shift,
            pfn_limit: 1 << (physmem_bits - PAGE_SHIFT),
            page_size,
            mapcount_offset,
            private_offset,
            need: need_bytes,
            buddy_type,
            max_order,
        })
    }
}

/// Sorted, merged, non-empty pfn ranges.
fn normalize(ram: &[PfnRange], limit: u64) -> Result<Vec<PfnRange>, Error> {
    let mut v: Vec<PfnRange> = ram.iter().filter(|r| !r.is_empty()).cloned().collect();
    if let Some(r) = v.iter().find(|r| r.end > limit) {
        return Err(Error::RamBeyondPhysmem { end_pfn: r.end });
    }
    v.sort_unstable_by_key(|r| (r.start, r.end));
    let mut out: Vec<PfnRange> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    Ok(out)
}

/// Reads A's virtual memory a page at a time: one translation per page
/// (none at all while addresses stay inside the last large page), one
/// `read_phys` per 4 KiB page, and the answer kept for the next request.
struct PageCache<'a, M: PhysRead> {
    mem: &'a M,
    tables: &'a PageTables,
    mapping: Option<Mapping>,
    /// The virtual page in `page`, and whether it could be read.
    current: Option<(u64, bool)>,
    page: Vec<u8>,
}

impl<'a, M: PhysRead> PageCache<'a, M> {
    fn new(mem: &'a M, tables: &'a PageTables) -> Self {
        PageCache { mem, tables, mapping: None, current: None, page: vec![0; PAGE_LEN] }
    }

    fn physical(&mut self, vpage: u64) -> Option<u64> {
        if let Some(p) = self.mapping.and_then(|m| m.translate(vpage)) {
            return Some(p);
        }
        let m = self.tables.mapping(self.mem, vpage).ok()?;
        self.mapping = Some(m);
        m.translate(vpage)
    }

    /// Makes `vpage` the current page; false when it cannot be read.
    fn load(&mut self, vpage: u64) -> bool {
        if let Some((v, ok)) = self.current {
            if v == vpage {
                return ok;
            }
        }
        let ok = match self.physical(vpage) {
            Some(paddr) => self.mem.read_phys(paddr, &mut self.page).is_ok(),
            None => false,
        };
        self.current = Some((vpage, ok));
        ok
    }

    /// Fills `out` from virtual address `vaddr`; false when any byte is unreadable.
    fn read(&mut self, vaddr: u64, out: &mut [u8]) -> bool {
        let mut done = 0usize;
        while done < out.len() {
            let Some(addr) = u64::try_from(done).ok().and_then(|d| vaddr.checked_add(d)) else {
                return false;
            };
            let vpage = addr & !(PAGE_SIZE - 1);
            if !self.load(vpage) {
                return false;
            }
            let off = usize::try_from(addr - vpage).unwrap_or(PAGE_LEN);
            let n = PAGE_LEN.saturating_sub(off).min(out.len() - done);
            let (Some(src), Some(dst)) = (self.page.get(off..off + n), out.get_mut(done..done + n)) else {
                return false;
            };
            dst.copy_from_slice(src);
            done += n;
        }
        true
    }
}

/// The walk over A's `mem_section` and `struct page`s.
struct Walk<'a, M: PhysRead> {
    layout: Layout,
    tables: &'a PageTables,
    mem: &'a M,
    cache: PageCache<'a, M>,
    /// The last root looked up and its pointer (None: absent or unreadable).
    last_root: Option<(u64, Option<u64>)>,
    free: FreePages,
}

impl<'a, M: PhysRead> Walk<'a, M> {
    fn read_u64(&self, vaddr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.tables.read_virt(self.mem, vaddr, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }

    fn root(&mut self, root: u64) -> Option<u64> {
        if let Some((r, p)) = self.last_root {
            if r == root {
                return p;
            }
        }
        let at = root.checked_mul(8).and_then(|o| self.layout.mem_section.checked_add(o));
        let p = at.and_then(|a| self.read_u64(a)).filter(|&p| p != 0);
        self.last_root = Some((root, p));
        p
    }

    /// The decoded `section_mem_map` of section `nr`, if it has a mem_map.
    fn section_memmap(&mut self, nr: u64) -> Option<u64> {
        let l = self.layout;
        let root = nr / l.per_root;
        if root >= l.roots {
            return None;
        }
        let base = self.root(root)?;
        let at = (nr % l.per_root).checked_mul(l.section_size).and_then(|o| base.checked_add(o)).and_then(|a| a.checked_add(l.map_offset))?;
        let map = self.read_u64(at)?;
        (map & SECTION_HAS_MEM_MAP != 0).then_some(map & !SECTION_FLAG_BITS)
    }

    /// Classifies the pfns of one RAM range `[start, end)`.
    fn range(&mut self, start: u64, end: u64) {
        let shift = self.layout.pfn_section_shift;
        let mut pfn = start;
        while pfn < end {
            let nr = pfn >> shift;
            let section_end = (nr << shift).saturating_add(1 << shift).min(end);
            pfn = match self.section_memmap(nr) {
                Some(map) => self.section(map, pfn, section_end, end),
                None => {
                    self.free.unknown += section_end - pfn;
                    section_end
                }
            };
        }
    }

    /// Reads the `struct page`s of `[pfn, section_end)`; returns where it stopped.
    fn section(&mut self, map: u64, mut pfn: u64, section_end: u64, range_end: u64) -> u64 {
        let l = self.layout;
        let mut scratch = [0u8; MAX_STRUCT_PAGE];
        let Some(buf) = scratch.get_mut(..l.need) else {
            self.free.unknown += section_end - pfn;
            return section_end;
        };
        while pfn < section_end {
            let vaddr = map.wrapping_add(pfn.wrapping_mul(l.page_size));
            if !self.cache.read(vaddr, buf) {
                self.free.unknown += 1;
                pfn += 1;
                continue;
            }
            let page_type = le::u32_at(buf, l.mapcount_offset).unwrap_or(0);
            if page_type >> 24 == l.buddy_type {
                let order = le::u64_at(buf, l.private_offset).unwrap_or(u64::MAX);
                if order <= l.max_order && pfn % (1 << order) == 0 {
                    let next = pfn + (1 << order);
                    self.free.mark(pfn, next.min(range_end));
                    pfn = next;
                    continue;
                }
            }
            pfn += 1;
        }
        pfn
    }
}

/// Finds A's free pages among `ram`, A's RAM as ranges of page frames
/// ([`PhysRange::pfns`](crate::range::PhysRange::pfns); empty ranges are
/// ignored, overlapping ones merged). `mem` reads A's physical memory.
///
/// Fails only when VMCOREINFO lacks what the walk needs or describes
/// something other than a 4 KiB-page x86_64 kernel, when `ram` reaches
/// beyond `MAX_PHYSMEM_BITS`, or when the bitmap cannot be allocated;
/// memory that cannot be read only makes pages [`FreePages::unknown`].
pub fn find_free_pages(info: &VmcoreInfo, mem: &impl PhysRead, ram: &[PfnRange]) -> Result<FreePages, Error> {
    let layout = Layout::from_vmcoreinfo(info)?;
    let tables = PageTables::from_vmcoreinfo(info)?;
    let ranges = normalize(ram, layout.pfn_limit)?;
    let max_pfn = ranges.last().map_or(0, |r| r.end);
    let words = usize::try_from(max_pfn.div_ceil(64)).map_err(|_| Error::OutOfMemory { pfns: max_pfn })?;
    let mut bits = Vec::new();
    bits.try_reserve_exact(words).map_err(|_| Error::OutOfMemory { pfns: max_pfn })?;
    bits.resize(words, 0);

    let mut walk =
        Walk { layout, tables: &tables, mem, cache: PageCache::new(mem, &tables), last_root: None, free: FreePages { bits, max_pfn, count: 0, unknown: 0 } };
    for r in ranges {
        walk.range(r.start, r.end);
    }
    Ok(walk.free)
}

#[cfg(test)]
// A's RAM is given as lists of pfn ranges: lists of one range, and empty
// or reversed ranges among the hostile inputs.
#[allow(clippy::single_range_in_vec_init, clippy::reversed_empty_ranges)]
mod tests {
    use super::*;
    use crate::inspect::pagetable::tests::FakeMem;

    const ROOT: u64 = 0x2a0e000;
    const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
    const VMEMMAP: u64 = 0xffff_ea00_0000_0000;
    /// Where section 1's mem_map is (not in the vmemmap, to test decoding).
    const MEMMAP1: u64 = 0xffff_ea00_1000_0000;
    const MEM_SECTION_PHYS: u64 = 0x3ffd_5000;
    const ROOT0_PHYS: u64 = 0x3ffd_9000;
    const MAPCOUNT_NONE: u32 = u32::MAX;
    const BUDDY: u32 = 0xf000_0000;

    fn base_text(struct_page: u64) -> String {
        format!(
            "OSRELEASE=6.12.117\nPAGESIZE=4096\nSYMBOL(mem_section)={:x}\nLENGTH(mem_section)=2048\n\
             SIZE(mem_section)=16\nOFFSET(mem_section.section_mem_map)=0\nNUMBER(SECTION_SIZE_BITS)=27\n\
             NUMBER(MAX_PHYSMEM_BITS)=46\nSIZE(page)={struct_page}\nOFFSET(page.flags)=0\n\
             OFFSET(page._mapcount)=48\nOFFSET(page.private)=40\nLENGTH(zone.free_area)=11\n\
             NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456\nNUMBER(phys_base)=0\n\
             SYMBOL(init_top_pgt)=ffffffff82a0e000\nNUMBER(pgtable_l5_enabled)=0\nKERNELOFFSET=0\n",
            PAGE_OFFSET + MEM_SECTION_PHYS
        )
    }

    /// The text with `key`'s line replaced by `key=value`, or dropped.
    fn edit(text: &str, key: &str, value: Option<&str>) -> String {
        text.lines()
            .filter_map(|l| match l.split_once('=') {
                Some((k, _)) if k == key => value.map(|v| format!("{k}={v}\n")),
                _ => Some(format!("{l}\n")),
            })
            .collect()
    }

    /// A's memory: a 1 GiB direct map at PAGE_OFFSET, the mem_section
    /// array, root 0, and struct pages for sections 0 and 1.
    struct FakeA {
        mem: FakeMem,
        pt: PageTables,
        text: String,
        struct_page: u64,
    }

    impl FakeA {
        fn new(struct_page: u64) -> Self {
            let mut mem = FakeMem::new(0x300_0000);
            mem.map(ROOT, false, PAGE_OFFSET, 0, 1 << 30, 0);
            mem.write(MEM_SECTION_PHYS, &[0; 4 * 4096]);
            mem.write(ROOT0_PHYS, &[0; 4096]);
            mem.write_u64(MEM_SECTION_PHYS, PAGE_OFFSET + ROOT0_PHYS);
            let mut a = FakeA { mem, pt: PageTables::new(ROOT, false), text: base_text(struct_page), struct_page };
            // Section 0: pfns 0..0x400 at VMEMMAP, 4 KiB pages.
            let bytes = 0x400 * struct_page;
            for i in 0..bytes.div_ceil(4096) {
                a.mem.map(ROOT, false, VMEMMAP + i * 4096, 0x1000_0000 + i * 4096, 4096, 0);
                a.mem.add_page(0x1000_0000 + i * 4096);
            }
            // Present, mem_map, online, early, and the zone-device bit.
            a.set_section(0, VMEMMAP | 0b1_0111);
            for pfn in 0..0x400 {
                a.set_page(pfn, MAPCOUNT_NONE, 0);
            }
            // Section 1: its own mem_map of 64 pages at MEMMAP1.
            for i in 0..2 {
                a.mem.map(ROOT, false, MEMMAP1 + i * 4096, 0x1100_0000 + i * 4096, 4096, 0);
                a.mem.add_page(0x1100_0000 + i * 4096);
            }
            a.set_section(1, MEMMAP1.wrapping_sub(0x8000 * struct_page) | 0b0011);
            for pfn in 0x8000..0x8040 {
                a.set_page(pfn, MAPCOUNT_NONE, 0);
            }
            a
        }

        fn info(&self) -> VmcoreInfo {
            VmcoreInfo::parse(&self.text)
        }

        fn set_section(&mut self, nr: u64, map: u64) {
            self.mem.write_u64(ROOT0_PHYS + nr * 16, map);
        }

        fn struct_page(&self, pfn: u64) -> u64 {
            let map = self.mem.read_u64(ROOT0_PHYS + (pfn >> 15) * 16) & !0x1f;
            map.wrapping_add(pfn * self.struct_page)
        }

        fn set_page(&mut self, pfn: u64, mapcount: u32, private: u64) {
            let v = self.struct_page(pfn);
            let at = self.pt.translate(&self.mem, v + 48).unwrap();
            self.mem.write(at, &mapcount.to_le_bytes());
            let at = self.pt.translate(&self.mem, v + 40).unwrap();
            self.mem.write_u64(at, private);
        }

        fn buddy(&mut self, pfn: u64, order: u64) {
            self.set_page(pfn, BUDDY, order);
        }

        /// The scene of the main test: returns the RAM and the free pfns.
        fn scene(&mut self) -> (Vec<PfnRange>, Vec<u64>) {
            self.buddy(0, 4); // outside RAM: never looked at
            self.buddy(0x10, 0);
            self.buddy(0x18, 3);
            self.buddy(0x19, 5); // a stale mark inside a free block
            self.buddy(0x20, 4);
            self.buddy(0x40, 63);
            self.buddy(0x43, 1); // misaligned
            self.set_page(0x44, 0xf500_0000, 0); // slab
            self.set_page(0x45, 0, 0); // mapped once
            self.set_page(0x46, BUDDY | 0x1234, 0); // low bits are the owner's
            self.buddy(0x47, 11); // above MAX_PAGE_ORDER
            self.buddy(0x100, 6);
            self.buddy(0x3f0, 4); // runs past the end of RAM at 0x3f8
            self.buddy(0x8000, 5);
            // Section 2: garbage; section 3: present without a mem_map.
            self.set_section(2, 0xdead_beef_dead_beef);
            self.set_section(3, 0b0001);
            let ram = vec![0x10..0x3f8, 0x8000..0x8040, 0x10000..0x10040, 0x18000..0x18100];
            let mut free = vec![0x10, 0x46];
            free.extend(0x18..0x30);
            free.extend(0x100..0x140);
            free.extend(0x3f0..0x3f8);
            free.extend(0x8000..0x8020);
            (ram, free)
        }
    }

    fn check_free(f: &FreePages, free: &[u64], max: u64) {
        for pfn in 0..max {
            assert_eq!(f.is_free(pfn), free.contains(&pfn), "pfn {pfn:#x}");
        }
        assert_eq!(f.count(), free.len() as u64);
    }

    #[test]
    fn holders_of_free_region_pages_become_free() {
        // Region pages 100..104; 100 and 102 free in A. Their contents sit
        // in 10, 12; 101's in 11 (kept); 103 is its own holder.
        let mut f = FreePages::of(&[100, 102, 13, 150], 200);
        let moved = [(100, 10), (101, 11), (102, 12), (104, 13), (150, 500)];
        assert_eq!(f.mark_holders_of_free(moved.into_iter()), 2);
        check_free(&f, &[10, 12, 13, 100, 102, 150], 200);
        // Holders beyond the bitmap are left alone; nothing is marked twice.
        assert_eq!(f.mark_holders_of_free(moved.into_iter()), 0);
    }

    #[test]
    fn finds_buddy_blocks() {
        let mut a = FakeA::new(64);
        let (ram, free) = a.scene();
        // One vmemmap page not mapped (pfns 0x140..0x180), one unreadable (0x180..0x1c0).
        let pte = a.mem.entry_addr(ROOT, false, VMEMMAP + 5 * 4096, 1);
        a.mem.write_u64(pte, 0);
        a.mem.broken.insert(0x1000_0000 + 6 * 4096);

        let f = find_free_pages(&a.info(), &a.mem, &ram).unwrap();
        assert_eq!(f.max_pfn(), 0x18100);
        assert_eq!(f.bitmap().len(), 0x18100 / 64);
        check_free(&f, &free, 0x18200);
        assert_eq!(f.unknown(), 64 + 64 + 0x40 + 0x100);
        assert!(!f.is_free(u64::MAX));
    }

    #[test]
    fn struct_pages_that_straddle_pages() {
        for size in [56, 72, 80] {
            let mut a = FakeA::new(size);
            let (ram, free) = a.scene();
            let f = find_free_pages(&a.info(), &a.mem, &ram).unwrap();
            check_free(&f, &free, 0x18200);
            assert_eq!(f.unknown(), 0x40 + 0x100, "size {size}");
        }
    }

    #[test]
    fn messy_ram_ranges() {
        let mut a = FakeA::new(64);
        let (_, free) = a.scene();
        let ram = [5..5, 10..3, 0x80..0x3f8, 0x10..0x100, 0x8000..0x8040, 0x8010..0x8020];
        let f = find_free_pages(&a.info(), &a.mem, &ram).unwrap();
        check_free(&f, &free, 0x8100);
        assert_eq!(f.unknown(), 0);
        assert_eq!(f.max_pfn(), 0x8040);
        let none = find_free_pages(&a.info(), &a.mem, &[]).unwrap();
        assert_eq!((none.count(), none.unknown(), none.max_pfn()), (0, 0, 0));
    }

    #[test]
    fn one_read_per_page_of_struct_pages() {
        // A whole section (32768 pfns, 2 MiB of struct pages) mapped by one
        // 2 MiB page, as the kernel maps its vmemmap.
        let mut a = FakeA::new(64);
        let first = 4 * 0x8000;
        a.mem.map(ROOT, false, VMEMMAP + first * 64, 0x2000_0000, 2 << 20, 0);
        a.set_section(4, VMEMMAP | 0b0011);
        for pfn in first..first + 0x8000 {
            let mapcount = if pfn % 2048 == 0 { BUDDY } else { MAPCOUNT_NONE };
            let at = 0x2000_0000 + (pfn - first) * 64;
            a.mem.write(at + 48, &mapcount.to_le_bytes());
            a.mem.write_u64(at + 40, 10);
        }
        a.mem.reads.set(0);
        let f = find_free_pages(&a.info(), &a.mem, &[first..first + 0x8000]).unwrap();
        assert_eq!((f.count(), f.unknown()), (0x4000, 0));
        assert!(f.is_free(first) && f.is_free(first + 1023) && !f.is_free(first + 1024));
        // Half the struct pages are skipped over; the rest take one read
        // per 4 KiB page (16 blocks of 17 pages), plus a handful for the
        // walks and the section.
        let reads = a.mem.reads.get();
        assert!(reads <= 16 * 17 + 12, "{reads} reads");
    }

    #[test]
    fn hostile_memory() {
        let mut a = FakeA::new(64);
        let (ram, _) = a.scene();
        let total: u64 = ram.iter().map(|r| r.end - r.start).sum();
        let all_unknown = |a: &FakeA, text: &str| {
            let f = find_free_pages(&VmcoreInfo::parse(text), &a.mem, &ram).unwrap();
            assert_eq!((f.count(), f.unknown()), (0, total), "{text}");
        };
        // No roots at all, an absent root, an unreadable root array.
        all_unknown(&a, &edit(&a.text, "LENGTH(mem_section)", Some("0")));
        all_unknown(&a, &edit(&a.text, "SYMBOL(mem_section)", Some("ffff888000000000")));
        all_unknown(&a, &edit(&a.text, "SYMBOL(mem_section)", Some("ffffc90000000000")));
        all_unknown(&a, &edit(&a.text, "SYMBOL(mem_section)", Some("fffffffffffffffc")));
        // A huge LENGTH allocates nothing and changes nothing.
        let huge = edit(&a.text, "LENGTH(mem_section)", Some("18446744073709551615"));
        let f = find_free_pages(&VmcoreInfo::parse(&huge), &a.mem, &ram).unwrap();
        assert_eq!(f.count(), 130);
        // A garbage root pointer.
        let mut b = FakeA::new(64);
        b.scene();
        b.mem.write_u64(MEM_SECTION_PHYS, 0x1234);
        all_unknown(&b, &b.text.clone());
        // Sections whose map points at the top of the address space or at
        // the mem_section array itself (garbage struct pages, no panic).
        let mut c = FakeA::new(64);
        c.set_section(0, u64::MAX);
        c.set_section(1, (PAGE_OFFSET + MEM_SECTION_PHYS).wrapping_sub(0x8000 * 64) | 2);
        let f = find_free_pages(&c.info(), &c.mem, &[0..0x400, 0x8000..0x8040]).unwrap();
        assert_eq!(f.count(), 0);
    }

    #[test]
    fn bounded_by_ram_not_by_vmcoreinfo() {
        let a = FakeA::new(64);
        let text = edit(&a.text, "NUMBER(MAX_PHYSMEM_BITS)", Some("36"));
        // All of a 36-bit space: 512 sections, 511 of them without a root.
        let f = find_free_pages(&VmcoreInfo::parse(&text), &a.mem, &[0..1 << 24]).unwrap();
        // Readable: section 0's 16 pages and section 1's two of struct pages.
        assert_eq!(f.unknown(), (1 << 24) - 0x400 - 0x80);
        assert_eq!(f.bitmap().len(), (1 << 24) / 64);
        let err = find_free_pages(&VmcoreInfo::parse(&text), &a.mem, &[0..(1 << 24) + 1]);
        assert_eq!(err, Err(Error::RamBeyondPhysmem { end_pfn: (1 << 24) + 1 }));
        let err = find_free_pages(&a.info(), &a.mem, &[0..10, u64::MAX - 1..u64::MAX]);
        assert_eq!(err, Err(Error::RamBeyondPhysmem { end_pfn: u64::MAX }));
    }

    #[test]
    fn missing_keys() {
        let a = FakeA::new(64);
        let keys = [
            "PAGESIZE",
            "SYMBOL(mem_section)",
            "LENGTH(mem_section)",
            "SIZE(mem_section)",
            "OFFSET(mem_section.section_mem_map)",
            "NUMBER(SECTION_SIZE_BITS)",
            "SIZE(page)",
            "OFFSET(page._mapcount)",
            "OFFSET(page.private)",
            "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)",
        ];
        for key in keys {
            let text = edit(&a.text, key, None);
            let got = find_free_pages(&VmcoreInfo::parse(&text), &a.mem, &[0..0x400]);
            assert_eq!(got, Err(Error::MissingKey { key }));
            assert!(got.unwrap_err().to_string().contains(key));
            let text = edit(&a.text, key, Some("zz"));
            let got = find_free_pages(&VmcoreInfo::parse(&text), &a.mem, &[0..0x400]);
            assert_eq!(got, Err(Error::MissingKey { key }));
        }
        for key in ["SYMBOL(init_top_pgt)", "NUMBER(phys_base)", "NUMBER(pgtable_l5_enabled)"] {
            let text = edit(&a.text, key, None);
            let got = find_free_pages(&VmcoreInfo::parse(&text), &a.mem, &[0..0x400]);
            assert_eq!(got, Err(Error::PageTables(pagetable::Error::MissingKey { key })));
        }
        // Optional keys.
        for key in ["NUMBER(MAX_PHYSMEM_BITS)", "LENGTH(zone.free_area)"] {
            let text = edit(&a.text, key, None);
            assert!(find_free_pages(&VmcoreInfo::parse(&text), &a.mem, &[0..0x400]).is_ok());
        }
    }

    #[test]
    fn impossible_values() {
        let a = FakeA::new(64);
        let ram = [0..0x400];
        let run = |key: &str, value: &str| find_free_pages(&VmcoreInfo::parse(&edit(&a.text, key, Some(value))), &a.mem, &ram);
        assert_eq!(run("PAGESIZE", "65536"), Err(Error::PageSize { size: 65536 }));
        assert_eq!(run("PAGESIZE", "0"), Err(Error::PageSize { size: 0 }));
        let bad = [
            ("SIZE(page)", "0"),
            ("SIZE(page)", "100000"),
            ("OFFSET(page._mapcount)", "61"),
            ("OFFSET(page._mapcount)", "18446744073709551615"),
            ("OFFSET(page.private)", "57"),
            ("SIZE(mem_section)", "24"),
            ("SIZE(mem_section)", "8192"),
            ("SIZE(mem_section)", "0"),
            ("OFFSET(mem_section.section_mem_map)", "12"),
            ("NUMBER(SECTION_SIZE_BITS)", "200"),
            ("NUMBER(SECTION_SIZE_BITS)", "12"),
            ("NUMBER(SECTION_SIZE_BITS)", "-5"),
            ("NUMBER(SECTION_SIZE_BITS)", "47"),
            ("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", "-128"),
            ("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", "0"),
            ("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", "-1"),
            ("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", "8589934592"),
            ("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", "-9223372036854775808"),
            ("NUMBER(MAX_PHYSMEM_BITS)", "99"),
            ("NUMBER(MAX_PHYSMEM_BITS)", "-46"),
            ("LENGTH(zone.free_area)", "0"),
            ("LENGTH(zone.free_area)", "1000"),
        ];
        for (key, value) in bad {
            assert_eq!(run(key, value), Err(Error::BadValue { key }), "{key}={value}");
        }
        // The same type written as an unsigned number is fine.
        assert!(run("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", "4026531840").is_ok());
        // A smaller MAX_PAGE_ORDER makes the order-6 block not free.
        let mut b = FakeA::new(64);
        let (ram, _) = b.scene();
        let text = edit(&b.text, "LENGTH(zone.free_area)", Some("6"));
        let f = find_free_pages(&VmcoreInfo::parse(&text), &b.mem, &ram).unwrap();
        assert_eq!(f.count(), 130 - 64);
    }

    #[test]
    fn bitmap_marking() {
        let mut f = FreePages { bits: vec![0; 4], max_pfn: 256, count: 0, unknown: 0 };
        f.mark(3, 130);
        f.mark(200, 256);
        f.mark(256, 300);
        assert_eq!(f.count(), 127 + 56);
        assert!(!f.is_free(2) && f.is_free(3) && f.is_free(129) && !f.is_free(130));
        assert!(f.is_free(255) && !f.is_free(256));
        assert_eq!(f.bitmap()[1], u64::MAX);
        f.mark(0, 4);
        assert_eq!(f.count(), 127 + 56 + 3);
    }
}
