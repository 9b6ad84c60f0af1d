#!/usr/bin/env bash
# Installs ghz (github.com/bojand/ghz), the gRPC load tool `interop bench`
# plays against every server as its reference column, from the Go module
# proxy at a pinned version into target/interop/ghz/ghz. Nothing of it is in
# this repository. ghz's module has a go.mod, so its dependencies are the
# versions it pins.
#
# Idempotent: nothing is downloaded or built while the installed binary's own
# build information (`go version -m`) names the pinned module version.
#
# Progress goes to stderr; stdout stays empty.
set -euo pipefail

version="v0.121.0"
module="github.com/bojand/ghz"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/interop/ghz"
bin="$out/ghz"

log() { printf 'ghz: %s\n' "$*" >&2; }
die() { printf 'ghz: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found on PATH (need Go 1.26 or newer)"

# The module version built into $bin, empty when there is none.
installed() {
  [[ -x $bin ]] || return 0
  go version -m "$bin" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }'
}

if [[ "$(installed)" == "$version" ]]; then
  exit 0
fi

log "installing $module $version into $out"
mkdir -p "$out"
# Outside any module: `go install pkg@version` builds the module as published.
(cd "$out" && GOBIN="$out" GOFLAGS=-trimpath go install "$module/cmd/ghz@$version")

got="$(installed)"
[[ $got == "$version" ]] || die "built $bin, but it says it is ${got:-of no version}, not $version"
log "ghz $version in $bin"
