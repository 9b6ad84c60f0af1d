#!/usr/bin/env bash
# Regenerates go/gen/ from proto/ with pinned tools.
#
#   scripts/gen-go.sh           write go/gen/
#   scripts/gen-go.sh --check   generate into a temporary folder and exit 1 if
#                               go/gen/ differs from it (stale generated code)
#
# Tools, all pinned so that two runs on two machines give the same bytes:
#   protoc              the one shipped in Python's grpcio-tools, in a venv at
#                       target/tools/venv
#   protoc-gen-go       google.golang.org/protobuf, the version go/go.mod requires
#   protoc-gen-go-grpc  google.golang.org/grpc/cmd/protoc-gen-go-grpc
# Go plugins go to target/tools/bin (GOBIN), never to the user's GOPATH/bin.
set -euo pipefail

GRPCIO_TOOLS_VERSION=1.85.1
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
GO_MODULE=polyglot-grpc-interop/go

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/target/tools"
venv="$tools/venv"
bin="$tools/bin"

usage() {
	echo "usage: scripts/gen-go.sh [--check]" >&2
	exit 2
}

check=false
case "${1:-}" in
"") ;;
--check) check=true ;;
*) usage ;;
esac
[ "$#" -le 1 ] || usage

# protoc-gen-go must match the protobuf runtime the module builds against,
# so its version is read from go.mod rather than written down twice.
protobuf_version="$(cd "$root/go" && go list -m -f '{{.Version}}' google.golang.org/protobuf)"

install_plugin() { # name package version
	local name="$1" pkg="$2" version="$3" stamp="$bin/.$1.version"
	if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
		return
	fi
	echo "gen-go: installing $pkg@$version" >&2
	# pkg@version builds outside any module, so go/go.mod is not touched.
	(cd "$tools" && GOBIN="$bin" go install "$pkg@$version")
	echo "$version" >"$stamp"
}

mkdir -p "$bin"
install_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$protobuf_version"
install_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

if ! "$venv/bin/python" -c "import grpc_tools" 2>/dev/null ||
	[ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))')" != "$GRPCIO_TOOLS_VERSION" ]; then
	echo "gen-go: installing grpcio-tools==$GRPCIO_TOOLS_VERSION into $venv" >&2
	python3 -m venv "$venv"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "grpcio-tools==$GRPCIO_TOOLS_VERSION"
fi

generate() { # output directory (becomes the new go/gen)
	local out="$1" staging
	staging="$(mktemp -d)"
	# Relative proto paths, so that the "source:" comments in the generated
	# files do not depend on where the repository is checked out.
	(
		cd "$root"
		mapfile -t protos < <(find proto -name '*.proto' | LC_ALL=C sort)
		"$venv/bin/python" -m grpc_tools.protoc \
			-Iproto \
			--plugin=protoc-gen-go="$bin/protoc-gen-go" \
			--plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
			--go_out="$staging" --go_opt=module="$GO_MODULE" \
			--go-grpc_out="$staging" --go-grpc_opt=module="$GO_MODULE" \
			"${protos[@]}"
	)
	rm -rf "$out"
	mv "$staging/gen" "$out"
	rm -rf "$staging"
}

if $check; then
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	generate "$tmp/gen"
	if ! diff -r "$tmp/gen" "$root/go/gen" >"$tmp/diff" 2>&1; then
		echo "gen-go: go/gen is stale: it differs from what proto/ generates. Run scripts/gen-go.sh and commit the result." >&2
		head -n 40 "$tmp/diff" >&2
		exit 1
	fi
	echo "gen-go: go/gen is up to date" >&2
else
	generate "$root/go/gen"
	echo "gen-go: wrote go/gen" >&2
fi
