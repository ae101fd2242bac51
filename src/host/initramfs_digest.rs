//! A: what the boot integration put into the initramfs of each kernel,
//! recorded beside it, so that `kjump check` notices an initramfs built
//! with older settings or another kjump without unpacking it.
//!
//! The initramfs hooks (initramfs-tools, dracut, mkinitcpio) run
//! `kjump initramfs-digest --write` for the kernel release they build for:
//! it writes `DIR/RELEASE.digest` (a few `key value` lines: SHA-256 digests
//! of the kjump binary, of the settings as `kjump config` prints them, and
//! of the hibernation kernel and initramfs files), which the hook also puts
//! into the initramfs at the same path. `kjump check` computes the same
//! digests now and names what differs.

use std::fmt::{self, Write as _};
use std::io::Read;

use sha2::{Digest as _, Sha256};

use crate::Error;

/// Where the records are kept, one file per kernel release.
pub const DIR: &str = "/var/lib/kjump/initramfs";

/// The first line that is not a comment: names the format and its version.
const MAGIC: &str = "kjump-initramfs-digest 1";

/// The most a record may hold: anything longer is not one kjump wrote.
pub const MAX_LEN: usize = 4096;

/// A SHA-256 digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }

    /// The digest of the file at `path`, read in pieces.
    pub fn of_file(path: &str) -> Result<Hash, Error> {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {path}"), e))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return Ok(Hash(h.finalize().into())),
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("reading {path}"), e)),
            }
        }
    }

    fn parse(text: &str) -> Option<Hash> {
        let hex = text.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// What the initramfs of one kernel release was built with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// The kernel release (`uname -r`) the initramfs is for.
    pub kernel_release: String,
    /// kjump's version, for people (the binary's digest is what counts).
    pub version: String,
    /// The kjump binary put into the initramfs.
    pub kjump: Hash,
    /// The settings, as `kjump config` prints them from kjump.conf.
    pub settings: Hash,
    /// The hibernation kernel file put into the initramfs.
    pub kernel: Hash,
    /// The hibernation initramfs file put into the initramfs.
    pub initrd: Hash,
}

/// The parts of a [`Digest`] that differ, as `kjump check` names them.
pub fn differences(recorded: &Digest, now: &Digest) -> Vec<&'static str> {
    [
        (recorded.settings != now.settings, "the settings"),
        (recorded.kjump != now.kjump, "kjump"),
        (recorded.kernel != now.kernel, "the hibernation kernel"),
        (recorded.initrd != now.initrd, "the hibernation initramfs"),
    ]
    .into_iter()
    .filter_map(|(differs, what)| differs.then_some(what))
    .collect()
}

/// Whether `release` may name a record file: what kernel releases look
/// like ("6.12.118+deb12-amd64", "7.1.3-200.fc44.x86_64"), never a path.
pub fn valid_release(release: &str) -> bool {
    (1..=128).contains(&release.len()) && !release.starts_with('.') && release.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-~".contains(&b))
}

/// The record file of kernel `release` in `dir`.
pub fn path_in(dir: &str, release: &str) -> Result<String, String> {
    if !valid_release(release) {
        return Err(format!("{:?} is not a kernel release (like 6.12.118+deb12-amd64)", crate::image::printable(release)));
    }
    Ok(format!("{dir}/{release}.digest"))
}

impl Digest {
    /// The record as the hooks write it.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# What the initramfs for {} was built with: written by kjump's initramfs hook, read by 'kjump check'.", self.kernel_release);
        let _ = writeln!(s, "{MAGIC}");
        let _ = writeln!(s, "kernel-release {}", self.kernel_release);
        let _ = writeln!(s, "version {}", self.version);
        let _ = writeln!(s, "kjump {}", self.kjump);
        let _ = writeln!(s, "settings {}", self.settings);
        let _ = writeln!(s, "hibernation-kernel {}", self.kernel);
        let _ = writeln!(s, "hibernation-initramfs {}", self.initrd);
        s
    }

    /// Reads a record back: exactly the lines [`Digest::encode`] writes
    /// (comments and blank lines aside), each key once. Anything else is
    /// an error naming the line.
    pub fn parse(text: &str) -> Result<Digest, String> {
        if text.len() > MAX_LEN {
            return Err(format!("{} bytes, more than a record's {MAX_LEN}", text.len()));
        }
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some((_, MAGIC)) => {}
            Some((n, _)) => return Err(format!("line {n} is not '{MAGIC}'")),
            None => return Err("empty".into()),
        }
        let (mut release, mut version, mut kjump, mut settings, mut kernel, mut initrd) = (None, None, None, None, None, None);
        for (n, line) in lines {
            let (key, value) = line.split_once(' ').ok_or_else(|| format!("line {n} is not 'key value'"))?;
            let text_value = |what: &str| {
                if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    Err(format!("line {n}: {what} {:?} is not one word of printable ASCII", crate::image::printable(value)))
                } else {
                    Ok(value.to_string())
                }
            };
            let hash = || Hash::parse(value).ok_or_else(|| format!("line {n}: {key} is not sha256: and 64 hex digits"));
            let slot_done = match key {
                "kernel-release" => release.replace(text_value("kernel release")?).is_some(),
                "version" => version.replace(text_value("version")?).is_some(),
                "kjump" => kjump.replace(hash()?).is_some(),
                "settings" => settings.replace(hash()?).is_some(),
                "hibernation-kernel" => kernel.replace(hash()?).is_some(),
                "hibernation-initramfs" => initrd.replace(hash()?).is_some(),
                other => return Err(format!("line {n}: unknown key {:?}", crate::image::printable(other))),
            };
            if slot_done {
                return Err(format!("line {n}: {key} given twice"));
            }
        }
        let missing = |what: &str| format!("no {what} line");
        Ok(Digest {
            kernel_release: release.ok_or_else(|| missing("kernel-release"))?,
            version: version.ok_or_else(|| missing("version"))?,
            kjump: kjump.ok_or_else(|| missing("kjump"))?,
            settings: settings.ok_or_else(|| missing("settings"))?,
            kernel: kernel.ok_or_else(|| missing("hibernation-kernel"))?,
            initrd: initrd.ok_or_else(|| missing("hibernation-initramfs"))?,
        })
    }
}

