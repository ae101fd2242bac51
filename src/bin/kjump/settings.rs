//! A and C: the settings a command runs with: kjump.conf, then the flags.

use crate::cli::{self, SettingFlags};
use crate::kernel::{DEFAULT_REGION_SIZE, MIN_REGION_SIZE};
use kjump::handoff::cmdline::After;
use kjump::host::config::Config;
use kjump::image::Compression;
use kjump::units::{parse_size, MIB};
use kjump::Error;

/// Settings after merging defaults, the config file and flags.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) kernel: String,
    pub(crate) initrd: String,
    pub(crate) region_size: u64,
    pub(crate) append: String,
    pub(crate) target: Option<String>,
    pub(crate) after: After,
    pub(crate) compress: Compression,
    pub(crate) wait: u64,
    pub(crate) keep: bool,
    /// `kjump resume --snapshot`: a snapshot may be resumed (never set
    /// by the config file).
    pub(crate) snapshot: bool,
    /// Starts of the restore kernel after which an image is given up.
    pub(crate) attempts: u32,
    /// How images are encrypted (`encrypt =`).
    pub(crate) encrypt: kjump::host::config::Encrypt,
    /// The key file that unwraps an image's key at resume: `--key-file`,
    /// else the one `encrypt = keyfile:PATH` names.
    pub(crate) key_file: Option<String>,
}

pub(crate) fn settings(flags: &SettingFlags) -> Result<Settings, Error> {
    let config = Config::load(flags.get("config").unwrap_or(kjump::host::config::DEFAULT_PATH))?;
    let get = |k: &str| flags.get(k).or_else(|| config.get(k));
    let config_path = flags.get("config").unwrap_or(kjump::host::config::DEFAULT_PATH);
    // Names a setting the way the user gave it: a flag, or a line of the file.
    let name = |k: &str| if flags.get(k).is_some() { format!("--{k}") } else { format!("{k}= in {config_path}") };
    let region_size = match get("region-size") {
        None => DEFAULT_REGION_SIZE,
        Some(v) => parse_size(v)
            .filter(|&s| s >= MIN_REGION_SIZE)
            .ok_or_else(|| Error::Msg(format!("{} {v:?} is not a size of at least {}M (like 96M)", name("region-size"), MIN_REGION_SIZE / MIB)))?,
    };
    let encrypt = match config.get("encrypt") {
        None => kjump::host::config::Encrypt::Unset,
        Some(v) => kjump::host::config::Encrypt::parse(v).map_err(|why| Error::Msg(format!("encrypt= in {config_path}: {why}")))?,
    };
    Ok(Settings {
        kernel: get("kernel").map_or_else(kjump::host::config::default_kernel, str::to_string),
        initrd: get("initrd").map_or_else(kjump::host::config::default_initrd, str::to_string),
        region_size,
        append: get("append").unwrap_or("").to_string(),
        target: get("target").map(str::to_string),
        after: match get("after") {
            None => After::PowerOff,
            Some(v) => After::parse(v).ok_or_else(|| Error::Msg(format!("{} {v:?}: use poweroff, reboot, resume or suspend", name("after"))))?,
        },
        compress: match get("compress") {
            None => Compression::Lz4,
            Some(v) => Compression::parse(v).ok_or_else(|| Error::Msg(format!("{} {v:?}: use lz4, deflate or none", name("compress"))))?,
        },
        wait: match get("wait") {
            None => 10,
            Some(v) => v
                .parse()
                .ok()
                .filter(|&w| w <= cli::MAX_WAIT)
                .ok_or_else(|| Error::Msg(format!("{} {v:?}: give a number of seconds from 0 to {}", name("wait"), cli::MAX_WAIT)))?,
        },
        keep: match get("keep") {
            None | Some("no") => false,
            Some("yes") => true,
            Some(v) => return Err(Error::Msg(format!("{} {v:?}: use yes or no", name("keep")))),
        },
        snapshot: flags.snapshot,
        attempts: match get("attempts") {
            None => kjump::restore::DEFAULT_MAX_ATTEMPTS,
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (1..=10).contains(n))
                .ok_or_else(|| Error::Msg(format!("{} {v:?}: give a number of attempts from 1 to 10", name("attempts"))))?,
        },
        encrypt: encrypt.clone(),
        key_file: match (flags.get("key-file"), &encrypt) {
            (Some(path), _) => Some(path.to_string()),
            (None, kjump::host::config::Encrypt::KeyFile(path)) => Some(path.clone()),
            (None, _) => None,
        },
    })
}

/// The settings as `kjump.conf` lines: what `kjump config` prints, and a
/// file kjump reads back to the same settings.
pub(crate) fn config_text(s: &Settings) -> String {
    let size = if s.region_size % MIB == 0 { format!("{}M", s.region_size / MIB) } else { s.region_size.to_string() };
    let target = match &s.target {
        Some(t) => format!("target = {t}"),
        None => "# target is not set".to_string(),
    };
    format!(
        "{target}\nafter = {}\ncompress = {}\nwait = {}\nkernel = {}\ninitrd = {}\nregion-size = {size}\nkeep = {}\nattempts = {}\n{}\n{}\n",
        s.after.name(),
        s.compress.name(),
        s.wait,
        s.kernel,
        s.initrd,
        if s.keep { "yes" } else { "no" },
        s.attempts,
        match s.encrypt.value() {
            Some(v) => format!("encrypt = {v}"),
            None => "# encrypt is not set: refused on a system with encrypted disks".to_string(),
        },
        format!("append = {}", s.append).trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use crate::usage;
    use kjump::host::config::LIBDIR;

    /// The setting flags of `kjump config ARGS`.
    fn flags(args: &[&str]) -> SettingFlags {
        match cli::parse(std::iter::once("config").chain(args.iter().copied())) {
            Ok(Command::Config(flags)) => flags,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_installed_files() {
        let s = settings(&flags(&["--config", "/nonexistent/kjump.conf"])).unwrap();
        assert_eq!(s.kernel, format!("{LIBDIR}/vmlinuz"));
        assert_eq!(s.initrd, format!("{LIBDIR}/initramfs.img"));
        assert!(usage().contains(&format!("[default: {LIBDIR}/vmlinuz]")), "{}", usage());
        assert!(!usage().contains("{LIBDIR}"));
    }

    #[test]
    fn config_output_reads_back_to_the_same_settings() {
        let dir = std::env::temp_dir().join(format!("kjump-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kjump.conf");
        let cases: [&[&str]; 3] = [
            &[],
            &["--target", "LABEL=hib:/kjump.img", "--after", "resume", "--compress", "deflate", "--wait", "3", "--keep"],
            &["--kernel", "/k", "--initrd", "/i", "--region-size", "100000000", "--append", "quiet loglevel=3"],
        ];
        for args in cases {
            let mut all = vec!["--config", "/nonexistent/kjump.conf"];
            all.extend_from_slice(args);
            let s = settings(&flags(&all)).unwrap();
            let text = config_text(&s);
            std::fs::write(&path, &text).unwrap();
            let back = settings(&flags(&["--config", path.to_str().unwrap()])).unwrap();
            assert_eq!(config_text(&back), text);
            assert_eq!((back.kernel, back.initrd, back.region_size, back.append), (s.kernel, s.initrd, s.region_size, s.append));
            assert_eq!((back.target, back.after, back.compress, back.wait, back.keep), (s.target, s.after, s.compress, s.wait, s.keep));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
