//! A: what systemd's sleep units do around a hibernation, for when kjump
//! takes their place (`kjump sleep`): the `system-sleep` hooks, the
//! `[Sleep]` settings of `sleep.conf`, and a suspend to RAM with a wake
//! alarm for suspend-then-hibernate. The behaviour follows
//! systemd-suspend.service(8) and systemd-sleep.conf(5).

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::Error;

/// What `systemctl` asked for, as systemd names it to the hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `systemctl hibernate`.
    Hibernate,
    /// `systemctl suspend-then-hibernate`.
    SuspendThenHibernate,
    /// `systemctl hybrid-sleep`: hibernate, but suspend to RAM instead of
    /// powering off (kjump: `--after suspend`).
    HybridSleep,
}

impl Operation {
    /// systemd's name of the operation (the hooks' second argument).
    pub fn name(self) -> &'static str {
        match self {
            Operation::Hibernate => "hibernate",
            Operation::SuspendThenHibernate => "suspend-then-hibernate",
            Operation::HybridSleep => "hybrid-sleep",
        }
    }

    /// The systemd service that carries the operation out.
    pub fn unit(self) -> &'static str {
        match self {
            Operation::Hibernate => "systemd-hibernate.service",
            Operation::SuspendThenHibernate => "systemd-suspend-then-hibernate.service",
            Operation::HybridSleep => "systemd-hybrid-sleep.service",
        }
    }

    /// Every operation kjump takes over from systemd.
    pub const ALL: [Operation; 3] = [Operation::Hibernate, Operation::SuspendThenHibernate, Operation::HybridSleep];

    /// The operation called `name`.
    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.name() == name)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where systemd looks for sleep hooks (one directory on a merged-/usr
/// system; a hook in both is run once, from the first).
pub const HOOK_DIRS: [&str; 2] = ["/usr/lib/systemd/system-sleep", "/lib/systemd/system-sleep"];

/// How long systemd lets the hooks run before it stops waiting for them.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(90);

/// The hooks in `dirs`: executable files (not masked to /dev/null), each
/// name once, in name order (systemd runs them in parallel anyway).
pub fn hooks(dirs: &[&Path]) -> Vec<PathBuf> {
    by_name(dirs, |path| {
        let masked = std::fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null"));
        let executable = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        executable && !masked
    })
}

/// The files of `dirs` that `keep` accepts, each name once (from the
/// first directory that has it, as systemd's directory lists go), in name
/// order.
fn by_name(dirs: &[&Path], keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found: Vec<(std::ffi::OsString, PathBuf)> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name();
            if !found.iter().any(|(n, _)| *n == name) && keep(&e.path()) {
                found.push((name, e.path()));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// Runs every hook with `phase` ("pre" or "post") and the operation's
/// name, and `SYSTEMD_SLEEP_ACTION=action`, all at once, as systemd
/// does; waits for them (at most [`HOOK_TIMEOUT`], then kills what is
/// left). A hook that fails is reported through `say`, never fatal.
pub fn run_hooks(hooks: &[PathBuf], phase: &str, op: Operation, action: &str, say: &mut dyn FnMut(String)) {
    let mut running: Vec<(&PathBuf, Child)> = Vec::new();
    for h in hooks {
        match Command::new(h).args([phase, op.name()]).env("SYSTEMD_SLEEP_ACTION", action).spawn() {
            Ok(c) => running.push((h, c)),
            Err(e) => say(format!("sleep hook {}: not started: {e}", h.display())),
        }
    }
    let deadline = Instant::now() + HOOK_TIMEOUT;
    while !running.is_empty() {
        running.retain_mut(|(h, c)| match c.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    say(format!("sleep hook {} {phase} {op}: {status}", h.display()));
                }
                false
            }
            Ok(None) if Instant::now() < deadline => true,
            Ok(None) => {
                say(format!("sleep hook {} {phase} {op}: still running after {} s; killed", h.display(), HOOK_TIMEOUT.as_secs()));
                let _ = c.kill();
                let _ = c.wait();
                false
            }
            Err(e) => {
                say(format!("sleep hook {}: {e}", h.display()));
                false
            }
        });
        if !running.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The `[Sleep]` settings kjump follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SleepConf {
    /// `AllowSuspend=`, when set (default yes).
    pub allow_suspend: Option<bool>,
    /// `AllowHibernation=`, when set (default yes).
    pub allow_hibernation: Option<bool>,
    /// `AllowSuspendThenHibernate=`, when set (default: both of the above).
    pub allow_suspend_then_hibernate: Option<bool>,
    /// `AllowHybridSleep=`, when set (default: both of the above).
    pub allow_hybrid_sleep: Option<bool>,
    /// `SuspendState=`: what to write to /sys/power/state to suspend, the
    /// first the kernel offers (default `mem standby freeze`).
    pub suspend_state: Vec<String>,
    /// `HibernateDelaySec=`: how long suspend-then-hibernate stays
    /// suspended before it hibernates. Unset, systemd estimates it from
    /// the battery, or takes 2 hours without one; kjump always takes 2 hours.
    pub hibernate_delay: Duration,
}

/// suspend-then-hibernate's delay when `HibernateDelaySec=` is not set.
pub const DEFAULT_HIBERNATE_DELAY: Duration = Duration::from_secs(2 * 3600);

impl Default for SleepConf {
    fn default() -> Self {
        SleepConf {
            allow_suspend: None,
            allow_hibernation: None,
            allow_suspend_then_hibernate: None,
            allow_hybrid_sleep: None,
            suspend_state: ["mem", "standby", "freeze"].map(String::from).to_vec(),
            hibernate_delay: DEFAULT_HIBERNATE_DELAY,
        }
    }
}

/// Where systemd reads its sleep settings: the main file, then the
/// drop-ins of these directories (by file name, a later directory's file
/// of the same name hidden by an earlier one), in name order.
pub const CONF_FILE: &str = "/etc/systemd/sleep.conf";
/// The drop-in directories, most important first.
pub const CONF_DIRS: [&str; 4] =
    ["/etc/systemd/sleep.conf.d", "/run/systemd/sleep.conf.d", "/usr/local/lib/systemd/sleep.conf.d", "/usr/lib/systemd/sleep.conf.d"];

impl SleepConf {
    /// Whether sleep.conf allows `op`, and the key that says so: as
    /// systemd reads it, suspend-then-hibernate and hybrid-sleep are
    /// allowed, unless set, when both suspend and hibernation are.
    pub fn allows(&self, op: Operation) -> (bool, &'static str) {
        let both = self.allow_suspend != Some(false) && self.allow_hibernation != Some(false);
        match op {
            Operation::Hibernate => (self.allow_hibernation != Some(false), "AllowHibernation"),
            Operation::SuspendThenHibernate => (self.allow_suspend_then_hibernate.unwrap_or(both), "AllowSuspendThenHibernate"),
            Operation::HybridSleep => (self.allow_hybrid_sleep.unwrap_or(both), "AllowHybridSleep"),
        }
    }

    /// The settings from the files systemd reads (missing files are fine).
    pub fn read() -> Result<SleepConf, Error> {
        let dirs: Vec<&Path> = CONF_DIRS.iter().map(Path::new).collect();
        Self::read_from(Path::new(CONF_FILE), &dirs)
    }

    /// The settings from `file` and the drop-ins of `dirs`.
    pub fn read_from(file: &Path, dirs: &[&Path]) -> Result<SleepConf, Error> {
        let drop_ins = by_name(dirs, |path| path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".conf")));
        let mut conf = SleepConf::default();
        for path in std::iter::once(file.to_path_buf()).chain(drop_ins) {
            match std::fs::read_to_string(&path) {
                Ok(text) => conf.apply(&text).map_err(|e| Error::Msg(format!("{}: {e}", path.display())))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
            }
        }
        Ok(conf)
    }

    /// Applies one file's `[Sleep]` section over these settings. Keys
    /// kjump does not use are left to systemd; a value it cannot read is
    /// an error (line number and what is wrong).
    pub fn apply(&mut self, text: &str) -> Result<(), String> {
        let mut in_sleep = false;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                in_sleep = line == "[Sleep]";
                continue;
            }
            if !in_sleep {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else { return Err(format!("line {}: not KEY=VALUE: {line:?}", n + 1)) };
            let (key, value) = (key.trim(), value.trim());
            let bad = |what: &str| format!("line {}: {key}={value:?}: {what}", n + 1);
            // yes or no; empty: back to unset.
            let tristate = || if value.is_empty() { Ok(None) } else { parse_bool(value).map(Some).ok_or_else(|| bad("not yes or no")) };
            match key {
                "AllowSuspend" => self.allow_suspend = tristate()?,
                "AllowHibernation" => self.allow_hibernation = tristate()?,
                "AllowSuspendThenHibernate" => self.allow_suspend_then_hibernate = tristate()?,
                "AllowHybridSleep" => self.allow_hybrid_sleep = tristate()?,
                "SuspendState" => {
                    self.suspend_state =
                        if value.is_empty() { SleepConf::default().suspend_state } else { value.split_whitespace().map(String::from).collect() }
                }
                "HibernateDelaySec" => {
                    self.hibernate_delay = if value.is_empty() {
                        DEFAULT_HIBERNATE_DELAY
                    } else {
                        parse_timespan(value).ok_or_else(|| bad("not a time span (e.g. 2h, 30min, 90s)"))?
                    };
                    if self.hibernate_delay.is_zero() {
                        return Err(bad("must be more than 0"));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// systemd's booleans.
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// A systemd time span (systemd.time(7)): numbers with units, summed, as
/// `2h`, `1h 30min`, `90s`, `1d`; a plain number is seconds.
pub fn parse_timespan(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let seconds = match unit {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "ms" | "msec" => 1e-3,
            "us" | "usec" => 1e-6,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 604_800.0,
            _ => return None,
        };
        let part = number * seconds;
        if !part.is_finite() || part > 1e12 {
            return None;
        }
        total = total.checked_add(Duration::from_secs_f64(part))?;
    }
    Some(total)
}

/// The first of `wanted` that `/sys/power/state` (its text `offered`) lists.
pub fn pick_state<'a>(wanted: &'a [String], offered: &str) -> Option<&'a str> {
    let offered: Vec<&str> = offered.split_whitespace().collect();
    wanted.iter().map(String::as_str).find(|w| offered.contains(w))
}

/// How a suspend with a wake alarm ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// The alarm rang (or was due): time to hibernate.
    ByAlarm,
    /// Something else woke the machine first (a key, the lid), or there
    /// was no alarm: stay up.
    Early,
}

/// Within this much of the alarm, a wake counts as the alarm's, as in systemd.
const ALARM_ACCURACY: Duration = Duration::from_secs(5);

/// Suspends to RAM (the first of `states` the kernel offers); with
/// `alarm`, the machine wakes that long from now at the latest, on the
/// clock that counts suspended time (`CLOCK_BOOTTIME_ALARM`: the kernel
/// sets the RTC to wake it). Returns when the machine is up again, and
/// whether the alarm woke it.
pub fn suspend(states: &[String], alarm: Option<Duration>) -> Result<Woken, Error> {
    use rustix::time::{timerfd_create, timerfd_gettime, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
    let offered = std::fs::read_to_string("/sys/power/state").map_err(|e| Error::io("reading /sys/power/state", e))?;
    let state = pick_state(states, &offered)
        .ok_or_else(|| Error::Msg(format!("this kernel cannot suspend to any of SuspendState={} (it offers: {})", states.join(" "), offered.trim())))?;
    let timer = match alarm {
        None => None,
        Some(delay) => {
            let timer = timerfd_create(TimerfdClockId::BoottimeAlarm, TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK)
                .map_err(|e| Error::sys("creating a wake alarm (CLOCK_BOOTTIME_ALARM: the kernel needs a real-time clock that can wake the machine)", e))?;
            let ts = |d: Duration| Timespec { tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX), tv_nsec: d.subsec_nanos().into() };
            let spec = Itimerspec { it_interval: ts(Duration::ZERO), it_value: ts(delay.max(Duration::from_secs(1))) };
            timerfd_settime(&timer, TimerfdTimerFlags::empty(), &spec).map_err(|e| Error::sys("setting the wake alarm", e))?;
            Some(timer)
        }
    };
    std::fs::write("/sys/power/state", state).map_err(|e| Error::io(format!("suspending (writing {state} to /sys/power/state)"), e))?;
    let Some(timer) = timer else { return Ok(Woken::Early) };
    let left = timerfd_gettime(&timer).map_err(|e| Error::sys("reading the wake alarm", e))?.it_value;
    let left = Duration::new(u64::try_from(left.tv_sec).unwrap_or(0), u32::try_from(left.tv_nsec).unwrap_or(0).min(999_999_999));
    Ok(if left <= ALARM_ACCURACY { Woken::ByAlarm } else { Woken::Early })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_by_name() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.name()), Some(op));
        }
        for bad in ["", "suspend", "hybrid", "Hibernate", "hibernate "] {
            assert_eq!(Operation::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn time_spans_as_systemd_writes_them() {
        let s = Duration::from_secs;
        for (text, want) in [
            ("90", s(90)),
            ("2h", s(7200)),
            ("1h 30min", s(5400)),
            ("1h30min", s(5400)),
            ("45s", s(45)),
            ("1d", s(86400)),
            ("1.5h", s(5400)),
            ("500ms", Duration::from_millis(500)),
        ] {
            assert_eq!(parse_timespan(text), Some(want), "{text:?}");
        }
        for bad in ["", " ", "h", "2 fortnights", "-5s", "1e400s", "99999999999999999999d", "2h x", "..s"] {
            assert_eq!(parse_timespan(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sleep_conf_sections_and_values() {
        let mut c = SleepConf::default();
        c.apply("[Login]\nHibernateDelaySec=5\n[Sleep]\n# comment\nHibernateDelaySec=20s\nAllowHibernation=no\nSuspendState=freeze\nHibernateMode=shutdown\n")
            .unwrap();
        assert_eq!(c.hibernate_delay, Duration::from_secs(20));
        assert_eq!(c.allows(Operation::Hibernate), (false, "AllowHibernation"));
        // Unset, they follow suspend and hibernation, as systemd has it.
        assert!(!c.allows(Operation::SuspendThenHibernate).0 && !c.allows(Operation::HybridSleep).0);
        c.apply("[Sleep]\nAllowHybridSleep=yes\n").unwrap();
        assert!(c.allows(Operation::HybridSleep).0 && !c.allows(Operation::SuspendThenHibernate).0);
        c.apply("[Sleep]\nAllowHybridSleep=no\nAllowHibernation=yes\nAllowSuspend=no\n").unwrap();
        assert!(c.allows(Operation::Hibernate).0 && !c.allows(Operation::HybridSleep).0 && !c.allows(Operation::SuspendThenHibernate).0);
        c.apply("[Sleep]\nAllowHybridSleep=\nAllowSuspend=\n").unwrap();
        assert!(c.allows(Operation::HybridSleep).0 && c.allow_hybrid_sleep.is_none());
        let mut c = SleepConf::default();
        assert!(Operation::ALL.iter().all(|&op| c.allows(op).0));
        c.apply("[Sleep]\nHibernateDelaySec=20s\nAllowHibernation=no\nSuspendState=freeze\n").unwrap();
        assert_eq!(c.suspend_state, ["freeze"]);
        // An empty value puts the default back, as systemd does.
        c.apply("[Sleep]\nHibernateDelaySec=\nSuspendState=\n").unwrap();
        assert_eq!(c, SleepConf { allow_hibernation: Some(false), ..SleepConf::default() });
        for bad in ["[Sleep]\nHibernateDelaySec=soon\n", "[Sleep]\nHibernateDelaySec=0\n", "[Sleep]\nAllowHibernation=maybe\n", "[Sleep]\njunk\n"] {
            let e = SleepConf::default().apply(bad).unwrap_err();
            assert!(e.starts_with("line "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn drop_ins_override_the_main_file_in_name_order() {
        let dir = std::env::temp_dir().join(format!("kjump-sleepconf-{}", std::process::id()));
        let (etc, usr) = (dir.join("etc"), dir.join("usr"));
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&usr).unwrap();
        std::fs::write(dir.join("sleep.conf"), "[Sleep]\nHibernateDelaySec=1h\nAllowSuspendThenHibernate=no\n").unwrap();
        std::fs::write(usr.join("10-a.conf"), "[Sleep]\nHibernateDelaySec=10min\n").unwrap();
        std::fs::write(usr.join("20-b.conf"), "[Sleep]\nHibernateDelaySec=99min\n").unwrap();
        // The same name in an earlier directory hides the later one.
        std::fs::write(etc.join("20-b.conf"), "[Sleep]\nHibernateDelaySec=30s\n").unwrap();
        std::fs::write(etc.join("README"), "not a drop-in\n").unwrap();
        let c = SleepConf::read_from(&dir.join("sleep.conf"), &[&etc, &usr, &dir.join("missing")]).unwrap();
        assert_eq!(c.hibernate_delay, Duration::from_secs(30));
        assert!(!c.allows(Operation::SuspendThenHibernate).0);
        std::fs::write(usr.join("30-bad.conf"), "[Sleep]\nAllowHibernation=perhaps\n").unwrap();
        let e = SleepConf::read_from(&dir.join("sleep.conf"), &[&etc, &usr]).unwrap_err().to_string();
        assert!(e.contains("30-bad.conf") && e.contains("line 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn suspend_state_is_the_first_offered() {
        let want: Vec<String> = ["mem", "standby", "freeze"].map(String::from).to_vec();
        assert_eq!(pick_state(&want, "freeze mem disk\n"), Some("mem"));
        assert_eq!(pick_state(&want, "freeze disk"), Some("freeze"));
        assert_eq!(pick_state(&want, "disk"), None);
        assert_eq!(pick_state(&want, ""), None);
    }

    #[test]
    fn hooks_run_in_parallel_with_systemds_arguments() {
        let dir = std::env::temp_dir().join(format!("kjump-hooks-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let out = dir.join("out");
        let script = |name: &str, body: &str| format!("#!/bin/sh\necho \"{name} $1 $2 $SYSTEMD_SLEEP_ACTION\" >> {}\n{body}\n", out.display());
        for (d, name, body) in [(&a, "10-one", ""), (&a, "20-fails", "exit 3"), (&b, "10-one", "echo shadowed"), (&b, "30-two", "")] {
            let p = d.join(name);
            std::fs::write(&p, script(name, body)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(a.join("40-not-executable"), "#!/bin/sh\nexit 0\n").unwrap();
        std::os::unix::fs::symlink("/dev/null", a.join("50-masked")).unwrap();
        let found = hooks(&[&a, &b, &dir.join("missing")]);
        assert_eq!(found, vec![a.join("10-one"), a.join("20-fails"), b.join("30-two")]);
        let mut said = Vec::new();
        run_hooks(&found, "pre", Operation::SuspendThenHibernate, "suspend", &mut |m| said.push(m));
        let mut lines: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().map(String::from).collect();
        lines.sort();
        assert_eq!(
            lines,
            ["10-one pre suspend-then-hibernate suspend", "20-fails pre suspend-then-hibernate suspend", "30-two pre suspend-then-hibernate suspend"]
        );
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("20-fails") && said[0].contains("3"), "{said:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
