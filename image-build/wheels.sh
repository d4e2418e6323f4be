#!/usr/bin/env bash
# The app as wheels, built and downloaded here on the host (pip in the image's chroot has no
# CA set-up and the image has no compiler): the project's own wheel, every dependency pinned
# in pyproject.toml (pycups and pyscard are built here against Debian 12's libcups/libpcsclite,
# the same versions the image has), and requirements.lock naming each with its sha256, which
# the image installs with --require-hashes.
#
#   image-build/wheels.sh OUT [DEPS_CACHE]
#
# DEPS_CACHE keeps the dependencies' wheels between builds, keyed by pyproject.toml.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
[ $# -ge 1 ] || { echo "usage: $0 OUT [DEPS_CACHE]" >&2; exit 2; }
out=$1
cache=${2:-$out/.deps}
pip=${PIP:-$project/.venv/bin/pip}
[ -x "$pip" ] || pip="python3 -m pip"

key=$(sha256sum "$project/pyproject.toml" | cut -c1-16)
deps=$cache/deps-$key
if [ ! -f "$deps/.complete" ]; then
  rm -rf "$cache"/deps-*  # only the current dependencies are kept
  mkdir -p "$deps"
  $pip wheel -q --disable-pip-version-check --wheel-dir "$deps" "$project"
  rm -f "$deps"/zizhu-*.whl
  touch "$deps/.complete"
fi

rm -rf "$out"
mkdir -p "$out"
# Wheel timestamps from the last commit, so the same tree gives the same wheel.
SOURCE_DATE_EPOCH=$(git -C "$project" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
# The project's wheel is built in a venv kept in the cache (setuptools and wheel from PyPI
# once) rather than pip's isolated build, which downloads them again for every build.
buildenv=$cache/buildenv
if [ ! -x "$buildenv/bin/pip" ] || [ ! -f "$buildenv/.complete" ]; then
  rm -rf "$buildenv"
  python3 -m venv "$buildenv"
  "$buildenv/bin/pip" install -q --disable-pip-version-check "setuptools>=68" wheel
  touch "$buildenv/.complete"
fi
"$buildenv/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
  --wheel-dir "$out" "$project"
cp "$deps"/*.whl "$out/"

# name==version --hash=sha256:... for each wheel (pip's hash-checking mode).
for wheel in "$out"/*.whl; do
  file=${wheel##*/}
  name=${file%%-*}
  rest=${file#*-}
  version=${rest%%-*}
  echo "$name==$version --hash=sha256:$(sha256sum "$wheel" | cut -d' ' -f1)"
done | sort -f > "$out/requirements.lock"
