#!/usr/bin/env python3
"""systemd_units: deploy/systemd/ read as systemd reads it, then blobd
started the way the units start it.

1. blobd.service and blobd.socket have the keys the deployment relies on:
   ExecStart is the image's binary with --data-dir on its StateDirectory,
   the static user of blobd.sysusers (build.sh's ids), restart policy,
   KillSignal=SIGTERM with TimeoutStopSec above the shutdown timeout,
   LimitMEMLOCK for the registered I/O buffers (store/io_uring.c),
   LimitNOFILE, and the hardening list; one ListenStream.  blobd.env names
   only options of blobd --help.
2. With systemd's tools: systemd-analyze verify has nothing to say (on a
   copy whose ExecStart points at the built blobd), the offline exposure
   score stays low, the unit's SystemCallFilter (expanded by
   systemd-analyze) allows the io_uring calls, and systemd-sysusers
   creates blobd with build.sh's uid and gid.
3. Socket activation as the units do it, twice on one data dir: once with
   systemd-socket-activate, once with a launcher that passes the socket as
   fd 3 with LISTEN_FDS/LISTEN_PID itself.  Each time blobd runs the
   unit's ExecStart (data dir rewritten) as the unit's user with its UMask,
   limits, EnvironmentFile and SystemCallFilter (loaded with seccomp_run),
   answers /healthz on the passed socket, serves blobs, and exits 0 on the
   unit's KillSignal within TimeoutStopSec.
"""

import ctypes
import ctypes.util
import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import time

import container_common as cc
from container_common import check, note

SERVICE = os.path.join(cc.SYSTEMD, "blobd.service")
SOCKET = os.path.join(cc.SYSTEMD, "blobd.socket")
ENVFILE = os.path.join(cc.SYSTEMD, "blobd.env")
SYSUSERS = os.path.join(cc.SYSTEMD, "blobd.sysusers")

HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes", "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "",
    "SystemCallArchitectures": "native", "RestrictSUIDSGID": "yes",
}
IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")


def one(unit, section, key):
    vals = unit.get(section, {}).get(key, [])
    check(len(vals) == 1, "[%s] %s= is set %d times, expected once" %
          (section, key, len(vals)))
    return vals[0]


