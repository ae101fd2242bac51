//! `kjump`: the trigger on the main system (A), and image tools for any host.

mod cli;
mod keygen;

use std::process::ExitCode;
use std::time::Duration;

use kjump::cmdline::{self, After};
use kjump::config::{Config, LIBDIR};
use kjump::image::{Compression, Reader, State};
use kjump::jump::{self, HibernationKernel};
use kjump::mailbox::Mailbox;
use kjump::memmap::MemoryMap;
use kjump::orders::Orders;
use kjump::units::{human_size, parse_size, MIB};
use kjump::{check, in_use, target, Error};

use cli::{Command, SettingFlags};

const USAGE: &str = "\
kjump — hibernation for Linux built on kexec jump

Usage:
  kjump hibernate [OPTIONS]        save this system's memory to the target and power off
                                   (or --after reboot|resume); returns when A comes back
  kjump resume [--check] [OPTIONS]
                                   at boot, before A's filesystems are mounted read-write:
                                   resume from a committed image on the target, or say
                                   in one line why not and exit 3 (boot goes on);
                                   'noresume' or 'kjump.noresume' on the kernel command
                                   line forbids it and marks a committed image bad
                                   (that boot may change A's filesystems)
  kjump check [--jump] [OPTIONS]   say whether this machine can hibernate with kjump;
                                   --jump also does a live round trip A -> B -> A
  kjump image info FILE|DEVICE     show an image's header and state
  kjump image verify [--key-file PATH] FILE|DEVICE
                                   check every checksum, and authenticate an encrypted
                                   image with its key; non-zero exit names the first fault
  kjump image wipe FILE|DEVICE     overwrite an image with zeros and discard it (a file is
                                   then removed); refuses anything that is not a kjump image
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
  kjump COMMAND --help             that command's options
  kjump --help | --version

Options (flags win over /etc/kjump.conf, whose keys have the same names):
  --target TARGET      where the image goes: /dev/NAME, UUID=…, PARTUUID=… or LABEL=…,
                       optionally :/path for a file on the ext4 filesystem there
                       (that filesystem must not be mounted here at all)
  --after ACTION       poweroff (default), reboot, or resume (save, then continue: a snapshot)
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
  --key-file PATH      resume, image verify: the key file that unwraps an encrypted
                       image's key  [default: the one encrypt = keyfile:PATH names]
  --jump               check: also do a live round trip
Each command takes only the options it uses; see 'kjump COMMAND --help'.

Exit status: 0 when all is well; 1 when a check, the jump, the save or the resume failed;
2 on bad usage (nothing was done); 3 when 'kjump resume' found nothing to resume (no
image, not committed, of another machine or RAM map, or noresume given).
";

/// `kjump`'s exit statuses, as USAGE and kjump(8) list them.
mod exit {
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

/// Settings after merging defaults, the config file and flags.
#[derive(Clone)]
struct Settings {
    kernel: String,
    initrd: String,
    region_size: u64,
    append: String,
    target: Option<String>,
    after: After,
    compress: Compression,
    wait: u64,
    keep: bool,
    /// `kjump resume --snapshot`: a snapshot may be resumed (never set
    /// by the config file).
    snapshot: bool,
    /// Starts of the restore kernel after which an image is given up.
    attempts: u32,
    /// How images are encrypted (`encrypt =`).
    encrypt: kjump::config::Encrypt,
    /// The key file that unwraps an image's key at resume: `--key-file`,
    /// else the one `encrypt = keyfile:PATH` names.
    key_file: Option<String>,
}

fn settings(flags: &SettingFlags) -> Result<Settings, Error> {
    let config = Config::load(flags.get("config").unwrap_or(kjump::config::DEFAULT_PATH))?;
    let get = |k: &str| flags.get(k).or_else(|| config.get(k));
    let config_path = flags.get("config").unwrap_or(kjump::config::DEFAULT_PATH);
    // Names a setting the way the user gave it: a flag, or a line of the file.
    let name = |k: &str| if flags.get(k).is_some() { format!("--{k}") } else { format!("{k}= in {config_path}") };
    let region_size = match get("region-size") {
        None => DEFAULT_REGION_SIZE,
        Some(v) => parse_size(v)
            .filter(|&s| s >= MIN_REGION_SIZE)
            .ok_or_else(|| Error::Msg(format!("{} {v:?} is not a size of at least {}M (like 96M)", name("region-size"), MIN_REGION_SIZE / MIB)))?,
    };
    let encrypt = match config.get("encrypt") {
        None => kjump::config::Encrypt::Unset,
        Some(v) => kjump::config::Encrypt::parse(v).map_err(|why| Error::Msg(format!("encrypt= in {config_path}: {why}")))?,
    };
    Ok(Settings {
        kernel: get("kernel").map_or_else(kjump::config::default_kernel, str::to_string),
        initrd: get("initrd").map_or_else(kjump::config::default_initrd, str::to_string),
        region_size,
        append: get("append").unwrap_or("").to_string(),
        target: get("target").map(str::to_string),
        after: match get("after") {
            None => After::PowerOff,
            Some(v) => After::parse(v).ok_or_else(|| Error::Msg(format!("{} {v:?}: use poweroff, reboot or resume", name("after"))))?,
        },
        compress: match get("compress") {
            None => Compression::Lz4,
            Some(v) => Compression::parse(v).ok_or_else(|| Error::Msg(format!("{} {v:?}: use lz4, deflate or none", name("compress"))))?,
        },
        wait: match get("wait") {
            None => 10,
            Some(v) => v
                .parse()
                .ok()
                .filter(|&w| w <= cli::MAX_WAIT)
                .ok_or_else(|| Error::Msg(format!("{} {v:?}: give a number of seconds from 0 to {}", name("wait"), cli::MAX_WAIT)))?,
        },
        keep: match get("keep") {
            None | Some("no") => false,
            Some("yes") => true,
            Some(v) => return Err(Error::Msg(format!("{} {v:?}: use yes or no", name("keep")))),
        },
        snapshot: flags.snapshot,
        attempts: match get("attempts") {
            None => kjump::restore::DEFAULT_MAX_ATTEMPTS,
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (1..=10).contains(n))
                .ok_or_else(|| Error::Msg(format!("{} {v:?}: give a number of attempts from 1 to 10", name("attempts"))))?,
        },
        encrypt: encrypt.clone(),
        key_file: match (flags.get("key-file"), &encrypt) {
            (Some(path), _) => Some(path.to_string()),
            (None, kjump::config::Encrypt::KeyFile(path)) => Some(path.clone()),
            (None, _) => None,
        },
    })
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
enum Failure {
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

impl From<kjump::memmap::Error> for Failure {
    fn from(e: kjump::memmap::Error) -> Self {
        Failure::Error(e.into())
    }
}

fn run(command: Command) -> Result<(), Failure> {
    let settings = |flags: &SettingFlags| settings(flags).map_err(|e| Failure::Usage(e.to_string()));
    match command {
        Command::Help(text) => print!("{text}"),
        Command::Version => println!("kjump {}", env!("CARGO_PKG_VERSION")),
        Command::Check { jump, flags } => cmd_check(&settings(&flags)?, jump)?,
        Command::Hibernate(flags) => cmd_hibernate(&settings(&flags)?)?,
        Command::Load(flags) => cmd_load(&settings(&flags)?)?,
        Command::Unload => cmd_unload()?,
        Command::Resume { check, flags } => cmd_resume(&settings(&flags)?, check)?,
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
        Command::ImageInfo(path) => cmd_image(&path, false, None)?,
        Command::ImageVerify(path, key_file) => cmd_image(&path, true, key_file.as_deref())?,
        Command::ImageWipe(path) => cmd_wipe(&path)?,
        Command::Keygen { dir, argon2_memory, force } => keygen::run(&dir, argon2_memory, force)?,
    }
    Ok(())
}

fn usage_error(topic: &'static str, msg: &str) -> ExitCode {
    eprintln!("{}", cli::UsageError { msg: msg.to_string(), topic });
    ExitCode::from(exit::USAGE)
}

fn run_checks(s: &Settings, quiet: bool) -> Result<(), Error> {
    let mut items = check::run(&check::Config { kernel: s.kernel.clone(), initrd: s.initrd.clone(), region_size: s.region_size });
    items.extend(kjump::drivers::check_target(&s.kernel, s.target.as_deref()));
    if !quiet {
        println!("kjump check:");
        print!("{}", check::report(&items));
    }
    if let Some(bad) = items.iter().find(|i| !i.ok) {
        return Err(Error::Msg(format!("this machine cannot hibernate with kjump: {}", bad.text)));
    }
    Ok(())
}

/// The kjump region's size unless `--region-size` says otherwise.
const DEFAULT_REGION_SIZE: u64 = 64 * MIB;

/// The smallest region accepted: below it the hibernation kernel and its
/// initramfs (about 15 MiB) leave B too little memory for even one
/// chunk's buffers beside its write batches.
const MIN_REGION_SIZE: u64 = 64 * MIB;

/// B and D read no keyboard or mouse: skipping the PS/2 controller's
/// driver saves its probe (0.4 s of each boot under QEMU) and leaves the
/// controller as A set it.
const NO_INPUT: &str = "initcall_blacklist=i8042_init";

/// The hibernation kernel with `mode_args`, for work on disk `disk` (whose
/// controller decides whether B may skip legacy interrupt routing).
fn hibernation_kernel(s: &Settings, mode_args: &str, disk: Option<&std::path::Path>) -> Result<HibernationKernel, Error> {
    let own = std::fs::read_to_string("/proc/cmdline").map_err(|e| Error::io("reading /proc/cmdline", e))?;
    let routing = if disk.is_some_and(kjump::msi::may_skip_routing) { kjump::msi::SKIP_ROUTING } else { "" };
    // The words kjump and the purgatory set are kjump's contract with B
    // and D: `append` may not override them (a mistyped kjump.* word once
    // made every hibernation power off, the session lost).
    for word in cmdline::words(&s.append) {
        let word = word.map_err(|e| Error::Msg(format!("append {:?}: {e}", s.append)))?;
        let key = cmdline::split_param(word).0;
        if key.starts_with("kjump.") || key.starts_with("kexec_") || key == "rdinit" || key == "elfcorehdr" {
            return Err(Error::Msg(format!("append {word:?}: kjump sets {key} itself; remove it from --append or from append= in /etc/kjump.conf")));
        }
    }
    // Words kjump's own tests add, unchecked, to make B fail on purpose.
    let unchecked = std::env::var(UNCHECKED_APPEND).unwrap_or_default();
    let line = format!(
        "{} rdinit=/kjump-init {mode_args} nokaslr nr_cpus={} quiet panic=10 {NO_INPUT} {routing} {} {unchecked}",
        jump::console_args(&own),
        hibernation_cpus(),
        s.append
    );
    // B reads its orders with this same parser: a line it would refuse
    // is refused here, before anything is loaded.
    if unchecked.is_empty() {
        let params = cmdline::parse(&line).map_err(|e| Error::Msg(format!("the hibernation kernel's command line would be refused ({e}): check append")))?;
        Orders::from_params(&params).map_err(|e| Error::Msg(format!("the hibernation kernel would refuse its orders ({e})")))?;
    }
    kjump::config::check_trusted(&s.kernel, "the hibernation kernel")?;
    kjump::config::check_trusted(&s.initrd, "the hibernation initramfs")?;
    Ok(HibernationKernel {
        kernel: std::fs::read(&s.kernel).map_err(|e| Error::io(format!("reading {}", s.kernel), e))?,
        initrd: std::fs::read(&s.initrd).map_err(|e| Error::io(format!("reading {}", s.initrd), e))?,
        cmdline: line,
        region_size: s.region_size,
        set_region_aside: true,
        resident: false,
        key_page: None,
    })
}

/// For kjump's own tests only: words added to the hibernation kernel's
/// command line after kjump's, without the checks above (to make B meet a
/// missing or forbidden target on purpose).
const UNCHECKED_APPEND: &str = "KJUMP_TEST_UNCHECKED_APPEND";

/// CPUs the hibernation kernel brings up: A's, at most 4 (B compresses on
/// each; more would cost B memory for little gain).
fn hibernation_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// On a system whose filesystems or swap sit on dm-crypt, an image in the
/// clear would put that volume's key on the target. Refused unless
/// `encrypt` is set: to a method, or to `none` explicitly.
fn refuse_clear_image_of_encrypted_disks(s: &Settings, uses: &[in_use::InUse]) -> Result<(), Error> {
    match (&s.encrypt, in_use::on_dm_crypt(uses)) {
        (kjump::config::Encrypt::Unset, Some(why)) => Err(Error::Msg(format!(
            "{why}: an image in the clear would hold that volume's key; set encrypt = passphrase (after 'kjump keygen'), \
             encrypt = tpm2 or encrypt = keyfile:/path in /etc/kjump.conf, or encrypt = none to accept that (the target itself encrypted, say)"
        ))),
        _ => Ok(()),
    }
}

/// How an image is encrypted, for `kjump image info`.
fn encryption_text(h: &kjump::image::Header, st: &kjump::image::StateBlock) -> String {
    use kjump::wrap::Method;
    if !h.encrypted() {
        return "none: A's memory is in the clear in this image".into();
    }
    const DESTROYED: &str = "key destroyed when the image was consumed or given up: its pages can never be read";
    // A destroyed key reads as no key block at all (or an all-zero one).
    if st.key_block.is_empty() {
        return format!("{}; {DESTROYED}; image id {}", h.cipher.name(), h.image_id.hex());
    }
    let how = match kjump::wrap::KeyBlock::decode(&st.key_block) {
        Ok(Some(b)) => match (b.method(), b.public_key()) {
            (Method::Passphrase, Some(p)) => format!("key wrapped to a passphrase, key pair {}", p.fingerprint()),
            (Method::Passphrase, None) => "key wrapped to a passphrase".into(),
            (Method::KeyFile, _) => "key wrapped with a key file".into(),
            (Method::Tpm2, _) => match b.tpm_sealed() {
                Some(t) => format!("key sealed to the TPM under PCRs sha256:{} and counter {:#010x} at {}", t.pcrs.list(), t.index, t.counter),
                None => "key sealed to the TPM".into(),
            },
        },
        Ok(None) => DESTROYED.into(),
        Err(e) => format!("key block unreadable: {e}"),
    };
    format!("{}; {how}; image id {}", h.cipher.name(), h.image_id.hex())
}

/// Why an encrypted image without its key block is refused.
const KEY_DESTROYED: &str = "the image's key was destroyed when it was consumed or given up: it can never be resumed";

/// Tries of a passphrase at resume, as cryptsetup gives.
const PASSPHRASE_TRIES: u32 = 3;

/// Why an image's key could not be had.
enum KeyError {
    /// Not now: the image is kept as it is (a wrong passphrase, no key
    /// file, a TPM that refuses under these PCRs).
    Keep(Error),
    /// Never: the TPM's counter moved on since the key was sealed.
    Stale(String),
}

impl From<Error> for KeyError {
    fn from(e: Error) -> Self {
        KeyError::Keep(e)
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Keep(e) => e,
            KeyError::Stale(why) => Error::Msg(why),
        }
    }
}

/// The data key of an encrypted image: unwrapped with `key_file` (or the
/// settings' key file), with a passphrase asked on the terminal, or with
/// the key this machine's TPM unseals. With `ask` false and no key file
/// (key file or passphrase images), `Ok(None)`.
fn image_key(h: &kjump::image::Header, st: &kjump::image::StateBlock, key_file: Option<&str>, ask: bool) -> Result<Option<kjump::seal::DataKey>, KeyError> {
    use kjump::wrap::{Method, UnwrapError};
    let block = kjump::wrap::KeyBlock::decode(&st.key_block)
        .map_err(|e| Error::Msg(format!("the image's key block: {e}")))?
        .ok_or_else(|| Error::Msg(KEY_DESTROYED.into()))?;
    match block.method() {
        Method::Tpm2 => {
            let sealed = block.tpm_sealed().ok_or_else(|| Error::Msg("the image's key block names the TPM but holds no sealed key".into()))?;
            let kek = kjump::tpm::unseal(sealed).map_err(|e| match e {
                kjump::tpm::UnsealError::Stale { .. } => KeyError::Stale(e.to_string()),
                _ => KeyError::Keep(Error::Msg(e.to_string())),
            })?;
            kjump::wrap::unwrap_with_kek(&block, h.image_id, &kek).map(Some).map_err(|e| KeyError::Keep(Error::Msg(e.to_string())))
        }
        Method::KeyFile => {
            let Some(path) = key_file else {
                return if ask {
                    Err(Error::Msg("the image's key is wrapped with a key file: give --key-file PATH, or set encrypt = keyfile:PATH".into()).into())
                } else {
                    Ok(None)
                };
            };
            let bytes = kjump::config::read_key_file(path)?;
            Ok(kjump::wrap::unwrap_with_key_file(&block, h.image_id, &bytes).map(Some).map_err(|e| Error::Msg(format!("key file {path}: {e}")))?)
        }
        Method::Passphrase => {
            if let Some(path) = key_file {
                // Set in kjump.conf for later images, or given by mistake.
                eprintln!("kjump: the image's key is wrapped to a passphrase; the key file {path} is not used");
            }
            if !ask {
                return Ok(None);
            }
            for left in (0..PASSPHRASE_TRIES).rev() {
                // A keyscript or a test may pipe the passphrase in.
                let pass = if kjump::ask::stdin_is_terminal() {
                    kjump::ask::passphrase("Passphrase of the hibernated system:")?
                } else {
                    kjump::ask::line_from_stdin()?
                };
                match kjump::wrap::unwrap_with_passphrase(&block, h.image_id, pass.as_bytes()) {
                    Ok(key) => return Ok(Some(key)),
                    Err(UnwrapError::WrongKey(_)) if left > 0 => eprintln!("kjump: wrong passphrase; {left} more tr{}", if left == 1 { "y" } else { "ies" }),
                    Err(UnwrapError::WrongKey(_)) => {
                        return Err(Error::Msg(format!("wrong passphrase {PASSPHRASE_TRIES} times; the image is kept for the next boot")).into());
                    }
                    Err(e) => return Err(Error::Msg(e.to_string()).into()),
                }
            }
            Err(Error::Msg("no passphrase".into()).into())
        }
    }
}

/// A fresh key for the image about to be saved, wrapped as `encrypt` says
/// (`None` when images are in the clear).
fn new_image_key(s: &Settings) -> Result<Option<kjump::save::ImageKey>, Error> {
    use kjump::config::Encrypt;
    let key = kjump::seal::DataKey::random()?;
    let id = kjump::seal::ImageId::random()?;
    let block = match &s.encrypt {
        Encrypt::Unset | Encrypt::None => return Ok(None),
        Encrypt::KeyFile(path) => kjump::wrap::wrap_with_key_file(&key, id, &kjump::config::read_key_file(path)?)?,
        Encrypt::Passphrase => {
            let (public, sealed) = kjump::wrap::read_key_pair(std::path::Path::new(kjump::wrap::DEFAULT_KEY_DIR))?;
            kjump::wrap::wrap_to_public_key(&key, id, &public, &sealed)?
        }
        Encrypt::Tpm2(pcrs) => kjump::wrap::wrap_to_tpm(&key, id, *pcrs)?,
    };
    let key_block = block.encode().to_vec();
    let mut salt = [0u8; kjump::seal::ID_LEN];
    kjump::seal::random(&mut salt)?;
    Ok(Some(kjump::save::ImageKey { key, id, key_block, salt }))
}

fn cmd_check(s: &Settings, live: bool) -> Result<(), Error> {
    run_checks(s, false).map_err(|e| Error::Msg(format!("check: {e}")))?;
    refuse_clear_image_of_encrypted_disks(s, &in_use::collect()?).map_err(|e| Error::Msg(format!("check: {e}")))?;
    if let kjump::config::Encrypt::Tpm2(pcrs) = &s.encrypt {
        let tpm = kjump::tpm::check().map_err(|e| Error::Msg(format!("check: {e}")))?;
        println!("kjump check: encrypt = tpm2: {tpm}; keys sealed under PCRs sha256:{}", pcrs.list());
    }
    println!("kjump check: this machine can hibernate with kjump");
    if !live {
        return Ok(());
    }
    let _lock = kjump::lock::take("check --jump")?;
    let loaded = jump::load_hibernation_kernel(&hibernation_kernel(s, &Orders::Roundtrip.to_string(), None)?)?;
    println!("kjump: loaded the hibernation kernel in {:#x}-{:#x} ({} segments); jumping to it", loaded.region.0, loaded.region.1, loaded.segments);
    let away = jump::jump_to_loaded();
    unload_after_jump();
    let away = away?;
    println!("kjump: back in A after {:.2} s (round trip A -> B -> A)", away.as_secs_f64());
    Ok(())
}

/// The largest image A's RAM can make: every page stored raw, plus headers.
fn worst_case_image(ram: u64) -> u64 {
    let chunks = ram.div_ceil((kjump::image::MAX_CHUNK_PAGES * kjump::image::PAGE) as u64);
    kjump::image::DATA_OFFSET + ram + chunks * 2 * kjump::image::BLOCK as u64
}

/// After a jump came back: the loaded image now holds the other kernel as
/// it was when it jumped back, never to be entered again.
fn unload_after_jump() {
    kjump::resident::forget();
    if let Err(e) = kjump::kexec::unload() {
        eprintln!("kjump: {e}");
    }
}

/// What `kjump hibernate` and `kjump load` check before loading B.
struct Prepared {
    tgt: target::Target,
    dev: std::path::PathBuf,
    uses: Vec<in_use::InUse>,
    region: kjump::memmap::Region,
    /// The target held open exclusively from the checks to the return:
    /// nothing here can mount it or swap on it in between.
    _held: rustix::fd::OwnedFd,
}

fn prepare(s: &Settings, cmd: &str) -> Result<Prepared, Error> {
    let text = s
        .target
        .as_deref()
        .ok_or_else(|| Error::Msg(format!("{cmd}: no target; pass --target (e.g. --target /dev/sdb2) or set target= in /etc/kjump.conf")))?;
    let tgt = target::parse(text).map_err(|e| Error::Msg(format!("{cmd}: target {text}: {e}")))?;
    run_checks(s, true).map_err(|e| Error::Msg(format!("{cmd}: {e}")))?;
    let dev = target::resolve(&tgt.device)?.ok_or_else(|| Error::Msg(format!("{cmd}: target {text} is missing: no such device here")))?;
    let uses = in_use::collect()?;
    refuse_clear_image_of_encrypted_disks(s, &uses).map_err(|e| Error::Msg(format!("{cmd}: {e}")))?;
    if let Some(why) = in_use::conflict(&dev, &uses)? {
        return Err(Error::Msg(format!(
            "{cmd}: {why}; unmount it (or swapoff), or choose another target: the hibernation kernel must never write a device this system is using"
        )));
    }
    // What kjump does not know of (another filesystem type, a holder
    // outside sysfs), the kernel does: it refuses an exclusive open.
    let held = in_use::hold_exclusive(&dev)?.map_err(|why| Error::Msg(format!("{cmd}: {why}; unmount it, swapoff, or choose another target")))?;
    target::check_overwrite(&dev, tgt.file.is_some()).map_err(|e| Error::Msg(format!("{cmd}: {e}")))?;
    let map = MemoryMap::read()?;
    let region = map.choose_region(s.region_size)?;
    if tgt.file.is_none() {
        let size = target::device_size(&dev)?;
        let need = worst_case_image(map.ram_bytes());
        if size < need {
            return Err(Error::Msg(format!(
                "{cmd}: target {} holds {} but a worst-case image of this machine needs {}",
                dev.display(),
                human_size(size),
                human_size(need)
            )));
        }
    }
    Ok(Prepared { tgt, dev, uses, region, _held: held })
}

/// B's `kjump.mode=save …` arguments.
fn save_mode_args(s: &Settings, tgt: &target::Target, mailbox: u64, resident: bool) -> String {
    Orders::Save(kjump::orders::Save {
        target: tgt.clone(),
        after: s.after,
        compress: s.compress,
        wait: s.wait,
        mailbox,
        zero_free: kjump::check::free_pages_must_be_zero(),
        resident,
        target_id: target::identity_of(tgt),
    })
    .to_string()
}

/// The resident B `kjump load` left, if it can be entered to hibernate
/// with settings `s`: its mailbox page, pinned. Otherwise says why not and
/// forgets it (`kjump hibernate` then loads B as usual).
fn resident_kernel(s: &Settings, p: &Prepared) -> Result<Option<Mailbox>, Error> {
    use kjump::resident;
    let Some(rec) = resident::recorded() else { return Ok(None) };
    let why_not = (|| -> Result<Option<Mailbox>, String> {
        if !std::fs::read_to_string("/sys/kernel/kexec_loaded").is_ok_and(|t| t.trim() == "1") {
            return Err("no kexec image is loaded any more".into());
        }
        if resident::boot_id().map_err(|e| e.to_string())? != rec.boot_id {
            return Err("it was loaded by another boot".into());
        }
        if (p.region.start, p.region.end) != rec.region {
            return Err("the kjump region has changed".into());
        }
        let mailbox = Mailbox::in_file(resident::mailbox_path(), rec.region, false).map_err(|e| e.to_string())?;
        if mailbox.phys() != rec.mailbox {
            return Err("its mailbox page has moved".into());
        }
        let hk = hibernation_kernel(s, &save_mode_args(s, &p.tgt, mailbox.phys(), true), Some(&p.dev)).map_err(|e| e.to_string())?;
        if resident::fingerprint(&hk.cmdline, &hk.kernel, &hk.initrd) != rec.fingerprint {
            return Err("the settings, the hibernation kernel or its initramfs changed since 'kjump load'".into());
        }
        Ok(Some(mailbox))
    })();
    match why_not {
        Ok(m) => Ok(m),
        Err(why) => {
            println!("kjump: not using the resident hibernation kernel: {why}; loading it again");
            resident::forget();
            Ok(None)
        }
    }
}

fn cmd_hibernate(s: &Settings) -> Result<(), Error> {
    let _lock = kjump::lock::take("hibernate")?;
    let started = std::time::Instant::now();
    let p = prepare(s, "hibernate")?;
    let checked = started.elapsed();
    // The image's key reaches B in the mailbox page only (B wipes it
    // there before it reads A's memory); A's other copies are wiped when
    // the request is dropped, before the jump.
    let request = kjump::mailbox::Request { uses: in_use::table_for_b(&p.uses), key: new_image_key(s).map_err(|e| Error::Msg(format!("hibernate: {e}")))? };
    let encrypted = request.key.is_some();
    let (mailbox, how) = match resident_kernel(s, &p)? {
        Some(mailbox) => {
            mailbox.write_request(&request)?;
            let how = format!("resident hibernation kernel in {:#x}-{:#x}, checked in {:.2} s", p.region.start, p.region.end, started.elapsed().as_secs_f64());
            (mailbox, how)
        }
        None => {
            let mailbox = Mailbox::new((p.region.start, p.region.end))?;
            let found = started.elapsed();
            mailbox.write_request(&request)?;
            let loaded = jump::load_hibernation_kernel(&hibernation_kernel(s, &save_mode_args(s, &p.tgt, mailbox.phys(), false), Some(&p.dev))?)?;
            let prepared = started.elapsed();
            let how = format!(
                "hibernation kernel in {:#x}-{:#x}, checked and loaded in {:.2} s (checks {:.2} s, mailbox page {:.2} s, loading {:.2} s)",
                loaded.region.0,
                loaded.region.1,
                prepared.as_secs_f64(),
                checked.as_secs_f64(),
                (found - checked).as_secs_f64(),
                (prepared - found).as_secs_f64()
            );
            (mailbox, how)
        }
    };
    drop(request);
    // What A's filesystems hold in memory reaches the disks now, so that
    // a power cut before the image is committed costs no data.
    rustix::fs::sync();
    println!("kjump: hibernating to {} (then {}{}); {how}", p.tgt, s.after.name(), if encrypted { ", encrypted" } else { "" });
    let away = jump::jump_to_loaded();
    unload_after_jump();
    if encrypted && matches!(s.encrypt, kjump::config::Encrypt::Tpm2(_)) {
        // Back in A, whether the image was resumed or never committed: no
        // copy of it may unseal from now on.
        match kjump::tpm::advance(kjump::tpm::COUNTER_INDEX) {
            Ok(n) => println!("kjump: TPM counter at {n}: no copy of the image can be resumed now"),
            Err(e) => eprintln!("kjump: {e}: a copy of the image could still be resumed until the next hibernation"),
        }
    }
    let away = away?;
    match mailbox.read() {
        Some(r) if r.ok => {
            println!("kjump: back in A after {:.1} s: {}", away.as_secs_f64(), r.text);
            Ok(())
        }
        Some(r) => Err(Error::Msg(format!("hibernate failed in the hibernation kernel: {}", r.text))),
        None => Err(Error::Msg(format!("back in A after {:.1} s, but the hibernation kernel left no report: the image may not be saved", away.as_secs_f64()))),
    }
}

/// `kjump load`: boots B now and leaves it resident (`kjump::resident`).
fn cmd_load(s: &Settings) -> Result<(), Error> {
    let _lock = kjump::lock::take("load")?;
    use kjump::resident;
    let p = prepare(s, "load")?;
    resident::make_run_dir()?;
    let mailbox = Mailbox::in_file(resident::mailbox_path(), (p.region.start, p.region.end), true)?;
    let mut hk = hibernation_kernel(s, &save_mode_args(s, &p.tgt, mailbox.phys(), true), Some(&p.dev))?;
    hk.resident = true;
    let rec = resident::Record {
        boot_id: resident::boot_id()?,
        mailbox: mailbox.phys(),
        region: (p.region.start, p.region.end),
        fingerprint: resident::fingerprint(&hk.cmdline, &hk.kernel, &hk.initrd),
    };
    mailbox.write_request(&kjump::mailbox::Request { uses: in_use::table_for_b(&p.uses), key: None })?;
    let loaded = jump::load_hibernation_kernel(&hk)?;
    drop(hk);
    println!("kjump: starting the hibernation kernel in {:#x}-{:#x}, to keep it resident for {}", loaded.region.0, loaded.region.1, p.tgt);
    let away = jump::jump_to_loaded();
    let report = mailbox.read();
    match (away, report) {
        (Ok(away), Some(r)) if r.ok => {
            if let Err(e) = resident::record(&rec) {
                // Unrecorded, it would never be entered: give its memory back.
                unload_after_jump();
                return Err(e);
            }
            println!(
                "kjump: the hibernation kernel is resident ({} of RAM held until 'kjump unload' or the next hibernation); it was away {:.1} s: {}",
                human_size(p.region.end - p.region.start),
                away.as_secs_f64(),
                r.text
            );
            Ok(())
        }
        (away, report) => {
            unload_after_jump();
            away?;
            Err(Error::Msg(match report {
                Some(r) => format!("load: the hibernation kernel refused: {}", r.text),
                None => "load: the hibernation kernel came back without a report".into(),
            }))
        }
    }
}

/// `kjump unload`: frees a resident B.
fn cmd_unload() -> Result<(), Error> {
    let _lock = kjump::lock::take("unload")?;
    if kjump::resident::recorded().is_none() {
        println!("kjump: no resident hibernation kernel");
        return Ok(());
    }
    kjump::resident::forget();
    kjump::kexec::unload()?;
    println!("kjump: unloaded the resident hibernation kernel");
    Ok(())
}

/// Runs `f` on the image of `tgt` on `dev`, opened (read-write when
/// `write`), with its name for messages: the device itself, or the file on
/// the ext4 filesystem there, mounted on a new directory of this process's
/// own (read-only without replaying its journal, or read-write when
/// `write`; `nodev,nosuid,noexec`) and unmounted afterwards, and opened
/// without following symbolic links. The target's filesystem is never one
/// A uses: `kjump hibernate` and B refuse those.
fn with_image<T>(tgt: &target::Target, dev: &std::path::Path, write: bool, f: impl FnOnce(&std::fs::File, &str) -> Result<T, Error>) -> Result<T, Error> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(file) = &tgt.file else {
        let name = dev.display().to_string();
        let opened = std::fs::OpenOptions::new().read(true).write(write).open(dev).map_err(|e| Error::io(format!("opening {name}"), e))?;
        return f(&opened, &name);
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("kjump-resume-{}-{nanos}", std::process::id()));
    // Created here, owner only; an existing path (a stale directory, a
    // planted link) is an error, never mounted over.
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mounted = if write {
        rustix::mount::mount(dev, &dir, "ext4", kjump::save::MOUNT_FLAGS, None)
            .map_err(|e| Error::sys(format!("mounting {} read-write on {}", dev.display(), dir.display()), e))
    } else {
        kjump::save::mount_read_only(dev, &dir)
    };
    let result = mounted.and_then(|()| {
        // Never through a symbolic link on the target filesystem, as in B and D.
        let name = format!("{}:{file}", dev.display());
        let result = kjump::save::open_image_file(&dir, file, write, false).and_then(|opened| f(&opened, &name));
        let _ = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::empty());
        result
    });
    let _ = std::fs::remove_dir(&dir);
    result
}

