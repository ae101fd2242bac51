//! The x86 bzImage: its real-mode setup header and the protected-mode
//! kernel behind it (`Documentation/arch/x86/boot.rst`).
//!
//! Every size read from the header is checked against the file before use.

use core::fmt;

use crate::le;

/// Offset of the setup header in the image and in `boot_params`.
pub const SETUP_HEADER_OFFSET: usize = 0x1f1;

// The setup header's fields that kjump reads or writes, at the same offset
// in the file and in `boot_params` (boot.rst, "The real-mode kernel
// header"; the type in brackets).

/// `setup_sects` (u8): 512-byte setup sectors after the boot sector; 0 means 4.
pub const SETUP_SECTS: usize = SETUP_HEADER_OFFSET;
/// `boot_flag` (u16): [`BOOT_FLAG_MAGIC`].
pub const BOOT_FLAG: usize = 0x1fe;
/// `jump` (2 bytes): a short jump whose displacement byte, at
/// `JUMP + 1`, gives the header's length (it lands just past the header).
pub const JUMP: usize = 0x200;
/// `header` (4 bytes): [`HEADER_MAGIC`].
pub const HEADER: usize = 0x202;
/// `version` (u16): the boot protocol.
pub const VERSION: usize = 0x206;
/// `type_of_loader` (u8).
pub const TYPE_OF_LOADER: usize = 0x210;
/// `loadflags` (u8).
pub const LOADFLAGS: usize = 0x211;
/// `ramdisk_image` (u32): the initrd's address, low 32 bits.
pub const RAMDISK_IMAGE: usize = 0x218;
/// `ramdisk_size` (u32): the initrd's size, low 32 bits.
pub const RAMDISK_SIZE: usize = 0x21c;
/// `cmd_line_ptr` (u32): the command line's address, low 32 bits.
pub const CMD_LINE_PTR: usize = 0x228;
/// `kernel_alignment` (u32).
pub const KERNEL_ALIGNMENT: usize = 0x230;
/// `relocatable_kernel` (u8).
pub const RELOCATABLE_KERNEL: usize = 0x234;
/// `xloadflags` (u16).
pub const XLOADFLAGS: usize = 0x236;
/// `cmdline_size` (u32): longest command line, without the NUL; 0 means 255.
pub const CMDLINE_SIZE: usize = 0x238;
/// `pref_address` (u64, protocol 2.10+): where the kernel prefers to run.
pub const PREF_ADDRESS: usize = 0x258;
/// `init_size` (u32).
pub const INIT_SIZE: usize = 0x260;
/// Where the setup header of a protocol 2.12 kernel ends at the earliest.
pub const MIN_HEADER_END: usize = 0x26c;
/// Where the setup header must end at the latest: `boot_params` has no
/// more room for it.
pub const MAX_HEADER_END: usize = 0x290;
/// The shortest file that can be a bzImage kjump loads.
pub const MIN_FILE_LEN: usize = 0x270;
const _: () = assert!(MIN_HEADER_END <= MIN_FILE_LEN && MIN_HEADER_END <= MAX_HEADER_END);
/// `boot_flag`'s value.
pub const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `header`'s value.
pub const HEADER_MAGIC: &[u8; 4] = b"HdrS";
/// Size of a setup sector.
pub const SECTOR: usize = 512;
/// Oldest boot protocol with `xloadflags` and `init_size` (2.12).
pub const MIN_PROTOCOL: u16 = 0x020c;
/// `xloadflags` bit: the kernel has a 64-bit entry point at +0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// Offset of the 64-bit entry from the protected-mode kernel's load address.
pub const ENTRY_64_OFFSET: u64 = 0x200;

