//! Physical memory as kjump passes it around: a range of addresses
//! ([`PhysRange`], the kjump region, A's RAM ranges, the low-memory
//! backup), a run of page frames ([`PfnRun`], the image's runs of stored
//! and zero pages), and the page frames a range touches ([`PfnRange`]).
//!
//! The fields are public, and a value may come from a command line or an
//! image, so every method copes with a range whose end is not above its
//! start (it is empty) and with values up to `u64::MAX`: nothing
//! overflows, and what could (an address plus a length, pages to bytes)
//! returns `None` instead. On disk and on command lines these are still
//! the plain numbers they were (`start`/`end`, `address`/`length`,
//! `pfn`/`count`); the encoders and decoders convert.

use core::fmt;

use crate::units::PAGE_SIZE;

/// Physical addresses `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Page frame numbers `[start, end)`: the pages of a [`PhysRange`].
pub type PfnRange = core::ops::Range<u64>;

impl PhysRange {
    /// `[start, end)`, as given (empty when `end <= start`).
    pub const fn new(start: u64, end: u64) -> Self {
        PhysRange { start, end }
    }

    /// `[start, end)` when it holds at least one byte.
    pub fn non_empty(start: u64, end: u64) -> Option<Self> {
        (start < end).then_some(PhysRange { start, end })
    }

    /// The `len` bytes at `start`; `None` when they run past the end of
    /// the address space.
    pub fn at(start: u64, len: u64) -> Option<Self> {
        Some(PhysRange { start, end: start.checked_add(len)? })
    }

    /// Length in bytes (0 when empty).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether `addr` lies inside.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether `other` lies within this range's bounds: it starts at or
    /// after this range's start and ends at or before its end.
    pub fn contains_range(&self, other: &PhysRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the two share a byte (an empty range shares none).
    pub fn overlaps(&self, other: &PhysRange) -> bool {
        self.intersect(other).is_some()
    }

    /// The bytes both hold, if any.
    pub fn intersect(&self, other: &PhysRange) -> Option<PhysRange> {
        PhysRange::non_empty(self.start.max(other.start), self.end.min(other.end))
    }

    /// What is left of this range without `other`: the part below it and
    /// the part above it, each when not empty. An empty `other` takes
    /// nothing away.
    pub fn minus(&self, other: &PhysRange) -> [Option<PhysRange>; 2] {
        if other.is_empty() {
            return [PhysRange::non_empty(self.start, self.end), None];
        }
        [PhysRange::non_empty(self.start, self.end.min(other.start)), PhysRange::non_empty(self.start.max(other.end), self.end)]
    }

    /// Whether both ends are multiples of the page size.
    pub fn is_page_aligned(&self) -> bool {
        self.start % PAGE_SIZE == 0 && self.end % PAGE_SIZE == 0
    }

    /// The page frames it touches, partly or whole (none when empty).
    pub fn pfns(&self) -> PfnRange {
        let first = self.start / PAGE_SIZE;
        if self.is_empty() {
            return first..first;
        }
        first..self.end.div_ceil(PAGE_SIZE)
    }
}

/// `START-END` in hexadecimal (`0x20000000-0x24000000`), as messages show a
/// range.
impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end)
    }
}

/// `count` consecutive page frames from `first`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PfnRun {
    /// The first page frame number.
    pub first: u64,
    /// How many pages.
    pub count: u64,
}

impl PfnRun {
    /// `count` pages from `first`.
    pub const fn new(first: u64, count: u64) -> Self {
        PfnRun { first, count }
    }

    /// One past the last page frame; `None` beyond `u64::MAX`.
    pub fn end(&self) -> Option<u64> {
        self.first.checked_add(self.count)
    }

    /// Whether it holds no page.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `pfn` comes right after the run's last page (so that the
    /// run can grow by it).
    pub fn is_followed_by(&self, pfn: u64) -> bool {
        self.end() == Some(pfn)
    }

    /// Physical address of the first page; `None` beyond the address space.
    pub fn addr(&self) -> Option<u64> {
        self.first.checked_mul(PAGE_SIZE)
    }

