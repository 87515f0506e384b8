#!/usr/bin/env python3
"""deploy/nginx/blobd-proxy.conf run for real: one blobd behind nginx.

Through the proxy every route of the API works: PUT, GET byte for byte,
HEAD, single and multipart ranges, If-Range, the preconditions (their
206, 304 and 412 answered by blobd, not by nginx), DELETE, POST /blobs,
listing, /flush, ?fsync=true, the health, stats and metrics routes.  A
512 KiB body is accepted and one byte more refused (413, by nginx, in
JSON).  A body is streamed: blobd has the request while the client is
still sending it.  The client's address (127.0.0.5) reaches blobd's
access log; a forged X-Forwarded-For does not, through the proxy or
straight to blobd.  With blobd down the proxy answers 502 in JSON.
"""

import os
import random
import re
import socket
import sys
import time

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nginx_common import (DEPLOY, Blobd, check, find_nginx,  # noqa
                          json_body, request, run, site_config, start_nginx,
                          track, wait_for)

CLIENT = "127.0.0.5"  # the client's source address
OTHER = "127.0.0.6"  # a client talking to blobd directly
LIMIT = 524288


def rguid(rng):
    return "%032x" % rng.getrandbits(128)


def dashed(g):
    return "%s-%s-%s-%s-%s" % (g[:8], g[8:12], g[12:16], g[16:20], g[20:])


class Env:
    def __init__(self, tmp):
        self.rng = random.Random(os.environ.get("BLOBD_TEST_SEED"))
        # No cache: memory.used_bytes then counts only request frames.
        self.blobd = track(Blobd(tmp, "blobd", [
            "--access-log", "--trusted-proxies", "127.0.0.1",
            "--cache-size", "0"])).start()
        self.nginx = start_nginx(tmp, lambda port: site_config(
            os.path.join(DEPLOY, "blobd-proxy.conf"), {
                "listen address": "127.0.0.1:%d" % port,
                "blobd address": lambda old: "127.0.0.1:%d%s" % (
                    self.blobd.port, old[len(old.split()[0]):]),
                "temp dir": lambda old: os.path.join(
                    tmp, "nginx", os.path.basename(old)),
            }))
        self.port = self.nginx.port

    def px(self, method, path, body=None, headers=None):
        """A request through the proxy from CLIENT."""
        return request(("127.0.0.1", self.port), method, path, body, headers,
                       source=CLIENT)

    def direct(self, method, path, body=None, headers=None, source=None):
        return request(self.blobd.addr(), method, path, body, headers,
                       source=source)

    def logged(self, client, method, target, status):
        """Wait for blobd's access line of this request."""
        needle = 'access %s "%s %s" %d ' % (client, method, target, status)
        wait_for(lambda: needle in self.blobd.log_text(), 5,
                 "blobd access line %r" % needle)

    def not_logged(self, text):
        check(text not in self.blobd.log_text(),
              "blobd's log has %r" % text)


def multipart(ctype, body):
    """The parts of a multipart/byteranges body: [(content-range, data)]."""
    m = re.search(r"boundary=([^;\s]+)", ctype)
    check(m, "no boundary in %r" % ctype)
    delim = b"--" + m.group(1).encode()
    parts = []
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        check(data.endswith(b"\r\n"), "a part does not end in CRLF")
        cr = re.search(rb"Content-Range: ([^\r\n]+)", head, re.I)
        check(cr, "a part without Content-Range")
        parts.append((cr.group(1).decode(), data[:-2]))
    return parts


