#!/usr/bin/env bash
# Installs h2spec (github.com/summerwind/h2spec), the HTTP/2 conformance tester
# that `interop h2spec` plays against every server, from the Go module proxy at
# a pinned version into target/interop/h2spec/h2spec. Nothing of it is in this
# repository.
#
# Idempotent: nothing is downloaded or built while the installed binary's own
# build information (`go version -m`) names the pinned module version. Its
# `--version` cannot be used for that: it prints a string fixed in the source
# ("2.0.0"), not the module version.
#
# h2spec's module has no go.mod (hence +incompatible), so `go install
# pkg@version` resolves its dependencies (golang.org/x/net among them) to
# their latest versions when it builds. The versions it got are written to
# target/interop/h2spec/h2spec.stamp and recorded in the baselines.
#
# Progress goes to stderr; stdout stays empty.
set -euo pipefail

version="v2.2.1+incompatible"
module="github.com/summerwind/h2spec"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/interop/h2spec"
bin="$out/h2spec"
stamp="$out/h2spec.stamp"

log() { printf 'h2spec: %s\n' "$*" >&2; }
die() { printf 'h2spec: error: %s\n' "$*" >&2; exit 1; }

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
(cd "$out" && GOBIN="$out" GOFLAGS=-trimpath go install "$module/cmd/h2spec@$version")

got="$(installed)"
[[ $got == "$version" ]] || die "built $bin, but it says it is ${got:-of no version}, not $version"
go version -m "$bin" | awk '$1 == "mod" || $1 == "dep" { print $2, $3 }' >"$stamp.partial"
mv "$stamp.partial" "$stamp"
log "h2spec $version in $bin (dependencies as built: $stamp)"
