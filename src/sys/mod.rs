//! The system's edges that need more than rustix gives: physical memory
//! through `/dev/mem` (`devmem`), page-aligned O_DIRECT writes and reads
//! (`direct_io`), and the `kexec_load(2)` system call and the jump
//! (`kexec`).

pub mod devmem;
pub mod direct_io;
pub mod kexec;
