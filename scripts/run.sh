#!/usr/bin/env bash
# The run command: installs what is missing, builds, and starts blobd in
# the foreground on 127.0.0.1:8080 with its data in ./data.  Extra
# arguments go to blobd (see: ./scripts/run.sh --help).  Ctrl-C stops it
# cleanly (a final flush, then exit).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target blobd >/dev/null
exec ./build/server/blobd --listen "${BLOBD_LISTEN:-127.0.0.1:8080}" \
  --data-dir "${BLOBD_DATA_DIR:-./data}" "$@"
