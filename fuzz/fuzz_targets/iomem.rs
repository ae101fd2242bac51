//! A's memory map (`MemoryMap::parse_iomem`, from `/proc/iomem`) and what
//! kjump computes from it: the kjump region (`choose_region`), A's low
//! memory, B's layout in the region (`layout::plan`: B's E820 map, the
//! PT_LOADs of `/proc/vmcore`, the ELF core header).

#![no_main]

use kjump::load::bzimage::{BzImage, XLF_KERNEL_64};
use kjump::load::layout::{self, Inputs};
use kjump::load::memmap::MemoryMap;
use libfuzzer_sys::fuzz_target;

/// A small valid bzImage: 4 setup sectors, protocol 2.15, 64-bit, relocatable.
fn bzimage() -> Vec<u8> {
    let mut f = vec![0u8; 5 * 512 + 4096];
    f[0x1f1] = 4;
    f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    f[0x201] = 0x6a;
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    f[0x234] = 1;
    f[0x236..0x238].copy_from_slice(&XLF_KERNEL_64.to_le_bytes());
    f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
    f[0x260..0x264].copy_from_slice(&(16u32 << 20).to_le_bytes());
    f
}

fuzz_target!(|data: &[u8]| {
    // `/proc/iomem` is read with `read_to_string`: only UTF-8 gets here.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(map) = MemoryMap::parse_iomem(text) else { return };
    assert!(map.ranges().windows(2).all(|w| w[0].end <= w[1].start));
    assert!(map.low_memory_end() <= 1 << 20);
    let _ = map.ram_bytes();
    let file = bzimage();
    let bz = BzImage::parse(&file).expect("fixed bzImage");
    let notes = [vec![0u8; 100]];
    for size in [0, 64 << 20, 1 << 30, u64::MAX] {
        let Ok(region) = map.choose_region(size) else { continue };
        assert!(region.start <= region.end && region.end <= 1 << 32);
        assert_eq!(region.start % (2 << 20), 0);
        assert!(map.ram().any(|r| r.start <= region.start && region.end <= r.end));
        let inputs = Inputs { map: &map, region, kernel: &bz, initrd: &[0u8; 4096], cmdline: "console=ttyS0", notes: &notes, acpi_rsdp: 0, map_a_ram: false, key_page: None };
        if let Ok(plan) = layout::plan(&inputs) {
            assert!(plan.backup_len <= 1 << 20);
            for set_region_aside in [true, false] {
                let _ = kjump::sys::kexec::validate(&plan.kexec_segments(set_region_aside));
            }
        }
    }
});
