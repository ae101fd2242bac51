//! Runs in A (wraps each image's data key when it hibernates, and makes the
//! key pair in `kjump keygen`) and in C (unwraps the key at the next boot,
//! before resuming): how an image's data key is kept on disk.
//!
//! The image's state block holds a *key block* of [`KEY_BLOCK_LEN`] bytes;
//! all zero means there is no key (the image is not encrypted, or its key
//! was destroyed once the image was consumed: crypto-erase). Two methods
//! wrap the key, each with XChaCha20-Poly1305 and the image ID as
//! associated data (so a key block moved to another image does not open):
//!
//! - [`Method::KeyFile`]: the key-encryption key (KEK) is HKDF-SHA-256 of
//!   a key file's bytes under a random salt;
//! - [`Method::Passphrase`]: A wraps to the X25519 public key that
//!   `kjump keygen` made (an ephemeral key pair, HKDF-SHA-256 over the
//!   shared secret and both public keys), so A needs no passphrase to
//!   hibernate. The block also carries the private key, sealed under a key
//!   derived from the passphrase with Argon2id, so that C needs nothing but
//!   the image and the passphrase.
//!
//! The byte layouts are in `docs/image-format.md` ("Key block", "Key files"). Every decoder checks
//! lengths before it reads, bounds the Argon2 cost it accepts and never
//! panics; every secret buffer is wiped when dropped.

use core::fmt;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::image::crc32;
use crate::image::seal::{self, DataKey, ImageId, ID_LEN, KEY_LEN};
use crate::le::Cursor;
use crate::Error;

/// Bytes of a key block in the state block.
pub const KEY_BLOCK_LEN: usize = crate::image::KEY_BLOCK_LEN;
/// Fewest bytes a key file may have.
pub const KEY_FILE_MIN: usize = 32;
/// Most bytes a key file may have.
pub const KEY_FILE_MAX: usize = 64 * 1024;

const BLOCK_MAGIC: &[u8; 8] = b"KJKEYBLK";
const BLOCK_VERSION: u16 = 1;
/// Magic, version, method, body length.
const BLOCK_HEAD: usize = 16;
/// Where the key block's CRC-32 sits (it covers every byte before it).
const BLOCK_CRC_AT: usize = KEY_BLOCK_LEN - 4;
/// The most body bytes a key block has room for.
pub const MAX_BODY: usize = BLOCK_CRC_AT - BLOCK_HEAD;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// A wrapped 32-byte secret: nonce, ciphertext, tag.
const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;
const KEY_FILE_SALT_LEN: usize = 32;
/// Body of a key-file block: salt, wrapped data key.
const KEY_FILE_BODY: usize = KEY_FILE_SALT_LEN + WRAPPED_LEN;
/// Body of a passphrase block: ephemeral public key, wrapped data key,
/// the sealed private key (as in `private.key`).
const PASSPHRASE_BODY: usize = 32 + WRAPPED_LEN + PRIVATE_KEY_LEN;

const PUBLIC_MAGIC: &[u8; 8] = b"KJPUBKEY";
const PUBLIC_VERSION: u16 = 1;
/// Bytes of a `public.key` file.
pub const PUBLIC_KEY_LEN: usize = 8 + 2 + 2 + 32 + 4;

const PRIVATE_MAGIC: &[u8; 8] = b"KJPRVKEY";
const PRIVATE_VERSION: u16 = 1;
/// The one KDF code: Argon2id, version 0x13.
const KDF_ARGON2ID: u16 = 1;
const ARGON2_SALT_LEN: usize = 16;
/// Bytes of the authenticated head of `private.key`: magic, version, KDF,
/// m, t, p, salt, public key.
const PRIVATE_HEAD: usize = 8 + 2 + 2 + 4 + 4 + 4 + ARGON2_SALT_LEN + 32;
/// Bytes of a `private.key` file.
pub const PRIVATE_KEY_LEN: usize = PRIVATE_HEAD + WRAPPED_LEN + 4;

/// HKDF info strings: one per use, so no key serves two purposes.
const INFO_KEY_FILE: &[u8] = b"kjump key block v1: key file KEK";
const INFO_X25519: &[u8] = b"kjump key block v1: X25519 KEK";

/// Where `kjump keygen` puts the key pair by default.
pub const DEFAULT_KEY_DIR: &str = "/etc/kjump";
/// The public key's file name in the key directory.
pub const PUBLIC_KEY_FILE: &str = "public.key";
/// The sealed private key's file name in the key directory.
pub const PRIVATE_KEY_FILE: &str = "private.key";

/// How an image's data key is wrapped (the key block's method code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Under a key derived from a key file's bytes (code 1).
    KeyFile,
    /// To the public key of a passphrase's key pair (code 2).
    Passphrase,
    /// Under a key sealed to the machine's TPM 2.0 (code 3, `crate::host::tpm`).
    Tpm2,
}

impl Method {
    /// The key block's code for it.
    pub fn code(self) -> u16 {
        match self {
            Method::KeyFile => 1,
            Method::Passphrase => 2,
            Method::Tpm2 => 3,
        }
    }

    /// The method with code `code`.
    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(Method::KeyFile),
            2 => Some(Method::Passphrase),
            3 => Some(Method::Tpm2),
            _ => None,
        }
    }

    /// How `image info` and errors say a key is wrapped this way.
    pub fn wrapped_how(self) -> &'static str {
        match self {
            Method::KeyFile => "wrapped with a key file",
            Method::Passphrase => "wrapped to a passphrase",
            Method::Tpm2 => "sealed to a TPM",
        }
    }

    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Method::KeyFile => "key file",
            Method::Passphrase => "passphrase",
            Method::Tpm2 => "TPM",
        }
    }
}

/// Argon2id's cost: memory in KiB, passes, lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory, in KiB (Argon2's m).
    pub m_kib: u32,
    /// Passes over that memory (Argon2's t).
    pub t: u32,
    /// Lanes, computed in parallel (Argon2's p).
    pub p: u32,
}

impl Argon2Params {
    /// The most memory a key file may ask for: 1 GiB.
    pub const MAX_M_KIB: u32 = 1024 * 1024;
    /// The most passes a key file may ask for.
    pub const MAX_T: u32 = 64;
    /// The most lanes a key file may ask for.
    pub const MAX_P: u32 = 16;
    /// The default memory: 64 MiB.
    pub const DEFAULT_M_KIB: u32 = 64 * 1024;

