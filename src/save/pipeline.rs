//! Work spread over every CPU the hibernation kernel has, handed back in
//! order: B's workers sort A's pages (free, zero, stored) and compress and
//! checksum a chunk from each window of A's memory that its main thread
//! maps ([`Pipeline`]); D's workers check and unpack chunks, and write
//! them into A's memory, while its main thread reads the image (through
//! [`Ordered`] directly).
//!
//! With one CPU everything happens inline, as before. Jobs carry their own
//! buffers and go round in a fixed set: at most [`IN_FLIGHT_PER_WORKER`]
//! per worker are out at once, and no more than the hibernation kernel's
//! free memory holds ([`Budget`]): B and D run in a small region, and
//! running out of memory there would lose A.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::image::{is_zero, ChunkEncoder, ChunkSums, Compression, Sealer, MAX_CHUNK_PAGES, PAGE};
use crate::inspect::free_pages::FreePages;
use crate::inspect::vmcore::Mapping;
use crate::range::PfnRun;
use crate::Error;

/// Jobs given to each worker before the main thread waits.
pub const IN_FLIGHT_PER_WORKER: usize = 3;

/// Worker threads worth starting here: one per CPU when there are at
/// least two, none (everything inline) on one CPU.
pub fn workers_for_this_machine() -> usize {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        1 => 0,
        n => n,
    }
}

/// Memory left to the kernel (page tables, block I/O, slab) whatever the
/// jobs take.
pub const KERNEL_RESERVE: u64 = 8 << 20;

/// How much work may be out at once, sized to free memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Worker threads (0: inline).
    pub workers: usize,
    /// Jobs out at once (handed to workers and not yet taken back).
    pub in_flight: usize,
}

impl Budget {
    /// The most work that fits: `available` bytes of free memory, of which
    /// `fixed` go to buffers outside the jobs and [`KERNEL_RESERVE`] to the
    /// kernel, each job holding `per_job`. Fewer jobs (down to one per
    /// worker), then fewer workers, before an error: the caller says what
    /// to do instead of running out of memory half way.
    pub fn fit(workers: usize, available: u64, fixed: u64, per_job: u64) -> Result<Budget, Error> {
        let usable = available.saturating_sub(fixed).saturating_sub(KERNEL_RESERVE);
        // One job more than those in flight: the one being filled.
        let jobs = (usable / per_job.max(1)).saturating_sub(1) as usize;
        let in_flight = jobs.min(workers * IN_FLIGHT_PER_WORKER);
        if workers > 0 && in_flight >= workers {
            Ok(Budget { workers, in_flight })
        } else if workers > 1 && in_flight >= 1 {
            Ok(Budget { workers: in_flight, in_flight })
        } else if usable >= per_job {
            Ok(Budget { workers: 0, in_flight: 0 })
        } else {
            Err(Error::Msg(format!(
                "this kernel has {} MiB of free memory and needs {} MiB; give it a larger --region-size",
                available >> 20,
                fixed.saturating_add(KERNEL_RESERVE).saturating_add(per_job).div_ceil(1 << 20)
            )))
        }
    }

    /// [`Budget::fit`] for this machine's CPUs and this kernel's free
    /// memory (`MemAvailable`; no limit when it cannot be read). Returns
    /// the budget and the free memory it was sized to.
    pub fn for_this_kernel(fixed: u64, per_job: u64) -> Result<(Budget, u64), Error> {
        let available = crate::host::check::meminfo("MemAvailable:").unwrap_or(u64::MAX);
        Ok((Budget::fit(workers_for_this_machine(), available, fixed, per_job)?, available))
    }
}

/// Jobs done by `work` on worker threads, handed back in the order they
/// were submitted.
pub struct Ordered<J: Send + 'static> {
    work: fn(&mut J),
    jobs: Option<SyncSender<(u64, J)>>,
    done: Option<Receiver<(u64, J)>>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<u64, J>,
    next_in: u64,
    next_out: u64,
    in_flight: usize,
    max_in_flight: usize,
}

