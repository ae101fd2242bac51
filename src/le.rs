//! Runs in every kernel (A, B, C and D) and owns reading the little-endian
//! fields of on-disk and in-memory structures (image blocks, ELF headers,
//! the setup header, partition tables, notes, key files), and the
//! [`Field`] type layouts declare their fields with. Every read is
//! checked: a field that does not lie wholly within the bytes, or whose
//! offset overflows, is `None`, never a panic.

/// The `N` bytes at `off`, or `None` when they do not all lie within `b`.
pub fn array_at<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// The little-endian `u16` at `off`.
pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    array_at(b, off).map(u16::from_le_bytes)
}

/// The little-endian `u32` at `off`.
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    array_at(b, off).map(u32::from_le_bytes)
}

/// The little-endian `u64` at `off`.
pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    array_at(b, off).map(u64::from_le_bytes)
}

/// A little-endian field of `N` bytes at a fixed offset of a structure:
/// how a layout (the image's blocks, ELF headers) declares each field
/// once, for its reader and its writer alike. Its width is part of its
/// type, so a 4-byte field cannot be read or written as 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<const N: usize> {
    /// Offset from the start of the structure.
    pub at: usize,
}

impl<const N: usize> Field<N> {
    /// Size in bytes.
    pub const LEN: usize = N;

    /// The offset just past the field.
    pub const fn end(self) -> usize {
        self.at + N
    }

    /// The field's bytes, as a range of the structure.
    pub const fn range(self) -> core::ops::Range<usize> {
        self.at..self.at + N
    }

    /// The field's bytes in `b`, or `None` when they do not all lie within it.
    pub fn array(self, b: &[u8]) -> Option<[u8; N]> {
        array_at(b, self.at)
    }

    /// Writes the field's bytes into `b`, a buffer its writer sized to
    /// hold the whole structure (a shorter one is a bug: it panics).
    pub fn set(self, b: &mut [u8], v: [u8; N]) {
        b[self.range()].copy_from_slice(&v);
    }
}

impl Field<1> {
    /// The byte.
    pub fn u8(self, b: &[u8]) -> Option<u8> {
        b.get(self.at).copied()
    }
}

impl Field<2> {
    /// The little-endian `u16`.
    pub fn u16(self, b: &[u8]) -> Option<u16> {
        u16_at(b, self.at)
    }
}

impl Field<4> {
    /// The little-endian `u32`.
    pub fn u32(self, b: &[u8]) -> Option<u32> {
        u32_at(b, self.at)
    }
}

impl Field<8> {
    /// The little-endian `u64`.
    pub fn u64(self, b: &[u8]) -> Option<u64> {
        u64_at(b, self.at)
    }
}

/// Reads fields one after another from the start of a byte slice. A read
/// past the end is `None` and takes nothing.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, at: 0 }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let b = self.b.get(self.at..end)?;
        self.at = end;
        Some(b)
    }

    /// The next `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// Whether every byte has been read.
    pub fn at_end(&self) -> bool {
        self.at == self.b.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: [u8; 10] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a];

    #[test]
    fn reads_at_the_start() {
        assert_eq!(u16_at(&B, 0), Some(0x0201));
        assert_eq!(u32_at(&B, 0), Some(0x0403_0201));
        assert_eq!(u64_at(&B, 0), Some(0x0807_0605_0403_0201));
        assert_eq!(array_at::<3>(&B, 0), Some([1, 2, 3]));
        assert_eq!(array_at::<0>(&[], 0), Some([]));
    }

    #[test]
    fn reads_up_to_the_end() {
        assert_eq!(u16_at(&B, 8), Some(0x0a09));
        assert_eq!(u32_at(&B, 6), Some(0x0a09_0807));
        assert_eq!(u64_at(&B, 2), Some(0x0a09_0807_0605_0403));
        assert_eq!(array_at::<10>(&B, 0), Some(B));
        assert_eq!(array_at::<0>(&B, 10), Some([]));
    }

    #[test]
    fn one_byte_short_is_none() {
        assert_eq!(u16_at(&B, 9), None);
        assert_eq!(u32_at(&B, 7), None);
        assert_eq!(u64_at(&B, 3), None);
        assert_eq!(array_at::<11>(&B, 0), None);
        assert_eq!(array_at::<0>(&B, 11), None);
        assert_eq!(u16_at(&[], 0), None);
        assert_eq!(u64_at(&B[..7], 0), None);
    }

    #[test]
    fn offset_overflow_is_none() {
        for off in [usize::MAX, usize::MAX - 1, usize::MAX - 7] {
            assert_eq!(u16_at(&B, off), None);
            assert_eq!(u32_at(&B, off), None);
            assert_eq!(u64_at(&B, off), None);
            assert_eq!(array_at::<4>(&B, off), None);
        }
        assert_eq!(array_at::<0>(&B, usize::MAX), None);
    }

    #[test]
    fn fields_read_and_write_their_own_bytes() {
        assert_eq!(Field::<2> { at: 8 }.u16(&B), Some(0x0a09));
        assert_eq!(Field::<4> { at: 7 }.u32(&B), None);
        assert_eq!(Field::<8> { at: usize::MAX }.u64(&B), None);
        assert_eq!(Field::<1> { at: 9 }.u8(&B), Some(0x0a));
        assert_eq!(Field::<3> { at: 1 }.array(&B), Some([2, 3, 4]));
        let f = Field::<4> { at: 2 };
        assert_eq!((f.range(), f.end(), Field::<4>::LEN), (2..6, 6, 4));
        let mut b = [0u8; 8];
        f.set(&mut b, 0x0403_0201u32.to_le_bytes());
        assert_eq!(b, [0, 0, 1, 2, 3, 4, 0, 0]);
    }

    #[test]
    fn cursor_reads_in_order_and_stops_at_the_end() {
        let mut c = Cursor::new(&B);
        assert_eq!(c.u16(), Some(0x0201));
        assert_eq!(c.u32(), Some(0x0605_0403));
        assert_eq!(c.array::<1>(), Some([7]));
        // Too long: nothing is taken.
        assert_eq!(c.u64(), None);
        assert_eq!(c.bytes(usize::MAX), None);
        assert!(!c.at_end());
        assert_eq!(c.bytes(3), Some(&B[7..]));
        assert!(c.at_end());
        assert_eq!(c.u16(), None);
        assert_eq!(c.bytes(0), Some(&[][..]));
        let mut c = Cursor::new(&B[2..]);
        assert_eq!(c.u64(), Some(0x0a09_0807_0605_0403));
        assert!(c.at_end());
    }
}