    /// Whether these are within the bounds kjump accepts (and Argon2's own:
    /// at least 8 KiB per lane, one pass, one lane).
    pub fn check(self) -> Result<(), String> {
        if !(1..=Self::MAX_P).contains(&self.p) {
            return Err(format!("Argon2 lanes p = {} is not from 1 to {}", self.p, Self::MAX_P));
        }
        if !(1..=Self::MAX_T).contains(&self.t) {
            return Err(format!("Argon2 passes t = {} is not from 1 to {}", self.t, Self::MAX_T));
        }
        let min_m = 8 * self.p;
        if !(min_m..=Self::MAX_M_KIB).contains(&self.m_kib) {
            return Err(format!("Argon2 memory m = {} KiB is not from {min_m} to {} KiB", self.m_kib, Self::MAX_M_KIB));
        }
        Ok(())
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Argon2Params { m_kib: Self::DEFAULT_M_KIB, t: 3, p: 1 }
    }
}

impl fmt::Display for Argon2Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Argon2id m = {} KiB, t = {}, p = {}", self.m_kib, self.t, self.p)
    }
}

/// Why a data key did not unwrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnwrapError {
    /// The tag did not match: the wrong passphrase or key file, or (for a
    /// key file, where the two cannot be told apart) a key block that
    /// belongs to another image.
    WrongKey(Method),
    /// The passphrase opened the private key, but the data key did not
    /// open with it: the key block belongs to another image.
    OtherImage,
    /// The key block is wrapped with the other method (the one named).
    WrongMethod(Method),
    /// Argon2id could not have the memory the key block asks for.
    NoMemory {
        /// The memory the key block asks for, in KiB.
        kib: u32,
    },
    /// The key block is well formed but cannot be right.
    Damaged(String),
}

impl fmt::Display for UnwrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnwrapError::WrongKey(Method::Passphrase) => f.write_str("wrong passphrase"),
            UnwrapError::WrongKey(Method::KeyFile) => f.write_str("wrong key file (or a key block copied from another image)"),
            UnwrapError::OtherImage => f.write_str("the image's key block belongs to another image (copied or moved): this image cannot be resumed"),
            UnwrapError::WrongKey(Method::Tpm2) => f.write_str("the key the TPM unsealed does not open this image's key"),
            UnwrapError::WrongMethod(m) => write!(f, "this image's key is {}, not that way", m.wrapped_how()),
            UnwrapError::NoMemory { kib } => write!(f, "not enough memory for Argon2id ({kib} KiB): free memory or boot with more, then try again"),
            UnwrapError::Damaged(why) => write!(f, "damaged key block: {why}"),
        }
    }
}

impl std::error::Error for UnwrapError {}

/// A wrapped 32-byte secret.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Wrapped {
    nonce: [u8; NONCE_LEN],
    ct: [u8; KEY_LEN],
    tag: [u8; TAG_LEN],
}

impl Wrapped {
    /// Encrypts `secret` under `kek` with a fresh random nonce.
    fn seal(kek: &[u8; 32], ad: &[u8], secret: &[u8; KEY_LEN]) -> Result<Wrapped, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        seal::random(&mut nonce)?;
        let mut buf = Zeroizing::new(*secret);
        let aead = XChaCha20Poly1305::new(kek.into());
        let tag = aead
            .encrypt_in_place_detached(&nonce.into(), ad, &mut buf[..])
            .map_err(|_| Error::Msg("wrapping a key failed (XChaCha20-Poly1305): report this as a kjump bug".into()))?;
        Ok(Wrapped { nonce, ct: *buf, tag: tag.into() })
    }

    /// The secret, if `kek` and `ad` are the ones it was sealed with.
    fn open(&self, kek: &[u8; 32], ad: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        let mut buf = Zeroizing::new(self.ct);
        let aead = XChaCha20Poly1305::new(kek.into());
        aead.decrypt_in_place_detached(&self.nonce.into(), ad, &mut buf[..], &self.tag.into()).ok()?;
        Some(buf)
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ct);
        out.extend_from_slice(&self.tag);
    }

    fn take(r: &mut Cursor<'_>) -> Option<Wrapped> {
        Some(Wrapped { nonce: r.array()?, ct: r.array()?, tag: r.array()? })
    }
}