/// Reads the header and state of the image on `tgt` (mounting its
/// filesystem read-only when it is a file).
fn read_image_head(tgt: &target::Target, dev: &std::path::Path) -> Result<ImageHead, Error> {
    with_image(tgt, dev, false, |file, name| {
        let r = Reader::open(file).map_err(|e| Error::Msg(format!("{name}: {e}")))?;
        let committed = r.header_committed();
        let (h, st) = r.blocks();
        let blocks = [h, st].concat();
        Ok(ImageHead { header: r.header, state: r.state, committed, blocks })
    })
}

/// An image's header and state blocks, decoded and as read.
struct ImageHead {
    header: kjump::image::Header,
    state: kjump::image::StateBlock,
    /// The state block commits this header.
    committed: bool,
    /// Both blocks as read (for an encrypted image's MACs).
    blocks: Vec<u8>,
}

/// The note of an image given up because the boot said `noresume`.
const NORESUME_NOTE: &str = "not resumed: noresume given at boot; A's filesystems may have changed since";

/// What `kjump resume` does with the image on the target when the kernel
/// command line says `noresume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnNoresume {
    /// Nothing a later boot could resume here: write nothing.
    Leave,
    /// `--check`: say that the image would be marked bad.
    WouldMarkBad,
    /// Mark it bad: this boot goes on and may change A's filesystems, and
    /// a later boot must not resume A's memory over them.
    MarkBad,
}

