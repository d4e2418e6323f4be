#!/usr/bin/env bash
# One command builds the kiosk's bootable disk image (`make image` runs it):
#
#   image-build/build.sh [--out DIR] [--cache DIR]
#
#   1. wheels.sh       the app and its dependencies as wheels, on the host
#   2. rootfs-base.sh  Debian 12 with packages.txt (mmdebstrap)
#   3. customize.sh    the kiosk's root: venv, units, CUPS queues, read-only settings
#   4. disk.sh         the GPT image: ESP + slot A/B (root + dm-verity) + data
#   5. bundle.sh       the signed RAUC update bundle of the same root (rauc bundle, verity)
#   6. manifest        packages, wheels with their sha256, the build's inputs; SHA256SUMS
#
# Each step's result is kept in the cache under a hash of its inputs, so a second build with
# nothing changed takes seconds, and a change to the app rebuilds from step 3 on.
# Out: zizhu-kiosk.img, zizhu-kiosk.raucb, zizhu-kiosk.manifest, SHA256SUMS, slot/ (slot A's
# root.ext4 and root.verity, what the bundle holds) and rootfs (a link to the cached root file
# system, which the tests check and boot).
#
# Update signing (README.md, "Signing keys"): ZIZHU_RAUC_KEYRING (the CA certificate(s) the
# image trusts), ZIZHU_RAUC_CERT and ZIZHU_RAUC_KEY (the bundle signer: PEM files or PKCS#11
# URIs). Unset, a development CA and signer are made once in ZIZHU_RAUC_DEV_KEYS
# (image-build/out/rauc-dev-keys): fine for tests, never for kiosks in the field.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
. "$here/settings.sh"

out=$here/out
cache=$here/.cache
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR] [--cache DIR]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "build.sh: needs root (mmdebstrap, chroot, file ownership)" >&2; exit 2; }
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)
cache=$(cd "$cache" && pwd)
exec 9>"$cache/.lock"
flock 9  # one build at a time per cache (make image and a test session, say)

# The development keys are kept in one place whatever --out is, so the image and test builds
# share them (the keyring is part of the root, and of its cache key).
if [ -z "${ZIZHU_RAUC_KEYRING:-}${ZIZHU_RAUC_CERT:-}${ZIZHU_RAUC_KEY:-}" ]; then
  dev_keys=${ZIZHU_RAUC_DEV_KEYS:-$here/out/rauc-dev-keys}
  "$here/rauc/dev-keys.sh" "$dev_keys"
  export ZIZHU_RAUC_KEYRING=$dev_keys/ca.cert.pem ZIZHU_RAUC_CERT=$dev_keys/signing.cert.pem
  export ZIZHU_RAUC_KEY=$dev_keys/signing.key.pem
  keys=development
else
  : "${ZIZHU_RAUC_KEYRING:?set all three of ZIZHU_RAUC_KEYRING, ZIZHU_RAUC_CERT, ZIZHU_RAUC_KEY}"
  : "${ZIZHU_RAUC_CERT:?set all three of ZIZHU_RAUC_KEYRING, ZIZHU_RAUC_CERT, ZIZHU_RAUC_KEY}"
  : "${ZIZHU_RAUC_KEY:?set all three of ZIZHU_RAUC_KEYRING, ZIZHU_RAUC_CERT, ZIZHU_RAUC_KEY}"
  keys=given
fi
ZIZHU_RAUC_KEYRING=$(realpath "$ZIZHU_RAUC_KEYRING")

