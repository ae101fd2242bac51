//! A: `kjump check`, and the checks every command that jumps runs first.

use crate::kernel::{hibernation_kernel, unload_after_jump};
use crate::keys::refuse_clear_image_of_encrypted_disks;
use crate::settings::Settings;
use kjump::handoff::orders::Orders;
use kjump::host::check as host_check;
use kjump::load::jump;
use kjump::target::in_use;
use kjump::Error;

/// The checks of `kjump check` that every command that jumps runs first:
/// the host's, then the target's driver in the hibernation kernel.
fn check_items(s: &Settings) -> Vec<host_check::Item> {
    let mut items = host_check::run(&host_check::Config { kernel: s.kernel.clone(), initrd: s.initrd.clone(), region_size: s.region_size });
    items.extend(kjump::host::drivers::check_target(&s.kernel, s.target.as_deref()));
    items
}

/// The first check that failed, as the reason this machine cannot hibernate.
fn first_failure(items: &[host_check::Item]) -> Result<(), Error> {
    match items.iter().find(|i| !i.ok) {
        Some(bad) => Err(Error::Msg(format!("this machine cannot hibernate with kjump: {}", bad.text))),
        None => Ok(()),
    }
}

pub(crate) fn run_checks(s: &Settings, quiet: bool) -> Result<(), Error> {
    let items = check_items(s);
    if !quiet {
        println!("kjump check:");
        print!("{}", host_check::report(&items));
    }
    first_failure(&items)
}

/// One of `kjump check`'s notes (not checks: nothing they say stops a
/// hibernation), "ok" or "warn".
fn print_note(ok: bool, text: &str) {
    println!("  {}  {text}", if ok { "ok  " } else { "warn" });
}

/// `kjump check`: its lines as it goes, or (`json`) one object at the end.
pub(crate) fn cmd_check(s: &Settings, live: bool, json: bool) -> Result<(), Error> {
    let mut report = crate::json::Check::default();
    let outcome = check(s, live, json, &mut report);
    if json {
        report.ok = outcome.is_ok();
        report.error = outcome.as_ref().err().map(ToString::to_string);
        crate::json::print(&report)?;
    }
    outcome
}

fn check(s: &Settings, live: bool, json: bool, report: &mut crate::json::Check) -> Result<(), Error> {
    use crate::json::CheckLine;
    let say = |line: &str| {
        if !json {
            println!("{line}");
        }
    };
    let fail = |e: Error| Error::Msg(format!("check: {e}"));
    let items = check_items(s);
    if !json {
        println!("kjump check:");
        print!("{}", host_check::report(&items));
    }
    report.checks.extend(items.iter().map(|i| CheckLine { ok: i.ok, text: i.text.clone() }));
    // Not a check: a stale initramfs does not stop a hibernation, but the
    // next boot would resume with what that initramfs holds.
    report.initramfs = crate::digest::check_lines();
    if !json {
        for l in &report.initramfs {
            print_note(l.current, &l.text);
        }
    }
    // Not a check either: how systemd reaches kjump.
    if let Some((ok, text)) = crate::sleep::systemd_line(s) {
        if !json {
            print_note(ok, &text);
        }
        report.systemd = Some(CheckLine { ok, text });
    }
    // Nor this: without suspend in B, hybrid sleep hibernates instead.
    if let Some(ok) = kjump::host::drivers::can_suspend(&s.kernel) {
        let text = if ok {
            "hybrid sleep: the hibernation kernel can suspend to RAM".to_string()
        } else {
            format!(
                "hybrid sleep: the hibernation kernel cannot suspend to RAM (no CONFIG_SUSPEND in {}): hybrid-sleep and --after suspend power off instead, and the next boot resumes",
                kjump::host::drivers::manifest_path(&s.kernel)
            )
        };
        if !json {
            print_note(ok, &text);
        }
        report.hybrid_sleep = Some(CheckLine { ok, text });
    }
    first_failure(&items).map_err(fail)?;
    if let Err(e) = refuse_clear_image_of_encrypted_disks(s, &in_use::collect()?) {
        report.checks.push(CheckLine { ok: false, text: e.to_string() });
        return Err(fail(e));
    }
    if let kjump::host::config::Encrypt::Tpm2(pcrs) = &s.encrypt {
        match kjump::host::tpm::check() {
            Ok(tpm) => {
                let line = format!("encrypt = tpm2: {tpm}; keys sealed under PCRs sha256:{}", pcrs.list());
                say(&format!("kjump check: {line}"));
                report.checks.push(CheckLine { ok: true, text: line });
            }
            Err(e) => {
                report.checks.push(CheckLine { ok: false, text: e.to_string() });
                return Err(fail(e));
            }
        }
    }
    say("kjump check: this machine can hibernate with kjump");
    if !live {
        return Ok(());
    }
    let _lock = kjump::host::lock::take("check --jump")?;
    let loaded = jump::load_hibernation_kernel(&hibernation_kernel(s, &Orders::Roundtrip.to_string(), None)?)?;
    say(&format!("kjump: loaded the hibernation kernel in {} ({} segments); jumping to it", loaded.region, loaded.segments));
    let away = jump::jump_to_loaded();
    unload_after_jump();
    let away = away?;
    report.round_trip_seconds = Some(away.as_secs_f64());
    say(&format!("kjump: back in A after {:.2} s (round trip A -> B -> A)", away.as_secs_f64()));
    Ok(())
}