impl<J: Send + 'static> Ordered<J> {
    /// Starts `workers` threads named `name-N` (none: `work` runs inline
    /// in [`Ordered::submit`]), with at most `max_in_flight` jobs out.
    pub fn new(workers: usize, max_in_flight: usize, work: fn(&mut J), name: &str) -> Result<Self, Error> {
        let max_in_flight = if workers == 0 { 0 } else { max_in_flight.max(1) };
        let mut o =
            Ordered { work, jobs: None, done: None, workers: Vec::new(), pending: BTreeMap::new(), next_in: 0, next_out: 0, in_flight: 0, max_in_flight };
        if workers == 0 {
            return Ok(o);
        }
        let (job_tx, job_rx) = sync_channel::<(u64, J)>(o.max_in_flight);
        let (done_tx, done_rx) = sync_channel::<(u64, J)>(o.max_in_flight);
        let job_rx = Arc::new(Mutex::new(job_rx));
        for n in 0..workers {
            let (rx, tx) = (Arc::clone(&job_rx), done_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || serve(work, &rx, &tx))
                .map_err(|e| Error::io(format!("starting worker thread {name}-{n}"), e))?;
            o.workers.push(handle);
        }
        o.jobs = Some(job_tx);
        o.done = Some(done_rx);
        Ok(o)
    }

    /// How many worker threads there are.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Jobs handed over and not yet taken back: with the workers, or done
    /// and waiting for an earlier one.
    pub fn outstanding(&self) -> usize {
        self.in_flight + self.pending.len()
    }

    /// Whether [`Ordered::submit`] should wait: every slot is taken.
    /// Jobs done out of order still hold their buffers, so they count:
    /// otherwise a worker stuck on one slow job lets the others fill
    /// memory with finished ones (B ran out of memory that way).
    pub fn is_full(&self) -> bool {
        if self.workers.is_empty() {
            !self.pending.is_empty()
        } else {
            self.outstanding() >= self.max_in_flight
        }
    }

    /// Hands over a job.
    pub fn submit(&mut self, mut job: J) -> Result<(), Error> {
        let index = self.next_in;
        self.next_in += 1;
        match &self.jobs {
            None => {
                (self.work)(&mut job);
                self.pending.insert(index, job);
            }
            Some(jobs) => {
                jobs.send((index, job)).map_err(|_| Error::Msg("a worker thread stopped".into()))?;
                self.in_flight += 1;
            }
        }
        Ok(())
    }

    /// The next job in order, done, waiting for it if it is still being
    /// worked on; `None` when nothing is outstanding.
    pub fn wait_next(&mut self) -> Result<Option<J>, Error> {
        loop {
            if let Some(job) = self.pending.remove(&self.next_out) {
                self.next_out += 1;
                return Ok(Some(job));
            }
            if self.in_flight == 0 {
                return Ok(None);
            }
            let done = self.done.as_ref().ok_or_else(|| Error::Msg("no worker threads".into()))?;
            let (index, job) = done.recv().map_err(|_| Error::Msg("a worker thread stopped".into()))?;
            self.in_flight -= 1;
            self.pending.insert(index, job);
        }
    }

    /// The next job in order if it is done already.
    pub fn try_next(&mut self) -> Option<J> {
        if let Some(done) = &self.done {
            while let Ok((index, job)) = done.try_recv() {
                self.in_flight -= 1;
                self.pending.insert(index, job);
            }
        }
        let job = self.pending.remove(&self.next_out)?;
        self.next_out += 1;
        Some(job)
    }
}

