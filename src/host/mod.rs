//! A and C, before a jump: what the `kjump` command decides on the running
//! system. Whether this machine can hibernate (`check`, `drivers`), the
//! settings (`config`), one command at a time (`lock`), this machine's
//! identity (`machine`), the boot loader entry that starts D directly
//! (`boot_entry`), what each kernel's initramfs was built with
//! (`initramfs_digest`), and the keys of encrypted images: wrapping them
//! (`wrap`), sealing them to the TPM (`tpm`), asking for a passphrase (`ask`);
//! and around a hibernation: what systemd's sleep units do when kjump takes
//! their place (`sleep`), and how the last one went (`outcome`).

pub mod check;
pub mod drivers;
pub mod config;
pub mod lock;
pub mod machine;
pub mod boot_entry;
pub mod initramfs_digest;
pub mod wrap;
pub mod tpm;
pub mod ask;
pub mod sleep;
pub mod outcome;
