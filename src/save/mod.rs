//! B's save mode: stream A's memory from `/proc/vmcore` into an image on
//! the target, leaving out zero pages and A's free pages, and make it
//! durable (data, flush, commit record, flush).

// Work spread over B's CPUs, and the disk's limits measured in B.
pub mod iobench;
pub mod pipeline;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::image::{Chain, Compression, Header, State, StateBlock, BLOCK, DATA_OFFSET, PAGE};
use crate::init::progress::Progress;
use crate::inspect::free_pages::{find_free_pages, FreePages};
use crate::inspect::kimage;
use crate::inspect::vmcore::Vmcore;
use crate::inspect::vmcoreinfo::{find_in_notes, VmcoreInfo};
use crate::range::{PfnRange, PhysRange};
use crate::save::pipeline::{Budget, Counts, Pipeline, Window, PAGES_PER_JOB};
use crate::sys::direct_io::BatchWriter;
use crate::target::in_use::InUse;
use crate::target::Target;
use crate::{say, Error};

/// Where B mounts a target's filesystem.
pub const MOUNT_POINT: &str = "/mnt";
/// Bytes of `/proc/vmcore` read at a time.
const WINDOW: usize = 4 << 20;
/// Bytes of chunks gathered before one write (two such batches go round:
/// one filled while the other is written).
const WRITE_BATCH: usize = 4 << 20;

/// Memory B needs besides its buffers: stacks, run lists, the image header.
const MISC_BYTES: u64 = 2 << 20;

/// What to save and where.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The target.
    pub target: &'a Target,
    /// Page compression.
    pub compression: Compression,
    /// How long to wait for the target device.
    pub wait: Duration,
    /// A's re-entry address.
    pub reentry: u64,
    /// The kjump region.
    pub region: PhysRange,
    /// Where A's low memory is backed up.
    pub backup: PhysRange,
    /// A's mailbox page, for D to report the resume (0: none).
    pub mailbox: u64,
    /// The block devices A uses: never written, recorded in the header.
    pub in_use: &'a [InUse],
    /// A counts on its free pages being zero ([`Header::zero_free`]).
    pub zero_free: bool,
    /// A goes on running after the save (`kjump.after=resume`): the
    /// image is committed as a [`State::Snapshot`], which no boot resumes
    /// by itself.
    pub snapshot: bool,
    /// `kjump.target_id=`: the target device as A saw it
    /// (`kjump::target::Identity`); B refuses a device that differs.
    pub target_id: Option<&'a str>,
    /// Encrypt the image with this key (from A's request).
    pub key: Option<&'a ImageKey>,
    /// Where A said its VMCOREINFO note is (from A's request).
    pub vmcoreinfo: Option<crate::load::elf_core::Note>,
}

/// An encrypted image's key as A hands it to B: the data key, the image
/// ID it was wrapped for, and the wrapped key to store in the image.
#[derive(Clone, Debug)]
pub struct ImageKey {
    /// The data key (wiped when dropped).
    pub key: crate::image::seal::DataKey,
    /// The image ID.
    pub id: crate::image::seal::ImageId,
    /// The key block ([`crate::host::wrap`]) for the state block.
    pub key_block: Vec<u8>,
    /// The salt of the chunks' nonces. A draws it with the key, so that B,
    /// a kernel just booted, needs no randomness of its own (its random
    /// number generator may not be ready yet).
    pub salt: [u8; crate::image::seal::ID_LEN],
}

/// Set once B starts writing the commit record, and left set unless the
/// image was put back to uncommitted: from then on B must not go back to
/// A after a failure (A would run on while the next boot may resume the
/// image), unless the image is a snapshot. `kjump-init` and its panic hook
/// read it.
pub static COMMIT_STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What was saved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Pages of A's RAM.
    pub ram_pages: u64,
    /// Left out as zero.
    pub zero_pages: u64,
    /// Left out as free.
    pub free_pages: u64,
    /// Written.
    pub stored_pages: u64,
    /// Bytes of the image on disk.
    pub bytes_on_disk: u64,
    /// Seconds from opening `/proc/vmcore` to the final flush.
    pub seconds: f64,
    /// Of those, seconds spent waiting for compression to keep up.
    pub waited_for_compression: f64,
    /// And waiting for the disk to take the data.
    pub waited_for_disk: f64,
}

