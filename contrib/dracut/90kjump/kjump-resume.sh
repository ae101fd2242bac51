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

kjump_resume() {
    [ -x @SBINDIR@/kjump ] || return 0
    _kjump_out=$(@SBINDIR@/kjump resume 2>&1)
    _kjump_rc=$?
    # Exit 3: nothing to resume, for information; any other return (1:
    # failed, 2: bad settings) is a warning. The boot goes on either way.
    printf '%s\n' "$_kjump_out" | while IFS= read -r _kjump_line; do
        if [ "$_kjump_rc" -eq 3 ]; then
            info "kjump: ${_kjump_line#kjump: }"
        else
            warn "kjump: ${_kjump_line#kjump: }"
        fi
    done
    [ "$_kjump_rc" -eq 3 ] || warn "kjump: kjump resume failed (exit $_kjump_rc); booting normally"
    unset _kjump_out _kjump_rc
    return 0
}

kjump_resume
unset -f kjump_resume
