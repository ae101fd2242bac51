#!/bin/sh
# Builds kjump's test kernel from Debian's linux-source-6.12 with the config
# fragment kernel/kjump.config, cached outside the checkout and keyed by the
# fragment and the source package version. Prints the bzImage path last.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
frag="$here/kernel/kjump.config"
tarball=/usr/src/linux-source-6.12.tar.xz
[ -f "$tarball" ] || { echo "kernel.sh: $tarball missing: run 'make deps'" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
key=$( (cat "$frag"; echo "$srcver") | sha256sum | cut -c1-16)
cache=${KJUMP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kjump}
out="$cache/kernel-$key"
if [ -f "$out/bzImage" ]; then echo "$out/bzImage"; exit 0; fi
mkdir -p "$cache"
build="$cache/build-$key"
rm -rf "$build"; mkdir -p "$build"
echo "kernel.sh: building test kernel $key from linux-source $srcver (a few minutes)" >&2
tar -C "$build" -xJf "$tarball"
src="$build/linux-source-6.12"
make -C "$src" -s tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$frag" >/dev/null
make -C "$src" -s olddefconfig >&2
# Every option the fragment sets must have survived olddefconfig.
for line in $(grep -E '^CONFIG_[A-Z0-9_]+=' "$frag"); do
  opt=${line%%=*}; val=${line#*=}
  if [ "$val" = n ]; then
    if grep -q "^$opt=" "$src/.config"; then echo "kernel.sh: $opt is still set" >&2; exit 1; fi
  elif ! grep -qx "$line" "$src/.config"; then
    echo "kernel.sh: $line did not take (a dependency is missing)" >&2; exit 1
  fi
done
make -C "$src" -s -j"$(nproc)" bzImage >&2
mkdir -p "$out.tmp"
cp "$src/arch/x86/boot/bzImage" "$src/.config" "$out.tmp/"
rm -rf "$out"; mv "$out.tmp" "$out"
rm -rf "$build"
echo "$out/bzImage"
