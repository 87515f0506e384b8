#!/usr/bin/env python3
"""docs_metrics: the metrics the docs name are the metrics blobd exports.

Starts the blobd of $BLOBD_BIN on 127.0.0.1 (port 0) in a temporary
directory, makes traffic that moves every part of /metrics (PUT, rewrite,
GET, HEAD, a Range GET, DELETE, a DELETE of a missing blob, POST /flush,
POST /admin/compact, a hold taken and released), fetches /metrics and
checks that:

  - every family (# TYPE line) is named in docs/operations.md and in
    docs/api.md;
  - every blobd_* name in docs/operations.md is a family, or a histogram
    family's _bucket, _sum or _count series (no stale names);
  - every blobd_* name in deploy/prometheus/blobd-alerts.yml and
    blobd-alerts-test.yml exists the same way, and every label matcher the
    rules put on a blobd_* name (name="v", name=~"a|b") names a label and
    values that the exposition has.

    check_metrics.py --top REPO_ROOT
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

NAME = re.compile(r"(?<![A-Za-z0-9_])blobd_[a-z0-9_]*[a-z0-9]")
HIST_SUFFIXES = ("_bucket", "_sum", "_count")


class Failure(Exception):
    pass


def request(port, method, path, body=None, headers=None, timeout=10):
    """(status, body bytes) of one request; HTTP errors are answers too."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def expect(port, method, path, want, body=None, headers=None):
    st, data = request(port, method, path, body, headers)
    if st != want:
        raise Failure("%s %s: status %d, want %d (%r)"
                      % (method, path, st, want, data[:200]))
    return data


def start_blobd(binary, tmp):
    log_path = os.path.join(tmp, "blobd.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--data-dir",
         os.path.join(tmp, "data"), "--flush-interval-ms", "0"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        with open(log_path, "rb") as f:
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)\n", f.read())
        if m:
            return proc, int(m.group(1)), log_path
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    with open(log_path, "rb") as f:
        raise Failure("blobd did not start listening:\n"
                      + f.read().decode(errors="replace"))


def wait_ready(port):
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            if request(port, "GET", "/readyz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise Failure("/readyz did not answer 200 within 10 s")


def parse_metrics(text):
    """{family: type}, {family: {label: set(values)}}, {series name: value}."""
    types, labels, samples = {}, {}, {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)$", line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if not m:
            raise Failure("/metrics: unparseable line %r" % line)
        name = m.group(1)
        samples[name + (m.group(2) or "")] = float(m.group(3))
        lab = labels.setdefault(name, {})
        for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""):
            lab.setdefault(k, set()).add(v)
    return types, labels, samples


def traffic(port):
    g1 = "0123456789abcdef0123456789abcdef"
    g2 = "fedcba9876543210fedcba9876543210"
    missing = "00000000000000000000000000000001"
    blob = os.urandom(70000)
    expect(port, "PUT", "/blobs/" + g1, 201, blob)
    expect(port, "PUT", "/blobs/" + g1, 204, blob[:5000])
    expect(port, "PUT", "/blobs/" + g2, 201, b"")
    expect(port, "POST", "/blobs", 201, b"hello")
    if expect(port, "GET", "/blobs/" + g1, 200) != blob[:5000]:
        raise Failure("GET %s: not the bytes just stored" % g1)
    expect(port, "GET", "/blobs/" + g1, 200)  # from the frame cache
    expect(port, "HEAD", "/blobs/" + g1, 200)
    expect(port, "GET", "/blobs/" + g1, 206, headers={"Range": "bytes=0-9"})
    expect(port, "GET", "/blobs?limit=10", 200)
    expect(port, "DELETE", "/blobs/" + g2, 204)
    expect(port, "DELETE", "/blobs/" + missing, 404)
    expect(port, "POST", "/flush", 200)
    expect(port, "POST", "/admin/compact", 202)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        _, _, s = parse_metrics(expect(port, "GET", "/metrics", 200).decode())
        if s.get("blobd_compactions_total", 0) >= 1:
            break
        time.sleep(0.05)
    expect(port, "POST", "/admin/hold", 200)
    expect(port, "DELETE", "/admin/hold", 200)
    expect(port, "POST", "/flush", 200)


