//! C: `kjump resume`: whether the image on the target may be resumed here,
//! its key, counting the attempt, and loading D; or giving the image up.

use crate::kernel::{hibernation_kernel, restore_mode_args};
use crate::keys::{encryption_text, image_key, retire_tpm_key, KeyError, KEY_DESTROYED};
use crate::settings::Settings;
use crate::Failure;
use kjump::handoff::cmdline;
use kjump::image::{Reader, State};
use kjump::load::jump;
use kjump::load::memmap::MemoryMap;
use kjump::range::PhysRange;
use kjump::target::in_use;
use kjump::units::human_size;
use kjump::{target, Error};
use std::time::Duration;

/// Runs `f` on the image of `tgt` on `dev`, opened (read-write when
/// `write`), with its name for messages: the device itself, or the file on
/// the ext4 filesystem there, mounted on a new directory of this process's
/// own (read-only without replaying its journal, or read-write when
/// `write`; `nodev,nosuid,noexec`) and unmounted afterwards, and opened
/// without following symbolic links. The target's filesystem is never one
/// A uses: `kjump hibernate` and B refuse those.
pub(crate) fn with_image<T>(
    tgt: &target::Target,
    dev: &std::path::Path,
    write: bool,
    f: impl FnOnce(&std::fs::File, &str) -> Result<T, Error>,
) -> Result<T, Error> {
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
pub(crate) fn read_image_head(tgt: &target::Target, dev: &std::path::Path) -> Result<ImageHead, Error> {
    with_image(tgt, dev, false, |file, name| {
        let r = Reader::open(file).map_err(|e| Error::Msg(format!("{name}: {e}")))?;
        let committed = r.header_committed();
        let (h, st) = r.blocks();
        let blocks = [h, st].concat();
        Ok(ImageHead { header: r.header, state: r.state, committed, blocks })
    })
}

/// An image's header and state blocks, decoded and as read.
pub(crate) struct ImageHead {
    pub(crate) header: kjump::image::Header,
    pub(crate) state: kjump::image::StateBlock,
    /// The state block commits this header.
    pub(crate) committed: bool,
    /// Both blocks as read (for an encrypted image's MACs).
    pub(crate) blocks: Vec<u8>,
}

/// The note of an image given up because the boot said `noresume`.
pub(crate) const NORESUME_NOTE: &str = "not resumed: noresume given at boot; A's filesystems may have changed since";

/// What `kjump resume` does with the image on the target when the kernel
/// command line says `noresume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnNoresume {
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
pub(crate) fn on_noresume(state: State, other_machine: bool, check_only: bool) -> OnNoresume {
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
pub(crate) fn update_image(
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
pub(crate) fn mark_image_bad(tgt: &target::Target, dev: &std::path::Path, expected: State, note: &str) -> Result<(), Error> {
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

/// `kjump resume` giving the image on `tgt` up because of `why`: marks it
/// bad (if it is still `expected`) and says so, or says what to do.
pub(crate) fn give_up_image(tgt: &target::Target, dev: &std::path::Path, expected: State, why: &str) -> String {
    match mark_image_bad(tgt, dev, expected, &format!("not resumed: {why}")) {
        Ok(()) => format!("{why}; marked the image bad, never to be resumed"),
        Err(e) => format!("{why}; could not mark the image bad ({e}): wipe it with 'kjump image wipe'"),
    }
}

/// `kjump resume` when `word` (`noresume`, `kjump.noresume`) is on the
/// kernel command line: no resume, and no later one either of a committed
/// image, since this boot may change A's filesystems. Returns the reason
/// for the one line `kjump resume` prints.
pub(crate) fn refuse_noresume(s: &Settings, word: &str, check_only: bool) -> String {
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
    let other = kjump::host::machine::mismatch(&h.machine_id, &kjump::host::machine::id());
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

/// `kjump resume`; with `check_only`, only says what it would do (with
/// `json`, as one JSON object when it would resume; `main` prints the
/// object when it would not).
pub(crate) fn cmd_resume(s: &Settings, check_only: bool, json: bool) -> Result<(), Failure> {
    let _lock = kjump::host::lock::take("resume")?;
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
    if let Some(why) = kjump::host::machine::mismatch(&h.machine_id, &kjump::host::machine::id()) {
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
    if let Some(why) = kjump::target::freshness::mounted_here(&in_use::collect()?, &h.in_use) {
        return Err(Failure::Error(Error::Msg(format!(
            "resume: not resuming: {why}: 'kjump resume' runs at boot, before A's filesystems are mounted read-write (the initramfs hooks do that)"
        ))));
    }
    // Another system may have written A's filesystems since the image was
    // made: resuming over them would corrupt them, now or ever.
    let fresh = kjump::target::freshness::compare(&h.in_use, &h.stamps, &kjump::target::freshness::scan());
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
    let size = h.region.len();
    let region = map.choose_region(size)?;
    if region != h.region {
        return Err(no(format!("the image was made with the kjump region {}; this machine's is {region} (different RAM?)", h.region)));
    }
    let expected: Vec<PhysRange> =
        kjump::load::layout::vmcore_loads(&map, region, 0, map.low_memory_end()).iter().map(|l| PhysRange::new(l.paddr, l.paddr + l.size)).collect();
    if expected != h.ram || h.backup.len() != map.low_memory_end() {
        return Err(no(format!(
            "the image's RAM map differs from this machine's ({} vs {} of RAM)",
            human_size(h.ram.iter().map(PhysRange::len).sum()),
            human_size(expected.iter().map(PhysRange::len).sum())
        )));
    }
    let found = format!(
        "kjump resume: committed image on {tgt}: A's kernel {}, {} stored; {}",
        kjump::image::printable(&h.kernel_release),
        human_size(h.data_bytes),
        if check_only { "would resume" } else { "resuming" }
    );
    if !json {
        println!("{found}");
    }
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
    if check_only && json {
        crate::json::print(&crate::json::ResumeCheck::would(found.trim_start_matches("kjump ").to_string(), text.to_string(), &h, &state))?;
        return Ok(());
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
        kjump::handoff::keypage::encode(key, h.image_id, &mut page)?;
        d.key_page = Some(page);
    }
    drop(unlocked);
    jump::load_hibernation_kernel(&d)?;
    jump::jump_to_loaded()?;
    Err(Error::Msg("resume: the restore kernel came back; A was not resumed".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
