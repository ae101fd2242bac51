//! `kjump`'s command line, parsed with lexopt into one typed value per
//! command. Parsing reads no file and touches no device: an unknown flag,
//! a flag of another command or a stray word is refused before anything
//! happens.

use std::ffi::OsString;
use std::fmt;

use kjump::host::config::LIBDIR;
use lexopt::{Arg, Parser, ValueExt};

/// The longest `--wait` accepted, in seconds: a boot waits at most this
/// long for the target (issue 17 item 11).
pub const MAX_WAIT: u64 = 600;

/// The setting flags as given on the command line (`None`: not given).
/// `settings()` merges them over `/etc/kjump.conf`, whose keys have the
/// same names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingFlags {
    pub config: Option<String>,
    pub target: Option<String>,
    pub after: Option<String>,
    pub compress: Option<String>,
    pub wait: Option<String>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub region_size: Option<String>,
    pub append: Option<String>,
    pub keep: bool,
    pub snapshot: bool,
    pub key_file: Option<String>,
}

impl SettingFlags {
    /// The value of the flag for the configuration key `key` (`keep`:
    /// `yes` when `--keep` was given), if the flag was given.
    pub fn get(&self, key: &str) -> Option<&str> {
        match key {
            "config" => self.config.as_deref(),
            "target" => self.target.as_deref(),
            "after" => self.after.as_deref(),
            "compress" => self.compress.as_deref(),
            "wait" => self.wait.as_deref(),
            "kernel" => self.kernel.as_deref(),
            "initrd" => self.initrd.as_deref(),
            "region-size" => self.region_size.as_deref(),
            "append" => self.append.as_deref(),
            "keep" => self.keep.then_some("yes"),
            "key-file" => self.key_file.as_deref(),
            _ => None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Hibernate(SettingFlags),
    Load(SettingFlags),
    Unload,
    /// `check`: only report (exit 0 if it would resume, 3 if not);
    /// `json`: as one JSON object.
    Resume {
        check: bool,
        json: bool,
        flags: SettingFlags,
    },
    /// `jump`: also a live round trip A -> B -> A; `json`: report as one
    /// JSON object.
    Check {
        jump: bool,
        json: bool,
        flags: SettingFlags,
    },
    ImageInfo {
        path: String,
        json: bool,
    },
    ImageVerify(String, Option<String>),
    ImageWipe(String),
    /// `image export --elf FILE`: the image, the core file, the key file,
    /// whether to replace the core file.
    ImageExport {
        image: String,
        elf: String,
        key_file: Option<String>,
        force: bool,
    },
    BenchIo(SettingFlags),
    BootEntry {
        output: String,
        flags: SettingFlags,
    },
    Initramfs {
        output: String,
        init: Option<String>,
    },
    Config(SettingFlags),
    /// `keygen`: where to write the key pair, Argon2 memory in KiB,
    /// whether to replace a pair that is there.
    Keygen {
        dir: String,
        argon2_memory: Option<u32>,
        force: bool,
    },
    /// `sleep OPERATION`: what systemd's sleep service runs (hooks, then
    /// suspend and/or hibernate).
    Sleep {
        op: kjump::host::sleep::Operation,
        flags: SettingFlags,
    },
    /// How the last hibernation went.
    Status,
    /// `systemd-generator DIR [EARLY LATE]`: systemd's generator call.
    SystemdGenerator(String),
    /// `initramfs-digest`: for the kernel release (default: the running
    /// one), print, record or remove what the initramfs hooks put in.
    InitramfsDigest {
        release: Option<String>,
        action: DigestAction,
        config: Option<String>,
    },
    /// Print this text on standard output, do nothing else.
    Help(String),
    Version,
}

impl Command {
    /// The command's words, for `see 'kjump … --help'` after an error.
    pub fn topic(&self) -> &'static str {
        match self {
            Command::Hibernate(_) => "hibernate",
            Command::Load(_) => "load",
            Command::Unload => "unload",
            Command::Resume { .. } => "resume",
            Command::Check { .. } => "check",
            Command::ImageInfo { .. } => "image info",
            Command::ImageVerify(..) => "image verify",
            Command::ImageWipe(_) => "image wipe",
            Command::ImageExport { .. } => "image export",
            Command::BenchIo(_) => "bench-io",
            Command::BootEntry { .. } => "boot-entry",
            Command::Initramfs { .. } => "initramfs",
            Command::Config(_) => "config",
            Command::Keygen { .. } => "keygen",
            Command::Sleep { .. } => "sleep",
            Command::Status => "status",
            Command::SystemdGenerator(_) => "systemd-generator",
            Command::InitramfsDigest { .. } => "initramfs-digest",
            Command::Help(_) | Command::Version => "",
        }
    }
}

/// What `kjump initramfs-digest` does with the digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAction {
    Print,
    /// `--write`: record it for `kjump check`.
    Write,
    /// `--remove`: the initramfs holds no kjump.
    Remove,
}

/// A bad command line: `msg`, and the help to read (`topic`: a command's
/// words, or empty for the overview).
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError {
    pub msg: String,
    pub topic: &'static str,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let space = if self.topic.is_empty() { "" } else { " " };
        write!(f, "kjump: {}; see 'kjump{space}{} --help'", self.msg, self.topic)
    }
}

impl std::error::Error for UsageError {}

fn usage(topic: &'static str, msg: impl Into<String>) -> UsageError {
    UsageError { msg: msg.into(), topic }
}

/// Every flag of every command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flag {
    Target,
    After,
    Compress,
    Wait,
    Kernel,
    Initrd,
    RegionSize,
    Append,
    Config,
    Keep,
    Snapshot,
    Check,
    Jump,
    Output,
    Init,
    Dir,
    Argon2Memory,
    KeyFile,
    Force,
    Elf,
    Json,
    KernelRelease,
    Write,
    Remove,
}

use Flag::*;

const ALL_FLAGS: [Flag; 24] = [
    Target,
    After,
    Compress,
    Wait,
    Kernel,
    Initrd,
    RegionSize,
    Append,
    Config,
    Keep,
    Snapshot,
    Check,
    Jump,
    Output,
    Init,
    Dir,
    Argon2Memory,
    Force,
    KeyFile,
    Elf,
    Json,
    KernelRelease,
    Write,
    Remove,
];

