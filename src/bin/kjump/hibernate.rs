//! A: `kjump hibernate`, `kjump load` and `kjump unload` (a resident B),
//! and `kjump bench-io`: what they check, load and jump to.

use crate::check::run_checks;
use crate::kernel::{hibernation_kernel, save_mode_args, unload_after_jump};
use crate::keys::{new_image_key, refuse_clear_image_of_encrypted_disks};
use crate::settings::Settings;
use kjump::handoff::mailbox::Mailbox;
use kjump::handoff::orders::Orders;
use kjump::host::outcome::Outcome;
use kjump::load::jump;
use kjump::load::memmap::MemoryMap;
use kjump::target::in_use;
use kjump::units::human_size;
use kjump::{target, Error};

/// The largest image A's RAM can make: every page stored raw, plus headers.
pub(crate) fn worst_case_image(ram: u64) -> u64 {
    let chunks = ram.div_ceil((kjump::image::MAX_CHUNK_PAGES * kjump::image::PAGE) as u64);
    kjump::image::DATA_OFFSET + ram + chunks * 2 * kjump::image::BLOCK as u64
}

/// What `kjump hibernate` and `kjump load` check before loading B.
pub(crate) struct Prepared {
    pub(crate) tgt: target::Target,
    pub(crate) dev: std::path::PathBuf,
    pub(crate) uses: Vec<in_use::InUse>,
    pub(crate) region: kjump::load::memmap::Region,
    /// The target held open exclusively from the checks to the return:
    /// nothing here can mount it or swap on it in between.
    pub(crate) _held: rustix::fd::OwnedFd,
}

