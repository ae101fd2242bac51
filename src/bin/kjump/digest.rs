//! A: `kjump initramfs-digest`, which the initramfs hooks run to record
//! what they put into a kernel's initramfs, and the lines of `kjump check`
//! that compare those records with now (`kjump::host::initramfs_digest`).

use crate::cli::{DigestAction, SettingFlags};
use crate::json::InitramfsLine;
use crate::settings::{config_text, settings};
use kjump::host::initramfs_digest::{self as record, Digest, Hash};
use kjump::Error;

/// The running kernel's release (`uname -r`).
fn running_release() -> String {
    rustix::system::uname().release().to_string_lossy().into_owned()
}

/// What the initramfs hooks would put into an initramfs for `release`
/// now: this kjump binary (the one they copy runs this), the settings of
/// `config` (default /etc/kjump.conf) and the hibernation files they name.
pub(crate) fn current(release: &str, config: Option<&str>) -> Result<Digest, Error> {
    let s = settings(&SettingFlags { config: config.map(str::to_string), ..Default::default() })?;
    Ok(Digest {
        kernel_release: release.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        kjump: Hash::of_file("/proc/self/exe")?,
        settings: Hash::of(config_text(&s).as_bytes()),
        kernel: Hash::of_file(&s.kernel)?,
        initrd: Hash::of_file(&s.initrd)?,
    })
}

/// `kjump initramfs-digest`.
pub(crate) fn cmd_initramfs_digest(release: Option<&str>, action: DigestAction, config: Option<&str>) -> Result<(), Error> {
    let release = release.map_or_else(running_release, str::to_string);
    let path = record::path_in(record::DIR, &release).map_err(|e| Error::Msg(format!("initramfs-digest: {e}")))?;
    match action {
        DigestAction::Remove => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("initramfs-digest: removing {path}"), e)),
            _ => Ok(()),
        },
        DigestAction::Print => {
            print!("{}", current(&release, config)?.encode());
            Ok(())
        }
        DigestAction::Write => {
            let text = current(&release, config)?.encode();
            std::fs::create_dir_all(record::DIR).map_err(|e| Error::io(format!("initramfs-digest: creating {}", record::DIR), e))?;
            let tmp = format!("{path}.tmp");
            std::fs::write(&tmp, text).map_err(|e| Error::io(format!("initramfs-digest: writing {tmp}"), e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(format!("initramfs-digest: renaming {tmp} to {path}"), e))?;
            println!("{path}");
            Ok(())
        }
    }
}

/// How to rebuild the initramfs of `release`, with each tool.
fn rebuild(release: &str) -> String {
    format!("update-initramfs -u -k {release}, dracut -f --kver {release}, or mkinitcpio -P")
}

/// Whether kernel `release` is installed: its modules or its kernel image.
fn installed(release: &str) -> bool {
    ["/lib/modules/", "/usr/lib/modules/"].iter().any(|d| std::path::Path::new(&format!("{d}{release}")).is_dir())
        || std::path::Path::new(&format!("/boot/vmlinuz-{release}")).exists()
}

/// `kjump check`'s lines on the initramfs, when /etc/kjump.conf names a
/// target (otherwise the hooks put no kjump in, and nothing is said).
pub(crate) fn check_lines() -> Vec<InitramfsLine> {
    let running = running_release();
    let s = match settings(&SettingFlags::default()) {
        Ok(s) => s,
        Err(e) => {
            let text = format!("cannot tell whether the initramfs is current: {e}");
            return vec![InitramfsLine { kernel_release: running, current: false, text }];
        }
    };
    if s.target.is_none() {
        return Vec::new();
    }
    lines(record::DIR, &running, &installed, &|| current(&running, None))
}

