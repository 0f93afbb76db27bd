"""Blocking calls give way to Ctrl-C (SIGINT -> KeyboardInterrupt)."""
import os
import signal
import subprocess
import sys

import pytest

from conftest import LIMIT, PKG_ROOT

CHILD = r"""
import sys, tsm
ctx = tsm.Context(insecure=True)
sub = ctx.subscriber("never/seen")
pub = ctx.publisher("never/seen")
call = {"recv": lambda: sub.recv(),
        "wait_peers": lambda: ctx.wait_peers(1),
        "wait_subscribers": lambda: pub.wait_subscribers(1)}[sys.argv[1]]
try:
    print("ready", flush=True)
    call()                     # would block forever
except KeyboardInterrupt:
    print("interrupted", flush=True)
    ctx.close()
    sys.exit(3)
"""


@pytest.mark.parametrize("call", ["recv", "wait_peers", "wait_subscribers"])
def test_ctrl_c_interrupts(call):
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.Popen([sys.executable, "-c", CHILD, call], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=LIMIT)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 3, err
    assert "interrupted" in out