impl Flag {
    fn name(self) -> &'static str {
        match self {
            Target => "target",
            After => "after",
            Compress => "compress",
            Wait => "wait",
            Kernel => "kernel",
            Initrd => "initrd",
            RegionSize => "region-size",
            Append => "append",
            Config => "config",
            Keep => "keep",
            Snapshot => "snapshot",
            Check => "check",
            Jump => "jump",
            Output => "output",
            Init => "init",
            Dir => "dir",
            Argon2Memory => "argon2-memory",
            KeyFile => "key-file",
            Force => "force",
            Elf => "elf",
            Json => "json",
            KernelRelease => "kernel-release",
            Write => "write",
            Remove => "remove",
        }
    }

    fn takes_value(self) -> bool {
        !matches!(self, Keep | Snapshot | Check | Jump | Force | Json | Write | Remove)
    }

    /// The flag's lines in the help of command `cmd`.
    fn help(self, cmd: &str) -> &'static str {
        match self {
            Target => {
                "  --target TARGET      where the image goes: /dev/NAME, UUID=…, PARTUUID=… or LABEL=…,
                       optionally :/path for a file on the ext4 filesystem there
                       (that filesystem must not be mounted here at all)
"
            }
            After => "  --after ACTION       poweroff (default), reboot, resume (save, then continue: a snapshot),\n                       or suspend (hybrid sleep: suspend to RAM with the image saved)\n",
            Compress => "  --compress KIND      lz4 (default, fast), deflate (smaller), none\n",
            Wait => {
                "  --wait SECONDS       how long the hibernation kernel, and kjump resume at boot,
                       wait for the target to appear: 0 to 600  [default: 10]
"
            }
            Kernel => "  --kernel PATH        hibernation kernel (bzImage)   [default: {LIBDIR}/vmlinuz]\n",
            Initrd => "  --initrd PATH        hibernation initramfs          [default: {LIBDIR}/initramfs.img]\n",
            RegionSize => {
                "  --region-size SIZE   RAM the hibernation kernel runs in, set aside only while
                       it runs (K/M/G suffixes)       [default: 64M]
"
            }
            Append => "  --append ARGS        more arguments for the hibernation kernel's command line\n",
            Config => "  --config FILE        settings file                  [default: /etc/kjump.conf]\n",
            Keep => {
                "  --keep               resume: keep the image's data afterwards (default: the restore
                       kernel discards it once A's memory is back; the image is
                       marked consumed either way)
"
            }
            Snapshot => "  --snapshot           resume: also resume a snapshot (an image saved with --after resume),\n                       if A's filesystems have not changed since\n",
            Check => "  --check              only say what it would do: exit 0 if it would resume, 3 if not\n",
            Jump => "  --jump               also do a live round trip A -> B -> A\n",
            Output if cmd == "initramfs" => "  -o, --output FILE    the initramfs to write (required)\n",
            Output => "  -o, --output DIR     where to write the entry's files  [default: /boot/kjump]\n",
            Init => "  --init PATH          the kjump-init to put in [default: the one next to kjump,\n                       else {LIBDIR}/kjump-init]\n",
            Dir => "  --dir DIR            where to write public.key and private.key  [default: /etc/kjump]\n",
            Argon2Memory => "  --argon2-memory KIB  Argon2id memory cost in KiB, 8 to 1048576  [default: 65536]\n",
            KeyFile => "  --key-file PATH      the key file that unwraps an encrypted image's key\n                       [default: the one encrypt = keyfile:PATH names]\n",
            Force if cmd == "image export" => "  --force              replace FILE if it exists\n",
            Force => "  --force              replace an existing key pair\n",
            Elf => "  --elf FILE           the core file to write (required)\n",
            Json if cmd == "resume" => "  --json               with --check: print one JSON object (fields in kjump(8))\n",
            Json => "  --json               print one JSON object instead (fields in kjump(8))\n",
            KernelRelease => "  --kernel-release RELEASE\n                       the kernel the initramfs is for  [default: the running one]\n",
            Write => "  --write              record the digest in /var/lib/kjump/initramfs/RELEASE.digest and\n                       print that path\n",
            Remove => "  --remove             remove that record (the initramfs holds no kjump)\n",
        }
    }
}

/// The flags of the hibernation kernel itself: which, in how much RAM,
/// with what command line, and the file that may set them.
const KERNEL_FLAGS: [Flag; 5] = [Kernel, Initrd, RegionSize, Append, Config];

/// A command: its words, what its help says, and the flags it takes.
struct Spec {
    topic: &'static str,
    synopsis: &'static str,
    about: &'static str,
    flags: &'static [Flag],
}

const HIBERNATE: Spec = Spec {
    topic: "hibernate",
    synopsis: "kjump hibernate [OPTIONS]",
    about: "Save this system's memory to the target and power off (or --after reboot|resume|suspend);
returns when A comes back. Refuses, before loading anything, when a check of
'kjump check' fails or the target is missing, too small, or used by this system.
",
    flags: &[Target, After, Compress, Wait, Kernel, Initrd, RegionSize, Append, Config],
};

const LOAD: Spec = Spec {
    topic: "load",
    synopsis: "kjump load [OPTIONS]",
    about: "Boot the hibernation kernel now and keep it resident: 'kjump hibernate' then enters
it instead of booting it, if given the same settings. Holds the region's RAM (64 MiB
by default) until the next hibernation or 'kjump unload'; this system pauses while
it boots (about a second).
",
    flags: &[Target, After, Compress, Wait, Kernel, Initrd, RegionSize, Append, Config],
};

const UNLOAD: Spec = Spec { topic: "unload", synopsis: "kjump unload", about: "Free the resident hibernation kernel.\n", flags: &[] };

