//! The `kexec_load(2)` system call and the jump (`reboot(LINUX_REBOOT_CMD_KEXEC)`).
//!
//! Segments are checked here the way `kernel/kexec_core.c`'s
//! `sanity_check_segment_list` checks them, so a bad plan is refused with a
//! reason before the kernel answers a bare `EINVAL`.

use core::fmt;

use crate::units::PAGE_SIZE;

/// `KEXEC_PRESERVE_CONTEXT`: keep the current kernel's state to come back to.
pub const KEXEC_PRESERVE_CONTEXT: u64 = 0x2;
/// `KEXEC_ARCH_X86_64`, in the flags' upper half.
pub const KEXEC_ARCH_X86_64: u64 = 62 << 16;
/// The kernel's limit on segments (`KEXEC_SEGMENT_MAX`).
pub const SEGMENT_MAX: usize = 16;

/// One piece of the image: `buf` is copied to physical `mem`, the rest of
/// `memsz` is zero-filled.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Bytes to load.
    pub buf: &'a [u8],
    /// Physical destination, page aligned.
    pub mem: u64,
    /// Bytes reserved at the destination, page aligned, at least `buf.len()`.
    pub memsz: u64,
}

/// Why a segment list is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No segments, or more than [`SEGMENT_MAX`].
    BadCount {
        /// The number of segments given.
        count: usize,
    },
    /// A destination or size that is not page aligned.
    Unaligned {
        /// The segment's destination (physical address).
        mem: u64,
    },
    /// A segment of zero size (the kernel treats it as covering everything).
    Empty {
        /// The segment's destination (physical address).
        mem: u64,
    },
    /// More bytes than the segment's memory size.
    BufferTooLarge {
        /// The segment's destination (physical address).
        mem: u64,
    },
    /// A segment that wraps around the address space.
    Overflow {
        /// The segment's destination (physical address).
        mem: u64,
    },
    /// Two segments overlap.
    Overlap {
        /// One segment's destination (physical address).
        a: u64,
        /// The other's.
        b: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadCount { count } => write!(f, "{count} segments (1 to {SEGMENT_MAX} allowed)"),
            Error::Unaligned { mem } => write!(f, "segment at {mem:#x} is not page aligned"),
            Error::Empty { mem } => write!(f, "segment at {mem:#x} is empty"),
            Error::BufferTooLarge { mem } => write!(f, "segment at {mem:#x} has more data than room"),
            Error::Overflow { mem } => write!(f, "segment at {mem:#x} wraps around"),
            Error::Overlap { a, b } => write!(f, "segments at {a:#x} and {b:#x} overlap"),
        }
    }
}

impl std::error::Error for Error {}

