//! The kernel command line of B and D, as `kjump-init` reads it from
//! `/proc/cmdline`.
//!
//! Names understood here:
//! - `kexec_jump_back_entry=0x…` — A's re-entry address (appended by the purgatory);
//! - `kexec_jump_buf_pfn=N` — the page of A's jump buffer (the seed's name);
//! - `kexec_backup=NK` — where the purgatory copied A's low memory, in KiB;
//! - `elfcorehdr=ADDR` — the ELF core header that makes `/proc/vmcore`;
//! - `kjump.mode=roundtrip|save|restore|bench` — what `kjump-init` does;
//! - `kjump.backup_size=SIZE` — how many bytes of A's low memory were copied;
//! - `kjump.region=START-END` — the kjump region (hexadecimal), for the image;
//! - `kjump.target=TARGET` — where the image goes (see `kjump::target`);
//! - `kjump.target_id=sectors:N[,partuuid:U][,serial:HEX]` — the target's
//!   device as A saw it; B refuses a device that differs (see `kjump::target::Identity`);
//! - `kjump.after=poweroff|reboot|resume|suspend` — what B does once the image is saved;
//! - `kjump.compress=lz4|deflate|none` — how pages are stored;
//! - `kjump.wait=SECONDS` — how long B waits for the target to appear;
//! - `kjump.mailbox=ADDR` — a page of A's where B leaves its result for A;
//! - `kjump.keypage=ADDR` — a reserved page where C left an encrypted
//!   image's key for D (added by the loader);
//! - `kjump.keep=1` — D keeps the image's data after a resume (default: discard it).
//! - `kjump.zero_free=1` — A counts on its free pages being zero (`init_on_free`):
//!   the image says so, and D zeroes them instead of leaving them.
//! - `kjump.direct=1` — D was started by a boot loader, not loaded by C: it
//!   checks that it runs inside the region before it writes anything
//!   (see `kjump::host::boot_entry`).
//! - `kjump.resident=1` — B was loaded by `kjump load`: it checks the target,
//!   parks and goes back to A, and saves when A enters it again
//!   (see `kjump::handoff::resident`).
//! - `kjump.snapshot=1` — D may resume an image committed as a snapshot.
//! - `kjump.attempts=N` — D gives the image up (marks it bad) once the
//!   restore kernel was started more than N times for it.
//!
//! The parser never panics and never allocates: every malformed value is an
//! [`Error`] that names the parameter.
//!
//! [`noresume`] reads the other command line kjump cares about: that of the
//! booting system (C), where `noresume` or `kjump.noresume` forbids
//! `kjump resume`.

use core::fmt;

use crate::range::PhysRange;
use crate::units::{parse_size, parse_u64, KIB, PAGE_SIZE};

/// What `kjump-init` is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Report what B found and jump straight back to A (`kjump check --jump`).
    Roundtrip,
    /// Save A's memory to the target (hibernate).
    Save,
    /// Write A's memory back from the image and jump into A (resume).
    Restore,
    /// Measure the machine's physical limits for `make bench` (reading
    /// `/proc/vmcore`; raw writes and reads of the target, which it
    /// overwrites) and jump back to A.
    Bench,
}

/// What B does after saving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Power the machine off (hibernate).
    PowerOff,
    /// Reboot the machine.
    Reboot,
    /// Jump back to A and let it continue (a snapshot).
    Resume,
    /// Suspend to RAM with the image committed (hybrid sleep): a wake
    /// takes the image back and returns to A, a power loss leaves it for
    /// the next boot to resume.
    Suspend,
}

impl After {
    /// Parses `poweroff`, `reboot`, `resume` or `suspend`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "poweroff" => Some(After::PowerOff),
            "reboot" => Some(After::Reboot),
            "resume" => Some(After::Resume),
            "suspend" => Some(After::Suspend),
            _ => None,
        }
    }

    /// The name [`After::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            After::PowerOff => "poweroff",
            After::Reboot => "reboot",
            After::Resume => "resume",
            After::Suspend => "suspend",
        }
    }
}