const RESUME: Spec = Spec {
    topic: "resume",
    synopsis: "kjump resume [--check [--json]] [OPTIONS]",
    about: "At boot, before A's filesystems are mounted read-write: resume from a committed
image on the target (it does not return then), or say in one line why not and
exit 3 (boot goes on). 'noresume' or 'kjump.noresume' on the kernel command line
forbids it and marks a committed image bad (that boot may change A's filesystems).

Exit status: 3 when there is nothing to resume (no image, or not committed, or of
another machine or RAM map, or noresume given), 1 when it failed, 2 on bad usage;
with --check, 0 when it would resume.
",
    flags: &[Check, Json, Snapshot, Target, Wait, Kernel, Initrd, Append, Config, Keep, KeyFile],
};

const CHECK: Spec = Spec {
    topic: "check",
    synopsis: "kjump check [--jump] [--json] [OPTIONS]",
    about: "Say whether this machine can hibernate with kjump: one line per check, exit 0
only when all pass. --jump also does a live round trip A -> B -> A.
",
    flags: &[Jump, Json, Target, Kernel, Initrd, RegionSize, Append, Config],
};

const IMAGE: Spec = Spec {
    topic: "image",
    synopsis: "kjump image info|verify|wipe|export FILE|DEVICE",
    about: "  info      show an image's header and state
  verify    check every checksum; non-zero exit names the first fault
  wipe      overwrite an image with zeros and discard it (a file is then removed);
            refuses anything that is not a kjump image
  export    write the image as an ELF core file (--elf FILE) for crash and makedumpfile
",
    flags: &[],
};

const IMAGE_INFO: Spec =
    Spec { topic: "image info", synopsis: "kjump image info [--json] FILE|DEVICE", about: "Show an image's header and state.\n", flags: &[Json] };

const IMAGE_VERIFY: Spec = Spec {
    topic: "image verify",
    synopsis: "kjump image verify [--key-file PATH] FILE|DEVICE",
    about: "Show an image's header and state, then check every checksum; a non-zero exit
names the first fault. An encrypted image is authenticated with its key (from
--key-file, or a passphrase asked on the terminal); without it, verify says
that it could not tell whether someone rewrote the image.
",
    flags: &[KeyFile],
};

const IMAGE_WIPE: Spec = Spec {
    topic: "image wipe",
    synopsis: "kjump image wipe FILE|DEVICE",
    about: "Overwrite an image with zeros and discard it (a file is then removed); refuses
anything that is not a kjump image, and a device this system uses.
",
    flags: &[],
};

const IMAGE_EXPORT: Spec = Spec {
    topic: "image export",
    synopsis: "kjump image export --elf FILE [--key-file PATH] [--force] IMAGE",
    about: "Write the image (a file or device) as an ELF core file, the shape of the
/proc/vmcore the hibernation kernel saved it from: A's VMCOREINFO note and A's RAM
at its physical addresses (and direct-map virtual addresses), pages left out of
the image as zeros (holes in FILE). crash and makedumpfile read it like a kdump.
FILE holds all of A's memory and is made readable by its owner only. Checks
everything 'kjump image verify' checks; an encrypted image needs its key (from
--key-file, or a passphrase asked on the terminal). Refuses an image made before
kjump recorded where A's VMCOREINFO note is.
",
    flags: &[Elf, KeyFile, Force],
};
/// `kjump image`'s commands: the parser, the help and the shell
/// completions (a test) take them from here.
const IMAGE_COMMANDS: [&Spec; 4] = [&IMAGE_INFO, &IMAGE_VERIFY, &IMAGE_WIPE, &IMAGE_EXPORT];

/// The `image` command `word` names (`info` for `image info`).
fn image_command(word: &str) -> Option<&'static Spec> {
    IMAGE_COMMANDS.into_iter().find(|s| s.topic.strip_prefix("image ") == Some(word))
}

const BENCH_IO: Spec = Spec {
    topic: "bench-io",
    synopsis: "kjump bench-io --target DEVICE [OPTIONS]",
    about: "For benchmarks: in the hibernation kernel, measure how fast /proc/vmcore reads and
the target takes O_DIRECT writes and reads; OVERWRITES the target's first 768 MiB.
",
    flags: &[Target, Wait, Kernel, Initrd, RegionSize, Append, Config],
};

const BOOT_ENTRY: Spec = Spec {
    topic: "boot-entry",
    synopsis: "kjump boot-entry [--output DIR] [OPTIONS]",
    about: "Write a boot loader entry that resumes without booting this system first (BIOS
GRUB, or a VM's direct kernel boot; not UEFI): DIR/vmlinuz, DIR/initrd.img and
DIR/cmdline (the kernel command line).
",
    flags: &[Output, Target, Wait, Kernel, Initrd, RegionSize, Append, Config, Keep],
};

const INITRAMFS: Spec = Spec {
    topic: "initramfs",
    synopsis: "kjump initramfs --output FILE [--init PATH]",
    about: "Write the hibernation initramfs (holds only kjump-init).\n",
    flags: &[Output, Init],
};

const CONFIG: Spec = Spec {
    topic: "config",
    synopsis: "kjump config [OPTIONS]",
    about: "Print the settings kjump would use, as kjump.conf lines; fails on a target that
does not parse.
",
    flags: &[Target, After, Compress, Wait, Kernel, Initrd, RegionSize, Append, Config, Keep],
};

const KEYGEN: Spec = Spec {
    topic: "keygen",
    synopsis: "kjump keygen [--dir DIR] [--argon2-memory KIB] [--force]",
    about: "Make the key pair of an encrypted image's passphrase: asks for a new passphrase
twice (or reads two lines from standard input when it is not a terminal) and
writes DIR/public.key and DIR/private.key (the private key sealed under the
passphrase with Argon2id). Hibernation wraps each image's key to the public key;
resuming asks for the passphrase. Refuses to replace an existing pair without
--force: images made with the old pair then need the old passphrase.
",
    flags: &[Dir, Argon2Memory, Force],
};

const SLEEP: Spec = Spec {
    topic: "sleep",
    synopsis: "kjump sleep hibernate|suspend-then-hibernate|hybrid-sleep [--config FILE]",
    about: "What systemd-hibernate.service, systemd-suspend-then-hibernate.service and
systemd-hybrid-sleep.service run once kjump's generator put kjump in their place
(see kjump(8), SYSTEMD): runs the hooks in /usr/lib/systemd/system-sleep/ with
'pre' and 'post' as systemd-sleep does, and follows systemd's sleep.conf
(Allow*=, SuspendState=, HibernateDelaySec=). hibernate: 'kjump hibernate'.
suspend-then-hibernate: suspend to RAM with a wake alarm HibernateDelaySec= ahead
(2 hours if unset); hibernate with kjump when it rings, stay up when something else
woke the machine; if the hibernation fails, suspend again. hybrid-sleep: 'kjump
hibernate --after suspend': the image is saved, then the hibernation kernel
suspends to RAM; woken, it marks the image consumed and returns here; if the power
is lost, the next boot resumes from the image.
Use 'systemctl hibernate', 'systemctl suspend-then-hibernate' or 'systemctl
hybrid-sleep' rather than this.
",
    flags: &[Config],
};

const STATUS: Spec = Spec {
    topic: "status",
    synopsis: "kjump status",
    about: "Say how the last hibernation went: when A came back, how long it was away, and the
report of the hibernation kernel (B's save, D's restore) or why it failed.
",
    flags: &[],
};

