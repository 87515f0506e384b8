#!/bin/bash
# blobd-healthcheck - the image's HEALTHCHECK: GET /healthz from the blobd
# in this container, on the port of BLOBD_LISTEN.  Exit 0 when it answers
# 200, 1 otherwise (Docker's healthy / unhealthy).
#
# It uses bash's /dev/tcp rather than curl: bash is already in
# debian:12-slim, while curl would add libcurl and its TLS stack to the
# image for one local plain-HTTP request.  A stuck blobd is bounded by
# read -t here and by the HEALTHCHECK's --timeout.
set -u

listen=${BLOBD_LISTEN:-127.0.0.1:8080}
port=${listen##*:}
host=${listen%:*}
case $host in
# A wildcard address is reached over loopback.
0.0.0.0) host=127.0.0.1 ;;
'[::]') host=::1 ;;
\[*\]) host=${host#\[} host=${host%\]} ;;
esac
# Below the HEALTHCHECK --timeout (5 s), so the reason gets printed.
wait_s=3

if ! exec 3<>"/dev/tcp/$host/$port"; then
  echo "blobd-healthcheck: cannot connect to $host:$port" >&2
  exit 1
fi
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
status=
if ! IFS= read -r -t "$wait_s" status <&3; then
  echo "blobd-healthcheck: no answer from $host:$port in ${wait_s}s" >&2
  exit 1
fi
case $status in
"HTTP/1."[01]" 200 "*) exit 0 ;;
esac
echo "blobd-healthcheck: $host:$port answered '${status%$'\r'}'" >&2
exit 1
