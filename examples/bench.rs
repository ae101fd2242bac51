//! `make bench`: kjump against the kernel's own hibernation (swsusp), side
//! by side in one run, on the same QEMU machine. `BENCH_SHAPE` picks it
//! ([`SHAPES`]): `small` (the default, as in every earlier run: `-accel
//! tcg -m 1024 -smp 2`, one 1200 MiB virtio disk as kjump's target or
//! swsusp's swap) or `large` (`-m 4096 -smp 4`, a 6144 MiB disk, workloads
//! up to 3 GiB, 75 % of RAM).
//!
//! For each workload size (A holds a third random, a third repeated text,
//! a third zero pages, with a known hash) and each system, it measures:
//! hibernate time (from the command in A to QEMU exiting), resume time
//! (from QEMU starting to A's workload running again with its hash
//! checked), image size on disk, seconds per GiB of workload, what A
//! swapped out while hibernating (A's swap in use after its hibernate
//! command returns, less before it hibernates), whether it worked (a
//! failed run keeps the kernel's or kjump's reason), and for
//! `kjump-resident` how long `kjump load` took (A paused while B boots and
//! parks; timed apart, before the hibernate timer starts). A warm run (`BENCH_WARM`) also reads a
//! 256 MiB file from a second disk (ext2, made once per bench, /dev/vdb)
//! into the page cache before hibernating and reads it again after the
//! resume, both timed by the host: what each system's page cache keeps.
//! It also measures the physical limits in the same VM (`kjump bench-io`).
//! Several repetitions; the median is quoted with the spread.
//!
//! The systems (`BENCH_SYSTEMS`, comma separated):
//! - `kjump`: resumed the usual way (the system boots as C and loads D);
//! - `kjump-entry`: resumed from its boot loader entry (`kjump boot-entry`;
//!   QEMU starts D directly, as a boot loader would);
//! - `kjump-resident`: `kjump load` ahead of the hibernation, resumed from
//!   the boot loader entry;
//! - `kjump-encrypted`: as `kjump`, with images encrypted (`encrypt =
//!   keyfile:…`);
//! - `swsusp-C[-trimmed][-max]`, C `lzo` or `lz4` (`hibernate.compressor=`
//!   on both boots): `-trimmed` gives swsusp's resume boot the words D's
//!   boot gets (kjump's own `BOOT_TRIM` and `SKIP_ROUTING`: `quiet
//!   initcall_blacklist=i8042_init acpi=noirq`; the bench's virtio disk
//!   uses MSI-X, so D has `acpi=noirq` too); `-max` sets
//!   `/sys/power/image_size` to all of RAM before hibernating instead of
//!   the kernel's default, 2/5 of RAM, so that swsusp shrinks memory (swaps
//!   out) only when its image cannot fit at all. A swsusp run fails unless
//!   A's console names the compressor asked for (`PM: Using N thread(s) for
//!   lz4 compression`, kernel/power/swap.c).
//!
//! Each shape has its defaults. `small`: [`DEFAULT_SYSTEMS`]: swsusp-lzo
//! and swsusp-lz4 as in earlier runs (so results compare across runs by
//! name), then swsusp-lz4 trimmed, then trimmed with the largest
//! image_size, each differing from the row before in one thing;
//! `BENCH_SIZES` (MiB, comma separated) 128,384,768; `BENCH_WARM` (MiB of
//! the workloads that also get a warm run, independent of `BENCH_SIZES`;
//! empty for none) 384; `BENCH_OUT` `bench/results` (the `.json` and `.md`
//! written). `large`: kjump, swsusp-lzo, swsusp-lz4 and
//! swsusp-lz4-trimmed-max; 1024,2048,3072; 1024; `bench/results-4g`.
//! `BENCH_REPS` (default 3).
//!
//! The Markdown (also on stdout) holds the tables, the warm runs' table,
//! what swsusp ran with, the `kjump load` times, the figures against
//! kjump's targets, the runs that failed and why, and what was swapped out;
//! with the shape's own `BENCH_OUT` it also replaces README.md's text
//! between that shape's markers ([`Shape::readme`]; `BENCH_README_ONLY=1`
//! does only that, for each shape whose `.md` exists, and runs no VM). The
//! JSON has the machine (with its `shape`) and `results[]`, one row per
//! workload (warm or not) and system: `workload_mib`, `system`, `runs`,
//! `worked`, `hibernate_s`, `resume_s`, `back_in_a_s` (each `{median, min,
//! max}`), `image_bytes`, `save_mb_per_s` (kjump), `load_s` (`{median,
//! min, max}`, kjump-resident; null elsewhere), `compressor` and
//! `compress_threads` (swsusp, as A's console named them),
//! `image_size_bytes` (swsusp: A's `/sys/power/image_size` when it
//! hibernated), `resume_trimmed` (swsusp), `kjump_ratio`,
//! `kjump_entry_ratio`, `kjump_resident_ratio`, `kjump_encrypted_ratio`
//! (that kjump system's medians over this swsusp system's),
//! `hibernate_s_per_gib` and `resume_s_per_gib` (the medians over the
//! workload's GiB), `swapped_out_mib` (`{median, min, max}`, every
//! system), `page_cache_file_mib` (256 on warm rows, else null), `read_s`
//! and `reread_s` (`{median, min, max}`, warm rows; else null) `phases_s`
//! (`{"hibernate": [3], "back_in_a": [3]}`: medians of the parts of each
//! time that the consoles name, see [`HIBERNATE_PHASES`] and
//! [`BACK_PHASES`]; null where a console did not say) and `failures`; the
//! top level has `trimmed_resume_append`.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{a_initramfs, entry_files, paths, sparse_disk, Paths, TempDir, Vm, VmConfig};

/// The guest kernel's release, as its console says.
static KERNEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// What `BENCH_SYSTEMS` is unless set on the small machine: each swsusp
/// row next to the default one differs from it in one thing (compressor,
/// trimming, image_size).
const DEFAULT_SYSTEMS: &str = "kjump,kjump-entry,kjump-resident,kjump-encrypted,swsusp-lzo,swsusp-lz4,swsusp-lz4-trimmed,swsusp-lz4-trimmed-max";
const README: &str = "README.md";
const README_BEGIN: &str = "<!-- bench results: begin -->";
const README_END: &str = "<!-- bench results: end -->";

/// The QEMU machine a bench runs on (`BENCH_SHAPE`), and what goes with
/// it: the defaults of the other settings, where the results go and where
/// README.md carries them.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Shape {
    /// `BENCH_SHAPE`'s word for it.
    name: &'static str,
    memory_mib: u32,
    cpus: u32,
    /// The sparse virtio disk (/dev/vda): kjump's target or swsusp's swap.
    disk_mib: u64,
    /// The longest wait for any one step of a run.
    timeout: Duration,
    /// `BENCH_SIZES` unless set.
    sizes: &'static str,
    /// `BENCH_SYSTEMS` unless set.
    systems: &'static str,
    /// `BENCH_WARM` unless set.
    warm: &'static str,
    /// Where the results go unless `BENCH_OUT` says otherwise (`.json`,
    /// `.md`); only a run writing there refreshes README.md.
    out: &'static str,
    /// README.md's copy of `{out}.md` lies between these lines.
    readme: (&'static str, &'static str),
}

/// The machine of every earlier run.
const SMALL: Shape = Shape {
    name: "small",
    memory_mib: 1024,
    cpus: 2,
    disk_mib: 1200,
    timeout: Duration::from_secs(900),
    sizes: "128,384,768",
    systems: DEFAULT_SYSTEMS,
    warm: "384",
    out: "bench/results",
    readme: (README_BEGIN, README_END),
};

/// Four times the RAM, up to 3 GiB of workload (75 % of it). The disk
/// holds swsusp's swap, what it swaps out to make room and its image, or
/// kjump's image of 3 GiB. One swsusp row has image_size at its maximum.
const LARGE: Shape = Shape {
    name: "large",
    memory_mib: 4096,
    cpus: 4,
    disk_mib: 6144,
    timeout: Duration::from_secs(3600),
    sizes: "1024,2048,3072",
    systems: "kjump,swsusp-lzo,swsusp-lz4,swsusp-lz4-trimmed-max",
    warm: "1024",
    out: "bench/results-4g",
    readme: ("<!-- bench results 4g: begin -->", "<!-- bench results 4g: end -->"),
};

const SHAPES: [Shape; 2] = [SMALL, LARGE];

impl Shape {
    /// The shape `BENCH_SHAPE` names; unset or empty is [`SMALL`].
    fn from_name(name: &str) -> Result<Shape, String> {
        match name.trim() {
            "" => Ok(SMALL),
            n => SHAPES.into_iter().find(|s| s.name == n).ok_or_else(|| format!("unknown shape {n:?}")),
        }
    }

    /// A guest of this shape.
    fn vm<'a>(&self, name: &'a str, initrd: Vec<u8>, append: &'a str, disks: Vec<PathBuf>) -> VmConfig<'a> {
        VmConfig { name, memory_mib: self.memory_mib, cpus: self.cpus, initrd, append, echo: false, disks, uuid: None }
    }

    /// Its RAM, in GiB as a person would say it.
    fn memory_gib(&self) -> f64 {
        f64::from(self.memory_mib) / 1024.0
    }
}

/// A's swap in use, KiB: 0 with no swap. The image's own swap slots are
/// taken after the snapshot, so the A that resumes does not count them.
/// (/proc/vmstat's pswpout would count pages written to swap, but the test
/// kernel has no CONFIG_VM_EVENT_COUNTERS.)
const SWAP_USED: &str = "awk '/^SwapTotal:/ {t = $2} /^SwapFree:/ {f = $2} END {print t - f}' /proc/meminfo";

/// The kjump target and swsusp swap: the first disk, always attached.
const TARGET: &str = "/dev/vda";
/// The disk holding the file a warm run reads into the page cache:
/// attached second, for warm runs only.
const DATA_DISK: &str = "/dev/vdb";
/// The size of that file, MiB.
const CACHED_FILE_MIB: u64 = 256;
/// The size of the disk (ext2) holding it, MiB.
const DATA_DISK_MIB: u64 = 320;
/// Where A mounts that disk, and the file's name on it.
const DATA_MOUNT: &str = "/d";
const CACHED_FILE: &str = "cached";

/// What A holds when it hibernates.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Workload {
    /// The tmpfs workload, MiB.
    mib: u64,
    /// Also a file of [`CACHED_FILE_MIB`] read into the page cache before
    /// hibernating and read again after the resume.
    warm: bool,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} MiB{}", self.mib, if self.warm { " warm" } else { "" })
    }
}

/// The lines of A's script that the host waits for or reads, the one
/// spelling both sides use.
mod marker {
    pub const LOADING: &str = "A: loading now";
    pub const LOAD_RETURNED: &str = "A: load returned";
    pub const READING: &str = "A: reading the file";
    pub const READ_RETURNED: &str = "A: file read returned";
    pub const READY: &str = "A: workload ready";
    pub const IMAGE_SIZE: &str = "A: image_size ";
    pub const SWAP_BEFORE: &str = "A: swap used before ";
    pub const HIBERNATING: &str = "A: hibernating now";
    pub const RETURNED: &str = "A: hibernate returned";
    pub const SWAP_AFTER: &str = "A: swap used after ";
    pub const INTACT: &str = "A: workload intact";
    pub const REREADING: &str = "A: rereading the file";
    pub const REREAD_RETURNED: &str = "A: file reread returned";
}

/// How kjump hibernates and resumes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kjump {
    /// Resumed the usual way: the system boots (C) and loads D.
    Plain,
    /// Resumed from its boot loader entry (`kjump boot-entry`): QEMU starts
    /// D directly, as a boot loader would.
    Entry,
    /// With its hibernation kernel resident (`kjump load` ahead of the
    /// hibernation, timed on its own), resumed from the boot loader entry.
    Resident,
    /// As `Plain`, with images encrypted (`encrypt = keyfile:…`).
    Encrypted,
}

const KJUMPS: [Kjump; 4] = [Kjump::Plain, Kjump::Entry, Kjump::Resident, Kjump::Encrypted];

