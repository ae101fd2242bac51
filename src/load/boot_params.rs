//! The zero page (`struct boot_params`) that a 64-bit Linux entry reads
//! through `%rsi`: the bzImage's setup header, the command line, the
//! initrd, the ACPI RSDP and the E820 memory map that confines B.

use core::fmt;

use crate::le;
use crate::load::bzimage::{BzImage, CMD_LINE_PTR, LOADFLAGS, MAX_HEADER_END, RAMDISK_IMAGE, RAMDISK_SIZE, SETUP_HEADER_OFFSET, TYPE_OF_LOADER};
use crate::load::e820::{self, Range};
use crate::range::PhysRange;

/// Size of `struct boot_params`.
pub const SIZE: usize = 4096;
/// Entries `boot_params.e820_table` holds.
pub const MAX_E820: usize = 128;

// The zero page's own fields (boot.rst, "The zero page"; the type in
// brackets). The setup header's are in `bzimage`.

/// `acpi_rsdp_addr` (u64).
const ACPI_RSDP_ADDR: usize = 0x070;
/// `ext_ramdisk_image` (u32): the initrd's address, high 32 bits.
const EXT_RAMDISK_IMAGE: usize = 0x0c0;
/// `ext_ramdisk_size` (u32): the initrd's size, high 32 bits.
const EXT_RAMDISK_SIZE: usize = 0x0c4;
/// `ext_cmd_line_ptr` (u32): the command line's address, high 32 bits.
const EXT_CMD_LINE_PTR: usize = 0x0c8;
/// `e820_entries` (u8).
const E820_ENTRIES: usize = 0x1e8;
/// `e820_table`: [`MAX_E820`] entries of [`e820::ENTRY_LEN`] bytes.
const E820_TABLE: usize = 0x2d0;
// Around the setup header, and within the page.
const _: () = assert!(EXT_CMD_LINE_PTR + 4 <= E820_ENTRIES && E820_ENTRIES < SETUP_HEADER_OFFSET);
const _: () = assert!(MAX_HEADER_END <= E820_TABLE && E820_TABLE + MAX_E820 * e820::ENTRY_LEN <= SIZE);

/// `type_of_loader` for a boot loader without an assigned id.
const LOADER_UNDEFINED: u8 = 0xff;
/// `loadflags`: the protected-mode code is loaded at 0x100000 or above.
const LOADED_HIGH: u8 = 1 << 0;

/// Why a zero page could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// More than [`MAX_E820`] memory ranges.
    TooManyRanges,
    /// The setup header is longer than the zero page allows.
    HeaderTooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooManyRanges => write!(f, "more than {MAX_E820} E820 entries"),
            Error::HeaderTooLong => f.write_str("setup header does not fit in boot_params"),
        }
    }
}

impl std::error::Error for Error {}

/// What goes into the zero page besides the setup header.
#[derive(Clone, Copy, Debug)]
pub struct Config<'a> {
    /// Physical address of the NUL-terminated command line.
    pub cmdline_addr: u64,
    /// Physical address of the initrd.
    pub initrd_addr: u64,
    /// Size of the initrd in bytes.
    pub initrd_size: u64,
    /// Physical address of the ACPI RSDP, or 0 to let the kernel search.
    pub acpi_rsdp: u64,
    /// The memory map the new kernel sees, in address order.
    pub e820: &'a [Range],
}

