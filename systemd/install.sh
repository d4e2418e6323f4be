#!/usr/bin/env bash
# Installs the appliance's systemd files into a root file system and enables them. The image
# build runs it on the rootfs it is building, so the units tested here are the ones the image
# boots with:
#
#   systemd/install.sh --root /path/to/rootfs [--with-backoffice]
#
# Users and groups are created now (systemd-sysusers --root): on the read-only root, /etc/passwd
# cannot be written at boot. Without --root it installs into / of a running Debian 12 and
# reloads systemd. Needs systemd's systemctl, systemd-sysusers and systemd-tmpfiles (Debian's
# systemd package), not a running systemd.
set -euo pipefail

usage() { echo "usage: $0 [--root DIR] [--with-backoffice]" >&2; exit 2; }
root=/
backoffice=no
while [ $# -gt 0 ]; do
  case $1 in
    --root) [ $# -ge 2 ] || usage; root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --with-backoffice) backoffice=yes; shift ;;
    *) usage ;;
  esac
done
[ -d "$root" ] || { echo "install.sh: no directory $root" >&2; exit 2; }
root=$(cd "$root" && pwd)
src=$(cd "$(dirname "$0")" && pwd)
lib=$root/usr/lib

put() {  # put MODE SOURCE DESTINATION
  install -D -m "$1" "$src/$2" "$3"
}

for unit in "$src"/system/*.service "$src"/system/*.timer; do
  put 0644 "system/${unit##*/}" "$lib/systemd/system/${unit##*/}"
done
put 0644 system/seatd.service.d/zizhu-ready.conf "$lib/systemd/system/seatd.service.d/zizhu-ready.conf"
put 0644 sysusers.d/zizhu.conf "$lib/sysusers.d/zizhu.conf"
put 0644 tmpfiles.d/zizhu.conf "$lib/tmpfiles.d/zizhu.conf"
put 0644 sysctl.d/90-zizhu.conf "$lib/sysctl.d/90-zizhu.conf"
put 0644 modules-load.d/zizhu-devices.conf "$lib/modules-load.d/zizhu-devices.conf"
put 0644 logind.conf.d/zizhu.conf "$lib/systemd/logind.conf.d/zizhu.conf"
put 0644 system.conf.d/zizhu-watchdog.conf "$lib/systemd/system.conf.d/zizhu-watchdog.conf"
put 0644 system.conf.d/zizhu-ctrl-alt-del.conf "$lib/systemd/system.conf.d/zizhu-ctrl-alt-del.conf"
put 0755 health-check.py "$root/usr/libexec/zizhu/health-check"
put 0644 README.md "$root/usr/share/doc/zizhu/systemd/README.md"

systemd-sysusers --root="$root" "$lib/sysusers.d/zizhu.conf"
# The data partition is mounted over /var/lib/zizhu at boot, where systemd-tmpfiles-setup
# creates these again; here they give the image its mount point and a usable layout.
systemd-tmpfiles --root="$root" --create "$lib/tmpfiles.d/zizhu.conf"

systemctl --root="$root" --quiet enable zizhu-kiosk.service zizhu-health.timer
if [ "$backoffice" = yes ]; then
  systemctl --root="$root" --quiet enable zizhu-backoffice.service
fi
# No console login and no key that reboots: the touch screen and a plugged-in keyboard reach
# the kiosk and nothing else (NAutoVTs=0 in logind.conf.d keeps tty2..tty6 empty).
systemctl --root="$root" --quiet mask getty@tty1.service debug-shell.service ctrl-alt-del.target

if [ "$root" = / ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
echo "install.sh: Zizhu units installed into $root (back office: $backoffice)"
