//! D's restore mode: write every page of the image back into A's physical
//! memory, A's low memory last, mark the image consumed, and let the
//! caller jump into A.
//!
//! Every chunk's checksums are checked before any of its pages is written;
//! the image's zero runs are written as zeros, and pages it neither stores
//! nor lists as zero (free in A) are left alone, or zeroed when the header
//! says A counts on free pages being zero. Nothing is written inside the
//! kjump region, where D itself runs.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::image::{self, ChunkWalk, Header, ReadError, Reader, State, BLOCK, PAGE};
use crate::init::progress::Progress;
use crate::range::{PfnRun, PhysRange};
use crate::save::pipeline::{Budget, Ordered};
use crate::sys::devmem::{DevMem, Writer};
use crate::sys::direct_io::{BatchReader, ReadBatch};
use crate::target::Target;
use crate::{say, Error};

/// What to restore from.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Where the image is.
    pub target: &'a Target,
    /// How long to wait for the target device.
    pub wait: Duration,
    /// The region D runs in (from its command line).
    pub region: PhysRange,
    /// A snapshot may be resumed (`kjump resume --snapshot`).
    pub snapshot: bool,
    /// D was started by the boot loader, not by C: D itself counts this
    /// start in the image's state block.
    pub count_attempt: bool,
    /// Starts of the restore kernel after which the image is given up.
    pub max_attempts: u32,
    /// The image's data key, when it is encrypted (C hands it to D).
    pub key: Option<&'a crate::image::seal::DataKey>,
}

/// How many times the restore kernel may be started for one image before
/// the image is marked bad: a restore that keeps failing (a disk that
/// vanishes in D, a kernel that cannot drive it) must not take every boot.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 2;

/// Why a restore stopped, and so what becomes of the image.
#[derive(Debug)]
pub enum Failure {
    /// Not resumable here or now (the target missing, another region, one
    /// of A's disks missing, an I/O error): the image is left as it is,
    /// and the attempt count bounds how often a boot tries again.
    Leave(Error),
    /// The image must never be tried again (damaged, stale, or tried too
    /// often): it is marked bad.
    GiveUp(Error),
}

impl Failure {
    /// What went wrong.
    pub fn error(&self) -> &Error {
        match self {
            Failure::Leave(e) | Failure::GiveUp(e) => e,
        }
    }

    /// The same failure, its message prefixed with `what` (`/dev/vda: …`).
    fn about(self, what: &str) -> Failure {
        match self {
            Failure::Leave(e) => Failure::Leave(Error::Msg(format!("{what}: {e}"))),
            Failure::GiveUp(e) => Failure::GiveUp(Error::Msg(format!("{what}: {e}"))),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error().fmt(f)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Leave(error)
    }
}

/// An image opened for restoring, with the file kept for the state update.
pub struct Opened {
    file: File,
    /// The image's header.
    pub header: Header,
    state: image::StateBlock,
    /// The state block commits this header.
    committed: bool,
    /// The header and state blocks as read.
    blocks: Vec<u8>,
    /// An encrypted image's keys, once [`check`] has authenticated it.
    sealer: Option<image::Sealer>,
    /// Where it is, for messages.
    pub name: String,
}

impl Opened {
    /// The image's state block as it was read (or last written by D).
    pub fn state(&self) -> &image::StateBlock {
        &self.state
    }

