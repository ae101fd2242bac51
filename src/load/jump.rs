//! The two directions of a kexec jump.
//!
//! A → B: [`load_hibernation_kernel`] lays B out in the kjump region and
//! loads it with `KEXEC_PRESERVE_CONTEXT`; [`jump_to_loaded`] jumps and
//! returns when B comes back.
//!
//! B → A: [`restore_low_memory`] writes A's low memory back from the
//! purgatory's copy, [`load_jump_back`] loads an image whose only segment
//! is A's re-entry page (its current bytes; this also makes B's
//! `relocate_kernel` identity-map that page), and [`jump_to_loaded`] goes.

use std::time::Duration;

use crate::load::bzimage::BzImage;
use crate::load::layout::{self, Plan};
use crate::load::memmap::{MemoryMap, Region};
use crate::sys::devmem::DevMem;
use crate::sys::kexec::{self, Segment, KEXEC_ARCH_X86_64, KEXEC_PRESERVE_CONTEXT};
use crate::units::PAGE_SIZE;
use crate::Error;

/// What B is to be loaded with.
#[derive(Clone, Debug)]
pub struct HibernationKernel {
    /// The bzImage bytes.
    pub kernel: Vec<u8>,
    /// The initramfs bytes.
    pub initrd: Vec<u8>,
    /// B's command line before the loader's and purgatory's additions.
    pub cmdline: String,
    /// Size of the kjump region.
    pub region_size: u64,
    /// Whether the loading kernel comes back (A): then every page of the
    /// region is covered by a segment, so that the swap sets A's pages
    /// there aside. C, which is not resumed, loads only what D needs.
    pub set_region_aside: bool,
    /// B is loaded to stay resident (`kjump load`): see
    /// [`layout::Inputs::map_a_ram`].
    pub resident: bool,
    /// An encrypted image's key for D ([`crate::handoff::keypage`]), wiped with
    /// this value.
    pub key_page: Option<Vec<u8>>,
}

impl Drop for HibernationKernel {
    /// Zeroes the copies of the kernel and initramfs before they go back
    /// to A's allocator. `kexec_load` has copied them; freed, their pages
    /// may wait on a CPU's free list, which B cannot tell from used memory
    /// (only the buddy allocator marks free pages), and B would store
    /// 4 MiB of incompressible bytes. Zero pages it leaves out for free.
    fn drop(&mut self) {
        for buf in [&mut self.kernel, &mut self.initrd] {
            buf.fill(0);
            // The writes must happen although nothing reads them again.
            std::hint::black_box(buf.as_slice());
        }
        if let Some(k) = &mut self.key_page {
            zeroize::Zeroize::zeroize(k);
        }
    }
}

/// What was loaded, for messages.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The region.
    pub region: Region,
    /// B's command line before the purgatory's additions.
    pub cmdline: String,
    /// Number of segments.
    pub segments: usize,
}

/// B and D read no keyboard or mouse: skipping the PS/2 controller's
/// driver saves its probe (0.4 s of each boot under QEMU) and leaves the
/// controller as A set it.
pub const NO_INPUT: &str = "initcall_blacklist=i8042_init";

/// The words on B's and D's command line that shorten their boot whatever
/// the target: kernel messages on the console only when they matter
/// (`quiet`), and no PS/2 probe ([`NO_INPUT`]); with
/// [`crate::load::msi::SKIP_ROUTING`] as well when the target's controller
/// uses MSI. `make bench` gives swsusp's resume boot the same words.
pub const BOOT_TRIM: [&str; 2] = ["quiet", NO_INPUT];

