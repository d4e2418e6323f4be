#!/usr/bin/env bash
# Starts the kiosk with the given config. Without a display it starts a virtual one (Xvfb) and
# a VNC server on loopback so the screen can be seen from elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-assets/config/demo.toml}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  display=:99
  while [ -e "/tmp/.X11-unix/X${display#:}" ]; do display=":$(( ${display#:} + 1 ))"; done
  Xvfb "$display" -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 & pids+=($!)
  export DISPLAY=$display
  for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X${display#:}" ] && break; sleep 0.1; done
  port=5900
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  x11vnc -display "$display" -localhost -nopw -forever -shared -quiet -rfbport "$port" \
    >/dev/null 2>&1 & pids+=($!)
  echo "run: no display here; the kiosk runs on virtual display $display."
  echo "run: to see it, connect a VNC viewer to 127.0.0.1:$port (from another machine:"
  echo "run:   ssh -L $port:127.0.0.1:$port THIS-HOST, then a viewer to localhost:$port)."
fi
.venv/bin/kiosk run --config "$config"