/// Only a committed image of this machine could be resumed by a later
/// boot: that one is given up, as the kernel's own `noresume` gives up
/// its image. Another machine's image is never resumed here anyway.
fn on_noresume(state: State, other_machine: bool, check_only: bool) -> OnNoresume {
    match (state, other_machine, check_only) {
        (State::Committed, false, false) => OnNoresume::MarkBad,
        (State::Committed, false, true) => OnNoresume::WouldMarkBad,
        _ => OnNoresume::Leave,
    }
}

/// Updates the state block of the image on `tgt` with `update`, if the
/// image is still in the state `expected`. A raw device is opened
/// read-write; a file's filesystem is mounted read-write, the state
/// written and flushed, and unmounted.
fn update_image(
    tgt: &target::Target,
    dev: &std::path::Path,
    expected: State,
    update: impl FnOnce(&std::fs::File, &kjump::image::StateBlock) -> std::io::Result<()>,
) -> Result<(), Error> {
    with_image(tgt, dev, true, |file, name| {
        let state = Reader::open(file).map_err(|e| Error::Msg(format!("{name}: {e}")))?.state;
        if state.state != expected {
            return Err(Error::Msg(format!("{name} is {} now", state.state.name())));
        }
        update(file, &state).map_err(|e| Error::io(format!("updating the state of {name}"), e))
    })
}

