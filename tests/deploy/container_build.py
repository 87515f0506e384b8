#!/usr/bin/env python3
"""container_build: the container image's steps, run from the source tree
into a temporary root the way deploy/Dockerfile runs them, then the
installed blobd started the way the image starts it.

1. deploy/container/build.sh build, user, install and verify, into ROOT:
   the staged binaries, user and group blobd with the image's ids in
   ROOT's /etc files, the data dir 0700 owned by that user.
2. The runtime package list names packages installed here, and every
   shared library the installed binaries load comes from those packages
   (or their dependencies): what a DT_NEEDED names directly, from one of
   the listed packages itself.
3. The installed blobd runs as the image's user, configured only by the
   Dockerfile's ENV (listen address and data dir rewritten into ROOT), as
   PID 1 of its own PID namespace, with the compose file's locked-memory
   limit and under the seccomp profile when the loader is built.  The
   HEALTHCHECK command, parsed out of the Dockerfile, fails before blobd
   listens and passes once it does; blobs go in and come out; the
   registered buffers follow the memlock limit; STOPSIGNAL stops it with
   exit 0 within the compose stop_grace_period, and a restart finds the
   blob.
"""

import glob
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import time

import container_common as cc
from container_common import check, note

PREFIX = "/opt/blobd"


def sh(argv, what, log=None, timeout=600):
    """Run argv; its output, or a failure with the tail of it."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    if log:
        with open(log, "a") as f:
            f.write("$ %s\n%s" % (" ".join(argv), out))
    check(p.returncode == 0, "%s failed (exit %d):\n%s" %
          (what, p.returncode, out[-4000:]))
    return out


def has_target(src, name):
    """Whether a CMakeLists.txt of the source tree (build dirs left out)
    defines the executable name."""
    pat = re.compile(r"add_executable\(\s*%s\b" % re.escape(name))
    for d, dirs, files in os.walk(src):
        dirs[:] = [x for x in dirs
                   if not x.startswith(("build", ".")) or d != src]
        if "CMakeLists.txt" in files and \
                pat.search(cc.read(os.path.join(d, "CMakeLists.txt"))):
            return True
    return False


def build_and_install(src, work):
    out_dir = os.path.join(work, "out")
    root = os.path.join(work, "root")
    log = os.path.join(work, "build.log")
    t0 = time.monotonic()
    sh([cc.BUILD_SH, "build", src, out_dir], "build.sh build", log)
    note("build.sh build: %.1f s" % (time.monotonic() - t0))
    stage = os.path.join(out_dir, "stage")
    bindir = stage + PREFIX + "/bin"
    want = {"blobd", "blobd-healthcheck"}
    if has_target(src, "blobd-check"):
        want.add("blobd-check")
    got = set(os.listdir(bindir))
    check(got == want, "staged %s, expected %s" % (sorted(got), sorted(want)))
    for f in glob.glob(os.path.join(stage, "**"), recursive=True):
        rel = os.path.relpath(f, stage)
        check(rel in (".", "opt") or rel.startswith("opt/blobd"),
              "the stage holds %s, outside %s" % (rel, PREFIX))
    # The final stage's steps in its order (runtime-deps is apt: checked
    # in check_runtime_packages instead), into a root whose /etc has only
    # what a fresh image has for root.
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/bash\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\n")
    for _ in range(2):  # a second run changes nothing
        sh([cc.BUILD_SH, "user", root], "build.sh user", log)
    sh([cc.BUILD_SH, "install", stage, root], "build.sh install", log)
    sh([cc.BUILD_SH, "verify", root], "build.sh verify", log)
    return root


def check_user(root, uid, gid):
    """build.sh user made exactly one blobd user and group, with the
    image's ids, its data dir as home and no login shell."""
    users = [l.split(":") for l in cc.read(root + "/etc/passwd").splitlines()
             if l.startswith("blobd:")]
    groups = [l.split(":") for l in cc.read(root + "/etc/group").splitlines()
              if l.startswith("blobd:")]
    check(len(users) == 1 and len(groups) == 1,
          "build.sh user made %d users and %d groups named blobd" %
          (len(users), len(groups)))
    u = users[0]
    check((u[2], u[3], u[5], u[6]) ==
          (str(uid), str(gid), "/var/lib/blobd", "/usr/sbin/nologin"),
          "the blobd user is %s" % ":".join(u))
    check(groups[0][2] == str(gid), "the blobd group has gid %s" %
          groups[0][2])


