//! PID 1 of B and D (`kjump-init`): its duties as PID 1 (`pid1`), the
//! hibernation initramfs it runs from (`initramfs`, `cpio`, `gzip`), and
//! progress on the console (`progress`).

pub mod pid1;
pub mod initramfs;
pub mod cpio;
pub mod gzip;
pub mod progress;
