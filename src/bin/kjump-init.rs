//! `kjump-init`: PID 1 of the hibernation kernel (B) and the restore
//! kernel (D). It reads its orders from `/proc/cmdline` (see
//! `kjump::handoff::cmdline`), does them, and ends by jumping back to A or by
//! powering off. It never exits.

#![forbid(unsafe_code)]

use std::convert::Infallible;

use std::time::Duration;

use kjump::handoff::cmdline::{self, After, Mode, Params};
use kjump::handoff::mailbox::{self, Report};
use kjump::handoff::orders::{self, Orders};
use kjump::image::State;
use kjump::init::pid1;
use kjump::load::jump;
use kjump::range::PhysRange;
use kjump::restore::{self, Failure};
use kjump::sys::devmem::DevMem;
use kjump::{save, say, target, Error};

fn main() {
    pid1::ensure_console();
    std::panic::set_hook(Box::new(|info| {
        // A second panic while handling the first: no more rescue.
        static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if PANICKED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            pid1::fatal(&format_args!("internal error while stopping: {info}"));
        }
        stop_after_failure(&Error::Msg(format!("internal error: {info}")))
    }));
    match run() {
        Ok(never) => match never {},
        Err(e) => stop_after_failure(&e),
    }
}

/// Where B or D goes after a failure that its mode did not handle (an
/// error passed up, a refused command line, a panic): B goes back to A
/// with the reason while its image is uncommitted (A loses nothing),
/// D reboots into a normal boot; powering off only when neither can be
/// done. Never returns.
fn stop_after_failure(e: &dyn std::fmt::Display) -> ! {
    say!("error: {e}");
    let line = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let p = cmdline::parse_lenient(&line);
    if p.mode == Some(Mode::Restore) {
        say!("not resuming: rebooting into a normal boot");
        pid1::reboot();
    }
    let committed = save::COMMIT_STARTED.load(std::sync::atomic::Ordering::SeqCst);
    if committed && p.after != Some(After::Resume) {
        say!("the image may be committed: not going back to A; powering off");
        pid1::power_off();
    }
    let back = (|| -> Result<Infallible, Error> {
        let jb = jump_back_params(&p)?;
        let mem = DevMem::open()?;
        if let Some(addr) = p.mailbox {
            if let Err(e2) = mailbox::post(&mem, addr, &Report { ok: false, text: e.to_string() }) {
                say!("could not leave a report for A: {e2}");
            }
        }
        say!("going back to A, nothing is lost");
        back_to_a(&mem, &jb, p.resident)
    })();
    match back {
        Ok(never) => match never {},
        Err(e2) => pid1::fatal(&format_args!("cannot go back to A ({e2})")),
    }
}

fn run() -> Result<Infallible, Error> {
    pid1::mount_basics()?;
    let line = std::fs::read_to_string("/proc/cmdline").map_err(|e| Error::io("reading /proc/cmdline", e))?;
    let params = cmdline::parse(&line)?;
    match Orders::from_params(&params)? {
        Orders::Roundtrip => roundtrip(&params),
        Orders::Save(o) => save_mode(&params, &o),
        Orders::Restore(o) => restore_mode(&params, &o),
        Orders::Bench(o) => bench_mode(&params, &o),
    }
}

/// How long this kernel has been up, from `/proc/uptime` ("2.31 s"), for
/// the console: the boot is part of every hibernate and resume.
fn uptime() -> String {
    uptime_secs().map(|s| format!("{s:.2} s")).unwrap_or_else(|| "an unknown time".into())
}

/// Seconds since this kernel started, from `/proc/uptime`.
fn uptime_secs() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()
}

/// Where A is to be re-entered, from the purgatory's additions.
struct JumpBack {
    entry: u64,
    backup: u64,
    backup_size: u64,
}

fn jump_back_params(p: &Params<'_>) -> Result<JumpBack, Error> {
    let entry = p.jump_back_entry.ok_or_else(|| Error::Msg("no kexec_jump_back_entry= on the command line: A's purgatory did not run".into()))?;
    let backup = p.backup_addr.ok_or_else(|| Error::Msg("no kexec_backup= on the command line".into()))?;
    let backup_size = p.backup_size.ok_or_else(|| Error::Msg("no kjump.backup_size= on the command line".into()))?;
    Ok(JumpBack { entry, backup, backup_size })
}

