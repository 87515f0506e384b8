#!/usr/bin/env bash
# build.sh - the steps of blobd's container image.  deploy/Dockerfile runs
# every one of them through this script, so that they also run, and are
# tested (tests/deploy/container_build.py), where no container engine is.
# They also install blobd on a plain Debian 12 host (docs/deploy.md).
#
#   build.sh [--dry-run] build-deps          apt-get install what building needs
#   build.sh [--dry-run] build SRC OUT       build SRC in OUT/build; the files to
#                                            install go to OUT/stage
#   build.sh [--dry-run] runtime-deps        apt-get install the runtime
#                                            libraries, nothing else
#   build.sh [--dry-run] user [ROOT]         create group and user blobd (in
#                                            ROOT's /etc files: / by default)
#   build.sh [--dry-run] install STAGE ROOT  copy the staged files into ROOT and
#                                            create ROOT/var/lib/blobd for blobd
#   build.sh verify ROOT                     check that the installed binaries
#                                            find their libraries and run
#   build.sh packages build|runtime          print a package list, one a line
#
# --dry-run prints each command that changes something instead of running
# it.  BLOBD_BUILD_TYPE sets the CMake build type (RelWithDebInfo).
#
# The staged tree is laid out as the target filesystem:
#   opt/blobd/bin/blobd              the daemon
#   opt/blobd/bin/blobd-check        the offline verifier, when the source
#                                    tree has it
#   opt/blobd/bin/blobd-healthcheck  the HEALTHCHECK (healthcheck.sh)
set -euo pipefail

# Fixed ids, so that a data volume keeps its owner across image rebuilds
# and matches deploy/systemd/blobd.sysusers on a host.
readonly BLOBD_UID=10001
readonly BLOBD_GID=10001
readonly PREFIX=/opt/blobd
readonly DATA_DIR=/var/lib/blobd

# Debian 12 names.  libcmocka-dev and libcurl4-openssl-dev are only there
# because the top-level CMakeLists.txt requires the test libraries to
# configure at all; the image's binaries do not link them.
readonly BUILD_PACKAGES=(
  gcc libc6-dev make cmake pkg-config binutils
  libisal-dev liburing-dev libcjson-dev libmicrohttpd-dev nettle-dev
  libcmocka-dev libcurl4-openssl-dev
)
# What blobd and blobd-check link (readelf -d: NEEDED), by package; their
# own dependencies (libgnutls30 for libmicrohttpd12 ...) come with them.
readonly RUNTIME_PACKAGES=(
  libmicrohttpd12 liburing2 libcjson1 libisal2 libnettle8
)
# The executables built and staged; a missing optional one is skipped.
readonly REQUIRED_TARGETS=(blobd)
readonly OPTIONAL_TARGETS=(blobd-check)

dry_run=0

die() {
  echo "build.sh: $*" >&2
  exit 1
}