/// Marks the image on `tgt` bad with `note`, if it is still `expected`.
fn mark_image_bad(tgt: &target::Target, dev: &std::path::Path, expected: State, note: &str) -> Result<(), Error> {
    // Without the key: the state block is not under its MAC, and an
    // encrypted image's wrapped key goes with it (no state allows a
    // resume without both).
    let mut block = Vec::new();
    update_image(tgt, dev, expected, |file, state| {
        block.clone_from(&state.key_block);
        kjump::image::set_state(file, state, State::Bad, note, None)
    })?;
    retire_tpm_key(&block);
    Ok(())
}

/// After an image sealed to the TPM is given up: its counter moved on, so
/// that no copy of the image unseals again. Only kjump's own counter, at
/// the value the block names (a forged block must not make C advance
/// another counter); best effort, since the image is bad already.
fn retire_tpm_key(key_block: &[u8]) {
    let Ok(Some(block)) = kjump::wrap::KeyBlock::decode(key_block) else { return };
    let Some(sealed) = block.tpm_sealed() else { return };
    if sealed.index != kjump::tpm::COUNTER_INDEX {
        return;
    }
    if let Err(e) = kjump::tpm::advance_from(sealed.index, sealed.counter) {
        eprintln!("kjump: {e}");
    }
}