/// Whether this kernel's map covers A's re-entry page, as `kjump load`
/// arranges (A's RAM listed as ACPI tables): only then can B jump back
/// through a segment of its own (`jump::load_jump_back_via`).
fn reentry_mapped(jb: &JumpBack) -> bool {
    std::fs::read_to_string("/proc/iomem")
        .ok()
        .and_then(|t| kjump::load::memmap::MemoryMap::parse_iomem(&t).ok())
        .is_some_and(|m| m.ranges().iter().any(|r| r.kind == kjump::load::e820::Kind::Acpi && r.start <= jb.entry && jb.entry < r.end))
}

/// Writes A's low memory back and jumps to A. Returns only on failure.
fn back_to_a(mem: &DevMem, jb: &JumpBack, resident: bool) -> Result<Infallible, Error> {
    if resident && reentry_mapped(jb) {
        jump::load_jump_back_via(mem, jb.entry, jb.backup)?;
    } else {
        jump::load_jump_back(mem, jb.entry)?;
    }
    jump::restore_low_memory(mem, jb.backup, jb.backup_size)?;
    say!("restored A's low memory; jumping back to A");
    jump::jump_to_loaded()?;
    Err(Error::Msg("the jump back to A returned to B".into()))
}

/// Resident B: goes back to A parked (see `kjump::handoff::resident`) and returns
/// when A enters B again.
fn wait_in_a(mem: &DevMem, jb: &JumpBack) -> Result<(), Error> {
    jump::load_jump_back_via(mem, jb.entry, jb.backup)?;
    let parked = kjump::handoff::resident::park(mem, jb.backup_size)?;
    jump::restore_low_memory(mem, jb.backup, jb.backup_size)?;
    say!("ready; going back to A until it enters this kernel again");
    jump::jump_to_loaded()?;
    kjump::handoff::resident::unpark(mem, jb.backup, parked)?;
    say!("entered again by A (this kernel up for {})", uptime());
    Ok(())
}

/// `kjump check --jump`: show what B got from A, then go straight back.
fn roundtrip(p: &Params<'_>) -> Result<Infallible, Error> {
    say!("mode roundtrip");
    let jb = jump_back_params(p)?;
    say!("jump-back entry {:#x} (page frame {})", jb.entry, jb.entry >> 12);
    say!("A's low memory backup at {:#x}, {} KiB", jb.backup, jb.backup_size / 1024);
    let vmcore = rustix::fs::stat("/proc/vmcore").map_err(|e| Error::sys("looking for /proc/vmcore", e))?;
    say!("/proc/vmcore is {} bytes ({} MiB of A's memory)", vmcore.st_size, vmcore.st_size >> 20);
    let mem = DevMem::open()?;
    back_to_a(&mem, &jb, false)
}

/// `kjump bench-io`: measure the physical limits (reading `/proc/vmcore`,
/// raw writes and reads of the target), report them, go back to A.
fn bench_mode(p: &Params<'_>, o: &orders::Bench) -> Result<Infallible, Error> {
    say!("mode bench");
    let jb = jump_back_params(p)?;
    let mem = DevMem::open()?;
    let measured = (|| -> Result<kjump::save::iobench::Limits, Error> {
        let in_use = mailbox::read_request(&mem, o.mailbox)?.uses;
        let dev = target::wait_for(&o.target.device, Duration::from_secs(o.wait), |m| say!("{m}"))?;
        kjump::target::in_use::check_device(&dev, &in_use)?;
        kjump::load::msi::check_in_hibernation_kernel(&dev)?;
        let vmcore = kjump::save::iobench::vmcore_read("/proc/vmcore")?;
        say!("read /proc/vmcore: {} MiB in {:.2} s", vmcore.0 >> 20, vmcore.1);
        let size = target::device_size(&dev)?;
        let (write, read) = kjump::save::iobench::disk_write_read(&dev, size.min(768 << 20))?;
        Ok(kjump::save::iobench::Limits { vmcore, write, read })
    })();
    let report = match measured {
        Ok(l) => {
            say!("{}", l.line());
            Report { ok: true, text: l.line() }
        }
        Err(e) => {
            say!("error: {e}");
            Report { ok: false, text: e.to_string() }
        }
    };
    if let Err(e) = mailbox::post(&mem, o.mailbox, &report) {
        say!("could not leave a report for A: {e}");
    }
    back_to_a(&mem, &jb, false)
}

