#!/bin/sh
# kjump (hibernation built on kexec jump), dracut pre-mount hook: resume a
# hibernated system before the root filesystem is checked or mounted.
# 'kjump resume' does not return when it resumes; when it returns, there was
# nothing to resume (exit 3) or it could not (exit 1), it said why in one
# line, and the boot goes on. With 'noresume' or 'kjump.noresume' on the
# kernel command line, kjump resume does not resume and marks a committed
# image bad, since this boot may change the hibernated system's filesystems;
# so it runs then too.
# dracut sources this file: no exit.

# shellcheck source=/dev/null
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

# Writes to the kernel log, as kjump's initramfs-tools script does (shown
# on the console unless 'quiet' hides the level: 5 notice, 3 error). dracut's
# own info and warn would not: in a systemd initramfs they write to this
# hook's service, so the journal, and info not even to the console. They
# serve when there is no /dev/kmsg.
kjump_say() {
    if [ -c /dev/kmsg ] && printf '<%s>kjump: %s\n' "$1" "$2" >/dev/kmsg 2>/dev/null; then
        return 0
    fi
    if [ "$1" -eq 5 ]; then
        info "kjump: $2"
    else
        warn "kjump: $2"
    fi
}

kjump_resume() {
    [ -x @SBINDIR@/kjump ] || return 0
    _kjump_out=$(@SBINDIR@/kjump resume 2>&1)
    _kjump_rc=$?
    # Exit 3: nothing to resume, a notice; any other return (1: failed,
    # 2: bad settings) is an error. The boot goes on either way.
    if [ "$_kjump_rc" -eq 3 ]; then
        _kjump_level=5
    else
        _kjump_level=3
    fi
    printf '%s\n' "$_kjump_out" | while IFS= read -r _kjump_line; do
        kjump_say "$_kjump_level" "${_kjump_line#kjump: }"
    done
    [ "$_kjump_rc" -eq 3 ] || kjump_say 3 "kjump resume failed (exit $_kjump_rc); booting normally"
    unset _kjump_out _kjump_rc _kjump_level
    return 0
}

kjump_resume
unset -f kjump_resume kjump_say
