//! Whether the target's disk controller signals its interrupts by message
//! (MSI or MSI-X), so that B and D can boot without ACPI's legacy PCI
//! interrupt routing.
//!
//! Routing a PCI device's INTx pin through ACPI means evaluating the link
//! devices' AML (`_PRS`, `_CRS`, `_SRS`); under QEMU's TCG that took 0.35 s
//! of every boot of B and D, for a route the disk controller never uses
//! when it has MSI. So when the controller uses MSI in the kernel that
//! loads B (A, or C on resume), B's command line gets [`SKIP_ROUTING`]
//! (`acpi=noirq`). B checks again before it touches the disk
//! ([`check_in_hibernation_kernel`]): a hibernation kernel built without
//! `CONFIG_PCI_MSI` would fall back to INTx with nothing to route it, and
//! is refused with a line that says so, before anything is written.
//!
//! sysfs, as Linux 6.12 shows it: `/sys/class/block/NAME` links into
//! `/sys/devices/...`; the PCI function that owns the disk is the nearest
//! ancestor with `config` and `class` files, and while MSI or MSI-X is on,
//! it has a `msi_irqs` directory with one entry per vector.

use std::path::{Path, PathBuf};

use crate::Error;

/// What B's and D's command line gets when their disk needs no legacy
/// interrupt routing.
pub const SKIP_ROUTING: &str = "acpi=noirq";

/// Whether block device `dev` (a `/dev` path or a bare name such as `vda1`)
/// sits behind a PCI function that has MSI or MSI-X on, as sysfs under
/// `sys` shows it. `None` when no PCI function is found (a virtual device,
/// or sysfs missing).
pub fn controller_uses_msi(sys: &Path, dev: &Path) -> Option<bool> {
    let name = dev.file_name()?;
    let devices = sys.join("devices").canonicalize().ok()?;
    let mut at: PathBuf = sys.join("class/block").join(name).canonicalize().ok()?;
    while at.starts_with(&devices) && at != devices {
        if at.join("config").is_file() && at.join("class").is_file() {
            let vectors = std::fs::read_dir(at.join("msi_irqs")).map(|d| d.count()).unwrap_or(0);
            return Some(vectors > 0);
        }
        if !at.pop() {
            break;
        }
    }
    None
}

/// Whether the hibernation kernel may skip legacy interrupt routing for
/// `dev`: its controller uses MSI here.
pub fn may_skip_routing(dev: &Path) -> bool {
    controller_uses_msi(Path::new("/sys"), dev) == Some(true)
}

/// In B or D: when the command line skips legacy routing, `dev`'s
/// controller must use MSI, or its interrupts would go nowhere. `Ok(true)`
/// when routing was skipped (and the controller uses MSI).
pub fn check_in_hibernation_kernel(dev: &Path) -> Result<bool, Error> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    check(&cmdline, controller_uses_msi(Path::new("/sys"), dev), dev)
}

fn check(cmdline: &str, uses_msi: Option<bool>, dev: &Path) -> Result<bool, Error> {
    if !cmdline.split_whitespace().any(|w| w == SKIP_ROUTING) {
        return Ok(false);
    }
    if uses_msi == Some(true) {
        return Ok(true);
    }
    Err(Error::Msg(format!(
        "{}'s controller does not use MSI in this kernel, which boots with {SKIP_ROUTING}: \
         build the hibernation kernel with CONFIG_PCI_MSI=y",
        dev.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A sysfs tree with a virtio disk (MSI-X on, partition vda1), an IDE
    /// disk without MSI, and a device-mapper disk.
    fn sysfs() -> PathBuf {
        let root = std::env::temp_dir().join(format!("kjump-msi-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pci = root.join("devices/pci0000:00");
        let mk = |p: &Path| std::fs::create_dir_all(p).unwrap();
        let file = |p: PathBuf| std::fs::write(p, "x").unwrap();
        for (func, msi) in [("0000:00:04.0", true), ("0000:00:01.1", false)] {
            let d = pci.join(func);
            mk(&d);
            file(d.join("config"));
            file(d.join("class"));
            if msi {
                mk(&d.join("msi_irqs"));
                file(d.join("msi_irqs/24"));
            }
        }
        // virtio1 has vendor and device files of its own: not a PCI function.
        let vda = pci.join("0000:00:04.0/virtio1/block/vda");
        mk(&vda.join("vda1"));
        file(pci.join("0000:00:04.0/virtio1/vendor"));
        let sda = pci.join("0000:00:01.1/ata1/host0/target0:0:0/0:0:0:0/block/sda");
        mk(&sda);
        let dm = root.join("devices/virtual/block/dm-0");
        mk(&dm);
        mk(&root.join("class/block"));
        symlink(&vda, root.join("class/block/vda")).unwrap();
        symlink(vda.join("vda1"), root.join("class/block/vda1")).unwrap();
        symlink(&sda, root.join("class/block/sda")).unwrap();
        symlink(&dm, root.join("class/block/dm-0")).unwrap();
        root
    }

    #[test]
    fn finds_the_controller_of_a_disk_or_partition() {
        let sys = sysfs();
        assert_eq!(controller_uses_msi(&sys, Path::new("/dev/vda")), Some(true));
        assert_eq!(controller_uses_msi(&sys, Path::new("/dev/vda1")), Some(true));
        assert_eq!(controller_uses_msi(&sys, Path::new("sda")), Some(false));
        assert_eq!(controller_uses_msi(&sys, Path::new("/dev/dm-0")), None);
        assert_eq!(controller_uses_msi(&sys, Path::new("/dev/nvme0n1")), None);
        assert_eq!(controller_uses_msi(&sys.join("absent"), Path::new("/dev/vda")), None);
        assert_eq!(controller_uses_msi(&sys, Path::new("/")), None);
        std::fs::remove_dir_all(sys).unwrap();
    }

    #[test]
    fn the_hibernation_kernel_refuses_a_disk_without_msi_only_when_routing_is_off() {
        let dev = Path::new("/dev/sda");
        assert!(matches!(check("console=ttyS0 acpi=noirq", Some(true), dev), Ok(true)));
        assert!(matches!(check("console=ttyS0", Some(false), dev), Ok(false)));
        assert!(matches!(check("console=ttyS0", None, dev), Ok(false)));
        assert!(matches!(check("acpi=noirqx", None, dev), Ok(false)));
        let e = check("console=ttyS0 acpi=noirq quiet", Some(false), dev).unwrap_err().to_string();
        assert!(e.contains("/dev/sda") && e.contains("CONFIG_PCI_MSI=y"), "{e}");
        assert!(check("acpi=noirq", None, dev).is_err());
    }
}
