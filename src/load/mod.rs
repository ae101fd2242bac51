//! The kexec loader, in A and C: A's memory map (`memmap`), the kjump
//! region and what goes where in it (`layout`), the kernel image
//! (`bzimage`) and its zero page (`boot_params`, `e820`, `acpi`, `msi`),
//! the ELF core header B's kernel turns into `/proc/vmcore` (`elf_core`,
//! `crash_info`), the code between the kernels (`purgatory`), and the jump
//! itself in both directions (`jump`).

pub mod memmap;
pub mod layout;
pub mod bzimage;
pub mod boot_params;
pub mod e820;
pub mod acpi;
pub mod msi;
pub mod elf_core;
pub mod crash_info;
pub mod purgatory;
pub mod jump;