const GENERATOR: Spec = Spec {
    topic: "systemd-generator",
    synopsis: "kjump systemd-generator DIR [EARLY-DIR LATE-DIR]",
    about: "systemd runs this at boot and at 'systemctl daemon-reload' (as kjump-generator, see
systemd.generator(7)). When /etc/kjump.conf sets a target, it writes drop-ins into
DIR that make systemd-hibernate.service, systemd-suspend-then-hibernate.service and
systemd-hybrid-sleep.service run 'kjump sleep', and let logind offer hibernation without swap; otherwise it
writes nothing and systemd's own hibernation stays.
",
    flags: &[],
};

/// Not in the overview (`kjump --help`): the initramfs hooks run it.
const INITRAMFS_DIGEST: Spec = Spec {
    topic: "initramfs-digest",
    synopsis: "kjump initramfs-digest [--kernel-release RELEASE] [--write | --remove] [--config FILE]",
    about: "For the initramfs hooks: print the digest of what they put into the initramfs of
kernel RELEASE: this kjump, the settings as 'kjump config' prints them, and the
hibernation kernel and initramfs they name. 'kjump check' compares the recorded
digest with now and says when the initramfs needs rebuilding.
",
    flags: &[KernelRelease, Write, Remove, Config],
};

const COMMANDS: [&Spec; 14] =
    [&HIBERNATE, &LOAD, &UNLOAD, &RESUME, &CHECK, &BENCH_IO, &BOOT_ENTRY, &INITRAMFS, &CONFIG, &KEYGEN, &SLEEP, &STATUS, &GENERATOR, &INITRAMFS_DIGEST];

impl Spec {
    fn help(&self) -> String {
        let mut text = format!("Usage: {}\n\n{}", self.synopsis, self.about);
        let settings = self.flags.iter().any(|f| KERNEL_FLAGS.contains(f));
        text.push_str(if settings { "\nOptions (flags win over /etc/kjump.conf, whose keys have the same names):\n" } else { "\nOptions:\n" });
        for flag in self.flags {
            text.push_str(flag.help(self.topic));
        }
        text.push_str("  -h, --help           show this help\n");
        text.replace("{LIBDIR}", LIBDIR)
    }
}

/// What one command's flags and words said.
#[derive(Default)]
struct Parsed {
    help: bool,
    flags: SettingFlags,
    check: bool,
    jump: bool,
    json: bool,
    release: Option<String>,
    write: bool,
    remove: bool,
    output: Option<String>,
    init: Option<String>,
    dir: Option<String>,
    argon2_memory: Option<u32>,
    force: bool,
    elf: Option<String>,
    words: Vec<String>,
}

/// A lexopt error in one line of our own.
fn lexopt_message(e: lexopt::Error) -> String {
    match e {
        lexopt::Error::MissingValue { option: Some(o) } => format!("{o} needs a value"),
        lexopt::Error::UnexpectedValue { option, .. } => format!("{option} takes no value"),
        lexopt::Error::NonUnicodeValue(v) => format!("argument {v:?} is not valid UTF-8"),
        lexopt::Error::UnexpectedOption(o) => format!("unknown option {o}"),
        lexopt::Error::UnexpectedArgument(v) => format!("unexpected argument {v:?}"),
        e => e.to_string(),
    }
}

/// Reads the flags and words after the command's words, accepting only
/// the flags of `spec` and at most `max_words` words. Stops at `-h` or
/// `--help`.
fn parse_command(p: &mut Parser, spec: &Spec, max_words: usize) -> Result<Parsed, UsageError> {
    let topic = spec.topic;
    let err = |e: lexopt::Error| usage(topic, lexopt_message(e));
    let mut out = Parsed::default();
    while let Some(arg) = p.next().map_err(err)? {
        let flag = match arg {
            Arg::Short('h') | Arg::Long("help") => {
                out.help = true;
                return Ok(out);
            }
            Arg::Short('o') if spec.flags.contains(&Output) => Output,
            Arg::Short(c) => return Err(usage(topic, format!("unknown option -{c}"))),
            Arg::Long(name) => {
                let Some(flag) = ALL_FLAGS.into_iter().find(|f| f.name() == name) else {
                    return Err(usage(topic, format!("unknown option --{name}")));
                };
                if !spec.flags.contains(&flag) {
                    return Err(usage(
                        topic,
                        match (flag, topic) {
                            (Check, "check") => "'kjump check' takes --jump, not --check (that is 'kjump resume --check')".to_string(),
                            (Jump, "resume") => "'kjump resume' takes --check, not --jump (that is 'kjump check --jump')".to_string(),
                            _ => format!("--{name} is not an option of 'kjump {topic}'"),
                        },
                    ));
                }
                flag
            }
            Arg::Value(word) => {
                let word = word.string().map_err(err)?;
                if out.words.len() == max_words {
                    return Err(usage(topic, format!("unexpected argument {word:?}")));
                }
                out.words.push(word);
                continue;
            }
        };
        let value = if flag.takes_value() { Some(p.value().and_then(|v| v.string()).map_err(err)?) } else { None };
        let f = &mut out.flags;
        match (flag, value) {
            (Keep, _) => f.keep = true,
            (Snapshot, _) => f.snapshot = true,
            (Check, _) => out.check = true,
            (Jump, _) => out.jump = true,
            (Json, _) => out.json = true,
            (Write, _) => out.write = true,
            (Remove, _) => out.remove = true,
            (Force, _) => out.force = true,
            (_, None) => unreachable!("every other flag takes a value"),
            (Wait, Some(v)) => match v.parse::<u64>() {
                Ok(n) if n <= MAX_WAIT => f.wait = Some(v),
                _ => return Err(usage(topic, format!("--wait {v:?}: give a number of seconds from 0 to {MAX_WAIT}"))),
            },
            (Target, v) => f.target = v,
            (After, v) => f.after = v,
            (Compress, v) => f.compress = v,
            (Kernel, v) => f.kernel = v,
            (Initrd, v) => f.initrd = v,
            (RegionSize, v) => f.region_size = v,
            (Append, v) => f.append = v,
            (Config, v) => f.config = v,
            (Output, v) => out.output = v,
            (Init, v) => out.init = v,
            (Elf, v) => out.elf = v,
            (Dir, v) => out.dir = v,
            (KeyFile, v) => f.key_file = v,
            (KernelRelease, v) => out.release = v,
            (Argon2Memory, Some(v)) => match v.parse::<u32>() {
                Ok(n) if (8..=1024 * 1024).contains(&n) => out.argon2_memory = Some(n),
                _ => return Err(usage(topic, format!("--argon2-memory {v:?}: give KiB from 8 to 1048576 (1 GiB)"))),
            },
        }
    }
    Ok(out)
}