# The header comment above: to stdout for --help, else to stderr with
# status 2 (a usage error).
usage() {
  local status=${1:-2} text
  text=$(sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//')
  if [ "$status" = 0 ]; then
    printf '%s\n' "$text"
  else
    printf '%s\n' "$text" >&2
  fi
  exit "$status"
}

# Run a command, or print it under --dry-run.
run() {
  if [ "$dry_run" = 1 ]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

need_root() {
  if [ "$dry_run" = 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "$1 needs root"
  fi
}

apt_install() {
  need_root "installing packages"
  # A fresh image has no package lists; a host has its own, which stay.
  local fresh=0
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -type f \
    ! -name lock 2>/dev/null)" ]; then
    fresh=1
  fi
  run apt-get update
  run env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "$@"
  if [ "$fresh" = 1 ]; then
    # Keep the image small: the lists are not needed once installed.
    run rm -rf /var/lib/apt/lists/*
  fi
}

# The built executable of target $2 under build dir $1, or nothing.
find_exe() {
  find "$1" -type f -name "$2" -perm -u+x -not -path '*/CMakeFiles/*' |
    head -n 1
}

cmd_build() {
  [ $# -eq 2 ] || usage
  local src out
  src=$(cd "$1" && pwd) || die "build: no source tree at '$1'"
  [ -f "$src/CMakeLists.txt" ] || die "build: '$src' has no CMakeLists.txt"
  mkdir -p "$2"
  out=$(cd "$2" && pwd)
  local bdir="$out/build" stage="$out/stage"

  run cmake -S "$src" -B "$bdir" \
    -DCMAKE_BUILD_TYPE="${BLOBD_BUILD_TYPE:-RelWithDebInfo}"
  local targets=("${REQUIRED_TARGETS[@]}") t
  for t in "${OPTIONAL_TARGETS[@]}"; do
    # Another target may not exist in every source tree this builds.  (No
    # grep -q: exiting early would fail the pipeline with SIGPIPE.)
    if [ "$dry_run" = 1 ] ||
      cmake --build "$bdir" --target help | grep -E "(^|[ .])$t\$" >/dev/null; then
      targets+=("$t")
    else
      echo "build.sh: no $t target in $src; not staged" >&2
    fi
  done
  run cmake --build "$bdir" -j "$(nproc)" --target "${targets[@]}"

  run rm -rf "$stage"
  run install -d -m 0755 "$stage$PREFIX/bin"
  for t in "${targets[@]}"; do
    local exe
    if [ "$dry_run" = 1 ]; then
      exe="$bdir/.../$t"
    else
      exe=$(find_exe "$bdir" "$t")
      [ -n "$exe" ] || die "build: $t was built but is not under $bdir"
    fi
    run install -m 0755 "$exe" "$stage$PREFIX/bin/$t"
    # Symbols stay (backtraces), the debug sections go (size).
    run strip --strip-debug "$stage$PREFIX/bin/$t"
  done
  run install -m 0755 "$src/deploy/container/healthcheck.sh" \
    "$stage$PREFIX/bin/blobd-healthcheck"
}

cmd_user() {
  [ $# -le 1 ] || usage
  local root=${1:-/} prefix=()
  need_root "user"
  # Another root (a test's) gets the entries in its own /etc files.
  if [ "$root" != / ]; then
    prefix=(--prefix "$(cd "$root" && pwd)")
  fi
  if ! grep -q '^blobd:' "$root/etc/group"; then
    run groupadd "${prefix[@]}" --system --gid "$BLOBD_GID" blobd
  fi
  if ! grep -q '^blobd:' "$root/etc/passwd"; then
    run useradd "${prefix[@]}" --system --uid "$BLOBD_UID" \
      --gid "$BLOBD_GID" --home-dir "$DATA_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "blobd blob server" blobd
  fi
}

cmd_install() {
  [ $# -eq 2 ] || usage
  local stage=$1 root=$2
  [ -x "$stage$PREFIX/bin/blobd" ] ||
    die "install: $stage$PREFIX/bin/blobd is missing (run build first)"
  need_root "install (the data dir is given to uid $BLOBD_UID)"
  run mkdir -p "$root"
  run cp -R --preserve=mode,timestamps "$stage/." "$root/"
  run mkdir -p "$(dirname "$root$DATA_DIR")"
  # 0700: blobd refuses a data dir other users may write, and the blobs
  # are nobody else's business.  Numeric ids: ROOT may have no passwd.
  run install -d -m 0700 -o "$BLOBD_UID" -g "$BLOBD_GID" "$root$DATA_DIR"
}

cmd_verify() {
  [ $# -eq 1 ] || usage
  local root=$1 bin n=0
  for bin in "$root$PREFIX"/bin/*; do
    [ -f "$bin" ] || continue
    if [ "$(head -c 4 "$bin" | od -An -c | tr -d ' ')" != '177ELF' ]; then
      continue
    fi
    n=$((n + 1))
    if ldd "$bin" | grep -q 'not found'; then
      ldd "$bin" | grep 'not found' >&2
      die "verify: $bin misses shared libraries"
    fi
  done
  [ "$n" -gt 0 ] || die "verify: no executable in $root$PREFIX/bin"
  "$root$PREFIX/bin/blobd" --version >/dev/null ||
    die "verify: $root$PREFIX/bin/blobd --version failed"
  echo "build.sh: $n executables in $root$PREFIX/bin find their libraries"
}

cmd_packages() {
  [ $# -eq 1 ] || usage
  case $1 in
  build) printf '%s\n' "${BUILD_PACKAGES[@]}" ;;
  runtime) printf '%s\n' "${RUNTIME_PACKAGES[@]}" ;;
  *) die "packages: '$1' is not build or runtime" ;;
  esac
}

main() {
  if [ "${1:-}" = "--dry-run" ]; then
    dry_run=1
    shift
  fi
  [ $# -ge 1 ] || usage
  local cmd=$1
  shift
  case $cmd in
  build-deps)
    [ $# -eq 0 ] || usage
    apt_install "${BUILD_PACKAGES[@]}"
    ;;
  runtime-deps)
    [ $# -eq 0 ] || usage
    apt_install "${RUNTIME_PACKAGES[@]}"
    ;;
  build) cmd_build "$@" ;;
  user) cmd_user "$@" ;;
  install) cmd_install "$@" ;;
  verify) cmd_verify "$@" ;;
  packages) cmd_packages "$@" ;;
  -h | --help | help) usage 0 ;;
  *) die "unknown command '$cmd' (see --help)" ;;
  esac
}

main "$@"