/// Why a file is not a bzImage kjump can load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the setup header.
    TooShort,
    /// No `0xAA55` boot flag at [`BOOT_FLAG`].
    NoBootFlag,
    /// No `HdrS` magic at [`HEADER`].
    NoHeaderMagic,
    /// Boot protocol older than 2.12.
    OldProtocol { version: u16 },
    /// No 64-bit entry point (`XLF_KERNEL_64`).
    Not64Bit,
    /// Not relocatable: it could only run at its compiled-in address.
    NotRelocatable,
    /// The setup sectors run past the end of the file.
    SetupTruncated,
    /// The setup header's length byte points outside the setup sectors.
    BadHeaderLength,
    /// `kernel_alignment` is not a power of two.
    BadAlignment { alignment: u32 },
    /// `init_size` is zero or smaller than the kernel itself.
    BadInitSize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooShort => f.write_str("file is too short to be a bzImage"),
            Error::NoBootFlag => f.write_str("not a bzImage (no 0xAA55 boot flag)"),
            Error::NoHeaderMagic => f.write_str("not a bzImage (no HdrS setup header)"),
            Error::OldProtocol { version } => {
                write!(f, "boot protocol {}.{} is older than 2.12", version >> 8, version & 0xff)
            }
            Error::Not64Bit => f.write_str("kernel has no 64-bit entry point"),
            Error::NotRelocatable => f.write_str("kernel is not relocatable (needs CONFIG_RELOCATABLE=y)"),
            Error::SetupTruncated => f.write_str("setup sectors run past the end of the file"),
            Error::BadHeaderLength => f.write_str("setup header length is out of bounds"),
            Error::BadAlignment { alignment } => write!(f, "kernel_alignment {alignment:#x} is not a power of two"),
            Error::BadInitSize => f.write_str("init_size is smaller than the kernel"),
        }
    }
}

impl std::error::Error for Error {}

/// A parsed bzImage, borrowing the file's bytes.
#[derive(Clone, Copy, Debug)]
pub struct BzImage<'a> {
    /// The setup header bytes, from [`SETUP_HEADER_OFFSET`] to its end, to copy into `boot_params`.
    pub setup_header: &'a [u8],
    /// The protected-mode kernel (everything after the setup sectors).
    pub kernel: &'a [u8],
    /// Boot protocol version.
    pub version: u16,
    /// Required load alignment.
    pub alignment: u64,
    /// Bytes the kernel needs from its load address while it decompresses.
    pub init_size: u64,
    /// Longest command line the kernel accepts, without the NUL.
    pub cmdline_max: u64,
}

impl<'a> BzImage<'a> {
    /// Parses a bzImage. Never panics; every header value is checked.
    pub fn parse(file: &'a [u8]) -> Result<Self, Error> {
        if file.len() < MIN_FILE_LEN {
            return Err(Error::TooShort);
        }
        if le::u16_at(file, BOOT_FLAG) != Some(BOOT_FLAG_MAGIC) {
            return Err(Error::NoBootFlag);
        }
        if file.get(HEADER..HEADER + HEADER_MAGIC.len()) != Some(HEADER_MAGIC) {
            return Err(Error::NoHeaderMagic);
        }
        let version = le::u16_at(file, VERSION).ok_or(Error::TooShort)?;
        if version < MIN_PROTOCOL {
            return Err(Error::OldProtocol { version });
        }
        let setup_sects = match file[SETUP_SECTS] {
            0 => 4,
            n => n as usize,
        };
        let setup_len = (setup_sects + 1) * SECTOR;
        if setup_len >= file.len() {
            return Err(Error::SetupTruncated);
        }
        // The header ends where the 2-byte jump lands.
        let header_end = JUMP + 2 + file[JUMP + 1] as usize;
        if header_end > setup_len.min(MAX_HEADER_END) || header_end < MIN_HEADER_END {
            return Err(Error::BadHeaderLength);
        }
        let xloadflags = le::u16_at(file, XLOADFLAGS).ok_or(Error::TooShort)?;
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(Error::Not64Bit);
        }
        if file[RELOCATABLE_KERNEL] == 0 {
            return Err(Error::NotRelocatable);
        }
        let alignment = le::u32_at(file, KERNEL_ALIGNMENT).ok_or(Error::TooShort)?;
        if !alignment.is_power_of_two() {
            return Err(Error::BadAlignment { alignment });
        }
        let kernel = &file[setup_len..];
        let init_size = le::u32_at(file, INIT_SIZE).ok_or(Error::TooShort)? as u64;
        if init_size == 0 || init_size < kernel.len() as u64 {
            return Err(Error::BadInitSize);
        }
        let cmdline_max = match le::u32_at(file, CMDLINE_SIZE).ok_or(Error::TooShort)? {
            0 => 255,
            n => n as u64,
        };
        Ok(BzImage { setup_header: &file[SETUP_HEADER_OFFSET..header_end], kernel, version, alignment: alignment as u64, init_size, cmdline_max })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic bzImage: valid header, 4 setup sectors, `kernel_len` bytes of kernel.
    pub fn fake_bzimage(kernel_len: usize) -> Vec<u8> {
        let setup_len = 5 * 512;
        let mut f = vec![0u8; setup_len + kernel_len];
        f[0x1f1] = 4;
        f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        f[0x200] = 0xeb;
        f[0x201] = 0x6a; // header ends at 0x26c
        f[0x202..0x206].copy_from_slice(b"HdrS");
        f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        f[0x230..0x234].copy_from_slice(&0x200000u32.to_le_bytes());
        f[0x234] = 1;
        f[0x236..0x238].copy_from_slice(&(XLF_KERNEL_64 | 2).to_le_bytes());
        f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
        f[0x260..0x264].copy_from_slice(&((kernel_len as u32) * 3).to_le_bytes());
        for (i, b) in f[setup_len..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    /// The fields, with their widths, lie in order inside the smallest
    /// setup header kjump accepts, which fits in `boot_params`.
    #[test]
    fn setup_header_fields_lie_in_the_header() {
        let fields = [
            (SETUP_SECTS, 1),
            (BOOT_FLAG, 2),
            (JUMP, 2),
            (HEADER, 4),
            (VERSION, 2),
            (TYPE_OF_LOADER, 1),
            (LOADFLAGS, 1),
            (RAMDISK_IMAGE, 4),
            (RAMDISK_SIZE, 4),
            (CMD_LINE_PTR, 4),
            (KERNEL_ALIGNMENT, 4),
            (RELOCATABLE_KERNEL, 1),
            (XLOADFLAGS, 2),
            (CMDLINE_SIZE, 4),
            (PREF_ADDRESS, 8),
            (INIT_SIZE, 4),
        ];
        for w in fields.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "field at {:#x} overlaps the one at {:#x}", w[0].0, w[1].0);
        }
        assert_eq!(fields[0].0, SETUP_HEADER_OFFSET);
        assert!(fields.iter().all(|&(at, len)| at + len <= MIN_HEADER_END));
    }

