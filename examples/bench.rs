//! `make bench`: kjump against the kernel's own hibernation (swsusp), side
//! by side in one run, on the same QEMU machine (`-accel tcg -m 1024
//! -smp 2`, one 1200 MiB virtio disk as kjump's target or swsusp's swap).
//!
//! For each workload size (A holds a third random, a third repeated text,
//! a third zero pages, with a known hash) and each system, it measures:
//! hibernate time (from the command in A to QEMU exiting), resume time
//! (from QEMU starting to A's workload running again with its hash
//! checked), image size on disk, and whether it worked. It also measures
//! the physical limits in the same VM (`kjump bench-io`). Several
//! repetitions; the median is quoted with the spread. The result goes to
//! stdout as Markdown and to `bench/results.json`.
//!
//! Environment: `BENCH_REPS` (default 3), `BENCH_SIZES` (MiB, comma
//! separated; default 128,384,768), `BENCH_SYSTEMS` (default
//! kjump,kjump-entry,kjump-resident,kjump-encrypted,swsusp-lzo,swsusp-lz4),
//! `BENCH_OUT` (default `bench/results`: the `.json`
//! and `.md` written).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{a_initramfs, entry_files, paths, sparse_disk, Paths, TempDir, Vm, VmConfig};

const MEMORY_MIB: u32 = 1024;
const CPUS: u32 = 2;
const DISK_MIB: u64 = 1200;
const TIMEOUT: Duration = Duration::from_secs(900);
/// The guest kernel's release, as its console says.
static KERNEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[derive(Clone, Copy, Debug, PartialEq)]
enum System {
    /// kjump, resumed the usual way: the system boots (C) and loads D.
    Kjump,
    /// kjump, resumed from its boot loader entry (`kjump boot-entry`): QEMU
    /// starts D directly, as a boot loader would.
    KjumpEntry,
    /// kjump with its hibernation kernel resident (`kjump load` ahead of
    /// the hibernation), resumed from the boot loader entry.
    KjumpResident,
    /// kjump as `Kjump`, with images encrypted (`encrypt = keyfile:…`).
    KjumpEncrypted,
    Swsusp(&'static str),
}

impl System {
    fn name(self) -> String {
        match self {
            System::Kjump => "kjump".into(),
            System::KjumpEntry => "kjump-entry".into(),
            System::KjumpResident => "kjump-resident".into(),
            System::KjumpEncrypted => "kjump-encrypted".into(),
            System::Swsusp(c) => format!("swsusp-{c}"),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "kjump" => Some(System::Kjump),
            "kjump-entry" => Some(System::KjumpEntry),
            "kjump-resident" => Some(System::KjumpResident),
            "kjump-encrypted" => Some(System::KjumpEncrypted),
            "swsusp-lzo" => Some(System::Swsusp("lzo")),
            "swsusp-lz4" => Some(System::Swsusp("lz4")),
            _ => None,
        }
    }

    /// Extra kernel parameters for both boots.
    fn append(self) -> String {
        match self {
            System::Kjump | System::KjumpEntry | System::KjumpResident | System::KjumpEncrypted => String::new(),
            System::Swsusp(c) => format!("resume=/dev/vda hibernate.compressor={c}"),
        }
    }

