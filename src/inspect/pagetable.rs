//! Translation of A's kernel virtual addresses to physical addresses by
//! walking A's own x86_64 page tables, read from A's memory.
//!
//! The walk starts at `init_top_pgt`, whose physical address follows from
//! VMCOREINFO the way the kernel's `__pa_symbol` computes it
//! (`arch/x86/include/asm/page_64.h`): `vaddr - __START_KERNEL_map + phys_base`.
//! It goes through four levels (PML4, PDPT, PD, PT) or five (PML5 first)
//! when `NUMBER(pgtable_l5_enabled)=1`, stops early at 1 GiB and 2 MiB
//! pages (PS bit), and takes physical addresses from bits 12..51 of each
//! entry (bits 30..51 and 21..51 for large pages, whose bit 12 is PAT),
//! without the NX bit and without AMD's memory-encryption bit
//! (`NUMBER(sme_mask)`).

use core::fmt;

use crate::inspect::vmcoreinfo::VmcoreInfo;
// A's page size, and the size of a page table.
use crate::range::PhysRange;
use crate::units::PAGE_SIZE;

/// Start of the kernel image mapping (`__START_KERNEL_map`).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// Bit 0 of an entry: present (`_PAGE_BIT_PRESENT`).
const PRESENT: u64 = 1 << 0;
/// Bit 7 of a PDPT or PD entry: a 1 GiB or 2 MiB page (`_PAGE_BIT_PSE`).
const PSE: u64 = 1 << 7;
/// Physical address bits (`__PHYSICAL_MASK_SHIFT` is 52).
const PHYS_MASK: u64 = (1 << 52) - 1;
/// Entries per table.
const ENTRIES: u64 = 512;

/// Reads A's physical memory.
pub trait PhysRead {
    /// Fills `buf` from physical address `paddr`; Err when any byte is not available.
    fn read_phys(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable>;
}

/// A physical range that could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// Where the unreadable range starts.
    pub paddr: u64,
}

/// Why a page-table root could not be found or an address not translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// VMCOREINFO lacks this key, or its value does not parse.
    MissingKey {
        /// The VMCOREINFO key.
        key: &'static str,
    },
    /// VMCOREINFO has this key with a value that cannot be right.
    BadValue {
        /// The VMCOREINFO key.
        key: &'static str,
    },
    /// The address is not canonical for the number of levels.
    NonCanonical {
        /// The virtual address of A.
        vaddr: u64,
    },
    /// The entry for `vaddr` at this level (5 = PML5 … 1 = PT) is not present.
    NotPresent {
        /// The virtual address of A being translated.
        vaddr: u64,
        /// The page-table level, 5 (PML5) to 1 (PT).
        level: u8,
    },
    /// The entry for `vaddr` at this level has the PS bit where x86 reserves it.
    BadEntry {
        /// The virtual address of A being translated.
        vaddr: u64,
        /// The page-table level: 5 (PML5) or 4 (PML4), where PS is reserved.
        level: u8,
    },
    /// A page-table entry for `vaddr` lies in memory that could not be read.
    Unreadable {
        /// The virtual address of A being translated.
        vaddr: u64,
        /// The physical address that could not be read.
        paddr: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingKey { key } => write!(f, "VMCOREINFO has no valid {key}"),
            Error::BadValue { key } => write!(f, "VMCOREINFO has an impossible {key}"),
            Error::NonCanonical { vaddr } => write!(f, "{vaddr:#x} is not a canonical address"),
            Error::NotPresent { vaddr, level } => {
                write!(f, "{vaddr:#x} is not mapped (level-{level} entry not present)")
            }
            Error::BadEntry { vaddr, level } => {
                write!(f, "{vaddr:#x}: level-{level} entry has a reserved bit set")
            }
            Error::Unreadable { vaddr, paddr } => {
                write!(f, "{vaddr:#x}: page table at {paddr:#x} cannot be read")
            }
        }
    }
}

impl std::error::Error for Error {}

/// One page of A's virtual address space and where it is in physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First virtual address of the page.
    pub vaddr: u64,
    /// First physical address of the page.
    pub paddr: u64,
    /// 4 KiB, 2 MiB or 1 GiB.
    pub size: u64,
}

