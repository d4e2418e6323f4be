#!/usr/bin/env bash
# A signed RAUC update bundle (format verity) of one built root slot:
#
#   image-build/bundle.sh SLOT_DIR OUT_BUNDLE
#
# SLOT_DIR is what disk.sh kept of slot A (root.ext4, root.verity, roothash, vmlinuz,
# initrd.img, image-release): the bundle installs exactly the root the image boots. Signed with
# ZIZHU_RAUC_CERT and ZIZHU_RAUC_KEY (PEM files, or PKCS#11 URIs with RAUC_PKCS11_MODULE for a
# key in a hardware token) and checked against ZIZHU_RAUC_KEYRING before it is kept; build.sh
# sets all three (the development keys unless given).
#
# In the bundle: manifest.raucm (compatible, version, the two images), root.ext4 -> the other
# slot's root partition, root-verity.img (root.verity) -> its verity partition, and for the
# hook (rauc/hook): vmlinuz, initrd.img, boot-entries and boot.env (root hash, version, the
# kernel command lines).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/settings.sh"
[ $# -eq 2 ] || { echo "usage: $0 SLOT_DIR OUT_BUNDLE" >&2; exit 2; }
slot=$(cd "$1" && pwd)
bundle=$2
: "${ZIZHU_RAUC_CERT:?}" "${ZIZHU_RAUC_KEY:?}" "${ZIZHU_RAUC_KEYRING:?}"
for tool in rauc mksquashfs; do
  command -v "$tool" >/dev/null \
    || { echo "bundle.sh: $tool missing (scripts/bootstrap.sh: rauc squashfs-tools)" >&2; exit 2; }
done
compatible=$(sed -n 's/^compatible=//p' "$here/rauc/system.conf")
version=$(sed -n 's/^IMAGE_VERSION=//p' "$slot/image-release")
roothash=$(cat "$slot/roothash")

work=$(mktemp -d "$(dirname "$bundle")/.bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
content=$work/content
mkdir "$content"
# Links, not copies, of the 2 GiB root (same file system as SLOT_DIR, see build.sh). RAUC
# picks the way to write an image by its file name: .ext4 and .img are copied as they are.
ln "$slot/root.ext4" "$content/root.ext4" 2>/dev/null \
  || cp --sparse=always "$slot/root.ext4" "$content/root.ext4"
cp "$slot/root.verity" "$content/root-verity.img"
cp "$slot/vmlinuz" "$slot/initrd.img" "$content/"
install -m 0755 "$here/rauc/hook" "$content/hook"
install -m 0755 "$here/rauc/boot-entries" "$content/boot-entries"
# Sourced by the hook with /bin/sh: single-quoted values, so none may hold a single quote.
for value in "$version" "$ZIZHU_CMDLINE_BASE" "$ZIZHU_CMDLINE_KIOSK" "$ZIZHU_CMDLINE_SELFTEST"; do
  case $value in *\'*) echo "bundle.sh: a quote in '$value'" >&2; exit 1 ;; esac
done
{
  echo "ROOTHASH='$roothash'"
  echo "VERSION='$version'"
  echo "ZIZHU_CMDLINE_BASE='$ZIZHU_CMDLINE_BASE'"
  echo "ZIZHU_CMDLINE_KIOSK='$ZIZHU_CMDLINE_KIOSK'"
  echo "ZIZHU_CMDLINE_SELFTEST='$ZIZHU_CMDLINE_SELFTEST'"
} > "$content/boot.env"
cat > "$content/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version
description=Zizhu kiosk root file system

[bundle]
format=verity

[hooks]
filename=hook

[image.rootfs]
filename=root.ext4
hooks=post-install

[image.verity]
filename=root-verity.img
MANIFEST

# zstd at a low level: the root's 1.5 GB compress in a fraction of xz's (RAUC's default
# mksquashfs settings) time; Debian's kernel mounts zstd squashfs.
rm -f "$bundle"
rauc bundle --cert="$ZIZHU_RAUC_CERT" --key="$ZIZHU_RAUC_KEY" \
  --mksquashfs-args="-comp zstd -Xcompression-level 3" "$content" "$work/bundle.raucb" \
  2> >(grep -v "No keyring given, skipping signature verification" >&2)

# Checked as a kiosk checks it: the keyring with system.conf's [keyring] settings (a host-side
# config, so that nothing is created at the kiosk's paths here).
cat > "$work/check.conf" <<CONF
[system]
compatible=$compatible
bootloader=noop
data-directory=$work/rauc-data
[keyring]
path=$ZIZHU_RAUC_KEYRING
$(sed -n '/^\[keyring\]/,/^\[/{/^use-bundle-signing-time=/p;/^check-purpose=/p}' "$here/rauc/system.conf")
CONF
rauc -c "$work/check.conf" info "$work/bundle.raucb" >/dev/null 2>"$work/info.log" \
  || { cat "$work/info.log" >&2; echo "bundle.sh: the bundle does not verify against $ZIZHU_RAUC_KEYRING" >&2; exit 1; }
mv "$work/bundle.raucb" "$bundle"
echo "bundle: $bundle ($(du -m "$bundle" | cut -f1) MiB, version $version, root hash $roothash)"
