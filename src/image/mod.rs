//! The kjump image format, version 4 (see `docs/image-format.md`).
//!
//! ```text
//! offset 0      header block (4 KiB): what was saved, from which kernel, where
//! offset 4096   state block (4 KiB): the commit record (writing, committed,
//!               consumed, bad) and the checksum chain of the chunks
//! offset 8192   chunks, each 4 KiB aligned: a header, the runs of page
//!               frame numbers it holds, the pages (compressed or raw)
//! ```
//! Every field is little-endian and covered by a checksum (CRC-32 for
//! headers, XXH64 for chunk data). An encrypted image ([`crate::image::seal`])
//! also has its chunks' pages sealed with an AEAD and its header and state
//! blocks under HMACs; [`Header::decode`] and [`StateBlock::decode`] read
//! them without the key, and [`authenticate`] checks them with it. Readers reject
//! anything malformed with an error that names the field; they never
//! panic and never allocate from a length they have not bounded.

// An image as an ELF core file (`kjump image export`).
pub mod export;
// The cryptography of an encrypted image, and the checksums of a clear one.
pub mod seal;
// Where each field of the blocks and chunk headers lies.
pub mod layout;

use core::fmt;

use crate::load::elf_core::Note;
use crate::range::{PfnRun, PhysRange};
use layout::{chunk, header, state, Field};

/// Block size: the header, the state and every chunk start on this boundary.
pub const BLOCK: usize = 4096;
/// Page size of images this version writes (x86_64's, [`crate::units::PAGE_SIZE`]).
pub const PAGE: usize = crate::units::PAGE_SIZE as usize;
/// Header magic.
pub const MAGIC: &[u8; 8] = b"KJUMPIMG";
/// State block magic.
pub const STATE_MAGIC: &[u8; 8] = b"KJSTATE\0";
/// Chunk magic.
pub const CHUNK_MAGIC: &[u8; 8] = b"KJCHUNK\0";
/// Format version.
pub const VERSION: u32 = 4;
/// Offset of the header block.
pub const HEADER_OFFSET: u64 = 0;
/// Offset of the state block.
pub const STATE_OFFSET: u64 = BLOCK as u64;
/// Offset of the first chunk.
pub const DATA_OFFSET: u64 = 2 * BLOCK as u64;
/// Most RAM ranges a header records.
pub const MAX_RAM_RANGES: usize = 64;
/// Most pages in one chunk (1 MiB).
pub const MAX_CHUNK_PAGES: usize = 256;
/// Most runs of consecutive pages in one chunk.
pub const MAX_RUNS: usize = MAX_CHUNK_PAGES;
/// Size of a chunk header before its runs.
pub const CHUNK_HEADER: usize = chunk::HEADER_CRC.end();
/// Most bytes of associated data a sealed chunk has: the image ID, the
/// chunk header fields before its checksums, and the most runs.
pub const MAX_CHUNK_AD: usize = seal::ID_LEN + chunk::DATA_SUM.at + 2 * MAX_RUNS * chunk::RUN_LEN;

/// The most bytes one chunk takes on disk: its header, the most runs of
/// both kinds and every page stored as it is, padded to a block.
pub const MAX_CHUNK_DISK_LEN: usize = (CHUNK_HEADER + 2 * MAX_RUNS * chunk::RUN_LEN + MAX_CHUNK_PAGES * PAGE).next_multiple_of(BLOCK);
/// Longest copy of A's low memory a header may record: the purgatory copies
/// A's RAM below 1 MiB, and the restore side gathers it in a buffer.
pub const MAX_BACKUP: u64 = 1 << 20;
/// Runs of a chunk end below this page frame number, so that the byte
/// address just past every run fits in 64 bits.
pub const PFN_LIMIT: u64 = 1 << (64 - 12);

/// Bytes of a header or state block covered by its MAC (the MAC and the
/// CRC follow).
pub const MAC_COVERS: usize = header::MAC.at;
const _: () = assert!(state::MAC.at == MAC_COVERS && header::CRC.at == BLOCK - 4 && state::CRC.at == BLOCK - 4);
/// Offset of the key block in the state block.
pub const KEY_BLOCK_OFF: usize = state::KEY_BLOCK.at;
/// Bytes of the key block.
pub const KEY_BLOCK_LEN: usize = state::KEY_BLOCK.end() - state::KEY_BLOCK.at;
const _: () = assert!(state::KEY_BLOCK.end() <= MAC_COVERS);

/// Whether `bytes` (a page) are all zero: such pages are listed in zero
/// runs, never stored.
pub fn is_zero(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    words.map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([1; 8]))).all(|w| w == 0) && rest.iter().all(|&b| b == 0)
}

/// The checksum of a chunk's data (its runs and stored bytes): the low 32
/// bits of XXH64 (seed 0), several times faster than CRC-32 on the path
/// every page of A takes.
pub fn data_sum(body: &[u8]) -> u32 {
    xxhash_rust::xxh64::xxh64(body, 0) as u32
}

/// CRC-32 (IEEE 802.3, as gzip's): the checksum of the image's header,
/// state and chunk headers, and of kjump's other records (mailbox, key
/// page, key block, gzip members). crc32fast's, which uses the CPU's
/// carry-less multiply where it has one.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// How a chunk's pages are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Raw pages.
    None,
    /// LZ4 block format.
    Lz4,
    /// Raw deflate (miniz_oxide).
    Deflate,
}

impl Compression {
    fn code(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Deflate => 2,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            2 => Some(Compression::Deflate),
            _ => None,
        }
    }

    /// Parses `none`, `lz4` or `deflate`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Compression::None),
            "lz4" => Some(Compression::Lz4),
            "deflate" => Some(Compression::Deflate),
            _ => None,
        }
    }

    /// The name [`Compression::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Deflate => "deflate",
        }
    }
}

/// The life of an image, in its state block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// B is writing it (or died while writing): not usable.
    Writing,
    /// Complete and durable: can be resumed.
    Committed,
    /// Resumed once already: must not be resumed again.
    Consumed,
    /// Never to be resumed: found damaged by a restore (kept for `kjump
    /// image verify`), or given up by a boot with `noresume`. The state
    /// block's note says which.
    Bad,
    /// Complete, but A went on running after it was saved (`--after
    /// resume`): no boot resumes it by itself, since A's filesystems moved
    /// on; only `kjump resume --snapshot`, and only if they did not.
    Snapshot,
}

impl State {
    fn code(self) -> u32 {
        match self {
            State::Writing => 1,
            State::Committed => 2,
            State::Consumed => 3,
            State::Bad => 4,
            State::Snapshot => 5,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(State::Writing),
            2 => Some(State::Committed),
            3 => Some(State::Consumed),
            4 => Some(State::Bad),
            5 => Some(State::Snapshot),
            _ => None,
        }
    }

    /// A word for people.
    pub fn name(self) -> &'static str {
        match self {
            State::Writing => "incomplete (being written, or writing was interrupted)",
            State::Committed => "committed",
            State::Consumed => "consumed (already resumed)",
            State::Bad => "bad (never to be resumed; see its note)",
            State::Snapshot => "a snapshot (A went on running after it; resumed only by 'kjump resume --snapshot')",
        }
    }
}

