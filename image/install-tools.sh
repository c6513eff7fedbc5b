#!/usr/bin/env bash
# Install buildah and debootstrap (Debian packages) when missing; root or sudo needed.
set -euo pipefail
missing=()
for tool in buildah debootstrap; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
echo "installing ${missing[*]} (Debian packages)" >&2
"${apt[@]}" install -y "${missing[@]}" || { "${apt[@]}" update && "${apt[@]}" install -y "${missing[@]}"; }