impl Summary {
    /// The one summary line B prints.
    pub fn line(&self) -> String {
        let mb = (self.ram_pages * PAGE as u64) as f64 / 1e6;
        format!(
            "summary: ram_pages={} zero_pages={} free_pages={} stored_pages={} bytes_on_disk={} seconds={:.1} mb_per_s={:.1} waiting_for_compression_s={:.1} waiting_for_disk_s={:.1}",
            self.ram_pages,
            self.zero_pages,
            self.free_pages,
            self.stored_pages,
            self.bytes_on_disk,
            self.seconds,
            mb / self.seconds.max(0.001),
            self.waited_for_compression,
            self.waited_for_disk
        )
    }
}

/// An image B saved and committed.
pub struct Saved {
    /// What was saved.
    pub summary: Summary,
    /// The commit record as written, for [`withdraw`].
    pub committed: Committed,
}

/// The commit record B wrote, kept so that B can take the image back
/// ([`withdraw`]) when A is to run on after all: a hybrid sleep woken
/// from RAM.
pub struct Committed {
    state: StateBlock,
    keys: Option<Arc<crate::image::seal::Keys>>,
}

/// Takes back the image B committed on `target` before B returns to A: its
/// state block must still be the one B wrote (`committed`); it is marked
/// consumed (an encrypted image's key block is destroyed with it) and
/// flushed, then its data discarded where the target can (the inner
/// result: a failed discard loses nothing). On an error the image may
/// still be committed, and A must not run beside it: B then powers off
/// and the next boot resumes it. `avoid` are A's devices.
pub fn withdraw(
    target: &Target,
    wait: Duration,
    avoid: &[InUse],
    committed: &Committed,
    note: &str,
) -> Result<Result<crate::target::discard::Outcome, Error>, Error> {
    let (file, name) = open_existing(target, wait, avoid)?;
    let mut block = vec![0u8; BLOCK];
    file.read_exact_at(&mut block, crate::image::STATE_OFFSET).map_err(|e| Error::io(format!("reading the state block of {name}"), e))?;
    let on_disk = StateBlock::decode(&block).map_err(|e| Error::Msg(format!("the state block of {name}: {e}")))?;
    if on_disk != committed.state {
        return Err(Error::Msg(format!("the image on {name} is no longer the one this kernel committed (state {})", on_disk.state.name())));
    }
    crate::image::set_state(&file, &on_disk, State::Consumed, note, committed.keys.as_deref())
        .map_err(|e| Error::io(format!("marking the image on {name} consumed"), e))?;
    let discarded = crate::image::discard_data(&file, &on_disk);
    drop(file);
    close_target(target)?;
    Ok(discarded)
}

/// Mount flags for a target's filesystem: nothing on it is a device,
/// runs or gains privileges.
pub const MOUNT_FLAGS: rustix::mount::MountFlags =
    rustix::mount::MountFlags::NODEV.union(rustix::mount::MountFlags::NOSUID).union(rustix::mount::MountFlags::NOEXEC);

/// Opens the image file `path` (absolute, as in the target) below the
/// directory `root` where its filesystem is mounted, never following a
/// symbolic link on the way (`openat2` with `RESOLVE_NO_SYMLINKS`, or
/// `O_NOFOLLOW` component by component on kernels before 5.6). The file
/// must be a regular file. When `write`, it is opened read-write, created
/// when `create` (and emptied), and its mode forced to 0600: the image
/// holds all of A's memory, secrets included.
pub fn open_image_file(root: &Path, path: &str, write: bool, create: bool) -> Result<File, Error> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let what = |doing: &str| format!("{doing} the image file {path} (on {})", root.display());
    let rel = path.trim_start_matches('/');
    let mut flags = OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK;
    flags |= if write { OFlags::RDWR } else { OFlags::RDONLY };
    if create {
        flags |= OFlags::CREATE | OFlags::TRUNC;
    }
    let mode = Mode::from_raw_mode(0o600);
    // openat2 refuses a mode without O_CREAT.
    let create_mode = if create { mode } else { Mode::empty() };
    let dir = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys(what("opening the directory above"), e))?;
    let fd = match rustix::fs::openat2(&dir, rel, flags, create_mode, ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS) {
        Err(rustix::io::Errno::NOSYS) => open_no_follow(dir, rel, flags, create_mode),
        r => r,
    }
    .map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
            Error::Msg(format!("{}: the path goes through a symbolic link; kjump follows none", what("opening")))
        }
        e => Error::sys(what("opening"), e),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::sys(what("examining"), e))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(Error::Msg(format!("{}: it is not a regular file (a device node, FIFO or directory): refusing it", what("opening"))));
    }
    if write {
        rustix::fs::fchmod(&fd, mode).map_err(|e| Error::sys(what("making owner-only (0600)"), e))?;
    }
    // Back to blocking I/O for the image itself.
    rustix::fs::fcntl_setfl(&fd, rustix::fs::fcntl_getfl(&fd).map_err(|e| Error::sys(what("reading the flags of"), e))? - OFlags::NONBLOCK)
        .map_err(|e| Error::sys(what("setting the flags of"), e))?;
    Ok(File::from(fd))
}

