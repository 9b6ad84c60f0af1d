#!/usr/bin/env bash
# Prepares a bare Debian 12 machine for building and testing the project:
# checks the toolchains and installs the Debian packages the tests need.
# Safe to run again: it installs only what is missing.
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

missing=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup-machine: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "setup-machine: $(cargo --version), $(go version | cut -d' ' -f3), $(python3 --version)" >&2
