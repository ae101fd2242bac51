# fish completion for kjump (hibernation built on kexec jump): commands,
# image's subcommands, each command's flags, and their values (--target:
# block devices and their UUID=, PARTUUID= and LABEL= names; paths: files).
# Installed as $(PREFIX)/share/fish/vendor_completions.d/kjump.fish.
# The commands and flags are those of src/bin/kjump/cli.rs: a unit test
# there fails when they differ.

# What --target can name: each block device, and the names udev gives them.
function __kjump_targets
    for d in /sys/class/block/*
        echo /dev/(basename $d)
    end
    for d in /dev/disk/by-uuid/*
        echo UUID=(basename $d)
    end
    for d in /dev/disk/by-partuuid/*
        echo PARTUUID=(basename $d)
    end
    for d in /dev/disk/by-label/*
        echo LABEL=(basename $d)
    end
end

# Whether the command on the line is one of $argv ("image info" as info).
function __kjump_command
    set -l words (commandline -opc)
    set -e words[1]
    set -l cmd
    for w in $words
        switch $w
            case '-*'
                continue
            case '*'
                set -a cmd $w
        end
    end
    test (count $cmd) -ge 1; or return 1
    if test $cmd[1] = image
        test (count $cmd) -ge 2; and contains -- $cmd[2] $argv
        return
    end
    contains -- $cmd[1] $argv
end

# Whether no command is on the line yet; or, after image (or help image),
# no image command.
function __kjump_needs_command
    not __fish_seen_subcommand_from hibernate resume check load unload image bench-io boot-entry initramfs config keygen sleep status systemd-generator initramfs-digest help
end
function __kjump_needs_image_command
    __fish_seen_subcommand_from image; and not __fish_seen_subcommand_from info verify wipe export
end

complete -c kjump -f
complete -c kjump -n __kjump_needs_command -l version -d "show kjump's version"
complete -c kjump -s h -l help -d "show the help"

complete -c kjump -n __kjump_needs_command -a hibernate -d "save this system's memory to the target and power off"
complete -c kjump -n __kjump_needs_command -a resume -d "at boot, resume from a committed image on the target"
complete -c kjump -n __kjump_needs_command -a check -d "say whether this machine can hibernate with kjump"
complete -c kjump -n __kjump_needs_command -a load -d "boot the hibernation kernel now and keep it resident"
complete -c kjump -n __kjump_needs_command -a unload -d "free the resident hibernation kernel"
complete -c kjump -n __kjump_needs_command -a image -d "show, verify, wipe or export an image"
complete -c kjump -n __kjump_needs_command -a bench-io -d "measure the hibernation kernel's reads and writes"
complete -c kjump -n __kjump_needs_command -a boot-entry -d "write a boot loader entry that resumes directly"
complete -c kjump -n __kjump_needs_command -a initramfs -d "write the hibernation initramfs"
complete -c kjump -n __kjump_needs_command -a config -d "print the settings kjump would use"
complete -c kjump -n __kjump_needs_command -a keygen -d "make the key pair of encrypt = passphrase"
complete -c kjump -n __kjump_needs_command -a sleep -d "what systemd's sleep services run"
complete -c kjump -n __kjump_needs_command -a status -d "say how the last hibernation went"
complete -c kjump -n __kjump_needs_command -a systemd-generator -d "systemd's generator call"
complete -c kjump -n __kjump_needs_command -a initramfs-digest -d "record what the initramfs hooks put in"
complete -c kjump -n __kjump_needs_command -a help -d "show a command's help"

complete -c kjump -n __kjump_needs_image_command -a info -d "show an image's header and state"
complete -c kjump -n __kjump_needs_image_command -a verify -d "check every checksum"
complete -c kjump -n __kjump_needs_image_command -a wipe -d "overwrite an image with zeros and discard it"
complete -c kjump -n __kjump_needs_image_command -a export -d "write an image as an ELF core file"
complete -c kjump -n "__kjump_command info verify wipe export" -F
complete -c kjump -n "__kjump_command sleep; and not __fish_seen_subcommand_from hibernate suspend-then-hibernate hybrid-sleep" -a "hibernate suspend-then-hibernate hybrid-sleep"
complete -c kjump -n "__kjump_command systemd-generator" -a "(__fish_complete_directories)"
complete -c kjump -n "__kjump_command help; and not __fish_seen_subcommand_from image" -a "hibernate resume check load unload image bench-io boot-entry initramfs config keygen sleep status systemd-generator initramfs-digest"

# Each flag, for the commands that take it.
complete -c kjump -n "__kjump_command hibernate load resume check bench-io boot-entry config" -l target -x -a "(__kjump_targets)" -d "where the image goes"
complete -c kjump -n "__kjump_command hibernate load config" -l after -x -a "poweroff reboot resume suspend" -d "what B does once the image is committed"
complete -c kjump -n "__kjump_command hibernate load config" -l compress -x -a "lz4 deflate none" -d "how pages are stored"
complete -c kjump -n "__kjump_command hibernate load resume bench-io boot-entry config" -l wait -x -d "seconds to wait for the target, 0 to 600"
complete -c kjump -n "__kjump_command hibernate load resume check bench-io boot-entry config" -l kernel -r -F -d "the hibernation kernel (bzImage)"
complete -c kjump -n "__kjump_command hibernate load resume check bench-io boot-entry config" -l initrd -r -F -d "the hibernation initramfs"
complete -c kjump -n "__kjump_command hibernate load check bench-io boot-entry config" -l region-size -x -d "RAM the hibernation kernel runs in (K/M/G)"
complete -c kjump -n "__kjump_command hibernate load resume check bench-io boot-entry config" -l append -x -d "more arguments for the hibernation kernel"
complete -c kjump -n "__kjump_command hibernate load resume check bench-io boot-entry config sleep initramfs-digest" -l config -r -F -d "settings file"
complete -c kjump -n "__kjump_command resume boot-entry config" -l keep -d "keep the image's data after the resume"
complete -c kjump -n "__kjump_command resume" -l check -d "only say what it would do"
complete -c kjump -n "__kjump_command resume" -l snapshot -d "also resume a snapshot"
complete -c kjump -n "__kjump_command check" -l jump -d "also do a live round trip A -> B -> A"
complete -c kjump -n "__kjump_command check resume info" -l json -d "print one JSON object"
complete -c kjump -n "__kjump_command resume verify export" -l key-file -r -F -d "the key file of an encrypted image"
complete -c kjump -n "__kjump_command boot-entry initramfs" -s o -l output -r -F -d "where to write"
complete -c kjump -n "__kjump_command initramfs" -l init -r -F -d "the kjump-init to put in"
complete -c kjump -n "__kjump_command keygen" -l dir -x -a "(__fish_complete_directories)" -d "where to write the key pair"
complete -c kjump -n "__kjump_command keygen" -l argon2-memory -x -d "Argon2id memory cost in KiB"
complete -c kjump -n "__kjump_command keygen" -l force -d "replace an existing key pair"
complete -c kjump -n "__kjump_command export" -l force -d "replace the core file if it exists"
complete -c kjump -n "__kjump_command export" -l elf -r -F -d "the core file to write"
complete -c kjump -n "__kjump_command initramfs-digest" -l kernel-release -x -a "(ls /lib/modules 2>/dev/null)" -d "the kernel the initramfs is for"
complete -c kjump -n "__kjump_command initramfs-digest" -l write -d "record the digest"
complete -c kjump -n "__kjump_command initramfs-digest" -l remove -d "remove the record"