impl Kjump {
    fn name(self) -> &'static str {
        match self {
            Kjump::Plain => "kjump",
            Kjump::Entry => "kjump-entry",
            Kjump::Resident => "kjump-resident",
            Kjump::Encrypted => "kjump-encrypted",
        }
    }

    /// What the system is, for the title of its table of ratios.
    fn about(self) -> &'static str {
        match self {
            Kjump::Plain => "resumed the usual way",
            Kjump::Entry => "resumed from the boot loader entry",
            Kjump::Resident => "hibernation kernel loaded ahead with `kjump load`; resumed from the boot loader entry",
            Kjump::Encrypted => "images encrypted and authenticated, `encrypt = keyfile:…`",
        }
    }

    /// Resumed from the boot loader entry `kjump boot-entry` writes in A.
    fn resumes_from_entry(self) -> bool {
        matches!(self, Kjump::Entry | Kjump::Resident)
    }
}

/// How swsusp hibernates and resumes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Swsusp {
    /// `hibernate.compressor=`, which A's console must confirm.
    compressor: &'static str,
    /// The resume boot gets the words D's boot gets ([`trimming`]).
    trimmed: bool,
    /// `/sys/power/image_size` set to all of RAM (the kernel's default is
    /// 2/5 of it).
    max_image: bool,
}

const COMPRESSORS: [&str; 2] = ["lzo", "lz4"];

#[derive(Clone, Copy, Debug, PartialEq)]
enum System {
    Kjump(Kjump),
    Swsusp(Swsusp),
}

impl System {
    /// Every system `BENCH_SYSTEMS` can name.
    fn all() -> Vec<System> {
        let swsusp = COMPRESSORS.iter().flat_map(|&compressor| {
            [(false, false), (false, true), (true, false), (true, true)].map(|(trimmed, max_image)| System::Swsusp(Swsusp { compressor, trimmed, max_image }))
        });
        KJUMPS.map(System::Kjump).into_iter().chain(swsusp).collect()
    }

    fn name(self) -> String {
        match self {
            System::Kjump(k) => k.name().into(),
            System::Swsusp(s) => format!("swsusp-{}{}{}", s.compressor, if s.trimmed { "-trimmed" } else { "" }, if s.max_image { "-max" } else { "" }),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        System::all().into_iter().find(|y| y.name() == s)
    }

    /// Extra kernel parameters for A's boot.
    fn append(self) -> String {
        match self {
            System::Kjump(_) => String::new(),
            System::Swsusp(s) => format!("resume={TARGET} hibernate.compressor={}", s.compressor),
        }
    }

    /// Extra kernel parameters for the boot that resumes when QEMU boots
    /// the test kernel (kjump's C, swsusp's resume boot; D from the boot
    /// entry has the entry's command line).
    fn resume_append(self) -> String {
        let trim = match self {
            System::Swsusp(s) if s.trimmed => trimming(),
            _ => String::new(),
        };
        format!("bench_boot=c {} {trim}", self.append())
    }

    fn kjump(self) -> Option<Kjump> {
        match self {
            System::Kjump(k) => Some(k),
            System::Swsusp(_) => None,
        }
    }

    fn is_kjump(self) -> bool {
        self.kjump().is_some()
    }
}

/// The words that shorten D's boot, as kjump puts them on its command line
/// (`acpi=noirq` because the bench's virtio disk uses MSI-X): what a
/// `-trimmed` swsusp's resume boot gets.
fn trimming() -> String {
    format!("{} {}", kjump::load::jump::BOOT_TRIM.join(" "), kjump::load::msi::SKIP_ROUTING)
}

/// `BENCH_SYSTEMS`' names, in order; an unknown name is an error.
fn systems_from(list: &str) -> Result<Vec<System>, String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| System::parse(s).ok_or_else(|| format!("unknown system {s:?}"))).collect()
}

/// Console lines A prints when its script could not set up the run, and
/// what they mean.
const SETUP_FAILURES: [(&str, &str); 2] =
    [("A: WORKLOAD NOT WRITTEN", "A could not write the whole workload"), ("A: IMAGE_SIZE NOT SET", "A could not set /sys/power/image_size")];

fn script(system: System, w: Workload) -> String {
    use marker::*;
    let third = w.mib * 1024 * 1024 / 3 / 4096 * 4096;
    // Both boots have the key file and the setting (on a real machine the
    // key would sit on separate media).
    let setup = match system {
        System::Kjump(Kjump::Encrypted) => {
            "mkdir -p /etc && printf 'kjump bench key file 0123456789abcdef0123456789abcdef\\n' > /etc/kjump.key && chmod 600 /etc/kjump.key && echo 'encrypt = keyfile:/etc/kjump.key' > /etc/kjump.conf"
        }
        _ => "",
    };
    let entry = format!(
        "kjump boot-entry --target {TARGET} --output /root/entry > /dev/null && echo \"A: entry cmdline $(cat /root/entry/cmdline)\"; rm -rf /root/entry"
    );
    let (c_boot, prepare, hibernate) = match system {
        System::Kjump(k) => (
            if k.resumes_from_entry() {
                "echo \"C: no resume: this run resumes from the boot entry\"".to_string()
            } else {
                format!("kjump resume --target {TARGET}; echo \"C: no resume (exit $?)\"")
            },
            match k {
                Kjump::Plain | Kjump::Encrypted => String::new(),
                Kjump::Entry => entry,
                // Timed by the host between the two lines, as the
                // hibernation is (the guest's clock across the jump to B
                // and back is not to be trusted).
                Kjump::Resident => format!("{entry}\necho \"{LOADING}\"\nkjump load --target {TARGET} > /dev/null; echo \"{LOAD_RETURNED} $?\""),
            },
            format!("kjump hibernate --target {TARGET}; echo \"{RETURNED} $?\""),
        ),
        System::Swsusp(s) => (
            "echo \"C: no resume: swsusp did not restore A\"".to_string(),
            format!(
                "mkswap {TARGET} > /dev/null && swapon {TARGET} && echo shutdown > /sys/power/disk\n{}echo \"{IMAGE_SIZE}$(cat /sys/power/image_size)\"",
                if s.max_image {
                    "kb=$(sed -n 's/^MemTotal: *\\([0-9]*\\) kB$/\\1/p' /proc/meminfo)\n[ -n \"$kb\" ] && echo $((kb * 1024)) > /sys/power/image_size || echo \"A: IMAGE_SIZE NOT SET\"\n"
                } else {
                    ""
                }
            ),
            format!("echo disk > /sys/power/state; echo \"{RETURNED} $?\""),
        ),
    };
    // A warm run reads the file into the page cache and, after the resume
    // and the workload's check, reads it again; the host times both reads
    // between the lines around them. A drops nothing itself: what is still
    // cached after the resume is what the hibernation kept.
    let read_between = |start: &str, end: &str| format!("echo \"{start}\"\ncat {DATA_MOUNT}/{CACHED_FILE} > /dev/null; echo \"{end} $?\"");
    let (read, reread) = if w.warm {
        (
            format!("mkdir -p {DATA_MOUNT} && mount -t ext2 -o ro {DATA_DISK} {DATA_MOUNT}\n{}", read_between(READING, READ_RETURNED)),
            // The pause lets the host, which saw INTACT, wait for the next
            // line before it comes (see `timed`).
            format!("sleep 0.5\n{}", read_between(REREADING, REREAD_RETURNED)),
        )
    } else {
        (String::new(), String::new())
    };
    // Swap in use before hibernating and after the hibernate command
    // returns: what swsusp swapped out to make room.
    let swap_used = format!("$({SWAP_USED})");
    format!(
        r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
{setup}
if grep -q bench_boot=c /proc/cmdline; then
  {c_boot}
  poweroff -f
fi
# The workload lives on a tmpfs of its own: the initramfs's rootfs stops at
# half of RAM, and the 768 MiB workload must really be 768 MiB.
mkdir -p /w && mount -t tmpfs -o size=100% tmpfs /w
head -c {third} /dev/urandom > /w/random || echo "A: WORKLOAD NOT WRITTEN"
yes "kjump benchmark: repeated text, as in logs and buffers 0123456789" | head -c {third} > /w/text || echo "A: WORKLOAD NOT WRITTEN"
head -c {third} /dev/zero > /w/zeros || echo "A: WORKLOAD NOT WRITTEN"
before=$(cat /w/random /w/text /w/zeros | md5sum)
{read}
{prepare}
echo "{READY} $before"
sleep 1
echo "{SWAP_BEFORE}{swap_used}"
echo "{HIBERNATING}"
# Let the line leave the serial port: swsusp, starting at once, froze the
# console with it still queued now and then, and the run looked failed.
# It adds 0.1 s to every system's hibernate time alike.
sleep 0.1
{hibernate}
echo "{SWAP_AFTER}{swap_used}"
after=$(cat /w/random /w/text /w/zeros | md5sum)
if [ "$before" = "$after" ]; then echo "{INTACT}"; else echo "A: WORKLOAD CHANGED"; fi
{reread}
poweroff -f
"#
    )
}

/// Each system's runs at one workload.
type RunsBySystem = Vec<(System, Vec<Run>)>;

/// One hibernate + resume.
#[derive(Clone, Debug, Default)]
struct Run {
    hibernate_s: Option<f64>,
    resume_s: Option<f64>,
    /// From QEMU starting to A's hibernate command returning, before the
    /// workload's hash is checked.
    back_s: Option<f64>,
    image_bytes: Option<u64>,
    /// kjump only: B's save rate over A's RAM, MB/s.
    save_mb_s: Option<f64>,
    /// kjump-resident only: `kjump load`, from its start to its return.
    load_s: Option<f64>,
    /// swsusp only: A's `/sys/power/image_size` when it hibernated.
    image_size: Option<u64>,
    /// swsusp only: the compressor and its threads, as A's console named
    /// them.
    compressor: Option<(String, u32)>,
    /// What A swapped out between the line before hibernating and the
    /// hibernate command's return, MiB.
    swapped_out_mib: Option<f64>,
    /// Warm runs only: reading the cached file before hibernating (from
    /// the disk) and again after the resume.
    read_s: Option<f64>,
    reread_s: Option<f64>,
    /// Where the time went, from the consoles.
    phases: Phases,
    ok: bool,
    note: String,
}

fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse().ok())
}

/// The compressor swsusp used and its threads, from the line its kernel
/// prints as it writes the image (kernel/power/swap.c in 6.12 and 7.3:
/// `PM: Using %u thread(s) for %s compression`).
fn swsusp_compressor(log: &str) -> Option<(String, u32)> {
    log.lines().find_map(|l| {
        let (threads, rest) = l.split_once("Using ")?.1.split_once(" thread(s) for ")?;
        let alg = rest.trim_end().strip_suffix(" compression")?;
        Some((alg.to_string(), threads.parse().ok()?))
    })
}

/// The number A's script printed after `marker` (A's
/// `/sys/power/image_size`, the swap it used).
fn number_after(log: &str, marker: &str) -> Option<u64> {
    log.lines().find_map(|l| l.split_once(marker)?.1.split_whitespace().next()?.parse().ok())
}

/// Where one run's time went, in seconds, as each kernel's own clock
/// measured it on the console (none of these is the host's timing).
#[derive(Clone, Debug, Default, PartialEq)]
struct Phases {
    /// Hibernate: [`HIBERNATE_PHASES`].
    hibernate: [Option<f64>; 3],
    /// Back in A: [`BACK_PHASES`].
    back: [Option<f64>; 3],
}

/// The parts of the hibernate time the consoles name.
const HIBERNATE_PHASES: [&str; 3] = [
    "A prepares (kjump: checks and loads B; swsusp: preallocates the image)",
    "the hibernation kernel boots (kjump's B: from its start to kjump-init)",
    "the image is written (kjump: B's save; swsusp: compress and write)",
];
/// The parts of the time back into A the consoles name.
const BACK_PHASES: [&str; 3] = [
    "the resume boot's kernel starts its work (kjump: C to its first program; swsusp: to its resume)",
    "the restore kernel boots (kjump's D: from its start to kjump-init)",
    "the image is read back (kjump: D's restore; swsusp: read and decompress)",
];

