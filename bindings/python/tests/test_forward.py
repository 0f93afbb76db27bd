"""Publisher.forward: a stage hands a received message on (tsm_publish_msg)."""
import time

import pytest

import tsm
from tsm._lib import fast
from conftest import LIMIT

MiB = 1 << 20


def test_forward_shares_the_payload_and_consumes_the_message(ctx):
    big = bytes(range(256)) * (MiB // 256)
    with ctx.subscriber("fw/in") as s_in, ctx.subscriber("fw/out") as s_out, \
            ctx.publisher("fw/in") as p_in, ctx.publisher("fw/out") as p_out:
        p_in.publish(big, meta={"req": 7})
        m = s_in.recv(LIMIT)
        where = fast.tsm_msg_data(m.handle)
        assert m.data == big            # a view made, and released by forward
        mid = p_out.forward(m)
        assert mid > 0
        assert m.released               # libtsm owns (and freed) it now
        with pytest.raises(tsm.StateError):
            m.data
        with s_out.recv(LIMIT) as r:
            assert fast.tsm_msg_data(r.handle) == where, "the payload was copied"
            assert r.data == big
            assert r.meta_dict() == {"req": 7}  # metadata went along


def test_forward_refused_keeps_the_message(ctx):
    with ctx.subscriber("fw/in") as s_in, ctx.publisher("fw/in") as p_in, \
            ctx.publisher("fw/out") as p_out:
        p_in.publish(b"late", deadline=0.05)
        p_in.publish(b"busy")
        late, busy = s_in.recv(LIMIT), s_in.recv(LIMIT)
        time.sleep(0.1)
        # the deadline is end to end: a longer one does not revive it
        with pytest.raises(tsm.DeadlineExpired):
            p_out.forward(late, deadline=60)
        assert not late.released and late.data == b"late"
        late.release()
        # a live slice of the data: nothing is sent, nothing is freed
        part = busy.data[1:]
        with pytest.raises(tsm.BufferInUse):
            p_out.forward(busy)
        assert not busy.released
        del part
        assert p_out.forward(busy) > 0 and busy.released
