# shellcheck shell=bash
# Sourced by scripts: puts the tools scripts/install-deps installed on PATH.
export CFA_CACHE_DIR="${CFA_CACHE_DIR:-$HOME/.cache/cfa}"
# PocketBase 0.40.6 (scripts/install-deps); tests also honour CFA_POCKETBASE_BIN.
export PATH="$CFA_CACHE_DIR/pocketbase-0.40.6/bin:$PATH"
# The Docker engine scripts/install-docker starts (a short socket path: unix sockets max 108 bytes).
export DOCKER_HOST="${DOCKER_HOST:-unix:///run/cfa-docker/docker.sock}"
# moto[server] (scripts/install-deps): the S3 API the backup-store tests run against.
export PATH="$CFA_CACHE_DIR/moto-5.2.5/bin:$PATH"
