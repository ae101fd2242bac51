//! Starting D straight from a boot loader, without booting the system first.
//!
//! The usual resume boots the machine's own kernel (C), whose `kjump resume`
//! loads D with kexec: two kernel boots before A runs again. A boot loader
//! entry can start D itself and save one of them. D must then live inside
//! the kjump region alone, as it does when C loads it, since everything
//! else is A's memory to write back:
//!
//! - Its kernel asks to be placed at the region's start ([`kernel_at`]):
//!   `pref_address`, which GRUB's `linux` command honours (BIOS boot), and,
//!   when the region starts at a power of two (as [`MemoryMap::choose_region`]
//!   arranges where it can), `kernel_alignment` too. The decompressor runs at
//!   the load address rounded up to that alignment, so the kernel lands at
//!   the region even when the loader put it at 1 MiB (QEMU's `-kernel`).
//! - Its command line reserves A's RAM above 1 MiB outside the region
//!   ([`reservations`]), so D's kernel allocates nothing there. A's low
//!   memory (below 1 MiB, where D's real-mode trampoline lives) is written
//!   last, as on every resume.
//! - `kjump-init` checks both from D's `/proc/iomem` before it writes
//!   anything ([`check_confined`], `kjump.direct=1`): a loader that put the
//!   kernel elsewhere, or a command line that lost its reservations, leave
//!   A's image untouched.
//!
//! The EFI stub ignores both header fields and places the kernel itself, so
//! this works with BIOS boot loaders and direct kernel boot of VMs, not
//! with UEFI.

use crate::load::bzimage::{BzImage, KERNEL_ALIGNMENT, PREF_ADDRESS};
use crate::load::memmap::{MemoryMap, Region};
use crate::range::PhysRange;
use crate::units::MIB;

/// Why D cannot be started from a boot loader, or is not where it must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The hibernation kernel is not a usable bzImage.
    Kernel(crate::load::bzimage::Error),
    /// Its boot protocol predates `pref_address` (2.10).
    OldProtocol { version: u16 },
    /// The region's start does not suit the kernel's alignment.
    Misaligned { start: u64, alignment: u64 },
    /// The kernel, decompressed, does not fit the region with room to spare.
    TooBig { init_size: u64, region: u64 },
    /// D's kernel image (`what`, from `/proc/iomem`) lies outside the region.
    KernelOutside { what: String, start: u64, end: u64 },
    /// D's kernel may allocate RAM outside the region and low memory.
    RamOutside { start: u64, end: u64 },
    /// D's `/proc/iomem` lists no kernel image at all.
    NoKernelListed,
    /// A's memory at these addresses (from the image) is not RAM in the
    /// firmware's map of this machine.
    RamMissing { start: u64, end: u64 },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Kernel(e) => write!(f, "the hibernation kernel: {e}"),
            Error::OldProtocol { version } => {
                write!(f, "the hibernation kernel's boot protocol {}.{} has no preferred load address (2.10 or later needed)", version >> 8, version & 0xff)
            }
            Error::Misaligned { start, alignment } => {
                write!(f, "the kjump region at {start:#x} is not aligned to the kernel's {alignment:#x}")
            }
            Error::TooBig { init_size, region } => {
                write!(
                    f,
                    "the hibernation kernel needs {} MiB at its load address, the region has {} MiB (use a larger --region-size)",
                    init_size.div_ceil(MIB),
                    region / MIB
                )
            }
            Error::KernelOutside { what, start, end } => {
                write!(f, "this kernel's {what} is at {start:#x}-{end:#x}, outside the kjump region: the boot loader did not place it there")
            }
            Error::RamOutside { start, end } => {
                write!(f, "this kernel may use RAM at {start:#x}-{end:#x}, outside the kjump region: the boot entry's memmap= reservations are missing")
            }
            Error::NoKernelListed => f.write_str("/proc/iomem lists no kernel code: cannot tell where this kernel runs"),
            Error::RamMissing { start, end } => {
                write!(f, "the image holds A's memory at {start:#x}-{end:#x}, which this machine's firmware does not list as RAM (RAM changed?)")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Kernel(e) => Some(e),
            _ => None,
        }
    }
}

/// Room the region keeps beyond the decompressed kernel: page tables,
/// the initramfs, and D's own work.
const ROOM_BEYOND_KERNEL: u64 = 32 * MIB;

