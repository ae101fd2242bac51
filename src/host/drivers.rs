//! Does the hibernation kernel drive the target's disk?
//!
//! B and D run with no modules: the drivers between the CPU and the disk
//! holding the target must be built into the hibernation kernel, or B
//! waits for the target in vain and jumps back with nothing saved. So A
//! compares, before any jump, the driver chain of the target's device as
//! its own sysfs shows it with the hibernation kernel's manifest: the
//! kernel's `.config`, kept beside it as `vmlinuz.config` (`make stage`
//! and `make install` put it there; [`manifest_path`]).
//!
//! sysfs, as Linux 6.12 shows it: `/sys/class/block/NAME` links into
//! `/sys/devices/...`; each ancestor bound to a driver has a `driver`
//! symlink whose last component is the driver's name (`sd`, `ahci`,
//! `usb-storage`, `xhci_hcd`, `nvme`, `virtio_blk`, `virtio-pci`, ...).
//! Drivers this table does not know (a PCI bridge's `pcieport`, say) are
//! left out of the comparison.

use std::path::{Path, PathBuf};

use crate::host::check::Item;

/// Driver names as sysfs shows them, and the options that build them in.
/// Some are not in kjump's own kernel (`uhci_hcd`, `vmd`, the Realtek and
/// ACPI SD readers): they are here so that a disk behind them is refused
/// by name rather than lost in B.
pub const TABLE: &[(&str, &[&str])] = &[
    ("nvme", &["BLK_DEV_NVME"]),
    ("vmd", &["VMD"]),
    ("ahci", &["SATA_AHCI"]),
    ("ata_piix", &["ATA_PIIX"]),
    ("sd", &["BLK_DEV_SD"]),
    ("usb-storage", &["USB_STORAGE"]),
    ("uas", &["USB_UAS"]),
    ("usb", &["USB"]),
    ("hub", &["USB"]),
    ("xhci_hcd", &["USB_XHCI_HCD", "USB_XHCI_PCI"]),
    ("ehci-pci", &["USB_EHCI_HCD", "USB_EHCI_PCI"]),
    ("ohci-pci", &["USB_OHCI_HCD", "USB_OHCI_HCD_PCI"]),
    ("uhci_hcd", &["USB_UHCI_HCD"]),
    ("virtio_blk", &["VIRTIO_BLK"]),
    ("virtio_scsi", &["SCSI_VIRTIO"]),
    ("virtio-pci", &["VIRTIO_PCI"]),
    ("mmcblk", &["MMC_BLOCK"]),
    ("sdhci-pci", &["MMC_SDHCI", "MMC_SDHCI_PCI"]),
    ("sdhci-acpi", &["MMC_SDHCI", "MMC_SDHCI_ACPI"]),
    ("rtsx_pci", &["MISC_RTSX_PCI"]),
    ("rtsx_pci_sdmmc", &["MMC_REALTEK_PCI"]),
    ("hv_storvsc", &["HYPERV_STORAGE"]),
    ("vbd", &["XEN_BLKDEV_FRONTEND"]),
];

/// Where the manifest of hibernation kernel `kernel` is: beside it, with
/// `.config` added to its name (`/usr/local/lib/kjump/vmlinuz.config`).
pub fn manifest_path(kernel: &str) -> String {
    format!("{kernel}.config")
}

/// The options a kernel config builds in (`CONFIG_X=y`), without the
/// `CONFIG_` prefix. A module (`=m`) does not count: B loads none.
pub fn built_in(config: &str) -> Vec<&str> {
    config.lines().filter_map(|l| l.trim().strip_prefix("CONFIG_")?.strip_suffix("=y")).collect()
}

/// The drivers bound along the path from block device `name` (a bare name
/// such as `nvme0n1p2`) up to the root of `sys`'s device tree, nearest
/// first, each once. Empty when sysfs has no such device.
pub fn driver_chain(sys: &Path, name: &str) -> Vec<String> {
    let Ok(devices) = sys.join("devices").canonicalize() else { return Vec::new() };
    let Ok(start) = sys.join("class/block").join(name).canonicalize() else { return Vec::new() };
    let mut chain: Vec<String> = Vec::new();
    let mut todo = vec![start];
    let mut followed = false;
    while let Some(mut at) = todo.pop() {
        while at.starts_with(&devices) && at != devices {
            if let Ok(link) = std::fs::read_link(at.join("driver")) {
                if let Some(d) = link.file_name().and_then(|d| d.to_str()) {
                    if !chain.iter().any(|c| c == d) {
                        chain.push(d.to_string());
                    }
                }
            }
            // With NVMe multipath (distribution kernels), the disk hangs
            // under a virtual subsystem that links to its controllers.
            if at.file_name().is_some_and(|n| n.to_string_lossy().starts_with("nvme-subsys")) && !followed {
                followed = true;
                todo.extend(nvme_controllers(&at));
            }
            if !at.pop() {
                break;
            }
        }
    }
    chain
}

