//! What crosses between kernels, written by one and read by another: B's
//! and D's orders on their command line (`orders`, read through
//! `cmdline`), the mailbox page where B or D reports to A (`mailbox`), a B
//! booted ahead of time (`resident`), and an image's key as C hands it to D
//! (`keypage`).

pub mod orders;
pub mod cmdline;
pub mod mailbox;
pub mod resident;
pub mod keypage;
