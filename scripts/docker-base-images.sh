#!/usr/bin/env bash
# Builds local stand-ins for the three official base images the Dockerfiles
# start from, for machines that cannot reach any image registry (this project's
# CI machines among them):
#
#   interop-local/rust:1.95-bookworm          for rust:1.95-bookworm
#   interop-local/golang:1.26-bookworm        for golang:1.26-bookworm
#   interop-local/python:3.11-slim-bookworm   for python:3.11-slim-bookworm
#
# Users with Docker Hub access never need this script: the Dockerfiles and
# docker-compose.yml default to the official images. Here the same Dockerfiles
# build from the stand-ins through build args:
#
#   bash scripts/docker-base-images.sh
#   set -a; . target/docker-base.env; set +a     # RUST_IMAGE=... GO_IMAGE=... PYTHON_IMAGE=...
#   docker-compose up --build ...                # or docker build --build-arg RUST_IMAGE=... 
#
# Each stand-in is Debian bookworm from `debootstrap --variant=minbase` plus the
# host's toolchain, imported with `docker import`; nothing is pulled:
#   rust    the host's rustup toolchain (the sysroot of `rustc`: bin/ and lib/,
#           no docs), with gcc and libc6-dev for linking
#   golang  the host's GOROOT (`go env GOROOT`)
#   python  Debian's python3 (3.11) with venv and pip
# Every image gets the host's CA bundle (/etc/ssl/certs/ca-certificates.crt):
# the package registries are reached through an intercepting proxy whose CA is
# only in that bundle, and cargo, go and pip inside a build must trust it.
#
# Idempotent: an image is skipped when it exists and was made from the same
# toolchain version; --force rebuilds all three. The debootstrap roots and the
# downloaded .debs are cached under target/docker-base/, so a rebuild takes
# seconds once they exist. Writes target/docker-base.env and prints the
# --build-arg form. Progress goes to stderr.
#
# Usage: scripts/docker-base-images.sh [--force]
# Environment: DOCKER (default: the docker on PATH), DEBIAN_MIRROR
# (default http://deb.debian.org/debian).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/target/docker-base"
env_file="$root/target/docker-base.env"
docker="${DOCKER:-docker}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
label="com.polyglot-grpc-interop"

log() { printf 'docker-base-images: %s\n' "$*" >&2; }
die() { printf 'docker-base-images: error: %s\n' "$*" >&2; exit 1; }

force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument $1 (usage: $0 [--force])" ;;
esac

