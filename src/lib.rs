//! kjump: hibernation for Linux built on kexec jump.
//!
//! The main kernel (A) loads a small hibernation kernel (B) with
//! `KEXEC_PRESERVE_CONTEXT` and jumps into it; B's PID 1 (`kjump-init`)
//! reads A's memory through `/proc/vmcore` and, when it is done, jumps back.
//! Each module owns one idea; see the README for the whole flow.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod acpi;
pub mod ask;
pub mod boot_entry;
pub mod boot_params;
pub mod bzimage;
pub mod check;
pub mod cmdline;
pub mod config;
pub mod cpio;
pub mod crash_info;
pub mod crc32;
pub mod devmem;
pub mod direct_io;
pub mod discard;
pub mod drivers;
pub mod e820;
pub mod elf_core;
pub mod error;
pub mod free_pages;
pub mod freshness;
pub mod gzip;
pub mod image;
pub mod in_use;
pub mod initramfs;
pub mod iobench;
pub mod jump;
pub mod kexec;
pub mod keypage;
pub mod kimage;
pub mod layout;
pub mod lock;
pub mod machine;
pub mod mailbox;
pub mod memmap;
pub mod msi;
pub mod orders;
pub mod pagetable;
pub mod pid1;
pub mod pipeline;
pub mod progress;
pub mod purgatory;
pub mod resident;
pub mod restore;
pub mod save;
pub mod seal;
pub mod target;
pub mod tpm;
pub mod units;
pub mod vmcore;
pub mod vmcoreinfo;
pub mod wrap;
pub mod xxh64;

pub use error::Error;