/// `kjump hibernate`: save A's memory, then power off, reboot, or go back.
/// If saving fails, B goes back to A with the reason: nothing is lost.
fn save_mode(p: &Params<'_>, o: &orders::Save) -> Result<Infallible, Error> {
    say!("mode save (this kernel up after {}{})", uptime(), if o.resident { ", resident" } else { "" });
    let jb = jump_back_params(p)?;
    let mem = DevMem::open()?;
    let after = o.after;
    if o.resident {
        // Loaded ahead of time by `kjump load`: check what can be checked
        // now, then wait in A until it hibernates.
        let ready = ready_to_save(o, &jb);
        let report = match &ready {
            Ok(text) => Report { ok: true, text: text.clone() },
            Err(e) => Report { ok: false, text: e.to_string() },
        };
        // Without the report A gives this kernel up; going back matters more.
        if let Err(e) = mailbox::post(&mem, o.mailbox, &report) {
            say!("could not leave a report for A: {e}");
        }
        if let Err(e) = ready {
            say!("error: {e}");
            return back_to_a(&mem, &jb, true);
        }
        if let Err(e) = wait_in_a(&mem, &jb) {
            say!("error: {e}");
            if let Err(e) = mailbox::post(&mem, o.mailbox, &Report { ok: false, text: e.to_string() }) {
                say!("could not leave a report for A: {e}");
            }
            return back_to_a(&mem, &jb, true);
        }
    }
    let result = save_image(p, o, &jb);
    let mut report = match &result {
        Ok((saved, _)) => {
            let summary = &saved.summary;
            say!("{}", summary.line());
            Report {
                ok: true,
                text: format!(
                    "saved {} MiB of A's memory ({} MiB on disk) in {:.1} s",
                    (summary.ram_pages * 4096) >> 20,
                    summary.bytes_on_disk >> 20,
                    summary.seconds
                ),
            }
        }
        Err(e) => {
            say!("error: {e}");
            say!("the image was not saved; going back to A, nothing is lost");
            Report { ok: false, text: e.to_string() }
        }
    };
    if let Ok((saved, in_use)) = &result {
        match after {
            After::PowerOff => {
                say!("image committed; powering off");
                pid1::power_off()
            }
            After::Reboot => {
                say!("image committed; rebooting");
                pid1::reboot()
            }
            After::Resume => {}
            After::Suspend => {
                let slept = hybrid_sleep(o, saved, in_use);
                report.text = format!("{}; {slept}", report.text);
            }
        }
    }
    if result.is_err() && save::COMMIT_STARTED.load(std::sync::atomic::Ordering::SeqCst) && after != After::Resume {
        // The commit record may be on disk: A must not run on beside it.
        say!("the image may be committed; not going back to A");
        match after {
            After::Reboot => pid1::reboot(),
            _ => pid1::power_off(),
        }
    }
    // Without the report A says the save may have failed; going back matters more.
    if let Err(e) = mailbox::post(&mem, o.mailbox, &report) {
        say!("could not leave a report for A: {e}");
    }
    back_to_a(&mem, &jb, o.resident)
}

