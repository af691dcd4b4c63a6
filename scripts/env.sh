# Sourced by scripts: puts the tools scripts/install-deps installed on PATH.
export CFA_CACHE_DIR="${CFA_CACHE_DIR:-$HOME/.cache/cfa}"
