//! `kjump keygen`, run in A: makes the key pair of the passphrase method
//! (`kjump::host::wrap`). A wraps each image's data key to the public key, so it
//! hibernates without a passphrase; the private key, sealed under the
//! passphrase with Argon2id, goes into every image, so that C needs only
//! the image and the passphrase.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use kjump::host::ask;
use kjump::host::wrap::{self, Argon2Params};
use kjump::Error;
use zeroize::Zeroizing;

/// `kjump keygen [--dir DIR] [--argon2-memory KIB] [--force]`.
pub fn run(dir: &str, argon2_memory: Option<u32>, force: bool) -> Result<(), Error> {
    let dir = Path::new(dir);
    let public_path = dir.join(wrap::PUBLIC_KEY_FILE);
    let private_path = dir.join(wrap::PRIVATE_KEY_FILE);
    if !force {
        for path in [&public_path, &private_path] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(Error::Msg(format!(
                    "{} exists: images hibernated with that key pair open only with its passphrase, which kjump keeps nowhere; \
                     to replace the pair anyway, give --force",
                    path.display()
                )));
            }
        }
    }
    let params = Argon2Params { m_kib: argon2_memory.unwrap_or(Argon2Params::DEFAULT_M_KIB), ..Argon2Params::default() };
    params.check().map_err(|why| Error::Msg(format!("{why}: choose another --argon2-memory")))?;
    let passphrase = ask_new()?;
    let started = Instant::now();
    let (public, sealed) = wrap::keygen(passphrase.as_bytes(), params)?;
    let took = started.elapsed();
    drop(passphrase);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    // The private half first: a crash between the two leaves a pair that
    // does not match, which A refuses (it never wraps to a stray key).
    write_atomic(&private_path, &sealed.encode(), 0o600)?;
    write_atomic(&public_path, &public.encode(), 0o644)?;
    println!("kjump: wrote {} and {}", public_path.display(), private_path.display());
    println!("kjump: public key {}; {params} ({:.1} s here to open)", public.fingerprint(), took.as_secs_f64());
    if params.m_kib < Argon2Params::DEFAULT_M_KIB {
        eprintln!("kjump: note: less Argon2 memory than the default {} KiB makes guessing the passphrase cheaper", Argon2Params::DEFAULT_M_KIB);
    }
    Ok(())
}

/// The new passphrase, asked twice: on the terminal, or as two lines of
/// standard input when that is not a terminal (for scripts and tests).
fn ask_new() -> Result<Zeroizing<String>, Error> {
    let (first, second) = if ask::stdin_is_terminal() {
        let first = ask::from_terminal("New kjump passphrase: ")?;
        if first.is_empty() {
            return Err(empty());
        }
        (first, ask::from_terminal("Repeat the passphrase: ")?)
    } else {
        (ask::line_from_stdin()?, ask::line_from_stdin()?)
    };
    if first.is_empty() {
        return Err(empty());
    }
    if *first != *second {
        return Err(Error::Msg("the two passphrases differ: nothing was written; run 'kjump keygen' again".into()));
    }
    Ok(first)
}

fn empty() -> Error {
    Error::Msg("the passphrase is empty: nothing was written; give one".into())
}

/// Writes `bytes` to `path` with mode `mode`, whole or not at all: a
/// temporary file in the same directory, synced, renamed over `path`, and
/// the directory synced.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        // The umask may have taken bits away: set the mode asked for.
        f.set_permissions(Permissions::from_mode(mode)).map_err(|e| Error::io(format!("setting the mode of {}", tmp.display()), e))?;
        f.write_all(bytes).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        f.sync_all().map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {} to {}", tmp.display(), path.display()), e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(format!("syncing {}", dir.display()), e))
}