fn put32(page: &mut [u8; SIZE], off: usize, v: u32) {
    page[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// The RAM ranges (E820 type 1) of a zero page as the boot loader filled
/// it in (`/sys/kernel/boot_params/data`): the firmware's memory map,
/// before any `memmap=` on the command line. Entries past the table, or
/// that wrap around, are ignored.
pub fn ram_ranges(page: &[u8]) -> Vec<PhysRange> {
    let count = page.get(E820_ENTRIES).map_or(0, |&n| (n as usize).min(MAX_E820));
    (0..count)
        .filter_map(|i| {
            let at = E820_TABLE + i * e820::ENTRY_LEN;
            let e = page.get(at..at + e820::ENTRY_LEN)?;
            let (addr, size, kind) = (le::u64_at(e, 0)?, le::u64_at(e, 8)?, le::u32_at(e, 16)?);
            (kind == 1 && size > 0).then_some(())?;
            PhysRange::at(addr, size)
        })
        .collect()
}

/// `struct screen_info`, at the start of the zero page: how the firmware or
/// the boot loader left the screen (VGA text mode, or a linear framebuffer
/// from VESA or UEFI's GOP, its address and geometry).
pub const SCREEN_INFO_LEN: usize = 0x40;

/// The screen_info this kernel booted with (`/sys/kernel/boot_params/data`),
/// for B and D: kexec starts them at their 64-bit entry, past the setup
/// code that fills it in, so without it they would find no screen and
/// show nothing there (vgacon needs its lines and columns; efifb and
/// vesafb its framebuffer). `None` when it cannot be read or is empty.
pub fn screen_info_of_this_boot() -> Option<[u8; SCREEN_INFO_LEN]> {
    let data = std::fs::read("/sys/kernel/boot_params/data").ok()?;
    let si: [u8; SCREEN_INFO_LEN] = data.get(..SCREEN_INFO_LEN)?.try_into().ok()?;
    si.iter().any(|&b| b != 0).then_some(si)
}

/// Builds the zero page for `bz` with `cfg`.
pub fn build(bz: &BzImage<'_>, cfg: &Config<'_>) -> Result<Box<[u8; SIZE]>, Error> {
    if cfg.e820.len() > MAX_E820 {
        return Err(Error::TooManyRanges);
    }
    let header_end = SETUP_HEADER_OFFSET + bz.setup_header.len();
    if header_end > MAX_HEADER_END {
        return Err(Error::HeaderTooLong);
    }
    let mut page = Box::new([0u8; SIZE]);
    page[SETUP_HEADER_OFFSET..header_end].copy_from_slice(bz.setup_header);
    page[TYPE_OF_LOADER] = LOADER_UNDEFINED;
    page[LOADFLAGS] |= LOADED_HIGH;
    put32(&mut page, CMD_LINE_PTR, cfg.cmdline_addr as u32);
    put32(&mut page, EXT_CMD_LINE_PTR, (cfg.cmdline_addr >> 32) as u32);
    put32(&mut page, RAMDISK_IMAGE, cfg.initrd_addr as u32);
    put32(&mut page, EXT_RAMDISK_IMAGE, (cfg.initrd_addr >> 32) as u32);
    put32(&mut page, RAMDISK_SIZE, cfg.initrd_size as u32);
    put32(&mut page, EXT_RAMDISK_SIZE, (cfg.initrd_size >> 32) as u32);
    page[ACPI_RSDP_ADDR..ACPI_RSDP_ADDR + 8].copy_from_slice(&cfg.acpi_rsdp.to_le_bytes());
    page[E820_ENTRIES] = cfg.e820.len() as u8;
    for (i, r) in cfg.e820.iter().enumerate() {
        let at = E820_TABLE + i * e820::ENTRY_LEN;
        page[at..at + e820::ENTRY_LEN].copy_from_slice(&r.encode());
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::bzimage::tests::fake_bzimage;
    use crate::load::e820::Kind;

    #[test]
    fn fills_the_fields() {
        let f = fake_bzimage(5000);
        let bz = BzImage::parse(&f).unwrap();
        let e820 = [
            Range { start: 0x1000, end: 0x9fc00, kind: Kind::Ram },
            Range { start: 0x37e00000, end: 0x3fe00000, kind: Kind::Ram },
            Range { start: 0x3ffe0000, end: 0x40000000, kind: Kind::Reserved },
        ];
        let cfg = Config { cmdline_addr: 0x1_2345_6000, initrd_addr: 0x38000000, initrd_size: 777, acpi_rsdp: 0xf5ae0, e820: &e820 };
        let p = build(&bz, &cfg).unwrap();
        assert_eq!(&p[0x202..0x206], b"HdrS");
        assert_eq!(p[TYPE_OF_LOADER], 0xff);
        assert_eq!(le::u32_at(&p[..], CMD_LINE_PTR), Some(0x2345_6000));
        assert_eq!(le::u32_at(&p[..], EXT_CMD_LINE_PTR), Some(1));
        assert_eq!(le::u32_at(&p[..], RAMDISK_IMAGE), Some(0x38000000));
        assert_eq!(le::u32_at(&p[..], RAMDISK_SIZE), Some(777));
        assert_eq!(le::u64_at(&p[..], 0x70), Some(0xf5ae0));
        assert_eq!(p[E820_ENTRIES], 3);
        let second = E820_TABLE + 20;
        assert_eq!(le::u64_at(&p[..], second), Some(0x37e00000));
        assert_eq!(le::u64_at(&p[..], second + 8), Some(0x8000000));
        assert_eq!(le::u32_at(&p[..], second + 16), Some(1));
        assert_eq!(p[0x1ef], 0, "sentinel must stay zero");
    }

    #[test]
    fn reads_back_the_ram_ranges() {
        let f = fake_bzimage(5000);
        let bz = BzImage::parse(&f).unwrap();
        let e820 = [
            Range { start: 0x1000, end: 0x9fc00, kind: Kind::Ram },
            Range { start: 0x3ffe0000, end: 0x40000000, kind: Kind::Reserved },
            Range { start: 0x100000, end: 0x3ffe0000, kind: Kind::Ram },
        ];
        let cfg = Config { cmdline_addr: 0x1000, initrd_addr: 0, initrd_size: 0, acpi_rsdp: 0, e820: &e820 };
        let mut p = build(&bz, &cfg).unwrap();
        assert_eq!(ram_ranges(&p[..]), vec![PhysRange::new(0x1000, 0x9fc00), PhysRange::new(0x100000, 0x3ffe0000)]);
        // A count past the table, a wrapping entry and a short page: no panic.
        p[E820_ENTRIES] = 255;
        p[E820_TABLE + 3 * 20..E820_TABLE + 3 * 20 + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        p[E820_TABLE + 3 * 20 + 8..E820_TABLE + 3 * 20 + 16].copy_from_slice(&2u64.to_le_bytes());
        p[E820_TABLE + 3 * 20 + 16] = 1;
        assert_eq!(ram_ranges(&p[..]).len(), 2);
        assert_eq!(ram_ranges(&p[..E820_TABLE + 30]), vec![PhysRange::new(0x1000, 0x9fc00)]);
        assert!(ram_ranges(&[]).is_empty());
    }

    #[test]
    fn too_many_ranges() {
        let f = fake_bzimage(5000);
        let bz = BzImage::parse(&f).unwrap();
        let e820 = vec![Range { start: 0, end: 4096, kind: Kind::Ram }; 129];
        let cfg = Config { cmdline_addr: 0, initrd_addr: 0, initrd_size: 0, acpi_rsdp: 0, e820: &e820 };
        assert_eq!(build(&bz, &cfg).err(), Some(Error::TooManyRanges));
    }
}
