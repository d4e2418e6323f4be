#!/bin/sh
# Run in the initrd by zizhu-machine-id.service. Reads "machine-id" from the data partition
# (mounted read-only for the moment, then unmounted) and bind-mounts it, read-only, over
# /sysroot/etc/machine-id. Does nothing, and systemd makes a transient id as before, when the
# partition or the file is missing or the file does not hold a valid id (first boot).
set -u
data=/dev/disk/by-partlabel/zizhu-data
work=/run/zizhu-initrd-data
saved=/run/zizhu-machine-id

[ -b "$data" ] || { echo "zizhu-machine-id: no data partition: transient machine id"; exit 0; }
mkdir -p "$work"
if ! mount -t ext4 -o ro,nosuid,nodev,noexec "$data" "$work"; then
    rmdir "$work"
    echo "zizhu-machine-id: data partition not mountable: transient machine id"
    exit 0
fi
id=
[ -f "$work/machine-id" ] && read -r id < "$work/machine-id"
umount "$work"
rmdir "$work"

# 32 lowercase hexadecimal digits, not all zero (sd_id128 rejects the null id).
valid=yes
[ "${#id}" -eq 32 ] || valid=no
case $id in *[!0-9a-f]* | 00000000000000000000000000000000) valid=no ;; esac
if [ "$valid" = no ]; then
    echo "zizhu-machine-id: none saved yet: transient machine id (saved on this boot)"
    exit 0
fi
# /run moves with the switch to the root; the bind mount over the root's file moves with it.
printf '%s\n' "$id" > "$saved"
mount --bind "$saved" /sysroot/etc/machine-id
mount -o remount,bind,ro /sysroot/etc/machine-id
echo "zizhu-machine-id: machine id from the data partition"
