"""Many Python threads on one publisher and one subscriber."""
import collections
import struct
import threading

import tsm
from conftest import LIMIT

THREADS, EACH = 8, 1000


def run_threads(fns):
    ts = [threading.Thread(target=f) for f in fns]
    for t in ts:
        t.start()
    return ts


def test_eight_threads_publish_concurrently(pair):
    a, b = pair
    seen = collections.Counter()
    ids = collections.Counter()
    errors = []
    with b.subscriber("mt/*", queue_depth=THREADS * EACH) as sub, \
            a.publisher("mt/x") as pub:
        pub.wait_subscribers(1, LIMIT)
        start = threading.Barrier(THREADS)

        def publisher(tid):
            def run():
                try:
                    start.wait()
                    for i in range(EACH):
                        ids[pub.publish(struct.pack("<II", tid, i))] += 1
                except Exception as e:      # reported below
                    errors.append(e)
            return run
        ts = run_threads([publisher(t) for t in range(THREADS)])
        for _ in range(THREADS * EACH):
            with sub.recv(LIMIT) as m:
                seen[struct.unpack("<II", m.data)] += 1
        for t in ts:
            t.join(LIMIT)
        assert not errors
        assert not any(t.is_alive() for t in ts)
        # every message once, none extra
        assert len(seen) == THREADS * EACH
        assert set(seen.values()) == {1}
        assert len(ids) == THREADS * EACH    # message ids are unique
        try:
            extra = sub.recv(0.2)
        except tsm.Timeout:
            extra = None
        assert extra is None


def test_four_threads_receive_each_message_once(ctx):
    n = 4000
    got = collections.Counter()
    lock = threading.Lock()
    with ctx.subscriber("mr", queue_depth=n) as sub, \
            ctx.publisher("mr") as pub:
        def receiver():
            for m in sub.iter(timeout=1.0):
                with m:
                    k = int.from_bytes(m.data, "little")
                with lock:
                    got[k] += 1
        ts = run_threads([receiver] * 4)
        for i in range(n):
            pub.publish(i.to_bytes(4, "little"))
        for t in ts:
            t.join(LIMIT)
    assert len(got) == n and set(got.values()) == {1}


def test_close_while_another_thread_waits(ctx):
    sub = ctx.subscriber("cw")
    out = []

    def waiter():
        try:
            sub.recv(LIMIT)
        except tsm.Closed as e:
            out.append(e)
    t = threading.Thread(target=waiter)
    t.start()
    sub.close()          # waits for the recv slice in progress, no crash
    t.join(LIMIT)
    assert not t.is_alive() and out