impl<J: Send + 'static> Drop for Ordered<J> {
    fn drop(&mut self) {
        self.jobs = None;
        // Workers blocked on a full `done` channel see it closed and stop.
        self.done = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A worker: does jobs until the channel closes.
fn serve<J>(work: fn(&mut J), jobs: &Mutex<Receiver<(u64, J)>>, done: &SyncSender<(u64, J)>) {
    loop {
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((index, mut job)) = next else { return };
        work(&mut job);
        if done.send((index, job)).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// B: A's memory sorted and encoded in parallel.

/// Pages of A's memory one job takes: a chunk's worth, so whatever they
/// hold fits one chunk (at most that many stored pages, at most half as
/// many runs of either kind).
pub const PAGES_PER_JOB: usize = MAX_CHUNK_PAGES;

/// Bytes of A's memory, mapped or read once and shared by the jobs that
/// sort its pages.
pub enum Window {
    /// A mapping of `/proc/vmcore`.
    Mapped(Mapping),
    /// A copy, padded with zeros to whole pages (where a segment of
    /// `/proc/vmcore` cannot be mapped).
    Read(Vec<u8>),
}

impl Window {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Window::Mapped(m) => m.bytes(),
            Window::Read(v) => v,
        }
    }
}

/// What became of a job's pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Listed as zero.
    pub zero: u64,
    /// Left out as free in A.
    pub free: u64,
    /// Stored.
    pub stored: u64,
}

/// Sorts `bytes`, whole pages of A's memory from page `first_pfn`: free
/// pages are left out, zero pages listed in `zero_runs`, and the rest
/// appended to `pages` with their runs in `runs`.
pub fn sort_pages(bytes: &[u8], first_pfn: u64, free: Option<&FreePages>, runs: &mut Vec<PfnRun>, zero_runs: &mut Vec<PfnRun>, pages: &mut Vec<u8>) -> Counts {
    let mut counts = Counts::default();
    for (i, page) in bytes.chunks_exact(PAGE).enumerate() {
        let pfn = first_pfn + i as u64;
        if free.is_some_and(|f| f.is_free(pfn)) {
            counts.free += 1;
        } else if is_zero(page) {
            counts.zero += 1;
            extend_runs(zero_runs, pfn);
        } else {
            counts.stored += 1;
            extend_runs(runs, pfn);
            pages.extend_from_slice(page);
        }
    }
    counts
}

/// Adds page `pfn` to the last run if it follows it, else starts a run.
fn extend_runs(runs: &mut Vec<PfnRun>, pfn: u64) {
    match runs.last_mut() {
        Some(last) if last.is_followed_by(pfn) => last.count += 1,
        _ => runs.push(PfnRun::new(pfn, 1)),
    }
}

/// Pages of a window to sort into one chunk and encode, with the buffers
/// and the encoder (and its scratch) that do it.
struct EncodeJob {
    index: u64,
    window: Option<Arc<Window>>,
    /// Where the job's pages start in the window.
    at: usize,
    first_pfn: u64,
    n_pages: usize,
    free: Option<Arc<FreePages>>,
    counts: Counts,
    runs: Vec<PfnRun>,
    zero_runs: Vec<PfnRun>,
    pages: Vec<u8>,
    out: Vec<u8>,
    sums: ChunkSums,
    encoder: ChunkEncoder,
}

fn sort_and_encode(job: &mut EncodeJob) {
    job.runs.clear();
    job.zero_runs.clear();
    job.pages.clear();
    job.counts = Counts::default();
    // The window goes back as soon as the pages are sorted.
    if let Some(window) = job.window.take() {
        if let Some(bytes) = window.bytes().get(job.at..job.at + job.n_pages * PAGE) {
            job.counts = sort_pages(bytes, job.first_pfn, job.free.as_deref(), &mut job.runs, &mut job.zero_runs, &mut job.pages);
        }
    }
    job.out.clear();
    job.sums = job.encoder.encode(job.index, &job.runs, &job.zero_runs, &job.pages, &mut job.out);
}

/// Where finished chunks go, in order: (encoded bytes, checksum and tag,
/// what became of the chunk's pages).
pub type Sink<'a> = dyn FnMut(&[u8], &ChunkSums, Counts) -> Result<(), Error> + 'a;

/// Sorts A's pages and encodes them into chunks, on worker threads when
/// there are CPUs for them, and passes the chunks on in order.
pub struct Pipeline {
    compression: Compression,
    sealer: Option<Sealer>,
    free: Option<Arc<FreePages>>,
    ordered: Ordered<EncodeJob>,
    spare: Vec<EncodeJob>,
    next_index: u64,
    waited: std::time::Duration,
}

