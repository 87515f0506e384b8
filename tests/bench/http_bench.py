#!/usr/bin/env python3
"""HTTP benchmark of blobd next to nginx (WebDAV), a bare libmicrohttpd
server (mhd_ref) and fio on blobd's own data file, in one command.

  tests/bench/http_bench.py --build build --out /tmp/bench-out
  tests/bench/http_bench.py --build build --out /tmp/o --smoke
  tests/bench/http_bench.py --build build --out /tmp/o --duration 10 \\
      --pairs 1 --scenarios put,get_cached

Servers are pinned to CPU 0, wrk and this script to CPU 1.  Every run is
preceded by sync and a drop of the page cache.  Each scenario starts its
servers, preloads them, then runs A/B pairs: in pair i every server runs
once, the order reversed every other pair; the table shows the median
with min and max across pairs.  It prints figures and never judges speed:
the exit status is non-zero only when a server fails to start, a run has
errors (wrk or fio), or a check fails (data writes, O_DIRECT, flush
records).  tests/bench/README.md describes every scenario and column.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WRK_DIR = os.path.join(HERE, "wrk")
NGINX_TEMPLATE = os.path.join(HERE, "nginx", "webdav.conf")

BLOB = 512 * 1024  # every blob, and one slot of blobs.dat
RANGE = 4096
SERVER_CPU = "0"
CLIENT_CPU = "1"

ALL_SCENARIOS = ["put", "put_fsync", "get_cached", "get_cold",
                 "range_cached", "range_cold", "mix", "flush"]

# blobd options per kind of scenario, on top of --listen, --data-dir and
# --backend.  The frame cache must hold the 1 024 blobs (512 MiB); blobd
# refuses a cache over half the memory budget, so 640 MiB needs 1 280.
CACHED_OPTS = ["--cache-size=640", "--memory-budget=1280"]
COLD_OPTS = ["--direct=on", "--cache-size=0"]
FLUSH_OPTS = ["--flush-interval-ms=0"]

BLOBDS = ["blobd-io_uring", "blobd-pread"]
HTTP4 = BLOBDS + ["nginx", "mhd_ref"]

# script: wrk script; payload: bytes each request moves (MB/s column);
# guids: "hot" (1 024) or "cold" (8 192); warm: an untimed GET pass after
# each cache drop; fio_bs: the fio row's block size.
SPECS = {
    "put": dict(script="put.lua", servers=HTTP4, conns=[16], opts=[],
                payload=BLOB, guids="hot", warm=False),
    "put_fsync": dict(script="put.lua", servers=BLOBDS, conns=[1, 16, 64],
                      opts=[], payload=BLOB, guids="hot", warm=False,
                      query="?fsync=true"),
    "get_cached": dict(script="get.lua", servers=HTTP4, conns=[16],
                       opts=CACHED_OPTS, payload=BLOB, guids="hot",
                       warm=True),
    "get_cold": dict(script="get.lua", servers=BLOBDS + ["nginx", "fio"],
                     conns=[16], opts=COLD_OPTS, payload=BLOB, guids="cold",
                     warm=False, fio_bs=BLOB),
    "range_cached": dict(script="range.lua", servers=HTTP4, conns=[16],
                         opts=CACHED_OPTS, payload=RANGE, guids="hot",
                         warm=True),
    "range_cold": dict(script="range.lua", servers=BLOBDS + ["nginx", "fio"],
                       conns=[16], opts=COLD_OPTS, payload=RANGE,
                       guids="cold", warm=False, fio_bs=RANGE),
    "mix": dict(script="mix.lua", servers=HTTP4, conns=[16],
                opts=CACHED_OPTS, payload=BLOB, guids="hot", warm=True),
    "flush": dict(script=None, servers=BLOBDS + ["flush_raw"], conns=[1],
                  opts=FLUSH_OPTS, payload=0, guids="hot", warm=False),
}

# (label, numerator row, denominator row, metric, op, target).  A row is
# (scenario, server, connections).  Ratios are on the io_uring backend.
TARGETS = [
    ("PUT blobd/nginx", ("put", "blobd-io_uring", 16),
     ("put", "nginx", 16), "req_per_s", ">=", 1.25),
    ("PUT blobd/mhd_ref", ("put", "blobd-io_uring", 16),
     ("put", "mhd_ref", 16), "req_per_s", ">=", 0.85),
    ("PUT fsync c16 / plain PUT", ("put_fsync", "blobd-io_uring", 16),
     ("put", "blobd-io_uring", 16), "req_per_s", ">=", 0.85),
    ("PUT fsync c16 p99 (ms)", ("put_fsync", "blobd-io_uring", 16),
     None, "p99_ms", "<=", 5.0),
    ("GET cached blobd/nginx", ("get_cached", "blobd-io_uring", 16),
     ("get_cached", "nginx", 16), "req_per_s", ">=", 1.2),
    ("GET cached blobd/mhd_ref", ("get_cached", "blobd-io_uring", 16),
     ("get_cached", "mhd_ref", 16), "req_per_s", ">=", 0.9),
    ("Range cached blobd/nginx", ("range_cached", "blobd-io_uring", 16),
     ("range_cached", "nginx", 16), "req_per_s", ">=", 1.2),
    ("GET cold blobd/fio", ("get_cold", "blobd-io_uring", 16),
     ("get_cold", "fio", 16), "req_per_s", ">=", 0.9),
    ("Range cold blobd/fio", ("range_cold", "blobd-io_uring", 16),
     ("range_cold", "fio", 16), "req_per_s", ">=", 0.8),
    ("flush blobd/raw p50", ("flush", "blobd-io_uring", 1),
     ("flush", "flush_raw", 1), "p50_ms", "<=", 1.5),
    ("flush blobd/raw p99", ("flush", "blobd-io_uring", 1),
     ("flush", "flush_raw", 1), "p99_ms", None, None),
]


class BenchError(Exception):
    pass


class ToolMissing(Exception):
    pass


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def fmt_secs(s):
    s = int(max(0, s))
    if s >= 3600:
        return "%dh%02dm" % (s // 3600, s % 3600 // 60)
    if s >= 60:
        return "%dm%02ds" % (s // 60, s % 60)
    return "%ds" % s


# ---- child processes: every one is killed on the way out ----

class Children:
    def __init__(self):
        self.procs = []
        self.lock = threading.Lock()

    def spawn(self, argv, stdout, stderr, env=None, cwd=None):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                             stderr=stderr, env=env, cwd=cwd,
                             start_new_session=True)
        with self.lock:
            self.procs.append(p)
        return p

    def forget(self, p):
        with self.lock:
            if p in self.procs:
                self.procs.remove(p)

    def stop(self, p, timeout=20.0):
        """SIGTERM to the child's process group (nginx's master takes its
        workers down with it), SIGKILL to the group after timeout.  The
        group is signalled only while its leader is not reaped, so its id
        cannot belong to anyone else."""
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self.forget(p)
        return p.returncode

    def run(self, argv, timeout, env=None, cwd=None):
        """Run to the end; (returncode, stdout, stderr)."""
        p = self.spawn(argv, subprocess.PIPE, subprocess.PIPE, env=env,
                       cwd=cwd)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p, timeout=2)
            out, err = p.communicate()
            raise BenchError("%s ran past %d s" % (argv[0], timeout))
        finally:
            if p.poll() is None:
                self.stop(p, timeout=2)
            self.forget(p)
        return (p.returncode, out.decode(errors="replace"),
                err.decode(errors="replace"))

    def kill_all(self):
        with self.lock:
            procs = list(self.procs)
        for p in reversed(procs):
            self.stop(p, timeout=5)


CHILDREN = Children()


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


# ---- small helpers ----

def free_port(used):
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in used and port != 80:
            used.add(port)
            return port
    raise BenchError("no free port on 127.0.0.1")


def http_req(port, method, path, body=None, headers=None, timeout=60.0,
             conn=None):
    """One request; (status, body bytes).  A fresh connection unless one is
    given."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data
    finally:
        if own:
            conn.close()