/// `kjump resume` giving the image on `tgt` up because of `why`: marks it
/// bad (if it is still `expected`) and says so, or says what to do.
fn give_up_image(tgt: &target::Target, dev: &std::path::Path, expected: State, why: &str) -> String {
    match mark_image_bad(tgt, dev, expected, &format!("not resumed: {why}")) {
        Ok(()) => format!("{why}; marked the image bad, never to be resumed"),
        Err(e) => format!("{why}; could not mark the image bad ({e}): wipe it with 'kjump image wipe'"),
    }
}

/// `kjump resume` when `word` (`noresume`, `kjump.noresume`) is on the
/// kernel command line: no resume, and no later one either of a committed
/// image, since this boot may change A's filesystems. Returns the reason
/// for the one line `kjump resume` prints.
fn refuse_noresume(s: &Settings, word: &str, check_only: bool) -> String {
    let given = format!("'{word}' is on the kernel command line");
    let Some(text) = s.target.as_deref() else { return given };
    let tgt = match target::parse(text) {
        Ok(t) => t,
        Err(e) => return format!("{given}; target {text}: {e}"),
    };
    let dev = match target::wait_for(&tgt.device, Duration::from_secs(s.wait), |m| eprintln!("kjump: resume: {m}")) {
        Ok(dev) => dev,
        Err(e) => return format!("{given}; {e}"),
    };
    let (h, state) = match read_image_head(&tgt, &dev) {
        Ok(head) => (head.header, head.state),
        Err(_) => return format!("{given}; no image on {tgt}"),
    };
    let other = kjump::machine::mismatch(&h.machine_id, &kjump::machine::id());
    match on_noresume(state.state, other.is_some(), check_only) {
        OnNoresume::Leave => match other {
            Some(why) => format!("{given}; {why}: left as it is"),
            None => format!("{given}; the image on {tgt} is {}", state.state.name()),
        },
        OnNoresume::WouldMarkBad => format!("{given}; the committed image on {tgt} would be marked bad, never to be resumed"),
        OnNoresume::MarkBad => match in_use::check_device(&dev, &h.in_use).and_then(|()| mark_image_bad(&tgt, &dev, State::Committed, NORESUME_NOTE)) {
            Ok(()) => format!("{given}; marked the committed image on {tgt} bad: this boot may change A's filesystems, so no later boot may resume it"),
            Err(e) => {
                format!("{given}; could not mark the committed image on {tgt} bad ({e}): give it up with 'kjump image wipe' before another boot resumes it")
            }
        },
    }
}

