//! `kjump`: the trigger on the main system (A), and image tools for any host.
//!
//! One file per command: `check`, `hibernate` (also `load`, `unload` and
//! `bench-io`), `resume` (C), `boot` (`boot-entry` and `initramfs`),
//! `image` (`image info`, `verify`, `wipe`, `export`), `keygen`, and
//! `sleep` (`sleep`, `status`, `systemd-generator`: kjump under systemd);
//! what they share:
//! `cli` (the command line), `settings` (kjump.conf and the flags),
//! `kernel` (loading B or D) and `keys` (encrypted images' keys). This file
//! runs the command and turns its outcome into the exit status.

#![forbid(unsafe_code)]

mod boot;
mod check;
mod cli;
mod digest;
mod hibernate;
mod image;
mod json;
mod kernel;
mod keygen;
mod keys;
mod resume;
mod settings;
mod sleep;

use std::process::ExitCode;

use kjump::host::config::LIBDIR;
use kjump::{target, Error};

use crate::boot::{cmd_boot_entry, cmd_initramfs};
use crate::check::cmd_check;
use crate::hibernate::{cmd_bench_io, cmd_hibernate, cmd_load, cmd_unload};
use crate::image::{cmd_export, cmd_image, cmd_image_info_json, cmd_wipe};
use crate::resume::cmd_resume;
use crate::settings::{config_text, settings};
use crate::sleep::{cmd_generator, cmd_sleep, cmd_status};
use cli::{Command, SettingFlags};

const USAGE: &str = "\
kjump — hibernation for Linux built on kexec jump

Usage:
  kjump hibernate [OPTIONS]        save this system's memory to the target and power off
                                   (or --after reboot|resume|suspend); returns when A comes back
  kjump resume [--check [--json]] [OPTIONS]
                                   at boot, before A's filesystems are mounted read-write:
                                   resume from a committed image on the target, or say
                                   in one line why not and exit 3 (boot goes on);
                                   'noresume' or 'kjump.noresume' on the kernel command
                                   line forbids it and marks a committed image bad
                                   (that boot may change A's filesystems)
  kjump check [--jump] [--json] [OPTIONS]
                                   say whether this machine can hibernate with kjump;
                                   --jump also does a live round trip A -> B -> A
  kjump image info [--json] FILE|DEVICE
                                   show an image's header and state
  kjump image verify [--key-file PATH] FILE|DEVICE
                                   check every checksum, and authenticate an encrypted
                                   image with its key; non-zero exit names the first fault
  kjump image wipe FILE|DEVICE     overwrite an image with zeros and discard it (a file is
                                   then removed); refuses anything that is not a kjump image
  kjump image export --elf FILE [--key-file PATH] [--force] FILE|DEVICE
                                   write an image as an ELF core file (A's VMCOREINFO and
                                   RAM, as the hibernation kernel's /proc/vmcore showed
                                   them) that crash and makedumpfile read like a kdump
  kjump bench-io --target DEVICE   for benchmarks: in the hibernation kernel, measure how
                                   fast /proc/vmcore reads and the target takes O_DIRECT
                                   writes and reads; OVERWRITES the target's first 768 MiB
  kjump load [OPTIONS]             boot the hibernation kernel now and keep it resident:
                                   'kjump hibernate' then enters it instead of booting it.
                                   Holds the region's RAM (64 MiB by default) until the
                                   next hibernation or 'kjump unload'; this system pauses
                                   while it boots (about a second)
  kjump unload                     free the resident hibernation kernel
  kjump boot-entry [--output DIR] [OPTIONS]
                                   write a boot loader entry that resumes without booting
                                   this system first (BIOS GRUB, or a VM's direct kernel
                                   boot; not UEFI): DIR/vmlinuz, DIR/initrd.img and
                                   DIR/cmdline (the kernel command line)  [default: /boot/kjump]
  kjump initramfs --output FILE [--init PATH]
                                   write the hibernation initramfs (holds only kjump-init;
                                   default: the kjump-init next to kjump, else {LIBDIR}/kjump-init)
  kjump config [OPTIONS]           print the settings kjump would use, as kjump.conf lines
  kjump keygen [--dir DIR] [--argon2-memory KIB] [--force]
                                   make the key pair of encrypt = passphrase: asks for a new
                                   passphrase twice, writes DIR/public.key and
                                   DIR/private.key  [default DIR: /etc/kjump]
  kjump status                     say how the last hibernation went (B's save, D's restore)
  kjump sleep hibernate|suspend-then-hibernate
                                   what systemd runs for 'systemctl hibernate' and
                                   'systemctl suspend-then-hibernate' once kjump's generator
                                   put kjump there (kjump-generator, see kjump(8), SYSTEMD)
  kjump COMMAND --help             that command's options
  kjump --help | --version

Options (flags win over /etc/kjump.conf, whose keys have the same names):
  --target TARGET      where the image goes: /dev/NAME, UUID=…, PARTUUID=… or LABEL=…,
                       optionally :/path for a file on the ext4 filesystem there
                       (that filesystem must not be mounted here at all)
  --after ACTION       poweroff (default), reboot, resume (save, then continue: a snapshot),
                       or suspend (hybrid sleep: suspend to RAM with the image saved)
  --compress KIND      lz4 (default, fast), deflate (smaller), none
  --wait SECONDS       how long the hibernation kernel, and kjump resume at boot,
                       wait for the target to appear: 0 to 600  [default: 10]
  --kernel PATH        hibernation kernel (bzImage)   [default: {LIBDIR}/vmlinuz]
  --initrd PATH        hibernation initramfs          [default: {LIBDIR}/initramfs.img]
  --region-size SIZE   RAM the hibernation kernel runs in, set aside only while
                       it runs (K/M/G suffixes)       [default: 64M]
  --append ARGS        more arguments for the hibernation kernel's command line
  --config FILE        settings file                  [default: /etc/kjump.conf]
  --keep               resume: keep the image's data afterwards (default: the restore
                       kernel discards it once A's memory is back; the image is
                       marked consumed either way)
  --check              resume: only say what it would do
  --key-file PATH      resume, image verify|export: the key file that unwraps an encrypted
                       image's key  [default: the one encrypt = keyfile:PATH names]
  --jump               check: also do a live round trip
  --json               check, image info, resume --check: print one JSON object
                       instead (its fields are in kjump(8))