def check_units(opts):
    svc = cc.parse_unit(SERVICE)
    sock = cc.parse_unit(SOCKET)
    s = "Service"
    check(one(svc, s, "Type") in ("exec", "simple"), "Type=%s: blobd does "
          "not notify readiness" % one(svc, s, "Type"))
    argv = shlex.split(one(svc, s, "ExecStart"))
    entry = [a for ins, a, _ in cc.final_stage(cc.parse_dockerfile())
             if ins == "ENTRYPOINT"]
    check(argv[0] == cc.exec_form(entry[-1], "ENTRYPOINT")[0],
          "ExecStart runs %s, the image installs %s" % (argv[0], entry))
    check("--data-dir" in argv, "ExecStart has no --data-dir")
    data_dir = argv[argv.index("--data-dir") + 1]
    state = one(svc, s, "StateDirectory")
    check(data_dir == "/var/lib/" + state, "--data-dir %s is not the "
          "StateDirectory /var/lib/%s" % (data_dir, state))
    check(one(svc, s, "StateDirectoryMode") == "0700",
          "StateDirectoryMode is not 0700")
    check(one(svc, s, "DynamicUser") != "yes"
          if "DynamicUser" in svc[s] else True,
          "DynamicUser=yes makes /var/lib/blobd a symlink, which blobd's "
          "O_NOFOLLOW open of its data dir refuses")
    check(not any(a.startswith("--listen") for a in argv),
          "ExecStart sets --listen: the socket comes from blobd.socket")
    user = one(svc, s, "User")
    check(user == "blobd" and one(svc, s, "Group") == "blobd",
          "User=%s Group=%s, expected blobd" % (user, one(svc, s, "Group")))
    check(one(svc, s, "Restart") == "on-failure", "Restart is not on-failure")
    check(cc.duration_s(one(svc, s, "RestartSec")) > 0, "RestartSec is 0")
    check(one(svc, s, "KillSignal") == "SIGTERM", "KillSignal is not SIGTERM")
    env_active, env_commented = cc.env_file(ENVFILE)
    opts.check_names(set(env_active) | set(env_commented), "blobd.env")
    # The example's "behind nginx on this host" lines, as an operator
    # turns them on: the run below checks they reach blobd.
    for k in ("BLOBD_TRUSTED_PROXIES", "BLOBD_ACCESS_LOG"):
        check(k in env_commented, "blobd.env has no #%s= line" % k)
        env_active[k] = env_commented[k]
    check(env_active["BLOBD_TRUSTED_PROXIES"] == "127.0.0.1",
          "blobd.env's trusted proxy is not this host's nginx (127.0.0.1)")
    check(one(svc, s, "EnvironmentFile").lstrip("-") ==
          "/etc/blobd/blobd.env", "EnvironmentFile is not "
          "/etc/blobd/blobd.env")
    stop_s = cc.duration_s(one(svc, s, "TimeoutStopSec"))
    shut = opts.shutdown_timeout(env_active)
    check(stop_s >= shut + 10, "TimeoutStopSec %.0f s leaves no room after "
          "a %d s drain for the final flush" % (stop_s, shut))
    memlock = cc.size_bytes(one(svc, s, "LimitMEMLOCK"))
    need = cc.memlock_needed()
    check(memlock < 0 or memlock >= need + (1 << 20), "LimitMEMLOCK %d: "
          "the registered buffers need %d plus the rings" % (memlock, need))
    nofile = int(one(svc, s, "LimitNOFILE"))
    maxconn = int(opts.defaults["BLOBD_MAX_CONNECTIONS"])
    check(nofile >= maxconn + 64, "LimitNOFILE %d < --max-connections %d "
          "plus the store's files" % (nofile, maxconn))
    for k, v in HARDENING.items():
        check(one(svc, s, k) == v, "%s=%s, expected %r" %
              (k, one(svc, s, k), v))
    fams = one(svc, s, "RestrictAddressFamilies").split()
    check(sorted(fams) == ["AF_INET", "AF_INET6", "AF_UNIX"],
          "RestrictAddressFamilies=%s" % " ".join(fams))
    filters = svc[s].get("SystemCallFilter", [])
    check(filters and filters[0].split()[0] == "@system-service",
          "SystemCallFilter does not start from @system-service: %s" %
          filters)
    check(all(n in filters[0].split() for n in IO_URING),
          "SystemCallFilter does not name the io_uring calls")
    check("blobd.socket" in one(svc, "Unit", "Requires").split(),
          "blobd.service does not require blobd.socket")
    listens = sock.get("Socket", {}).get("ListenStream", [])
    check(len(listens) == 1, "%d ListenStream: blobd takes exactly one "
          "socket" % len(listens))
    check(one(sock, "Install", "WantedBy") == "sockets.target",
          "blobd.socket is not WantedBy=sockets.target")
    return svc, sock, argv, env_active


def check_sysusers():
    uid, gid = cc.build_sh_ids()
    lines = [l.split() for l in cc.read(SYSUSERS).splitlines()
             if l.strip() and not l.startswith("#")]
    check(["g", "blobd", str(gid)] in lines, "blobd.sysusers has no "
          "'g blobd %d'" % gid)
    check(any(l[:3] == ["u", "blobd", "%d:%d" % (uid, gid)] for l in lines),
          "blobd.sysusers has no 'u blobd %d:%d'" % (uid, gid))
    tool = shutil.which("systemd-sysusers")
    if not tool:
        return "systemd-sysusers"
    root = cc.tmpdir("blobd-sysusers-")
    os.makedirs(os.path.join(root, "etc"))
    for f in ("passwd", "group", "shadow", "gshadow"):
        open(os.path.join(root, "etc", f), "w").close()
    p = subprocess.run([tool, "--root=" + root, SYSUSERS],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    check(p.returncode == 0, "systemd-sysusers: %s" % p.stdout.decode())
    passwd = cc.read(os.path.join(root, "etc", "passwd"))
    check(passwd.startswith("blobd:x:%d:%d:" % (uid, gid)),
          "systemd-sysusers made %r" % passwd)
    return None


def expand(name, cache):
    """The system calls of a systemd syscall set or name (systemd-analyze)."""
    if not name.startswith("@"):
        return {name}
    if name not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, check=True,
                             timeout=30).stdout.decode()
        res = set()
        for line in out.splitlines()[1:]:
            w = line.strip()
            if w and not w.startswith("#"):
                res |= expand(w, cache)
        check(res, "systemd-analyze knows no set %s" % name)
        cache[name] = res
    return cache[name]


