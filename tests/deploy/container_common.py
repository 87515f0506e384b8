"""Shared parts of the container, seccomp and systemd deploy tests: reading
the shipped files (Dockerfile, units, build.sh, blobd --help), running
blobd and the commands around it as child processes of a test, and a small
HTTP client.

Every process runs in the test's own temporary directory and listens on
127.0.0.1 only.  A test skips with exit status 77, or fails instead when
BLOBD_NO_SKIP is set (CI).
"""

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

from common import (HERE, SKIP, TOP, TestFailure, blobd_bin, check,  # noqa: F401
                    free_port, json_body, skip, wait_for)

DEPLOY = os.path.join(TOP, "deploy")
BUILD_SH = os.path.join(DEPLOY, "container", "build.sh")
DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")
COMPOSE = os.path.join(DEPLOY, "compose.yaml")
PROFILE = os.path.join(DEPLOY, "seccomp", "blobd.json")
SYSTEMD = os.path.join(DEPLOY, "systemd")
# The PATH a debian:12-slim container starts with.
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def note(msg):
    print("  " + msg, flush=True)


def is_root():
    return os.geteuid() == 0


def seccomp_run_bin():
    """The profile loader built beside the tests, or None."""
    b = os.environ.get("BLOBD_SECCOMP_RUN")
    return os.path.abspath(b) if b and os.access(b, os.X_OK) else None


def filtered_env(env=None):
    """env (or this process's) for a process under a seccomp filter: a
    sanitizer build's LeakSanitizer stops the world with ptrace at exit,
    which no profile here allows, so leak checking is left to the other
    suites."""
    env = dict(os.environ if env is None else env)
    opts = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "detect_leaks=0"
    return env


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---- the shipped files ----

def build_sh_ids():
    """(uid, gid) of user blobd, from build.sh."""
    text = read(BUILD_SH)
    uid = re.search(r"^readonly BLOBD_UID=(\d+)$", text, re.M)
    gid = re.search(r"^readonly BLOBD_GID=(\d+)$", text, re.M)
    check(uid and gid, "build.sh: no readonly BLOBD_UID= / BLOBD_GID= lines")
    return int(uid.group(1)), int(gid.group(1))


def parse_dockerfile(path=DOCKERFILE):
    """[(INSTRUCTION, argument text, line number)], with continuation
    lines joined and comments dropped."""
    out = []
    cur, start = None, 0
    for no, raw in enumerate(read(path).splitlines(), 1):
        line = raw.rstrip()
        if cur is None:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cur, start = "", no
        elif line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip(), start))
        cur = None
    check(cur is None, "%s: the last instruction ends with a backslash" % path)
    return out


def exec_form(args, what):
    """The argv of an exec-form (JSON array) argument."""
    try:
        argv = json.loads(args)
    except ValueError:
        raise TestFailure("%s is not in exec form (a JSON array): %s" %
                          (what, args))
    check(isinstance(argv, list) and argv and
          all(isinstance(a, str) for a in argv),
          "%s: not a list of strings: %s" % (what, args))
    return argv


def dockerfile_env(instrs):
    """The ENV of the final stage, as a dict."""
    env = {}
    for ins, args, _ in instrs:
        if ins == "FROM":
            env = {}
        elif ins == "ENV":
            for tok in shlex.split(args):
                check("=" in tok, "ENV in the old 'ENV key value' form: %s"
                      % args)
                k, v = tok.split("=", 1)
                env[k] = v
    return env


def final_stage(instrs):
    """The instructions of the last FROM on."""
    last = max(i for i, (ins, _, _) in enumerate(instrs) if ins == "FROM")
    return instrs[last:]