def check_traffic_counted(samples):
    """The traffic above shows in /metrics (so the exposition is live)."""
    want = {
        'blobd_http_requests_total{method="PUT",code="2xx"}': 3,
        'blobd_http_requests_total{method="DELETE",code="4xx"}': 1,
        'blobd_write_refusals_total{reason="not_found"}': 1,
        "blobd_compactions_total": 1,
        "blobd_flushes_total": 1,
        'blobd_request_duration_seconds_count{op="flush"}': 1,
        "blobd_cache_hits_total": 1,
        "blobd_data_writes_total": 2,
    }
    for series, least in want.items():
        if samples.get(series, -1) < least:
            raise Failure("/metrics: %s is %s after the traffic, want >= %d"
                          % (series, samples.get(series), least))


def known(name, types):
    if name in types:
        return True
    for suf in HIST_SUFFIXES:
        if name.endswith(suf) and types.get(name[:-len(suf)]) == "histogram":
            return True
    return False


def mentions(text, name):
    return re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(name),
                     text) is not None


def check_rules_matchers(path, text, types, labels, problems):
    for m in re.finditer(r"(blobd_[a-z0-9_]+)\{([^}]*)\}", text):
        name, body = m.group(1), m.group(2)
        have = labels.get(name, {})
        for lk, op, lv in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', body):
            if lk in ("job", "instance"):  # added by Prometheus, not blobd
                continue
            if lk not in have:
                problems.append("%s: %s has no label %r" % (path, name, lk))
                continue
            if op == "=":
                values = [lv]
            elif op == "=~" and re.fullmatch(r"[A-Za-z0-9_.+|]+", lv):
                values = lv.split("|")
            else:
                continue
            for v in values:
                if v not in have[lk]:
                    problems.append("%s: %s{%s=%r}: no such series in /metrics"
                                    % (path, name, lk, v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", required=True, help="the repository root")
    args = ap.parse_args()
    binary = os.environ.get("BLOBD_BIN")
    if not binary or not os.access(binary, os.X_OK):
        raise Failure("BLOBD_BIN does not name the blobd binary: %r" % binary)

    def read(rel):
        with open(os.path.join(args.top, rel), encoding="utf-8") as f:
            return f.read()

    ops = read("docs/operations.md")
    api = read("docs/api.md")
    rule_files = ["deploy/prometheus/blobd-alerts.yml",
                  "deploy/prometheus/blobd-alerts-test.yml"]
    rules = {p: read(p) for p in rule_files}

    with tempfile.TemporaryDirectory(prefix="blobd-docs-metrics-") as tmp:
        proc, port, log_path = start_blobd(binary, tmp)
        try:
            wait_ready(port)
            traffic(port)
            text = expect(port, "GET", "/metrics", 200).decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        if rc != 0:
            with open(log_path, "rb") as f:
                sys.stdout.write(f.read().decode(errors="replace"))
            raise Failure("blobd exited %d at SIGTERM, want 0" % rc)

    types, labels, samples = parse_metrics(text)
    if len(types) < 10:
        raise Failure("/metrics has only %d families" % len(types))
    check_traffic_counted(samples)
    for fam in types:
        if not any(known(n, {fam: types[fam]}) for n in labels):
            raise Failure("/metrics: family %s has no sample" % fam)

    problems = []
    for fam in sorted(types):
        if not mentions(ops, fam):
            problems.append("docs/operations.md does not document %s (%s)"
                            % (fam, types[fam]))
        if not mentions(api, fam):
            problems.append("docs/api.md does not document %s (%s)"
                            % (fam, types[fam]))
    for name in sorted(set(NAME.findall(ops))):
        if not known(name, types):
            problems.append("docs/operations.md names %s, which /metrics "
                            "does not have" % name)
    for path, text_ in rules.items():
        for name in sorted(set(NAME.findall(text_))):
            if not known(name, types):
                problems.append("%s uses %s, which /metrics does not have"
                                % (path, name))
        check_rules_matchers(path, text_, types, labels, problems)
    if problems:
        raise Failure("\n".join(problems))
    print("docs_metrics: %d families, all documented in docs/operations.md "
          "and docs/api.md; %d blobd_* names in docs/operations.md and "
          "the alert rules all exist"
          % (len(types), len(set(NAME.findall(ops)))))


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL: %s" % e)
        sys.exit(1)