/// Why an image (or part of it) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A magic number is wrong: `what` is header, state or chunk N.
    BadMagic {
        /// The block: `header`, `state` or `chunk N`.
        what: String,
    },
    /// The header's version is not one this kjump reads.
    UnsupportedVersion {
        /// The header's version.
        version: u32,
    },
    /// A block's CRC does not match: `what` names it.
    BadChecksum {
        /// The block: `header`, `state` or `chunk N`.
        what: String,
    },
    /// A field holds an impossible value.
    BadField {
        /// The block: `header`, `state` or `chunk N`.
        what: String,
        /// The field, in words ("ram range count").
        field: &'static str,
    },
    /// The data ended early.
    Truncated {
        /// The block: `header`, `state` or `chunk N`.
        what: String,
    },
    /// Decompression failed or gave the wrong size.
    Decompress {
        /// The chunk's index, from 0.
        chunk: u64,
    },
    /// The state block commits a different header.
    HeaderMismatch,
    /// The chunks' checksum chain does not match the commit record.
    ChainMismatch,
    /// A chunk's pages may not be written where it says.
    Run(BadRun),
    /// An encrypted image's header or state block fails its MAC, or its
    /// chunks' tags do not chain to the state block's digest: changed
    /// since B wrote it, or made with another key.
    Forged {
        /// The part: `header`, `state` or `the chunks' tags`.
        what: &'static str,
    },
    /// A chunk's authentication tag does not match its pages.
    BadTag {
        /// The chunk's index, from 0.
        chunk: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadMagic { what } => write!(f, "{what}: bad magic (not a kjump image)"),
            Error::UnsupportedVersion { version } => write!(f, "header: version {version} is not supported (this kjump reads {VERSION})"),
            Error::BadChecksum { what } => write!(f, "{what}: checksum mismatch"),
            Error::BadField { what, field } => write!(f, "{what}: bad {field}"),
            Error::Truncated { what } => write!(f, "{what}: truncated"),
            Error::Decompress { chunk } => write!(f, "chunk {chunk}: pages do not decompress"),
            Error::HeaderMismatch => f.write_str("state: commits a different header"),
            Error::ChainMismatch => f.write_str("state: chunk checksum chain does not match"),
            Error::Run(r) => r.fmt(f),
            Error::Forged { what } => write!(f, "{what}: fails authentication (changed since it was written, or not made with this key)"),
            Error::BadTag { chunk } => write!(f, "chunk {chunk}: fails authentication (its pages were changed, or it comes from another image)"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Run(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `text` into field `f`, cut to leave at least one NUL.
fn put_text<const N: usize>(b: &mut [u8], f: Field<N>, text: &str) {
    let n = text.len().min(N - 1);
    b[f.at..f.at + n].copy_from_slice(&text.as_bytes()[..n]);
}

/// The NUL-padded text of field `f` (in a block whose length was checked).
fn text_at<const N: usize>(b: &[u8], f: Field<N>) -> String {
    let s = &b[f.range()];
    let end = s.iter().position(|&c| c == 0).unwrap_or(N);
    String::from_utf8_lossy(&s[..end]).into_owned()
}

/// `text` read from an image (a note, a kernel release), safe to print:
/// control characters (escape sequences among them) become `?`, since the
/// image may be forged.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The header block: what the image holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Compression asked for (chunks that do not shrink are stored raw).
    pub compression: Option<Compression>,
    /// Seconds since 1970 when B started writing.
    pub created_unix: u64,
    /// A's re-entry address (`kexec_jump_back_entry`).
    pub reentry: u64,
    /// The kjump region B ran in (D must run there too).
    pub region: PhysRange,
    /// Where A's low memory was backed up (its length is that of A's low
    /// memory); on disk its address and length.
    pub backup: PhysRange,
    /// Pages of A's RAM described by the image.
    pub ram_pages: u64,
    /// Pages left out because they were all zero.
    pub zero_pages: u64,
    /// Pages left out because they were free in A.
    pub free_pages: u64,
    /// Pages stored in chunks.
    pub stored_pages: u64,
    /// Number of chunks.
    pub chunk_count: u64,
    /// Bytes of chunks on disk.
    pub data_bytes: u64,
    /// A's kernel release (VMCOREINFO `OSRELEASE`).
    pub kernel_release: String,
    /// A's kernel build id (VMCOREINFO `BUILD-ID`).
    pub build_id: String,
    /// A's RAM ranges (the PT_LOADs of `/proc/vmcore`).
    pub ram: Vec<PhysRange>,
    /// Physical address of A's mailbox page (where D reports the resume), or 0.
    pub mailbox: u64,
    /// The machine's SMBIOS system UUID as B read it (empty when unknown).
    pub machine_id: String,
    /// The block devices A was using (mounted, swap): B and D must not
    /// write them.
    pub in_use: Vec<crate::target::in_use::InUse>,
    /// A's free pages must read as zero when A runs again (A's kernel
    /// zeroes pages when it frees them, `init_on_free`, and skips zeroing
    /// when it allocates): D writes zeros there instead of leaving them.
    pub zero_free: bool,
    /// What B found on each device of [`Header::in_use`] (same order):
    /// C and D refuse the image when a device was written since.
    pub stamps: Vec<crate::target::freshness::Stamp>,
    /// How the chunks are sealed ([`crate::image::seal::Cipher::None`]: not).
    pub cipher: crate::image::seal::Cipher,
    /// The image's random ID (the salt of its keys).
    pub image_id: crate::image::seal::ImageId,
    /// B's random salt for the chunks' nonces.
    pub nonce_salt: [u8; crate::image::seal::ID_LEN],
    /// Where A's VMCOREINFO note lies in A's physical memory, and its
    /// length in bytes (the whole ELF note, at most `u32::MAX` on disk),
    /// as B checked it: the note is among the image's own pages. `None`
    /// when B could not tell, and in images made before kjump recorded it.
    pub vmcoreinfo: Option<Note>,
    /// Where A's direct map of physical memory starts (`PAGE_OFFSET`), as
    /// B found it in A's page tables; `None` when unknown.
    pub page_offset: Option<u64>,
}

/// Header flag: [`Header::zero_free`].
const FLAG_ZERO_FREE: u32 = 1;

impl Header {
    /// Encodes the header block, without a MAC (an image in the clear,
    /// or one B has not finished).
    pub fn encode(&self) -> Result<[u8; BLOCK], Error> {
        self.encode_sealed(None)
    }

    /// Encodes the header block; with `keys`, under its MAC.
    pub fn encode_sealed(&self, keys: Option<&crate::image::seal::Keys>) -> Result<[u8; BLOCK], Error> {
        if self.ram.len() > MAX_RAM_RANGES {
            return Err(Error::BadField { what: "header".into(), field: "ram range count" });
        }
        if self.backup.len() > MAX_BACKUP {
            return Err(Error::BadField { what: "header".into(), field: "backup length" });
        }
        let mut b = [0u8; BLOCK];
        header::MAGIC.set(&mut b, *MAGIC);
        header::VERSION.set(&mut b, VERSION.to_le_bytes());
        header::HEADER_SIZE.set(&mut b, (BLOCK as u32).to_le_bytes());
        header::PAGE_SIZE.set(&mut b, (PAGE as u32).to_le_bytes());
        header::COMPRESSION.set(&mut b, self.compression.map_or(0, Compression::code).to_le_bytes());
        header::CREATED.set(&mut b, self.created_unix.to_le_bytes());
        header::REENTRY.set(&mut b, self.reentry.to_le_bytes());
        header::REGION_START.set(&mut b, self.region.start.to_le_bytes());
        header::REGION_END.set(&mut b, self.region.end.to_le_bytes());
        header::BACKUP_ADDR.set(&mut b, self.backup.start.to_le_bytes());
        header::BACKUP_LEN.set(&mut b, self.backup.len().to_le_bytes());
        header::RAM_PAGES.set(&mut b, self.ram_pages.to_le_bytes());
        header::ZERO_PAGES.set(&mut b, self.zero_pages.to_le_bytes());
        header::FREE_PAGES.set(&mut b, self.free_pages.to_le_bytes());
        header::STORED_PAGES.set(&mut b, self.stored_pages.to_le_bytes());
        header::CHUNK_COUNT.set(&mut b, self.chunk_count.to_le_bytes());
        header::DATA_BYTES.set(&mut b, self.data_bytes.to_le_bytes());
        header::RAM_RANGE_COUNT.set(&mut b, (self.ram.len() as u32).to_le_bytes());
        header::FLAGS.set(&mut b, (if self.zero_free { FLAG_ZERO_FREE } else { 0 }).to_le_bytes());
        put_text(&mut b, header::KERNEL_RELEASE, &self.kernel_release);
        put_text(&mut b, header::BUILD_ID, &self.build_id);
        for (i, r) in self.ram.iter().enumerate() {
            let (start, end) = header::ram_range(i);
            start.set(&mut b, r.start.to_le_bytes());
            end.set(&mut b, r.end.to_le_bytes());
        }
        header::MAILBOX.set(&mut b, self.mailbox.to_le_bytes());
        put_text(&mut b, header::MACHINE_ID, &self.machine_id);
        let table = crate::target::in_use::encode_table(&self.in_use).map_err(|_| Error::BadField { what: "header".into(), field: "device table" })?;
        header::IN_USE.set(&mut b, table);
        if self.stamps.len() > crate::target::in_use::MAX_ENTRIES {
            return Err(Error::BadField { what: "header".into(), field: "device stamps" });
        }
        for (i, s) in self.stamps.iter().enumerate() {
            header::stamp_kind(i).set(&mut b, [s.code()]);
            header::stamp_digest(i).set(&mut b, s.digest().to_le_bytes());
        }
        header::CIPHER.set(&mut b, self.cipher.code().to_le_bytes());
        header::IMAGE_ID.set(&mut b, self.image_id.0);
        header::NONCE_SALT.set(&mut b, self.nonce_salt);
        if let Some(n) = self.vmcoreinfo {
            let len = u32::try_from(n.size).map_err(|_| Error::BadField { what: "header".into(), field: "VMCOREINFO note length" })?;
            header::VMCOREINFO_ADDR.set(&mut b, n.addr.to_le_bytes());
            header::VMCOREINFO_LEN.set(&mut b, len.to_le_bytes());
        }
        header::PAGE_OFFSET.set(&mut b, self.page_offset.unwrap_or(0).to_le_bytes());
        if let Some(k) = keys {
            let mac = k.header_mac(&b[..MAC_COVERS]);
            header::MAC.set(&mut b, mac);
        }
        let crc = crc32(&b[..header::CRC.at]);
        header::CRC.set(&mut b, crc.to_le_bytes());
        Ok(b)
    }

    /// Decodes and checks a header block.
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        let what = || "header".to_string();
        let bad = |field| Error::BadField { what: what(), field };
        let short = || Error::Truncated { what: what() };
        if b.len() < BLOCK {
            return Err(short());
        }
        // Every field lies in the BLOCK bytes just checked: never short.
        let u32_at = |f: Field<4>| f.u32(b).ok_or_else(short);
        let u64_at = |f: Field<8>| f.u64(b).ok_or_else(short);
        if b[header::MAGIC.range()] != *MAGIC {
            return Err(Error::BadMagic { what: what() });
        }
        if crc32(&b[..header::CRC.at]) != u32_at(header::CRC)? {
            return Err(Error::BadChecksum { what: what() });
        }
        let version = u32_at(header::VERSION)?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        if u32_at(header::HEADER_SIZE)? != BLOCK as u32 {
            return Err(bad("header size"));
        }
        if u32_at(header::PAGE_SIZE)? != PAGE as u32 {
            return Err(bad("page size"));
        }
        let compression = match u32_at(header::COMPRESSION)? {
            0 => None,
            c => Some(Compression::from_code(c).ok_or(bad("compression"))?),
        };
        let flags = u32_at(header::FLAGS)?;
        if flags & !FLAG_ZERO_FREE != 0 {
            return Err(bad("flags"));
        }
        let n = u32_at(header::RAM_RANGE_COUNT)? as usize;
        if n > MAX_RAM_RANGES {
            return Err(bad("ram range count"));
        }
        let mut ram = Vec::with_capacity(n);
        let mut prev_end = 0;
        for i in 0..n {
            let (start, end) = header::ram_range(i);
            let r = PhysRange::new(u64_at(start)?, u64_at(end)?);
            if r.is_empty() || r.start < prev_end {
                return Err(bad("ram range"));
            }
            prev_end = r.end;
            ram.push(r);
        }
        let h = Header {
            compression,
            created_unix: u64_at(header::CREATED)?,
            reentry: u64_at(header::REENTRY)?,
            region: PhysRange::new(u64_at(header::REGION_START)?, u64_at(header::REGION_END)?),
            backup: PhysRange::at(u64_at(header::BACKUP_ADDR)?, u64_at(header::BACKUP_LEN)?).ok_or(bad("backup length"))?,
            ram_pages: u64_at(header::RAM_PAGES)?,
            zero_pages: u64_at(header::ZERO_PAGES)?,
            free_pages: u64_at(header::FREE_PAGES)?,
            stored_pages: u64_at(header::STORED_PAGES)?,
            chunk_count: u64_at(header::CHUNK_COUNT)?,
            data_bytes: u64_at(header::DATA_BYTES)?,
            kernel_release: text_at(b, header::KERNEL_RELEASE),
            build_id: text_at(b, header::BUILD_ID),
            ram,
            mailbox: u64_at(header::MAILBOX)?,
            machine_id: text_at(b, header::MACHINE_ID),
            in_use: crate::target::in_use::decode_table(&b[header::IN_USE.range()]).map_err(|_| bad("device table"))?,
            zero_free: flags & FLAG_ZERO_FREE != 0,
            stamps: Vec::new(),
            cipher: crate::image::seal::Cipher::from_code(u32_at(header::CIPHER)?).ok_or(bad("cipher"))?,
            image_id: crate::image::seal::ImageId(header::IMAGE_ID.array(b).ok_or_else(|| bad("image id"))?),
            nonce_salt: header::NONCE_SALT.array(b).ok_or_else(|| bad("nonce salt"))?,
            // Checked by the export, their only reader: a resume does not
            // depend on them.
            vmcoreinfo: Some(Note { addr: u64_at(header::VMCOREINFO_ADDR)?, size: u64::from(u32_at(header::VMCOREINFO_LEN)?) }).filter(|n| n.size != 0),
            page_offset: Some(u64_at(header::PAGE_OFFSET)?).filter(|&p| p != 0),
        };
        let mut h = h;
        for i in 0..h.in_use.len() {
            let kind = header::stamp_kind(i).u8(b).ok_or_else(short)?;
            let s = crate::target::freshness::Stamp::from_parts(kind, u64_at(header::stamp_digest(i))?).ok_or(bad("device stamps"))?;
            h.stamps.push(s);
        }
        if h.region.is_empty() {
            return Err(bad("region"));
        }
        if h.backup.len() > MAX_BACKUP {
            return Err(bad("backup length"));
        }
        let counted = h.zero_pages.checked_add(h.free_pages).and_then(|n| n.checked_add(h.stored_pages));
        if counted != Some(h.ram_pages) {
            return Err(bad("page counts"));
        }
        Ok(h)
    }

    /// Whether the image's chunks are sealed.
    pub fn encrypted(&self) -> bool {
        self.cipher != crate::image::seal::Cipher::None
    }

    /// CRC of the encoded header (what the state block commits).
    pub fn crc(block: &[u8; BLOCK]) -> u32 {
        // `block` is BLOCK bytes long: the CRC is always there.
        header::CRC.u32(block).unwrap_or_default()
    }
}

/// The state block: the commit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateBlock {
    /// Where the image is in its life.
    pub state: State,
    /// CRC of the header this record commits.
    pub header_crc: u32,
    /// CRC-32 over the chunks' data checksums, in order.
    pub chain_crc: u32,
    /// Number of chunks.
    pub chunk_count: u64,
    /// Offset just past the last chunk.
    pub data_end: u64,
    /// Why an image is bad, or a note on who consumed it.
    pub note: String,
    /// How many times a boot started the restore kernel for this image
    /// (recorded before each start): bounds the boots a failing restore
    /// can take.
    pub attempts: u32,
    /// How long B took to save the image, in milliseconds (0: unknown, as
    /// in older images): what a resume reports to A.
    pub save_ms: u32,
    /// SHA-256 over the chunks' authentication tags, in order
    /// ([`crate::image::seal::TagChain`]).
    pub tags: [u8; 32],
    /// The image's key block ([`crate::host::wrap`]): its data key, wrapped.
    /// Empty when the image is not encrypted, and once it was consumed or
    /// given up (the key is destroyed with it: a "crypto-erase").
    pub key_block: Vec<u8>,
}

