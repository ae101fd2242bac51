//! Writing the image's data around the page cache: page-aligned buffers
//! ([`Aligned`]) and a writer thread ([`BatchWriter`]) that takes large
//! batches with `O_DIRECT` while the caller fills the next one.
//!
//! B runs in a small region of RAM. Buffered writes would fill it with
//! dirty page cache that only writeback can free; with `O_DIRECT` B's
//! memory use is its own fixed buffers, whatever the image's size. Two
//! batches go round: one being filled, one being written.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use rustix::fs::{Mode, OFlags};

use crate::sys::mapping::Mapping;
use crate::Error;

/// The alignment `O_DIRECT` asks of buffers, offsets and lengths (the
/// largest logical block size in use).
pub const ALIGN: usize = 4096;

/// A page-aligned buffer of `len` bytes, zero-filled, its own anonymous
/// mapping (what `O_DIRECT` needs; untouched pages cost no memory).
pub struct Aligned(Mapping);

impl Aligned {
    /// Maps `len` bytes.
    pub fn new(len: usize) -> Result<Self, Error> {
        Ok(Aligned(Mapping::anonymous(len).map_err(|e| Error::sys("mapping an I/O buffer", e))?))
    }

    /// The whole buffer, to read.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.bytes()
    }

    /// The whole buffer.
    pub fn bytes(&mut self) -> &mut [u8] {
        self.0.bytes_mut()
    }
}

/// Opens a second handle on the open file `f` with `O_DIRECT` (through
/// `/proc/self/fd`, so a file on a mounted filesystem works too). `None`
/// where the file or its filesystem does not take `O_DIRECT` (tmpfs).
/// `write` opens it for writing, else for reading.
pub fn reopen_direct(f: &File, write: bool) -> Option<OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", f.as_raw_fd());
    let access = if write { OFlags::WRONLY } else { OFlags::RDONLY };
    rustix::fs::open(path.as_str(), access | OFlags::DIRECT | OFlags::CLOEXEC, Mode::empty()).ok()
}

/// A handle on `file` with `O_DIRECT` where it takes it (and `true`),
/// else a duplicate of `file`'s own (and `false`).
fn direct_or_buffered(file: &File, write: bool) -> Result<(OwnedFd, bool), Error> {
    match reopen_direct(file, write) {
        Some(fd) => Ok((fd, true)),
        None => Ok((file.as_fd().try_clone_to_owned().map_err(|e| Error::io("duplicating the target's handle", e))?, false)),
    }
}

/// Bytes of a file read with one large aligned read, shared read-only
/// by the jobs that decode them (on other threads) through an `Arc`.
pub struct ReadBatch {
    buf: Aligned,
    at: u64,
    len: usize,
}

impl ReadBatch {
    /// The bytes `[at, at + len)` of the file, if this batch holds them all.
    pub fn get(&self, at: u64, len: usize) -> Option<&[u8]> {
        let from = usize::try_from(at.checked_sub(self.at)?).ok()?;
        self.buf.as_bytes()[..self.len].get(from..from.checked_add(len)?)
    }
}

/// A file read in large batches with `O_DIRECT` where it takes it (no
/// page cache filling a small kernel's memory, no copy out of it), a
/// fixed few going round: a batch is read into again only once nothing
/// else holds it.
pub struct BatchReader {
    fd: OwnedFd,
    pool: Vec<std::sync::Arc<ReadBatch>>,
}

impl BatchReader {
    /// Reads `file` in `batches` batches of `size` bytes (a multiple of [`ALIGN`]).
    pub fn new(file: &File, batches: usize, size: usize) -> Result<Self, Error> {
        let (fd, _) = direct_or_buffered(file, false)?;
        let size = size.next_multiple_of(ALIGN);
        let pool =
            (0..batches.max(1)).map(|_| Aligned::new(size).map(|buf| std::sync::Arc::new(ReadBatch { buf, at: 0, len: 0 }))).collect::<Result<_, _>>()?;
        Ok(BatchReader { fd, pool })
    }

    /// A batch of the file from `at` (a multiple of [`ALIGN`]), as much as
    /// fits but nothing at or past `end` (rounded up to [`ALIGN`]), read
    /// into a batch nothing else holds: `None` while every batch is still
    /// held. Less where the file ends.
    pub fn read(&mut self, at: u64, end: u64) -> Result<Option<std::sync::Arc<ReadBatch>>, Error> {
        if at % ALIGN as u64 != 0 {
            return Err(Error::Msg(format!("reading image data at byte {at}: not aligned to {ALIGN} bytes")));
        }
        let Some(i) = (0..self.pool.len()).find(|&i| std::sync::Arc::get_mut(&mut self.pool[i]).is_some()) else { return Ok(None) };
        let Some(batch) = std::sync::Arc::get_mut(&mut self.pool[i]) else { return Ok(None) };
        // The buffer's length is a multiple of ALIGN, so rounding up stays within it.
        let want = (end.saturating_sub(at).min(batch.buf.as_bytes().len() as u64) as usize).next_multiple_of(ALIGN);
        (batch.at, batch.len) = (at, 0);
        while batch.len < want {
            let from = at + batch.len as u64;
            let n = rustix::io::pread(&self.fd, &mut batch.buf.bytes()[batch.len..want], from)
                .map_err(|e| Error::sys(format!("reading image data at byte {from}"), e))?;
            if n == 0 {
                break;
            }
            batch.len += n;
        }
        Ok(Some(std::sync::Arc::clone(&self.pool[i])))
    }
}