/// Opens `rel` below `dir` one component at a time with `O_NOFOLLOW`, for
/// kernels without `openat2`.
fn open_no_follow(dir: rustix::fd::OwnedFd, rel: &str, flags: rustix::fs::OFlags, mode: rustix::fs::Mode) -> rustix::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::OFlags;
    let (parents, last) = rel.rsplit_once('/').unwrap_or(("", rel));
    let mut at = dir;
    for c in parents.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(rustix::io::Errno::XDEV);
        }
        at = rustix::fs::openat(&at, c, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, rustix::fs::Mode::empty())?;
    }
    rustix::fs::openat(&at, last, flags, mode)
}

/// Opens where the image goes: the device itself, or a file on the ext4
/// filesystem on it (mounted on [`MOUNT_POINT`] `nodev,nosuid,noexec`),
/// created when `create`. Refuses, before writing or mounting anything,
/// a device that holds a filesystem or swap area A uses (`avoid`), one
/// that is not the device A described (`target_id`, the text of
/// `kjump.target_id=`), and one holding something kjump must not write
/// over (`kjump::target::signature`).
fn open_target(target: &Target, wait: Duration, create: bool, avoid: &[InUse], target_id: Option<&str>) -> Result<(File, String), Error> {
    let dev = crate::target::wait_for(&target.device, wait, |m| say!("{m}"))?;
    crate::target::in_use::check_device(&dev, avoid)?;
    if let Some(id) = target_id {
        crate::target::check_identity(target, &dev, id)?;
    }
    crate::target::check_overwrite(&dev, target.file.is_some())?;
    if crate::load::msi::check_in_hibernation_kernel(&dev)? {
        say!("{} uses MSI: booted without legacy interrupt routing", dev.display());
    }
    let Some(path) = &target.file else {
        let f = std::fs::OpenOptions::new().write(true).read(true).open(&dev).map_err(|e| Error::io(format!("opening target {}", dev.display()), e))?;
        return Ok((f, dev.display().to_string()));
    };
    let _ = rustix::fs::mkdir(MOUNT_POINT, rustix::fs::Mode::from_raw_mode(0o755));
    rustix::mount::mount(dev.as_path(), MOUNT_POINT, "ext4", MOUNT_FLAGS, None)
        .map_err(|e| Error::sys(format!("mounting {} (ext4) on {MOUNT_POINT}", dev.display()), e))?;
    let f = open_image_file(Path::new(MOUNT_POINT), path, true, create).inspect_err(|_| {
        let _ = rustix::mount::unmount(MOUNT_POINT, rustix::mount::UnmountFlags::empty());
    })?;
    Ok((f, format!("{}:{path}", dev.display())))
}

/// Opens an existing image on `target` for reading and updating its state.
pub fn open_existing(target: &Target, wait: Duration, avoid: &[InUse]) -> Result<(File, String), Error> {
    open_target(target, wait, false, avoid, None)
}

