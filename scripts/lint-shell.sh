#!/bin/sh
# `make lint`'s check of the shell scripts kjump installs (contrib/): each
# parsed by the shell that runs it (sh -n for POSIX sh, dash and busybox
# ash; bash -n), then ShellCheck on all of them. None of them is run by a
# test that boots (the mkinitcpio hooks not at all): this is what catches a
# typo there. Needs shellcheck (`make deps` installs it).
set -eu
cd "$(dirname "$0")/.."
failed=""
run() {
	"$@" || failed="$failed
  $*"
}

# Run by sh (initramfs-tools, systemd), sourced by dracut's sh and by
# mkinitcpio's busybox ash.
posix="contrib/initramfs-tools/hooks/kjump contrib/initramfs-tools/scripts/local-premount/kjump
contrib/dracut/90kjump/kjump-resume.sh contrib/systemd/kjump-generator contrib/mkinitcpio/hooks/kjump"
# Sourced by dracut and mkinitcpio, which are bash.
bash="contrib/dracut/90kjump/module-setup.sh contrib/mkinitcpio/install/kjump"

for f in $posix; do run sh -n "$f"; done
for f in $bash; do run bash -n "$f"; done
# Each file names its shell (a shebang, or a 'shellcheck shell=' line).
# shellcheck disable=SC2086
run shellcheck $posix $bash scripts/lint-shell.sh

if [ -n "$failed" ]; then
	echo "lint-shell: these failed (see above):$failed" >&2
	exit 1
fi
echo "lint-shell: $(echo "$posix $bash" | wc -w) scripts parse and pass shellcheck"
