#!/usr/bin/env python3
"""container_dockerfile: deploy/Dockerfile has what the image needs, in
the form a runtime reads it.

- Two stages, both FROM debian:12-slim (or bookworm-slim); the first
  named, the second taking its files from it.
- Every RUN calls deploy/container/build.sh with one of its commands, and
  the final stage runs runtime-deps, user, install and verify.
- USER is not root, and is build.sh's user (by name or uid).
- VOLUME is the data dir that ENV BLOBD_DATA_DIR names; EXPOSE is the port
  of ENV BLOBD_LISTEN, which listens on every address.
- Every ENV BLOBD_ name is an option of blobd --help.
- HEALTHCHECK CMD (exec form) names a file the build stages, with
  interval, timeout and start period; STOPSIGNAL SIGTERM; ENTRYPOINT
  (exec form) is the staged blobd.
"""

import re

import container_common as cc
from container_common import check, note

BASES = ("debian:12-slim", "debian:bookworm-slim")
BUILD_SH_IN_IMAGE = re.compile(
    r"(?:^|[\s;&|])(\S*/)?deploy/container/build\.sh\s+(\S+)|"
    r"(?:^|[\s;&|])/tmp/blobd-container/build\.sh\s+(\S+)")


def build_sh_commands():
    """The commands build.sh accepts, from its case statement."""
    text = cc.read(cc.BUILD_SH)
    body = text[text.index("case $cmd in"):]
    return set(re.findall(r"^  ([a-z][a-z-]*)\)", body, re.M)) | \
        set(re.findall(r"^  ([a-z][a-z-]*) \|", body, re.M))


def run_commands(args):
    """build.sh commands a RUN calls (mount options dropped)."""
    cmd = re.sub(r"--mount=\S+\s*", "", args)
    return [m.group(2) or m.group(3) for m in BUILD_SH_IN_IMAGE.finditer(cmd)]


def main():
    instrs = cc.parse_dockerfile()
    opts = cc.Options(cc.blobd_bin())
    uid, gid = cc.build_sh_ids()
    known = build_sh_commands()
    check({"build", "build-deps", "runtime-deps", "user", "install",
           "verify"} <= known, "build.sh commands: %s" % sorted(known))

    froms = [(a, n) for ins, a, n in instrs if ins == "FROM"]
    check(len(froms) == 2, "%d FROM lines, expected 2 (build, runtime)" %
          len(froms))
    words = froms[0][0].split()
    check(len(words) == 3 and words[1].upper() == "AS",
          "the build stage is not named: FROM %s" % froms[0][0])
    stage_name = words[2]
    for args, line in froms:
        check(args.split()[0] in BASES, "line %d: FROM %s is not one of %s" %
              (line, args, BASES))

    final_cmds = []
    stage = 0
    for ins, args, line in instrs:
        if ins == "FROM":
            stage += 1
        elif ins == "RUN":
            cmds = run_commands(args)
            check(cmds, "line %d: a RUN that does not call "
                  "deploy/container/build.sh: %s" % (line, args))
            for c in cmds:
                check(c in known, "line %d: build.sh has no command %r" %
                      (line, c))
            if stage == 2:
                final_cmds += cmds
        elif ins in ("ADD", "COPY") and stage == 2:
            check("--from=%s" % stage_name in args,
                  "line %d: the final stage copies from the build context "
                  "(%s): only staged files belong in it" % (line, args))
    check(final_cmds == ["runtime-deps", "user", "install", "verify"],
          "the final stage runs build.sh %s, expected runtime-deps, user, "
          "install, verify" % final_cmds)
    check(any("from=%s" % stage_name in a for ins, a, _ in
              cc.final_stage(instrs) if ins in ("RUN", "COPY")),
          "the final stage takes nothing from the %s stage" % stage_name)

    final = cc.final_stage(instrs)

    def one(name):
        vals = [a for ins, a, _ in final if ins == name]
        check(len(vals) == 1, "%d %s in the final stage, expected 1" %
              (len(vals), name))
        return vals[0]

    user = one("USER")
    who = user.split(":")[0]
    check(who not in ("root", "0"), "USER %s is root" % user)
    check(who in ("blobd", str(uid)), "USER %s is not build.sh's blobd "
          "(uid %d)" % (user, uid))
    if ":" in user:
        check(user.split(":")[1] in ("blobd", str(gid)),
              "USER %s: group is not blobd (gid %d)" % (user, gid))

    env = cc.dockerfile_env(instrs)
    opts.check_names([k for k in env if k.startswith("BLOBD_")],
                     "Dockerfile ENV")
    check("BLOBD_LISTEN" in env and "BLOBD_DATA_DIR" in env,
          "ENV lacks BLOBD_LISTEN or BLOBD_DATA_DIR")
    host, _, port = env["BLOBD_LISTEN"].rpartition(":")
    check(host in ("0.0.0.0", "[::]"), "BLOBD_LISTEN=%s: a container must "
          "listen on every address" % env["BLOBD_LISTEN"])
    expose = one("EXPOSE").split()
    check([p.split("/")[0] for p in expose] == [port],
          "EXPOSE %s, BLOBD_LISTEN port %s" % (" ".join(expose), port))

    vol = one("VOLUME")
    vols = cc.exec_form(vol, "VOLUME") if vol.startswith("[") else vol.split()
    check(vols == [env["BLOBD_DATA_DIR"]], "VOLUME %s, BLOBD_DATA_DIR %s" %
          (vol, env["BLOBD_DATA_DIR"]))
    check(env["BLOBD_DATA_DIR"] == "/var/lib/blobd",
          "BLOBD_DATA_DIR is not /var/lib/blobd, where build.sh install "
          "creates it")

    hc_argv, hc_opts = cc.healthcheck_argv(instrs)
    for k in ("interval", "timeout", "start-period"):
        check(k in hc_opts, "HEALTHCHECK without --%s" % k)
        cc.duration_s(hc_opts[k])
    check(hc_argv[0] == "/opt/blobd/bin/blobd-healthcheck",
          "HEALTHCHECK runs %s, not the staged blobd-healthcheck" %
          hc_argv[0])
    check("blobd-healthcheck" in cc.read(cc.BUILD_SH),
          "build.sh does not stage blobd-healthcheck")

    check(one("STOPSIGNAL") == "SIGTERM", "STOPSIGNAL %s, expected SIGTERM"
          % one("STOPSIGNAL"))
    entry = cc.exec_form(one("ENTRYPOINT"), "ENTRYPOINT")
    check(entry == ["/opt/blobd/bin/blobd"], "ENTRYPOINT %s" % entry)
    note("%d instructions; user %s, port %s, volume %s, healthcheck %s" %
         (len(instrs), user, port, vols[0], " ".join(hc_argv)))


if __name__ == "__main__":
    cc.run(main)
