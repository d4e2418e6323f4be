#!/usr/bin/env bash
# Installs everything `make run` and `make test` need on Debian 12: system packages by name,
# then a virtual environment with the project in editable mode. Idempotent: a second run only
# checks (dpkg-query, a hash of pyproject.toml) and returns within a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
# Keep this list the single place that names system packages; later capabilities add theirs here.
DEB_PACKAGES=(
  python3 python3-venv python3-dev          # Python 3.11 is Debian 12's python3
  gcc                                       # builds pycups; tests build a photo-decoder plug-in
  fonts-wqy-microhei                        # Chinese font for screen and print
  xvfb x11vnc xauth                         # `make run` without a display, and a way to look at it
  libmtdev1 libgl1 libegl1 libgles2 libgl1-mesa-dri   # Kivy's SDL2 window, offscreen included
  poppler-utils                             # pdftotext/pdftoppm for reading printed output back
  pcscd libpcsclite1 libpcsclite-dev        # PC/SC for eMRTD chips (pyscard)
  vsmartcard-vpcd                           # virtual PC/SC reader: tests serve a simulated passport
  cups printer-driver-cups-pdf libcups2-dev # printing through CUPS (pycups builds against libcups)
  libzbar0                                  # pyzbar, the second QR decoder
  tesseract-ocr tesseract-ocr-eng           # MRZ reading from the camera (pytesseract)
  fonts-ocr-b                               # OCR-B, the MRZ typeface: renders specimen pages in tests
  systemd systemd-container                 # systemd-analyze, sysusers, tmpfiles; nspawn boots the units (tests/systemd)
  cage xwayland                             # the appliance's compositor: tests run the kiosk under it
  postgresql libpq5                         # the back office's second database: tests start a private cluster
  mmdebstrap cryptsetup-bin dosfstools mtools fdisk   # image-build/: the kiosk's disk image (make image)
  rauc squashfs-tools                       # image-build/: its signed update bundle (rauc bundle)
  qemu-system-x86 ovmf                      # tests/image: boots that image under UEFI firmware
  qemu-user                                 # tests/systemd: the launcher on an emulated pre-x86-64-v2 CPU (qemu64)
)

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: install as root: apt-get install ${missing[*]}"
    SUDO="sudo"
    say "installing system packages with sudo: ${missing[*]}"
  else
    say "installing system packages: ${missing[*]}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || die "apt-get update failed: check the network and /etc/apt/sources.list"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do command -v "$c" >/dev/null && { PY=$c; break; }; done
fi
[ -n "$PY" ] || die "no python3 found: apt-get install python3"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
  || die "$PY is $("$PY" -V 2>&1); Zizhu needs Python 3.11 (Debian 12's python3)"

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PY" -m venv "$VENV" || die "could not create $VENV: apt-get install python3-venv"
fi
stamp="$VENV/.zizhu-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev]' \
    || die "pip install failed; see the messages above"
  echo "$want" > "$stamp"
fi
# Translations are compiled from the committed .po files (msgfmt via Babel).
"$VENV/bin/pybabel" -q compile -d kiosk/locale -D kiosk \
  || die "could not compile translations in kiosk/locale"