impl StateBlock {
    /// Encodes the state block, without a MAC.
    pub fn encode(&self) -> [u8; BLOCK] {
        self.encode_sealed(None)
    }

    /// Encodes the state block; with `keys`, under its MAC.
    pub fn encode_sealed(&self, keys: Option<&crate::image::seal::Keys>) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        state::MAGIC.set(&mut b, *STATE_MAGIC);
        state::VERSION.set(&mut b, VERSION.to_le_bytes());
        state::STATE.set(&mut b, self.state.code().to_le_bytes());
        state::HEADER_CRC.set(&mut b, self.header_crc.to_le_bytes());
        state::CHAIN_CRC.set(&mut b, self.chain_crc.to_le_bytes());
        state::CHUNK_COUNT.set(&mut b, self.chunk_count.to_le_bytes());
        state::DATA_END.set(&mut b, self.data_end.to_le_bytes());
        put_text(&mut b, state::NOTE, &self.note);
        state::ATTEMPTS.set(&mut b, self.attempts.to_le_bytes());
        state::SAVE_MS.set(&mut b, self.save_ms.to_le_bytes());
        state::TAGS.set(&mut b, self.tags);
        let n = self.key_block.len().min(KEY_BLOCK_LEN);
        b[KEY_BLOCK_OFF..KEY_BLOCK_OFF + n].copy_from_slice(&self.key_block[..n]);
        if let Some(k) = keys {
            let mac = k.state_mac(&b[..MAC_COVERS]);
            state::MAC.set(&mut b, mac);
        }
        let crc = crc32(&b[..state::CRC.at]);
        state::CRC.set(&mut b, crc.to_le_bytes());
        b
    }

    /// Decodes and checks a state block.
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        let what = || "state".to_string();
        let short = || Error::Truncated { what: what() };
        if b.len() < BLOCK {
            return Err(short());
        }
        // Every field lies in the BLOCK bytes just checked: never short.
        let u32_at = |f: Field<4>| f.u32(b).ok_or_else(short);
        let u64_at = |f: Field<8>| f.u64(b).ok_or_else(short);
        if b[state::MAGIC.range()] != *STATE_MAGIC {
            return Err(Error::BadMagic { what: what() });
        }
        if crc32(&b[..state::CRC.at]) != u32_at(state::CRC)? {
            return Err(Error::BadChecksum { what: what() });
        }
        if u32_at(state::VERSION)? != VERSION {
            return Err(Error::UnsupportedVersion { version: u32_at(state::VERSION)? });
        }
        let state = State::from_code(u32_at(state::STATE)?).ok_or(Error::BadField { what: what(), field: "state" })?;
        Ok(StateBlock {
            state,
            header_crc: u32_at(state::HEADER_CRC)?,
            chain_crc: u32_at(state::CHAIN_CRC)?,
            chunk_count: u64_at(state::CHUNK_COUNT)?,
            data_end: u64_at(state::DATA_END)?,
            note: text_at(b, state::NOTE),
            attempts: u32_at(state::ATTEMPTS)?,
            save_ms: u32_at(state::SAVE_MS)?,
            tags: state::TAGS.array(b).ok_or_else(|| Error::BadField { what: what(), field: "tags" })?,
            key_block: {
                let k = &b[state::KEY_BLOCK.range()];
                if k.iter().all(|&c| c == 0) {
                    Vec::new()
                } else {
                    k.to_vec()
                }
            },
        })
    }
}

/// Rewrites the state block of an image in `file` (for the restore side:
/// consumed or bad) and flushes it. An image that can no longer be resumed
/// (consumed, bad) loses its key block with it: an encrypted image's pages
/// then cannot be read by anyone, whatever its state block is edited to
/// later. With `keys` the new block is under its MAC (needed only by the
/// states that allow a resume).
pub fn set_state(file: &std::fs::File, old: &StateBlock, state: State, note: &str, keys: Option<&crate::image::seal::Keys>) -> std::io::Result<()> {
    let key_block = match state {
        State::Consumed | State::Bad | State::Writing => Vec::new(),
        State::Committed | State::Snapshot => old.key_block.clone(),
    };
    write_state(file, &StateBlock { state, note: note.to_string(), key_block, ..old.clone() }, keys)
}

/// Discards the data (the chunks) of the image in `file` whose state
/// block is `state`: A's memory should not linger on disk once A runs
/// again.
pub fn discard_data(file: &std::fs::File, state: &StateBlock) -> Result<crate::target::discard::Outcome, crate::Error> {
    crate::target::discard::discard(file, DATA_OFFSET, state.data_end.saturating_sub(DATA_OFFSET))
}

/// Counts one more start of the restore kernel in the image's state
/// block, durably, before that start; returns the new state block. An
/// encrypted image's count is under its state MAC, so `keys` are needed
/// for it to stay resumable.
pub fn record_attempt(file: &std::fs::File, old: &StateBlock, keys: Option<&crate::image::seal::Keys>) -> std::io::Result<StateBlock> {
    let new = StateBlock { attempts: old.attempts.saturating_add(1), ..old.clone() };
    write_state(file, &new, keys)?;
    Ok(new)
}

fn write_state(file: &std::fs::File, new: &StateBlock, keys: Option<&crate::image::seal::Keys>) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(&new.encode_sealed(keys), STATE_OFFSET)?;
    file.sync_all()
}

/// An encrypted image's keys from its data key `key`, once its header and
/// state blocks (as read from disk, `header` decoded from the first) pass
/// [`authenticate`]: what opens its chunks and signs its state block. The
/// one way C, D and `kjump image verify` unlock an image.
pub fn unlock(key: &crate::image::seal::DataKey, header: &Header, header_block: &[u8], state_block: &[u8]) -> Result<Sealer, Error> {
    let keys = std::sync::Arc::new(crate::image::seal::Keys::derive(key, header.image_id));
    authenticate(&keys, header_block, state_block)?;
    Ok(Sealer { keys, salt: header.nonce_salt })
}

/// Checks an encrypted image's header and state blocks (as read from
/// disk) against their MACs under `keys`, and that the header is the image
/// the keys belong to. Anything B did not write with this key fails here,
/// before a page is read.
pub fn authenticate(keys: &crate::image::seal::Keys, header_block: &[u8], state_block: &[u8]) -> Result<(), Error> {
    let (Some(h), Some(s)) = (header_block.get(..BLOCK), state_block.get(..BLOCK)) else {
        return Err(Error::Truncated { what: "header".into() });
    };
    if h[header::IMAGE_ID.range()] != keys.id().0 || !keys.header_mac_ok(&h[..MAC_COVERS], &h[header::MAC.range()]) {
        return Err(Error::Forged { what: "header" });
    }
    if !keys.state_mac_ok(&s[..MAC_COVERS], &s[state::MAC.range()]) {
        return Err(Error::Forged { what: "state" });
    }
    Ok(())
}

/// The keys that seal (or open) an image's chunks, and the image's nonce
/// salt: shared by the threads that encode or decode chunks.
#[derive(Clone)]
pub struct Sealer {
    /// The image's keys.
    pub keys: std::sync::Arc<crate::image::seal::Keys>,
    /// The header's nonce salt.
    pub salt: [u8; crate::image::seal::ID_LEN],
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer")
    }
}

/// What the checksum chain and the tag digest take from each chunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkSums {
    /// The data checksum ([`data_sum`]).
    pub sum: u32,
    /// The authentication tag (zero in an image in the clear).
    pub tag: [u8; crate::image::seal::TAG_LEN],
}

/// Builds chunks.
#[derive(Debug)]
pub struct ChunkEncoder {
    compression: Compression,
    scratch: Vec<u8>,
    sealer: Option<Sealer>,
}

impl ChunkEncoder {
    /// An encoder for `compression`, sealing each chunk when `sealer` is set.
    pub fn new(compression: Compression, sealer: Option<Sealer>) -> Self {
        ChunkEncoder { compression, scratch: Vec::with_capacity(MAX_CHUNK_PAGES * PAGE + 4096), sealer }
    }

