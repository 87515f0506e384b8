#!/usr/bin/env python3
"""deploy/nginx/blobd-sharded.conf run for real: three blobd instances
behind nginx, GUIDs spread by consistent hashing.

- 60 random GUIDs PUT in mixed forms (lower, upper, dashed, mixed case):
  each is stored on exactly one shard (asked directly) under its
  canonical form, a rewrite in another form replaces it there, a GET in
  every form finds it, and every shard gets some;
- non-GUIDs are refused at the proxy (400 bad_guid; no shard sees them);
- POST /blobs: each blob is found again through its Location and is on
  exactly one shard, stored there by a PUT;
- the merged listing, the fanned-out flush and readiness, /shard/<n>/;
- nginx and every shard restarted: the same placement, all readable;
- one shard down: its GUIDs fail (502/503) for reads and writes, new
  GUIDs that hash to it are never written to another shard, POSTs either
  land on a live shard or fail cleanly, the others keep working; back up,
  everything is there and the refused GUIDs now land on it;
- with bearer tokens on the shards, the client's token reaches them.
"""

import os
import random
import re
import sys
import time

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nginx_common import (DEPLOY, JS_MODULE, Blobd, check,  # noqa
                          find_nginx, json_body, request, run, site_config,
                          start_nginx, track)

NSHARDS = 3
DOWN = (502, 503)


def dashed(g):
    return "%s-%s-%s-%s-%s" % (g[:8], g[8:12], g[12:16], g[16:20], g[20:])


def forms(g):
    """Every spelling blobd accepts, canonical first."""
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(g))
    return [g, g.upper(), dashed(g), dashed(g).upper(), dashed(mixed)]


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.rng = random.Random(os.environ.get("BLOBD_TEST_SEED"))
        self.shards = [track(Blobd(tmp, "shard%d" % i, [
            "--access-log", "--trusted-proxies", "127.0.0.1"])).start()
            for i in range(NSHARDS)]
        self.port = 0
        self.blobs = {}  # canonical GUID -> body
        self.where = {}  # canonical GUID -> shard index
        self.nginx = None
        self.start_nginx()

    def conf(self, port):
        def server(i):
            return lambda old: "127.0.0.1:%d%s" % (
                self.shards[i].port, old[len(old.split()[0]):])

        values = {
            "listen address": "127.0.0.1:%d" % port,
            "temp dir": lambda old: os.path.join(
                self.tmp, "nginx", os.path.basename(old)),
            "njs module": JS_MODULE,
            # The shipped module itself, where it is in the tree.
            "njs file": lambda old: "%s from %s" % (
                old.split()[0], os.path.join(DEPLOY, "blobd_shard.js")),
        }
        for i in range(NSHARDS):
            values["shard %d" % i] = server(i)
        return site_config(os.path.join(DEPLOY, "blobd-sharded.conf"),
                           values)

    def start_nginx(self):
        # nginx's own port has no part in the placement (the shards' do).
        self.nginx = start_nginx(self.tmp, self.conf)
        self.port = self.nginx.port

    def px(self, method, path, body=None, headers=None):
        return request(("127.0.0.1", self.port), method, path, body, headers)

    def holders(self, g, shards=None):
        """The shards (indexes) that hold g, asked directly."""
        out = []
        for i in (range(NSHARDS) if shards is None else shards):
            st, _, _ = request(self.shards[i].addr(), "HEAD", "/blobs/" + g)
            check(st in (200, 404), "HEAD on shard %d: %d" % (i, st))
            if st == 200:
                out.append(i)
        return out

    def entries(self, i):
        st, _, b = request(self.shards[i].addr(), "GET", "/admin/stats")
        check(st == 200, "stats of shard %d: %d" % (i, st))
        return json_body(b, "stats")["manifest"]["entries"]

    def guid(self):
        return "%032x" % self.rng.getrandbits(128)

    def check_all_readable(self, what):
        for g, data in self.blobs.items():
            f = self.rng.choice(forms(g))
            st, _, b = self.px("GET", "/blobs/" + f)
            check(st == 200 and b == data, "%s: GET %s: %d" % (what, f, st))


