#!/usr/bin/env bash
# Creates or refreshes the virtualenv of the Python implementation at
# <repo>/target/interop/python-venv from python/requirements.txt.
#
# Idempotent and fast when warm: the venv keeps the sha256 of the requirements
# it was built from in a stamp file, and nothing runs while that still matches.
# When it does not, the venv is rebuilt from scratch (so a package dropped from
# requirements.txt really goes away) and the stamp is written only after pip
# succeeded. Progress goes to stderr; stdout stays empty.
#
# Environment: PYTHON picks the interpreter that creates the venv (default python3).
# pip's own configuration (CA bundle, find-links, index) is used as it is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/interop/python-venv"
req="$root/python/requirements.txt"
stamp="$venv/requirements.sha256"

log() { printf 'python-env: %s\n' "$*" >&2; }
die() { printf 'python-env: error: %s\n' "$*" >&2; exit 1; }

[[ -r "$req" ]] || die "cannot read $req"
want="$(sha256sum "$req")"
want="${want%% *}"

# Warm path: the interpreter link still resolves and the stamp matches.
if [[ -x "$venv/bin/python" && -r "$stamp" && "$(<"$stamp")" == "$want" ]]; then
  exit 0
fi

python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "$python not found on PATH (need CPython >= 3.11)"

mkdir -p "$root/target/interop"
# Two builds at once (e.g. a runner and a developer) must not pip into the same
# venv together: the slow path holds a lock. flock is in util-linux, so on every
# Debian; without it we go on unlocked.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$root/target/interop/.python-env.lock"
  flock 9
  # Somebody else may have finished the job while we waited.
  if [[ -x "$venv/bin/python" && -r "$stamp" && "$(<"$stamp")" == "$want" ]]; then
    exit 0
  fi
fi

log "building $venv from python/requirements.txt (sha256 ${want:0:12})"
rm -f "$stamp"
if ! "$python" -m venv --clear "$venv" >&2; then
  die "'$python -m venv' failed; on Debian/Ubuntu install the python3-venv package"
fi

log "pip install -r python/requirements.txt"
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -r "$req" 1>&2; then
  die "pip install -r $req failed (see pip's output above); the venv is left without a stamp and will be rebuilt on the next run"
fi

printf '%s\n' "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
log "ready: $venv/bin/python ($("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