    /// Appends chunk `index` holding `pages` (whole pages, in the order of
    /// `runs`) and the runs of zero pages `zero_runs` (no data) to `out`,
    /// padded to a block; seals its stored bytes when the encoder has keys.
    /// Returns the chunk's checksum and tag. `runs`, `zero_runs`
    /// and `pages` come from kjump's own save loop: their sizes agree and
    /// stay within the limits (checked in debug builds).
    pub fn encode(&mut self, index: u64, runs: &[PfnRun], zero_runs: &[PfnRun], pages: &[u8], out: &mut Vec<u8>) -> ChunkSums {
        let page_count = pages.len() / PAGE;
        debug_assert!(page_count <= MAX_CHUNK_PAGES && runs.len() <= MAX_RUNS && zero_runs.len() <= MAX_RUNS);
        debug_assert!(!runs.is_empty() || !zero_runs.is_empty());
        debug_assert_eq!(runs.iter().map(|r| r.count).sum::<u64>(), page_count as u64);
        self.scratch.clear();
        let compressed = match self.compression {
            _ if pages.is_empty() => false,
            Compression::None => false,
            Compression::Lz4 => {
                self.scratch.resize(lz4_flex::block::get_maximum_output_size(pages.len()), 0);
                match lz4_flex::block::compress_into(pages, &mut self.scratch) {
                    Ok(n) => {
                        self.scratch.truncate(n);
                        true
                    }
                    Err(_) => false,
                }
            }
            Compression::Deflate => {
                self.scratch = miniz_oxide::deflate::compress_to_vec(pages, 1);
                true
            }
        };
        let (kind, payload) = if compressed && self.scratch.len() < pages.len() { (self.compression, &self.scratch[..]) } else { (Compression::None, pages) };
        let start = out.len();
        out.resize(start + CHUNK_HEADER, 0);
        {
            let h = &mut out[start..start + CHUNK_HEADER];
            chunk::MAGIC.set(h, *CHUNK_MAGIC);
            chunk::INDEX.set(h, index.to_le_bytes());
            chunk::STORAGE.set(h, kind.code().to_le_bytes());
            chunk::RUN_COUNT.set(h, (runs.len() as u16).to_le_bytes());
            chunk::ZERO_RUN_COUNT.set(h, (zero_runs.len() as u16).to_le_bytes());
            chunk::PAGE_COUNT.set(h, (page_count as u32).to_le_bytes());
            chunk::STORED_LEN.set(h, (payload.len() as u32).to_le_bytes());
        }
        for r in runs.iter().chain(zero_runs) {
            let mut run = [0u8; chunk::RUN_LEN];
            let (first_at, count_at) = chunk::run(0);
            first_at.set(&mut run, r.first.to_le_bytes());
            count_at.set(&mut run, r.count.to_le_bytes());
            out.extend_from_slice(&run);
        }
        let payload_at = out.len();
        out.extend_from_slice(payload);
        let mut tag = [0u8; crate::image::seal::TAG_LEN];
        if let Some(s) = &self.sealer {
            let (head, data) = out.split_at_mut(payload_at);
            let ad = [&head[start..start + chunk::DATA_SUM.at], &head[start + CHUNK_HEADER..]];
            tag = s.keys.seal_chunk(&s.salt, index, &ad, data);
        }
        let sum = data_sum(&out[start + CHUNK_HEADER..]);
        let h = &mut out[start..start + CHUNK_HEADER];
        chunk::DATA_SUM.set(h, sum.to_le_bytes());
        chunk::TAG.set(h, tag);
        let hcrc = crc32(&h[..chunk::HEADER_CRC.at]);
        chunk::HEADER_CRC.set(h, hcrc.to_le_bytes());
        let padded = (out.len() - start).next_multiple_of(BLOCK);
        out.resize(start + padded, 0);
        ChunkSums { sum, tag }
    }
}

/// What a chunk header says, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Position in the image, from 0.
    pub index: u64,
    /// How its pages are stored.
    pub compression: Compression,
    /// Number of runs of stored pages.
    pub run_count: usize,
    /// Number of runs of zero pages (not stored).
    pub zero_run_count: usize,
    /// Number of stored pages.
    pub page_count: usize,
    /// Bytes of stored pages.
    pub stored_len: usize,
    /// Checksum of runs and stored pages ([`data_sum`]).
    pub data_sum: u32,
    /// Authentication tag of a sealed chunk (zero in the clear).
    pub tag: [u8; crate::image::seal::TAG_LEN],
    /// Bytes the chunk takes on disk, padding included.
    pub disk_len: usize,
}

impl ChunkInfo {
    /// Bytes of the chunk's runs, stored and zero, after its header.
    pub fn runs_len(&self) -> usize {
        (self.run_count + self.zero_run_count) * chunk::RUN_LEN
    }
}

/// Checks a chunk header (the first [`CHUNK_HEADER`] bytes of a chunk).
pub fn parse_chunk_header(b: &[u8], expected_index: u64) -> Result<ChunkInfo, Error> {
    let what = || format!("chunk {expected_index}");
    let bad = |field| Error::BadField { what: what(), field };
    let short = || Error::Truncated { what: what() };
    if b.len() < CHUNK_HEADER {
        return Err(short());
    }
    // Every field lies in the CHUNK_HEADER bytes just checked: never short.
    let u16_at = |f: Field<2>| f.u16(b).ok_or_else(short);
    let u32_at = |f: Field<4>| f.u32(b).ok_or_else(short);
    if b[chunk::MAGIC.range()] != *CHUNK_MAGIC {
        return Err(Error::BadMagic { what: what() });
    }
    if crc32(&b[..chunk::HEADER_CRC.at]) != u32_at(chunk::HEADER_CRC)? {
        return Err(Error::BadChecksum { what: format!("chunk {expected_index} header") });
    }
    if chunk::INDEX.u64(b) != Some(expected_index) {
        return Err(bad("index"));
    }
    let compression = Compression::from_code(u32_at(chunk::STORAGE)?).ok_or(bad("compression"))?;
    let run_count = u16_at(chunk::RUN_COUNT)? as usize;
    let zero_run_count = u16_at(chunk::ZERO_RUN_COUNT)? as usize;
    let page_count = u32_at(chunk::PAGE_COUNT)? as usize;
    let stored_len = u32_at(chunk::STORED_LEN)? as usize;
    if run_count > MAX_RUNS || zero_run_count > MAX_RUNS || run_count + zero_run_count == 0 {
        return Err(bad("run count"));
    }
    if page_count > MAX_CHUNK_PAGES || (page_count == 0) != (run_count == 0) {
        return Err(bad("page count"));
    }
    if stored_len > page_count * PAGE || (stored_len == 0) != (page_count == 0) {
        return Err(bad("stored length"));
    }
    if compression == Compression::None && stored_len != page_count * PAGE {
        return Err(bad("stored length"));
    }
    if page_count == 0 && compression != Compression::None {
        return Err(bad("compression"));
    }
    let disk_len = (CHUNK_HEADER + (run_count + zero_run_count) * chunk::RUN_LEN + stored_len).next_multiple_of(BLOCK);
    let tag = chunk::TAG.array(b).ok_or_else(short)?;
    Ok(ChunkInfo { index: expected_index, compression, run_count, zero_run_count, page_count, stored_len, data_sum: u32_at(chunk::DATA_SUM)?, tag, disk_len })
}

/// Buffers a chunk is decoded into: its runs, its runs of zero pages, its
/// pages, and room for a sealed chunk's compressed bytes once opened.
#[derive(Clone, Debug, Default)]
pub struct ChunkBufs {
    /// Runs of stored pages.
    pub runs: Vec<PfnRun>,
    /// Runs of zero pages.
    pub zero_runs: Vec<PfnRun>,
    /// The pages (when not left in the chunk).
    pub pages: Vec<u8>,
    /// A sealed chunk's stored bytes, decrypted.
    pub opened: Vec<u8>,
}

/// Checks a whole chunk (`b` holds at least `info.disk_len` bytes) and
/// decodes it into `bufs`, opening it with `sealer` when the image is
/// encrypted.
pub fn decode_chunk(b: &[u8], info: &ChunkInfo, bufs: &mut ChunkBufs, sealer: Option<&Sealer>) -> Result<(), Error> {
    if let ChunkPages::InChunk(stored) = decode_chunk_in_place(b, info, bufs, sealer)? {
        let pages = &mut bufs.pages;
        pages.clear();
        pages.extend_from_slice(&b[stored]);
    }
    Ok(())
}

/// What can be checked of a sealed chunk without its key: its data
/// checksum and runs (`bufs.pages` is left empty). Its tag, and so whether
/// anyone changed it, is not.
pub fn check_sealed_chunk(b: &[u8], info: &ChunkInfo, bufs: &mut ChunkBufs) -> Result<(), Error> {
    let runs_len = info.runs_len();
    let body = b.get(CHUNK_HEADER..CHUNK_HEADER + runs_len + info.stored_len).ok_or(Error::Truncated { what: format!("chunk {}", info.index) })?;
    if data_sum(body) != info.data_sum {
        return Err(Error::BadChecksum { what: format!("chunk {}", info.index) });
    }
    bufs.pages.clear();
    parse_runs(body, info, &mut bufs.runs, &mut bufs.zero_runs)
}

/// Where [`decode_chunk_in_place`] left a chunk's stored pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkPages {
    /// In the chunk itself, at this range of its bytes (stored without
    /// compression: nothing to copy).
    InChunk(std::ops::Range<usize>),
    /// In the `pages` buffer, decompressed.
    InBuffer,
}

/// [`decode_chunk`] without copying pages stored as they are in an image
/// in the clear: those stay in `b`, and `bufs.pages` is left alone.
pub fn decode_chunk_in_place(b: &[u8], info: &ChunkInfo, bufs: &mut ChunkBufs, sealer: Option<&Sealer>) -> Result<ChunkPages, Error> {
    let what = || format!("chunk {}", info.index);
    let runs_len = info.runs_len();
    let body_end = CHUNK_HEADER + runs_len + info.stored_len;
    let body = b.get(CHUNK_HEADER..body_end).ok_or(Error::Truncated { what: what() })?;
    if data_sum(body) != info.data_sum {
        return Err(Error::BadChecksum { what: what() });
    }
    let ChunkBufs { runs, zero_runs, pages, opened } = bufs;
    parse_runs(body, info, runs, zero_runs)?;
    let mut stored = &body[runs_len..];
    let raw_len = info.page_count * PAGE;
    if let Some(s) = sealer {
        // Opened into a buffer of its own: the chunk as read may be shared
        // (a batch of the image) and is left as it is.
        let out = if info.compression == Compression::None { &mut *pages } else { &mut *opened };
        out.clear();
        out.extend_from_slice(stored);
        let ad = [&b[..chunk::DATA_SUM.at], &body[..runs_len]];
        s.keys.open_chunk(&s.salt, info.index, &ad, out, &info.tag).map_err(|_| Error::BadTag { chunk: info.index })?;
        if info.compression == Compression::None {
            return Ok(ChunkPages::InBuffer);
        }
        stored = &opened[..];
    }
    match info.compression {
        Compression::None => return Ok(ChunkPages::InChunk(CHUNK_HEADER + runs_len..body_end)),
        Compression::Lz4 => {
            // Sized without clearing first: zero-filling a chunk's worth
            // each time is wasted work, since decompressing writes every
            // byte (the length is checked below).
            pages.resize(raw_len, 0);
            match lz4_flex::block::decompress_into(stored, pages) {
                Ok(n) if n == raw_len => {}
                _ => return Err(Error::Decompress { chunk: info.index }),
            }
        }
        Compression::Deflate => {
            let out = miniz_oxide::inflate::decompress_to_vec_with_limit(stored, raw_len).map_err(|_| Error::Decompress { chunk: info.index })?;
            if out.len() != raw_len {
                return Err(Error::Decompress { chunk: info.index });
            }
            *pages = out;
        }
    }
    Ok(ChunkPages::InBuffer)
}

