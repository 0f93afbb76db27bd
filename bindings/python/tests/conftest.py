"""Shared fixtures. The tests run against the libtsm the package finds
(tests/run.sh sets TSM_LIBRARY to the fresh build) and the tsm CLI named
by TSM_BIN. Every wait has a generous limit so that nothing hangs; no
test asserts on timing."""
import itertools
import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)                # bindings/python
REPO = os.path.dirname(os.path.dirname(PKG_ROOT))
sys.path.insert(0, PKG_ROOT)

import tsm  # noqa: E402

#: Upper bound for any single wait in the tests (seconds). Generous: it
#: only turns a hang into a failure, it measures nothing.
LIMIT = 20.0

_names = itertools.count()


def unique(prefix):
    return "%s-%d-%d" % (prefix, os.getpid(), next(_names))


@pytest.fixture
def inproc_pair():
    """(a, b): two contexts joined over inproc://, session established."""
    url = "inproc://" + unique("py")
    with tsm.Context(listen=url, insecure=True) as a, \
            tsm.Context(connect=url, insecure=True) as b:
        a.wait_peers(1, LIMIT)
        b.wait_peers(1, LIMIT)
        yield a, b


@pytest.fixture
def tcp_pair():
    """(a, b): b dials a over TCP on 127.0.0.1 (port chosen by the OS)."""
    with tsm.Context(insecure=True) as a:
        url = a.listen("tcp://127.0.0.1:0")
        with tsm.Context(connect=url, insecure=True) as b:
            a.wait_peers(1, LIMIT)
            b.wait_peers(1, LIMIT)
            yield a, b


@pytest.fixture(params=["inproc", "tcp"])
def pair(request):
    """Both transports, one after the other."""
    yield request.getfixturevalue(request.param + "_pair")


@pytest.fixture
def ctx():
    """One context on its own (publishers and subscribers meet locally)."""
    with tsm.Context(insecure=True) as c:
        yield c


def tsm_bin():
    """The tsm CLI: $TSM_BIN, else the source tree's build/, else PATH."""
    cands = [os.environ.get("TSM_BIN"),
             os.path.join(REPO, "build", "examples", "tsm"),
             shutil.which("tsm")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    return None


@pytest.fixture
def cli():
    env = os.environ.get("TSM_BIN")
    if env and not os.access(env, os.X_OK):
        pytest.fail("TSM_BIN=%r is not an executable" % env)
    path = tsm_bin()
    if not path:
        pytest.skip("the tsm CLI was not found: set TSM_BIN")
    return path
