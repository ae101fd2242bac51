//! B reading A: A's memory through `/proc/vmcore` (`vmcore`), A's kernel's
//! own description of itself (`vmcoreinfo`), its page tables
//! (`pagetable`), which of its pages are free (`free_pages`), and the kexec
//! image A loaded, to tell kjump's own pages from A's (`kimage`).

pub mod vmcore;
pub mod vmcoreinfo;
pub mod pagetable;
pub mod free_pages;
pub mod kimage;