/// The line for each record in `dir` of an installed kernel, the running
/// one's first, compared with `now` (computed once, if there is a record);
/// and one for the running kernel when it has no record.
pub(crate) fn lines(dir: &str, running: &str, installed: &dyn Fn(&str) -> bool, now: &dyn Fn() -> Result<Digest, Error>) -> Vec<InitramfsLine> {
    let mut releases: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".digest").map(str::to_string))
        .filter(|r| record::valid_release(r) && (r == running || installed(r)))
        .collect();
    releases.sort_by(|a, b| (b == running).cmp(&(a == running)).then(a.cmp(b)));
    let mut out = Vec::new();
    if releases.first().map(String::as_str) != Some(running) {
        let path = record::path_in(dir, running).unwrap_or_else(|e| e);
        out.push(InitramfsLine {
            kernel_release: running.to_string(),
            current: false,
            text: format!(
                "no record that the initramfs for {running} holds kjump ({path} is missing): if this system boots through an initramfs, rebuild it ({})",
                rebuild(running)
            ),
        });
    }
    let mut now_once: Option<Result<Digest, String>> = None;
    for release in releases {
        let path = format!("{dir}/{release}.digest");
        let fix = rebuild(&release);
        let (current, text) = match record::read(&path) {
            Err(e) => (false, format!("{path} is not a record kjump wrote ({e}): rebuild the initramfs for {release} ({fix})")),
            Ok(r) if r.kernel_release != release => {
                (false, format!("{path} is the record of kernel {}, not {release}: rebuild the initramfs for {release} ({fix})", r.kernel_release))
            }
            Ok(r) => match now_once.get_or_insert_with(|| now().map_err(|e| e.to_string())) {
                Err(e) => (false, format!("cannot tell whether the initramfs for {release} is current: {e}")),
                Ok(now) => match record::differences(&r, now).as_slice() {
                    [] => (true, format!("the initramfs for {release} holds this kjump and these settings")),
                    what => (
                        false,
                        format!(
                            "the initramfs for {release} was built with other settings (or another kjump): rebuild it ({fix}); differs: {}",
                            what.join(", ")
                        ),
                    ),
                },
            },
        };
        out.push(InitramfsLine { kernel_release: release, current, text });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(release: &str) -> Digest {
        Digest {
            kernel_release: release.into(),
            version: "0.1.0".into(),
            kjump: Hash::of(b"kjump"),
            settings: Hash::of(b"target = /dev/vdb\n"),
            kernel: Hash::of(b"bzImage"),
            initrd: Hash::of(b"initramfs"),
        }
    }

    #[test]
    fn records_compared_with_now() {
        let dir = std::env::temp_dir().join(format!("kjump-digest-lines-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        let installed = |r: &str| r != "5.10.0-gone";
        let now = || Ok(digest("ignored"));
        // No record at all: the running kernel's is missing.
        let l = lines(d, "6.12.5", &installed, &now);
        assert_eq!(l.len(), 1);
        assert!(!l[0].current && l[0].text.contains("no record that the initramfs for 6.12.5 holds kjump"), "{l:?}");
        // Current, stale (naming what differs), garbled, for another
        // release, and a removed kernel's (not mentioned).
        write("6.12.5.digest", &digest("6.12.5").encode());
        write("6.13.1.digest", &Digest { settings: Hash::of(b"target = /dev/old\n"), ..digest("6.13.1") }.encode());
        write("6.14.0.digest", "kjump-initramfs-digest 1\nkjump sha256:zz\n\u{1b}[2J");
        write("6.15.0.digest", &digest("6.12.5").encode());
        write("5.10.0-gone.digest", &digest("5.10.0-gone").encode());
        write("notes.txt", "not a record");
        write("..digest", "hostile name");
        let l = lines(d, "6.12.5", &installed, &now);
        let releases: Vec<&str> = l.iter().map(|l| l.kernel_release.as_str()).collect();
        assert_eq!(releases, ["6.12.5", "6.13.1", "6.14.0", "6.15.0"]);
        assert!(l[0].current && l[0].text.contains("holds this kjump and these settings"), "{:?}", l[0]);
        assert!(!l[1].current, "{:?}", l[1]);
        assert!(
            l[1].text.starts_with("the initramfs for 6.13.1 was built with other settings (or another kjump): rebuild it (update-initramfs -u -k 6.13.1, dracut -f --kver 6.13.1, or mkinitcpio -P); differs: the settings"),
            "{}",
            l[1].text
        );
        assert!(!l[2].current && l[2].text.contains("is not a record kjump wrote (line 2") && !l[2].text.contains('\u{1b}'), "{:?}", l[2]);
        assert!(!l[3].current && l[3].text.contains("is the record of kernel 6.12.5, not 6.15.0"), "{:?}", l[3]);
        // Now cannot be computed (the hibernation kernel is gone): said, once per record.
        let l = lines(d, "6.12.5", &installed, &|| Err(Error::Msg("opening /usr/local/lib/kjump/vmlinuz: gone".into())));
        assert!(!l[0].current && l[0].text.contains("cannot tell whether the initramfs for 6.12.5 is current: opening"), "{:?}", l[0]);
        // A directory that cannot be read is no record.
        let l = lines("/nonexistent/kjump", "6.12.5", &installed, &now);
        assert_eq!(l.len(), 1);
        assert!(l[0].text.contains("/nonexistent/kjump/6.12.5.digest is missing"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
