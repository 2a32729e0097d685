#!/usr/bin/env bash
# Builds the project's container images from host-built static binaries.
#
#   scripts/build-images.sh                 # every image
#   scripts/build-images.sh mock-server     # telepresence-mock-server:latest
#
# No registry is needed: each image is FROM scratch around one binary.
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

case "${1:-all}" in
    mock-server) image_mock_server ;;
    all) image_mock_server ;;
    *) echo "unknown image '$1' (expected: mock-server, all)" >&2; exit 2 ;;
esac
