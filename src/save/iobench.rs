//! The physical limits of a machine, measured in the hibernation kernel
//! for `make bench`: how fast `/proc/vmcore` can be read (no compression,
//! no writing), and how fast the target takes sequential `O_DIRECT`
//! writes and reads in large blocks. A save cannot beat the slower of the
//! first two; the benchmark compares kjump's save rate with them.

use std::path::Path;
use std::time::Instant;

use rustix::fs::{Mode, OFlags};

use crate::inspect::vmcore::Vmcore;
use crate::sys::direct_io::Aligned;
use crate::Error;

/// Bytes per read or write.
pub const BLOCK: usize = 4 << 20;

/// What was measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Bytes of `/proc/vmcore` read, and in how many seconds.
    pub vmcore: (u64, f64),
    /// Bytes written to the target with `O_DIRECT`, and seconds (flush included).
    pub write: (u64, f64),
    /// Bytes read back with `O_DIRECT`, and seconds.
    pub read: (u64, f64),
}

fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-6)
}

impl Limits {
    /// The one line B prints (and leaves for A): rates in MB/s.
    pub fn line(&self) -> String {
        format!(
            "limits: vmcore_read_mb_per_s={:.1} disk_write_mb_per_s={:.1} disk_read_mb_per_s={:.1} vmcore_bytes={} disk_bytes={}",
            rate(self.vmcore.0, self.vmcore.1),
            rate(self.write.0, self.write.1),
            rate(self.read.0, self.read.1),
            self.vmcore.0,
            self.write.0
        )
    }
}

/// Reads all of `/proc/vmcore` into a buffer, [`BLOCK`] bytes at a time,
/// through `mmap` windows as B's save does (`read` where a segment cannot
/// be mapped).
pub fn vmcore_read(path: &str) -> Result<(u64, f64), Error> {
    let vmcore = Vmcore::open(path)?;
    let mut buf = vec![0u8; BLOCK];
    let start = Instant::now();
    let mut total = 0u64;
    for seg in &vmcore.layout.segments {
        let mut off = 0;
        while off < seg.size {
            let n = ((seg.size - off) as usize).min(BLOCK);
            match vmcore.map(seg.offset + off, n) {
                Ok(m) => buf[..n].copy_from_slice(m.bytes()),
                Err(_) => vmcore.read_at(seg.offset + off, &mut buf[..n]).map_err(|e| Error::io("reading /proc/vmcore", e))?,
            }
            off += n as u64;
            total += n as u64;
        }
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

/// Bytes moved and the seconds it took.
pub type Transfer = (u64, f64);

/// Writes `bytes` (rounded down to [`BLOCK`]) of incompressible data to
/// `dev` from its start with `O_DIRECT`, flushes, then reads it back.
/// Returns (write, read). Overwrites `dev`.
pub fn disk_write_read(dev: &Path, bytes: u64) -> Result<(Transfer, Transfer), Error> {
    let blocks = bytes / BLOCK as u64;
    let fd = rustix::fs::open(dev, OFlags::RDWR | OFlags::DIRECT | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys(format!("opening {} with O_DIRECT", dev.display()), e))?;
    let mut buf = Aligned::new(BLOCK)?;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in buf.bytes().chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes());
    }
    let start = Instant::now();
    for i in 0..blocks {
        let at = i * BLOCK as u64;
        let n = rustix::io::pwrite(&fd, buf.bytes(), at).map_err(|e| Error::sys(format!("writing {} at byte {at}", dev.display()), e))?;
        if n != BLOCK {
            return Err(Error::Msg(format!("short write to {} at byte {at}", dev.display())));
        }
    }
    rustix::fs::fsync(&fd).map_err(|e| Error::sys(format!("flushing {}", dev.display()), e))?;
    let write = (blocks * BLOCK as u64, start.elapsed().as_secs_f64());
    let start = Instant::now();
    for i in 0..blocks {
        let at = i * BLOCK as u64;
        let n = rustix::io::pread(&fd, buf.bytes(), at).map_err(|e| Error::sys(format!("reading {} at byte {at}", dev.display()), e))?;
        if n != BLOCK {
            return Err(Error::Msg(format!("short read from {} at byte {at}", dev.display())));
        }
    }
    let read = (blocks * BLOCK as u64, start.elapsed().as_secs_f64());
    Ok((write, read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_names_every_rate() {
        let l = Limits { vmcore: (1_000_000_000, 2.0), write: (500_000_000, 1.0), read: (500_000_000, 0.5) };
        assert_eq!(
            l.line(),
            "limits: vmcore_read_mb_per_s=500.0 disk_write_mb_per_s=500.0 disk_read_mb_per_s=1000.0 vmcore_bytes=1000000000 disk_bytes=500000000"
        );
    }

    #[test]
    fn direct_io_on_a_file() {
        let path = std::env::temp_dir().join(format!("kjump-iobench-{}", std::process::id()));
        std::fs::File::create(&path).unwrap().set_len(3 * BLOCK as u64).unwrap();
        let r = disk_write_read(&path, 2 * BLOCK as u64 + 5);
        let _ = std::fs::remove_file(&path);
        // tmpfs refuses O_DIRECT; any other filesystem must do it.
        match r {
            Ok((w, rd)) => {
                assert_eq!(w.0, 2 * BLOCK as u64);
                assert_eq!(rd.0, 2 * BLOCK as u64);
            }
            Err(e) => assert!(e.to_string().contains("O_DIRECT"), "{e}"),
        }
    }
}
