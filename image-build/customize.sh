#!/usr/bin/env bash
# Turns the Debian base (rootfs-base.sh) into the kiosk's root file system, in place:
# the files under overlay/, the app's venv from the wheels (wheels.sh), the units
# (systemd/install.sh, the same script the unit tests run), the CUPS queues baked in, the
# settings a read-only root needs, RAUC with the update keyring, and a clean-up. Ends with
# checks that fail the build.
#
#   image-build/customize.sh ROOT WHEELS KEYRING
#
# KEYRING: the CA certificate(s) that sign update bundles (build.sh: the development CA, or
# ZIZHU_RAUC_KEYRING for a release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
[ $# -eq 3 ] || { echo "usage: $0 ROOT WHEELS KEYRING" >&2; exit 2; }
root=$(cd "$1" && pwd)
wheels=$(cd "$2" && pwd)
keyring=$3

# Runs a command in the root with /dev, /proc and a private /run and network, in namespaces of
# its own: nothing is left mounted or running (the PID namespace ends with the command),
# nothing listens on the host's ports, none of the host's environment (pip's settings) leaks in.
in_root() {
  unshare --mount --net --pid --fork --propagation private -- sh -ec '
    root=$1; shift
    ip link set lo up
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount -t tmpfs tmpfs "$root/run"
    mount -t tmpfs tmpfs "$root/tmp"
    exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
  ' in_root "$root" "$@"
}

echo "customize: overlay"
cp -rT --no-preserve=ownership "$here/overlay" "$root"
chmod 0755 "$root/usr/libexec/zizhu/selftest" "$root/usr/libexec/zizhu/save-machine-id" \
  "$root/usr/libexec/zizhu/update-check"
chmod 0755 "$root/usr/lib/systemd/system-generators/zizhu-slow-machine-generator"
install -D -m 0644 "$here/README.md" "$root/usr/share/doc/zizhu/image-build/README.md"

echo "customize: the app's venv from $(grep -c . "$wheels/requirements.lock") wheels"
rm -rf "$root/opt/zizhu/venv"
in_root /usr/bin/python3 -m venv /opt/zizhu/venv
mkdir -p "$root/var/tmp/zizhu-wheels"
cp "$wheels"/*.whl "$wheels/requirements.lock" "$root/var/tmp/zizhu-wheels/"
in_root /opt/zizhu/venv/bin/pip install -q --disable-pip-version-check --no-index \
  --no-cache-dir --require-hashes --find-links /var/tmp/zizhu-wheels \
  -r /var/tmp/zizhu-wheels/requirements.lock
rm -rf "$root/var/tmp/zizhu-wheels"
# The app's files and its byte code are part of the verified root, never written at run time.
in_root /opt/zizhu/venv/bin/python -c 'import kiosk.cli, backoffice.cli' >/dev/null

echo "customize: units (systemd/install.sh)"
bash "$project/systemd/install.sh" --root "$root"
systemctl --root="$root" --quiet enable zizhu-selftest.service systemd-networkd.service \
  systemd-resolved.service systemd-timesyncd.service cups.socket cups.path pcscd.socket \
  seatd.service prometheus-node-exporter.service zizhu-save-machine-id.service \
  zizhu-update-check.service

echo "customize: RAUC"
install -D -m 0644 "$here/rauc/system.conf" "$root/etc/rauc/system.conf"
install -D -m 0644 "$keyring" "$root/etc/rauc/keyring.pem"
install -D -m 0755 "$here/rauc/rauc-bootloader" "$root/usr/libexec/zizhu/rauc-bootloader"
systemctl --root="$root" --quiet set-default graphical.target

# Every package's system users now (systemd-resolve, systemd-timesync, ...): on the read-only
# root systemd-sysusers cannot add them at boot, and their services would fail.
systemd-sysusers --root="$root"
# No login prompt anywhere, the serial port included (console=ttyS0 in the self-test entry
# would otherwise get one): the getty generator is off, getty@tty1 masked by install.sh.
mkdir -p "$root/etc/systemd/system-generators"
ln -sf /dev/null "$root/etc/systemd/system-generators/systemd-getty-generator"

# dracut's units run in the initrd, where dracut copies them from its own modules. On the root
# they would unpack the initrd into RAM at every boot (dracut-shutdown.service), and their
# links into /usr/lib/dracut break `systemd-analyze verify --root`.
find "$root/usr/lib/systemd/system" "$root/etc/systemd/system" -name 'dracut-*.service' -delete

echo "customize: CUPS queues"
# Placeholders until the site's printers are known: a generic PDF queue for each, jobs
# aborted (not the queue stopped) when the printer fails, so the kiosk sees the error. The
# site changes the device URI and the PPD with lpadmin; both live on the data partition.
in_root sh -ec '
  cupsd -f & pid=$!
  i=0; while [ ! -S /run/cups/cups.sock ]; do i=$((i+1)); [ $i -lt 100 ]; sleep 0.1; done
  ppd=/usr/share/ppd/cupsfilters/Generic-PDF_Printer-PDF.ppd
  lpadmin -h /run/cups/cups.sock -p zizhu-a4 -E -v "usb://Unknown/A4" -P "$ppd" \
    -D "A4 document printer" -o printer-error-policy=abort-job -o PageSize=A4
  lpadmin -h /run/cups/cups.sock -p zizhu-receipt -E -v "usb://Unknown/Receipt" -P "$ppd" \
    -D "80 mm receipt printer" -o printer-error-policy=abort-job
  lpadmin -h /run/cups/cups.sock -d zizhu-a4
  kill $pid; wait $pid || true'
rm -rf "$root/usr/share/zizhu/factory/cups"
mkdir -p "$root/usr/share/zizhu/factory"
cp -a "$root/etc/cups" "$root/usr/share/zizhu/factory/cups"

echo "customize: read-only root"
# An empty machine-id: systemd makes a new one at each boot in /run (the root cannot keep
# one); the kiosk's identity is its provisioned kiosk id, on the data partition.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$root/var/lib/dbus/machine-id"
ln -sf /usr/share/zoneinfo/Asia/Shanghai "$root/etc/localtime"
echo Asia/Shanghai > "$root/etc/timezone"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/efi"
# No password for anyone: no console login, no sshd; the technician's way in is the touch
# screen's maintenance mode.
sed -i -E 's/^(root):[^:]*:/\1:*:/' "$root/etc/shadow"

echo "customize: clean-up"
# ssl-cert (a dependency of cups) made a "snakeoil" key pair at install time: the same private
# key on every kiosk written from this image. Nothing here uses it (cupsd makes its own).
rm -f "$root/etc/ssl/private/ssl-cert-snakeoil.key" "$root/etc/ssl/certs/ssl-cert-snakeoil.pem"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/var/log/* \
  "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache

echo "customize: checks"
for tool in gcc cc c++ g++ clang tcc sshd vpcd; do
  if in_root sh -c "command -v $tool" >/dev/null 2>&1; then
    echo "customize: $tool must not be in the image" >&2; exit 1
  fi
done
for package in vsmartcard-vpcd openssh-server gcc cpp; do
  if [ "$(in_root dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ]; then
    echo "customize: package $package must not be in the image" >&2; exit 1
  fi
done
echo "customize: done"
