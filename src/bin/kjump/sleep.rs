//! A, under systemd: `kjump sleep` (what systemd-hibernate.service,
//! systemd-suspend-then-hibernate.service and systemd-hybrid-sleep.service
//! run once kjump takes their place), the generator that puts kjump there (`kjump
//! systemd-generator`), and `kjump status` (how the last hibernation went).
//!
//! The integration points are the ones systemd documents: a generator
//! (systemd.generator(7)) writes drop-ins (systemd.unit(5)) that replace
//! the three services' `ExecStart=`, and one that sets logind's
//! `SYSTEMD_BYPASS_HIBERNATION_MEMORY_CHECK` (systemd's ENVIRONMENT.md), so
//! that logind offers hibernation without swap for the kernel's image.
//! logind then does what it does before any sleep (inhibitors,
//! `PrepareForSleep`, sleep.target), and `kjump sleep` what systemd-sleep
//! does (the system-sleep hooks, sleep.conf).

use std::path::Path;

use kjump::handoff::cmdline::After;
use kjump::host::outcome;
use kjump::host::sleep::{self, Operation, SleepConf, Woken};
use kjump::Error;

use crate::hibernate::cmd_hibernate;
use crate::settings::Settings;

/// Runs `f` between the hooks' `pre` and `post`, as one step of `op`
/// (`action`: what this step is, `SYSTEMD_SLEEP_ACTION`).
fn step<T>(hooks: &[std::path::PathBuf], op: Operation, action: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let mut say = |m: String| eprintln!("kjump: {m}");
    sleep::run_hooks(hooks, "pre", op, action, &mut say);
    let result = f();
    sleep::run_hooks(hooks, "post", op, action, &mut say);
    result
}

/// `kjump sleep OPERATION`.
pub(crate) fn cmd_sleep(s: &Settings, op: Operation) -> Result<(), Error> {
    let conf = SleepConf::read()?;
    let (allowed, key) = conf.allows(op);
    if !allowed {
        return Err(Error::Msg(format!("sleep: {op} is disabled by {key}=no in systemd's sleep.conf")));
    }
    if s.target.is_none() {
        return Err(Error::Msg(format!("sleep: no target set: kjump cannot {op}; set target= in /etc/kjump.conf (see kjump.conf(5))")));
    }
    let dirs: Vec<&Path> = sleep::HOOK_DIRS.iter().map(Path::new).collect();
    let hooks = sleep::hooks(&dirs);
    match op {
        Operation::Hibernate => step(&hooks, op, "hibernate", || cmd_hibernate(s)),
        // The image is saved, then B suspends to RAM: woken, A runs on and
        // the image is consumed; with the power lost, the next boot resumes.
        Operation::HybridSleep => step(&hooks, op, "hybrid-sleep", || cmd_hibernate(&Settings { after: After::Suspend, ..s.clone() })),
        Operation::SuspendThenHibernate => {
            let delay = conf.hibernate_delay;
            println!("kjump: suspending; hibernating with kjump if still asleep in {}", humantime::format_duration(delay));
            match step(&hooks, op, "suspend", || sleep::suspend(&conf.suspend_state, Some(delay)))? {
                Woken::Early => {
                    println!("kjump: woken before the alarm: not hibernating");
                    return Ok(());
                }
                Woken::ByAlarm => println!("kjump: the wake alarm rang after {}: hibernating", humantime::format_duration(delay)),
            }
            if let Err(e) = step(&hooks, op, "hibernate", || cmd_hibernate(s)) {
                // As systemd does: the machine sleeps on, in RAM, rather
                // than stay up with nobody there.
                eprintln!("kjump: {e}; suspending again instead");
                step(&hooks, op, "suspend-after-failed-hibernate", || sleep::suspend(&conf.suspend_state, None))?;
            }
            Ok(())
        }
    }
}

