//! A and C: `kjump image info`, `verify`, `wipe` and `export`, on an image
//! file or device.

use crate::keys::{encryption_text, image_key};
use kjump::image::{Compression, Reader, State};
use kjump::range::PhysRange;
use kjump::target::in_use;
use kjump::units::human_size;
use kjump::{target, Error};
use std::time::Duration;

/// When an image was made, for people: an RFC 3339 UTC date, and the raw
/// seconds when they are beyond what a date can say.
pub(crate) fn created_text(unix: u64) -> String {
    match kjump::units::date(unix) {
        Some(d) => format!("{d} ({unix} seconds since 1970)"),
        None => format!("{unix} seconds since 1970"),
    }
}

/// Opens an image file or device for the image tools: never through a
/// symbolic link (wipe would zero the link's target and remove the link),
/// never a FIFO or socket (reading one blocks), and never a directory.
pub(crate) fn open_image(path: &str, write: bool) -> Result<std::fs::File, Error> {
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

/// Opens the image at `path` for `image info` and `verify`.
fn read_image(path: &str) -> Result<Reader<std::io::BufReader<std::fs::File>>, Error> {
    let file = open_image(path, false)?;
    Reader::open(std::io::BufReader::with_capacity(4 << 20, file)).map_err(|e| Error::Msg(format!("{path}: {e}")))
}

/// `kjump image info --json`: one object, the image's or the reason there
/// is none.
pub(crate) fn cmd_image_info_json(path: &str) -> Result<(), Error> {
    match read_image(path) {
        Ok(r) => crate::json::print(&crate::json::ImageInfo::new(path, &r.header, &r.state, r.header_committed())),
        Err(e) => {
            crate::json::print(&crate::json::ImageError { path: path.to_string(), error: e.to_string() })?;
            Err(e)
        }
    }
}

pub(crate) fn cmd_image(path: &str, verify: bool, key_file: Option<&str>) -> Result<(), Error> {
    let mut r = read_image(path)?;
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
    println!("  RAM          {} in {} ranges, {} pages", human_size(h.ram.iter().map(PhysRange::len).sum()), h.ram.len(), h.ram_pages);
    println!("  pages        {} stored, {} zero, {} free (left out)", h.stored_pages, h.zero_pages, h.free_pages);
    println!("  data         {} in {} chunks", human_size(h.data_bytes), h.chunk_count);
    println!("  region       {}", h.region);
    println!("  re-entry     {:#x}, low memory {:#x}+{:#x}", h.reentry, h.backup.start, h.backup.len());
    println!("  encryption   {}", encryption_text(h, &r.state));
    println!("  export       {}", export_text(h));
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
        let key = image_key(&r.header, &r.state, key_file, kjump::host::ask::stdin_is_terminal())
            .map_err(|e| Error::Msg(format!("verify {path}: {}", Error::from(e))))?;
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
            .try_fold(zero, |z, r| z.checked_add(r.count))
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

/// Whether `kjump image export` can make a core file of an image, for
/// `kjump image info`.
fn export_text(h: &kjump::image::Header) -> String {
    match (h.vmcoreinfo, h.page_offset) {
        (None, _) => "not possible: made before kjump recorded where A's VMCOREINFO note is".into(),
        (Some(note), base) => format!(
            "VMCOREINFO note at {:#x} ({} bytes), {}",
            note.addr,
            note.size,
            base.map_or("direct map unknown (no virtual addresses)".into(), |b| format!("direct map at {b:#x}"))
        ),
    }
}

/// `kjump image export --elf FILE`: the image as an ELF core file
/// ([`kjump::image::export`]), written to `FILE.tmp`, flushed, and renamed
/// to FILE, which is replaced only with `force`.
pub(crate) fn cmd_export(path: &str, elf: &str, key_file: Option<&str>, force: bool) -> Result<(), Error> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let fail = |e: &dyn std::fmt::Display| Error::Msg(format!("export {path}: {e}"));
    let file = open_image(path, false)?;
    let image_meta = file.metadata().map_err(|e| Error::io(format!("examining {path}"), e))?;
    match std::fs::symlink_metadata(elf) {
        Ok(m) if m.dev() == image_meta.dev() && m.ino() == image_meta.ino() => {
            return Err(Error::Msg(format!("export: {elf} is the image itself: name another file")));
        }
        Ok(m) if m.is_dir() => return Err(Error::Msg(format!("export: {elf} is a directory: name the core file"))),
        Ok(_) if !force => return Err(Error::Msg(format!("export: {elf} exists: give --force to replace it"))),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("export: examining {elf}"), e)),
    }
    let mut r = Reader::open(std::io::BufReader::with_capacity(4 << 20, file)).map_err(|e| fail(&e))?;
    // What the export needs from the header, before a key is asked for.
    let layout = kjump::image::export::Layout::new(&r.header).map_err(|e| fail(&e))?;
    if r.encrypted() {
        let key = image_key(&r.header, &r.state, key_file, kjump::host::ask::stdin_is_terminal()).map_err(|e| fail(&Error::from(e)))?;
        let key = key.ok_or_else(|| fail(&"the image is encrypted: give --key-file PATH, or run on a terminal to be asked for the passphrase"))?;
        r.unlock(&key).map_err(|e| fail(&e))?;
    }
    let tmp = format!("{elf}.tmp");
    // Owner only: the core file holds all of A's memory. Never through a
    // symbolic link, never over a file already there.
    let create = || std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32).open(&tmp);
    let mut out = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && force => {
            std::fs::remove_file(&tmp).map_err(|e| Error::io(format!("export: removing {tmp}"), e))?;
            create()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Msg(format!("export: {tmp} exists (left by an interrupted export?): remove it, or give --force")));
        }
        other => other,
    }
    .map_err(|e| Error::io(format!("export: creating {tmp}"), e))?;
    let mut last = std::time::Instant::now();
    let done = kjump::image::export::export(&mut r, &mut out, |chunk, chunks| {
        if last.elapsed() > Duration::from_secs(1) {
            eprintln!("kjump: exported {chunk} of {chunks} chunks");
            last = std::time::Instant::now();
        }
    })
    .map_err(|e| fail(&e))
    .and_then(|done| out.sync_all().map(|()| done).map_err(|e| Error::io(format!("export: flushing {tmp}"), e)))
    .and_then(|done| rename(&tmp, elf, force).map(|()| done));
    let done = done.inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    println!(
        "kjump: exported {path} to {elf}: {} of A's RAM in {} ranges ({} bytes, {} pages written), kernel {}, {}",
        human_size(r.header.ram.iter().map(PhysRange::len).sum()),
        r.header.ram.len(),
        layout.file_len,
        done.stored_pages,
        kjump::image::printable(&done.release),
        done.page_offset.map_or("no virtual addresses (the image does not know A's direct map)".into(), |b| format!("direct map at {b:#x}"))
    );
    Ok(())
}

