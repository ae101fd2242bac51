//! The QEMU test harness: builds A's initramfs (the harness's own busybox
//! init plus `kjump`, B's kernel and B's initramfs), boots it under
//! `qemu-system-x86_64 -accel tcg` with the serial console in a log file,
//! and waits for markers in that log. QEMU is killed on every exit path;
//! a failure shows the tail of the log.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often the console log and QEMU are looked at.
pub const POLL: Duration = Duration::from_millis(100);

/// Generous limit for one VM run under TCG.
pub const VM_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a freshly started guest may leave its console silent before
/// its first program runs. A boot under TCG prints a line at least every
/// second or two; QEMU has been seen (rarely) to hang a plain boot during
/// PCI setup, before any of kjump's code runs. Such a guest is restarted
/// once, since nothing has touched its disks yet.
pub const BOOT_STALL: Duration = Duration::from_secs(60);

/// Console text that shows a program has run in the guest: from then on a
/// guest is never restarted, whatever it does.
const USERSPACE_MARKERS: [&str; 3] = ["Run /", "kjump-init", "\nA: "];

/// Where the test kernel and the built binaries are.
pub struct Paths {
    pub kernel: PathBuf,
    pub kjump: PathBuf,
    pub kjump_init: PathBuf,
    pub busybox: PathBuf,
}