/// Reads a chunk's runs from `body` (the bytes after its header): the
/// runs of stored pages into `runs`, adding up to the chunk's page count,
/// then the runs of zero pages into `zero_runs`. Each run is non-empty,
/// and the two lists together are ascending and disjoint.
fn parse_runs(body: &[u8], info: &ChunkInfo, runs: &mut Vec<PfnRun>, zero_runs: &mut Vec<PfnRun>) -> Result<(), Error> {
    let bad = |field| Error::BadField { what: format!("chunk {}", info.index), field };
    let short = || Error::Truncated { what: format!("chunk {}", info.index) };
    if body.len() < info.runs_len() {
        return Err(short());
    }
    // Every run lies in the bytes just checked: never short.
    let u64_at = |f: Field<8>| f.u64(body).ok_or_else(short);
    let read = |first: usize, count: usize, out: &mut Vec<PfnRun>| -> Result<u64, Error> {
        out.clear();
        let mut total = 0u64;
        let mut prev_end = 0u64;
        for i in first..first + count {
            let (first_at, count_at) = chunk::run(i);
            let run = PfnRun::new(u64_at(first_at)?, u64_at(count_at)?);
            let end = run.end().ok_or(bad("run"))?;
            if run.is_empty() || (i > first && run.first < prev_end) || end >= PFN_LIMIT {
                return Err(bad("run"));
            }
            prev_end = end;
            total = total.saturating_add(run.count);
            out.push(run);
        }
        Ok(total)
    };
    if read(0, info.run_count, runs)? != info.page_count as u64 {
        return Err(bad("runs (page total)"));
    }
    read(info.run_count, info.zero_run_count, zero_runs)?;
    let mut prev_end = 0u64;
    for (r, _) in merged(runs, zero_runs) {
        if r.first < prev_end {
            return Err(bad("runs (zero runs overlap stored runs)"));
        }
        prev_end = r.first + r.count;
    }
    Ok(())
}

/// The runs of stored pages `runs` and of zero pages `zero_runs` (each
/// ascending) in address order, each with whether it is a zero run.
pub fn merged<'a>(runs: &'a [PfnRun], zero_runs: &'a [PfnRun]) -> impl Iterator<Item = (PfnRun, bool)> + 'a {
    let (mut i, mut j) = (0, 0);
    core::iter::from_fn(move || {
        let take_zero = match (runs.get(i), zero_runs.get(j)) {
            (Some(x), Some(y)) => y.first < x.first,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => return None,
        };
        if take_zero {
            j += 1;
            Some((zero_runs[j - 1], true))
        } else {
            i += 1;
            Some((runs[i - 1], false))
        }
    })
}

/// Where an image may put pages: inside A's RAM ranges, outside the kjump
/// region, each page at most once. Chunks are checked in order; their
/// runs must ascend across the whole image.
#[derive(Clone, Debug)]
pub struct RunCheck<'a> {
    ram: &'a [PhysRange],
    region: PhysRange,
    next_addr: u64,
}

/// Why a chunk's pages may not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRun {
    /// The chunk.
    pub chunk: u64,
    /// Physical address of the run.
    pub addr: u64,
    /// What is wrong, as the end of a sentence.
    pub why: &'static str,
}

impl fmt::Display for BadRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chunk {}: pages at {:#x} {}", self.chunk, self.addr, self.why)
    }
}

impl std::error::Error for BadRun {}

impl<'a> RunCheck<'a> {
    /// Checks against A's RAM ranges and the region.
    pub fn new(ram: &'a [PhysRange], region: PhysRange) -> Self {
        RunCheck { ram, region, next_addr: 0 }
    }

    /// Checks one chunk's runs (stored and zero).
    pub fn check(&mut self, chunk: u64, runs: &[PfnRun], zero_runs: &[PfnRun]) -> Result<(), BadRun> {
        for (run, _) in merged(runs, zero_runs) {
            let bad = |why| BadRun { chunk, addr: run.first.saturating_mul(PAGE as u64), why };
            let pages = run.phys().ok_or(bad("lie beyond any address"))?;
            if pages.start < self.next_addr {
                return Err(bad("overlap pages stored before them (chunks out of order)"));
            }
            if pages.overlaps(&self.region) {
                return Err(bad("lie inside the kjump region, where the restore kernel runs"));
            }
            if !self.ram.iter().any(|r| r.contains_range(&pages)) {
                return Err(bad("lie outside A's RAM"));
            }
            self.next_addr = pages.end;
        }
        Ok(())
    }
}

/// Reads only the chunk headers and runs of an image, seeking over the
/// pages, and hands each chunk's runs to `visit`: a cheap pass that finds
/// a truncated image, a wrong chunk count or end, and (through `visit`)
/// pages that must not be written, before anything is written.
pub fn scan_runs<R: std::io::Read + std::io::Seek>(
    input: &mut R,
    state: &StateBlock,
    mut visit: impl FnMut(&ChunkInfo, &[PfnRun], &[PfnRun]) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let mut offset = DATA_OFFSET;
    let mut tags = crate::image::seal::TagChain::default();
    let mut buf = vec![0u8; CHUNK_HEADER + 2 * MAX_RUNS * chunk::RUN_LEN];
    let mut runs = Vec::with_capacity(MAX_RUNS);
    let mut zero_runs = Vec::with_capacity(MAX_RUNS);
    // A block device refuses to seek past its end (EINVAL): the image is
    // cut short there, as a read at the end of a file would show.
    let seek = |input: &mut R, at: u64, what: &str| {
        input.seek(std::io::SeekFrom::Start(at)).map(|_| ()).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => ReadError::Format(Error::Truncated { what: what.to_string() }),
            _ => ReadError::Io(e),
        })
    };
    for index in 0..state.chunk_count {
        if offset >= state.data_end {
            return Err(Error::BadField { what: "state".into(), field: "data end" }.into());
        }
        let what = format!("chunk {index}");
        seek(input, offset, &what)?;
        read_full(input, &mut buf[..BLOCK], &what)?;
        let info = parse_chunk_header(&buf, index)?;
        tags.add(&info.tag);
        let runs_end = CHUNK_HEADER + info.runs_len();
        if runs_end > BLOCK {
            read_full(input, &mut buf[BLOCK..runs_end], &what)?;
        }
        parse_runs(&buf[CHUNK_HEADER..runs_end], &info, &mut runs, &mut zero_runs)?;
        visit(&info, &runs, &zero_runs)?;
        offset = offset.saturating_add(info.disk_len as u64);
    }
    if offset != state.data_end {
        return Err(Error::BadField { what: "state".into(), field: "data end" }.into());
    }
    // Every chunk is the one B wrote in that place (in an encrypted image,
    // whose state block's MAC covers the digest).
    if tags.value() != state.tags {
        return Err(Error::Forged { what: "the chunks' tags" }.into());
    }
    // The last chunk's last byte must be there too.
    if offset > DATA_OFFSET {
        seek(input, offset - 1, "the last chunk")?;
        read_full(input, &mut buf[..1], "the last chunk")?;
    }
    Ok(())
}

/// The running checksum chain: a CRC-32 over the chunks' data checksums,
/// and the digest of their tags ([`crate::image::seal::TagChain`]).
#[derive(Clone, Debug, Default)]
pub struct Chain(crc32fast::Hasher, crate::image::seal::TagChain);

impl Chain {
    /// Adds a chunk's checksum and tag.
    pub fn add(&mut self, sums: &ChunkSums) {
        self.0.update(&sums.sum.to_le_bytes());
        self.1.add(&sums.tag);
    }

    /// The chain value.
    pub fn value(&self) -> u32 {
        self.0.clone().finalize()
    }

    /// The digest of the tags.
    pub fn tags(&self) -> [u8; 32] {
        self.1.value()
    }
}

/// Reads an image sequentially from any `Read` (a file or block device),
/// checking everything it returns.
pub struct Reader<R> {
    input: R,
    /// The header.
    pub header: Header,
    /// The state block.
    pub state: StateBlock,
    /// The header and state blocks as read, for [`Reader::unlock`].
    blocks: Vec<u8>,
    walk: ChunkWalk,
    buf: Vec<u8>,
    bufs: ChunkBufs,
    sealer: Option<Sealer>,
}

/// The chunks of an image in order, for any reader: where the next one
/// starts, its header checked against its place, and after the last one
/// the checksum chain and the end offset checked against the state block.
/// [`Reader`] walks this way; so does a restore that reads the image in
/// its own batches.
#[derive(Clone, Debug)]
pub struct ChunkWalk {
    chunk_count: u64,
    chain_crc: u32,
    tags: [u8; 32],
    data_end: u64,
    next_index: u64,
    offset: u64,
    chain: Chain,
}

impl ChunkWalk {
    /// A walk over the chunks `state` counts, from the first.
    pub fn new(state: &StateBlock) -> Self {
        ChunkWalk {
            chunk_count: state.chunk_count,
            chain_crc: state.chain_crc,
            tags: state.tags,
            data_end: state.data_end,
            next_index: 0,
            offset: DATA_OFFSET,
            chain: Chain::default(),
        }
    }

    /// The index of the next chunk.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Where the next chunk starts on disk, or `None` once every chunk has
    /// been taken and the chain and the end offset match the state block.
    pub fn next_offset(&self) -> Result<Option<u64>, Error> {
        if self.next_index < self.chunk_count {
            return Ok(Some(self.offset));
        }
        if self.chain.value() != self.chain_crc {
            return Err(Error::ChainMismatch);
        }
        if self.chain.tags() != self.tags {
            return Err(Error::Forged { what: "the chunks' tags" });
        }
        if self.offset != self.data_end {
            return Err(Error::BadField { what: "state".into(), field: "data end" });
        }
        Ok(None)
    }

    /// Checks the header of the chunk at [`ChunkWalk::next_offset`] (at
    /// least its first [`CHUNK_HEADER`] bytes) and moves past the chunk.
    /// The chunk's data is checked when it is decoded.
    pub fn take(&mut self, header: &[u8]) -> Result<ChunkInfo, Error> {
        let info = parse_chunk_header(header, self.next_index)?;
        self.chain.add(&ChunkSums { sum: info.data_sum, tag: info.tag });
        self.next_index += 1;
        self.offset += info.disk_len as u64;
        Ok(info)
    }
}

/// I/O or format error while reading an image.
#[derive(Debug)]
pub enum ReadError {
    /// Reading failed.
    Io(std::io::Error),
    /// The image is malformed.
    Format(Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "read error: {e}"),
            ReadError::Format(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            ReadError::Format(e) => Some(e),
        }
    }
}

impl From<Error> for ReadError {
    fn from(e: Error) -> Self {
        ReadError::Format(e)
    }
}

fn read_full<R: std::io::Read>(r: &mut R, buf: &mut [u8], what: &str) -> Result<(), ReadError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ReadError::Format(Error::Truncated { what: what.to_string() }),
        _ => ReadError::Io(e),
    })
}

impl<R: std::io::Read> Reader<R> {
    /// Reads and checks the header and state blocks. Any state is
    /// accepted here; callers decide what they need.
    pub fn open(mut input: R) -> Result<Self, ReadError> {
        let mut blocks = vec![0u8; 2 * BLOCK];
        read_full(&mut input, &mut blocks, "header")?;
        let header = Header::decode(&blocks[..BLOCK])?;
        let state = StateBlock::decode(&blocks[BLOCK..])?;
        let walk = ChunkWalk::new(&state);
        Ok(Reader { input, header, state, blocks, walk, buf: Vec::new(), bufs: ChunkBufs::default(), sealer: None })
    }

    /// Whether the state block commits this header.
    pub fn header_committed(&self) -> bool {
        Header::crc(self.blocks[..BLOCK].try_into().unwrap_or(&[0; BLOCK])) == self.state.header_crc
    }

