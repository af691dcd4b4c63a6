# ghcr.io/open-webui/open-webui: follows open-webui/open-webui's Dockerfile (read at 08d67bf0) and
# backend/start.sh (behaviour rewritten, not copied): Debian bookworm's python3.11 instead of
# python:3.11-slim-bookworm's, its apt tools (curl and jq for the healthcheck, pandoc, ffmpeg,
# netcat, git), `open-webui==<tag>` from PyPI installed system-wide (upstream: `uv pip install
# --system`), laid out as upstream's image has it: the backend in /app/backend (WORKDIR, start.sh,
# open_webui/), the built frontend in /app/build, /app/package.json and /app/CHANGELOG.md, data in
# /app/backend/data, user root (UID=0 GID=0, upstream's default).

recipe_inputs() { :; }

recipe_rootfs() { # root version
  local root="$1" version="$2"
  # Upstream also installs build-essential, gcc and python3-dev to build wheels in the image;
  # every dependency has a wheel for CPython 3.11 on x86_64, so they are left out (~250 MB).
  chroot_apt "$root" python3 python3-pip python3-venv bash curl jq netcat-openbsd pandoc ffmpeg \
    libsm6 libxext6 git ca-certificates
  # PyPI's torch is the CUDA build (upstream takes the CPU wheel from download.pytorch.org,
  # unreachable here): a bigger image, the same program.
  in_chroot "$root" python3 -m pip install --quiet --no-cache-dir --break-system-packages \
    "open-webui==$version"
  in_chroot "$root" python3 - "$version" <<'PY'
import json, os, shutil, sys, open_webui
package = os.path.dirname(open_webui.__file__)
os.makedirs("/app/backend/data", exist_ok=True)
# The package's frontend is upstream's /app/build; the backend source is /app/backend/open_webui
# (uvicorn imports it from the working directory, as in upstream's image).
shutil.move(os.path.join(package, "frontend"), "/app/build")
shutil.move(package, "/app/backend/open_webui")
for name in ("CHANGELOG.md",):
    source = os.path.join("/app/backend/open_webui", name)
    if os.path.exists(source):
        shutil.copy(source, "/app/" + name)
with open("/app/package.json", "w") as f:
    json.dump({"name": "open-webui", "version": sys.argv[1]}, f)
PY
  install -m 0755 "$REPO/images/open-webui/start.sh" "$root/app/backend/start.sh"
  # Upstream pins chroma's telemetry id so nothing phones home.
  mkdir -p "$root/root/.cache/chroma"
  printf '00000000-0000-0000-0000-000000000000' >"$root/root/.cache/chroma/telemetry_user_id"
  mkdir -p "$root/app/backend/data/cache/embedding/models" "$root/app/backend/data/cache/whisper/models" \
    "$root/app/backend/data/cache/tiktoken"
}

recipe_build() { # image version hash work
  local image="$1" version="$2" hash="$3" work="$4" base
  base=$(rootfs_image open-webui "$version" "$work" "$REPO/images/open-webui")
  build_with_label "$image" "$hash" "$REPO/images/open-webui" "$REPO/images/open-webui/Dockerfile" \
    --build-arg "BASE=$base" --build-arg "VERSION=$version"
}
