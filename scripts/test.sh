#!/usr/bin/env bash
# Runs every test of the project: prepares the machine when something is
# missing (scripts/setup-machine.sh), builds local stand-in base images when
# Docker Hub cannot be reached (scripts/docker-base-images.sh), then
#
#   cargo test --workspace --locked
#
# which covers the runner's unit tests, the native 3x3 matrix, failure
# handling, reports (with headless Chromium), the containers (testcontainers
# backend and docker compose), Go's and Python's own suites, generated-code
# freshness and the CI workflow.
set -euo pipefail
cd "$(dirname "$0")/.."

# Docker Hub answers any request (401 without credentials) when it can be reached.
if curl -s -o /dev/null --max-time 10 https://registry-1.docker.io/v2/; then
  bash scripts/setup-machine.sh
else
  echo "test: Docker Hub cannot be reached; local stand-in base images will be used" >&2
  bash scripts/setup-machine.sh --base-images
  bash scripts/docker-base-images.sh
fi

exec cargo test --workspace --locked "$@"
