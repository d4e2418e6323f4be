#!/usr/bin/env bash
# Starts the peers the tests need and runs the whole suite. The back office is started by the
# tests themselves (a real server per session on a free loopback port); Kivy runs offscreen.
set -euo pipefail
cd "$(dirname "$0")/.."
export SDL_VIDEODRIVER=offscreen KIVY_NO_ARGS=1 KIVY_NO_FILELOG=1
.venv/bin/ruff check .
# The UI tests run in their own process: one Kivy window per process.
.venv/bin/pytest -q -m "not ui and not image" "$@"
.venv/bin/pytest -q -m ui "$@"