fn cmd_resume(s: &Settings, check_only: bool) -> Result<(), Failure> {
    let _lock = kjump::lock::take("resume")?;
    let no = |why: String| Failure::NothingToResume(format!("resume: not resuming: {why}"));
    // Like the kernel's own resume, `noresume` skips it; and like the
    // kernel, it gives the image up (marks a committed one bad).
    let own = std::fs::read_to_string("/proc/cmdline").map_err(|e| Error::io("reading /proc/cmdline", e))?;
    if let Some(word) = cmdline::noresume(&own) {
        return Err(no(refuse_noresume(s, word, check_only)));
    }
    let text = s.target.as_deref().ok_or_else(|| Error::Msg("resume: no target; pass --target or set target= in /etc/kjump.conf".into()))?;
    let tgt = target::parse(text).map_err(|e| Error::Msg(format!("resume: target {text}: {e}")))?;
    // Early in boot the disk may still be appearing: wait for it as B does.
    let dev = target::wait_for(&tgt.device, Duration::from_secs(s.wait), |m| eprintln!("kjump: resume: {m}")).map_err(|e| no(e.to_string()))?;
    let ImageHead { header: h, state, committed, blocks } = read_image_head(&tgt, &dev).map_err(|e| no(format!("no image on {tgt}: {e}")))?;
    match state.state {
        State::Committed => {}
        State::Snapshot if s.snapshot => {}
        State::Snapshot => {
            return Err(no(format!(
                "the image on {tgt} is a snapshot: A went on running after it was saved; \
                 'kjump resume --snapshot' resumes it, if A's filesystems have not changed since"
            )))
        }
        State::Writing => return Err(no(format!("the image on {tgt} is incomplete: its save never finished (state writing)"))),
        State::Bad if !state.note.is_empty() => return Err(no(format!("the image on {tgt} is bad: {}", kjump::image::printable(&state.note)))),
        other => return Err(no(format!("the image on {tgt} is {}", other.name()))),
    }
    if let Some(why) = kjump::machine::mismatch(&h.machine_id, &kjump::machine::id()) {
        return Err(no(why));
    }
    // An encrypted image without its wrapped key can never be read again
    // (its state block was edited back after it was consumed, say).
    if h.encrypted() && state.key_block.is_empty() {
        return Err(no(format!("the image on {tgt}: {KEY_DESTROYED}")));
    }
    in_use::check_device(&dev, &h.in_use).map_err(|e| Error::Msg(format!("resume: not resuming: {e}")))?;
    if !committed {
        return Err(no(format!("the image on {tgt} is damaged: its state block commits a different header")));
    }
    // Resuming replaces this system with A: only before any of A's
    // filesystems is mounted read-write here (in the initramfs).
    if let Some(why) = kjump::freshness::mounted_here(&in_use::collect()?, &h.in_use) {
        return Err(Failure::Error(Error::Msg(format!(
            "resume: not resuming: {why}: 'kjump resume' runs at boot, before A's filesystems are mounted read-write (the initramfs hooks do that)"
        ))));
    }
    // Another system may have written A's filesystems since the image was
    // made: resuming over them would corrupt them, now or ever.
    let fresh = kjump::freshness::compare(&h.in_use, &h.stamps, &kjump::freshness::scan());
    if let Some(why) = fresh.refusal() {
        if !fresh.changed.is_empty() && !check_only {
            return Err(no(give_up_image(&tgt, &dev, state.state, &why)));
        }
        return Err(no(why));
    }
    for d in &fresh.unvouched {
        eprintln!("kjump: resume: cannot tell whether A's device {d} was written since the image was made");
    }
    // The image must come from this machine: same RAM, same region.
    let map = MemoryMap::read()?;
    let size = h.region.1 - h.region.0;
    let region = map.choose_region(size)?;
    if (region.start, region.end) != h.region {
        return Err(no(format!(
            "the image was made with the kjump region {:#x}-{:#x}; this machine's is {:#x}-{:#x} (different RAM?)",
            h.region.0, h.region.1, region.start, region.end
        )));
    }
    let expected: Vec<(u64, u64)> = kjump::layout::vmcore_loads(&map, region, 0, map.low_memory_end()).iter().map(|l| (l.paddr, l.paddr + l.size)).collect();
    if expected != h.ram || h.backup.1 != map.low_memory_end() {
        return Err(no(format!(
            "the image's RAM map differs from this machine's ({} vs {} of RAM)",
            human_size(h.ram.iter().map(|r| r.1 - r.0).sum()),
            human_size(expected.iter().map(|r| r.1 - r.0).sum())
        )));
    }
    println!(
        "kjump resume: committed image on {tgt}: A's kernel {}, {} stored; {}",
        kjump::image::printable(&h.kernel_release),
        human_size(h.data_bytes),
        if check_only { "would resume" } else { "resuming" }
    );
    // A restore that keeps failing must not take every boot: each start
    // of D is counted in the image first, and the image is given up after
    // `attempts` of them.
    if state.attempts >= s.attempts {
        let why = format!("the restore kernel was started {} time(s) for the image on {tgt} without resuming it", state.attempts);
        if check_only {
            return Err(no(format!("{why}; it would be marked bad")));
        }
        return Err(no(give_up_image(&tgt, &dev, state.state, &why)));
    }
    if check_only {
        if h.encrypted() {
            println!("kjump resume: the image is encrypted ({}); its key would be asked for", encryption_text(&h, &state));
        }
        return Ok(());
    }
    // An encrypted image: its key first (a wrong passphrase or key file
    // leaves the image as it is and counts no attempt), then its header
    // and state authenticated, before anything is written or loaded.
    let unlocked = if h.encrypted() {
        let key = match image_key(&h, &state, s.key_file.as_deref(), true) {
            Ok(Some(key)) => key,
            Ok(None) => return Err(Error::Msg("resume: not resuming: no key".into()).into()),
            Err(KeyError::Keep(e)) => return Err(Error::Msg(format!("resume: not resuming the image on {tgt}: {e}")).into()),
            Err(KeyError::Stale(why)) => return Err(no(give_up_image(&tgt, &dev, state.state, &why))),
        };
        let (hb, sb) = blocks.split_at(kjump::image::BLOCK);
        match kjump::image::unlock(&key, &h, hb, sb) {
            Ok(sealer) => Some((key, sealer)),
            Err(e) => return Err(no(give_up_image(&tgt, &dev, state.state, &format!("the image on {tgt} is forged or damaged: {e}")))),
        }
    } else {
        None
    };
    let keys = unlocked.as_ref().map(|(_, s)| &*s.keys);
    update_image(&tgt, &dev, state.state, |f, st| {
        // The state block MACed again must be the one just authenticated.
        if *st != state {
            return Err(std::io::Error::other("the state block changed while kjump resume read it"));
        }
        kjump::image::record_attempt(f, st, keys).map(drop)
    })
    .map_err(|e| Error::Msg(format!("resume: not resuming: cannot count this attempt in the image's state ({e})")))?;
    let s = Settings { region_size: size, ..s.clone() };
    let mode = restore_mode_args(&tgt, &s, false);
    // This kernel (C) is not resumed: nothing of it in the region needs
    // setting aside, and D restores A over all the rest.
    let mut d = hibernation_kernel(&s, &mode, Some(&dev))?;
    d.set_region_aside = false;
    if let Some((key, _)) = &unlocked {
        // D finds the key in a page of its own (kjump.keypage=) and wipes it.
        let mut page = vec![0u8; kjump::units::PAGE_SIZE as usize];
        kjump::keypage::encode(key, h.image_id, &mut page)?;
        d.key_page = Some(page);
    }
    drop(unlocked);
    jump::load_hibernation_kernel(&d)?;
    jump::jump_to_loaded()?;
    Err(Error::Msg("resume: the restore kernel came back; A was not resumed".into()).into())
}

/// D's mode arguments, the same whether C loads D or a boot entry starts it.
fn restore_mode_args(tgt: &target::Target, s: &Settings, direct: bool) -> String {
    Orders::Restore(kjump::orders::Restore { target: tgt.clone(), wait: s.wait, keep: s.keep, attempts: s.attempts, snapshot: s.snapshot, direct }).to_string()
}

/// Where a kernel booted through UEFI finds its firmware's tables.
const EFI_SYSFS: &str = "/sys/firmware/efi";

/// Writes the files of a boot loader entry that starts D directly (see
/// `kjump::boot_entry`): the hibernation kernel asking to run at the
/// region, its initramfs, and D's command line, which reserves the rest of
/// this machine's RAM.
fn cmd_boot_entry(s: &Settings, dir: &str) -> Result<(), Error> {
    // Under UEFI the boot loader starts the kernel through its EFI stub,
    // which places the kernel itself, not at the entry's address; D would
    // then find itself outside the region and refuse at every resume.
    if std::path::Path::new(EFI_SYSFS).exists() {
        return Err(Error::Msg(
            "boot-entry: this machine booted through UEFI, where the kernel's EFI stub places the restore kernel itself and it would refuse to run; resume through the normal boot instead (kjump resume in the initramfs)".into(),
        ));
    }
    // A restore kernel the boot loader starts gets no key from C.
    if s.encrypt.encrypts() {
        return Err(Error::Msg(
            "boot-entry: images are encrypted (encrypt in /etc/kjump.conf), and a restore kernel started by the boot loader has no key to open them; resume through the normal boot instead (kjump resume in the initramfs)".into(),
        ));
    }
    let text = s.target.as_deref().ok_or_else(|| Error::Msg("boot-entry: no target; pass --target or set target= in /etc/kjump.conf".into()))?;
    let tgt = target::parse(text).map_err(|e| Error::Msg(format!("boot-entry: target {text}: {e}")))?;
    let dev = target::wait_for(&tgt.device, Duration::from_secs(s.wait), |m| eprintln!("kjump: boot-entry: {m}"))?;
    let map = MemoryMap::read()?;
    let region = map.choose_region(s.region_size)?;
    let mode = restore_mode_args(&tgt, s, true);
    let d = hibernation_kernel(s, &mode, Some(&dev))?;
    let kernel = kjump::boot_entry::kernel_at(&d.kernel, region).map_err(|e| Error::Msg(format!("boot-entry: {e}")))?;
    let cmdline = format!(
        "{} kjump.region={:#x}-{:#x} no5lvl {}",
        d.cmdline.split_whitespace().collect::<Vec<_>>().join(" "),
        region.start,
        region.end,
        kjump::boot_entry::reservations(&map, region)
    );
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {dir}"), e))?;
    for (name, bytes) in [("vmlinuz", &kernel[..]), ("initrd.img", &d.initrd[..]), ("cmdline", format!("{cmdline}\n").as_bytes())] {
        let path = format!("{dir}/{name}");
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(format!("writing {tmp}"), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(format!("renaming {tmp} to {path}"), e))?;
    }
    println!("kjump: wrote {dir}/vmlinuz, {dir}/initrd.img and {dir}/cmdline (the kjump region is {:#x}-{:#x})", region.start, region.end);
    println!("A GRUB entry (BIOS boot; paths as GRUB sees them, each $ written \\$):");
    println!("menuentry 'kjump resume' {{");
    println!("    linux {dir}/vmlinuz {}", cmdline.replace('$', "\\$"));
    println!("    initrd {dir}/initrd.img");
    println!("}}");
    println!("Before hibernating, 'grub-reboot \"kjump resume\"' makes the next boot use it once; if the");
    println!("restore kernel finds no image, or is not where the entry says, it reboots into the default entry.");
    println!("Run this again after changing the target, the hibernation kernel or the machine's RAM.");
    Ok(())
}

/// `kjump-init` next to `kjump` (a build tree), else where `make install` put it.
fn default_init(exe: &std::path::Path) -> std::path::PathBuf {
    let sibling = exe.with_file_name("kjump-init");
    if sibling.is_file() {
        sibling
    } else {
        kjump::config::installed_init().into()
    }
}

/// The settings as `kjump.conf` lines: what `kjump config` prints, and a
/// file kjump reads back to the same settings.
fn config_text(s: &Settings) -> String {
    let size = if s.region_size % MIB == 0 { format!("{}M", s.region_size / MIB) } else { s.region_size.to_string() };
    let target = match &s.target {
        Some(t) => format!("target = {t}"),
        None => "# target is not set".to_string(),
    };
    format!(
        "{target}\nafter = {}\ncompress = {}\nwait = {}\nkernel = {}\ninitrd = {}\nregion-size = {size}\nkeep = {}\nattempts = {}\n{}\n{}\n",
        s.after.name(),
        s.compress.name(),
        s.wait,
        s.kernel,
        s.initrd,
        if s.keep { "yes" } else { "no" },
        s.attempts,
        match s.encrypt.value() {
            Some(v) => format!("encrypt = {v}"),
            None => "# encrypt is not set: refused on a system with encrypted disks".to_string(),
        },
        format!("append = {}", s.append).trim_end()
    )
}

