//! A resident hibernation kernel: B booted ahead of time.
//!
//! `kjump load` loads B and jumps to it as `kjump hibernate` would, but
//! with `kjump.resident=1`: B boots, checks what it can, and goes straight
//! back to A. A's kernel keeps the loaded image, and with it B's whole
//! memory, in the pages it set aside for the kjump region's contents; each
//! jump swaps them with the region. The next jump (`kjump hibernate`)
//! enters B where it left off, so a hibernation no longer waits for a
//! kernel to boot.
//!
//! B and A share one thing the swap does not cover: low memory (below
//! 640 KiB), where B's kernel keeps the code that starts its other CPUs.
//! The purgatory copies A's low memory aside only on the first entry. So
//! before B goes back it takes its other CPUs offline and keeps a copy of
//! its own low memory ([`park`]); when it is entered again it copies A's
//! low memory to where the purgatory put it the first time (where
//! `/proc/vmcore` reads it), puts its own back, and only then brings its
//! CPUs online again ([`unpark`]).
//!
//! A's side: `kjump load` records what it loaded in [`STATE_FILE`]
//! ([`Record`]), and the mailbox page B was given is the page of
//! [`MAILBOX_FILE`] (both on `/run`, a tmpfs, so a reboot forgets them
//! with the loaded image). `kjump hibernate` uses the resident B only if
//! the record matches this boot, the page is still at the address B
//! knows, and B would be loaded with exactly the same kernel, initramfs
//! and command line; otherwise it loads B as usual. Every load and every
//! return from a jump forgets the record ([`forget`]): B is entered again
//! only where it parked.

use std::path::Path;

use crate::range::PhysRange;
use crate::sys::devmem::DevMem;
use crate::Error;

/// Where A keeps what it knows of a resident B.
pub const RUN_DIR: &str = "/run/kjump";
/// The record of the resident B.
pub const STATE_FILE: &str = "/run/kjump/resident";
/// The file whose page is the resident B's mailbox.
pub const MAILBOX_FILE: &str = "/run/kjump/mailbox";

/// What `kjump load` loaded, as `kjump hibernate` checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `/proc/sys/kernel/random/boot_id` of the system that loaded B.
    pub boot_id: String,
    /// The mailbox page's physical address, as B was given it.
    pub mailbox: u64,
    /// The kjump region.
    pub region: PhysRange,
    /// [`fingerprint`] of what was loaded.
    pub fingerprint: u64,
}

impl Record {
    /// The record as the lines of [`STATE_FILE`].
    pub fn encode(&self) -> String {
        format!(
            "boot_id={}\nmailbox={:#x}\nregion={:#x}-{:#x}\nfingerprint={:#018x}\n",
            self.boot_id, self.mailbox, self.region.start, self.region.end, self.fingerprint
        )
    }

    /// Reads the lines [`Record::encode`] wrote; any other text is an error.
    pub fn decode(text: &str) -> Result<Self, Error> {
        let bad = |what: &str| Error::Msg(format!("{STATE_FILE}: {what}"));
        let hex = |v: &str, key: &str| v.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok()).ok_or_else(|| bad(&format!("bad {key}")));
        let (mut boot_id, mut mailbox, mut region, mut fingerprint) = (None, None, None, None);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line.split_once('=').ok_or_else(|| bad("a line without '='"))?;
            match key {
                "boot_id" if !value.is_empty() && value.len() <= 64 => boot_id = Some(value.to_string()),
                "mailbox" => mailbox = Some(hex(value, key)?),
                "region" => {
                    let (a, b) = value.split_once('-').ok_or_else(|| bad("bad region"))?;
                    let (a, b) = (hex(a, key)?, hex(b, key)?);
                    region = Some(PhysRange::non_empty(a, b).ok_or_else(|| bad("empty region"))?);
                }
                "fingerprint" => fingerprint = Some(hex(value, key)?),
                _ => return Err(bad(&format!("unknown line {line:?}"))),
            }
        }
        match (boot_id, mailbox, region, fingerprint) {
            (Some(boot_id), Some(mailbox), Some(region), Some(fingerprint)) => Ok(Record { boot_id, mailbox, region, fingerprint }),
            _ => Err(bad("incomplete")),
        }
    }
}

/// What identifies a load of B: its command line, kernel and initramfs.
pub fn fingerprint(cmdline: &str, kernel: &[u8], initrd: &[u8]) -> u64 {
    let parts = [xxhash_rust::xxh64::xxh64(cmdline.as_bytes(), 0), xxhash_rust::xxh64::xxh64(kernel, 0), xxhash_rust::xxh64::xxh64(initrd, 0)];
    let mut bytes = [0u8; 24];
    for (slot, v) in bytes.chunks_exact_mut(8).zip(parts) {
        slot.copy_from_slice(&v.to_le_bytes());
    }
    xxhash_rust::xxh64::xxh64(&bytes, 0)
}

/// This boot's identity.
pub fn boot_id() -> Result<String, Error> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io("reading /proc/sys/kernel/random/boot_id", e))
}

/// Writes `record` to [`STATE_FILE`] (through a temporary file and a rename).
pub fn record(r: &Record) -> Result<(), Error> {
    let tmp = format!("{STATE_FILE}.new");
    std::fs::write(&tmp, r.encode()).map_err(|e| Error::io(format!("writing {tmp}"), e))?;
    std::fs::rename(&tmp, STATE_FILE).map_err(|e| Error::io(format!("renaming {tmp} to {STATE_FILE}"), e))
}

