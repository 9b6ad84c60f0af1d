#!/usr/bin/env bash
# Prepares a Debian or Ubuntu machine for the whole test suite. Every decision
# is made by what answers, never by what is merely on PATH (a machine may well
# have a Docker *client* and no engine):
#   - toolchains: cargo (Rust 1.88+), go (1.26+), python3 (3.11+ with venv)
#   - a Docker engine: one that answers `docker info` is used as it is; else a
#     `dockerd` that is installed is started; else Debian's docker.io is
#     installed and its dockerd started
#   - compose: the v2 plugin or docker-compose, whichever answers `version`;
#     else Debian's docker-compose (v1.29)
#   - a Chromium-family browser that answers `--version` ($CHROMIUM first);
#     else Debian's chromium
#   - debootstrap, only with --base-images (for local stand-in base images)
# Installs with apt-get as root, or through sudo when that works without a
# password; otherwise it says what is missing and exits 1. Safe to run again.
#
#   bash scripts/setup-machine.sh [--base-images] [--plan]
#
# --plan prints the decisions, one line each, and changes nothing.
set -euo pipefail

want_debootstrap=false
plan_only=false
for arg in "$@"; do
  case $arg in
    --base-images) want_debootstrap=true ;;
    --plan) plan_only=true ;;
    *) echo "usage: $0 [--base-images] [--plan]" >&2; exit 2 ;;
  esac
done

say() { echo "setup-machine: $*" >&2; }
# Bounded, silent probe: does this command answer with exit status 0?
answers() { timeout 20 "$@" >/dev/null 2>&1; }

need_cmd() {
  if ! command -v "$1" >/dev/null 2>&1; then
    say "'$1' is missing: $2"
    exit 1
  fi
}
need_cmd cargo "install Rust (rustup), 1.88 or newer"
need_cmd go "install Go 1.26 or newer"
need_cmd python3 "install CPython 3.11 or newer with venv and pip"

if [ "$(id -u)" = 0 ]; then
  as_root=()
elif sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  as_root=(false)
fi

# The engine: decided by `docker info` answering, never by `docker` existing.
# dockerd lives in an sbin folder, which a user's PATH may lack.
# SETUP_MACHINE_SBIN overrides those folders (the tests set it empty).
sbin_dirs="${SETUP_MACHINE_SBIN-/usr/local/sbin:/usr/sbin:/sbin}"
find_dockerd() { PATH="$PATH${sbin_dirs:+:$sbin_dirs}" command -v dockerd 2>/dev/null; }
if command -v docker >/dev/null 2>&1 && answers docker info; then
  engine=running
elif find_dockerd >/dev/null; then
  engine=start
else
  engine=install
fi

if answers docker compose version || answers docker-compose version; then
  compose=present
else
  compose=install
fi

browser=""
for b in ${CHROMIUM:-} chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1 && answers "$b" --version; then
    browser="$b"
    break
  fi
done

missing=()
[[ $engine == install ]] && missing+=(docker.io)
[[ $compose == install ]] && missing+=(docker-compose)
[[ -n $browser ]] || missing+=(chromium)
if $want_debootstrap && ! answers debootstrap --version; then
  missing+=(debootstrap)
fi

if $plan_only; then
  case $engine in
    running) echo "engine: use the one that answers" ;;
    start) echo "engine: start $(find_dockerd)" ;;
    install) echo "engine: install docker.io, then start dockerd" ;;
  esac
  case $compose in
    present) echo "compose: use the one that answers" ;;
    install) echo "compose: install docker-compose" ;;
  esac
  if [[ -n $browser ]]; then echo "browser: use $browser"; else echo "browser: install chromium"; fi
  if $want_debootstrap; then
    if [[ " ${missing[*]} " == *" debootstrap "* ]]; then
      echo "debootstrap: install debootstrap"
    else
      echo "debootstrap: use the one that answers"
    fi
  fi
  exit 0
fi

if ((${#missing[@]})); then
  if [[ ${as_root[0]:-} == false ]]; then
    say "missing: ${missing[*]} (run as root, or install them)"
    exit 1
  fi
  say "installing ${missing[*]}"
  # apt-get has no overall time limit of its own; a stuck mirror must not hang CI.
  timeout 900 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  timeout 1800 "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ $engine != running ]]; then
  if [[ ${as_root[0]:-} == false ]]; then
    say "no Docker engine answers; start dockerd (as root) or set DOCKER_HOST"
    exit 1
  fi
  dockerd_bin="$(find_dockerd)" || { say "docker.io is installed but no dockerd was found"; exit 1; }
  say "starting $dockerd_bin"
  log=/tmp/dockerd-interop.log
  "${as_root[@]}" sh -c "nohup '$dockerd_bin' >$log 2>&1 &"
  # A client is needed to ask; docker.io brings /usr/bin/docker when none was there.
  client="$(command -v docker 2>/dev/null || echo /usr/bin/docker)"
  for _ in $(seq 120); do
    answers "$client" info && break
    sleep 0.5
  done
  if ! answers "$client" info; then
    say "dockerd did not come up; its log:"
    tail -20 "$log" >&2 || true
    exit 1
  fi
fi

say "$(cargo --version), $(go version | cut -d' ' -f3), $(python3 --version), docker $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