    /// The header and state blocks as read.
    pub fn blocks(&self) -> (&[u8], &[u8]) {
        self.blocks.split_at(BLOCK)
    }

    /// Whether the image is encrypted.
    pub fn encrypted(&self) -> bool {
        self.header.encrypted()
    }

    /// Whether [`Reader::next_chunk`] returns pages: the image is in the
    /// clear, or unlocked.
    pub fn pages_readable(&self) -> bool {
        !self.encrypted() || self.sealer.is_some()
    }

    /// Checks an encrypted image's header and state against `key` and,
    /// when they pass, opens its chunks with it from now on ([`unlock`]).
    pub fn unlock(&mut self, key: &crate::image::seal::DataKey) -> Result<(), Error> {
        let (h, st) = self.blocks();
        self.sealer = Some(unlock(key, &self.header, h, st)?);
        Ok(())
    }

    /// The next chunk, decoded (its runs, zero runs and pages in the
    /// returned buffers). `None` after the last one (as counted by the
    /// state block), after checking the checksum chain. An encrypted
    /// image's chunks are opened only after [`Reader::unlock`]; before
    /// that only their checksums and runs are checked
    /// ([`check_sealed_chunk`]) and no pages are returned.
    pub fn next_chunk(&mut self) -> Result<Option<(ChunkInfo, &ChunkBufs)>, ReadError> {
        let mut raw = std::mem::take(&mut self.buf);
        let next = self.next_raw(&mut raw);
        let encrypted = self.encrypted();
        let result = match next {
            Ok(Some(info)) => match (encrypted, &self.sealer) {
                (true, None) => check_sealed_chunk(&raw, &info, &mut self.bufs).map(|()| Some(info)).map_err(ReadError::from),
                (_, sealer) => decode_chunk(&raw, &info, &mut self.bufs, sealer.as_ref()).map(|()| Some(info)).map_err(ReadError::from),
            },
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        self.buf = raw;
        Ok(result?.map(|info| (info, &self.bufs)))
    }

    /// The next chunk's bytes, header checked but data not yet (for
    /// [`decode_chunk`], which may run on another thread): `raw` holds
    /// `info.disk_len` bytes. `None` after the last one, after checking
    /// the checksum chain (of the CRCs the headers declare; each chunk's
    /// decoding checks its own) and the end offset.
    pub fn next_raw(&mut self, raw: &mut Vec<u8>) -> Result<Option<ChunkInfo>, ReadError> {
        if self.walk.next_offset()?.is_none() {
            return Ok(None);
        }
        let what = format!("chunk {}", self.walk.next_index());
        raw.resize(BLOCK, 0);
        read_full(&mut self.input, &mut raw[..BLOCK], &what)?;
        let info = self.walk.take(raw)?;
        raw.resize(info.disk_len, 0);
        read_full(&mut self.input, &mut raw[BLOCK..], &what)?;
        Ok(Some(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crates compute the checksums the format defines (so images made
    /// with kjump's own implementations before still read): CRC-32 IEEE's
    /// check value, and XXH64 (seed 0) against the reference xxHash over
    /// bytes `(i * 7 + 3) & 255`, every path through its tail.
    #[test]
    fn checksums_are_the_formats() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
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
            assert_eq!(data_sum(&data[..n]), want as u32, "{n} bytes");
        }
        assert_eq!(xxhash_rust::xxh64::xxh64(b"abc", 0), 0x44bc_2cf5_ad77_0999);
        // The running CRC of the chain is the CRC of the whole.
        let mut h = crc32fast::Hasher::new();
        h.update(&data[..1000]);
        h.update(&data[1000..5000]);
        assert_eq!(h.finalize(), crc32(&data[..5000]));
    }

    /// `count` pages from `first`.
    fn run(first: u64, count: u64) -> PfnRun {
        PfnRun::new(first, count)
    }

    fn header() -> Header {
        Header {
            compression: Some(Compression::Lz4),
            created_unix: 1_800_000_000,
            reentry: 0x7840f2,
            region: PhysRange::new(0x1c000000, 0x24000000),
            backup: PhysRange::new(0x1ce20000, 0x1ce20000 + 0xa0000),
            ram_pages: 10,
            zero_pages: 3,
            free_pages: 2,
            stored_pages: 5,
            chunk_count: 2,
            data_bytes: 8192,
            kernel_release: "6.12.117".into(),
            build_id: "abc123".into(),
            ram: vec![PhysRange::new(0, 0xa0000), PhysRange::new(0x100000, 0x1c000000), PhysRange::new(0x24000000, 0x3ffe0000)],
            mailbox: 0x1234000,
            machine_id: "6b29fc40-ca47-1067-b31d-00dd010662da".into(),
            in_use: vec![crate::target::in_use::InUse {
                kind: crate::target::in_use::Kind::MountedReadWrite,
                major: 254,
                minor: 0,
                uuid: Some([9; 16]),
                name: "vda".into(),
            }],
            zero_free: true,
            stamps: vec![crate::target::freshness::Stamp::Ext(0x1234_5678_9abc)],
            cipher: crate::image::seal::Cipher::None,
            image_id: crate::image::seal::ImageId::default(),
            nonce_salt: [0; 16],
            vmcoreinfo: Some(Note { addr: 0x2b4_c000, size: 0xa8c }),
            page_offset: Some(0xffff_8880_0000_0000),
        }
    }

    /// The export's fields round-trip, and read as absent in an image made
    /// before kjump wrote them (zeros there).
    #[test]
    fn export_fields() {
        let b = header().encode().unwrap();
        let h = Header::decode(&b).unwrap();
        assert_eq!((h.vmcoreinfo, h.page_offset), (Some(Note { addr: 0x2b4_c000, size: 0xa8c }), Some(0xffff_8880_0000_0000)));
        assert_eq!(header::VMCOREINFO_ADDR.u64(&b), Some(0x2b4_c000));
        assert_eq!(header::VMCOREINFO_LEN.u32(&b), Some(0xa8c));
        assert_eq!(header::PAGE_OFFSET.u64(&b), Some(0xffff_8880_0000_0000));
        let old = Header { vmcoreinfo: None, page_offset: None, ..header() }.encode().unwrap();
        assert!(old[header::VMCOREINFO_ADDR.at..header::MAC.at].iter().all(|&x| x == 0));
        let h = Header::decode(&old).unwrap();
        assert_eq!((h.vmcoreinfo, h.page_offset), (None, None));
        // The length is 4 bytes on disk: a longer note is not encoded.
        let long = Header { vmcoreinfo: Some(Note { addr: 0x1000, size: 1 << 32 }), ..header() };
        assert!(long.encode().unwrap_err().to_string().contains("VMCOREINFO note length"));
    }

    #[test]
    fn printable_text_has_no_escape_codes() {
        assert_eq!(printable("6.12.1\x1b[2J\n\u{9b}x"), "6.12.1?[2J??x");
        assert_eq!(printable("plain, ünicode"), "plain, ünicode");
    }

    #[test]
    fn zero_pages() {
        assert!(is_zero(&[0u8; 4096]));
        let mut p = [0u8; 4096];
        p[4095] = 1;
        assert!(!is_zero(&p));
        p[4095] = 0;
        p[0] = 1;
        assert!(!is_zero(&p));
    }

    #[test]
    fn zero_runs_round_trip_and_are_checked() {
        let mut enc = ChunkEncoder::new(Compression::Lz4, None);
        let mut c = Vec::new();
        enc.encode(0, &[run(0x10, 2)], &[run(0x8, 2), run(0x12, 3)], &[9u8; 2 * PAGE], &mut c);
        let info = parse_chunk_header(&c, 0).unwrap();
        assert_eq!((info.run_count, info.zero_run_count, info.page_count), (1, 2, 2));
        let mut bufs = ChunkBufs::default();
        decode_chunk(&c, &info, &mut bufs, None).unwrap();
        assert_eq!((bufs.runs.as_slice(), bufs.zero_runs.as_slice(), bufs.pages.len()), (&[run(0x10, 2)][..], &[run(0x8, 2), run(0x12, 3)][..], 2 * PAGE));
        let order: Vec<_> = merged(&bufs.runs, &bufs.zero_runs).collect();
        assert_eq!(order, vec![(run(0x8, 2), true), (run(0x10, 2), false), (run(0x12, 3), true)]);

        // A chunk of zero runs only: no pages, nothing stored.
        let mut c = Vec::new();
        enc.encode(1, &[], &[run(0x40, 100)], &[], &mut c);
        let info = parse_chunk_header(&c, 1).unwrap();
        assert_eq!((info.run_count, info.zero_run_count, info.page_count, info.stored_len, info.compression), (0, 1, 0, 0, Compression::None));
        decode_chunk(&c, &info, &mut bufs, None).unwrap();
        assert!(bufs.runs.is_empty() && bufs.pages.is_empty());
        assert_eq!(bufs.zero_runs, vec![run(0x40, 100)]);

        // A zero run overlapping a stored run is refused.
        let mut c = Vec::new();
        enc.encode(0, &[run(0x10, 2)], &[run(0x11, 1)], &[9u8; 2 * PAGE], &mut c);
        let info = parse_chunk_header(&c, 0).unwrap();
        assert!(decode_chunk(&c, &info, &mut bufs, None).is_err());

        // The layout check covers zero runs like stored ones.
        let h = header();
        let mut check = RunCheck::new(&h.ram, h.region);
        assert_eq!(check.check(0, &[run(0x100, 1)], &[run(0x101, 4)]), Ok(()));
        assert!(check.check(1, &[], &[run(0x103, 1)]).is_err(), "a zero run over pages listed before");
        let mut check = RunCheck::new(&h.ram, h.region);
        assert!(check.check(0, &[], &[run(0xa0, 1)]).unwrap_err().why.contains("outside A's RAM"));
    }

    #[test]
    fn header_flags() {
        let b = header().encode().unwrap();
        assert!(Header::decode(&b).unwrap().zero_free);
        let h = Header { zero_free: false, ..header() };
        assert!(!Header::decode(&h.encode().unwrap()).unwrap().zero_free);
        let mut b = header().encode().unwrap();
        b[124] |= 2;
        let crc = crc32(&b[..BLOCK - 4]);
        b[BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
        assert!(Header::decode(&b).is_err(), "an unknown flag");
    }

    #[test]
    fn run_check_refuses_pages_outside_ram_in_region_or_twice() {
        let h = header();
        let region = h.region;
        let mut c = RunCheck::new(&h.ram, region);
        assert_eq!(c.check(0, &[run(0x100, 2), run(0x200, 1)], &[]), Ok(()));
        let e = c.check(1, &[run(0x101, 1)], &[]).unwrap_err();
        assert!(e.to_string().contains("chunk 1: pages at 0x101000 overlap"), "{e}");
        let mut c = RunCheck::new(&h.ram, region);
        let e = c.check(0, &[run(region.start / PAGE as u64 + 5, 1)], &[]).unwrap_err();
        assert!(e.why.contains("kjump region"), "{e}");
        let mut c = RunCheck::new(&h.ram, region);
        assert!(c.check(0, &[run(0xa0, 1)], &[]).unwrap_err().why.contains("outside A's RAM"));
        let mut c = RunCheck::new(&h.ram, region);
        assert!(c.check(0, &[run(0x9f, 2)], &[]).unwrap_err().why.contains("outside A's RAM"), "a run across a hole");
        let mut c = RunCheck::new(&h.ram, region);
        assert!(c.check(0, &[run(u64::MAX / 2, 1)], &[]).is_err());
        assert!(c.check(0, &[run(1, u64::MAX)], &[]).is_err());
    }

    #[test]
    fn scan_runs_finds_truncation_and_counts_before_any_write() {
        let (img, _) = image(Compression::Lz4);
        let state = StateBlock::decode(&img[BLOCK..2 * BLOCK]).unwrap();
        let mut seen = Vec::new();
        scan_runs(&mut std::io::Cursor::new(&img), &state, |info, runs, _| {
            seen.push((info.index, runs.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0, vec![run(0x100, 2), run(0x200, 1)]), (1, vec![run(0x300, 2)])]);
        for cut in [img.len() - 1, img.len() - BLOCK, 2 * BLOCK + 10, 2 * BLOCK] {
            let r = scan_runs(&mut std::io::Cursor::new(&img[..cut]), &state, |_, _, _| Ok(()));
            assert!(matches!(r, Err(ReadError::Format(Error::Truncated { .. }))), "cut at {cut}: {r:?}");
        }
        let mut more = state.clone();
        more.chunk_count = 3;
        assert!(scan_runs(&mut std::io::Cursor::new(&img), &more, |_, _, _| Ok(())).is_err());
        let mut fewer = state.clone();
        fewer.chunk_count = 1;
        assert!(scan_runs(&mut std::io::Cursor::new(&img), &fewer, |_, _, _| Ok(())).is_err());
        // A block device cut short refuses to seek past its end.
        struct Device<'a>(std::io::Cursor<&'a [u8]>);
        impl std::io::Read for Device<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.0.read(b)
            }
        }
        impl std::io::Seek for Device<'_> {
            fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
                match to {
                    std::io::SeekFrom::Start(at) if at > self.0.get_ref().len() as u64 => Err(std::io::ErrorKind::InvalidInput.into()),
                    _ => self.0.seek(to),
                }
            }
        }
        let first = parse_chunk_header(&img[2 * BLOCK..], 0).unwrap();
        let cut = &img[..2 * BLOCK + first.disk_len - 1];
        let r = scan_runs(&mut Device(std::io::Cursor::new(cut)), &state, |_, _, _| Ok(()));
        assert!(matches!(r, Err(ReadError::Format(Error::Truncated { .. }))), "{r:?}");
        let mut huge = state.clone();
        huge.chunk_count = u64::MAX;
        huge.data_end = u64::MAX;
        assert!(scan_runs(&mut std::io::Cursor::new(&img), &huge, |_, _, _| Ok(())).is_err());
    }