pub(crate) fn prepare(s: &Settings, cmd: &str) -> Result<Prepared, Error> {
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

/// The resident B `kjump load` left, if it can be entered to hibernate
/// with settings `s`: its mailbox page, pinned. Otherwise says why not and
/// forgets it (`kjump hibernate` then loads B as usual).
pub(crate) fn resident_kernel(s: &Settings, p: &Prepared) -> Result<Option<Mailbox>, Error> {
    use kjump::handoff::resident;
    let Some(rec) = resident::recorded() else { return Ok(None) };
    let why_not = (|| -> Result<Option<Mailbox>, String> {
        if !std::fs::read_to_string("/sys/kernel/kexec_loaded").is_ok_and(|t| t.trim() == "1") {
            return Err("no kexec image is loaded any more".into());
        }
        if resident::boot_id().map_err(|e| e.to_string())? != rec.boot_id {
            return Err("it was loaded by another boot".into());
        }
        if p.region != rec.region {
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

pub(crate) fn cmd_hibernate(s: &Settings) -> Result<(), Error> {
    let _lock = kjump::host::lock::take("hibernate")?;
    let started = std::time::Instant::now();
    let p = prepare(s, "hibernate")?;
    let checked = started.elapsed();
    // The image's key reaches B in the mailbox page only (B wipes it
    // there before it reads A's memory); A's other copies are wiped when
    // the request is dropped, before the jump.
    let request = kjump::handoff::mailbox::Request {
        uses: in_use::table_for_b(&p.uses),
        key: new_image_key(s).map_err(|e| Error::Msg(format!("hibernate: {e}")))?,
        // For `kjump image export` only: an image is made without it.
        vmcoreinfo: kjump::load::crash_info::vmcoreinfo().ok(),
    };
    let encrypted = request.key.is_some();
    let (mailbox, how) = match resident_kernel(s, &p)? {
        Some(mut mailbox) => {
            mailbox.write_request(&request)?;
            let how = format!("resident hibernation kernel in {}, checked in {:.2} s", p.region, started.elapsed().as_secs_f64());
            (mailbox, how)
        }
        None => {
            let mut mailbox = Mailbox::new(p.region)?;
            let found = started.elapsed();
            mailbox.write_request(&request)?;
            let loaded = jump::load_hibernation_kernel(&hibernation_kernel(s, &save_mode_args(s, &p.tgt, mailbox.phys(), false), Some(&p.dev))?)?;
            let prepared = started.elapsed();
            let how = format!(
                "hibernation kernel in {}, checked and loaded in {:.2} s (checks {:.2} s, mailbox page {:.2} s, loading {:.2} s)",
                loaded.region,
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
    if encrypted && matches!(s.encrypt, kjump::host::config::Encrypt::Tpm2(_)) {
        // Back in A, whether the image was resumed or never committed: no
        // copy of it may unseal from now on.
        match kjump::host::tpm::advance() {
            Ok(n) => println!("kjump: TPM counter at {n}: no copy of the image can be resumed now"),
            Err(e) => eprintln!("kjump: {e}: a copy of the image could still be resumed until the next hibernation"),
        }
    }
    let away = away?.as_secs_f64();
    let (ok, text) = match mailbox.read() {
        Some(r) if r.ok => (true, r.text),
        Some(r) => (false, format!("hibernate failed in the hibernation kernel: {}", r.text)),
        None => (false, format!("back in A after {away:.1} s, but the hibernation kernel left no report: the image may not be saved")),
    };
    let back_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let record = Outcome { back_unix, ok, away_secs: away, prepared: how, report: text.clone() };
    if let Err(e) = kjump::host::outcome::record_at(std::path::Path::new(kjump::host::outcome::RECORD), &record) {
        eprintln!("kjump: {e}: 'kjump status' will not show this hibernation");
    }
    if ok {
        kjump::host::outcome::log(&format!("back in A after {away:.1} s: {text}"));
        Ok(())
    } else {
        Err(Error::Msg(text))
    }
}

/// `kjump load`: boots B now and leaves it resident (`kjump::handoff::resident`).
pub(crate) fn cmd_load(s: &Settings) -> Result<(), Error> {
    let _lock = kjump::host::lock::take("load")?;
    use kjump::handoff::resident;
    let p = prepare(s, "load")?;
    resident::make_run_dir()?;
    let mut mailbox = Mailbox::in_file(resident::mailbox_path(), p.region, true)?;
    let mut hk = hibernation_kernel(s, &save_mode_args(s, &p.tgt, mailbox.phys(), true), Some(&p.dev))?;
    hk.resident = true;
    let rec = resident::Record {
        boot_id: resident::boot_id()?,
        mailbox: mailbox.phys(),
        region: p.region,
        fingerprint: resident::fingerprint(&hk.cmdline, &hk.kernel, &hk.initrd),
    };
    mailbox.write_request(&kjump::handoff::mailbox::Request { uses: in_use::table_for_b(&p.uses), key: None, vmcoreinfo: None })?;
    let loaded = jump::load_hibernation_kernel(&hk)?;
    drop(hk);
    println!("kjump: starting the hibernation kernel in {}, to keep it resident for {}", loaded.region, p.tgt);
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
                human_size(p.region.len()),
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
pub(crate) fn cmd_unload() -> Result<(), Error> {
    let _lock = kjump::host::lock::take("unload")?;
    if kjump::handoff::resident::recorded().is_none() {
        println!("kjump: no resident hibernation kernel");
        return Ok(());
    }
    kjump::handoff::resident::forget();
    kjump::sys::kexec::unload()?;
    println!("kjump: unloaded the resident hibernation kernel");
    Ok(())
}

/// `kjump bench-io`: the machine's physical limits, measured in the
/// hibernation kernel (B), which then jumps back.
pub(crate) fn cmd_bench_io(s: &Settings) -> Result<(), Error> {
    let _lock = kjump::host::lock::take("bench-io")?;
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
    let mut mailbox = Mailbox::new(region)?;
    mailbox.write_request(&kjump::handoff::mailbox::Request { uses: in_use::table_for_b(&uses), key: None, vmcoreinfo: None })?;
    let mode = Orders::Bench(kjump::handoff::orders::Bench { target: tgt.clone(), wait: s.wait, mailbox: mailbox.phys() }).to_string();
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