/// An X25519 public key (file `/etc/kjump/public.key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The `public.key` file's bytes.
    pub fn encode(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out[..8].copy_from_slice(PUBLIC_MAGIC);
        out[8..10].copy_from_slice(&PUBLIC_VERSION.to_le_bytes());
        // 10..12: reserved, zero.
        out[12..44].copy_from_slice(&self.0);
        let crc = crc32(&out[..44]);
        out[44..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a `public.key` file.
    pub fn decode(b: &[u8]) -> Result<PublicKey, Error> {
        let bad = |why: &str| Error::Msg(format!("public key file: {why}; make a new key pair with 'kjump keygen --force'"));
        if b.len() != PUBLIC_KEY_LEN {
            return Err(bad(&format!("{} bytes, not {PUBLIC_KEY_LEN}", b.len())));
        }
        let mut r = Cursor::new(b);
        if r.array::<8>().as_ref() != Some(PUBLIC_MAGIC) {
            return Err(bad("not a kjump public key (wrong magic)"));
        }
        match r.u16() {
            Some(PUBLIC_VERSION) => {}
            v => return Err(bad(&format!("version {} is not known to this kjump", v.unwrap_or(0)))),
        }
        if r.u16() != Some(0) {
            return Err(bad("reserved bytes are not zero"));
        }
        let key = r.array::<32>().ok_or_else(|| bad("truncated"))?;
        if r.u32() != Some(crc32(b.get(..44).unwrap_or_default())) {
            return Err(bad("CRC-32 does not match (damaged)"));
        }
        Ok(PublicKey(key))
    }

    /// The first 8 bytes of the key's SHA-256, in hex: for messages, so
    /// that a user can tell key pairs apart.
    pub fn fingerprint(&self) -> String {
        let d = Sha256::digest(self.0);
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// An X25519 private key sealed under a passphrase (file
/// `/etc/kjump/private.key`, and embedded in every passphrase key block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedPrivateKey {
    params: Argon2Params,
    salt: [u8; ARGON2_SALT_LEN],
    public: PublicKey,
    secret: Wrapped,
}

impl SealedPrivateKey {
    /// Its public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The Argon2id cost of opening it.
    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// The authenticated head: everything but the wrapped secret and CRC.
    fn head(&self) -> [u8; PRIVATE_HEAD] {
        let mut h = [0u8; PRIVATE_HEAD];
        h[..8].copy_from_slice(PRIVATE_MAGIC);
        h[8..10].copy_from_slice(&PRIVATE_VERSION.to_le_bytes());
        h[10..12].copy_from_slice(&KDF_ARGON2ID.to_le_bytes());
        h[12..16].copy_from_slice(&self.params.m_kib.to_le_bytes());
        h[16..20].copy_from_slice(&self.params.t.to_le_bytes());
        h[20..24].copy_from_slice(&self.params.p.to_le_bytes());
        h[24..40].copy_from_slice(&self.salt);
        h[40..72].copy_from_slice(&self.public.0);
        h
    }

    /// The `private.key` file's bytes.
    pub fn encode(&self) -> [u8; PRIVATE_KEY_LEN] {
        let mut v = Vec::with_capacity(PRIVATE_KEY_LEN);
        v.extend_from_slice(&self.head());
        self.secret.put(&mut v);
        let crc = crc32(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        let mut out = [0u8; PRIVATE_KEY_LEN];
        out.copy_from_slice(&v);
        out
    }

    /// Reads a `private.key` file (or the copy in a key block).
    pub fn decode(b: &[u8]) -> Result<SealedPrivateKey, Error> {
        Self::parse(b).map_err(|why| Error::Msg(format!("private key file: {why}; make a new key pair with 'kjump keygen --force'")))
    }

    fn parse(b: &[u8]) -> Result<SealedPrivateKey, String> {
        if b.len() != PRIVATE_KEY_LEN {
            return Err(format!("{} bytes, not {PRIVATE_KEY_LEN}", b.len()));
        }
        let mut r = Cursor::new(b);
        if r.array::<8>().as_ref() != Some(PRIVATE_MAGIC) {
            return Err("not a kjump private key (wrong magic)".into());
        }
        let truncated = || "truncated".to_string();
        let version = r.u16().ok_or_else(truncated)?;
        if version != PRIVATE_VERSION {
            return Err(format!("version {version} is not known to this kjump"));
        }
        let kdf = r.u16().ok_or_else(truncated)?;
        if kdf != KDF_ARGON2ID {
            return Err(format!("key derivation {kdf} is not known to this kjump"));
        }
        let params = Argon2Params { m_kib: r.u32().ok_or_else(truncated)?, t: r.u32().ok_or_else(truncated)?, p: r.u32().ok_or_else(truncated)? };
        let salt = r.array().ok_or_else(truncated)?;
        let public = PublicKey(r.array().ok_or_else(truncated)?);
        let secret = Wrapped::take(&mut r).ok_or_else(truncated)?;
        let crc_at = PRIVATE_KEY_LEN - 4;
        if r.u32() != Some(crc32(b.get(..crc_at).unwrap_or_default())) {
            return Err("CRC-32 does not match (damaged)".into());
        }
        params.check()?;
        Ok(SealedPrivateKey { params, salt, public, secret })
    }

    /// Opens the private key with `passphrase`; `None` when the tag does
    /// not match (the wrong passphrase).
    fn open(&self, passphrase: &[u8]) -> Result<Option<x25519_dalek::StaticSecret>, UnwrapError> {
        let kek = argon2id(passphrase, &self.salt, self.params)?;
        let Some(secret) = self.secret.open(&kek, &self.head()) else { return Ok(None) };
        let secret = x25519_dalek::StaticSecret::from(*secret);
        if x25519_dalek::PublicKey::from(&secret).to_bytes() != self.public.0 {
            return Err(UnwrapError::Damaged("the private key does not match its public key".into()));
        }
        Ok(Some(secret))
    }
}

/// The key Argon2id derives from `passphrase`. Its memory is reserved
/// fallibly, so a cost too big for this machine is an error, not an abort;
/// the memory is wiped before it is freed.
fn argon2id(passphrase: &[u8], salt: &[u8], params: Argon2Params) -> Result<Zeroizing<[u8; 32]>, UnwrapError> {
    params.check().map_err(UnwrapError::Damaged)?;
    let p = argon2::Params::new(params.m_kib, params.t, params.p, Some(32)).map_err(|e| UnwrapError::Damaged(format!("Argon2 parameters: {e}")))?;
    let count = p.block_count();
    let mut blocks: Vec<argon2::Block> = Vec::new();
    blocks.try_reserve_exact(count).map_err(|_| UnwrapError::NoMemory { kib: params.m_kib })?;
    blocks.resize(count, argon2::Block::default());
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    let r = a.hash_password_into_with_memory(passphrase, salt, &mut out[..], &mut blocks[..]);
    for b in blocks.iter_mut() {
        b.as_mut().zeroize();
    }
    r.map_err(|e| UnwrapError::Damaged(format!("Argon2id: {e}")))?;
    Ok(out)
}

/// The associated data of a wrapped data key: the key block's magic,
/// version and method, and the image ID.
fn key_ad(method: Method, id: ImageId) -> [u8; 12 + ID_LEN] {
    let mut ad = [0u8; 12 + ID_LEN];
    ad[..8].copy_from_slice(BLOCK_MAGIC);
    ad[8..10].copy_from_slice(&BLOCK_VERSION.to_le_bytes());
    ad[10..12].copy_from_slice(&method.code().to_le_bytes());
    ad[12..].copy_from_slice(&id.0);
    ad
}

/// How a key block wraps the data key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    KeyFile { salt: [u8; KEY_FILE_SALT_LEN], key: Wrapped },
    Passphrase { ephemeral: [u8; 32], key: Wrapped, private: SealedPrivateKey },
    Tpm2 { sealed: crate::host::tpm::Sealed, key: Wrapped },
}

/// An image's wrapped data key, as the state block keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBlock {
    body: Body,
}

impl KeyBlock {
    /// How the key is wrapped.
    pub fn method(&self) -> Method {
        match self.body {
            Body::KeyFile { .. } => Method::KeyFile,
            Body::Passphrase { .. } => Method::Passphrase,
            Body::Tpm2 { .. } => Method::Tpm2,
        }
    }

    /// For a passphrase block: the public key it was wrapped to.
    pub fn public_key(&self) -> Option<PublicKey> {
        match &self.body {
            Body::Passphrase { private, .. } => Some(private.public),
            Body::KeyFile { .. } | Body::Tpm2 { .. } => None,
        }
    }

    /// For a TPM block: what the TPM sealed, and the policy it answers to.
    pub fn tpm_sealed(&self) -> Option<&crate::host::tpm::Sealed> {
        match &self.body {
            Body::Tpm2 { sealed, .. } => Some(sealed),
            Body::KeyFile { .. } | Body::Passphrase { .. } => None,
        }
    }

    /// For a passphrase block: the Argon2id cost of opening it (C may
    /// say what it is about to spend, and the fuzz target skips big ones).
    pub fn argon2_params(&self) -> Option<Argon2Params> {
        match &self.body {
            Body::Passphrase { private, .. } => Some(private.params),
            Body::KeyFile { .. } | Body::Tpm2 { .. } => None,
        }
    }

    /// The block's bytes, as the state block holds them.
    pub fn encode(&self) -> [u8; KEY_BLOCK_LEN] {
        let mut body = Vec::with_capacity(PASSPHRASE_BODY);
        match &self.body {
            Body::KeyFile { salt, key } => {
                body.extend_from_slice(salt);
                key.put(&mut body);
            }
            Body::Passphrase { ephemeral, key, private } => {
                body.extend_from_slice(ephemeral);
                key.put(&mut body);
                body.extend_from_slice(&private.encode());
            }
            Body::Tpm2 { sealed, key } => {
                body.extend_from_slice(&sealed.pcrs.0.to_le_bytes());
                body.extend_from_slice(&sealed.index.to_le_bytes());
                body.extend_from_slice(&sealed.counter.to_le_bytes());
                // Each half is at most tpm::MAX_BLOB bytes (checked where
                // a Sealed is made or read), so the body fits MAX_BODY.
                for half in [&sealed.public, &sealed.private] {
                    body.extend_from_slice(&(half.len() as u16).to_le_bytes());
                    body.extend_from_slice(half);
                }
                key.put(&mut body);
            }
        }
        let mut out = [0u8; KEY_BLOCK_LEN];
        out[..8].copy_from_slice(BLOCK_MAGIC);
        out[8..10].copy_from_slice(&BLOCK_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&self.method().code().to_le_bytes());
        // Both bodies are far shorter than MAX_BODY.
        out[12..16].copy_from_slice(&(body.len() as u32).to_le_bytes());
        out[BLOCK_HEAD..BLOCK_HEAD + body.len()].copy_from_slice(&body);
        let crc = crc32(&out[..BLOCK_CRC_AT]);
        out[BLOCK_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a key block: `None` when it is all zero (no key), an error
    /// when it is anything but a well-formed block.
    pub fn decode(b: &[u8]) -> Result<Option<KeyBlock>, Error> {
        Self::parse(b).map_err(|why| Error::Msg(format!("key block: {why}; the image cannot be resumed, boot without it")))
    }

    fn parse(b: &[u8]) -> Result<Option<KeyBlock>, String> {
        if b.len() != KEY_BLOCK_LEN {
            return Err(format!("{} bytes, not {KEY_BLOCK_LEN}", b.len()));
        }
        if b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        if b.get(..8) != Some(&BLOCK_MAGIC[..]) {
            return Err("not a kjump key block (wrong magic)".into());
        }
        let truncated = || "truncated".to_string();
        let (crc_bytes, covered) = (b.get(BLOCK_CRC_AT..).ok_or_else(truncated)?, b.get(..BLOCK_CRC_AT).ok_or_else(truncated)?);
        if crc_bytes != crc32(covered).to_le_bytes() {
            return Err("CRC-32 does not match (damaged)".into());
        }
        let mut r = Cursor::new(b.get(8..BLOCK_HEAD).ok_or_else(truncated)?);
        let version = r.u16().ok_or_else(truncated)?;
        if version != BLOCK_VERSION {
            return Err(format!("version {version} is not known to this kjump"));
        }
        let code = r.u16().ok_or_else(truncated)?;
        let method = Method::from_code(code).ok_or_else(|| format!("unknown wrapping method {code}"))?;
        let len = r.u32().ok_or_else(truncated)?;
        let want = match method {
            Method::KeyFile => KEY_FILE_BODY,
            Method::Passphrase => PASSPHRASE_BODY,
            // Its length is checked against its halves' below.
            Method::Tpm2 => usize::try_from(len).ok().filter(|&n| n <= MAX_BODY).ok_or_else(|| format!("a TPM body of {len} bytes, more than {MAX_BODY}"))?,
        };
        if usize::try_from(len).ok() != Some(want) {
            return Err(format!("a {} body of {len} bytes, not {want}", method.name()));
        }
        let end = BLOCK_HEAD + want;
        let body = b.get(BLOCK_HEAD..end).ok_or_else(truncated)?;
        if b.get(end..BLOCK_CRC_AT).ok_or_else(truncated)?.iter().any(|&x| x != 0) {
            return Err("bytes after the body are not zero".into());
        }
        let mut r = Cursor::new(body);
        let body = match method {
            Method::KeyFile => Body::KeyFile { salt: r.array().ok_or_else(truncated)?, key: Wrapped::take(&mut r).ok_or_else(truncated)? },
            Method::Passphrase => {
                let ephemeral = r.array().ok_or_else(truncated)?;
                let key = Wrapped::take(&mut r).ok_or_else(truncated)?;
                let private = r.array::<PRIVATE_KEY_LEN>().ok_or_else(truncated)?;
                let private = SealedPrivateKey::parse(&private).map_err(|why| format!("its private key: {why}"))?;
                Body::Passphrase { ephemeral, key, private }
            }
            Method::Tpm2 => {
                let pcrs = crate::host::tpm::PcrSet::from_mask(r.u32().ok_or_else(truncated)?).map_err(|why| format!("its PCR set: {why}"))?;
                let index = r.u32().ok_or_else(truncated)?;
                let counter = r.u64().ok_or_else(truncated)?;
                let mut half = |what: &str| -> Result<Vec<u8>, String> {
                    let n = usize::from(r.u16().ok_or_else(truncated)?);
                    if n == 0 || n > crate::host::tpm::MAX_BLOB {
                        return Err(format!("its sealed object's {what} half is {n} bytes (1 to {})", crate::host::tpm::MAX_BLOB));
                    }
                    Ok(r.bytes(n).ok_or_else(truncated)?.to_vec())
                };
                let (public, private) = (half("public")?, half("private")?);
                let key = Wrapped::take(&mut r).ok_or_else(truncated)?;
                if !r.at_end() {
                    return Err("its TPM body is longer than its fields".into());
                }
                Body::Tpm2 { sealed: crate::host::tpm::Sealed { pcrs, index, counter, public, private }, key }
            }
        };
        Ok(Some(KeyBlock { body }))
    }
}

/// The KEK of a key file: HKDF-SHA-256 of its bytes under `salt`.
fn key_file_kek(file_bytes: &[u8], salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), file_bytes);
    let mut kek = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's limit of 255 * 32.
    let _ = hk.expand(INFO_KEY_FILE, &mut kek[..]);
    kek
}

fn check_key_file(file_bytes: &[u8]) -> Result<(), String> {
    if file_bytes.len() < KEY_FILE_MIN {
        return Err(format!("the key file has {} bytes, fewer than {KEY_FILE_MIN}: use at least {KEY_FILE_MIN} random bytes", file_bytes.len()));
    }
    if file_bytes.len() > KEY_FILE_MAX {
        return Err(format!("the key file has {} bytes, more than {KEY_FILE_MAX}: use a smaller file of random bytes", file_bytes.len()));
    }
    Ok(())
}

/// A's side, key file: wraps `key` for image `id` under a key derived
/// from the key file's bytes (32 bytes to 64 KiB) and a random salt.
pub fn wrap_with_key_file(key: &DataKey, id: ImageId, file_bytes: &[u8]) -> Result<KeyBlock, Error> {
    check_key_file(file_bytes).map_err(Error::Msg)?;
    let mut salt = [0u8; KEY_FILE_SALT_LEN];
    seal::random(&mut salt)?;
    let kek = key_file_kek(file_bytes, &salt);
    let wrapped = Wrapped::seal(&kek, &key_ad(Method::KeyFile, id), key.bytes())?;
    Ok(KeyBlock { body: Body::KeyFile { salt, key: wrapped } })
}

/// C's side, key file: the data key of image `id`.
pub fn unwrap_with_key_file(block: &KeyBlock, id: ImageId, file_bytes: &[u8]) -> Result<DataKey, UnwrapError> {
    let Body::KeyFile { salt, key } = &block.body else { return Err(UnwrapError::WrongMethod(block.method())) };
    // A file of the wrong size cannot be the one the key was wrapped with.
    check_key_file(file_bytes).map_err(|_| UnwrapError::WrongKey(Method::KeyFile))?;
    let kek = key_file_kek(file_bytes, salt);
    let k = key.open(&kek, &key_ad(Method::KeyFile, id)).ok_or(UnwrapError::WrongKey(Method::KeyFile))?;
    Ok(DataKey::from_bytes(*k))
}

/// A new key pair for the passphrase method: its public half, and its
/// private half sealed under a key Argon2id derives from `passphrase`.
pub fn keygen(passphrase: &[u8], params: Argon2Params) -> Result<(PublicKey, SealedPrivateKey), Error> {
    params.check().map_err(|why| Error::Msg(format!("{why}: choose another --argon2-memory")))?;
    if passphrase.is_empty() {
        return Err(Error::Msg("the passphrase is empty: give one".into()));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    seal::random(&mut bytes[..])?;
    let secret = x25519_dalek::StaticSecret::from(*bytes);
    let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
    let mut salt = [0u8; ARGON2_SALT_LEN];
    seal::random(&mut salt)?;
    let kek = argon2id(passphrase, &salt, params).map_err(|e| Error::Msg(format!("deriving the key from the passphrase: {e}")))?;
    let mut sealed = SealedPrivateKey { params, salt, public, secret: Wrapped { nonce: [0; NONCE_LEN], ct: [0; KEY_LEN], tag: [0; TAG_LEN] } };
    sealed.secret = Wrapped::seal(&kek, &sealed.head(), secret.as_bytes())?;
    Ok((public, sealed))
}

/// A's side: reads the key pair `kjump keygen` wrote in `dir`, and checks
/// that its halves belong together.
pub fn read_key_pair(dir: &std::path::Path) -> Result<(PublicKey, SealedPrivateKey), Error> {
    let read = |name: &str| {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Msg(format!("{} is missing: make a key pair with 'kjump keygen' (or set encrypt = none)", path.display())),
            _ => Error::io(format!("reading {}", path.display()), e),
        })?;
        // Both files are a few dozen bytes: refuse anything big before reading it.
        if meta.len() > 4096 {
            return Err(Error::Msg(format!("{} is {} bytes, not a kjump key file: make a new pair with 'kjump keygen --force'", path.display(), meta.len())));
        }
        std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
    };
    let public = PublicKey::decode(&read(PUBLIC_KEY_FILE)?).map_err(|e| Error::Msg(format!("{}: {e}", dir.join(PUBLIC_KEY_FILE).display())))?;
    let sealed = SealedPrivateKey::decode(&read(PRIVATE_KEY_FILE)?).map_err(|e| Error::Msg(format!("{}: {e}", dir.join(PRIVATE_KEY_FILE).display())))?;
    if sealed.public != public {
        return Err(Error::Msg(format!(
            "{} and {} are not one pair (public keys {} and {}): make a new pair with 'kjump keygen --force'",
            dir.join(PUBLIC_KEY_FILE).display(),
            dir.join(PRIVATE_KEY_FILE).display(),
            public.fingerprint(),
            sealed.public.fingerprint()
        )));
    }
    Ok((public, sealed))
}