/// Reads the record at `path`: at most [`MAX_LEN`] bytes of UTF-8.
pub fn read(path: &str) -> Result<Digest, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_LEN as u64 + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    Digest::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest {
            kernel_release: "6.12.118+deb12-amd64".into(),
            version: "0.1.0".into(),
            kjump: Hash::of(b"kjump"),
            settings: Hash::of(b"target = /dev/vdb\n"),
            kernel: Hash::of(b"bzImage"),
            initrd: Hash::of(b"initramfs"),
        }
    }

    #[test]
    fn records_read_back() {
        let d = digest();
        let text = d.encode();
        assert!(text.contains("\nsettings sha256:"), "{text}");
        assert_eq!(Digest::parse(&text), Ok(d.clone()));
        // Comments, blank lines, CRLF line ends and any order of the keys.
        let mut lines: Vec<&str> = text.lines().collect();
        lines[2..].reverse();
        let shuffled = format!("\n# a comment\n{}\r\n\n", lines.join("\r\n"));
        assert_eq!(Digest::parse(&shuffled), Ok(d));
        assert_eq!(Hash::of(b"").to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn what_differs_is_named() {
        let d = digest();
        assert!(differences(&d, &d).is_empty());
        let now = Digest { settings: Hash::of(b"target = /dev/vdc\n"), kjump: Hash::of(b"other"), ..d.clone() };
        assert_eq!(differences(&d, &now), ["the settings", "kjump"]);
        let now = Digest { kernel: Hash::of(b"k2"), initrd: Hash::of(b"i2"), version: "0.2.0".into(), ..d.clone() };
        assert_eq!(differences(&d, &now), ["the hibernation kernel", "the hibernation initramfs"]);
    }

    #[test]
    fn hostile_records_are_refused_with_a_reason() {
        let good = digest().encode();
        let hash = Hash::of(b"x").to_string();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("# only a comment\n".into(), "empty"),
            ("kjump-initramfs-digest 2\n".into(), "is not 'kjump-initramfs-digest 1'"),
            (good.replace("kernel-release ", "kernel-release\t"), "not 'key value'"),
            (good.replace(&format!("kjump {}", digest().kjump), "kjump sha256:00"), "64 hex digits"),
            (good.replace(&format!("kjump {}", digest().kjump), &format!("kjump {}", hash.to_uppercase())), "64 hex digits"),
            (good.replace("version 0.1.0", "version 0.1.0 extra"), "printable ASCII"),
            (good.replace("version 0.1.0", "version \u{1b}[2J"), "printable ASCII"),
            (good.replace("version 0.1.0\n", ""), "no version line"),
            (format!("{good}settings {hash}\n"), "settings given twice"),
            (format!("{good}extra {hash}\n"), "unknown key"),
            (good.repeat(2), "unknown key"),
            ("x".repeat(MAX_LEN + 1), "more than a record's"),
            (format!("{good}kernel-release {}\n", "9".repeat(200)), "printable ASCII"),
        ];
        for (text, why) in cases {
            let e = Digest::parse(&text).expect_err(why);
            assert!(e.contains(why), "{why:?} not in {e:?} for {text:?}");
        }
        // Never a panic, whatever the bytes: every prefix, and bytes flipped.
        for cut in 0..good.len() {
            if good.is_char_boundary(cut) {
                let _ = Digest::parse(&good[..cut]);
            }
        }
        let mut bytes = good.into_bytes();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x5a;
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = Digest::parse(text);
            }
            bytes[i] ^= 0x5a;
        }
    }

    #[test]
    fn release_names_are_file_names_only() {
        for ok in ["6.12.118+deb12-amd64", "7.1.3-200.fc44.x86_64", "6.15.2-arch1-1", "6.8.0-51-generic", "7.3.4", "6.1.0~rc1"] {
            assert!(valid_release(ok), "{ok}");
            assert_eq!(path_in("/d", ok), Ok(format!("/d/{ok}.digest")));
        }
        for bad in ["", ".", "..", "../etc/passwd", "a/b", ".hidden", "6.12 x", "6.12\n", "é", &"9".repeat(129)] {
            assert!(!valid_release(bad), "{bad:?}");
            assert!(path_in("/d", bad).unwrap_err().contains("is not a kernel release"), "{bad:?}");
        }
    }

    #[test]
    fn records_are_read_bounded() {
        let dir = std::env::temp_dir().join(format!("kjump-digest-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.digest");
        let path = path.to_str().unwrap();
        std::fs::write(path, digest().encode()).unwrap();
        assert_eq!(read(path), Ok(digest()));
        std::fs::write(path, vec![b'#'; 10 << 20]).unwrap();
        assert!(read(path).unwrap_err().contains("more than a record's"));
        std::fs::write(path, [0xff, 0xfe, b'\n']).unwrap();
        assert_eq!(read(path), Err("not UTF-8 text".into()));
        assert!(read(&format!("{path}.missing")).unwrap_err().contains("No such file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