/// The parameters kjump cares about; everything else on the line is ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'a> {
    /// `kjump.mode=`.
    pub mode: Option<Mode>,
    /// A's re-entry address, from `kexec_jump_back_entry=` (or the page of
    /// `kexec_jump_buf_pfn=` when only that is given).
    pub jump_back_entry: Option<u64>,
    /// `kexec_jump_buf_pfn=`.
    pub jump_buf_pfn: Option<u64>,
    /// Physical address of the copy of A's low memory (`kexec_backup=`), in bytes.
    pub backup_addr: Option<u64>,
    /// Size of that copy (`kjump.backup_size=`), in bytes.
    pub backup_size: Option<u64>,
    /// `elfcorehdr=`.
    pub elfcorehdr: Option<u64>,
    /// `kjump.region=START-END`.
    pub region: Option<PhysRange>,
    /// `kjump.keypage=ADDR`: where C left an encrypted image's key for D
    /// (a page the loader reserves; see `kjump::handoff::keypage`).
    pub key_page: Option<u64>,
    /// `kjump.target=` (checked by `kjump::target::parse`).
    pub target: Option<&'a str>,
    /// `kjump.target_id=` (checked by `kjump::target::Identity::parse`).
    pub target_id: Option<&'a str>,
    /// `kjump.after=`.
    pub after: Option<After>,
    /// `kjump.compress=` (checked by `kjump::image::Compression::parse`).
    pub compress: Option<&'a str>,
    /// `kjump.wait=` in seconds.
    pub wait_secs: Option<u64>,
    /// `kjump.mailbox=`: physical address of A's mailbox page.
    pub mailbox: Option<u64>,
    /// `kjump.keep=1`: keep the image's data after resuming from it.
    pub keep: bool,
    /// `kjump.zero_free=1`: A's free pages must be zero when A runs again.
    pub zero_free: bool,
    /// `kjump.direct=1`: D was started by a boot loader.
    pub direct: bool,
    /// `kjump.resident=1`: B boots ahead of time, goes back to A at once and
    /// waits there, parked, until A enters it again to hibernate.
    pub resident: bool,
    /// `kjump.snapshot=1`: D may resume an image committed as a snapshot
    /// (`kjump resume --snapshot`).
    pub snapshot: bool,
    /// `kjump.attempts=N`: starts of D after which the image is given up.
    pub max_attempts: Option<u32>,
}

/// Why a command line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A value that is not a number of the expected form.
    BadNumber {
        /// The word's key (`kjump.wait`).
        key: &'static str,
    },
    /// `kjump.mode=` with a value that is not a mode.
    UnknownMode,
    /// `kjump.after=` with a value that is not poweroff, reboot, resume or suspend.
    UnknownAfter,
    /// `kjump.region=` that is not `START-END` with START < END.
    BadRegion,
    /// A `kjump.` option this version does not know.
    UnknownOption,
    /// `kexec_jump_back_entry=` and `kexec_jump_buf_pfn=` name different pages.
    EntryPfnMismatch,
    /// `kexec_backup=` is not 1 KiB aligned or does not fit in 64 bits.
    BadBackup,
    /// A quote was opened and never closed.
    UnclosedQuote,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadNumber { key } => write!(f, "{key}= has a bad value"),
            Error::UnknownMode => f.write_str("kjump.mode= must be roundtrip, save, restore or bench"),
            Error::UnknownOption => f.write_str("unknown kjump.* option"),
            Error::UnknownAfter => f.write_str("kjump.after= must be poweroff, reboot, resume or suspend"),
            Error::BadRegion => f.write_str("kjump.region= must be START-END in hexadecimal"),
            Error::EntryPfnMismatch => f.write_str("kexec_jump_back_entry= and kexec_jump_buf_pfn= disagree"),
            Error::BadBackup => f.write_str("kexec_backup= must be a size in KiB like 123456K"),
            Error::UnclosedQuote => f.write_str("unclosed double quote"),
        }
    }
}

impl std::error::Error for Error {}

/// Splits a command line into words the way the kernel does: on ASCII
/// whitespace, with double quotes grouping (the quotes are kept in the word).
pub fn words(line: &str) -> Words<'_> {
    Words { rest: line }
}

/// Iterator returned by [`words`]; yields `Err` once for an unclosed quote.
pub struct Words<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Words<'a> {
    type Item = Result<&'a str, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let mut in_quote = false;
        let mut end = s.len();
        for (i, c) in s.char_indices() {
            if c == '"' {
                in_quote = !in_quote;
            } else if !in_quote && (c.is_ascii_whitespace() || c == '\0') {
                end = i;
                break;
            }
        }
        self.rest = &s[end..];
        if in_quote {
            self.rest = "";
            return Some(Err(Error::UnclosedQuote));
        }
        Some(Ok(&s[..end]))
    }
}