def check_data_dir(root, uid, gid):
    st = os.stat(root + "/var/lib/blobd")
    check(stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700,
          "ROOT/var/lib/blobd has mode %o, expected 0700" %
          stat.S_IMODE(st.st_mode))
    check((st.st_uid, st.st_gid) == (uid, gid),
          "ROOT/var/lib/blobd is owned by %d:%d, expected %d:%d" %
          (st.st_uid, st.st_gid, uid, gid))


def owners(paths):
    """{path: the Debian package that owns it}; one dpkg -S for all (each
    call reads every file list).  /lib and /usr/lib are the same place
    on Debian 12 (merged /usr), but dpkg knows a file under one name."""
    cands = {}
    for path in paths:
        for p in (path, os.path.realpath(path)):
            for c in (p, p.replace("/usr/lib/", "/lib/", 1),
                      p.replace("/lib/", "/usr/lib/", 1)):
                cands.setdefault(c, set()).add(path)
    r = subprocess.run(["dpkg", "-S"] + sorted(cands),
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       timeout=120)
    found = {}
    for line in r.stdout.decode().splitlines():
        pkg, _, f = line.partition(": ")
        for orig in cands.get(f.strip(), ()):
            found.setdefault(orig, pkg.split(":")[0].strip())
    missing = sorted(set(paths) - set(found))
    check(not missing, "no Debian package owns %s" % ", ".join(missing))
    return found


def depends_closure(pkgs):
    """pkgs and everything they depend on (Depends, Pre-Depends; every
    alternative), as installed here."""
    r = subprocess.run(["dpkg-query", "-W", "-f",
                        "${Package}\t${Depends}, ${Pre-Depends}\n"],
                       stdout=subprocess.PIPE, check=True, timeout=60)
    deps = {}
    for line in r.stdout.decode().splitlines():
        name, _, d = line.partition("\t")
        deps.setdefault(name, "")
        deps[name] += ", " + d
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for dep in re.split(r"[,|]", deps.get(p, "")):
            name = dep.strip().split(" ")[0].split(":")[0]
            if name:
                todo.append(name)
    return seen


def check_runtime_packages(root):
    pkgs = cc_lines([cc.BUILD_SH, "packages", "runtime"])
    check(pkgs, "build.sh packages runtime lists nothing")
    for p in pkgs:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", p],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           timeout=30)
        check(r.returncode == 0 and
              r.stdout.decode().endswith("install ok installed"),
              "runtime package %s is not an installed Debian package" % p)
    # --dry-run shows what the image runs: exactly that list, installed
    # with no recommends.
    dry = sh([cc.BUILD_SH, "--dry-run", "runtime-deps"], "--dry-run")
    inst = [l for l in dry.splitlines() if "apt-get install" in l]
    check(len(inst) == 1 and "--no-install-recommends" in inst[0] and
          inst[0].split()[-len(pkgs):] == pkgs,
          "runtime-deps does not install exactly %s:\n%s" % (pkgs, dry))
    closure = depends_closure(pkgs)
    direct_ok = set(pkgs) | {"libc6"}
    for exe in glob.glob(root + PREFIX + "/bin/*"):
        with open(exe, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        ldd = sh(["ldd", exe], "ldd " + exe)
        libs = {}
        for line in ldd.splitlines():
            m = re.match(r"\s*(\S+) => (/\S+)", line)
            if m:
                libs[m.group(1)] = m.group(2)
            check("not found" not in line, "%s: %s" % (exe, line.strip()))
        check(libs, "ldd shows no libraries for %s" % exe)
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                            sh(["readelf", "-d", exe], "readelf"))
        for soname in needed:
            check(soname in libs, "%s needs %s, which ldd did not resolve" %
                  (exe, soname))
        pkg = owners(list(libs.values()))
        for soname, path in libs.items():
            check(pkg[path] in closure, "%s loads %s from package %s, which "
                  "the runtime packages %s do not bring" %
                  (os.path.basename(exe), soname, pkg[path], pkgs))
        for soname in needed:
            p = pkg[libs[soname]]
            check(p in direct_ok, "%s links %s (package %s) directly: list "
                  "%s in build.sh RUNTIME_PACKAGES" %
                  (os.path.basename(exe), soname, p, p))
        note("%s: %d libraries, all from the runtime packages" %
             (os.path.basename(exe), len(libs)))


def cc_lines(argv):
    return [l for l in sh(argv, " ".join(argv[1:])).splitlines() if l]