def dig(d, dotted):
    for k in dotted.split("."):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def drop_caches():
    """sync, then drop the page cache; False when it could not be done."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def pct_key(v):
    return "%.6f" % v


def median_min_max(vals):
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals),
            "max": max(vals)}


# ---- servers ----

class Server:
    kind = "?"
    http = True

    def __init__(self, ctx, name, sdir):
        self.ctx = ctx
        self.name = name
        self.dir = os.path.join(sdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, "server.log")
        self.failed = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, path, ok, timeout=60.0):
        t_end = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with %s at startup: %s" % (
                    self.name, self.proc.returncode, self.log_tail()))
            try:
                status, _ = http_req(self.port, "GET", path, timeout=2)
                if ok(status):
                    return
                last = "status %d" % status
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise BenchError("%s not ready after %d s (%s): %s" % (
            self.name, timeout, last, self.log_tail()))

    def log_tail(self, n=5):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.read().strip().splitlines()
            return " | ".join(lines[-n:]) or "(empty log)"
        except OSError:
            return "(no log)"

    def spawn(self, out_path):
        """Start self.argv with stdout and stderr appended to out_path."""
        self.logf = open(out_path, "ab")
        self.proc = CHILDREN.spawn(self.argv, self.logf, self.logf)

    def stop(self):
        rc = None
        if self.proc is not None:
            rc = CHILDREN.stop(self.proc)
            self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
        return rc

    def save_log(self, scenario):
        if os.path.exists(self.log_path):
            dst = os.path.join(self.ctx.out, "logs",
                               "%s-%s.log" % (scenario, self.name))
            shutil.copyfile(self.log_path, dst)


class Blobd(Server):
    kind = "blobd"

    def __init__(self, ctx, name, sdir, backend, opts):
        super().__init__(ctx, name, sdir)
        self.backend = backend
        self.opts = list(opts)
        self.data_dir = os.path.join(self.dir, "data")

    def start(self):
        self.port = free_port(self.ctx.ports)
        self.argv = ["taskset", "-c", SERVER_CPU, self.ctx.blobd,
                     "--listen=127.0.0.1:%d" % self.port,
                     "--data-dir=%s" % self.data_dir,
                     "--backend=%s" % self.backend] + self.opts
        self.spawn(self.log_path)
        self.wait_http("/readyz", lambda s: s == 200)
        st = self.stats()
        if dig(st, "io.backend") != self.backend:
            raise BenchError("%s runs the %s backend: %s" % (
                self.name, dig(st, "io.backend"), dig(st, "io.backend_note")))
        return st

    def stats(self):
        status, body = http_req(self.port, "GET", "/admin/stats", timeout=30)
        if status != 200:
            raise BenchError("%s /admin/stats answered %d" % (self.name,
                                                               status))
        return json.loads(body)

    def settled_stats(self, timeout=5.0):
        """Stats once wrk's connections are closed (only ours is open), so
        every answered request is counted."""
        t_end = time.monotonic() + timeout
        st = self.stats()
        while (dig(st, "http.open_connections") or 1) > 1 and \
                time.monotonic() < t_end:
            time.sleep(0.05)
            st = self.stats()
        return st

    def flush(self):
        status, body = http_req(self.port, "POST", "/flush", timeout=120)
        if status != 200:
            raise BenchError("%s POST /flush answered %d" % (self.name,
                                                             status))
        return json.loads(body)


class Nginx(Server):
    kind = "nginx"

    def __init__(self, ctx, name, sdir, workers):
        super().__init__(ctx, name, sdir)
        self.workers = workers
        self.root = os.path.join(self.dir, "root")
        self.log_path = os.path.join(self.dir, "error.log")

    def start(self):
        self.port = free_port(self.ctx.ports)
        for d in ("root/blobs", "tmp"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        with open(NGINX_TEMPLATE) as f:
            conf = f.read()
        # A master running as root would hand the workers to "nobody",
        # who cannot enter the 0700 run dir.
        subst = {
            "@USER@": "user root;" if os.geteuid() == 0 else "",
            "@WORKERS@": str(self.workers),
            "@RUNDIR@": self.dir,
            "@ROOT@": self.root,
            "@PORT@": str(self.port),
            "@ACCESS_LOG@": "off",
        }
        for k, v in subst.items():
            conf = conf.replace(k, v)
        if "@" in re.sub(r"#.*", "", conf):
            raise BenchError("nginx template: unfilled placeholder")
        conf_path = os.path.join(self.dir, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        self.argv = ["taskset", "-c", SERVER_CPU, self.ctx.nginx, "-p",
                     self.dir + "/", "-c", conf_path, "-g", "daemon off;"]
        self.spawn(os.path.join(self.dir, "stderr.log"))
        self.wait_http("/", lambda s: s > 0)
        return None


def blobd_default(blobd, option):
    """The default of one of blobd's options, from its --help."""
    out = subprocess.run([blobd, "--help"], capture_output=True, text=True,
                         timeout=10).stdout
    m = re.search(r"--%s=VALUE.*?\(default ([^;)]*)" % re.escape(option),
                  out, re.S)
    if not m:
        raise ToolMissing("blobd --help does not show --%s's default" %
                          option)
    return m.group(1)


