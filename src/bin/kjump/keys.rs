//! A and C: the keys of encrypted images, as the commands get them: a new
//! one for each hibernation, and the one that opens an image at resume.

use crate::settings::Settings;
use kjump::target::in_use;
use kjump::Error;

/// On a system whose filesystems or swap sit on dm-crypt, an image in the
/// clear would put that volume's key on the target. Refused unless
/// `encrypt` is set: to a method, or to `none` explicitly.
pub(crate) fn refuse_clear_image_of_encrypted_disks(s: &Settings, uses: &[in_use::InUse]) -> Result<(), Error> {
    match (&s.encrypt, in_use::on_dm_crypt(uses)) {
        (kjump::host::config::Encrypt::Unset, Some(why)) => Err(Error::Msg(format!(
            "{why}: an image in the clear would hold that volume's key; set encrypt = passphrase (after 'kjump keygen'), \
             encrypt = tpm2 or encrypt = keyfile:/path in /etc/kjump.conf, or encrypt = none to accept that (the target itself encrypted, say)"
        ))),
        _ => Ok(()),
    }
}

/// The key block of an image's state: `None` once its key was destroyed
/// (the state block reads an erased key block as empty).
fn key_block(st: &kjump::image::StateBlock) -> Result<Option<kjump::host::wrap::KeyBlock>, Error> {
    if st.key_block.is_empty() {
        return Ok(None);
    }
    kjump::host::wrap::KeyBlock::decode(&st.key_block)
}

/// An encrypted image's key, as its state block holds it.
pub(crate) enum KeyState {
    /// Wrapped (or sealed) as the block says.
    Wrapped(kjump::host::wrap::KeyBlock),
    /// Erased when the image was consumed or given up.
    Destroyed,
    /// A key block that does not decode.
    Unreadable(Error),
}

/// The key of an encrypted image (`None` for an image in the clear).
pub(crate) fn key_state(h: &kjump::image::Header, st: &kjump::image::StateBlock) -> Option<KeyState> {
    if !h.encrypted() {
        return None;
    }
    Some(match key_block(st) {
        Ok(Some(b)) => KeyState::Wrapped(b),
        Ok(None) => KeyState::Destroyed,
        Err(e) => KeyState::Unreadable(e),
    })
}

/// How an image is encrypted, for `kjump image info`.
pub(crate) fn encryption_text(h: &kjump::image::Header, st: &kjump::image::StateBlock) -> String {
    use kjump::host::wrap::Method;
    let Some(key) = key_state(h, st) else {
        return "none: A's memory is in the clear in this image".into();
    };
    let how = match key {
        KeyState::Wrapped(b) => match (b.method(), b.public_key()) {
            (Method::Passphrase, Some(p)) => format!("key wrapped to a passphrase, key pair {}", p.fingerprint()),
            (Method::Passphrase, None) => "key wrapped to a passphrase".into(),
            (Method::KeyFile, _) => "key wrapped with a key file".into(),
            (Method::Tpm2, _) => match b.tpm_sealed() {
                Some(t) => format!("key sealed to the TPM under PCRs sha256:{} and counter {:#010x} at {}", t.pcrs.list(), t.index, t.counter),
                None => "key sealed to the TPM".into(),
            },
        },
        KeyState::Destroyed => "key destroyed when the image was consumed or given up: its pages can never be read".into(),
        KeyState::Unreadable(e) => format!("key block unreadable: {e}"),
    };
    format!("{}; {how}; image id {}", h.cipher.name(), h.image_id.hex())
}

/// Why an encrypted image without its key block is refused.
pub(crate) const KEY_DESTROYED: &str = "the image's key was destroyed when it was consumed or given up: it can never be resumed";

/// Tries of a passphrase at resume, as cryptsetup gives.
pub(crate) const PASSPHRASE_TRIES: u32 = 3;

/// Why an image's key could not be had.
pub(crate) enum KeyError {
    /// Not now: the image is kept as it is (a wrong passphrase, no key
    /// file, a TPM that refuses under these PCRs).
    Keep(Error),
    /// Never: the TPM's counter moved on since the key was sealed.
    Stale(String),
}

impl From<Error> for KeyError {
    fn from(e: Error) -> Self {
        KeyError::Keep(e)
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Keep(e) => e,
            KeyError::Stale(why) => Error::Msg(why),
        }
    }
}

