#!/bin/sh
# `make deb`: builds kjump's Debian package, target/deb/kjump_VERSION_amd64.deb
# (VERSION from Cargo.toml), as yourself (no root needed). Its files are
# what `make install PREFIX=/usr` puts in place, into a staging tree, so
# every file the install rule knows is packaged; this script adds what
# Debian wants around them (contrib/debian/: control, maintainer scripts,
# the initramfs trigger, copyright, lintian overrides), gzips the man
# pages, and checks the result with lintian when it is installed
# (`make deps` installs it). Prints the package's path last.
#
# KERNEL (6.12 or 7.3) or BZIMAGE pick the hibernation kernel, as for
# `make stage`; the Makefile passes them. DEBFULLNAME and DEBEMAIL, if both
# are set, replace contrib/debian/control's maintainer.
#
# The version is a native one (no Debian revision: the package is built
# from kjump's own tree by kjump's own script), so the changelog is
# /usr/share/doc/kjump/changelog.gz, not changelog.Debian.gz (Debian policy
# 12.7); a distribution's kjump_VERSION-1 sorts after it.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=$here/target/deb
stage=$out/stage
root=$out/root
debian=$here/contrib/debian
kernel=${KERNEL:-6.12}
bzimage=${BZIMAGE:-}
umask 022
# Built for /usr/lib/kjump in a cargo target directory of its own, so that
# the build the tests use (/usr/local/lib/kjump) is neither replaced nor
# rebuilt each time one or the other runs.
export CARGO_TARGET_DIR="$out/cargo"
# The dates in the changelog and in the package are the last commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "deb.sh: no version in Cargo.toml's [package]" >&2; exit 1; }
# The binaries are x86_64 (the Makefile's TARGET), static: no library
# dependencies, and amd64 whatever the build machine is.
arch=amd64
maintainer=$(sed -n 's/^Maintainer: //p' "$debian/control")
if [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then maintainer="$DEBFULLNAME <$DEBEMAIL>"; fi

# What `make install` puts in place, for PREFIX=/usr, into $root.
make -s --no-print-directory -C "$here" stage PREFIX=/usr STAGE="$stage" KERNEL="$kernel" BZIMAGE="$bzimage" >&2
rm -rf "$root"
make -s --no-print-directory -C "$here" install PREFIX=/usr STAGE="$stage" DESTDIR="$root" >/dev/null
for f in usr/sbin/kjump usr/lib/kjump/vmlinuz etc/kjump.conf; do
	[ -f "$root/$f" ] || { echo "deb.sh: make install put no /$f in $root" >&2; exit 1; }
done

# Debian policy 12.1: man pages compressed with gzip -9n.
find "$root/usr/share/man" -type f ! -name '*.gz' -exec gzip -9n {} +

# /usr/share/doc/kjump: copyright, with the statically linked crates and
# the hibernation kernel's source filled in, and the changelog.
doc=$root/usr/share/doc/kjump
install -d "$doc" "$root/usr/share/lintian/overrides"
crates=$(cargo tree --edges normal,no-proc-macro --prefix none --format '{p} {l}' --target x86_64-unknown-linux-musl 2>/dev/null |
	sed -e 's/ (\*)$//' -e 's/ ([^)]*\/[^)]*)//' | grep -v '^kjump ' | LC_ALL=C sort -u | sed 's/^/ /')
[ -n "$crates" ] || { echo "deb.sh: 'cargo tree' listed no crates" >&2; exit 1; }
kver=$(sed -n 's/^# Linux\/[^ ]* \([^ ]*\) Kernel Configuration$/\1/p' "$root/usr/lib/kjump/vmlinuz.config" 2>/dev/null || true)
built_using=""
if [ -n "$bzimage" ]; then
	kernel_text=" It is the kernel given to 'make deb' as BZIMAGE${kver:+ (Linux $kver)}; its
 source is whatever that kernel was built from."
else
	srcpkg=$(dpkg-query -W -f='${source:Package}' "linux-source-$kernel")
	srcver=$(dpkg-query -W -f='${source:Version}' "linux-source-$kernel")
	kernel_text=" It is Linux ${kver:-$kernel}, built by kjump's scripts/kernel.sh from
 Debian's linux-source-$kernel package (source package $srcpkg,
 version $srcver: 'apt-get source $srcpkg=$srcver')
 with the configuration in /usr/lib/kjump/vmlinuz.config."
	built_using="Built-Using: $srcpkg (= $srcver)"
fi
printf '%s\n' "$crates" > "$out/crates.txt"
printf '%s\n' "$kernel_text" > "$out/kernel.txt"
sed -e "/^@CRATES@\$/{r $out/crates.txt" -e 'd}' -e "/^@KERNEL@\$/{r $out/kernel.txt" -e 'd}' "$debian/copyright" > "$doc/copyright"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=""; [ -z "$(git status --porcelain 2>/dev/null)" ] || dirty=" and changes"
{
	echo "kjump ($version) unstable; urgency=medium"
	echo
	echo "  * Built by scripts/deb.sh from git commit $commit$dirty."
	echo
	echo " -- $maintainer  $(date -R -u -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.gz"
install -m 644 "$debian/lintian-overrides" "$root/usr/share/lintian/overrides/kjump"

# DEBIAN/: control, conffiles (everything under /etc), md5sums (of the
# other files, as dh_md5sums makes them), triggers and the maintainer
# scripts, given the units that have an [Install] section (the ones an
# administrator may enable).
install -d "$root/DEBIAN"
units=$(cd "$root" && grep -l '^\[Install\]' usr/lib/systemd/system/* 2>/dev/null | sed 's|.*/||' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
for script in postinst prerm postrm; do
	sed "s|@UNITS@|$units|g" "$debian/$script" > "$root/DEBIAN/$script"
	chmod 755 "$root/DEBIAN/$script"
done
install -m 644 "$debian/triggers" "$root/DEBIAN/triggers"
(cd "$root" && find etc -type f | LC_ALL=C sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"
(cd "$root" && find . \( -path ./DEBIAN -o -path ./etc \) -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
	tr '\n' '\0' | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
size=$(du -sk --exclude=./DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|^Maintainer: .*|Maintainer: $maintainer|" -e "s|@INSTALLED_SIZE@|$size|" \
	-e "s|^@BUILT_USING@\$|$built_using|" -e '/^$/d' "$debian/control" > "$root/DEBIAN/control"

# Permissions: directories 755, nothing group or world writable. Owner and
# group are root in the package whoever builds it (--root-owner-group).
find "$root" -type d -exec chmod 755 {} +
chmod -R go-w "$root"

# Only this build's package in target/deb, so that kjump_*_amd64.deb
# names it (README).
deb=$out/kjump_${version}_$arch.deb
rm -f "$out"/kjump_*.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2

# lintian: errors and warnings fail the build; info and pedantic tags are
# shown. Every tag left is explained in contrib/debian/lintian-overrides.
if command -v lintian >/dev/null; then
	echo "deb.sh: lintian $deb" >&2
	lintian --display-info --pedantic --fail-on error,warning "$deb" >&2 ||
		{ echo "deb.sh: lintian found problems in $deb (above)" >&2; exit 1; }
else
	echo "deb.sh: lintian is not installed ('make deps' installs it): $deb is not checked" >&2
fi
echo "$deb"
