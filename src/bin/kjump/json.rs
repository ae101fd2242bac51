//! `--json`: the one object `check`, `image info` and `resume --check`
//! print on standard output instead of their lines. Each is a struct here,
//! its fields named as kjump(8) (JSON OUTPUT) documents them; a field may
//! be added, never renamed or given another type.

use serde::Serialize;

use crate::keys::{encryption_text, key_state, KeyState};
use crate::Failure;
use kjump::image::{Compression, Header, State, StateBlock};
use kjump::Error;

/// Prints `value` as one line of JSON on standard output.
pub(crate) fn print<T: Serialize>(value: &T) -> Result<(), Error> {
    let text = serde_json::to_string(value).map_err(|e| Error::Msg(format!("writing JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// A line of `kjump check`.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct CheckLine {
    pub(crate) ok: bool,
    pub(crate) text: String,
}

/// What `kjump check` found about the initramfs of one kernel.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct InitramfsLine {
    pub(crate) kernel_release: String,
    /// Built with the settings and the kjump of now.
    pub(crate) current: bool,
    pub(crate) text: String,
}

/// `kjump check --json`.
#[derive(Serialize, Debug, Default, PartialEq)]
pub(crate) struct Check {
    /// Every check passed (and the round trip, with `--jump`): exit 0.
    pub(crate) ok: bool,
    /// The checks that ran, in order; the first that failed ends them.
    pub(crate) checks: Vec<CheckLine>,
    /// Why not, when `ok` is false: the line `kjump check` ends with.
    pub(crate) error: Option<String>,
    /// The initramfs of each installed kernel with kjump in it.
    pub(crate) initramfs: Vec<InitramfsLine>,
    /// Under systemd with a target set: whether `systemctl hibernate`
    /// reaches kjump (`ok` false: what to do).
    pub(crate) systemd: Option<CheckLine>,
    /// Whether the hibernation kernel can suspend to RAM, for hybrid sleep
    /// (`ok` false: it would power off instead); null without a manifest.
    pub(crate) hybrid_sleep: Option<CheckLine>,
    /// With `--jump`: how long A was away.
    pub(crate) round_trip_seconds: Option<f64>,
}

/// `kjump resume --check --json`.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct ResumeCheck {
    /// The next boot's `kjump resume` would resume this image.
    pub(crate) would_resume: bool,
    /// 0 would resume, 3 nothing to resume, 1 failed, 2 bad settings.
    pub(crate) exit_status: u8,
    /// The line `kjump resume --check` prints: what it would do, or why not.
    pub(crate) message: String,
    /// The image it would resume.
    pub(crate) image: Option<ResumeImage>,
}

/// The image `kjump resume` would resume.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct ResumeImage {
    /// The target it is on, as the settings name it.
    pub(crate) target: String,
    pub(crate) kernel_release: String,
    pub(crate) data_bytes: u64,
    pub(crate) encrypted: bool,
    /// Its key, as `image info` says (null when not encrypted).
    pub(crate) encryption: Option<String>,
}

impl ResumeCheck {
    /// `kjump resume --check` found an image it would resume.
    pub(crate) fn would(message: String, target: String, h: &Header, st: &StateBlock) -> Self {
        let image = ResumeImage {
            target,
            kernel_release: kjump::image::printable(&h.kernel_release),
            data_bytes: h.data_bytes,
            encrypted: h.encrypted(),
            encryption: h.encrypted().then(|| encryption_text(h, st)),
        };
        ResumeCheck { would_resume: true, exit_status: crate::exit::OK, message, image: Some(image) }
    }

    /// `kjump resume --check` would not resume, for `why`.
    pub(crate) fn refused(why: &Failure) -> Self {
        let (exit_status, message) = match why {
            Failure::Usage(m) => (crate::exit::USAGE, m.clone()),
            Failure::NothingToResume(m) => (crate::exit::NOTHING_TO_RESUME, m.clone()),
            Failure::Error(e) => (crate::exit::FAILURE, e.to_string()),
        };
        ResumeCheck { would_resume: false, exit_status, message, image: None }
    }
}

