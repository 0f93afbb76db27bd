"""Errors become exceptions named after libtsm's outcome codes."""
import os
import pickle
import re

import pytest

import tsm
from tsm import errors
from conftest import REPO

ERR_H = os.path.join(REPO, "libtsm", "include", "tsm", "err.h")


def header_codes():
    """{name: code} for every TSM_E* class and TSM_ERR_* reason in err.h."""
    text = open(ERR_H).read()
    classes = {m.group(1): int(m.group(2)) for m in
               re.finditer(r"\bTSM_(E[A-Z]+) = (\d+),", text)}
    reasons = {}
    for m in re.finditer(r"\bTSM_ERR_([A-Z_]+) = TSM__R\((\d+), TSM_(E[A-Z]+)\)",
                         text):
        reasons[m.group(1)] = (int(m.group(2)) << 8) | classes[m.group(3)]
    return classes, reasons


@pytest.mark.skipif(not os.path.exists(ERR_H), reason="no source tree")
def test_table_matches_err_h():
    classes, reasons = header_codes()
    assert len(classes) == 12 and len(reasons) > 40
    for name, code in list(classes.items()) + list(reasons.items()):
        assert errors.codes.get(name) == code, name
    assert set(errors.codes) == set(classes) | set(reasons)


def test_every_code_has_a_class_named_after_it():
    for name, code in errors.codes.items():
        # the library agrees on the name of every code in the table
        assert tsm._lib.fast.tsm_err_name(code).decode() == name
        e = errors.error_for(code, "why")
        assert e.code == code and e.name == name and e.detail == "why"
        assert isinstance(e, tsm.Error)
        coarse = errors.error_for(code & 0xFF)
        if code > 0xFF:
            camel = "".join(w.capitalize() for w in name.split("_"))
            assert type(e).__name__ == camel
            assert getattr(tsm, camel) is type(e)
            # a reason derives from its coarse class
            assert isinstance(e, type(coarse)) and type(e) is not type(coarse)


def test_hierarchy_examples():
    assert issubclass(tsm.DeadlineExpired, tsm.QosError)
    assert issubclass(tsm.AuthzDenied, tsm.SecurityError)
    assert issubclass(tsm.QueueFull, tsm.Again)
    assert issubclass(tsm.NoCredentials, tsm.InvalidArgument)
    assert issubclass(tsm.BadTopic, tsm.InvalidArgument)
    assert issubclass(tsm.CertExpired, tsm.SecurityError)
    assert issubclass(tsm.UnknownCa, tsm.SecurityError)
    assert issubclass(tsm.PeerLost, tsm.Closed)
    assert issubclass(tsm.AddrInUse, tsm.TransportError)
    assert issubclass(tsm.Timeout, TimeoutError)
    assert issubclass(tsm.InvalidArgument, ValueError)


def test_unknown_reason_falls_back_to_its_class():
    e = errors.error_for((200 << 8) | 7, "new")
    assert type(e) is tsm.SecurityError and e.code == (200 << 8) | 7


def test_no_credentials():
    with pytest.raises(tsm.NoCredentials) as ei:
        tsm.Context()
    e = ei.value
    assert e.code == tsm.codes["NO_CREDENTIALS"]
    assert e.name == "NO_CREDENTIALS"
    assert e.detail                       # says where and why
    assert e.detail in str(e)


def test_bad_topic_carries_detail(ctx):
    with pytest.raises(tsm.BadTopic) as ei:
        tsm.Publisher(ctx, "a//b")
    assert isinstance(ei.value, tsm.InvalidArgument)
    assert ei.value.detail, "tsm_err_detail was empty"
    assert "a//b" in ei.value.detail or "empty" in ei.value.detail


def test_bad_pattern(ctx):
    with pytest.raises(tsm.BadPattern) as ei:
        tsm.Subscriber(ctx, "a/**/b")
    assert ei.value.detail


def test_bad_url_and_params():
    with pytest.raises(tsm.BadUrl):
        tsm.Context(listen="nope://x", insecure=True)
    with pytest.raises(tsm.BadParams) as ei:
        tsm.Context(insecure=True, no_such_key=1)
    assert "no_such_key" in ei.value.detail
    with pytest.raises(tsm.BadParams):
        tsm.Context(insecure=True, progress="sideways")


def test_bad_qos(ctx):
    with pytest.raises(tsm.BadParams) as ei:
        tsm.Subscriber(ctx, "a/*", backpressure="sometimes")
    assert "sometimes" in ei.value.detail
    with pytest.raises(tsm.BadParams):
        tsm.Publisher(ctx, "a/b", queue_depth=0)


def test_bad_priority_and_deadline(ctx):
    with tsm.Publisher(ctx, "a/b") as pub:
        with pytest.raises(tsm.BadPriority):
            pub.publish(b"x", priority=8)
        with pytest.raises(tsm.BadPriority):
            pub.publish(b"x", priority=-1)
        with pytest.raises(tsm.BadDeadline):
            pub.publish(b"x", deadline=0)
        with pytest.raises(tsm.MsgTooLarge):
            tsm.Publisher(ctx, "a/c", max_msg_size=4).publish(b"12345")


def test_bad_metadata(ctx):
    with tsm.Publisher(ctx, "a/b") as pub:
        with pytest.raises(tsm.BadMetadata) as ei:
            pub.publish(b"x", meta=b"\x91\x01")   # an array, not a map
        assert ei.value.detail


def test_timeout_is_timeouterror(ctx):
    with tsm.Subscriber(ctx, "t/x") as sub:
        with pytest.raises(TimeoutError) as ei:
            sub.recv(timeout=0)
    assert isinstance(ei.value, tsm.Timeout)
    assert ei.value.code == tsm.codes["ETIMEDOUT"]


def test_use_after_close(ctx):
    pub = tsm.Publisher(ctx, "a/b")
    pub.close()
    pub.close()                                   # idempotent
    with pytest.raises(tsm.Closed):
        pub.publish(b"x")
    sub = tsm.Subscriber(ctx, "a/b")
    sub.close()
    with pytest.raises(tsm.Closed):
        sub.recv(0)


def test_errors_pickle():
    e = errors.error_for(tsm.codes["AUTHZ_DENIED"], "topic x")
    f = pickle.loads(pickle.dumps(e))
    assert type(f) is tsm.AuthzDenied and f.detail == "topic x"


def test_recv_timeout_detail_is_its_own(ctx):
    with pytest.raises(tsm.BadTopic):
        ctx.publisher("a//b")
    with ctx.subscriber("x") as sub:
        with pytest.raises(tsm.Timeout) as ei:
            sub.recv(0)
    assert "segment" not in ei.value.detail