/// The controllers an NVMe subsystem directory links to (`nvme0`, …).
fn nvme_controllers(subsys: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(subsys) else { return Vec::new() };
    let mut out: Vec<PathBuf> = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("nvme")).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter_map(|e| e.path().canonicalize().ok())
        .collect();
    out.sort();
    out
}

/// The first driver of `chain` that `config` does not build in, with the
/// options it needs.
pub fn missing<'a>(chain: &[String], config: &str) -> Option<(String, &'a [&'a str])> {
    let have = built_in(config);
    chain.iter().find_map(|d| {
        let (_, opts) = TABLE.iter().find(|(name, _)| name == d)?;
        opts.iter().any(|o| !have.contains(o)).then(|| (d.clone(), *opts))
    })
}

/// The check of block device `dev` against the manifest of hibernation
/// kernel `kernel`, as sysfs under `sys` shows the device.
pub fn check_device(sys: &Path, kernel: &str, dev: &Path) -> Item {
    let manifest = manifest_path(kernel);
    let name = dev.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let chain = driver_chain(sys, &name);
    let known: Vec<&str> = chain.iter().map(String::as_str).filter(|d| TABLE.iter().any(|(n, _)| n == d)).collect();
    if known.is_empty() {
        return Item { ok: true, text: format!("target {}: no disk controller kjump knows of in sysfs; its drivers are not checked", dev.display()) };
    }
    let config = match std::fs::read_to_string(&manifest) {
        Ok(c) => c,
        Err(e) => {
            return Item {
                ok: true,
                text: format!(
                    "target {} needs {}; not checked: no manifest of the hibernation kernel's drivers ({manifest}: {e})",
                    dev.display(),
                    known.join(", ")
                ),
            }
        }
    };
    match missing(&chain, &config) {
        Some((driver, opts)) => Item {
            ok: false,
            text: format!(
                "the hibernation kernel {kernel} lacks the {driver} driver that target {} needs ({} built in, says {manifest}); B could not reach the disk",
                dev.display(),
                opts.iter().map(|o| format!("CONFIG_{o}=y")).collect::<Vec<_>>().join(" and ")
            ),
        },
        None => Item { ok: true, text: format!("hibernation kernel drives target {} ({})", dev.display(), known.join(", ")) },
    }
}

/// Whether hibernation kernel `kernel` can suspend to RAM, as hybrid
/// sleep needs (`--after suspend`), by its manifest: `None` when there is
/// no manifest to tell. Without it B powers off instead, and the next
/// boot resumes.
pub fn can_suspend(kernel: &str) -> Option<bool> {
    let config = std::fs::read_to_string(manifest_path(kernel)).ok()?;
    Some(config.lines().any(|l| l.trim() == "CONFIG_SUSPEND=y"))
}

