#!/usr/bin/env bash
# Starts Open WebUI as upstream's backend/start.sh does: from this folder, with WEBUI_SECRET_KEY from
# the environment or else from a key file generated once here, uvicorn on $HOST:$PORT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
key_file=.webui_secret_key
if [ -z "${WEBUI_SECRET_KEY:-}${WEBUI_JWT_SECRET_KEY:-}" ]; then
  echo "WEBUI_SECRET_KEY not set: using $PWD/$key_file"
  [ -e "$key_file" ] || head -c 12 /dev/random | base64 >"$key_file"
  WEBUI_SECRET_KEY=$(cat "$key_file")
fi
export WEBUI_SECRET_KEY
exec uvicorn open_webui.main:app --host "${HOST:-0.0.0.0}" --port "${PORT:-8080}" \
  --forwarded-allow-ips '*' --workers "${UVICORN_WORKERS:-1}"