/// The command `args` (without the program's name) ask for.
pub fn parse<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut p = Parser::from_args(args);
    let word = match p.next().map_err(|e| usage("", lexopt_message(e)))? {
        None => return Err(usage("", "no command given")),
        Some(Arg::Short('h') | Arg::Long("help")) => {
            end(&mut p, "")?;
            return Ok(Command::Help(super::usage()));
        }
        Some(Arg::Long("version")) => {
            end(&mut p, "")?;
            return Ok(Command::Version);
        }
        Some(Arg::Value(word)) => word.string().map_err(|e| usage("", lexopt_message(e)))?,
        Some(arg) => return Err(usage("", lexopt_message(arg.unexpected()))),
    };
    if word == "help" {
        return help(&mut p);
    }
    if word == "image" {
        return image(&mut p);
    }
    let Some(spec) = COMMANDS.into_iter().find(|s| s.topic == word) else {
        return Err(usage("", format!("unknown command {word:?}")));
    };
    let words = match spec.topic {
        "sleep" => 1,
        "systemd-generator" => 3,
        _ => 0,
    };
    let a = parse_command(&mut p, spec, words)?;
    if a.help {
        return Ok(Command::Help(spec.help()));
    }
    Ok(match spec.topic {
        "sleep" => {
            let name = a.words.first().ok_or_else(|| usage(spec.topic, "name the operation: hibernate, suspend-then-hibernate or hybrid-sleep"))?;
            let op = kjump::host::sleep::Operation::parse(name)
                .ok_or_else(|| usage(spec.topic, format!("unknown operation {name:?}: use hibernate, suspend-then-hibernate or hybrid-sleep")))?;
            Command::Sleep { op, flags: a.flags }
        }
        "status" => Command::Status,
        "systemd-generator" => Command::SystemdGenerator(a.words.into_iter().next().ok_or_else(|| usage(spec.topic, "give the directory to write into"))?),
        "hibernate" => Command::Hibernate(a.flags),
        "load" => Command::Load(a.flags),
        "unload" => Command::Unload,
        "resume" if a.json && !a.check => return Err(usage(spec.topic, "--json goes with --check: 'kjump resume --check --json'")),
        "resume" => Command::Resume { check: a.check, json: a.json, flags: a.flags },
        "check" => Command::Check { jump: a.jump, json: a.json, flags: a.flags },
        "bench-io" => Command::BenchIo(a.flags),
        "boot-entry" => Command::BootEntry { output: a.output.unwrap_or_else(|| "/boot/kjump".into()), flags: a.flags },
        "initramfs" => {
            let output = a.output.ok_or_else(|| usage(spec.topic, "--output FILE is required"))?;
            Command::Initramfs { output, init: a.init }
        }
        "initramfs-digest" => Command::InitramfsDigest {
            release: a.release,
            action: match (a.write, a.remove) {
                (true, true) => return Err(usage(spec.topic, "give --write or --remove, not both")),
                (true, false) => DigestAction::Write,
                (false, true) => DigestAction::Remove,
                (false, false) => DigestAction::Print,
            },
            config: a.flags.config,
        },
        "keygen" => Command::Keygen { dir: a.dir.unwrap_or_else(|| "/etc/kjump".into()), argon2_memory: a.argon2_memory, force: a.force },
        _ => Command::Config(a.flags),
    })
}

/// Refuses anything left after `--help` or `--version`.
fn end(p: &mut Parser, topic: &'static str) -> Result<(), UsageError> {
    match p.next() {
        Ok(None) => Ok(()),
        Ok(Some(arg)) => Err(usage(topic, lexopt_message(arg.unexpected()))),
        Err(e) => Err(usage(topic, lexopt_message(e))),
    }
}

/// `kjump image info|verify|wipe|export FILE|DEVICE`.
fn image(p: &mut Parser) -> Result<Command, UsageError> {
    let err = |e: lexopt::Error| usage("image", lexopt_message(e));
    let sub = match p.next().map_err(err)? {
        None => return Err(usage("image", "name what to do: info, verify, wipe or export")),
        Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Command::Help(IMAGE.help())),
        Some(Arg::Value(word)) => word.string().map_err(err)?,
        Some(arg) => return Err(err(arg.unexpected())),
    };
    let Some(spec) = image_command(&sub) else {
        return Err(usage("image", format!("unknown image command {sub:?}: use info, verify, wipe or export")));
    };
    let a = parse_command(p, spec, 1)?;
    if a.help {
        return Ok(Command::Help(spec.help()));
    }
    let Some(path) = a.words.into_iter().next() else { return Err(usage(spec.topic, "give one FILE or DEVICE")) };
    Ok(match spec.topic {
        "image info" => Command::ImageInfo { path, json: a.json },
        "image verify" => Command::ImageVerify(path, a.flags.key_file),
        "image export" => {
            let elf = a.elf.ok_or_else(|| usage(spec.topic, "--elf FILE is required"))?;
            Command::ImageExport { image: path, elf, key_file: a.flags.key_file, force: a.force }
        }
        _ => Command::ImageWipe(path),
    })
}

