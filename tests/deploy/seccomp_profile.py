#!/usr/bin/env python3
"""seccomp_profile: deploy/seccomp/blobd.json, loaded into the kernel by
tests/deploy/seccomp_run.c, in front of a real blobd.

- The profile: Docker's format, default SCMP_ACT_ERRNO, plain allow
  lists (no conditional entries), no name twice, io_uring allowed.
- blobd under it with --backend io_uring: /admin/stats says io_uring;
  PUT, GET, Range, list, DELETE, flush, compaction, a backup hold and
  /metrics all answer; SIGTERM ends it with exit 0 and its log has no
  "Operation not permitted" (no system call was refused).  The same with
  --backend pread, whose writes and syncs are other system calls.
- Without io_uring_setup in the profile: --backend io_uring refuses to
  start with a message naming io_uring and the seccomp profile, and
  --backend auto falls back to pread, says why in backend_note, and
  serves.
- The loader refuses what it cannot load faithfully: an unknown name, a
  conditional entry.
"""

import copy
import json
import os
import signal

import container_common as cc
from container_common import check, note


def check_profile(prof):
    check(prof.get("defaultAction") == "SCMP_ACT_ERRNO",
          "defaultAction %r, expected SCMP_ACT_ERRNO" %
          prof.get("defaultAction"))
    seen = {}
    for i, e in enumerate(prof["syscalls"]):
        check(e.get("action") == "SCMP_ACT_ALLOW", "syscalls[%d]: action %r"
              % (i, e.get("action")))
        for k in ("args", "includes", "excludes"):
            check(not e.get(k), "syscalls[%d] has %s" % (i, k))
        check(e.get("comment"), "syscalls[%d] does not say what it is for"
              % i)
        for n in e["names"]:
            check(n not in seen, "%s is listed in syscalls[%d] and [%d]" %
                  (n, seen.get(n, -1), i))
            seen[n] = i
    for n in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        check(n in seen, "the profile does not allow %s" % n)
    return set(seen)


def without(prof, name):
    p = copy.deepcopy(prof)
    for e in p["syscalls"]:
        e["names"] = [n for n in e["names"] if n != name]
    return p


def write(work, name, prof):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        json.dump(prof, f)
    return path


class Run:
    def __init__(self, work, loader, profile, backend, tag):
        self.data = os.path.join(work, "data-" + tag)
        self.port = cc.free_port()
        argv = [loader, profile, cc.blobd_bin(), "--listen",
                "127.0.0.1:%d" % self.port, "--data-dir", self.data,
                "--backend", backend]
        self.proc = cc.Proc(argv, os.path.join(work, tag + ".log"),
                            env=cc.filtered_env())


def full_run(work, loader, profile, backend):
    r = Run(work, loader, profile, backend, backend)
    cc.wait_ready(r.port, r.proc)
    io = cc.stats(r.port)["io"]
    check(io["backend"] == backend, "--backend %s under the profile, "
          "/admin/stats says %s (%s)" % (backend, io["backend"],
                                          io["backend_note"]))
    cc.exercise(r.port, backend)
    for method, path, want in (("POST", "/admin/compact", 202),
                               ("POST", "/admin/hold", 200),
                               ("DELETE", "/admin/hold", 200),
                               ("GET", "/metrics", 200),
                               ("HEAD", "/healthz", 200)):
        st = cc.request(r.port, method, path)[0]
        check(st == want, "%s: %s %s answered %d, expected %d" %
              (backend, method, path, st, want))
    rc = cc.stop(r.proc, signal.SIGTERM, 30)
    log = r.proc.log_text()
    check(rc == 0, "%s: exit %d after SIGTERM under the profile:\n%s" %
          (backend, rc, log))
    check("Operation not permitted" not in log,
          "%s: a system call was refused:\n%s" % (backend, log))
    note("--backend %s: served and stopped cleanly under the profile "
         "(%d registered buffers)" % (backend, io["registered_buffers"]))


def main():
    loader = cc.seccomp_run_bin()
    if not loader:
        cc.skip("seccomp_run was not built (libseccomp-dev missing at "
                "configure time)")
    prof = json.loads(cc.read(cc.PROFILE))
    names = check_profile(prof)
    note("%d system calls allowed" % len(names))
    work = cc.tmpdir("blobd-seccomp-")

    full_run(work, loader, cc.PROFILE, "io_uring")
    full_run(work, loader, cc.PROFILE, "pread")

    no_uring = write(work, "no-io_uring.json",
                     without(prof, "io_uring_setup"))
    r = Run(work, loader, no_uring, "io_uring", "forced")
    rc = r.proc.wait(20)
    log = r.proc.log_text()
    check(rc is not None and rc != 0, "--backend io_uring without "
          "io_uring_setup did not fail (exit %s):\n%s" % (rc, log))
    check("io_uring required" in log and "seccomp" in log,
          "the refusal does not name io_uring and the seccomp profile:\n"
          + log)
    note("--backend io_uring without io_uring_setup: exit %d, '%s'" %
         (rc, [l for l in log.splitlines() if "io_uring required" in l][0]
          .split(" error ", 1)[-1]))

    r = Run(work, loader, no_uring, "auto", "auto")
    cc.wait_ready(r.port, r.proc)
    io = cc.stats(r.port)["io"]
    check(io["backend"] == "pread", "--backend auto without io_uring_setup "
          "runs on %s" % io["backend"])
    check("seccomp" in (io["backend_note"] or ""), "backend_note does not "
          "say why: %r" % io["backend_note"])
    cc.exercise(r.port, "auto")
    rc = cc.stop(r.proc, signal.SIGTERM, 30)
    check(rc == 0, "auto: exit %d:\n%s" % (rc, r.proc.log_text()))
    note("--backend auto without io_uring_setup: pread, %r" %
         io["backend_note"])

    bad = copy.deepcopy(prof)
    bad["syscalls"][0]["names"].append("no_such_syscall")
    typo = write(work, "typo.json", bad)
    cond = copy.deepcopy(prof)
    cond["syscalls"].append({"names": ["personality"],
                             "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 0, "value": 0,
                                       "op": "SCMP_CMP_EQ"}]})
    conditional = write(work, "conditional.json", cond)
    for path, want in ((typo, "no_such_syscall"),
                       (conditional, "conditional")):
        p = cc.Proc([loader, path, "/bin/true"],
                    os.path.join(work, "loader.log"))
        rc = p.wait(10)
        check(rc == 126 and want in p.log_text(), "the loader took %s "
              "(exit %s): %s" % (os.path.basename(path), rc, p.log_text()))


if __name__ == "__main__":
    cc.run(main)
