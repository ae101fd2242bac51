//! `encrypt = tpm2` against a real TPM 2.0 implementation: swtpm (Debian's
//! package, which `make deps` installs) driven by kjump's `tpm` module
//! through the tpm2-tools it runs in A and C. Each "boot" is a fresh swtpm
//! process over the same state directory, as a machine's TPM keeps its NV
//! memory and resets its PCRs and loaded objects at power-on. The whole
//! flow across kernels is `make test-distro`'s; this one pins down the
//! policy: the secret unseals once, a copy after the resume does not, and
//! changed PCRs, a changed sealed object or another TPM refuse.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kjump::host::tpm::{self, PcrSet, UnsealError};

/// One power-on of the emulated TPM: swtpm on two local TCP ports, its NV
/// memory in `state`.
struct Boot {
    child: Child,
}

impl Boot {
    fn start(state: &Path) -> Boot {
        // Two free ports in a row: the TPM's and its control channel (the
        // swtpm TCTI uses PORT and PORT + 1).
        let port = loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let p = l.local_addr().unwrap().port();
            drop(l);
            if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .args(["--server", &format!("type=tcp,port={port},bindaddr=127.0.0.1")])
            .args(["--ctrl", &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1)])
            .stdout(Stdio::null())
            .spawn()
            .expect("running swtpm (Debian's swtpm package: 'make deps' installs it)");
        // The only test in this binary sets it; every tpm2 run reads it.
        std::env::set_var("TPM2TOOLS_TCTI", format!("swtpm:host=127.0.0.1,port={port}"));
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "swtpm did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Boot { child }
    }

    fn tpm2(&self, args: &[&str]) {
        let st = Command::new("tpm2").args(args).stdout(Stdio::null()).status().expect("running tpm2 (tpm2-tools)");
        assert!(st.success(), "tpm2 {args:?} failed");
    }
}

impl Drop for Boot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kjump-tpm-test.{}.{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_sealed_key_unseals_once_and_never_from_an_old_copy() {
    let state = state_dir("machine");
    let secret = [0x42u8; 32];

    // A's first hibernation: the counter is defined, the key sealed at it.
    let sealed = {
        let _a = Boot::start(&state);
        assert!(tpm::check().unwrap().contains("will be defined"), "a new TPM has no kjump counter yet");
        let sealed = tpm::seal(&secret, PcrSet::DEFAULT).expect("sealing to swtpm");
        assert_eq!((sealed.index, sealed.pcrs), (tpm::COUNTER_INDEX, PcrSet::DEFAULT));
        assert!(tpm::check().unwrap().contains(&format!("at {}", sealed.counter)));
        sealed
    };

    // C, the next power-on: the key unseals; back in A, the counter moves on.
    {
        let _c = Boot::start(&state);
        assert_eq!(*tpm::unseal(&sealed).expect("unsealing on the next boot"), secret);
        // It unseals as often as C is retried before A is back.
        assert_eq!(*tpm::unseal(&sealed).expect("unsealing again"), secret);
        assert_eq!(tpm::advance().unwrap(), sealed.counter + 1);
    }

    // A copy of the image, brought back later: refused for good.
    {
        let _c = Boot::start(&state);
        match tpm::unseal(&sealed) {
            Err(UnsealError::Stale { sealed: s, now }) => assert_eq!((s, now), (sealed.counter, sealed.counter + 1)),
            other => panic!("an old copy was not refused as stale: {other:?}"),
        }
    }

    // A new image; this boot's PCR 7 then differs from A's (another
    // Secure Boot state): the TPM refuses, and nothing is lost.
    let sealed = {
        let _a = Boot::start(&state);
        tpm::seal(&secret, PcrSet::parse("0,7").unwrap()).unwrap()
    };
    {
        let c = Boot::start(&state);
        c.tpm2(&["pcrextend", &format!("7:sha256={}", "ab".repeat(32))]);
        match tpm::unseal(&sealed) {
            Err(UnsealError::Refused(why)) => assert!(!why.is_empty()),
            other => panic!("changed PCRs did not make the TPM refuse: {other:?}"),
        }
    }
    {
        // A sealed object changed on disk: refused, never a panic.
        let _c = Boot::start(&state);
        for (i, half) in [(0usize, true), (40, true), (10, false), (100, false)] {
            let mut forged = sealed.clone();
            let b = if half { &mut forged.public } else { &mut forged.private };
            b[i] ^= 0x01;
            assert!(matches!(tpm::unseal(&forged), Err(UnsealError::Refused(_))), "a changed sealed object (byte {i}) was not refused");
        }
        // The right one still unseals on a boot with A's PCRs.
        assert_eq!(*tpm::unseal(&sealed).unwrap(), secret);
        // C giving the image up moves the counter on once, only from the
        // value the image was sealed at.
        tpm::advance_from(&sealed).unwrap();
        tpm::advance_from(&sealed).unwrap();
        // A key block naming another counter never makes C touch it.
        tpm::advance_from(&tpm::Sealed { index: tpm::COUNTER_INDEX + 1, ..sealed.clone() }).unwrap();
        assert!(tpm::check().unwrap().contains(&format!("at {}", sealed.counter + 1)));
        assert!(matches!(tpm::unseal(&sealed), Err(UnsealError::Stale { .. })));
    }

    // Another machine's TPM (the disk moved): no counter there, refused.
    let other = state_dir("other");
    {
        let _c = Boot::start(&other);
        match tpm::unseal(&sealed) {
            Err(UnsealError::Refused(why)) => assert!(why.contains("no counter"), "{why}"),
            other => panic!("another TPM did not refuse: {other:?}"),
        }
    }

    // The whole key block: wrapped under a TPM-sealed key in A, unwrapped in C.
    {
        let _a = Boot::start(&state);
        let key = kjump::image::seal::DataKey::random().unwrap();
        let id = kjump::image::seal::ImageId::random().unwrap();
        let block = kjump::host::wrap::wrap_to_tpm(&key, id, PcrSet::DEFAULT).unwrap();
        let back = kjump::host::wrap::KeyBlock::decode(&block.encode()).unwrap().unwrap();
        let kek = tpm::unseal(back.tpm_sealed().unwrap()).unwrap();
        assert_eq!(kjump::host::wrap::unwrap_with_kek(&back, id, &kek).unwrap(), key);
    }
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&other);
}