/// The kernel console arguments of the running kernel, to give B the same.
pub fn console_args(cmdline: &str) -> String {
    crate::handoff::cmdline::words(cmdline)
        .filter_map(Result::ok)
        .filter(|w| w.starts_with("console=") || w.starts_with("earlycon") || w.starts_with("earlyprintk"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads A's memory map and note buffers, plans B in the region and calls
/// `kexec_load` with `KEXEC_PRESERVE_CONTEXT`.
pub fn load_hibernation_kernel(hk: &HibernationKernel) -> Result<Loaded, Error> {
    let bz = BzImage::parse(&hk.kernel)?;
    let map = MemoryMap::read()?;
    let region = map.choose_region(hk.region_size)?;
    let notes = crate::load::crash_info::read_notes()?;
    let inputs = layout::Inputs {
        map: &map,
        region,
        kernel: &bz,
        initrd: &hk.initrd,
        cmdline: &hk.cmdline,
        notes: &notes,
        acpi_rsdp: crate::load::acpi::find_rsdp(),
        map_a_ram: hk.resident,
        key_page: hk.key_page.as_deref(),
    };
    let mut plan: Plan<'_> = layout::plan(&inputs)?;
    // B's and D's progress shows on the screen too, not only on a serial port.
    if let Some(si) = crate::load::boot_params::screen_info_of_this_boot() {
        plan.set_screen_info(&si);
    }
    let segments = plan.kexec_segments(hk.set_region_aside);
    // This load replaces any resident B (`kjump::handoff::resident`).
    crate::handoff::resident::forget();
    let loaded_bytes: u64 = segments.iter().map(|s| s.memsz).sum();
    kexec::load(plan.entry, &segments, KEXEC_PRESERVE_CONTEXT | KEXEC_ARCH_X86_64).map_err(|e| match e {
        Error::Sys { errno: rustix::io::Errno::NOMEM, .. } => Error::Msg(format!(
            "kexec_load: out of memory: this kernel needs {} MiB free to load the hibernation kernel into the kjump region",
            loaded_bytes.div_ceil(1 << 20)
        )),
        Error::Sys { errno: rustix::io::Errno::INVAL, .. } => {
            Error::Msg("kexec_load refused the image (EINVAL): the kernel lacks CONFIG_KEXEC_JUMP, or the region exceeds half of RAM".into())
        }
        other => other,
    })?;
    Ok(Loaded { region: plan.region, cmdline: plan.cmdline.clone(), segments: segments.len() })
}

/// Time since this kernel started, suspended time included
/// (`CLOCK_BOOTTIME`): what measures a jump away or a sleep, which
/// `std::time::Instant` (`CLOCK_MONOTONIC`) does not count.
pub fn boottime() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0).min(999_999_999))
}

/// Flushes file systems and jumps into the loaded image; returns how long
/// it was away (CLOCK_BOOTTIME, which counts the time spent in B).
pub fn jump_to_loaded() -> Result<Duration, Error> {
    rustix::fs::sync();
    // The last lines printed must leave the serial port before the jump
    // suspends it (they were lost now and then). Not a terminal: nothing
    // to wait for.
    let _ = rustix::termios::tcdrain(rustix::stdio::stdout());
    let _ = rustix::termios::tcdrain(rustix::stdio::stderr());
    let before = boottime();
    kexec::jump()?;
    Ok(boottime().saturating_sub(before))
}

/// Writes A's low memory `[0, len)` back from its copy at `backup`.
pub fn restore_low_memory(mem: &DevMem, backup: u64, len: u64) -> Result<(), Error> {
    mem.copy(backup, 0, len)
}

/// Loads the jump-back image: one 4 KiB segment at A's re-entry page with
/// that page's current bytes, entry at the re-entry address.
pub fn load_jump_back(mem: &DevMem, entry: u64) -> Result<(), Error> {
    load_jump_back_via(mem, entry, entry & !(PAGE_SIZE - 1))
}

/// Like [`load_jump_back`], with the one segment at `page_addr` (its
/// current bytes) instead of A's re-entry page.
///
/// A resident B needs this. On every jump the kernel swaps each segment's
/// page with its own copy, and again when the jump returns. With A's
/// re-entry page as the segment, A entering B again would have B's stale
/// copy swapped over that page just after A saved its CPU state there, and
/// B's later jump back would restore A with the state of the first jump.
/// A page of B's own that holds the same bytes across the jumps (the first
/// page of the low-memory backup) is swapped harmlessly. A's re-entry page
/// is then mapped for the jump only because B's map lists A's RAM as ACPI
/// tables ([`layout::Inputs::map_a_ram`]).
pub fn load_jump_back_via(mem: &DevMem, entry: u64, page_addr: u64) -> Result<(), Error> {
    let page = mem.read_page(page_addr)?;
    let seg = [Segment { buf: &page, mem: page_addr, memsz: PAGE_SIZE }];
    kexec::load(entry, &seg, KEXEC_PRESERVE_CONTEXT | KEXEC_ARCH_X86_64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn console_args_are_kept() {
        assert_eq!(
            super::console_args("root=/dev/vda console=tty0 quiet console=ttyS0,115200 earlyprintk=serial"),
            "console=tty0 console=ttyS0,115200 earlyprintk=serial"
        );
        assert_eq!(super::console_args("a=\"unclosed"), "");
    }
}
