# bash completion for kjump (hibernation built on kexec jump): commands,
# image's subcommands, each command's flags, and their values (--target:
# block devices and their UUID=, PARTUUID= and LABEL= names; paths: files).
# Installed as $(PREFIX)/share/bash-completion/completions/kjump.
# The commands and flags are those of src/bin/kjump/cli.rs: a unit test
# there fails when they differ.

# The commands, and the flags of command $1 ("image info" for image's).
_kjump_commands="hibernate resume check load unload image bench-io boot-entry initramfs config keygen sleep status systemd-generator initramfs-digest help"
_kjump_flags()
{
    case $1 in
        hibernate | load) echo "--target --after --compress --wait --kernel --initrd --region-size --append --config" ;;
        resume) echo "--check --json --snapshot --target --wait --kernel --initrd --append --config --keep --key-file" ;;
        check) echo "--jump --json --target --kernel --initrd --region-size --append --config" ;;
        "image info") echo "--json" ;;
        "image verify") echo "--key-file" ;;
        "image export") echo "--elf --key-file --force" ;;
        bench-io) echo "--target --wait --kernel --initrd --region-size --append --config" ;;
        boot-entry) echo "--output --target --wait --kernel --initrd --region-size --append --config --keep" ;;
        initramfs) echo "--output --init" ;;
        config) echo "--target --after --compress --wait --kernel --initrd --region-size --append --config --keep" ;;
        keygen) echo "--dir --argon2-memory --force" ;;
        sleep) echo "--config" ;;
        initramfs-digest) echo "--kernel-release --write --remove --config" ;;
    esac
}

# Whether flag $1 takes a value.
_kjump_takes_value()
{
    case $1 in
        --target | --after | --compress | --wait | --kernel | --initrd | --region-size | --append | --config | \
            --output | -o | --init | --dir | --argon2-memory | --key-file | --kernel-release | --elf) return 0 ;;
    esac
    return 1
}

# What --target can name: each block device, and the names udev gives them.
_kjump_targets()
{
    local d
    for d in /sys/class/block/*; do
        [[ -e $d ]] && echo "/dev/${d##*/}"
    done
    for d in /dev/disk/by-uuid/* /dev/disk/by-partuuid/* /dev/disk/by-label/*; do
        [[ -e $d ]] || continue
        case $d in
            */by-uuid/*) echo "UUID=${d##*/}" ;;
            */by-partuuid/*) echo "PARTUUID=${d##*/}" ;;
            *) echo "LABEL=${d##*/}" ;;
        esac
    done
}

_kjump_files()
{
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$1")
}

_kjump()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev="" flag="" cmd="" sub="" i w
    local -a words=()
    COMPREPLY=()
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    # The flag whose value this is: "FLAG VALUE", or "FLAG=VALUE"
    # (which bash splits at the =).
    if [[ $prev == = ]] && ((COMP_CWORD >= 2)); then
        flag=${COMP_WORDS[COMP_CWORD - 2]}
    elif [[ $cur == = ]]; then
        flag=$prev
        cur=""
    elif _kjump_takes_value "$prev"; then
        flag=$prev
    fi
    # The words before this one that are neither flags nor their values.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ $w == = ]]; then
            ((i++))
        elif [[ $w == -* ]]; then
            _kjump_takes_value "$w" && [[ ${COMP_WORDS[i + 1]:-} != = ]] && ((i++))
        else
            words+=("$w")
        fi
    done
    cmd=${words[0]:-}
    sub=${words[1]:-}

    case $flag in
        --target) mapfile -t COMPREPLY < <(compgen -W "$(_kjump_targets)" -- "$cur"); return ;;
        --after) mapfile -t COMPREPLY < <(compgen -W "poweroff reboot resume suspend" -- "$cur"); return ;;
        --compress) mapfile -t COMPREPLY < <(compgen -W "lz4 deflate none" -- "$cur"); return ;;
        --kernel-release) mapfile -t COMPREPLY < <(compgen -W "$(ls /lib/modules 2>/dev/null)" -- "$cur"); return ;;
        --dir)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            return
            ;;
        --kernel | --initrd | --config | --output | -o | --init | --key-file | --elf) _kjump_files "$cur"; return ;;
        --wait | --region-size | --append | --argon2-memory) return ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "--help --version" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$_kjump_commands" -- "$cur")
        fi
        return
    fi
    case $cmd in
        help)
            if [[ -z $sub ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$_kjump_commands" -- "$cur")
            elif [[ $sub == image && ${#words[@]} -eq 2 ]]; then
                mapfile -t COMPREPLY < <(compgen -W "info verify wipe export" -- "$cur")
            fi
            return
            ;;
        image)
            if [[ -z $sub && $cur == -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "--help" -- "$cur")
                return
            elif [[ -z $sub ]]; then
                mapfile -t COMPREPLY < <(compgen -W "info verify wipe export" -- "$cur")
                return
            fi
            cmd="image $sub"
            ;;
    esac
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_kjump_flags "$cmd") --help" -- "$cur")
        return
    fi
    case $cmd in
        "image info" | "image verify" | "image wipe" | "image export") ((${#words[@]} == 2)) && _kjump_files "$cur" ;;
        sleep) [[ -z $sub ]] && mapfile -t COMPREPLY < <(compgen -W "hibernate suspend-then-hibernate hybrid-sleep" -- "$cur") ;;
        systemd-generator)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            ;;
        *) mapfile -t COMPREPLY < <(compgen -W "$(_kjump_flags "$cmd") --help" -- "$cur") ;;
    esac
}

complete -F _kjump kjump
