//! kjump's purgatory: the few hundred bytes that run between A's
//! `relocate_kernel` and B's 64-bit entry.
//!
//! On entry (see `arch/x86/kernel/relocate_kernel_64.S`, preserve-context
//! path) the CPU is in long mode with interrupts off and identity page
//! tables that cover A's RAM and every kexec segment; `[rsp]` holds the
//! return address into A's control page — A's re-entry point. The purgatory:
//! 1. saves that address;
//! 2. copies A's low memory `[0, backup_len)` to the backup area;
//! 3. appends ` kexec_jump_back_entry=0x… kexec_jump_buf_pfn=… kexec_backup=…K`
//!    to B's command line;
//! 4. loads its own GDT (flat 64-bit code at 0x10, data at 0x18);
//! 5. enters B's 64-bit entry with `%rsi` = boot_params.
//!
//! The code is position independent (only `%rip`-relative references), so
//! its bytes can be copied to any physical page. Its parameters are 64-bit
//! slots in the blob that [`Purgatory::patch`] fills in before loading.

// Its bytes are machine code that global_asm! assembles into kjump; reading
// them back needs the symbols around them.
#![allow(unsafe_code)]

use core::arch::global_asm;

global_asm!(
    r#"
    .pushsection .rodata.kjump_purgatory, "a"
    .balign 16
    .globl kjump_purgatory_start
kjump_purgatory_start:
    cld
    movq    (%rsp), %rax
    movq    %rax, kjump_purgatory_saved_entry(%rip)

    /* Back up A's low memory. */
    movq    kjump_purgatory_backup_src(%rip), %rsi
    movq    kjump_purgatory_backup_dst(%rip), %rdi
    movq    kjump_purgatory_backup_len(%rip), %rcx
    rep movsb

    /* Append the jump-back parameters to B's command line. */
    movq    kjump_purgatory_cmdline_end(%rip), %rdi
    leaq    2f(%rip), %rsi
    call    3f
    movq    kjump_purgatory_saved_entry(%rip), %rax
    call    4f
    leaq    20f(%rip), %rsi
    call    3f
    movq    kjump_purgatory_saved_entry(%rip), %rax
    shrq    $12, %rax
    call    5f
    leaq    21f(%rip), %rsi
    call    3f
    movq    kjump_purgatory_backup_dst(%rip), %rax
    shrq    $10, %rax
    call    5f
    movb    $'K', (%rdi)
    movb    $0, 1(%rdi)

    /* Our own GDT: 0x10 flat 64-bit code, 0x18 flat data. */
    leaq    30f(%rip), %rax
    movq    %rax, 31f+2(%rip)
    lgdt    31f(%rip)
    movl    $0x18, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    movl    %eax, %fs
    movl    %eax, %gs
    leaq    1f(%rip), %rax
    pushq   $0x10
    pushq   %rax
    lretq
1:
    movq    kjump_purgatory_boot_params(%rip), %rsi
    movq    kjump_purgatory_kernel_entry(%rip), %rax
    xorl    %ebp, %ebp
    xorl    %edi, %edi
    jmp     *%rax

    /* 3: copy the NUL-terminated string at %rsi to %rdi (without the NUL). */
3:
    lodsb
    testb   %al, %al
    jz      6f
    stosb
    jmp     3b
6:
    ret

    /* 4: write %rax as 16 hex digits at %rdi. */
4:
    movl    $16, %ecx
7:
    rolq    $4, %rax
    movl    %eax, %edx
    andl    $15, %edx
    cmpl    $10, %edx
    jb      8f
    addl    $('a' - '0' - 10), %edx
8:
    addl    $'0', %edx
    movb    %dl, (%rdi)
    incq    %rdi
    decl    %ecx
    jnz     7b
    ret

    /* 5: write %rax in decimal at %rdi. */
5:
    leaq    kjump_purgatory_decimal_end(%rip), %r9
    movq    %r9, %r8
    movl    $10, %ecx
9:
    xorl    %edx, %edx
    divq    %rcx
    addl    $'0', %edx
    decq    %r8
    movb    %dl, (%r8)
    testq   %rax, %rax
    jnz     9b
10:
    movb    (%r8), %dl
    movb    %dl, (%rdi)
    incq    %r8
    incq    %rdi
    cmpq    %r9, %r8
    jb      10b
    ret

2:  .asciz " kexec_jump_back_entry=0x"
20: .asciz " kexec_jump_buf_pfn="
21: .asciz " kexec_backup="

    .balign 16
30: .quad 0
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
31: .word 31
    .quad 0

    .balign 8
    .globl kjump_purgatory_kernel_entry
kjump_purgatory_kernel_entry: .quad 0
    .globl kjump_purgatory_boot_params
kjump_purgatory_boot_params: .quad 0
    .globl kjump_purgatory_cmdline_end
kjump_purgatory_cmdline_end: .quad 0
    .globl kjump_purgatory_backup_src
kjump_purgatory_backup_src: .quad 0
    .globl kjump_purgatory_backup_dst
kjump_purgatory_backup_dst: .quad 0
    .globl kjump_purgatory_backup_len
kjump_purgatory_backup_len: .quad 0
    .globl kjump_purgatory_saved_entry
kjump_purgatory_saved_entry: .quad 0
    .skip 24
kjump_purgatory_decimal_end:
    .globl kjump_purgatory_end
kjump_purgatory_end:
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static kjump_purgatory_start: u8;
    static kjump_purgatory_end: u8;
    static kjump_purgatory_kernel_entry: u8;
    static kjump_purgatory_boot_params: u8;
    static kjump_purgatory_cmdline_end: u8;
    static kjump_purgatory_backup_src: u8;
    static kjump_purgatory_backup_dst: u8;
    static kjump_purgatory_backup_len: u8;
    static kjump_purgatory_saved_entry: u8;
}

