#!/bin/sh
# Makes the disks `make test-distro` boots, in OUTDIR: root.img, the Debian
# root filesystem (scripts/debian-rootfs.sh) with kjump installed from its
# Debian package ('make deb', then dpkg -i in the root filesystem) and
# configured to hibernate to /dev/vdb with its key sealed to the machine's
# TPM (encrypt = tpm2), and initrd.img, made by Debian's own mkinitramfs
# (with kjump's initramfs-tools hook) for the test kernel BZIMAGE. Needs
# root (chroot, file ownership).
# With "dracut" last, ROOTFS_TAR is the dracut variant of the root
# filesystem (scripts/debian-rootfs.sh dracut) and initrd.img is made by
# Debian's dracut, with kjump's dracut module, instead.
# Usage: distro-image.sh ROOTFS_TAR BZIMAGE OUTDIR [dracut]
set -eu
[ $# -eq 3 ] || [ $# -eq 4 ] || { echo "usage: $0 ROOTFS_TAR BZIMAGE OUTDIR [dracut]" >&2; exit 2; }
tarball=$1 bzimage=$2 out=$3 tool=${4:-mkinitramfs}
case "$tool" in
	mkinitramfs | dracut) ;;
	*) echo "distro-image.sh: no initramfs tool '$tool' (known: dracut)" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
guest="$here/tests/distro-guest"
root="$out/rootfs"
rm -rf "$root"; mkdir -p "$root"
tar -C "$root" --numeric-owner -xf "$tarball"

# The kernel's release, from the bzImage header (boot protocol: the string
# at kernel_version + 0x200).
ptr=$(od -An -tu2 -j $((0x20e)) -N2 "$bzimage" | tr -d ' ')
kver=$(dd if="$bzimage" bs=1 skip=$((ptr + 0x200)) count=64 2>/dev/null | tr '\0' '\n' | head -n1 | cut -d' ' -f1)
[ -n "$kver" ] || { echo "distro-image.sh: no kernel version in $bzimage" >&2; exit 1; }

# kjump, as a user installs it: its package, with dpkg in the root
# filesystem, which holds everything the package depends on (no network).
# /proc, /sys and /dev are not mounted yet: the postinst needs none of
# them, and the initramfs trigger it sets off finds no kernel installed
# (mkinitramfs runs below), so it does nothing.
# The tests of tests/distro.rs run at the same time and share target/deb:
# one builds and copies the package at a time.
mkdir -p "$here/target"
exec 9>"$here/target/distro-image.lock"
flock 9
deb=$(make -s --no-print-directory -C "$here" deb)
cp "$deb" "$root/tmp/"
exec 9>&-
chroot "$root" dpkg -i "/tmp/${deb##*/}" >&2
rm -f "$root/tmp/${deb##*/}"
printf '\n# make test-distro: the second virtio disk; keys sealed to the TPM.\ntarget = /dev/vdb\nencrypt = tpm2\n' >> "$root/etc/kjump.conf"

# This system hibernates only with kjump: no swap resume device for the
# initramfs to wait for (mkinitramfs would otherwise take this machine's swap).
mkdir -p "$root/etc/initramfs-tools/conf.d"
echo RESUME=none > "$root/etc/initramfs-tools/conf.d/resume"

# A system-sleep hook that records its calls, and a short
# suspend-then-hibernate delay (systemd-sleep.conf(5)).
mkdir -p "$root/usr/lib/systemd/system-sleep" "$root/etc/systemd/sleep.conf.d"
install -m 755 "$guest/kjump-sleep-hook" "$root/usr/lib/systemd/system-sleep/kjump-distro-hook"
printf '[Sleep]\nHibernateDelaySec=20s\n' > "$root/etc/systemd/sleep.conf.d/50-kjump-distro-test.conf"

# A laptop's lid: closing it means a hybrid sleep (logind.conf(5)).
mkdir -p "$root/etc/systemd/logind.conf.d"
printf '[Login]\nHandleLidSwitch=hybrid-sleep\nHandleLidSwitchExternalPower=hybrid-sleep\n' > "$root/etc/systemd/logind.conf.d/50-kjump-distro-test.conf"

# The workload, the lid switch and the test's driver.
install -m 755 "$guest/kjump-workload" "$guest/kjump-lid" "$guest/kjump-distro-test" "$root/usr/local/bin/"
install -m 644 "$guest/workload.service" "$guest/kjump-distro-test.service" "$root/etc/systemd/system/"
for u in workload kjump-distro-test; do
	ln -sf "/etc/systemd/system/$u.service" "$root/etc/systemd/system/multi-user.target.wants/$u.service"
done

# The test kernel has every driver built in: no modules, an empty index.
# Its config goes where Debian keeps one (mkinitramfs reads it to pick a
# compressor the kernel can unpack).
mkdir -p "$root/lib/modules/$kver"
: > "$root/lib/modules/$kver/modules.order"
: > "$root/lib/modules/$kver/modules.builtin"
: > "$root/lib/modules/$kver/modules.builtin.modinfo"
config="$(dirname "$bzimage")/.config"
[ -f "$config" ] || { echo "distro-image.sh: no kernel config beside $bzimage" >&2; exit 1; }
cp "$config" "$root/boot/config-$kver"
# Debian's mkinitramfs (or dracut), in the root filesystem, in a mount
# namespace of its own so nothing stays mounted. Its /dev holds only the
# basic nodes (and /dev/fd, for bash's <(...) in dracut's modules): no
# disk of this machine is visible to the hooks.
# dracut runs as Debian's kernel hook (/etc/kernel/postinst.d/dracut) runs
# it; Debian's dracut makes a generic initramfs (every module whose check
# passes: kjump's, once kjump.conf names a target), said here with
# --no-hostonly, since from this chroot a host-only one could not find the
# VM's disks.
unshare -m sh -c '
	mount -t proc proc "$1/proc" && mount -t sysfs sysfs "$1/sys" && mount -t tmpfs tmpfs "$1/dev" &&
	mknod -m 666 "$1/dev/null" c 1 3 && mknod -m 666 "$1/dev/zero" c 1 5 &&
	mknod -m 666 "$1/dev/random" c 1 8 && mknod -m 666 "$1/dev/urandom" c 1 9 &&
	ln -s /proc/self/fd "$1/dev/fd" &&
	chroot "$1" depmod "$2" &&
	if [ "$3" = dracut ]; then
		chroot "$1" dracut --no-hostonly --force "/boot/initrd.img-$2" "$2"
	else
		chroot "$1" mkinitramfs -o "/boot/initrd.img-$2" "$2"
	fi
' sh "$root" "$kver" "$tool" >&2
cp "$root/boot/initrd.img-$kver" "$out/initrd.img"
# Root filesystem image, 2 GiB sparse.
rm -f "$out/root.img"
mkfs.ext4 -q -F -L debian -d "$root" "$out/root.img" 2G
rm -rf "$root"
echo "distro-image.sh: $out/root.img and $out/initrd.img for kernel $kver" >&2