start=$(date +%s)
step() { echo "build: [$(( $(date +%s) - start )) s] $*"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
# Every file under the given folders, in a stable order, names and contents.
hash_tree() {
  (cd "$project" && find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

step "wheels"
"$here/wheels.sh" "$cache/wheels" "$cache" 2> >(grep -v "WARNING: Location" >&2)

base_key=$(printf '%s %s %s %s\n' "$(hash_tree image-build/packages.txt image-build/rootfs-base.sh \
  image-build/overlay/etc/dracut.conf.d image-build/overlay/usr/lib/dracut)" "$ZIZHU_SUITE" "$ZIZHU_MIRROR" "$ZIZHU_SECURITY_MIRROR" \
  | sha256sum | cut -c1-16)
base=$cache/base-$base_key
if [ ! -f "$base.complete" ]; then
  step "Debian base (mmdebstrap) -> $base"
  rm -rf "$cache"/base-*
  "$here/rootfs-base.sh" "$base"
  touch "$base.complete"
else
  step "Debian base: cached $base"
fi

git_commit=$(git -C "$project" rev-parse HEAD 2>/dev/null || echo unknown)
git_dirty=no
if [ -n "$(git -C "$project" --no-optional-locks status --porcelain 2>/dev/null)" ]; then
  git_dirty=yes
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$project/pyproject.toml")+g${git_commit:0:12}
[ "$git_dirty" = no ] || version=$version.dirty
root_key=$(printf '%s %s %s %s\n' "$base_key" "$(hash_tree image-build/customize.sh \
  image-build/overlay image-build/README.md image-build/rauc systemd)" \
  "$(hash_of "$cache/wheels/requirements.lock")" "$(hash_of "$ZIZHU_RAUC_KEYRING")" \
  | sha256sum | cut -c1-16)
rootfs=$cache/rootfs-$root_key
if [ ! -f "$rootfs.complete" ]; then
  step "kiosk root -> $rootfs"
  rm -rf "$cache"/rootfs-* "$rootfs.tmp"
  cp -a "$base" "$rootfs.tmp"
  mkdir -p "$rootfs.tmp/usr/lib/zizhu"
  cat > "$rootfs.tmp/usr/lib/zizhu/image-release" <<RELEASE
IMAGE_VERSION=$version
GIT_COMMIT=$git_commit
GIT_DIRTY=$git_dirty
BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
DEBIAN_SUITE=$ZIZHU_SUITE
RELEASE
  "$here/customize.sh" "$rootfs.tmp" "$cache/wheels" "$ZIZHU_RAUC_KEYRING"
  mv "$rootfs.tmp" "$rootfs"
  touch "$rootfs.complete"
else
  step "kiosk root: cached $rootfs"
fi
ln -sfn "$rootfs" "$out/rootfs"

image=$out/zizhu-kiosk.img
disk_key=$(printf '%s %s\n' "$root_key" "$(hash_tree image-build/disk.sh image-build/settings.sh \
  image-build/factory)" | sha256sum | cut -c1-16)
if [ ! -f "$image" ] || [ ! -f "$out/slot/root.ext4" ] \
    || [ "$(cat "$out/.disk-key" 2>/dev/null)" != "$disk_key" ]; then
  step "disk image -> $image"
  rm -f "$out/.disk-key"
  "$here/disk.sh" "$rootfs" "$image" "$out/slot"
  echo "$disk_key" > "$out/.disk-key"
else
  step "disk image: cached $image"
fi

bundle=$out/zizhu-kiosk.raucb
signer=$(openssl x509 -in "$ZIZHU_RAUC_CERT" -noout -fingerprint -sha256 2>/dev/null \
  || echo "$ZIZHU_RAUC_CERT")
bundle_key=$(printf '%s %s %s\n' "$disk_key" "$(hash_tree image-build/bundle.sh)" "$signer" \
  | sha256sum | cut -c1-16)
if [ ! -f "$bundle" ] || [ "$(cat "$out/.bundle-key" 2>/dev/null)" != "$bundle_key" ]; then
  step "update bundle -> $bundle"
  rm -f "$out/.bundle-key"
  "$here/bundle.sh" "$out/slot" "$bundle"
  echo "$bundle_key" > "$out/.bundle-key"
else
  step "update bundle: cached $bundle"
fi

step "manifest and checksums"
in_root() { chroot "$rootfs" "$@"; }
{
  echo "# Zizhu kiosk image manifest: what went in, so the same image can be built again."
  echo "[image]"
  echo "file = zizhu-kiosk.img"
  cat "$rootfs/usr/lib/zizhu/image-release"
  echo "ROOTHASH=$(cat "$image.roothash")"
  echo "KERNEL=$(ls "$rootfs/usr/lib/modules" | sort -V | tail -n 1)"
  echo
  echo "[inputs]"
  echo "mmdebstrap = $(mmdebstrap --version | awk '{print $2}')"
  echo "suite = $ZIZHU_SUITE $ZIZHU_SUITE-updates $ZIZHU_SUITE-security"
  echo "mirror = $ZIZHU_MIRROR"
  echo "security_mirror = $ZIZHU_SECURITY_MIRROR"
  echo "host = $(. /etc/os-release && echo "$PRETTY_NAME"), e2fsprogs $(mkfs.ext4 -V 2>&1 | head -n 1 | awk '{print $2}'), $(veritysetup --version)"
  echo "cache_keys = base $base_key, root $root_key, disk $disk_key, bundle $bundle_key"
  echo "rauc = $(rauc --version | awk '{print $2}'), $(mksquashfs -version | head -n 1)"
  echo
  echo "[update]"
  echo "bundle = zizhu-kiosk.raucb"
  echo "keys = $keys"
  echo "keyring = $(openssl x509 -in "$ZIZHU_RAUC_KEYRING" -noout -subject -nameopt oneline | sed 's/^subject= *//')"
  echo "keyring_sha256 = $(openssl x509 -in "$ZIZHU_RAUC_KEYRING" -noout -fingerprint -sha256 | cut -d= -f2)"
  echo "signer_sha256 = ${signer#*=}"
  echo
  echo "[debian-packages]"
  in_root dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' | LC_ALL=C sort
  echo
  echo "[python-wheels]  # installed with pip --require-hashes; sha256 of each wheel file"
  cat "$cache/wheels/requirements.lock"
  echo
  echo "[pip-freeze]  # /opt/zizhu/venv"
  in_root /opt/zizhu/venv/bin/python -m pip freeze --all --disable-pip-version-check
} > "$out/zizhu-kiosk.manifest"
(cd "$out" && sha256sum zizhu-kiosk.img zizhu-kiosk.raucb zizhu-kiosk.manifest > SHA256SUMS)

size=$(du -m --apparent-size "$image" | cut -f1)
used=$(du -m "$image" | cut -f1)
step "done: $image ($size MiB, $used MiB allocated), roothash $(cat "$image.roothash")"
step "update bundle: $bundle ($(du -m "$bundle" | cut -f1) MiB), signed with the $keys keys"