/// Renames `from` to `to`, over a file there only when `replace`.
fn rename(from: &str, to: &str, replace: bool) -> Result<(), Error> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let flags = if replace { RenameFlags::empty() } else { RenameFlags::NOREPLACE };
    renameat_with(CWD, from, CWD, to, flags).map_err(|e| match e {
        rustix::io::Errno::EXIST => Error::Msg(format!("export: {to} exists: give --force to replace it")),
        e => Error::sys(format!("export: renaming {from} to {to}"), e),
    })
}

/// `kjump image wipe`: overwrite a kjump image with zeros (header, state
/// and every chunk), flush, discard the range, and remove it if it is a
/// file. Anything that is not a kjump image is left alone.
pub(crate) fn cmd_wipe(path: &str) -> Result<(), Error> {
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
    let discarded = kjump::target::discard::discard(&file, 0, end)?;
    drop(file);
    if meta.is_file() {
        std::fs::remove_file(path).map_err(|e| Error::io(format!("wipe: removing {path}"), e))?;
    }
    println!(
        "kjump: wiped {} of {path}{}{}",
        human_size(end),
        if discarded == kjump::target::discard::Outcome::Discarded { " and discarded it" } else { " (the device cannot discard)" },
        if meta.is_file() { "; file removed" } else { "" }
    );
    Ok(())
}

/// How many bytes from the start `kjump image wipe` overwrites: up to where
/// the state block or the header says the chunks end, whichever is
/// further; all `size` bytes of an incomplete image, whose state block does
/// not count the chunks B had written when it stopped; never past `size`,
/// and at least the header and state blocks.
pub(crate) fn wipe_end(state: &kjump::image::StateBlock, data_bytes: u64, size: u64) -> u64 {
    use kjump::image::DATA_OFFSET;
    let end = match state.state {
        State::Writing => size,
        _ => state.data_end.max(DATA_OFFSET.saturating_add(data_bytes)),
    };
    end.min(size).max(DATA_OFFSET.min(size))
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
            save_ms: 0,
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
}
