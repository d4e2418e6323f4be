#!/usr/bin/env bash
# The Debian part of the image: mmdebstrap installs packages.txt (no Recommends) from bookworm,
# bookworm-updates and bookworm-security into DIR. The kernel's post-install runs dracut with
# overlay/etc/dracut.conf.d and the dracut module overlay/usr/lib/dracut/modules.d/90zizhu-*,
# put in place before any package is installed.
#
#   image-build/rootfs-base.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/settings.sh"
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
[ "$(id -u)" -eq 0 ] || { echo "rootfs-base.sh: needs root (mmdebstrap --mode=root)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "rootfs-base.sh: apt-get install mmdebstrap" >&2; exit 2; }

packages=$(sed -e 's/#.*//' "$here/packages.txt" | xargs | tr ' ' ',')
rm -rf "$dir"
mkdir -p "$dir"
# Documentation and man pages are not read on a kiosk; copyright files stay (licences).
mmdebstrap --mode=root --variant=apt --format=directory \
  --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --setup-hook="mkdir -p \"\$1/etc/dracut.conf.d\" && cp '$here/overlay/etc/dracut.conf.d/10-zizhu.conf' \"\$1/etc/dracut.conf.d/\"" \
  --setup-hook="mkdir -p \"\$1/usr/lib/dracut/modules.d\" && cp -r '$here/overlay/usr/lib/dracut/modules.d/90zizhu-machine-id' \"\$1/usr/lib/dracut/modules.d/\"" \
  "$ZIZHU_SUITE" "$dir" \
  "deb $ZIZHU_MIRROR $ZIZHU_SUITE main" \
  "deb $ZIZHU_MIRROR $ZIZHU_SUITE-updates main" \
  "deb $ZIZHU_SECURITY_MIRROR $ZIZHU_SUITE-security main"
