//! The error type of kjump's orchestration code: one variant per source,
//! each printed as one line that says what was being done.

use core::fmt;

/// Anything that can stop a kjump operation.
#[derive(Debug)]
pub enum Error {
    /// A system call failed while doing the named thing.
    Sys {
        /// What was being done, as the message starts ("mapping an I/O buffer").
        doing: String,
        /// The errno the kernel returned.
        errno: rustix::io::Errno,
    },
    /// A file could not be read or written.
    Io {
        /// What was being done, as the message starts.
        doing: String,
        /// The error the standard library returned.
        err: std::io::Error,
    },
    /// The hibernation kernel is not a usable bzImage.
    BzImage(crate::load::bzimage::Error),
    /// The kernel command line could not be understood.
    Cmdline(crate::handoff::cmdline::Error),
    /// The memory map could not be read or has no room for the region.
    MemMap(crate::load::memmap::Error),
    /// The kexec segments could not be laid out.
    Layout(crate::load::layout::Error),
    /// The kexec segments are not acceptable to `kexec_load`.
    Kexec(crate::sys::kexec::Error),
    /// The zero page could not be built.
    BootParams(crate::load::boot_params::Error),
    /// The ELF core header could not be built.
    ElfCore(crate::load::elf_core::Error),
    /// An image is malformed.
    Image(crate::image::Error),
    /// The initramfs could not be written.
    Cpio(crate::init::cpio::Error),
    /// Anything else, already worded for the user.
    Msg(String),
}

impl Error {
    /// A failed system call, with what was being done.
    pub fn sys(doing: impl Into<String>, errno: rustix::io::Errno) -> Self {
        Error::Sys { doing: doing.into(), errno }
    }

    /// A failed file operation, with what was being done.
    pub fn io(doing: impl Into<String>, err: std::io::Error) -> Self {
        Error::Io { doing: doing.into(), err }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys { doing, errno } => write!(f, "{doing}: {errno}"),
            Error::Io { doing, err } => write!(f, "{doing}: {err}"),
            Error::BzImage(e) => write!(f, "hibernation kernel: {e}"),
            Error::Cmdline(e) => write!(f, "kernel command line: {e}"),
            Error::MemMap(e) => write!(f, "memory map: {e}"),
            Error::Layout(e) => write!(f, "kjump region: {e}"),
            Error::Kexec(e) => write!(f, "kexec segments: {e}"),
            Error::BootParams(e) => write!(f, "boot_params: {e}"),
            Error::ElfCore(e) => write!(f, "ELF core header: {e}"),
            Error::Image(e) => write!(f, "image: {e}"),
            Error::Cpio(e) => write!(f, "initramfs: {e}"),
            Error::Msg(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    /// The error this one wraps: the errno, the I/O error or the module's
    /// own error. A [`Error::Msg`] wraps none.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sys { errno, .. } => Some(errno),
            Error::Io { err, .. } => Some(err),
            Error::BzImage(e) => Some(e),
            Error::Cmdline(e) => Some(e),
            Error::MemMap(e) => Some(e),
            Error::Layout(e) => Some(e),
            Error::Kexec(e) => Some(e),
            Error::BootParams(e) => Some(e),
            Error::ElfCore(e) => Some(e),
            Error::Image(e) => Some(e),
            Error::Cpio(e) => Some(e),
            Error::Msg(_) => None,
        }
    }
}

macro_rules! from_module {
    ($($error:ty => $variant:ident),*) => {$(
        impl From<$error> for Error {
            fn from(e: $error) -> Self { Error::$variant(e) }
        }
    )*};
}
from_module!(crate::load::bzimage::Error => BzImage, crate::handoff::cmdline::Error => Cmdline, crate::load::memmap::Error => MemMap,
    crate::load::layout::Error => Layout, crate::sys::kexec::Error => Kexec, crate::load::boot_params::Error => BootParams,
    crate::load::elf_core::Error => ElfCore, crate::init::cpio::Error => Cpio, crate::image::Error => Image);

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn source_is_the_wrapped_error() {
        let sys = Error::sys("opening /dev/mem", rustix::io::Errno::ACCESS);
        let errno = sys.source().and_then(|s| s.downcast_ref::<rustix::io::Errno>());
        assert_eq!(errno, Some(&rustix::io::Errno::ACCESS));

        let io = Error::io("reading /proc/iomem", std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        let inner = io.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("an io::Error");
        assert_eq!((inner.kind(), inner.to_string()), (std::io::ErrorKind::NotFound, "gone".to_string()));

        let bad = crate::init::cpio::Error::BadName { name: "../x".into() };
        let cpio = Error::from(bad.clone());
        assert_eq!(cpio.source().and_then(|s| s.downcast_ref::<crate::init::cpio::Error>()), Some(&bad));
        assert_eq!(cpio.to_string(), format!("initramfs: {}", cpio.source().map(ToString::to_string).unwrap_or_default()));

        assert!(Error::Msg("anything".into()).source().is_none());
    }
}