def compose_blobd():
    """The compose file's blobd service, or None without a YAML parser."""
    try:
        import yaml
    except ImportError:
        return None
    with open(cc.COMPOSE) as f:
        return yaml.safe_load(f)["services"]["blobd"]


def map_root(root, argv):
    """argv with every path under /opt/blobd moved into root."""
    return [root + a if a.startswith(PREFIX + "/") else a for a in argv]


class Container:
    """The installed blobd started the way the image starts it."""

    def __init__(self, root, work, instrs, uid, gid, memlock, seccomp):
        self.root, self.work = root, work
        self.instrs = instrs
        self.uid, self.gid = uid, gid
        self.memlock = memlock
        self.seccomp = seccomp
        self.pidns = cc.is_root() and bool(shutil.which("unshare"))
        env = cc.dockerfile_env(instrs)
        self.listen = env["BLOBD_LISTEN"]
        self.port = cc.free_port()
        env["BLOBD_LISTEN"] = "127.0.0.1:%d" % self.port
        env["BLOBD_DATA_DIR"] = root + env["BLOBD_DATA_DIR"]
        env["PATH"] = cc.CONTAINER_PATH
        env["HOME"] = "/"
        self.env = cc.filtered_env(env) if seccomp else env
        self.n = 0

    def wrap(self, argv):
        """argv as the runtime runs it in the container: as the image's
        user, no capabilities, no new privileges, under the profile."""
        pre = cc.as_user_argv(self.uid, self.gid)
        if self.seccomp:
            pre += [self.seccomp, cc.PROFILE]
        return pre + map_root(self.root, argv)

    def start(self):
        entry = [a for ins, a, _ in cc.final_stage(self.instrs)
                 if ins == "ENTRYPOINT"]
        argv = self.wrap(cc.exec_form(entry[-1], "ENTRYPOINT"))
        if self.pidns:
            argv = ["unshare", "--pid", "--fork", "--kill-child"] + argv
        self.n += 1
        self.proc = cc.Proc(argv, os.path.join(self.work, "blobd%d.log" %
                                               self.n),
                            env=self.env,
                            preexec=lambda: cc.set_memlock(self.memlock))
        self.pid = cc.child_pid(self.proc.pid) if self.pidns else \
            self.proc.pid
        return self

    def healthcheck(self, argv):
        p = subprocess.run(self.wrap(argv), env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        return p.returncode, p.stdout.decode("utf-8", "replace")


def healthcheck_against(c, argv, answer):
    """Run the HEALTHCHECK against a server on c's port that sends answer
    to the first request (and nothing when answer is empty)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", c.port))
    srv.listen(1)
    got = []

    def serve():
        conn, _ = srv.accept()
        with conn:
            req = b""
            while b"\r\n\r\n" not in req and len(req) < 65536:
                more = conn.recv(4096)
                if not more:
                    break
                req += more
            got.append(req)
            if answer:
                conn.sendall(answer)
            else:
                time.sleep(8)  # longer than the check's own read timeout

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        rc, out = c.healthcheck(argv)
    finally:
        srv.close()
    check(got and got[0].startswith(b"GET /healthz HTTP/1.1\r\n"),
          "the HEALTHCHECK did not send GET /healthz: %r" % got)
    return rc, out


def main():
    src = os.environ.get("BLOBD_SOURCE_DIR", cc.TOP)
    if not cc.can_switch_user():
        cc.skip("needs root and setpriv: build.sh install gives the data "
                "dir to the image's user, and blobd runs as that user")
    os.umask(0o022)
    uid, gid = cc.build_sh_ids()
    work = cc.tmpdir("blobd-container-")
    os.chmod(work, 0o755)  # the image's user must reach ROOT's files

    root = build_and_install(src, work)
    check_user(root, uid, gid)
    check_data_dir(root, uid, gid)
    check_runtime_packages(root)

    instrs = cc.parse_dockerfile()
    svc = compose_blobd()
    memlock = -1
    grace = 10.0  # docker stop's default
    if svc is not None:
        memlock = int(svc["ulimits"]["memlock"])
        grace = cc.duration_s(svc["stop_grace_period"])
    else:
        note("no python3 yaml module: the compose file's memlock and grace "
             "period are not applied (container_compose fails instead)")
    limit = cc.memlock_limit_after(memlock)
    seccomp = cc.seccomp_run_bin()
    if not seccomp:
        note("no seccomp_run (libseccomp-dev missing at configure): the "
             "profile is not applied here (seccomp_profile covers it)")
    c = Container(root, work, instrs, uid, gid, memlock, seccomp)
    note("blobd as uid %d, pid namespace %s, memlock %s, profile %s" %
         (uid, "yes" if c.pidns else "no (not root or no unshare)",
          "unlimited" if limit < 0 else "%d KiB" % (limit // 1024),
          "yes" if seccomp else "no"))

    hc_argv, hc_opts = cc.healthcheck_argv(instrs)
    rc, out = c.healthcheck(hc_argv)
    check(rc != 0, "the HEALTHCHECK passed with nothing listening:\n" + out)
    rc, out = healthcheck_against(c, hc_argv, b"HTTP/1.1 503 Service "
                                  b"Unavailable\r\nContent-Length: 0\r\n\r\n")
    check(rc != 0, "the HEALTHCHECK passed on a 503:\n" + out)
    t0 = time.monotonic()
    rc, out = healthcheck_against(c, hc_argv, b"")
    took = time.monotonic() - t0
    check(rc != 0, "the HEALTHCHECK passed on a server that never "
          "answers:\n" + out)
    hc_timeout = cc.duration_s(hc_opts["timeout"])
    check(took < hc_timeout, "the HEALTHCHECK took %.1f s to give up on a "
          "silent server, more than its --timeout %.0f s" %
          (took, hc_timeout))

    c.start()
    if c.pidns:
        check(cc.ns_pid(c.pid) == 1, "blobd is not PID 1 of its namespace")
    start_period = min(cc.duration_s(hc_opts.get("start-period", "30s")), 30)
    end = time.monotonic() + start_period
    while True:
        rc, out = c.healthcheck(hc_argv)
        if rc == 0:
            break
        check(c.proc.alive(), "blobd exited with %s:\n%s" %
              (c.proc.p.returncode, c.proc.log_text()))
        check(time.monotonic() < end, "the HEALTHCHECK still fails after "
              "%.0f s: %s\n%s" % (start_period, out, c.proc.log_text()))
        time.sleep(0.1)
    cc.wait_ready(c.port, c.proc)
    guid, body = cc.exercise(c.port, "container")

    io = cc.stats(c.port)["io"]
    need = cc.memlock_needed()
    if io["backend"] == "io_uring":
        if 0 <= limit < need:
            check(io["registered_buffers"] == 0 and
                  "registration failed" in (io["backend_note"] or ""),
                  "memlock %d < %d but registered_buffers is %s (note %r)" %
                  (limit, need, io["registered_buffers"], io["backend_note"]))
            check("RLIMIT_MEMLOCK" in c.proc.log_text(),
                  "the failed registration is not logged with its cause")
        elif limit < 0 or limit >= need + (1 << 20):
            check(io["registered_buffers"] > 0, "memlock %s >= %d but no "
                  "buffers were registered (note %r)" %
                  (limit, need, io["backend_note"]))
        note("io_uring with %d registered buffers" % io["registered_buffers"])
    else:
        note("backend %s (%s): io_uring unavailable here" %
             (io["backend"], io["backend_note"]))
    for f in os.listdir(c.env["BLOBD_DATA_DIR"]):
        st = os.stat(os.path.join(c.env["BLOBD_DATA_DIR"], f))
        check(st.st_uid == uid and not st.st_mode & 0o077,
              "data file %s: owner %d, mode %o" %
              (f, st.st_uid, stat.S_IMODE(st.st_mode)))

    sig_args = [a for ins, a, _ in cc.final_stage(instrs)
                if ins == "STOPSIGNAL"]
    sig = cc.signal_number(sig_args[-1])
    t0 = time.monotonic()
    rc = cc.stop(c.proc, sig, grace, c.pid)
    check(rc == 0, "blobd exited %d after %s:\n%s" %
          (rc, sig.name, c.proc.log_text()))
    note("%s: exit 0 in %.2f s (grace %.0f s)" %
         (sig.name, time.monotonic() - t0, grace))

    c.start()
    cc.wait_ready(c.port, c.proc)
    st, _, got = cc.request(c.port, "GET", "/blobs/" + guid)
    check(st == 200 and got == body, "after a restart on the same data dir "
          "GET answered %d with %d bytes" % (st, len(got)))
    rc = cc.stop(c.proc, sig, grace, c.pid)
    check(rc == 0, "second run exited %d" % rc)


if __name__ == "__main__":
    cc.run(main)
