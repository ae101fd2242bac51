#!/bin/sh
# `make lint`'s check of the shell scripts kjump installs (contrib/): each
# parsed by the shell that runs it (sh -n for POSIX sh, dash and busybox
# ash; bash -n; zsh -n and fish -n for the completions), then ShellCheck on
# all but the zsh and fish ones. None of them is run by a test that boots
# (the mkinitcpio hooks not at all): this is what catches a typo there.
# What the completions offer is checked by kjump's unit tests (cli.rs).
# Needs shellcheck, zsh and fish (`make deps` installs them).
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
bash="contrib/dracut/90kjump/module-setup.sh contrib/mkinitcpio/install/kjump contrib/completions/kjump.bash"

for f in $posix; do run sh -n "$f"; done
for f in $bash; do run bash -n "$f"; done
run zsh -n contrib/completions/_kjump
run fish -n contrib/completions/kjump.fish
# Each file names its shell (a shebang, or a 'shellcheck shell=' line).
# shellcheck disable=SC2086
run shellcheck $posix $bash scripts/lint-shell.sh

if [ -n "$failed" ]; then
	echo "lint-shell: these failed (see above):$failed" >&2
	exit 1
fi
echo "lint-shell: $(echo "$posix $bash" | wc -w) scripts parse and pass shellcheck; the zsh and fish completions parse"
