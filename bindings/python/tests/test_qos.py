"""Deadlines and priorities as seen from Python."""
import time

import pytest

import tsm
from conftest import LIMIT


def sleep_until(t_ns):
    while tsm.now() <= t_ns:
        time.sleep(max(0.001, (t_ns - tsm.now()) / 1e9))


def test_expired_in_queue_is_not_returned(ctx):
    with ctx.subscriber("dl/*") as sub, ctx.publisher("dl/a") as pub:
        before = ctx.stat("drop.deadline_expired")
        pub.publish(b"stale", deadline=0.05)
        t1 = tsm.now()                          # its deadline <= t1 + 50 ms
        pub.publish(b"fresh")                   # no deadline
        sleep_until(t1 + 50_000_000)
        with sub.recv(LIMIT) as m:
            assert m.tobytes() == b"fresh"
        with pytest.raises(tsm.Timeout):
            sub.recv(0)
        assert ctx.stat("drop.deadline_expired") == before + 1


def test_publisher_budget_applies(ctx):
    with ctx.subscriber("b/*") as sub, \
            ctx.publisher("b/a", deadline_budget=0.05) as pub:
        pub.publish(b"stale")
        t1 = tsm.now()
        pub.publish(b"own deadline wins", deadline=60)
        sleep_until(t1 + 50_000_000)
        with sub.recv(LIMIT) as m:
            assert m.tobytes() == b"own deadline wins"
            assert m.deadline > tsm.now()


def test_past_deadline_raises(ctx):
    with ctx.publisher("dl/b") as pub:
        with pytest.raises(tsm.DeadlineExpired) as ei:
            pub.publish(b"late", deadline_at=tsm.now() - 1)
        e = ei.value
        assert isinstance(e, tsm.QosError)
        assert e.code == tsm.codes["DEADLINE_EXPIRED"] and e.detail


def test_deadline_at_is_absolute(ctx):
    with ctx.subscriber("abs") as sub, ctx.publisher("abs") as pub:
        d = tsm.now() + 30 * 10**9
        pub.publish(b"x", deadline_at=d)
        with sub.recv(LIMIT) as m:
            assert m.deadline == d     # same host: the very same instant
        # with both, the earlier wins
        pub.publish(b"y", deadline_at=d, deadline=3600)
        with sub.recv(LIMIT) as m:
            assert m.deadline == d


def test_order_kept_per_lane(pair):
    a, b = pair
    n = 400
    with b.subscriber("prio/*", queue_depth=n) as sub, \
            a.publisher("prio/x") as pub:
        pub.wait_subscribers(1, LIMIT)
        for i in range(n):
            pub.publish(i.to_bytes(4, "little"), priority=i % 8)
        last = {}
        for _ in range(n):
            with sub.recv(LIMIT) as m:
                seq = int.from_bytes(m.data, "little")
                assert m.priority == seq % 8
                assert seq > last.get(m.priority, -1), "lane order broken"
                last[m.priority] = seq
        assert len(last) == 8


def test_local_queue_holds_priority_order(ctx):
    # Everything is queued before the first recv: whatever the library
    # does between lanes, each lane keeps its own order.
    with ctx.subscriber("lp", queue_depth=64) as sub, \
            ctx.publisher("lp") as pub:
        for i in range(64):
            pub.publish(bytes([i]), priority=7 - i % 8)
        per = {}
        for _ in range(64):
            with sub.recv(LIMIT) as m:
                per.setdefault(m.priority, []).append(m.data[0])
        for p, seqs in per.items():
            assert seqs == sorted(seqs)


def test_drop_oldest_keeps_the_newest_and_counts(ctx):
    with ctx.subscriber("bp", queue_depth=2, backpressure="drop_oldest") as sub, \
            ctx.publisher("bp") as pub:
        for i in range(5):
            pub.publish(bytes([i]))
        got = [m.tobytes() for m in sub.iter(timeout=0)]
        assert got == [b"\x03", b"\x04"]
        assert ctx.stat("drop.queue_full") >= 3