def test_placement(e):
    for n in range(60):
        g = e.guid()
        data = os.urandom(e.rng.randrange(0, 5000)) + g.encode()
        f = forms(g)[n % 5]
        st, h, b = e.px("PUT", "/blobs/" + f, data)
        check(st == 201, "PUT %s: %d %r" % (f, st, b))
        check(h.get("location") == "/blobs/" + g, "Location %r" % h)
        e.blobs[g] = data
    for g in e.blobs:
        where = e.holders(g)
        check(len(where) == 1, "%s is on shards %r" % (g, where))
        e.where[g] = where[0]
        # The shard was sent the canonical form, whatever the client used.
        check('"PUT /blobs/%s" 201 ' % g in e.shards[where[0]].log_text(),
              "shard %d's log has no PUT of %s" % (where[0], g))
    counts = [list(e.where.values()).count(i) for i in range(NSHARDS)]
    check(min(counts) >= 1, "not spread over every shard: %r" % counts)
    print("  placement of 60 GUIDs: %r" % counts)

    # Every spelling names the same blob on the same shard: a read in each
    # finds it, a rewrite in another replaces it (204) in place.
    for n, (g, data) in enumerate(sorted(e.blobs.items())):
        for f in forms(g):
            st, _, b = e.px("GET", "/blobs/" + f)
            check(st == 200 and b == data, "GET %s: %d" % (f, st))
        if n % 4 == 0:
            new = data + b"+"
            f = forms(g)[(n // 4) % 5]
            st, _, _ = e.px("PUT", "/blobs/" + f, new)
            check(st == 204, "rewrite as %s: %d" % (f, st))
            e.blobs[g] = new
            check(e.holders(g) == [e.where[g]], "%s moved" % g)


def test_bad_guids(e):
    g = e.guid()
    bad = ["xyz", g[:31], g + "0", "{%s}" % dashed(g), "urn:uuid:" + dashed(g),
           g[:8] + "-" + g[8:], dashed(g)[:-1] + "-" + g[-1], g + "/",
           "", "%30" + g[1:], "/" + g, "../blobs/" + g, g + "x"]
    for b in bad:
        for method, body in (("GET", None), ("PUT", b"x"), ("DELETE", None)):
            st, h, data = e.px(method, "/blobs/" + b, body)
            check(st == 400 and json_body(data, "bad GUID")["error"] ==
                  "bad_guid", "%s /blobs/%s: %d %r" % (method, b, st, data))
    for s in e.shards:
        check(g not in s.log_text(), "a shard saw a refused GUID")


def test_post(e):
    before = sum(e.entries(i) for i in range(NSHARDS))
    for n in range(20):
        data = b"posted %d " % n + os.urandom(100)
        st, h, b = e.px("POST", "/blobs", data)
        check(st == 201, "POST /blobs: %d %r" % (st, b))
        loc = h.get("location", "")
        m = re.fullmatch(r"/blobs/([0-9a-f]{32})", loc)
        check(m and json_body(b, "201")["guid"] == m.group(1),
              "Location %r, body %r" % (loc, b))
        g = m.group(1)
        check(g not in e.blobs, "POST reused a GUID")
        st, _, got = e.px("GET", loc)
        check(st == 200 and got == data, "GET %s: %d" % (loc, st))
        where = e.holders(g)
        check(len(where) == 1, "POSTed %s is on shards %r" % (g, where))
        # It reached the shard as a PUT of the GUID chosen by the proxy.
        check('"PUT /blobs/%s" 201 ' % g in e.shards[where[0]].log_text(),
              "shard %d did not get a PUT of %s" % (where[0], g))
        e.blobs[g] = data
        e.where[g] = where[0]
    # The query goes along: ?fsync=true answers once durable.
    st, h, b = e.px("POST", "/blobs?fsync=true", b"durable")
    check(st == 201 and h.get("blob-durable") == "true",
          "POST ?fsync=true: %d %r" % (st, h))
    g = h["location"][len("/blobs/"):]
    e.blobs[g] = b"durable"
    e.where[g] = e.holders(g)[0]
    after = sum(e.entries(i) for i in range(NSHARDS))
    check(after == before + 21, "entries %d -> %d" % (before, after))


def test_listing_and_shared_routes(e):
    direct = []
    for i, s in enumerate(e.shards):
        st, _, b = request(s.addr(), "GET", "/blobs?limit=10000")
        check(st == 200, "listing of shard %d: %d" % (i, st))
        direct += [x["guid"] for x in json_body(b, "listing")["blobs"]]
        # /shard/<n>/ is that instance.
        st, _, b2 = e.px("GET", "/shard/%d/blobs?limit=10000" % i)
        check(st == 200 and json_body(b2, "listing") == json_body(
            b, "listing"), "/shard/%d/blobs: %d" % (i, st))
        st, _, b2 = e.px("GET", "/shard/%d/admin/stats" % i)
        check(st == 200 and json_body(b2, "stats")["manifest"]["entries"]
              == e.entries(i), "/shard/%d/admin/stats: %d" % (i, st))
    check(sorted(direct) == sorted(e.blobs), "the shards hold other blobs")

    # The merged listing walks every shard's GUIDs in order.
    seen, after, pages = [], None, 0
    while pages < 100:
        q = "/blobs?limit=7" + ("&after=" + after if after else "")
        st, _, b = e.px("GET", q)
        check(st == 200, "GET %s: %d %r" % (q, st, b))
        page = json_body(b, "listing")
        check(len(page["blobs"]) <= 7, "page over its limit")
        for x in page["blobs"]:
            check(x["size"] == len(e.blobs[x["guid"]]), "size of " + x["guid"])
        seen += [x["guid"] for x in page["blobs"]]
        pages += 1
        after = page.get("next")
        if not after:
            break
    check(seen == sorted(e.blobs), "merged listing: %d of %d, in order: %s" % (
        len(seen), len(e.blobs), seen == sorted(seen)))
    after = dashed(sorted(e.blobs)[9]).upper()
    st, _, b = e.px("GET", "/blobs?after=" + after)
    check(st == 200 and [x["guid"] for x in json_body(b, "listing")["blobs"]]
          == sorted(e.blobs)[10:], "listing after a dashed GUID")
    # A page filled by one shard alone, which has more: `next` comes from
    # that shard.  New GUIDs above all others, until the last two share a
    # shard; the page after the one before them holds the first of them.
    top = "ffffffff" + "%024x" % e.rng.getrandbits(96)
    tail = []
    for _ in range(60):
        top = "%032x" % (int(top, 16) + 1 + e.rng.getrandbits(32))
        st, _, _ = e.px("PUT", "/blobs/" + top, b"top")
        check(st == 201, "PUT %s: %d" % (top, st))
        e.blobs[top] = b"top"
        e.where[top] = e.holders(top)[0]
        tail.append(top)
        if len(tail) >= 3 and e.where[tail[-1]] == e.where[tail[-2]]:
            break
    check(e.where[tail[-1]] == e.where[tail[-2]], "no two GUIDs on a shard")
    st, _, b = e.px("GET", "/blobs?limit=1&after=" + tail[-3])
    page = json_body(b, "listing")
    check(st == 200 and [x["guid"] for x in page["blobs"]] == [tail[-2]] and
          page.get("next") == tail[-2], "page of one shard: %r" % page)
    # blobd's own answers to a bad query come through.
    for q, code in (("limit=0", "bad_query"), ("after=nope", "bad_guid")):
        st, _, b = e.px("GET", "/blobs?" + q)
        check(st == 400 and json_body(b, q)["error"] == code,
              "GET /blobs?%s: %d %r" % (q, st, b))

    st, _, b = e.px("POST", "/flush")
    doc = json_body(b, "flush")
    check(st == 200 and len(doc["shards"]) == NSHARDS and all(
        s["http_status"] == 200 and "records" in s for s in doc["shards"]),
        "POST /flush: %d %r" % (st, b))
    st, _, b = e.px("GET", "/readyz")
    check(st == 200 and json_body(b, "readyz")["status"] == "ready",
          "/readyz: %d %r" % (st, b))
    st, _, b = e.px("GET", "/healthz")
    check(st == 200, "/healthz: %d" % st)
    for path, method, want, code in (
            ("/shard/%d/healthz" % NSHARDS, "GET", 404, "no_shard"),
            ("/shard/x/healthz", "GET", 404, "no_shard"),
            ("/shard/0/blobs/" + e.guid(), "PUT", 405, "method_not_allowed"),
            ("/shard/0/blobs", "POST", 405, "method_not_allowed"),
            ("/admin/stats", "GET", 404, "no_route"),
            ("/_blobd/post", "POST", 404, "no_route"),
            ("/_blobd/shard/0/healthz", "GET", 404, "no_route"),
            ("/blobs", "DELETE", 405, "method_not_allowed"),
            ("/flush", "GET", 405, "method_not_allowed")):
        st, _, b = e.px(method, path, b"x" if method in ("PUT", "POST")
                        else None)
        check(st == want and json_body(b, path)["error"] == code,
              "%s %s: %d %r" % (method, path, st, b))


def test_restart(e):
    e.nginx.stop()
    ports = [s.port for s in e.shards]
    for s in e.shards:
        s.stop()
    for s, p in zip(e.shards, ports):
        s.start(p)
    e.start_nginx()
    for g in e.blobs:
        check(e.holders(g) == [e.where[g]], "%s moved at restart" % g)
    e.check_all_readable("after restart")


def test_shard_down(e):
    counts = [list(e.where.values()).count(i) for i in range(NSHARDS)]
    k = counts.index(max(counts))  # the largest share: its GUIDs show up
    live = [i for i in range(NSHARDS) if i != k]
    e.shards[k].stop()
    entries = {i: e.entries(i) for i in live}

    for g, data in e.blobs.items():
        f = e.rng.choice(forms(g))
        if e.where[g] == k:
            for method, body in (("GET", None), ("HEAD", None),
                                 ("PUT", b"new"), ("DELETE", None)):
                st, h, b = e.px(method, "/blobs/" + f, body)
                check(st in DOWN, "%s %s on the down shard: %d" % (
                    method, f, st))
                if method != "HEAD":
                    check(json_body(b, "down")["error"], "no error code")
        else:
            st, _, b = e.px("GET", "/blobs/" + f)
            check(st == 200 and b == data, "GET %s (live shard): %d" % (f, st))
    for g in e.blobs:
        if e.where[g] == k:
            check(e.holders(g, live) == [], "%s was written elsewhere" % g)

    # New GUIDs: those of the down shard fail and land nowhere.
    refused, stored = [], []
    for _ in range(45):
        g = e.guid()
        st, _, _ = e.px("PUT", "/blobs/" + e.rng.choice(forms(g)), g.encode())
        check(st in DOWN + (201,), "PUT of a new GUID: %d" % st)
        (stored if st == 201 else refused).append(g)
    check(refused, "no new GUID hashed to the down shard")
    for g in refused:
        check(e.holders(g, live) == [],
              "refused %s landed on a live shard" % g)
    for g in stored:
        check(len(e.holders(g, live)) == 1, "%s not on one live shard" % g)
        e.blobs[g] = g.encode()

    # POSTs: a GUID of the down shard fails (502, nothing stored, no
    # retry elsewhere); any other lands on its live shard.
    posted, failed = 0, 0
    for n in range(30):
        st, h, b = e.px("POST", "/blobs", b"while down %d" % n)
        if st == 201:
            posted += 1
            g = h["location"][len("/blobs/"):]
            check(len(e.holders(g, live)) == 1, "POST %s not on a shard" % g)
            e.blobs[g] = b"while down %d" % n
        else:
            check(st in DOWN and json_body(b, "POST")["error"],
                  "POST while a shard is down: %d %r" % (st, b))
            failed += 1
    check(failed > 0, "every POST succeeded: were they sent elsewhere?")
    now = sum(e.entries(i) for i in live)
    check(now == sum(entries.values()) + len(stored) + posted,
          "live shards gained %d blobs, not %d" % (
              now - sum(entries.values()), len(stored) + posted))
    print("  shard %d down: %d of 45 new GUIDs refused, %d of 30 POSTs" % (
        k, len(refused), failed))

    st, _, b = e.px("POST", "/flush")
    check(st in DOWN and json_body(b, "flush")["error"] == "flush_failed",
          "flush with a shard down: %d %r" % (st, b))
    st, _, b = e.px("GET", "/readyz")
    check(st == 503, "readyz with a shard down: %d" % st)
    st, _, b = e.px("GET", "/blobs")
    check(st in DOWN, "listing with a shard down: %d" % st)

    # Back up: everything is there, and the refused GUIDs land on it.
    e.shards[k].start(e.shards[k].port)
    e.check_all_readable("shard back")
    for g in refused:
        st, _, _ = e.px("PUT", "/blobs/" + g, g.encode())
        check(st == 201, "PUT %s after the shard came back: %d" % (g, st))
        check(e.holders(g) == [k], "%s is not on shard %d" % (g, k))
    st, _, _ = e.px("POST", "/flush")
    check(st == 200, "flush with every shard up: %d" % st)


def test_tokens(e):
    """With bearer tokens on every shard, the client's Authorization goes
    to the shard, also in the requests made to every shard; a refusal
    comes back as the shard gave it."""
    token = "t0ken-%032x" % e.rng.getrandbits(128)
    for s in e.shards:
        s.stop()
        s.args += ["--write-tokens", token]
        s.start(s.port)
    auth = {"Authorization": "Bearer " + token}
    g = e.guid()
    for method, path, body, ok in (
            ("PUT", "/blobs/" + dashed(g), b"t", 201),
            ("GET", "/blobs/" + g, None, 200),
            ("POST", "/blobs", b"t", 201),
            ("GET", "/blobs?limit=3", None, 200),
            ("POST", "/flush", None, 200),
            ("GET", "/shard/1/admin/stats", None, 200)):
        st, h, b = e.px(method, path, body)
        check(st == 401 and json_body(b, path)["error"] == "unauthorized"
              and h.get("www-authenticate", "").startswith("Bearer"),
              "%s %s without a token: %d %r" % (method, path, st, h))
        st, _, b = e.px(method, path, body, auth)
        check(st == ok, "%s %s with a token: %d %r" % (method, path, st, b))


def main(tmp):
    find_nginx(True)
    e = Env(tmp)
    for t in (test_placement, test_bad_guids, test_post,
              test_listing_and_shared_routes, test_restart, test_shard_down,
              test_tokens):
        t0 = time.monotonic()
        t(e)
        print("ok %s (%.2f s)" % (t.__name__, time.monotonic() - t0))
    e.nginx.stop()


if __name__ == "__main__":
    run(main)