    /// An encrypted image's keys, once authenticated.
    fn keys(&self) -> Option<&crate::image::seal::Keys> {
        self.sealer.as_ref().map(|s| &*s.keys)
    }
}

/// What D tells A after writing its memory back (A logs it and keeps it
/// for `kjump status`): B's save, as the image records it, and D's own
/// time, `restore_secs` from D's kernel start to the jump.
pub fn report(img: &Opened, restore_secs: f64) -> String {
    let h = &img.header;
    let page = crate::units::PAGE_SIZE;
    let mib = |pages: u64| pages.saturating_mul(page) >> 20;
    let saved = match img.state.save_ms {
        0 => String::new(),
        ms => format!(" in {:.1} s", f64::from(ms) / 1000.0),
    };
    let when = crate::units::date(h.created_unix).map(|d| format!(" at {d}")).unwrap_or_default();
    format!(
        "resumed from the image on {}: B saved {} MiB of A's memory{saved}{when} ({} MiB stored as {} MiB on disk; {} MiB zero and {} MiB free left out); D restored it {restore_secs:.1} s after its start",
        img.name,
        mib(h.ram_pages),
        mib(h.stored_pages),
        h.data_bytes >> 20,
        mib(h.zero_pages),
        mib(h.free_pages),
    )
}

/// Opens the image on the target without writing anything: its header
/// and state are read, and it must be this machine's. A file's filesystem
/// is first mounted read-only without its journal, to read the header's
/// list of A's devices; it is mounted read-write only if A was not using
/// it. [`check`] then decides whether it can be resumed.
pub fn open(req: &Request<'_>) -> Result<Opened, Failure> {
    let head = crate::save::peek_header(req.target, req.wait)?;
    let peeked = Header::decode(&head).map_err(|e| Error::Msg(format!("{}: {e}", req.target)))?;
    if let Some(why) = crate::host::machine::mismatch(&peeked.machine_id, &crate::host::machine::id()) {
        return Err(Error::Msg(format!("{}: {why}", req.target)).into());
    }
    let (file, name) = crate::save::open_existing(req.target, req.wait, &peeked.in_use)?;
    let reader = Reader::open(&file).map_err(|e| fault(e, &name))?;
    let (header, state, committed) = (reader.header.clone(), reader.state.clone(), reader.header_committed());
    let (h, st) = reader.blocks();
    let blocks = [h, st].concat();
    drop(reader);
    Ok(Opened { file, header, state, committed, blocks, sealer: None, name })
}

/// Checks, before writing anything, that the opened image can be resumed
/// here: committed (or a snapshot when asked for), not started too often,
/// made with this region, A's filesystems unchanged since, and every
/// chunk's pages inside A's RAM, outside the region, each stored once, the
/// image complete to its last byte. A failure that makes the image
/// unresumable for good says so ([`Failure::GiveUp`]).
pub fn check(req: &Request<'_>, img: &mut Opened) -> Result<(), Failure> {
    let name = img.name.clone();
    let bad = |what: String| Failure::GiveUp(Error::Msg(format!("{name}: {what}")));
    match img.state.state {
        State::Committed => {}
        State::Snapshot if req.snapshot => {}
        other => return Err(Error::Msg(format!("{name}: the image is {}, not resumable", other.name())).into()),
    }
    if !img.committed {
        return Err(bad("the state block commits a different header".into()));
    }
    if img.header.encrypted() {
        let Some(key) = req.key else {
            let why = "the image is encrypted and this restore kernel was given no key (only 'kjump resume' in a normal boot gives it one)";
            // Started by a boot loader entry, D would be started again at
            // every boot and refuse again: a loop. It cannot count the
            // start without the key either, so the image is given up.
            return Err(if req.count_attempt {
                bad(format!("{why}; given up, since the boot loader would start this kernel again at every boot"))
            } else {
                Error::Msg(format!("{name}: {why}")).into()
            });
        };
        let (h, st) = img.blocks.split_at(BLOCK);
        img.sealer = Some(image::unlock(key, &img.header, h, st).map_err(|e| bad(e.to_string()))?);
    }
    if req.count_attempt {
        img.state =
            image::record_attempt(&img.file, &img.state, img.keys()).map_err(|e| Error::io(format!("counting this start in the state of {name}"), e))?;
    }
    if img.state.attempts > req.max_attempts {
        return Err(bad(format!(
            "the restore kernel was started {} times for this image (at most {}) without resuming it",
            img.state.attempts, req.max_attempts
        )));
    }
    if img.header.region != req.region {
        return Err(Error::Msg(format!("{name}: the image was made with the kjump region {}, this kernel runs in {}", img.header.region, req.region)).into());
    }
    let header = &img.header;
    ram_clear_of(img, req.region)?;
    let verdict = crate::target::freshness::compare(&header.in_use, &header.stamps, &crate::target::freshness::scan());
    if !verdict.changed.is_empty() {
        return Err(bad(verdict.refusal().unwrap_or_default()));
    }
    if let Some(why) = verdict.refusal() {
        return Err(Error::Msg(format!("{name}: {why}")).into());
    }
    for d in &verdict.unvouched {
        say!("cannot tell whether A's device {d} was written since the image was made; resuming anyway");
    }
    let mut check = image::RunCheck::new(&header.ram, req.region);
    let mut input = &img.file;
    let (mut chunks, mut pages, mut zero) = (0u64, 0u64, 0u64);
    image::scan_runs(&mut input, &img.state, |info, runs, zero_runs| {
        chunks += 1;
        pages += info.page_count as u64;
        zero += zero_runs.iter().map(|r| r.count).sum::<u64>();
        check.check(info.index, runs, zero_runs).map_err(|e| ReadError::Format(image::Error::Run(e)))
    })
    .map_err(|e| fault(e, &name))?;
    if zero != header.zero_pages {
        return Err(bad(format!("chunks list {zero} zero pages, the header says {}", header.zero_pages)));
    }
    if pages != header.stored_pages {
        return Err(bad(format!("chunks hold {pages} pages, the header says {}", header.stored_pages)));
    }
    say!("checked the layout of {chunks} chunks: every page inside A's RAM, none twice");
    Ok(())
}

/// Refuses an image whose RAM ranges reach into `region`, where D runs
/// (its pages could not be written there).
fn ram_clear_of(img: &Opened, region: PhysRange) -> Result<(), Failure> {
    match img.header.ram.iter().find(|r| r.overlaps(&region)) {
        Some(r) => Err(Failure::GiveUp(Error::Msg(format!("{}: RAM range {r} overlaps the kjump region", img.name)))),
        None => Ok(()),
    }
}

fn fault(e: ReadError, name: &str) -> Failure {
    let error = Error::Msg(format!("{name}: {e}"));
    match e {
        ReadError::Format(_) => Failure::GiveUp(error),
        _ => Failure::Leave(error),
    }
}

/// Where the workers write unpacked pages: A's RAM (outside the region)
/// above its low memory, which the main thread gathers and writes last.
struct Dest {
    ram: Vec<PhysRange>,
    region: PhysRange,
    low_end: u64,
    sealer: Option<image::Sealer>,
}

/// A chunk read from the image, to be checked, unpacked and written into
/// A's memory on a worker.
struct DecodeJob {
    info: Option<image::ChunkInfo>,
    /// The batch of the image holding the chunk, and where the chunk
    /// starts on disk; let go once the chunk's pages are written.
    raw: Option<(Arc<ReadBatch>, u64)>,
    bufs: image::ChunkBufs,
    result: Result<(), Failure>,
    /// Where this job's pages go.
    dest: Arc<Dest>,
    /// This job's own window onto A's memory (kept while the job goes
    /// round, since chunks come in address order).
    writer: Writer,
    /// Time spent writing A's memory.
    writing: Duration,
}

impl DecodeJob {
    /// Bytes one job holds: its pages unpacked (the chunk as read stays
    /// in the reader's batch), and a sealed chunk's bytes once opened.
    const BYTES: u64 = (2 * image::MAX_CHUNK_PAGES * PAGE + 4 * BLOCK) as u64;

