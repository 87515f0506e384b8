#!/usr/bin/env python3
"""The scale benchmark of blobd: open time, memory and compaction under load
on synthetic stores of 10k to 10M blobs.

For each size, tests/bench/gen_store writes two stores with the same GUIDs:
"at-trigger" (a manifest log just under the compaction trigger, replayed in
full at open) and "compacted" (snapshot and an empty log, the state right
after a compaction).  For each store:

  open time   caches dropped (sync; echo 3 > /proc/sys/vm/drop_caches), blobd
              started pinned to CPU 0, /readyz polled every 2 ms: the time
              from the start of the process to the first 200; median of the
              repetitions, with min and max.
  memory      VmRSS after ready and after one listing pass over every blob
              (pages of 1000), minus the same for an empty store, per blob;
              and manifest.index_bytes from /admin/stats.
  checks      manifest.entries == N, torn_tail_found false, the listing pass
              returns N GUIDs in order with the right sizes, GETs of sampled
              and real blobs answer 200 with the right length (blobd checks
              the CRC32C of every whole read).

Compaction under load (1M; --smoke: 10k), on the compacted store: wrk pinned
to CPU 1 sends GETs of a few real blobs at a fixed rate (a Lua script whose
delay() keeps each connection on a schedule) for a window without
compaction, then a window in which compactions run back to back (POST
/admin/compact, the next one as soon as /admin/stats, polled every 10 ms in
both windows, shows the previous one ended); --reps pairs of windows,
medians over the windows.  Latencies are reported twice: "service" (request
written -> response read, as wrk measures) and "scheduled" (service plus the
time a late response held the next request back, so a stall counts for
every request it delayed).

Figures only: timing never fails a run.  The exit status is 1 when a check
fails (blobd does not open a store, a count is wrong), 2 on bad usage, a
missing tool or too little disk space.

  tests/bench/scale.py --build build --out OUTDIR [--sizes 10k,100k,1M,10M]
  tests/bench/scale.py --build build --out OUTDIR --smoke     (CI: 10k, < 1 min)
"""

import argparse
import ctypes
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

FRAME = 512 * 1024
PAGE = 4096
SNAP_ENTRY = 48
SNAP_FIXED = 128
TRIGGER_MIN = 1 << 20  # store.c should_compact
TRIGGER_RATIO = 4
HEADROOM_MIN = 64 << 20

VARIANTS = (("at-trigger", "at-trigger"), ("compacted", "none"))

T0 = time.monotonic()
CHILDREN = []