/// Hybrid sleep (`kjump.after=suspend`), once the image is committed:
/// suspends to RAM; woken, takes the image back (marks it consumed) and
/// returns what to tell A. Powers off instead when the machine cannot
/// suspend or the image cannot be taken back: then the committed image
/// is there for the next boot, and A never runs beside it.
fn hybrid_sleep(o: &orders::Save, saved: &save::Saved, in_use: &[kjump::target::in_use::InUse]) -> String {
    say!("image committed; suspending to RAM (hybrid sleep: if the power is lost, the next boot resumes from the image)");
    let slept = match pid1::suspend_to_ram() {
        Ok(d) => d.as_secs_f64(),
        Err(e) => {
            say!("error: {e}");
            say!("powering off instead: the next boot resumes from the image");
            pid1::power_off()
        }
    };
    say!("woken from RAM after {slept:.1} s; taking the image back");
    match save::withdraw(&o.target, Duration::from_secs(o.wait), in_use, &saved.committed, "woken from RAM (hybrid sleep): A ran on") {
        Ok(discarded) => {
            save::COMMIT_STARTED.store(false, std::sync::atomic::Ordering::SeqCst);
            let data = match discarded {
                Ok(kjump::target::discard::Outcome::Discarded) => "its data discarded",
                Ok(kjump::target::discard::Outcome::NotSupported) => "its data left until overwritten",
                Err(e) => {
                    say!("could not discard the image's data: {e}");
                    "its data could not be discarded"
                }
            };
            say!("image marked consumed ({data}); going back to A");
            format!("suspended to RAM and woken after {slept:.1} s: the image was marked consumed, {data}")
        }
        Err(e) => {
            say!("error: {e}");
            say!("the image may still be resumed: not going back to A; powering off (the next boot resumes from the image)");
            pid1::power_off()
        }
    }
}

/// A resident B's checks before it parks: it can jump back through a page
/// of its own, the target is there, and this kernel may use its disk.
fn ready_to_save(o: &orders::Save, jb: &JumpBack) -> Result<String, Error> {
    if !reentry_mapped(jb) {
        return Err(Error::Msg(
            "kjump.resident=1, but A's re-entry page is not in this kernel's map: only 'kjump load' loads a resident hibernation kernel".into(),
        ));
    }
    let dev = target::wait_for(&o.target.device, Duration::from_secs(o.wait), |m| say!("{m}"))?;
    kjump::load::msi::check_in_hibernation_kernel(&dev)?;
    Ok(format!("ready to save to {} (found {}; booted in {})", o.target, dev.display(), uptime()))
}

/// Saves A's memory; returns the image and A's devices (which B must
/// never write).
fn save_image(p: &Params<'_>, o: &orders::Save, jb: &JumpBack) -> Result<(save::Saved, Vec<kjump::target::in_use::InUse>), Error> {
    if o.resident {
        // A may have written its disks, even changed their partitions,
        // since this kernel read them at boot.
        target::forget_disks()?;
    }
    let region = p.region.ok_or_else(|| Error::Msg("no kjump.region= on the command line".into()))?;
    // Which devices A uses, so that none of them is written: without
    // that list, nothing is saved.
    let request = mailbox::read_request(&DevMem::open()?, o.mailbox)?;
    let in_use = request.uses;
    let target_id = o.target_id.as_ref().map(|id| id.to_string());
    say!("A uses {} block device(s){}", in_use.len(), in_use.iter().map(|u| format!(" {} ({})", u.name, u.kind.describe())).collect::<String>());
    let req = save::Request {
        target: &o.target,
        compression: o.compress,
        wait: Duration::from_secs(o.wait),
        reentry: jb.entry,
        region,
        backup: PhysRange::at(jb.backup, jb.backup_size)
            .ok_or_else(|| Error::Msg("kexec_backup= and kjump.backup_size= run past the end of the address space".into()))?,
        mailbox: o.mailbox,
        in_use: &in_use,
        zero_free: o.zero_free,
        snapshot: o.after == After::Resume,
        target_id: target_id.as_deref(),
        key: request.key.as_ref(),
        vmcoreinfo: request.vmcoreinfo,
    };
    let saved = save::save(&req)?;
    Ok((saved, in_use))
}