def unit_syscalls(svc):
    """The system calls the unit's SystemCallFilter lines allow, in
    systemd's order: the first allow list, then every ~ line removes."""
    cache, allowed = {}, set()
    for i, line in enumerate(svc["Service"]["SystemCallFilter"]):
        deny = line.startswith("~")
        names = set()
        for w in line.lstrip("~").split():
            names |= expand(w, cache)
        if deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


def unit_profile(svc, work):
    """The unit's SystemCallFilter as a profile for seccomp_run: allow the
    set, refuse the rest with SystemCallErrorNumber; names this
    libseccomp does not know are dropped (systemd ignores them too)."""
    allowed = unit_syscalls(svc)
    for n in IO_URING + ("flock", "fdatasync", "accept4", "epoll_wait"):
        check(n in allowed, "the unit's SystemCallFilter refuses %s" % n)
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or
                      "libseccomp.so.2")
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    known = sorted(n for n in allowed
                   if lib.seccomp_syscall_resolve_name(n.encode()) != -1)
    errno_name = svc["Service"].get("SystemCallErrorNumber", ["EPERM"])[-1]
    check(errno_name == "EPERM", "SystemCallErrorNumber=%s" % errno_name)
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": known, "action": "SCMP_ACT_ALLOW"}]}
    path = os.path.join(work, "unit-filter.json")
    with open(path, "w") as f:
        json.dump(prof, f)
    return path, len(known)


def analyze(work):
    """systemd-analyze verify and security on copies of the units whose
    ExecStart runs the built blobd (verify insists the binary exists)."""
    d = os.path.join(work, "units")
    os.makedirs(d)
    text = cc.read(SERVICE).replace("ExecStart=/opt/blobd/bin/blobd",
                                    "ExecStart=" + cc.blobd_bin())
    with open(os.path.join(d, "blobd.service"), "w") as f:
        f.write(text)
    shutil.copy(SOCKET, d)
    units = [os.path.join(d, "blobd.service"), os.path.join(d, "blobd.socket")]
    p = subprocess.run(["systemd-analyze", "verify"] + units,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    out = p.stdout.decode()
    check(p.returncode == 0 and not out.strip(),
          "systemd-analyze verify (exit %d):\n%s" % (p.returncode, out))
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                        "--no-pager", units[0]], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode()
    m = [l for l in out.splitlines() if "Overall exposure level" in l]
    check(m, "systemd-analyze security printed no exposure level:\n" + out)
    level = float(m[0].split(":")[1].split()[0])
    check(level <= 2.0, "exposure level %.1f (> 2.0):\n%s" % (level, out))
    note("systemd-analyze verify: clean; exposure level %.1f" % level)


def launcher_argv(fd):
    """A shell that moves fd to 3 and sets LISTEN_PID to its own pid,
    which exec keeps: sd_listen_fds' protocol without systemd."""
    script = ('fd=$1; shift; [ "$fd" = 3 ] || eval "exec 3<&$fd $fd<&-"; '
              'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=blobd.socket; '
              'export LISTEN_PID LISTEN_FDS LISTEN_FDNAMES; exec "$@"')
    return ["/bin/sh", "-c", script, "sh", str(fd)]