/// A copy of the bzImage `file` that asks to run at `region.start`.
pub fn kernel_at(file: &[u8], region: Region) -> Result<Vec<u8>, Error> {
    let bz = BzImage::parse(file).map_err(Error::Kernel)?;
    if bz.version < 0x020a {
        return Err(Error::OldProtocol { version: bz.version });
    }
    if region.start % bz.alignment != 0 || region.start < 16 * MIB {
        return Err(Error::Misaligned { start: region.start, alignment: bz.alignment });
    }
    if bz.init_size.saturating_add(ROOM_BEYOND_KERNEL) > region.len() {
        return Err(Error::TooBig { init_size: bz.init_size, region: region.len() });
    }
    let mut out = file.to_vec();
    if let Some(field) = out.get_mut(PREF_ADDRESS..PREF_ADDRESS + 8) {
        field.copy_from_slice(&region.start.to_le_bytes());
    }
    if let Ok(start) = u32::try_from(region.start) {
        if start.is_power_of_two() {
            if let Some(field) = out.get_mut(KERNEL_ALIGNMENT..KERNEL_ALIGNMENT + 4) {
                field.copy_from_slice(&start.to_le_bytes());
            }
        }
    }
    Ok(out)
}

/// `memmap=SIZE$START` for every part of A's RAM at or above 1 MiB outside
/// `region`, separated by spaces. (In a GRUB configuration file each `$`
/// must be written `\$`.)
pub fn reservations(map: &MemoryMap, region: Region) -> String {
    map.ram_outside(region, MIB).map(|r| format!("memmap={:#x}${:#x}", r.len(), r.start)).collect::<Vec<_>>().join(" ")
}

