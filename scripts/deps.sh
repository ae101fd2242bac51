#!/bin/sh
# Installs what kjump's build and tests need, and nothing when all is there:
# the musl target, rustfmt and clippy (make lint), QEMU, busybox (for the test harness's A system only),
# debootstrap (make test-distro), makedumpfile (an independent reader of B's /proc/vmcore in a test),
# Debian's linux-source-6.12 and the kernel build dependencies.
set -eu
missing=""
for pkg in qemu-system-x86 linux-source-6.12 busybox-static build-essential flex bison bc \
           libelf-dev libssl-dev cpio xz-utils e2fsprogs lz4 debootstrap ovmf makedumpfile; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "deps: installing$missing" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  echo "deps: adding the x86_64-unknown-linux-musl target" >&2
  rustup target add x86_64-unknown-linux-musl >&2
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    echo "deps: adding the $component component (make lint)" >&2
    rustup component add "$component" >&2
  fi
done
