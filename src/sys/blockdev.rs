//! Runs in A, B and D: the block-device ioctls kjump needs, each a safe
//! function over an open device (rustix has no wrappers for these).

use std::os::fd::AsFd;

use rustix::io::Errno;
use rustix::ioctl::{ioctl, opcode, NoArg, Opcode, Setter};

/// `BLKDISCARD`, `_IO(0x12, 119)`: discard `[start, start + len)` of a block device.
const BLKDISCARD: Opcode = opcode::none(0x12, 119);
/// `BLKFLSBUF`, `_IO(0x12, 97)`: drop a block device's cached data.
const BLKFLSBUF: Opcode = opcode::none(0x12, 97);
/// `BLKRRPART`, `_IO(0x12, 95)`: read a disk's partition table again.
const BLKRRPART: Opcode = opcode::none(0x12, 95);

/// Discards `[start, start + len)` of the block device `dev`.
pub fn discard(dev: impl AsFd, start: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: BLKDISCARD takes a pointer to two u64 (start, length),
    // which is exactly the input given; the kernel only reads it.
    unsafe { ioctl(dev, Setter::<BLKDISCARD, [u64; 2]>::new([start, len])) }
}

/// Drops the block device's cached data (`BLKFLSBUF`).
pub fn flush_buffers(dev: impl AsFd) -> Result<(), Errno> {
    // SAFETY: BLKFLSBUF takes no argument.
    unsafe { ioctl(dev, NoArg::<BLKFLSBUF>::new()) }
}

/// Has the kernel read the disk's partition table again (`BLKRRPART`).
pub fn reread_partitions(dev: impl AsFd) -> Result<(), Errno> {
    // SAFETY: BLKRRPART takes no argument.
    unsafe { ioctl(dev, NoArg::<BLKRRPART>::new()) }
}
