"""What every deploy/ test script shares: failing, skipping, the blobd
binary, free ports and waiting.  container_common.py and nginx_common.py
build on it."""

import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SKIP = 77  # SKIP_RETURN_CODE of the CTest entries


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def skip(why):
    """Skip the test, or fail it when BLOBD_NO_SKIP is set (CI)."""
    if os.environ.get("BLOBD_NO_SKIP"):
        print("FAIL (would skip, BLOBD_NO_SKIP is set): " + why)
        sys.exit(1)
    print("SKIP: " + why)
    sys.exit(SKIP)


def blobd_bin():
    b = os.environ.get("BLOBD_BIN")
    if not b or not os.access(b, os.X_OK):
        raise TestFailure("BLOBD_BIN does not name the blobd binary: %r" % b)
    return os.path.abspath(b)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise TestFailure("timed out after %.0f s waiting for %s" %
                      (timeout, what))


def json_body(data, what):
    try:
        return json.loads(data)
    except ValueError:
        raise TestFailure("%s: not JSON: %r" % (what, data[:200]))