/// `kjump resume`: write A's memory back from the image and jump into A.
/// Any doubt means a reboot into a normal boot, never a half-restored A.
fn restore_mode(p: &Params<'_>, o: &orders::Restore) -> Result<Infallible, Error> {
    say!("mode restore (this kernel up after {}{})", uptime(), if o.direct { ", started by the boot loader" } else { "" });
    let target = &o.target;
    let region = p.region.ok_or_else(|| Error::Msg("no kjump.region= on the command line".into()))?;
    if o.direct {
        // Nothing C checked for us: this kernel must run in the region alone.
        let confined = std::fs::read_to_string("/proc/iomem")
            .map_err(|e| Error::io("reading /proc/iomem", e))
            .and_then(|iomem| kjump::host::boot_entry::check_confined(&iomem, region).map_err(|e| Error::Msg(e.to_string())));
        if let Err(e) = confined {
            give_up(Failure::Leave(e), None);
        }
        say!("running inside the kjump region {region} alone");
    }
    let mem = std::sync::Arc::new(DevMem::open()?);
    // The key C left for an encrypted image: taken (and its page wiped)
    // before anything else can fail.
    let key = match p.key_page.map(|at| kjump::handoff::keypage::take(&mem, at)) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => give_up(Failure::Leave(e), None),
    };
    let req = restore::Request {
        target,
        wait: Duration::from_secs(o.wait),
        region,
        snapshot: o.snapshot,
        count_attempt: o.direct,
        max_attempts: o.attempts,
        key: key.as_ref().map(|k| &k.key),
    };
    let mut img = match restore::open(&req) {
        Ok(img) => img,
        Err(f) => give_up(f, None),
    };
    if let Err(f) = restore::check(&req, &mut img) {
        give_up(f, Some(&img));
    }
    let h = &img.header;
    say!("image on {}: A's kernel {}, {} pages stored of {}", img.name, kjump::image::printable(&h.kernel_release), h.stored_pages, h.ram_pages);
    if o.direct {
        // C would have compared the image with this machine's memory map.
        let firmware = std::fs::read("/sys/kernel/boot_params/data").map_err(|e| Error::io("reading /sys/kernel/boot_params/data", e));
        if let Err(e) = firmware.and_then(|page| {
            kjump::host::boot_entry::check_ram(&kjump::load::boot_params::ram_ranges(&page), &h.ram, region).map_err(|e| Error::Msg(e.to_string()))
        }) {
            give_up(Failure::Leave(e), Some(&img));
        }
    }
    if let Err(f) = restore::restore(&mem, &img, region) {
        give_up(f, Some(&img));
    }
    if h.mailbox != 0 {
        let report = Report { ok: true, text: restore::report(&img, uptime_secs().unwrap_or(0.0)) };
        if let Err(e) = mailbox::post(&mem, h.mailbox, &report) {
            say!("could not leave a report for A: {e}");
        }
    }
    if let Err(e) = jump::load_jump_back(&mem, h.reentry) {
        give_up(Failure::Leave(e), Some(&img));
    }
    if let Err(e) = restore::mark(&img, State::Consumed, "resumed") {
        give_up(Failure::Leave(e), Some(&img));
    }
    if o.keep {
        say!("keeping the image's data (kjump.keep=1)");
    } else {
        match restore::discard_data(&img) {
            Ok(kjump::target::discard::Outcome::Discarded) => say!("discarded the image's data"),
            Ok(kjump::target::discard::Outcome::NotSupported) => {
                say!("the target cannot discard: the image's data stays until overwritten ('kjump image wipe' erases it)")
            }
            Err(e) => say!("could not discard the image's data: {e}"),
        }
    }
    let _ = save::close_target(target);
    say!("image marked consumed; jumping into A at {:#x}", h.reentry);
    jump::jump_to_loaded()?;
    Err(Error::Msg("the jump into A returned to D".into()))
}

/// Reports why D stops, marks the image bad when it is to blame, and
/// reboots into a normal boot.
fn give_up(f: Failure, img: Option<&restore::Opened>) -> ! {
    say!("error: {f}");
    if let (Failure::GiveUp(e), Some(img)) = (&f, img) {
        match restore::mark(img, State::Bad, &e.to_string()) {
            Ok(()) => say!("marked the image bad: no boot will try it again ('kjump image info' shows why)"),
            Err(e) => say!("could not mark the image bad: {e}"),
        }
    } else if let Some(img) = img {
        let st = img.state();
        say!("the image is left as it was (the restore kernel was started {} time(s) for it; the next boot may try again, up to its limit)", st.attempts);
    } else {
        say!("the image is left as it was");
    }
    say!("not resuming: rebooting into a normal boot");
    pid1::reboot()
}