/// The KEK of a passphrase block: HKDF-SHA-256 over the X25519 shared
/// secret, with both public keys in the info.
fn x25519_kek(shared: &x25519_dalek::SharedSecret, ephemeral: &[u8; 32], public: &PublicKey) -> Zeroizing<[u8; 32]> {
    let hk = hkdf::Hkdf::<Sha256>::new(None, shared.as_bytes());
    let mut kek = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's limit of 255 * 32.
    let _ = hk.expand_multi_info(&[INFO_X25519, ephemeral, &public.0], &mut kek[..]);
    kek
}

/// A's side, passphrase: wraps `key` for image `id` to `public` (through
/// an ephemeral X25519 key pair), and embeds `sealed`, the private key it
/// belongs to, so that C needs only the image and the passphrase.
pub fn wrap_to_public_key(key: &DataKey, id: ImageId, public: &PublicKey, sealed: &SealedPrivateKey) -> Result<KeyBlock, Error> {
    if sealed.public != *public {
        return Err(Error::Msg(format!(
            "public key {} and private key {} are not one pair: make a new pair with 'kjump keygen --force'",
            public.fingerprint(),
            sealed.public.fingerprint()
        )));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    seal::random(&mut bytes[..])?;
    let eph = x25519_dalek::StaticSecret::from(*bytes);
    let ephemeral = x25519_dalek::PublicKey::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&x25519_dalek::PublicKey::from(public.0));
    if !shared.was_contributory() {
        return Err(Error::Msg("the public key is a low-order point, not a real key: make a new pair with 'kjump keygen --force'".into()));
    }
    let kek = x25519_kek(&shared, &ephemeral, public);
    let wrapped = Wrapped::seal(&kek, &key_ad(Method::Passphrase, id), key.bytes())?;
    Ok(KeyBlock { body: Body::Passphrase { ephemeral, key: wrapped, private: sealed.clone() } })
}