/// Reads the header block of the image on `target` without writing
/// anything: a file's filesystem is mounted read-only without replaying
/// its journal, then unmounted.
pub fn peek_header(target: &Target, wait: Duration) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let dev = crate::target::wait_for(&target.device, wait, |m| say!("{m}"))?;
    crate::load::msi::check_in_hibernation_kernel(&dev)?;
    let read = |f: File, name: &str| -> Result<Vec<u8>, Error> {
        let mut b = Vec::with_capacity(BLOCK);
        f.take(BLOCK as u64).read_to_end(&mut b).map_err(|e| Error::io(format!("reading {name}"), e))?;
        Ok(b)
    };
    let Some(path) = &target.file else {
        let f = File::open(&dev).map_err(|e| Error::io(format!("opening {}", dev.display()), e))?;
        return read(f, &dev.display().to_string());
    };
    let _ = rustix::fs::mkdir(MOUNT_POINT, rustix::fs::Mode::from_raw_mode(0o755));
    mount_read_only(&dev, Path::new(MOUNT_POINT))?;
    let result = open_image_file(Path::new(MOUNT_POINT), path, false, false).and_then(|f| read(f, path));
    let _ = rustix::mount::unmount(MOUNT_POINT, rustix::mount::UnmountFlags::empty());
    result
}

/// Mounts the ext4 filesystem on `dev` at `dir` read-only, without
/// replaying its journal: nothing at all is written to the device.
pub fn mount_read_only(dev: &Path, dir: &Path) -> Result<(), Error> {
    rustix::mount::mount(dev, dir, "ext4", MOUNT_FLAGS | rustix::mount::MountFlags::RDONLY, Some(c"noload"))
        .map_err(|e| Error::sys(format!("mounting {} read-only on {}", dev.display(), dir.display()), e))
}

/// Unmounts [`MOUNT_POINT`] if `target` is a file on a filesystem.
pub fn close_target(target: &Target) -> Result<(), Error> {
    if target.file.is_some() {
        rustix::fs::sync();
        rustix::mount::unmount(MOUNT_POINT, rustix::mount::UnmountFlags::empty()).map_err(|e| Error::sys(format!("unmounting {MOUNT_POINT}"), e))?;
    }
    Ok(())
}

fn write_at(f: &File, data: &[u8], offset: u64, what: &str) -> Result<(), Error> {
    f.write_all_at(data, offset).map_err(|e| Error::io(format!("writing {what} at byte {offset}"), e))
}

/// Where finished chunks go: appended in order to the writer, each one's
/// data checksum added to the chain.
struct Chunks {
    writer: BatchWriter,
    chain: Chain,
    count: u64,
}

impl Chunks {
    fn add(&mut self, chunk: &[u8], sums: &crate::image::ChunkSums) -> Result<(), Error> {
        self.chain.add(sums);
        self.count += 1;
        self.writer.append(chunk)
    }
}

fn flush(f: &File) -> Result<(), Error> {
    f.sync_all().map_err(|e| Error::io("flushing the target", e))
}

