//! Work spread over every CPU the hibernation kernel has, handed back in
//! order: B compresses and checksums chunks while its main thread reads
//! A's memory and writes the image ([`Pipeline`]); D checks and unpacks
//! chunks while its main thread reads the image and writes A's memory
//! (through [`Ordered`] directly).
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

use crate::image::{ChunkEncoder, Compression, Run, MAX_CHUNK_PAGES, PAGE};
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
        match workers {
            _ if workers > 0 && in_flight >= workers => Ok(Budget { workers, in_flight }),
            _ if workers > 1 && in_flight >= 1 => Ok(Budget { workers: in_flight, in_flight }),
            _ if usable >= per_job => Ok(Budget { workers: 0, in_flight: 0 }),
            _ => Err(Error::Msg(format!(
                "this kernel has {} MiB of free memory and needs {} MiB; give it a larger --region-size",
                available >> 20,
                (fixed + KERNEL_RESERVE + per_job).div_ceil(1 << 20)
            ))),
        }
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
        let mut o = Ordered {
            work,
            jobs: None,
            done: None,
            workers: Vec::new(),
            pending: BTreeMap::new(),
            next_in: 0,
            next_out: 0,
            in_flight: 0,
            max_in_flight,
        };
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

    /// Whether [`Ordered::submit`] should wait: every slot is taken.
    pub fn is_full(&self) -> bool {
        if self.workers.is_empty() {
            !self.pending.is_empty()
        } else {
            self.in_flight >= self.max_in_flight
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
    pub fn next(&mut self) -> Result<Option<J>, Error> {
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
// B: chunks encoded in parallel.

/// A chunk to encode, with the encoder (and its scratch) that does it.
struct EncodeJob {
    index: u64,
    runs: Vec<Run>,
    zero_runs: Vec<Run>,
    pages: Vec<u8>,
    out: Vec<u8>,
    crc: u32,
    encoder: ChunkEncoder,
}

fn encode(job: &mut EncodeJob) {
    job.out.clear();
    job.crc = job.encoder.encode(job.index, &job.runs, &job.zero_runs, &job.pages, &mut job.out);
}

/// Encodes chunks, on worker threads when there are CPUs for them, and
/// passes them on in order.
pub struct Pipeline {
    compression: Compression,
    ordered: Ordered<EncodeJob>,
    spare: Vec<EncodeJob>,
    next_index: u64,
    waited: std::time::Duration,
}

impl Pipeline {
    /// Bytes one job holds: a chunk's pages, its encoding and the
    /// encoder's scratch.
    pub const BYTES_PER_JOB: u64 = (3 * MAX_CHUNK_PAGES * PAGE + 3 * crate::image::BLOCK) as u64;

    /// A pipeline with `budget.workers` threads (0: everything inline).
    pub fn new(compression: Compression, budget: Budget) -> Result<Self, Error> {
        Ok(Pipeline { compression, ordered: Ordered::new(budget.workers, budget.in_flight, encode, "kjump-encode")?, spare: Vec::new(), next_index: 0, waited: std::time::Duration::ZERO })
    }

    /// How many worker threads there are.
    pub fn workers(&self) -> usize {
        self.ordered.workers()
    }

    /// Time the caller spent waiting for workers to finish chunks.
    pub fn waited(&self) -> std::time::Duration {
        self.waited
    }

    fn job(&mut self) -> EncodeJob {
        self.spare.pop().unwrap_or_else(|| EncodeJob {
            index: 0,
            runs: Vec::with_capacity(MAX_CHUNK_PAGES),
            zero_runs: Vec::with_capacity(crate::image::MAX_RUNS),
            pages: Vec::with_capacity(MAX_CHUNK_PAGES * PAGE),
            out: Vec::with_capacity(MAX_CHUNK_PAGES * PAGE + 2 * crate::image::BLOCK),
            crc: 0,
            encoder: ChunkEncoder::new(self.compression),
        })
    }

    /// Takes the chunk in `runs`, `zero_runs` and `pages` (leaving them
    /// empty, ready for the next) and passes every chunk finished so far,
    /// in order, to `sink` as (encoded bytes, data CRC).
    pub fn submit(&mut self, runs: &mut Vec<Run>, zero_runs: &mut Vec<Run>, pages: &mut Vec<u8>, sink: &mut dyn FnMut(&[u8], u32) -> Result<(), Error>) -> Result<(), Error> {
        while self.ordered.is_full() {
            let t = std::time::Instant::now();
            let next = self.ordered.next()?;
            self.waited += t.elapsed();
            if let Some(done) = next {
                let r = sink(&done.out, done.crc);
                self.spare.push(done);
                r?;
            }
        }
        let mut job = self.job();
        job.index = self.next_index;
        self.next_index += 1;
        std::mem::swap(&mut job.runs, runs);
        std::mem::swap(&mut job.zero_runs, zero_runs);
        std::mem::swap(&mut job.pages, pages);
        runs.clear();
        zero_runs.clear();
        pages.clear();
        self.ordered.submit(job)?;
        while let Some(done) = self.ordered.try_next() {
            let r = sink(&done.out, done.crc);
            self.spare.push(done);
            r?;
        }
        Ok(())
    }

    /// Waits for every chunk still being encoded and passes them to `sink`.
    pub fn finish(&mut self, sink: &mut dyn FnMut(&[u8], u32) -> Result<(), Error>) -> Result<(), Error> {
        loop {
            let t = std::time::Instant::now();
            let next = self.ordered.next()?;
            self.waited += t.elapsed();
            let Some(done) = next else { break };
            let r = sink(&done.out, done.crc);
            self.spare.push(done);
            r?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{decode_chunk, parse_chunk_header};

    fn chunks(workers: usize, n: u64) -> Vec<(Vec<u8>, u32)> {
        let mut p = Pipeline::new(Compression::Lz4, Budget { workers, in_flight: workers * IN_FLIGHT_PER_WORKER }).unwrap();
        let mut got = Vec::new();
        let mut sink = |b: &[u8], crc: u32| {
            got.push((b.to_vec(), crc));
            Ok(())
        };
        for i in 0..n {
            let mut runs = vec![(i * 10, 2)];
            let mut pages: Vec<u8> = (0..2 * PAGE).map(|b| ((b as u64 * (i + 1)) % 251) as u8).collect();
            p.submit(&mut runs, &mut Vec::new(), &mut pages, &mut sink).unwrap();
            assert!(runs.is_empty() && pages.is_empty());
        }
        p.finish(&mut sink).unwrap();
        got
    }

    #[test]
    fn workers_give_the_same_chunks_in_order_as_inline() {
        let inline = chunks(0, 40);
        assert_eq!(inline.len(), 40);
        for workers in [1, 2, 3] {
            assert_eq!(chunks(workers, 40), inline, "{workers} workers");
        }
        let (mut runs, mut pages) = (Vec::new(), Vec::new());
        for (i, (bytes, crc)) in inline.iter().enumerate() {
            let info = parse_chunk_header(bytes, i as u64).unwrap();
            assert_eq!(info.data_crc, *crc);
            decode_chunk(bytes, &info, &mut runs, &mut Vec::new(), &mut pages).unwrap();
            assert_eq!(runs, vec![(i as u64 * 10, 2)]);
        }
    }

    #[test]
    fn a_failing_sink_stops_the_pipeline() {
        let mut p = Pipeline::new(Compression::Lz4, Budget { workers: 2, in_flight: 2 * IN_FLIGHT_PER_WORKER }).unwrap();
        let mut calls = 0;
        let mut sink = |_: &[u8], _: u32| {
            calls += 1;
            if calls == 3 {
                Err(Error::Msg("disk full".into()))
            } else {
                Ok(())
            }
        };
        let mut failed = false;
        for i in 0..20u64 {
            let (mut runs, mut pages) = (vec![(i, 1)], vec![7u8; PAGE]);
            if p.submit(&mut runs, &mut Vec::new(), &mut pages, &mut sink).is_err() {
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
                    got.push(o.next().unwrap().unwrap());
                }
                o.submit((i, 0)).unwrap();
            }
            while let Some(j) = o.next().unwrap() {
                got.push(j);
            }
            assert_eq!(got, (0..30u64).map(|i| (i, i * i)).collect::<Vec<_>>(), "{workers} workers");
        }
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