/// Splits `key=value` (value without surrounding quotes); a bare word has no value.
pub fn split_param(word: &str) -> (&str, Option<&str>) {
    match word.split_once('=') {
        Some((k, v)) => (k, Some(v.trim_matches('"'))),
        None => (word, None),
    }
}

fn number(key: &'static str, value: Option<&str>) -> Result<u64, Error> {
    value.and_then(parse_u64).ok_or(Error::BadNumber { key })
}

/// Parses the command line of B or D. Later occurrences win, as in the kernel.
pub fn parse(line: &str) -> Result<Params<'_>, Error> {
    parse_with(line, true)
}

/// Parses what can be parsed of a command line [`parse`] refused, word by
/// word, skipping the words it refuses: enough for B to find its way back
/// to A (re-entry address, backup, mailbox) and report why it stopped.
pub fn parse_lenient(line: &str) -> Params<'_> {
    parse_with(line, false).unwrap_or_default()
}

fn parse_with(line: &str, strict: bool) -> Result<Params<'_>, Error> {
    let mut p = Params::default();
    for word in words(line) {
        let word = match word {
            Ok(w) => w,
            Err(e) if strict => return Err(e),
            Err(_) => break,
        };
        match parse_word(&mut p, word) {
            Err(e) if strict => return Err(e),
            _ => {}
        }
    }
    if let Some(pfn) = p.jump_buf_pfn {
        let page = pfn.checked_mul(PAGE_SIZE).ok_or(Error::BadNumber { key: "kexec_jump_buf_pfn" });
        match (page, p.jump_back_entry) {
            (Ok(page), Some(entry)) if entry & !(PAGE_SIZE - 1) != page && strict => return Err(Error::EntryPfnMismatch),
            (Ok(page), None) => p.jump_back_entry = Some(page),
            (Err(e), _) if strict => return Err(e),
            _ => {}
        }
    }
    Ok(p)
}

fn parse_word<'a>(p: &mut Params<'a>, word: &'a str) -> Result<(), Error> {
    {
        let (key, value) = split_param(word);
        match key {
            "kexec_jump_back_entry" => p.jump_back_entry = Some(number("kexec_jump_back_entry", value)?),
            "kexec_jump_buf_pfn" => p.jump_buf_pfn = Some(number("kexec_jump_buf_pfn", value)?),
            "kexec_backup" => {
                let v = value.ok_or(Error::BadBackup)?;
                let kib = v.strip_suffix(['K', 'k']).ok_or(Error::BadBackup)?;
                let kib = parse_u64(kib).ok_or(Error::BadBackup)?;
                p.backup_addr = Some(kib.checked_mul(KIB).ok_or(Error::BadBackup)?);
            }
            "elfcorehdr" => {
                // The kernel accepts `[size@]offset`; only the offset matters here.
                let v = value.map(|v| v.rsplit('@').next().unwrap_or(v));
                p.elfcorehdr = Some(v.and_then(parse_size).ok_or(Error::BadNumber { key: "elfcorehdr" })?);
            }
            "kjump.mode" => {
                p.mode = Some(match value {
                    Some("roundtrip") => Mode::Roundtrip,
                    Some("save") => Mode::Save,
                    Some("restore") => Mode::Restore,
                    Some("bench") => Mode::Bench,
                    _ => return Err(Error::UnknownMode),
                })
            }
            "kjump.backup_size" => p.backup_size = Some(value.and_then(parse_size).ok_or(Error::BadNumber { key: "kjump.backup_size" })?),
            "kjump.region" => {
                let (a, b) = value.and_then(|v| v.split_once('-')).ok_or(Error::BadRegion)?;
                let (a, b) = (parse_u64(a).ok_or(Error::BadRegion)?, parse_u64(b).ok_or(Error::BadRegion)?);
                p.region = Some(PhysRange::non_empty(a, b).ok_or(Error::BadRegion)?);
            }
            "kjump.target" => p.target = Some(value.filter(|v| !v.is_empty()).ok_or(Error::BadNumber { key: "kjump.target" })?),
            "kjump.target_id" => p.target_id = Some(value.filter(|v| !v.is_empty()).ok_or(Error::BadNumber { key: "kjump.target_id" })?),
            "kjump.after" => p.after = Some(value.and_then(After::parse).ok_or(Error::UnknownAfter)?),
            "kjump.compress" => p.compress = value,
            "kjump.wait" => p.wait_secs = Some(number("kjump.wait", value)?),
            "kjump.mailbox" => p.mailbox = Some(number("kjump.mailbox", value)?),
            "kjump.keypage" => p.key_page = Some(number("kjump.keypage", value)?),
            "kjump.keep" => p.keep = number("kjump.keep", value)? != 0,
            "kjump.zero_free" => p.zero_free = number("kjump.zero_free", value)? != 0,
            "kjump.direct" => p.direct = number("kjump.direct", value)? != 0,
            "kjump.resident" => p.resident = number("kjump.resident", value)? != 0,
            "kjump.snapshot" => p.snapshot = number("kjump.snapshot", value)? != 0,
            "kjump.attempts" => p.max_attempts = Some(number("kjump.attempts", value)?.try_into().map_err(|_| Error::BadNumber { key: "kjump.attempts" })?),
            k if k.starts_with("kjump.") => return Err(Error::UnknownOption),
            _ => {}
        }
    }
    Ok(())
}

