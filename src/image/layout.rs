//! Where each field of the image's header block, state block and chunk
//! header lies: the tables of `docs/image-format.md`, declared once.
//! [`crate::image`]'s encoders and decoders address fields only through
//! these; a unit test holds them to the document's tables.

pub use crate::le::Field;

/// The header block (offset 0 of the image).
pub mod header {
    use super::Field;
    use crate::image::{seal, MAX_RAM_RANGES};
    use crate::target::in_use;

    /// Magic `KJUMPIMG`.
    pub const MAGIC: Field<8> = Field { at: 0 };
    /// Format version.
    pub const VERSION: Field<4> = Field { at: 8 };
    /// Header size: the block size.
    pub const HEADER_SIZE: Field<4> = Field { at: 12 };
    /// Page size.
    pub const PAGE_SIZE: Field<4> = Field { at: 16 };
    /// Compression asked for.
    pub const COMPRESSION: Field<4> = Field { at: 20 };
    /// Creation time, seconds since 1970.
    pub const CREATED: Field<8> = Field { at: 24 };
    /// A's re-entry address.
    pub const REENTRY: Field<8> = Field { at: 32 };
    /// Start of the kjump region.
    pub const REGION_START: Field<8> = Field { at: 40 };
    /// End of the kjump region (exclusive).
    pub const REGION_END: Field<8> = Field { at: 48 };
    /// Address of the copy of A's low memory.
    pub const BACKUP_ADDR: Field<8> = Field { at: 56 };
    /// Length of that copy.
    pub const BACKUP_LEN: Field<8> = Field { at: 64 };
    /// Pages of A's RAM described.
    pub const RAM_PAGES: Field<8> = Field { at: 72 };
    /// Pages left out as all zero.
    pub const ZERO_PAGES: Field<8> = Field { at: 80 };
    /// Pages left out as free in A.
    pub const FREE_PAGES: Field<8> = Field { at: 88 };
    /// Pages stored in chunks.
    pub const STORED_PAGES: Field<8> = Field { at: 96 };
    /// Number of chunks.
    pub const CHUNK_COUNT: Field<8> = Field { at: 104 };
    /// Bytes of chunks.
    pub const DATA_BYTES: Field<8> = Field { at: 112 };
    /// Number of RAM ranges.
    pub const RAM_RANGE_COUNT: Field<4> = Field { at: 120 };
    /// Flags.
    pub const FLAGS: Field<4> = Field { at: 124 };
    /// A's kernel release, NUL padded.
    pub const KERNEL_RELEASE: Field<64> = Field { at: 128 };
    /// A's kernel build id, NUL padded.
    pub const BUILD_ID: Field<64> = Field { at: 192 };
    /// Bytes of one RAM range: its start, then its end.
    pub const RAM_RANGE_LEN: usize = 16;
    /// The RAM ranges ([`ram_range`]).
    pub const RAM_RANGES: Field<{ RAM_RANGE_LEN * MAX_RAM_RANGES }> = Field { at: 256 };
    /// Physical address of A's mailbox page.
    pub const MAILBOX: Field<8> = Field { at: 1280 };
    /// The machine's SMBIOS system UUID, NUL padded.
    pub const MACHINE_ID: Field<40> = Field { at: 1288 };
    /// A's devices in use ([`in_use::encode_table`]).
    pub const IN_USE: Field<{ in_use::TABLE_LEN }> = Field { at: 1328 };
    /// Stamp kind per device entry, a byte each ([`stamp_kind`]).
    pub const STAMP_KINDS: Field<{ in_use::MAX_ENTRIES }> = Field { at: 3576 };
    /// Stamp digest per device entry, 8 bytes each ([`stamp_digest`]).
    pub const STAMP_DIGESTS: Field<{ 8 * in_use::MAX_ENTRIES }> = Field { at: 3616 };
    /// Cipher.
    pub const CIPHER: Field<4> = Field { at: 3936 };
    /// Image ID.
    pub const IMAGE_ID: Field<{ seal::ID_LEN }> = Field { at: 3944 };
    /// Nonce salt.
    pub const NONCE_SALT: Field<{ seal::ID_LEN }> = Field { at: 3960 };
    /// Physical address of A's VMCOREINFO note, or 0 (for `kjump image
    /// export` only; zero in images made before kjump wrote it).
    pub const VMCOREINFO_ADDR: Field<8> = Field { at: 3976 };
    /// Its length in bytes (the whole ELF note), or 0.
    pub const VMCOREINFO_LEN: Field<4> = Field { at: 3984 };
    /// A's direct-map base (`PAGE_OFFSET`), or 0 when unknown.
    pub const PAGE_OFFSET: Field<8> = Field { at: 3992 };
    /// MAC of the bytes before it.
    pub const MAC: Field<{ seal::MAC_LEN }> = Field { at: 4060 };
    /// CRC of the bytes before it.
    pub const CRC: Field<4> = Field { at: 4092 };

