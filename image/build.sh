#!/usr/bin/env bash
# Build the Dockerfile with buildah from the local Debian bases (image/base.sh), reusing cached
# layers, and print the image's size and the build time. Usage: image/build.sh [TAG]
# (default localhost/reconciler:dev). RUN steps use chroot isolation: it needs no user
# namespaces or rlimits, which is what works on restricted build machines.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/reconciler:dev}

start=$(date +%s)
bases=$(image/base.sh)
python_image=$(sed -n 's/^PYTHON_IMAGE=//p' <<<"$bases")
go_image=$(sed -n 's/^GO_IMAGE=//p' <<<"$bases")
based=$(date +%s)

buildah build --layers --isolation chroot --pull=false \
	--build-arg PYTHON_IMAGE="$python_image" --build-arg GO_IMAGE="$go_image" \
	--tag "$tag" . >&2
done_at=$(date +%s)

size=$(buildah images --format '{{.Size}}' "$tag" | head -n1)
echo "image $tag: $size; built in $((done_at - start))s (bases $((based - start))s, build $((done_at - based))s)" >&2
echo "$tag"
