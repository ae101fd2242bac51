//! A's physical memory map, read from `/proc/iomem`, and the two places in
//! it that kjump needs: the *kjump region* where B runs, and A's low memory
//! (below 1 MiB) that B overwrites and the purgatory backs up.

use core::fmt;

use crate::load::e820::{Kind, Range};
use crate::range::PhysRange;
use crate::units::{align_down, align_up, MIB, PAGE_SIZE};

/// Most ranges a map may hold; `boot_params` itself holds 128.
pub const MAX_RANGES: usize = 128;

/// The region's start and end are aligned to this (huge-page size, and the
/// usual kernel alignment).
pub const REGION_ALIGN: u64 = 2 * MIB;

/// Where the region must lie: below 4 GiB, since `boot_params` addresses
/// the initrd and command line with 32 bits.
const REGION_LIMIT: u64 = 1 << 32;

/// Why a memory map was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A line of `/proc/iomem` that is not `start-end : name`.
    BadLine { line: usize },
    /// `end` before `start`, or ranges out of order or overlapping.
    BadRange { line: usize },
    /// All addresses read as zero: `/proc/iomem` hides them from non-root.
    AddressesHidden,
    /// More ranges than fit in `boot_params`.
    TooManyRanges,
    /// No RAM at all in the map.
    NoRam,
    /// No RAM range below 4 GiB can hold a region of this size.
    NoRoomForRegion { size: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadLine { line } => write!(f, "/proc/iomem line {line} is not 'start-end : name'"),
            Error::BadRange { line } => write!(f, "/proc/iomem line {line} has a bad or overlapping range"),
            Error::AddressesHidden => f.write_str("/proc/iomem shows no addresses (run as root)"),
            Error::TooManyRanges => write!(f, "more than {MAX_RANGES} memory ranges"),
            Error::NoRam => f.write_str("no System RAM in /proc/iomem"),
            Error::NoRoomForRegion { size } => write!(f, "no RAM range below 4 GiB can hold a {} MiB kjump region (try a smaller --region-size)", size / MIB),
        }
    }
}

impl std::error::Error for Error {}

/// A's physical memory map: firmware ranges in address order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryMap {
    ranges: heapless::Vec<Range, MAX_RANGES>,
}

/// Where B runs: 2 MiB aligned, inside one RAM range of A.
pub type Region = PhysRange;

fn kind_of(name: &str) -> Option<Kind> {
    match name {
        "System RAM" => Some(Kind::Ram),
        "Reserved" | "reserved" => Some(Kind::Reserved),
        "ACPI Tables" => Some(Kind::Acpi),
        "ACPI Non-volatile Storage" => Some(Kind::Nvs),
        "Unusable memory" => Some(Kind::Unusable),
        _ => None,
    }
}

impl MemoryMap {
    /// Builds a map from ranges; they must be sorted and not overlap.
    pub fn from_ranges(ranges: &[Range]) -> Result<Self, Error> {
        let mut map = MemoryMap::default();
        for (i, r) in ranges.iter().enumerate() {
            map.push(*r, i + 1)?;
        }
        Ok(map)
    }

    fn push(&mut self, r: Range, line: usize) -> Result<(), Error> {
        if r.is_empty() || self.ranges.last().is_some_and(|last| last.end > r.start) {
            return Err(Error::BadRange { line });
        }
        self.ranges.push(r).map_err(|_| Error::TooManyRanges)
    }