def healthcheck_argv(instrs):
    """(argv, options) of the final stage's HEALTHCHECK CMD."""
    hc = [a for ins, a, _ in final_stage(instrs) if ins == "HEALTHCHECK"]
    check(len(hc) == 1, "Dockerfile: %d HEALTHCHECK in the final stage, "
          "expected 1" % len(hc))
    m = re.match(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(.*)$", hc[0])
    check(m, "HEALTHCHECK is not 'HEALTHCHECK [--opt=v ...] CMD [...]': %s"
          % hc[0])
    opts = dict(o[2:].split("=", 1) for o in m.group(1).split())
    return exec_form(m.group(2), "HEALTHCHECK CMD"), opts


def duration_s(text):
    """'30s', '1m30s', '500ms', '2min' or a bare number of seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h)", text):
        check(m.start() == pos, "cannot read the duration %r" % text)
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    check(pos == len(text) and pos > 0, "cannot read the duration %r" % text)
    return total


def parse_unit(path):
    """{section: {key: [values in order]}} of a systemd unit file."""
    units = {}
    section = None
    for no, raw in enumerate(read(path).splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            check(line.endswith("]"), "%s:%d: bad section line" % (path, no))
            section = units.setdefault(line[1:-1], {})
            continue
        check(section is not None and "=" in line,
              "%s:%d: not 'Key=value' in a section: %r" % (path, no, line))
        k, v = line.split("=", 1)
        section.setdefault(k.strip(), []).append(v.strip())
    return units


def env_file(path):
    """({name: value} set, {name: value} commented out) of the BLOBD_
    lines of an EnvironmentFile."""
    active, commented = {}, {}
    for raw in read(path).splitlines():
        line = raw.strip()
        m = re.match(r"#?\s*(BLOBD_[A-Z0-9_]+)=(.*)$", line)
        if m:
            d = commented if line.startswith("#") else active
            d[m.group(1)] = m.group(2)
        else:
            check(not line or line.startswith("#"),
                  "%s: a line that is neither a comment nor NAME=value: %r"
                  % (path, line))
    return active, commented


class Options:
    """blobd's options as its --help lists them: env name -> default."""

    def __init__(self, binary):
        out = subprocess.run([binary, "--help"], stdout=subprocess.PIPE,
                             check=True, timeout=10).stdout.decode()
        self.defaults = {}
        for m in re.finditer(r"\(default (.*?); env (BLOBD_[A-Z0-9_]+)\)",
                             out):
            self.defaults[m.group(2)] = m.group(1)
        check(len(self.defaults) > 10,
              "blobd --help lists %d options" % len(self.defaults))

    def check_names(self, names, where):
        bad = sorted(set(names) - set(self.defaults))
        check(not bad, "%s: %s %s not an option of blobd --help" %
              (where, ", ".join(bad), "is" if len(bad) == 1 else "are"))

    def shutdown_timeout(self, env=None):
        v = (env or {}).get("BLOBD_SHUTDOWN_TIMEOUT",
                            self.defaults["BLOBD_SHUTDOWN_TIMEOUT"])
        return int(v)


def memlock_needed():
    """Bytes of locked memory blobd's registered I/O buffers take: every
    frame is registered with both io_uring rings, and the kernel counts
    each registration (store/io_uring.c)."""
    uring = read(os.path.join(TOP, "store", "io_uring.c"))
    store_h = read(os.path.join(TOP, "store", "store.h"))
    frames = re.search(r"#define URING_MAX_FRAMES (\d+)u", uring)
    size = re.search(r"#define STORE_FRAME_SIZE \((\d+)u \* (\d+)u\)",
                     store_h)
    check(frames and size, "cannot read URING_MAX_FRAMES / STORE_FRAME_SIZE")
    check("register_buffers(&u->r.ring" in uring,
          "store/io_uring.c no longer registers the frames with a second "
          "ring: update memlock_needed()")
    return 2 * int(frames.group(1)) * int(size.group(1)) * int(size.group(2))


def size_bytes(text):
    """'64M', '64MiB', '67108864', 'infinity' (-1)."""
    text = text.strip()
    if text == "infinity":
        return -1
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)(i?B)?", text)
    check(m, "cannot read the size %r" % text)
    return int(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " ")


# ---- processes ----

_children = []
_tmpdirs = []


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


class Proc:
    """A child process with its output in a log file."""

    def __init__(self, argv, log, env=None, preexec=None, pass_fds=()):
        self.argv = argv
        self.log = log
        out = open(log, "ab")
        self.p = subprocess.Popen(argv, stdout=out, stderr=out,
                                  stdin=subprocess.DEVNULL, env=env,
                                  preexec_fn=preexec, pass_fds=pass_fds)
        out.close()
        _children.append(self)

    @property
    def pid(self):
        return self.p.pid

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.p.poll() is None

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def child_pid(pid, timeout=5):
    """The only child of process pid (unshare --fork's)."""
    found = []

    def one():
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    found[:] = [int(x) for x in f.read().split()]
                    if found:
                        return True
        except OSError:
            pass
        return False

    wait_for(one, timeout, "the child of process %d" % pid)
    check(len(found) == 1, "process %d has children %s" % (pid, found))
    return found[0]


