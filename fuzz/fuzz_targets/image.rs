//! The image reader: header, state block (the commit record) and chunks,
//! through `kjump::image::Reader` over a byte slice, as `kjump image
//! verify` and D's restore read them.
//!
//! Every block is covered by a checksum, which a mutation almost always breaks.
//! So that the fuzzer also reaches the checks behind them, the low bit
//! of the first byte asks for the input (the rest of it) to be *resealed*
//! first: every checksum the reader checks (header, state, chunk header, chunk
//! data, chain) is recomputed the way a writer would have written it. The
//! second bit tries the chunks as sealed ones, opened with a fixed key
//! (a tag matches only by chance, so this reaches the opening path and
//! its refusals). The third bit exports the image as a core file instead
//! (`kjump image export`), into a sink that checks that every write lies
//! inside the file's final length.

#![no_main]

use kjump::image::crc32;
use kjump::image::{self, Chain, ChunkSums, Header, Reader, StateBlock, BLOCK, CHUNK_HEADER, DATA_OFFSET, PAGE};
use libfuzzer_sys::fuzz_target;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Recomputes every checksum of an image in place (chunks, then the state block
/// that counts them, then the header the state block commits).
fn reseal(img: &mut [u8]) {
    let mut off = DATA_OFFSET as usize;
    let mut chain = Chain::default();
    let mut chunks = 0u64;
    while off + CHUNK_HEADER <= img.len() {
        let h = &img[off..];
        // Clamp the counts the way the reader bounds them, so that the
        // body is found where a writer would have put it.
        let runs = (u32_at(h, 20).unwrap_or(0) as usize).min(image::MAX_RUNS);
        let stored = (u32_at(h, 28).unwrap_or(0) as usize).min(image::MAX_CHUNK_PAGES * PAGE);
        let body_end = off + CHUNK_HEADER + runs * 16 + stored;
        if body_end <= img.len() {
            let data_sum = kjump::image::data_sum(&img[off + CHUNK_HEADER..body_end]);
            put32(img, off + 32, data_sum);
            let mut tag = [0u8; 16];
            tag.copy_from_slice(&img[off + 36..off + 52]);
            chain.add(&ChunkSums { sum: data_sum, tag });
        }
        let hcrc = crc32(&img[off..off + CHUNK_HEADER - 4]);
        put32(img, off + CHUNK_HEADER - 4, hcrc);
        chunks += 1;
        off += (CHUNK_HEADER + runs * 16 + stored).next_multiple_of(BLOCK);
    }
    if img.len() >= 2 * BLOCK {
        let hcrc = crc32(&img[..BLOCK - 4]);
        put32(img, BLOCK - 4, hcrc);
        let s = &mut img[BLOCK..2 * BLOCK];
        // Commit this header and the chain, keep the counts the input gave
        // unless they are zero (then count what is there).
        put32(s, 16, hcrc);
        put32(s, 20, chain.value());
        s[304..336].copy_from_slice(&chain.tags());
        if s[24..32] == [0; 8] {
            s[24..32].copy_from_slice(&chunks.to_le_bytes());
            s[32..40].copy_from_slice(&(off as u64).to_le_bytes());
        }
        let scrc = crc32(&s[..BLOCK - 4]);
        put32(s, BLOCK - 4, scrc);
    } else if img.len() >= BLOCK {
        let hcrc = crc32(&img[..BLOCK - 4]);
        put32(img, BLOCK - 4, hcrc);
    }
}

/// A core file that keeps nothing: where writes ended, for the check that
/// none goes past the length the export gives the file.
#[derive(Default)]
struct Sink {
    end: u64,
}

impl kjump::image::export::Output for Sink {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.end = self.end.max(offset.checked_add(bytes.len() as u64).expect("write beyond any offset"));
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        assert!(self.end <= len, "a write ends at {} in a file of {len} bytes", self.end);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut img = rest.to_vec();
    if mode & 1 == 1 {
        reseal(&mut img);
    }

    // The block decoders on their own, at the offsets the reader uses.
    if let Ok(h) = Header::decode(&img) {
        // A header that decodes encodes again (the writer's side).
        let block = h.encode().expect("a decoded header encodes");
        assert_eq!(Header::decode(&block).map(|again| again.ram), Ok(h.ram.clone()));
        assert!(h.backup.len() <= 1 << 20, "backup length bounded");
    }
    let _ = StateBlock::decode(img.get(BLOCK..).unwrap_or(&[]));
    if let Some(chunk) = img.get(DATA_OFFSET as usize..) {
        if let Ok(info) = image::parse_chunk_header(chunk, 0) {
            assert!(info.disk_len <= CHUNK_HEADER + 2 * image::MAX_RUNS * 16 + image::MAX_CHUNK_PAGES * PAGE + BLOCK);
        }
    }

    // The whole image, as the restore side reads it.
    let Ok(mut reader) = Reader::open(&img[..]) else { return };
    let _ = reader.header_committed();
    if mode & 2 == 2 {
        let _ = reader.unlock(&kjump::image::seal::DataKey::from_bytes([7; 32]));
    }
    if mode & 4 == 4 {
        let _ = kjump::image::export::export(&mut reader, &mut Sink::default(), |_, _| {});
        return;
    }
    // Sealed and not opened: no key tried, or the key did not unlock it.
    let sealed_unopened = !reader.pages_readable();
    // Each chunk takes at least a block of input, so this ends; the bound
    // is only a second guard.
    for _ in 0..=img.len() / BLOCK {
        match reader.next_chunk() {
            Ok(Some((info, bufs))) => {
                let (runs, zero_runs, pages) = (&bufs.runs, &bufs.zero_runs, &bufs.pages);
                if !sealed_unopened {
                    assert_eq!(pages.len(), info.page_count * PAGE);
                }
                let total: u64 = runs.iter().map(|r| r.count).sum();
                assert_eq!(total, info.page_count as u64);
                for r in runs.iter().chain(zero_runs) {
                    // What restore computes from a run must not overflow.
                    assert!(r.phys().is_some(), "run beyond the address space");
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
