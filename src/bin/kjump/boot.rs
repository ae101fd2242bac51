//! A: what the boot needs from kjump: `kjump boot-entry` (a boot loader
//! entry that starts D directly) and `kjump initramfs` (B's and D's initramfs).

use crate::kernel::{hibernation_kernel, restore_mode_args};
use crate::settings::Settings;
use kjump::load::memmap::MemoryMap;
use kjump::{target, Error};
use std::time::Duration;

/// Where a kernel booted through UEFI finds its firmware's tables.
pub(crate) const EFI_SYSFS: &str = "/sys/firmware/efi";

/// Writes the files of a boot loader entry that starts D directly (see
/// `kjump::host::boot_entry`): the hibernation kernel asking to run at the
/// region, its initramfs, and D's command line, which reserves the rest of
/// this machine's RAM.
pub(crate) fn cmd_boot_entry(s: &Settings, dir: &str) -> Result<(), Error> {
    // Under UEFI the boot loader starts the kernel through its EFI stub,
    // which places the kernel itself, not at the entry's address; D would
    // then find itself outside the region and refuse at every resume.
    if std::path::Path::new(EFI_SYSFS).exists() {
        return Err(Error::Msg(
            "boot-entry: this machine booted through UEFI, where the kernel's EFI stub places the restore kernel itself and it would refuse to run; resume through the normal boot instead (kjump resume in the initramfs)".into(),
        ));
    }
    // A restore kernel the boot loader starts gets no key from C.
    if s.encrypt.encrypts() {
        return Err(Error::Msg(
            "boot-entry: images are encrypted (encrypt in /etc/kjump.conf), and a restore kernel started by the boot loader has no key to open them; resume through the normal boot instead (kjump resume in the initramfs)".into(),
        ));
    }
    let text = s.target.as_deref().ok_or_else(|| Error::Msg("boot-entry: no target; pass --target or set target= in /etc/kjump.conf".into()))?;
    let tgt = target::parse(text).map_err(|e| Error::Msg(format!("boot-entry: target {text}: {e}")))?;
    let dev = target::wait_for(&tgt.device, Duration::from_secs(s.wait), |m| eprintln!("kjump: boot-entry: {m}"))?;
    let map = MemoryMap::read()?;
    let region = map.choose_region(s.region_size)?;
    let mode = restore_mode_args(&tgt, s, true);
    let d = hibernation_kernel(s, &mode, Some(&dev))?;
    let kernel = kjump::host::boot_entry::kernel_at(&d.kernel, region).map_err(|e| Error::Msg(format!("boot-entry: {e}")))?;
    let cmdline = format!(
        "{} kjump.region={:#x}-{:#x} no5lvl {}",
        d.cmdline.split_whitespace().collect::<Vec<_>>().join(" "),
        region.start,
        region.end,
        kjump::host::boot_entry::reservations(&map, region)
    );
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {dir}"), e))?;
    for (name, bytes) in [("vmlinuz", &kernel[..]), ("initrd.img", &d.initrd[..]), ("cmdline", format!("{cmdline}\n").as_bytes())] {
        let path = format!("{dir}/{name}");
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(format!("writing {tmp}"), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(format!("renaming {tmp} to {path}"), e))?;
    }
    println!("kjump: wrote {dir}/vmlinuz, {dir}/initrd.img and {dir}/cmdline (the kjump region is {region})");
    println!("A GRUB entry (BIOS boot; paths as GRUB sees them, each $ written \\$):");
    println!("menuentry 'kjump resume' {{");
    println!("    linux {dir}/vmlinuz {}", cmdline.replace('$', "\\$"));
    println!("    initrd {dir}/initrd.img");
    println!("}}");
    println!("Before hibernating, 'grub-reboot \"kjump resume\"' makes the next boot use it once; if the");
    println!("restore kernel finds no image, or is not where the entry says, it reboots into the default entry.");
    println!("Run this again after changing the target, the hibernation kernel or the machine's RAM.");
    Ok(())
}

/// `kjump-init` next to `kjump` (a build tree), else where `make install` put it.
pub(crate) fn default_init(exe: &std::path::Path) -> std::path::PathBuf {
    let sibling = exe.with_file_name("kjump-init");
    if sibling.is_file() {
        sibling
    } else {
        kjump::host::config::installed_init().into()
    }
}

pub(crate) fn cmd_initramfs(output: &str, init: Option<&str>) -> Result<(), Error> {
    let init_path = match init {
        Some(p) => std::path::PathBuf::from(p),
        None => default_init(&std::env::current_exe().map_err(|e| Error::io("finding kjump's own path", e))?),
    };
    let init = std::fs::read(&init_path).map_err(|e| Error::io(format!("reading {}", init_path.display()), e))?;
    let image = kjump::init::initramfs::build(&init)?;
    let tmp = format!("{output}.tmp");
    std::fs::write(&tmp, &image).map_err(|e| Error::io(format!("writing {tmp}"), e))?;
    std::fs::rename(&tmp, output).map_err(|e| Error::io(format!("renaming {tmp} to {output}"), e))?;
    println!("kjump: wrote {output} ({} KiB, init {})", image.len() / 1024, init_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kjump::host::config::LIBDIR;

    #[test]
    fn init_defaults_to_the_sibling_then_the_installed_one() {
        let dir = std::env::temp_dir().join(format!("kjump-init-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("kjump");
        assert_eq!(default_init(&exe), std::path::PathBuf::from(format!("{LIBDIR}/kjump-init")));
        std::fs::write(dir.join("kjump-init"), b"").unwrap();
        assert_eq!(default_init(&exe), dir.join("kjump-init"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
