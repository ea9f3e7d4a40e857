#!/usr/bin/env bash
# System packages of an image, installed only when the base lacks them: a base that already
# has them (the locally bootstrapped one the tests use) needs no package mirror.
#   runtime: what every image needs (opencv-python, mmcv's dependency, loads libGL and glib);
#   compiler: the gpu image's build stage, which compiles mmcv's ops (nvcc is a pip wheel).
set -euo pipefail
case $1 in
  runtime) packages=(libgl1 libglib2.0-0 ca-certificates) ;;
  # Python's headers too where the base has none (the pinned python image carries its own).
  compiler) packages=(g++ make)
    python3.11 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(
      os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || packages+=(python3.11-dev) ;;
  *) echo "usage: system-packages.sh runtime|compiler" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  rm -rf /var/lib/apt/lists/*
fi
command -v python3.11 > /dev/null || { echo "error: the base has no python3.11" >&2; exit 1; }
python3.11 -c 'import venv, ensurepip' || {
  echo "error: python3.11 in the base lacks venv/ensurepip (Debian: install python3-venv)" >&2
  exit 1
}