fn bin(name: &str, built: Option<&str>) -> PathBuf {
    if let Ok(dir) = std::env::var("KJUMP_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    PathBuf::from(built.unwrap_or_else(|| panic!("set KJUMP_BIN_DIR to the directory holding {name}")))
}

pub fn paths() -> Paths {
    let kernel = std::env::var("KJUMP_KERNEL").expect("KJUMP_KERNEL is not set: run the QEMU tests through 'make test', which builds the test kernel");
    let p = Paths {
        kernel: PathBuf::from(kernel),
        kjump: bin("kjump", option_env!("CARGO_BIN_EXE_kjump")),
        kjump_init: bin("kjump-init", option_env!("CARGO_BIN_EXE_kjump-init")),
        busybox: PathBuf::from("/bin/busybox"),
    };
    for f in [&p.kernel, &p.kjump, &p.kjump_init, &p.busybox] {
        assert!(f.exists(), "{} is missing: run 'make test' (it installs and builds what is needed)", f.display());
    }
    p
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A's initramfs: busybox, `/init` = `script`, kjump and the hibernation
/// kernel and initramfs at kjump's default paths (where `make install`
/// puts them: `kjump::host::config::LIBDIR`).
pub fn a_initramfs(p: &Paths, script: &str) -> Vec<u8> {
    let b_initrd = kjump::init::initramfs::build(&read(&p.kjump_init)).expect("building B's initramfs");
    a_initramfs_with_b(p, script, &b_initrd)
}

/// Like [`a_initramfs`], with `b_initrd` at kjump's default path in place
/// of B's initramfs as kjump builds it (see [`b_initramfs_with`]).
pub fn a_initramfs_with_b(p: &Paths, script: &str, b_initrd: &[u8]) -> Vec<u8> {
    let (kernel, initrd) = (kjump::host::config::default_kernel(), kjump::host::config::default_initrd());
    let mut dirs: Vec<String> = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "root", "tmp", "mnt"].map(String::from).to_vec();
    // The directories holding the hibernation files, parents first.
    for file in [&kernel, &initrd] {
        let mut parents: Vec<String> =
            Path::new(file).ancestors().skip(1).filter_map(|a| a.to_str().map(|a| a.trim_start_matches('/').to_string())).filter(|a| !a.is_empty()).collect();
        parents.reverse();
        for d in parents {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    let mut w = kjump::init::cpio::Writer::new();
    for d in &dirs {
        w.dir(d, 0o755).unwrap();
    }
    w.char_dev("dev/console", 0o600, 5, 1).unwrap();
    w.file("bin/busybox", 0o755, &read(&p.busybox)).unwrap();
    w.symlink("bin/sh", "busybox").unwrap();
    w.file("init", 0o755, format!("#!/bin/sh\n/bin/busybox --install -s\n{script}").as_bytes()).unwrap();
    w.file("usr/sbin/kjump", 0o755, &read(&p.kjump)).unwrap();
    w.file(kernel.trim_start_matches('/'), 0o644, &read(&p.kernel)).unwrap();
    // The manifest of its drivers, where `make install` puts it.
    if let Some(config) = kernel_config(p) {
        w.file(kjump::host::drivers::manifest_path(&kernel).trim_start_matches('/'), 0o644, &config).unwrap();
    }
    w.file(initrd.trim_start_matches('/'), 0o644, b_initrd).unwrap();
    kjump::init::gzip::compress(&w.finish(), 1)
}

/// The test kernel's `.config`, which `scripts/kernel.sh` keeps beside
/// the bzImage in its cache (the hibernation kernel's manifest of drivers).
pub fn kernel_config(p: &Paths) -> Option<Vec<u8>> {
    std::fs::read(p.kernel.parent()?.join(".config")).ok()
}

/// A test-only B initramfs: B's as kjump builds it, followed by a second
/// archive (the kernel unpacks each in turn) holding `files`, each
/// `(path inside, mode, contents)`, their parent directories, and
/// `symlinks`, each `(path, target)`. B's command line picks its PID 1
/// (`rdinit=`, the last one given wins).
pub fn b_initramfs_with(p: &Paths, files: &[(String, u32, Vec<u8>)], symlinks: &[(&str, &str)]) -> Vec<u8> {
    let mut out = kjump::init::initramfs::build(&read(&p.kjump_init)).expect("building B's initramfs");
    let mut w = kjump::init::cpio::Writer::new();
    let mut dirs: Vec<String> = Vec::new();
    let names = files.iter().map(|f| f.0.as_str()).chain(symlinks.iter().map(|s| s.0));
    for name in names {
        let mut parents: Vec<String> =
            Path::new(name).ancestors().skip(1).filter_map(|a| a.to_str().map(|a| a.trim_start_matches('/').to_string())).filter(|a| !a.is_empty()).collect();
        parents.reverse();
        for d in parents {
            if !dirs.contains(&d) {
                w.dir(&d, 0o755).unwrap();
                dirs.push(d);
            }
        }
    }
    for (name, mode, data) in files {
        w.file(name.trim_start_matches('/'), *mode, data).unwrap();
    }
    for (name, target) in symlinks {
        w.symlink(name.trim_start_matches('/'), target).unwrap();
    }
    out.extend_from_slice(&kjump::init::gzip::compress(&w.finish(), 1));
    out
}

/// `program` (a host binary) and the shared libraries `ldd` lists for it,
/// each at its host path, for [`b_initramfs_with`].
pub fn with_libraries(program: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let out = Command::new("ldd").arg(program).output().unwrap_or_else(|e| panic!("ldd {}: {e}", program.display()));
    assert!(out.status.success(), "ldd {}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    let mut files = vec![(program.display().to_string(), 0o755, read(program))];
    // Lines are "name => /path (address)", "/path (address)" or a vdso
    // without a path.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = line.split("=>").last().and_then(|r| r.split_whitespace().next()).filter(|w| w.starts_with('/'));
        if let Some(path) = path {
            files.push((path.to_string(), 0o755, read(Path::new(path))));
        }
    }
    files
}

/// A QEMU guest; killed when dropped.
pub struct Vm {
    child: Option<Child>,
    /// QEMU's arguments, to start the guest again if it hangs at boot.
    args: Vec<std::ffi::OsString>,
    log: PathBuf,
    seen: usize,
    echo: bool,
    name: String,
    /// When the current QEMU process started.
    started: Instant,
    /// When the console last grew, and to what length.
    quiet_since: Instant,
    log_len: usize,
    /// Whether a program has run in this guest (see [`USERSPACE_MARKERS`]).
    userspace: bool,
    restarted: bool,
    /// The guest's directory: its console log, initramfs, QEMU's
    /// monitor socket ([`Vm::monitor`]) and screendumps.
    dir: TempDir,
    /// Whether the guest has a VGA card ([`Vm::screendump`]).
    vga: bool,
    /// Screendumps taken so far.
    dumps: usize,
    /// The machine's TPM, for a guest started with one.
    tpm: Option<Tpm>,
}

/// A TPM 2.0 for a guest: swtpm behind QEMU's tpm-tis device, its NV
/// memory in a directory that outlives the guest, as a machine's TPM does.
/// Each start of QEMU is a power-on: a fresh swtpm process (PCRs reset,
/// NV memory kept).
struct Tpm {
    state: PathBuf,
    child: Option<Child>,
}

impl Tpm {
    fn socket(&self) -> PathBuf {
        self.state.join("swtpm.sock")
    }

    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("socket,id=chrtpm,path={}", self.socket().display()),
            "-tpmdev".into(),
            "emulator,id=tpm0,chardev=chrtpm".into(),
            "-device".into(),
            "tpm-tis,tpmdev=tpm0".into(),
        ]
    }

    fn power_on(&mut self) {
        self.power_off();
        let sock = self.socket();
        let _ = std::fs::remove_file(&sock);
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--terminate"])
            .arg("--tpmstate")
            .arg(format!("dir={}", self.state.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", sock.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("starting swtpm (run 'make deps')");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(30);
        while !sock.exists() {
            assert!(Instant::now() < until, "swtpm did not make {}", sock.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After QEMU is gone: swtpm ends by itself when QEMU lets go of it
    /// (its NV memory is on disk by then); stopped if it has not.
    fn power_off(&mut self) {
        if let Some(mut c) = self.child.take() {
            let until = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let base = std::env::var_os("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("kjump-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Kept when a test fails, or when KJUMP_KEEP_LOGS is set.
        if !std::thread::panicking() && std::env::var_os("KJUMP_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// How to start a guest.
pub struct VmConfig<'a> {
    pub name: &'a str,
    pub memory_mib: u32,
    pub cpus: u32,
    pub initrd: Vec<u8>,
    pub append: &'a str,
    /// Print the console to stdout as it arrives (for the demo).
    pub echo: bool,
    /// Raw disk images, attached as virtio disks /dev/vda, /dev/vdb, …
    pub disks: Vec<PathBuf>,
    /// The machine's SMBIOS system UUID; `None` gives every VM the same
    /// one ([`MACHINE_UUID`]), as one physical machine would have.
    pub uuid: Option<&'a str>,
}

/// The controller a [`Disk`] hangs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bus {
    /// virtio-blk: /dev/vdX.
    Virtio,
    /// An NVMe controller of its own: /dev/nvmeNn1.
    Nvme,
    /// An AHCI (SATA) controller of its own: /dev/sdX.
    Ahci,
    /// A USB mass-storage device on an xHCI controller of its own: /dev/sdX.
    Usb,
    /// A virtio-scsi controller of its own: /dev/sdX.
    VirtioScsi,
}

/// A raw disk image on a given controller, for [`Vm::start_with_extras`].
#[derive(Clone, Debug)]
pub struct Disk {
    pub path: PathBuf,
    pub bus: Bus,
}

impl Disk {
    pub fn new(path: &Path, bus: Bus) -> Disk {
        Disk { path: path.to_path_buf(), bus }
    }

    /// QEMU's arguments for disk number `n` (ids must differ).
    fn qemu_args(&self, n: usize) -> Vec<String> {
        let drive = |iface: &str| format!("file={},format=raw,if={iface},id=disk{n},cache=unsafe,discard=unmap", self.path.display());
        let dev = |v: &[String]| v.iter().flat_map(|d| ["-device".to_string(), d.clone()]).collect::<Vec<_>>();
        let mut args = vec!["-drive".to_string()];
        match self.bus {
            Bus::Virtio => {
                args.push(drive("virtio"));
                return args;
            }
            _ => args.push(drive("none")),
        }
        args.extend(dev(&match self.bus {
            Bus::Virtio => unreachable!(),
            Bus::Nvme => vec![format!("nvme,serial=kjump{n},drive=disk{n}")],
            Bus::Ahci => vec![format!("ahci,id=ahci{n}"), format!("ide-hd,bus=ahci{n}.0,drive=disk{n}")],
            Bus::Usb => vec![format!("qemu-xhci,id=xhci{n}"), format!("usb-storage,bus=xhci{n}.0,drive=disk{n}")],
            Bus::VirtioScsi => vec![format!("virtio-scsi-pci,id=scsi{n}"), format!("scsi-hd,bus=scsi{n}.0,drive=disk{n}")],
        }));
        args
    }
}

/// UEFI firmware for QEMU (Debian's `ovmf` package), for [`Vm::start_uefi`]:
/// its code, and the empty variable store each machine starts from.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";

/// The system UUID the test machines share.
pub const MACHINE_UUID: &str = "6b29fc40-ca47-1067-b31d-00dd010662da";

/// The command line of a guest booting the test kernel into A's initramfs.
fn a_cmdline(append: &str) -> String {
    format!("console=ttyS0 rdinit=/init panic=-1 {append}")
}

impl Vm {
    pub fn start(p: &Paths, cfg: VmConfig<'_>) -> Vm {
        let cmdline = a_cmdline(cfg.append);
        Vm::start_with(&p.kernel, &cmdline, cfg)
    }

    /// Like [`Vm::start`], on UEFI firmware ([`OVMF_CODE`]): the kernel
    /// boots through its EFI stub, as on a machine whose boot loader is an
    /// EFI application. `vars` is the firmware's variable store (a copy of
    /// [`OVMF_VARS`]); passing the same file to each boot keeps variables
    /// across power cycles, as a machine's NVRAM does.
    pub fn start_uefi(p: &Paths, cfg: VmConfig<'_>, vars: &Path) -> Vm {
        for f in [OVMF_CODE, OVMF_VARS] {
            assert!(Path::new(f).exists(), "{f} is missing: run 'make test' (make deps installs ovmf)");
        }
        if !vars.exists() {
            std::fs::copy(OVMF_VARS, vars).unwrap();
        }
        let code = format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}");
        let store = format!("if=pflash,format=raw,file={}", vars.display());
        Vm::launch(&p.kernel, &a_cmdline(cfg.append), cfg, &["-drive", &code, "-drive", &store])
    }

    /// A guest started straight into `kernel` with exactly `cmdline`, as a
    /// boot loader entry would (`cfg.append` is not used).
    pub fn start_with(kernel: &Path, cmdline: &str, cfg: VmConfig<'_>) -> Vm {
        Vm::launch(kernel, cmdline, cfg, &[])
    }

    /// Like [`Vm::start_with`] (`cmdline` `None`: as [`Vm::start`]), with
    /// `disks` on their own controllers after `cfg.disks`' virtio disks,
    /// and with a standard VGA card ([`Vm::screendump`]) when `vga` is set.
    pub fn start_with_extras(p: &Paths, cmdline: Option<&str>, cfg: VmConfig<'_>, disks: &[Disk], vga: bool) -> Vm {
        let cmdline = cmdline.map_or_else(|| a_cmdline(cfg.append), str::to_string);
        let mut extra: Vec<String> = disks.iter().enumerate().flat_map(|(n, d)| d.qemu_args(n)).collect();
        if vga {
            extra.extend(["-vga".into(), "std".into()]);
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut vm = Vm::launch(&p.kernel, &cmdline, cfg, &extra);
        vm.vga = vga;
        vm
    }

    /// Gives QEMU's monitor `command` (one line) and returns what it
    /// printed for it.
    pub fn monitor(&mut self, command: &str) -> String {
        use std::io::{BufRead as _, BufReader};
        let sock = std::os::unix::net::UnixStream::connect(self.dir.0.join("monitor.sock")).unwrap_or_else(|e| panic!("QEMU's monitor: {e}"));
        sock.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut w = &sock;
        w.write_all(format!("{command}\n").as_bytes()).unwrap();
        // The monitor prints its banner and a prompt, echoes the command,
        // and prompts again when it is done.
        let mut r = BufReader::new(&sock);
        let mut seen = String::new();
        let mut buf = Vec::new();
        while seen.matches("(qemu)").count() < 2 {
            buf.clear();
            match r.read_until(b' ', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => seen.push_str(&String::from_utf8_lossy(&buf)),
            }
        }
        seen
    }

    /// The guest's screen, through QEMU's monitor (`screendump`): width,
    /// height and RGB pixels. Only for a guest started with a VGA card.
    pub fn screendump(&mut self) -> (usize, usize, Vec<u8>) {
        assert!(self.vga, "started without a VGA card");
        let ppm = self.dir.0.join(format!("screen-{}.ppm", self.dumps));
        self.dumps += 1;
        let seen = self.monitor(&format!("screendump {}", ppm.display()));
        let data = read(&ppm);
        parse_ppm(&data).unwrap_or_else(|| panic!("{}: not a PPM picture; monitor said {seen:?}", ppm.display()))
    }

    /// Like [`Vm::start`], with a TPM 2.0 whose NV memory is kept in the
    /// directory `tpm_state` (pass the same one to each boot of one machine).
    pub fn start_with_tpm(p: &Paths, cfg: VmConfig<'_>, tpm_state: &Path) -> Vm {
        std::fs::create_dir_all(tpm_state).unwrap();
        let tpm = Tpm { state: tpm_state.to_path_buf(), child: None };
        let extra = tpm.qemu_args();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Vm::launch_with(&p.kernel, &a_cmdline(cfg.append), cfg, &extra, Some(tpm))
    }

    /// Starts QEMU on `kernel` with `cmdline`, adding `firmware_args`.
    fn launch(kernel: &Path, cmdline: &str, cfg: VmConfig<'_>, firmware_args: &[&str]) -> Vm {
        Vm::launch_with(kernel, cmdline, cfg, firmware_args, None)
    }

    fn launch_with(kernel: &Path, cmdline: &str, cfg: VmConfig<'_>, firmware_args: &[&str], tpm: Option<Tpm>) -> Vm {
        let dir = TempDir::new(cfg.name);
        let initrd = dir.0.join("a-initramfs.img");
        std::fs::write(&initrd, &cfg.initrd).unwrap();
        let log = dir.0.join("serial.log");
        std::fs::write(&log, b"").unwrap();
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        for d in &cfg.disks {
            args.push("-drive".into());
            args.push(format!("file={},format=raw,if=virtio,cache=unsafe,discard=unmap", d.display()).into());
        }
        let uuid = cfg.uuid.unwrap_or(MACHINE_UUID);
        let memory = cfg.memory_mib.to_string();
        let cpus = cfg.cpus.to_string();
        let serial = format!("file:{}", log.display());
        let monitor = format!("unix:{},server=on,wait=off", dir.0.join("monitor.sock").display());
        for a in [
            "-uuid",
            uuid,
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-m",
            &memory,
            "-smp",
            &cpus,
            "-serial",
            &serial,
            "-monitor",
            &monitor,
        ] {
            args.push(a.into());
        }
        args.extend(firmware_args.iter().map(std::ffi::OsString::from));
        for (flag, value) in [("-kernel", kernel.as_os_str()), ("-initrd", initrd.as_os_str()), ("-append", cmdline.as_ref())] {
            args.push(flag.into());
            args.push(value.into());
        }
        let now = Instant::now();
        let mut vm = Vm {
            child: None,
            args,
            log,
            seen: 0,
            echo: cfg.echo,
            name: cfg.name.to_string(),
            started: now,
            quiet_since: now,
            log_len: 0,
            userspace: false,
            restarted: false,
            dir,
            vga: false,
            dumps: 0,
            tpm,
        };
        vm.spawn();
        vm
    }

    fn spawn(&mut self) {
        if let Some(t) = &mut self.tpm {
            t.power_on();
        }
        let child = Command::new("qemu-system-x86_64")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting qemu-system-x86_64 (run 'make deps')");
        self.child = Some(child);
        self.started = Instant::now();
        self.quiet_since = self.started;
        self.log_len = 0;
    }

    /// When the running QEMU process started: after a restart at boot
    /// (see [`BOOT_STALL`]), the restart's time.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Restarts a guest whose console has been silent for [`BOOT_STALL`]
    /// before any program ran in it, or whose QEMU exited by then, once;
    /// the failed boot's console is kept beside the new one as
    /// `serial.log.hung`.
    fn watch_boot(&mut self, log: &str) {
        if log.len() != self.log_len {
            self.log_len = log.len();
            self.quiet_since = Instant::now();
        }
        if !self.userspace {
            let text = format!("\n{log}");
            self.userspace = USERSPACE_MARKERS.iter().any(|m| text.contains(m));
        }
        let running = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none());
        if self.userspace || self.restarted || (running && self.quiet_since.elapsed() < BOOT_STALL) {
            return;
        }
        // Before any program ran, QEMU under load has also reset the guest
        // silently now and then (with -no-reboot it then exits), in the
        // middle of the kernel's PCI scan: restarted once too.
        let how = if running { format!("hung at boot, console silent for {} s", BOOT_STALL.as_secs()) } else { "exited before any program ran".to_string() };
        self.kill();
        let tail = log.lines().last().unwrap_or("(nothing)");
        eprintln!("[{}] QEMU {how} after: {tail}; starting it again", self.name);
        let _ = std::fs::rename(&self.log, self.log.with_extension("log.hung"));
        std::fs::write(&self.log, b"").unwrap();
        self.seen = 0;
        self.restarted = true;
        self.spawn();
    }

    /// The whole serial log so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!("[{}] {why}\n--- last lines of the serial console ---\n{tail}\n---", self.name);
    }

    fn poll_echo(&mut self, log: &str) {
        if self.echo && log.len() > self.seen {
            print!("{}", &log[self.seen..]);
            let _ = std::io::stdout().flush();
            self.seen = log.len();
        }
    }

    /// Waits until every marker has appeared in the log, in this order;
    /// returns the line holding each.
    pub fn expect_in_order(&mut self, markers: &[&str]) -> Vec<String> {
        self.expect_in_order_within(markers, VM_TIMEOUT)
    }

    /// Like [`Vm::expect_in_order`], with a timeout of its own.
    pub fn expect_in_order_within(&mut self, markers: &[&str], timeout: Duration) -> Vec<String> {
        match self.try_in_order(markers, timeout) {
            Ok(lines) => lines,
            Err(why) => self.fail(&why),
        }
    }

    /// Like [`Vm::expect_in_order`], but returns why it stopped instead of
    /// failing: QEMU exited or `timeout` passed before a marker appeared.
    pub fn try_in_order(&mut self, markers: &[&str], timeout: Duration) -> Result<Vec<String>, String> {
        self.try_in_order_every(markers, timeout, POLL)
    }

    /// Like [`Vm::try_in_order`], looking at the log every `poll` instead
    /// of every [`POLL`] (the bench times short steps between markers).
    pub fn try_in_order_every(&mut self, markers: &[&str], timeout: Duration, poll: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            self.poll_echo(&log);
            self.watch_boot(&log);
            let mut at = 0;
            let mut lines = Vec::new();
            for m in markers {
                match log[at..].find(m) {
                    Some(i) => {
                        let start = log[..at + i].rfind('\n').map_or(0, |n| n + 1);
                        let end = log[at + i..].find('\n').map_or(log.len(), |n| at + i + n);
                        lines.push(log[start..end].trim_end().to_string());
                        at = at + i + m.len();
                    }
                    None => break,
                }
            }
            if lines.len() == markers.len() {
                return Ok(lines);
            }
            let exited = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() > deadline {
                let missing = markers[lines.len()];
                let why = if exited { "QEMU exited" } else { "timed out" };
                return Err(format!("{why} before the console showed {missing:?} (markers in order: {markers:?})"));
            }
            std::thread::sleep(poll);
        }
    }

    /// Waits for QEMU to exit, at most `timeout`; whether it did.
    pub fn try_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return true;
                }
            } else {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the guest is suspended to RAM (QEMU's `info status`
    /// says so), as a machine asleep with its power light blinking.
    pub fn wait_suspended(&mut self) {
        let deadline = Instant::now() + VM_TIMEOUT;
        loop {
            let log = self.log();
            self.poll_echo(&log);
            if self.monitor("info status").contains("suspended") {
                return;
            }
            if self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
                self.fail("QEMU exited instead of suspending");
            }
            if Instant::now() > deadline {
                self.fail("the guest did not suspend to RAM");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Wakes a guest suspended to RAM, as a key press or opening the lid
    /// would (QEMU's `system_wakeup`).
    pub fn wake(&mut self) {
        let said = self.monitor("system_wakeup");
        if said.contains("rror") {
            self.fail(&format!("system_wakeup: {said}"));
        }
    }

    /// Fails if `text` appears anywhere in the log.
    pub fn expect_absent(&mut self, text: &str) {
        if self.log().contains(text) {
            self.fail(&format!("the console shows {text:?}"));
        }
    }

    /// Waits for QEMU to exit by itself (the guest powered off).
    pub fn wait_exit(&mut self) {
        let deadline = Instant::now() + VM_TIMEOUT;
        loop {
            let log = self.log();
            self.poll_echo(&log);
            self.watch_boot(&log);
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return;
                }
            }
            if Instant::now() > deadline {
                self.fail("QEMU did not exit");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(t) = &mut self.tpm {
            t.power_off();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fails unless `e2fsck -fn` finds the ext4 filesystem on `disk` clean.
pub fn fsck_clean(disk: &Path) {
    let out = Command::new("e2fsck").arg("-fn").arg(disk).output().unwrap();
    assert!(out.status.success(), "e2fsck -fn {}: {}", disk.display(), String::from_utf8_lossy(&out.stdout));
}

/// A sparse raw disk image of `mib` MiB in `dir`.
pub fn sparse_disk(dir: &Path, name: &str, mib: u64) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(mib << 20).unwrap();
    p
}

/// The shell for A: mount, make 64 MiB of pseudo-random data, run `cmd`,
/// check the data, report CPU 1, power off.
pub fn a_script(cmd: &str) -> String {
    format!(
        r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "A: up with $(grep -c ^processor /proc/cpuinfo) CPUs"
head -c 67108864 /dev/urandom > /root/data
before=$(md5sum < /root/data)
echo "A: data written, md5 $before"
{cmd}
echo "A: kjump exited $?"
after=$(md5sum < /root/data)
if [ "$before" = "$after" ]; then echo "A: data intact"; else echo "A: DATA CHANGED $after"; fi
if [ -e /sys/devices/system/cpu/cpu1/online ]; then
  echo "A: cpu1 online=$(cat /sys/devices/system/cpu/cpu1/online)"
  taskset 2 sh -c 'echo "A: pinned task ran on cpu $(cut -d" " -f39 /proc/self/stat)"'
fi
echo "A: done"
poweroff -f
"#
    )
}

/// The boot loader entry `kjump boot-entry` wrote in A, made again on the
/// host from A's console line `A: entry cmdline …`: the entry's kernel
/// (written to `dir`), its command line, and its initramfs.
pub fn entry_files(p: &Paths, a_log: &str, dir: &Path) -> Result<(PathBuf, String, Vec<u8>), String> {
    let cmdline = a_log.lines().find_map(|l| l.trim_end().strip_prefix("A: entry cmdline ")).ok_or("A printed no entry")?.to_string();
    let region = kjump::handoff::cmdline::parse(&cmdline).map_err(|e| e.to_string())?.region.ok_or("no kjump.region= in the entry")?;
    let bz = std::fs::read(&p.kernel).map_err(|e| e.to_string())?;
    let kernel = kjump::host::boot_entry::kernel_at(&bz, region).map_err(|e| e.to_string())?;
    let path = dir.join("vmlinuz-entry");
    std::fs::write(&path, kernel).map_err(|e| e.to_string())?;
    let initrd = kjump::init::initramfs::build(&read(&p.kjump_init)).map_err(|e| e.to_string())?;
    Ok((path, cmdline, initrd))
}

/// A binary PPM picture (`P6`, 8 bits a channel, as QEMU's `screendump`
/// writes): width, height and RGB pixels.
pub fn parse_ppm(data: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    // Four header fields separated by whitespace: P6 WIDTH HEIGHT MAX.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while data.get(at)?.is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data.get(at)?.is_ascii_whitespace() {
            at += 1;
        }
        fields.push(std::str::from_utf8(&data[start..at]).ok()?.to_string());
    }
    at += 1;
    let (w, h): (usize, usize) = (fields[1].parse().ok()?, fields[2].parse().ok()?);
    (fields[0] == "P6" && fields[3] == "255" && data.len() >= at + w * h * 3).then(|| (w, h, data[at..at + w * h * 3].to_vec()))
}

/// How many pixels of an RGB picture differ from its most common colour
/// (the background).
pub fn foreground_pixels(rgb: &[u8]) -> usize {
    let mut counts = std::collections::HashMap::new();
    for px in rgb.chunks_exact(3) {
        *counts.entry(px).or_insert(0usize) += 1;
    }
    let background = counts.values().copied().max().unwrap_or(0);
    rgb.len() / 3 - background
}