def test_blob_routes(e):
    g = rguid(e.rng)
    data = os.urandom(100000)
    st, h, b = e.px("PUT", "/blobs/" + g, data)
    check(st == 201, "PUT new: %d %r" % (st, b))
    check(h.get("location") == "/blobs/" + g, "Location %r" % h)
    etag1 = h.get("etag")
    check(etag1, "no ETag on 201")
    st, h, _ = e.px("PUT", "/blobs/" + dashed(g).upper(), data)
    check(st == 204 and h.get("etag") not in (None, etag1),
          "PUT replace: %d %r" % (st, h))
    etag = h["etag"]

    st, h, b = e.px("GET", "/blobs/" + g)
    check(st == 200 and b == data, "GET: %d, %d bytes" % (st, len(b)))
    check(h.get("etag") == etag and h.get("accept-ranges") == "bytes",
          "GET headers %r" % h)
    st, h, b = e.px("HEAD", "/blobs/" + g)
    check(st == 200 and b == b"" and h.get("content-length") == "100000"
          and h.get("etag") == etag, "HEAD: %d %r" % (st, h))

    # Ranges are blobd's: nginx adds no range filter of its own.
    st, h, b = e.px("GET", "/blobs/" + g, headers={"Range": "bytes=10-99"})
    check(st == 206 and b == data[10:100] and
          h.get("content-range") == "bytes 10-99/100000",
          "single range: %d %r" % (st, h))
    e.logged(CLIENT, "GET", "/blobs/" + g, 206)
    st, h, b = e.px("GET", "/blobs/" + g, headers={"Range": "bytes=-100"})
    check(st == 206 and b == data[-100:], "suffix range: %d" % st)
    st, h, b = e.px("GET", "/blobs/" + g,
                    headers={"Range": "bytes=0-9,50000-50999"})
    check(st == 206 and h.get("content-type", "").startswith(
        "multipart/byteranges"), "multipart: %d %r" % (st, h))
    parts = multipart(h["content-type"], b)
    check(parts == [("bytes 0-9/100000", data[:10]),
                    ("bytes 50000-50999/100000", data[50000:51000])],
          "multipart parts %r" % [(p[0], len(p[1])) for p in parts])
    st, h, b = e.px("GET", "/blobs/" + g,
                    headers={"Range": "bytes=100-199", "If-Range": etag})
    check(st == 206 and b == data[100:200], "If-Range current: %d" % st)
    st, h, b = e.px("GET", "/blobs/" + g,
                    headers={"Range": "bytes=100-199", "If-Range": etag1})
    check(st == 200 and b == data, "If-Range stale: %d" % st)
    # Overlapping ranges: blobd answers 200 with the whole blob (its abuse
    # limit); nginx must not cut that 200 into ranges itself.
    st, h, b = e.px("GET", "/blobs/" + g, headers={"Range": "bytes=0-4,3-8"})
    check(st == 200 and b == data, "overlapping ranges: %d" % st)
    # So must an invalid range (ignored by blobd, RFC 9110 14.1.1).
    for bad in ("bytes=9-5", "bytes=x-1"):
        st, h, b = e.px("GET", "/blobs/" + g, headers={"Range": bad})
        check(st == 200 and b == data, "invalid range %s: %d" % (bad, st))
    st, h, b = e.px("GET", "/blobs/" + g, headers={"Range": "bytes=200000-"})
    check(st == 416 and h.get("content-range") == "bytes */100000",
          "unsatisfiable: %d %r" % (st, h))
    e.logged(CLIENT, "GET", "/blobs/" + g, 416)

    # Preconditions, each answered by blobd (its access log has them).
    st, h, b = e.px("PUT", "/blobs/" + g, b"x", {"If-None-Match": "*"})
    check(st == 412 and json_body(b, "412")["error"] ==
          "precondition_failed", "If-None-Match: * on existing: %d" % st)
    e.logged(CLIENT, "PUT", "/blobs/" + g, 412)
    st, h, _ = e.px("PUT", "/blobs/" + g, b"v2", {"If-Match": '"999-1"'})
    check(st == 412, "If-Match stale: %d" % st)
    st, h, _ = e.px("PUT", "/blobs/" + g, b"v2", {"If-Match": etag})
    check(st == 204, "If-Match current: %d" % st)
    etag = h["etag"]
    st, h, b = e.px("GET", "/blobs/" + g, headers={"If-None-Match": etag})
    check(st == 304 and b == b"" and h.get("etag") == etag,
          "If-None-Match: %d %r" % (st, h))
    e.logged(CLIENT, "GET", "/blobs/" + g, 304)
    st, _, _ = e.px("GET", "/blobs/" + g, headers={"If-Match": etag1})
    check(st == 412, "GET If-Match stale: %d" % st)
    e.logged(CLIENT, "GET", "/blobs/" + g, 412)
    # blobd ignores If-Unmodified-Since; nginx's not-modified filter would
    # answer 412 to it (the blob has no Last-Modified) if it were on.
    st, _, b = e.px("GET", "/blobs/" + g,
                    headers={"If-Unmodified-Since":
                             "Sat, 01 Jan 2000 00:00:00 GMT"})
    check(st == 200 and b == b"v2", "If-Unmodified-Since: %d" % st)

    st, h, _ = e.px("DELETE", "/blobs/" + g)
    check(st == 204, "DELETE: %d" % st)
    st, h, b = e.px("GET", "/blobs/" + g)
    check(st == 404 and json_body(b, "404")["error"] == "not_found",
          "GET deleted: %d %r" % (st, b))
    # blobd's own errors come through as blobd wrote them.
    st, h, b = e.px("GET", "/blobs/not-a-guid")
    check(st == 400 and json_body(b, "400")["error"] == "bad_guid",
          "bad GUID: %d %r" % (st, b))
    e.logged(CLIENT, "GET", "/blobs/not-a-guid", 400)

    st, h, b = e.px("PUT", "/blobs/" + g + "?fsync=true", b"durable")
    check(st == 201 and h.get("blob-durable") == "true",
          "?fsync=true: %d %r" % (st, h))

    # A chunked body (no Content-Length) goes through as it comes.
    st, _, _ = e.px("PUT", "/blobs/" + g, iter([data[:70000], data[70000:]]))
    check(st == 204, "chunked PUT: %d" % st)
    st, _, b = e.px("GET", "/blobs/" + g)
    check(st == 200 and b == data, "chunked PUT read back: %d" % st)

    # nginx keeps its connection to blobd open for the next request:
    # blobd sees it beside this one.
    st, _, b = e.direct("GET", "/admin/stats")
    check(st == 200 and json_body(b, "stats")["http"]["open_connections"]
          >= 2, "no kept-alive connection from nginx to blobd")


