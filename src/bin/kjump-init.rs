//! `kjump-init`: PID 1 of the hibernation kernel (B) and the restore
//! kernel (D). It reads its orders from `/proc/cmdline` (see
//! `kjump::cmdline`), does them, and ends by jumping back to A or by
//! powering off. It never exits.

use std::convert::Infallible;

use kjump::cmdline::{self, Mode, Params};
use kjump::devmem::DevMem;
use kjump::{jump, pid1, say, Error};

fn main() {
    pid1::ensure_console();
    pid1::install_panic_hook();
    match run() {
        Ok(never) => match never {},
        Err(e) => pid1::fatal(&e),
    }
}

fn run() -> Result<Infallible, Error> {
    pid1::mount_basics()?;
    let line = std::fs::read_to_string("/proc/cmdline").map_err(|e| Error::io("reading /proc/cmdline", e))?;
    let params = cmdline::parse(&line)?;
    match params.mode {
        Some(Mode::Roundtrip) => roundtrip(&params),
        Some(Mode::Save) | Some(Mode::Restore) => {
            Err(Error::Msg("kjump.mode=save and restore are not in this version of kjump-init".into()))
        }
        None => Err(Error::Msg("no kjump.mode= on the kernel command line: this initramfs is for kjump's hibernation kernel".into())),
    }
}

/// `kjump check --jump`: show what B got from A, then go straight back.
fn roundtrip(p: &Params) -> Result<Infallible, Error> {
    say!("mode roundtrip");
    let entry = p
        .jump_back_entry
        .ok_or_else(|| Error::Msg("no kexec_jump_back_entry= on the command line: A's purgatory did not run".into()))?;
    let backup = p.backup_addr.ok_or_else(|| Error::Msg("no kexec_backup= on the command line".into()))?;
    let backup_size = p.backup_size.ok_or_else(|| Error::Msg("no kjump.backup_size= on the command line".into()))?;
    say!("jump-back entry {entry:#x} (page frame {})", entry >> 12);
    say!("A's low memory backup at {backup:#x}, {} KiB", backup_size / 1024);
    let vmcore = rustix::fs::stat("/proc/vmcore").map_err(|e| Error::sys("looking for /proc/vmcore", e))?;
    say!("/proc/vmcore is {} bytes ({} MiB of A's memory)", vmcore.st_size, vmcore.st_size >> 20);
    let mem = DevMem::open()?;
    jump::load_jump_back(&mem, entry)?;
    jump::restore_low_memory(&mem, backup, backup_size)?;
    say!("restored A's low memory; jumping back to A");
    jump::jump_to_loaded()?;
    Err(Error::Msg("the jump back to A returned to B".into()))
}
