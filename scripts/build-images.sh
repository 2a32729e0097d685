#!/usr/bin/env bash
# Builds the project's container images from host-built static binaries.
#
#   scripts/build-images.sh                 # every image
#   scripts/build-images.sh mock-server     # telepresence-mock-server:latest
#   scripts/build-images.sh broker          # tpk-tansu:0.6.0 (installs tansu if missing)
#
# No registry is needed: each image is FROM scratch around a binary built on
# this machine (the broker's with the few shared libraries it links).
set -euo pipefail
cd "$(dirname "$0")/.."

target=$(rustc -vV | sed -n 's/^host: //p')
target_dir=target/image-build
stage=$target_dir/docker

build_static() { # package binary
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked \
        --target "$target" --target-dir "$target_dir" -p "$1" --bin "$2" >&2
}

image_mock_server() {
    build_static telepresence-mock-server telepresence-mock-server
    rm -rf "$stage/mock-server" && mkdir -p "$stage/mock-server"
    cp "$target_dir/$target/release/telepresence-mock-server" "$stage/mock-server/"
    docker build --quiet -t telepresence-mock-server:latest \
        -f mock-server/Dockerfile "$stage/mock-server" >&2
    echo "built telepresence-mock-server:latest ($(docker image inspect -f '{{.Size}}' telepresence-mock-server:latest) bytes)"
}

TANSU_VERSION=0.6.0

# tansu, pinned; the dynostore feature provides the memory:// storage engine.
# A cold build takes about ten minutes.
tansu_binary() {
    local bin
    bin=$(command -v tansu || true)
    if [ -z "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q " $TANSU_VERSION"; then
        echo "installing tansu $TANSU_VERSION (about ten minutes the first time)" >&2
        cargo install --locked tansu --version "$TANSU_VERSION" --features dynostore >&2
        bin=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
    fi
    echo "$bin"
}

image_broker() {
    local bin root
    bin=$(tansu_binary)
    root="$stage/broker/rootfs"
    rm -rf "$stage/broker" && mkdir -p "$root"
    cp "$bin" "$root/tansu"
    # The shared libraries it links, at the paths the loader expects.
    ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    docker build --quiet -t "tpk-tansu:$TANSU_VERSION" -f integration-tests/broker/Dockerfile "$stage/broker" >&2
    echo "built tpk-tansu:$TANSU_VERSION ($(docker image inspect -f '{{.Size}}' "tpk-tansu:$TANSU_VERSION") bytes)"
}

case "${1:-all}" in
    mock-server) image_mock_server ;;
    broker) image_broker ;;
    all) image_mock_server; image_broker ;;
    *) echo "unknown image '$1' (expected: mock-server, broker, all)" >&2; exit 2 ;;
esac
