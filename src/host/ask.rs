//! Runs in C (`kjump resume` asks for the passphrase of an encrypted image)
//! and in A (`kjump keygen` asks for a new one): asking for a passphrase.
//!
//! Under systemd, `systemd-ask-password` asks (on the terminal it runs on,
//! or through the password agents: Plymouth, the console); otherwise kjump
//! reads one line from its controlling terminal (else the console) with
//! echo off. The terminal part is thin: the line itself is read by
//! [`read_line`] from any byte source, one byte at a time (so nothing past
//! the line is consumed) into a buffer that never moves and is wiped.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{Mode, OFlags};
use rustix::termios::{self, LocalModes, OptionalActions, Termios};
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

/// The longest passphrase accepted, in bytes.
pub const MAX_LEN: usize = 1024;

/// Where `systemd-ask-password` may be.
const ASK_PASSWORD: [&str; 3] = ["/usr/bin/systemd-ask-password", "/bin/systemd-ask-password", "/usr/lib/systemd/systemd-ask-password"];

/// Asks for a passphrase with `prompt`: through `systemd-ask-password`
/// when systemd runs and has it, else on the terminal.
pub fn passphrase(prompt: &str) -> Result<Zeroizing<String>, Error> {
    match ask_password_tool() {
        Some(tool) => from_systemd(&tool, prompt),
        None => from_terminal(prompt),
    }
}

/// `systemd-ask-password`, if systemd runs (`/run/systemd/system`) and
/// the tool is installed.
fn ask_password_tool() -> Option<PathBuf> {
    if !Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    ASK_PASSWORD.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Runs `systemd-ask-password` (no time limit: a boot waits for the user)
/// and takes the line it prints on its standard output.
fn from_systemd(tool: &Path, prompt: &str) -> Result<Zeroizing<String>, Error> {
    let name = tool.display();
    let mut child = Command::new(tool)
        .arg("--timeout=0")
        .arg(prompt)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io(format!("running {name}"), e))?;
    let line = match child.stdout.take() {
        Some(mut out) => read_line(&mut out),
        None => Err(Error::Msg(format!("{name} gave no output pipe: report this as a kjump bug"))),
    };
    let status = child.wait().map_err(|e| Error::io(format!("waiting for {name}"), e))?;
    if !status.success() {
        return Err(Error::Msg(format!("{name} failed ({status}): no passphrase given")));
    }
    line
}

/// Asks on the controlling terminal (`/dev/tty`, else `/dev/console`) with
/// echo off; the terminal's settings are restored afterwards, also on an
/// error, and a newline is printed after the answer.
pub fn from_terminal(prompt: &str) -> Result<Zeroizing<String>, Error> {
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    let (tty, path) = match rustix::fs::open("/dev/tty", flags, Mode::empty()) {
        Ok(fd) => (fd, "/dev/tty"),
        Err(_) => (
            rustix::fs::open("/dev/console", flags, Mode::empty()).map_err(|e| Error::sys("opening /dev/tty or /dev/console to ask for the passphrase", e))?,
            "/dev/console",
        ),
    };
    let echo_off = EchoOff::new(&tty, path)?;
    write_all(tty.as_fd(), prompt.as_bytes()).map_err(|e| Error::sys(format!("writing the prompt to {path}"), e))?;
    let line = read_typed_line(&mut FdReader(tty.as_fd()));
    let _ = write_all(tty.as_fd(), b"\n");
    drop(echo_off);
    line
}

/// Reads one line from standard input (for a passphrase piped in, as
/// `kjump keygen` takes it when standard input is not a terminal).
pub fn line_from_stdin() -> Result<Zeroizing<String>, Error> {
    read_line(&mut FdReader(rustix::stdio::stdin()))
}

/// Whether standard input is a terminal.
pub fn stdin_is_terminal() -> bool {
    termios::isatty(rustix::stdio::stdin())
}

/// A terminal's echo, line editing and signal keys, off until dropped:
/// then its settings are restored. Ctrl-C arrives as a byte, so that
/// [`read_typed_line`] cancels with the terminal restored (a signal would
/// kill kjump with echo still off).
struct EchoOff<'a> {
    fd: &'a OwnedFd,
    saved: Termios,
}

impl<'a> EchoOff<'a> {
    fn new(fd: &'a OwnedFd, path: &str) -> Result<Self, Error> {
        let saved = termios::tcgetattr(fd).map_err(|e| Error::sys(format!("{path} is not a terminal to ask for the passphrase on"), e))?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO | LocalModes::ECHONL | LocalModes::ICANON | LocalModes::ISIG);
        quiet.special_codes[termios::SpecialCodeIndex::VMIN] = 1;
        quiet.special_codes[termios::SpecialCodeIndex::VTIME] = 0;
        termios::tcsetattr(fd, OptionalActions::Flush, &quiet).map_err(|e| Error::sys(format!("turning off echo on {path}"), e))?;
        Ok(EchoOff { fd, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), rustix::io::Errno> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return Err(rustix::io::Errno::IO),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads a file descriptor without a buffer of its own (so no copy of the
/// passphrase is left behind, and nothing past the line is taken).
pub struct FdReader<'a>(pub BorrowedFd<'a>);

impl Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        rustix::io::read(self.0, buf).map_err(std::io::Error::from)
    }
}