    fn image(compression: Compression) -> (Vec<u8>, Vec<u8>) {
        sealed_image(compression, None)
    }

    fn sealer(seed: u8) -> Sealer {
        let key = crate::image::seal::DataKey::from_bytes([seed; 32]);
        Sealer { keys: std::sync::Arc::new(crate::image::seal::Keys::derive(&key, crate::image::seal::ImageId([seed; 16]))), salt: [seed; 16] }
    }

    /// A two-chunk image, its chunks sealed and its blocks under their
    /// MACs when `sealer` is given.
    fn sealed_image(compression: Compression, sealer: Option<&Sealer>) -> (Vec<u8>, Vec<u8>) {
        let mut enc = ChunkEncoder::new(compression, sealer.cloned());
        let mut chunks = Vec::new();
        let mut chain = Chain::default();
        let text: Vec<u8> = b"kjump marker text ".iter().cycle().take(3 * PAGE).copied().collect();
        let mut noise = vec![0u8; 2 * PAGE];
        let mut x: u32 = 7;
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        chain.add(&enc.encode(0, &[run(0x100, 2), run(0x200, 1)], &[], &text, &mut chunks));
        chain.add(&enc.encode(1, &[run(0x300, 2)], &[], &noise, &mut chunks));
        let mut header = header();
        if let Some(s) = sealer {
            (header.cipher, header.image_id, header.nonce_salt) = (crate::image::seal::Cipher::XChaCha20Poly1305, s.keys.id(), s.salt);
        }
        let keys = sealer.map(|s| &*s.keys);
        let h = header.encode_sealed(keys).unwrap();
        let state = StateBlock {
            state: State::Committed,
            header_crc: Header::crc(&h),
            chain_crc: chain.value(),
            chunk_count: 2,
            data_end: DATA_OFFSET + chunks.len() as u64,
            note: String::new(),
            attempts: 0,
            save_ms: 0,
            tags: chain.tags(),
            key_block: if sealer.is_some() { vec![0x6b; 100] } else { Vec::new() },
        };
        let mut img = Vec::new();
        img.extend_from_slice(&h);
        img.extend_from_slice(&state.encode_sealed(keys));
        img.extend_from_slice(&chunks);
        let mut all = text;
        all.extend_from_slice(&noise);
        (img, all)
    }

    fn read_all(img: &[u8]) -> Result<(Vec<PfnRun>, Vec<u8>), ReadError> {
        read_all_with(img, None)
    }

    fn read_all_with(img: &[u8], key: Option<&crate::image::seal::DataKey>) -> Result<(Vec<PfnRun>, Vec<u8>), ReadError> {
        let mut r = Reader::open(img)?;
        if let Some(k) = key {
            r.unlock(k)?;
        }
        let (mut all_runs, mut all_pages) = (Vec::new(), Vec::new());
        while let Some((_, bufs)) = r.next_chunk()? {
            all_runs.extend_from_slice(&bufs.runs);
            all_pages.extend_from_slice(&bufs.pages);
        }
        Ok((all_runs, all_pages))
    }

    #[test]
    fn a_sealed_image_reads_back_with_its_key_only() {
        for c in [Compression::None, Compression::Lz4, Compression::Deflate] {
            let (img, pages) = sealed_image(c, Some(&sealer(1)));
            assert!(!img.windows(17).any(|w| w == b"kjump marker text"), "pages in the clear with {c:?}");
            let (runs, got) = read_all_with(&img, Some(&crate::image::seal::DataKey::from_bytes([1; 32]))).unwrap();
            assert_eq!(runs, [run(0x100, 2), run(0x200, 1), run(0x300, 2)]);
            assert_eq!(got, pages, "{c:?}");
            // Another key: refused at the header, before any chunk.
            let e = read_all_with(&img, Some(&crate::image::seal::DataKey::from_bytes([2; 32]))).unwrap_err();
            assert!(matches!(e, ReadError::Format(Error::Forged { what: "header" })), "{e:?}");
            // No key: checksums and runs only, no pages.
            let (runs, got) = read_all(&img).unwrap();
            assert_eq!((runs.len(), got.len()), (3, 0));
            assert_eq!(StateBlock::decode(&img[BLOCK..]).unwrap().key_block[..101], [[0x6b; 100].as_slice(), &[0]].concat());
        }
    }

    #[test]
    fn a_forged_sealed_image_is_refused_however_its_checksums_are_made_to_fit() {
        let key = crate::image::seal::DataKey::from_bytes([1; 32]);
        let (img, _) = sealed_image(Compression::Lz4, Some(&sealer(1)));
        // The re-entry address changed and the header CRC fixed.
        let mut forged = img.clone();
        forged[32] ^= 1;
        let crc = crc32(&forged[..BLOCK - 4]);
        put32(&mut forged, BLOCK - 4, crc);
        let mut r = Reader::open(&forged[..]).unwrap();
        assert_eq!(r.unlock(&key).map(|_| ()), Err(Error::Forged { what: "header" }));
        // The state edited (attempts reset), CRC fixed.
        let mut forged = img.clone();
        forged[BLOCK + 296] = 9;
        let crc = crc32(&forged[BLOCK..2 * BLOCK - 4]);
        put32(&mut forged[BLOCK..2 * BLOCK], BLOCK - 4, crc);
        assert_eq!(Reader::open(&forged[..]).unwrap().unlock(&key).map(|_| ()), Err(Error::Forged { what: "state" }));
        // A byte of sealed pages changed, the chunk's checksum and the
        // chain fixed: the header and state still pass, the chunk's tag not.
        let mut forged = img.clone();
        let d = DATA_OFFSET as usize;
        let info = parse_chunk_header(&forged[d..], 0).unwrap();
        let runs_len = (info.run_count + info.zero_run_count) * 16;
        forged[d + CHUNK_HEADER + runs_len + 5] ^= 1;
        let sum = data_sum(&forged[d + CHUNK_HEADER..d + CHUNK_HEADER + runs_len + info.stored_len]);
        put32(&mut forged[d..], 32, sum);
        let hcrc = crc32(&forged[d..d + CHUNK_HEADER - 4]);
        put32(&mut forged[d..], CHUNK_HEADER - 4, hcrc);
        let e = read_all_with(&forged, Some(&key)).unwrap_err();
        assert!(matches!(e, ReadError::Format(Error::BadTag { chunk: 0 })), "{e:?}");
    }

    #[test]
    fn a_chunk_from_another_image_fails_its_tag_and_the_first_pass() {
        // Two images of one machine, the same pages, other keys: the second
        // chunk of one put in the other (it fits: same runs, same length).
        let (mine, _) = sealed_image(Compression::Lz4, Some(&sealer(1)));
        let (other, _) = sealed_image(Compression::Lz4, Some(&sealer(2)));
        let second = |img: &[u8]| {
            let d = DATA_OFFSET as usize;
            let first = parse_chunk_header(&img[d..], 0).unwrap().disk_len;
            let len = parse_chunk_header(&img[d + first..], 1).unwrap().disk_len;
            d + first..d + first + len
        };
        assert_eq!(second(&mine), second(&other));
        let mut forged = mine.clone();
        forged[second(&mine)].copy_from_slice(&other[second(&other)]);
        // D's first pass (headers and runs only, state untouched): the tags
        // do not chain to the authenticated digest.
        let state = StateBlock::decode(&forged[BLOCK..]).unwrap();
        let e = scan_runs(&mut std::io::Cursor::new(&forged), &state, |_, _, _| Ok(())).unwrap_err();
        assert!(matches!(e, ReadError::Format(Error::Forged { what: "the chunks' tags" })), "{e:?}");
        // Reading it: the chunk's tag fails under this image's key.
        let e = read_all_with(&forged, Some(&crate::image::seal::DataKey::from_bytes([1; 32]))).unwrap_err();
        assert!(matches!(e, ReadError::Format(Error::BadTag { chunk: 1 })), "{e:?}");
    }

