#!/usr/bin/env bash
# Builds grpc-go's own interop client and server, the reference peers of the
# matrix, from the Go module proxy at the version grpc-go is pinned to in
# go/go.mod, into target/interop/go-official/ (`client`, `server`). Nothing of
# them is in this repository. Their TLS test files (testdata/ca.pem,
# server1.pem, server1.key of the grpc module) are copied beside them, so the
# server can be told where they are and clients can trust its CA.
#
# Idempotent; Go's build cache makes a warm run take about a second.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/interop/go-official"
die() { printf 'go-official: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found on PATH (need Go 1.26 or newer)"
version="$(sed -n 's/^[[:space:]]*google\.golang\.org\/grpc[[:space:]]\+\(v[^[:space:]]*\).*/\1/p' "$root/go/go.mod" | head -n 1)"
[[ -n $version ]] || die "cannot read the google.golang.org/grpc version from go/go.mod"

mkdir -p "$out/testdata"
# Outside the module of go/: `go install pkg@version` builds the module as
# published, with its own go.mod, not ours.
(cd "$out" && GOBIN="$out" GOFLAGS=-trimpath go install \
  "google.golang.org/grpc/interop/client@$version" \
  "google.golang.org/grpc/interop/server@$version")

testdata="$(go env GOMODCACHE)/google.golang.org/grpc@$version/testdata"
for file in ca.pem server1.pem server1.key; do
  [[ -r $testdata/$file ]] || die "missing $testdata/$file"
  install -m 0644 "$testdata/$file" "$out/testdata/$file"
done
printf 'go-official: grpc-go %s interop client and server in %s\n' "$version" "$out" >&2
