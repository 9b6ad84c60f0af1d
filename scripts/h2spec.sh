#!/usr/bin/env bash
# Installs h2spec (github.com/summerwind/h2spec), the HTTP/2 conformance tester
# that `interop h2spec` plays against every server, from the Go module proxy at
# a pinned version into target/interop/h2spec/h2spec. Nothing of it is in this
# repository.
#
# Idempotent (see go-tool.sh): nothing is downloaded or built while the
# installed binary's own build information names the pinned module version.
# Its `--version` cannot be used for that: it prints a string fixed in the
# source ("2.0.0"), not the module version.
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

# shellcheck source=scripts/go-tool.sh
source "$root/scripts/go-tool.sh"
go_tool_install h2spec "$module" cmd/h2spec "$version" "$out"

# The dependencies this build got, once per build.
if [[ ! -s $stamp || $bin -nt $stamp ]]; then
  go version -m "$bin" | awk '$1 == "mod" || $1 == "dep" { print $2, $3 }' >"$stamp.partial"
  mv "$stamp.partial" "$stamp"
  printf 'h2spec: dependencies as built: %s\n' "$stamp" >&2
fi
