//! Gzip members (RFC 1952) around miniz_oxide's deflate, for the
//! initramfs the kernel unpacks with `CONFIG_RD_GZIP`.

use crate::image::crc32;
use crate::le;

/// Compresses `data` into one gzip member.
pub fn compress(data: &[u8], level: u8) -> Vec<u8> {
    let deflated = miniz_oxide::deflate::compress_to_vec(data, level);
    let mut out = Vec::with_capacity(deflated.len() + 18);
    // Magic, deflate, no flags, no mtime, no extra flags, OS = Unix.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Why a gzip member could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not a gzip member kjump reads (magic, method or flags).
    BadHeader,
    /// The deflate stream is damaged or truncated, or unpacks to more
    /// than the limit.
    BadData,
    /// The CRC or length in the trailer does not match.
    BadTrailer,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::BadHeader => "not a gzip member kjump reads (bad magic, method or flags)",
            Error::BadData => "the compressed data is damaged, truncated or larger than allowed",
            Error::BadTrailer => "the gzip trailer's CRC or length does not match the data",
        })
    }
}

impl std::error::Error for Error {}

/// Decompresses one gzip member without optional header fields except
/// FNAME (what kjump and the kernel's `/proc/config.gz` write). The output is
/// limited to `max` bytes.
pub fn decompress(data: &[u8], max: usize) -> Result<Vec<u8>, Error> {
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b || data[2] != 8 {
        return Err(Error::BadHeader);
    }
    let flags = data[3];
    let mut at = 10;
    if flags & !0x08 != 0 {
        return Err(Error::BadHeader);
    }
    if flags & 0x08 != 0 {
        let nul = data[at..].iter().position(|&b| b == 0).ok_or(Error::BadHeader)?;
        at += nul + 1;
    }
    let body = data.get(at..data.len() - 8).ok_or(Error::BadHeader)?;
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(body, max).map_err(|_| Error::BadData)?;
    let trailer = &data[data.len() - 8..];
    if le::u32_at(trailer, 0) != Some(crc32(&out)) || le::u32_at(trailer, 4) != Some(out.len() as u32) {
        return Err(Error::BadTrailer);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let z = compress(&data, 6);
        assert!(z.len() < data.len() / 10);
        assert_eq!(decompress(&z, 1 << 20).unwrap(), data);
    }

    #[test]
    fn damage_is_an_error() {
        let z = compress(b"hello hello hello", 6);
        assert_eq!(decompress(&z[..10], 100), Err(Error::BadHeader));
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert_eq!(decompress(&bad, 100), Err(Error::BadTrailer));
        assert!(decompress(&z, 3).is_err());
        for i in 0..z.len() {
            let _ = decompress(&z[..i], 100);
        }
    }
}
