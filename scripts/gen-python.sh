#!/usr/bin/env bash
# Regenerates python/gen/ (messages, .pyi stubs and gRPC stubs) from proto/
# with the grpcio-tools pinned in python/requirements.txt.
#
#   scripts/gen-python.sh          rewrite python/gen/
#   scripts/gen-python.sh --check  exit 1 if python/gen/ differs from a fresh generation
#
# python/gen/ is committed and never edited by hand; CI runs --check so stale
# generated code fails the build. It holds exactly what protoc writes (no
# __init__.py: `helloworld` and `grpc/testing` are namespace portions, see
# python/interop/_gen.py for how `grpc.testing` coexists with grpcio's `grpc`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gen="$root/python/gen"
python="$root/target/interop/python-venv/bin/python"

check=false
case "${1-}" in
  "") ;;
  --check) check=true ;;
  *) printf 'usage: %s [--check]\n' "$0" >&2; exit 2 ;;
esac

bash "$root/scripts/python-env.sh"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Paths relative to proto/ so the module names follow the proto packages
# (helloworld.helloworld_pb2, grpc.testing.test_pb2) and stay the same on every machine.
protos=()
while IFS= read -r -d '' f; do protos+=("${f#"$root/proto/"}"); done \
  < <(find "$root/proto" -name '*.proto' -print0 | LC_ALL=C sort -z)
[[ ${#protos[@]} -gt 0 ]] || { echo "gen-python: no .proto files under $root/proto" >&2; exit 1; }

(cd "$root/proto" && "$python" -m grpc_tools.protoc -I . \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" "${protos[@]}")

if $check; then
  if ! diff -r -x __pycache__ "$gen" "$tmp" >&2; then
    echo "gen-python: python/gen is stale or hand-edited: run scripts/gen-python.sh and commit the result" >&2
    exit 1
  fi
  echo "gen-python: python/gen is up to date" >&2
  exit 0
fi

rm -rf "$gen"
mkdir -p "$(dirname "$gen")"
cp -R "$tmp" "$gen"
echo "gen-python: wrote ${#protos[@]} protos into python/gen" >&2