/// The data key of an encrypted image: unwrapped with `key_file` (or the
/// settings' key file), with a passphrase asked on the terminal, or with
/// the key this machine's TPM unseals. With `ask` false and no key file
/// (key file or passphrase images), `Ok(None)`.
pub(crate) fn image_key(
    h: &kjump::image::Header,
    st: &kjump::image::StateBlock,
    key_file: Option<&str>,
    ask: bool,
) -> Result<Option<kjump::image::seal::DataKey>, KeyError> {
    use kjump::host::wrap::{Method, UnwrapError};
    let block = key_block(st).map_err(|e| Error::Msg(format!("the image's key block: {e}")))?.ok_or_else(|| Error::Msg(KEY_DESTROYED.into()))?;
    match block.method() {
        Method::Tpm2 => {
            let sealed = block.tpm_sealed().ok_or_else(|| Error::Msg("the image's key block names the TPM but holds no sealed key".into()))?;
            let kek = kjump::host::tpm::unseal(sealed).map_err(|e| match e {
                kjump::host::tpm::UnsealError::Stale { .. } => KeyError::Stale(e.to_string()),
                _ => KeyError::Keep(Error::Msg(e.to_string())),
            })?;
            kjump::host::wrap::unwrap_with_kek(&block, h.image_id, &kek).map(Some).map_err(|e| KeyError::Keep(Error::Msg(e.to_string())))
        }
        Method::KeyFile => {
            let Some(path) = key_file else {
                return if ask {
                    Err(Error::Msg("the image's key is wrapped with a key file: give --key-file PATH, or set encrypt = keyfile:PATH".into()).into())
                } else {
                    Ok(None)
                };
            };
            let bytes = kjump::host::config::read_key_file(path)?;
            Ok(kjump::host::wrap::unwrap_with_key_file(&block, h.image_id, &bytes).map(Some).map_err(|e| Error::Msg(format!("key file {path}: {e}")))?)
        }
        Method::Passphrase => {
            if let Some(path) = key_file {
                // Set in kjump.conf for later images, or given by mistake.
                eprintln!("kjump: the image's key is wrapped to a passphrase; the key file {path} is not used");
            }
            if !ask {
                return Ok(None);
            }
            for left in (0..PASSPHRASE_TRIES).rev() {
                // A keyscript or a test may pipe the passphrase in.
                let pass = if kjump::host::ask::stdin_is_terminal() {
                    kjump::host::ask::passphrase("Passphrase of the hibernated system:")?
                } else {
                    kjump::host::ask::line_from_stdin()?
                };
                match kjump::host::wrap::unwrap_with_passphrase(&block, h.image_id, pass.as_bytes()) {
                    Ok(key) => return Ok(Some(key)),
                    Err(UnwrapError::WrongKey(_)) if left > 0 => eprintln!("kjump: wrong passphrase; {left} more tr{}", if left == 1 { "y" } else { "ies" }),
                    Err(UnwrapError::WrongKey(_)) => {
                        return Err(Error::Msg(format!("wrong passphrase {PASSPHRASE_TRIES} times; the image is kept for the next boot")).into());
                    }
                    Err(e) => return Err(Error::Msg(e.to_string()).into()),
                }
            }
            Err(Error::Msg("no passphrase".into()).into())
        }
    }
}

/// A fresh key for the image about to be saved, wrapped as `encrypt` says
/// (`None` when images are in the clear).
pub(crate) fn new_image_key(s: &Settings) -> Result<Option<kjump::save::ImageKey>, Error> {
    use kjump::host::config::Encrypt;
    let key = kjump::image::seal::DataKey::random()?;
    let id = kjump::image::seal::ImageId::random()?;
    let block = match &s.encrypt {
        Encrypt::Unset | Encrypt::None => return Ok(None),
        Encrypt::KeyFile(path) => kjump::host::wrap::wrap_with_key_file(&key, id, &kjump::host::config::read_key_file(path)?)?,
        Encrypt::Passphrase => {
            let (public, sealed) = kjump::host::wrap::read_key_pair(std::path::Path::new(kjump::host::wrap::DEFAULT_KEY_DIR))?;
            kjump::host::wrap::wrap_to_public_key(&key, id, &public, &sealed)?
        }
        Encrypt::Tpm2(pcrs) => kjump::host::wrap::wrap_to_tpm(&key, id, *pcrs)?,
    };
    let key_block = block.encode().to_vec();
    let mut salt = [0u8; kjump::image::seal::ID_LEN];
    kjump::image::seal::random(&mut salt)?;
    Ok(Some(kjump::save::ImageKey { key, id, key_block, salt }))
}

/// After an image sealed to the TPM is given up: its counter moved on, so
/// that no copy of the image unseals again (`tpm::advance_from`); best
/// effort, since the image is bad already.
pub(crate) fn retire_tpm_key(key_block: &[u8]) {
    let Ok(Some(block)) = kjump::host::wrap::KeyBlock::decode(key_block) else { return };
    let Some(sealed) = block.tpm_sealed() else { return };
    if let Err(e) = kjump::host::tpm::advance_from(sealed) {
        eprintln!("kjump: {e}");
    }
}