/// `kjump check`'s and `kjump hibernate`'s item for the target `target`
/// (as given: `/dev/sdb2`, `UUID=…`, `/dev/vdb:/file`), or `None` when
/// there is none, or it does not name a device present here (other checks
/// say so).
pub fn check_target(kernel: &str, target: Option<&str>) -> Option<Item> {
    let t = crate::target::parse(target?).ok()?;
    let dev: PathBuf = crate::target::resolve(&t.device).ok()??;
    // A `/dev` path may be a link (`/dev/disk/by-id/…`): sysfs knows the
    // kernel's name.
    let dev = dev.canonicalize().unwrap_or(dev);
    Some(check_device(Path::new("/sys"), kernel, &dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs-like tree under `root`: `devices/<path>` for each block
    /// device, `class/block/<name>` linking to it, and a `driver` link in
    /// each ancestor given.
    fn tree(root: &Path, disks: &[(&str, &str)], drivers: &[(&str, &str)]) {
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root.join("class/block")).unwrap();
        for (name, path) in disks {
            let d = root.join("devices").join(path);
            std::fs::create_dir_all(&d).unwrap();
            std::os::unix::fs::symlink(&d, root.join("class/block").join(name)).unwrap();
        }
        for (path, driver) in drivers {
            let target = root.join("bus/x/drivers").join(driver);
            std::fs::create_dir_all(&target).unwrap();
            std::os::unix::fs::symlink(&target, root.join("devices").join(path).join("driver")).unwrap();
        }
    }

    const PCI: &str = "pci0000:00/0000:00:04.0";
    const USB: &str = "pci0000:00/0000:00:05.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0";

    #[test]
    fn chains_of_nvme_usb_and_virtio_disks() {
        let root = std::env::temp_dir().join(format!("kjump-drivers-{}", std::process::id()));
        tree(
            &root,
            &[
                ("nvme0n1p2", &format!("{PCI}/nvme/nvme0/nvme0n1/nvme0n1p2")),
                ("sda", &format!("{USB}/block/sda")),
                ("vda", "pci0000:00/0000:00:06.0/virtio2/block/vda"),
                ("loop0", "virtual/block/loop0"),
                ("nvme1n1", "virtual/nvme-subsystem/nvme-subsys1/nvme1n1"),
            ],
            &[
                (PCI, "nvme"),
                ("pci0000:00/0000:00:05.0", "xhci_hcd"),
                ("pci0000:00/0000:00:05.0/usb1", "usb"),
                ("pci0000:00/0000:00:05.0/usb1/1-1", "usb"),
                ("pci0000:00/0000:00:05.0/usb1/1-1/1-1:1.0", "usb-storage"),
                (USB, "sd"),
                ("pci0000:00/0000:00:06.0", "virtio-pci"),
                ("pci0000:00/0000:00:06.0/virtio2", "virtio_blk"),
            ],
        );
        // NVMe multipath: the subsystem links to its controller.
        std::fs::create_dir_all(root.join("devices/pci0000:00/0000:00:07.0/nvme/nvme1")).unwrap();
        std::os::unix::fs::symlink(root.join("devices/pci0000:00/0000:00:07.0/nvme/nvme1"), root.join("devices/virtual/nvme-subsystem/nvme-subsys1/nvme1"))
            .unwrap();
        std::os::unix::fs::symlink(root.join("bus/x/drivers/nvme"), root.join("devices/pci0000:00/0000:00:07.0/driver")).unwrap();
        let chains = ["nvme0n1p2", "sda", "vda", "loop0", "nosuch", "nvme1n1"].map(|n| driver_chain(&root, n));
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(chains[0], ["nvme"]);
        assert_eq!(chains[1], ["sd", "usb-storage", "usb", "xhci_hcd"]);
        assert_eq!(chains[2], ["virtio_blk", "virtio-pci"]);
        assert!(chains[3].is_empty() && chains[4].is_empty());
        assert_eq!(chains[5], ["nvme"]);
    }

    #[test]
    fn the_first_missing_driver_is_named() {
        let usb: Vec<String> = ["sd", "uas", "usb", "xhci_hcd", "pcieport"].map(String::from).to_vec();
        let all = "CONFIG_BLK_DEV_SD=y\nCONFIG_USB_UAS=y\nCONFIG_USB=y\nCONFIG_USB_XHCI_HCD=y\nCONFIG_USB_XHCI_PCI=y\n";
        assert_eq!(missing(&usb, all), None, "pcieport is not one kjump knows: not checked");
        let no_uas = all.replace("CONFIG_USB_UAS=y", "# CONFIG_USB_UAS is not set");
        assert_eq!(missing(&usb, &no_uas), Some(("uas".to_string(), &["USB_UAS"][..])));
        let module = all.replace("CONFIG_USB_XHCI_PCI=y", "CONFIG_USB_XHCI_PCI=m");
        assert_eq!(missing(&usb, &module).map(|m| m.0), Some("xhci_hcd".to_string()), "a module does not count");
        assert_eq!(missing(&["nvme".to_string()], "CONFIG_BLK_DEV_NVMEX=y\n").map(|m| m.0), Some("nvme".to_string()));
    }

    #[test]
    fn check_reads_the_manifest_beside_the_kernel() {
        let root = std::env::temp_dir().join(format!("kjump-drivers-check-{}", std::process::id()));
        tree(&root, &[("nvme0n1", &format!("{PCI}/nvme/nvme0/nvme0n1")), ("vda", "virtual/vda")], &[(PCI, "nvme")]);
        let kernel = root.join("vmlinuz").display().to_string();
        let dev = Path::new("/dev/nvme0n1");
        let unknown = check_device(&root, &kernel, dev);
        assert_eq!(can_suspend(&kernel), None);
        std::fs::write(manifest_path(&kernel), "CONFIG_BLK_DEV_NVME=y\n").unwrap();
        let good = check_device(&root, &kernel, dev);
        assert_eq!(can_suspend(&kernel), Some(false));
        std::fs::write(manifest_path(&kernel), "CONFIG_VIRTIO_BLK=y\n# CONFIG_BLK_DEV_NVME is not set\nCONFIG_SUSPEND=y\n").unwrap();
        assert_eq!(can_suspend(&kernel), Some(true));
        let bad = check_device(&root, &kernel, dev);
        let other = check_device(&root, &kernel, Path::new("/dev/vda"));
        let _ = std::fs::remove_dir_all(&root);
        assert!(unknown.ok && unknown.text.contains("not checked: no manifest"), "{unknown:?}");
        assert!(good.ok && good.text.contains("(nvme)"), "{good:?}");
        assert!(!bad.ok, "{bad:?}");
        assert!(bad.text.contains("lacks the nvme driver that target /dev/nvme0n1 needs (CONFIG_BLK_DEV_NVME=y built in"), "{bad:?}");
        assert!(!bad.text.contains('\n'));
        assert!(other.ok && other.text.contains("not checked"), "{other:?}");
    }
}
