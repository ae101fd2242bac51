//! A and C (`encrypt = tpm2`): sealing a secret to the machine's TPM 2.0,
//! through Debian's `tpm2-tools` (the `tpm2` program) and the kernel's
//! resource manager, `/dev/tpmrm0`. B and D never touch the TPM; this
//! module never runs in them.
//!
//! The policy a sealed secret answers to: the SHA-256 bank's PCRs in the
//! set chosen (7 by default: the Secure Boot state) hold the values they
//! held when A sealed it, **and** kjump's NV counter ([`COUNTER_INDEX`])
//! holds the value it held then. A advances the counter each time it is
//! back from a hibernation, so a copy of an image taken before its resume
//! cannot be unsealed after it (replay), and the TPM, not the disk, keeps
//! that count. The primary key is the owner hierarchy's ECC P-256 key,
//! recreated from the TPM's seed each time (nothing is stored in the TPM
//! but the counter).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::Error;

/// kjump's NV counter: an index in the owner's range (TCG handle registry:
/// 0x01800000-0x01BFFFFF), 8 bytes, readable and incrementable without a
/// password (anyone who can reach the TPM can advance it, which only
/// makes older images unresumable).
pub const COUNTER_INDEX: u32 = 0x0180_6b6a;

/// The largest TPM2B_PUBLIC or TPM2B_PRIVATE a key block holds (a sealed
/// 32-byte secret takes 80 and 160 bytes).
pub const MAX_BLOB: usize = 400;

/// Set of PCRs (0-23) in the SHA-256 bank, as a bit mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcrSet(pub u32);

impl PcrSet {
    /// PCR 7 alone (Secure Boot state), as systemd-cryptenroll chooses.
    pub const DEFAULT: PcrSet = PcrSet(1 << 7);
    /// PCRs a TPM 2.0 has in every bank.
    const COUNT: u32 = 24;

    /// Parses "7" or "0,2,7": numbers 0-23, each once; an empty list is
    /// refused (a policy bound to no PCR would unseal under any boot).
    pub fn parse(list: &str) -> Result<PcrSet, String> {
        let mut mask = 0u32;
        for word in list.split(',') {
            let n: u32 = word.trim().parse().map_err(|_| format!("{word:?} is not a PCR number (0-23)"))?;
            if n >= Self::COUNT {
                return Err(format!("PCR {n} does not exist (0-23)"));
            }
            if mask & (1 << n) != 0 {
                return Err(format!("PCR {n} is listed twice"));
            }
            mask |= 1 << n;
        }
        PcrSet::from_mask(mask)
    }

    /// The set with bit mask `mask`, if it names PCRs 0-23 only and one at least.
    pub fn from_mask(mask: u32) -> Result<PcrSet, String> {
        match mask {
            0 => Err("no PCR listed".into()),
            m if m >> Self::COUNT != 0 => Err(format!("PCR mask {m:#x} names PCRs above 23")),
            m => Ok(PcrSet(m)),
        }
    }

    /// "0,2,7".
    pub fn list(self) -> String {
        (0..Self::COUNT).filter(|n| self.0 & (1 << n) != 0).map(|n| n.to_string()).collect::<Vec<_>>().join(",")
    }
}

/// A secret sealed by [`seal`], as the key block keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The PCRs of the policy.
    pub pcrs: PcrSet,
    /// The NV index of the policy's counter (A seals with [`COUNTER_INDEX`]).
    pub index: u32,
    /// The value that counter must hold for the secret to unseal.
    pub counter: u64,
    /// The sealed object's TPM2B_PUBLIC, as the TPM gave it.
    pub public: Vec<u8>,
    /// The sealed object's TPM2B_PRIVATE, as the TPM gave it.
    pub private: Vec<u8>,
}

/// Why [`unseal`] gave no secret.
#[derive(Debug)]
pub enum UnsealError {
    /// The counter moved on since the secret was sealed: the image was
    /// resumed (or given up) after it was copied. It never will unseal.
    Stale {
        /// The counter's value when A sealed the secret.
        sealed: u64,
        /// The counter's value now.
        now: u64,
    },
    /// The TPM refused the policy: a PCR differs from A's boot (firmware,
    /// Secure Boot settings, boot loader), or the TPM is another one.
    Refused(String),
    /// No TPM to ask, or no tpm2-tools.
    Unavailable(String),
}