/// Checks, from this kernel's `/proc/iomem`, that it runs inside `region`
/// and may allocate RAM only there and below 1 MiB.
pub fn check_confined(iomem: &str, region: Region) -> Result<(), Error> {
    let mut saw_kernel = false;
    for line in iomem.lines() {
        let Some((range, name)) = line.split_once(" : ") else { continue };
        let Some((s, e)) = range.trim().split_once('-') else { continue };
        let (Ok(start), Ok(last)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else { continue };
        let end = last.saturating_add(1);
        let inside = region.contains_range(&PhysRange::new(start, end));
        let name = name.trim();
        if name.starts_with("Kernel ") {
            saw_kernel = true;
            if !inside {
                return Err(Error::KernelOutside { what: name.to_lowercase(), start, end });
            }
        } else if name == "System RAM" && end > MIB && !inside {
            return Err(Error::RamOutside { start, end });
        }
    }
    if saw_kernel {
        Ok(())
    } else {
        Err(Error::NoKernelListed)
    }
}

/// Checks that every range of A's memory the image holds above 1 MiB
/// (`image_ram`), and the region, is RAM in `firmware_ram`: the memory map the boot
/// loader passed (`/sys/kernel/boot_params/data`), which `memmap=` does not
/// change. C checks the same against its own map before it loads D; a
/// boot entry has no C, and a machine whose RAM shrank would otherwise get
/// A's pages written to nothing.
pub fn check_ram(firmware_ram: &[PhysRange], image_ram: &[PhysRange], region: Region) -> Result<(), Error> {
    let mut ram = firmware_ram.to_vec();
    ram.sort_unstable();
    let covered = |start: u64, end: u64| {
        let mut at = start;
        for r in &ram {
            if r.contains(at) {
                at = r.end;
            }
        }
        at >= end
    };
    // Low memory is A's backup copy, written back whole as on every
    // resume; the firmware lists a little less of it (the EBDA).
    for &PhysRange { start, end } in image_ram.iter().chain([&region]) {
        let start = start.max(MIB);
        if end > start && !covered(start, end) {
            return Err(Error::RamMissing { start, end });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::bzimage::tests::fake_bzimage;
    use crate::load::memmap::tests::QEMU_1G;

    fn region(start: u64, size: u64) -> Region {
        Region::new(start, start + size)
    }

    #[test]
    fn kernel_asks_for_the_region() {
        let file = fake_bzimage(4096);
        let out = kernel_at(&file, region(0x2000_0000, 64 * MIB)).unwrap();
        assert_eq!(out.len(), file.len());
        assert_eq!(crate::le::u64_at(&out, PREF_ADDRESS), Some(0x2000_0000));
        assert_eq!(crate::le::u32_at(&out, KERNEL_ALIGNMENT), Some(0x2000_0000));
        // Only those two fields change.
        let changed: Vec<usize> = (0..file.len()).filter(|&i| file[i] != out[i]).collect();
        assert!(changed.iter().all(|&i| (PREF_ADDRESS..PREF_ADDRESS + 8).contains(&i) || (KERNEL_ALIGNMENT..KERNEL_ALIGNMENT + 4).contains(&i)));
        // Not a power of two: the alignment stays, the preferred address moves.
        let out = kernel_at(&file, region(0x1e60_0000, 64 * MIB)).unwrap();
        assert_eq!(crate::le::u64_at(&out, PREF_ADDRESS), Some(0x1e60_0000));
        assert_eq!(out[KERNEL_ALIGNMENT..KERNEL_ALIGNMENT + 4], file[KERNEL_ALIGNMENT..KERNEL_ALIGNMENT + 4]);
    }

    #[test]
    fn kernels_that_cannot_be_placed_are_refused() {
        let file = fake_bzimage(4096);
        assert_eq!(kernel_at(&file, region(0x2010_0000, 64 * MIB)), Err(Error::Misaligned { start: 0x2010_0000, alignment: 0x20_0000 }));
        assert!(matches!(kernel_at(&file, region(0x20_0000, 64 * MIB)), Err(Error::Misaligned { .. })));
        let mut old = file.clone();
        old[0x206..0x208].copy_from_slice(&0x0209u16.to_le_bytes());
        assert!(matches!(kernel_at(&old, region(0x2000_0000, 64 * MIB)), Err(Error::OldProtocol { .. }) | Err(Error::Kernel(_))));
        let mut big = file.clone();
        big[0x260..0x264].copy_from_slice(&(40 * MIB as u32).to_le_bytes());
        assert!(matches!(kernel_at(&big, region(0x2000_0000, 64 * MIB)), Err(Error::TooBig { .. })));
        assert!(matches!(kernel_at(&file[..100], region(0x2000_0000, 64 * MIB)), Err(Error::Kernel(_))));
    }

    #[test]
    fn reservations_cover_ram_above_1mib_outside_the_region() {
        let map = MemoryMap::parse_iomem(QEMU_1G).unwrap();
        let r = region(0x2000_0000, 64 * MIB);
        assert_eq!(reservations(&map, r), "memmap=0x1ff00000$0x100000 memmap=0x1bfe0000$0x24000000");
    }

    const D_IOMEM: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000a0000-000bffff : PCI Bus 0000:00
00100000-1fffffff : Reserved
20000000-23ffffff : System RAM
  20000000-20bfffff : Kernel code
  20c00000-2116ffff : Kernel rodata
  21200000-21342fff : Kernel data
  21800000-219fffff : Kernel bss
24000000-3ffdffff : Reserved
";

    #[test]
    fn confinement_is_checked_from_iomem() {
        let r = PhysRange::new(0x2000_0000, 0x2400_0000);
        assert_eq!(check_confined(D_IOMEM, r), Ok(()));
        let at_16m = D_IOMEM.replace("  20000000-20bfffff : Kernel code", "  01000000-01bfffff : Kernel code");
        assert!(matches!(check_confined(&at_16m, r), Err(Error::KernelOutside { start: 0x100_0000, .. })));
        let unreserved = D_IOMEM.replace("24000000-3ffdffff : Reserved", "24000000-3ffdffff : System RAM");
        assert_eq!(check_confined(&unreserved, r), Err(Error::RamOutside { start: 0x2400_0000, end: 0x3ffe_0000 }));
        assert_eq!(check_confined("00001000-0009fbff : System RAM\n", r), Err(Error::NoKernelListed));
        assert_eq!(check_confined("garbage\n-\nzz-yy : Kernel code\n", r), Err(Error::NoKernelListed));
    }

    #[test]
    fn image_ram_must_be_firmware_ram() {
        let r = PhysRange::new;
        let firmware = [r(0x10_0000, 0x3ffe_0000), r(0x1000, 0x9fc00)];
        let image = [r(0, 0xa_0000), r(0x10_0000, 0x2000_0000), r(0x2400_0000, 0x3ffe_0000)];
        let region = r(0x2000_0000, 0x2400_0000);
        assert_eq!(check_ram(&firmware, &image, region), Ok(()));
        // Adjacent firmware ranges count as one.
        assert_eq!(check_ram(&[r(0x1000, 0x9fc00), r(0x10_0000, 0x2000_0000), r(0x2000_0000, 0x3ffe_0000)], &image, region), Ok(()));
        // RAM shrank to 512 MiB: the image's top range is gone, and the region.
        let small = [r(0x1000, 0x9fc00), r(0x10_0000, 0x1ffe_0000)];
        assert_eq!(check_ram(&small, &image, region), Err(Error::RamMissing { start: 0x10_0000, end: 0x2000_0000 }));
        assert_eq!(check_ram(&[], &image, region), Err(Error::RamMissing { start: 0x10_0000, end: 0x2000_0000 }));
    }
}
