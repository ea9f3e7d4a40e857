#!/usr/bin/env bash
# A Debian bookworm base image made on this machine, for engines that reach no image registry
# (the tests here): debootstrap's minbase variant, the Debian counterpart of bookworm-slim, plus
# what the pinned python base brings (Python 3.11 with venv) and what the image's system step
# would otherwise fetch. Usage: docker/local-base.sh [tag]; prints the tag. Needs root.
set -euo pipefail
tag=${1:-deploybench-base:bookworm-local}
if docker image inspect "$tag" > /dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
command -v debootstrap > /dev/null || { echo "error: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,libgl1,libglib2.0-0,ca-certificates \
  bookworm "$root" http://deb.debian.org/debian >&2
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$tag" >&2
echo "$tag"