class Activation:
    def __init__(self, svc, argv, env_active, work, uid, gid, profile):
        self.svc = svc
        self.work = work
        self.uid, self.gid = uid, gid
        self.state = os.path.join(work, "state", "blobd")
        if not os.path.isdir(self.state):
            # What StateDirectory= and StateDirectoryMode= make.
            os.makedirs(self.state, 0o700)
            os.chown(self.state, uid, gid)
            os.chmod(self.state, 0o700)
        argv = list(argv)
        argv[0] = cc.blobd_bin()
        argv[argv.index("--data-dir") + 1] = self.state
        self.cmd = cc.as_user_argv(uid, gid) + \
            ([cc.seccomp_run_bin(), profile] if profile else []) + argv
        env = dict(env_active, PATH=cc.CONTAINER_PATH)
        self.env = cc.filtered_env(env) if profile else env
        s = svc["Service"]
        self.umask = int(s["UMask"][0], 8)
        self.memlock = cc.size_bytes(s["LimitMEMLOCK"][0])
        self.nofile = int(s["LimitNOFILE"][0])
        self.n = 0

    def limits(self):
        import resource
        os.umask(self.umask)
        cc.set_memlock(self.memlock)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        n = self.nofile if hard == resource.RLIM_INFINITY else \
            min(self.nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))

    def log(self):
        self.n += 1
        return os.path.join(self.work, "activation%d.log" % self.n)

    def with_tool(self, port):
        # It gives the command only the variables named with -E, as
        # systemd gives it only the unit's Environment and EnvironmentFile.
        argv = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port]
        for k, v in sorted(self.env.items()):
            argv.append("-E%s=%s" % (k, v))
        return cc.Proc(argv + self.cmd, self.log(), env=self.env,
                       preexec=self.limits)

    def with_launcher(self, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        try:
            return cc.Proc(launcher_argv(s.fileno()) + self.cmd, self.log(),
                           env=self.env, preexec=self.limits,
                           pass_fds=(s.fileno(),))
        finally:
            s.close()  # blobd holds the only copy now, as under systemd

    def run(self, how, blob=None):
        """Start blobd through `how`, check it, stop it; a blob it stored."""
        for attempt in range(3):
            port = cc.free_port()
            proc = how(port)
            if how == self.with_launcher:
                break
            # systemd-socket-activate binds, then waits for a connection.
            try:
                cc.wait_for(lambda: "Listening on" in proc.log_text() or
                            not proc.alive(), 10, "the socket")
            except cc.TestFailure:
                pass
            if proc.alive():
                break
            check("in use" in proc.log_text() and attempt < 2,
                  "systemd-socket-activate failed:\n" + proc.log_text())
        # The first connection is what starts blobd under the tool.
        st, _, body = cc.request(port, "GET", "/healthz", timeout=20)
        check(st == 200, "GET /healthz through the socket: %d %r" %
              (st, body))
        cc.wait_ready(port, proc)
        check("listening on 127.0.0.1:%d" % port in proc.log_text(),
              "blobd did not take the passed socket:\n" + proc.log_text())
        if blob:
            st, _, got = cc.request(port, "GET", "/blobs/" + blob[0])
            check(st == 200 and got == blob[1], "the blob stored by the "
                  "previous start: GET %d, %d bytes" % (st, len(got)))
        blob = cc.exercise(port, "systemd")
        # From the EnvironmentFile: 127.0.0.1 is a trusted proxy and the
        # access log is on, so the forwarded client address is logged.
        client = "203.0.113.%d" % self.n
        cc.request(port, "GET", "/healthz",
                   headers={"X-Forwarded-For": client})
        cc.wait_for(lambda: client in proc.log_text(), 5,
                    "the access log line of %s (EnvironmentFile)" % client)
        for f in os.listdir(self.state):
            st_ = os.stat(os.path.join(self.state, f))
            check(st_.st_uid == self.uid and not st_.st_mode & 0o077,
                  "%s: owner %d mode %o" % (f, st_.st_uid,
                                            stat.S_IMODE(st_.st_mode)))
        sig = cc.signal_number(self.svc["Service"]["KillSignal"][0])
        grace = cc.duration_s(self.svc["Service"]["TimeoutStopSec"][0])
        t0 = time.monotonic()
        rc = cc.stop(proc, sig, grace)
        check(rc == 0, "exit %d after %s:\n%s" % (rc, sig.name,
                                                 proc.log_text()))
        note("%s: served on the passed socket, exit 0 %.2f s after %s" %
             ("systemd-socket-activate" if how == self.with_tool
              else "fd 3 launcher", time.monotonic() - t0, sig.name))
        return blob


def main():
    opts = cc.Options(cc.blobd_bin())
    svc, _, argv, env_active = check_units(opts)
    missing = []
    m = check_sysusers()
    if m:
        missing.append(m)
    work = cc.tmpdir("blobd-systemd-")
    os.chmod(work, 0o755)
    profile = None
    if shutil.which("systemd-analyze"):
        analyze(work)
        if cc.seccomp_run_bin():
            profile, n = unit_profile(svc, work)
            note("SystemCallFilter: %d system calls allowed" % n)
        else:
            missing.append("seccomp_run")
    else:
        missing.append("systemd-analyze")
    if not cc.can_switch_user():
        cc.skip("needs root and setpriv to run blobd as the unit's user")
    uid, gid = cc.build_sh_ids()
    act = Activation(svc, argv, env_active, work, uid, gid, profile)
    blob = None
    if shutil.which("systemd-socket-activate"):
        blob = act.run(act.with_tool)
    else:
        missing.append("systemd-socket-activate")
    act.run(act.with_launcher, blob)
    if missing:
        cc.skip("checked all but what needs %s (Debian: systemd, "
                "libseccomp-dev)" % ", ".join(missing))


if __name__ == "__main__":
    cc.run(main)
