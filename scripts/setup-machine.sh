#!/usr/bin/env bash
# Prepares a Debian or Ubuntu machine for the whole test suite, installing only
# what is missing (safe to run again):
#   - checks the toolchains: cargo (Rust 1.85+), go (1.26+), python3 (3.11+ with venv)
#   - a Docker engine (Debian's docker.io) unless a `docker` that answers is there
#   - compose: the v2 plugin if present, else Debian's docker-compose (v1.29)
#   - a Chromium-family browser for the HTML report test (Debian's chromium)
#   - debootstrap, only with --base-images (for local stand-in base images)
#   - starts dockerd when no engine answers, and waits for it
# Installs with apt-get as root, or through sudo when that works without a
# password; otherwise it says what is missing and exits 1.
set -euo pipefail

want_debootstrap=false
[[ ${1:-} == --base-images ]] && want_debootstrap=true

need_cmd() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "setup-machine: '$1' is missing: $2" >&2
    exit 1
  fi
}
need_cmd cargo "install Rust (rustup), 1.85 or newer"
need_cmd go "install Go 1.26 or newer"
need_cmd python3 "install CPython 3.11 or newer with venv and pip"

if [ "$(id -u)" = 0 ]; then
  as_root=()
elif sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  as_root=(false)
fi

missing=()
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
browser=""
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then browser="$b"; break; fi
done
[[ -n $browser ]] || missing+=(chromium)
if $want_debootstrap && ! command -v debootstrap >/dev/null 2>&1; then
  missing+=(debootstrap)
fi

if ((${#missing[@]})); then
  if [[ ${as_root[0]:-} == false ]]; then
    echo "setup-machine: missing: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup-machine: installing ${missing[*]}" >&2
  # apt-get has no overall time limit of its own; a stuck mirror must not hang CI.
  timeout 900 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  timeout 1800 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! timeout 20 docker info >/dev/null 2>&1; then
  if [[ ${as_root[0]:-} == false ]]; then
    echo "setup-machine: no Docker engine answers; start dockerd (as root) or set DOCKER_HOST" >&2
    exit 1
  fi
  echo "setup-machine: starting dockerd" >&2
  log=/tmp/dockerd-interop.log
  "${as_root[@]}" sh -c "nohup dockerd >$log 2>&1 &"
  for _ in $(seq 120); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! timeout 20 docker info >/dev/null 2>&1; then
    echo "setup-machine: dockerd did not come up; its log:" >&2
    tail -20 "$log" >&2 || true
    exit 1
  fi
fi

echo "setup-machine: $(cargo --version), $(go version | cut -d' ' -f3), $(python3 --version), docker $(docker version --format '{{.Server.Version}}' 2>/dev/null)" >&2
