#!/bin/sh
# Builds kjump's test kernel from one of Debian's kernel source packages
# with the config fragment kernel/kjump.config merged onto tinyconfig,
# cached outside the checkout and keyed by the fragment and the source
# package's version (which names the kernel version). Prints the bzImage
# path last.
#
#   scripts/kernel.sh [VERSION [distro]]
#
# VERSION is one of the kernels kjump is tested on (default 6.12):
#   6.12  linux-source-6.12 (Debian 12, bookworm-security)
#   7.3   linux-source-7.3  (Debian 13's trixie-backports; scripts/deps.sh
#         adds that suite, pinned to this one package)
# "distro" adds kernel/distro.config (a TPM): the main kernel of
# `make test-distro`, never the hibernation kernel.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
frag="$here/kernel/kjump.config"
version=${1:-6.12}
flavour=${2:-}
case "$flavour" in
  "") frags=$frag ;;
  distro) frags="$frag $here/kernel/distro.config" ;;
  *) echo "kernel.sh: no kernel flavour '$flavour' (known: distro)" >&2; exit 2 ;;
esac
case "$version" in
  6.12|7.3) ;;
  *) echo "kernel.sh: no test kernel '$version' (known: 6.12, 7.3)" >&2; exit 2 ;;
esac
pkg=linux-source-$version
tarball=/usr/src/$pkg.tar.xz
[ -f "$tarball" ] || { echo "kernel.sh: $tarball missing: run 'make deps'" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' "$pkg")
key=$( (cat $frags; echo "$srcver") | sha256sum | cut -c1-16)
cache=${KJUMP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kjump}
out="$cache/kernel-$key"
if [ -f "$out/bzImage" ]; then echo "$out/bzImage"; exit 0; fi
mkdir -p "$cache"
build="$cache/build-$key"
rm -rf "$build"; mkdir -p "$build"
echo "kernel.sh: building test kernel $key from $pkg $srcver (several minutes)" >&2
tar -C "$build" -xJf "$tarball"
src="$build/$pkg"
make -C "$src" -s tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" $frags >/dev/null
make -C "$src" -s olddefconfig >&2
# Every option the fragment sets must have survived olddefconfig. One
# fragment serves every version: an option that this version's Kconfig
# files do not define at all (renamed or folded into another, as
# PROC_SYSCTL into SYSCTL in 7.x) is reported and skipped; one that exists
# but did not take is an error.
defined() { grep -rqE "^[[:space:]]*(menu)?config $1[[:space:]]*\$" --include='Kconfig*' "$src"; }
for line in $(cat $frags | grep -E '^CONFIG_[A-Z0-9_]+='); do
  opt=${line%%=*}; val=${line#*=}
  if [ "$val" = n ]; then
    grep -q "^$opt=" "$src/.config" || continue
    defined "${opt#CONFIG_}" || { echo "kernel.sh: $opt is not an option of $pkg; left out" >&2; continue; }
    echo "kernel.sh: $opt is still set" >&2; exit 1
  elif ! grep -qx "$line" "$src/.config"; then
    defined "${opt#CONFIG_}" || { echo "kernel.sh: $opt is not an option of $pkg; left out" >&2; continue; }
    echo "kernel.sh: $line did not take in $pkg (a dependency is missing)" >&2; exit 1
  fi
done
make -C "$src" -s -j"$(nproc)" bzImage >&2
mkdir -p "$out.tmp"
cp "$src/arch/x86/boot/bzImage" "$src/.config" "$out.tmp/"
rm -rf "$out"; mv "$out.tmp" "$out"
rm -rf "$build"
echo "$out/bzImage"