    /// Parses the text of `/proc/iomem`. Only top-level lines count; RAM,
    /// reserved and ACPI ranges are kept, device windows are not.
    pub fn parse_iomem(text: &str) -> Result<Self, Error> {
        let mut map = MemoryMap::default();
        let mut any_address = false;
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            if line.is_empty() || line.starts_with(' ') {
                continue;
            }
            let (span, name) = line.split_once(" : ").ok_or(Error::BadLine { line: line_no })?;
            let (a, b) = span.split_once('-').ok_or(Error::BadLine { line: line_no })?;
            let start = u64::from_str_radix(a, 16).map_err(|_| Error::BadLine { line: line_no })?;
            let last = u64::from_str_radix(b, 16).map_err(|_| Error::BadLine { line: line_no })?;
            if start != 0 || last != 0 {
                any_address = true;
            }
            let Some(kind) = kind_of(name.trim()) else { continue };
            if last < start || last == u64::MAX {
                return Err(Error::BadRange { line: line_no });
            }
            map.push(Range { start, end: last + 1, kind }, line_no)?;
        }
        if !any_address {
            return Err(Error::AddressesHidden);
        }
        if !map.ranges.iter().any(|r| r.kind == Kind::Ram) {
            return Err(Error::NoRam);
        }
        Ok(map)
    }

    /// Reads `/proc/iomem` of the running kernel.
    pub fn read() -> Result<Self, crate::Error> {
        let text = std::fs::read_to_string("/proc/iomem").map_err(|e| crate::Error::io("reading /proc/iomem", e))?;
        Ok(Self::parse_iomem(&text)?)
    }

    /// All ranges in address order.
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// The RAM ranges.
    pub fn ram(&self) -> impl DoubleEndedIterator<Item = &Range> + '_ {
        self.ranges.iter().filter(|r| r.kind == Kind::Ram)
    }

    /// The RAM at or above `floor` outside `region`, in address order.
    pub fn ram_outside(&self, region: Region, floor: u64) -> impl Iterator<Item = PhysRange> + '_ {
        self.ram().flat_map(move |r| PhysRange::new(r.start.max(floor), r.end).minus(&region).into_iter().flatten())
    }

    /// Total RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram().map(Range::len).sum()
    }

    /// The end of A's low memory: the page-aligned end of the RAM below
    /// 1 MiB. B runs its real-mode trampoline there, so the purgatory copies
    /// `[0, low_memory_end)` aside before B starts.
    pub fn low_memory_end(&self) -> u64 {
        let end = self.ram().filter(|r| r.start < MIB).map(|r| r.end.min(MIB)).max().unwrap_or(0);
        align_up(end, PAGE_SIZE).unwrap_or(MIB).min(MIB)
    }

    /// Chooses the kjump region: `size` bytes (rounded up to 2 MiB) in the
    /// middle of the largest RAM range below 4 GiB, above 16 MiB.
    ///
    /// The middle, because A's early boot allocations (page tables, the
    /// `struct page` arrays, `mem_section`) come from the top of memory and
    /// its kernel image sits near the bottom: while B runs, A's pages in the
    /// region live elsewhere (the kexec swap), so B can read A's memory
    /// metadata directly only where it is not in the region. The choice
    /// depends only on the map and the size, so B and D get the same one.
    ///
    /// Near the middle, a start that is a power of two is taken where one
    /// fits: a boot loader can then start D straight at the region (see
    /// [`crate::host::boot_entry`]).
    pub fn choose_region(&self, size: u64) -> Result<Region, Error> {
        let size = align_up(size, REGION_ALIGN).ok_or(Error::NoRoomForRegion { size })?;
        let usable = |r: &Range| {
            let start = align_up(r.start.max(16 * MIB), REGION_ALIGN)?;
            let end = align_down(r.end.min(REGION_LIMIT), REGION_ALIGN);
            PhysRange::non_empty(start, end).filter(|u| u.len() >= size)
        };
        let best = self.ram().filter_map(usable).max_by_key(|u| (u.len(), u.start)).ok_or(Error::NoRoomForRegion { size })?;
        let middle = align_down(best.start + (best.len() - size) / 2, REGION_ALIGN);
        let power_of_two = (24..32)
            .map(|bit| 1u64 << bit)
            .filter(|&p| p >= best.start && p.checked_add(size).is_some_and(|e| e <= best.end))
            .min_by_key(|&p| p.abs_diff(middle));
        let at = power_of_two.unwrap_or(middle);
        Ok(Region::new(at, at + size))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `/proc/iomem` of a 1 GiB QEMU guest (SeaBIOS, q35-less pc machine).
    pub const QEMU_1G: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000c0000-000c99ff : Video ROM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-3ffdffff : System RAM
  01000000-01bfffff : Kernel code
3ffe0000-3fffffff : Reserved
40000000-febfffff : PCI Bus 0000:00
fec00000-fec003ff : IOAPIC 0
feffc000-feffffff : Reserved
fffc0000-ffffffff : Reserved
";

    #[test]
    fn parses_qemu_map() {
        let m = MemoryMap::parse_iomem(QEMU_1G).unwrap();
        assert_eq!(m.ranges().len(), 8);
        assert_eq!(m.ram_bytes(), 0x9ec00 + 0x3fee0000);
        assert_eq!(m.low_memory_end(), 0xa0000);
        let r = m.choose_region(128 * MIB).unwrap();
        assert_eq!((r.start, r.end), (0x20000000, 0x28000000));
        // Where no power of two fits, the middle.
        let r = MemoryMap::parse_iomem("03000000-077fffff : System RAM\n").unwrap().choose_region(64 * MIB).unwrap();
        assert_eq!((r.start, r.end), (0x3400000, 0x7400000));
    }

    #[test]
    fn region_too_big() {
        let m = MemoryMap::parse_iomem(QEMU_1G).unwrap();
        assert_eq!(m.choose_region(2048 * MIB), Err(Error::NoRoomForRegion { size: 2048 * MIB }));
    }

    #[test]
    fn region_below_4g_on_big_machines() {
        let text = "00001000-0009ffff : System RAM\n00100000-bfffffff : System RAM\n100000000-43fffffff : System RAM\n";
        let r = MemoryMap::parse_iomem(text).unwrap().choose_region(100 * MIB).unwrap();
        assert_eq!((r.start, r.end), (0x40000000, 0x40000000 + 100 * MIB));
        assert!(r.end <= 0xc0000000);
    }

    #[test]
    fn malformed_maps() {
        let cases = [
            ("00000000-00000000 : System RAM\n", Error::AddressesHidden),
            ("zzzz-0fff : System RAM\n", Error::BadLine { line: 1 }),
            ("1000 : System RAM\n", Error::BadLine { line: 1 }),
            ("00001000-00000fff : System RAM\n", Error::BadRange { line: 1 }),
            ("00001000-00002fff : System RAM\n00002000-00003fff : Reserved\n", Error::BadRange { line: 2 }),
            ("00001000-ffffffffffffffff : System RAM\n", Error::BadRange { line: 1 }),
            ("00001000-00002fff : Reserved\n", Error::NoRam),
            ("00001000-00002fff System RAM\n", Error::BadLine { line: 1 }),
        ];
        for (text, want) in cases {
            assert_eq!(MemoryMap::parse_iomem(text), Err(want), "{text}");
        }
        let many: String = (0..200).map(|i| format!("{:08x}-{:08x} : System RAM\n", i * 0x2000, i * 0x2000 + 0xfff)).collect();
        assert_eq!(MemoryMap::parse_iomem(&many), Err(Error::TooManyRanges));
    }
}