impl std::fmt::Display for UnsealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsealError::Stale { sealed, now } => write!(
                f,
                "the image's key was sealed at TPM counter {sealed}, and the counter is at {now}: this image was resumed or given up \
                 since it was written (an old copy); it can never be resumed"
            ),
            UnsealError::Refused(why) => write!(
                f,
                "the TPM refuses to unseal the image's key ({why}): PCRs differ from the hibernated system's boot (firmware, Secure Boot or \
                 boot loader changed?) or this is another TPM; restore what changed and reboot, or boot with kjump.noresume to give the image up"
            ),
            UnsealError::Unavailable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for UnsealError {}

/// A working directory for the tpm2 program's files (contexts, policy,
/// the sealed object's halves; never a secret), removed when dropped.
struct Session {
    dir: PathBuf,
}

impl Session {
    /// Waits for the TPM (see [`wait_for_device`]) and makes the directory.
    fn new() -> Result<Session, String> {
        wait_for_device()?;
        let base = if Path::new("/run").is_dir() { PathBuf::from("/run") } else { std::env::temp_dir() };
        let dir = base.join(format!("kjump-tpm.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Session { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        std::fs::write(self.path(name), bytes).map_err(|e| Error::io(format!("writing {}", self.path(name).display()), e))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, Error> {
        std::fs::read(self.path(name)).map_err(|e| Error::io(format!("reading {}", self.path(name).display()), e))
    }

    /// Runs `tpm2 ARGS` in the directory, with `input` on its stdin; its
    /// stdout, or the tpm2 program's own last error line.
    fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>, String> {
        if matches!(args.first(), Some(&("createprimary" | "create" | "load" | "unseal"))) && !behind_resource_manager() {
            // Each tpm2 run leaves its objects loaded when nothing flushes
            // them at its exit, and a TPM holds only a few: the ones the
            // next step needs come back from their context files.
            self.run_raw(&["flushcontext", "-t"], None)?;
        }
        self.run_raw(args, input)
    }

    fn run_raw(&self, args: &[&str], input: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut cmd = Command::new("tpm2");
        cmd.args(args).current_dir(&self.dir).stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        if std::env::var_os("TPM2TOOLS_TCTI").is_none() {
            // Not the default search: it would try a resource-manager daemon
            // first, which an initramfs does not have.
            cmd.env("TPM2TOOLS_TCTI", "device:/dev/tpmrm0");
        }
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "the tpm2 program (Debian's tpm2-tools) is not installed: install it, and rebuild the initramfs".to_string(),
            _ => format!("running tpm2: {e}"),
        })?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            use std::io::Write;
            stdin.write_all(bytes).map_err(|e| format!("writing to tpm2 {}: {e}", args[0]))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("running tpm2 {}: {e}", args[0]))?;
        let stdout = Zeroizing::new(out.stdout);
        if out.status.success() {
            return Ok(stdout);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        // tpm2-tools prints the TPM's reason first and its own summary
        // last; the reason is the one worth showing.
        let why = err.lines().find(|l| l.contains("tpm:") || l.contains("0x")).or_else(|| err.lines().rfind(|l| !l.trim().is_empty())).unwrap_or("no message");
        Err(format!("tpm2 {}: {}", args[0], why.trim().trim_start_matches("ERROR: ")))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the tpm2 runs reach the TPM through a resource manager (the
/// kernel's /dev/tpmrm0, kjump's default, or tpm2-abrmd), which flushes
/// what each run loaded when it exits; not so with a TCTI set to a TPM
/// simulator or to /dev/tpm0.
fn behind_resource_manager() -> bool {
    match std::env::var("TPM2TOOLS_TCTI") {
        Err(_) => true,
        Ok(t) => t.contains("tpmrm") || t.starts_with("tabrmd"),
    }
}

/// The kernel's TPM resource manager: waited for a while, since udev may
/// still be loading the TPM's driver in an initramfs.
fn wait_for_device() -> Result<(), String> {
    if std::env::var_os("TPM2TOOLS_TCTI").is_some() {
        return Ok(());
    }
    let dev = Path::new("/dev/tpmrm0");
    let until = Instant::now() + Duration::from_secs(10);
    while !dev.exists() {
        if Instant::now() > until {
            return Err("no TPM: /dev/tpmrm0 is missing (is the TPM enabled in the firmware, and its driver, tpm_tis or tpm_crb, loaded?)".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn hex(index: u32) -> String {
    format!("{index:#010x}")
}

/// The counter's value, or `None` when the index is not defined.
fn read_counter(s: &Session, index: u32) -> Result<Option<u64>, String> {
    if s.run(&["nvreadpublic", &hex(index)], None).is_err() {
        return Ok(None);
    }
    let out = s.run(&["nvread", &hex(index), "-s", "8"], None)?;
    let bytes: [u8; 8] = out.as_slice().try_into().map_err(|_| format!("TPM NV index {} holds {} bytes, not a counter's 8", hex(index), out.len()))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// The counter's value, defining it first if it is not there (a counter
/// has no value before its first increment).
fn counter_defined(s: &Session, index: u32) -> Result<u64, String> {
    if let Some(n) = read_counter(s, index)? {
        return Ok(n);
    }
    s.run(&["nvdefine", &hex(index), "-C", "o", "-s", "8", "-a", "nt=counter|authread|authwrite|no_da"], None)
        .map_err(|e| format!("defining kjump's TPM counter {}: {e} (an owner password? then define it yourself with tpm2_nvdefine)", hex(index)))?;
    s.run(&["nvincrement", &hex(index)], None)?;
    read_counter(s, index)?.ok_or_else(|| format!("TPM counter {} is not there after defining it", hex(index)))
}

/// The owner's ECC P-256 primary key, in context file "primary": the same
/// key each time, from the TPM's seed and this template (noda: its empty
/// password works even while the TPM is locked out).
fn primary(s: &Session) -> Result<(), String> {
    s.run(
        &[
            "createprimary",
            "-C",
            "o",
            "-g",
            "sha256",
            "-G",
            "ecc256",
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda",
            "-c",
            "primary",
            "-Q",
        ],
        None,
    )
    .map(drop)
}

/// Runs the policy's two assertions in session "session".
fn assert_policy(s: &Session, pcrs: PcrSet, index: u32, policy_out: Option<&str>) -> Result<(), String> {
    let bank = format!("sha256:{}", pcrs.list());
    s.run(&["policypcr", "-S", "session", "-l", &bank, "-Q"], None)?;
    let mut args = vec!["policynv", "-S", "session", "-i", "counter"];
    let idx = hex(index);
    args.push(&idx);
    args.push("eq");
    if let Some(p) = policy_out {
        args.extend(["-L", p]);
    }
    args.push("-Q");
    s.run(&args, None).map(drop)
}

/// A's side: seals `secret` to this TPM under PCRs `pcrs` and kjump's
/// counter at its present value (defining the counter the first time).
pub fn seal(secret: &[u8; 32], pcrs: PcrSet) -> Result<Sealed, Error> {
    let fail = |why: String| Error::Msg(format!("sealing the image's key to the TPM: {why}"));
    let s = Session::new().map_err(fail)?;
    let index = COUNTER_INDEX;
    let counter = counter_defined(&s, index).map_err(fail)?;
    s.write("counter", &counter.to_be_bytes())?;
    s.run(&["startauthsession", "-S", "session"], None).map_err(fail)?;
    let policy = assert_policy(&s, pcrs, index, Some("policy"));
    let _ = s.run(&["flushcontext", "session"], None);
    policy.map_err(fail)?;
    primary(&s).map_err(fail)?;
    // Only the policy opens it (no userwithauth), and its failures do not
    // count towards the TPM's dictionary-attack lockout (noda): a policy
    // has no password to guess, and a boot with other PCRs must not lock
    // the TPM for everything else on the machine.
    s.run(
        &["create", "-C", "primary", "-L", "policy", "-a", "fixedtpm|fixedparent|noda", "-i", "-", "-u", "sealed.pub", "-r", "sealed.priv", "-Q"],
        Some(secret),
    )
    .map_err(fail)?;
    let (public, private) = (s.read("sealed.pub")?, s.read("sealed.priv")?);
    for (what, b) in [("public", &public), ("private", &private)] {
        if b.is_empty() || b.len() > MAX_BLOB {
            return Err(fail(format!("the sealed object's {what} half is {} bytes (at most {MAX_BLOB})", b.len())));
        }
    }
    Ok(Sealed { pcrs, index, counter, public, private })
}

/// C's side: the secret `sealed` holds, if the TPM's PCRs and counter
/// are what they were when A sealed it.
pub fn unseal(sealed: &Sealed) -> Result<Zeroizing<[u8; 32]>, UnsealError> {
    let s = Session::new().map_err(UnsealError::Unavailable)?;
    let unavailable = |why: String| UnsealError::Unavailable(format!("asking the TPM: {why}"));
    match read_counter(&s, sealed.index).map_err(unavailable)? {
        None => return Err(UnsealError::Refused(format!("it has no counter {}: it was cleared, or it is not the TPM that sealed the key", hex(sealed.index)))),
        Some(now) if now != sealed.counter => return Err(UnsealError::Stale { sealed: sealed.counter, now }),
        Some(_) => {}
    }
    let io = |e: Error| UnsealError::Unavailable(e.to_string());
    s.write("counter", &sealed.counter.to_be_bytes()).map_err(io)?;
    s.write("sealed.pub", &sealed.public).map_err(io)?;
    s.write("sealed.priv", &sealed.private).map_err(io)?;
    primary(&s).map_err(unavailable)?;
    s.run(&["load", "-C", "primary", "-u", "sealed.pub", "-r", "sealed.priv", "-c", "sealed", "-Q"], None).map_err(UnsealError::Refused)?;
    s.run(&["startauthsession", "--policy-session", "-S", "session"], None).map_err(unavailable)?;
    let got = assert_policy(&s, sealed.pcrs, sealed.index, None).and_then(|()| s.run(&["unseal", "-c", "sealed", "-p", "session:session"], None));
    let _ = s.run(&["flushcontext", "session"], None);
    let out = got.map_err(UnsealError::Refused)?;
    let mut secret = Zeroizing::new([0u8; 32]);
    if out.len() != 32 {
        return Err(UnsealError::Refused(format!("it gave {} bytes, not 32", out.len())));
    }
    secret.copy_from_slice(&out);
    Ok(secret)
}

/// A's side, back from a hibernation: moves the counter on, so that no
/// copy of the image (or of any older one) unseals again. Its new value.
pub fn advance() -> Result<u64, Error> {
    let index = COUNTER_INDEX;
    let fail = |why: String| Error::Msg(format!("advancing kjump's TPM counter {}: {why}", hex(index)));
    let s = Session::new().map_err(fail)?;
    s.run(&["nvincrement", &hex(index)], None).map_err(fail)?;
    read_counter(&s, index).map_err(fail)?.ok_or_else(|| fail("it is gone".into()))
}

/// C's side, giving up the image `sealed` belongs to: moves the counter
/// on if it still holds the value sealed (a stale image's does not). Only
/// kjump's own counter: a forged key block naming another index must not
/// make C advance someone else's.
pub fn advance_from(sealed: &Sealed) -> Result<(), Error> {
    let index = sealed.index;
    if index != COUNTER_INDEX {
        return Ok(());
    }
    let fail = |why: String| Error::Msg(format!("advancing kjump's TPM counter {}: {why}", hex(index)));
    let s = Session::new().map_err(fail)?;
    if read_counter(&s, index).map_err(fail)? == Some(sealed.counter) {
        s.run(&["nvincrement", &hex(index)], None).map_err(fail)?;
    }
    Ok(())
}

/// `kjump check`: whether this machine can seal to its TPM, in one line.
pub fn check() -> Result<String, Error> {
    let fail = |why: String| Error::Msg(format!("encrypt = tpm2: {why}"));
    let s = Session::new().map_err(fail)?;
    Ok(match read_counter(&s, COUNTER_INDEX).map_err(fail)? {
        Some(n) => format!("TPM counter {} at {n}", hex(COUNTER_INDEX)),
        None => format!("TPM reachable; kjump's counter {} will be defined at the first hibernation", hex(COUNTER_INDEX)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_lists() {
        assert_eq!(PcrSet::parse("7"), Ok(PcrSet::DEFAULT));
        assert_eq!(PcrSet::parse("0, 2,7").map(|p| p.list()), Ok("0,2,7".into()));
        assert_eq!(PcrSet::parse("23").map(|p| p.0), Ok(1 << 23));
        for bad in ["", "24", "7,7", "-1", "x", "1,,2", "99999999999"] {
            assert!(PcrSet::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PcrSet::from_mask(0).is_err());
        assert!(PcrSet::from_mask(1 << 24).is_err());
        assert_eq!(PcrSet::from_mask(0x81).map(|p| p.list()), Ok("0,7".into()));
    }
}
