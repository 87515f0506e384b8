#!/usr/bin/env bash
# Installs the Debian 12 packages blobd needs to build and test, when they
# are missing.  Safe to run again; needs root (or sudo) only to install.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang clang-format
  libisal-dev liburing-dev libcjson-dev libmicrohttpd-dev nettle-dev
  libcmocka-dev libcurl4-openssl-dev curl fio
  valgrind slowhttptest e2fsprogs util-linux
  python3 wrk nginx-light libnginx-mod-http-js chromium prometheus
  libseccomp-dev python3-yaml systemd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}"; then
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
