//! A and C: the hibernation kernel as each command loads it (B to save, D to
//! restore): its command line, its CPUs, and giving its memory back.

use crate::settings::Settings;
use kjump::handoff::cmdline;
use kjump::handoff::orders::Orders;
use kjump::load::jump::{self, HibernationKernel};
use kjump::units::MIB;
use kjump::{target, Error};

/// The kjump region's size unless `--region-size` says otherwise.
pub(crate) const DEFAULT_REGION_SIZE: u64 = 64 * MIB;

/// The smallest region accepted: below it the hibernation kernel and its
/// initramfs (about 15 MiB) leave B too little memory for even one
/// chunk's buffers beside its write batches.
pub(crate) const MIN_REGION_SIZE: u64 = 64 * MIB;

/// The hibernation kernel with `mode_args`, for work on disk `disk` (whose
/// controller decides whether B may skip legacy interrupt routing).
pub(crate) fn hibernation_kernel(s: &Settings, mode_args: &str, disk: Option<&std::path::Path>) -> Result<HibernationKernel, Error> {
    let own = std::fs::read_to_string("/proc/cmdline").map_err(|e| Error::io("reading /proc/cmdline", e))?;
    let routing = if disk.is_some_and(kjump::load::msi::may_skip_routing) { kjump::load::msi::SKIP_ROUTING } else { "" };
    // The words kjump and the purgatory set are kjump's contract with B
    // and D: `append` may not override them (a mistyped kjump.* word once
    // made every hibernation power off, the session lost).
    for word in cmdline::words(&s.append) {
        let word = word.map_err(|e| Error::Msg(format!("append {:?}: {e}", s.append)))?;
        let key = cmdline::split_param(word).0;
        if key.starts_with("kjump.") || key.starts_with("kexec_") || key == "rdinit" || key == "elfcorehdr" {
            return Err(Error::Msg(format!("append {word:?}: kjump sets {key} itself; remove it from --append or from append= in /etc/kjump.conf")));
        }
    }
    // Words kjump's own tests add, unchecked, to make B fail on purpose.
    let unchecked = std::env::var(UNCHECKED_APPEND).unwrap_or_default();
    let line = format!(
        "{} rdinit=/kjump-init {mode_args} nokaslr nr_cpus={} panic=10 {} {routing} {} {unchecked}",
        jump::console_args(&own),
        hibernation_cpus(),
        jump::BOOT_TRIM.join(" "),
        s.append
    );
    // B reads its orders with this same parser: a line it would refuse
    // is refused here, before anything is loaded.
    if unchecked.is_empty() {
        let params = cmdline::parse(&line).map_err(|e| Error::Msg(format!("the hibernation kernel's command line would be refused ({e}): check append")))?;
        Orders::from_params(&params).map_err(|e| Error::Msg(format!("the hibernation kernel would refuse its orders ({e})")))?;
    }
    kjump::host::config::check_trusted(&s.kernel, "the hibernation kernel")?;
    kjump::host::config::check_trusted(&s.initrd, "the hibernation initramfs")?;
    Ok(HibernationKernel {
        kernel: std::fs::read(&s.kernel).map_err(|e| Error::io(format!("reading {}", s.kernel), e))?,
        initrd: std::fs::read(&s.initrd).map_err(|e| Error::io(format!("reading {}", s.initrd), e))?,
        cmdline: line,
        region_size: s.region_size,
        set_region_aside: true,
        resident: false,
        key_page: None,
    })
}

/// For kjump's own tests only: words added to the hibernation kernel's
/// command line after kjump's, without the checks above (to make B meet a
/// missing or forbidden target on purpose).
pub(crate) const UNCHECKED_APPEND: &str = "KJUMP_TEST_UNCHECKED_APPEND";

/// CPUs the hibernation kernel brings up: A's, at most 4 (B compresses on
/// each; more would cost B memory for little gain).
pub(crate) fn hibernation_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// After a jump came back: the loaded image now holds the other kernel as
/// it was when it jumped back, never to be entered again.
pub(crate) fn unload_after_jump() {
    kjump::handoff::resident::forget();
    if let Err(e) = kjump::sys::kexec::unload() {
        eprintln!("kjump: {e}");
    }
}

/// B's `kjump.mode=save …` arguments.
pub(crate) fn save_mode_args(s: &Settings, tgt: &target::Target, mailbox: u64, resident: bool) -> String {
    Orders::Save(kjump::handoff::orders::Save {
        target: tgt.clone(),
        after: s.after,
        compress: s.compress,
        wait: s.wait,
        mailbox,
        zero_free: kjump::host::check::free_pages_must_be_zero(),
        resident,
        target_id: target::identity_of(tgt),
    })
    .to_string()
}

/// D's mode arguments, the same whether C loads D or a boot entry starts it.
pub(crate) fn restore_mode_args(tgt: &target::Target, s: &Settings, direct: bool) -> String {
    Orders::Restore(kjump::handoff::orders::Restore { target: tgt.clone(), wait: s.wait, keep: s.keep, attempts: s.attempts, snapshot: s.snapshot, direct })
        .to_string()
}
