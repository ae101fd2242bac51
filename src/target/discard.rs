//! Throwing away an image's data once it is no longer needed: the image
//! holds all of A's memory, keys and passwords included.
//!
//! On a block device the range is discarded (`BLKDISCARD`: the device
//! may drop the blocks; thin or sparse storage gets the space back); in a
//! file, a hole is punched so the filesystem frees the blocks. Devices that
//! cannot discard keep the bytes until they are overwritten.

use std::fs::File;
use std::os::unix::fs::FileTypeExt;

use rustix::fs::FallocateFlags;
use rustix::io::Errno;

use crate::Error;

/// What happened to the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The device or filesystem dropped them.
    Discarded,
    /// The device cannot discard; the bytes stay until overwritten.
    NotSupported,
}

/// Discards `[start, start + len)` of the image in `file` (a block device
/// or a regular file).
pub fn discard(file: &File, start: u64, len: u64) -> Result<Outcome, Error> {
    if len == 0 {
        return Ok(Outcome::Discarded);
    }
    let meta = file.metadata().map_err(|e| Error::io("examining the image", e))?;
    let result = if meta.file_type().is_block_device() {
        crate::sys::blockdev::discard(file, start, len)
    } else {
        rustix::fs::fallocate(file, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, start, len)
    };
    match result {
        Ok(()) => Ok(Outcome::Discarded),
        Err(Errno::OPNOTSUPP) | Err(Errno::NOTTY) | Err(Errno::INVAL) => Ok(Outcome::NotSupported),
        Err(e) => Err(Error::sys(format!("discarding {} bytes of the image at byte {start}", len), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn punches_a_hole_in_a_file() {
        let path = std::env::temp_dir().join(format!("kjump-discard-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        f.write_all(&vec![0x5a; 4 << 20]).unwrap();
        f.sync_all().unwrap();
        let before = f.metadata().unwrap().blocks();
        let outcome = discard(&f, 8192, (4 << 20) - 8192).unwrap();
        let after = f.metadata().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(after.len(), 4 << 20, "the size stays");
        assert_eq!(outcome, Outcome::Discarded);
        assert!(after.blocks() < before, "{} blocks before, {} after", before, after.blocks());
    }
}
