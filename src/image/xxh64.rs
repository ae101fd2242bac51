//! XXH64, the 64-bit xxHash: the checksum over each chunk's data.
//!
//! Four independent 64-bit lanes, each a multiply, add and rotate per
//! eight bytes, with one load and no table lookups: several times faster
//! than table-driven CRC-32, natively (about 8 GB/s against 1.5 GB/s per
//! core here) and under emulation (1.3 GB/s against 0.3 GB/s in a QEMU
//! guest), where every table lookup is a memory access to emulate. B
//! checksums every chunk it writes and D every chunk it reads, so this is
//! on the critical path of both. The algorithm follows the xxHash
//! specification; the tests hold values from the reference
//! implementation.

const P1: u64 = 0x9e37_79b1_85eb_ca87;
const P2: u64 = 0xc2b2_ae3d_27d4_eb4f;
const P3: u64 = 0x1656_67b1_9e37_79f9;
const P4: u64 = 0x85eb_ca77_c2b2_ae63;
const P5: u64 = 0x27d4_eb2f_1656_67c5;

/// One lane step: folds eight bytes into an accumulator.
#[inline(always)]
fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
}

/// Folds a lane's accumulator into the hash.
#[inline(always)]
fn merge(hash: u64, acc: u64) -> u64 {
    (hash ^ round(0, acc)).wrapping_mul(P1).wrapping_add(P4)
}

#[inline(always)]
fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// XXH64 of `data` with seed 0.
pub fn xxh64(data: &[u8]) -> u64 {
    let stripes = data.chunks_exact(32);
    let mut rest = stripes.remainder();
    let mut hash = if data.len() >= 32 {
        let mut acc = [P1.wrapping_add(P2), P2, 0, P1.wrapping_neg()];
        for s in stripes {
            acc[0] = round(acc[0], le64(&s[0..8]));
            acc[1] = round(acc[1], le64(&s[8..16]));
            acc[2] = round(acc[2], le64(&s[16..24]));
            acc[3] = round(acc[3], le64(&s[24..32]));
        }
        let mut h = acc[0].rotate_left(1).wrapping_add(acc[1].rotate_left(7)).wrapping_add(acc[2].rotate_left(12)).wrapping_add(acc[3].rotate_left(18));
        for a in acc {
            h = merge(h, a);
        }
        h
    } else {
        P5
    };
    hash = hash.wrapping_add(data.len() as u64);
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        hash = (hash ^ round(0, u64::from_le_bytes(*word))).rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = tail;
    }
    if let Some((word, tail)) = rest.split_first_chunk::<4>() {
        hash = (hash ^ u64::from(u32::from_le_bytes(*word)).wrapping_mul(P1)).rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = tail;
    }
    for &b in rest {
        hash = (hash ^ u64::from(b).wrapping_mul(P5)).rotate_left(11).wrapping_mul(P1);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(P2);
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(P3);
    hash ^ (hash >> 32)
}

#[cfg(test)]
mod tests {
    use super::xxh64;

    #[test]
    fn matches_the_reference_implementation() {
        // Values from the reference xxHash (Python's `xxhash.xxh64`, seed 0)
        // over bytes `(i * 7 + 3) & 255`: every path through the tail
        // (8-, 4- and 1-byte steps) on both sides of the 32-byte stripe.
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i.wrapping_mul(7).wrapping_add(3) & 255) as u8).collect();
        for (n, want) in [
            (0, 0xef46_db37_51d8_e999u64),
            (3, 0x31d2_363f_52e5_64c9),
            (31, 0xa2aa_5f33_cc4a_6119),
            (32, 0x23c3_c17e_f790_fd97),
            (33, 0x50a7_cfc7_ba58_8784),
            (100, 0xa61f_8d4c_170f_e531),
            (4096, 0x7963_98cd_4327_97cc),
            (1_000_003, 0x293d_731d_a181_15ef),
        ] {
            assert_eq!(xxh64(&data[..n]), want, "{n} bytes");
        }
        assert_eq!(xxh64(b"abc"), 0x44bc_2cf5_ad77_0999);
    }

    #[test]
    fn one_flipped_bit_changes_the_sum() {
        let mut page = vec![0x5au8; 4096];
        let before = xxh64(&page);
        for bit in [0, 7, 8 * 1000 + 3, 8 * 4095 + 7] {
            page[bit / 8] ^= 1 << (bit % 8);
            assert_ne!(xxh64(&page), before);
            page[bit / 8] ^= 1 << (bit % 8);
        }
    }
}
