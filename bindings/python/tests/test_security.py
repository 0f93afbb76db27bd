"""Authenticated contexts, with the test PKI of tests/support/pki.sh."""
import os
import shutil
import subprocess
import time

import pytest

import tsm
from conftest import LIMIT, REPO

PKI_SH = os.path.join(REPO, "tests", "support", "pki.sh")
POLICY = ("allow publish spiffe://td-a.test/pub s/**\n"
          "allow subscribe spiffe://td-a.test/sub s/**\n")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if not os.path.exists(PKI_SH) or not shutil.which("openssl"):
        pytest.skip("needs tests/support/pki.sh and the openssl CLI")
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(["sh", PKI_SH, str(d)], check=True, capture_output=True,
                   timeout=120)
    (d / "policy.txt").write_text(POLICY)
    return d


def node(pki, name, **kw):
    return tsm.Context(cert_file=pki / (name + ".chain.pem"),
                       key_file=pki / (name + ".key"),
                       trust_file="td-a.test=%s" % (pki / "bundle-a.pem"),
                       policy_file=pki / "policy.txt", name=name,
                       log_level="error", **kw)


def wait_stat(ctx, name, at_least):
    end = time.monotonic() + LIMIT
    while ctx.stat(name) < at_least and time.monotonic() < end:
        time.sleep(0.01)
    return ctx.stat(name)


def test_secure_round_trip(pki):
    with node(pki, "a-pub") as a:
        url = a.listen("tcp://127.0.0.1:0")
        with node(pki, "a-sub", connect=url + "#spiffe://td-a.test/pub") as b:
            assert a.stat("ctx.insecure") == 0 and b.stat("ctx.insecure") == 0
            with b.subscriber("s/**") as sub, a.publisher("s/t") as pub:
                pub.wait_subscribers(1, LIMIT)
                pub.publish(b"sealed", meta={"who": "py"})
                with sub.recv(LIMIT) as m:
                    assert m.tobytes() == b"sealed"
                    assert m.meta_dict() == {"who": "py"}


def test_wrong_peer_identity_is_refused(pki):
    with node(pki, "a-pub") as a:
        url = a.listen("tcp://127.0.0.1:0")
        with node(pki, "a-sub", connect=url + "#spiffe://td-a.test/other") as b:
            assert wait_stat(b, "reason.peer_id_mismatch", 1) >= 1
            assert b.stat("session.established") == 0
            with pytest.raises(tsm.Timeout):
                b.wait_peers(1, timeout=0)


def test_missing_credential_file(pki):
    with pytest.raises(tsm.NoCredentials) as ei:
        node(pki, "no-such-leaf")
    assert "no-such-leaf" in ei.value.detail


def test_credentials_are_all_or_nothing(pki):
    with pytest.raises(tsm.NoCredentials) as ei:
        tsm.Context(cert_file=pki / "a-pub.chain.pem")
    assert "key_file" in ei.value.detail
