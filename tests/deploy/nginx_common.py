"""Shared parts of the nginx deploy tests: blobd and nginx as child
processes of a test, the shipped configuration files with only their
"# site:" values replaced, and a small HTTP client.

Every process runs in the test's own temporary directory and listens on
127.0.0.1 only.  nginx is run as `nginx -p DIR -c DIR/nginx.conf` with
`daemon off;` and its pid file in DIR; /etc/nginx is never read.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from common import (HERE, SKIP, TOP, TestFailure, blobd_bin, check,  # noqa: F401
                    free_port, json_body, skip, wait_for)

DEPLOY = os.path.join(TOP, "deploy", "nginx")
JS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"


def find_nginx(need_js):
    """The nginx binary; skips when it (or the js module) is missing."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if not path:
        skip("nginx is not installed (Debian: nginx-light)")
    if need_js and not os.path.exists(JS_MODULE):
        skip("the njs module is not installed (Debian: libnginx-mod-http-js)")
    return path


class Blobd:
    """One blobd child with its data dir and log in `dir`."""

    def __init__(self, dir, name, args=()):
        self.dir = dir
        self.name = name
        self.data = os.path.join(dir, name + "-data")
        self.log = os.path.join(dir, name + ".log")
        self.args = list(args)
        self.proc = None
        self.port = 0

    def start(self, port=0):
        """Start on `port` (0: a free one, read back from the log)."""
        self.logpos = os.path.getsize(self.log) if os.path.exists(
            self.log) else 0
        out = open(self.log, "ab")
        argv = [blobd_bin(), "--listen", "127.0.0.1:%d" % port,
                "--data-dir", self.data, "--http-threads", "1",
                "--flush-interval-ms", "200"] + self.args
        self.proc = subprocess.Popen(argv, stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL)
        out.close()
        pat = re.compile(r"listening on 127\.0\.0\.1:(\d+)")

        def listening():
            if self.proc.poll() is not None:
                raise TestFailure("%s exited with %d at start:\n%s" % (
                    self.name, self.proc.returncode, self.log_text()))
            m = pat.search(self.log_text()[self.logpos:])
            if m:
                self.port = int(m.group(1))
            return bool(m)

        wait_for(listening, 10, self.name + " to listen")
        wait_for(lambda: request(self.addr(), "GET", "/readyz")[0] == 200,
                 10, self.name + " to be ready")
        return self

    def addr(self):
        return ("127.0.0.1", self.port)

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure(self.name + " did not stop on SIGTERM")
        self.proc = None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


SITE = re.compile(r"^(\s*)(\S+)\s+(.*?);(\s+# site: (.+))$")


def site_config(src, values):
    """The shipped configuration `src` with the value of every line marked
    "# site: <what>" replaced by values[<what>] (a string, or a callable
    taking the directive's old value).  Every other line is kept byte for
    byte; a marked line whose <what> is not in `values` fails the test, so
    the test and the file cannot drift apart unnoticed."""
    out = []
    used = set()
    with open(src) as f:
        for line in f:
            body = line.rstrip("\n")
            if "# site:" not in body or body.lstrip().startswith("#"):
                out.append(line)
                continue
            m = SITE.match(body)
            check(m, "%s: a site line the test cannot read: %r" % (src, body))
            what = m.group(5).strip()
            check(what in values, "%s: unknown site value %r" % (src, what))
            v = values[what]
            v = v(m.group(3)) if callable(v) else v
            used.add(what)
            out.append("%s%s %s;%s\n" % (m.group(1), m.group(2), v,
                                        m.group(4)))
    missing = set(values) - used
    check(not missing, "%s: no site line for %s" % (src, sorted(missing)))
    return "".join(out)


class Nginx:
    """nginx running `conf_text` from its own directory under `dir`."""

    def __init__(self, dir, conf_text):
        self.dir = os.path.join(dir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        # Workers of a root master run as nobody: they must reach this.
        os.chmod(dir, 0o755)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        self.log = os.path.join(self.dir, "nginx.log")
        self.proc = None

    def argv(self, *extra):
        return [find_nginx(False), "-p", self.dir + "/", "-c", self.conf,
                "-e", os.path.join(self.dir, "startup-error.log"),
                "-g", "pid %s/nginx.pid; daemon off;" % self.dir] + list(extra)

    def start(self, port):
        t = subprocess.run(self.argv("-t"), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        check(t.returncode == 0, "nginx -t refused the configuration:\n" +
              t.stdout.decode("utf-8", "replace"))
        out = open(self.log, "ab")
        # Its own process group: the workers go with the master in kill().
        self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        out.close()
        self.port = port

        def up():
            if self.proc.poll() is not None:
                raise TestFailure("nginx exited with %d:\n%s" % (
                    self.proc.returncode, self.log_text()))
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return True
            except OSError:
                return False

        wait_for(up, 10, "nginx to listen")
        return self

    def addr(self):
        return ("127.0.0.1", self.port)

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
                raise TestFailure("nginx did not stop on SIGQUIT")
        self.proc = None

    def kill(self):
        """The master and its workers (which outlive a killed master)."""
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None


def start_nginx(dir, conf_for_port):
    """nginx on a free port: conf_for_port(port) gives its configuration.
    A port taken between free_port() and nginx's bind (by a test running
    beside this one) is retried with another."""
    for attempt in range(3):
        port = free_port()
        n = Nginx(dir, conf_for_port(port))
        try:
            return track(n).start(port)
        except TestFailure:
            if "Address already in use" not in n.log_text() or attempt == 2:
                raise
            n.kill()


def request(addr, method, path, body=None, headers=None, source=None,
            timeout=10):
    """One request on a new connection: (status, headers dict with lower
    case names, body bytes).  A connection error is status 0."""
    conn = http.client.HTTPConnection(
        addr[0], addr[1], timeout=timeout,
        source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return (resp.status, {k.lower(): v for k, v in resp.getheaders()},
                data)
    except (OSError, http.client.HTTPException):
        return (0, {}, b"")
    finally:
        conn.close()


def run(main):
    """Run main(tmpdir) and turn its outcome into the exit status."""
    sys.stdout.reconfigure(line_buffering=True)
    # Killed (a CTest timeout): still take the children down, below.
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(1))
    start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="blobd-nginx-",
                           dir=os.environ.get("TMPDIR"))
    rc = 1
    try:
        main(tmp)
        print("PASS in %.1f s" % (time.monotonic() - start))
        rc = 0
    except TestFailure as e:
        print("FAIL: %s" % e)
    except SystemExit as e:
        rc = e.code
        raise
    finally:
        for p in list(CHILDREN):
            p.kill()
        if rc in (0, SKIP):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("(files kept in %s)" % tmp)
    sys.exit(rc)


# Every Blobd and Nginx a test starts, killed at the end whatever happens.
CHILDREN = []


def track(child):
    CHILDREN.append(child)
    return child
