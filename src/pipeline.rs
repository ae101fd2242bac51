//! Chunks compressed and checksummed on every CPU the hibernation kernel
//! has, and handed on in order.
//!
//! B's main thread reads A's memory and gathers pages into chunks; with
//! more than one CPU, worker threads compress and checksum them while the
//! main thread reads the next ones and writes the finished ones. With one
//! CPU everything happens inline, as before. Buffers go round in a fixed
//! set: at most [`IN_FLIGHT_PER_WORKER`] chunks per worker are out at once.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::image::{ChunkEncoder, Compression, Run, MAX_CHUNK_PAGES, PAGE};
use crate::Error;

/// Chunks given to each worker before the main thread waits.
pub const IN_FLIGHT_PER_WORKER: usize = 3;

/// A chunk to encode.
struct Job {
    index: u64,
    runs: Vec<Run>,
    pages: Vec<u8>,
    out: Vec<u8>,
}

/// An encoded chunk (in `job.out`) with its data CRC.
struct Done {
    job: Job,
    crc: u32,
}

/// Encodes chunks, on worker threads when there are CPUs for them.
pub struct Pipeline {
    compression: Compression,
    inline: ChunkEncoder,
    inline_out: Vec<u8>,
    jobs: Option<SyncSender<Job>>,
    done: Option<Receiver<Done>>,
    workers: Vec<JoinHandle<()>>,
    spare: Vec<Job>,
    pending: BTreeMap<u64, Done>,
    next_index: u64,
    next_out: u64,
    in_flight: usize,
    max_in_flight: usize,
}

fn empty_job() -> Job {
    Job {
        index: 0,
        runs: Vec::with_capacity(MAX_CHUNK_PAGES),
        pages: Vec::with_capacity(MAX_CHUNK_PAGES * PAGE),
        out: Vec::with_capacity(MAX_CHUNK_PAGES * PAGE + 2 * crate::image::BLOCK),
    }
}

impl Pipeline {
    /// A pipeline with `workers` threads (0: everything inline).
    pub fn new(compression: Compression, workers: usize) -> Result<Self, Error> {
        let mut p = Pipeline {
            compression,
            inline: ChunkEncoder::new(compression),
            inline_out: Vec::new(),
            jobs: None,
            done: None,
            workers: Vec::new(),
            spare: Vec::new(),
            pending: BTreeMap::new(),
            next_index: 0,
            next_out: 0,
            in_flight: 0,
            max_in_flight: workers * IN_FLIGHT_PER_WORKER,
        };
        if workers == 0 {
            return Ok(p);
        }
        let (job_tx, job_rx) = sync_channel::<Job>(p.max_in_flight);
        let (done_tx, done_rx) = sync_channel::<Done>(p.max_in_flight);
        let job_rx = Arc::new(Mutex::new(job_rx));
        for n in 0..workers {
            let (rx, tx) = (Arc::clone(&job_rx), done_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("kjump-encode-{n}"))
                .spawn(move || work(compression, &rx, &tx))
                .map_err(|e| Error::io("starting a compression thread", e))?;
            p.workers.push(handle);
        }
        p.jobs = Some(job_tx);
        p.done = Some(done_rx);
        p.spare = (0..p.max_in_flight).map(|_| empty_job()).collect();
        Ok(p)
    }