/// The number at the start of `s` (`"1.35 s)"` gives 1.35).
fn leading_number(s: &str) -> Option<f64> {
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The number right after `pat` on the first line holding it.
fn seconds_after(log: &str, pat: &str) -> Option<f64> {
    log.lines().find_map(|l| leading_number(l.split_once(pat)?.1))
}

/// The kernel timestamp (`[    1.488525] …`) of the first line holding `pat`.
fn stamp_of(log: &str, pat: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(pat))?;
    leading_number(line.trim_start().strip_prefix('[')?.trim_start())
}

/// swsusp's own timing of a step: `PM: hibernation: {verb} N kbytes in X seconds` (kernel/power/hibernate.c, swsusp_show_speed).
fn swsusp_seconds(log: &str, verb: &str) -> Option<f64> {
    let pat = format!("PM: hibernation: {verb} ");
    log.lines().filter(|l| l.contains(&pat)).find_map(|l| leading_number(l.split_once(" kbytes in ")?.1))
}

impl Phases {
    /// From the console of the hibernation (`hib`) and of the resume (`res`).
    fn read(system: System, hib: &str, res: &str) -> Phases {
        match system {
            System::Kjump(k) => Phases {
                hibernate: [
                    seconds_after(hib, "checked and loaded in ").or_else(|| seconds_after(hib, ", checked in ")),
                    // A resident B booted before the hibernation.
                    if k == Kjump::Resident { None } else { seconds_after(hib, "mode save (this kernel up after ") },
                    hib.lines().find(|l| l.contains("kjump-init: summary:")).and_then(|l| field(l, "seconds=")),
                ],
                back: [
                    // Only where C boots: from an entry, D is the first kernel.
                    if k.resumes_from_entry() { None } else { stamp_of(res, "Run /init as init process") },
                    seconds_after(res, "mode restore (this kernel up after "),
                    res.lines().find_map(|l| leading_number(l.split_once("kjump-init: restored ")?.1.split_once(" and zeroed ")?.1.split_once(" in ")?.1)),
                ],
            },
            System::Swsusp(_) => Phases {
                hibernate: [swsusp_seconds(hib, "Allocated"), None, swsusp_seconds(hib, "Wrote")],
                back: [stamp_of(res, "PM: hibernation: resume from hibernation"), None, swsusp_seconds(res, "Read")],
            },
        }
    }

    /// The medians of each part over `runs` that worked.
    fn medians(runs: &[Run]) -> Phases {
        let part = |f: &dyn Fn(&Run) -> Option<f64>| ok_stats(runs, f).map(|v| v.0);
        Phases { hibernate: std::array::from_fn(|i| part(&|r| r.phases.hibernate[i])), back: std::array::from_fn(|i| part(&|r| r.phases.back[i])) }
    }

    /// Which parts `system`'s consoles give, when nothing is quiet.
    fn expected(system: System) -> ([bool; 3], [bool; 3]) {
        match system {
            System::Kjump(Kjump::Resident) => ([true, false, true], [false, true, true]),
            System::Kjump(Kjump::Entry) => ([true, true, true], [false, true, true]),
            System::Kjump(_) => ([true; 3], [true; 3]),
            System::Swsusp(_) => ([true, false, true], [true, false, true]),
        }
    }

    /// The host's `total` less the parts, when every part `expect`ed was
    /// found (a quiet boot hides some: the rest would then hold them).
    fn rest(total: Option<f64>, parts: &[Option<f64>; 3], expect: &[bool; 3]) -> Option<f64> {
        let mut left = total?;
        for (p, e) in parts.iter().zip(expect) {
            match (p, e) {
                (Some(v), true) => left -= v,
                (None, true) => return None,
                _ => {}
            }
        }
        Some(left)
    }
}