/// The record of a resident B, if there is one. An unreadable record is
/// forgotten: the resident B is then reloaded, never guessed at.
pub fn recorded() -> Option<Record> {
    let text = std::fs::read_to_string(STATE_FILE).ok()?;
    match Record::decode(&text) {
        Ok(r) => Some(r),
        Err(_) => {
            forget();
            None
        }
    }
}

/// Forgets any resident B: it is not to be entered again.
pub fn forget() {
    let _ = std::fs::remove_file(STATE_FILE);
}

/// Makes [`RUN_DIR`] (owner only) if it is missing.
pub fn make_run_dir() -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).recursive(true).create(RUN_DIR) {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io(format!("creating {RUN_DIR} (kjump load keeps its record on /run)"), e)),
    }
}

/// The mailbox file's path.
pub fn mailbox_path() -> &'static Path {
    Path::new(MAILBOX_FILE)
}

/// Where the kernel lists CPUs.
const CPU_DIR: &str = "/sys/devices/system/cpu";

/// B's state set aside while A runs.
pub struct Parked {
    /// B's own low memory `[0, len)`.
    low: Vec<u8>,
    /// The CPUs taken offline, to bring back.
    cpus: Vec<u32>,
}

/// The online CPUs other than CPU 0, from `online` (e.g. "0-3,5").
fn secondary_cpus(online: &str) -> Result<Vec<u32>, Error> {
    let bad = || Error::Msg(format!("{CPU_DIR}/online: cannot read {:?}", online.trim()));
    let mut cpus = Vec::new();
    for part in online.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b - a > 4096 {
            return Err(bad());
        }
        cpus.extend((a..=b).filter(|&c| c != 0));
    }
    Ok(cpus)
}

fn set_online(cpu: u32, on: bool) -> Result<(), Error> {
    let path = format!("{CPU_DIR}/cpu{cpu}/online");
    std::fs::write(&path, if on { "1" } else { "0" }).map_err(|e| Error::io(format!("writing {path}"), e))
}

/// Takes B's other CPUs offline and keeps a copy of B's low memory
/// `[0, len)`. Call it last before the jump back to A.
pub fn park(mem: &DevMem, len: u64) -> Result<Parked, Error> {
    let online = std::fs::read_to_string(format!("{CPU_DIR}/online")).map_err(|e| Error::io(format!("reading {CPU_DIR}/online"), e))?;
    let cpus = secondary_cpus(&online)?;
    for &c in &cpus {
        set_online(c, false)?;
    }
    let low = mem.map(0, len as usize)?.bytes().to_vec();
    Ok(Parked { low, cpus })
}

/// B entered again: A's low memory, as it is now, goes to `backup` (where
/// the purgatory copied it on the first entry); B's own comes back; B's
/// CPUs come online.
pub fn unpark(mem: &DevMem, backup: u64, parked: Parked) -> Result<(), Error> {
    let len = parked.low.len() as u64;
    mem.copy(0, backup, len)?;
    mem.map(0, len as usize)?.bytes_mut().copy_from_slice(&parked.low);
    for &c in &parked.cpus {
        set_online(c, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, secondary_cpus, Record};
    use crate::range::PhysRange;

    fn sample() -> Record {
        Record {
            boot_id: "0b3f2a6e-2c1b-4e0c-9f5a-1c2d3e4f5a6b".into(),
            mailbox: 0x11a93000,
            region: PhysRange::new(0x2000_0000, 0x2400_0000),
            fingerprint: 0x0123_4567_89ab_cdef,
        }
    }

    #[test]
    fn a_record_reads_back() {
        let r = sample();
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn a_damaged_record_is_refused() {
        let good = sample().encode();
        for bad in [
            String::new(),
            good.replace("fingerprint=", "fingerprint=zz"),
            good.replace("region=0x20000000-0x24000000", "region=0x24000000-0x20000000"),
            good.replace("mailbox=0x", "mailbox="),
            format!("{good}extra=1\n"),
            good.lines().take(3).collect::<Vec<_>>().join("\n"),
            "boot_id\n".into(),
        ] {
            assert!(Record::decode(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_sees_every_part() {
        let base = fingerprint("a b", b"kernel", b"initrd");
        assert_eq!(base, fingerprint("a b", b"kernel", b"initrd"));
        assert_ne!(base, fingerprint("a c", b"kernel", b"initrd"));
        assert_ne!(base, fingerprint("a b", b"kernel!", b"initrd"));
        assert_ne!(base, fingerprint("a b", b"kernel", b"initrd!"));
    }

    #[test]
    fn secondary_cpus_leave_out_cpu0() {
        assert_eq!(secondary_cpus("0\n").unwrap(), Vec::<u32>::new());
        assert_eq!(secondary_cpus("0-3\n").unwrap(), vec![1, 2, 3]);
        assert_eq!(secondary_cpus("0,2-3,5").unwrap(), vec![2, 3, 5]);
    }

    #[test]
    fn secondary_cpus_refuse_nonsense() {
        for bad in ["x", "3-1", "0-99999999", "-", "1-"] {
            assert!(secondary_cpus(bad).is_err(), "{bad}");
        }
    }
}
