//! Crosses kernels: an encrypted image's key as one kernel hands it to the
//! next. A puts it in its mailbox request for B (with the wrapped key B
//! stores in the image); C puts it in a page of D's region that D's kernel
//! keeps reserved (`kjump.keypage=`). The receiver reads it and wipes the
//! sender's copy at once, so the key is never in a saved image, on disk or
//! in a page another kernel frees.

use zeroize::Zeroize;

use crate::image::seal::{DataKey, ImageId, ID_LEN, KEY_LEN};
use crate::le;

const MAGIC: &[u8; 8] = b"KJKEYPG1";
/// Bytes an encoded key takes: magic, data key, image ID, CRC.
pub const LEN: usize = 8 + KEY_LEN + ID_LEN + 4;

/// An image's data key and ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageKeyRef {
    /// The data key.
    pub key: DataKey,
    /// The image it belongs to.
    pub id: ImageId,
}

/// Encodes `key` into `out` (at least [`LEN`] bytes).
pub fn encode(key: &DataKey, id: ImageId, out: &mut [u8]) -> Result<(), crate::Error> {
    let out = out.get_mut(..LEN).ok_or_else(|| crate::Error::Msg("a key page needs 60 bytes".into()))?;
    out[..8].copy_from_slice(MAGIC);
    out[8..8 + KEY_LEN].copy_from_slice(key.bytes());
    out[8 + KEY_LEN..8 + KEY_LEN + ID_LEN].copy_from_slice(&id.0);
    let crc = crate::image::crc32(&out[..LEN - 4]);
    out[LEN - 4..].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Decodes a key [`encode`] wrote: `Ok(None)` when `b` holds no key (all
/// zero), an error when it holds something else.
pub fn decode(b: &[u8]) -> Result<Option<ImageKeyRef>, &'static str> {
    let b = b.get(..LEN).ok_or("too short")?;
    if b.iter().all(|&c| c == 0) {
        return Ok(None);
    }
    if &b[..8] != MAGIC {
        return Err("no key there (bad magic)");
    }
    if le::u32_at(b, LEN - 4) != Some(crate::image::crc32(&b[..LEN - 4])) {
        return Err("checksum mismatch");
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&b[8..8 + KEY_LEN]);
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&b[8 + KEY_LEN..8 + KEY_LEN + ID_LEN]);
    let k = ImageKeyRef { key: DataKey::from_bytes(key), id: ImageId(id) };
    key.zeroize();
    Ok(Some(k))
}

/// D's side: reads the key C left at `phys` and zeroes that page.
pub fn take(mem: &crate::sys::devmem::DevMem, phys: u64) -> Result<ImageKeyRef, crate::Error> {
    let mut w = mem.map(phys, crate::units::PAGE_SIZE as usize)?;
    let got = decode(w.bytes());
    w.bytes_mut().zeroize();
    match got {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(crate::Error::Msg(format!("kjump.keypage={phys:#x}: the page holds no key"))),
        Err(why) => Err(crate::Error::Msg(format!("kjump.keypage={phys:#x}: {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_pages() {
        let mut page = [0u8; 4096];
        assert_eq!(decode(&page), Ok(None));
        encode(&DataKey::from_bytes([7; 32]), ImageId([3; 16]), &mut page).unwrap();
        let k = decode(&page).unwrap().unwrap();
        assert_eq!((k.key, k.id), (DataKey::from_bytes([7; 32]), ImageId([3; 16])));
        for i in 0..LEN {
            let mut p = page;
            p[i] ^= 0x40;
            assert!(decode(&p).is_err(), "byte {i}");
        }
        assert!(decode(&page[..10]).is_err());
        assert!(encode(&DataKey::from_bytes([7; 32]), ImageId([3; 16]), &mut [0u8; 10]).is_err());
    }
}
