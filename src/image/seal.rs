//! Runs in A, B, C and D: the cryptography of an encrypted image (format
//! version 4, `docs/image-format.md`).
//!
//! Each image has its own random 256-bit data key and 128-bit image ID,
//! made by A when it hibernates. Three keys are derived from the data key
//! with HKDF-SHA-256 (salt: the image ID), one per use:
//!
//! - the chunk key: XChaCha20-Poly1305 seals each chunk's stored pages,
//!   with the chunk's header fields and page runs as associated data, and
//!   a nonce made of the image's nonce salt and the chunk's index (so no
//!   nonce repeats under one key: indexes are unique in an image, and a
//!   fresh key and salt are drawn for every image);
//! - the header key: HMAC-SHA-256 over the header block;
//! - the state key: HMAC-SHA-256 over the commit record (state block),
//!   which counts the chunks and holds a digest of their tags.
//!
//! Key buffers are wiped when dropped (`zeroize`). How the data key itself
//! is kept (wrapped to a passphrase's key pair or a key file) is
//! [`crate::host::wrap`]'s business.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

/// Bytes of a data key.
pub const KEY_LEN: usize = 32;
/// Bytes of an image ID and of a nonce salt.
pub const ID_LEN: usize = 16;
/// Bytes of a chunk's authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a header or state MAC.
pub const MAC_LEN: usize = 32;

/// Which AEAD seals an image's chunks (recorded in the header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cipher {
    /// Not encrypted: pages in the clear, headers under CRC only.
    #[default]
    None,
    /// XChaCha20-Poly1305 (RFC 8439 with a 192-bit nonce), HKDF-SHA-256,
    /// HMAC-SHA-256.
    XChaCha20Poly1305,
}

impl Cipher {
    /// The header's code for it.
    pub fn code(self) -> u32 {
        match self {
            Cipher::None => 0,
            Cipher::XChaCha20Poly1305 => 1,
        }
    }

    /// The cipher with header code `code`.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Cipher::None),
            1 => Some(Cipher::XChaCha20Poly1305),
            _ => None,
        }
    }

    /// How `kjump image info` names it.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::None => "none (pages in the clear)",
            Cipher::XChaCha20Poly1305 => "XChaCha20-Poly1305, HMAC-SHA-256",
        }
    }
}

/// Fills `buf` from the kernel's random number generator.
pub fn random(buf: &mut [u8]) -> Result<(), Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::sys("reading random bytes (getrandom)", e)),
        }
    }
    Ok(())
}

/// An image's data key: every other key of the image comes from it.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DataKey([u8; KEY_LEN]);

impl core::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn random() -> Result<Self, Error> {
        let mut k = DataKey([0; KEY_LEN]);
        random(&mut k.0)?;
        Ok(k)
    }

    /// The key with these bytes (the caller wipes its own copy).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        DataKey(bytes)
    }

    /// The key's bytes, for wrapping and for handing to another kernel.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// An image's random identity (also the HKDF salt of its keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ImageId(pub [u8; ID_LEN]);

impl ImageId {
    /// A fresh random ID.
    pub fn random() -> Result<Self, Error> {
        let mut id = ImageId([0; ID_LEN]);
        random(&mut id.0)?;
        Ok(id)
    }

    /// Lowercase hex, for messages.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The keys of one image, derived from its data key.
pub struct Keys {
    id: ImageId,
    chunk: XChaCha20Poly1305,
    header: MacKey,
    state: MacKey,
}

#[derive(Zeroize, ZeroizeOnDrop)]
struct MacKey([u8; 32]);

/// A chunk whose tag does not match: changed, moved from another image,
/// or sealed under another key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadTag;

type HmacSha256 = Hmac<Sha256>;

impl Keys {
    /// Derives the keys of image `id` from `key`.
    pub fn derive(key: &DataKey, id: ImageId) -> Keys {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(&id.0), &key.0);
        let mut okm = [0u8; 32];
        let mut take = |info: &[u8]| {
            // 32 bytes is far below HKDF-SHA-256's limit of 255 * 32.
            hk.expand(info, &mut okm).unwrap_or_default();
            let k = okm;
            okm.zeroize();
            k
        };
        let mut chunk_key = take(b"kjump image v4: chunk key");
        let header = MacKey(take(b"kjump image v4: header MAC key"));
        let state = MacKey(take(b"kjump image v4: state MAC key"));
        let chunk = XChaCha20Poly1305::new((&chunk_key).into());
        chunk_key.zeroize();
        Keys { id, chunk, header, state }
    }

