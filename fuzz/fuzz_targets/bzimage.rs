//! The bzImage setup header (`kjump::load::bzimage::BzImage::parse`), and what is
//! built from a parsed one: the zero page (`kjump::load::boot_params::build`) and
//! the layout of B in a kjump region (`kjump::load::layout::plan`), which do
//! arithmetic on the header's sizes and alignment.

#![no_main]

use kjump::load::boot_params;
use kjump::load::bzimage::{BzImage, SETUP_HEADER_OFFSET};
use kjump::load::layout::{self, Inputs};
use kjump::load::memmap::MemoryMap;
use libfuzzer_sys::fuzz_target;

/// `/proc/iomem` of a 1 GiB QEMU guest.
const IOMEM: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000f0000-000fffff : Reserved
00100000-3ffdffff : System RAM
3ffe0000-3fffffff : Reserved
fffc0000-ffffffff : Reserved
";

fuzz_target!(|data: &[u8]| {
    let Ok(bz) = BzImage::parse(data) else { return };
    // The slices it hands out are parts of the file, in bounds.
    assert!(SETUP_HEADER_OFFSET + bz.setup_header.len() <= 0x290);
    assert!(bz.kernel.len() < data.len());
    assert!(bz.alignment.is_power_of_two());
    assert!(bz.init_size >= bz.kernel.len() as u64);

    let cfg = boot_params::Config { cmdline_addr: 0x1_2345_6000, initrd_addr: 0x3800_0000, initrd_size: 777, acpi_rsdp: 0, e820: &[] };
    let page = boot_params::build(&bz, &cfg).expect("a parsed bzImage gives a zero page");
    // The header is copied in (and some of its fields then set by kjump).
    assert_eq!(&page[0x202..0x208], &data[0x202..0x208]);

    let map = MemoryMap::parse_iomem(IOMEM).expect("fixed map");
    for size in [64 << 20, 256 << 20] {
        let Ok(region) = map.choose_region(size) else { continue };
        let notes = [vec![0u8; 100]];
        let inputs = Inputs { map: &map, region, kernel: &bz, initrd: &[0u8; 4096], cmdline: "console=ttyS0", notes: &notes, acpi_rsdp: 0, map_a_ram: false, key_page: None };
        if let Ok(plan) = layout::plan(&inputs) {
            assert!(plan.kernel_addr >= region.start && plan.kernel_addr < region.end);
            assert_eq!(plan.kernel_addr % bz.alignment.max(4096), 0);
            for set_region_aside in [true, false] {
                let _ = kjump::sys::kexec::validate(&plan.kexec_segments(set_region_aside));
            }
        }
    }
});
