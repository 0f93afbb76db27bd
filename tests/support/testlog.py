#!/usr/bin/env python3
"""tests/support/testlog.py LOG [TAIL]: meson's JSON test log, counted.

Prints "PASSED FAILED SKIPPED" on the first line (EXPECTEDFAIL counts as
passed; FAIL, TIMEOUT, UNEXPECTEDPASS and ERROR as failed). With TAIL > 0
it then prints, for each test that did not pass, a header line and the
last TAIL lines of its output, so that a CI log says why. A missing or
unreadable log counts as nothing run. Used by tests/run.sh and
tests/sanitize/run.sh (through tests/support/results.sh).
"""
import json
import sys


def main():
    tail = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    try:
        lines = open(sys.argv[1]).read().splitlines()
    except OSError:
        lines = []
    passed = failed = skipped = 0
    tails = []
    for line in lines:
        try:
            r = json.loads(line)
            result = r["result"]
        except (ValueError, KeyError, TypeError):
            continue
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
            continue
        if result == "SKIP":
            skipped += 1
            continue
        failed += 1
        if tail > 0:
            out = ((r.get("stdout") or "") + (r.get("stderr") or "")).splitlines()
            tails.append("---- %s: %s, last %d lines ----" % (r.get("name"), result, tail))
            tails.extend(out[-tail:])
    print(passed, failed, skipped)
    if tails:
        print("\n".join(tails))


if __name__ == "__main__":
    main()
