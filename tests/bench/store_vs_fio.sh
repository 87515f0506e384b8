#!/usr/bin/env bash
# Write + group-commit throughput of the store next to fio on the same
# disk, in one run: 512 KiB O_DIRECT writes at 16 in flight, with an
# fdatasync shared by each batch (fio: fdatasync every 16 writes).
#   tests/bench/store_vs_fio.sh [build dir] [seconds]
set -euo pipefail
build=${1:-build}
secs=${2:-10}
dir=$(mktemp -d "${TMPDIR:-/tmp}/blobd-bench-XXXXXX")
trap 'rm -rf "$dir"' EXIT
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)"; exit 1; }
for backend in io_uring pread; do
  rm -rf "$dir/store"
  "$build/tests/store_bench" "$dir/store" "$backend" 16 "$secs"
done
fio --name=w --filename="$dir/fio.dat" --size=1G --rw=write --bs=512k \
    --direct=1 --ioengine=io_uring --iodepth=16 --fdatasync=16 \
    --runtime="$secs" --time_based --output-format=json \
  | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["write"]; print(json.dumps({"fio":"write 512k qd16 fdatasync/16","writes_per_s":round(j["iops"],1),"mb_per_s":round(j["bw_bytes"]/1e6,1)}))'
