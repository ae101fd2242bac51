#!/bin/sh
# Installs what kjump's build and tests need, and nothing when all is there:
# the musl target, rustfmt and clippy (make lint), QEMU, busybox (for the test harness's A system only),
# debootstrap (make test-distro), makedumpfile (an independent reader of B's /proc/vmcore in a test,
# and with crash, of the core file kjump image export writes),
# swtpm and tpm2-tools (encrypt = tpm2: tests/tpm.rs and make test-distro),
# lintian (make deb checks the package with it),
# shellcheck (make lint checks the shell scripts kjump installs with it),
# zsh and fish (make lint parses kjump's completions for them; the unit tests
# ask fish for its completions),
# the kernel sources of the test kernels (scripts/kernel.sh: Debian's
# linux-source-6.12 and linux-source-7.3) and the kernel build dependencies.
set -eu
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
missing=""
for pkg in qemu-system-x86 linux-source-6.12 linux-source-7.3 busybox-static build-essential flex bison bc \
           libelf-dev libssl-dev cpio xz-utils e2fsprogs lz4 debootstrap ovmf makedumpfile crash swtpm swtpm-tools tpm2-tools lintian \
           shellcheck zsh fish; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
# linux-source-7.3, the newest kernel Debian carries, is in Debian 13's
# trixie-backports. That suite is added for this one package: pinned at
# priority 1, so nothing else is ever installed or upgraded from it, and
# linux-source-7.3 alone at 500. Its Release file is signed by the trixie
# keys that Debian 12's debian-archive-keyring already holds.
sources=/etc/apt/sources.list.d/kjump-trixie-backports.sources
pin=/etc/apt/preferences.d/kjump-trixie-backports
case "$missing" in
  *linux-source-7.3*)
    if [ ! -e "$sources" ] || [ ! -e "$pin" ]; then
      echo "deps: adding Debian's trixie-backports to apt, pinned to linux-source-7.3 only ($sources, $pin)" >&2
      printf '%s\n' "# Added by kjump's scripts/deps.sh for linux-source-7.3; see $pin." \
        "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: trixie-backports" "Components: main" \
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" | $SUDO tee "$sources" >/dev/null
      printf '%s\n' "# Added by kjump's scripts/deps.sh: nothing from trixie-backports but linux-source-7.3." \
        "Package: *" "Pin: release n=trixie-backports" "Pin-Priority: 1" "" \
        "Package: linux-source-7.3" "Pin: release n=trixie-backports" "Pin-Priority: 500" | $SUDO tee "$pin" >/dev/null
    fi ;;
esac
if [ -n "$missing" ]; then
  echo "deps: installing$missing" >&2
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