/// The word of a kernel command line that forbids resuming, if any:
/// `noresume` (the kernel's own, which also stops its swsusp resume) or
/// `kjump.noresume` (kjump's only). Only bare words count, as the kernel
/// reads `noresume`; a quoted value that contains the word does not.
pub fn noresume(line: &str) -> Option<&str> {
    words(line).map_while(Result::ok).find(|w| *w == "noresume" || *w == "kjump.noresume")
}

#[cfg(test)]
mod tests {
    use super::*;

    const B_LINE: &str = "console=ttyS0 rdinit=/kjump-init kjump.mode=roundtrip nokaslr \
        elfcorehdr=0x37f0a000 kjump.backup_size=0xa0000 \
        kexec_jump_back_entry=0x000000000234f0a4 kexec_jump_buf_pfn=9039 kexec_backup=917544K\n";

    #[test]
    fn parses_what_the_purgatory_appends() {
        let p = parse(B_LINE).unwrap();
        assert_eq!(p.mode, Some(Mode::Roundtrip));
        assert_eq!(p.jump_back_entry, Some(0x234f0a4));
        assert_eq!(p.jump_buf_pfn, Some(0x234f));
        assert_eq!(p.backup_addr, Some(917544 * 1024));
        assert_eq!(p.backup_size, Some(0xa0000));
        assert_eq!(p.elfcorehdr, Some(0x37f0a000));
    }

    #[test]
    fn save_options() {
        let p = parse("kjump.mode=save kjump.target=LABEL=x:/a.img kjump.after=resume kjump.compress=lz4 kjump.wait=7 kjump.mailbox=0x1234000 kjump.region=0x1c000000-0x24000000").unwrap();
        assert_eq!(p.mode, Some(Mode::Save));
        assert_eq!(p.target, Some("LABEL=x:/a.img"));
        assert_eq!(p.after, Some(After::Resume));
        assert_eq!(p.compress, Some("lz4"));
        assert_eq!(p.wait_secs, Some(7));
        assert_eq!(p.mailbox, Some(0x1234000));
        assert_eq!(p.region, Some(PhysRange::new(0x1c000000, 0x24000000)));
        assert_eq!(parse("kjump.after=sleep"), Err(Error::UnknownAfter));
        assert_eq!(parse("kjump.region=0x5-0x5"), Err(Error::BadRegion));
        assert_eq!(parse("kjump.region=5"), Err(Error::BadRegion));
        assert_eq!(parse("kjump.target="), Err(Error::BadNumber { key: "kjump.target" }));
        assert_eq!(parse("kjump.target_id=sectors:8,serial:6162").unwrap().target_id, Some("sectors:8,serial:6162"));
        assert_eq!(parse("kjump.target_id="), Err(Error::BadNumber { key: "kjump.target_id" }));
        assert_eq!(parse("kjump.target_id"), Err(Error::BadNumber { key: "kjump.target_id" }));
        assert_eq!(parse("kjump.wait=soon"), Err(Error::BadNumber { key: "kjump.wait" }));
        assert!(parse("kjump.keep=1").unwrap().keep);
        assert!(parse("kjump.direct=1").unwrap().direct);
        assert!(!parse("kjump.direct=0").unwrap().direct);
        assert_eq!(parse("kjump.direct=on"), Err(Error::BadNumber { key: "kjump.direct" }));
        assert!(parse("kjump.resident=1").unwrap().resident);
        assert!(!parse("kjump.mode=save").unwrap().resident);
        assert_eq!(parse("kjump.resident=yes"), Err(Error::BadNumber { key: "kjump.resident" }));
        assert!(!parse("kjump.keep=0").unwrap().keep);
        assert!(!parse("quiet").unwrap().keep);
        assert!(parse("kjump.zero_free=1").unwrap().zero_free);
        assert!(!parse("quiet").unwrap().zero_free);
        assert_eq!(parse("kjump.keep=yes"), Err(Error::BadNumber { key: "kjump.keep" }));
    }