def ns_pid(pid):
    """pid as its own PID namespace sees it."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise TestFailure("no NSpid for process %d" % pid)


def as_user_argv(uid, gid, no_new_privs=True):
    """setpriv in front of a command: run it as uid:gid with no
    supplementary groups and no capabilities, as a container runtime or
    systemd starts a non-root service."""
    argv = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
            "--clear-groups", "--inh-caps=-all"]
    if no_new_privs:
        argv.append("--no-new-privs")
    return argv + ["--"]


def can_switch_user():
    return is_root() and shutil.which("setpriv") is not None


def set_memlock(limit):
    """preexec: the locked-memory limit limit (bytes, or -1 = infinity);
    when the hard limit is lower and cannot be raised (no
    CAP_SYS_RESOURCE), the soft limit goes as high as allowed."""
    import resource
    want = resource.RLIM_INFINITY if limit < 0 else limit
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (want, want))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))


def memlock_limit_after(limit):
    """The soft limit set_memlock(limit) ends with, measured in a child."""
    out = subprocess.run(
        [sys.executable, "-c",
         "import resource; print(resource.getrlimit("
         "resource.RLIMIT_MEMLOCK)[0])"],
        stdout=subprocess.PIPE, check=True, timeout=10,
        preexec_fn=lambda: set_memlock(limit)).stdout
    v = int(out)
    import resource
    return -1 if v == resource.RLIM_INFINITY else v


# ---- HTTP ----

def request(port, method, path, body=None, headers=None, timeout=10):
    """(status, headers dict with lower-case names, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def wait_ready(port, proc, timeout=20):
    """Wait for /readyz 200 from the blobd behind port; proc is the process
    whose exit means it never will."""
    def ready():
        if not proc.alive():
            raise TestFailure("blobd exited with %s:\n%s" %
                              (proc.p.returncode, proc.log_text()))
        try:
            return request(port, "GET", "/readyz", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(ready, timeout, "blobd to be ready on port %d" % port)


def exercise(port, tag):
    """PUT, GET, HEAD, Range, list, DELETE and flush a blob; returns the
    GUID of one left in the store and its body."""
    guid = os.urandom(16).hex()
    body = os.urandom(100000) + tag.encode()
    st, h, _ = request(port, "PUT", "/blobs/" + guid, body)
    check(st == 201, "%s: PUT answered %d" % (tag, st))
    etag = h.get("etag")
    check(etag, "%s: PUT without ETag" % tag)
    st, h, got = request(port, "GET", "/blobs/" + guid)
    check(st == 200 and got == body, "%s: GET answered %d with %d bytes, "
          "not the %d put" % (tag, st, len(got), len(body)))
    check(h.get("etag") == etag, "%s: GET ETag %r, PUT said %r" %
          (tag, h.get("etag"), etag))
    st, _, got = request(port, "GET", "/blobs/" + guid,
                         headers={"Range": "bytes=10-19"})
    check(st == 206 and got == body[10:20], "%s: Range GET answered %d" %
          (tag, st))
    gone = os.urandom(16).hex()
    st, _, _ = request(port, "PUT", "/blobs/" + gone, b"short-lived")
    check(st == 201, "%s: second PUT answered %d" % (tag, st))
    st, _, _ = request(port, "DELETE", "/blobs/" + gone)
    check(st == 204, "%s: DELETE answered %d" % (tag, st))
    st, _, _ = request(port, "GET", "/blobs/" + gone)
    check(st == 404, "%s: GET after DELETE answered %d" % (tag, st))
    st, _, data = request(port, "GET", "/blobs?limit=10")
    check(st == 200 and guid in data.decode(), "%s: the listing (%d) lacks "
          "the blob" % (tag, st))
    st, _, data = request(port, "POST", "/flush")
    check(st == 200, "%s: POST /flush answered %d: %r" % (tag, st, data))
    return guid, body


def stats(port):
    st, _, data = request(port, "GET", "/admin/stats")
    check(st == 200, "GET /admin/stats answered %d" % st)
    return json_body(data, "/admin/stats")


def stop(proc, sig, grace, target_pid=None):
    """Send sig to target_pid (or proc) and wait up to grace seconds for
    proc to exit; its exit status."""
    os.kill(target_pid or proc.pid, sig)
    rc = proc.wait(grace)
    if rc is None:
        proc.kill()
        raise TestFailure("blobd still running %.0f s after %s:\n%s" %
                          (grace, signal.Signals(sig).name, proc.log_text()))
    return rc


def signal_number(name):
    name = name.strip().upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise TestFailure("%s is not a signal" % name)


def run(main):
    """Run main(); report a failure with its message, clean up children
    and temporary directories either way."""
    rc = 0
    try:
        main()
        print("PASS")
    except TestFailure as e:
        print("FAIL: %s" % e)
        rc = 1
    except SystemExit:
        raise
    except Exception:
        traceback.print_exc()
        rc = 1
    finally:
        for c in _children:
            c.kill()
        if rc == 0 or not os.environ.get("BLOBD_KEEP_TMP"):
            for d in _tmpdirs:
                shutil.rmtree(d, ignore_errors=True)
        else:
            print("kept: %s" % " ".join(_tmpdirs))
    sys.exit(rc)
