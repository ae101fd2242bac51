//! The key material kjump reads from disk (`wrap`): an image's key block
//! (`wrap::KeyBlock::decode`, 2048 bytes of the state block), the
//! `public.key` and `private.key` files, each on every input; a block that
//! decodes is unwrapped with the fixed key file or passphrase the seeds
//! were made with (`fuzz/examples/seeds.rs`), a TPM block with the key
//! file's bytes as the key a TPM would unseal. Argon2id's cost comes from
//! the input, so a passphrase block is only tried at 64 KiB or less.

#![no_main]

use kjump::image::seal::ImageId;
use kjump::host::wrap::{self, KeyBlock, Method, PublicKey, SealedPrivateKey, KEY_BLOCK_LEN};
use libfuzzer_sys::fuzz_target;

/// What the seeds were wrapped with.
const KEY_FILE: [u8; 32] = [0x4b; 32];
const PASSPHRASE: &[u8] = b"kjump fuzz";
const ID: ImageId = ImageId([0x1d; 16]);

fuzz_target!(|data: &[u8]| {
    for bytes in [data, data.get(..KEY_BLOCK_LEN).unwrap_or(data)] {
        if let Ok(Some(block)) = KeyBlock::decode(bytes) {
            // The encoding is canonical: what decodes encodes back the same.
            assert_eq!(&block.encode()[..], bytes);
            let _ = match block.method() {
                Method::KeyFile => wrap::unwrap_with_key_file(&block, ID, &KEY_FILE),
                Method::Passphrase => match block.argon2_params() {
                    Some(p) if p.m_kib <= 64 => wrap::unwrap_with_passphrase(&block, ID, PASSPHRASE),
                    _ => continue,
                },
                // What a TPM would unseal: the seeds sealed nothing, and
                // wrapped the key under the key file's bytes.
                Method::Tpm2 => wrap::unwrap_with_kek(&block, ID, &KEY_FILE),
            };
        }
    }
    if let Ok(public) = PublicKey::decode(data) {
        assert_eq!(&public.encode()[..], data);
    }
    if let Ok(sealed) = SealedPrivateKey::decode(data) {
        assert_eq!(&sealed.encode()[..], data);
        assert!(sealed.params().m_kib <= wrap::Argon2Params::MAX_M_KIB);
    }
});
