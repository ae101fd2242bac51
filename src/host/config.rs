//! `/etc/kjump.conf`: `key = value` lines, `#` comments. Flags given to
//! `kjump` win over the file.
//!
//! Keys: `target`, `kernel`, `initrd`, `after`, `compress`, `wait`,
//! `region-size`, `append`, `keep`.

use core::fmt;
use std::os::unix::fs::OpenOptionsExt;

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
pub const KEYS: &[&str] = &["target", "kernel", "initrd", "after", "compress", "wait", "region-size", "append", "keep", "attempts", "encrypt"];

/// Why a config file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A line without `=`.
    NoEquals {
        /// The line's number, from 1.
        line: usize,
    },
    /// A key kjump does not know.
    UnknownKey {
        /// The line's number, from 1.
        line: usize,
        /// The key as written.
        key: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoEquals { line } => write!(f, "line {line}: expected 'key = value'"),
            Error::UnknownKey { line, key } => write!(f, "line {line}: unknown key {key:?} (known: {})", KEYS.join(", ")),
        }
    }
}

impl std::error::Error for Error {}

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
        if std::path::Path::new(path).exists() {
            check_trusted(path, "the settings file")?;
        }
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

/// How images are encrypted (`encrypt =` in kjump.conf(5)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encrypt {
    /// Not set: images in the clear, refused when A's disks are encrypted.
    Unset,
    /// `none`: images in the clear, said on purpose.
    None,
    /// `keyfile:PATH`: each image's key wrapped with a key read from PATH.
    KeyFile(String),
    /// `passphrase`: each image's key wrapped to the public key `kjump
    /// keygen` made; the passphrase is asked at resume only.
    Passphrase,
    /// `tpm2` or `tpm2:PCRS`: each image's key sealed to this machine's
    /// TPM 2.0, under those PCRs (7 alone by default) and kjump's counter.
    Tpm2(crate::host::tpm::PcrSet),
}

impl Encrypt {
    /// Parses the value of `encrypt =`.
    pub fn parse(value: &str) -> Result<Encrypt, String> {
        match value {
            "none" => Ok(Encrypt::None),
            "passphrase" => Ok(Encrypt::Passphrase),
            "tpm2" => Ok(Encrypt::Tpm2(crate::host::tpm::PcrSet::DEFAULT)),
            v => match (v.strip_prefix("keyfile:"), v.strip_prefix("tpm2:")) {
                (Some(path), _) if path.starts_with('/') && !path.contains('\0') => Ok(Encrypt::KeyFile(path.to_string())),
                (Some(path), _) => Err(format!("keyfile:{path}: the key file's path must be absolute (keyfile:/path/to/key)")),
                (None, Some(list)) => {
                    crate::host::tpm::PcrSet::parse(list).map(Encrypt::Tpm2).map_err(|why| format!("{v}: {why}; give PCR numbers, as in tpm2:0,7"))
                }
                (None, None) => Err(format!("{v:?}: one of passphrase, tpm2, tpm2:PCRS, keyfile:/path/to/key or none")),
            },
        }
    }

    /// The value [`Encrypt::parse`] reads, or `None` when unset.
    pub fn value(&self) -> Option<String> {
        match self {
            Encrypt::Unset => None,
            Encrypt::None => Some("none".into()),
            Encrypt::KeyFile(p) => Some(format!("keyfile:{p}")),
            Encrypt::Passphrase => Some("passphrase".into()),
            Encrypt::Tpm2(p) if *p == crate::host::tpm::PcrSet::DEFAULT => Some("tpm2".into()),
            Encrypt::Tpm2(p) => Some(format!("tpm2:{}", p.list())),
        }
    }

    /// Whether images are encrypted.
    pub fn encrypts(&self) -> bool {
        matches!(self, Encrypt::KeyFile(_) | Encrypt::Passphrase | Encrypt::Tpm2(_))
    }
}