fn cmd_initramfs(output: &str, init: Option<&str>) -> Result<(), Error> {
    let init_path = match init {
        Some(p) => std::path::PathBuf::from(p),
        None => default_init(&std::env::current_exe().map_err(|e| Error::io("finding kjump's own path", e))?),
    };
    let init = std::fs::read(&init_path).map_err(|e| Error::io(format!("reading {}", init_path.display()), e))?;
    let image = kjump::initramfs::build(&init)?;
    let tmp = format!("{output}.tmp");
    std::fs::write(&tmp, &image).map_err(|e| Error::io(format!("writing {tmp}"), e))?;
    std::fs::rename(&tmp, output).map_err(|e| Error::io(format!("renaming {tmp} to {output}"), e))?;
    println!("kjump: wrote {output} ({} KiB, init {})", image.len() / 1024, init_path.display());
    Ok(())
}

/// When an image was made, for people: an RFC 3339 UTC date, and the raw
/// seconds when they are beyond what a date can say.
fn created_text(unix: u64) -> String {
    match std::time::UNIX_EPOCH.checked_add(Duration::from_secs(unix)) {
        Some(t) if unix < 253_402_300_800 => format!("{} ({unix} seconds since 1970)", humantime::format_rfc3339_seconds(t)),
        _ => format!("{unix} seconds since 1970"),
    }
}

/// Opens an image file or device for the image tools: never through a
/// symbolic link (wipe would zero the link's target and remove the link),
/// never a FIFO or socket (reading one blocks), and never a directory.
fn open_image(path: &str, write: bool) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new().read(true).write(write).custom_flags(flags.bits() as i32).open(path).map_err(|e| match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => Error::Msg(format!("{path} is a symbolic link: name the image file or device itself")),
        _ => Error::io(format!("opening {path}"), e),
    })?;
    let kind = file.metadata().map_err(|e| Error::io(format!("examining {path}"), e))?.file_type();
    if !(kind.is_file() || kind.is_block_device()) {
        return Err(Error::Msg(format!("{path} is not a regular file or a block device: no image there")));
    }
    Ok(file)
}

fn cmd_image(path: &str, verify: bool, key_file: Option<&str>) -> Result<(), Error> {
    let file = open_image(path, false)?;
    let mut r = Reader::open(std::io::BufReader::with_capacity(4 << 20, file)).map_err(|e| Error::Msg(format!("{path}: {e}")))?;
    let h = &r.header;
    println!("image {path}");
    println!("  state        {}", r.state.state.name());
    if !r.state.note.is_empty() {
        println!("  note         {}", kjump::image::printable(&r.state.note));
    }
    println!("  attempts     {} start(s) of the restore kernel", r.state.attempts);
    println!(
        "  kernel       {} (build id {})",
        kjump::image::printable(&h.kernel_release),
        if h.build_id.is_empty() { "unknown".into() } else { kjump::image::printable(&h.build_id) }
    );
    println!("  created      {}", created_text(h.created_unix));
    println!("  compression  {}", h.compression.map_or("none", Compression::name));
    println!("  RAM          {} in {} ranges, {} pages", human_size(h.ram.iter().map(|r| r.1 - r.0).sum()), h.ram.len(), h.ram_pages);
    println!("  pages        {} stored, {} zero, {} free (left out)", h.stored_pages, h.zero_pages, h.free_pages);
    println!("  data         {} in {} chunks", human_size(h.data_bytes), h.chunk_count);
    println!("  region       {:#x}-{:#x}", h.region.0, h.region.1);
    println!("  re-entry     {:#x}, low memory {:#x}+{:#x}", h.reentry, h.backup.0, h.backup.1);
    println!("  encryption   {}", encryption_text(h, &r.state));
    if !verify {
        return Ok(());
    }
    if r.state.state == State::Writing {
        return Err(Error::Msg(format!("verify {path}: the image is incomplete (never committed)")));
    }
    if !r.header_committed() {
        return Err(Error::Msg(format!("verify {path}: the state block commits a different header")));
    }
    // First what D checks before it writes a page: every chunk's pages
    // inside A's RAM, outside the kjump region, in order, none twice, and
    // the image complete to its last byte.
    {
        let mut layout = kjump::image::RunCheck::new(&r.header.ram, r.header.region);
        let mut input = open_image(path, false)?;
        kjump::image::scan_runs(&mut input, &r.state, |info, runs, zero_runs| {
            layout.check(info.index, runs, zero_runs).map_err(|e| kjump::image::ReadError::Format(kjump::image::Error::Run(e)))
        })
        .map_err(|e| Error::Msg(format!("verify {path}: {e}")))?;
    }
    // An encrypted image is authenticated when its key can be had; without
    // it only what anyone could recompute is checked, and that is said.
    let unlocked = if r.encrypted() {
        let key =
            image_key(&r.header, &r.state, key_file, kjump::ask::stdin_is_terminal()).map_err(|e| Error::Msg(format!("verify {path}: {}", Error::from(e))))?;
        match key {
            Some(key) => {
                r.unlock(&key).map_err(|e| Error::Msg(format!("verify {path}: {e}")))?;
                true
            }
            None => false,
        }
    } else {
        false
    };
    let (mut stored, mut zero) = (0u64, 0u64);
    let mut last = std::time::Instant::now();
    while let Some((info, bufs)) = r.next_chunk().map_err(|e| Error::Msg(format!("verify {path}: {e}")))? {
        stored += info.page_count as u64;
        zero = bufs
            .zero_runs
            .iter()
            .try_fold(zero, |z, r| z.checked_add(r.1))
            .ok_or_else(|| Error::Msg(format!("verify {path}: chunk {}: zero page count overflows", info.index)))?;
        if last.elapsed() > Duration::from_secs(1) {
            eprintln!("  verified {} of {} chunks", info.index + 1, r.header.chunk_count);
            last = std::time::Instant::now();
        }
    }
    if stored != r.header.stored_pages {
        return Err(Error::Msg(format!("verify {path}: chunks hold {stored} pages, the header says {}", r.header.stored_pages)));
    }
    if zero != r.header.zero_pages {
        return Err(Error::Msg(format!("verify {path}: chunks list {zero} zero pages, the header says {}", r.header.zero_pages)));
    }
    if r.encrypted() && !unlocked {
        println!(
            "kjump: image checked: {} chunks, {stored} pages stored and {zero} zero, every checksum good; NOT authenticated: \
             without the key nothing tells whether someone rewrote it (give --key-file, or run on a terminal to be asked for the passphrase)",
            r.header.chunk_count
        );
        return Ok(());
    }
    println!(
        "kjump: image verified: {} chunks, {stored} pages stored and {zero} zero, every checksum good{}",
        r.header.chunk_count,
        if unlocked { ", header, state and every chunk authenticated" } else { "" }
    );
    Ok(())
}

/// `kjump image wipe`: overwrite a kjump image with zeros (header, state
/// and every chunk), flush, discard the range, and remove it if it is a
/// file. Anything that is not a kjump image is left alone.
fn cmd_wipe(path: &str) -> Result<(), Error> {
    use std::os::unix::fs::{FileExt, FileTypeExt};
    let file = open_image(path, true).map_err(|e| Error::Msg(format!("wipe: {e}; nothing was written")))?;
    let meta = file.metadata().map_err(|e| Error::io(format!("wipe: examining {path}"), e))?;
    let r = Reader::open(&file).map_err(|e| Error::Msg(format!("wipe: {path} does not hold a kjump image ({e}); nothing was written")))?;
    if meta.file_type().is_block_device() {
        let uses = in_use::collect()?;
        if let Some(why) = in_use::conflict(std::path::Path::new(path), &uses)? {
            return Err(Error::Msg(format!("wipe: {why}; nothing was written")));
        }
    }
    let size = if meta.is_file() { meta.len() } else { target::device_size(std::path::Path::new(path))? };
    let end = wipe_end(&r.state, r.header.data_bytes, size);
    drop(r);
    let zeros = vec![0u8; 8 << 20];
    let mut at = 0u64;
    let mut last = std::time::Instant::now();
    while at < end {
        let n = (end - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at).map_err(|e| Error::io(format!("wipe: writing {path} at byte {at}"), e))?;
        at += n as u64;
        if last.elapsed() > Duration::from_secs(1) {
            eprintln!("kjump: wiped {} of {}", human_size(at), human_size(end));
            last = std::time::Instant::now();
        }
    }
    file.sync_all().map_err(|e| Error::io(format!("wipe: flushing {path}"), e))?;
    let discarded = kjump::discard::discard(&file, 0, end)?;
    drop(file);
    if meta.is_file() {
        std::fs::remove_file(path).map_err(|e| Error::io(format!("wipe: removing {path}"), e))?;
    }
    println!(
        "kjump: wiped {} of {path}{}{}",
        human_size(end),
        if discarded == kjump::discard::Outcome::Discarded { " and discarded it" } else { " (the device cannot discard)" },
        if meta.is_file() { "; file removed" } else { "" }
    );
    Ok(())
}

