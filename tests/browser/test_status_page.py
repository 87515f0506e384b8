#!/usr/bin/env python3
"""The status page (GET /) running in headless Chromium.

Starts blobd ($BLOBD_BIN) on 127.0.0.1 port 0 and Chromium with its
DevTools protocol on a loopback port (spoken here over a small WebSocket
client: python3 stdlib only), then, in real time:

1. loads http://127.0.0.1:<port>/ while PUTs and a flush run, and checks
   that the page keeps polling (data-polls grows between two looks a
   second apart), that data-state is "ok", that every chart plotted at
   least 2 samples, that the entries it shows equal the server's, and that
   the page threw no exception and broke no Content-Security-Policy rule;
2. takes a 1280x900 PNG screenshot into --out and --artifact and checks
   it is a valid PNG of that size that is not blank (decoded with zlib:
   distinct colours, pixels off the background, pixels of the charts'
   line colours);
3. loads the page through a reverse proxy (here, in python) that mounts
   blobd under /blobd/, and checks that it reaches "ok"; stops blobd and
   checks that the page turns stale (data-state "error") and keeps
   polling, then starts blobd again and checks that the page recovers;
4. restarts blobd with a read token: the page shows the token prompt
   (data-state "auth"), a wrong token gives a clear message, the right one
   brings it to "ok"; the token is kept in sessionStorage, never in the
   URL.

Exit 0 on success, 1 on failure, 77 (skipped) when no Chromium is found,
unless BLOBD_NO_SKIP is set, which turns that skip into a failure.
"""

import argparse
import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

SKIP = 77
LIMIT_S = 100  # the whole run
TOKEN = "pageRead-0123456789abcdef"
WIDTH, HEIGHT = 1280, 900
# The charts' line colours in the light theme (status.html: --c-rate,
# --c-flush, --c-unflushed).
LINE_COLOURS = [(0x2F, 0x6F, 0xDF), (0x8E, 0x44, 0xAD), (0xD2, 0x69, 0x1E)]


class Failure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def deadline_loop(seconds, step=0.1):
    """Yield until seconds have passed (monotonic), sleeping step between."""
    end = time.monotonic() + seconds
    while True:
        yield
        if time.monotonic() > end:
            return
        time.sleep(step)


# ---- blobd ----


class Blobd:
    def __init__(self, binary, workdir, name):
        self.binary = binary
        self.dir = os.path.join(workdir, name)
        os.mkdir(self.dir, 0o700)
        self.log_path = os.path.join(self.dir, "blobd.log")
        self.proc = None
        self.port = None

    def start(self, env_extra=None):
        env = dict(os.environ)
        env.update(env_extra or {})
        # The log is appended to across restarts: read only this run's.
        skip = len(self.log_text())
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [self.binary, "--listen", "127.0.0.1:0", "--data-dir",
                 os.path.join(self.dir, "data"), "--flush-interval-ms", "0"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env)
        for _ in deadline_loop(10):
            if self.proc.poll() is not None:
                raise Failure("blobd exited with %s before listening:\n%s" %
                              (self.proc.returncode, self.log_tail()))
            m = re.findall(r"listening on 127\.0\.0\.1:(\d+)",
                           self.log_text()[skip:])
            if m:
                self.port = int(m[-1])
                break
        else:
            raise Failure("blobd did not listen within 10 s")
        for _ in deadline_loop(10):
            if self.request("GET", "/readyz")[0] == 200:
                return
        raise Failure("blobd not ready within 10 s:\n" + self.log_tail())

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self):
        return "\n".join(self.log_text().splitlines()[-20:])

    def request(self, method, path, body=None, headers=None):
        """(status, body bytes); status 0 when the server cannot be reached."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        except OSError:
            return 0, b""
        finally:
            c.close()

    def stats(self, token=None):
        h = {"Authorization": "Bearer " + token} if token else {}
        st, body = self.request("GET", "/admin/stats", headers=h)
        if st != 200:
            raise Failure("GET /admin/stats: %d" % st)
        return json.loads(body)

    def stop(self):
        """SIGTERM (SIGKILL after 10 s); the exit status, None if not run."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def stop_clean(self):
        """stop, and fail unless blobd drained and exited 0."""
        rc = self.stop()
        if rc != 0:
            raise Failure("blobd exited with %s after SIGTERM:\n%s" %
                          (rc, self.log_tail()))


