//! The duties of PID 1 in B and D: mount what the kernel does not, keep
//! the console, and never exit (an exiting PID 1 panics the kernel).

use rustix::fs::{mkdir, Mode};
use rustix::mount::{mount, MountFlags};

use crate::Error;

/// Prints one line on the console, prefixed with the time since this
/// kernel booted (like the kernel's own lines, to see where a slow
/// hibernation or resume spent its time) and `kjump-init:`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let line = format!("[{:5}.{:03}] kjump-init: {}\n", t.tv_sec, t.tv_nsec / 1_000_000, format_args!($($arg)*));
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
        $crate::init::pid1::to_other_consoles(line.as_bytes());
    }};
}

fn mount_one(source: &str, target: &str, fstype: &str) -> Result<(), Error> {
    match mkdir(target, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(Error::sys(format!("creating {target}"), e)),
    }
    match mount(source, target, fstype, MountFlags::NOSUID | MountFlags::NOEXEC, None) {
        Ok(()) | Err(rustix::io::Errno::BUSY) => Ok(()),
        Err(e) => Err(Error::sys(format!("mounting {fstype} on {target}"), e)),
    }
}

/// Mounts proc on /proc, sysfs on /sys and devtmpfs on /dev, then opens
/// the consoles besides `/dev/console` (see [`to_other_consoles`]).
pub fn mount_basics() -> Result<(), Error> {
    mount_one("proc", "/proc", "proc")?;
    mount_one("sysfs", "/sys", "sysfs")?;
    mount_one("devtmpfs", "/dev", "devtmpfs")?;
    let _ = OTHER_CONSOLES.get_or_init(|| other_consoles(&std::fs::read_to_string("/proc/consoles").unwrap_or_default()));
    Ok(())
}

/// The consoles the kernel prints on besides the one `/dev/console` is.
static OTHER_CONSOLES: std::sync::OnceLock<Vec<std::fs::File>> = std::sync::OnceLock::new();

/// Opens each enabled console of a `/proc/consoles` text but the one
/// `/dev/console` leads to (flag `C`). With `console=tty0
/// console=ttyS0`, the kernel prints on both, but PID 1's output, through
/// `/dev/console`, reached the serial port only, and the screen stayed
/// silent while B saved.
fn other_consoles(text: &str) -> Vec<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    consoles_besides_the_main_one(text)
        .into_iter()
        .filter_map(|name| std::fs::OpenOptions::new().write(true).custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32).open(format!("/dev/{name}")).ok())
        .collect()
}

/// The names of the enabled consoles of a `/proc/consoles` text (lines
/// such as `ttyS0  -W- (EC p a)    4:64`) but the main one.
pub fn consoles_besides_the_main_one(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let flags = l.split_once('(')?.1.split_once(')')?.0;
            (flags.contains('E') && !flags.contains('C') && name.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| name.to_string())
        })
        .collect()
}

/// Writes `text` on the consoles besides `/dev/console` (once
/// [`mount_basics`] has found them); errors are ignored, as for stdout.
pub fn to_other_consoles(text: &[u8]) {
    use std::io::Write as _;
    for mut f in OTHER_CONSOLES.get().into_iter().flatten() {
        let _ = f.write_all(text);
    }
}

/// Makes sure stdin, stdout and stderr are the console, for when the
/// kernel found no `/dev/console` to give us.
pub fn ensure_console() {
    if rustix::fs::fstat(rustix::stdio::stdout()).is_ok() {
        return;
    }
    let _ = mount_one("devtmpfs", "/dev", "devtmpfs");
    if let Ok(fd) = rustix::fs::open("/dev/console", rustix::fs::OFlags::RDWR, Mode::empty()) {
        let _ = rustix::stdio::dup2_stdin(&fd);
        let _ = rustix::stdio::dup2_stdout(&fd);
        let _ = rustix::stdio::dup2_stderr(&fd);
    }
}

fn stop(cmd: rustix::system::RebootCommand) -> ! {
    rustix::fs::sync();
    let _ = rustix::system::reboot(cmd);
    // reboot() only returns on error: wait forever rather than exit.
    loop {
        let _ = rustix::thread::nanosleep(&rustix::time::Timespec { tv_sec: 3600, tv_nsec: 0 });
    }
}

/// Syncs and powers the machine off. Never returns.
pub fn power_off() -> ! {
    stop(rustix::system::RebootCommand::PowerOff)
}

/// Syncs and reboots the machine. Never returns.
pub fn reboot() -> ! {
    stop(rustix::system::RebootCommand::Restart)
}

/// Suspends the machine to RAM (`mem` in `/sys/power/state`, in the
/// kernel's default `mem_sleep` mode) and returns once it wakes, with how
/// long it was away. An error when this kernel cannot suspend, or the
/// suspend failed (nothing slept).
pub fn suspend_to_ram() -> Result<std::time::Duration, Error> {
    let offered = std::fs::read_to_string("/sys/power/state").map_err(|e| Error::io("reading /sys/power/state", e))?;
    if !offered.split_whitespace().any(|s| s == "mem") {
        return Err(Error::Msg(format!("this kernel cannot suspend to RAM (/sys/power/state offers only \"{}\")", offered.trim())));
    }
    rustix::fs::sync();
    let before = crate::load::jump::boottime();
    std::fs::write("/sys/power/state", "mem").map_err(|e| Error::io("suspending to RAM (writing mem to /sys/power/state)", e))?;
    Ok(crate::load::jump::boottime().saturating_sub(before))
}

/// Prints a fatal error in one line and powers off.
pub fn fatal(err: &dyn core::fmt::Display) -> ! {
    say!("error: {err}");
    say!("powering off");
    power_off()
}

/// Installs a panic hook that reports and powers off, so even a bug
/// never leaves the kernel to panic over a dead PID 1.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| fatal(&format_args!("internal error: {info}"))));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_other_consoles_are_found() {
        let text = "ttyS0                -W- (EC p a)    4:64\ntty0                 -WU (E  p  )    4:1\nnetcon0              -W- (   p  )\n";
        assert_eq!(super::consoles_besides_the_main_one(text), ["tty0"]);
        assert!(super::consoles_besides_the_main_one("tty0                 -WU (EC p  )    4:1\n").is_empty());
        assert!(super::consoles_besides_the_main_one("").is_empty());
    }
}