    fn is_kjump(self) -> bool {
        matches!(self, System::Kjump | System::KjumpEntry | System::KjumpResident | System::KjumpEncrypted)
    }
}

fn script(system: System, mib: u64) -> String {
    let third = mib * 1024 * 1024 / 3 / 4096 * 4096;
    // Both boots have the key file and the setting (on a real machine the
    // key would sit on separate media).
    let setup = match system {
        System::KjumpEncrypted => {
            "mkdir -p /etc && printf 'kjump bench key file 0123456789abcdef0123456789abcdef\\n' > /etc/kjump.key && chmod 600 /etc/kjump.key && echo 'encrypt = keyfile:/etc/kjump.key' > /etc/kjump.conf"
        }
        _ => "",
    };
    let (c_boot, prepare, hibernate) = match system {
        System::Kjump | System::KjumpEncrypted => {
            ("kjump resume --target /dev/vda; echo \"C: no resume (exit $?)\"", "", "kjump hibernate --target /dev/vda; echo \"A: hibernate returned $?\"")
        }
        System::KjumpEntry => (
            "echo \"C: no resume: this run resumes from the boot entry\"",
            "kjump boot-entry --target /dev/vda --output /root/entry > /dev/null && echo \"A: entry cmdline $(cat /root/entry/cmdline)\"; rm -rf /root/entry",
            "kjump hibernate --target /dev/vda; echo \"A: hibernate returned $?\"",
        ),
        System::KjumpResident => (
            "echo \"C: no resume: this run resumes from the boot entry\"",
            "kjump boot-entry --target /dev/vda --output /root/entry > /dev/null && echo \"A: entry cmdline $(cat /root/entry/cmdline)\"; rm -rf /root/entry; kjump load --target /dev/vda > /dev/null || echo \"A: LOAD FAILED\"",
            "kjump hibernate --target /dev/vda; echo \"A: hibernate returned $?\"",
        ),
        System::Swsusp(_) => (
            "echo \"C: no resume: swsusp did not restore A\"",
            "mkswap /dev/vda > /dev/null && swapon /dev/vda && echo shutdown > /sys/power/disk",
            "echo disk > /sys/power/state; echo \"A: hibernate returned $?\"",
        ),
    };
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
{prepare}
echo "A: workload ready $before"
sleep 1
echo "A: hibernating now"
# Let the line leave the serial port: swsusp, starting at once, froze the
# console with it still queued now and then, and the run looked failed.
# It adds 0.1 s to every system's hibernate time alike.
sleep 0.1
{hibernate}
after=$(cat /w/random /w/text /w/zeros | md5sum)
if [ "$before" = "$after" ]; then echo "A: workload intact"; else echo "A: WORKLOAD CHANGED"; fi
poweroff -f
"#
    )
}

/// Each system's runs at one workload size.
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
    ok: bool,
    note: String,
}

fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse().ok())
}

