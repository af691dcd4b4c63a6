# Helpers for the recipes in images/*/recipe.sh, sourced by scripts/build-images (bash, set -euo pipefail).
# `docker build` has no network here (RUN steps cannot download), so every root filesystem is
# made on the host: Debian bookworm from debootstrap, packages installed by chroot-ing into a copy
# (the host's network works there), then `docker import`; the Dockerfile on top only adds metadata
# and small files.

DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# The hash of a recipe's root filesystem: recipe.sh, this file and the version (not the
# Dockerfile: changing only metadata re-imports nothing). Contents only, never paths: a clone
# elsewhere must find the same hash.
rootfs_hash() { # recipe-dir version
  { echo "$2"; cat "$1/recipe.sh" "$REPO/images/lib.sh"; } | sha256sum | cut -c1-16
}

# A pristine minbase bookworm, made once into $IMAGES_CACHE/debian-bookworm/rootfs.
debian_base() {
  local base="$IMAGES_CACHE/debian-bookworm"
  if [ ! -f "$base/.done" ]; then
    command -v debootstrap >/dev/null 2>&1 || {
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    echo "   debootstrap bookworm (minbase) into $base/rootfs" >&2
    rm -rf "$base"
    mkdir -p "$base"
    debootstrap --variant=minbase bookworm "$base/rootfs" "$DEBIAN_MIRROR" >"$base/debootstrap.log" 2>&1 || {
      tail -n 20 "$base/debootstrap.log" >&2
      return 1
    }
    touch "$base/.done"
  fi
  echo "$base/rootfs"
}

# Unmounts whatever is still mounted under a folder (a build killed inside in_chroot leaves /proc,
# /dev and the CA bundle mounted there; `rm -rf` on it would then delete the host's /dev).
unmount_under() { # dir
  local dir mounts
  dir=$(realpath -m "$1")
  # Deepest first; /proc/mounts escapes spaces as \040 (our paths have none).
  mounts=$(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r)
  [ -z "$mounts" ] && return 0
  echo "   unmounting what a previous build left under $dir" >&2
  local m
  for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

# Runs a command inside a root filesystem with /proc, /dev and the host's DNS, then unmounts.
in_chroot() { # root command...
  local root="$1" status=0
  shift
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # The host's CA bundle (it may trust a TLS-inspecting proxy the image must not trust) is
  # mounted for pip and npm during the build only, never written into the root filesystem.
  touch "$root/run/cfa-host-ca.crt"
  mount --bind -o ro /etc/ssl/certs/ca-certificates.crt "$root/run/cfa-host-ca.crt"
  env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/run/cfa-host-ca.crt SSL_CERT_FILE=/run/cfa-host-ca.crt REQUESTS_CA_BUNDLE=/run/cfa-host-ca.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    chroot "$root" "$@" || status=$?
  umount "$root/run/cfa-host-ca.crt" || umount -l "$root/run/cfa-host-ca.crt"
  rm -f "$root/run/cfa-host-ca.crt"
  umount -R "$root/dev" || umount -l "$root/dev"
  umount "$root/proc" || umount -l "$root/proc"
  return "$status"
}

# apt-get install inside a root filesystem, leaving no lists or archives behind.
chroot_apt() { # root package...
  local root="$1"
  shift
  in_chroot "$root" sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    && apt-get clean && rm -rf /var/lib/apt/lists/*' apt "$@"
}

# Builds (once per rootfs hash) the root filesystem of a recipe into <work>/rootfs with the
# recipe's `recipe_rootfs <root> <version>` on top of a copy of the Debian base, and imports it
# as cfa-local/<name>-rootfs:<version>. Prints that tag.
rootfs_image() { # name version work recipe-dir
  local name="$1" version="$2" work="$3" dir="$4" hash tag base
  hash=$(rootfs_hash "$dir" "$version")
  tag="cfa-local/$name-rootfs:$version"
  if [ "$(docker image inspect --format '{{index .Config.Labels "cfa.rootfs"}}' "$tag" 2>/dev/null)" = "$hash" ]; then
    echo "$tag"
    return
  fi
  if [ "$(cat "$work/rootfs.done" 2>/dev/null)" != "$hash" ]; then
    base=$(debian_base)
    unmount_under "$work"
    # The marker first: a run killed during the rm must not leave half a tree marked done.
    rm -f "$work/rootfs.done"
    rm -rf --one-file-system "$work/rootfs"
    echo "   copying the Debian base into $work/rootfs" >&2
    cp -a "$base" "$work/rootfs"
    recipe_rootfs "$work/rootfs" "$version" >&2
    # Nothing of the host's stays behind in the image.
    rm -f "$work/rootfs/etc/resolv.conf"
    rm -rf "$work/rootfs/root/.cache" "$work/rootfs/tmp/"* "$work/rootfs/var/cache/apt/"*.bin
    echo "$hash" >"$work/rootfs.done"
  fi
  echo "   importing $work/rootfs ($(du -sh "$work/rootfs" | cut -f1)) as $tag" >&2
  # Under a scratch tag first: a tar or import that fails half-way must not leave a labelled
  # (i.e. finished) image under the real tag.
  docker image rm "$tag-partial" >/dev/null 2>&1 || true
  tar -C "$work/rootfs" --numeric-owner -cf - . |
    docker import --change "LABEL cfa.rootfs=$hash" - "$tag-partial" >/dev/null
  docker tag "$tag-partial" "$tag"
  docker image rm "$tag-partial" >/dev/null
  echo "$tag"
}

# docker build of a recipe's Dockerfile with the recipe label; extra arguments go to docker build.
build_with_label() { # image hash context-dir dockerfile [docker build args...]
  local image="$1" hash="$2" context="$3" dockerfile="$4"
  shift 4
  local output
  # Quiet unless it fails (the legacy builder also warns that buildx is missing, every time).
  if ! output=$(docker build --quiet --label "cfa.recipe=$hash" -f "$dockerfile" -t "$image" "$@" "$context" 2>&1); then
    echo "$output" >&2
    return 1
  fi
}
