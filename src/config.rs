//! `/etc/kjump.conf`: `key = value` lines, `#` comments. Flags given to
//! `kjump` win over the file.
//!
//! Keys: `target`, `kernel`, `initrd`, `after`, `compress`, `wait`,
//! `region-size`, `append`, `keep`.

use core::fmt;

/// Where kjump looks for its settings.
pub const DEFAULT_PATH: &str = "/etc/kjump.conf";

/// Where `make install` puts the hibernation kernel (`vmlinuz`), its
/// initramfs (`initramfs.img`) and `kjump-init`: `$(PREFIX)/lib/kjump`.
/// The Makefile passes it at build time as `KJUMP_LIBDIR`; a plain
/// `cargo build` gets the Makefile's default, `/usr/local/lib/kjump`.
pub const LIBDIR: &str = match option_env!("KJUMP_LIBDIR") {
    Some(dir) => dir,
    None => "/usr/local/lib/kjump",
};

// A relative or empty KJUMP_LIBDIR would make the defaults depend on the
// working directory: refuse it when building.
const _: () = assert!(!LIBDIR.is_empty() && LIBDIR.as_bytes()[0] == b'/', "KJUMP_LIBDIR must be an absolute path");

/// The hibernation kernel kjump loads when neither `--kernel` nor `kernel =` says otherwise.
pub fn default_kernel() -> String {
    format!("{LIBDIR}/vmlinuz")
}

/// The hibernation initramfs kjump loads when neither `--initrd` nor `initrd =` says otherwise.
pub fn default_initrd() -> String {
    format!("{LIBDIR}/initramfs.img")
}

/// Where `make install` puts `kjump-init`.
pub fn installed_init() -> String {
    format!("{LIBDIR}/kjump-init")
}

/// The keys a config file may set.
pub const KEYS: &[&str] = &["target", "kernel", "initrd", "after", "compress", "wait", "region-size", "append", "keep", "attempts"];

/// Why a config file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A line without `=`.
    NoEquals { line: usize },
    /// A key kjump does not know.
    UnknownKey { line: usize, key: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoEquals { line } => write!(f, "line {line}: expected 'key = value'"),
            Error::UnknownKey { line, key } => write!(f, "line {line}: unknown key {key:?} (known: {})", KEYS.join(", ")),
        }
    }
}

/// Settings read from a file, in file order (later lines win).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    /// Parses the text of a config file.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or(Error::NoEquals { line: i + 1 })?;
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if !KEYS.contains(&k) {
                return Err(Error::UnknownKey { line: i + 1, key: k.to_string() });
            }
            entries.push((k.to_string(), v.to_string()));
        }
        Ok(Config { entries })
    }

    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &str) -> Result<Self, crate::Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|e| crate::Error::Msg(format!("{path}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(crate::Error::io(format!("reading {path}"), e)),
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let c = Config::parse("# kjump\ntarget = LABEL=swap # the disk\nafter=reboot\nafter = poweroff\n\nappend = \"quiet\"\n").unwrap();
        assert_eq!(c.get("target"), Some("LABEL=swap"));
        assert_eq!(c.get("after"), Some("poweroff"));
        assert_eq!(c.get("append"), Some("quiet"));
        assert_eq!(c.get("kernel"), None);
    }

    #[test]
    fn defaults_live_in_libdir() {
        assert!(LIBDIR.starts_with('/'), "{LIBDIR}");
        assert_eq!(default_kernel(), format!("{LIBDIR}/vmlinuz"));
        assert_eq!(default_initrd(), format!("{LIBDIR}/initramfs.img"));
        assert_eq!(installed_init(), format!("{LIBDIR}/kjump-init"));
    }

    #[test]
    fn refuses() {
        assert_eq!(Config::parse("target\n"), Err(Error::NoEquals { line: 1 }));
        assert_eq!(Config::parse("\ntarjet = x\n"), Err(Error::UnknownKey { line: 2, key: "tarjet".into() }));
    }
}