Each command takes only the options it uses; see 'kjump COMMAND --help'.

Exit status: 0 when all is well; 1 when a check, the jump, the save or the resume failed;
2 on bad usage (nothing was done); 3 when 'kjump resume' found nothing to resume (no
image, not committed, of another machine or RAM map, or noresume given).
";

/// `kjump`'s exit statuses, as USAGE and kjump(8) list them.
pub(crate) mod exit {
    /// All is well.
    pub const OK: u8 = 0;
    /// A check, the jump, the save, the resume or another step failed.
    pub const FAILURE: u8 = 1;
    /// Bad usage, found before anything was done.
    pub const USAGE: u8 = 2;
    /// `kjump resume` found nothing to resume: the boot goes on as usual.
    pub const NOTHING_TO_RESUME: u8 = 3;
}

/// The help text, with the installed location of the hibernation files.
fn usage() -> String {
    USAGE.replace("{LIBDIR}", LIBDIR)
}

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let topic = command.topic();
    match run(command) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(Failure::Usage(msg)) => usage_error(topic, &msg),
        Err(Failure::NothingToResume(msg)) => {
            eprintln!("kjump: {msg}");
            ExitCode::from(exit::NOTHING_TO_RESUME)
        }
        Err(Failure::Error(e)) => {
            eprintln!("kjump: {e}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// Why a command did not do what it was asked: each with its exit status.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A bad setting, found before anything was done (`exit::USAGE`).
    Usage(String),
    /// `kjump resume` found nothing here to resume (`exit::NOTHING_TO_RESUME`).
    NothingToResume(String),
    /// Anything else (`exit::FAILURE`).
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl From<kjump::load::memmap::Error> for Failure {
    fn from(e: kjump::load::memmap::Error) -> Self {
        Failure::Error(e.into())
    }
}

fn run(command: Command) -> Result<(), Failure> {
    let settings = |flags: &SettingFlags| settings(flags).map_err(|e| Failure::Usage(e.to_string()));
    match command {
        Command::Help(text) => print!("{text}"),
        Command::Version => println!("kjump {}", env!("CARGO_PKG_VERSION")),
        Command::Check { jump, json, flags } => match settings(&flags) {
            Ok(s) => cmd_check(&s, jump, json)?,
            Err(e) => {
                if let (true, Failure::Usage(msg)) = (json, &e) {
                    json::print(&json::Check { error: Some(msg.clone()), ..Default::default() })?;
                }
                return Err(e);
            }
        },
        Command::Hibernate(flags) => cmd_hibernate(&settings(&flags)?)?,
        Command::Load(flags) => cmd_load(&settings(&flags)?)?,
        Command::Unload => cmd_unload()?,
        Command::Resume { check, json, flags } => {
            let outcome = settings(&flags).and_then(|s| cmd_resume(&s, check, json));
            if let (true, Err(why)) = (json, &outcome) {
                json::print(&json::ResumeCheck::refused(why))?;
            }
            outcome?
        }
        Command::BenchIo(flags) => cmd_bench_io(&settings(&flags)?)?,
        Command::BootEntry { output, flags } => cmd_boot_entry(&settings(&flags)?, &output)?,
        Command::Config(flags) => {
            let s = settings(&flags)?;
            if let Some(text) = &s.target {
                target::parse(text).map_err(|e| Failure::Usage(format!("target {text}: {e}")))?;
            }
            print!("{}", config_text(&s));
        }
        Command::Initramfs { output, init } => cmd_initramfs(&output, init.as_deref())?,
        Command::ImageInfo { path, json: false } => cmd_image(&path, false, None)?,
        Command::ImageInfo { path, json: true } => cmd_image_info_json(&path)?,
        Command::ImageVerify(path, key_file) => cmd_image(&path, true, key_file.as_deref())?,
        Command::ImageWipe(path) => cmd_wipe(&path)?,
        Command::ImageExport { image, elf, key_file, force } => cmd_export(&image, &elf, key_file.as_deref(), force)?,
        Command::Keygen { dir, argon2_memory, force } => keygen::run(&dir, argon2_memory, force)?,
        Command::Sleep { op, flags } => cmd_sleep(&settings(&flags)?, op)?,
        Command::Status => cmd_status()?,
        Command::SystemdGenerator(dir) => {
            cmd_generator(crate::settings::settings(&SettingFlags::default()).map_err(|e| e.to_string()), std::path::Path::new(&dir))?
        }
        Command::InitramfsDigest { release, action, config } => digest::cmd_initramfs_digest(release.as_deref(), action, config.as_deref())?,
    }
    Ok(())
}

fn usage_error(topic: &'static str, msg: &str) -> ExitCode {
    eprintln!("{}", cli::UsageError { msg: msg.to_string(), topic });
    ExitCode::from(exit::USAGE)
}