    /// The image these keys belong to.
    pub fn id(&self) -> ImageId {
        self.id
    }

    fn nonce(salt: &[u8; ID_LEN], index: u64) -> XNonce {
        let mut n = [0u8; 24];
        n[..ID_LEN].copy_from_slice(salt);
        n[ID_LEN..].copy_from_slice(&index.to_le_bytes());
        n.into()
    }

    /// Encrypts chunk `index`'s stored bytes in place and returns the tag;
    /// `ad` (the chunk's header fields and runs, in pieces) is
    /// authenticated with them.
    pub fn seal_chunk(&self, salt: &[u8; ID_LEN], index: u64, ad: &[&[u8]], data: &mut [u8]) -> [u8; TAG_LEN] {
        let full_ad = self.full_ad(ad);
        // Encryption fails only past ChaCha20's 256 GiB per nonce; a chunk
        // is at most 1 MiB.
        match self.chunk.encrypt_in_place_detached(&Self::nonce(salt, index), &full_ad, data) {
            Ok(tag) => tag.into(),
            Err(_) => [0; TAG_LEN],
        }
    }

    /// Checks chunk `index`'s tag and decrypts its stored bytes in place.
    /// On a bad tag `data` is left encrypted.
    pub fn open_chunk(&self, salt: &[u8; ID_LEN], index: u64, ad: &[&[u8]], data: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), BadTag> {
        let full_ad = self.full_ad(ad);
        self.chunk.decrypt_in_place_detached(&Self::nonce(salt, index), &full_ad, data, tag.into()).map_err(|_| BadTag)
    }

    /// The image ID, then `ad`: chunks are bound to their image twice
    /// (through the key and here), so a chunk of another image fails.
    fn full_ad(&self, ad: &[&[u8]]) -> heapless::Vec<u8, { crate::image::MAX_CHUNK_AD }> {
        let mut v = heapless::Vec::new();
        // Callers pass at most the chunk header and its runs; anything
        // longer is cut, and then no tag matches.
        let _ = v.extend_from_slice(&self.id.0);
        for piece in ad {
            let room = v.capacity() - v.len();
            let _ = v.extend_from_slice(&piece[..piece.len().min(room)]);
        }
        v
    }

    /// The MAC of a header block's authenticated bytes.
    pub fn header_mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        mac(&self.header, bytes)
    }

    /// The MAC of a state block's authenticated bytes.
    pub fn state_mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        mac(&self.state, bytes)
    }

    /// Whether `tag` is the header MAC of `bytes` (in constant time).
    pub fn header_mac_ok(&self, bytes: &[u8], tag: &[u8]) -> bool {
        mac_ok(&self.header, bytes, tag)
    }

    /// Whether `tag` is the state MAC of `bytes` (in constant time).
    pub fn state_mac_ok(&self, bytes: &[u8], tag: &[u8]) -> bool {
        mac_ok(&self.state, bytes, tag)
    }
}

fn hmac_for(key: &MacKey) -> HmacSha256 {
    // HMAC takes keys of any length.
    <HmacSha256 as Mac>::new_from_slice(&key.0).unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()))
}

fn mac(key: &MacKey, bytes: &[u8]) -> [u8; MAC_LEN] {
    let mut m = hmac_for(key);
    m.update(bytes);
    m.finalize().into_bytes().into()
}

