//! Runs in A and C: one kjump command at a time.
//!
//! The kernel holds a single kexec image, and `kjump hibernate`, `load`,
//! `check --jump`, `resume` and `unload` each load, enter or drop it: two
//! at once would start the wrong kernel, or one with the other's orders.
//! Each takes [`take`] before its checks and holds it until it returns
//! (across the jump: a hibernation keeps it while A is away).

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;

use rustix::fs::{flock, FlockOperation};

use crate::Error;

/// Where the lock lives: on `/run` (a tmpfs, so a reboot forgets it), in
/// kjump's own directory.
pub const LOCK_FILE: &str = "/run/kjump/lock";

/// The lock, held while this value lives (the kernel drops it when the
/// file is closed, even if kjump is killed).
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

/// Takes the lock at `path` for `what` (the command, for the message),
/// without waiting: another kjump command running is an error.
pub fn take_at(path: &str, what: &str) -> Result<Lock, Error> {
    if let Some(dir) = std::path::Path::new(path).parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).recursive(true).create(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| Error::io(format!("opening the lock {path}"), e))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Lock(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => {
            Err(Error::Msg(format!("{what}: another kjump command is running (it holds {path}); wait for it to finish, then try again")))
        }
        Err(e) => Err(Error::sys(format!("locking {path}"), e)),
    }
}

/// Takes kjump's lock ([`LOCK_FILE`]) for `what`.
pub fn take(what: &str) -> Result<Lock, Error> {
    take_at(LOCK_FILE, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("kjump-lock-test-{}", std::process::id()));
        let path = dir.join("lock");
        let path = path.to_str().unwrap();
        let first = take_at(path, "hibernate").unwrap();
        let e = take_at(path, "load").unwrap_err().to_string();
        assert!(e.starts_with("load: another kjump command is running"), "{e}");
        drop(first);
        let again = take_at(path, "load");
        assert!(again.is_ok(), "{again:?}");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