/// Saves A's memory. On success the image is committed and flushed.
pub fn save(req: &Request<'_>) -> Result<Saved, Error> {
    let start = Instant::now();
    let vmcore = Vmcore::open("/proc/vmcore")?;
    let info = VmcoreInfo::parse(&find_in_notes(&vmcore.notes).unwrap_or_default());
    let ram: Vec<PhysRange> = vmcore.layout.segments.iter().map(|s| PhysRange::new(s.paddr, s.paddr + s.size)).collect();
    // The region's pages are classified too: where A had one free, the
    // page now holding its old contents need not be saved.
    let classify: Vec<PfnRange> = ram.iter().chain([&req.region]).map(PhysRange::pfns).collect();
    let free: Option<Arc<FreePages>> = match find_free_pages(&info, &vmcore, &classify) {
        Ok(mut f) => {
            say!("found {} free pages of A ({} pages unknown)", f.count(), f.unknown());
            match kimage::region_sources(&vmcore, &info, req.reentry, req.region) {
                Ok(r) => {
                    let n = f.mark_holders_of_free(r.moved());
                    say!("left out {n} pages that hold the region's free pages");
                }
                Err(e) => say!("cannot read A's kexec image ({e}); saving what the region held"),
            }
            Some(Arc::new(f))
        }
        Err(e) => {
            say!("cannot find A's free pages ({e}); saving every non-zero page");
            None
        }
    };
    // What A's devices look like on disk now, for C and D to tell
    // whether another system wrote them before the resume.
    let stamps = crate::target::freshness::record(req.in_use, &crate::target::freshness::scan());
    for (u, st) in req.in_use.iter().zip(&stamps) {
        match st {
            crate::target::freshness::Stamp::Missing => say!("A's device {} is not to be found here: a resume will not be able to check it", u.name),
            crate::target::freshness::Stamp::Unvouched => {
                say!("cannot tell later whether A's device {} was written (kjump reads ext2/3/4, btrfs and swap only)", u.name)
            }
            _ => {}
        }
    }
    // What `kjump image export` needs to make a core file of the image.
    let vmcoreinfo = match req.vmcoreinfo.map(|n| vmcoreinfo_in_a(&vmcore, n)) {
        Some(Ok(at)) => Some(at),
        Some(Err(why)) => {
            say!("{why}: the image will not be exported as a core file");
            None
        }
        None => None,
    };
    let page_offset = match crate::inspect::pagetable::find_direct_map(&info, &vmcore, &ram) {
        Ok(Some(base)) => Some(base),
        Ok(None) => {
            say!("A's direct map is not in its page tables: a core file of the image will have no virtual addresses");
            None
        }
        Err(e) => {
            say!("cannot look for A's direct map ({e}): a core file of the image will have no virtual addresses");
            None
        }
    };
    let (file, name) = open_target(req.target, req.wait, true, req.in_use, req.target_id)?;
    say!("writing the image to {name}");
    let sealer = match req.key {
        Some(k) => {
            say!("encrypting the image ({})", crate::image::seal::Cipher::XChaCha20Poly1305.name());
            Some(crate::image::Sealer { keys: Arc::new(crate::image::seal::Keys::derive(&k.key, k.id)), salt: k.salt })
        }
        None => None,
    };
    let mut header = Header {
        compression: Some(req.compression),
        created_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        reentry: req.reentry,
        region: req.region,
        backup: req.backup,
        kernel_release: info.osrelease().unwrap_or("").to_string(),
        build_id: info.build_id().unwrap_or("").to_string(),
        ram: ram.clone(),
        mailbox: req.mailbox,
        machine_id: crate::host::machine::id(),
        in_use: req.in_use.to_vec(),
        zero_free: req.zero_free,
        stamps,
        cipher: if sealer.is_some() { crate::image::seal::Cipher::XChaCha20Poly1305 } else { crate::image::seal::Cipher::None },
        image_id: req.key.map(|k| k.id).unwrap_or_default(),
        nonce_salt: sealer.as_ref().map(|s| s.salt).unwrap_or_default(),
        vmcoreinfo,
        page_offset,
        ..Header::default()
    };
    let mut blocks = vec![0u8; 2 * BLOCK];
    let h = header.encode()?;
    blocks[..BLOCK].copy_from_slice(&h);
    let writing = StateBlock {
        state: State::Writing,
        header_crc: Header::crc(&h),
        chain_crc: 0,
        chunk_count: 0,
        data_end: DATA_OFFSET,
        note: String::new(),
        attempts: 0,
        save_ms: 0,
        tags: [0; 32],
        key_block: Vec::new(),
    };
    blocks[BLOCK..].copy_from_slice(&writing.encode());
    write_at(&file, &blocks, 0, "the header")?;
    flush(&file)?;

    let total = vmcore.total_bytes();
    let mut progress = Progress::new("saving", total);
    // Sized to this kernel's free memory before the buffers exist: the
    // writer's two batches and a window read where it cannot be mapped,
    // then as many jobs (a chunk each) as fit.
    let fixed = (2 * WRITE_BATCH + WINDOW) as u64 + MISC_BYTES;
    let (budget, available) = Budget::for_this_kernel(fixed, Pipeline::BYTES_PER_JOB)?;
    let mut pipeline = Pipeline::new(req.compression, sealer.clone(), free, budget)?;
    say!("compressing on {} thread(s), {} chunk(s) in flight ({} MiB free)", pipeline.workers().max(1), budget.in_flight.max(1), available.min(1 << 50) >> 20);
    let writer = BatchWriter::new(&file, DATA_OFFSET, WRITE_BATCH)?;
    if !writer.is_direct() {
        say!("the target does not take O_DIRECT; writing through the page cache");
    }
    let mut sink = Chunks { writer, chain: Chain::default(), count: 0 };
    let mut done = 0u64;
    let mut s = Summary::default();
    let mut counts = Counts::default();
    let mut add = |chunk: &[u8], sums: &crate::image::ChunkSums, c: Counts| {
        counts.zero += c.zero;
        counts.free += c.free;
        counts.stored += c.stored;
        sink.add(chunk, sums)
    };

    // This thread maps A's memory a window at a time; the workers sort
    // each window's pages and compress them, a chunk per job.
    for seg in &vmcore.layout.segments {
        let mut off = 0u64;
        while off < seg.size {
            let n = ((seg.size - off) as usize).min(WINDOW);
            let first_pfn = (seg.paddr + off) / PAGE as u64;
            let n_pages = n.div_ceil(PAGE);
            s.ram_pages += n_pages as u64;
            // A window of free pages only is not even mapped.
            if pipeline.all_free(first_pfn, n_pages) {
                s.free_pages += n_pages as u64;
            } else {
                // Mapped (no per-page work in the kernel), or read where it
                // cannot be (a segment not page aligned).
                let mapped = if n % PAGE == 0 { vmcore.map(seg.offset + off, n).ok() } else { None };
                let window = match mapped {
                    Some(m) => Window::Mapped(m),
                    None => {
                        let mut buf = vec![0u8; n_pages * PAGE];
                        vmcore.read_at(seg.offset + off, &mut buf[..n]).map_err(|e| Error::io(format!("reading A's memory at {:#x}", seg.paddr + off), e))?;
                        Window::Read(buf)
                    }
                };
                let window = Arc::new(window);
                for first in (0..n_pages).step_by(PAGES_PER_JOB) {
                    let k = PAGES_PER_JOB.min(n_pages - first);
                    s.free_pages += pipeline.submit(&window, first * PAGE, first_pfn + first as u64, k, &mut add)?;
                }
            }
            off += n as u64;
            done += n as u64;
            progress.tick(done);
        }
    }
    pipeline.finish(&mut add)?;
    s.zero_pages = counts.zero;
    s.free_pages += counts.free;
    s.stored_pages = counts.stored;
    let (chain, count) = (sink.chain, sink.count);
    let (pos, disk_wait) = sink.writer.finish()?;
    s.waited_for_compression = pipeline.waited().as_secs_f64();
    s.waited_for_disk = disk_wait.as_secs_f64();
    header.chunk_count = count;
    flush(&file)?;

    header.ram_pages = s.ram_pages;
    header.zero_pages = s.zero_pages;
    header.free_pages = s.free_pages;
    header.stored_pages = s.stored_pages;
    header.data_bytes = pos - DATA_OFFSET;
    let keys = sealer.as_ref().map(|s| &*s.keys);
    let h = header.encode_sealed(keys)?;
    let committed = StateBlock {
        state: if req.snapshot { State::Snapshot } else { State::Committed },
        header_crc: Header::crc(&h),
        chain_crc: chain.value(),
        chunk_count: header.chunk_count,
        data_end: pos,
        note: String::new(),
        attempts: 0,
        save_ms: u32::try_from(start.elapsed().as_millis()).unwrap_or(u32::MAX),
        tags: chain.tags(),
        key_block: req.key.map(|k| k.key_block.clone()).unwrap_or_default(),
    };
    blocks[..BLOCK].copy_from_slice(&h);
    blocks[BLOCK..].copy_from_slice(&committed.encode_sealed(keys));
    COMMIT_STARTED.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Err(e) = write_at(&file, &blocks, 0, "the commit record").and_then(|()| flush(&file)) {
        // Whether the commit reached the disk is unknown: put the image
        // back to uncommitted, so that B may still go back to A.
        if write_at(&file, &writing.encode(), crate::image::STATE_OFFSET, "the state block back to uncommitted").and_then(|()| flush(&file)).is_ok() {
            COMMIT_STARTED.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        return Err(e);
    }
    drop(file);
    close_target(req.target)?;
    s.bytes_on_disk = pos;
    s.seconds = start.elapsed().as_secs_f64();
    Ok(Saved { summary: s, committed: Committed { state: committed, keys: sealer.map(|s| s.keys) } })
}

/// Where A's VMCOREINFO note lies in A's memory, as the image records it:
/// A said its note buffer is `n` (`/sys/kernel/vmcoreinfo`); the note
/// itself is the one in `/proc/vmcore` (a copy A made when it loaded B),
/// and must read the same at that address of A's memory as B saves it
/// (not in the kjump region, whose pages are elsewhere while B runs).
fn vmcoreinfo_in_a(vmcore: &Vmcore, n: crate::load::elf_core::Note) -> Result<crate::load::elf_core::Note, String> {
    use crate::inspect::pagetable::PhysRead;
    let copy = crate::inspect::vmcoreinfo::note_range(&vmcore.notes).and_then(|r| vmcore.notes.get(r)).ok_or("no VMCOREINFO note in /proc/vmcore")?;
    // The header stores the length in 4 bytes.
    let len = u32::try_from(copy.len()).ok().filter(|&l| u64::from(l) <= n.size).ok_or("A's VMCOREINFO note is larger than the buffer A named")?;
    let mut there = vec![0u8; copy.len()];
    vmcore.read_phys(n.addr, &mut there).map_err(|_| format!("A's VMCOREINFO note at {:#x} is not in A's RAM as saved (in the kjump region?)", n.addr))?;
    if there != copy {
        return Err(format!("A's memory at {:#x} does not hold its VMCOREINFO note", n.addr));
    }
    Ok(crate::load::elf_core::Note { addr: n.addr, size: u64::from(len) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A directory standing for the mounted filesystem: a 0644 image, a
    /// link to it, a link to a directory, a FIFO and a directory.
    #[test]
    fn image_files_are_opened_without_links_and_made_owner_only() {
        let root = std::env::temp_dir().join(format!("kjump-open-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/keep.txt"), b"precious").unwrap();
        std::fs::write(root.join("old.kjump"), b"old").unwrap();
        std::fs::set_permissions(root.join("old.kjump"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink("real/keep.txt", root.join("link.kjump")).unwrap();
        std::os::unix::fs::symlink("real", root.join("dirlink")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, root.join("fifo.kjump"), rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0).unwrap();

        let refused = |path: &str, create: bool| open_image_file(&root, path, true, create).map(|_| ()).unwrap_err().to_string();
        let link = refused("/link.kjump", true);
        let dirlink = refused("/dirlink/new.kjump", true);
        let followed = root.join("real/new.kjump").exists();
        let fifo = refused("/fifo.kjump", false);
        let dir = refused("/real", false);
        let missing = refused("/nothing.kjump", false);
        // Reading an existing image (D's header peek), updating it (D),
        // creating one (B): an existing 0644 file ends 0600, as a new one.
        let peeked = open_image_file(&root, "/old.kjump", false, false).map(|_| ());
        let mode_after_peek = mode(&root.join("old.kjump"));
        let updated = open_image_file(&root, "/old.kjump", true, false).map(|_| ());
        let mode_after_update = mode(&root.join("old.kjump"));
        let created = open_image_file(&root, "/real/new.kjump", true, true).map(|_| ());
        let new_mode = mode(&root.join("real/new.kjump"));
        let keep = std::fs::read(root.join("real/keep.txt")).unwrap();
        let _ = std::fs::remove_dir_all(&root);

        assert!(link.contains("the path goes through a symbolic link"), "{link}");
        assert!(dirlink.contains("the path goes through a symbolic link"), "{dirlink}");
        assert!(fifo.contains("not a regular file"), "{fifo}");
        assert!(dir.contains("opening the image file /real"), "{dir}");
        assert!(missing.contains("opening the image file /nothing.kjump"), "{missing}");
        assert!(peeked.is_ok(), "{peeked:?}");
        assert_eq!(mode_after_peek, 0o644, "reading changes nothing");
        assert!(updated.is_ok(), "{updated:?}");
        assert_eq!(mode_after_update, 0o600);
        assert!(created.is_ok(), "{created:?}");
        assert_eq!(new_mode, 0o600);
        assert_eq!(keep, b"precious");
        assert!(!followed, "a file was created through the directory link");
    }
}