/// C's side, passphrase: opens the private key in the block with
/// `passphrase` (Argon2id, at the cost the block records), then the data
/// key of image `id`.
pub fn unwrap_with_passphrase(block: &KeyBlock, id: ImageId, passphrase: &[u8]) -> Result<DataKey, UnwrapError> {
    let Body::Passphrase { ephemeral, key, private } = &block.body else { return Err(UnwrapError::WrongMethod(block.method())) };
    let secret = private.open(passphrase)?.ok_or(UnwrapError::WrongKey(Method::Passphrase))?;
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*ephemeral));
    if !shared.was_contributory() {
        return Err(UnwrapError::Damaged("its ephemeral key is a low-order point".into()));
    }
    let kek = x25519_kek(&shared, ephemeral, &private.public);
    let k = key.open(&kek, &key_ad(Method::Passphrase, id)).ok_or(UnwrapError::OtherImage)?;
    Ok(DataKey::from_bytes(*k))
}

/// A's side, TPM: wraps `key` for image `id` under a fresh random key
/// that this machine's TPM seals (PCRs `pcrs`, kjump's counter as it is).
pub fn wrap_to_tpm(key: &DataKey, id: ImageId, pcrs: crate::host::tpm::PcrSet) -> Result<KeyBlock, Error> {
    let mut kek = Zeroizing::new([0u8; 32]);
    seal::random(&mut kek[..])?;
    let sealed = crate::host::tpm::seal(&kek, pcrs)?;
    wrap_with_sealed_kek(key, id, &kek, sealed)
}