impl Mapping {
    /// The physical address of `vaddr` when this page holds it.
    pub fn translate(&self, vaddr: u64) -> Option<u64> {
        let off = vaddr.checked_sub(self.vaddr)?;
        if off < self.size {
            self.paddr.checked_add(off)
        } else {
            None
        }
    }
}

/// A's kernel page tables: where the top table is, and how many levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageTables {
    root: u64,
    five_level: bool,
    /// Bits to clear from every entry before taking an address from it.
    sme_mask: u64,
}

/// The physical address of a symbol in the kernel image mapping
/// (`__phys_addr_symbol`): `vaddr - __START_KERNEL_map + phys_base`.
/// `None` below the mapping or on overflow.
pub fn kernel_symbol_to_phys(vaddr: u64, phys_base: u64) -> Option<u64> {
    vaddr.checked_sub(START_KERNEL_MAP)?.checked_add(phys_base)
}

impl PageTables {
    /// Tables whose top level is at physical address `root` (page aligned;
    /// lower bits are dropped).
    pub fn new(root: u64, five_level: bool) -> PageTables {
        PageTables { root: root & PHYS_MASK & !(PAGE_SIZE - 1), five_level, sme_mask: 0 }
    }

    /// A's tables as VMCOREINFO describes them: `SYMBOL(init_top_pgt)`,
    /// `NUMBER(phys_base)`, `NUMBER(pgtable_l5_enabled)` and, when present,
    /// `NUMBER(sme_mask)`.
    pub fn from_vmcoreinfo(info: &VmcoreInfo) -> Result<PageTables, Error> {
        let top = info.symbol("init_top_pgt").ok_or(Error::MissingKey { key: "SYMBOL(init_top_pgt)" })?;
        let phys_base = info.number("phys_base").ok_or(Error::MissingKey { key: "NUMBER(phys_base)" })?;
        let phys_base = u64::try_from(phys_base).map_err(|_| Error::BadValue { key: "NUMBER(phys_base)" })?;
        let five_level = match info.number("pgtable_l5_enabled") {
            Some(0) => false,
            Some(1) => true,
            Some(_) => return Err(Error::BadValue { key: "NUMBER(pgtable_l5_enabled)" }),
            None => return Err(Error::MissingKey { key: "NUMBER(pgtable_l5_enabled)" }),
        };
        let root =
            kernel_symbol_to_phys(top, phys_base).filter(|r| r % PAGE_SIZE == 0 && *r <= PHYS_MASK).ok_or(Error::BadValue { key: "SYMBOL(init_top_pgt)" })?;
        // `%ld` of an unsigned long: the bits are what matter.
        let sme_mask = info.number("sme_mask").map_or(0, |m| u64::from_ne_bytes(m.to_ne_bytes()));
        Ok(PageTables { root, five_level, sme_mask })
    }

    /// Physical address of the top-level table.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Whether the tables have five levels.
    pub fn five_level(&self) -> bool {
        self.five_level
    }

    /// The physical address of `vaddr`.
    pub fn translate(&self, mem: &impl PhysRead, vaddr: u64) -> Result<u64, Error> {
        let m = self.mapping(mem, vaddr)?;
        // The walk builds `m` to hold `vaddr`; a `None` here cannot happen.
        m.translate(vaddr).ok_or(Error::NonCanonical { vaddr })
    }

    /// The page (4 KiB, 2 MiB or 1 GiB) that maps `vaddr`. Callers that
    /// translate many nearby addresses keep it and walk again only for
    /// addresses outside it.
    pub fn mapping(&self, mem: &impl PhysRead, vaddr: u64) -> Result<Mapping, Error> {
        // Bits above the top index must copy the top index's highest bit.
        let top_bit: u32 = if self.five_level { 56 } else { 47 };
        let high = vaddr >> top_bit;
        if high != 0 && high != (u64::MAX >> top_bit) {
            return Err(Error::NonCanonical { vaddr });
        }
        let first_shift: u32 = if self.five_level { 48 } else { 39 };
        let mut table = self.root;
        let mut shift = first_shift;
        loop {
            let level = u8::try_from((shift - 12) / 9 + 1).unwrap_or(0);
            let index = (vaddr >> shift) & (ENTRIES - 1);
            let at = table | (index * 8);
            let mut raw = [0u8; 8];
            mem.read_phys(at, &mut raw).map_err(|e| Error::Unreadable { vaddr, paddr: e.paddr })?;
            let entry = u64::from_le_bytes(raw);
            if entry & PRESENT == 0 {
                return Err(Error::NotPresent { vaddr, level });
            }
            let entry = entry & !self.sme_mask;
            let size = 1u64 << shift;
            if shift == 12 || (entry & PSE != 0 && (shift == 21 || shift == 30)) {
                let paddr = entry & PHYS_MASK & !(size - 1);
                return Ok(Mapping { vaddr: vaddr & !(size - 1), paddr, size });
            }
            if entry & PSE != 0 {
                return Err(Error::BadEntry { vaddr, level });
            }
            table = entry & PHYS_MASK & !(PAGE_SIZE - 1);
            shift -= 9;
        }
    }