impl Pipeline {
    /// Bytes one job holds: a chunk's pages, its encoding and the
    /// encoder's scratch.
    pub const BYTES_PER_JOB: u64 = (3 * MAX_CHUNK_PAGES * PAGE + 3 * crate::image::BLOCK) as u64;

    /// A pipeline with `budget.workers` threads (0: everything inline),
    /// leaving out the pages `free` marks, sealing chunks with `sealer`
    /// when the image is encrypted.
    pub fn new(compression: Compression, sealer: Option<Sealer>, free: Option<Arc<FreePages>>, budget: Budget) -> Result<Self, Error> {
        Ok(Pipeline {
            compression,
            sealer,
            free,
            ordered: Ordered::new(budget.workers, budget.in_flight, sort_and_encode, "kjump-encode")?,
            spare: Vec::new(),
            next_index: 0,
            waited: std::time::Duration::ZERO,
        })
    }

    /// How many worker threads there are.
    pub fn workers(&self) -> usize {
        self.ordered.workers()
    }

    /// Time the caller spent waiting for workers to finish chunks.
    pub fn waited(&self) -> std::time::Duration {
        self.waited
    }

    /// Whether every page of `[first_pfn, first_pfn + n)` is free in A.
    pub fn all_free(&self, first_pfn: u64, n: usize) -> bool {
        self.free.as_ref().is_some_and(|f| (0..n as u64).all(|i| f.is_free(first_pfn + i)))
    }

    fn job(&mut self) -> EncodeJob {
        self.spare.pop().unwrap_or_else(|| EncodeJob {
            index: 0,
            window: None,
            at: 0,
            first_pfn: 0,
            n_pages: 0,
            free: None,
            counts: Counts::default(),
            runs: Vec::with_capacity(MAX_CHUNK_PAGES),
            zero_runs: Vec::with_capacity(crate::image::MAX_RUNS),
            pages: Vec::with_capacity(MAX_CHUNK_PAGES * PAGE),
            out: Vec::with_capacity(MAX_CHUNK_PAGES * PAGE + 2 * crate::image::BLOCK),
            sums: ChunkSums::default(),
            encoder: ChunkEncoder::new(self.compression, self.sealer.clone()),
        })
    }

    /// Hands over the `n_pages` pages (at most [`PAGES_PER_JOB`]) at byte
    /// `at` of `window`, page `first_pfn` of A's, and passes every chunk
    /// finished so far, in order, to `sink`. Pages that are all free make
    /// no chunk: their count is returned instead.
    pub fn submit(&mut self, window: &Arc<Window>, at: usize, first_pfn: u64, n_pages: usize, sink: &mut Sink<'_>) -> Result<u64, Error> {
        if n_pages == 0 || n_pages > PAGES_PER_JOB || !matches!(at.checked_add(n_pages * PAGE), Some(end) if end <= window.bytes().len()) {
            return Err(Error::Msg(format!("{n_pages} pages at byte {at} do not fit a job or the window")));
        }
        if self.all_free(first_pfn, n_pages) {
            return Ok(n_pages as u64);
        }
        while self.ordered.is_full() {
            let t = std::time::Instant::now();
            let next = self.ordered.wait_next()?;
            self.waited += t.elapsed();
            if let Some(done) = next {
                self.pass_on(done, sink)?;
            }
        }
        let mut job = self.job();
        job.index = self.next_index;
        self.next_index += 1;
        job.window = Some(Arc::clone(window));
        (job.at, job.first_pfn, job.n_pages, job.free) = (at, first_pfn, n_pages, self.free.clone());
        self.ordered.submit(job)?;
        while let Some(done) = self.ordered.try_next() {
            self.pass_on(done, sink)?;
        }
        Ok(0)
    }

    fn pass_on(&mut self, done: EncodeJob, sink: &mut Sink<'_>) -> Result<(), Error> {
        let r = sink(&done.out, &done.sums, done.counts);
        self.spare.push(done);
        r
    }

