#!/usr/bin/env bash
# Assembles the GPT disk image from the kiosk's root file system, from plain files (no loop
# devices, no mounts): mkfs.ext4 -d for the root and data file systems, veritysetup for the
# root's hash tree, mtools for the EFI system partition, sfdisk and dd for the partition table.
#
#   image-build/disk.sh ROOT OUT_IMAGE [SLOT_DIR]
#
# Layout (settings.sh has the sizes):
#   1 esp            EFI system partition: systemd-boot, kernel + initrd and entries per slot
#   2 root-a         slot A: the root file system (ext4, read-only, dm-verity data)
#   3 root-a-verity  slot A: its dm-verity hash tree
#   4 root-b         slot B: empty, same size; an update writes here and boots it next
#   5 root-b-verity  slot B: its hash tree
#   6 zizhu-data     /var/lib/zizhu: config, database, outbox, CUPS queues; grows on first boot
# Writes OUT_IMAGE and OUT_IMAGE.roothash (slot A's root hash). With SLOT_DIR, the slot's
# contents are kept there for an update bundle (bundle.sh): root.ext4, root.verity, roothash,
# vmlinuz, initrd.img, image-release.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/settings.sh"
[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: $0 ROOT OUT_IMAGE [SLOT_DIR]" >&2; exit 2; }
root=$(cd "$1" && pwd)
image=$2
slot_dir=${3:-}
for tool in mkfs.ext4 veritysetup mkfs.vfat mcopy sfdisk; do
  command -v "$tool" >/dev/null || { echo "disk.sh: $tool missing (scripts/bootstrap.sh)" >&2; exit 2; }
done
work=$(mktemp -d "$(dirname "$image")/.disk.XXXXXX")
trap 'rm -rf "$work"' EXIT

kver=$(ls "$root/usr/lib/modules" | sort -V | tail -n 1)
[ -f "$root/boot/vmlinuz-$kver" ] && [ -f "$root/boot/initrd.img-$kver" ] \
  || { echo "disk.sh: no kernel/initrd for $kver in $root/boot" >&2; exit 1; }

echo "disk: root file system (ext4, no journal: it is never written)"
truncate -s "${ROOT_MIB}M" "$work/root.ext4"
mkfs.ext4 -q -F -L zizhu-root -O ^has_journal -m 0 -d "$root" "$work/root.ext4"

echo "disk: dm-verity hash tree"
veritysetup format "$work/root.ext4" "$work/root.verity" \
  --root-hash-file="$work/roothash" >/dev/null
roothash=$(cat "$work/roothash")
verity_bytes=$(stat -c %s "$work/root.verity")
[ "$verity_bytes" -le $((VERITY_MIB * 1024 * 1024)) ] \
  || { echo "disk.sh: hash tree ($verity_bytes bytes) larger than VERITY_MIB" >&2; exit 1; }

echo "disk: data partition"
stage=$work/data
kiosk_uid=$(awk -F: '$1 == "kiosk" {print $3}' "$root/etc/passwd")
kiosk_gid=$(awk -F: '$1 == "kiosk" {print $3}' "$root/etc/group")
backoffice_uid=$(awk -F: '$1 == "zizhu-backoffice" {print $3}' "$root/etc/passwd")
[ -n "$kiosk_uid" ] && [ -n "$kiosk_gid" ] || { echo "disk.sh: no kiosk user in $root" >&2; exit 1; }
# The folders of systemd/tmpfiles.d/zizhu.conf, with the factory config (see factory/).
install -d -m 0755 "$stage"
install -d -m 0750 -o 0 -g "$kiosk_gid" "$stage/config"
install -m 0640 -o 0 -g "$kiosk_gid" "$here/factory/kiosk.toml" "$stage/config/kiosk.toml"
install -d -m 0700 -o "$kiosk_uid" -g "$kiosk_gid" "$stage/kiosk"
install -d -m 0755 -o "$kiosk_uid" -g "$kiosk_gid" "$stage/metrics"
# The persistent journal (var-log-journal.mount): it must be there before tmpfiles runs.
journal_gid=$(awk -F: '$1 == "systemd-journal" {print $3}' "$root/etc/group")
install -d -m 2755 -o 0 -g "${journal_gid:-0}" "$stage/journal"
if [ -n "$backoffice_uid" ]; then
  install -d -m 0700 -o "$backoffice_uid" -g "$backoffice_uid" "$stage/backoffice"
fi
truncate -s "${DATA_MIB}M" "$work/data.ext4"
mkfs.ext4 -q -F -L "$LABEL_DATA" -d "$stage" "$work/data.ext4"

echo "disk: EFI system partition"
version=$(sed -n 's/^IMAGE_VERSION=//p' "$root/usr/lib/zizhu/image-release" 2>/dev/null || true)
export ZIZHU_CMDLINE_BASE ZIZHU_CMDLINE_KIOSK ZIZHU_CMDLINE_SELFTEST
sh "$here/rauc/boot-entries" a "$roothash" "${version:-unknown}" "$work"
# No menu unless a key is held at power-on, and no editing the command line from it
# (init=/bin/sh would be a root shell on a public terminal).
cat > "$work/loader.conf" <<LOADER
default zizhu-a.conf
timeout 0
editor no
auto-entries no
auto-firmware no
LOADER
esp=$work/esp.vfat
truncate -s "${ESP_MIB}M" "$esp"
mkfs.vfat -F 32 -n ESP "$esp" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/zizhu ::/zizhu/a ::/zizhu/b
boot_efi=$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi
mcopy -i "$esp" "$boot_efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$boot_efi" ::/EFI/systemd/systemd-bootx64.efi
mcopy -i "$esp" "$root/boot/vmlinuz-$kver" ::/zizhu/a/vmlinuz
mcopy -i "$esp" "$root/boot/initrd.img-$kver" ::/zizhu/a/initrd.img
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/zizhu-a.conf" "$work/zizhu-a-selftest.conf" ::/loader/entries/

echo "disk: partition table"
mib=$((1024 * 1024))
total_mib=$((1 + ESP_MIB + 2 * (ROOT_MIB + VERITY_MIB) + DATA_MIB + 1))
rm -f "$image"
truncate -s "${total_mib}M" "$image"
sfdisk -q --no-reread --no-tell-kernel "$image" <<TABLE
label: gpt
first-lba: 2048
size=${ESP_MIB}MiB, type=$TYPE_ESP, name=$LABEL_ESP
size=${ROOT_MIB}MiB, type=$TYPE_ROOT, name=root-a
size=${VERITY_MIB}MiB, type=$TYPE_ROOT_VERITY, name=root-a-verity
size=${ROOT_MIB}MiB, type=$TYPE_ROOT, name=root-b
size=${VERITY_MIB}MiB, type=$TYPE_ROOT_VERITY, name=root-b-verity
size=${DATA_MIB}MiB, type=$TYPE_DATA, name=$LABEL_DATA
TABLE
put() {  # put FILE PARTITION_NUMBER
  local start
  start=$(sfdisk --json "$image" | python3 -c \
    "import json, sys; print(json.load(sys.stdin)['partitiontable']['partitions'][$2 - 1]['start'])")
  dd if="$1" of="$image" bs=1M seek=$((start * 512 / mib)) conv=notrunc,sparse status=none
}
put "$esp" 1
put "$work/root.ext4" 2
put "$work/root.verity" 3
put "$work/data.ext4" 6
echo "$roothash" > "$image.roothash"
if [ -n "$slot_dir" ]; then
  # Same file system, so a rename, not a copy of 2 GiB.
  rm -rf "$slot_dir"
  mkdir -p "$slot_dir"
  mv "$work/root.ext4" "$work/root.verity" "$slot_dir/"
  echo "$roothash" > "$slot_dir/roothash"
  cp "$root/boot/vmlinuz-$kver" "$slot_dir/vmlinuz"
  cp "$root/boot/initrd.img-$kver" "$slot_dir/initrd.img"
  cp "$root/usr/lib/zizhu/image-release" "$slot_dir/image-release"
fi
echo "disk: $image (${total_mib} MiB, root hash $roothash)"
