#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs the default
# suite (every test but those labelled slow).  With CI=true it also checks
# formatting, builds with -Werror, runs the ASan+UBSan and TSan builds and
# every fuzz target briefly (docs/reliability.md), runs the benchmark
# harnesses in their smoke mode (docs/benchmarks.md), and turns every
# would-be skip into a failure (BLOBD_NO_SKIP=1).
#
#   ./scripts/test.sh            default suite
#   ./scripts/test.sh -L slow    extra ctest arguments (e.g. the slow tests)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc)
start=$(date +%s)

./scripts/setup.sh

ci=0
case "${CI:-}" in true|1|yes) ci=1 ;; esac

werror=OFF
if [ $ci -eq 1 ]; then
  werror=ON
  export BLOBD_NO_SKIP=1
  echo "== clang-format check"
  git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run --Werror
fi

ctest_args=(--output-on-failure -j "$jobs")
if [ $# -gt 0 ]; then
  ctest_args+=("$@")
else
  ctest_args+=(-LE slow)
fi

stage_start=
stage() { # stage <name>: print the time the previous stage took
  local now; now=$(date +%s)
  [ -z "$stage_start" ] || echo "== ($(( now - stage_start )) s)"
  stage_start=$now
  echo "== $1"
}

build() { # build <dir> <cmake args...>
  local dir=$1; shift
  cmake -S "$top" -B "$dir" -DBLOBD_WERROR=$werror "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

stage "default build"
build build
(cd build && ctest "${ctest_args[@]}")

if [ $ci -eq 1 ]; then
  stage "ASan+UBSan build (store and server tests, fewer crash rounds)"
  build build-asan -DCMAKE_BUILD_TYPE=Debug -DBLOBD_ASAN=ON -DBLOBD_CRASH_ROUNDS=30
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -j "$jobs" -L 'unit|crash|integration' -LE slow)
  stage "TSan build (unit and server tests, the threaded crash test)"
  build build-tsan -DCMAKE_BUILD_TYPE=Debug -DBLOBD_TSAN=ON -DBLOBD_CRASH_ROUNDS=20
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
     ctest --output-on-failure -j "$jobs" -LE slow -L 'unit|integration' &&
     TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -R '^test_crash_async$')
  stage "fuzz targets (libFuzzer, ASan+UBSan, ${BLOBD_FUZZ_SECONDS:-30} s each)"
  build build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBLOBD_FUZZ=ON -DBLOBD_FUZZ_SECONDS="${BLOBD_FUZZ_SECONDS:-30}"
  (cd build-fuzz && ctest --output-on-failure -j "$jobs" -L fuzz)
  stage "benchmark harnesses, smoke mode (they must run; no speed is judged)"
  bench_out=$(mktemp -d "${TMPDIR:-/tmp}/blobd-bench-smoke-XXXXXX")
  tests/bench/http_bench.py --build build --out "$bench_out/http" --smoke
  tests/bench/scale.py --build build --out "$bench_out/scale" --smoke
  rm -rf "$bench_out"
fi

stage "all passed in $(( $(date +%s) - start )) s"