    #[test]
    fn noresume_words() {
        assert_eq!(noresume("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet noresume\n"), Some("noresume"));
        assert_eq!(noresume("root=/dev/sda1 kjump.noresume splash"), Some("kjump.noresume"));
        assert_eq!(noresume("noresume kjump.noresume"), Some("noresume"));
        for line in ["", "root=/dev/sda1 ro quiet", "noresume=1", "xnoresume", "kjump.noresume=0", "a=\"b noresume\"", "resume=/dev/sda2"] {
            assert_eq!(noresume(line), None, "{line}");
        }
        // Words after an unclosed quote are the quote's, as in the kernel.
        assert_eq!(noresume("a=\"b noresume"), None);
    }

    #[test]
    fn pfn_alone_gives_the_page() {
        let p = parse("kexec_jump_buf_pfn=16").unwrap();
        assert_eq!(p.jump_back_entry, Some(16 * 4096));
    }

    #[test]
    fn quotes_group_words() {
        let w: Vec<_> = words("a \"b c\" d=\"e f\"  ").map(Result::unwrap).collect();
        assert_eq!(w, ["a", "\"b c\"", "d=\"e f\""]);
        assert_eq!(split_param("d=\"e f\""), ("d", Some("e f")));
        assert_eq!(parse("x=\"kjump.mode=bogus\" kjump.mode=save").unwrap().mode, Some(Mode::Save));
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let bad = [
            ("kexec_jump_back_entry", Error::BadNumber { key: "kexec_jump_back_entry" }),
            ("kexec_jump_back_entry=", Error::BadNumber { key: "kexec_jump_back_entry" }),
            ("kexec_jump_back_entry=0x", Error::BadNumber { key: "kexec_jump_back_entry" }),
            ("kexec_jump_back_entry=0xfffffffffffffffff", Error::BadNumber { key: "kexec_jump_back_entry" }),
            ("kexec_jump_buf_pfn=-3", Error::BadNumber { key: "kexec_jump_buf_pfn" }),
            ("kexec_jump_buf_pfn=18446744073709551615", Error::BadNumber { key: "kexec_jump_buf_pfn" }),
            ("kexec_backup=12", Error::BadBackup),
            ("kexec_backup=K", Error::BadBackup),
            ("kexec_backup=18446744073709551615K", Error::BadBackup),
            ("kjump.mode=explode", Error::UnknownMode),
            ("kjump.mode", Error::UnknownMode),
            ("kjump.frobnicate=1", Error::UnknownOption),
            ("a=\"unclosed", Error::UnclosedQuote),
            ("elfcorehdr=@", Error::BadNumber { key: "elfcorehdr" }),
            ("kexec_jump_back_entry=0x5000 kexec_jump_buf_pfn=6", Error::EntryPfnMismatch),
        ];
        for (line, want) in bad {
            assert_eq!(parse(line), Err(want), "{line}");
        }
    }

    #[test]
    fn odd_but_harmless_lines() {
        assert_eq!(parse("").unwrap(), Params::default());
        assert_eq!(parse("\0\0  \t\n").unwrap(), Params::default());
        assert_eq!(parse("=== = =x x= \u{1F600}=\u{1F600}").unwrap(), Params::default());
        assert_eq!(parse("elfcorehdr=64M@0x1000").unwrap().elfcorehdr, Some(0x1000));
    }

    #[test]
    fn every_prefix_of_a_real_line_parses_or_errs() {
        for i in 0..=B_LINE.len() {
            if B_LINE.is_char_boundary(i) {
                let _ = parse(&B_LINE[..i]);
            }
        }
        // Byte soup: no panics.
        let mut x: u32 = 1;
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..40 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                s.push(b"kexc_=0x1K\" .jumpbfn9Mmode@"[(x % 27) as usize] as char);
            }
            let _ = parse(&s);
        }
    }
}
