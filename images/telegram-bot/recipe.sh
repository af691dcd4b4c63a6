# ghcr.io/cloudfreedom/telegram-bot: our bot's static musl binary on an empty image, following
# bots/telegram-bot/Dockerfile (the upstream recipe for the real registry) with FROM scratch
# instead of distroless/static (no registry here) and distroless's few files put in by hand.

# The binary is the input that matters: build it (incremental, a no-op when nothing changed) and
# hash it, so a changed bot rebuilds the image and an unchanged one does not.
recipe_inputs() { # version
  local target_dir="${CARGO_TARGET_DIR:-$CFA_CACHE_DIR/cargo-target}"
  rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl \
    || rustup target add x86_64-unknown-linux-musl >&2
  command -v musl-gcc >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
  }
  # cc-rs looks for x86_64-linux-musl-gcc; Debian names it musl-gcc (ring's C and assembly).
  (cd "$REPO" && CC_x86_64_unknown_linux_musl=musl-gcc CARGO_TARGET_DIR="$target_dir" \
    cargo build --quiet --locked --profile bot-release -p telegram-bot --bin telegram-bot \
    --target x86_64-unknown-linux-musl) >&2
  BOT_BINARY="$target_dir/x86_64-unknown-linux-musl/bot-release/telegram-bot"
  sha256sum "$BOT_BINARY" | cut -d' ' -f1
}

recipe_build() { # image version hash work
  local image="$1" version="$2" hash="$3" context="$4/context"
  local binary="${CARGO_TARGET_DIR:-$CFA_CACHE_DIR/cargo-target}/x86_64-unknown-linux-musl/bot-release/telegram-bot"
  rm -rf "$context"
  mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/etc" "$context/rootfs/tmp"
  # What distroless/static-debian12:nonroot has that a program may look at: users, /tmp. Not its
  # CA roots: the bot's TLS (reqwest + rustls) carries webpki-roots, and the host's bundle may
  # trust a TLS-inspecting proxy that an image must not.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$context/rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$context/rootfs/etc/group"
  mkdir -p "$context/rootfs/home/nonroot"
  chmod 1777 "$context/rootfs/tmp"
  chown 65532:65532 "$context/rootfs/home/nonroot"
  # Owned by root and not writable: the bot runs as 65532 and writes nothing.
  install -m 0555 -o 0 -g 0 "$binary" "$context/rootfs/usr/local/bin/telegram-bot"
  build_with_label "$image" "$hash" "$context" "$REPO/images/telegram-bot/Dockerfile" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$(git -C "$REPO" rev-parse --short HEAD)"
}
