#!/usr/bin/env bash
# System packages of the image, installed only when the base lacks them: a base that already
# has them (the locally bootstrapped one the tests use) needs no package mirror.
set -euo pipefail
target=$1
# opencv-python (mmcv's dependency) loads libGL and glib; the gpu target compiles mmcv.
packages=(libgl1 libglib2.0-0 ca-certificates)
[ "$target" = gpu ] && packages+=(build-essential git ninja-build)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  rm -rf /var/lib/apt/lists/*
fi
# Python copied into /usr/local (gpu target) needs its shared library on the loader's path.
ldconfig
command -v python3.11 > /dev/null || { echo "error: the base has no python3.11" >&2; exit 1; }
python3.11 -c 'import venv, ensurepip' || {
  echo "error: python3.11 in the base lacks venv/ensurepip (Debian: install python3-venv)" >&2
  exit 1
}
