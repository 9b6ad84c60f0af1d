#!/usr/bin/env bash
# Builds h2spec (github.com/summerwind/h2spec), the HTTP/2 conformance tester
# that `interop h2spec` plays against every server, from the Go module proxy
# into target/interop/h2spec/h2spec. Nothing of it is in this repository.
#
# h2spec's module has no go.mod of its own (hence +incompatible), so
# `go install pkg@version` would take the latest versions of its dependencies
# (golang.org/x/net among them) on every new machine. h2spec/tool/go.mod pins
# h2spec and each of them, and go.sum their checksums; the build runs with
# -mod=readonly, so it fails rather than resolve anything else. To move a
# version: edit h2spec/tool/go.mod, run `go mod tidy` there, record the
# baselines again (`interop h2spec --record`).
#
# Idempotent: nothing is downloaded or built while the binary is newer than
# go.mod and go.sum and its build information names the pinned h2spec. Its
# `--version` cannot be used for that: it prints a string fixed in the source
# ("2.0.0"), not the module version.
#
# Progress goes to stderr; stdout stays empty.
set -euo pipefail

module="github.com/summerwind/h2spec"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tool="$root/h2spec/tool"
out="$root/target/interop/h2spec"
bin="$out/h2spec"

# shellcheck source=scripts/go-tool.sh
source "$root/scripts/go-tool.sh"
command -v go >/dev/null 2>&1 || {
  printf 'h2spec: error: go not found on PATH (need Go 1.26 or newer)\n' >&2
  exit 1
}
version="$(awk -v m="$module" '$1 == m { print $2 }' "$tool/go.mod")"
[[ -n $version ]] || {
  printf 'h2spec: error: %s/go.mod does not require %s\n' "$tool" "$module" >&2
  exit 1
}
if [[ -x $bin && $bin -nt $tool/go.mod && $bin -nt $tool/go.sum &&
  "$(go_tool_version "$bin" "$module")" == "$version" ]]; then
  exit 0
fi
printf 'h2spec: building %s %s with the dependencies of %s into %s\n' \
  "$module" "$version" "$tool/go.mod" "$out" >&2
mkdir -p "$out"
(cd "$tool" && GOFLAGS="-trimpath -mod=readonly" go build -o "$bin.partial" "$module/cmd/h2spec")
mv "$bin.partial" "$bin"
got="$(go_tool_version "$bin" "$module")"
if [[ $got != "$version" ]]; then
  printf 'h2spec: error: built %s, but it says it is %s, not %s\n' \
    "$bin" "${got:-of no version}" "$version" >&2
  exit 1
fi
printf 'h2spec: h2spec %s in %s\n' "$version" "$bin" >&2