def test_post_list_flush(e):
    st, h, b = e.px("POST", "/blobs", b"posted")
    check(st == 201, "POST /blobs: %d %r" % (st, b))
    loc = h.get("location", "")
    check(re.fullmatch(r"/blobs/[0-9a-f]{32}", loc), "Location %r" % loc)
    st, _, b = e.px("GET", loc)
    check(st == 200 and b == b"posted", "GET Location: %d" % st)

    mine = sorted(rguid(e.rng) for _ in range(5))
    for g in mine:
        st, _, _ = e.px("PUT", "/blobs/" + g, g.encode())
        check(st == 201, "PUT %s: %d" % (g, st))
    seen, after = [], None
    for _ in range(100):
        q = "/blobs?limit=2" + ("&after=" + after if after else "")
        st, _, b = e.px("GET", q)
        check(st == 200, "listing %s: %d" % (q, st))
        page = json_body(b, "listing")
        check(len(page["blobs"]) <= 2, "page longer than limit")
        seen += [x["guid"] for x in page["blobs"]]
        after = page.get("next")
        if not after:
            break
    check(seen == sorted(seen) and len(set(seen)) == len(seen),
          "listing not in GUID order: %r" % seen)
    check(set(mine) <= set(seen) and loc[7:] in seen,
          "listing misses blobs: %r" % seen)

    st, _, b = e.px("POST", "/flush")
    check(st == 200 and "records" in json_body(b, "flush"),
          "POST /flush: %d %r" % (st, b))
    for path, want in (("/healthz", "ok"), ("/readyz", "ready")):
        st, _, b = e.px("GET", path)
        check(st == 200 and json_body(b, path)["status"] == want,
              "%s: %d %r" % (path, st, b))
    st, _, b = e.px("GET", "/admin/stats")
    check(st == 200 and json_body(b, "stats")["manifest"]["entries"] >= 6,
          "/admin/stats: %d" % st)
    st, h, b = e.px("GET", "/metrics")
    check(st == 200 and re.search(rb"^blobd_up 1$", b, re.M) and
          h.get("content-type", "").startswith("text/plain"),
          "/metrics: %d %r" % (st, h))


def test_body_limit(e):
    g = rguid(e.rng)
    data = os.urandom(LIMIT)
    st, _, _ = e.px("PUT", "/blobs/" + g, data)
    check(st == 201, "PUT of 512 KiB: %d" % st)
    st, _, b = e.px("GET", "/blobs/" + g)
    check(st == 200 and b == data, "GET of 512 KiB: %d" % st)

    big = rguid(e.rng)
    st, h, b = e.px("PUT", "/blobs/" + big, data + b"x")
    check(st == 413 and json_body(b, "413")["error"] == "too_large" and
          h.get("content-type") == "application/json",
          "PUT of 512 KiB + 1: %d %r" % (st, b))
    # Refused by nginx from Content-Length: blobd never saw it.
    wait_for(lambda: "too large body: 524289 bytes" in e.nginx.log_text(), 5,
             "nginx's 413 log line")
    e.not_logged(big)
    # A chunked body is cut off at the limit (by nginx as it counts, or
    # by blobd): whoever answers, nothing is stored.
    st, _, _ = e.px("PUT", "/blobs/" + big,
                    iter([data[:300000], data[300000:] + b"xy"]))
    check(st in (0, 413), "chunked PUT of 512 KiB + 2: %d" % st)
    st, _, _ = e.direct("HEAD", "/blobs/" + big)
    check(st == 404, "the oversized chunked body was stored: %d" % st)