/// The longest text the purgatory appends to the command line, with its NUL:
/// three names, 16 hex digits, two decimals of at most 20 digits, `K`.
pub const CMDLINE_APPEND_MAX: usize = " kexec_jump_back_entry=0x".len() + 16 + " kexec_jump_buf_pfn=".len() + 20 + " kexec_backup=".len() + 20 + 2;

/// The purgatory's code as bytes.
pub fn blob() -> &'static [u8] {
    // SAFETY: both symbols are defined by the `global_asm!` above in the same
    // read-only section, `end` after `start`; the bytes between them are
    // initialised constant data for the life of the program.
    unsafe {
        let start = &raw const kjump_purgatory_start;
        let end = &raw const kjump_purgatory_end;
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

fn offset_of(field: *const u8) -> usize {
    // SAFETY: only addresses are compared; every field symbol lies inside the
    // blob defined above.
    unsafe { field.offset_from(&raw const kjump_purgatory_start) as usize }
}

/// The parameters the purgatory reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// B's 64-bit entry: load address + 0x200.
    pub kernel_entry: u64,
    /// Physical address of B's boot_params.
    pub boot_params: u64,
    /// Physical address of the NUL at the end of B's command line; there
    /// must be [`CMDLINE_APPEND_MAX`] bytes of room from there.
    pub cmdline_end: u64,
    /// Start of A's low memory to copy (0).
    pub backup_src: u64,
    /// Where to copy it (1 KiB aligned; in the kjump region).
    pub backup_dst: u64,
    /// How many bytes to copy.
    pub backup_len: u64,
}

/// A copy of the purgatory with its parameters filled in.
pub struct Purgatory {
    bytes: Vec<u8>,
}

impl Purgatory {
    /// Copies the blob and writes `p` into its parameter slots.
    pub fn patch(p: &Params) -> Self {
        let mut bytes = blob().to_vec();
        // SAFETY (for the addresses below): taking the address of an extern
        // static does not read it.
        let slots = [
            (offset_of(&raw const kjump_purgatory_kernel_entry), p.kernel_entry),
            (offset_of(&raw const kjump_purgatory_boot_params), p.boot_params),
            (offset_of(&raw const kjump_purgatory_cmdline_end), p.cmdline_end),
            (offset_of(&raw const kjump_purgatory_backup_src), p.backup_src),
            (offset_of(&raw const kjump_purgatory_backup_dst), p.backup_dst),
            (offset_of(&raw const kjump_purgatory_backup_len), p.backup_len),
        ];
        for (off, value) in slots {
            bytes[off..off + 8].copy_from_slice(&value.to_le_bytes());
        }
        Purgatory { bytes }
    }

    /// The bytes to load.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Offset of the slot where the purgatory stores A's re-entry address.
    pub fn saved_entry_offset() -> usize {
        offset_of(&raw const kjump_purgatory_saved_entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_is_small_and_patchable() {
        let b = blob();
        assert!(!b.is_empty() && b.len() < 1024, "purgatory is {} bytes", b.len());
        assert_eq!(b[0], 0xfc, "starts with cld");
        let p = Purgatory::patch(&Params {
            kernel_entry: 0x37e00200,
            boot_params: 0x39000000,
            cmdline_end: 0x39001040,
            backup_src: 0,
            backup_dst: 0x39100000,
            backup_len: 0xa0000,
        });
        let bytes = p.bytes();
        let find = |v: u64| bytes.windows(8).position(|w| w == v.to_le_bytes()).unwrap();
        assert_eq!(find(0x37e00200), offset_of(&raw const kjump_purgatory_kernel_entry));
        assert_eq!(find(0x39100000), offset_of(&raw const kjump_purgatory_backup_dst));
        assert!(Purgatory::saved_entry_offset() < bytes.len());
        assert!(b.windows(25).any(|w| w == b" kexec_jump_back_entry=0x"));
    }
}