/// The block [`wrap_to_tpm`] makes, from a `kek` already sealed as `sealed`.
pub fn wrap_with_sealed_kek(key: &DataKey, id: ImageId, kek: &[u8; 32], sealed: crate::host::tpm::Sealed) -> Result<KeyBlock, Error> {
    let wrapped = Wrapped::seal(kek, &key_ad(Method::Tpm2, id), key.bytes())?;
    Ok(KeyBlock { body: Body::Tpm2 { sealed, key: wrapped } })
}

/// C's side, TPM: the data key of image `id`, with the key the TPM
/// unsealed (`crate::host::tpm::unseal` of [`KeyBlock::tpm_sealed`]).
pub fn unwrap_with_kek(block: &KeyBlock, id: ImageId, kek: &[u8; 32]) -> Result<DataKey, UnwrapError> {
    let Body::Tpm2 { key, .. } = &block.body else { return Err(UnwrapError::WrongMethod(block.method())) };
    let k = key.open(kek, &key_ad(Method::Tpm2, id)).ok_or(UnwrapError::OtherImage)?;
    Ok(DataKey::from_bytes(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small enough that Argon2id takes a moment in tests.
    const FAST: Argon2Params = Argon2Params { m_kib: 64, t: 1, p: 1 };

    fn id(n: u8) -> ImageId {
        ImageId([n; ID_LEN])
    }

    fn pair(pass: &[u8]) -> (PublicKey, SealedPrivateKey) {
        keygen(pass, FAST).unwrap()
    }

    #[test]
    fn key_file_round_trip() {
        let key = DataKey::random().unwrap();
        let file = [0x5au8; 64];
        let block = wrap_with_key_file(&key, id(1), &file).unwrap();
        assert_eq!(block.method(), Method::KeyFile);
        let bytes = block.encode();
        let back = KeyBlock::decode(&bytes).unwrap().unwrap();
        assert_eq!(back, block);
        assert_eq!(unwrap_with_key_file(&back, id(1), &file).unwrap(), key);
        // A wrong file, a file of a refused size, another image.
        let mut other = file;
        other[63] ^= 1;
        assert_eq!(unwrap_with_key_file(&back, id(1), &other), Err(UnwrapError::WrongKey(Method::KeyFile)));
        assert_eq!(unwrap_with_key_file(&back, id(1), &file[..31]), Err(UnwrapError::WrongKey(Method::KeyFile)));
        assert_eq!(unwrap_with_key_file(&back, id(2), &file), Err(UnwrapError::WrongKey(Method::KeyFile)));
        assert_eq!(unwrap_with_passphrase(&back, id(1), b"x"), Err(UnwrapError::WrongMethod(Method::KeyFile)));
        assert_eq!(UnwrapError::WrongMethod(Method::KeyFile).to_string(), "this image's key is wrapped with a key file, not that way");
    }

    #[test]
    fn key_file_sizes_are_bounded() {
        let key = DataKey::random().unwrap();
        assert!(wrap_with_key_file(&key, id(1), &[1; 31]).is_err());
        assert!(wrap_with_key_file(&key, id(1), &vec![1; KEY_FILE_MAX + 1]).is_err());
        assert!(wrap_with_key_file(&key, id(1), &[1; KEY_FILE_MIN]).is_ok());
        assert!(wrap_with_key_file(&key, id(1), &vec![1; KEY_FILE_MAX]).is_ok());
    }

    #[test]
    fn passphrase_round_trip() {
        let (public, sealed) = pair(b"correct horse");
        assert_eq!(sealed.public(), public);
        let key = DataKey::random().unwrap();
        let block = wrap_to_public_key(&key, id(7), &public, &sealed).unwrap();
        assert_eq!(block.method(), Method::Passphrase);
        assert_eq!(block.public_key(), Some(public));
        assert_eq!(block.argon2_params(), Some(FAST));
        let back = KeyBlock::decode(&block.encode()).unwrap().unwrap();
        assert_eq!(back, block);
        assert_eq!(unwrap_with_passphrase(&back, id(7), b"correct horse").unwrap(), key);
        assert_eq!(unwrap_with_passphrase(&back, id(7), b"correct horsf"), Err(UnwrapError::WrongKey(Method::Passphrase)));
        assert_eq!(unwrap_with_passphrase(&back, id(7), b""), Err(UnwrapError::WrongKey(Method::Passphrase)));
        assert_eq!(UnwrapError::WrongKey(Method::Passphrase).to_string(), "wrong passphrase");
        assert_eq!(unwrap_with_passphrase(&back, id(8), b"correct horse"), Err(UnwrapError::OtherImage));
        assert_eq!(unwrap_with_key_file(&back, id(7), &[0; 32]), Err(UnwrapError::WrongMethod(Method::Passphrase)));
        // Two wraps of one key differ (fresh ephemeral key and nonce).
        assert_ne!(wrap_to_public_key(&key, id(7), &public, &sealed).unwrap().encode(), block.encode());
    }

    #[test]
    fn a_mismatched_pair_or_a_low_order_key_is_refused() {
        let (public, _) = pair(b"a");
        let (_, sealed) = pair(b"b");
        let key = DataKey::random().unwrap();
        let e = wrap_to_public_key(&key, id(1), &public, &sealed).unwrap_err().to_string();
        assert!(e.contains("not one pair"), "{e}");
        let mut low = sealed.clone();
        low.public = PublicKey([0; 32]);
        let e = wrap_to_public_key(&key, id(1), &PublicKey([0; 32]), &low).unwrap_err().to_string();
        assert!(e.contains("low-order"), "{e}");
    }

    #[test]
    fn key_files_round_trip_and_refuse_damage() {
        let (public, sealed) = pair(b"pw");
        let pb = public.encode();
        assert_eq!(PublicKey::decode(&pb).unwrap(), public);
        let sb = sealed.encode();
        assert_eq!(SealedPrivateKey::decode(&sb).unwrap(), sealed);
        assert_eq!(sealed.params(), FAST);
        for i in 0..pb.len() {
            for bit in [0x01, 0x80] {
                let mut b = pb;
                b[i] ^= bit;
                assert!(PublicKey::decode(&b).is_err(), "public byte {i}");
            }
        }
        for i in 0..sb.len() {
            for bit in [0x01, 0x80] {
                let mut b = sb;
                b[i] ^= bit;
                assert!(SealedPrivateKey::decode(&b).is_err(), "private byte {i}");
            }
        }
        for len in [0, 1, 47, 49, 147, 149, 4096] {
            let b = vec![0u8; len];
            assert!(PublicKey::decode(&b).is_err());
            assert!(SealedPrivateKey::decode(&b).is_err());
            assert!(PublicKey::decode(pb.get(..len.min(pb.len())).unwrap()).is_err() || len >= pb.len());
            assert!(SealedPrivateKey::decode(sb.get(..len.min(sb.len())).unwrap()).is_err() || len >= sb.len());
        }
        let e = PublicKey::decode(&sb).unwrap_err().to_string();
        assert!(e.starts_with("public key file:") && e.contains("kjump keygen"), "{e}");
        assert_eq!(public.fingerprint().len(), 16);
    }

    #[test]
    fn a_key_pair_is_read_back_and_checked() {
        let dir = std::env::temp_dir().join(format!("kjump-wrap-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = read_key_pair(&dir).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("kjump keygen"), "{e}");
        let (public, sealed) = pair(b"pw");
        std::fs::write(dir.join(PUBLIC_KEY_FILE), public.encode()).unwrap();
        std::fs::write(dir.join(PRIVATE_KEY_FILE), sealed.encode()).unwrap();
        assert_eq!(read_key_pair(&dir).unwrap(), (public, sealed));
        let (other, _) = pair(b"pw");
        std::fs::write(dir.join(PUBLIC_KEY_FILE), other.encode()).unwrap();
        assert!(read_key_pair(&dir).unwrap_err().to_string().contains("not one pair"));
        std::fs::write(dir.join(PUBLIC_KEY_FILE), vec![0u8; 5000]).unwrap();
        assert!(read_key_pair(&dir).unwrap_err().to_string().contains("5000 bytes"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A private key with the given cost, resealed (valid CRC, stale tag).
    fn with_params(sealed: &SealedPrivateKey, m: u32, t: u32, p: u32) -> Vec<u8> {
        let mut b = sealed.encode().to_vec();
        b[12..16].copy_from_slice(&m.to_le_bytes());
        b[16..20].copy_from_slice(&t.to_le_bytes());
        b[20..24].copy_from_slice(&p.to_le_bytes());
        let crc = crc32(&b[..PRIVATE_KEY_LEN - 4]);
        b[PRIVATE_KEY_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn argon2_cost_is_bounded_when_read() {
        let (_, sealed) = pair(b"pw");
        for (m, t, p) in [(Argon2Params::MAX_M_KIB + 1, 1, 1), (u32::MAX, 1, 1), (64, 65, 1), (64, 0, 1), (64, 1, 0), (1024, 1, 17), (7, 1, 1), (15, 1, 2)] {
            let e = SealedPrivateKey::decode(&with_params(&sealed, m, t, p)).unwrap_err().to_string();
            assert!(e.contains("Argon2"), "{m} {t} {p}: {e}");
        }
        assert!(SealedPrivateKey::decode(&with_params(&sealed, Argon2Params::MAX_M_KIB, 64, 16)).is_ok());
        // A changed cost is authenticated: the right passphrase then fails.
        let changed = SealedPrivateKey::decode(&with_params(&sealed, 128, 1, 1)).unwrap();
        assert!(matches!(changed.open(b"pw"), Ok(None)));
        assert!(keygen(b"pw", Argon2Params { m_kib: 4, t: 1, p: 1 }).is_err());
        assert!(keygen(b"", FAST).is_err());
        assert_eq!(Argon2Params::default(), Argon2Params { m_kib: 65536, t: 3, p: 1 });
    }

    #[test]
    fn all_zero_is_no_key_and_lengths_are_exact() {
        assert_eq!(KeyBlock::decode(&[0u8; KEY_BLOCK_LEN]).unwrap(), None);
        assert!(KeyBlock::decode(&[0u8; KEY_BLOCK_LEN - 1]).is_err());
        assert!(KeyBlock::decode(&[0u8; KEY_BLOCK_LEN + 1]).is_err());
        assert!(KeyBlock::decode(&[]).is_err());
        let key = DataKey::random().unwrap();
        let good = wrap_with_key_file(&key, id(1), &[3; 32]).unwrap().encode();
        // Every body length but the method's own, with a valid CRC.
        for len in [0u32, 1, KEY_FILE_BODY as u32 - 1, KEY_FILE_BODY as u32 + 1, PASSPHRASE_BODY as u32, MAX_BODY as u32, MAX_BODY as u32 + 1, u32::MAX] {
            let mut b = good;
            b[12..16].copy_from_slice(&len.to_le_bytes());
            reseal(&mut b);
            let e = KeyBlock::decode(&b).unwrap_err().to_string();
            assert!(e.contains("body"), "{len}: {e}");
        }
        // Unknown versions and methods, non-zero padding.
        for (at, v) in [(8, 2u8), (10, 0), (10, 3), (10, 9), (200, 1), (BLOCK_CRC_AT - 1, 1)] {
            let mut b = good;
            b[at] = v;
            reseal(&mut b);
            assert!(KeyBlock::decode(&b).is_err(), "byte {at} = {v}");
        }
        // A key file's body read as a TPM one.
        let mut b = good;
        b[10] = 3;
        reseal(&mut b);
        assert!(KeyBlock::decode(&b).is_err());
    }

    fn tpm_sealed(public: usize, private: usize) -> crate::host::tpm::Sealed {
        crate::host::tpm::Sealed {
            pcrs: crate::host::tpm::PcrSet(0x81),
            index: crate::host::tpm::COUNTER_INDEX,
            counter: 41,
            public: vec![0xa5; public],
            private: vec![0x5a; private],
        }
    }

    #[test]
    fn tpm_round_trip() {
        let key = DataKey::random().unwrap();
        let kek = [9u8; 32];
        let block = wrap_with_sealed_kek(&key, id(1), &kek, tpm_sealed(80, 160)).unwrap();
        assert_eq!(block.method(), Method::Tpm2);
        let back = KeyBlock::decode(&block.encode()).unwrap().unwrap();
        assert_eq!(back, block);
        assert_eq!(back.tpm_sealed(), Some(&tpm_sealed(80, 160)));
        assert_eq!(unwrap_with_kek(&back, id(1), &kek).unwrap(), key);
        // Another TPM's secret, another image's block, another method.
        assert_eq!(unwrap_with_kek(&back, id(1), &[8; 32]), Err(UnwrapError::OtherImage));
        assert_eq!(unwrap_with_kek(&back, id(2), &kek), Err(UnwrapError::OtherImage));
        assert_eq!(unwrap_with_key_file(&back, id(1), &[0; 32]), Err(UnwrapError::WrongMethod(Method::Tpm2)));
        // The largest halves fit.
        let big = wrap_with_sealed_kek(&key, id(1), &kek, tpm_sealed(crate::host::tpm::MAX_BLOB, crate::host::tpm::MAX_BLOB)).unwrap();
        assert_eq!(KeyBlock::decode(&big.encode()).unwrap().unwrap(), big);
    }

    #[test]
    fn hostile_tpm_blocks_are_refused() {
        let key = DataKey::random().unwrap();
        let good = wrap_with_sealed_kek(&key, id(1), &[9; 32], tpm_sealed(80, 160)).unwrap().encode();
        let body_len = crate::le::u32_at(&good, 12).unwrap() as usize;
        // Body: pcrs 16..20, index 20..24, counter 24..32, public length 32..34.
        let public_len_at = BLOCK_HEAD + 16;
        let private_len_at = public_len_at + 2 + 80;
        let cases: Vec<(usize, Vec<u8>)> = vec![
            (BLOCK_HEAD, 0u32.to_le_bytes().to_vec()),         // no PCR
            (BLOCK_HEAD, (1u32 << 24).to_le_bytes().to_vec()), // PCR 24
            (public_len_at, 0u16.to_le_bytes().to_vec()),
            (public_len_at, 81u16.to_le_bytes().to_vec()),
            (public_len_at, (crate::host::tpm::MAX_BLOB as u16 + 1).to_le_bytes().to_vec()),
            (public_len_at, u16::MAX.to_le_bytes().to_vec()),
            (private_len_at, 0u16.to_le_bytes().to_vec()),
            (private_len_at, 159u16.to_le_bytes().to_vec()),
            (private_len_at, 700u16.to_le_bytes().to_vec()),
            (12, (body_len as u32 - 1).to_le_bytes().to_vec()),
            (12, (body_len as u32 + 1).to_le_bytes().to_vec()),
            (12, (MAX_BODY as u32 + 1).to_le_bytes().to_vec()),
            (12, u32::MAX.to_le_bytes().to_vec()),
        ];
        for (at, bytes) in cases {
            let mut b = good;
            b[at..at + bytes.len()].copy_from_slice(&bytes);
            reseal(&mut b);
            assert!(KeyBlock::decode(&b).is_err(), "bytes {bytes:?} at {at}");
        }
        for i in 0..KEY_BLOCK_LEN {
            let mut b = good;
            b[i] ^= 0x10;
            assert!(KeyBlock::decode(&b).is_err(), "byte {i}");
        }
    }

    fn reseal(b: &mut [u8; KEY_BLOCK_LEN]) {
        let crc = crc32(&b[..BLOCK_CRC_AT]);
        b[BLOCK_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn every_flip_of_a_block_is_refused() {
        let key = DataKey::random().unwrap();
        let (public, sealed) = pair(b"pw");
        for block in [wrap_with_key_file(&key, id(1), &[3; 32]).unwrap(), wrap_to_public_key(&key, id(1), &public, &sealed).unwrap()] {
            let good = block.encode();
            for i in 0..KEY_BLOCK_LEN {
                let mut b = good;
                b[i] ^= 0x10;
                assert!(KeyBlock::decode(&b).is_err(), "{:?} byte {i}", block.method());
            }
        }
    }

    #[test]
    fn a_flip_under_a_fixed_crc_never_unwraps() {
        let key = DataKey::random().unwrap();
        let file = [3u8; 32];
        let (public, sealed) = pair(b"pw");
        let kek = [9u8; 32];
        let tpm = wrap_with_sealed_kek(&key, id(1), &kek, tpm_sealed(80, 160)).unwrap();
        for block in [wrap_with_key_file(&key, id(1), &file).unwrap(), wrap_to_public_key(&key, id(1), &public, &sealed).unwrap(), tpm] {
            let good = block.encode();
            let body = match block.method() {
                Method::KeyFile => KEY_FILE_BODY,
                Method::Passphrase => PASSPHRASE_BODY,
                Method::Tpm2 => 16 + 2 + 80 + 2 + 160 + WRAPPED_LEN,
            };
            for i in 0..BLOCK_HEAD + body {
                // The TPM's part (policy and sealed object) is the TPM's to
                // check: changed, it refuses to unseal. The wrapped key after it is kjump's.
                if block.method() == Method::Tpm2 && (BLOCK_HEAD..BLOCK_HEAD + body - WRAPPED_LEN).contains(&i) {
                    continue;
                }
                let mut b = good;
                b[i] ^= 0x01;
                reseal(&mut b);
                let Ok(Some(k)) = KeyBlock::decode(&b) else { continue };
                let got = match k.method() {
                    Method::KeyFile => unwrap_with_key_file(&k, id(1), &file),
                    Method::Passphrase => unwrap_with_passphrase(&k, id(1), b"pw"),
                    Method::Tpm2 => unwrap_with_kek(&k, id(1), &kek),
                };
                assert!(got.is_err(), "{:?} byte {i} unwrapped", block.method());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut b = [0u8; KEY_BLOCK_LEN];
        for round in 0..200 {
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            b[..8].copy_from_slice(BLOCK_MAGIC);
            b[8] = 1;
            b[9] = 0;
            b[10] = (round % 4) as u8;
            b[11] = 0;
            reseal(&mut b);
            assert!(KeyBlock::decode(&b).is_err());
            let _ = PublicKey::decode(&b[..PUBLIC_KEY_LEN]);
            let _ = SealedPrivateKey::decode(&b[..PRIVATE_KEY_LEN]);
        }
    }
}
