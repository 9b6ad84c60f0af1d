#!/usr/bin/env bash
# Runs the whole matrix in containers with docker-compose.yml and exits with
# the matrix's verdict: the one command CI and the README use.
#
#   bash scripts/compose-matrix.sh [--no-build]
#
# --no-build uses the images as they are (built by the docker backend, say)
# instead of building them through compose first.
#
# Why not `docker compose up --build --exit-code-from matrix`: --exit-code-from
# implies --abort-on-container-exit, and compose (v1.29 and v2 alike) then stops
# every container as soon as the first one exits, which is the first client to
# finish, long before the matrix is complete. So the services start detached,
# and this script follows the `matrix` container to its end:
#
#   1. compose build                  the three images (cached layers reused)
#   2. compose up -d                  matrix and servers, then the clients once
#                                     their server is healthy
#   3. docker wait <each client>      their exit statuses go to the matrix, which
#                                     checks them against their results
#                                     (/results/exit-codes.json, via docker cp)
#   4. docker logs -f <matrix>        prints the matrix as it is reported
#   5. docker wait <matrix>           its exit status is this script's
#   6. compose down -v --remove-orphans, always, also on failure or Ctrl-C
#
# Uses `docker compose` (v2) when the plugin is there, else `docker-compose`
# (v1.29, all Debian 12 has). Base images: RUST_IMAGE, GO_IMAGE and PYTHON_IMAGE
# from the environment, else from target/docker-base.env when it exists (written
# by scripts/docker-base-images.sh where no registry can be reached), else the
# official images.
#
# Exit status: the matrix's (0 every cell as expected, 1 otherwise); 2 when no
# verdict came: a build failed, a server never became healthy, or a time limit
# passed. The matrix goes to stdout, compose's own progress to stderr.
#
# Environment:
#   COMPOSE_MATRIX_BUILD_TIMEOUT  seconds for building the images (default 3600:
#                                 a cold Rust build on 2 cores takes ~10 minutes)
#   COMPOSE_MATRIX_RUN_TIMEOUT    seconds from `up` to the matrix's end (default
#                                 600; the matrix itself gives up after 300)
#   COMPOSE_MATRIX_KEEP=1         leave the containers and volume for debugging
#   INTEROP_COMPOSE_JSON=PATH     copy the matrix's JSON report there
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_timeout="${COMPOSE_MATRIX_BUILD_TIMEOUT:-3600}"
run_timeout="${COMPOSE_MATRIX_RUN_TIMEOUT:-600}"
project=polyglot-grpc-interop

build=true
case "${1:-}" in
  "") ;;
  --no-build) build=false ;;
  *) printf 'usage: %s [--no-build]\n' "$0" >&2; exit 2 ;;
esac

log() { printf 'compose-matrix: %s\n' "$*" >&2; }
die() { printf 'compose-matrix: error: %s\n' "$*" >&2; exit 2; }

command -v docker >/dev/null || die "docker is not installed"
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
fi
compose+=(--project-name "$project" --file "$root/docker-compose.yml" --project-directory "$root")
docker info >/dev/null 2>&1 || die "'docker info' fails: is the Docker engine running?"

# Base images: the environment wins over target/docker-base.env.
env_file="$root/target/docker-base.env"
for var in RUST_IMAGE GO_IMAGE PYTHON_IMAGE; do
  if [[ -z ${!var:-} && -r $env_file ]]; then
    value="$(sed -n "s/^$var=//p" "$env_file" | tail -n 1)"
    [[ -n $value ]] && export "$var=$value"
  fi
  log "$var=${!var:-(official default)}"
done
# compose v1 builds through the Docker API (the legacy builder) unless told to
# call the docker CLI, which may lack buildx here; keep it on the API.
export COMPOSE_DOCKER_CLI_BUILD=0

# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ ${COMPOSE_MATRIX_KEEP:-} == 1 ]]; then
    log "COMPOSE_MATRIX_KEEP=1: leaving the containers; remove them with: ${compose[*]} down -v --remove-orphans"
  else
    # Bounded too: a wedged engine must not hang CI here.
    timeout 120 "${compose[@]}" down --volumes --remove-orphans --timeout 5 >&2 2>&1 ||
      log "compose down failed; containers may be left (label com.polyglot-grpc-interop=compose)"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# Containers of an earlier, interrupted run would be reused by `up`.
timeout 120 "${compose[@]}" down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || true

started=$(date +%s)
if $build; then
  log "building the images (at most ${build_timeout}s)"
  if ! timeout "$build_timeout" "${compose[@]}" build >&2; then
    die "building the images failed or took longer than ${build_timeout}s"
  fi
else
  for image in rust go python go-official; do
    docker image inspect "polyglot-grpc-interop/$image:latest" >/dev/null 2>&1 ||
      die "--no-build: image polyglot-grpc-interop/$image:latest does not exist"
  done
fi
built=$(date +%s)
log "images ready in $((built - started))s"

deadline=$((built + run_timeout))
remaining() { local left=$((deadline - $(date +%s))); echo $((left > 1 ? left : 1)); }

# -d: nothing attached, so no client's exit stops the rest. Returns once every
# container is started; clients start when their server reports healthy.
up_status=0
timeout "$(remaining)" "${compose[@]}" up --detach --no-build >&2 || up_status=$?
if ((up_status != 0)); then
  "${compose[@]}" ps >&2 || true
  ((up_status == 124)) && die "the services did not start within ${run_timeout}s"
  die "starting the services failed (a server that never became healthy?)"
fi
# By the labels compose v1 and v2 both set (v2's `ps` hides exited containers).
matrix="$(docker ps --all --quiet --filter "label=com.docker.compose.project=$project" \
  --filter "label=com.docker.compose.service=matrix")"
[[ -n $matrix ]] || die "no matrix container"

# Every client's exit status, once it has exited, for the matrix to check
# against the client's result lines: {"<client>-to-<server>": N, ...}.
codes=""
while read -r service id; do
  [[ $service == *-to-* ]] || continue
  code="$(timeout "$(remaining)" docker wait "$id")" || die "client $service did not end within ${run_timeout}s"
  codes+="${codes:+, }\"$service\": $code"
done < <(docker ps --all --filter "label=com.docker.compose.project=$project" \
  --format '{{.Label "com.docker.compose.service"}} {{.ID}}')
exit_codes="$(mktemp)"
printf '{%s}\n' "$codes" >"$exit_codes"
log "client exit statuses: $(cat "$exit_codes")"
timeout 30 docker cp "$exit_codes" "$matrix:/results/exit-codes.json" ||
  log "could not hand the exit statuses to the matrix; it will say they were not checked"
rm -f "$exit_codes"

# The matrix's own output, to its end: stdout stays stdout, stderr stderr.
if ! timeout "$(remaining)" docker logs --follow "$matrix"; then
  die "the matrix did not finish within ${run_timeout}s"
fi
status="$(timeout 30 docker wait "$matrix")" || die "cannot read the matrix's exit status"
if [[ -n ${INTEROP_COMPOSE_JSON:-} ]]; then
  timeout 30 docker cp "$matrix:/results/report.json" "$INTEROP_COMPOSE_JSON" ||
    log "could not copy the JSON report to $INTEROP_COMPOSE_JSON"
fi
log "matrix exited with $status after $(($(date +%s) - built))s (images built in $((built - started))s)"
if [[ $status != 0 ]]; then
  "${compose[@]}" ps >&2 || true
fi
case $status in
  0 | 1) exit "$status" ;;
  *) die "the matrix exited with $status" ;;
esac