    #[test]
    fn giving_an_image_up_destroys_its_key() {
        let st = StateBlock::decode(&sealed_image(Compression::Lz4, Some(&sealer(1))).0[BLOCK..2 * BLOCK]).unwrap();
        let path = std::env::temp_dir().join(format!("kjump-state-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        file.set_len(2 * BLOCK as u64).unwrap();
        let read = || {
            use std::os::unix::fs::FileExt;
            let mut b = vec![0u8; BLOCK];
            file.read_exact_at(&mut b, STATE_OFFSET).unwrap();
            StateBlock::decode(&b).unwrap()
        };
        let attempt = record_attempt(&file, &st, None).unwrap();
        assert_eq!((read().attempts, read().key_block[..100] == [0x6b; 100]), (1, true), "an attempt keeps the key");
        for state in [State::Consumed, State::Bad] {
            set_state(&file, &attempt, state, "x", None).unwrap();
            assert!(read().key_block.is_empty(), "{state:?} kept the key");
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn round_trip_each_compression() {
        for c in [Compression::None, Compression::Lz4, Compression::Deflate] {
            let (img, pages) = image(c);
            let r = Reader::open(&img[..]).unwrap();
            assert_eq!(r.header, header());
            assert!(r.header_committed());
            let (runs, got) = read_all(&img).unwrap();
            assert_eq!(runs, [run(0x100, 2), run(0x200, 1), run(0x300, 2)]);
            assert_eq!(got, pages, "{c:?}");
            if c != Compression::None {
                assert!(img.len() < 2 * BLOCK + 5 * PAGE, "text compresses with {c:?}");
            }
        }
    }

    #[test]
    fn chunk_walk_finds_each_chunk_then_checks_the_end() {
        let (img, _) = image(Compression::Lz4);
        let r = Reader::open(&img[..]).unwrap();
        let walk_all = |state: &StateBlock| -> Result<Vec<u64>, Error> {
            let mut walk = ChunkWalk::new(state);
            let mut starts = Vec::new();
            while let Some(at) = walk.next_offset()? {
                starts.push(at);
                let info = walk.take(&img[at as usize..])?;
                assert_eq!(info.index + 1, walk.next_index());
            }
            Ok(starts)
        };
        let starts = walk_all(&r.state).unwrap();
        assert_eq!(starts.len(), 2);
        assert_eq!(starts[0], DATA_OFFSET);
        assert!(starts[1] > starts[0] && starts[1] % BLOCK as u64 == 0);
        let chain = StateBlock { chain_crc: r.state.chain_crc ^ 1, ..r.state.clone() };
        assert!(matches!(walk_all(&chain), Err(Error::ChainMismatch)));
        let end = StateBlock { data_end: r.state.data_end + BLOCK as u64, ..r.state.clone() };
        assert!(matches!(walk_all(&end), Err(Error::BadField { field: "data end", .. })));
        // A header out of place: the second chunk's where the first belongs.
        let mut walk = ChunkWalk::new(&r.state);
        assert!(matches!(walk.take(&img[starts[1] as usize..]), Err(Error::BadField { field: "index", .. })));
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let (img, _) = image(Compression::Lz4);
        for at in (0..img.len()).step_by(7) {
            let mut bad = img.clone();
            bad[at] ^= 0x40;
            let result = read_all(&bad);
            // Padding bytes are not covered; everything else is.
            let in_padding = {
                let chunk_area = at >= DATA_OFFSET as usize;
                chunk_area && bad[at] == 0x40 && img[at] == 0
            };
            if !in_padding {
                assert!(result.is_err(), "flip at {at} went unnoticed");
            }
        }
    }

    #[test]
    fn truncation_names_the_part() {
        let (img, _) = image(Compression::Lz4);
        assert!(matches!(Reader::open(&img[..100]), Err(ReadError::Format(Error::Truncated { .. }))));
        let cut = &img[..img.len() - 10];
        match read_all(cut) {
            Err(ReadError::Format(Error::Truncated { what })) => assert_eq!(what, "chunk 1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pages_stored_as_they_are_are_decoded_in_place() {
        let (img, all) = image(Compression::Lz4);
        let r = Reader::open(&img[..]).unwrap();
        let mut walk = ChunkWalk::new(&r.state);
        let mut bufs = ChunkBufs { pages: b"left alone".to_vec(), ..ChunkBufs::default() };
        // Chunk 0 (text) is compressed, chunk 1 (noise) stored as it is.
        let at0 = walk.next_offset().unwrap().unwrap() as usize;
        let info0 = walk.take(&img[at0..]).unwrap();
        let c0 = &img[at0..at0 + info0.disk_len];
        assert_eq!(decode_chunk_in_place(c0, &info0, &mut bufs, None).unwrap(), ChunkPages::InBuffer);
        assert!(bufs.pages == all[..3 * PAGE]);
        let at1 = walk.next_offset().unwrap().unwrap() as usize;
        let info1 = walk.take(&img[at1..]).unwrap();
        assert_eq!(info1.compression, Compression::None);
        let c1 = &img[at1..at1 + info1.disk_len];
        bufs.pages = b"left alone".to_vec();
        match decode_chunk_in_place(c1, &info1, &mut bufs, None).unwrap() {
            ChunkPages::InChunk(range) => assert!(c1[range] == all[3 * PAGE..]),
            other => panic!("{other:?}"),
        }
        assert_eq!(bufs.pages, b"left alone");
        assert_eq!(bufs.runs, [run(0x300, 2)]);
        // Checked all the same: a flipped stored byte is refused.
        let mut bad = c1.to_vec();
        bad[CHUNK_HEADER + 16 + info1.stored_len - 1] ^= 1;
        assert!(matches!(decode_chunk_in_place(&bad, &info1, &mut bufs, None), Err(Error::BadChecksum { .. })));
    }

    #[test]
    fn buffers_reused_from_a_larger_chunk_hold_only_the_new_one() {
        // B's encoder and D's page buffer are reused from chunk to chunk;
        // nothing of a larger chunk may leak into a smaller one.
        let text = |n: usize, seed: u8| -> Vec<u8> { (0..n * PAGE).map(|i| (i % 251) as u8 ^ seed).collect() };
        for sealer in [None, Some(sealer(5))] {
            let mut enc = ChunkEncoder::new(Compression::Lz4, sealer.clone());
            let mut bufs = ChunkBufs::default();
            for (index, n, seed) in [(0u64, 64usize, 1u8), (1, 3, 2), (2, 1, 3)] {
                let data = text(n, seed);
                let mut c = Vec::new();
                enc.encode(index, &[run(0x100 * (index + 1), n as u64)], &[], &data, &mut c);
                let info = parse_chunk_header(&c, index).unwrap();
                assert_eq!(info.compression, Compression::Lz4);
                decode_chunk(&c, &info, &mut bufs, sealer.as_ref()).unwrap();
                assert!(bufs.pages == data, "chunk {index}");
            }
        }
    }

    #[test]
    fn hostile_chunk_headers() {
        let mut enc = ChunkEncoder::new(Compression::None, None);
        let mut c = Vec::new();
        enc.encode(0, &[run(1, 1)], &[], &[5u8; PAGE], &mut c);
        let reseal = |c: &mut Vec<u8>| {
            let crc = crc32(&c[..CHUNK_HEADER - 4]);
            c[CHUNK_HEADER - 4..CHUNK_HEADER].copy_from_slice(&crc.to_le_bytes());
        };
        for (off, value, field) in [
            (20, 0u32, "run count"),
            (20, 100_000, "run count"),
            (24, 0, "page count"),
            (24, 1 << 30, "page count"),
            (28, 0, "stored length"),
            (28, u32::MAX, "stored length"),
            (16, 9, "compression"),
        ] {
            let mut bad = c.clone();
            bad[off..off + 4].copy_from_slice(&value.to_le_bytes());
            reseal(&mut bad);
            assert_eq!(parse_chunk_header(&bad, 0), Err(Error::BadField { what: "chunk 0".into(), field }));
        }
        assert_eq!(parse_chunk_header(&c, 1), Err(Error::BadField { what: "chunk 1".into(), field: "index" }));
        let mut bad = c.clone();
        let h = CHUNK_HEADER;
        bad[h..h + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        bad[h + 8..h + 16].copy_from_slice(&2u64.to_le_bytes());
        let info = parse_chunk_header(&bad, 0).unwrap();
        let sum = data_sum(&bad[h..h + 16 + PAGE]);
        bad[32..36].copy_from_slice(&sum.to_le_bytes());
        reseal(&mut bad);
        let info = ChunkInfo { data_sum: sum, ..info };
        assert!(decode_chunk(&bad, &info, &mut ChunkBufs::default(), None).is_err());
    }

    #[test]
    fn header_field_checks() {
        let mut h = header();
        h.stored_pages = 6;
        let b = h.encode().unwrap();
        assert_eq!(Header::decode(&b), Err(Error::BadField { what: "header".into(), field: "page counts" }));
        let mut h = header();
        h.ram = vec![PhysRange::new(5, 5)];
        assert_eq!(Header::decode(&h.encode().unwrap()), Err(Error::BadField { what: "header".into(), field: "ram range" }));
        let mut b = header().encode().unwrap();
        b[8] = 9;
        let crc = crc32(&b[..BLOCK - 4]);
        b[BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Header::decode(&b), Err(Error::UnsupportedVersion { version: 9 }));
        assert!(matches!(Header::decode(&[0u8; BLOCK]), Err(Error::BadMagic { .. })));
    }

    /// Found by the `image` fuzz target: a committed header whose low-memory
    /// backup claimed 0x100a0000 bytes, which D's restore would have
    /// allocated as one buffer.
    #[test]
    fn fuzz_huge_backup_length() {
        let mut b = header().encode().unwrap();
        b[64..72].copy_from_slice(&0x100a_0000u64.to_le_bytes());
        let crc = crc32(&b[..BLOCK - 4]);
        b[BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
        let want = Error::BadField { what: "header".into(), field: "backup length" };
        assert_eq!(Header::decode(&b), Err(want.clone()));
        let h = Header { backup: PhysRange::new(0x1c6e_2000, 0x1c6e_2000 + 0x100a_0000), ..header() };
        assert_eq!(h.encode().err(), Some(want.clone()));
        let h = Header { backup: PhysRange::new(0, MAX_BACKUP), ..header() };
        assert_eq!(Header::decode(&h.encode().unwrap()).unwrap().backup.len(), MAX_BACKUP);
        // A backup whose address and length run past the address space.
        let mut b = header().encode().unwrap();
        b[56..64].copy_from_slice(&(u64::MAX - 0x1000).to_le_bytes());
        let crc = crc32(&b[..BLOCK - 4]);
        b[BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Header::decode(&b), Err(want));
    }

    /// A run whose pages lie beyond the 64-bit byte address space: restore
    /// computes `pfn * PAGE` from it.
    #[test]
    fn run_beyond_the_address_space() {
        let mut enc = ChunkEncoder::new(Compression::None, None);
        for (pfn, ok) in [(PFN_LIMIT - 2, true), (PFN_LIMIT - 1, false), (u64::MAX - 1, false)] {
            let mut c = Vec::new();
            enc.encode(0, &[run(pfn, 1)], &[], &[7u8; PAGE], &mut c);
            let info = parse_chunk_header(&c, 0).unwrap();
            let got = decode_chunk(&c, &info, &mut ChunkBufs::default(), None);
            assert_eq!(got.is_ok(), ok, "pfn {pfn:#x}");
        }
    }
}