/// Reads a line typed on a terminal with line editing off, a byte at a
/// time: Enter ends it, Backspace and Ctrl-U edit it, Ctrl-C cancels,
/// Ctrl-D on an empty line is "no passphrase given".
pub fn read_typed_line(src: &mut impl Read) -> Result<Zeroizing<String>, Error> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_LEN));
    let mut byte = Zeroizing::new([0u8; 1]);
    loop {
        match src.read(&mut byte[..]) {
            Ok(0) if buf.is_empty() => return Err(Error::Msg("no passphrase given (end of input)".into())),
            Ok(0) => break,
            Ok(_) => match byte[0] {
                b'\n' | b'\r' => break,
                0x03 => return Err(Error::Msg("cancelled (Ctrl-C) at the passphrase prompt".into())),
                0x04 if buf.is_empty() => return Err(Error::Msg("no passphrase given (Ctrl-D)".into())),
                0x04 => {}
                0x7f | 0x08 => {
                    // A whole UTF-8 character goes.
                    while let Some(b) = buf.pop() {
                        if b & 0xc0 != 0x80 {
                            break;
                        }
                    }
                }
                0x15 => buf.zeroize(),
                b => {
                    if buf.len() == MAX_LEN {
                        return Err(Error::Msg(format!("the passphrase is longer than {MAX_LEN} bytes: use a shorter one")));
                    }
                    buf.push(b);
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading the passphrase", e)),
        }
    }
    match String::from_utf8(std::mem::take(&mut *buf)) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(Error::Msg("the passphrase is not valid UTF-8: check the keyboard layout and terminal".into()))
        }
    }
}

/// Reads one line from `src`, a byte at a time, and returns it without its
/// newline (only the newline is stripped). The end of input before any
/// byte (Ctrl-D at the prompt) is "no passphrase given"; an empty line is
/// an empty passphrase, for the caller to judge.
pub fn read_line(src: &mut impl Read) -> Result<Zeroizing<String>, Error> {
    // Room for the longest line up front: the buffer never reallocates,
    // so no copy is left behind in freed memory.
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_LEN));
    let mut byte = Zeroizing::new([0u8; 1]);
    let mut newline = false;
    loop {
        match src.read(&mut byte[..]) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => {
                newline = true;
                break;
            }
            Ok(_) => {
                if buf.len() == MAX_LEN {
                    return Err(Error::Msg(format!("the passphrase is longer than {MAX_LEN} bytes: use a shorter one")));
                }
                buf.push(byte[0]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading the passphrase", e)),
        }
    }
    if buf.is_empty() && !newline {
        return Err(Error::Msg("no passphrase given (end of input)".into()));
    }
    match String::from_utf8(std::mem::take(&mut *buf)) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(Error::Msg("the passphrase is not valid UTF-8: check the keyboard layout and terminal".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lines_are_edited_and_ctrl_c_cancels() {
        let typed = |b: &[u8]| read_typed_line(&mut &b[..]).map(|s| s.to_string()).map_err(|e| e.to_string());
        assert_eq!(typed(b"secret\r").unwrap(), "secret");
        assert_eq!(typed(b"secrex\x7ft\n").unwrap(), "secret");
        assert_eq!(typed(b"wrong\x15right\r").unwrap(), "right");
        assert_eq!(typed("p\u{e4}\x7fa\r".as_bytes()).unwrap(), "pa", "Backspace takes a whole character");
        assert!(typed(b"half\x03more\r").unwrap_err().contains("cancelled"));
        assert!(typed(b"\x04").unwrap_err().contains("no passphrase"));
        assert!(typed(b"").unwrap_err().contains("no passphrase"));
        assert_eq!(typed(b"\r").unwrap(), "");
        assert!(typed(&[b'x'; MAX_LEN + 1]).unwrap_err().contains("longer than"));
    }

    /// Hands out its bytes `chunk` at a time, with an interruption first.
    struct Src<'a> {
        bytes: &'a [u8],
        interrupted: bool,
    }

    impl Read for Src<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn src(bytes: &[u8]) -> Src<'_> {
        Src { bytes, interrupted: false }
    }

    #[test]
    fn one_line_without_its_newline_and_nothing_more() {
        let mut s = src(b"first pass\nsecond\n");
        assert_eq!(read_line(&mut s).unwrap().as_str(), "first pass");
        assert_eq!(read_line(&mut s).unwrap().as_str(), "second");
        let e = read_line(&mut s).unwrap_err().to_string();
        assert_eq!(e, "no passphrase given (end of input)");
    }

    #[test]
    fn only_the_newline_is_stripped() {
        assert_eq!(read_line(&mut src(b"  a b \r\n")).unwrap().as_str(), "  a b \r");
        assert_eq!(read_line(&mut src(b"\n")).unwrap().as_str(), "");
        // A last line without a newline (Ctrl-D after typing).
        assert_eq!(read_line(&mut src(b"typed")).unwrap().as_str(), "typed");
        assert_eq!(read_line(&mut src("pässwört\n".as_bytes())).unwrap().as_str(), "pässwört");
    }

    #[test]
    fn too_long_empty_input_and_bad_utf8_are_errors() {
        assert!(read_line(&mut src(b"")).is_err());
        let long = vec![b'x'; MAX_LEN + 1];
        assert!(read_line(&mut src(&long)).unwrap_err().to_string().contains("longer than"));
        let mut exact = vec![b'y'; MAX_LEN];
        exact.push(b'\n');
        assert_eq!(read_line(&mut src(&exact)).unwrap().len(), MAX_LEN);
        assert!(read_line(&mut src(b"\xff\xfe\n")).unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn reads_a_pipe_without_taking_the_next_line() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        write_all(w.as_fd(), b"one\ntwo\n").unwrap();
        drop(w);
        assert_eq!(read_line(&mut FdReader(r.as_fd())).unwrap().as_str(), "one");
        assert_eq!(read_line(&mut FdReader(r.as_fd())).unwrap().as_str(), "two");
        assert!(read_line(&mut FdReader(r.as_fd())).is_err());
    }
}