/// "Where the time goes": each system's phases at each workload (medians).
fn phases_md(results: &[(Workload, RunsBySystem)]) -> String {
    let med = |v: Option<(f64, f64, f64)>| v.map_or("–".to_string(), |v| format!("{:.2}", v.0));
    let mut rows = String::new();
    for (w, per) in results {
        for (system, runs) in per {
            let (eh, eb) = Phases::expected(*system);
            let part = |f: &dyn Fn(&Run) -> Option<f64>| med(ok_stats(runs, f));
            let m = Phases::medians(runs);
            let [h, b] = [m.hibernate, m.back].map(|p| p.map(|v| v.map_or("–".to_string(), |v| format!("{v:.2}"))));
            let _ = writeln!(
                rows,
                "| {w} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                system.name(),
                part(&|r| r.hibernate_s),
                h[0],
                h[1],
                h[2],
                part(&|r| Phases::rest(r.hibernate_s, &r.phases.hibernate, &eh)),
                part(&|r| r.back_s),
                b[0],
                b[1],
                b[2],
                part(&|r| Phases::rest(r.back_s, &r.phases.back, &eb)),
            );
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from("#### Where the time goes (medians, seconds)\n\n");
    let _ = writeln!(md, "The parts are what each kernel's own clock measured, from its console:");
    for (n, h) in HIBERNATE_PHASES.iter().enumerate() {
        let _ = writeln!(md, "- hibernate {}: {h};", n + 1);
    }
    for (n, b) in BACK_PHASES.iter().enumerate() {
        let _ = writeln!(md, "- back {}: {b};", n + 1);
    }
    let _ = writeln!(md, "- rest: the host's total less those parts (hibernating: freezing A, the jump into B or the snapshot, a kernel's start before its clock, powering off; getting back: the firmware, C loading D, the jumps, A's devices waking), shown only where every part the system has was printed (a `quiet` boot prints none of swsusp's).\n");
    let _ = writeln!(md, "| workload | system | hibernate | hibernate 1 | hibernate 2 | hibernate 3 | rest | back in A | back 1 | back 2 | back 3 | rest |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    md.push_str(&rows);
    md.push('\n');
    let boots = boots_md(results);
    if !boots.is_empty() {
        let _ = writeln!(md, "Kernel boots on each path (kjump as users run it against the first swsusp system whose console shows its resume):\n\n{boots}");
    }
    md
}

/// One line per workload: what booting kernels costs `kjump` (B to
/// hibernate, C and D to resume) next to swsusp (no boot to hibernate, one
/// to resume), from the phase medians.
fn boots_md(results: &[(Workload, RunsBySystem)]) -> String {
    let m = |runs: &[Run], f: &dyn Fn(&Run) -> Option<f64>| ok_stats(runs, f).map(|v| v.0);
    let mut out = String::new();
    for (w, per) in results {
        let Some((_, k)) = per.iter().find(|(s, _)| *s == System::Kjump(Kjump::Plain)) else { continue };
        let Some((sw, s)) = per.iter().find(|(s, r)| !s.is_kjump() && m(r, &|r| r.phases.back[0]).is_some()) else { continue };
        let (kp, sp) = (Phases::medians(k), Phases::medians(s));
        let (Some(kh), Some(b), Some(kb), Some(c), Some(d)) = (m(k, &|r| r.hibernate_s), kp.hibernate[1], m(k, &|r| r.back_s), kp.back[0], kp.back[1]) else {
            continue;
        };
        let (Some(sb), Some(sc)) = (m(s, &|r| r.back_s), sp.back[0]) else { continue };
        let _ = writeln!(
            out,
            "- {w}: kjump's B boots for {b:.2} s of its {kh:.2} s hibernation; to get back into A, C runs {c:.2} s before its first program and D boots for {d:.2} s, of {kb:.2} s. {} boots no kernel to hibernate and starts reading its image {sc:.2} s into its one boot, of {sb:.2} s back into A.",
            sw.name()
        );
    }
    out
}

/// MiB A swapped out while hibernating: the swap in use (KiB) on the line
/// A printed after (in `after`, the console of the boot A came back in, or
/// A's own if the hibernation failed), less that on the line before (in
/// `before`, A's console).
fn swapped_out_mib(before: &str, after: &str) -> Option<f64> {
    let kib = number_after(after, marker::SWAP_AFTER)?.checked_sub(number_after(before, marker::SWAP_BEFORE)?)?;
    Some(kib as f64 / 1024.0)
}

/// Words in the kernel's hibernation error lines (kernel/power/*.c:
/// "Image allocation is N pages short", "Not enough free swap", "Error N
/// creating image", "Cannot get swap writer", …).
const PM_ERRORS: [&str; 9] = ["rror", "fail", "Fail", "short", "Not enough", "Cannot", "abort", "Invalid", "not available"];

/// Why a hibernation failed, from A's console after it began: the first
/// (at most three) error lines of kjump or of the kernel's PM code, or
/// else the last line of either.
fn failure_reason(log: &str) -> String {
    let after = log.find(marker::HIBERNATING).map_or(log, |i| &log[i..]);
    let kjump = |l: &str| l.contains("kjump: ") || l.contains("kjump-init: ");
    let errors: Vec<&str> = after
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("kjump-init: error") || ((l.contains("PM: ") || kjump(l)) && PM_ERRORS.iter().any(|w| l.contains(w))))
        .take(3)
        .collect();
    if errors.is_empty() {
        after.lines().rfind(|l| l.contains("PM: ") || kjump(l)).unwrap_or("").trim().to_string()
    } else {
        errors.join("; ")
    }
}

/// How often [`timed`] looks at the console.
const TIMED_POLL: Duration = Duration::from_millis(10);

/// Seconds between A's lines `start` and `end` (which ends in the exit
/// status of what ran between them), as the host sees them: A's clock
/// across a jump is not to be trusted. The host must be waiting already
/// when `start` appears (A pauses before it where it follows a line the
/// host waited for).
fn timed(vm: &mut Vm, start: &str, end: &str, timeout: Duration) -> Result<f64, String> {
    vm.try_in_order_every(&[start], timeout, TIMED_POLL)?;
    let t = Instant::now();
    let line = vm.try_in_order_every(&[end], timeout, TIMED_POLL)?.remove(0);
    let s = t.elapsed().as_secs_f64();
    if line.trim_end().ends_with(" 0") {
        Ok(s)
    } else {
        Err(format!("failed: {}", line.trim()))
    }
}

/// What every run of one bench shares.
struct Bench {
    p: Paths,
    shape: Shape,
    /// The data disk for warm runs, made once ([`data_disk`]); each warm
    /// run gets a copy of it.
    data_disk: Option<PathBuf>,
}

/// A raw disk of [`DATA_DISK_MIB`] in `dir` with an ext2 filesystem
/// holding one file of [`CACHED_FILE_MIB`] of random (incompressible)
/// bytes named [`CACHED_FILE`].
fn data_disk(dir: &Path) -> Result<PathBuf, String> {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
    let mut random = std::fs::File::open("/dev/urandom").map_err(|e| format!("/dev/urandom: {e}"))?;
    let mut file = std::fs::File::create(files.join(CACHED_FILE)).map_err(|e| e.to_string())?;
    std::io::copy(&mut std::io::Read::take(&mut random, CACHED_FILE_MIB << 20), &mut file).map_err(|e| format!("writing the cached file: {e}"))?;
    let disk = sparse_disk(dir, "data.img", DATA_DISK_MIB);
    let out = Command::new("mke2fs").args(["-q", "-F", "-t", "ext2", "-m", "0", "-d"]).arg(&files).arg(&disk).output().map_err(|e| format!("mke2fs: {e}"))?;
    if !out.status.success() {
        return Err(format!("mke2fs: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let _ = std::fs::remove_dir_all(&files);
    Ok(disk)
}

fn one_run(b: &Bench, system: System, w: Workload, rep: u32) -> Run {
    let (p, shape, timeout) = (&b.p, &b.shape, b.shape.timeout);
    let mut run = Run::default();
    let name = format!("bench-{}-{}{}-{rep}", system.name(), w.mib, if w.warm { "-warm" } else { "" });
    let dir = TempDir::new(&format!("{name}-disks"));
    // The target first (TARGET), then the data disk (DATA_DISK).
    let mut disks = vec![sparse_disk(&dir.0, "disk.img", shape.disk_mib)];
    if w.warm {
        let copy = dir.0.join("data.img");
        match b.data_disk.as_ref().ok_or_else(|| "no data disk made".to_string()).and_then(|d| std::fs::copy(d, &copy).map_err(|e| e.to_string())) {
            Ok(_) => disks.push(copy),
            Err(e) => {
                run.note = format!("copying the data disk: {e}");
                return run;
            }
        }
    }
    let initrd = a_initramfs(p, &script(system, w));
    let append = system.append();
    let mut a = Vm::start(p, shape.vm(&name, initrd.clone(), &append, disks.clone()));
    if w.warm {
        match timed(&mut a, marker::READING, marker::READ_RETURNED, timeout) {
            Ok(s) => run.read_s = Some(s),
            Err(e) => {
                run.note = format!("reading the file before hibernating: {e}");
                return run;
            }
        }
    }
    if system.kjump() == Some(Kjump::Resident) {
        match timed(&mut a, marker::LOADING, marker::LOAD_RETURNED, timeout) {
            Ok(s) => run.load_s = Some(s),
            Err(e) => {
                run.note = format!("kjump load: {e}");
                return run;
            }
        }
    }
    if let Err(e) = a.try_in_order(&[marker::READY, marker::HIBERNATING], timeout) {
        run.note = format!("A did not get ready: {e}");
        return run;
    }
    if let Some((_, why)) = SETUP_FAILURES.iter().find(|(line, _)| a.log().contains(line)) {
        run.note = why.to_string();
        return run;
    }
    let t0 = Instant::now();
    if !a.try_exit(timeout) {
        run.note = "hibernation did not power off".into();
        return run;
    }
    let hib = t0.elapsed().as_secs_f64();
    let log = a.log();
    if let Some(l) = log.lines().find(|l| l.contains(marker::RETURNED)) {
        let swapped = swapped_out_mib(&log, &log).filter(|m| *m > 0.0).map_or(String::new(), |m| format!("; {m:.0} MiB swapped out first"));
        run.note = format!("hibernation failed: {} ({}){swapped}", l.trim(), failure_reason(&log));
        return run;
    }
    run.hibernate_s = Some(hib);
    // The image's size: what the hibernation wrote to the disk, measured the
    // same way for both systems, as the blocks the sparse disk file now
    // holds. (swsusp's own "Image size after compression" line does not
    // count every page it writes.)
    run.image_bytes = std::fs::metadata(&disks[0]).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.blocks() * 512
    });
    match system {
        System::Kjump(_) => {
            if let Some(l) = log.lines().find(|l| l.contains("kjump-init: summary:")) {
                run.save_mb_s = field(l, "mb_per_s=");
            }
        }
        System::Swsusp(s) => {
            run.image_size = number_after(&log, marker::IMAGE_SIZE);
            match swsusp_compressor(&log) {
                Some((alg, threads)) if alg == s.compressor => run.compressor = Some((alg, threads)),
                Some((alg, _)) => {
                    run.note = format!("swsusp compressed with {alg}, not {}", s.compressor);
                    return run;
                }
                None => {
                    run.note = "A's console does not say which compressor swsusp used".into();
                    return run;
                }
            }
        }
    }
    drop(a);
    let resume_append = system.resume_append();
    // The boot loader entry's files, made here from A's command line (the
    // same bytes `kjump boot-entry` wrote in A).
    let entry = if system.kjump().is_some_and(Kjump::resumes_from_entry) {
        match entry_files(p, &log, &dir.0) {
            Ok(e) => Some(e),
            Err(e) => {
                run.note = format!("no boot entry: {e}");
                return run;
            }
        }
    } else {
        None
    };
    if let Some((_, cmdline, _)) = &entry {
        // The -trimmed swsusp systems are as trimmed as D only if D is.
        let trim = trimming();
        if let Some(w) = trim.split_whitespace().find(|w| !cmdline.split_whitespace().any(|c| c == *w)) {
            eprintln!("bench: D's command line lacks {w}, which the -trimmed swsusp systems' resume boot gets");
        }
    }
    let c_name = format!("{name}-c");
    let cfg = shape.vm(&c_name, initrd, &resume_append, disks);
    let mut c = match entry {
        Some((kernel, cmdline, d_initrd)) => Vm::start_with(&kernel, &cmdline, VmConfig { initrd: d_initrd, ..cfg }),
        None => Vm::start(p, cfg),
    };
    // Timed from QEMU's start (a restart, if the boot hung before any
    // program ran: see harness::BOOT_STALL).
    let back = c.try_in_order(&[marker::RETURNED], timeout).map(|_| c.started().elapsed().as_secs_f64());
    match back.and_then(|b| c.try_in_order(&[marker::INTACT], timeout).map(|_| b)) {
        Ok(b) => {
            run.back_s = Some(b);
            run.resume_s = Some(c.started().elapsed().as_secs_f64());
            run.swapped_out_mib = swapped_out_mib(&log, &c.log());
        }
        Err(e) => {
            let log = c.log();
            let why = log.lines().rfind(|l| l.contains("C: ") || l.contains("WORKLOAD") || l.contains("error")).unwrap_or("").trim().to_string();
            run.note = format!("resume failed: {why} ({e})");
            return run;
        }
    }
    run.phases = Phases::read(system, &log, &c.log());
    if w.warm {
        match timed(&mut c, marker::REREADING, marker::REREAD_RETURNED, timeout) {
            Ok(s) => run.reread_s = Some(s),
            Err(e) => {
                run.note = format!("reading the file after the resume: {e}");
                return run;
            }
        }
    }
    run.ok = true;
    run
}

/// The physical limits: one `kjump bench-io` in the same VM shape.
#[derive(Clone, Debug, Default)]
struct Limits {
    vmcore: f64,
    write: f64,
    read: f64,
}

fn limits(p: &Paths, shape: &Shape, rep: u32) -> Option<Limits> {
    let name = format!("bench-limits-{rep}");
    let dir = TempDir::new(&format!("{name}-disks"));
    let disks = vec![sparse_disk(&dir.0, "disk.img", shape.disk_mib)];
    let script = format!(
        "mount -t proc proc /proc\nmount -t sysfs sysfs /sys\nmount -t devtmpfs devtmpfs /dev\nkjump bench-io --target {TARGET}\necho \"A: bench-io exited $?\"\npoweroff -f\n"
    );
    let initrd = a_initramfs(p, &script);
    let mut vm = Vm::start(p, shape.vm(&name, initrd, "", disks));
    let lines = match vm.try_in_order(&["kjump: limits: "], shape.timeout) {
        Ok(lines) => lines,
        Err(e) => {
            let log = vm.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!("bench: limits {rep}: {e}; the console ended:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            return None;
        }
    };
    if let Some(l) = vm.log().lines().find(|l| l.contains("Linux version ")) {
        let v = l.split("Linux version ").nth(1).unwrap_or("").split_whitespace().next().unwrap_or("");
        let _ = KERNEL.set(v.to_string());
    }
    Some(Limits {
        vmcore: field(&lines[0], "vmcore_read_mb_per_s=")?,
        write: field(&lines[0], "disk_write_mb_per_s=")?,
        read: field(&lines[0], "disk_read_mb_per_s=")?,
    })
}

/// Median, minimum and maximum.
fn stats(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    Some((median, s[0], s[n - 1]))
}

fn cell(v: Option<(f64, f64, f64)>, unit: &str, scale: f64) -> String {
    cell_to(v, unit, scale, 1)
}

/// [`cell`] with `digits` decimals.
fn cell_to(v: Option<(f64, f64, f64)>, unit: &str, scale: f64, digits: usize) -> String {
    match v {
        Some((m, lo, hi)) if (hi - lo) / scale > 0.05 => format!("{:.digits$}{unit} ({:.digits$}–{:.digits$})", m / scale, lo / scale, hi / scale),
        Some((m, _, _)) => format!("{:.digits$}{unit}", m / scale),
        None => "failed".into(),
    }
}

fn ratio(a: Option<(f64, f64, f64)>, b: Option<(f64, f64, f64)>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.0 > 0.0 => format!("{:.2}", a.0 / b.0),
        _ => "–".into(),
    }
}

/// Medians (with ranges) of the runs that worked: hibernate, resume, back
/// in A, image bytes.
type Medians = [Option<(f64, f64, f64)>; 4];

fn medians(runs: &[Run]) -> Medians {
    [ok_stats(runs, |r| r.hibernate_s), ok_stats(runs, |r| r.resume_s), ok_stats(runs, |r| r.back_s), ok_stats(runs, |r| r.image_bytes.map(|b| b as f64))]
}

/// [`stats`] of what `f` gives for the runs that worked.
fn ok_stats(runs: &[Run], f: impl Fn(&Run) -> Option<f64>) -> Option<(f64, f64, f64)> {
    stats(&runs.iter().filter(|r| r.ok).filter_map(f).collect::<Vec<_>>())
}

/// The medians of `system`'s runs, if it ran.
fn medians_of(per: &RunsBySystem, system: System) -> Option<Medians> {
    per.iter().find(|(s, r)| *s == system && !r.is_empty()).map(|(_, r)| medians(r))
}

/// `kjump`'s medians over `other`'s, metric by metric.
fn ratios(kjump: &Medians, other: &Medians) -> [Option<f64>; 4] {
    std::array::from_fn(|n| kjump[n].zip(other[n]).filter(|(_, b)| b.0 > 0.0).map(|(a, b)| a.0 / b.0))
}

/// [`ratios`] as table cells.
fn ratio_cells(kjump: &Medians, other: &Medians) -> [String; 4] {
    std::array::from_fn(|n| ratio(kjump[n], other[n]))
}

fn json_num(v: Option<f64>) -> String {
    v.map_or("null".into(), |x| format!("{x:.3}"))
}

/// `{median, min, max}`, each null when nothing worked.
fn json_range(v: Option<(f64, f64, f64)>) -> String {
    format!("{{\"median\": {}, \"min\": {}, \"max\": {}}}", json_num(v.map(|v| v.0)), json_num(v.map(|v| v.1)), json_num(v.map(|v| v.2)))
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd).args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string()).unwrap_or_default()
}

/// What [`Medians`] hold, in order.
const METRICS: [&str; 4] = ["hibernate", "resume", "back in A", "image size"];

/// A target set for kjump: for each kjump system in `by`, its median of
/// `METRICS[metric]` at most `at_most` times each swsusp system's, at
/// `workload` MiB (`None`: at every workload).
struct Target {
    metric: usize,
    at_most: f64,
    workload: Option<u64>,
    by: &'static [Kjump],
}

const TARGETS: [Target; 3] = [
    Target { metric: 3, at_most: 1.0, workload: None, by: &[Kjump::Plain, Kjump::Entry, Kjump::Resident] },
    Target { metric: 0, at_most: 0.6, workload: Some(384), by: &[Kjump::Plain, Kjump::Entry, Kjump::Resident] },
    Target { metric: 1, at_most: 0.8, workload: None, by: &[Kjump::Plain, Kjump::Entry, Kjump::Resident] },
];

/// B's save rate (A's RAM per second) set as a target: at least this
/// times the disk's raw write rate.
const SAVE_TARGET: f64 = 0.7;

/// B's save rate (A's RAM per second, MB/s), the median of the first
/// kjump system run (they save alike).
fn save_rate(per: &RunsBySystem) -> Option<f64> {
    let (_, runs) = per.iter().find(|(s, _)| s.is_kjump())?;
    Some(stats(&runs.iter().filter_map(|r| r.save_mb_s).collect::<Vec<_>>())?.0)
}

/// `a–b`, or `a` when both round alike.
fn span(values: impl Iterator<Item = f64>, unit: &str) -> String {
    let v: Vec<f64> = values.collect();
    let (lo, hi) = (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    let digits = if unit.is_empty() { 2 } else { 1 };
    let (a, b) = (format!("{lo:.digits$}"), format!("{hi:.digits$}"));
    if a == b {
        format!("{a}{unit}")
    } else {
        format!("{a}–{b}{unit}")
    }
}

/// One line per target: each kjump system's ratios over the swsusp systems
/// at each workload, and whether the target is met against every one.
fn targets_md(results: &[(Workload, RunsBySystem)], raw_write: Option<f64>) -> String {
    let mut out = String::new();
    for t in &TARGETS {
        let mut parts = Vec::new();
        for &k in t.by {
            let mut at = Vec::new();
            // The targets are set for the workload alone, not the warm runs.
            for (w, per) in results.iter().filter(|(w, _)| !w.warm && t.workload.map_or(true, |m| m == w.mib)) {
                let Some(km) = medians_of(per, System::Kjump(k)) else { continue };
                let vs: Vec<(String, f64)> = per
                    .iter()
                    .filter(|(s, r)| !s.is_kjump() && !r.is_empty())
                    .filter_map(|(s, r)| Some((s.name(), ratios(&km, &medians(r))[t.metric]?)))
                    .collect();
                if vs.is_empty() {
                    continue;
                }
                let missed: Vec<String> = vs.iter().filter(|(_, r)| *r > t.at_most).map(|(n, r)| format!("{n} {r:.2}")).collect();
                let verdict = match missed.len() {
                    0 => "met".to_string(),
                    n if n == vs.len() => "missed".to_string(),
                    _ => format!("missed against {}", missed.join(", ")),
                };
                at.push(format!("{w} {} ({verdict})", span(vs.iter().map(|v| v.1), "")));
            }
            if !at.is_empty() {
                parts.push(format!("{} {}", k.name(), at.join(", ")));
            }
        }
        if !parts.is_empty() {
            let at = t.workload.map_or(String::new(), |w| format!(" at {w} MiB"));
            let _ = writeln!(out, "- **{} ≤ {:.2} × swsusp's{at}**: {}.", METRICS[t.metric], t.at_most, parts.join("; "));
        }
    }
    let saves: Vec<String> = results
        .iter()
        .filter_map(|(w, per)| {
            let x = save_rate(per)? / raw_write?;
            Some(format!("{w} {x:.2} ({})", if x >= SAVE_TARGET { "met" } else { "missed" }))
        })
        .collect();
    if !saves.is_empty() {
        let _ = writeln!(out, "- **save rate ≥ {SAVE_TARGET:.2} × raw write**: {}.", saves.join(", "));
    }
    out
}

/// How many runs worked, kjump's and swsusp's, in all and at the largest
/// workload (in a machine of `memory_mib`); and what reading the workload
/// back cost each.
fn runs_md(results: &[(Workload, RunsBySystem)], memory_mib: u32) -> String {
    let count = |rows: &mut dyn Iterator<Item = &(Workload, RunsBySystem)>, kjump: bool| {
        let runs: Vec<&Run> = rows.flat_map(|(_, per)| per.iter().filter(|(s, _)| s.is_kjump() == kjump).flat_map(|(_, r)| r)).collect();
        format!("{}/{}", runs.iter().filter(|r| r.ok).count(), runs.len())
    };
    let mut out = format!("Runs that worked: kjump {}, swsusp {}", count(&mut results.iter(), true), count(&mut results.iter(), false));
    let cold = || results.iter().filter(|(w, _)| !w.warm);
    if let Some(top) = cold().map(|(w, _)| w.mib).max().filter(|_| cold().count() > 1) {
        let pct = top as f64 * 100.0 / f64::from(memory_mib);
        let at_top = || cold().filter(move |(w, _)| w.mib == top);
        let _ = write!(out, "; at {top} MiB ({pct:.0} % of RAM) kjump {}, swsusp {}", count(&mut at_top(), true), count(&mut at_top(), false));
    }
    out.push_str(".\n\nReading the workload back in A (resume − back in A, medians):");
    for (w, per) in results {
        let back = |kjump: bool| {
            let v: Vec<f64> =
                per.iter().filter(|(s, _)| s.is_kjump() == kjump).filter_map(|(_, r)| Some(ok_stats(r, |r| Some(r.resume_s? - r.back_s?))?.0)).collect();
            (!v.is_empty()).then(|| format!("{} {}", if kjump { "kjump" } else { "swsusp" }, span(v.into_iter(), " s")))
        };
        let both: Vec<String> = [back(true), back(false)].into_iter().flatten().collect();
        if !both.is_empty() {
            let _ = write!(out, " {w}: {};", both.join(", "));
        }
    }
    out.pop();
    out.push_str(".\n");
    out
}

/// What each swsusp system ran with: the words its resume boot got beyond
/// A's, and the compressor and image_size A's console showed (every value
/// seen in the runs that worked).
fn swsusp_md(results: &[(Workload, RunsBySystem)], systems: &[System]) -> String {
    let mut out = String::new();
    for &system in systems.iter().filter(|s| !s.is_kjump()) {
        let seen = |f: &dyn Fn(&Run) -> Option<String>| {
            let mut v: Vec<String> = results
                .iter()
                .flat_map(|(_, per)| per.iter().filter(|(s, _)| *s == system))
                .flat_map(|(_, r)| r.iter().filter(|r| r.ok).filter_map(f))
                .collect();
            v.sort();
            v.dedup();
            if v.is_empty() {
                "–".into()
            } else {
                v.join(", ")
            }
        };
        let trim = match system {
            System::Swsusp(s) if s.trimmed => format!("`{}`", trimming()),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {trim} | {} | {} |",
            system.name(),
            seen(&|r| r.compressor.as_ref().map(|(c, n)| format!("{c} ({n})"))),
            seen(&|r| r.image_size.map(|b| format!("{:.1}", b as f64 / 1048576.0)))
        );
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "#### swsusp as it ran\n\n| system | resume boot also given | compressor (threads), from A's console | image_size MiB (A's /sys/power/image_size) |\n|---|---|---|---|\n{out}\n"
    )
}

/// `kjump load`'s time at each workload, if kjump-resident ran.
fn load_md(results: &[(Workload, RunsBySystem)]) -> String {
    let at: Vec<String> = results
        .iter()
        .filter_map(|(w, per)| {
            let (_, runs) = per.iter().find(|(s, r)| *s == System::Kjump(Kjump::Resident) && !r.is_empty())?;
            Some(format!("{w} {} s", cell(ok_stats(runs, |r| r.load_s), "", 1.0)))
        })
        .collect();
    if at.is_empty() {
        return String::new();
    }
    format!("`kjump load` (kjump-resident, before the hibernate timer starts; A is paused while B boots, checks the target and parks): {}.\n\n", at.join(", "))
}

/// One row of the JSON's `results`.
/// The medians of a row's phases: `{"hibernate": [..3], "back_in_a": [..3]}`,
/// in the order of [`HIBERNATE_PHASES`] and [`BACK_PHASES`], null where
/// the console did not say.
fn phases_json(runs: &[Run]) -> String {
    let m = Phases::medians(runs);
    let [h, b] = [m.hibernate, m.back].map(|p| p.map(json_num));
    format!("{{\"hibernate\": [{}], \"back_in_a\": [{}]}}", h.join(", "), b.join(", "))
}

fn json_row(w: Workload, system: System, runs: &[Run], per: &RunsBySystem) -> String {
    let m = medians(runs);
    let [h, r, b, i] = m;
    let ok = runs.iter().filter(|r| r.ok).count();
    let first_ok = |f: &dyn Fn(&Run) -> Option<String>| runs.iter().filter(|r| r.ok).find_map(f).unwrap_or_else(|| "null".into());
    let swsusp = match system {
        System::Swsusp(s) => Some(s),
        System::Kjump(_) => None,
    };
    // Each kjump system's medians over this swsusp system's.
    let kjump_ratios: Vec<String> = KJUMPS
        .iter()
        .map(|&k| {
            let r = match medians_of(per, System::Kjump(k)) {
                Some(km) if swsusp.is_some() => ratios(&km, &m),
                _ => [None; 4],
            };
            format!(
                "\"{}_ratio\": {{\"hibernate\": {}, \"resume\": {}, \"back_in_a\": {}, \"image\": {}}}",
                k.name().replace('-', "_"),
                json_num(r[0]),
                json_num(r[1]),
                json_num(r[2]),
                json_num(r[3])
            )
        })
        .collect();
    format!(
        "    {{\"workload_mib\": {}, \"system\": {}, \"runs\": {}, \"worked\": {ok}, \"hibernate_s\": {}, \"resume_s\": {}, \"back_in_a_s\": {}, \"image_bytes\": {}, \"save_mb_per_s\": {}, \"load_s\": {}, \"compressor\": {}, \"compress_threads\": {}, \"image_size_bytes\": {}, \"resume_trimmed\": {}, \"phases_s\": {}, {}, \"hibernate_s_per_gib\": {}, \"resume_s_per_gib\": {}, \"swapped_out_mib\": {}, \"page_cache_file_mib\": {}, \"read_s\": {}, \"reread_s\": {}, \"failures\": [{}]}}",
        w.mib,
        json_str(&system.name()),
        runs.len(),
        json_range(h),
        json_range(r),
        json_range(b),
        json_num(i.map(|v| v.0)),
        json_num(ok_stats(runs, |r| r.save_mb_s).map(|v| v.0)),
        if system == System::Kjump(Kjump::Resident) { json_range(ok_stats(runs, |r| r.load_s)) } else { "null".into() },
        first_ok(&|r| r.compressor.as_ref().map(|(c, _)| json_str(c))),
        first_ok(&|r| r.compressor.as_ref().map(|(_, n)| n.to_string())),
        first_ok(&|r| r.image_size.map(|b| b.to_string())),
        swsusp.map_or("null".into(), |s| s.trimmed.to_string()),
        phases_json(runs),
        kjump_ratios.join(", "),
        json_num(per_gib(h, w)),
        json_num(per_gib(r, w)),
        json_range(ok_stats(runs, |r| r.swapped_out_mib)),
        if w.warm { CACHED_FILE_MIB.to_string() } else { "null".into() },
        if w.warm { json_range(ok_stats(runs, |r| r.read_s)) } else { "null".into() },
        if w.warm { json_range(ok_stats(runs, |r| r.reread_s)) } else { "null".into() },
        runs.iter().filter(|r| !r.ok).map(|r| json_str(&r.note)).collect::<Vec<_>>().join(", ")
    )
}

/// A median per GiB of workload.
fn per_gib(v: Option<(f64, f64, f64)>, w: Workload) -> Option<f64> {
    v.map(|v| v.0 * 1024.0 / w.mib as f64)
}

/// Which systems swapped out to make room for the image, at which
/// workloads and how much, in plain words.
fn swap_md(results: &[(Workload, RunsBySystem)], systems: &[System]) -> String {
    let (mut swapped, mut none, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for &system in systems {
        let per_workload: Vec<_> = results
            .iter()
            .filter_map(|(w, per)| per.iter().find(|(s, r)| *s == system && !r.is_empty()).map(|(_, r)| (*w, ok_stats(r, |r| r.swapped_out_mib))))
            .collect();
        let at: Vec<String> =
            per_workload.iter().filter(|(_, m)| m.is_some_and(|m| m.2 > 0.0)).map(|(w, m)| format!("{w} {}", cell(*m, " MiB", 1.0))).collect();
        if !at.is_empty() {
            swapped.push(format!("{} at {}", system.name(), at.join(", ")));
        } else if per_workload.iter().any(|(_, m)| m.is_some()) {
            none.push(system.name());
        } else if !per_workload.is_empty() {
            unknown.push(system.name());
        }
    }
    let mut out = String::from(
        "Swapped out while hibernating (swap in use in A after its hibernate command returned, less before it hibernated; runs that worked, medians):",
    );
    if !swapped.is_empty() {
        let _ = write!(out, " {}.", swapped.join("; "));
    }
    if !none.is_empty() {
        let _ = write!(out, " Nothing at any workload: {}.", none.join(", "));
    }
    if !unknown.is_empty() {
        let _ = write!(out, " Not measured (no run came back): {}.", unknown.join(", "));
    }
    out.push_str("\n\n");
    out
}

/// The warm runs' table: the file's reread after the resume, each system
/// and kjump's ratio, with the first read for scale.
fn warm_md(results: &[(Workload, RunsBySystem)]) -> String {
    let mut table = String::new();
    let mut words = Vec::new();
    for (w, per) in results.iter().filter(|(w, _)| w.warm) {
        let reread = |runs: &[Run]| ok_stats(runs, |r| r.reread_s);
        let kjump = per.iter().find(|(s, _)| *s == System::Kjump(Kjump::Plain)).and_then(|(_, r)| reread(r));
        let mut said = Vec::new();
        for (system, runs) in per {
            let (read, again) = (ok_stats(runs, |r| r.read_s), reread(runs));
            let ok = runs.iter().filter(|r| r.ok).count();
            let vs = if system.is_kjump() { "–".into() } else { ratio(kjump, again) };
            let _ =
                writeln!(table, "| {w} | {} | {ok}/{} | {} | {} | {vs} |", system.name(), runs.len(), cell_to(read, "", 1.0, 2), cell_to(again, "", 1.0, 2));
            if let (Some(r), Some(a)) = (read, again) {
                said.push(format!("{} {:.2} s, {:.2} × its first read", system.name(), a.0, a.0 / r.0));
            }
        }
        if !said.is_empty() {
            words.push(format!("at {w}: {}", said.join("; ")));
        }
    }
    if table.is_empty() {
        return table;
    }
    format!(
        "#### Warm after resume\n\nA also read a {CACHED_FILE_MIB} MiB file of random bytes (ext2 on a second virtio disk, mounted read-only) before hibernating, and reads it again after the resume, once the workload's hash is checked; A drops nothing itself. Both reads are timed by the host between A's lines around them. kjump's ratio is kjump's reread over that system's (below 1: kjump's page cache came back warmer).\n\n| workload | system | worked | first read s | reread after resume s | kjump's ratio |\n|---|---|---|---|---|---|\n{table}\nRead again after the resume (medians): {}.\n\n",
        words.join("; ")
    )
}

/// Every run that failed, with its note (the kernel's or kjump's reason).
fn failures_md(results: &[(Workload, RunsBySystem)]) -> String {
    let mut out = String::new();
    for (w, per) in results {
        for (system, runs) in per {
            let mut notes: Vec<(&str, usize)> = Vec::new();
            for r in runs.iter().filter(|r| !r.ok) {
                match notes.iter_mut().find(|(n, _)| *n == r.note) {
                    Some((_, count)) => *count += 1,
                    None => notes.push((&r.note, 1)),
                }
            }
            for (note, count) in notes {
                let _ = writeln!(out, "- {w} {}, {count} of {} runs: {note}", system.name(), runs.len());
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    format!("#### Runs that failed\n\n{out}\n")
}

/// `readme` with the text between the `markers` replaced by `md`.
fn splice(readme: &str, markers: (&str, &str), md: &str) -> Result<String, String> {
    let (begin_line, end_line) = markers;
    let begin = readme.find(begin_line).ok_or_else(|| format!("it has no {begin_line} line"))? + begin_line.len();
    let end = begin + readme[begin..].find(end_line).ok_or_else(|| format!("it has no {end_line} line after {begin_line}"))?;
    Ok(format!("{}\n\n{}\n\n{}", &readme[..begin], md.trim(), &readme[end..]))
}

/// Copies each shape's Markdown that exists into README.md between that
/// shape's markers.
fn refresh_readme(shapes: &[Shape]) {
    let mut readme = match std::fs::read_to_string(README) {
        Ok(r) => r,
        Err(e) => return eprintln!("bench: {README} not refreshed: reading it: {e}"),
    };
    let mut copied = Vec::new();
    for shape in shapes {
        let md_path = format!("{}.md", shape.out);
        let Ok(md) = std::fs::read_to_string(&md_path) else {
            eprintln!("bench: no {md_path}: {README}'s {} is left as it is", shape.readme.0);
            continue;
        };
        match splice(&readme, shape.readme, &md) {
            Ok(new) => {
                readme = new;
                copied.push(md_path);
            }
            Err(e) => {
                eprintln!("bench: {README} does not carry {md_path}: {e}; put the markers back and run BENCH_README_ONLY=1 cargo run --release --example bench")
            }
        }
    }
    if copied.is_empty() {
        return;
    }
    match std::fs::write(README, readme) {
        Ok(()) => eprintln!("bench: {README} now carries {}", copied.join(" and ")),
        Err(e) => eprintln!("bench: {README} not refreshed: writing it: {e}"),
    }
}

/// What a bench run found.
struct Findings {
    shape: Shape,
    reps: u32,
    systems: Vec<System>,
    /// Each workload's runs, system by system.
    results: Vec<(Workload, RunsBySystem)>,
    limits: Vec<Limits>,
    kernel: String,
    qemu: String,
    cpu: String,
    cores: usize,
    seconds: f64,
}

/// The Markdown and the JSON of `f`.
fn render(f: &Findings) -> (String, String) {
    let Findings { shape, reps, systems, results, limits: lim, kernel, qemu, cpu, cores, seconds } = f;
    let lim_v = |g: fn(&Limits) -> f64| stats(&lim.iter().map(g).collect::<Vec<_>>());
    let (vmcore, write, read) = (lim_v(|l| l.vmcore), lim_v(|l| l.write), lim_v(|l| l.read));
    let Shape { name: shape_name, memory_mib, cpus, disk_mib, .. } = shape;
    let data_disk = if results.iter().any(|(w, _)| w.warm) { format!(", and for the warm runs a second one of {DATA_DISK_MIB} MiB") } else { String::new() };

    // Headings start at ### : the same text goes under README's
    // "## Performance".
    let mut md = String::new();
    let _ = writeln!(md, "### kjump vs swsusp in {} GiB of RAM, {cpus} CPUs (`BENCH_SHAPE={shape_name}`)\n", shape.memory_gib());
    let _ = writeln!(
        md,
        "QEMU `-accel tcg -m {memory_mib} -smp {cpus}`, one {disk_mib} MiB virtio disk{data_disk}; {reps} repetitions, median (min–max when they differ by more than 5 %)."
    );
    let _ = writeln!(md, "Kernel {kernel}; {qemu}; host {cpu}, {cores} cores.\n");
    let _ = writeln!(
        md,
        "| workload | system | worked | hibernate s | resume s | back in A s | image MiB | hibernate s/GiB | resume s/GiB | swapped out MiB | hibernate ratio | resume ratio | back in A ratio | image ratio |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut json_rows = Vec::new();
    // The kjump systems whose ratios get a table of their own, besides
    // `kjump`'s in the main table.
    let variants = [Kjump::Entry, Kjump::Resident, Kjump::Encrypted];
    let mut variant_md = vec![String::new(); variants.len()];
    for (w, per) in results {
        let kjump = medians_of(per, System::Kjump(Kjump::Plain)).unwrap_or([None; 4]);
        let variant_medians: Vec<Option<Medians>> = variants.iter().map(|&v| medians_of(per, System::Kjump(v))).collect();
        for (system, runs) in per {
            let m = medians(runs);
            let [h, r, b, i] = m;
            let ok = runs.iter().filter(|r| r.ok).count();
            let [hr, rr, br, ir] = if system.is_kjump() { ["–".to_string(), "–".into(), "–".into(), "–".into()] } else { ratio_cells(&kjump, &m) };
            if !system.is_kjump() {
                for (table, vm) in variant_md.iter_mut().zip(&variant_medians) {
                    if let Some(vm) = vm {
                        let [a, c, d, e] = ratio_cells(vm, &m);
                        let _ = writeln!(table, "| {w} | {} | {a} | {c} | {d} | {e} |", system.name());
                    }
                }
            }
            let gib = |v| per_gib(v, *w).map_or("–".to_string(), |v| format!("{v:.1}"));
            let swapped = ok_stats(runs, |r| r.swapped_out_mib);
            let _ = writeln!(
                md,
                "| {w} | {} | {ok}/{} | {} | {} | {} | {} | {} | {} | {} | {hr} | {rr} | {br} | {ir} |",
                system.name(),
                runs.len(),
                cell(h, "", 1.0),
                cell(r, "", 1.0),
                cell(b, "", 1.0),
                cell(i, "", 1048576.0),
                gib(h),
                gib(r),
                swapped.map_or("–".into(), |_| cell(swapped, "", 1.0))
            );
            json_rows.push(json_row(*w, *system, runs, per));
        }
    }
    let _ = writeln!(md, "\nRatios are kjump's median over that system's (below 1: kjump is faster or smaller). kjump resumes the usual way (the system boots, then loads the restore kernel); kjump-entry from the boot loader entry `kjump boot-entry` writes, which starts the restore kernel directly; kjump-resident ran `kjump load` before the timer started (its time is below), hibernates by entering that resident hibernation kernel, and resumes from the boot loader entry. swsusp-lzo and swsusp-lz4 compress with that compressor; -trimmed: swsusp's resume boot also gets the words that shorten D's boot, `{}`; -max: A's /sys/power/image_size is all of RAM, not the kernel's default 2/5, so swsusp swaps out only what cannot fit. Resume ends when A's workload hash is checked; back in A ends when A's hibernate command returns, before that check (reading the workload back costs both systems the same, except where swsusp swapped the workload out to make room). s/GiB: the median over the workload's GiB. Swapped out: what A had swapped out when its hibernate command returned (swap in use then, less before hibernating). Warm: the workload plus a {CACHED_FILE_MIB} MiB file read into the page cache (\"Warm after resume\" below).\n", trimming());
    for (k, table) in variants.iter().zip(&variant_md) {
        if !table.is_empty() {
            let _ = writeln!(md, "#### {} ({}) against each system\n", k.name(), k.about());
            let _ = writeln!(md, "| workload | system | hibernate ratio | resume ratio | back in A ratio | image ratio |");
            let _ = writeln!(md, "|---|---|---|---|---|---|");
            let _ = writeln!(md, "{table}");
        }
    }
    // What encryption costs kjump: the encrypted runs over the plain ones.
    let mut cost = String::new();
    for (w, per) in results {
        if let (Some(plain), Some(sealed)) = (medians_of(per, System::Kjump(Kjump::Plain)), medians_of(per, System::Kjump(Kjump::Encrypted))) {
            let [h, r, b, _] = ratios(&sealed, &plain);
            let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:+.0} %", (v - 1.0) * 100.0));
            let _ = writeln!(cost, "| {w} | {} | {} | {} |", pct(h), pct(r), pct(b));
        }
    }
    if !cost.is_empty() {
        let _ = writeln!(md, "#### What encryption costs kjump (kjump-encrypted over kjump, medians)\n");
        let _ = writeln!(md, "| workload | hibernate | resume | back in A |");
        let _ = writeln!(md, "|---|---|---|---|");
        let _ = writeln!(md, "{cost}");
    }
    md.push_str(&warm_md(results));
    md.push_str(&phases_md(results));
    md.push_str(&swsusp_md(results, systems));
    md.push_str(&load_md(results));
    let _ = writeln!(md, "#### Physical limits in the same VM (`kjump bench-io`, in the hibernation kernel)\n");
    let _ = writeln!(md, "| reading /proc/vmcore | raw O_DIRECT write | raw O_DIRECT read |");
    let _ = writeln!(md, "|---|---|---|");
    let _ = writeln!(md, "| {} MB/s | {} MB/s | {} MB/s |\n", cell(vmcore, "", 1.0), cell(write, "", 1.0), cell(read, "", 1.0));
    let mut save_rates = String::new();
    for (w, per) in results {
        if let Some(m) = save_rate(per) {
            let _ = write!(save_rates, "{w}: {m:.0} MB/s{}; ", write.map_or(String::new(), |x| format!(" ({:.2} x raw write)", m / x.0)));
        }
    }
    let _ = writeln!(md, "kjump's save rate (A's RAM per second, in B): {save_rates}\n");
    let targets = targets_md(results, write.map(|w| w.0));
    if !targets.is_empty() {
        let _ = writeln!(md, "#### Against kjump's targets\n\nkjump's median over each swsusp system's, at each workload; met where it is within the target against every swsusp system run.\n\n{targets}");
    }
    md.push_str(&failures_md(results));
    md.push_str(&runs_md(results, *memory_mib));
    md.push('\n');
    md.push_str(&swap_md(results, systems));
    let _ = writeln!(md, "Total benchmark time {seconds:.0} s.");

    let json = format!(
        "{{\n  \"machine\": {{\"shape\": {}, \"qemu\": {}, \"accel\": \"tcg\", \"memory_mib\": {memory_mib}, \"cpus\": {cpus}, \"disk_mib\": {disk_mib}, \"host_cpu\": {}, \"host_cores\": {cores}, \"kernel\": {}}},\n  \"repetitions\": {reps},\n  \"limits_mb_per_s\": {{\"vmcore_read\": {}, \"disk_write\": {}, \"disk_read\": {}}},\n  \"trimmed_resume_append\": {},\n  \"results\": [\n{}\n  ]\n}}\n",
        json_str(shape_name),
        json_str(qemu),
        json_str(cpu),
        json_str(kernel),
        json_num(vmcore.map(|v| v.0)),
        json_num(write.map(|v| v.0)),
        json_num(read.map(|v| v.0)),
        json_str(&trimming()),
        json_rows.join(",\n")
    );
    (md, json)
}

/// Workload sizes in MiB, comma separated (`BENCH_SIZES`, `BENCH_WARM`);
/// empty is none.
fn sizes_from(list: &str) -> Result<Vec<u64>, String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|_| format!("{s:?} is not a size in MiB"))).collect()
}

/// The setting `name`, or `default` when it is not set.
fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// Stops the bench over a setting it cannot use.
fn bad_setting(name: &str, e: String, known: &str) -> ! {
    eprintln!("bench: {name}: {e}{known}");
    std::process::exit(2)
}

fn main() {
    if std::env::var_os("BENCH_README_ONLY").is_some() {
        refresh_readme(&SHAPES);
        return;
    }
    let shape = Shape::from_name(&setting("BENCH_SHAPE", "")).unwrap_or_else(|e| {
        let known: Vec<&str> = SHAPES.iter().map(|s| s.name).collect();
        bad_setting("BENCH_SHAPE", e, &format!("; known: {}", known.join(",")))
    });
    let out = setting("BENCH_OUT", shape.out);
    let reps: u32 = std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let sizes = sizes_from(&setting("BENCH_SIZES", shape.sizes)).unwrap_or_else(|e| bad_setting("BENCH_SIZES", e, ""));
    let warm = sizes_from(&setting("BENCH_WARM", shape.warm)).unwrap_or_else(|e| bad_setting("BENCH_WARM", e, ""));
    let systems = systems_from(&setting("BENCH_SYSTEMS", shape.systems)).unwrap_or_else(|e| {
        let known: Vec<String> = System::all().into_iter().map(System::name).collect();
        bad_setting("BENCH_SYSTEMS", e, &format!("; known: {}", known.join(",")))
    });
    let p = paths();
    let started = Instant::now();
    let workloads: Vec<Workload> = sizes.iter().map(|&mib| Workload { mib, warm: false }).chain(warm.iter().map(|&mib| Workload { mib, warm: true })).collect();
    eprintln!(
        "bench: shape {} (-m {} -smp {}): {} workloads ({} warm) x {} systems x {reps} repetitions, one VM at a time",
        shape.name,
        shape.memory_mib,
        shape.cpus,
        workloads.len(),
        warm.len(),
        systems.len()
    );
    // The warm runs' data disk, made once; each run gets a copy.
    let data_dir = TempDir::new("bench-data");
    let data_disk = (!warm.is_empty()).then(|| {
        data_disk(&data_dir.0).unwrap_or_else(|e| {
            eprintln!("bench: making the data disk for the warm runs: {e}");
            std::process::exit(1)
        })
    });
    let bench = Bench { p, shape, data_disk };

    let mut lim: Vec<Limits> = Vec::new();
    for rep in 0..reps {
        match limits(&bench.p, &shape, rep) {
            Some(l) => {
                eprintln!("bench: limits {rep}: vmcore {:.0} MB/s, disk write {:.0} MB/s, read {:.0} MB/s", l.vmcore, l.write, l.read);
                lim.push(l);
            }
            None => eprintln!("bench: limits {rep}: failed"),
        }
    }
    // results[workload][system] = runs
    let mut results: Vec<(Workload, RunsBySystem)> = workloads.iter().map(|&w| (w, systems.iter().map(|&y| (y, Vec::new())).collect())).collect();
    // Interleave systems and repetitions so drift in the host hits all alike.
    for rep in 0..reps {
        for (w, per) in results.iter_mut() {
            for (system, runs) in per.iter_mut() {
                let t = Instant::now();
                let r = one_run(&bench, *system, *w, rep);
                let secs = |v: Option<f64>, what: &str| v.map_or(String::new(), |v| format!(", {what} {v:.1} s"));
                eprintln!(
                    "bench: {} {w} #{rep}: {} hibernate {} s, resume {} s, image {} MiB{}{}{}{} (run took {:.0} s){}",
                    system.name(),
                    if r.ok { "ok" } else { "FAILED" },
                    r.hibernate_s.map_or("-".into(), |v| format!("{v:.1}")),
                    r.resume_s.map_or("-".into(), |v| format!("{v:.1}")),
                    r.image_bytes.map_or("-".into(), |v| format!("{:.1}", v as f64 / 1048576.0)),
                    r.swapped_out_mib.map_or(String::new(), |v| format!(", swapped out {v:.1} MiB")),
                    secs(r.load_s, "load"),
                    secs(r.read_s, "first read"),
                    secs(r.reread_s, "reread"),
                    t.elapsed().as_secs_f64(),
                    if r.note.is_empty() { String::new() } else { format!(" ({})", r.note) }
                );
                runs.push(r);
            }
        }
    }

    let findings = Findings {
        shape,
        reps,
        systems,
        results,
        limits: lim,
        kernel: KERNEL.get().cloned().unwrap_or_default(),
        qemu: command_line("qemu-system-x86_64", &["--version"]),
        cpu: std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
            .unwrap_or_default(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        seconds: started.elapsed().as_secs_f64(),
    };
    let (md, json) = render(&findings);
    print!("{md}");
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(format!("{out}.json"), json).unwrap_or_else(|e| panic!("writing {out}.json: {e}"));
    std::fs::write(format!("{out}.md"), md).unwrap_or_else(|e| panic!("writing {out}.md: {e}"));
    eprintln!("bench: wrote {out}.json and {out}.md");
    if out == shape.out {
        refresh_readme(&[shape]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_parses_back_from_its_name() {
        for s in System::all() {
            assert_eq!(System::parse(&s.name()), Some(s));
        }
        assert_eq!(systems_from(DEFAULT_SYSTEMS).unwrap().len(), DEFAULT_SYSTEMS.split(',').count());
        assert!(systems_from("kjump,swsusp-lz4-max-trimmed").is_err());
    }

    #[test]
    fn trimmed_resume_boot_gets_d_words() {
        let s = System::parse("swsusp-lz4-trimmed-max").unwrap();
        let line = s.resume_append();
        for w in ["quiet", "initcall_blacklist=i8042_init", "acpi=noirq", "resume=/dev/vda", "hibernate.compressor=lz4", "bench_boot=c"] {
            assert!(line.split_whitespace().any(|x| x == w), "{w} missing from {line}");
        }
        assert!(!System::parse("swsusp-lz4").unwrap().resume_append().contains("quiet"));
        assert!(script(s, COLD).contains("/sys/power/image_size"));
    }

    const COLD: Workload = Workload { mib: 128, warm: false };
    const WARM: Workload = Workload { mib: 128, warm: true };

    #[test]
    fn every_script_is_valid_shell() {
        for s in System::all() {
            for w in [COLD, WARM] {
                let out = Command::new("/bin/busybox").args(["sh", "-n", "-c", &script(s, w)]).output().expect("busybox (make deps installs it)");
                assert!(out.status.success(), "{} {w}: {}", s.name(), String::from_utf8_lossy(&out.stderr));
            }
        }
    }

    #[test]
    fn only_warm_scripts_touch_the_data_disk() {
        let (cold, warm) = (script(System::parse("swsusp-lzo").unwrap(), COLD), script(System::parse("swsusp-lzo").unwrap(), WARM));
        assert!(!cold.contains(DATA_DISK) && !cold.contains(marker::REREADING));
        assert!(
            warm.contains(&format!("mount -t ext2 -o ro {DATA_DISK} {DATA_MOUNT}")) && warm.contains(&format!("cat {DATA_MOUNT}/{CACHED_FILE} > /dev/null"))
        );
        // The reread comes after the workload's check; nothing is dropped.
        assert!(warm.find(marker::INTACT) < warm.find(marker::REREADING));
        assert!(!warm.contains("drop_caches"));
        for w in [cold, warm] {
            assert!(w.find(marker::SWAP_BEFORE) < w.find(marker::HIBERNATING));
            assert!(w.find(marker::RETURNED) < w.find(marker::SWAP_AFTER));
        }
        assert_ne!(TARGET, DATA_DISK);
    }

    #[test]
    fn shapes_and_their_defaults() {
        assert_eq!(Shape::from_name(""), Ok(SMALL));
        assert_eq!(Shape::from_name("large"), Ok(LARGE));
        assert!(Shape::from_name("huge").is_err());
        // The small shape is the machine of every earlier run.
        assert_eq!((SMALL.memory_mib, SMALL.cpus, SMALL.disk_mib, SMALL.out, SMALL.readme), (1024, 2, 1200, "bench/results", (README_BEGIN, README_END)));
        assert_eq!(sizes_from(SMALL.sizes), Ok(vec![128, 384, 768]));
        assert_eq!(SMALL.systems, DEFAULT_SYSTEMS);
        assert_eq!((LARGE.memory_mib, LARGE.cpus, LARGE.out), (4096, 4, "bench/results-4g"));
        assert_eq!(sizes_from(LARGE.sizes), Ok(vec![1024, 2048, 3072]));
        assert_eq!(sizes_from(LARGE.warm), Ok(vec![1024]));
        assert_eq!(sizes_from(SMALL.warm), Ok(vec![384]));
        let large = systems_from(LARGE.systems).unwrap();
        assert!(large.contains(&System::Kjump(Kjump::Plain)));
        assert!(large.iter().any(|s| matches!(s, System::Swsusp(s) if s.max_image)));
        // swsusp's swap must hold the largest workload twice over (what it
        // swaps out, then its image).
        assert!(sizes_from(LARGE.sizes).unwrap().iter().all(|&m| 2 * m <= LARGE.disk_mib));
        assert!(LARGE.timeout > SMALL.timeout);
        assert_ne!(LARGE.readme, SMALL.readme);
        assert_eq!(sizes_from(""), Ok(vec![]));
        assert_eq!(sizes_from(" 1024, 2048 "), Ok(vec![1024, 2048]));
        assert!(sizes_from("1G").is_err());
    }

    #[test]
    fn swap_lines_give_the_swapped_mib() {
        let a = "[  3.0] x\r\nA: swap used before 40\r\nA: hibernating now\r\n";
        let c = "[  1.0] PM: hibernation: resume\r\nA: hibernate returned 0\r\nA: swap used after 2088\r\n";
        assert_eq!(swapped_out_mib(a, c), Some(2.0));
        assert_eq!(swapped_out_mib(a, a), None);
        assert_eq!(swapped_out_mib("A: swap used before \n", c), None);
        assert_eq!(swapped_out_mib("A: swap used before 3000\n", c), None);
        assert_eq!(swapped_out_mib("A: swap used before 0\n", "A: swap used after 0\n"), Some(0.0));
        // What busybox's awk makes of meminfo, and of a machine without swap.
        let dir = TempDir::new("bench-meminfo-test");
        for (meminfo, used) in
            [("MemTotal: 1 kB\nSwapTotal:  4096 kB\nSwapFree:   1024 kB\n", "3072"), ("MemTotal: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n", "0")]
        {
            let file = dir.0.join("meminfo");
            std::fs::write(&file, meminfo).unwrap();
            let cmd = SWAP_USED.replace("/proc/meminfo", &file.display().to_string());
            let out = Command::new("/bin/busybox").args(["sh", "-c", &cmd]).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), used);
        }
    }

    #[test]
    fn failure_reason_names_the_kernel_error() {
        let log = "PM: hibernation: Not this one: before\nA: hibernating now\n[ 9.1] PM: hibernation: hibernation entry\n[ 9.2] PM: hibernation: Preallocating image memory\n[ 12.0] PM: Not enough free swap\n[ 12.1] PM: hibernation: hibernation exit\nA: hibernate returned 1\n";
        assert_eq!(failure_reason(log), "[ 12.0] PM: Not enough free swap");
        let log = "A: hibernating now\n[ 9.2] PM: hibernation: Image allocation is 1234 pages short\n[ 9.3] PM: hibernation: Error -12 creating image\n";
        assert_eq!(failure_reason(log), "[ 9.2] PM: hibernation: Image allocation is 1234 pages short; [ 9.3] PM: hibernation: Error -12 creating image");
        assert_eq!(failure_reason("A: hibernating now\nPM: hibernation: hibernation exit\n"), "PM: hibernation: hibernation exit");
        assert_eq!(failure_reason("A: hibernating now\nkjump: hibernate: the target is too small\n"), "kjump: hibernate: the target is too small");
    }

    #[test]
    fn compressor_from_console() {
        let log = "[    5.1] PM: hibernation: Allocated 1 pages\r\n[    5.2] PM: Using 1 thread(s) for lz4 compression\r\n[    5.3] PM: Compressing and saving image data\n";
        assert_eq!(swsusp_compressor(log), Some(("lz4".into(), 1)));
        assert_eq!(swsusp_compressor("PM: Using 3 thread(s) for lzo decompression\n"), None);
        assert_eq!(swsusp_compressor("nothing\n"), None);
        assert_eq!(number_after("x\nA: image_size 414498816\n", marker::IMAGE_SIZE), Some(414498816));
    }

    /// A run that worked, with made-up figures.
    fn fake_run(system: System, mib: u64, rep: u32) -> Run {
        let scale = mib as f64 / 384.0 + f64::from(rep) * 0.01;
        let (h, r, b) = if system.is_kjump() { (2.3, 6.2, 2.1) } else { (2.8, 7.6, 3.0) };
        Run {
            hibernate_s: Some(h * scale),
            resume_s: Some(r * scale),
            back_s: Some(b * scale),
            image_bytes: Some(mib << 19),
            save_mb_s: system.is_kjump().then_some(1400.0),
            load_s: (system == System::Kjump(Kjump::Resident)).then_some(2.3),
            image_size: match system {
                System::Swsusp(s) if s.max_image => Some(1_036_189_696),
                System::Swsusp(_) => Some(414_474_240),
                System::Kjump(_) => None,
            },
            compressor: match system {
                System::Swsusp(s) => Some((s.compressor.to_string(), 1)),
                System::Kjump(_) => None,
            },
            swapped_out_mib: Some(if system.is_kjump() || mib < 768 { 0.0 } else { 210.0 }),
            read_s: Some(1.5),
            reread_s: Some(if system.is_kjump() { 0.3 } else { 1.2 }),
            phases: Phases::default(),
            ok: true,
            note: String::new(),
        }
    }

    #[test]
    fn report_carries_the_new_fields() {
        let systems = systems_from(DEFAULT_SYSTEMS).unwrap();
        let workloads = [128, 384, 768].map(|mib| Workload { mib, warm: false }).into_iter().chain([Workload { mib: 384, warm: true }]);
        let mut results: Vec<(Workload, RunsBySystem)> =
            workloads.map(|w| (w, systems.iter().map(|&s| (s, (0..3).map(|rep| fake_run(s, w.mib, rep)).collect())).collect())).collect();
        for r in &mut results[3].1 {
            r.1.iter_mut().for_each(|r| r.reread_s = r.reread_s.map(|s| s + 0.1));
        }
        let failed = Run { note: "hibernation failed: A: hibernate returned 1 (PM: Not enough free swap)".into(), ..Run::default() };
        results[2].1[4].1[0] = failed;
        let limits = vec![Limits { vmcore: 2300.0, write: 680.0, read: 2900.0 }];
        let f =
            Findings { shape: SMALL, reps: 3, systems, results, limits, kernel: "6.12".into(), qemu: "QEMU".into(), cpu: "cpu".into(), cores: 2, seconds: 1.0 };
        let (md, json) = render(&f);
        if std::env::var_os("BENCH_SHOW").is_some() {
            println!("{md}\n{json}");
        }
        for s in [
            "#### swsusp as it ran",
            "| swsusp-lz4-trimmed-max | `quiet initcall_blacklist=i8042_init acpi=noirq` | lz4 (1) | 988.2 |",
            "`kjump load`",
            "#### Against kjump's targets",
            "Runs that worked: kjump 48/48, swsusp 47/48; at 768 MiB (75 % of RAM) kjump 12/12, swsusp 11/12.",
            "### kjump vs swsusp in 1 GiB of RAM, 2 CPUs (`BENCH_SHAPE=small`)",
            "| hibernate s/GiB | resume s/GiB | swapped out MiB |",
            "| 384 MiB | kjump | 3/3 | 2.3 | 6.3 (6.2–6.3) | 2.1 | 192.0 | 6.2 | 16.7 | 0.0 |",
            "#### Warm after resume",
            "| 384 MiB warm | kjump | 3/3 | 1.50 | 0.40 | – |",
            "| 384 MiB warm | swsusp-lzo | 3/3 | 1.50 | 1.30 | 0.31 |",
            "at 384 MiB warm: kjump 0.40 s, 0.27 × its first read; kjump-entry",
            "#### Runs that failed\n\n- 768 MiB swsusp-lzo, 1 of 3 runs: hibernation failed: A: hibernate returned 1 (PM: Not enough free swap)",
            "Swapped out while hibernating (swap in use in A after its hibernate command returned, less before it hibernated; runs that worked, medians): swsusp-lzo at 768 MiB 210.0 MiB;",
            "Nothing at any workload: kjump, kjump-entry, kjump-resident, kjump-encrypted.",
        ] {
            assert!(md.contains(s), "{s:?} not in\n{md}");
        }
        for s in [
            "\"system\": \"kjump-resident\", \"runs\": 3, \"worked\": 3, \"hibernate_s\": {\"median\"",
            "\"load_s\": {\"median\": 2.300",
            "\"load_s\": null, \"compressor\": \"lz4\", \"compress_threads\": 1, \"image_size_bytes\": 1036189696, \"resume_trimmed\": true",
            "\"machine\": {\"shape\": \"small\", \"qemu\": \"QEMU\", \"accel\": \"tcg\", \"memory_mib\": 1024, \"cpus\": 2, \"disk_mib\": 1200,",
            "\"hibernate_s_per_gib\": 6.195, \"resume_s_per_gib\": 16.699, \"swapped_out_mib\": {\"median\": 0.000, \"min\": 0.000, \"max\": 0.000}, \"page_cache_file_mib\": null, \"read_s\": null, \"reread_s\": null, \"failures\": []",
            "\"page_cache_file_mib\": 256, \"read_s\": {\"median\": 1.500, \"min\": 1.500, \"max\": 1.500}, \"reread_s\": {\"median\": 0.400",
            "\"failures\": [\"hibernation failed: A: hibernate returned 1 (PM: Not enough free swap)\"]",
        ] {
            assert!(json.contains(s), "{s:?} not in\n{json}");
        }
    }

    #[test]
    fn phases_from_consoles() {
        // Lines as the 6.12 consoles print them (bench runs of 2026-12-03).
        let hib = "[    1.558998] Run /init as init process\n\
kjump: hibernating to /dev/vda (then poweroff); hibernation kernel in 0x20000000-0x24000000, checked and loaded in 0.37 s (checks 0.09 s, mailbox page 0.01 s, loading 0.26 s)\n\
[    1.358] kjump-init: mode save (this kernel up after 1.35 s)\n\
[    2.679] kjump-init: summary: ram_pages=245629 zero_pages=35333 free_pages=134218 stored_pages=76078 bytes_on_disk=154607616 seconds=1.3 mb_per_s=774.8\n";
        let res = "[    1.488525] Run /init as init process\n\
[    1.433] kjump-init: mode restore (this kernel up after 1.43 s)\n\
[    3.336] kjump-init: restored 76078 pages of A's memory and zeroed 35333 in 1.8 s (134218 free pages left as they are; writing 2.7 s over 2 workers; waiting for chunks 1.5 s); writing A's low memory last\n";
        let k = Phases::read(System::Kjump(Kjump::Plain), hib, res);
        assert_eq!(k, Phases { hibernate: [Some(0.37), Some(1.35), Some(1.3)], back: [Some(1.488525), Some(1.43), Some(1.8)] });
        let (eh, eb) = Phases::expected(System::Kjump(Kjump::Plain));
        assert!((Phases::rest(Some(3.7), &k.hibernate, &eh).unwrap() - 0.68).abs() < 1e-9);
        assert!(Phases::rest(Some(6.0), &k.back, &eb).is_some());
        // From a boot loader entry there is no C, and a resident B booted before.
        let r = Phases::read(System::Kjump(Kjump::Resident), hib, res);
        assert_eq!((r.hibernate[1], r.back[0]), (None, None));
        let sw = System::Swsusp(Swsusp { compressor: "lzo", trimmed: false, max_image: false });
        let hib = "[   35.411640] PM: hibernation: Allocated 99112 pages for snapshot\n\
[   35.412036] PM: hibernation: Allocated 396448 kbytes in 0.90 seconds (440.49 MB/s)\n\
[   36.800422] PM: hibernation: Wrote 255956 kbytes in 1.32 seconds (193.90 MB/s)\n";
        let res = "[    0.988053] PM: hibernation: resume from hibernation\n\
[    3.187935] PM: hibernation: Read 255956 kbytes in 2.16 seconds (118.49 MB/s)\n";
        let s = Phases::read(sw, hib, res);
        assert_eq!(s, Phases { hibernate: [Some(0.90), None, Some(1.32)], back: [Some(0.988053), None, Some(2.16)] });
        // A quiet resume boot prints none of it: no rest is made up.
        let quiet = Phases::read(sw, hib, "");
        let (_, eb) = Phases::expected(sw);
        assert_eq!(Phases::rest(Some(5.0), &quiet.back, &eb), None);
        let md = phases_md(&[(
            Workload { mib: 384, warm: false },
            vec![(sw, vec![Run { ok: true, hibernate_s: Some(4.3), back_s: Some(4.9), phases: s.clone(), ..Run::default() }])],
        )]);
        assert!(md.contains("| 384 MiB | swsusp-lzo | 4.30 | 0.90 | – | 1.32 | 2.08 | 4.90 | 0.99 | – | 2.16 | 1.75 |"), "{md}");
        let plain = Run { ok: true, hibernate_s: Some(3.7), back_s: Some(6.4), phases: k.clone(), ..Run::default() };
        let md = phases_md(&[(
            Workload { mib: 384, warm: false },
            vec![(System::Kjump(Kjump::Plain), vec![plain]), (sw, vec![Run { ok: true, back_s: Some(4.9), phases: s, ..Run::default() }])],
        )]);
        assert!(md.contains("- 384 MiB: kjump's B boots for 1.35 s of its 3.70 s hibernation; to get back into A, C runs 1.49 s before its first program and D boots for 1.43 s, of 6.40 s. swsusp-lzo boots no kernel"), "{md}");
    }

    #[test]
    fn splice_replaces_only_between_markers() {
        let m = SMALL.readme;
        let readme = format!("top\n{README_BEGIN}\nold\n{README_END}\nbottom\n");
        let once = splice(&readme, m, "### new\n\nrow\n").unwrap();
        assert_eq!(once, format!("top\n{README_BEGIN}\n\n### new\n\nrow\n\n{README_END}\nbottom\n"));
        assert_eq!(splice(&once, m, "### new\n\nrow\n").unwrap(), once);
        assert!(splice("no markers", m, "x").is_err());
        assert!(splice(&format!("{README_END}\n{README_BEGIN}"), m, "x").is_err());
    }

    #[test]
    fn splice_fills_the_second_pair_alone() {
        let (b4, e4) = LARGE.readme;
        let readme = format!("top\n{README_BEGIN}\n\nsmall\n\n{README_END}\nsay\n\n{b4}\n{e4}\nbottom\n");
        let large = splice(&readme, LARGE.readme, "### large\n").unwrap();
        assert_eq!(large, format!("top\n{README_BEGIN}\n\nsmall\n\n{README_END}\nsay\n\n{b4}\n\n### large\n\n{e4}\nbottom\n"));
        // Either pair again changes nothing else.
        assert_eq!(splice(&large, SMALL.readme, "small").unwrap(), large);
        assert_eq!(splice(&large, LARGE.readme, "### large").unwrap(), large);
        // The small pair's markers are not found inside the large ones.
        assert!(splice(&format!("{b4}\n{e4}\n"), SMALL.readme, "x").is_err());
    }
}
