#!/usr/bin/env python3
"""container_compose: deploy/compose.yaml parses, and agrees with the
files it names and the image it builds.

- blobd is built from deploy/Dockerfile (paths relative to deploy/, as
  Compose resolves them); its volume is mounted on the image's VOLUME;
  its environment names only options of blobd --help; BLOBD_LISTEN's
  port is the image's EXPOSE.
- The seccomp profile it names exists and allows io_uring; the memlock
  ulimit covers the registered I/O buffers (store/io_uring.c); the stop
  grace period exceeds the shutdown timeout.
- BLOBD_TRUSTED_PROXIES is exactly nginx's fixed address, inside the
  network's subnet; blobd's own address is fixed in it too.
- nginx mounts deploy/nginx/blobd-proxy.conf, whose upstream is the blobd
  service on BLOBD_LISTEN's port and whose listen port is the one
  published; nginx waits for blobd to be healthy.
"""

import ipaddress
import json
import os
import re

import container_common as cc
from container_common import check, note


def main():
    try:
        import yaml
    except ImportError:
        cc.skip("no python3 yaml module (Debian: python3-yaml)")
    with open(cc.COMPOSE) as f:
        doc = yaml.safe_load(f)
    check(isinstance(doc, dict) and "services" in doc,
          "compose.yaml has no services")
    base = os.path.dirname(cc.COMPOSE)
    svcs = doc["services"]
    check(set(svcs) == {"blobd", "nginx"}, "services %s, expected blobd and "
          "nginx" % sorted(svcs))
    blobd, nginx = svcs["blobd"], svcs["nginx"]
    opts = cc.Options(cc.blobd_bin())
    instrs = cc.parse_dockerfile()
    img_env = cc.dockerfile_env(instrs)

    ctx = os.path.normpath(os.path.join(base, blobd["build"]["context"]))
    df = os.path.join(ctx, blobd["build"]["dockerfile"])
    check(os.path.samefile(df, cc.DOCKERFILE), "blobd is built from %s, not "
          "deploy/Dockerfile" % df)
    check(os.path.samefile(ctx, cc.TOP), "the build context %s is not the "
          "repository root" % ctx)

    env = {k: str(v) for k, v in blobd["environment"].items()}
    opts.check_names(env, "compose.yaml blobd environment")
    listen = env.get("BLOBD_LISTEN", img_env["BLOBD_LISTEN"])
    port = listen.rpartition(":")[2]
    expose = [a for ins, a, _ in cc.final_stage(instrs) if ins == "EXPOSE"]
    check(expose and expose[0].split("/")[0] == port,
          "BLOBD_LISTEN port %s is not the image's EXPOSE %s" % (port, expose))
    data_dir = env.get("BLOBD_DATA_DIR", img_env["BLOBD_DATA_DIR"])
    vols = [v for v in blobd["volumes"] if isinstance(v, str)]
    check(any(v.split(":")[1] == data_dir for v in vols),
          "no volume on the data dir %s: %s" % (data_dir, vols))
    named = [v.split(":")[0] for v in vols]
    for n in named:
        if not n.startswith((".", "/")):
            check(n in (doc.get("volumes") or {}),
                  "volume %s is not declared" % n)

    sec = blobd.get("security_opt", [])
    prof = [s.split("=", 1)[1] for s in sec if s.startswith("seccomp=")]
    check(len(prof) == 1, "security_opt names %d seccomp profiles" %
          len(prof))
    path = os.path.normpath(os.path.join(base, prof[0]))
    check(os.path.samefile(path, cc.PROFILE),
          "the seccomp profile %s is not deploy/seccomp/blobd.json" % path)
    allowed = {n for e in json.loads(cc.read(path))["syscalls"]
               if e["action"] == "SCMP_ACT_ALLOW" for n in e["names"]}
    for n in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        check(n in allowed, "the profile does not allow %s" % n)

    memlock = int(blobd["ulimits"]["memlock"])
    need = cc.memlock_needed()
    check(memlock >= need + (1 << 20), "ulimits memlock %d: the registered "
          "buffers need %d plus the rings" % (memlock, need))
    grace = cc.duration_s(blobd["stop_grace_period"])
    shut = opts.shutdown_timeout(env)
    check(grace >= shut + 10, "stop_grace_period %.0f s leaves no room for "
          "a %d s drain and the final flush" % (grace, shut))

    nets = doc["networks"]
    check(len(nets) == 1, "expected one network, got %s" % sorted(nets))
    net_name, net = next(iter(nets.items()))
    subnet = ipaddress.ip_network(net["ipam"]["config"][0]["subnet"])
    addr = {}
    for name, s in (("blobd", blobd), ("nginx", nginx)):
        a = s["networks"][net_name]["ipv4_address"]
        check(ipaddress.ip_address(a) in subnet, "%s's %s is outside %s" %
              (name, a, subnet))
        addr[name] = a
    check(env.get("BLOBD_TRUSTED_PROXIES") == addr["nginx"],
          "BLOBD_TRUSTED_PROXIES=%r, nginx is at %s" %
          (env.get("BLOBD_TRUSTED_PROXIES"), addr["nginx"]))

    mounts = [v.split(":") for v in nginx["volumes"]]
    conf = [m for m in mounts if m[0].endswith("blobd-proxy.conf")]
    check(len(conf) == 1, "nginx does not mount blobd-proxy.conf")
    src = os.path.normpath(os.path.join(base, conf[0][0]))
    check(src == os.path.join(cc.DEPLOY, "nginx", "blobd-proxy.conf"),
          "nginx mounts %s" % src)
    check(os.path.isfile(src), "%s does not exist" % src)
    cmd = nginx["build"]["dockerfile_inline"]
    check(conf[0][1] == "/etc/nginx/nginx.conf" or conf[0][1] in cmd,
          "nginx reads neither /etc/nginx/nginx.conf nor %s" % conf[0][1])
    text = cc.read(src)
    up = re.search(r"upstream\s+\S+\s*\{[^}]*?\bserver\s+([^:\s]+):(\d+)",
                   text)
    check(up, "no upstream server in %s" % src)
    check(up.group(1) == "blobd" and up.group(2) == port,
          "nginx's upstream is %s:%s, blobd is service blobd on port %s" %
          (up.group(1), up.group(2), port))
    listen_n = re.search(r"^\s*listen\s+(?:\S+:)?(\d+)", text, re.M)
    check(listen_n, "no listen in %s" % src)
    published = [str(p).split(":")[-1] for p in nginx["ports"]]
    check(published == [listen_n.group(1)], "nginx publishes %s, listens "
          "on %s" % (published, listen_n.group(1)))
    for t in nginx.get("tmpfs", []):
        check(t in text, "tmpfs %s is not a path of the configuration" % t)
    dep = nginx["depends_on"]["blobd"]["condition"]
    check(dep == "service_healthy", "nginx depends on blobd %s" % dep)
    note("blobd %s behind nginx %s; memlock %d MiB, grace %.0f s" %
         (addr["blobd"], addr["nginx"], memlock >> 20, grace))


if __name__ == "__main__":
    cc.run(main)