/// Reads a key file: root's (or the caller's), a regular file, readable by
/// its owner only, 32 bytes to 64 KiB.
pub fn read_key_file(path: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    use std::io::Read;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| crate::Error::io(format!("opening the key file {path}"), e))?;
    let st = rustix::fs::fstat(&file).map_err(|e| crate::Error::sys(format!("examining the key file {path}"), e))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(crate::Error::Msg(format!("the key file {path} is not a regular file")));
    }
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != 0 && st.st_uid != me {
        return Err(crate::Error::Msg(format!("the key file {path} belongs to user {}: only root's (or yours) is used; chown it", st.st_uid)));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(crate::Error::Msg(format!("the key file {path} may be read by others (mode {:o}): run 'chmod 600 {path}'", st.st_mode & 0o7777)));
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(4096));
    file.take(64 * 1024 + 1).read_to_end(&mut bytes).map_err(|e| crate::Error::io(format!("reading the key file {path}"), e))?;
    if bytes.len() < 32 || bytes.len() > 64 * 1024 {
        return Err(crate::Error::Msg(format!(
            "the key file {path} holds {} bytes: a key file holds 32 bytes to 64 KiB (make one with 'head -c 64 /dev/urandom > {path}')",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Refuses a file kjump would act on (its settings, the hibernation
/// kernel and initramfs it loads and jumps to) that someone other than
/// root or the user running kjump could have changed: owned by another
/// user, or writable by group or others.
pub fn check_trusted(path: &str, what: &str) -> Result<(), crate::Error> {
    let st = rustix::fs::stat(path).map_err(|e| crate::Error::sys(format!("examining {what} {path}"), e))?;
    // Only files can be edited in place (`--config /dev/null` reads nothing).
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(());
    }
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != 0 && st.st_uid != me {
        return Err(crate::Error::Msg(format!("{what} {path} belongs to user {}: only root's (or yours) is trusted; chown it", st.st_uid)));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(crate::Error::Msg(format!("{what} {path} is writable by others (mode {:o}): run 'chmod go-w {path}'", st.st_mode & 0o7777)));
    }
    Ok(())
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
    fn files_others_may_write_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("kjump-trusted-{}", std::process::id()));
        std::fs::write(&path, "wait = 5\n").unwrap();
        let p = path.to_str().unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_trusted(p, "the settings file").is_ok());
        assert_eq!(Config::load(p).unwrap().get("wait"), Some("5"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = Config::load(p).unwrap_err().to_string();
        assert!(e.contains("is writable by others (mode 666)"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(check_trusted(p, "x").is_err());
        let _ = std::fs::remove_file(&path);
        // `make install` reads no settings through --config /dev/null (mode 666).
        assert!(Config::load("/dev/null").is_ok());
    }

    #[test]
    fn encrypt_values() {
        assert_eq!(Encrypt::parse("none"), Ok(Encrypt::None));
        assert_eq!(Encrypt::parse("passphrase"), Ok(Encrypt::Passphrase));
        assert_eq!(Encrypt::parse("keyfile:/media/key/kjump.key"), Ok(Encrypt::KeyFile("/media/key/kjump.key".into())));
        assert_eq!(Encrypt::parse("tpm2"), Ok(Encrypt::Tpm2(crate::host::tpm::PcrSet::DEFAULT)));
        assert_eq!(Encrypt::parse("tpm2:0,7"), Ok(Encrypt::Tpm2(crate::host::tpm::PcrSet(0x81))));
        for bad in ["keyfile:", "keyfile:relative", "yes", "", "Passphrase", "tpm2:", "tpm2:24", "tpm2:7,7", "TPM2", "tpm"] {
            assert!(Encrypt::parse(bad).is_err(), "{bad}");
        }
        for e in [
            Encrypt::None,
            Encrypt::Passphrase,
            Encrypt::KeyFile("/k".into()),
            Encrypt::Tpm2(crate::host::tpm::PcrSet::DEFAULT),
            Encrypt::Tpm2(crate::host::tpm::PcrSet(0x95)),
        ] {
            assert_eq!(Encrypt::parse(&e.value().unwrap()), Ok(e.clone()));
        }
        assert_eq!(Encrypt::Unset.value(), None);
        assert!(Encrypt::Passphrase.encrypts() && !Encrypt::None.encrypts() && !Encrypt::Unset.encrypts());
    }

    #[test]
    fn key_files_must_be_private_and_sized() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("kjump-keyfile-{}", std::process::id()));
        let p = path.to_str().unwrap();
        std::fs::write(&path, [7u8; 64]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(&read_key_file(p).unwrap()[..], &[7u8; 64][..]);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_key_file(p).unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, [7u8; 31]).unwrap();
        assert!(read_key_file(p).unwrap_err().to_string().contains("31 bytes"));
        std::fs::write(&path, vec![7u8; 64 * 1024 + 1]).unwrap();
        assert!(read_key_file(p).is_err());
        let _ = std::fs::remove_file(&path);
        assert!(read_key_file(p).unwrap_err().to_string().contains("opening the key file"));
    }

    #[test]
    fn refuses() {
        assert_eq!(Config::parse("target\n"), Err(Error::NoEquals { line: 1 }));
        assert_eq!(Config::parse("\ntarjet = x\n"), Err(Error::UnknownKey { line: 2, key: "tarjet".into() }));
    }
}