def say(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def warn(msg):
    print(f"scale.py: warning: {msg}", file=sys.stderr, flush=True)


def fatal(msg, code=2):
    print(f"scale.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


class CheckFailed(Exception):
    pass


# ---- child processes: killed on every way out ----

_libc = None


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if this process dies."""
    try:
        if _libc is not None:
            _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def spawn(argv, **kw):
    p = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)
    CHILDREN.append(p)
    return p


def stop_child(p, sig=signal.SIGTERM, grace=30.0):
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        except ProcessLookupError:
            pass
    if p in CHILDREN:
        CHILDREN.remove(p)


def kill_children():
    for p in list(CHILDREN):
        try:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        except Exception:
            pass
    CHILDREN.clear()


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ---- small helpers ----


def parse_size(s):
    m = re.fullmatch(r"(\d+)([kKmM]?)", s.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {s!r} (e.g. 10k, 1M, 250000)")
    n = int(m.group(1)) * {"": 1, "k": 1000, "K": 1000, "m": 10**6, "M": 10**6}[m.group(2)]
    if n <= 0:
        raise argparse.ArgumentTypeError("a size is at least 1")
    return n


def size_name(n):
    if n % 10**6 == 0:
        return f"{n // 10**6}M"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def med(xs):
    return statistics.median(xs) if xs else None


def summary(xs):
    if not xs:
        return None
    return {"median": med(xs), "min": min(xs), "max": max(xs), "runs": list(xs)}


def percentile(sorted_xs, p):
    """Nearest rank."""
    if not sorted_xs:
        return None
    k = max(0, min(len(sorted_xs) - 1, math.ceil(p / 100.0 * len(sorted_xs)) - 1))
    return sorted_xs[k]


def snapshot_bytes(n):
    return SNAP_FIXED + SNAP_ENTRY * n


def trigger_bytes(n):
    return max(TRIGGER_MIN, TRIGGER_RATIO * snapshot_bytes(n))


def disk_need(n, blob_len, real):
    """Bytes the two stores of one size take, with blobd's headroom, a
    compaction's temporary snapshot and some slack."""
    snap = snapshot_bytes(n)
    data = real * ((blob_len + PAGE - 1) // PAGE * PAGE)
    headroom = max(HEADROOM_MIN, 2 * snap)
    return 2 * (snap + data) + trigger_bytes(n) + headroom + snap + (256 << 20)


def drop_caches(state):
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError as e:
        if not state.get("warned"):
            warn(f"cannot drop the page cache ({e}); open times are warm-cache figures")
            state["warned"] = True
        return False


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise CheckFailed(f"no VmRSS for pid {pid}")


def probe_status(port, path, timeout=2.0):
    """Status of GET path on a fresh connection; None if not answering."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while b"\r\n" not in data and len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    parts = data.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1])


class Client:
    """A keep-alive HTTP client to blobd on 127.0.0.1."""

    def __init__(self, port, timeout=60):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path)
                r = self.conn.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, body
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method, path):
        st, body = self.request(method, path)
        try:
            return st, json.loads(body) if body else None
        except ValueError:
            return st, None

    def stats(self):
        st, doc = self.json("GET", "/admin/stats")
        if st != 200 or not doc:
            raise CheckFailed(f"/admin/stats answered {st}")
        return doc

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- blobd ----


class Blobd:
    def __init__(self, exe, data_dir, log_path, extra=()):
        self.exe = exe
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra = list(extra)
        self.proc = None
        self.port = None
        self.ready_s = None

    def start(self, ready_timeout):
        """Start pinned to CPU 0; returns seconds from the start of the
        process to the first 200 of /readyz."""
        argv = ["taskset", "-c", "0", self.exe, "--listen=127.0.0.1:0",
                f"--data-dir={self.data_dir}", "--log-level=info"] + self.extra
        logf = open(self.log_path, "wb")
        t0 = time.monotonic()
        try:
            self.proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        finally:
            logf.close()
        deadline = t0 + ready_timeout
        while True:
            now = time.monotonic()
            if self.proc.poll() is not None:
                raise CheckFailed(
                    f"blobd exited with {self.proc.returncode} before it was ready:\n{self.log_tail()}")
            if now > deadline:
                raise CheckFailed(f"blobd not ready after {ready_timeout:.0f} s:\n{self.log_tail()}")
            if self.port is None:
                m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", self.read_log())
                if m:
                    self.port = int(m.group(1))
            if self.port is not None and probe_status(self.port, "/readyz") == 200:
                self.ready_s = time.monotonic() - t0
                return self.ready_s
            time.sleep(0.002)

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def log_tail(self, n=15):
        lines = self.read_log().decode(errors="replace").splitlines()
        return "\n".join("    " + line for line in lines[-n:])

    def store_open_s(self):
        """blobd's own figure: store_open() alone."""
        m = re.search(rb"ready: \d+ blobs in .* in ([0-9.]+) s", self.read_log())
        return float(m.group(1)) if m else None

    def rss(self):
        return rss_bytes(self.proc.pid)

    def stop(self):
        if self.proc is not None:
            stop_child(self.proc, signal.SIGTERM, grace=60)
            rc = self.proc.returncode
            self.proc = None
            return rc
        return None


def listing_pass(client, n_expect, blob_len, sample_k, rng):
    """Walk every page of GET /blobs (limit 1000); returns the count, and a
    random sample of GUIDs.  Checks order and sizes."""
    count = 0
    after = None
    prev = ""
    sample = []
    bad_size = 0
    pages = 0
    t0 = time.monotonic()
    while True:
        path = "/blobs?limit=1000" + (f"&after={after}" if after else "")
        st, doc = client.json("GET", path)
        if st != 200 or doc is None:
            raise CheckFailed(f"GET {path} answered {st}")
        pages += 1
        for b in doc["blobs"]:
            g = b["guid"]
            if g <= prev:
                raise CheckFailed(f"listing out of order at {g} (after {prev})")
            prev = g
            if b["size"] != blob_len:
                bad_size += 1
            count += 1
            if len(sample) < sample_k:
                sample.append(g)
            else:
                j = rng.randrange(count)
                if j < sample_k:
                    sample[j] = g
        after = doc.get("next")
        if not after:
            break
        if pages % 1000 == 0:
            say(f"    listing: {count} of {n_expect}")
    return {"count": count, "pages": pages, "bad_sizes": bad_size,
            "seconds": time.monotonic() - t0}, sample


# ---- generation ----


def generate(gen_exe, root, n, mode, args):
    d = os.path.join(root, mode)
    argv = [gen_exe, d, str(n), "--log", mode, "--blob-len", str(args.blob_len),
            "--real", str(min(args.real, n)), "--seed", str(args.seed)]
    t0 = time.monotonic()
    # stderr passes through: gen_store shows its progress on a terminal.
    p = spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    out, _ = p.communicate()
    CHILDREN.remove(p)
    if p.returncode != 0:
        raise CheckFailed(f"gen_store {d} {n} --log {mode} failed with {p.returncode}")
    info = {"real": []}
    for line in out.decode().splitlines():
        k, _, v = line.partition("=")
        if k == "real":
            info["real"].append(v)
        elif v.lstrip("-").isdigit():
            info[k] = int(v)
        else:
            try:
                info[k] = float(v)
            except ValueError:
                info[k] = v
    info["dir"] = d
    info["wall_seconds"] = time.monotonic() - t0
    return info


# ---- open time and memory ----


def measure_store(args, exe, n, gen, label, tmp, rng, cache_state):
    reps = args.reps
    ready, store_open, rss_ready = [], [], []
    res = {"checks": [], "runs": []}
    ready_timeout = max(120.0, 240.0 * n / 1e6)
    for rep in range(reps):
        dropped = drop_caches(cache_state)
        b = Blobd(exe, gen["dir"], os.path.join(tmp, f"blobd-{size_name(n)}-{label}-{rep}.log"))
        try:
            t = b.start(ready_timeout)
            ready.append(t)
            so = b.store_open_s()
            if so is not None:
                store_open.append(so)
            r0 = b.rss()
            rss_ready.append(r0)
            c = Client(b.port)
            st = c.stats()
            m, comp = st["manifest"], st["compaction"]
            run = {"ready_s": t, "store_open_s": so, "rss_ready": r0, "caches_dropped": dropped,
                   "entries": m["entries"], "index_bytes": m["index_bytes"],
                   "log_bytes": m["log_bytes"], "log_records": m["log_records"],
                   "torn_tail_found": m["torn_tail_found"], "compactions": comp["count"],
                   "compaction_running": comp["running"]}
            say(f"  {size_name(n):>4} {label:<10} run {rep + 1}/{reps}: ready in {t:.3f} s "
                f"(store open {so if so is not None else float('nan'):.3f} s), "
                f"RSS {r0 / 2**20:.1f} MiB")
            checks = res["checks"]

            def check(ok, what):
                checks.append({"ok": bool(ok), "what": what})
                if not ok:
                    say(f"  CHECK FAILED: {what}")

            if rep == 0:
                check(m["entries"] == n, f"manifest.entries {m['entries']} == {n}")
                check(not m["torn_tail_found"], "torn_tail_found is false")
                if label == "at-trigger":
                    check(m["log_records"] >= gen["log_records"] + 1,
                          f"the whole log was replayed: log_records {m['log_records']} "
                          f">= {gen['log_records']} generated + 1 open")
                say(f"  {size_name(n):>4} {label:<10} listing pass over {n} blobs")
                lst, sample = listing_pass(c, n, args.blob_len, 16, rng)
                r1 = b.rss()
                run["rss_listed"] = r1
                run["listing"] = lst
                check(lst["count"] == n, f"listing returned {lst['count']} GUIDs, expected {n}")
                check(lst["bad_sizes"] == 0, f"{lst['bad_sizes']} listed sizes differ from {args.blob_len}")
                gets = sample + gen["real"][:16]
                bad = []
                for g in gets:
                    s, body = c.request("GET", f"/blobs/{g}")
                    if s != 200 or len(body) != args.blob_len:
                        bad.append(f"{g}: {s}, {len(body)} bytes")
                run["gets"] = len(gets)
                check(not bad, f"GET of {len(gets)} sampled and real blobs: 200 with "
                      f"{args.blob_len} bytes" + (f" (failed: {'; '.join(bad[:4])})" if bad else ""))
                st = c.stats()
                run["index_bytes_listed"] = st["manifest"]["index_bytes"]
                say(f"  {size_name(n):>4} {label:<10} listed {lst['count']} in {lst['seconds']:.1f} s "
                    f"({lst['pages']} pages), RSS {r1 / 2**20:.1f} MiB")
            if label == "at-trigger":
                trig = trigger_bytes(n)
                ok = comp["count"] == 0 and not comp["running"] and m["log_bytes"] < trig
                check(ok, f"no compaction at open: log_bytes {m['log_bytes']} < trigger {trig}, "
                      f"compactions {comp['count']}, running {comp['running']}")
            c.close()
            res["runs"].append(run)
        finally:
            rc = b.stop()
            if rc not in (0, None):
                res["checks"].append({"ok": False, "what": f"blobd exited with {rc}"})
    res["ready_s"] = summary(ready)
    res["store_open_s"] = summary(store_open)
    res["rss_ready"] = summary(rss_ready)
    res["rss_listed"] = res["runs"][0].get("rss_listed") if res["runs"] else None
    res["index_bytes"] = res["runs"][0]["index_bytes"] if res["runs"] else None
    return res


def measure_empty(args, exe, tmp, rng):
    """RSS of blobd on an empty store: after ready and after a listing."""
    ready_s, ready, listed = [], [], []
    for rep in range(args.reps):
        d = os.path.join(tmp, f"empty-{rep}")
        b = Blobd(exe, d, os.path.join(tmp, f"blobd-empty-{rep}.log"))
        try:
            ready_s.append(b.start(60))
            ready.append(b.rss())
            c = Client(b.port)
            listing_pass(c, 0, args.blob_len, 1, rng)
            listed.append(b.rss())
            c.close()
        finally:
            b.stop()
        shutil.rmtree(d, ignore_errors=True)
    return {"ready_s": summary(ready_s), "rss_ready": summary(ready), "rss_listed": summary(listed)}


# ---- compaction under load ----

LUA = r"""
-- Fixed-rate GETs: each connection (one per thread) sends on a schedule of
-- one request per period; delay() waits for the next due time.  Latencies:
-- service = written -> response read; scheduled = service plus the time the
-- send was held back by a late previous response (coordinated omission).
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } blobd_scale_ts;
int clock_gettime(int clk, blobd_scale_ts *ts);
]]
local ts = ffi.new("blobd_scale_ts")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

local period, paths, nextp, due, sent, held, prev_resp
svc, sch, bad = {}, {}, 0

function init(args)
  period = 1e6 / tonumber(args[1])
  paths = {}
  for i = 2, #args do paths[#paths + 1] = args[i] end
  nextp = 1 + (math.random(1, 1000) % #paths)
end

function delay()
  if due == nil then return 0 end
  local d = due - now_us()
  if d <= 0 then return 0 end
  return math.ceil(d / 1000)
end

function request()
  local t = now_us()
  if due == nil then due = t end
  held = 0
  if prev_resp ~= nil and prev_resp > due then held = prev_resp - due end
  due = due + period
  sent = t
  local p = paths[nextp]
  nextp = nextp % #paths + 1
  return wrk.format("GET", p)
end

function response(status, headers, body)
  local t = now_us()
  if status ~= 200 then bad = bad + 1 end
  svc[#svc + 1] = t - sent
  sch[#sch + 1] = t - sent + held
  prev_resp = t
end

function done(summary, latency, requests)
  local f = assert(io.open(os.getenv("BLOBD_SCALE_SAMPLES"), "w"))
  for _, t in ipairs(threads) do
    local s, c = t:get("svc"), t:get("sch")
    f:write(string.format("# bad %d\n", t:get("bad")))
    for i = 1, #s do f:write(string.format("%.1f %.1f\n", s[i], c[i])) end
  end
  local e = summary.errors
  f:write(string.format("# errors %d %d %d %d %d\n", e.connect, e.read, e.write, e.status, e.timeout))
  f:close()
end
"""


def run_wrk(tmp, port, paths, secs, conns, rate, tag):
    lua = os.path.join(tmp, "fixed_rate.lua")
    with open(lua, "w") as f:
        f.write(LUA)
    samples = os.path.join(tmp, f"wrk-{tag}.txt")
    env = dict(os.environ, BLOBD_SCALE_SAMPLES=samples)
    argv = ["taskset", "-c", "1", "wrk", "-t", str(conns), "-c", str(conns), "-d", f"{secs}s",
            "--timeout", "10s", "-s", lua, f"http://127.0.0.1:{port}", "--", str(rate)] + paths
    p = spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out, _ = p.communicate()
    CHILDREN.remove(p)
    if p.returncode != 0:
        raise CheckFailed(f"wrk failed ({p.returncode}): {out.decode(errors='replace')}")
    svc, sch, bad, errors = [], [], 0, [0] * 5
    with open(samples) as f:
        for line in f:
            if line.startswith("# bad"):
                bad += int(line.split()[2])
            elif line.startswith("# errors"):
                errors = [int(x) for x in line.split()[2:]]
            elif line.strip():
                a, b = line.split()
                svc.append(float(a))
                sch.append(float(b))
    svc.sort()
    sch.sort()

    def pct(xs):
        return {f"p{p:g}_us": percentile(xs, p) for p in (50, 99, 99.9)} | {
            "max_us": xs[-1] if xs else None}

    return {"requests": len(svc), "rate_per_s": len(svc) / secs, "non_200": bad,
            "errors": dict(zip(("connect", "read", "write", "status", "timeout"), errors)),
            "service": pct(svc), "scheduled": pct(sch), "wrk_output": out.decode(errors="replace")}


class StatsDriver(threading.Thread):
    """Polls /admin/stats every 10 ms; with compact=True also keeps one
    compaction running at all times (the next POST as soon as one ends)."""

    def __init__(self, port, compact):
        super().__init__(daemon=True)
        self.port = port
        self.compact = compact
        self.stop_ev = threading.Event()
        self.durations = []
        self.started = 0
        self.failures = 0
        self.error = None

    def run(self):
        c = Client(self.port)
        try:
            while not self.stop_ev.is_set():
                if not self.compact:
                    c.stats()
                    time.sleep(0.01)
                    continue
                before = c.stats()["compaction"]
                st, _ = c.request("POST", "/admin/compact")
                if st != 202:
                    raise CheckFailed(f"POST /admin/compact answered {st}")
                self.started += 1
                while True:  # finish this one even when asked to stop
                    time.sleep(0.01)
                    now = c.stats()["compaction"]
                    if now["failures"] > before["failures"]:
                        self.failures += 1
                        break
                    if now["count"] > before["count"] and not now["running"]:
                        self.durations.append(now["last_duration_seconds"])
                        break
        except Exception as e:  # reported by the caller
            self.error = e
        finally:
            c.close()


def compaction_under_load(args, exe, gen, tmp, rng):
    """Alternating windows (without, with compactions), args.reps pairs;
    the figures are medians over the windows of each kind."""
    n = gen["entries"]
    paths = [f"/blobs/{g}" for g in gen["real"][:4]]
    if not paths:
        raise CheckFailed("compaction under load needs --real 1 or more")
    extra = ["--cache-size=0"] if args.no_cache else []
    b = Blobd(exe, gen["dir"], os.path.join(tmp, f"blobd-{size_name(n)}-load.log"), extra)
    res = {"size": n, "store": "compacted", "seconds": args.load_seconds, "pairs": args.reps,
           "connections": args.conns, "rate_per_connection": args.rate, "paths": paths,
           "cache": not args.no_cache, "windows": {"none": [], "compaction": []}}
    durations = []
    try:
        b.start(max(120.0, 240.0 * n / 1e6))
        c = Client(b.port)
        for p in paths:  # warm up (with the cache on, these are then cached)
            st, body = c.request("GET", p)
            if st != 200 or len(body) != args.blob_len:
                raise CheckFailed(f"GET {p} answered {st} with {len(body)} bytes")
        c0 = c.stats()["compaction"]["count"]
        for rep in range(args.reps):
            for tag, compact in (("none", False), ("compaction", True)):
                drv = StatsDriver(b.port, compact)
                drv.start()
                w = run_wrk(tmp, b.port, paths, args.load_seconds, args.conns, args.rate,
                            f"{tag}-{rep}")
                drv.stop_ev.set()
                drv.join(timeout=600)
                if drv.error:
                    raise CheckFailed(f"compaction driver: {drv.error}")
                if compact:
                    w["compactions_started"] = drv.started
                    w["compactions_completed"] = len(drv.durations)
                    w["compaction_failures"] = drv.failures
                    w["compaction_seconds"] = summary(drv.durations)
                    durations += drv.durations
                res["windows"][tag].append(w)
                q = w["scheduled"]
                say(f"  load {size_name(n)} pair {rep + 1}/{args.reps} {tag:<10}: {w['requests']} GETs, "
                    f"scheduled p50/p99/p99.9 {q['p50_us']:.0f}/{q['p99_us']:.0f}/{q['p99.9_us']:.0f} us"
                    + (f", {len(drv.durations)} compactions" if compact else ""))
                if w["non_200"] or any(w["errors"].values()):
                    raise CheckFailed(
                        f"load window {tag}: {w['non_200']} non-200 answers, errors {w['errors']}")
        st = c.stats()
        res["compactions_total"] = st["compaction"]["count"] - c0
        res["compaction_failures_total"] = st["compaction"]["failures"]
        c.close()
    finally:
        b.stop()
    res["compaction_seconds"] = summary(durations)
    res["compactions_completed"] = len(durations)
    for tag in ("none", "compaction"):
        ws = res["windows"][tag]
        res[tag] = {k: {q: summary([w[k][q] for w in ws])
                        for q in ("p50_us", "p99_us", "p99.9_us", "max_us")}
                    for k in ("service", "scheduled")}
        res[tag]["requests"] = sum(w["requests"] for w in ws)
    for k in ("service", "scheduled"):
        a = res["none"][k]["p99_us"]["median"]
        z = res["compaction"][k]["p99_us"]["median"]
        res[f"p99_ratio_{k}"] = z / a if a else None
    return res


# ---- report ----


def per_blob(x, n):
    return None if x is None else x / n


def fmt(x, spec=".3f", none="-"):
    return none if x is None else format(x, spec)


def targets(out, sizes):
    t = []
    by = {r["n"]: r for r in out["sizes"]}

    def add(name, value, limit, unit, fmtspec=".3f"):
        if value is None:
            t.append({"target": name, "value": None, "limit": limit, "met": None})
        else:
            t.append({"target": name, "value": value, "limit": limit, "met": value <= limit,
                      "unit": unit, "fmt": fmtspec})

    m1 = by.get(10**6)
    add("1M ready, log at the trigger (median)",
        m1 and m1["stores"]["at-trigger"]["ready_s"]["median"], 1.0, "s")
    add("1M ready, right after a compaction (median)",
        m1 and m1["stores"]["compacted"]["ready_s"]["median"], 0.5, "s")
    add("1M resident bytes per blob (worst store, after listing)",
        m1 and max(m1["stores"][v]["bytes_per_blob_listed"] for v, _ in VARIANTS), 64, "B", ".1f")
    m10 = by.get(10**7)
    for v, _ in VARIANTS:
        a = m1 and m1["stores"][v]["ready_per_blob_us"]
        z = m10 and m10["stores"][v]["ready_per_blob_us"]
        add(f"linear to 10M: ready per blob 10M/1M ({v})", a and z and z / a, 1.5, "x", ".2f")
        a = m1 and m1["stores"][v]["bytes_per_blob_listed"]
        z = m10 and m10["stores"][v]["bytes_per_blob_listed"]
        add(f"linear to 10M: bytes per blob 10M/1M ({v})", a and z and z / a, 1.5, "x", ".2f")
    ld = out.get("load")
    add("p99 GET with compaction / without (scheduled)", ld and ld.get("p99_ratio_scheduled"), 1.2, "x", ".2f")
    add("p99 GET with compaction / without (service)", ld and ld.get("p99_ratio_service"), 1.2, "x", ".2f")
    return t


def print_report(out):
    print()
    print("== open time and memory (ready = process start to first 200 of /readyz; "
          f"median [min-max] of {out['config']['reps']})")
    hdr = (f"{'size':>5} {'store':<10} {'ready s':>24} {'us/blob':>8} {'open s':>7} "
           f"{'B/blob rdy':>10} {'B/blob list':>11} {'idx B/blob':>10} {'log MiB':>8} checks")
    print(hdr)
    for r in out["sizes"]:
        n = r["n"]
        for v, _ in VARIANTS:
            s = r["stores"][v]
            rd = s["ready_s"]
            rtxt = f"{rd['median']:.3f} [{rd['min']:.3f}-{rd['max']:.3f}]" if rd else "-"
            so = s["store_open_s"]
            ok = all(c["ok"] for c in s["checks"])
            print(f"{size_name(n):>5} {v:<10} {rtxt:>24} {fmt(s['ready_per_blob_us'], '.3f'):>8} "
                  f"{fmt(so and so['median']):>7} {fmt(s['bytes_per_blob_ready'], '.1f'):>10} "
                  f"{fmt(s['bytes_per_blob_listed'], '.1f'):>11} "
                  f"{fmt(per_blob(s['index_bytes'], n), '.1f'):>10} "
                  f"{s['gen']['log_bytes'] / 2**20:>8.1f} {'ok' if ok else 'FAILED'}")
    e = out["empty"]
    print(f"empty store: ready in {e['ready_s']['median']:.3f} s; RSS {e['rss_ready']['median'] / 2**20:.1f} MiB "
          f"after ready, {e['rss_listed']['median'] / 2**20:.1f} MiB after a listing (medians)")
    ld = out.get("load")
    if ld:
        print()
        print(f"== compaction under load ({size_name(ld['size'])}, compacted store, "
              f"{ld['connections']} x {ld['rate_per_connection']} GET/s of {len(ld['paths'])} real blobs "
              f"with wrk and a fixed-rate Lua script, frame cache {'on' if ld['cache'] else 'off'}; "
              f"{ld['pairs']} pairs of {ld['seconds']} s windows; median [min-max] over the windows)")
        print(f"{'window':<11} {'GETs':>7} {'latency':<10} {'p50 us':>16} {'p99 us':>20} {'p99.9 us':>22}")

        def mm(x):
            return f"{x['median']:.0f} [{x['min']:.0f}-{x['max']:.0f}]"

        for tag in ("none", "compaction"):
            w = ld[tag]
            for k in ("scheduled", "service"):
                q = w[k]
                print(f"{tag:<11} {w['requests']:>7} {k:<10} {mm(q['p50_us']):>16} "
                      f"{mm(q['p99_us']):>20} {mm(q['p99.9_us']):>22}")
        cs = ld["compaction_seconds"]
        print(f"compactions during the windows: {ld['compactions_completed']} completed "
              f"({ld['compaction_failures_total']} failures); duration (last_duration_seconds) "
              + (f"median {cs['median']:.3f} s [{cs['min']:.3f}-{cs['max']:.3f}]" if cs else "-"))
        print(f"p99 with/without compaction (ratio of the medians): scheduled "
              f"{fmt(ld['p99_ratio_scheduled'], '.2f')}, service {fmt(ld['p99_ratio_service'], '.2f')}")
    print()
    print("== targets (figures, never a failure)")
    for t in out["targets"]:
        if t["met"] is None:
            print(f"  n/a     {t['target']} (size not run)")
        else:
            v = format(t["value"], t["fmt"])
            print(f"  {'met' if t['met'] else 'MISSED':<7} {t['target']}: {v} {t['unit']} "
                  f"(target <= {t['limit']} {t['unit']})")


# ---- main ----


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="the CMake build directory")
    ap.add_argument("--out", required=True, help="directory for scale.json (created)")
    ap.add_argument("--sizes", default="10k,100k,1M,10M", help="comma-separated, e.g. 10k,1M")
    ap.add_argument("--smoke", action="store_true",
                    help="10k only, 1 repetition, 5 s load windows (CI; never judges speed)")
    ap.add_argument("--reps", type=int, default=3,
                    help="opens per store, and pairs of load windows (default 3)")
    ap.add_argument("--blob-len", type=int, default=4096)
    ap.add_argument("--real", type=int, default=16, help="blobs with real data per store")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--load-size", type=parse_size, default=10**6,
                    help="size of the compaction-under-load test (default 1M; smoke: 10k)")
    ap.add_argument("--load-seconds", type=int, default=20)
    ap.add_argument("--conns", type=int, default=4, help="wrk connections (one thread each)")
    ap.add_argument("--rate", type=int, default=250, help="GETs per second per connection")
    ap.add_argument("--no-cache", action="store_true",
                    help="run the load test with --cache-size=0 (GETs read the disk)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    if args.smoke:
        sizes = [10_000]
        args.reps = 1
        args.load_seconds = 5
        args.load_size = 10_000
    else:
        try:
            sizes = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
        except argparse.ArgumentTypeError as e:
            ap.error(str(e))
    if args.reps < 1 or args.load_seconds < 1 or args.conns < 1 or args.rate < 1:
        ap.error("--reps, --load-seconds, --conns and --rate are at least 1")
    if not 0 <= args.blob_len <= FRAME:
        ap.error(f"--blob-len is 0 .. {FRAME}")
    if args.blob_len == 0:
        ap.error("--blob-len 0 stores no data; use at least 1")

    for tool, pkg in (("taskset", "util-linux"), ("wrk", "wrk")):
        if not shutil.which(tool):
            fatal(f"{tool} is not installed (Debian package {pkg}: apt-get install {pkg})")
    exe = os.path.join(args.build, "server", "blobd")
    gen_exe = os.path.join(args.build, "tests", "gen_store")
    for p in (exe, gen_exe):
        if not os.access(p, os.X_OK):
            fatal(f"{p} is missing; build first: cmake -S . -B {args.build} "
                  f"-DCMAKE_BUILD_TYPE=Release && cmake --build {args.build} -j2")
    if (os.cpu_count() or 1) < 2:
        warn("fewer than 2 CPUs: blobd and the load generator share one")

    global _libc
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        _libc = None
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:  # this process (listing, polling, wrk) stays off blobd's CPU
        os.sched_setaffinity(0, {1})
    except OSError:
        pass

    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="blobd-scale-")
    free = shutil.disk_usage(tmp).free
    need = max(disk_need(n, args.blob_len, args.real) for n in sizes)
    if args.keep:
        need = sum(disk_need(n, args.blob_len, args.real) for n in sizes)
    if free < need:
        shutil.rmtree(tmp, ignore_errors=True)
        fatal(f"not enough disk space in {os.path.dirname(tmp)}: {free / 2**30:.1f} GiB free, "
              f"{need / 2**30:.1f} GiB needed for sizes {','.join(map(size_name, sizes))} "
              "(snapshots, the log at the trigger, blobd's headroom; data files are sparse). "
              "Set TMPDIR to a larger filesystem or drop the largest size.")

    rng = random.Random(args.seed)
    cache_state = {}
    out = {"config": {"sizes": sizes, "reps": args.reps, "blob_len": args.blob_len, "real": args.real,
                      "seed": args.seed, "smoke": args.smoke, "tmpdir": tmp,
                      "kernel": " ".join(os.uname()[2:4]), "cpus": os.cpu_count(),
                      "load_size": args.load_size if args.load_size in sizes else None,
                      "loadavg_start": os.getloadavg()},
           "sizes": [], "checks_ok": True}
    failed = []
    say(f"scale benchmark: sizes {','.join(map(size_name, sizes))}, {args.reps} runs each, in {tmp}")
    try:
        say("empty store: baseline RSS")
        out["empty"] = measure_empty(args, exe, tmp, rng)
        e_ready = out["empty"]["rss_ready"]["median"]
        e_listed = out["empty"]["rss_listed"]["median"]
        for n in sizes:
            root = os.path.join(tmp, size_name(n))
            os.makedirs(root, mode=0o700)
            r = {"n": n, "stores": {}}
            gens = {}
            for label, mode in VARIANTS:
                say(f"generating {size_name(n)} ({label})")
                gens[label] = generate(gen_exe, root, n, mode, args)
                g = gens[label]
                say(f"  {g['entries']} entries, log {g['log_bytes'] / 2**20:.1f} MiB "
                    f"({g['log_records']} records), trigger {g['compaction_trigger_bytes'] / 2**20:.1f} MiB, "
                    f"in {g['wall_seconds']:.1f} s")
            for label, _ in VARIANTS:
                s = measure_store(args, exe, n, gens[label], label, tmp, rng, cache_state)
                s["gen"] = {k: v for k, v in gens[label].items() if k not in ("real", "dir")}
                rd = s["ready_s"]
                s["ready_per_blob_us"] = rd and rd["median"] / n * 1e6
                s["bytes_per_blob_ready"] = (s["rss_ready"]["median"] - e_ready) / n
                s["bytes_per_blob_listed"] = (
                    None if s["rss_listed"] is None else (s["rss_listed"] - e_listed) / n)
                r["stores"][label] = s
                for c in s["checks"]:
                    if not c["ok"]:
                        failed.append(f"{size_name(n)} {label}: {c['what']}")
            if n == args.load_size:
                say(f"compaction under load at {size_name(n)}")
                out["load"] = compaction_under_load(args, exe, gens["compacted"], tmp, rng)
            out["sizes"].append(r)
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
    except CheckFailed as e:
        failed.append(str(e))
        say(f"CHECK FAILED: {e}")
    except KeyboardInterrupt:
        kill_children()
        print("scale.py: interrupted", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        return 130
    finally:
        kill_children()

    out["config"]["loadavg_end"] = os.getloadavg()
    out["checks_ok"] = not failed
    out["failures"] = failed
    if out.get("empty") and out["sizes"]:
        out["targets"] = targets(out, sizes)
        print_report(out)
    path = os.path.join(args.out, "scale.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=str)
        f.write("\n")
    print(f"\nJSON: {path}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept: {tmp}")
    if failed:
        print("checks FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    print("checks ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