/// One batch: a buffer, how much of it is filled, and where it goes.
struct Batch {
    buf: Aligned,
    len: usize,
    at: u64,
}

/// Data appended in order from `start`, written in batches of up to
/// `batch` bytes by a thread of its own.
pub struct BatchWriter {
    /// Batches to write (closed when finishing).
    full: Option<SyncSender<Batch>>,
    /// Batches written, to fill again.
    empty: Receiver<Batch>,
    writer: Option<JoinHandle<Result<(), Error>>>,
    /// The batch being filled (`None` only after an error took it).
    current: Option<Batch>,
    /// Where the next byte goes.
    pos: u64,
    direct: bool,
    /// Time spent waiting for the writer to free a batch.
    waited: std::time::Duration,
}

fn write_batch(fd: &impl AsFd, b: &mut Batch) -> Result<(), Error> {
    let mut done = 0;
    while done < b.len {
        let at = b.at + done as u64;
        let n = rustix::io::pwrite(fd, &b.buf.bytes()[done..b.len], at).map_err(|e| Error::sys(format!("writing image data at byte {at}"), e))?;
        if n == 0 {
            return Err(Error::Msg(format!("writing image data at byte {at}: the target is full")));
        }
        done += n;
    }
    Ok(())
}

impl BatchWriter {
    /// Starts writing `file` at byte `start` (a multiple of [`ALIGN`]) in
    /// batches of `batch` bytes (a multiple of [`ALIGN`]), with `O_DIRECT`
    /// where the file takes it, buffered through `file` where not.
    pub fn new(file: &File, start: u64, batch: usize) -> Result<Self, Error> {
        let (fd, direct) = direct_or_buffered(file, true)?;
        let (full_tx, full_rx) = sync_channel::<Batch>(1);
        let (empty_tx, empty_rx) = sync_channel::<Batch>(2);
        empty_tx.send(Batch { buf: Aligned::new(batch)?, len: 0, at: 0 }).map_err(|_| Error::Msg("starting the image writer".into()))?;
        let writer = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || -> Result<(), Error> {
                for mut b in full_rx {
                    write_batch(&fd, &mut b)?;
                    // The owner may be gone (it stopped on an error of its own).
                    let _ = empty_tx.send(b);
                }
                Ok(())
            })
            .map_err(|e| Error::io("starting the image writer thread", e))?;
        Ok(BatchWriter {
            full: Some(full_tx),
            empty: empty_rx,
            writer: Some(writer),
            current: Some(Batch { buf: Aligned::new(batch)?, len: 0, at: start }),
            pos: start,
            direct,
            waited: std::time::Duration::ZERO,
        })
    }

    /// Whether data goes around the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Where the next byte goes.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Appends `data` (at most one batch, a multiple of [`ALIGN`] when
    /// writing directly), handing the batch to the writer first if it
    /// would not fit.
    pub fn append(&mut self, data: &[u8]) -> Result<(), Error> {
        let cur = self.current.as_mut().ok_or_else(|| Error::Msg("the image writer stopped".into()))?;
        if data.len() > cur.buf.as_bytes().len() {
            return Err(Error::Msg(format!("{} bytes do not fit an image write batch", data.len())));
        }
        if cur.len + data.len() > cur.buf.as_bytes().len() {
            self.hand_over()?;
        }
        let cur = self.current.as_mut().ok_or_else(|| Error::Msg("the image writer stopped".into()))?;
        cur.buf.bytes()[cur.len..cur.len + data.len()].copy_from_slice(data);
        cur.len += data.len();
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Sends the current batch to the writer and takes an empty one.
    fn hand_over(&mut self) -> Result<(), Error> {
        let Some(b) = self.current.take() else { return Err(Error::Msg("the image writer stopped".into())) };
        if b.len == 0 {
            self.current = Some(b);
            return Ok(());
        }
        let next_at = b.at + b.len as u64;
        let t = std::time::Instant::now();
        let sent = self.full.as_ref().is_some_and(|tx| tx.send(b).is_ok());
        let empty = self.empty.recv();
        self.waited += t.elapsed();
        match (sent, empty) {
            (true, Ok(mut e)) => {
                e.len = 0;
                e.at = next_at;
                self.current = Some(e);
                Ok(())
            }
            _ => Err(self.stop().err().unwrap_or_else(|| Error::Msg("the image writer stopped".into()))),
        }
    }

    /// Writes what is left and waits for the writer: every byte appended
    /// is then with the kernel (not yet flushed). Returns the end position
    /// and the time spent waiting for the disk, this last wait included.
    pub fn finish(mut self) -> Result<(u64, std::time::Duration), Error> {
        self.hand_over()?;
        let t = std::time::Instant::now();
        self.stop()?;
        Ok((self.pos, self.waited + t.elapsed()))
    }

    /// Closes the queue and collects the writer's result.
    fn stop(&mut self) -> Result<(), Error> {
        self.full = None;
        match self.writer.take() {
            Some(h) => h.join().map_err(|_| Error::Msg("the image writer thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for BatchWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn temp(name: &str) -> std::path::PathBuf {
        // Not tmpfs where possible, so O_DIRECT is exercised.
        let dir = if std::path::Path::new("/var/tmp").is_dir() { std::path::PathBuf::from("/var/tmp") } else { std::env::temp_dir() };
        dir.join(format!("kjump-direct-{name}-{}", std::process::id()))
    }

    #[test]
    fn writes_every_byte_in_order() {
        let path = temp("order");
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.write_all_at(&[0xee; ALIGN], 0).unwrap();
        let mut w = BatchWriter::new(&f, ALIGN as u64, 4 * ALIGN).unwrap();
        let mut expect = Vec::new();
        for i in 0..23u8 {
            let block = vec![i; ALIGN * (1 + i as usize % 3)];
            w.append(&block).unwrap();
            expect.extend_from_slice(&block);
        }
        assert_eq!(w.position(), (ALIGN + expect.len()) as u64);
        let (end, _) = w.finish().unwrap();
        assert_eq!(end, (ALIGN + expect.len()) as u64);
        let got = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(&got[..ALIGN], &[0xee; ALIGN][..], "what lies before the start is left alone");
        assert_eq!(&got[ALIGN..], &expect[..]);
    }

    #[test]
    fn batch_reader_hands_out_free_batches_only() {
        let path = temp("read");
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let data: Vec<u8> = (0..7 * ALIGN).map(|i| (i / ALIGN * 31 + i % 251) as u8).collect();
        f.write_all_at(&data, 0).unwrap();
        let mut r = BatchReader::new(&f, 2, 2 * ALIGN).unwrap();
        let a = r.read(0, u64::MAX).unwrap().unwrap();
        assert_eq!(a.get(0, 2 * ALIGN), Some(&data[..2 * ALIGN]));
        assert_eq!(a.get(ALIGN as u64, 100), Some(&data[ALIGN..ALIGN + 100]));
        assert_eq!(a.get(ALIGN as u64, ALIGN + 1), None, "past the batch");
        // Not past `end`, rounded up to a block.
        let b = r.read(2 * ALIGN as u64, 3 * ALIGN as u64 + 1).unwrap().unwrap();
        assert_eq!(b.get(2 * ALIGN as u64, 2 * ALIGN), Some(&data[2 * ALIGN..4 * ALIGN]));
        let b2 = r.read(4 * ALIGN as u64, 5 * ALIGN as u64).unwrap();
        assert!(b2.is_none(), "both batches are held");
        drop(a);
        let c = r.read(6 * ALIGN as u64, u64::MAX).unwrap().unwrap();
        // The file ends within the batch: what is there, nothing more.
        assert_eq!(c.get(6 * ALIGN as u64, ALIGN), Some(&data[6 * ALIGN..]));
        assert_eq!(c.get(6 * ALIGN as u64, ALIGN + 1), None);
        assert_eq!(b.get(2 * ALIGN as u64, 1), Some(&data[2 * ALIGN..2 * ALIGN + 1]), "a held batch is not read into");
        assert!(r.read(100, u64::MAX).is_err(), "unaligned");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn refuses_more_than_a_batch() {
        let path = temp("big");
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let mut w = BatchWriter::new(&f, 0, 2 * ALIGN).unwrap();
        let e = w.append(&vec![1u8; 3 * ALIGN]).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(e.to_string().contains("do not fit"), "{e}");
    }

    #[test]
    fn reports_a_failed_write() {
        // /dev/full takes no data: the writer's error reaches the caller.
        let f = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut w = BatchWriter::new(&f, 0, ALIGN).unwrap();
        let mut result = Ok(());
        for _ in 0..4 {
            result = w.append(&[7u8; ALIGN]);
            if result.is_err() {
                break;
            }
        }
        let e = result.and_then(|_| w.finish().map(|_| ())).unwrap_err();
        assert!(e.to_string().contains("writing image data at byte 0"), "{e}");
    }
}
