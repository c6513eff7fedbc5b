#!/usr/bin/env bash
# Local base images for `make image`, made from Debian packages with debootstrap, so the
# Dockerfile builds here without any container registry:
#   localhost/reconciler-base-python:<tag>  Debian minbase + python3, python3-venv, ca-certificates
#   localhost/reconciler-base-go:<tag>      the Python base + the Go toolchain on this machine
#                                           (the one `make provision` builds with; Debian's is too
#                                           old for helm and kustomize)
# They are built once and kept in the container storage; the tag is a hash of this recipe (and of
# the Go version), so changing either builds new ones. Prints the build arguments to use:
#   PYTHON_IMAGE=localhost/reconciler-base-python:<tag>
#   GO_IMAGE=localhost/reconciler-base-go:<tag>
#
# CA certificates added on this machine (/usr/local/share/ca-certificates, e.g. a TLS-inspecting
# egress proxy's) are trusted in the Python base too, so pip and `go install` work through it;
# an image built from these bases is for this machine, not for pushing.
set -euo pipefail

suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv,ca-certificates
local_cas=/usr/local/share/ca-certificates
lock=${RECONCILER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reconciler}/image-base.lock

say() { echo "image/base.sh: $*" >&2; }

# A working container left by a failed step is removed on exit.
ctr=
trap '[ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

recipe_hash() {
	{
		cat "$0"
		echo "$suite $mirror $packages"
		find "$local_cas" -type f -name '*.crt' -print0 2>/dev/null | sort -z | xargs -0r cat
	} | sha256sum | cut -c1-12
}

make_python_base() {
	local name=$1 mnt
	say "building $name with debootstrap ($suite from $mirror; a few minutes, once)"
	ctr=$(buildah from scratch)
	mnt=$(buildah mount "$ctr")
	debootstrap --variant=minbase --include="$packages" "$suite" "$mnt" "$mirror" >&2
	if compgen -G "$local_cas/*.crt" >/dev/null; then
		cp "$local_cas"/*.crt "$mnt/usr/local/share/ca-certificates/"
		chroot "$mnt" update-ca-certificates >&2
	fi
	rm -rf "$mnt"/var/cache/apt/archives/*.deb "$mnt"/var/lib/apt/lists/* "$mnt"/tmp/*
	buildah umount "$ctr" >/dev/null
	buildah config --env LANG=C.UTF-8 --cmd /bin/bash \
		--label org.opencontainers.image.description="Debian $suite minbase + $packages" "$ctr"
	buildah commit --quiet --rm "$ctr" "$name" >/dev/null
	ctr=
}

make_go_base() {
	local python_base=$1 name=$2 goroot=$3
	say "building $name: $python_base + the Go toolchain in $goroot"
	ctr=$(buildah from --pull=false "$python_base")
	buildah copy --quiet "$ctr" "$goroot" /usr/local/go >/dev/null
	buildah config --env GOPATH=/go \
		--env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		"$ctr"
	buildah commit --quiet --rm "$ctr" "$name" >/dev/null
	ctr=
}

main() {
	for tool in buildah debootstrap go; do
		command -v "$tool" >/dev/null || { say "$tool is not installed"; exit 2; }
	done
	mkdir -p "$(dirname "$lock")"
	exec 9>"$lock"
	flock 9 # one builder at a time; the second finds the images made by the first

	local tag goroot goversion python_base go_base
	tag="$suite-$(recipe_hash)"
	goroot=$(go env GOROOT)
	goversion=$(go env GOVERSION)
	python_base="localhost/reconciler-base-python:$tag"
	go_base="localhost/reconciler-base-go:$tag-$goversion"
	have_image "$python_base" || make_python_base "$python_base"
	have_image "$go_base" || make_go_base "$python_base" "$go_base" "$goroot"
	echo "PYTHON_IMAGE=$python_base"
	echo "GO_IMAGE=$go_base"
}

main "$@"