class MhdRef(Server):
    kind = "mhd_ref"

    def __init__(self, ctx, name, sdir, threads):
        super().__init__(ctx, name, sdir)
        self.threads = threads

    def start(self):
        self.port = free_port(self.ctx.ports)
        # blobd's default buffer per connection, which sets the size of
        # the library's body reads: the same for both.
        self.argv = ["taskset", "-c", SERVER_CPU, self.ctx.mhd_ref,
                     str(self.port), str(self.threads),
                     str(self.ctx.conn_memory_kib)]
        self.spawn(self.log_path)
        self.wait_http("/", lambda s: s == 404)
        return None


class Peer:
    """A row that is not a server: fio or flush_raw."""
    http = False

    def __init__(self, ctx, name, sdir):
        self.ctx = ctx
        self.name = name
        self.kind = name
        self.dir = os.path.join(sdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.failed = None

    def start(self):
        return None

    def stop(self):
        return None

    def alive(self):
        return True

    def save_log(self, scenario):
        pass


# ---- the harness ----

class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.out = os.path.abspath(args.out)
        self.blobd = os.path.join(self.build, "server", "blobd")
        self.mhd_ref = os.path.join(self.build, "tests", "mhd_ref")
        self.flush_raw = os.path.join(self.build, "tests", "flush_raw")
        self.nginx = None
        self.ports = set()
        self.runs = []
        self.failures = []  # server failures, invalid runs, failed checks
        self.notes = []
        self.threads = None
        self.threads_source = None
        self.cache_dropped_all = True
        self.run_no = 0
        self.planned = 0
        self.t_start = time.monotonic()
        self.run_walls = []

    # -- setup --

    def check_tools(self, scenarios):
        need = {"taskset": "util-linux", "wrk": "wrk"}
        if any("nginx" in SPECS[s]["servers"] for s in scenarios):
            need["nginx"] = "nginx-light"
        if any("fio" in SPECS[s]["servers"] for s in scenarios):
            need["fio"] = "fio"
        for tool, pkg in need.items():
            path = shutil.which(tool) or (
                os.path.exists("/usr/sbin/" + tool) and "/usr/sbin/" + tool)
            if not path:
                raise ToolMissing("%s is not installed (Debian package %s: "
                                  "apt-get install %s)" % (tool, pkg, pkg))
            if tool == "nginx":
                self.nginx = path
        for path, what in ((self.blobd, "blobd"), (self.mhd_ref, "mhd_ref"),
                           (self.flush_raw, "flush_raw")):
            if not os.access(path, os.X_OK):
                raise ToolMissing("%s not found at %s: build it with "
                                  "cmake --build %s" % (what, path,
                                                        self.args.build))
        self.conn_memory_kib = blobd_default(self.blobd, "connection-memory")
        cpus = os.sched_getaffinity(0)
        if int(SERVER_CPU) not in cpus or int(CLIENT_CPU) not in cpus:
            raise ToolMissing("CPUs %s and %s are needed (have %s)" % (
                SERVER_CPU, CLIENT_CPU, sorted(cpus)))

    def versions(self):
        def cmd(argv):
            try:
                r = subprocess.run(argv, capture_output=True, timeout=20)
                return (r.stdout + r.stderr).decode(errors="replace").strip()
            except (OSError, subprocess.TimeoutExpired) as e:
                return "unavailable (%s)" % e
        v = {
            "nginx": cmd([self.nginx or "nginx", "-v"]).replace(
                "nginx version: ", ""),
            "wrk": cmd(["wrk", "-v"]).splitlines()[0].split(" Copyright")[0]
            if shutil.which("wrk") else None,
            "fio": cmd(["fio", "--version"]) if shutil.which("fio") else None,
            "libmicrohttpd": cmd([self.mhd_ref, "--version"]),
            "blobd": cmd([self.blobd, "--version"]),
            "blobd_commit": cmd(["git", "-C", REPO, "rev-parse", "HEAD"]),
        }
        dirty = cmd(["git", "--no-optional-locks", "-C", REPO, "status",
                     "--porcelain", "--untracked-files=no"])
        v["blobd_tree_modified"] = bool(dirty.strip())
        return v

    def machine(self):
        model = None
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        mem = None
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemTotal:"):
                        mem = int(line.split()[1]) * 1024
        except OSError:
            pass
        return {"kernel": os.uname().release, "cpu_model": model,
                "nproc": os.cpu_count(), "mem_bytes": mem}

    def make_inputs(self):
        a = self.args
        hot = [secrets.token_hex(16) for _ in range(a.guids)]
        extra = max(0, a.cold_guids - a.guids)
        cold = hot[:a.cold_guids] + [secrets.token_hex(16)
                                    for _ in range(extra)]
        self.guids = {"hot": hot, "cold": cold}
        self.guid_files = {}
        for k, lst in self.guids.items():
            path = os.path.join(self.out, "guids-%d.txt" % len(lst))
            with open(path, "w") as f:
                f.write("".join(g + "\n" for g in lst))
            self.guid_files[k] = path
        self.body_path = os.path.join(self.out, "body-512k.bin")
        self.body = secrets.token_bytes(BLOB)
        with open(self.body_path, "wb") as f:
            f.write(self.body)

    # -- progress --

    def progress(self, msg):
        log("[%s] %s" % (fmt_secs(time.monotonic() - self.t_start), msg))

    def eta(self):
        left = self.planned - self.run_no
        if self.run_walls:
            per = statistics.mean(self.run_walls)
        else:
            per = self.args.duration + 4
        return fmt_secs(left * per)

    # -- client-side work --

    def parallel(self, items, fn, nthreads):
        """fn(conn_holder, item) over items on nthreads threads; the first
        exception is raised."""
        it = iter(items)
        lock = threading.Lock()
        errors = []

        def worker():
            holder = {}
            try:
                while True:
                    with lock:
                        if errors:
                            return
                        try:
                            item = next(it)
                        except StopIteration:
                            return
                    fn(holder, item)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(e)
            finally:
                if holder.get("c"):
                    holder["c"].close()

        ts = [threading.Thread(target=worker, daemon=True)
              for _ in range(nthreads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]

    def keepalive(self, holder, port):
        c = holder.get("c")
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            holder["c"] = c
        return c

    def request_retry(self, holder, port, method, path, body=None):
        hdrs = {"Content-Type": "application/octet-stream"} if body else {}
        for attempt in (1, 2):
            c = self.keepalive(holder, port)
            try:
                c.request(method, path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    holder["c"] = None
                return r.status, data
            except (http.client.HTTPException, OSError):
                c.close()
                holder["c"] = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def preload(self, srv, guids):
        t0 = time.monotonic()

        def put(holder, g):
            st, data = self.request_retry(holder, srv.port, "PUT",
                                          "/blobs/" + g, self.body)
            if st not in (200, 201, 204):
                raise BenchError("%s: preload PUT %s answered %d %s" % (
                    srv.name, g, st, data[:200]))

        self.parallel(guids, put, 4)
        if srv.kind == "blobd":
            srv.flush()
        dt = time.monotonic() - t0
        self.progress("  preloaded %s: %d blobs in %.1f s (%.0f MB/s)" % (
            srv.name, len(guids), dt, len(guids) * BLOB / 1e6 / max(dt,
                                                                     1e-9)))

    def warm(self, srv, guids):
        def get(holder, g):
            st, data = self.request_retry(holder, srv.port, "GET",
                                          "/blobs/" + g)
            if st != 200 or len(data) != BLOB:
                raise BenchError("%s: warm-up GET %s answered %d with %d "
                                 "bytes" % (srv.name, g, st, len(data)))

        self.parallel(guids, get, 4)

    # -- one measured run --

    def run_wrk(self, scen, srv, conns, pair, tag):
        spec = SPECS[scen]
        env = dict(os.environ)
        env.update({
            "BENCH_GUIDS": self.guid_files[spec["guids"]],
            "BENCH_BODY": self.body_path,
            "BENCH_QUERY": spec.get("query", ""),
            "BENCH_SEED": str(1000 + pair),
        })
        argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % conns,
                "-d%ds" % self.args.duration, "--timeout", "10s",
                "--latency", "-s", os.path.join(WRK_DIR, spec["script"]),
                "http://127.0.0.1:%d" % srv.port]
        rc, out, err = CHILDREN.run(argv, timeout=self.args.duration + 300,
                                    env=env)
        with open(os.path.join(self.out, "runs", tag + ".txt"), "w") as f:
            f.write("$ " + " ".join(argv) + "\n" + out + err)
        m = re.search(r"^BENCH_JSON (\{.*\})\s*$", out, re.M)
        if rc != 0 or not m:
            raise BenchError("wrk failed (exit %d): %s" % (
                rc, (err or out).strip()[-300:]))
        j = json.loads(m.group(1))
        dur = j["duration_us"] / 1e6
        rps = j["requests"] / dur if dur > 0 else 0.0
        lat = j["latency_us"]
        res = {
            "tool": "wrk", "connections": conns,
            "requests": j["requests"], "duration_s": dur,
            "bytes_received": j["bytes"], "req_per_s": rps,
            "mb_per_s": rps * spec["payload"] / 1e6,
            "latency_us": lat,
            "p50_ms": lat["p50"] / 1e3, "p99_ms": lat["p99"] / 1e3,
            "errors": j["errors"],
        }
        bad = ["%s errors: %d" % (k, v) for k, v in j["errors"].items() if v]
        if j["requests"] == 0:
            bad.append("no requests completed")
        return res, bad

    def run_fio(self, scen, src, pair, tag):
        spec = SPECS[scen]
        path = os.path.join(src.data_dir, "blobs.dat")
        region = self.fio_region
        argv = ["taskset", "-c", SERVER_CPU, "fio", "--name=randread",
                "--filename=" + path, "--readonly", "--direct=1",
                "--ioengine=io_uring", "--rw=randread",
                "--bs=%d" % spec["fio_bs"], "--iodepth=16", "--offset=0",
                "--size=%d" % region, "--time_based",
                "--runtime=%d" % self.args.duration, "--norandommap",
                "--randrepeat=0", "--lat_percentiles=1",
                "--percentile_list=50:90:99:99.9", "--output-format=json"]
        rc, out, err = CHILDREN.run(argv, timeout=self.args.duration + 120)
        with open(os.path.join(self.out, "runs", tag + ".txt"), "w") as f:
            f.write("$ " + " ".join(argv) + "\n" + out + err)
        if rc != 0:
            raise BenchError("fio failed (exit %d): %s" % (rc,
                                                           err.strip()[-300:]))
        j = json.loads(out[out.index("{"):])
        job = j["jobs"][0]
        rd = job["read"]
        lat = rd.get("lat_ns", {})
        pc = lat.get("percentile") or rd.get("clat_ns", {}).get(
            "percentile", {})

        def p(v):
            x = pc.get(pct_key(v))
            return x / 1e3 if x is not None else None

        latency = {"p50": p(50), "p90": p(90), "p99": p(99),
                   "p99.9": p(99.9), "max": lat.get("max", 0) / 1e3,
                   "mean": lat.get("mean", 0) / 1e3}
        res = {
            "tool": "fio", "connections": 16, "iodepth": 16,
            "bs": spec["fio_bs"], "region_bytes": region,
            "file": path, "requests": rd["total_ios"],
            "duration_s": rd["runtime"] / 1e3,
            "req_per_s": rd["iops"], "mb_per_s": rd["bw_bytes"] / 1e6,
            "latency_us": latency,
            "p50_ms": latency["p50"] / 1e3 if latency["p50"] else None,
            "p99_ms": latency["p99"] / 1e3 if latency["p99"] else None,
            "errors": {"fio": job.get("error", 0)},
        }
        bad = ["fio error %d" % job["error"]] if job.get("error") else []
        return res, bad

    FLUSH_BLOBS = 16

    def flush_round(self, srv, holder, guids):
        for g in guids:
            st, data = self.request_retry(holder, srv.port, "PUT",
                                          "/blobs/" + g, self.body)
            if st not in (201, 204):
                raise BenchError("%s: PUT answered %d %s" % (srv.name, st,
                                                             data[:200]))
        c = self.keepalive(holder, srv.port)
        t0 = time.perf_counter()
        c.request("POST", "/flush")
        r = c.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        return r.status, data, dt

    def run_flush_blobd(self, srv, rounds):
        guids = self.guids["hot"][:self.FLUSH_BLOBS]
        holder = {}
        times, bad = [], []
        # A compaction that starts during a round makes the changes it may
        # have scanned durable first (format.md, the barrier): the flush
        # then finds fewer records pending.  Such a round is valid when a
        # compaction did complete meanwhile and nothing is left pending.
        compactions = srv.stats()["compaction"]["count"]
        by_compaction = 0
        try:
            for _ in range(rounds):
                st, data, dt = self.flush_round(srv, holder, guids)
                doc = {}
                try:
                    doc = json.loads(data)
                except ValueError:
                    pass
                if st != 200:
                    bad.append("POST /flush answered %d" % st)
                elif doc.get("records") != len(guids) or \
                        doc.get("data_synced") != 1:
                    j = srv.stats()
                    if (j["compaction"]["count"] > compactions and
                            j["manifest"]["pending_deltas"] == 0 and
                            j["flush"]["unflushed_blobs"] == 0 and
                            not j["flush"]["needs_flush"]):
                        compactions = j["compaction"]["count"]
                        by_compaction += 1
                    else:
                        bad.append("flush answered records=%s data_synced="
                                   "%s (want %d and 1) with no compaction "
                                   "that made the rest durable" % (
                                       doc.get("records"),
                                       doc.get("data_synced"), len(guids)))
                times.append(dt * 1e6)
        finally:
            if holder.get("c"):
                holder["c"].close()
        s = sorted(times)

        def p(q):
            k = max(1, min(len(s), int(q / 100.0 * len(s) + 0.999999)))
            return s[k - 1]

        res = {"tool": "client", "rounds": rounds, "samples_us": times,
               "rounds_shared_with_compaction": by_compaction,
               "blobs_per_flush": len(guids), "p50_us": p(50),
               "p99_us": p(99), "mean_us": statistics.mean(s),
               "min_us": s[0], "max_us": s[-1],
               "p50_ms": p(50) / 1e3, "p99_ms": p(99) / 1e3}
        # One line per problem kind is enough.
        return res, sorted(set(bad))

    def run_flush_raw(self, peer, rounds, tag):
        d = os.path.join(peer.dir, "files")
        argv = ["taskset", "-c", SERVER_CPU, self.flush_raw, d, str(rounds),
                str(self.FLUSH_BLOBS)]
        rc, out, err = CHILDREN.run(argv, timeout=600 + rounds)
        with open(os.path.join(self.out, "runs", tag + ".txt"), "w") as f:
            f.write("$ " + " ".join(argv) + "\n" + out + err)
        if rc != 0:
            raise BenchError("flush_raw failed (exit %d): %s" % (
                rc, err.strip()[-300:]))
        j = json.loads(out.strip().splitlines()[-1])
        j["tool"] = "flush_raw"
        j["p50_ms"] = j["p50_us"] / 1e3
        j["p99_ms"] = j["p99_us"] / 1e3
        return j, []

    def blobd_checks(self, scen, srv, before, after, res):
        """Stats deltas of a blobd run and the checks on them; a list of
        failed checks."""
        def delta(key):
            a, b = dig(after, key), dig(before, key)
            if a is None or b is None:
                return None
            return a - b

        d = {k: delta(k) for k in (
            "io.data_writes", "io.writes_superseded", "io.data_syncs",
            "io.log_syncs", "cache.hits", "cache.misses",
            "http.requests.PUT.2xx", "http.requests.GET.2xx")}
        res["stats_delta"] = d
        checks = {}
        bad = []
        puts = d["http.requests.PUT.2xx"] or 0
        if puts:
            dw = d["io.data_writes"]
            if dw is None:
                checks["data_writes"] = "n/a: io.data_writes absent"
            else:
                sup = d["io.writes_superseded"] or 0
                ok = dw + sup >= puts
                checks["data_writes"] = {
                    "ok": ok, "data_writes": dw, "writes_superseded": sup,
                    "put_2xx": puts}
                if not ok:
                    bad.append("data writes %d + superseded %d < 2xx PUTs "
                               "%d" % (dw, sup, puts))
        if scen == "put_fsync":
            for k in ("io.data_syncs", "io.log_syncs"):
                v = d[k]
                res[k.split(".")[1] + "_per_ack"] = (
                    v / puts if v is not None and puts else None)
        if scen in ("get_cold", "range_cold"):
            od = dig(after, "io.o_direct")
            hits = d["cache.hits"]
            ok = od is True and hits == 0
            checks["cold"] = {"ok": ok, "o_direct": od, "cache_hits": hits}
            if not ok:
                bad.append("cold run: o_direct=%s cache hits +%s" % (od,
                                                                     hits))
        if scen in ("get_cached", "range_cached", "mix"):
            checks["cache"] = {"hits": d["cache.hits"],
                               "misses": d["cache.misses"]}
        res["checks"] = checks
        return bad

    def measure(self, scen, srv, conns, pair, npairs, src=None):
        spec = SPECS[scen]
        self.run_no += 1
        tag = "%03d-%s-%s-c%d-p%d" % (self.run_no, scen, srv.name, conns,
                                       pair)
        t0 = time.monotonic()
        rec = {"scenario": scen, "server": srv.name, "connections": conns,
               "pair": pair, "tag": tag}
        bad = []
        try:
            if srv.http and not srv.alive():
                raise BenchError("%s is not running" % srv.name)
            dropped = drop_caches()
            if not dropped and self.cache_dropped_all:
                log("warning: cannot drop the page cache (not root?); "
                    "runs are recorded with cache_dropped false")
            self.cache_dropped_all &= dropped
            rec["cache_dropped"] = dropped
            if spec["warm"]:
                self.warm(srv, self.guids[spec["guids"]])
            before = srv.stats() if srv.kind == "blobd" else None
            if scen == "flush":
                if srv.kind == "blobd":
                    res, b = self.run_flush_blobd(srv, self.flush_rounds)
                else:
                    res, b = self.run_flush_raw(srv, self.flush_rounds, tag)
            elif srv.kind == "fio":
                res, b = self.run_fio(scen, src, pair, tag)
            else:
                res, b = self.run_wrk(scen, srv, conns, pair, tag)
            bad += b
            if srv.kind == "blobd":
                after = srv.settled_stats()
                bad += self.blobd_checks(scen, srv, before, after, res)
            if srv.http and not srv.alive():
                bad.append("%s exited during the run" % srv.name)
            rec.update(res)
        except BenchError as e:
            bad.append(str(e))
        rec["valid"] = not bad
        rec["problems"] = bad
        self.runs.append(rec)
        wall = time.monotonic() - t0
        if scen != "flush":
            self.run_walls.append(wall)
        if bad:
            self.failures.append("%s %s c%d pair %d: %s" % (
                scen, srv.name, conns, pair, "; ".join(bad)))
        if scen == "flush":
            fig = "p50 %.2f ms p99 %.2f ms" % (rec.get("p50_ms") or 0,
                                               rec.get("p99_ms") or 0)
        else:
            fig = "%.1f req/s, %.1f MB/s, p99 %.2f ms" % (
                rec.get("req_per_s") or 0, rec.get("mb_per_s") or 0,
                rec.get("p99_ms") or 0)
        extra = ""
        if rec.get("data_syncs_per_ack") is not None:
            extra = ", syncs/ack data %.3f log %.3f" % (
                rec["data_syncs_per_ack"], rec.get("log_syncs_per_ack") or 0)
        self.progress("run %d/%d %s %s c%d pair %d/%d: %s%s%s  (ETA %s)" % (
            self.run_no, self.planned, scen, srv.name, conns, pair, npairs,
            fig, extra, "" if not bad else "  INVALID: " + "; ".join(bad),
            self.eta()))

    # -- a scenario --

    def make_server(self, scen, name, sdir):
        spec = SPECS[scen]
        if name.startswith("blobd-"):
            return Blobd(self, name, sdir, name.split("-", 1)[1],
                         spec["opts"])
        if name == "nginx":
            return Nginx(self, name, sdir, self.threads or 1)
        if name == "mhd_ref":
            return MhdRef(self, name, sdir, self.threads or 1)
        return Peer(self, name, sdir)

    def scenario(self, scen):
        spec = SPECS[scen]
        a = self.args
        sdir = os.path.join(self.rundir, scen)
        os.makedirs(sdir)
        self.progress("scenario %s: starting %s" % (scen,
                                                    ", ".join(
                                                        spec["servers"])))
        servers = []
        try:
            # blobd first: its HTTP thread count sizes the peers.
            order = sorted(spec["servers"],
                           key=lambda n: 0 if n.startswith("blobd") else 1)
            for name in order:
                srv = self.make_server(scen, name, sdir)
                try:
                    st = srv.start()
                    if srv.kind == "blobd":
                        self.note_threads(st)
                except BenchError as e:
                    srv.failed = str(e)
                    self.failures.append("%s: %s failed to start: %s" % (
                        scen, name, e))
                    self.progress("  %s FAILED to start: %s" % (name, e))
                    srv.stop()
                servers.append(srv)
            byname = {s.name: s for s in servers}
            guids = self.guids[spec["guids"]]
            if scen != "flush":
                for srv in servers:
                    if srv.http and not srv.failed:
                        try:
                            self.preload(srv, guids)
                        except (BenchError, OSError,
                                http.client.HTTPException) as e:
                            srv.failed = "preload: %s" % e
                            self.failures.append("%s: %s preload failed: %s"
                                                 % (scen, srv.name, e))
                            self.progress("  %s preload FAILED: %s" % (
                                srv.name, e))
            else:
                for srv in servers:
                    if srv.kind == "blobd" and not srv.failed:
                        # The 16 GUIDs, then one round: later rounds
                        # rewrite into the slots the previous flush freed.
                        try:
                            g16 = guids[:self.FLUSH_BLOBS]
                            self.preload(srv, g16)
                            _, wbad = self.run_flush_blobd(srv, 2)
                            if wbad:
                                raise BenchError("; ".join(wbad))
                        except (BenchError, OSError,
                                http.client.HTTPException) as e:
                            srv.failed = "warm-up: %s" % e
                            self.failures.append("%s: %s warm-up failed: %s"
                                                 % (scen, srv.name, e))
            src = byname.get("blobd-io_uring")
            if "fio" in byname:
                if src is None or src.failed:
                    byname["fio"].failed = "blobd-io_uring did not run"
                    self.failures.append("%s: fio skipped: blobd-io_uring "
                                         "did not run" % scen)
                else:
                    nslot = dig(src.stats(), "manifest.next_slot") or 0
                    self.fio_region = max(nslot, 1) * BLOB
                    self.progress("  fio reads %s over %d slots (%d MiB)" %
                                  (os.path.join(src.data_dir, "blobs.dat"),
                                   nslot, self.fio_region >> 20))
            rows = [(s, c) for c in spec["conns"] for s in servers]
            for pair in range(1, a.pairs + 1):
                seq = rows if pair % 2 == 1 else list(reversed(rows))
                for srv, conns in seq:
                    if srv.failed:
                        self.run_no += 1
                        continue
                    self.measure(scen, srv, conns, pair, a.pairs, src=src)
        finally:
            for srv in servers:
                rc = srv.stop()
                if srv.kind == "blobd" and rc not in (None, 0):
                    self.failures.append("%s: %s exited %s at shutdown" % (
                        scen, srv.name, rc))
                srv.save_log(scen)
            if not a.keep:
                shutil.rmtree(sdir, ignore_errors=True)

    def note_threads(self, st):
        t = dig(st, "http.threads")
        if self.threads is not None:
            return
        if isinstance(t, int) and t > 0:
            self.threads, self.threads_source = t, "/admin/stats http.threads"
        else:
            self.threads, self.threads_source = 1, "fallback"
            msg = ("blobd's /admin/stats has no http.threads: nginx workers "
                   "and mhd_ref threads fall back to 1")
            self.notes.append(msg)
            log("note: " + msg)
        self.progress("  blobd HTTP threads: %d (%s); nginx worker_processes "
                      "and mhd_ref threads follow" % (self.threads,
                                                      self.threads_source))

    # -- results --

    def rows(self):
        out = []
        seen = []
        for r in self.runs:
            key = (r["scenario"], r["server"], r["connections"])
            if key not in seen:
                seen.append(key)
        for key in seen:
            rs = [r for r in self.runs
                  if (r["scenario"], r["server"], r["connections"]) == key]
            ok = [r for r in rs if r["valid"]]
            row = {"scenario": key[0], "server": key[1],
                   "connections": key[2], "runs": len(rs),
                   "valid_runs": len(ok)}
            for m in ("req_per_s", "mb_per_s", "p50_ms", "p99_ms"):
                vals = [r[m] for r in ok if r.get(m) is not None]
                row[m] = median_min_max(vals)
            if key[0] == "put_fsync":
                for m in ("data_syncs_per_ack", "log_syncs_per_ack"):
                    vals = [r[m] for r in ok if r.get(m) is not None]
                    row[m] = median_min_max(vals)
            out.append(row)
        return out

    def targets(self, rows):
        byk = {(r["scenario"], r["server"], r["connections"]): r
               for r in rows}
        res = []
        for label, num, den, metric, op, target in TARGETS:
            t = {"label": label, "metric": metric, "op": op,
                 "target": target, "value": None, "status": "n/a"}
            rn = byk.get(num)
            rd = byk.get(den) if den else None
            if rn is None or (den and rd is None):
                t["why"] = "not run"
                res.append(t)
                continue
            if rn["valid_runs"] < rn["runs"] or (
                    rd and rd["valid_runs"] < rd["runs"]):
                t["why"] = "invalid runs"
            if den is None:
                v = rn[metric]["median"] if rn[metric] else None
            elif not rn[metric] or not rd[metric]:
                v = None
            elif num[0] == den[0]:
                # Same scenario: the median of the per-pair ratios.
                pn = {r["pair"]: r[metric] for r in self.runs
                      if (r["scenario"], r["server"], r["connections"])
                      == num and r["valid"] and r.get(metric)}
                pd = {r["pair"]: r[metric] for r in self.runs
                      if (r["scenario"], r["server"], r["connections"])
                      == den and r["valid"] and r.get(metric)}
                ratios = [pn[p] / pd[p] for p in pn if p in pd and pd[p]]
                v = statistics.median(ratios) if ratios else None
                t["pair_ratios"] = ratios
            else:
                v = rn[metric]["median"] / rd[metric]["median"] \
                    if rd[metric]["median"] else None
            t["value"] = v
            if v is not None and op and "why" not in t:
                met = v >= target if op == ">=" else v <= target
                t["status"] = "met" if met else "missed"
            elif v is not None and not op:
                t["status"] = "info"
            res.append(t)
        return res

    def print_table(self, rows, targets):
        def mmm(x, f):
            if not x:
                return "-"
            return (f + " [" + f + "-" + f + "]") % (x["median"], x["min"],
                                                      x["max"])

        def one(x, f):
            return f % x["median"] if x else "-"

        print()
        hdr = "%-13s %-15s %5s  %-30s %8s %9s %9s  %s" % (
            "scenario", "server", "conns", "req/s median [min-max]", "MB/s",
            "p50 ms", "p99 ms", "runs")
        print(hdr)
        print("-" * len(hdr))
        for r in rows:
            if r["scenario"] == "flush":
                rps, mbs = "-", "-"
            else:
                rps, mbs = mmm(r["req_per_s"], "%.1f"), one(r["mb_per_s"],
                                                            "%.1f")
            line = "%-13s %-15s %5d  %-30s %8s %9s %9s  %d/%d" % (
                r["scenario"], r["server"], r["connections"], rps, mbs,
                one(r["p50_ms"], "%.3f"), one(r["p99_ms"], "%.3f"),
                r["valid_runs"], r["runs"])
            if r.get("data_syncs_per_ack"):
                line += "  syncs/ack data %.3f log %.3f" % (
                    r["data_syncs_per_ack"]["median"],
                    (r.get("log_syncs_per_ack") or {}).get("median", 0))
            print(line)
        print()
        print("targets (io_uring backend; pread is reported without "
              "targets):")
        for t in targets:
            v = "-" if t["value"] is None else "%.3f" % t["value"]
            goal = "" if not t["op"] else "%s %g" % (t["op"], t["target"])
            extra = ""
            if t.get("pair_ratios"):
                pr = t["pair_ratios"]
                extra = "  pairs [%.3f-%.3f]" % (min(pr), max(pr))
            if t.get("why"):
                extra += "  (%s)" % t["why"]
            print("  %-28s %8s  %-8s %-6s%s" % (t["label"], v, goal,
                                                t["status"], extra))
        sys.stdout.flush()

    # -- main --

    def main(self):
        a = self.args
        scenarios = a.scenarios
        self.check_tools(scenarios)
        os.makedirs(os.path.join(self.out, "runs"), exist_ok=True)
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        self.flush_rounds = a.flush_rounds
        # This script (and its client threads) runs on the client CPU.
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
        base = os.environ.get("TMPDIR") or "/tmp"
        self.rundir = tempfile.mkdtemp(prefix="http-bench-", dir=base)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.make_inputs()
        for s in scenarios:
            n = len(SPECS[s]["servers"]) * len(SPECS[s]["conns"])
            self.planned += n * a.pairs
        self.progress("out %s, run dir %s; %d scenarios, %d runs of %d s "
                      "(ETA %s)" % (self.out, self.rundir, len(scenarios),
                                    self.planned, a.duration, self.eta()))
        try:
            for s in scenarios:
                self.scenario(s)
        finally:
            CHILDREN.kill_all()
            if not a.keep:
                shutil.rmtree(self.rundir, ignore_errors=True)
        rows = self.rows()
        targets = self.targets(rows)
        self.print_table(rows, targets)
        doc = {
            "tool": "tests/bench/http_bench.py",
            "started": started,
            "wall_seconds": time.monotonic() - self.t_start,
            "args": {"duration_s": a.duration, "pairs": a.pairs,
                     "scenarios": scenarios, "smoke": a.smoke,
                     "guids": a.guids, "cold_guids": a.cold_guids,
                     "flush_rounds": a.flush_rounds},
            "machine": self.machine(),
            "versions": self.versions(),
            "http_threads": {"value": self.threads,
                             "source": self.threads_source},
            "cache_dropped": self.cache_dropped_all,
            "blobd_options": {s: SPECS[s]["opts"] for s in scenarios},
            "guid_files": self.guid_files,
            "notes": self.notes,
            "summary": rows,
            "targets": targets,
            "failures": self.failures,
            "runs": self.runs,
        }
        path = os.path.join(self.out, "results.json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        print()
        print("results: %s" % path)
        if not self.cache_dropped_all:
            print("warning: the page cache could not be dropped before "
                  "every run")
        for n in self.notes:
            print("note: " + n)
        if self.failures:
            print("FAILURES (%d):" % len(self.failures))
            for f in self.failures:
                print("  " + f)
            return 1
        return 0


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="blobd next to nginx (WebDAV), a bare libmicrohttpd "
        "server and fio: one command, figures only.")
    ap.add_argument("--build", default="build",
                    help="CMake build dir (server/blobd, tests/mhd_ref, "
                    "tests/flush_raw); default: build")
    ap.add_argument("--out", required=True,
                    help="output dir: results.json, GUID lists, raw runs, "
                    "server logs")
    ap.add_argument("--duration", type=int, default=None,
                    help="seconds per run (default 30; smoke 2)")
    ap.add_argument("--pairs", type=int, default=None,
                    help="A/B pairs per scenario (default 5; smoke 1)")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                    help="comma-separated, from: " + ", ".join(ALL_SCENARIOS))
    ap.add_argument("--smoke", action="store_true",
                    help="2 s runs, 1 pair, 64 GUIDs, 10 flush rounds: "
                    "exercises everything in under 2 minutes (CI)")
    ap.add_argument("--guids", type=int, default=None,
                    help="working set of the cached scenarios (default "
                    "1024; smoke 64)")
    ap.add_argument("--cold-guids", type=int, default=None,
                    help="working set of the cold scenarios (default 8192 "
                    "= 4 GiB; smoke 64)")
    ap.add_argument("--flush-rounds", type=int, default=None,
                    help="flush scenario rounds R (default 200; smoke 10)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the run dir (data dirs, nginx files)")
    a = ap.parse_args(argv)
    sm = a.smoke
    a.duration = a.duration or (2 if sm else 30)
    a.pairs = a.pairs or (1 if sm else 5)
    a.guids = a.guids or (64 if sm else 1024)
    a.cold_guids = a.cold_guids or (64 if sm else 8192)
    a.flush_rounds = a.flush_rounds or (10 if sm else 200)
    names = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    unknown = [s for s in names if s not in SPECS]
    if unknown or not names:
        ap.error("unknown scenario %s (known: %s)" % (
            ", ".join(unknown) or "(none)", ", ".join(ALL_SCENARIOS)))
    a.scenarios = [s for s in ALL_SCENARIOS if s in names]
    for k in ("duration", "pairs", "guids", "cold_guids", "flush_rounds"):
        if getattr(a, k) < 1:
            ap.error("--%s must be at least 1" % k.replace("_", "-"))
    if a.guids < 16:
        ap.error("--guids must be at least 16 (the flush scenario uses 16)")
    return a


def main(argv):
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    bench = Bench(args)
    try:
        return bench.main()
    except ToolMissing as e:
        log("http_bench: %s" % e)
        return 2
    except KeyboardInterrupt as e:
        log("http_bench: interrupted (%s); servers stopped" % (e or "Ctrl-C"))
        return 130
    finally:
        CHILDREN.kill_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
