# ghcr.io/berriai/litellm-non_root: follows BerriAI/litellm's docker/Dockerfile.non_root (read at
# 8aa05aad) on Debian bookworm instead of Wolfi: python3 with `litellm[proxy]==<tag>` and prisma
# installed system-wide (pip, as upstream does), /app as WORKDIR and HOME with
# /app/docker/prod_entrypoint.sh and /app/schema.prisma, user nobody 65534:65534,
# LITELLM_NON_ROOT=true, and the admin UI pre-built into /var/lib/litellm/ui (with the
# .litellm_ui_ready marker litellm looks for) so a read-only root needs no copy at start.

recipe_inputs() { :; }

recipe_rootfs() { # root version
  local root="$1" version="$2"
  # Upstream's runtime packages: python3 + pip, bash, openssl, tzdata, supervisor (for
  # SEPARATE_HEALTH_APP). Not nodejs/npm: they serve `prisma generate`, which downloads Prisma's
  # engines from binaries.prisma.sh (unreachable here; and the template runs LiteLLM DB-less).
  chroot_apt "$root" python3 python3-pip python3-venv bash openssl tzdata ca-certificates supervisor
  # System-wide like upstream's `pip install *.whl` (Debian marks its python as externally managed).
  in_chroot "$root" python3 -m pip install --quiet --no-cache-dir --break-system-packages \
    "litellm[proxy]==$version" prisma
  mkdir -p "$root/app/docker" "$root/var/lib/litellm/ui" "$root/var/lib/litellm/assets" "$root/nonexistent" "$root/.npm"
  install -m 0755 "$REPO/images/litellm-non_root/prod_entrypoint.sh" "$root/app/docker/prod_entrypoint.sh"
  in_chroot "$root" python3 - <<'PY'
import os, shutil, litellm
proxy = os.path.join(os.path.dirname(litellm.__file__), "proxy")
shutil.copy(os.path.join(proxy, "schema.prisma"), "/app/schema.prisma")
ui = "/var/lib/litellm/ui"
shutil.copytree(os.path.join(proxy, "_experimental", "out"), ui, dirs_exist_ok=True)
# Routes as <route>/index.html (what the proxy does at start when it may write), then the marker.
for name in os.listdir(ui):
    if name.endswith(".html") and name != "index.html":
        os.makedirs(os.path.join(ui, name[:-5]), exist_ok=True)
        shutil.move(os.path.join(ui, name), os.path.join(ui, name[:-5], "index.html"))
open(os.path.join(ui, ".litellm_ui_ready"), "w").close()
for logo in ("logo.jpg", "logo.png"):
    if os.path.exists(os.path.join(proxy, logo)):
        shutil.copy(os.path.join(proxy, logo), "/var/lib/litellm/assets/")
PY
  chown -R 65534:65534 "$root/app" "$root/var/lib/litellm" "$root/nonexistent" "$root/.npm"
}

recipe_build() { # image version hash work
  local image="$1" version="$2" hash="$3" work="$4" base
  base=$(rootfs_image litellm-non_root "$version" "$work" "$REPO/images/litellm-non_root")
  build_with_label "$image" "$hash" "$REPO/images/litellm-non_root" "$REPO/images/litellm-non_root/Dockerfile" \
    --build-arg "BASE=$base" --build-arg "VERSION=$version"
}
