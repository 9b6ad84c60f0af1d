# Sourced, not run: installs a Go program from the Go module proxy at a
# pinned module version into a folder under target/ (scripts/ghz.sh), and
# reads the module version a built binary names (scripts/h2spec.sh too).
# Nothing of the program is in this repository.
#
# go_tool_install NAME MODULE PACKAGE VERSION OUT
#   Installs MODULE/PACKAGE@VERSION as OUT/<last element of PACKAGE>, unless
#   the binary there already says (in its build information, `go version -m`)
#   that it is MODULE at VERSION; then nothing is downloaded or built.
#   Progress goes to stderr, prefixed with NAME; stdout stays empty.
#
# go_tool_version BIN MODULE
#   Prints the version of MODULE built into BIN, nothing when there is none.

go_tool_version() {
  [[ -x $1 ]] || return 0
  go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
}

go_tool_install() {
  local name=$1 module=$2 package=$3 version=$4 out=$5
  local bin="$out/${package##*/}"
  command -v go >/dev/null 2>&1 || {
    printf '%s: error: go not found on PATH (need Go 1.26 or newer)\n' "$name" >&2
    return 1
  }
  [[ "$(go_tool_version "$bin" "$module")" == "$version" ]] && return 0
  printf '%s: installing %s %s into %s\n' "$name" "$module" "$version" "$out" >&2
  mkdir -p "$out"
  # Outside any module: `go install pkg@version` builds the module as published.
  (cd "$out" && GOBIN="$out" GOFLAGS=-trimpath go install "$module/$package@$version")
  local got
  got="$(go_tool_version "$bin" "$module")"
  if [[ $got != "$version" ]]; then
    printf '%s: error: built %s, but it says it is %s, not %s\n' \
      "$name" "$bin" "${got:-of no version}" "$version" >&2
    return 1
  fi
  printf '%s: %s %s in %s\n' "$name" "$name" "$version" "$bin" >&2
}
