//! Written in A and C, read in B and D: kjump's orders to the hibernation
//! or restore kernel, the `kjump.*` words of its command line.
//!
//! This is the contract that strands A if the two sides disagree, so it is
//! one typed value: [`Orders`] is written with `Display` by every producer
//! (`kjump hibernate`, `load`, `check --jump`, `resume`, `boot-entry`,
//! `bench-io`) and read back with [`Orders::from_params`] by `kjump-init`,
//! after [`crate::handoff::cmdline::parse`] has checked each word. The words the
//! loader adds (`kjump.region=`, `kjump.backup_size=`, `elfcorehdr=`) and
//! those the purgatory appends (`kexec_*`) are not orders: they describe
//! where B runs, and stay in [`Params`].

use core::fmt;

use crate::handoff::cmdline::{After, Mode, Params};
use crate::image::Compression;
use crate::target::{Identity, Target};

/// How long B and D wait for the target unless told otherwise, in seconds.
pub const DEFAULT_WAIT: u64 = 10;

/// What `kjump-init` is to do, with everything that mode needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Orders {
    /// Report what B found and go straight back (`kjump check --jump`).
    Roundtrip,
    /// Save A's memory (hibernate, snapshot, or park first when resident).
    Save(Save),
    /// Write A's memory back from the image and jump into A.
    Restore(Restore),
    /// Measure reading `/proc/vmcore` and the target (`kjump bench-io`).
    Bench(Bench),
}

/// B's orders to save.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Save {
    /// Where the image goes.
    pub target: Target,
    /// What B does once the image is committed.
    pub after: After,
    /// How pages are stored.
    pub compress: Compression,
    /// Seconds B waits for the target.
    pub wait: u64,
    /// A's mailbox page (A's request in, B's report out).
    pub mailbox: u64,
    /// A counts on its free pages being zero.
    pub zero_free: bool,
    /// Loaded by `kjump load`: park first, save when entered again.
    pub resident: bool,
    /// The target as A saw it, when A could tell.
    pub target_id: Option<Identity>,
}

/// D's orders to restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restore {
    /// Where the image is.
    pub target: Target,
    /// Seconds D waits for the target.
    pub wait: u64,
    /// Keep the image's data after the resume.
    pub keep: bool,
    /// Starts of D after which the image is given up.
    pub attempts: u32,
    /// A snapshot may be resumed.
    pub snapshot: bool,
    /// Started by a boot loader entry rather than by C.
    pub direct: bool,
}

/// B's orders to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bench {
    /// The target, which B overwrites.
    pub target: Target,
    /// Seconds B waits for the target.
    pub wait: u64,
    /// A's mailbox page.
    pub mailbox: u64,
}