    /// Fills `buf` from A's virtual address `vaddr`, translating each page
    /// it touches (so a range that crosses a page boundary is read right).
    pub fn read_virt(&self, mem: &impl PhysRead, vaddr: u64, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = u64::try_from(done).ok().and_then(|d| vaddr.checked_add(d)).ok_or(Error::NonCanonical { vaddr })?;
            let m = self.mapping(mem, addr)?;
            let paddr = m.translate(addr).ok_or(Error::NonCanonical { vaddr: addr })?;
            let left_in_page = m.size - (addr - m.vaddr);
            let n = usize::try_from(left_in_page).unwrap_or(usize::MAX).min(buf.len() - done);
            let Some(part) = buf.get_mut(done..done + n) else { break };
            mem.read_phys(paddr, part).map_err(|e| Error::Unreadable { vaddr: addr, paddr: e.paddr })?;
            done += n;
        }
        Ok(())
    }
}

/// Where the kernel half of the address space starts: the lowest
/// canonical address with the top bit set, under four or five levels.
fn kernel_half(five_level: bool) -> u64 {
    if five_level {
        0xff00_0000_0000_0000
    } else {
        0xffff_8000_0000_0000
    }
}

/// The span of one entry at `level` (1 = PT … 5 = PML5).
fn entry_span(level: u8) -> u64 {
    1u64 << (12 + 9 * u32::from(level.clamp(1, 5) - 1))
}

impl PageTables {
    /// Where A's direct map of physical memory starts (`PAGE_OFFSET`;
    /// `page_offset_base` when KASLR moves it): the lowest 1 GiB-aligned
    /// address of the kernel half below `limit` that maps physical address
    /// 0, and maps each of `checks` (physical addresses) at that base plus
    /// the address. KASLR moves the direct map in 1 GiB steps
    /// (`arch/x86/mm/kaslr.c`), and the kernel always maps the first MiB of
    /// physical memory there (`init_mem_mapping`). What lies below it in
    /// the kernel half (the guard hole, the LDT remap) maps no physical 0.
    /// `None` when no address qualifies.
    pub fn direct_map_base(&self, mem: &impl PhysRead, limit: u64, checks: &[u64]) -> Option<u64> {
        const GIB: u64 = 1 << 30;
        let mut v = kernel_half(self.five_level);
        while v < limit {
            let step = match self.translate(mem, v) {
                Ok(0) if checks.iter().all(|&p| v.checked_add(p).is_some_and(|va| self.translate(mem, va) == Ok(p))) => return Some(v),
                // Nothing mapped under this entry: on to the next one.
                Err(Error::NotPresent { level, .. }) => entry_span(level).max(GIB),
                _ => GIB,
            };
            match (v | (step - 1)).checked_add(1) {
                Some(next) => v = next,
                None => break,
            }
        }
        None
    }
}

