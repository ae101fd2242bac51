//! kjump: hibernation for Linux built on kexec jump.
//!
//! The flow, and the folder each step lives in. In the main kernel (A),
//! `kjump hibernate` checks this machine and its settings (`host`), takes
//! a region of A's RAM and loads the hibernation kernel (B) into it with
//! `KEXEC_PRESERVE_CONTEXT` (`load`), leaves B its orders and a mailbox
//! (`handoff`), and jumps. B's PID 1, `kjump-init` (`init`), reads A's
//! memory through `/proc/vmcore` (`inspect`) and streams it into an image
//! on the target (`save`, in the format of `image`, on the disk or file
//! of `target`), then powers off (or jumps back to A). At the next boot
//! (C), `kjump resume` checks that image against this machine, gets its
//! key (`host`), and loads the same kernel as the restore kernel (D) the
//! same way; D writes A's memory back from the image (`restore`) and
//! jumps into A, which carries on. `sys` holds the system calls and
//! mappings rustix does not cover.

#![deny(unsafe_op_in_unsafe_fn)]
// Unsafe code lives in `sys` and the purgatory only; every unsafe block
// says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod error;
pub mod le;
pub mod units;
pub mod range;

pub mod host;
pub mod load;
pub mod handoff;
pub mod init;
pub mod inspect;
pub mod save;
pub mod restore;
pub mod image;
pub mod target;
pub mod sys;

pub use error::Error;
