//! `kjump`: the trigger on the main system (A).

use std::process::ExitCode;

use kjump::check;
use kjump::jump::{self, HibernationKernel};
use kjump::units::{parse_size, MIB};
use kjump::Error;

const USAGE: &str = "\
kjump — hibernation for Linux built on kexec jump

Usage:
  kjump check [--jump] [OPTIONS]   say whether this machine can hibernate with kjump;
                                   --jump also does a live round trip A -> B -> A
  kjump initramfs --output FILE [--init PATH]
                                   write the hibernation initramfs (holds only kjump-init)
  kjump --help | --version

Options:
  --kernel PATH        hibernation kernel (bzImage)   [default: /boot/kjump/vmlinuz]
  --initrd PATH        hibernation initramfs          [default: /boot/kjump/initramfs.img]
  --region-size SIZE   RAM the hibernation kernel runs in, set aside only while
                       it runs (K/M/G suffixes)       [default: 128M]
  --append ARGS        more arguments for the hibernation kernel's command line

Exit status: 0 when all is well, 1 when a check or the jump failed, 2 on bad usage.
";

struct Opts {
    jump: bool,
    kernel: String,
    initrd: String,
    region_size: u64,
    append: String,
    output: Option<String>,
    init: Option<String>,
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("kjump: {msg}; see 'kjump --help'");
    ExitCode::from(2)
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        jump: false,
        kernel: "/boot/kjump/vmlinuz".into(),
        initrd: "/boot/kjump/initramfs.img".into(),
        region_size: 128 * MIB,
        append: String::new(),
        output: None,
        init: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--jump" => o.jump = true,
            "--kernel" => o.kernel = value("--kernel")?,
            "--initrd" => o.initrd = value("--initrd")?,
            "--append" => o.append = value("--append")?,
            "--output" | "-o" => o.output = Some(value("--output")?),
            "--init" => o.init = Some(value("--init")?),
            "--region-size" => {
                let v = value("--region-size")?;
                o.region_size = parse_size(&v).filter(|&s| s >= 48 * MIB).ok_or_else(|| {
                    format!("--region-size {v:?} is not a size of at least 48M (like 128M)")
                })?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd == "--help" || cmd == "-h" || cmd == "help" {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if cmd == "--version" {
        println!("kjump {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let opts = match parse_opts(&args[1..]) {
        Ok(o) => o,
        Err(m) => return usage_error(&m),
    };
    let result = match cmd.as_str() {
        "check" => cmd_check(&opts),
        "initramfs" => cmd_initramfs(&opts),
        other => return usage_error(&format!("unknown command {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kjump: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cmd_check(o: &Opts) -> Result<(), Error> {
    let items = check::run(&check::Config { kernel: o.kernel.clone(), initrd: o.initrd.clone(), region_size: o.region_size });
    println!("kjump check:");
    print!("{}", check::report(&items));
    if let Some(bad) = items.iter().find(|i| !i.ok) {
        return Err(Error::Msg(format!("check: this machine cannot hibernate with kjump: {}", bad.text)));
    }
    println!("kjump check: this machine can hibernate with kjump");
    if !o.jump {
        return Ok(());
    }
    let own = std::fs::read_to_string("/proc/cmdline").map_err(|e| Error::io("reading /proc/cmdline", e))?;
    let hk = HibernationKernel {
        kernel: std::fs::read(&o.kernel).map_err(|e| Error::io(format!("reading {}", o.kernel), e))?,
        initrd: std::fs::read(&o.initrd).map_err(|e| Error::io(format!("reading {}", o.initrd), e))?,
        cmdline: format!(
            "{} rdinit=/kjump-init kjump.mode=roundtrip nokaslr nr_cpus=1 panic=10 {}",
            jump::console_args(&own),
            o.append
        ),
        region_size: o.region_size,
    };
    let loaded = jump::load_hibernation_kernel(&hk)?;
    println!(
        "kjump: loaded the hibernation kernel in {:#x}-{:#x} ({} segments); jumping to it",
        loaded.region.0, loaded.region.1, loaded.segments
    );
    let away = jump::jump_to_loaded()?;
    println!("kjump: back in A after {:.2} s (round trip A -> B -> A)", away.as_secs_f64());
    Ok(())
}

fn cmd_initramfs(o: &Opts) -> Result<(), Error> {
    let output = o.output.as_deref().ok_or_else(|| Error::Msg("initramfs: --output FILE is required".into()))?;
    let init_path = match &o.init {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe()
            .map_err(|e| Error::io("finding kjump's own path", e))?
            .with_file_name("kjump-init"),
    };
    let init = std::fs::read(&init_path).map_err(|e| Error::io(format!("reading {}", init_path.display()), e))?;
    let image = kjump::initramfs::build(&init)?;
    let tmp = format!("{output}.tmp");
    std::fs::write(&tmp, &image).map_err(|e| Error::io(format!("writing {tmp}"), e))?;
    std::fs::rename(&tmp, output).map_err(|e| Error::io(format!("renaming {tmp} to {output}"), e))?;
    println!("kjump: wrote {output} ({} KiB, init {})", image.len() / 1024, init_path.display());
    Ok(())
}