/// A's direct-map base ([`PageTables::direct_map_base`]) as VMCOREINFO's
/// tables show it: searched below `NUMBER(VMALLOC_START)` (the vmalloc
/// area follows the direct map, KASLR or not), or below the kernel image
/// when that is missing, and checked at the first page of each range of
/// `ram` too. `Ok(None)` when the tables map no such base.
pub fn find_direct_map(info: &VmcoreInfo, mem: &impl PhysRead, ram: &[PhysRange]) -> Result<Option<u64>, Error> {
    let pt = PageTables::from_vmcoreinfo(info)?;
    let limit = info.number("VMALLOC_START").map_or(START_KERNEL_MAP, |n| u64::from_ne_bytes(n.to_ne_bytes())).min(START_KERNEL_MAP);
    let checks: Vec<u64> = ram.iter().filter_map(|r| r.start.checked_next_multiple_of(PAGE_SIZE).filter(|&p| r.contains(p))).collect();
    Ok(pt.direct_map_base(mem, limit, &checks))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::{HashMap, HashSet};

    /// A's physical memory for tests: pages that exist, and counters.
    #[derive(Default)]
    pub struct FakeMem {
        pages: HashMap<u64, Box<[u8; 4096]>>,
        /// Pages that exist but whose reads fail.
        pub broken: HashSet<u64>,
        /// Where the next page table comes from.
        next_table: u64,
        /// Calls of `read_phys`.
        pub reads: Cell<u64>,
    }

    impl PhysRead for FakeMem {
        fn read_phys(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
            self.reads.set(self.reads.get() + 1);
            for (i, b) in buf.iter_mut().enumerate() {
                let a = paddr.checked_add(i as u64).ok_or(Unreadable { paddr })?;
                let page = a & !0xfff;
                if self.broken.contains(&page) {
                    return Err(Unreadable { paddr: a });
                }
                let p = self.pages.get(&page).ok_or(Unreadable { paddr: a })?;
                *b = p[(a & 0xfff) as usize];
            }
            Ok(())
        }
    }

    impl FakeMem {
        /// Memory whose page tables are allocated from `table_pool` upwards.
        pub fn new(table_pool: u64) -> Self {
            FakeMem { next_table: table_pool, ..Default::default() }
        }

        /// Makes the page holding `paddr` exist (zero-filled).
        pub fn add_page(&mut self, paddr: u64) {
            self.pages.entry(paddr & !0xfff).or_insert_with(|| Box::new([0; 4096]));
        }

        /// Writes bytes, creating pages as needed.
        pub fn write(&mut self, paddr: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                let a = paddr + i as u64;
                self.add_page(a);
                self.pages.get_mut(&(a & !0xfff)).unwrap()[(a & 0xfff) as usize] = *b;
            }
        }

        /// Writes a little-endian u64.
        pub fn write_u64(&mut self, paddr: u64, v: u64) {
            self.write(paddr, &v.to_le_bytes());
        }

        /// Reads a little-endian u64.
        pub fn read_u64(&self, paddr: u64) -> u64 {
            let mut b = [0; 8];
            self.read_phys(paddr, &mut b).unwrap();
            u64::from_le_bytes(b)
        }

        fn new_table(&mut self) -> u64 {
            let t = self.next_table;
            self.next_table += 4096;
            self.add_page(t);
            t
        }

        /// Maps `vaddr` to `paddr` with a page of `size` (4 KiB, 2 MiB or
        /// 1 GiB) under the tables at `root`, adding tables as needed.
        /// `extra` bits are ORed into the last entry.
        pub fn map(&mut self, root: u64, five: bool, vaddr: u64, paddr: u64, size: u64, extra: u64) {
            self.add_page(root);
            let mut table = root;
            let mut shift = if five { 48 } else { 39 };
            let leaf_shift = size.trailing_zeros();
            while shift > leaf_shift {
                let at = table + ((vaddr >> shift) & 511) * 8;
                let e = self.read_u64(at);
                table = if e & PRESENT != 0 {
                    e & PHYS_MASK & !0xfff
                } else {
                    let t = self.new_table();
                    self.write_u64(at, t | 0x63);
                    t
                };
                shift -= 9;
            }
            let ps = if size > 4096 { PSE } else { 0 };
            let at = table + ((vaddr >> shift) & 511) * 8;
            self.write_u64(at, paddr | ps | 0x63 | extra);
        }

        /// The physical address of the entry for `vaddr` at `level`.
        pub fn entry_addr(&self, root: u64, five: bool, vaddr: u64, level: u32) -> u64 {
            let top = if five { 5 } else { 4 };
            let mut table = root;
            for l in (level + 1..=top).rev() {
                let shift = 12 + 9 * (l - 1);
                table = self.read_u64(table + ((vaddr >> shift) & 511) * 8) & PHYS_MASK & !0xfff;
            }
            table + ((vaddr >> (12 + 9 * (level - 1))) & 511) * 8
        }
    }

    const ROOT: u64 = 0x2a0e000;
    const NX: u64 = 1 << 63;

    fn tables() -> (FakeMem, PageTables) {
        (FakeMem::new(0x100_0000), PageTables::new(ROOT, false))
    }

    #[test]
    fn four_kib_pages() {
        let (mut mem, pt) = tables();
        let v = 0xffff_c900_0123_4000;
        mem.map(ROOT, false, v, 0x7654_3000, 4096, NX);
        assert_eq!(pt.translate(&mem, v + 0x123), Ok(0x7654_3123));
        assert_eq!(pt.mapping(&mem, v + 5), Ok(Mapping { vaddr: v, paddr: 0x7654_3000, size: 4096 }));
        // The neighbour shares every table but the last entry.
        assert_eq!(pt.translate(&mem, v + 4096), Err(Error::NotPresent { vaddr: v + 4096, level: 1 }));
    }

    #[test]
    fn two_mib_pages_ignore_pat_and_nx() {
        let (mut mem, pt) = tables();
        let v = 0xffff_ea00_0020_0000;
        // Bit 12 is PAT in a large-page entry, not an address bit.
        mem.map(ROOT, false, v, 0x1_2340_0000, 2 << 20, NX | (1 << 12));
        assert_eq!(pt.translate(&mem, v + 0x1_2345), Ok(0x1_2341_2345));
        assert_eq!(pt.mapping(&mem, v + 0x1f_ffff).unwrap().size, 2 << 20);
    }

    #[test]
    fn one_gib_pages() {
        let (mut mem, pt) = tables();
        let v = 0xffff_8880_0000_0000;
        mem.map(ROOT, false, v, 0, 1 << 30, 0);
        mem.map(ROOT, false, v + (1 << 30), 0x4000_0000, 1 << 30, NX | (1 << 12));
        assert_eq!(pt.translate(&mem, v + 0x3fff_ffff), Ok(0x3fff_ffff));
        assert_eq!(pt.translate(&mem, v + 0x4000_1234), Ok(0x4000_1234));
    }

    #[test]
    fn five_levels() {
        let mut mem = FakeMem::new(0x100_0000);
        let pt = PageTables::new(ROOT, true);
        let v = 0xff11_0000_0000_0000u64 + 0x5000;
        mem.map(ROOT, true, v, 0xabc_d000, 4096, 0);
        assert_eq!(pt.translate(&mem, v + 8), Ok(0xabc_d008));
        // Under four levels the same address is not canonical.
        assert_eq!(PageTables::new(ROOT, false).translate(&mem, v), Err(Error::NonCanonical { vaddr: v }));
        // A 57-bit address that is not canonical.
        let bad = 0x0100_0000_0000_0000;
        assert_eq!(pt.translate(&mem, bad), Err(Error::NonCanonical { vaddr: bad }));
    }

    #[test]
    fn not_present_at_each_level() {
        for level in 1..=4u32 {
            let (mut mem, pt) = tables();
            let v = 0xffff_ffff_8100_0000;
            mem.map(ROOT, false, v, 0x100_0000, 4096, 0);
            let at = mem.entry_addr(ROOT, false, v, level);
            let e = mem.read_u64(at);
            mem.write_u64(at, e & !PRESENT);
            assert_eq!(pt.translate(&mem, v), Err(Error::NotPresent { vaddr: v, level: level as u8 }), "level {level}");
        }
    }

    #[test]
    fn ps_bit_where_reserved() {
        let (mut mem, pt) = tables();
        let v = 0xffff_ffff_8100_0000;
        mem.map(ROOT, false, v, 0x100_0000, 4096, 0);
        let at = mem.entry_addr(ROOT, false, v, 4);
        let e = mem.read_u64(at);
        mem.write_u64(at, e | PSE);
        assert_eq!(pt.translate(&mem, v), Err(Error::BadEntry { vaddr: v, level: 4 }));
    }

    #[test]
    fn unreadable_tables() {
        let (mut mem, pt) = tables();
        let v = 0xffff_ffff_8100_0000;
        mem.map(ROOT, false, v, 0x100_0000, 4096, 0);
        let at = mem.entry_addr(ROOT, false, v, 2);
        mem.broken.insert(at & !0xfff);
        assert_eq!(pt.translate(&mem, v), Err(Error::Unreadable { vaddr: v, paddr: at }));
        // A root outside memory.
        let nowhere = PageTables::new(0x7000_0000_0000, false);
        assert!(matches!(nowhere.translate(&mem, v), Err(Error::Unreadable { .. })));
        // Entries full of ones.
        let mut ones = FakeMem::new(0x100_0000);
        ones.write(ROOT, &[0xff; 4096]);
        assert_eq!(pt.translate(&ones, v), Err(Error::BadEntry { vaddr: v, level: 4 }));
    }

    #[test]
    fn from_vmcoreinfo() {
        let info = VmcoreInfo::parse(crate::inspect::vmcoreinfo::tests::SAMPLE);
        let pt = PageTables::from_vmcoreinfo(&info).unwrap();
        assert_eq!((pt.root(), pt.five_level()), (0x2a0e000, false));

        let relocated = "SYMBOL(init_top_pgt)=ffffffff9da0e000\nNUMBER(phys_base)=1073741824\n\
            NUMBER(pgtable_l5_enabled)=1\nNUMBER(sme_mask)=140737488355328\n";
        let pt = PageTables::from_vmcoreinfo(&VmcoreInfo::parse(relocated)).unwrap();
        assert_eq!((pt.root(), pt.five_level()), (0x1da0e000 + 0x4000_0000, true));
        assert_eq!(pt.sme_mask, 1 << 47);

        let cases: [(&str, Error); 7] = [
            ("NUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\n", Error::MissingKey { key: "SYMBOL(init_top_pgt)" }),
            ("SYMBOL(init_top_pgt)=ffffffff82a0e000\nNUMBER(pgtable_l5_enabled)=0\n", Error::MissingKey { key: "NUMBER(phys_base)" }),
            ("SYMBOL(init_top_pgt)=ffffffff82a0e000\nNUMBER(phys_base)=0\n", Error::MissingKey { key: "NUMBER(pgtable_l5_enabled)" }),
            (
                "SYMBOL(init_top_pgt)=ffffffff82a0e000\nNUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=2\n",
                Error::BadValue { key: "NUMBER(pgtable_l5_enabled)" },
            ),
            ("SYMBOL(init_top_pgt)=ffffffff82a0e000\nNUMBER(phys_base)=-1\nNUMBER(pgtable_l5_enabled)=0\n", Error::BadValue { key: "NUMBER(phys_base)" }),
            ("SYMBOL(init_top_pgt)=ffff888002a0e000\nNUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\n", Error::BadValue { key: "SYMBOL(init_top_pgt)" }),
            ("SYMBOL(init_top_pgt)=ffffffff82a0e008\nNUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\n", Error::BadValue { key: "SYMBOL(init_top_pgt)" }),
        ];
        for (text, want) in cases {
            assert_eq!(PageTables::from_vmcoreinfo(&VmcoreInfo::parse(text)), Err(want), "{text}");
        }
        let huge = "SYMBOL(init_top_pgt)=ffffffffffffffff\nNUMBER(phys_base)=9223372036854775807\nNUMBER(pgtable_l5_enabled)=0\n";
        assert!(PageTables::from_vmcoreinfo(&VmcoreInfo::parse(huge)).is_err());
    }

    #[test]
    fn sme_bit_is_not_an_address_bit() {
        let (mut mem, mut pt) = tables();
        pt.sme_mask = 1 << 47;
        let v = 0xffff_8880_0000_0000;
        // Tables written with the C-bit set, as an SME kernel writes them.
        mem.map(ROOT, false, v, 0x5000 | (1 << 47), 4096, 0);
        assert_eq!(pt.translate(&mem, v + 1), Ok(0x5001));
        // Without the mask the C-bit would read as an address bit.
        assert_eq!(PageTables::new(ROOT, false).translate(&mem, v + 1), Ok(0x5001 | (1 << 47)));
    }

    #[test]
    fn kernel_symbols() {
        assert_eq!(kernel_symbol_to_phys(0xffffffff82a0e000, 0), Some(0x2a0e000));
        assert_eq!(kernel_symbol_to_phys(0xffffffff81000000, 0x1000_0000), Some(0x1100_0000));
        assert_eq!(kernel_symbol_to_phys(0xffff888000000000, 0), None);
        assert_eq!(kernel_symbol_to_phys(u64::MAX, u64::MAX), None);
    }

    #[test]
    fn reads_across_pages() {
        let (mut mem, pt) = tables();
        let v = 0xffff_c900_0000_0000;
        // Two virtually adjacent pages, physically apart and reversed.
        mem.map(ROOT, false, v, 0x9000, 4096, 0);
        mem.map(ROOT, false, v + 4096, 0x3000, 4096, 0);
        mem.write(0x9ffc, &[1, 2, 3, 4]);
        mem.write(0x3000, &[5, 6, 7, 8]);
        let mut buf = [0u8; 8];
        pt.read_virt(&mem, v + 4092, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(pt.read_virt(&mem, v + 8188, &mut buf), Err(Error::NotPresent { vaddr: v + 8192, level: 1 }));
        // The last page of the address space: the read runs off its end.
        mem.map(ROOT, false, !0xfff, 0xa000, 4096, 0);
        mem.add_page(0xa000);
        assert_eq!(pt.read_virt(&mem, u64::MAX - 2, &mut buf), Err(Error::NonCanonical { vaddr: u64::MAX - 2 }));
        pt.read_virt(&mem, 0, &mut []).unwrap();
    }

    /// A's direct map at its default place, at places KASLR may choose,
    /// and at the end of its range, among mappings that look like it.
    #[test]
    fn finds_the_direct_map_wherever_kaslr_put_it() {
        let ram = [PhysRange::new(0x1000, 0x9fc00), PhysRange::new(0x10_0000, 0x4000_0000), PhysRange::new(0x1_0000_0000, 0x1_0020_0000)];
        let checks = [0x1000, 0x10_0000, 0x1_0000_0000];
        for base in [0xffff_8880_0000_0000u64, 0xffff_9a3c_4000_0000, 0xffff_c7ff_c000_0000] {
            let (mut mem, pt) = tables();
            // The LDT remap (a page that is not physical 0), an alias of
            // physical 0 alone, and the kernel image (physical 0 as well
            // here, but above the limit).
            mem.map(ROOT, false, 0xffff_8800_0000_0000, 0x5000, 4096, 0);
            mem.map(ROOT, false, 0xffff_8840_0000_0000, 0, 4096, 0);
            mem.map(ROOT, false, START_KERNEL_MAP, 0, 2 << 20, 0);
            mem.map(ROOT, false, base, 0, 1 << 30, 0);
            mem.map(ROOT, false, base + (4 << 30), 4 << 30, 2 << 20, 0);
            assert_eq!(pt.direct_map_base(&mem, START_KERNEL_MAP, &checks), Some(base), "{base:#x}");
            // A few thousand reads at most: empty entries are skipped whole.
            assert!(mem.reads.get() < 20_000, "{} reads", mem.reads.get());
            // Below the limit only; and every check must hold.
            assert_eq!(pt.direct_map_base(&mem, base, &checks), None);
            assert_eq!(pt.direct_map_base(&mem, START_KERNEL_MAP, &[0x2_0000_0000]), None);
            // The same through VMCOREINFO, without VMALLOC_START.
            let info = VmcoreInfo::parse("SYMBOL(init_top_pgt)=ffffffff82a0e000\nNUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\n");
            assert_eq!(find_direct_map(&info, &mem, &ram), Ok(Some(base)));
        }
        // Five levels: the kernel half starts lower.
        let mut mem = FakeMem::new(0x100_0000);
        let pt = PageTables::new(ROOT, true);
        let base = 0xff11_0000_0000_0000;
        mem.map(ROOT, true, base, 0, 1 << 30, 0);
        assert_eq!(pt.direct_map_base(&mem, START_KERNEL_MAP, &[0x1000]), Some(base));
        // No tables at all, and tables that cannot be read.
        let (mem, pt) = tables();
        assert_eq!(pt.direct_map_base(&mem, START_KERNEL_MAP, &[]), None);
        let mut mem = FakeMem::new(0x100_0000);
        mem.map(ROOT, false, 0xffff_8880_0000_0000, 0, 1 << 30, 0);
        mem.broken.insert(ROOT);
        assert_eq!(tables().1.direct_map_base(&mem, START_KERNEL_MAP, &[]), None);
        assert_eq!(find_direct_map(&VmcoreInfo::parse(""), &mem, &ram), Err(Error::MissingKey { key: "SYMBOL(init_top_pgt)" }));
    }
}