    /// Length in bytes; `None` beyond the address space.
    pub fn bytes(&self) -> Option<u64> {
        self.count.checked_mul(PAGE_SIZE)
    }

    /// The bytes it covers; `None` when they lie beyond the address space.
    pub fn phys(&self) -> Option<PhysRange> {
        PhysRange::at(self.addr()?, self.bytes()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: PhysRange = PhysRange::new(0x2000, 0x5000);

    #[test]
    fn lengths_and_emptiness() {
        assert_eq!((R.len(), R.is_empty()), (0x3000, false));
        assert_eq!((PhysRange::new(7, 7).len(), PhysRange::new(7, 7).is_empty()), (0, true));
        // Reversed: empty, never a huge length.
        assert_eq!((PhysRange::new(9, 3).len(), PhysRange::new(9, 3).is_empty()), (0, true));
        assert_eq!(PhysRange::new(0, u64::MAX).len(), u64::MAX);
        assert_eq!(PhysRange::default(), PhysRange::new(0, 0));
    }

    #[test]
    fn constructors_refuse_what_overflows_or_is_empty() {
        assert_eq!(PhysRange::non_empty(1, 2), Some(PhysRange::new(1, 2)));
        assert_eq!(PhysRange::non_empty(2, 2), None);
        assert_eq!(PhysRange::non_empty(3, 2), None);
        assert_eq!(PhysRange::at(0x1000, 0x1000), Some(PhysRange::new(0x1000, 0x2000)));
        assert_eq!(PhysRange::at(u64::MAX, 0), Some(PhysRange::new(u64::MAX, u64::MAX)));
        assert_eq!(PhysRange::at(u64::MAX - 1, 1), Some(PhysRange::new(u64::MAX - 1, u64::MAX)));
        assert_eq!(PhysRange::at(u64::MAX, 1), None);
        assert_eq!(PhysRange::at(1, u64::MAX), None);
    }

    #[test]
    fn containment() {
        assert!(R.contains(0x2000) && R.contains(0x4fff));
        assert!(!R.contains(0x1fff) && !R.contains(0x5000));
        assert!(!PhysRange::new(5, 5).contains(5));
        assert!(PhysRange::new(0, u64::MAX).contains(u64::MAX - 1) && !PhysRange::new(0, u64::MAX).contains(u64::MAX));
        assert!(R.contains_range(&R));
        assert!(R.contains_range(&PhysRange::new(0x3000, 0x4000)));
        assert!(!R.contains_range(&PhysRange::new(0x1000, 0x3000)));
        assert!(!R.contains_range(&PhysRange::new(0x4000, 0x6000)));
        assert!(!R.contains_range(&PhysRange::new(0, u64::MAX)));
        // By the bounds alone: an empty range at its edges counts, one
        // outside does not.
        assert!(R.contains_range(&PhysRange::new(0x5000, 0x5000)));
        assert!(!R.contains_range(&PhysRange::new(0x6000, 0x6000)));
    }

    #[test]
    fn overlap_and_intersection() {
        assert!(R.overlaps(&PhysRange::new(0x4fff, 0x6000)) && PhysRange::new(0x4fff, 0x6000).overlaps(&R));
        assert!(R.overlaps(&PhysRange::new(0, u64::MAX)));
        // Touching is not overlapping.
        assert!(!R.overlaps(&PhysRange::new(0x5000, 0x6000)) && !R.overlaps(&PhysRange::new(0x1000, 0x2000)));
        // Empty ranges overlap nothing, not even where they lie inside.
        assert!(!R.overlaps(&PhysRange::new(0x3000, 0x3000)) && !PhysRange::new(0x3000, 0x3000).overlaps(&R));
        assert!(!R.overlaps(&PhysRange::new(0x4000, 0x3000)));
        assert_eq!(R.intersect(&PhysRange::new(0x4000, 0x9000)), Some(PhysRange::new(0x4000, 0x5000)));
        assert_eq!(R.intersect(&PhysRange::new(0, u64::MAX)), Some(R));
        assert_eq!(R.intersect(&PhysRange::new(0x5000, 0x9000)), None);
        assert_eq!(PhysRange::new(u64::MAX - 1, u64::MAX).intersect(&PhysRange::new(0, u64::MAX)), Some(PhysRange::new(u64::MAX - 1, u64::MAX)));
    }

    #[test]
    fn minus_leaves_the_parts_below_and_above() {
        let hole = PhysRange::new(0x3000, 0x4000);
        assert_eq!(R.minus(&hole), [Some(PhysRange::new(0x2000, 0x3000)), Some(PhysRange::new(0x4000, 0x5000))]);
        assert_eq!(R.minus(&PhysRange::new(0x1000, 0x3000)), [None, Some(PhysRange::new(0x3000, 0x5000))]);
        assert_eq!(R.minus(&PhysRange::new(0x4000, 0x9000)), [Some(PhysRange::new(0x2000, 0x4000)), None]);
        assert_eq!(R.minus(&PhysRange::new(0, u64::MAX)), [None, None]);
        // Disjoint: the whole range is left, once.
        let left: Vec<_> = R.minus(&PhysRange::new(0x8000, 0x9000)).into_iter().flatten().collect();
        assert_eq!(left, [R]);
        let left: Vec<_> = R.minus(&PhysRange::new(0, 0x1000)).into_iter().flatten().collect();
        assert_eq!(left, [R]);
        // An empty hole takes nothing and splits nothing; an empty range
        // leaves nothing.
        assert_eq!(R.minus(&PhysRange::new(0x3000, 0x3000)), [Some(R), None]);
        assert_eq!(PhysRange::new(9, 3).minus(&hole), [None, None]);
    }

    #[test]
    fn pages() {
        assert!(R.is_page_aligned() && PhysRange::new(0, 0).is_page_aligned());
        assert!(!PhysRange::new(0x2001, 0x5000).is_page_aligned() && !PhysRange::new(0x2000, 0x5001).is_page_aligned());
        assert!(!PhysRange::new(0, u64::MAX).is_page_aligned());
        assert_eq!(R.pfns(), 2..5);
        // Partly covered pages count.
        assert_eq!(PhysRange::new(0x1fff, 0x5001).pfns(), 1..6);
        assert_eq!(PhysRange::new(0x9fc00, 0xa0000).pfns(), 0x9f..0xa0);
        assert_eq!(PhysRange::new(0, u64::MAX).pfns(), 0..(u64::MAX / PAGE_SIZE + 1));
        assert!(PhysRange::new(0x1800, 0x1800).pfns().is_empty());
        assert!(PhysRange::new(0x5000, 0x1000).pfns().is_empty());
    }

    #[test]
    fn shown_as_start_dash_end() {
        assert_eq!(PhysRange::new(0x2000_0000, 0x2400_0000).to_string(), "0x20000000-0x24000000");
        assert_eq!(PhysRange::new(0, 0).to_string(), "0x0-0x0");
    }

    #[test]
    fn runs_of_page_frames() {
        let r = PfnRun::new(0x100, 3);
        assert_eq!((r.end(), r.addr(), r.bytes()), (Some(0x103), Some(0x10_0000), Some(0x3000)));
        assert_eq!(r.phys(), Some(PhysRange::new(0x10_0000, 0x10_3000)));
        assert!(r.is_followed_by(0x103) && !r.is_followed_by(0x102) && !r.is_followed_by(0x104));
        assert!(!r.is_empty() && PfnRun::new(5, 0).is_empty());
        // At the top of the address space: what fits, fits; what does not
        // is None, never a wrapped value.
        let top = u64::MAX / PAGE_SIZE;
        assert_eq!(PfnRun::new(top, 1).phys(), None);
        assert_eq!(PfnRun::new(top - 1, 1).phys(), Some(PhysRange::new((top - 1) * PAGE_SIZE, top * PAGE_SIZE)));
        assert_eq!(PfnRun::new(top + 1, 0).addr(), None);
        assert_eq!(PfnRun::new(0, top + 1).bytes(), None);
        assert_eq!(PfnRun::new(1, top).phys(), None);
        assert_eq!(PfnRun::new(u64::MAX, 1).end(), None);
        assert!(!PfnRun::new(u64::MAX, 0).is_followed_by(0));
        assert_eq!(PfnRun::new(u64::MAX, 0).end(), Some(u64::MAX));
    }
}