[[ $(id -u) == 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
"$docker" info >/dev/null 2>&1 || die "'$docker info' fails: is dockerd running?"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[[ -r $ca_bundle ]] || die "$ca_bundle is missing (apt-get install ca-certificates)"

rust_image=interop-local/rust:1.95-bookworm
go_image=interop-local/golang:1.26-bookworm
python_image=interop-local/python:3.11-slim-bookworm

# The toolchains copied in, and the version each image is labelled with.
rust_sysroot="$(rustc --print sysroot)" || die "rustc not found (install the Rust toolchain)"
rust_version="$(rustc --version) / $(cargo --version)"
goroot="$(go env GOROOT)" || die "go not found (install Go)"
go_version="$(go version)"
python_version="debian bookworm python3"

# A bookworm root for one flavour, cached; `debootstrap` runs only the first time.
# $1 flavour, $2 extra packages (comma-separated).
rootfs() {
  local flavour=$1 include=$2 dir="$cache/$1/rootfs" stamp="$cache/$1/debootstrap.done"
  if [[ -f $stamp && $(<"$stamp") == "$include" ]]; then
    printf '%s\n' "$dir"
    return
  fi
  rm -rf "$dir" "$stamp"
  mkdir -p "$dir" "$cache/debs"
  log "$flavour: debootstrap --variant=minbase bookworm (+ $include)"
  # --cache-dir keeps the .debs, so the other flavours and --force reuse them.
  if ! debootstrap --variant=minbase --include="$include" --cache-dir="$cache/debs" \
    bookworm "$dir" "$mirror" >"$cache/$flavour/debootstrap.log" 2>&1; then
    tail -n 20 "$cache/$flavour/debootstrap.log" >&2
    die "$flavour: debootstrap failed (log: $cache/$flavour/debootstrap.log)"
  fi
  # What a container image does not need: package lists and caches.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  printf '%s' "$include" >"$stamp"
  printf '%s\n' "$dir"
}

# Imports a root folder as an image. $1 folder, $2 tag, $3 version label, then --change lines.
import() {
  local dir=$1 tag=$2 version=$3
  shift 3
  local changes=(--change "LABEL $label=base-image" --change "LABEL $label.toolchain=\"$version\"")
  local change
  for change in "$@"; do
    changes+=(--change "$change")
  done
  log "importing $tag"
  tar --numeric-owner -C "$dir" -c . | "$docker" import "${changes[@]}" - "$tag" >/dev/null
}

# True when $1 must be (re)built: missing, made from another toolchain, or --force.
stale() {
  local tag=$1 version=$2 have
  $force && return 0
  have="$("$docker" image inspect --format "{{index .Config.Labels \"$label.toolchain\"}}" "$tag" 2>/dev/null)" || return 0
  if [[ $have != "$version" ]]; then
    log "$tag was made from '$have', the host now has '$version'"
    return 0
  fi
  log "$tag is up to date"
  return 1
}

# Copies a folder's listed entries to DEST inside a root, replacing what was there.
install_tree() {
  local src=$1 dest=$2
  shift 2
  rm -rf "$dest"
  mkdir -p "$dest"
  cp -a "${@/#/$src/}" "$dest/"
}

common_env=(
  "ENV SSL_CERT_FILE=$ca_bundle"
  "ENV LANG=C.UTF-8"
)

if stale "$rust_image" "$rust_version"; then
  dir="$(rootfs rust ca-certificates,gcc,libc6-dev)"
  cp "$ca_bundle" "$dir$ca_bundle"
  # The sysroot's bin/ and lib/ (rustc finds its std under lib/rustlib); its
  # share/doc (~800 MB) is left out.
  install_tree "$rust_sysroot" "$dir/usr/local/rust" bin lib
  mkdir -p "$dir/usr/local/cargo/bin"
  import "$dir" "$rust_image" "$rust_version" "${common_env[@]}" \
    "ENV CARGO_HOME=/usr/local/cargo" \
    "ENV CARGO_HTTP_CAINFO=$ca_bundle" \
    "ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "CMD [\"/bin/bash\"]"
fi

if stale "$go_image" "$go_version"; then
  dir="$(rootfs golang ca-certificates)"
  cp "$ca_bundle" "$dir$ca_bundle"
  install_tree "$goroot" "$dir/usr/local/go" .
  mkdir -p "$dir/go/bin"
  import "$dir" "$go_image" "$go_version" "${common_env[@]}" \
    "ENV GOPATH=/go" \
    "ENV GOTOOLCHAIN=local" \
    "ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "WORKDIR /go" \
    "CMD [\"/bin/bash\"]"
fi

if stale "$python_image" "$python_version"; then
  dir="$(rootfs python ca-certificates,python3,python3-venv,python3-pip)"
  cp "$ca_bundle" "$dir$ca_bundle"
  # pip trusts certifi's bundle, not the system's: point it at the system one.
  import "$dir" "$python_image" "$python_version" "${common_env[@]}" \
    "ENV PIP_CERT=$ca_bundle" \
    "ENV REQUESTS_CA_BUNDLE=$ca_bundle" \
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "CMD [\"python3\"]"
fi

mkdir -p "$(dirname "$env_file")"
cat >"$env_file" <<EOF
RUST_IMAGE=$rust_image
GO_IMAGE=$go_image
PYTHON_IMAGE=$python_image
EOF
log "wrote ${env_file#"$root"/}"
echo "--build-arg RUST_IMAGE=$rust_image --build-arg GO_IMAGE=$go_image --build-arg PYTHON_IMAGE=$python_image"
