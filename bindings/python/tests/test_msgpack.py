"""The small msgpack codec used for metadata dicts."""
import pytest

import tsm
packb, unpackb = tsm.msgpack.packb, tsm.msgpack.unpackb
from conftest import LIMIT

VALUES = [None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536,
          2**32, 2**64 - 1, -1, -32, -33, -128, -129, -2**15, -2**31 - 1,
          -2**63, 1.5, "", "é" * 40, "x" * 300, b"", b"\x00" * 70000,
          [], [1, [2, [3]]], list(range(20)), {}, {"a": {"b": [None]}},
          {str(i): i for i in range(20)}]


@pytest.mark.parametrize("v", VALUES, ids=repr)
def test_round_trip(v):
    assert unpackb(packb(v)) == v


def test_shortest_forms():
    assert packb(5) == b"\x05"
    assert packb(-5) == b"\xfb"
    assert packb(200) == b"\xcc\xc8"
    assert packb(-100) == b"\xd0\x9c"
    assert packb("ab") == b"\xa2ab"
    assert packb({"k": [True]}) == b"\x81\xa1k\x91\xc3"


def test_refusals():
    with pytest.raises(TypeError):
        packb({1: 2})                 # §9: map keys are strings
    with pytest.raises(TypeError):
        packb(object())
    with pytest.raises(OverflowError):
        packb(2**64)
    with pytest.raises(ValueError):
        unpackb(b"\x92\x01")          # truncated
    with pytest.raises(ValueError):
        unpackb(b"\x01\x02")          # trailing bytes


def test_dict_meta_is_accepted_by_libtsm(ctx):
    meta = {"trace": "00-abc-01", "n": -3, "f": 0.25, "ok": True,
            "blob": b"\x00\x01", "list": [1, "two", None]}
    with ctx.subscriber("meta") as sub, ctx.publisher("meta") as pub:
        pub.publish(b"x", meta=meta)
        with sub.recv(LIMIT) as m:
            assert m.meta_dict() == meta
            assert m.meta == packb(meta)
        pub.publish(b"no meta")
        with sub.recv(LIMIT) as m:
            assert m.meta is None and m.meta_dict() is None