    fn new(dest: Arc<Dest>, writer: Writer) -> Self {
        DecodeJob { info: None, raw: None, bufs: image::ChunkBufs::default(), result: Ok(()), dest, writer, writing: Duration::ZERO }
    }
}

fn decode(job: &mut DecodeJob) {
    let (Some(info), Some((batch, at))) = (&job.info, job.raw.take()) else {
        job.result = Ok(());
        return;
    };
    let Some(raw) = batch.get(at, info.disk_len) else {
        job.result = Err(Failure::GiveUp(Error::Msg(format!("chunk {}: truncated", info.index))));
        return;
    };
    // Pages stored as they are are written straight from the batch;
    // compressed ones from `pages`.
    let stored = match image::decode_chunk_in_place(raw, info, &mut job.bufs, job.dest.sealer.as_ref()) {
        Ok(image::ChunkPages::InChunk(range)) => {
            // The main thread gathers low memory from `pages` after the
            // batch is gone: only the chunks that reach it are copied.
            if job.bufs.runs.iter().any(|r| r.first.saturating_mul(PAGE as u64) < job.dest.low_end) {
                job.bufs.pages.clear();
                job.bufs.pages.extend_from_slice(&raw[range.clone()]);
            }
            &raw[range]
        }
        Ok(image::ChunkPages::InBuffer) => &job.bufs.pages[..],
        Err(e) => {
            job.result = Err(Failure::GiveUp(Error::Msg(format!("{e}"))));
            return;
        }
    };
    let t = Instant::now();
    job.result = write_pages(&job.dest, &mut job.writer, info.index, &job.bufs.runs, &job.bufs.zero_runs, stored);
    job.writing += t.elapsed();
}

/// Writes a decoded chunk's stored pages (`stored`, in the order of
/// `runs`), and zeros over its zero pages, above A's low memory. The
/// pre-pass checked every run; each is checked again here (inside one RAM
/// range, outside the region) since this is the step that writes.
fn write_pages(dest: &Dest, writer: &mut Writer, index: u64, runs: &[PfnRun], zero_runs: &[PfnRun], stored: &[u8]) -> Result<(), Failure> {
    let bad = |what: String| Failure::GiveUp(Error::Msg(format!("chunk {index}: {what}")));
    let mut at = 0usize;
    for (zero, run) in runs.iter().map(|r| (false, r)).chain(zero_runs.iter().map(|r| (true, r))) {
        let pages = run.phys().ok_or_else(|| bad(format!("page {:#x} out of range", run.first)))?;
        let (addr, len) = (pages.start, pages.len());
        let range = range_of(&dest.ram, pages).map_err(|e| bad(e.to_string()))?;
        if pages.overlaps(&dest.region) {
            return Err(bad(format!("pages at {addr:#x} inside the kjump region")));
        }
        let skip = dest.low_end.saturating_sub(addr).min(len);
        if skip < len {
            let data = if zero {
                None
            } else {
                Some(stored.get(at + skip as usize..at + len as usize).ok_or_else(|| bad("fewer stored pages than its runs".into()))?)
            };
            writer.write(addr + skip, len - skip, data, range)?;
        }
        if !zero {
            at += len as usize;
        }
    }
    Ok(())
}

/// Bytes of the image read at a time, and how many such batches go
/// round: enough that the reader seldom waits for the workers to let go
/// of one (a batch holds at least three chunks).
const READ_BATCH: usize = 4 << 20;
const READ_BATCHES: usize = 4;
const _: () = assert!(3 * image::MAX_CHUNK_DISK_LEN <= READ_BATCH);

/// Bytes of A's memory mapped at a time while writing it.
const WRITE_WINDOW: u64 = 64 << 20;

/// The same for each worker's window.
const WORKER_WINDOW: u64 = 32 << 20;

/// The RAM range of `ram` holding `pages`.
fn range_of(ram: &[PhysRange], pages: PhysRange) -> Result<PhysRange, Error> {
    ram.iter()
        .copied()
        .find(|r| r.contains_range(&pages))
        .ok_or_else(|| Error::Msg(format!("{:#x}+{:#x} is not inside one of A's RAM ranges", pages.start, pages.len())))
}

/// Writes A's memory from the image. Worker threads check, unpack and
/// write each chunk's pages and zero runs; this thread reads the image,
/// checks that runs come in address order, and handles the free pages
/// between them.
/// A's low memory (below the end of the first RAM range that starts at 0)
/// is gathered in a buffer and written last, since D's own real-mode code
/// lives there until the jump.
pub fn restore(mem: &Arc<DevMem>, img: &Opened, region: PhysRange) -> Result<u64, Failure> {
    let start = Instant::now();
    let h = &img.header;
    let low_end = h.backup.len();
    let mut low = vec![0u8; low_end as usize];
    ram_clear_of(img, region)?;
    // Pages are written in address order; `cursor` is the next physical
    // byte not yet written, and everything of A's RAM below it is done.
    let mut ranges = h.ram.iter().copied().peekable();
    let mut cursor = 0u64;
    let writer = std::cell::RefCell::new(Writer::new(Arc::clone(mem), WRITE_WINDOW));
    if h.encrypted() && img.sealer.is_none() {
        return Err(Error::Msg(format!("{}: the image is encrypted and was not authenticated before restoring", img.name)).into());
    }
    let dest = Arc::new(Dest { ram: h.ram.clone(), region, low_end, sealer: img.sealer.clone() });
    // Where D's time goes, for the console: zeroing free pages, writing
    // pages on the workers, waiting for the workers.
    let zeroing = std::cell::Cell::new(Duration::ZERO);
    let (mut writing, mut waiting) = (Duration::ZERO, Duration::ZERO);
    // Pages the image holds neither as stored nor as zero were free in A.
    // They are left as they are, unless A counts on free pages being zero.
    let zero_free = h.zero_free;
    let mut free_until = |target: u64, cursor: &mut u64, low: &mut [u8]| -> Result<(), Error> {
        while let Some(&ram) = ranges.peek() {
            let (s, e) = (ram.start, ram.end);
            let from = (*cursor).max(s);
            let to = e.min(target);
            if zero_free && from < to {
                if from < low_end {
                    low[from as usize..to.min(low_end) as usize].fill(0);
                }
                if to > low_end {
                    let f = from.max(low_end);
                    let t = Instant::now();
                    writer.borrow_mut().write(f, to - f, None, ram)?;
                    zeroing.set(zeroing.get() + t.elapsed());
                }
            }
            if e <= target {
                ranges.next();
                *cursor = (*cursor).max(e);
            } else {
                *cursor = target.max(*cursor);
                break;
            }
        }
        Ok(())
    };
    // The image is read in large batches around the page cache, and each
    // chunk decoded straight out of its batch: under emulation, copying
    // the image out of the page cache and then out of a buffer took half
    // of D's main thread.
    let mut reader = BatchReader::new(&img.file, READ_BATCHES, READ_BATCH)?;
    let mut walk = ChunkWalk::new(&img.state);
    let mut current: Option<Arc<ReadBatch>> = None;
    let bad_image = |e: image::Error| fault(ReadError::Format(e), &img.name);
    let total = h.stored_pages.max(1);
    let mut written = 0u64;
    let mut progress = Progress::new("restoring", total * PAGE as u64);
    // Worker threads check and unpack chunks while this thread reads the
    // next ones and writes finished ones into A's memory, in order.
    // As many jobs as this kernel's free memory holds besides the reader's
    // batches.
    let (budget, _) = Budget::for_this_kernel((READ_BATCHES * READ_BATCH) as u64 + (2 << 20), DecodeJob::BYTES)?;
    let mut ordered = Ordered::new(budget.workers, budget.in_flight, decode, "kjump-decode")?;
    let mut spare: Vec<DecodeJob> = Vec::new();
    let new_job = || DecodeJob::new(Arc::clone(&dest), Writer::new(Arc::clone(mem), WORKER_WINDOW));
    let mut read_all = false;
    loop {
        while !read_all && !ordered.is_full() {
            let Some(at) = walk.next_offset().map_err(bad_image)? else {
                read_all = true;
                break;
            };
            // The chunk from the batch read last, or a new batch from its
            // start (the largest chunk fits one).
            let index = walk.next_index();
            let holds_chunk =
                |b: &ReadBatch| b.get(at, BLOCK).and_then(|head| image::parse_chunk_header(head, index).ok()).is_some_and(|i| b.get(at, i.disk_len).is_some());
            if !current.as_deref().is_some_and(holds_chunk) {
                // Let go of the old batch first: it may be the one free.
                drop(current.take());
                current = reader.read(at, img.state.data_end)?;
                if current.is_none() {
                    if ordered.outstanding() == 0 {
                        return Err(Error::Msg("reading the image: every read batch is held, with no chunk being decoded".into()).into());
                    }
                    // Every batch is held by chunks being decoded: take one back.
                    break;
                }
            }
            let Some(batch) = current.clone() else { break };
            let head = batch.get(at, BLOCK).ok_or_else(|| bad_image(image::Error::Truncated { what: format!("chunk {index}") }))?;
            let info = walk.take(head).map_err(bad_image)?;
            if batch.get(at, info.disk_len).is_none() {
                return Err(bad_image(image::Error::Truncated { what: format!("chunk {index}") }));
            }
            let mut job = spare.pop().unwrap_or_else(new_job);
            (job.info, job.raw) = (Some(info), Some((batch, at)));
            ordered.submit(job)?;
        }
        let t = Instant::now();
        let next = ordered.wait_next()?;
        waiting += t.elapsed();
        let Some(mut job) = next else { break };
        writing += std::mem::take(&mut job.writing);
        let (Some(info), result) = (job.info, std::mem::replace(&mut job.result, Ok(()))) else { continue };
        result.map_err(|f| f.about(&img.name))?;
        // The workers wrote the pages above low memory; here the runs are
        // checked to come in address order, the gaps between them (free
        // pages) handled, and low memory gathered.
        let pages = &job.bufs.pages;
        let mut at = 0usize;
        for (run, zero) in image::merged(&job.bufs.runs, &job.bufs.zero_runs) {
            let addr = run.first * PAGE as u64;
            let len = run.count * PAGE as u64;
            if addr < cursor {
                return Err(Failure::GiveUp(Error::Msg(format!("{}: chunk {}: pages out of order at {addr:#x}", img.name, info.index))));
            }
            free_until(addr, &mut cursor, &mut low)?;
            if !zero {
                if addr < low_end {
                    let n_low = (low_end.min(addr + len) - addr) as usize;
                    let from = pages
                        .get(at..at + n_low)
                        .ok_or_else(|| Failure::GiveUp(Error::Msg(format!("{}: chunk {}: fewer stored pages than its runs", img.name, info.index))))?;
                    low[addr as usize..addr as usize + n_low].copy_from_slice(from);
                }
                at += len as usize;
                written += run.count;
            } else if addr < low_end {
                let n_low = (low_end.min(addr + len) - addr) as usize;
                low[addr as usize..addr as usize + n_low].fill(0);
            }
            cursor = addr + len;
        }
        progress.tick(written * PAGE as u64);
        spare.push(job);
    }
    free_until(u64::MAX, &mut cursor, &mut low)?;
    say!(
        "restored {} pages of A's memory and zeroed {} in {:.1} s ({}; writing {:.1} s over {} workers; waiting for chunks {:.1} s); writing A's low memory last",
        written,
        h.zero_pages,
        start.elapsed().as_secs_f64(),
        if zero_free {
            format!("zeroing {} free pages {:.1} s", h.free_pages, zeroing.get().as_secs_f64())
        } else {
            format!("{} free pages left as they are", h.free_pages)
        },
        writing.as_secs_f64(),
        ordered.workers().max(1),
        waiting.as_secs_f64()
    );
    drop(writer);
    if low_end > 0 {
        let mut w = mem.map(0, low_end as usize)?;
        w.bytes_mut().copy_from_slice(&low);
    }
    Ok(written)
}

/// Discards the image's data (its chunks) after a resume: A's memory
/// should not linger on disk once A runs again.
pub fn discard_data(img: &Opened) -> Result<crate::target::discard::Outcome, Error> {
    image::discard_data(&img.file, &img.state)
}

/// Marks the image consumed (after a successful restore) or bad, and
/// flushes it; either destroys an encrypted image's wrapped key.
pub fn mark(img: &Opened, state: State, note: &str) -> Result<(), Error> {
    image::set_state(&img.file, &img.state, state, note, img.keys()).map_err(|e| Error::io(format!("updating the state of {}", img.name), e))
}
