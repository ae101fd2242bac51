//! E820 memory map entries, as the x86 boot protocol passes them in
//! `boot_params.e820_table`.

/// Bytes of one entry (`struct boot_e820_entry`): address (u64), size
/// (u64), type (u32).
pub const ENTRY_LEN: usize = 20;

/// The kind of a physical memory range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Usable RAM.
    Ram,
    /// Reserved by firmware or hardware.
    Reserved,
    /// ACPI tables, reclaimable after they are read.
    Acpi,
    /// ACPI non-volatile storage.
    Nvs,
    /// RAM with errors.
    Unusable,
}

impl Kind {
    /// The E820 type number.
    pub fn code(self) -> u32 {
        match self {
            Kind::Ram => 1,
            Kind::Reserved => 2,
            Kind::Acpi => 3,
            Kind::Nvs => 4,
            Kind::Unusable => 5,
        }
    }
}

/// One range of physical memory, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What the range is.
    pub kind: Kind,
}

impl Range {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Encodes the entry as the [`ENTRY_LEN`] bytes of `struct boot_e820_entry`.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..8].copy_from_slice(&self.start.to_le_bytes());
        out[8..16].copy_from_slice(&self.len().to_le_bytes());
        out[16..20].copy_from_slice(&self.kind.code().to_le_bytes());
        out
    }
}
