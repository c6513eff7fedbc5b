#!/usr/bin/env bash
# Build the Dockerfile with buildah from the local Debian bases (image/base.sh), reusing cached
# layers, and print the image's size and the build time. Usage: image/build.sh [TAG]
# (default localhost/reconciler:dev). RUN steps use chroot isolation: it needs no user
# namespaces or rlimits, which is what works on restricted build machines.
#
# The intermediate stages are tagged (localhost/reconciler-stage:tools|build) so they stay the
# layer cache, and untagged layers of earlier builds are pruned: repeated builds stay fast and
# the container storage does not grow with every code change.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/reconciler:dev}
lock=${RECONCILER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reconciler}/image-build.lock
mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
flock 9 # one build at a time on this machine: the prune below must not race another build

start=$(date +%s)
bases=$(image/base.sh)
python_image=$(sed -n 's/^PYTHON_IMAGE=//p' <<<"$bases")
go_image=$(sed -n 's/^GO_IMAGE=//p' <<<"$bases")
based=$(date +%s)

build() {
	buildah build --layers --force-rm --isolation chroot --pull=false \
		--build-arg PYTHON_IMAGE="$python_image" --build-arg GO_IMAGE="$go_image" "$@" . >&2
}
build --target tools --tag localhost/reconciler-stage:tools
build --target build --tag localhost/reconciler-stage:build
build --tag "$tag"
done_at=$(date +%s)
buildah rmi --prune >/dev/null 2>&1 || true

size=$(buildah images --format '{{.Size}}' "$tag" | head -n1)
echo "image $tag: $size; built in $((done_at - start))s (bases $((based - start))s, build $((done_at - based))s)" >&2
echo "$tag"