fn mac_ok(key: &MacKey, bytes: &[u8], tag: &[u8]) -> bool {
    let mut m = hmac_for(key);
    m.update(bytes);
    m.verify_slice(tag).is_ok()
}

/// A running digest of the chunks' tags, in order: the state block holds
/// it under the state MAC, so that D's first pass, which reads only the
/// chunk headers, already knows every chunk is the one B wrote, in its
/// place (a chunk from another image or a changed tag fails there).
#[derive(Clone, Default)]
pub struct TagChain(Sha256);

impl TagChain {
    /// Adds the next chunk's tag.
    pub fn add(&mut self, tag: &[u8; TAG_LEN]) {
        self.0.update(tag);
    }

    /// The digest so far.
    pub fn value(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }
}

impl core::fmt::Debug for TagChain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TagChain")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> Keys {
        Keys::derive(&DataKey::from_bytes([seed; KEY_LEN]), ImageId([seed ^ 0x55; ID_LEN]))
    }

    #[test]
    fn a_sealed_chunk_opens_with_its_own_place_only() {
        let k = keys(1);
        let salt = [7u8; ID_LEN];
        let plain = b"A's page: secret marker".to_vec();
        let mut data = plain.clone();
        let tag = k.seal_chunk(&salt, 3, &[b"header+", b"runs"], &mut data);
        assert_ne!(data, plain);
        // Another index, other associated data, another salt, another
        // image's keys, a changed byte: all refused, data left sealed.
        let mut d = data.clone();
        assert_eq!(k.open_chunk(&salt, 4, &[b"header+", b"runs"], &mut d, &tag), Err(BadTag));
        assert_eq!(d, data);
        assert_eq!(k.open_chunk(&salt, 3, &[b"header+", b"runz"], &mut d, &tag), Err(BadTag));
        assert_eq!(k.open_chunk(&[8; ID_LEN], 3, &[b"header+", b"runs"], &mut d, &tag), Err(BadTag));
        assert_eq!(keys(2).open_chunk(&salt, 3, &[b"header+", b"runs"], &mut d, &tag), Err(BadTag));
        d[0] ^= 1;
        assert_eq!(k.open_chunk(&salt, 3, &[b"header+", b"runs"], &mut d, &tag), Err(BadTag));
        d[0] ^= 1;
        k.open_chunk(&salt, 3, &[b"header+", b"runs"], &mut d, &tag).unwrap();
        assert_eq!(d, plain);
    }

    #[test]
    fn same_key_other_image_id_gives_other_keys() {
        let key = DataKey::from_bytes([9; KEY_LEN]);
        let a = Keys::derive(&key, ImageId([1; ID_LEN]));
        let b = Keys::derive(&key, ImageId([2; ID_LEN]));
        assert_ne!(a.header_mac(b"x"), b.header_mac(b"x"));
        assert_ne!(a.header_mac(b"x"), a.state_mac(b"x"));
        assert!(a.header_mac_ok(b"x", &a.header_mac(b"x")));
        assert!(!a.header_mac_ok(b"y", &a.header_mac(b"x")));
        assert!(!a.state_mac_ok(b"x", &a.header_mac(b"x")));
        assert!(!a.state_mac_ok(b"x", &[]));
    }

    #[test]
    fn random_keys_differ() {
        assert_ne!(DataKey::random().unwrap(), DataKey::random().unwrap());
        assert_ne!(ImageId::random().unwrap(), ImageId::random().unwrap());
        assert_eq!(format!("{:?}", DataKey::from_bytes([1; 32])), "DataKey(…)");
    }

    #[test]
    fn tag_chain_depends_on_order() {
        let (mut a, mut b) = (TagChain::default(), TagChain::default());
        a.add(&[1; 16]);
        a.add(&[2; 16]);
        b.add(&[2; 16]);
        b.add(&[1; 16]);
        assert_ne!(a.value(), b.value());
    }
}