/// `kjump help [COMMAND [SUBCOMMAND]]`.
fn help(p: &mut Parser) -> Result<Command, UsageError> {
    let a = parse_command(p, &Spec { topic: "", synopsis: "", about: "", flags: &[] }, 2)?;
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    let spec = match words.as_slice() {
        [] => return Ok(Command::Help(super::usage())),
        ["image"] => &IMAGE,
        ["image", sub] => image_command(sub).ok_or_else(|| usage("", format!("no help for \"image {sub}\": unknown command")))?,
        [name] => COMMANDS.into_iter().find(|s| s.topic == *name).ok_or_else(|| usage("", format!("no help for {name:?}: unknown command")))?,
        _ => return Err(usage("", format!("no help for {:?}: unknown command", words.join(" ")))),
    };
    Ok(Command::Help(spec.help()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn ok(args: &[&str]) -> Command {
        parse_args(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// The usage error `args` give; panics if they parse.
    fn refused(args: &[&str]) -> UsageError {
        match parse_args(args) {
            Ok(c) => panic!("{args:?} parsed to {c:?}"),
            Err(e) => e,
        }
    }

    fn help_text(args: &[&str]) -> String {
        match ok(args) {
            Command::Help(text) => text,
            other => panic!("{args:?}: {other:?}, not help"),
        }
    }

    #[test]
    fn each_command_has_its_own_help() {
        assert!(help_text(&["hibernate", "-h"]).starts_with("Usage: kjump hibernate [OPTIONS]"));
        assert!(help_text(&["hibernate", "--target", "/dev/sdb2", "--help"]).contains("--after ACTION"));
        let check = help_text(&["check", "-h"]);
        assert!(check.starts_with("Usage: kjump check [--jump]") && check.contains("--jump") && !check.contains("--check"), "{check}");
        let resume = help_text(&["resume", "--help"]);
        assert!(resume.contains("--check") && !resume.contains("--jump ") && resume.contains("exit 3"), "{resume}");
        assert!(help_text(&["image", "verify", "-h"]).starts_with("Usage: kjump image verify [--key-file PATH] FILE|DEVICE"));
        assert!(help_text(&["image", "-h"]).contains("verify"));
        assert_eq!(help_text(&["help", "check"]), check);
        assert_eq!(help_text(&["--help"]), super::super::usage());
        assert_eq!(help_text(&["-h"]), super::super::usage());
        assert_eq!(help_text(&["help"]), super::super::usage());
        for spec in COMMANDS {
            let text = help_text(&[spec.topic, "-h"]);
            assert!(!text.contains("{LIBDIR}"), "{text}");
            for flag in spec.flags {
                assert!(text.contains(&format!("--{} ", flag.name())) || text.contains(&format!("--{}\n", flag.name())), "{}: --{}", spec.topic, flag.name());
            }
        }
    }

    #[test]
    fn stray_words_and_unknown_flags_are_refused() {
        let e = refused(&["hibernate", "--target", "X", "extra"]);
        assert_eq!(e.topic, "hibernate");
        assert_eq!(e.to_string(), "kjump: unexpected argument \"extra\"; see 'kjump hibernate --help'");
        assert!(refused(&["hibernate", "--foo"]).msg.contains("unknown option --foo"));
        assert!(refused(&["resume", "-x"]).msg.contains("unknown option -x"));
        assert!(refused(&["unload", "now"]).msg.contains("\"now\""));
        assert_eq!(refused(&["--foo"]).to_string(), "kjump: unknown option --foo; see 'kjump --help'");
        assert!(refused(&["frobnicate"]).msg.contains("unknown command"));
        assert!(refused(&[]).msg.contains("no command"));
        assert!(refused(&["--version", "x"]).msg.contains("\"x\""));
        assert_eq!(ok(&["--version"]), Command::Version);
    }

    #[test]
    fn check_and_jump_belong_to_their_commands() {
        assert!(refused(&["check", "--check"]).msg.contains("takes --jump"));
        assert!(refused(&["resume", "--jump"]).msg.contains("takes --check"));
        assert!(matches!(ok(&["check", "--jump"]), Command::Check { jump: true, .. }));
        assert!(matches!(ok(&["check"]), Command::Check { jump: false, .. }));
        assert!(matches!(ok(&["resume", "--check"]), Command::Resume { check: true, .. }));
        assert!(matches!(ok(&["resume"]), Command::Resume { check: false, .. }));
    }

    #[test]
    fn json_for_check_image_info_and_resume_check_only() {
        assert!(matches!(ok(&["check", "--json"]), Command::Check { jump: false, json: true, .. }));
        assert!(matches!(ok(&["check", "--jump", "--json"]), Command::Check { jump: true, json: true, .. }));
        assert!(matches!(ok(&["resume", "--check", "--json"]), Command::Resume { check: true, json: true, .. }));
        assert_eq!(ok(&["image", "info", "--json", "/dev/vdb"]), Command::ImageInfo { path: "/dev/vdb".into(), json: true });
        assert!(refused(&["resume", "--json"]).msg.contains("--json goes with --check"));
        assert!(refused(&["resume", "--json=yes", "--check"]).msg.contains("takes no value"));
        for cmd in [&["hibernate"][..], &["config"], &["image", "verify", "f"], &["image", "wipe", "f"], &["keygen"]] {
            let mut args = cmd.to_vec();
            args.push("--json");
            assert!(refused(&args).msg.contains("--json"), "{args:?}");
        }
    }

    #[test]
    fn flags_only_for_the_commands_they_apply_to() {
        assert!(refused(&["hibernate", "--keep"]).msg.contains("not an option of 'kjump hibernate'"));
        assert!(refused(&["resume", "--compress", "lz4"]).msg.contains("--compress"));
        assert!(refused(&["resume", "--region-size", "96M"]).msg.contains("--region-size"));
        assert!(refused(&["load", "--keep"]).msg.contains("--keep"));
        assert!(refused(&["unload", "--target", "/dev/sdb2"]).msg.contains("--target"));
        assert!(refused(&["initramfs", "-o", "x", "--target", "/dev/sdb2"]).msg.contains("--target"));
        assert!(refused(&["check", "--snapshot"]).msg.contains("--snapshot"));
        assert!(refused(&["config", "--output", "x"]).msg.contains("--output"));
        assert!(refused(&["hibernate", "-o", "x"]).msg.contains("unknown option -o"));
        let Command::Resume { check: false, json: false, flags } = ok(&["resume", "--snapshot", "--keep", "--target", "/dev/vda"]) else { panic!() };
        assert!(flags.snapshot && flags.keep);
        assert_eq!(flags.get("keep"), Some("yes"));
        assert_eq!(flags.get("target"), Some("/dev/vda"));
        let Command::Load(flags) = ok(&["load", "--target", "/dev/vda", "--after", "resume"]) else { panic!() };
        assert_eq!(flags.get("after"), Some("resume"));
        assert!(matches!(ok(&["unload"]), Command::Unload));
    }

    #[test]
    fn image_takes_exactly_one_path() {
        assert_eq!(ok(&["image", "verify", "/dev/sdb2"]), Command::ImageVerify("/dev/sdb2".into(), None));
        assert_eq!(ok(&["image", "verify", "--key-file", "/k", "/dev/sdb2"]), Command::ImageVerify("/dev/sdb2".into(), Some("/k".into())));
        assert_eq!(ok(&["image", "info", "--", "-odd"]), Command::ImageInfo { path: "-odd".into(), json: false });
        assert_eq!(ok(&["image", "wipe", "f"]), Command::ImageWipe("f".into()));
        assert_eq!(refused(&["image", "verify"]).topic, "image verify");
        assert_eq!(refused(&["image", "verify", "a", "b"]), usage("image verify", "unexpected argument \"b\""));
        assert!(refused(&["image", "-x"]).msg.contains("unknown option -x"));
        assert!(refused(&["image", "verify", "a", "--target", "b"]).msg.contains("--target"));
        assert!(refused(&["image"]).msg.contains("info, verify, wipe or export"));
        assert!(refused(&["image", "check", "a"]).msg.contains("unknown image command"));
    }

    #[test]
    fn image_export_needs_a_core_file() {
        assert_eq!(
            ok(&["image", "export", "--elf", "/tmp/a.elf", "/dev/sdb2"]),
            Command::ImageExport { image: "/dev/sdb2".into(), elf: "/tmp/a.elf".into(), key_file: None, force: false }
        );
        assert_eq!(
            ok(&["image", "export", "/dev/sdb2", "--force", "--key-file=/k", "--elf=a.elf"]),
            Command::ImageExport { image: "/dev/sdb2".into(), elf: "a.elf".into(), key_file: Some("/k".into()), force: true }
        );
        assert_eq!(refused(&["image", "export", "/dev/sdb2"]), usage("image export", "--elf FILE is required"));
        assert_eq!(refused(&["image", "export", "--elf", "a.elf"]), usage("image export", "give one FILE or DEVICE"));
        assert!(refused(&["image", "export", "--elf"]).msg.contains("--elf needs a value"));
        assert!(refused(&["image", "verify", "--elf", "a", "b"]).msg.contains("not an option of 'kjump image verify'"));
        assert!(refused(&["image", "export", "--elf", "a", "b", "c"]).msg.contains("\"c\""));
        let help = help_text(&["image", "export", "--help"]);
        assert!(help.starts_with("Usage: kjump image export --elf FILE [--key-file PATH] [--force] IMAGE"), "{help}");
        assert!(help.contains("--force              replace FILE if it exists"), "{help}");
        assert_eq!(help_text(&["help", "image", "export"]), help);
        assert!(help_text(&["image", "-h"]).contains("export"));
    }

    #[test]
    fn wait_is_bounded() {
        let e = refused(&["hibernate", "--wait", "601"]);
        assert!(e.msg.contains("600"), "{e}");
        assert!(refused(&["resume", "--wait", "-1"]).msg.contains("600"));
        assert!(refused(&["resume", "--wait", "soon"]).msg.contains("--wait"));
        let Command::Resume { flags, .. } = ok(&["resume", "--wait", "600"]) else { panic!() };
        assert_eq!(flags.wait.as_deref(), Some("600"));
        let Command::Hibernate(flags) = ok(&["hibernate", "--wait=0"]) else { panic!() };
        assert_eq!(flags.wait.as_deref(), Some("0"));
    }

    #[test]
    fn values_inline_or_next_and_the_last_wins() {
        let Command::Hibernate(flags) = ok(&["hibernate", "--target=LABEL=a:/x", "--compress", "none", "--append", "-v a=b"]) else { panic!() };
        assert_eq!(flags.target.as_deref(), Some("LABEL=a:/x"));
        assert_eq!(flags.compress.as_deref(), Some("none"));
        assert_eq!(flags.append.as_deref(), Some("-v a=b"));
        let Command::Config(flags) = ok(&["config", "--target", "/dev/a", "--target", "/dev/b"]) else { panic!() };
        assert_eq!(flags.target.as_deref(), Some("/dev/b"));
        assert!(refused(&["hibernate", "--target"]).msg.contains("--target needs a value"));
        assert!(refused(&["resume", "--keep=yes"]).msg.contains("--keep takes no value"));
    }

    #[test]
    fn initramfs_and_boot_entry_outputs() {
        assert_eq!(ok(&["initramfs", "-o", "/tmp/i.img"]), Command::Initramfs { output: "/tmp/i.img".into(), init: None });
        assert_eq!(ok(&["initramfs", "--init", "/k", "--output=/tmp/i.img"]), Command::Initramfs { output: "/tmp/i.img".into(), init: Some("/k".into()) });
        assert!(refused(&["initramfs"]).msg.contains("--output FILE is required"));
        assert!(matches!(ok(&["boot-entry"]), Command::BootEntry { output, .. } if output == "/boot/kjump"));
        assert!(matches!(ok(&["boot-entry", "-o", "/e", "--keep"]), Command::BootEntry { output, flags } if output == "/e" && flags.keep));
    }

    #[test]
    fn initramfs_digest_flags() {
        let digest = |args: &[&str]| ok(&[&["initramfs-digest"], args].concat());
        assert_eq!(digest(&[]), Command::InitramfsDigest { release: None, action: DigestAction::Print, config: None });
        assert_eq!(
            digest(&["--kernel-release", "6.12.5-amd64", "--write", "--config", "/c"]),
            Command::InitramfsDigest { release: Some("6.12.5-amd64".into()), action: DigestAction::Write, config: Some("/c".into()) }
        );
        assert_eq!(digest(&["--remove"]), Command::InitramfsDigest { release: None, action: DigestAction::Remove, config: None });
        assert!(refused(&["initramfs-digest", "--write", "--remove"]).msg.contains("not both"));
        assert!(refused(&["initramfs-digest", "--target", "/dev/a"]).msg.contains("--target"));
        assert!(refused(&["check", "--write"]).msg.contains("--write"));
        // For the hooks: not in the overview, but with its own help.
        assert!(!super::super::usage().contains("initramfs-digest"));
        assert!(help_text(&["initramfs-digest", "--help"]).contains("--kernel-release RELEASE"));
    }

    #[test]
    fn keygen_flags() {
        assert_eq!(ok(&["keygen"]), Command::Keygen { dir: "/etc/kjump".into(), argon2_memory: None, force: false });
        assert_eq!(
            ok(&["keygen", "--dir", "/k", "--argon2-memory=1024", "--force"]),
            Command::Keygen { dir: "/k".into(), argon2_memory: Some(1024), force: true }
        );
        assert!(refused(&["keygen", "--argon2-memory", "7"]).msg.contains("8 to 1048576"));
        assert!(refused(&["keygen", "--argon2-memory", "1048577"]).msg.contains("8 to 1048576"));
        assert!(refused(&["keygen", "--force=yes"]).msg.contains("takes no value"));
        assert!(refused(&["keygen", "--target", "/dev/a"]).msg.contains("not an option of 'kjump keygen'"));
        assert!(refused(&["hibernate", "--force"]).msg.contains("--force"));
        assert!(help_text(&["keygen", "-h"]).contains("--argon2-memory KIB"));
    }

    /// The shell completions in contrib/completions/, by file name.
    const COMPLETIONS: [(&str, &str); 3] = [
        ("kjump.bash", include_str!("../../../contrib/completions/kjump.bash")),
        ("_kjump", include_str!("../../../contrib/completions/_kjump")),
        ("kjump.fish", include_str!("../../../contrib/completions/kjump.fish")),
    ];

    /// Every command the parser takes, with its words.
    fn all_specs() -> Vec<&'static Spec> {
        COMMANDS.into_iter().chain([&IMAGE]).chain(IMAGE_COMMANDS).collect()
    }

    /// The words of `text` made of `[a-z0-9-]`, with what precedes each.
    fn tokens(text: &str) -> Vec<(&str, &str)> {
        let word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
            match (start, word(c)) {
                (None, true) => start = Some(i),
                (Some(b), false) => {
                    out.push((&text[..b], &text[b..i]));
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn completions_know_every_command_and_flag_and_no_other() {
        let mut words: Vec<&str> = all_specs().iter().flat_map(|s| s.topic.split(' ')).collect();
        words.push("help");
        words.extend(kjump::host::sleep::Operation::ALL.map(|o| o.name()));
        let flags: Vec<&str> = ALL_FLAGS.iter().map(|f| f.name()).collect();
        for (file, text) in COMPLETIONS {
            let toks = tokens(text);
            for w in &words {
                assert!(toks.iter().any(|(_, t)| t == w), "{file} does not complete the command word {w:?}");
            }
            // bash and zsh name flags --name; fish as -l name in its
            // complete lines.
            let named: Vec<&str> = if file.ends_with(".fish") {
                text.lines()
                    .filter(|l| l.starts_with("complete -c kjump "))
                    .flat_map(tokens)
                    .filter(|(before, _)| before.ends_with(" -l "))
                    .map(|(_, t)| t)
                    .collect()
            } else {
                toks.iter().filter_map(|(_, t)| t.strip_prefix("--").filter(|f| !f.is_empty())).collect()
            };
            for f in &flags {
                assert!(named.contains(f), "{file} does not complete --{f}");
            }
            for f in named {
                assert!(flags.contains(&f) || ["help", "version"].contains(&f), "{file} completes --{f}, which kjump does not take");
            }
        }
    }

    /// Runs `script` in `shell` with the completion file `file` sourced:
    /// `None` when the shell is not installed.
    fn in_shell(shell: &str, file: &str, script: &str) -> Option<String> {
        let path = format!("{}/contrib/completions/{file}", env!("CARGO_MANIFEST_DIR"));
        let out = match std::process::Command::new(shell).arg("-c").arg(format!("source {path}\n{script}")).output() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            other => other.unwrap(),
        };
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        Some(String::from_utf8(out.stdout).unwrap())
    }

    #[test]
    fn completions_offer_each_command_its_own_flags() {
        for spec in all_specs() {
            let mut expected: Vec<String> = spec.flags.iter().map(|f| format!("--{}", f.name())).chain(["--help".to_string()]).collect();
            expected.sort();
            let line = format!("kjump {} --", spec.topic);
            let words: Vec<&str> = line.split(' ').collect();
            let bash = in_shell(
                "bash",
                "kjump.bash",
                &format!("COMP_WORDS=({}); COMP_CWORD={}; _kjump; printf '%s\\n' \"${{COMPREPLY[@]}}\"", words.join(" "), words.len() - 1),
            )
            .expect("bash");
            let mut got: Vec<String> = bash.lines().map(str::to_string).collect();
            got.sort();
            assert_eq!(got, expected, "bash: {line}");
            match in_shell("fish", "kjump.fish", &format!("complete -C '{line}'")) {
                None => eprintln!("fish is not installed: its completions are checked by name only"),
                Some(fish) => {
                    let mut got: Vec<String> = fish.lines().map(|l| l.split('\t').next().unwrap_or("").to_string()).collect();
                    got.sort();
                    assert_eq!(got, expected, "fish: {line}");
                }
            }
        }
    }

    #[test]
    fn non_utf8_arguments_are_refused_not_a_panic() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![b'/', 0xff, 0xfe]);
        for args in [
            vec![OsString::from("image"), OsString::from("info"), bad()],
            vec![OsString::from("hibernate"), OsString::from("--target"), bad()],
            vec![bad()],
            vec![OsString::from("check"), OsString::from_vec(b"--\xffjump".to_vec())],
        ] {
            let e = parse(args.clone()).expect_err("non-UTF-8 accepted");
            assert!(!e.msg.is_empty(), "{args:?}");
        }
    }

    #[test]
    fn sleep_status_and_the_generator() {
        use kjump::host::sleep::Operation;
        assert_eq!(ok(&["sleep", "hibernate"]), Command::Sleep { op: Operation::Hibernate, flags: SettingFlags::default() });
        assert_eq!(
            ok(&["sleep", "suspend-then-hibernate", "--config", "/tmp/k.conf"]),
            Command::Sleep { op: Operation::SuspendThenHibernate, flags: SettingFlags { config: Some("/tmp/k.conf".into()), ..SettingFlags::default() } }
        );
        assert!(refused(&["sleep"]).msg.contains("name the operation"));
        assert_eq!(ok(&["sleep", "hybrid-sleep"]), Command::Sleep { op: Operation::HybridSleep, flags: SettingFlags::default() });
        assert!(refused(&["sleep", "suspend"]).msg.contains("unknown operation \"suspend\": use hibernate, suspend-then-hibernate or hybrid-sleep"));
        assert!(refused(&["sleep", "hibernate", "--target", "/dev/sdb"]).msg.contains("not an option of 'kjump sleep'"));
        assert_eq!(ok(&["status"]), Command::Status);
        assert!(refused(&["status", "now"]).msg.contains("unexpected argument"));
        assert_eq!(ok(&["systemd-generator", "/run/a", "/run/b", "/run/c"]), Command::SystemdGenerator("/run/a".into()));
        assert!(refused(&["systemd-generator"]).msg.contains("directory"));
        assert!(refused(&["systemd-generator", "a", "b", "c", "d"]).msg.contains("unexpected argument"));
        for cmd in ["sleep", "status", "systemd-generator"] {
            assert!(help_text(&[cmd, "--help"]).starts_with(&format!("Usage: kjump {cmd}")), "{cmd}");
        }
    }
}