/// Why a command line holds no usable orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No `kjump.mode=`: this is not a kernel kjump started.
    NoMode,
    /// A word the mode needs is missing.
    Missing {
        /// The mode that needs it (`kjump.mode=`'s value).
        mode: &'static str,
        /// The missing word's key (`kjump.target`).
        key: &'static str,
    },
    /// A value parsed as a word but means nothing here.
    Bad {
        /// The word's key (`kjump.compress`).
        key: &'static str,
        /// What is wrong with its value, worded for the user.
        why: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoMode => f.write_str("no kjump.mode= on the kernel command line: this initramfs is for kjump's hibernation kernel"),
            Error::Missing { mode, key } => write!(f, "kjump.mode={mode} needs {key}= on the command line"),
            Error::Bad { key, why } => write!(f, "{key}=: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for crate::Error {
    fn from(e: Error) -> Self {
        crate::Error::Msg(e.to_string())
    }
}

fn target(p: &Params<'_>, mode: &'static str) -> Result<Target, Error> {
    let text = p.target.ok_or(Error::Missing { mode, key: "kjump.target" })?;
    crate::target::parse(text).map_err(|e| Error::Bad { key: "kjump.target", why: e.to_string() })
}

impl Orders {
    /// The orders on a command line [`crate::handoff::cmdline::parse`] accepted.
    pub fn from_params(p: &Params<'_>) -> Result<Orders, Error> {
        let wait = p.wait_secs.unwrap_or(DEFAULT_WAIT);
        Ok(match p.mode.ok_or(Error::NoMode)? {
            Mode::Roundtrip => Orders::Roundtrip,
            Mode::Save => Orders::Save(Save {
                target: target(p, "save")?,
                after: p.after.unwrap_or(After::PowerOff),
                compress: match p.compress {
                    None => Compression::Lz4,
                    Some(c) => Compression::parse(c).ok_or_else(|| Error::Bad { key: "kjump.compress", why: format!("{c:?}: use lz4, deflate or none") })?,
                },
                wait,
                mailbox: p.mailbox.ok_or(Error::Missing { mode: "save", key: "kjump.mailbox" })?,
                zero_free: p.zero_free,
                resident: p.resident,
                target_id: p.target_id.map(|t| Identity::parse(t).map_err(|e| Error::Bad { key: "kjump.target_id", why: e.0.to_string() })).transpose()?,
            }),
            Mode::Restore => Orders::Restore(Restore {
                target: target(p, "restore")?,
                wait,
                keep: p.keep,
                attempts: p.max_attempts.unwrap_or(crate::restore::DEFAULT_MAX_ATTEMPTS),
                snapshot: p.snapshot,
                direct: p.direct,
            }),
            Mode::Bench => {
                Orders::Bench(Bench { target: target(p, "bench")?, wait, mailbox: p.mailbox.ok_or(Error::Missing { mode: "bench", key: "kjump.mailbox" })? })
            }
        })
    }
}

/// The `kjump.*` words, as B's and D's command line carries them.
impl fmt::Display for Orders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Orders::Roundtrip => f.write_str("kjump.mode=roundtrip"),
            Orders::Save(s) => {
                write!(
                    f,
                    "kjump.mode=save kjump.target={} kjump.after={} kjump.compress={} kjump.wait={} kjump.mailbox={:#x} kjump.zero_free={}",
                    s.target,
                    s.after.name(),
                    s.compress.name(),
                    s.wait,
                    s.mailbox,
                    u8::from(s.zero_free)
                )?;
                if s.resident {
                    f.write_str(" kjump.resident=1")?;
                }
                if let Some(id) = &s.target_id {
                    write!(f, " kjump.target_id={id}")?;
                }
                Ok(())
            }
            Orders::Restore(r) => {
                write!(f, "kjump.mode=restore kjump.target={} kjump.wait={} kjump.keep={} kjump.attempts={}", r.target, r.wait, u8::from(r.keep), r.attempts)?;
                if r.snapshot {
                    f.write_str(" kjump.snapshot=1")?;
                }
                if r.direct {
                    f.write_str(" kjump.direct=1")?;
                }
                Ok(())
            }
            Orders::Bench(b) => write!(f, "kjump.mode=bench kjump.target={} kjump.wait={} kjump.mailbox={:#x}", b.target, b.wait, b.mailbox),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(o: &Orders) -> Orders {
        let line = format!("console=ttyS0 rdinit=/kjump-init {o} nokaslr kjump.region=0x20000000-0x24000000");
        Orders::from_params(&crate::handoff::cmdline::parse(&line).unwrap()).unwrap()
    }

    fn target(t: &str) -> Target {
        crate::target::parse(t).unwrap()
    }

    #[test]
    fn every_mode_reads_back_as_it_was_written() {
        let all = [
            Orders::Roundtrip,
            Orders::Save(Save {
                target: target("/dev/vda"),
                after: After::Resume,
                compress: Compression::Deflate,
                wait: 3,
                mailbox: 0x1234000,
                zero_free: true,
                resident: true,
                target_id: Some(Identity::parse("sectors:2457600,partuuid:5e2c8f1a-7b3d-4c2e-9a10-3f6d2b8c4e01,serial:6b6a756d70").unwrap()),
            }),
            Orders::Save(Save {
                target: target("UUID=0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0:/kjump.img"),
                after: After::PowerOff,
                compress: Compression::Lz4,
                wait: 600,
                mailbox: 0x9000,
                zero_free: false,
                resident: false,
                target_id: None,
            }),
            Orders::Restore(Restore {
                target: target("PARTUUID=5e2c8f1a-7b3d-4c2e-9a10-3f6d2b8c4e01"),
                wait: 0,
                keep: true,
                attempts: 3,
                snapshot: true,
                direct: true,
            }),
            Orders::Restore(Restore { target: target("LABEL=kjump"), wait: 10, keep: false, attempts: 2, snapshot: false, direct: false }),
            Orders::Bench(Bench { target: target("/dev/nvme0n1p3"), wait: 1, mailbox: 0x5000 }),
        ];
        for o in &all {
            assert_eq!(&round_trip(o), o, "{o}");
        }
    }

    #[test]
    fn defaults_and_missing_words() {
        let p = crate::handoff::cmdline::parse("kjump.mode=restore kjump.target=/dev/vda").unwrap();
        let Orders::Restore(r) = Orders::from_params(&p).unwrap() else { panic!() };
        assert_eq!((r.wait, r.keep, r.attempts, r.snapshot, r.direct), (DEFAULT_WAIT, false, crate::restore::DEFAULT_MAX_ATTEMPTS, false, false));
        let p = crate::handoff::cmdline::parse("kjump.mode=save kjump.target=/dev/vda").unwrap();
        assert_eq!(Orders::from_params(&p), Err(Error::Missing { mode: "save", key: "kjump.mailbox" }));
        let p = crate::handoff::cmdline::parse("kjump.mode=bench kjump.mailbox=0x1000").unwrap();
        assert_eq!(Orders::from_params(&p), Err(Error::Missing { mode: "bench", key: "kjump.target" }));
        let p = crate::handoff::cmdline::parse("quiet").unwrap();
        assert_eq!(Orders::from_params(&p), Err(Error::NoMode));
        let p = crate::handoff::cmdline::parse("kjump.mode=save kjump.target=/dev/vda kjump.mailbox=0x1000 kjump.compress=zstd").unwrap();
        assert!(matches!(Orders::from_params(&p), Err(Error::Bad { key: "kjump.compress", .. })));
        let p = crate::handoff::cmdline::parse("kjump.mode=save kjump.target=/dev/vda kjump.mailbox=0x1000 kjump.target_id=sectors:0").unwrap();
        assert!(matches!(Orders::from_params(&p), Err(Error::Bad { key: "kjump.target_id", .. })));
        let p = crate::handoff::cmdline::parse("kjump.mode=restore kjump.target=nonsense").unwrap();
        assert!(matches!(Orders::from_params(&p), Err(Error::Bad { key: "kjump.target", .. })));
    }
}