/// How many bytes from the start `kjump image wipe` overwrites: up to where
/// the state block or the header says the chunks end, whichever is
/// further; all `size` bytes of an incomplete image, whose state block does
/// not count the chunks B had written when it stopped; never past `size`,
/// and at least the header and state blocks.
fn wipe_end(state: &kjump::image::StateBlock, data_bytes: u64, size: u64) -> u64 {
    use kjump::image::DATA_OFFSET;
    let end = match state.state {
        State::Writing => size,
        _ => state.data_end.max(DATA_OFFSET.saturating_add(data_bytes)),
    };
    end.min(size).max(DATA_OFFSET.min(size))
}

/// `kjump bench-io`: the machine's physical limits, measured in the
/// hibernation kernel (B), which then jumps back.
fn cmd_bench_io(s: &Settings) -> Result<(), Error> {
    let _lock = kjump::lock::take("bench-io")?;
    let text = s.target.as_deref().ok_or_else(|| Error::Msg("bench-io: pass --target DEVICE (a scratch disk: it is overwritten)".into()))?;
    let tgt = target::parse(text).map_err(|e| Error::Msg(format!("bench-io: target {text}: {e}")))?;
    if tgt.file.is_some() {
        return Err(Error::Msg("bench-io: the target must be a device, not a file".into()));
    }
    run_checks(s, true).map_err(|e| Error::Msg(format!("bench-io: {e}")))?;
    let dev = target::resolve(&tgt.device)?.ok_or_else(|| Error::Msg(format!("bench-io: target {text} is missing")))?;
    let uses = in_use::collect()?;
    if let Some(why) = in_use::conflict(&dev, &uses)? {
        return Err(Error::Msg(format!("bench-io: {why}")));
    }
    let map = MemoryMap::read()?;
    let region = map.choose_region(s.region_size)?;
    let mailbox = Mailbox::new((region.start, region.end))?;
    mailbox.write_request(&kjump::mailbox::Request { uses: in_use::table_for_b(&uses), key: None })?;
    let mode = Orders::Bench(kjump::orders::Bench { target: tgt.clone(), wait: s.wait, mailbox: mailbox.phys() }).to_string();
    jump::load_hibernation_kernel(&hibernation_kernel(s, &mode, Some(&dev))?)?;
    let away = jump::jump_to_loaded();
    unload_after_jump();
    let away = away?;
    match mailbox.read() {
        Some(r) if r.ok => {
            println!("kjump: {} (away {:.1} s)", r.text, away.as_secs_f64());
            Ok(())
        }
        Some(r) => Err(Error::Msg(format!("bench-io failed in the hibernation kernel: {}", r.text))),
        None => Err(Error::Msg("bench-io: the hibernation kernel left no report".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times_read_as_dates() {
        assert_eq!(created_text(1_800_000_000), "2027-01-15T08:00:00Z (1800000000 seconds since 1970)");
        assert_eq!(created_text(0), "1970-01-01T00:00:00Z (0 seconds since 1970)");
        assert_eq!(created_text(u64::MAX), "18446744073709551615 seconds since 1970");
    }

    #[test]
    fn image_tools_refuse_links_fifos_and_directories() {
        let dir = std::env::temp_dir().join(format!("kjump-open-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("image");
        std::fs::write(&file, b"x").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let fifo = dir.join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0).unwrap();
        assert!(open_image(file.to_str().unwrap(), false).is_ok());
        let e = open_image(link.to_str().unwrap(), true).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        let e = open_image(fifo.to_str().unwrap(), false).unwrap_err().to_string();
        assert!(e.contains("not a regular file or a block device"), "{e}");
        let e = open_image(dir.to_str().unwrap(), false).unwrap_err().to_string();
        assert!(e.contains("not a regular file or a block device") || e.contains("Is a directory"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The setting flags of `kjump config ARGS`.
    fn flags(args: &[&str]) -> SettingFlags {
        match cli::parse(std::iter::once("config").chain(args.iter().copied())) {
            Ok(Command::Config(flags)) => flags,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_installed_files() {
        let s = settings(&flags(&["--config", "/nonexistent/kjump.conf"])).unwrap();
        assert_eq!(s.kernel, format!("{LIBDIR}/vmlinuz"));
        assert_eq!(s.initrd, format!("{LIBDIR}/initramfs.img"));
        assert!(usage().contains(&format!("[default: {LIBDIR}/vmlinuz]")), "{}", usage());
        assert!(!usage().contains("{LIBDIR}"));
    }

    #[test]
    fn config_output_reads_back_to_the_same_settings() {
        let dir = std::env::temp_dir().join(format!("kjump-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kjump.conf");
        let cases: [&[&str]; 3] = [
            &[],
            &["--target", "LABEL=hib:/kjump.img", "--after", "resume", "--compress", "deflate", "--wait", "3", "--keep"],
            &["--kernel", "/k", "--initrd", "/i", "--region-size", "100000000", "--append", "quiet loglevel=3"],
        ];
        for args in cases {
            let mut all = vec!["--config", "/nonexistent/kjump.conf"];
            all.extend_from_slice(args);
            let s = settings(&flags(&all)).unwrap();
            let text = config_text(&s);
            std::fs::write(&path, &text).unwrap();
            let back = settings(&flags(&["--config", path.to_str().unwrap()])).unwrap();
            assert_eq!(config_text(&back), text);
            assert_eq!((back.kernel, back.initrd, back.region_size, back.append), (s.kernel, s.initrd, s.region_size, s.append));
            assert_eq!((back.target, back.after, back.compress, back.wait, back.keep), (s.target, s.after, s.compress, s.wait, s.keep));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn noresume_gives_up_only_a_committed_image_of_this_machine() {
        use OnNoresume::*;
        assert_eq!(on_noresume(State::Committed, false, false), MarkBad);
        assert_eq!(on_noresume(State::Committed, false, true), WouldMarkBad);
        assert_eq!(on_noresume(State::Committed, true, false), Leave);
        assert_eq!(on_noresume(State::Committed, true, true), Leave);
        for state in [State::Writing, State::Consumed, State::Bad] {
            for (other, check) in [(false, false), (false, true), (true, false), (true, true)] {
                assert_eq!(on_noresume(state, other, check), Leave, "{state:?}");
            }
        }
        // The note fits the state block's 256 bytes.
        assert!(NORESUME_NOTE.len() < 256);
    }

    #[test]
    fn wipe_covers_every_byte_b_may_have_written() {
        use kjump::image::{StateBlock, DATA_OFFSET};
        let st = |state, data_end| StateBlock {
            state,
            header_crc: 0,
            chain_crc: 0,
            chunk_count: 0,
            data_end,
            note: String::new(),
            attempts: 0,
            tags: [0; 32],
            key_block: Vec::new(),
        };
        let gib = 1 << 30;
        // Committed, consumed, bad: the chunks end where the records say.
        for state in [State::Committed, State::Consumed, State::Bad] {
            assert_eq!(wipe_end(&st(state, DATA_OFFSET + 4096), 4096, gib), DATA_OFFSET + 4096);
            assert_eq!(wipe_end(&st(state, DATA_OFFSET), 8192, gib), DATA_OFFSET + 8192);
            assert_eq!(wipe_end(&st(state, 2 * gib), 0, gib), gib);
            assert_eq!(wipe_end(&st(state, 0), u64::MAX, gib), gib);
        }
        // A save that never finished records no chunks: everything goes.
        assert_eq!(wipe_end(&st(State::Writing, DATA_OFFSET), 0, gib), gib);
        // Never past the end, never less than the two blocks that are there.
        assert_eq!(wipe_end(&st(State::Committed, 0), 0, 4096), 4096);
        assert_eq!(wipe_end(&st(State::Committed, 0), 0, gib), DATA_OFFSET);
    }

    #[test]
    fn init_defaults_to_the_sibling_then_the_installed_one() {
        let dir = std::env::temp_dir().join(format!("kjump-init-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("kjump");
        assert_eq!(default_init(&exe), std::path::PathBuf::from(format!("{LIBDIR}/kjump-init")));
        std::fs::write(dir.join("kjump-init"), b"").unwrap();
        assert_eq!(default_init(&exe), dir.join("kjump-init"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