def raw_connect(port, source):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def read_response(s):
    """Read one response to the end (Connection: close); its status."""
    buf = b""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
    m = re.match(rb"HTTP/1\.1 (\d{3})", buf)
    return int(m.group(1)) if m else 0, buf


def used_frames(e):
    st, _, b = e.direct("GET", "/admin/stats")
    check(st == 200, "/admin/stats straight to blobd: %d" % st)
    return json_body(b, "stats")["memory"]["used_bytes"] // LIMIT


def test_streaming(e):
    """Bodies are streamed: blobd has the request (and a frame for its
    body) while the client is still sending it, and can refuse it before
    the client has finished.  With request buffering on, nginx would read
    the whole body first and blobd would see nothing until then."""
    data = os.urandom(400000)
    chunk = b"%x\r\n%s\r\n"
    for framing, first, rest in (
            ("Content-Length: %d" % len(data), data[:100000], data[100000:]),
            ("Transfer-Encoding: chunked", chunk % (100000, data[:100000]),
             chunk % (300000, data[100000:]) + b"0\r\n\r\n")):
        g = rguid(e.rng)
        base = used_frames(e)
        s = raw_connect(e.port, CLIENT)
        s.sendall(("PUT /blobs/%s HTTP/1.1\r\nHost: x\r\n%s\r\n"
                   "Connection: close\r\n\r\n" % (g, framing)).encode())
        s.sendall(first)
        wait_for(lambda: used_frames(e) > base, 5,
                 "blobd to take the upload while the client still sends it "
                 "(%s)" % framing)
        s.sendall(rest)
        st, _ = read_response(s)
        s.close()
        check(st == 201, "streamed PUT (%s): %d" % (framing, st))
        st, _, b = e.px("GET", "/blobs/" + g)
        check(st == 200 and b == data, "streamed blob read back: %d" % st)

    # blobd refuses a PUT whose If-Match names no version it ever wrote
    # from the headers alone; the client gets that 412 with most of its
    # body unsent (nginx passes the early answer on).
    s = raw_connect(e.port, CLIENT)
    s.sendall(("PUT /blobs/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               "If-Match: \"not-from-blobd\"\r\nConnection: close\r\n\r\n"
               % (g, len(data))).encode())
    s.sendall(data[:20000])
    t0 = time.monotonic()
    st, _ = read_response(s)
    s.close()
    check(st == 412, "early 412 with the body unsent: %d" % st)
    check(time.monotonic() - t0 < 9, "the 412 came only at the timeout")


def test_client_address(e):
    # Every request so far came from CLIENT through the proxy (nginx
    # connects from 127.0.0.1, a trusted proxy).
    check(re.search(r'access %s "PUT /blobs/' % re.escape(CLIENT),
                    e.blobd.log_text()), "no access line from %s" % CLIENT)
    # (The test's own requests straight to blobd are GETs and HEADs.)
    e.not_logged('access 127.0.0.1 "PUT ')
    # A client cannot name another address through the proxy...
    st, _, _ = e.px("GET", "/healthz?through",
                    headers={"X-Forwarded-For": "203.0.113.9"})
    check(st == 200, "healthz through: %d" % st)
    e.logged(CLIENT, "GET", "/healthz?through", 200)
    e.not_logged("access 203.0.113.9 ")
    # ...nor straight to blobd: it is not a trusted proxy.
    st, _, _ = e.direct("GET", "/healthz?direct", source=OTHER,
                        headers={"X-Forwarded-For": "203.0.113.10"})
    check(st == 200, "healthz direct: %d" % st)
    e.logged(OTHER, "GET", "/healthz?direct", 200)
    e.not_logged("access 203.0.113.10 ")


def test_blobd_down(e):
    e.blobd.kill()  # as after a crash: connections refused
    st, h, b = e.px("GET", "/blobs/" + rguid(e.rng))
    check(st == 502 and json_body(b, "502")["error"] == "bad_gateway" and
          h.get("content-type") == "application/json",
          "blobd down: %d %r" % (st, b))


def main(tmp):
    find_nginx(False)
    e = Env(tmp)
    # test_streaming counts blobd's frames in use: it runs before
    # test_body_limit, whose cut-off uploads may hold frames for a while.
    for t in (test_blob_routes, test_post_list_flush, test_streaming,
              test_body_limit, test_client_address, test_blobd_down):
        t0 = time.monotonic()
        t(e)
        print("ok %s (%.2f s)" % (t.__name__, time.monotonic() - t0))
    e.nginx.stop()


if __name__ == "__main__":
    run(main)
