#!/bin/sh
# Builds the Debian 12 root filesystem `make test-distro` boots: debootstrap
# (minbase) plus systemd, udev, dbus, initramfs-tools, busybox and tpm2-tools
# (encrypt = tpm2 seals in A and unseals in C through it), all from
# Debian's own archive. Cached outside the checkout as a tarball, keyed by
# this script and the variant, so CI builds it once. Prints the tarball's
# path last. Needs root (debootstrap, chroot).
#
#   scripts/debian-rootfs.sh [dracut]
#
# "dracut": Debian's dracut package instead of initramfs-tools (the two
# conflict in Debian: each provides linux-initramfs-tool).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
suite=bookworm
mirror=${KJUMP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
variant=${1:-}
case "$variant" in
  "") initramfs_tool=initramfs-tools name=debian-$suite ;;
  dracut) initramfs_tool=dracut name=debian-$suite-dracut ;;
  *) echo "debian-rootfs.sh: no variant '$variant' (known: dracut)" >&2; exit 2 ;;
esac
packages=systemd,systemd-sysv,udev,dbus,$initramfs_tool,busybox,zstd,kmod,e2fsprogs,procps,tpm2-tools
key=$( (cat "$0"; echo "$variant") | sha256sum | cut -c1-16)
cache=${KJUMP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kjump}
out="$cache/$name-$key.tar"
if [ -f "$out" ]; then echo "$out"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "debian-rootfs.sh: debootstrap needs root: run 'sudo make test-distro'" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-rootfs.sh: debootstrap missing: run 'make deps'" >&2; exit 1; }
mkdir -p "$cache"
root="$cache/$name-$key.tmp"
rm -rf "$root"
echo "debian-rootfs.sh: debootstrap $suite from $mirror into $root (a few minutes, once)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2
# A machine of its own: fixed identity, root on the first virtio disk,
# nothing asked at first boot.
echo kjump-distro > "$root/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$root/etc/fstab"
rm -f "$root/etc/machine-id"
chroot "$root" systemd-machine-id-setup >&2
chroot "$root" apt-get clean
tar -C "$root" --numeric-owner -cf "$out.tmp" .
mv "$out.tmp" "$out"
rm -rf "$root"
echo "$out"