    #[test]
    fn parses_a_good_image() {
        let f = fake_bzimage(10000);
        let bz = BzImage::parse(&f).unwrap();
        assert_eq!(bz.kernel.len(), 10000);
        assert_eq!(bz.setup_header.len(), 0x26c - 0x1f1);
        assert_eq!(bz.alignment, 0x200000);
        assert_eq!(bz.init_size, 30000);
        assert_eq!(bz.cmdline_max, 2047);
    }

    #[test]
    fn rejects_bad_images() {
        let good = fake_bzimage(10000);
        let mutate = |f: fn(&mut Vec<u8>)| {
            let mut v = good.clone();
            f(&mut v);
            BzImage::parse(&v).err()
        };
        assert_eq!(BzImage::parse(&[]).err(), Some(Error::TooShort));
        assert_eq!(BzImage::parse(&good[..0x300]).err(), Some(Error::SetupTruncated));
        assert_eq!(mutate(|v| v[0x1fe] = 0), Some(Error::NoBootFlag));
        assert_eq!(mutate(|v| v[0x203] = b'x'), Some(Error::NoHeaderMagic));
        assert_eq!(mutate(|v| v[0x207] = 1), Some(Error::OldProtocol { version: 0x010f }));
        assert_eq!(mutate(|v| v[0x236] = 0), Some(Error::Not64Bit));
        assert_eq!(mutate(|v| v[0x234] = 0), Some(Error::NotRelocatable));
        assert_eq!(mutate(|v| v[0x1f1] = 0xff), Some(Error::SetupTruncated));
        assert_eq!(mutate(|v| v[0x201] = 0xff), Some(Error::BadHeaderLength));
        assert_eq!(mutate(|v| v[0x201] = 0x10), Some(Error::BadHeaderLength));
        assert_eq!(mutate(|v| v[0x230] = 3), Some(Error::BadAlignment { alignment: 0x200003 }));
        assert_eq!(mutate(|v| v[0x260..0x264].fill(0)), Some(Error::BadInitSize));
    }

    #[test]
    fn truncations_never_panic() {
        let good = fake_bzimage(3000);
        for len in 0..good.len() {
            let _ = BzImage::parse(&good[..len]);
        }
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..5000 {
            let mut v = good.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = 0x1f0 + (x as usize % 0x80);
                v[at] = (x >> 32) as u8;
            }
            let _ = BzImage::parse(&v);
        }
    }
}