/// `kjump image info --json`.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct ImageInfo {
    pub(crate) path: String,
    /// writing, committed, consumed, bad or snapshot.
    pub(crate) state: &'static str,
    /// Why an image is bad, or who consumed it (null when none).
    pub(crate) note: Option<String>,
    pub(crate) attempts: u32,
    /// How long B took to save it, in milliseconds (null: not recorded).
    pub(crate) save_ms: Option<u32>,
    pub(crate) kernel_release: String,
    pub(crate) build_id: Option<String>,
    /// RFC 3339, UTC (null past the year 9999).
    pub(crate) created: Option<String>,
    pub(crate) created_unix: u64,
    /// none, lz4 or deflate.
    pub(crate) compression: &'static str,
    pub(crate) ram_bytes: u64,
    /// A's RAM as physical [start, end) ranges.
    pub(crate) ram_ranges: Vec<[u64; 2]>,
    pub(crate) ram_pages: u64,
    pub(crate) stored_pages: u64,
    pub(crate) zero_pages: u64,
    pub(crate) free_pages: u64,
    pub(crate) data_bytes: u64,
    pub(crate) chunk_count: u64,
    /// The kjump region, physical [start, end).
    pub(crate) region: [u64; 2],
    pub(crate) reentry: u64,
    /// Where A's low memory was backed up: [start, length].
    pub(crate) low_memory: [u64; 2],
    /// Where A's VMCOREINFO note is, [address, length] (null: not
    /// recorded, so `kjump image export` refuses the image).
    pub(crate) vmcoreinfo: Option<[u64; 2]>,
    /// A's direct-map base, for the export's virtual addresses (null:
    /// unknown).
    pub(crate) page_offset: Option<u64>,
    pub(crate) encryption: Encryption,
    /// The state block commits this header.
    pub(crate) header_committed: bool,
}

/// How an image is encrypted.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct Encryption {
    pub(crate) encrypted: bool,
    /// xchacha20-poly1305 (null when not encrypted).
    pub(crate) cipher: Option<&'static str>,
    /// none (not encrypted), wrapped, destroyed (consumed or given up) or
    /// unreadable (a key block that does not decode).
    pub(crate) key: &'static str,
    /// passphrase, keyfile or tpm2, when the key is wrapped.
    pub(crate) method: Option<&'static str>,
    /// The passphrase's key pair (its fingerprint).
    pub(crate) key_pair: Option<String>,
    /// What the TPM sealed the key under.
    pub(crate) tpm: Option<Tpm>,
    pub(crate) image_id: Option<String>,
    /// The line `image info` prints.
    pub(crate) text: String,
}

/// The policy a TPM-sealed key answers to.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct Tpm {
    /// SHA-256 PCRs.
    pub(crate) pcrs: Vec<u32>,
    pub(crate) counter_index: u32,
    pub(crate) counter: u64,
}

/// The word for a state in JSON (`State::name` is for people).
pub(crate) fn state_word(state: State) -> &'static str {
    match state {
        State::Writing => "writing",
        State::Committed => "committed",
        State::Consumed => "consumed",
        State::Bad => "bad",
        State::Snapshot => "snapshot",
    }
}

impl ImageInfo {
    pub(crate) fn new(path: &str, h: &Header, st: &StateBlock, header_committed: bool) -> Self {
        let printable = |s: &str| kjump::image::printable(s);
        ImageInfo {
            path: path.to_string(),
            state: state_word(st.state),
            note: (!st.note.is_empty()).then(|| printable(&st.note)),
            attempts: st.attempts,
            save_ms: (st.save_ms != 0).then_some(st.save_ms),
            kernel_release: printable(&h.kernel_release),
            build_id: (!h.build_id.is_empty()).then(|| printable(&h.build_id)),
            created: kjump::units::date(h.created_unix),
            created_unix: h.created_unix,
            compression: h.compression.map_or("none", Compression::name),
            ram_bytes: h.ram.iter().map(|r| r.len()).fold(0u64, u64::saturating_add),
            ram_ranges: h.ram.iter().map(|r| [r.start, r.end]).collect(),
            ram_pages: h.ram_pages,
            stored_pages: h.stored_pages,
            zero_pages: h.zero_pages,
            free_pages: h.free_pages,
            data_bytes: h.data_bytes,
            chunk_count: h.chunk_count,
            region: [h.region.start, h.region.end],
            reentry: h.reentry,
            low_memory: [h.backup.start, h.backup.len()],
            vmcoreinfo: h.vmcoreinfo.map(|n| [n.addr, n.size]),
            page_offset: h.page_offset,
            encryption: Encryption::new(h, st),
            header_committed,
        }
    }
}

impl Encryption {
    fn new(h: &Header, st: &StateBlock) -> Self {
        use kjump::host::wrap::Method;
        let text = encryption_text(h, st);
        let mut e = Encryption { encrypted: h.encrypted(), cipher: None, key: "none", method: None, key_pair: None, tpm: None, image_id: None, text };
        let Some(key) = key_state(h, st) else { return e };
        e.cipher = Some(match h.cipher {
            kjump::image::seal::Cipher::None => "none",
            kjump::image::seal::Cipher::XChaCha20Poly1305 => "xchacha20-poly1305",
        });
        e.image_id = Some(h.image_id.hex());
        match key {
            KeyState::Destroyed => e.key = "destroyed",
            KeyState::Unreadable(_) => e.key = "unreadable",
            KeyState::Wrapped(b) => {
                e.key = "wrapped";
                e.method = Some(match b.method() {
                    Method::Passphrase => "passphrase",
                    Method::KeyFile => "keyfile",
                    Method::Tpm2 => "tpm2",
                });
                e.key_pair = b.public_key().map(|p| p.fingerprint());
                e.tpm =
                    b.tpm_sealed().map(|t| Tpm { pcrs: (0..32).filter(|n| t.pcrs.0 & (1 << n) != 0).collect(), counter_index: t.index, counter: t.counter });
            }
        }
        e
    }
}

