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
        let _ = writeln!(out, "[{:5}.{:03}] kjump-init: {}", t.tv_sec, t.tv_nsec / 1_000_000, format_args!($($arg)*));
        let _ = out.flush();
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

/// Mounts proc on /proc, sysfs on /sys and devtmpfs on /dev.
pub fn mount_basics() -> Result<(), Error> {
    mount_one("proc", "/proc", "proc")?;
    mount_one("sysfs", "/sys", "sysfs")?;
    mount_one("devtmpfs", "/dev", "devtmpfs")
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
