#!/usr/bin/env bash
# Rewrites the generated blocks of docs/operations.md in place:
#
#   config-reference  the table printed by `blobd --help-markdown`, which
#                     comes from the option table of server/config.c
#   alert-rules       deploy/prometheus/blobd-alerts.yml, verbatim
#
# Each block sits between the lines <!-- NAME:begin --> and
# <!-- NAME:end -->; everything else in the file is left as it is.
#
#   scripts/gen-docs.sh                  build blobd in $BUILD_DIR (default
#                                        build/), then rewrite the blocks
#   scripts/gen-docs.sh --bin PATH       use this blobd binary, build nothing
#   scripts/gen-docs.sh --check [...]    change nothing; print a diff and
#                                        exit 1 when a block is out of date
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
doc=$top/docs/operations.md
rules=$top/deploy/prometheus/blobd-alerts.yml

check=0
bin=
while [ $# -gt 0 ]; do
  case $1 in
    --check) check=1 ;;
    --bin) [ $# -ge 2 ] || { echo "gen-docs: --bin needs a path" >&2; exit 64; }
           bin=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gen-docs: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
  shift
done

if [ -z "$bin" ]; then
  build=${BUILD_DIR:-$top/build}
  [ -f "$build/CMakeCache.txt" ] || cmake -S "$top" -B "$build" >/dev/null
  cmake --build "$build" --target blobd >/dev/null
  bin=$build/server/blobd
fi
[ -x "$bin" ] || { echo "gen-docs: $bin is not an executable blobd" >&2; exit 66; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/blobd-gen-docs-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A clean environment: a BLOBD_* variable with a bad value would make blobd
# refuse to start before it prints anything.
env -i "$bin" --help-markdown >"$tmp/config-reference"
{
  echo '<!-- alert-rules:begin -->'
  echo '<!-- generated from deploy/prometheus/blobd-alerts.yml by scripts/gen-docs.sh: edit that file, not this block -->'
  echo
  echo '```yaml'
  cat "$rules"
  echo '```'
  echo
  echo '<!-- alert-rules:end -->'
} >"$tmp/alert-rules"

# replace <name>: copy $tmp/cur to $tmp/next with the block <name> replaced
# by $tmp/<name>; fails unless each marker is there exactly once, in order.
replace() {
  awk -v name="$1" -v gen="$tmp/$1" '
    BEGIN { b = "<!-- " name ":begin -->"; e = "<!-- " name ":end -->" }
    $0 == b { nb++; if (ne == 0 && nb == 1) { while ((getline l < gen) > 0) print l; skip = 1 }; next }
    $0 == e { ne++; if (!skip) bad = 1; skip = 0; next }
    !skip { print }
    END { if (nb != 1 || ne != 1 || bad || skip) exit 3 }
  ' "$tmp/cur" >"$tmp/next" || {
    echo "gen-docs: $doc needs exactly one '<!-- $1:begin -->' line followed by one '<!-- $1:end -->' line" >&2
    exit 65
  }
  mv "$tmp/next" "$tmp/cur"
}

cp "$doc" "$tmp/cur"
replace config-reference
replace alert-rules

if cmp -s "$doc" "$tmp/cur"; then
  [ $check -eq 1 ] && echo "gen-docs: docs/operations.md is up to date"
  exit 0
fi
if [ $check -eq 1 ]; then
  diff -u --label docs/operations.md --label generated "$doc" "$tmp/cur" || true
  echo "gen-docs: the generated blocks of docs/operations.md are out of date: run scripts/gen-docs.sh" >&2
  exit 1
fi
cp "$tmp/cur" "$doc"
echo "gen-docs: docs/operations.md rewritten"