/// `image info --json` on something it could not read.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct ImageError {
    pub(crate) path: String,
    pub(crate) error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kjump::image::seal::{Cipher, DataKey, ImageId};
    use serde_json::{json, Value};

    fn value<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn state(state: State, note: &str, key_block: Vec<u8>) -> StateBlock {
        StateBlock { state, header_crc: 0, chain_crc: 0, chunk_count: 2, data_end: 0, note: note.into(), attempts: 1, save_ms: 2500, tags: [0; 32], key_block }
    }

    fn header(cipher: Cipher) -> Header {
        Header {
            compression: Some(Compression::Lz4),
            created_unix: 1_800_000_000,
            reentry: 0x1234,
            region: kjump::range::PhysRange::new(0x4000_0000, 0x4400_0000),
            backup: kjump::range::PhysRange::new(0x9000, 0xa000),
            ram_pages: 10,
            zero_pages: 3,
            free_pages: 2,
            stored_pages: 5,
            chunk_count: 2,
            data_bytes: 8192,
            kernel_release: "6.12.118\u{1b}[31m".into(),
            build_id: String::new(),
            ram: vec![kjump::range::PhysRange::new(0x1000, 0x9f000), kjump::range::PhysRange::new(0x100000, 0x8000_0000)],
            cipher,
            image_id: ImageId([0xab; 16]),
            ..Default::default()
        }
    }

    #[test]
    fn image_info_of_an_image_in_the_clear() {
        let v = value(&ImageInfo::new("/dev/vdb", &header(Cipher::None), &state(State::Committed, "", Vec::new()), true));
        assert_eq!(v["path"], "/dev/vdb");
        assert_eq!(v["state"], "committed");
        assert_eq!(v["note"], Value::Null);
        assert_eq!(v["attempts"], 1);
        assert_eq!(v["save_ms"], 2500);
        // Escape sequences from a forged image never reach the terminal.
        assert_eq!(v["kernel_release"], "6.12.118?[31m");
        assert_eq!(v["build_id"], Value::Null);
        assert_eq!(v["created"], "2027-01-15T08:00:00Z");
        assert_eq!(v["created_unix"], 1_800_000_000u64);
        assert_eq!(v["compression"], "lz4");
        assert_eq!(v["ram_bytes"], 0x9f000u64 - 0x1000 + 0x8000_0000 - 0x100000);
        assert_eq!(v["ram_ranges"], json!([[0x1000, 0x9f000], [0x100000, 0x8000_0000u64]]));
        assert_eq!(v["region"], json!([0x4000_0000, 0x4400_0000]));
        assert_eq!(v["low_memory"], json!([0x9000, 0x1000]));
        // Made before kjump recorded the export's fields, then with them.
        assert_eq!((&v["vmcoreinfo"], &v["page_offset"]), (&Value::Null, &Value::Null));
        let mut h = header(Cipher::None);
        (h.vmcoreinfo, h.page_offset) = (Some(kjump::load::elf_core::Note { addr: 0x2b4_c000, size: 0xa8c }), Some(0xffff_8880_0000_0000));
        let e = value(&ImageInfo::new("f", &h, &state(State::Committed, "", Vec::new()), true));
        assert_eq!((&e["vmcoreinfo"], &e["page_offset"]), (&json!([0x2b4_c000, 0xa8c]), &json!(0xffff_8880_0000_0000u64)));
        assert_eq!((v["stored_pages"].as_u64(), v["zero_pages"].as_u64(), v["free_pages"].as_u64()), (Some(5), Some(3), Some(2)));
        assert_eq!(v["header_committed"], true);
        assert_eq!(
            v["encryption"],
            json!({"encrypted": false, "cipher": null, "key": "none", "method": null, "key_pair": null, "tpm": null, "image_id": null,
                   "text": "none: A's memory is in the clear in this image"})
        );
        let mut h = header(Cipher::None);
        h.created_unix = u64::MAX;
        assert_eq!(value(&ImageInfo::new("f", &h, &state(State::Writing, "", Vec::new()), false))["created"], Value::Null);
    }

    #[test]
    fn image_info_of_an_image_given_up_with_its_key_destroyed() {
        let st = state(State::Bad, "not resumed: noresume given at boot", Vec::new());
        let v = value(&ImageInfo::new("img", &header(Cipher::XChaCha20Poly1305), &st, true));
        assert_eq!(v["state"], "bad");
        assert_eq!(v["note"], "not resumed: noresume given at boot");
        let e = &v["encryption"];
        assert_eq!((e["encrypted"].as_bool(), e["cipher"].as_str(), e["key"].as_str()), (Some(true), Some("xchacha20-poly1305"), Some("destroyed")));
        assert_eq!((e["method"].is_null(), e["tpm"].is_null()), (true, true));
        assert_eq!(e["image_id"], "ab".repeat(16));
        assert!(e["text"].as_str().unwrap().contains("key destroyed"), "{e}");
    }

    #[test]
    fn image_info_of_an_unreadable_and_of_a_wrapped_key() {
        let h = header(Cipher::XChaCha20Poly1305);
        let v = value(&ImageInfo::new("img", &h, &state(State::Committed, "", vec![0xee; 40]), true));
        assert_eq!(v["encryption"]["key"], "unreadable");
        assert!(v["encryption"]["text"].as_str().unwrap().contains("key block unreadable"));
        let block = kjump::host::wrap::wrap_with_key_file(&DataKey::random().unwrap(), h.image_id, &[7u8; 64]).unwrap();
        let v = value(&ImageInfo::new("img", &h, &state(State::Committed, "", block.encode().to_vec()), true));
        let e = &v["encryption"];
        assert_eq!((e["key"].as_str(), e["method"].as_str()), (Some("wrapped"), Some("keyfile")));
        assert!(e["text"].as_str().unwrap().contains("key wrapped with a key file"));
    }

    #[test]
    fn resume_check_objects() {
        let h = header(Cipher::None);
        let st = state(State::Committed, "", Vec::new());
        let v = value(&ResumeCheck::would("resume: committed image on /dev/vdb: …; would resume".into(), "/dev/vdb".into(), &h, &st));
        assert_eq!((v["would_resume"].as_bool(), v["exit_status"].as_u64()), (Some(true), Some(0)));
        assert_eq!(v["image"], json!({"target": "/dev/vdb", "kernel_release": "6.12.118?[31m", "data_bytes": 8192, "encrypted": false, "encryption": null}));
        let no = value(&ResumeCheck::refused(&Failure::NothingToResume("resume: not resuming: no image".into())));
        assert_eq!(no, json!({"would_resume": false, "exit_status": 3, "message": "resume: not resuming: no image", "image": null}));
        assert_eq!(value(&ResumeCheck::refused(&Failure::Usage("bad".into())))["exit_status"], 2);
        assert_eq!(value(&ResumeCheck::refused(&Failure::Error(Error::Msg("io".into()))))["exit_status"], 1);
    }

    #[test]
    fn check_object() {
        let v = value(&Check { ok: false, checks: vec![CheckLine { ok: false, text: "no kexec".into() }], error: Some("x".into()), ..Default::default() });
        assert_eq!(
            v,
            json!({"ok": false, "checks": [{"ok": false, "text": "no kexec"}], "error": "x", "initramfs": [], "systemd": null, "hybrid_sleep": null, "round_trip_seconds": null})
        );
    }

    /// Every key of `v`, nested ones included.
    fn keys(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_field_is_documented_in_the_man_page() {
        let man = include_str!("../../../man/kjump.8");
        let section = &man[man.find(".SH JSON OUTPUT").expect("kjump.8 has a JSON OUTPUT section")..];
        let section = &section[..section[1..].find("\n.SH ").map_or(section.len(), |i| i + 1)];
        let mut info = ImageInfo::new("img", &header(Cipher::XChaCha20Poly1305), &state(State::Committed, "n", Vec::new()), true);
        info.encryption.tpm = Some(Tpm { pcrs: vec![7], counter_index: 1, counter: 2 });
        let check = Check {
            checks: vec![CheckLine { ok: true, text: String::new() }],
            initramfs: vec![InitramfsLine { kernel_release: String::new(), current: true, text: String::new() }],
            ..Default::default()
        };
        let resume = ResumeCheck::would(String::new(), String::new(), &header(Cipher::None), &state(State::Committed, "", Vec::new()));
        let mut all = Vec::new();
        for v in [value(&info), value(&check), value(&resume), value(&ImageError { path: String::new(), error: String::new() })] {
            keys(&v, &mut all);
        }
        for key in all {
            assert!(section.contains(&format!("\n.B {key}\n")) || section.contains(&format!("\n.BR {key} ")), "kjump.8 JSON OUTPUT does not list {key}");
        }
    }
}
