//! The hibernation initramfs of B and D: `/kjump-init` and the few
//! directories and device nodes it needs. No shell, no busybox.

use crate::init::cpio::Writer;
use crate::Error;

/// Builds the gzip-compressed newc archive holding `init` as `/kjump-init`.
pub fn build(init: &[u8]) -> Result<Vec<u8>, Error> {
    let mut w = Writer::new();
    for dir in ["dev", "proc", "sys", "mnt", "tmp"] {
        w.dir(dir, 0o755)?;
    }
    w.char_dev("dev/console", 0o600, 5, 1)?;
    w.char_dev("dev/null", 0o666, 1, 3)?;
    w.file("kjump-init", 0o755, init)?;
    Ok(crate::init::gzip::compress(&w.finish(), 6))
}

#[cfg(test)]
mod tests {
    #[test]
    fn holds_init_and_console() {
        let img = super::build(b"init bytes").unwrap();
        let cpio = crate::init::gzip::decompress(&img, 1 << 20).unwrap();
        let entries = crate::init::cpio::read(&cpio).unwrap();
        let init = entries.iter().find(|e| e.name == "kjump-init").unwrap();
        assert_eq!(init.data, b"init bytes");
        assert_eq!(init.mode, 0o100755);
        assert!(entries.iter().any(|e| e.name == "dev/console" && e.rdev == (5, 1)));
    }
}