/// Checks a segment list the way the kernel will.
pub fn validate(segments: &[Segment<'_>]) -> Result<(), Error> {
    if segments.is_empty() || segments.len() > SEGMENT_MAX {
        return Err(Error::BadCount { count: segments.len() });
    }
    for s in segments {
        if s.mem % PAGE_SIZE != 0 || s.memsz % PAGE_SIZE != 0 {
            return Err(Error::Unaligned { mem: s.mem });
        }
        if s.memsz == 0 {
            return Err(Error::Empty { mem: s.mem });
        }
        if s.buf.len() as u64 > s.memsz {
            return Err(Error::BufferTooLarge { mem: s.mem });
        }
        s.mem.checked_add(s.memsz).ok_or(Error::Overflow { mem: s.mem })?;
    }
    for (i, a) in segments.iter().enumerate() {
        for b in &segments[i + 1..] {
            if a.mem < b.mem + b.memsz && b.mem < a.mem + a.memsz {
                return Err(Error::Overlap { a: a.mem, b: b.mem });
            }
        }
    }
    Ok(())
}

/// `struct kexec_segment` of the system call.
#[repr(C)]
struct RawSegment {
    buf: *const u8,
    bufsz: usize,
    mem: usize,
    memsz: usize,
}

/// Calls `kexec_load(entry, segments, flags)` after [`validate`].
pub fn load(entry: u64, segments: &[Segment<'_>], flags: u64) -> Result<(), crate::Error> {
    validate(segments)?;
    let raw: heapless::Vec<RawSegment, SEGMENT_MAX> =
        segments.iter().map(|s| RawSegment { buf: s.buf.as_ptr(), bufsz: s.buf.len(), mem: s.mem as usize, memsz: s.memsz as usize }).collect();
    raw_kexec_load(entry, &raw, flags).map_err(|e| crate::Error::sys("kexec_load", e))
}

fn raw_kexec_load(entry: u64, raw: &[RawSegment], flags: u64) -> Result<(), rustix::io::Errno> {
    let ret: isize;
    // SAFETY: kexec_load reads `raw.len()` `struct kexec_segment`s from the
    // pointer, and from each `buf` at most `bufsz` bytes; all of them are
    // borrowed for the duration of the call. It writes no user memory. The
    // syscall instruction clobbers only rcx and r11 besides rax.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") linux_raw_sys::general::__NR_kexec_load as isize => ret,
            in("rdi") entry,
            in("rsi") raw.len(),
            in("rdx") raw.as_ptr(),
            in("r10") flags,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        Err(rustix::io::Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(())
    }
}

/// Whether the running kernel accepts `KEXEC_PRESERVE_CONTEXT` (has
/// `CONFIG_KEXEC_JUMP`). It calls `kexec_load` with no segments, which
/// unloads a loaded kexec image: call it only when `/sys/kernel/kexec_loaded`
/// reads 0. `Err` carries the errno of a refusal that says nothing about
/// the flag (EPERM: no CAP_SYS_BOOT, or lockdown).
pub fn probe_preserve_context() -> Result<bool, rustix::io::Errno> {
    match raw_kexec_load(0, &[], KEXEC_PRESERVE_CONTEXT) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::INVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Unloads the loaded kexec image (`kexec_load` with no segments), after
/// a jump returned: the image then holds the peer kernel as it was when it
/// jumped back, and entering it again would resume that kernel where it
/// stopped.
pub fn unload() -> Result<(), crate::Error> {
    raw_kexec_load(0, &[], 0).map_err(|e| crate::Error::sys("unloading the kexec image (kexec_load with no segments)", e))
}

/// Jumps into the loaded image. With a preserve-context image this returns
/// `Ok` when the image jumps back.
pub fn jump() -> Result<(), crate::Error> {
    rustix::system::reboot(rustix::system::RebootCommand::Kexec).map_err(|e| crate::Error::sys("reboot(LINUX_REBOOT_CMD_KEXEC)", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(mem: u64, memsz: u64, buf: &'static [u8]) -> Segment<'static> {
        Segment { buf, mem, memsz }
    }

    #[test]
    fn validation() {
        assert_eq!(validate(&[]), Err(Error::BadCount { count: 0 }));
        assert_eq!(validate(&[seg(0x1000, 0x1000, b"x")]), Ok(()));
        assert_eq!(validate(&[seg(0x1001, 0x1000, b"")]), Err(Error::Unaligned { mem: 0x1001 }));
        assert_eq!(validate(&[seg(0x1000, 0x100, b"")]), Err(Error::Unaligned { mem: 0x1000 }));
        assert_eq!(validate(&[seg(0x1000, 0, b"")]), Err(Error::Empty { mem: 0x1000 }));
        assert_eq!(validate(&[seg(!0xfff, 0x2000, b"")]), Err(Error::Overflow { mem: !0xfff }));
        assert_eq!(validate(&[seg(0x1000, 0x2000, b""), seg(0x2000, 0x1000, b"")]), Err(Error::Overlap { a: 0x1000, b: 0x2000 }));
        let big = [0u8; 0x1001];
        assert_eq!(validate(&[Segment { buf: &big, mem: 0x1000, memsz: 0x1000 }]), Err(Error::BufferTooLarge { mem: 0x1000 }));
        let many: Vec<_> = (0..17).map(|i| seg(i * 0x1000, 0x1000, b"")).collect();
        assert_eq!(validate(&many), Err(Error::BadCount { count: 17 }));
    }
}
