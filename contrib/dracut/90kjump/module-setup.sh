#!/bin/bash
# dracut module of kjump (hibernation built on kexec jump): puts kjump, its
# settings, and the hibernation kernel and initramfs it loads into the
# initramfs, at the same paths as on the root filesystem, and a pre-mount
# hook that resumes before the root filesystem is checked or mounted.
# Records what it put in (kjump initramfs-digest), beside the initramfs and
# in it, so that 'kjump check' notices when the initramfs needs rebuilding.

# dracut sets dracutsysrootdir (usually empty), moddir, hostonly and kernel
# (the release the initramfs is for).
# shellcheck disable=SC2154

KJUMP=@SBINDIR@/kjump

# The setting KEY of 'kjump config' (defaults and kjump.conf merged).
kjump_setting() {
    "$dracutsysrootdir$KJUMP" config --config "$dracutsysrootdir/etc/kjump.conf" 2>/dev/null | sed -n "s/^$1 = //p"
}

# called by dracut
check() {
    [[ -x $dracutsysrootdir$KJUMP ]] || return 1
    # Only useful once kjump.conf names a target; can still be asked for.
    [[ -n $(kjump_setting target) ]] || return 255
    return 0
}

# called by dracut
depends() {
    return 0
}

# called by dracut
installkernel() {
    # An image in a file is read through the ext4 filesystem holding it.
    case $(kjump_setting target) in
        *:/*) hostonly='' instmods ext4 ;;
    esac
    # encrypt = tpm2: the TPM's driver, where it is a module.
    case $(kjump_setting encrypt) in
        tpm2*) hostonly='' instmods tpm_tis tpm_crb ;;
    esac
    return 0
}

# This initramfs holds no kjump: no record of it either.
kjump_forget() {
    [[ -n $dracutsysrootdir ]] || "$KJUMP" initramfs-digest --kernel-release "$kernel" --remove || :
}

# called by dracut
install() {
    # The hibernation kernel and initramfs (dracut's own $kernel is the
    # release the initramfs is for).
    local hkernel hinitrd
    hkernel=$(kjump_setting kernel)
    hinitrd=$(kjump_setting initrd)
    if [[ -z $(kjump_setting target) ]]; then
        dwarn "kjump: no target in /etc/kjump.conf: resume with kjump is not in this initramfs"
        kjump_forget
        return 0
    fi
    if [[ ! -f $dracutsysrootdir$hkernel || ! -f $dracutsysrootdir$hinitrd ]]; then
        dwarn "kjump: $hkernel or $hinitrd is missing: resume with kjump is not in this initramfs"
        kjump_forget
        return 0
    fi
    # kjump is static: no libraries to follow.
    inst_simple "$KJUMP"
    inst_simple /etc/kjump.conf
    inst_simple "$hkernel"
    inst_simple "$hinitrd"
    # encrypt = tpm2: kjump resume unseals the image's key with tpm2-tools,
    # which opens its device library at run time.
    case $(kjump_setting encrypt) in
        tpm2*)
            inst_multiple tpm2 || { derror "kjump: encrypt = tpm2, but the tpm2 program (tpm2-tools) is missing"; return 1; }
            inst_libdir_file "libtss2-tcti-device.so*"
            ;;
    esac
    inst_hook pre-mount 05 "$moddir/kjump-resume.sh"
    # What this initramfs holds, for 'kjump check': recorded beside it, and
    # the same record put in it (not when building for another root, whose
    # files this kjump would not see).
    if [[ -z $dracutsysrootdir ]]; then
        local record
        if record=$("$KJUMP" initramfs-digest --kernel-release "$kernel" --write); then
            inst_simple "$record"
        else
            dwarn "kjump: could not record what this initramfs holds: 'kjump check' cannot tell whether it is current"
        fi
    fi
}