fn one_run(p: &Paths, system: System, mib: u64, rep: u32) -> Run {
    let mut run = Run::default();
    let name = format!("bench-{}-{mib}-{rep}", system.name());
    let dir = TempDir::new(&format!("{name}-disks"));
    let disks = vec![sparse_disk(&dir.0, "disk.img", DISK_MIB)];
    let initrd = a_initramfs(p, &script(system, mib));
    let append = system.append();
    let mut a = Vm::start(
        p,
        VmConfig { name: &name, memory_mib: MEMORY_MIB, cpus: CPUS, initrd: initrd.clone(), append: &append, echo: false, disks: disks.clone(), uuid: None },
    );
    if let Err(e) = a.try_in_order(&["A: workload ready", "A: hibernating now"], TIMEOUT) {
        run.note = format!("A did not get ready: {e}");
        return run;
    }
    if a.log().contains("A: WORKLOAD NOT WRITTEN") {
        run.note = "A could not write the whole workload".into();
        return run;
    }
    if a.log().contains("A: LOAD FAILED") {
        run.note = "kjump load failed".into();
        return run;
    }
    let t0 = Instant::now();
    if !a.try_exit(TIMEOUT) {
        run.note = "hibernation did not power off".into();
        return run;
    }
    let hib = t0.elapsed().as_secs_f64();
    let log = a.log();
    if let Some(l) = log.lines().find(|l| l.contains("A: hibernate returned")) {
        let why = log.lines().rfind(|l| l.contains("PM: ") || l.contains("kjump: ") || l.contains("kjump-init: error")).unwrap_or("");
        run.note = format!("hibernation failed: {} ({})", l.trim(), why.trim());
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
    if system.is_kjump() {
        if let Some(l) = log.lines().find(|l| l.contains("kjump-init: summary:")) {
            run.save_mb_s = field(l, "mb_per_s=");
        }
    }
    drop(a);
    let resume_append = format!("bench_boot=c {append}");
    // The boot loader entry's files, made here from A's command line (the
    // same bytes `kjump boot-entry` wrote in A).
    let entry = if matches!(system, System::KjumpEntry | System::KjumpResident) {
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
    let cfg = VmConfig { name: &format!("{name}-c"), memory_mib: MEMORY_MIB, cpus: CPUS, initrd, append: &resume_append, echo: false, disks, uuid: None };
    let mut c = match entry {
        Some((kernel, cmdline, d_initrd)) => Vm::start_with(&kernel, &cmdline, VmConfig { initrd: d_initrd, ..cfg }),
        None => Vm::start(p, cfg),
    };
    // Timed from QEMU's start (a restart, if the boot hung before any
    // program ran: see harness::BOOT_STALL).
    let back = c.try_in_order(&["A: hibernate returned"], TIMEOUT).map(|_| c.started().elapsed().as_secs_f64());
    match back.and_then(|b| c.try_in_order(&["A: workload intact"], TIMEOUT).map(|_| b)) {
        Ok(b) => {
            run.back_s = Some(b);
            run.resume_s = Some(c.started().elapsed().as_secs_f64());
            run.ok = true;
        }
        Err(e) => {
            let log = c.log();
            let why = log.lines().rfind(|l| l.contains("C: ") || l.contains("WORKLOAD") || l.contains("error")).unwrap_or("").trim().to_string();
            run.note = format!("resume failed: {why} ({e})");
        }
    }
    run
}

/// The physical limits: one `kjump bench-io` in the same VM shape.
#[derive(Clone, Debug, Default)]
struct Limits {
    vmcore: f64,
    write: f64,
    read: f64,
}

fn limits(p: &Paths, rep: u32) -> Option<Limits> {
    let name = format!("bench-limits-{rep}");
    let dir = TempDir::new(&format!("{name}-disks"));
    let disks = vec![sparse_disk(&dir.0, "disk.img", DISK_MIB)];
    let script = "mount -t proc proc /proc\nmount -t sysfs sysfs /sys\nmount -t devtmpfs devtmpfs /dev\nkjump bench-io --target /dev/vda\necho \"A: bench-io exited $?\"\npoweroff -f\n";
    let initrd = a_initramfs(p, script);
    let mut vm = Vm::start(p, VmConfig { name: &name, memory_mib: MEMORY_MIB, cpus: CPUS, initrd, append: "", echo: false, disks, uuid: None });
    let lines = match vm.try_in_order(&["kjump: limits: "], TIMEOUT) {
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
    match v {
        Some((m, lo, hi)) if (hi - lo) / scale > 0.05 => format!("{:.1}{unit} ({:.1}–{:.1})", m / scale, lo / scale, hi / scale),
        Some((m, _, _)) => format!("{:.1}{unit}", m / scale),
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
    let m = |f: fn(&Run) -> Option<f64>| stats(&runs.iter().filter(|r| r.ok).filter_map(f).collect::<Vec<_>>());
    [m(|r| r.hibernate_s), m(|r| r.resume_s), m(|r| r.back_s), m(|r| r.image_bytes.map(|b| b as f64))]
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

fn main() {
    let p = paths();
    let reps: u32 = std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let sizes: Vec<u64> = std::env::var("BENCH_SIZES").unwrap_or_else(|_| "128,384,768".into()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let systems: Vec<System> = std::env::var("BENCH_SYSTEMS")
        .unwrap_or_else(|_| "kjump,kjump-entry,kjump-resident,kjump-encrypted,swsusp-lzo,swsusp-lz4".into())
        .split(',')
        .filter_map(|s| System::parse(s.trim()))
        .collect();
    let started = Instant::now();
    eprintln!("bench: {} sizes x {} systems x {reps} repetitions, one VM at a time", sizes.len(), systems.len());

    let mut lim: Vec<Limits> = Vec::new();
    for rep in 0..reps {
        match limits(&p, rep) {
            Some(l) => {
                eprintln!("bench: limits {rep}: vmcore {:.0} MB/s, disk write {:.0} MB/s, read {:.0} MB/s", l.vmcore, l.write, l.read);
                lim.push(l);
            }
            None => eprintln!("bench: limits {rep}: failed"),
        }
    }
    // results[size][system] = runs
    let mut results: Vec<(u64, RunsBySystem)> = sizes.iter().map(|&s| (s, systems.iter().map(|&y| (y, Vec::new())).collect())).collect();
    // Interleave systems and repetitions so drift in the host hits all alike.
    for rep in 0..reps {
        for (mib, per) in results.iter_mut() {
            for (system, runs) in per.iter_mut() {
                let r = one_run(&p, *system, *mib, rep);
                eprintln!(
                    "bench: {} {mib} MiB #{rep}: {} hibernate {} s, resume {} s, image {} MiB{}",
                    system.name(),
                    if r.ok { "ok" } else { "FAILED" },
                    r.hibernate_s.map_or("-".into(), |v| format!("{v:.1}")),
                    r.resume_s.map_or("-".into(), |v| format!("{v:.1}")),
                    r.image_bytes.map_or("-".into(), |v| format!("{:.1}", v as f64 / 1048576.0)),
                    if r.note.is_empty() { String::new() } else { format!(" ({})", r.note) }
                );
                runs.push(r);
            }
        }
    }

    let kernel = KERNEL.get().cloned().unwrap_or_default();
    let qemu = command_line("qemu-system-x86_64", &["--version"]);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    let lim_v = |f: fn(&Limits) -> f64| stats(&lim.iter().map(f).collect::<Vec<_>>());
    let (vmcore, write, read) = (lim_v(|l| l.vmcore), lim_v(|l| l.write), lim_v(|l| l.read));

    let mut md = String::new();
    let _ = writeln!(md, "## kjump vs swsusp\n");
    let _ = writeln!(md, "QEMU `-accel tcg -m {MEMORY_MIB} -smp {CPUS}`, one {DISK_MIB} MiB virtio disk; {reps} repetitions, median (min–max when they differ by more than 5 %).");
    let _ = writeln!(md, "Kernel {kernel}; {qemu}; host {cpu}, {cores} cores.\n");
    let _ = writeln!(
        md,
        "| workload | system | worked | hibernate s | resume s | back in A s | image MiB | hibernate ratio | resume ratio | back in A ratio | image ratio |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    let mut json_rows = Vec::new();
    // The kjump systems whose ratios get a table (and a JSON field) of their
    // own, besides `kjump`'s in the main table.
    let variants = [
        (System::KjumpEntry, "kjump-entry (resumed from the boot loader entry)"),
        (System::KjumpResident, "kjump-resident (hibernation kernel loaded ahead with `kjump load`; resumed from the boot loader entry)"),
        (System::KjumpEncrypted, "kjump-encrypted (images encrypted and authenticated, `encrypt = keyfile:…`)"),
    ];
    let mut variant_md = vec![String::new(); variants.len()];
    for (mib, per) in &results {
        let of = |system: System| medians(per.iter().find(|(s, _)| *s == system).map(|(_, r)| r.as_slice()).unwrap_or(&[]));
        let kjump = of(System::Kjump);
        let variant_medians: Vec<Option<Medians>> = variants.iter().map(|(v, _)| per.iter().any(|(s, r)| s == v && !r.is_empty()).then(|| of(*v))).collect();
        for (system, runs) in per {
            let m = medians(runs);
            let [h, r, b, i] = m;
            let ok = runs.iter().filter(|r| r.ok).count();
            let notes: Vec<&str> = runs.iter().filter(|r| !r.ok).map(|r| r.note.as_str()).collect();
            let [hr, rr, br, ir] = if system.is_kjump() { ["–".to_string(), "–".into(), "–".into(), "–".into()] } else { ratio_cells(&kjump, &m) };
            if !system.is_kjump() {
                for (table, vm) in variant_md.iter_mut().zip(&variant_medians) {
                    if let Some(vm) = vm {
                        let [a, c, d, e] = ratio_cells(vm, &m);
                        let _ = writeln!(table, "| {mib} MiB | {} | {a} | {c} | {d} | {e} |", system.name());
                    }
                }
            }
            let _ = writeln!(
                md,
                "| {mib} MiB | {} | {ok}/{} | {} | {} | {} | {} | {hr} | {rr} | {br} | {ir} |",
                system.name(),
                runs.len(),
                cell(h, "", 1.0),
                cell(r, "", 1.0),
                cell(b, "", 1.0),
                cell(i, "", 1048576.0)
            );
            let save = stats(&runs.iter().filter(|r| r.ok).filter_map(|r| r.save_mb_s).collect::<Vec<_>>());
            // kjump's ratios over this system (none for a kjump system).
            let json_ratios = |k: Option<&Medians>| {
                let r = match k {
                    Some(k) if !system.is_kjump() => ratios(k, &m),
                    _ => [None; 4],
                };
                format!(
                    "{{\"hibernate\": {}, \"resume\": {}, \"back_in_a\": {}, \"image\": {}}}",
                    json_num(r[0]),
                    json_num(r[1]),
                    json_num(r[2]),
                    json_num(r[3])
                )
            };
            json_rows.push(format!(
                "    {{\"workload_mib\": {mib}, \"system\": {}, \"runs\": {}, \"worked\": {ok}, \"hibernate_s\": {{\"median\": {}, \"min\": {}, \"max\": {}}}, \"resume_s\": {{\"median\": {}, \"min\": {}, \"max\": {}}}, \"back_in_a_s\": {{\"median\": {}, \"min\": {}, \"max\": {}}}, \"image_bytes\": {}, \"save_mb_per_s\": {}, \"kjump_ratio\": {}, \"kjump_entry_ratio\": {}, \"kjump_resident_ratio\": {}, \"kjump_encrypted_ratio\": {}, \"failures\": [{}]}}",
                json_str(&system.name()),
                runs.len(),
                json_num(h.map(|v| v.0)),
                json_num(h.map(|v| v.1)),
                json_num(h.map(|v| v.2)),
                json_num(r.map(|v| v.0)),
                json_num(r.map(|v| v.1)),
                json_num(r.map(|v| v.2)),
                json_num(b.map(|v| v.0)),
                json_num(b.map(|v| v.1)),
                json_num(b.map(|v| v.2)),
                json_num(i.map(|v| v.0)),
                json_num(save.map(|v| v.0)),
                json_ratios(Some(&kjump)),
                json_ratios(variant_medians[0].as_ref()),
                json_ratios(variant_medians[1].as_ref()),
                json_ratios(variant_medians[2].as_ref()),
                notes.iter().map(|n| json_str(n)).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let _ = writeln!(md, "\nRatios are kjump's median over that system's (below 1: kjump is faster or smaller). kjump resumes the usual way (the system boots, then loads the restore kernel); kjump-entry from the boot loader entry `kjump boot-entry` writes, which starts the restore kernel directly; kjump-resident ran `kjump load` before the timer started, hibernates by entering that resident hibernation kernel, and resumes from the boot loader entry. Resume ends when A's workload hash is checked; back in A ends when A's hibernate command returns, before that check (reading the workload back costs both systems the same, except where swsusp swapped the workload out to make room).\n");
    for ((_, title), table) in variants.iter().zip(&variant_md) {
        if !table.is_empty() {
            let _ = writeln!(md, "### {title} against each system\n");
            let _ = writeln!(md, "| workload | system | hibernate ratio | resume ratio | back in A ratio | image ratio |");
            let _ = writeln!(md, "|---|---|---|---|---|---|");
            let _ = writeln!(md, "{table}");
        }
    }
    // What encryption costs kjump: the encrypted runs over the plain ones.
    let mut cost = String::new();
    for (mib, per) in &results {
        let of = |system: System| per.iter().find(|(s, r)| *s == system && !r.is_empty()).map(|(_, r)| medians(r));
        if let (Some(plain), Some(sealed)) = (of(System::Kjump), of(System::KjumpEncrypted)) {
            let [h, r, b, _] = ratios(&sealed, &plain);
            let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:+.0} %", (v - 1.0) * 100.0));
            let _ = writeln!(cost, "| {mib} MiB | {} | {} | {} |", pct(h), pct(r), pct(b));
        }
    }
    if !cost.is_empty() {
        let _ = writeln!(md, "### What encryption costs kjump (kjump-encrypted over kjump, medians)\n");
        let _ = writeln!(md, "| workload | hibernate | resume | back in A |");
        let _ = writeln!(md, "|---|---|---|---|");
        let _ = writeln!(md, "{cost}");
    }
    let _ = writeln!(md, "### Physical limits in the same VM (`kjump bench-io`, in the hibernation kernel)\n");
    let _ = writeln!(md, "| reading /proc/vmcore | raw O_DIRECT write | raw O_DIRECT read |");
    let _ = writeln!(md, "|---|---|---|");
    let _ = writeln!(md, "| {} MB/s | {} MB/s | {} MB/s |\n", cell(vmcore, "", 1.0), cell(write, "", 1.0), cell(read, "", 1.0));
    let mut save_rates = String::new();
    for (mib, per) in &results {
        // The save rate of the first kjump system run (they save alike).
        if let Some((_, runs)) = per.iter().find(|(s, _)| s.is_kjump()) {
            if let Some((m, _, _)) = stats(&runs.iter().filter_map(|r| r.save_mb_s).collect::<Vec<_>>()) {
                let _ = write!(save_rates, "{mib} MiB: {m:.0} MB/s{}; ", write.map_or(String::new(), |w| format!(" ({:.2} x raw write)", m / w.0)));
            }
        }
    }
    let _ = writeln!(md, "kjump's save rate (A's RAM per second, in B): {save_rates}");
    let _ = writeln!(md, "\nTotal benchmark time {:.0} s.", started.elapsed().as_secs_f64());
    print!("{md}");

    let json = format!(
        "{{\n  \"machine\": {{\"qemu\": {}, \"accel\": \"tcg\", \"memory_mib\": {MEMORY_MIB}, \"cpus\": {CPUS}, \"disk_mib\": {DISK_MIB}, \"host_cpu\": {}, \"host_cores\": {cores}, \"kernel\": {}}},\n  \"repetitions\": {reps},\n  \"limits_mb_per_s\": {{\"vmcore_read\": {}, \"disk_write\": {}, \"disk_read\": {}}},\n  \"results\": [\n{}\n  ]\n}}\n",
        json_str(&qemu),
        json_str(&cpu),
        json_str(&kernel),
        json_num(vmcore.map(|v| v.0)),
        json_num(write.map(|v| v.0)),
        json_num(read.map(|v| v.0)),
        json_rows.join(",\n")
    );
    let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| "bench/results".into());
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(format!("{out}.json"), json).unwrap_or_else(|e| panic!("writing {out}.json: {e}"));
    std::fs::write(format!("{out}.md"), md).unwrap_or_else(|e| panic!("writing {out}.md: {e}"));
    eprintln!("bench: wrote {out}.json and {out}.md");
}