/// The drop-in of kjump's generator, by unit, for the kjump at `exe`.
pub(crate) fn drop_ins(exe: &Path) -> Vec<(&'static str, String)> {
    let head = "# Written by kjump's generator (kjump(8), SYSTEMD) because kjump.conf sets a\n\
                # target. To keep systemd's own hibernation, mask the generator:\n\
                #   ln -s /dev/null /etc/systemd/system-generators/kjump-generator\n";
    let exec = |op: Operation| format!("{head}[Service]\nExecStart=\nExecStart={} sleep {}\n", exe.display(), op.name());
    let mut d: Vec<(&'static str, String)> = Operation::ALL.iter().map(|&op| (op.unit(), exec(op))).collect();
    d.push((
        "systemd-logind.service",
        format!("{head}# logind offers hibernation only with swap for the kernel's image, unless told:\n[Service]\nEnvironment=SYSTEMD_BYPASS_HIBERNATION_MEMORY_CHECK=1\n"),
    ));
    d
}

/// The drop-ins' file name in each unit's `.d` directory.
pub(crate) const DROP_IN_NAME: &str = "50-kjump.conf";

/// `kjump systemd-generator DIR`: writes the drop-ins into `dir` when
/// the settings set a target; otherwise writes nothing (systemd's own
/// hibernation stays). Never fails the boot: a problem is said and
/// nothing is written.
pub(crate) fn cmd_generator(settings: Result<Settings, String>, dir: &Path) -> Result<(), Error> {
    let s = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kjump-generator: {e}; systemctl hibernate keeps systemd's own hibernation");
            return Ok(());
        }
    };
    if s.target.is_none() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("finding kjump's own path", e))?;
    for (unit, text) in drop_ins(&exe) {
        let d = dir.join(format!("{unit}.d"));
        std::fs::create_dir_all(&d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        let f = d.join(DROP_IN_NAME);
        std::fs::write(&f, text).map_err(|e| Error::io(format!("writing {}", f.display()), e))?;
    }
    Ok(())
}

/// What `kjump check` says about systemd (`None`: systemd is not running,
/// or no target is set, so the generator has nothing to do): whether
/// `systemctl hibernate` reaches kjump now, and what to do if not.
pub(crate) fn systemd_line(s: &Settings) -> Option<(bool, String)> {
    if !Path::new("/run/systemd/system").exists() || s.target.is_none() {
        return None;
    }
    let masked = std::fs::read_link("/etc/systemd/system-generators/kjump-generator").is_ok_and(|t| t == Path::new("/dev/null"));
    if masked {
        return Some((true, "systemd: kjump's generator is masked: systemctl hibernate keeps systemd's own hibernation".into()));
    }
    let written = Path::new("/run/systemd/generator").join(format!("{}.d", Operation::Hibernate.unit())).join(DROP_IN_NAME).exists();
    if !written {
        return Some((
            false,
            "systemd: systemctl hibernate does not use kjump yet: run 'systemctl daemon-reload' and 'systemctl restart systemd-logind' (or reboot)".into(),
        ));
    }
    if !logind_has_bypass() {
        return Some((
            false,
            "systemd: logind started before kjump's drop-in and may refuse hibernation without swap: 'systemctl restart systemd-logind' (or reboot)".into(),
        ));
    }
    Some((true, "systemd: systemctl hibernate, suspend-then-hibernate and hybrid-sleep use kjump".into()))
}

/// Whether a running systemd-logind has kjump's environment.
fn logind_has_bypass() -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else { return false };
    procs.flatten().any(|p| {
        let dir = p.path();
        std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "systemd-logind")
            && std::fs::read(dir.join("environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == b"SYSTEMD_BYPASS_HIBERNATION_MEMORY_CHECK=1"))
    })
}

/// `kjump status`: the last hibernation's outcome, as A recorded it.
pub(crate) fn cmd_status() -> Result<(), Error> {
    match outcome::read_at(Path::new(outcome::RECORD))? {
        Some(o) => print!("{}", o.describe()),
        None => println!("kjump: no hibernation recorded yet ({} is written when A comes back from one)", outcome::RECORD),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_ins_replace_exec_start_and_bypass_the_swap_check() {
        let d = drop_ins(Path::new("/usr/sbin/kjump"));
        let units: Vec<&str> = d.iter().map(|(u, _)| *u).collect();
        assert_eq!(units, ["systemd-hibernate.service", "systemd-suspend-then-hibernate.service", "systemd-hybrid-sleep.service", "systemd-logind.service"]);
        // ExecStart= first empties systemd-sleep's command, then sets kjump's.
        assert!(d[0].1.contains("[Service]\nExecStart=\nExecStart=/usr/sbin/kjump sleep hibernate\n"), "{}", d[0].1);
        assert!(d[1].1.contains("ExecStart=\nExecStart=/usr/sbin/kjump sleep suspend-then-hibernate\n"), "{}", d[1].1);
        assert!(d[2].1.contains("ExecStart=\nExecStart=/usr/sbin/kjump sleep hybrid-sleep\n"), "{}", d[2].1);
        assert!(d[3].1.contains("[Service]\nEnvironment=SYSTEMD_BYPASS_HIBERNATION_MEMORY_CHECK=1\n"));
        for (_, text) in &d {
            assert!(text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).all(|l| l == "[Service]" || l.contains('=')), "{text}");
        }
    }
}