    /// RAM range `i` (below [`MAX_RAM_RANGES`]): its start and its end.
    pub const fn ram_range(i: usize) -> (Field<8>, Field<8>) {
        let at = RAM_RANGES.at + i * RAM_RANGE_LEN;
        (Field { at }, Field { at: at + 8 })
    }

    /// The stamp kind of device entry `i`.
    pub const fn stamp_kind(i: usize) -> Field<1> {
        Field { at: STAMP_KINDS.at + i }
    }

    /// The stamp digest of device entry `i`.
    pub const fn stamp_digest(i: usize) -> Field<8> {
        Field { at: STAMP_DIGESTS.at + 8 * i }
    }
}

/// The state block (offset 4096 of the image): the commit record.
pub mod state {
    use super::Field;
    use crate::image::seal;

    /// Magic `KJSTATE\0`.
    pub const MAGIC: Field<8> = Field { at: 0 };
    /// Format version.
    pub const VERSION: Field<4> = Field { at: 8 };
    /// The state.
    pub const STATE: Field<4> = Field { at: 12 };
    /// CRC of the header block it commits.
    pub const HEADER_CRC: Field<4> = Field { at: 16 };
    /// CRC over the chunks' data checksums.
    pub const CHAIN_CRC: Field<4> = Field { at: 20 };
    /// Number of chunks.
    pub const CHUNK_COUNT: Field<8> = Field { at: 24 };
    /// Offset just past the last chunk.
    pub const DATA_END: Field<8> = Field { at: 32 };
    /// Why the image is bad, or who consumed it, NUL padded.
    pub const NOTE: Field<256> = Field { at: 40 };
    /// Starts of the restore kernel.
    pub const ATTEMPTS: Field<4> = Field { at: 296 };
    /// How long B took to save the image, in milliseconds.
    pub const SAVE_MS: Field<4> = Field { at: 300 };
    /// SHA-256 over the chunks' tags.
    pub const TAGS: Field<32> = Field { at: 304 };
    /// The key block.
    pub const KEY_BLOCK: Field<1024> = Field { at: 1024 };
    /// MAC of the bytes before it.
    pub const MAC: Field<{ seal::MAC_LEN }> = Field { at: 4060 };
    /// CRC of the bytes before it.
    pub const CRC: Field<4> = Field { at: 4092 };
}

/// A chunk's header (at the start of each chunk), then its runs.
pub mod chunk {
    use super::Field;
    use crate::image::seal;

    /// Magic `KJCHUNK\0`.
    pub const MAGIC: Field<8> = Field { at: 0 };
    /// Index, from 0.
    pub const INDEX: Field<8> = Field { at: 8 };
    /// How the pages are stored.
    pub const STORAGE: Field<4> = Field { at: 16 };
    /// Number of runs of stored pages.
    pub const RUN_COUNT: Field<2> = Field { at: 20 };
    /// Number of runs of zero pages.
    pub const ZERO_RUN_COUNT: Field<2> = Field { at: 22 };
    /// Number of stored pages.
    pub const PAGE_COUNT: Field<4> = Field { at: 24 };
    /// Stored length.
    pub const STORED_LEN: Field<4> = Field { at: 28 };
    /// Data checksum. The fields before it (and the runs) are a sealed
    /// chunk's associated data.
    pub const DATA_SUM: Field<4> = Field { at: 32 };
    /// Authentication tag.
    pub const TAG: Field<{ seal::TAG_LEN }> = Field { at: 36 };
    /// CRC of the bytes before it; the runs follow.
    pub const HEADER_CRC: Field<4> = Field { at: 52 };
    /// Bytes of one run: its first page frame number, its page count.
    pub const RUN_LEN: usize = 16;

