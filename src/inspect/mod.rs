//! B reading A: A's memory through `/proc/vmcore` (`vmcore`, an ELF core
//! file read with `elf`, kjump's one ELF64 reader), A's kernel's
//! own description of itself (`vmcoreinfo`), its page tables
//! (`pagetable`), which of its pages are free (`free_pages`), and the kexec
//! image A loaded, to tell kjump's own pages from A's (`kimage`).

pub mod elf;
pub mod vmcore;
pub mod vmcoreinfo;
pub mod pagetable;
pub mod free_pages;
pub mod kimage;
