//! The newc ("070701") cpio format that the kernel unpacks as an initramfs.

use core::fmt;

/// Why an entry could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Empty name, a name with NUL, `..` or an empty path component.
    BadName {
        /// The entry's path, as given.
        name: String,
    },
    /// A file larger than the 32-bit size field.
    TooLarge {
        /// The entry's path.
        name: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadName { name } => write!(f, "bad path {name:?} for an initramfs entry"),
            Error::TooLarge { name } => write!(f, "{name:?} is larger than 4 GiB"),
        }
    }
}

impl std::error::Error for Error {}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Writes a newc archive into memory.
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
    next_ino: u32,
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn clean_name(name: &str) -> Result<&str, Error> {
    let n = name.trim_start_matches('/');
    let bad = n.is_empty() || n.contains('\0') || n.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad && name != "TRAILER!!!" {
        return Err(Error::BadName { name: name.to_string() });
    }
    Ok(n)
}

impl Writer {
    /// An empty archive.
    pub fn new() -> Self {
        Writer { out: Vec::new(), next_ino: 1 }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> Result<(), Error> {
        let name = clean_name(name)?;
        let size = u32::try_from(data.len()).map_err(|_| Error::TooLarge { name: name.to_string() })?;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        pad4(&mut self.out);
        self.out.extend_from_slice(data);
        pad4(&mut self.out);
        Ok(())
    }

    /// Adds a directory.
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<(), Error> {
        self.entry(name, S_IFDIR | (perm & 0o7777), (0, 0), &[])
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<(), Error> {
        self.entry(name, S_IFREG | (perm & 0o7777), (0, 0), data)
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), Error> {
        if target.is_empty() || target.contains('\0') {
            return Err(Error::BadName { name: target.to_string() });
        }
        self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_bytes())
    }

    /// Adds a character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> Result<(), Error> {
        self.entry(name, S_IFCHR | (perm & 0o7777), (major, minor), &[])
    }

    /// Writes the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        let fields = [0u32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(b"TRAILER!!!\0");
        pad4(&mut self.out);
        self.out
    }
}

/// One entry read back from an archive (for tests and `kjump` diagnostics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path without leading `/`.
    pub name: String,
    /// File type and permission bits.
    pub mode: u32,
    /// Device numbers of a device node.
    pub rdev: (u32, u32),
    /// Contents (symlink target for links).
    pub data: Vec<u8>,
}

/// Reads a newc archive; `None` on any malformed header or truncation.
pub fn read(mut buf: &[u8]) -> Option<Vec<Entry>> {
    let mut entries = Vec::new();
    loop {
        let head = buf.get(..110)?;
        if &head[..6] != b"070701" {
            return None;
        }
        let field = |i: usize| -> Option<u32> { u32::from_str_radix(core::str::from_utf8(&head[6 + i * 8..14 + i * 8]).ok()?, 16).ok() };
        let (mode, size, namesize) = (field(1)?, field(6)? as usize, field(11)? as usize);
        let rdev = (field(9)?, field(10)?);
        let name_end = 110usize.checked_add(namesize)?;
        let name = buf.get(110..name_end.checked_sub(1)?)?;
        let data_start = name_end.checked_add(3)? & !3;
        let data_end = data_start.checked_add(size)?;
        let data = buf.get(data_start..data_end)?;
        let name = String::from_utf8(name.to_vec()).ok()?;
        if name == "TRAILER!!!" {
            return Some(entries);
        }
        entries.push(Entry { name, mode, rdev, data: data.to_vec() });
        buf = buf.get((data_end.checked_add(3)? & !3).min(buf.len())..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::new();
        w.dir("dev", 0o755).unwrap();
        w.char_dev("/dev/console", 0o600, 5, 1).unwrap();
        w.file("/kjump-init", 0o755, b"\x7fELF...").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        let a = w.finish();
        assert_eq!(a.len() % 4, 0);
        let e = read(&a).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[1].name, "dev/console");
        assert_eq!(e[1].mode, 0o020600);
        assert_eq!(e[1].rdev, (5, 1));
        assert_eq!(e[2].data, b"\x7fELF...");
        assert_eq!(e[3].data, b"busybox");
    }

    #[test]
    fn bad_names() {
        let mut w = Writer::new();
        for name in ["", "/", "a//b", "../x", "a/./b", "a\0b", "x/.."] {
            assert!(matches!(w.file(name, 0o644, b""), Err(Error::BadName { .. })), "{name:?}");
        }
        assert!(w.symlink("l", "").is_err());
    }

    #[test]
    fn truncated_archives_do_not_read() {
        let mut w = Writer::new();
        w.file("a", 0o644, b"hello").unwrap();
        let a = w.finish();
        for len in 0..a.len() - 4 {
            assert!(read(&a[..len]).is_none() || len >= a.len() - 4, "{len}");
        }
        let mut bad = a.clone();
        bad[6 + 6 * 8] = b'z';
        assert!(read(&bad).is_none());
    }
}