    /// Run `i` of a chunk, from the end of its header (stored runs
    /// first, then zero runs): its first page frame number and its page
    /// count.
    pub const fn run(i: usize) -> (Field<8>, Field<8>) {
        let at = i * RUN_LEN;
        (Field { at }, Field { at: at + 8 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BLOCK;

    /// A table of `docs/image-format.md`: the (offset, size) of each row
    /// under `heading` that is a field (not "zero"), with sizes like
    /// `16 × n` evaluated (`n` is the most RAM ranges); rows whose offset
    /// or size depends on the data (a chunk's runs) are left out.
    fn documented(heading: &str) -> Vec<(usize, usize)> {
        let doc = include_str!("../../docs/image-format.md");
        let at = doc.find(heading).unwrap_or_else(|| panic!("{heading} in docs/image-format.md"));
        let eval = |size: &str| -> Option<usize> {
            size.split('+')
                .map(|term| {
                    term.split('×').map(|f| if f.trim() == "n" { Some(crate::image::MAX_RAM_RANGES) } else { f.trim().parse().ok() }).product::<Option<usize>>()
                })
                .sum()
        };
        doc[at..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let (offset, size, field) = (cells.get(1)?, cells.get(2)?, cells.get(3)?);
                if field.starts_with("zero") {
                    return None;
                }
                Some((offset.parse().ok()?, eval(size)?))
            })
            .collect()
    }

    /// Declared fields, in order: no two overlap, none passes the MAC and
    /// CRC at the end of a block, and they are the document's rows.
    fn check(heading: &str, fields: &[(usize, usize)], size: usize) {
        for w in fields.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "{heading}: field at {} overlaps the one at {}", w[0].0, w[1].0);
        }
        assert!(fields.last().is_some_and(|&(at, len)| at + len <= size), "{heading}: past its end");
        assert_eq!(documented(heading), fields, "{heading}: declared fields differ from docs/image-format.md");
    }

    #[test]
    fn header_block_is_the_documented_table() {
        use header::*;
        let fields = [
            MAGIC.range(),
            VERSION.range(),
            HEADER_SIZE.range(),
            PAGE_SIZE.range(),
            COMPRESSION.range(),
            CREATED.range(),
            REENTRY.range(),
            REGION_START.range(),
            REGION_END.range(),
            BACKUP_ADDR.range(),
            BACKUP_LEN.range(),
            RAM_PAGES.range(),
            ZERO_PAGES.range(),
            FREE_PAGES.range(),
            STORED_PAGES.range(),
            CHUNK_COUNT.range(),
            DATA_BYTES.range(),
            RAM_RANGE_COUNT.range(),
            FLAGS.range(),
            KERNEL_RELEASE.range(),
            BUILD_ID.range(),
            RAM_RANGES.range(),
            MAILBOX.range(),
            MACHINE_ID.range(),
            IN_USE.range(),
            STAMP_KINDS.range(),
            STAMP_DIGESTS.range(),
            CIPHER.range(),
            IMAGE_ID.range(),
            NONCE_SALT.range(),
            VMCOREINFO_ADDR.range(),
            VMCOREINFO_LEN.range(),
            PAGE_OFFSET.range(),
            MAC.range(),
            CRC.range(),
        ];
        let fields: Vec<_> = fields.iter().map(|r| (r.start, r.len())).collect();
        check("## Header block (offset 0)", &fields, BLOCK);
        assert_eq!((MAC.end(), CRC.at, CRC.end()), (CRC.at, 4092, BLOCK));
        let last = crate::image::MAX_RAM_RANGES - 1;
        assert_eq!((ram_range(0).0.at, ram_range(last).1.end()), (RAM_RANGES.at, RAM_RANGES.end()));
        let last = crate::target::in_use::MAX_ENTRIES - 1;
        assert_eq!((stamp_kind(last).end(), stamp_digest(last).end()), (STAMP_KINDS.end(), STAMP_DIGESTS.end()));
    }

    #[test]
    fn state_block_is_the_documented_table() {
        use state::*;
        let fields = [
            MAGIC.range(),
            VERSION.range(),
            STATE.range(),
            HEADER_CRC.range(),
            CHAIN_CRC.range(),
            CHUNK_COUNT.range(),
            DATA_END.range(),
            NOTE.range(),
            ATTEMPTS.range(),
            SAVE_MS.range(),
            TAGS.range(),
            KEY_BLOCK.range(),
            MAC.range(),
            CRC.range(),
        ];
        let fields: Vec<_> = fields.iter().map(|r| (r.start, r.len())).collect();
        check("## State block (offset 4096)", &fields, BLOCK);
        assert_eq!((MAC.at, MAC.end(), CRC.end()), (header::MAC.at, CRC.at, BLOCK));
    }

    #[test]
    fn chunk_header_is_the_documented_table() {
        use chunk::*;
        let fields = [
            MAGIC.range(),
            INDEX.range(),
            STORAGE.range(),
            RUN_COUNT.range(),
            ZERO_RUN_COUNT.range(),
            PAGE_COUNT.range(),
            STORED_LEN.range(),
            DATA_SUM.range(),
            TAG.range(),
            HEADER_CRC.range(),
        ];
        let fields: Vec<_> = fields.iter().map(|r| (r.start, r.len())).collect();
        check("## Chunk", &fields, crate::image::CHUNK_HEADER);
        assert_eq!((DATA_SUM.end(), TAG.end(), HEADER_CRC.end()), (TAG.at, HEADER_CRC.at, crate::image::CHUNK_HEADER));
        assert_eq!((run(0).0.at, run(0).1.end(), run(1).0.at), (0, RUN_LEN, RUN_LEN));
    }
}