# ---- a reverse proxy that mounts blobd under a path prefix ----


class PrefixProxy:
    """http://127.0.0.1:<port>/blobd/X -> blobd's /X (GET only)."""

    PREFIX = "/blobd/"

    def __init__(self, blobd):
        upstream = blobd
        prefix = self.PREFIX

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if not self.path.startswith(prefix):
                    self.send_error(404)
                    return
                h = {}
                if self.headers.get("Authorization"):
                    h["Authorization"] = self.headers["Authorization"]
                path = "/" + self.path[len(prefix):]
                c = http.client.HTTPConnection("127.0.0.1", upstream.port,
                                               timeout=10)
                try:
                    c.request("GET", path, headers=h)
                    r = c.getresponse()
                    body = r.read()
                    self.send_response(r.status)
                    for k, v in r.getheaders():
                        if k.lower() not in ("connection", "date",
                                             "transfer-encoding", "server"):
                            self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.send_error(502)
                finally:
                    c.close()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---- Chromium and the DevTools protocol ----


def find_chromium():
    env = os.environ.get("BLOBD_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class WebSocket:
    """A minimal RFC 6455 client: text frames, masked, no extensions."""

    def __init__(self, url, timeout):
        u = urllib.parse.urlparse(url)
        if u.scheme != "ws" or u.hostname not in ("127.0.0.1", "localhost"):
            raise Failure("unexpected DevTools URL " + url)
        self.sock = socket.create_connection((u.hostname, u.port),
                                             timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" %
               (u.path, u.hostname, u.port, key))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Failure("DevTools closed the WebSocket handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise Failure("DevTools handshake: " + lines[0])
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if not any(l.lower().startswith("sec-websocket-accept:") and
                   l.split(":", 1)[1].strip() == accept.decode()
                   for l in lines[1:]):
            raise Failure("DevTools handshake: bad Sec-WebSocket-Accept")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("DevTools closed the WebSocket")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        """One whole message (continuation frames joined), as text."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            op = b0 & 0x0F
            if op == 0x8:
                raise Failure("DevTools closed the WebSocket")
            if op == 0x9:
                self._send_frame(0xA, data)
                continue
            if op in (0x1, 0x2, 0x0):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Chromium:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.dir = os.path.join(workdir, "chromium")
        os.mkdir(self.dir, 0o700)
        self.log_path = os.path.join(self.dir, "chromium.log")
        self.proc = None
        self.ws = None
        self.next_id = 0
        self.exceptions = []  # Runtime.exceptionThrown and error log entries

    def start(self):
        profile = os.path.join(self.dir, "profile")
        argv = [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", "--user-data-dir=" + profile,
                "--window-size=%d,%d" % (WIDTH, HEIGHT), "--hide-scrollbars",
                "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--mute-audio",
                "--force-color-profile=srgb", "about:blank"]
        with open(self.log_path, "ab") as logf:
            # Its own process group: every helper process dies with it.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf,
                                         start_new_session=True)
        port_file = os.path.join(profile, "DevToolsActivePort")
        port = None
        for _ in deadline_loop(30):
            if self.proc.poll() is not None:
                raise Failure("chromium exited with %s:\n%s" %
                              (self.proc.returncode, self.log_tail()))
            try:
                with open(port_file) as f:
                    port = int(f.readline().strip())
                break
            except (OSError, ValueError):
                pass
        if not port:
            raise Failure("chromium opened no DevTools port within 30 s")
        target = None
        for _ in deadline_loop(10):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/json/list")
                targets = json.loads(c.getresponse().read())
                c.close()
                target = next((t for t in targets if t.get("type") == "page"),
                              None)
                if target:
                    break
            except (OSError, ValueError):
                pass
        if not target:
            raise Failure("chromium: no page target over DevTools")
        self.ws = WebSocket(target["webSocketDebuggerUrl"], timeout=30)
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                  mobile=False)
        self.call("Emulation.setEmulatedMedia", media="screen",
                  features=[{"name": "prefers-color-scheme",
                             "value": "light"}])

    def log_tail(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return "\n".join(f.read().splitlines()[-20:])
        except OSError:
            return ""

    def _event(self, msg):
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.exceptions.append("exception: %s %s" % (
                d.get("text", ""),
                d.get("exception", {}).get("description", "")))
        elif m == "Log.entryAdded":
            e = p.get("entry", {})
            # A CSP violation is an error of source "security"; failed
            # requests are "network" errors, which the test provokes on
            # purpose (401 before the token, a stopped server), and which
            # the page's data-failures reports when they matter.
            if e.get("level") == "error" and e.get("source") != "network":
                self.exceptions.append("log %s: %s %s" % (
                    e.get("source"), e.get("text"), e.get("url", "")))

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method,
                                 "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise Failure("DevTools %s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            self._event(msg)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr,
                      returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise Failure("evaluate %r: %s" % (expr, r["exceptionDetails"]))
        return r.get("result", {}).get("value")

    def navigate(self, url):
        r = self.call("Page.navigate", url=url)
        if r.get("errorText"):
            raise Failure("navigate %s: %s" % (url, r["errorText"]))
        for _ in deadline_loop(15):
            if self.eval("document.readyState") == "complete":
                return
        raise Failure("navigate %s: not loaded within 15 s" % url)

    def page_state(self):
        return self.eval("""(function () {
          var b = document.body, q = function (s) {
            var e = document.querySelector(s); return e ? e : null; };
          var n = function (id) { var e = document.getElementById(id);
            return e ? Number(e.getAttribute("data-points")) : -1; };
          return { state: b.getAttribute("data-state"),
                   polls: Number(b.getAttribute("data-polls")),
                   failures: Number(b.getAttribute("data-failures")),
                   rate: n("chart-rate"), flush: n("chart-flush"),
                   unflushed: n("chart-unflushed"),
                   entries: (q("#f-manifest-entries") || {}).textContent,
                   ready: q("#ready").textContent,
                   stale: q("#main").className === "stale",
                   authShown: !q("#auth").hidden,
                   authMsg: q("#auth-msg").textContent,
                   authMsgClass: q("#auth-msg").className,
                   href: location.href };
        })()""")

    def wait_for(self, what, pred, seconds):
        st = None
        for _ in deadline_loop(seconds, 0.2):
            st = self.page_state()
            if pred(st):
                return st
        raise Failure("%s: not within %d s; page state %s" %
                      (what, seconds, json.dumps(st)))

    def screenshot(self):
        r = self.call("Page.captureScreenshot", format="png",
                      captureBeyondViewport=False)
        return base64.b64decode(r["data"])

    def stop(self):
        if self.ws:
            self.ws.close()
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


# ---- PNG ----


def png_pixels(data):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB/RGBA PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Failure("screenshot: not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        if pos + 8 > len(data):
            raise Failure("screenshot: truncated PNG chunk")
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise Failure("screenshot: bad CRC in chunk %r" % kind)
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + n
    if not ihdr or not idat:
        raise Failure("screenshot: no IHDR or IDAT")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise Failure("screenshot: unsupported PNG (depth %d, type %d)" %
                      (depth, ctype))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    if len(raw) != h * (stride + 1):
        raise Failure("screenshot: %d bytes of image data, want %d" %
                      (len(raw), h * (stride + 1)))
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        cur = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 0xFF
        elif f == 2:
            for i in range(stride):
                cur[i] = (cur[i] + prev[i]) & 0xFF
        elif f == 3:
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif f == 4:
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[i] = (cur[i] + pred) & 0xFF
        elif f != 0:
            raise Failure("screenshot: bad filter %d on row %d" % (f, y))
        rows.append([tuple(cur[i:i + 3]) for i in range(0, stride, bpp)])
        prev = cur
    return w, h, rows


def check_png(data):
    w, h, rows = png_pixels(data)
    if (w, h) != (WIDTH, HEIGHT):
        raise Failure("screenshot: %dx%d, want %dx%d" % (w, h, WIDTH, HEIGHT))
    counts = {}
    for row in rows:
        for px in row:
            counts[px] = counts.get(px, 0) + 1
    bg, bg_n = max(counts.items(), key=lambda kv: kv[1])
    off_bg = w * h - bg_n
    near = 0
    for px, n in counts.items():
        if any(sum(abs(a - b) for a, b in zip(px, c)) <= 30
               for c in LINE_COLOURS):
            near += n
    log("screenshot: %d colours, %.1f%% off the background %s, "
        "%d pixels of the chart lines" %
        (len(counts), 100.0 * off_bg / (w * h), bg, near))
    if len(counts) < 32:
        raise Failure("screenshot: only %d colours: blank?" % len(counts))
    if off_bg < w * h // 20:
        raise Failure("screenshot: only %d pixels off the background" % off_bg)
    if near < 8:
        raise Failure("screenshot: no chart line drawn (%d pixels)" % near)


# ---- the checks ----


def drive_traffic(b, n, seed):
    """n PUTs of 64 KiB; then the page has requests and unflushed bytes."""
    for i in range(n):
        guid = hashlib.md5(b"%d-%d" % (seed, i)).hexdigest()
        st, _ = b.request("PUT", "/blobs/" + guid, body=os.urandom(65536))
        if st not in (201, 204):
            raise Failure("PUT /blobs/%s: %d" % (guid, st))
        st, _ = b.request("GET", "/blobs/" + guid)
        if st != 200:
            raise Failure("GET /blobs/%s: %d" % (guid, st))
        time.sleep(0.1)


def check_live(chrome, b, url):
    chrome.navigate(url)
    # Traffic while the page polls: its charts see requests, unflushed
    # bytes and then a flush.
    drive_traffic(b, 12, 1)
    st, body = b.request("POST", "/flush")
    if st != 200:
        raise Failure("POST /flush: %d %r" % (st, body))
    drive_traffic(b, 4, 2)
    want = b.stats()["manifest"]["entries"]
    st = chrome.wait_for(
        "3 polls, every chart >= 2 samples, %d entries shown" % want,
        lambda s: s["state"] == "ok" and s["polls"] >= 3 and
        min(s["rate"], s["flush"], s["unflushed"]) >= 2 and
        (s["entries"] or "").replace(",", "") == str(want) and
        s["ready"] == "ready for writes", 20)
    log("page: %s" % json.dumps(st))
    if st["failures"]:
        raise Failure("page: %d polls failed" % st["failures"])
    # Live: the counter keeps growing in real time.
    time.sleep(2.2)
    st2 = chrome.page_state()
    if st2["polls"] < st["polls"] + 1 or st2["state"] != "ok":
        raise Failure("page stopped polling: %s then %s" %
                      (json.dumps(st), json.dumps(st2)))
    log("page, 2.2 s later: polls %d -> %d" % (st["polls"], st2["polls"]))


def check_screenshot(chrome, out_dir, artifact):
    png = chrome.screenshot()
    path = os.path.join(out_dir, "status-page.png")
    with open(path, "wb") as f:
        f.write(png)
    os.makedirs(os.path.dirname(artifact), exist_ok=True)
    shutil.copyfile(path, artifact)
    log("screenshot: %s (%d bytes), copied to %s" % (path, len(png),
                                                     artifact))
    check_png(png)


def check_proxy_and_outage(chrome, b):
    """Under a path prefix; then blobd stops (the page goes stale and keeps
    polling) and starts again (the page comes back by itself)."""
    proxy = PrefixProxy(b)
    try:
        url = "http://127.0.0.1:%d%s" % (proxy.port, PrefixProxy.PREFIX)
        chrome.navigate(url)
        st = chrome.wait_for("the page under %s" % PrefixProxy.PREFIX,
                             lambda s: s["state"] == "ok" and s["polls"] >= 2,
                             15)
        log("behind a proxy at %s: %s" % (url, json.dumps(st)))
        b.stop_clean()
        st = chrome.wait_for("stale while blobd is down",
                             lambda s: s["state"] == "error" and
                             s["failures"] >= 2 and s["stale"], 15)
        log("blobd down: %s" % json.dumps(st))
        polls = st["polls"]
        b.start()  # same data dir, another port: the proxy follows it
        st = chrome.wait_for("back to ok once blobd is up again",
                             lambda s: s["state"] == "ok" and
                             s["polls"] > polls and not s["stale"], 15)
        log("blobd up again: %s" % json.dumps(st))
    finally:
        proxy.stop()


def check_auth(chrome, b, out_dir):
    url = "http://127.0.0.1:%d/" % b.port
    chrome.navigate(url)
    st = chrome.wait_for("the token prompt (and readiness, which is open)",
                         lambda s: s["state"] == "auth" and s["authShown"] and
                         s["ready"] == "ready for writes", 15)
    if st["polls"] != 0:
        raise Failure("page shows data without a token: %s" % json.dumps(st))
    with open(os.path.join(out_dir, "status-page-auth.png"), "wb") as f:
        f.write(chrome.screenshot())

    def enter(token):
        chrome.eval("""(function () {
          document.getElementById("token").value = %s;
          document.getElementById("auth").requestSubmit();
        })()""" % json.dumps(token))

    enter("wrongWrong-0123456789abcdef")
    st = chrome.wait_for(
        "a message for a wrong token",
        lambda s: s["state"] == "auth" and s["authMsgClass"] == "bad" and
        "401" in s["authMsg"], 15)
    log("wrong token: %r" % st["authMsg"])
    enter(TOKEN)
    st = chrome.wait_for("ok with the right token",
                         lambda s: s["state"] == "ok" and s["polls"] >= 2 and
                         not s["authShown"], 15)
    log("right token: %s" % json.dumps(st))
    if st["href"] != url or TOKEN in st["href"]:
        raise Failure("the page URL changed: %s" % st["href"])
    kept = chrome.eval('sessionStorage.getItem("blobd-token")')
    if kept != TOKEN:
        raise Failure("token not kept in sessionStorage: %r" % kept)
    if TOKEN in b.log_text():
        raise Failure("the token reached blobd's log")


def run(args, workdir):
    binary = os.environ.get("BLOBD_BIN")
    if not binary or not os.access(binary, os.X_OK):
        raise Failure("BLOBD_BIN is not set to the blobd binary")
    chromium = find_chromium()
    if not chromium:
        if os.environ.get("BLOBD_NO_SKIP"):
            raise Failure("no Chromium found and BLOBD_NO_SKIP is set")
        log("SKIP: no Chromium found (apt-get install chromium)")
        return SKIP
    os.makedirs(args.out, exist_ok=True)
    b = Blobd(binary, workdir, "open")
    b_auth = Blobd(binary, workdir, "auth")
    chrome = Chromium(chromium, workdir)
    try:
        b.start()
        chrome.start()
        check_live(chrome, b, "http://127.0.0.1:%d/" % b.port)
        check_screenshot(chrome, args.out, args.artifact)
        check_proxy_and_outage(chrome, b)
        b.stop_clean()
        b_auth.start({"BLOBD_READ_TOKENS": TOKEN})
        check_auth(chrome, b_auth, args.out)
        chrome.navigate("about:blank")
        b_auth.stop_clean()
        if chrome.exceptions:
            raise Failure("the page logged errors:\n  " +
                          "\n  ".join(chrome.exceptions))
    except Failure:
        for name, text in (("blobd", b.log_tail()),
                           ("blobd (auth)", b_auth.log_tail()),
                           ("chromium", chrome.log_tail())):
            if text:
                log("---- %s log (tail) ----\n%s" % (name, text))
        raise
    finally:
        chrome.stop()
        b.stop()
        b_auth.stop()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="dir for the screenshots")
    ap.add_argument("--artifact", required=True,
                    help="where the screenshot is copied")
    args = ap.parse_args()

    # A signal, or the overall limit (below CTest's TIMEOUT of 120 s),
    # unwinds through the finally blocks, so every process is stopped.
    def on_signal(sig, frame):
        raise SystemExit("stopped by signal %d (the limit is %d s)" %
                         (sig, LIMIT_S))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(LIMIT_S)

    base = os.environ.get("TMPDIR") or "/tmp"
    workdir = tempfile.mkdtemp(prefix="blobd-browser-", dir=base)
    ok = False
    try:
        rc = run(args, workdir)
        ok = True
        return rc
    except Failure as e:
        log("FAIL: %s" % e)
        return 1
    finally:
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log("work dir kept: %s" % workdir)


if __name__ == "__main__":
    sys.exit(main())
