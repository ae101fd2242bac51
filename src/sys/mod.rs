//! The system's edges that need more than rustix gives: physical memory
//! through `/dev/mem` (`devmem`), page-aligned O_DIRECT writes and reads
//! (`direct_io`), the block-device ioctls (`blockdev`), every memory
//! mapping (`mapping`: anonymous or of a file, locked, read-only; the
//! others map through it), and the `kexec_load(2)` system call and the
//! jump (`kexec`).

// The system calls and mappings rustix leaves unsafe.
#![allow(unsafe_code)]

pub mod devmem;
pub mod direct_io;
pub mod blockdev;
pub mod mapping;
pub mod kexec;
