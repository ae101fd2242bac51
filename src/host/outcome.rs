//! A, back from a hibernation: how it went, told where the system's log
//! is and kept for `kjump status`. The record is a small text file of
//! `key=value` lines that A rewrites after each hibernation.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::Error;

/// Where A keeps the last hibernation's outcome.
pub const RECORD: &str = "/var/lib/kjump/last-hibernation";

/// The largest record `kjump status` reads.
const MAX_RECORD: u64 = 64 * 1024;

/// How the last hibernation went, as A saw it on its return.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// When A came back, seconds since 1970.
    pub back_unix: u64,
    /// Whether the hibernation worked (saved and resumed, or saved and
    /// went on with `after = resume`).
    pub ok: bool,
    /// How long A was away, in seconds.
    pub away_secs: f64,
    /// What A did before the jump (loading the hibernation kernel).
    pub prepared: String,
    /// The report the hibernation kernel (B's save summary, and D's
    /// restore report after a resume) or the failure left.
    pub report: String,
}

impl Outcome {
    /// The record's text.
    pub fn encode(&self) -> String {
        let mut t = String::new();
        // Newlines in a report would start another key: kept out.
        let one_line = |s: &str| s.replace(['\n', '\r'], " ");
        let _ = writeln!(t, "back={}", self.back_unix);
        let _ = writeln!(t, "outcome={}", if self.ok { "ok" } else { "failed" });
        let _ = writeln!(t, "away_s={:.1}", self.away_secs);
        let _ = writeln!(t, "prepared={}", one_line(&self.prepared));
        let _ = writeln!(t, "report={}", one_line(&self.report));
        t
    }

    /// Reads a record; `None` names what is wrong with it.
    pub fn decode(text: &str) -> Result<Outcome, String> {
        let mut o = Outcome { back_unix: 0, ok: false, away_secs: 0.0, prepared: String::new(), report: String::new() };
        let mut seen = [false; 5];
        for (n, line) in text.lines().enumerate() {
            let Some((key, value)) = line.split_once('=') else { return Err(format!("line {}: not key=value", n + 1)) };
            let bad = || format!("line {}: {key}={value:?} does not parse", n + 1);
            let i = match key {
                "back" => {
                    o.back_unix = value.parse().map_err(|_| bad())?;
                    0
                }
                "outcome" => {
                    o.ok = match value {
                        "ok" => true,
                        "failed" => false,
                        _ => return Err(bad()),
                    };
                    1
                }
                "away_s" => {
                    o.away_secs = value.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(bad)?;
                    2
                }
                "prepared" => {
                    o.prepared = value.to_string();
                    3
                }
                "report" => {
                    o.report = value.to_string();
                    4
                }
                _ => continue,
            };
            seen[i] = true;
        }
        if seen.iter().all(|s| *s) {
            Ok(o)
        } else {
            Err("a field is missing".into())
        }
    }

    /// What `kjump status` prints.
    pub fn describe(&self) -> String {
        let when = crate::units::date(self.back_unix).unwrap_or_else(|| format!("{} seconds since 1970", self.back_unix));
        format!(
            "last hibernation: {}, back in A at {when} after {:.1} s away\n  before the jump: {}\n  {}: {}\n",
            if self.ok { "worked" } else { "FAILED" },
            self.away_secs,
            self.prepared,
            if self.ok { "report" } else { "why" },
            self.report
        )
    }
}

/// Writes `o` to `path` (a temporary file renamed over it, so that a
/// power cut leaves the old record or the new one).
pub fn record_at(path: &Path, o: &Outcome) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, o.encode()).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {} to {}", tmp.display(), path.display()), e))
}

/// The record at `path`, if there is one.
pub fn read_at(path: &Path) -> Result<Option<Outcome>, Error> {
    use std::io::Read as _;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let mut text = String::new();
    f.take(MAX_RECORD).read_to_string(&mut text).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Outcome::decode(&text).map(Some).map_err(|why| Error::Msg(format!("{}: {why}; it is rewritten after the next hibernation (or remove it)", path.display())))
}

/// Says `line` where the system keeps its log: on standard output, which
/// is the journal when systemd started kjump (it sets `JOURNAL_STREAM`),
/// and also in the kernel's log otherwise (a console, no journal).
pub fn log(line: &str) {
    println!("kjump: {line}");
    if std::env::var_os("JOURNAL_STREAM").is_none() {
        if let Ok(mut kmsg) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
            // Priority 5 (notice), one line; the kernel takes at most about 1 KiB.
            let text: String = format!("<5>kjump: {line}").chars().filter(|c| *c != '\n').take(900).collect();
            let _ = kmsg.write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Outcome {
        Outcome {
            back_unix: 1_800_000_000,
            ok: true,
            away_secs: 42.5,
            prepared: "hibernation kernel in 0x1000-0x2000".into(),
            report: "resumed from the image on vdb: B saved 812 MiB\nof A's memory".into(),
        }
    }

    #[test]
    fn round_trip_keeps_one_line_per_field() {
        let o = sample();
        let text = o.encode();
        assert_eq!(text.lines().count(), 5, "{text}");
        let back = Outcome::decode(&text).unwrap();
        assert_eq!(back, Outcome { report: o.report.replace('\n', " "), ..o.clone() });
        assert!(back.describe().starts_with("last hibernation: worked, back in A at 2027-01-15T08:00:00Z after 42.5 s away"), "{}", back.describe());
        let failed = Outcome { ok: false, ..o };
        assert!(failed.describe().contains("FAILED") && failed.describe().contains("why: "));
    }

    #[test]
    fn hostile_records_are_refused_in_one_line() {
        let good = sample().encode();
        for bad in [
            String::new(),
            "garbage".into(),
            good.replace("outcome=ok", "outcome=maybe"),
            good.replace("away_s=42.5", "away_s=NaN"),
            good.replace("away_s=42.5", "away_s=-1"),
            good.replace("back=1800000000", "back=-3"),
            good.replace("report=", "rapport="),
        ] {
            let e = Outcome::decode(&bad).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        // Unknown keys (a later kjump's) are skipped; a far-future date prints.
        let mut o = Outcome::decode(&format!("{good}extra=1\n")).unwrap();
        o.back_unix = u64::MAX;
        assert!(o.describe().contains(&u64::MAX.to_string()));
    }

    #[test]
    fn record_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("kjump-outcome-{}", std::process::id()));
        let path = dir.join("sub/last-hibernation");
        assert_eq!(read_at(&path).unwrap(), None);
        record_at(&path, &sample()).unwrap();
        let second = Outcome { ok: false, report: "the target vanished".into(), ..sample() };
        record_at(&path, &second).unwrap();
        assert_eq!(read_at(&path).unwrap(), Some(second));
        std::fs::write(&path, "back=1\n").unwrap();
        let e = read_at(&path).unwrap_err().to_string();
        assert!(e.contains("a field is missing") && e.contains("remove it"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
