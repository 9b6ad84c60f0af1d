#!/usr/bin/env bash
# Prepares a Debian 12 machine for the whole test suite, installing only what
# is missing (safe to run again):
#   - checks the toolchains: cargo (Rust 1.85+), go (1.26+), python3 (3.11+ with venv)
#   - Debian packages: a Docker engine (docker.io), docker-compose (v1.29, used
#     when the compose v2 plugin is absent), chromium (HTML report test),
#     debootstrap (local stand-in base images)
#   - starts dockerd when no engine answers, and waits for it
# Needs root for apt-get and dockerd; without root it only checks and says
# what is missing.
set -euo pipefail

need_cmd() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "setup-machine: '$1' is missing: $2" >&2
    exit 1
  fi
}
need_cmd cargo "install Rust (rustup), 1.85 or newer"
need_cmd go "install Go 1.26 or newer"
need_cmd python3 "install CPython 3.11 or newer with venv and pip"

packages=(docker.io docker-compose chromium debootstrap)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-machine: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "setup-machine: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # apt-get has no overall time limit of its own; a stuck mirror must not hang CI.
  timeout 900 apt-get update -qq
  timeout 1800 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! timeout 20 docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-machine: no Docker engine answers; start dockerd (as root) or set DOCKER_HOST" >&2
    exit 1
  fi
  echo "setup-machine: starting dockerd" >&2
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd-interop.log 2>&1 &
  for _ in $(seq 120); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! timeout 20 docker info >/dev/null 2>&1; then
    echo "setup-machine: dockerd did not come up; its log:" >&2
    tail -20 /var/log/dockerd-interop.log >&2
    exit 1
  fi
fi

echo "setup-machine: $(cargo --version), $(go version | cut -d' ' -f3), $(python3 --version), docker $(docker version --format '{{.Server.Version}}' 2>/dev/null)" >&2