    /// How many worker threads there are.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The compression chunks are asked for.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Takes the chunk in `runs` and `pages` (leaving them empty, ready
    /// for the next) and passes every chunk finished so far, in order, to
    /// `sink` as (encoded bytes, data CRC).
    pub fn submit(&mut self, runs: &mut Vec<Run>, pages: &mut Vec<u8>, sink: &mut dyn FnMut(&[u8], u32) -> Result<(), Error>) -> Result<(), Error> {
        let index = self.next_index;
        self.next_index += 1;
        if self.jobs.is_none() {
            let mut out = std::mem::take(&mut self.inline_out);
            out.clear();
            let crc = self.inline.encode(index, runs, pages, &mut out);
            runs.clear();
            pages.clear();
            self.next_out += 1;
            let r = sink(&out, crc);
            self.inline_out = out;
            return r;
        }
        while self.in_flight >= self.max_in_flight {
            self.receive_one()?;
            self.drain_in_order(sink)?;
        }
        let mut job = self.spare.pop().unwrap_or_else(empty_job);
        job.index = index;
        std::mem::swap(&mut job.runs, runs);
        std::mem::swap(&mut job.pages, pages);
        runs.clear();
        pages.clear();
        let jobs = self.jobs.as_ref().ok_or_else(|| Error::Msg("no compression threads".into()))?;
        jobs.send(job).map_err(|_| Error::Msg("a compression thread stopped".into()))?;
        self.in_flight += 1;
        while let Some(done) = self.done.as_ref().and_then(|d| d.try_recv().ok()) {
            self.accept(done);
        }
        self.drain_in_order(sink)
    }

    /// Waits for every chunk still being encoded and passes them to `sink`.
    pub fn finish(&mut self, sink: &mut dyn FnMut(&[u8], u32) -> Result<(), Error>) -> Result<(), Error> {
        while self.in_flight > 0 {
            self.receive_one()?;
            self.drain_in_order(sink)?;
        }
        self.drain_in_order(sink)?;
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        Ok(())
    }

    fn receive_one(&mut self) -> Result<(), Error> {
        let done = self
            .done
            .as_ref()
            .ok_or_else(|| Error::Msg("no compression threads".into()))?
            .recv()
            .map_err(|_| Error::Msg("a compression thread stopped".into()))?;
        self.accept(done);
        Ok(())
    }

    fn accept(&mut self, done: Done) {
        self.in_flight -= 1;
        self.pending.insert(done.job.index, done);
    }

    fn drain_in_order(&mut self, sink: &mut dyn FnMut(&[u8], u32) -> Result<(), Error>) -> Result<(), Error> {
        while let Some(done) = self.pending.remove(&self.next_out) {
            self.next_out += 1;
            let r = sink(&done.job.out, done.crc);
            self.spare.push(done.job);
            r?;
        }
        Ok(())
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.jobs = None;
        self.done = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A worker: encodes jobs until the pipeline closes.
fn work(compression: Compression, jobs: &Mutex<Receiver<Job>>, done: &SyncSender<Done>) {
    let mut encoder = ChunkEncoder::new(compression);
    loop {
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = next else { return };
        job.out.clear();
        let crc = encoder.encode(job.index, &job.runs, &job.pages, &mut job.out);
        if done.send(Done { job, crc }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{decode_chunk, parse_chunk_header};

    fn chunks(workers: usize, n: u64) -> Vec<(Vec<u8>, u32)> {
        let mut p = Pipeline::new(Compression::Lz4, workers).unwrap();
        let mut got = Vec::new();
        let mut sink = |b: &[u8], crc: u32| {
            got.push((b.to_vec(), crc));
            Ok(())
        };
        for i in 0..n {
            let mut runs = vec![(i * 10, 2)];
            let mut pages: Vec<u8> = (0..2 * PAGE).map(|b| ((b as u64 * (i + 1)) % 251) as u8).collect();
            p.submit(&mut runs, &mut pages, &mut sink).unwrap();
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
            decode_chunk(bytes, &info, &mut runs, &mut pages).unwrap();
            assert_eq!(runs, vec![(i as u64 * 10, 2)]);
        }
    }

    #[test]
    fn a_failing_sink_stops_the_pipeline() {
        let mut p = Pipeline::new(Compression::Lz4, 2).unwrap();
        let mut calls = 0;
        let mut sink = |_: &[u8], _: u32| {
            calls += 1;
            if calls == 3 { Err(Error::Msg("disk full".into())) } else { Ok(()) }
        };
        let mut failed = false;
        for i in 0..20u64 {
            let (mut runs, mut pages) = (vec![(i, 1)], vec![7u8; PAGE]);
            if p.submit(&mut runs, &mut pages, &mut sink).is_err() {
                failed = true;
                break;
            }
        }
        failed = failed || p.finish(&mut sink).is_err();
        assert!(failed);
    }
}
