#!/usr/bin/env python3
"""docs_alerts: the shipped Prometheus alert rules load and behave.

Runs `promtool check rules` on deploy/prometheus/blobd-alerts.yml and
`promtool test rules` on deploy/prometheus/blobd-alerts-test.yml, which
makes every alert fire on series that should raise it and stay quiet on
series that should not.  Also checks that the test file covers every
alert of the rules file.  Without promtool (Debian: prometheus) the test
is skipped (exit 77), or fails when BLOBD_NO_SKIP is set.

    check_alerts.py --top REPO_ROOT
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

SKIP = 77


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", required=True, help="the repository root")
    args = ap.parse_args()
    promtool = shutil.which("promtool")
    if not promtool:
        why = "promtool is not installed (Debian: prometheus)"
        if os.environ.get("BLOBD_NO_SKIP"):
            print("FAIL (would skip, BLOBD_NO_SKIP is set): " + why)
            return 1
        print("SKIP: " + why)
        return SKIP
    d = os.path.join(args.top, "deploy", "prometheus")
    rules = os.path.join(d, "blobd-alerts.yml")
    tests = os.path.join(d, "blobd-alerts-test.yml")

    with open(rules, encoding="utf-8") as f:
        alerts = set(re.findall(r"^\s*- alert: (\w+)\s*$", f.read(), re.M))
    with open(tests, encoding="utf-8") as f:
        tested = set(re.findall(r"^\s*alertname: (\w+)\s*$", f.read(), re.M))
    if not alerts:
        print("FAIL: %s defines no alert" % rules)
        return 1
    if alerts - tested:
        print("FAIL: %s has no test for %s"
              % (tests, ", ".join(sorted(alerts - tested))))
        return 1
    if tested - alerts:
        print("FAIL: %s tests alerts that %s does not define: %s"
              % (tests, rules, ", ".join(sorted(tested - alerts))))
        return 1

    for cmd in ([promtool, "check", "rules", rules],
                [promtool, "test", "rules", tests]):
        print("$ " + " ".join(cmd), flush=True)
        r = subprocess.run(cmd, cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=50)
        sys.stdout.write(r.stdout.decode(errors="replace"))
        if r.returncode != 0:
            print("FAIL: %s exited %d" % (" ".join(cmd[1:3]), r.returncode))
            return 1
    print("docs_alerts: %d alerts, each tested firing and quiet" % len(alerts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