    /// Waits for every chunk still being encoded and passes them to `sink`.
    pub fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), Error> {
        loop {
            let t = std::time::Instant::now();
            let next = self.ordered.wait_next()?;
            self.waited += t.elapsed();
            let Some(done) = next else { break };
            self.pass_on(done, sink)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{decode_chunk, parse_chunk_header};

    /// A's memory for the tests: `n` pages from page `FIRST`; every
    /// seventh zero, the rest patterned by their number.
    const FIRST: u64 = 0x100;

    fn memory(n: usize) -> Vec<u8> {
        let mut m = vec![0u8; n * PAGE];
        for (i, page) in m.chunks_exact_mut(PAGE).enumerate() {
            if i % 7 != 0 {
                page.iter_mut().enumerate().for_each(|(b, x)| *x = 1 + ((b * (i + 3)) % 250) as u8);
            }
        }
        m
    }

    /// Every chunk the pipeline makes of `memory(n)`, in order, and the
    /// free pages it skipped.
    fn chunks(workers: usize, n: usize, free: &[u64], sealer: Option<&Sealer>) -> (Vec<(Vec<u8>, ChunkSums, Counts)>, u64) {
        let free = Arc::new(FreePages::of(free, FIRST + n as u64));
        let mut p = Pipeline::new(Compression::Lz4, sealer.cloned(), Some(free), Budget { workers, in_flight: workers * IN_FLIGHT_PER_WORKER }).unwrap();
        let window = Arc::new(Window::Read(memory(n)));
        let mut got = Vec::new();
        let mut sink = |b: &[u8], sums: &ChunkSums, c: Counts| {
            got.push((b.to_vec(), *sums, c));
            Ok(())
        };
        let mut skipped = 0;
        for first in (0..n).step_by(PAGES_PER_JOB) {
            let k = PAGES_PER_JOB.min(n - first);
            skipped += p.submit(&window, first * PAGE, FIRST + first as u64, k, &mut sink).unwrap();
        }
        p.finish(&mut sink).unwrap();
        (got, skipped)
    }

    fn sealer(seed: u8) -> Sealer {
        let key = crate::image::seal::DataKey::from_bytes([seed; 32]);
        Sealer { keys: Arc::new(crate::image::seal::Keys::derive(&key, crate::image::seal::ImageId([seed; 16]))), salt: [seed; 16] }
    }

    #[test]
    fn workers_give_the_same_chunks_in_order_as_inline() {
        workers_give_the_same_chunks(None);
    }

    #[test]
    fn sealed_chunks_hide_the_pages_and_open_with_their_key_only() {
        let s = sealer(3);
        workers_give_the_same_chunks(Some(&s));
        let n = PAGES_PER_JOB;
        let (chunks, _) = chunks(0, n, &[], Some(&s));
        let page = &memory(n)[PAGE..2 * PAGE];
        for (i, (bytes, sums, _)) in chunks.iter().enumerate() {
            assert!(!bytes.windows(64).any(|w| w == &page[..64]), "a page in the clear");
            assert_ne!(sums.tag, [0; 16]);
            let info = parse_chunk_header(bytes, i as u64).unwrap();
            let mut bufs = crate::image::ChunkBufs::default();
            let e = decode_chunk(bytes, &info, &mut bufs, Some(&sealer(4))).unwrap_err();
            assert_eq!(e, crate::image::Error::BadTag { chunk: i as u64 });
            assert!(decode_chunk(bytes, &info, &mut bufs, None).is_err(), "sealed bytes decompressed as they are");
        }
    }

    fn workers_give_the_same_chunks(sealer: Option<&Sealer>) {
        let n = 3 * PAGES_PER_JOB + 17;
        // Pages 5, 6 and the whole second job are free.
        let free: Vec<u64> = [FIRST + 5, FIRST + 6].into_iter().chain((0..PAGES_PER_JOB as u64).map(|i| FIRST + PAGES_PER_JOB as u64 + i)).collect();
        let (inline, skipped) = chunks(0, n, &free, sealer);
        assert_eq!(skipped, PAGES_PER_JOB as u64, "an all-free job makes no chunk");
        assert_eq!(inline.len(), 3);
        for workers in [1, 2, 3] {
            assert_eq!(chunks(workers, n, &free, sealer), (inline.clone(), skipped), "{workers} workers");
        }
        // Decoded, the chunks give back every page that is not free, zero
        // pages as zero runs.
        let memory = memory(n);
        let mut bufs = crate::image::ChunkBufs::default();
        let mut seen = Counts::default();
        for (i, (bytes, sums, counts)) in inline.iter().enumerate() {
            let info = parse_chunk_header(bytes, i as u64).unwrap();
            assert_eq!((info.data_sum, info.tag), (sums.sum, sums.tag));
            decode_chunk(bytes, &info, &mut bufs, sealer).unwrap();
            let (runs, zero_runs, pages) = (&bufs.runs, &bufs.zero_runs, &bufs.pages);
            let mut at = 0;
            for &PfnRun { first: pfn, count: k } in runs {
                for p in pfn..pfn + k {
                    let i = (p - FIRST) as usize;
                    assert_eq!(&pages[at..at + PAGE], &memory[i * PAGE..(i + 1) * PAGE], "page {p:#x}");
                    assert!(i % 7 != 0 && !free.contains(&p));
                    at += PAGE;
                }
            }
            for &PfnRun { first: pfn, count: k } in zero_runs {
                assert!((pfn..pfn + k).all(|p| (p - FIRST) % 7 == 0 && !free.contains(&p)));
            }
            assert_eq!(counts.stored, runs.iter().map(|r| r.count).sum::<u64>());
            assert_eq!(counts.zero, zero_runs.iter().map(|r| r.count).sum::<u64>());
            seen.zero += counts.zero;
            seen.free += counts.free;
            seen.stored += counts.stored;
        }
        assert_eq!(seen.free + skipped, free.len() as u64);
        assert_eq!(seen.zero + seen.free + seen.stored + skipped, n as u64);
    }

    #[test]
    fn sort_pages_keeps_runs_within_a_chunk() {
        // Alternating zero and stored pages: the most runs a job can make.
        let mut m = vec![0u8; PAGES_PER_JOB * PAGE];
        for page in m.chunks_exact_mut(PAGE).skip(1).step_by(2) {
            page[0] = 1;
        }
        let (mut runs, mut zero_runs, mut pages) = (Vec::new(), Vec::new(), Vec::new());
        let c = sort_pages(&m, 0, None, &mut runs, &mut zero_runs, &mut pages);
        assert_eq!((c.zero, c.stored, c.free), (PAGES_PER_JOB as u64 / 2, PAGES_PER_JOB as u64 / 2, 0));
        assert!(runs.len() <= crate::image::MAX_RUNS && zero_runs.len() <= crate::image::MAX_RUNS);
        assert_eq!(pages.len(), PAGES_PER_JOB / 2 * PAGE);
    }

    #[test]
    fn a_job_outside_its_window_is_refused() {
        let mut p = Pipeline::new(Compression::Lz4, None, None, Budget { workers: 0, in_flight: 0 }).unwrap();
        let window = Arc::new(Window::Read(vec![1u8; 4 * PAGE]));
        let mut sink = |_: &[u8], _: &ChunkSums, _: Counts| Ok(());
        assert!(p.submit(&window, PAGE, 0, 4, &mut sink).is_err());
        assert!(p.submit(&window, 0, 0, 0, &mut sink).is_err());
        assert!(p.submit(&window, usize::MAX, 0, 1, &mut sink).is_err());
        assert_eq!(p.submit(&window, 0, 0, 4, &mut sink).unwrap(), 0);
    }

    #[test]
    fn a_failing_sink_stops_the_pipeline() {
        let mut p = Pipeline::new(Compression::Lz4, None, None, Budget { workers: 2, in_flight: 2 * IN_FLIGHT_PER_WORKER }).unwrap();
        let window = Arc::new(Window::Read(memory(20)));
        let mut calls = 0;
        let mut sink = |_: &[u8], _: &ChunkSums, _: Counts| {
            calls += 1;
            if calls == 3 {
                Err(Error::Msg("disk full".into()))
            } else {
                Ok(())
            }
        };
        let mut failed = false;
        for i in 0..20usize {
            if p.submit(&window, i * PAGE, i as u64, 1, &mut sink).is_err() {
                failed = true;
                break;
            }
        }
        failed = failed || p.finish(&mut sink).is_err();
        assert!(failed);
    }

    #[test]
    fn ordered_keeps_order_whatever_the_workers_do() {
        fn slow_on_even(j: &mut (u64, u64)) {
            if j.0 % 2 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            j.1 = j.0 * j.0;
        }
        for workers in [0, 1, 3] {
            let mut o = Ordered::new(workers, workers * IN_FLIGHT_PER_WORKER, slow_on_even, "test").unwrap();
            let mut got = Vec::new();
            for i in 0..30u64 {
                while o.is_full() {
                    got.push(o.wait_next().unwrap().unwrap());
                }
                o.submit((i, 0)).unwrap();
            }
            while let Some(j) = o.wait_next().unwrap() {
                got.push(j);
            }
            assert_eq!(got, (0..30u64).map(|i| (i, i * i)).collect::<Vec<_>>(), "{workers} workers");
        }
    }

    #[test]
    fn ordered_holds_no_more_jobs_than_its_slots_while_one_is_slow() {
        // Job 0 takes long; the other worker finishes the rest at once.
        // Finished jobs wait for job 0 and must not make room for more.
        fn slow_first(j: &mut (u64, u64)) {
            if j.0 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            j.1 = j.0 + 1;
        }
        let max = 4;
        let mut o = Ordered::new(2, max, slow_first, "test").unwrap();
        let (mut most, mut got) = (0, Vec::new());
        for i in 0..40u64 {
            while o.is_full() {
                got.push(o.wait_next().unwrap().unwrap());
            }
            o.submit((i, 0)).unwrap();
            most = most.max(o.outstanding());
            while let Some(j) = o.try_next() {
                got.push(j);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        while let Some(j) = o.wait_next().unwrap() {
            got.push(j);
        }
        assert_eq!(got, (0..40u64).map(|i| (i, i + 1)).collect::<Vec<_>>());
        assert!(most <= max, "{most} jobs held at once, {max} slots");
    }

    #[test]
    fn budget_fits_free_memory() {
        const MIB: u64 = 1 << 20;
        let job = Pipeline::BYTES_PER_JOB;
        // Plenty: every worker gets its full share.
        assert_eq!(Budget::fit(2, 1024 * MIB, 16 * MIB, job).ok(), Some(Budget { workers: 2, in_flight: 2 * IN_FLIGHT_PER_WORKER }));
        // Tighter: fewer jobs in flight, still one per worker.
        let tight = 16 * MIB + KERNEL_RESERVE + 4 * job;
        assert_eq!(Budget::fit(2, tight, 16 * MIB, job).ok(), Some(Budget { workers: 2, in_flight: 3 }));
        // Tighter still: one worker, then inline.
        assert_eq!(Budget::fit(4, 16 * MIB + KERNEL_RESERVE + 2 * job + 1, 16 * MIB, job).ok(), Some(Budget { workers: 1, in_flight: 1 }));
        assert_eq!(Budget::fit(2, 16 * MIB + KERNEL_RESERVE + job, 16 * MIB, job).ok(), Some(Budget { workers: 0, in_flight: 0 }));
        assert_eq!(Budget::fit(0, 1024 * MIB, 16 * MIB, job).ok(), Some(Budget { workers: 0, in_flight: 0 }));
        // Too little: an error that says what to do, not an OOM later.
        let e = Budget::fit(2, 20 * MIB, 16 * MIB, job).unwrap_err();
        assert!(e.to_string().contains("has 20 MiB of free memory") && e.to_string().contains("--region-size"), "{e}");
        assert!(Budget::fit(2, 0, u64::MAX, job).is_err());
    }
}
