#!/usr/bin/env bash
# Installs ghz (github.com/bojand/ghz), the gRPC load tool `interop bench`
# plays against every server as its reference column, from the Go module
# proxy at a pinned version into target/interop/ghz/ghz (see go-tool.sh).
# ghz's module has a go.mod, so its dependencies are the versions it pins.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/go-tool.sh
source "$root/scripts/go-tool.sh"
go_tool_install ghz github.com/bojand/ghz cmd/ghz v0.121.0 "$root/target/interop/ghz"
