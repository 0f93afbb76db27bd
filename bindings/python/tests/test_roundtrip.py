"""Messages go through: locally, over inproc:// and over TCP."""
import array
import threading

import pytest

import tsm
from conftest import LIMIT


def test_version_and_clock():
    assert tsm.version().startswith("0.1.")
    a = tsm.now()
    b = tsm.now()
    assert 0 < a <= b


def test_local_round_trip(ctx):
    with ctx.subscriber("demo/**") as sub, ctx.publisher("demo/a") as pub:
        mid = pub.publish(b"hello", meta={"k": 1, "s": "v"})
        with sub.recv(timeout=LIMIT) as msg:
            assert bytes(msg.data) == b"hello"
            assert msg.topic == "demo/a"
            assert msg.id == mid
            assert msg.priority == 4            # TSM_PRIO_DEFAULT
            assert msg.deadline is None
            assert msg.meta_dict() == {"k": 1, "s": "v"}
            assert msg.data.readonly and msg.data.format == "B"


def test_round_trip_between_contexts(pair):
    a, b = pair
    with b.subscriber("rt/*") as sub, a.publisher("rt/x") as pub:
        pub.wait_subscribers(1, LIMIT)
        ids = [pub.publish(b"m%d" % i, priority=i % 8) for i in range(20)]
        got = []
        for _ in ids:
            with sub.recv(LIMIT) as m:
                got.append((m.id, bytes(m.data), m.topic))
        assert [g[0] for g in sorted(got)] == sorted(ids)
        assert {g[1] for g in got} == {b"m%d" % i for i in range(20)}
        assert {g[2] for g in got} == {"rt/x"}
    assert b.stat("rx.msgs") >= 20
    assert a.stat("ctx.insecure") == 1


def test_deadline_and_meta_cross_the_wire(tcp_pair):
    a, b = tcp_pair
    with b.subscriber("m/x") as sub, a.publisher("m/x") as pub:
        pub.wait_subscribers(1, LIMIT)
        pub.publish(b"x", deadline=60.0, meta=tsm.msgpack.packb({"n": [1, 2]}))
        with sub.recv(LIMIT) as m:
            assert m.deadline is not None and m.deadline > tsm.now()
            assert m.meta_dict() == {"n": [1, 2]}


def test_any_buffer_is_accepted(ctx):
    payloads = [
        b"bytes",
        bytearray(b"bytearray"),
        memoryview(b"..readonly slice..")[2:-2],
        array.array("i", [1, 2, 3]),
        memoryview(bytearray(b"0123456789"))[::2],   # not contiguous
        b"",
    ]
    with ctx.subscriber("buf") as sub, ctx.publisher("buf") as pub:
        for p in payloads:
            pub.publish(p)
        for p in payloads:
            with sub.recv(LIMIT) as m:
                assert bytes(m.data) == memoryview(p).tobytes()


def test_bytearray_can_be_reused_after_publish(ctx):
    buf = bytearray(b"first")
    with ctx.subscriber("re") as sub, ctx.publisher("re") as pub:
        pub.publish(buf)
        buf[:] = b"second!"            # not exported any more: resizable
        pub.publish(buf)
        assert sub.recv(LIMIT).tobytes() == b"first"
        assert sub.recv(LIMIT).tobytes() == b"second!"


def test_iteration_stops_at_close(ctx):
    sub = ctx.subscriber("it/*")
    pub = ctx.publisher("it/a")
    for i in range(5):
        pub.publish(b"%d" % i)
    got = [m.tobytes() for m in sub.iter(timeout=0.2)]
    assert got == [b"%d" % i for i in range(5)]
    # for msg in sub: runs until another thread closes the subscriber
    seen = []

    def consume():
        for m in sub:
            seen.append(m.tobytes())
    t = threading.Thread(target=consume)
    t.start()
    pub.publish(b"last")
    while not seen and t.is_alive():
        t.join(0.01)
    sub.close()
    t.join(LIMIT)
    assert not t.is_alive()
    assert seen == [b"last"]


def test_callback_mode(pair):
    a, b = pair
    got, done = [], threading.Event()

    def on_msg(msg):
        with msg:
            got.append((msg.id, msg.tobytes()))
        if len(got) == 50:
            done.set()
    with b.subscriber("cb/**", callback=on_msg) as sub, \
            a.publisher("cb/x") as pub:
        pub.wait_subscribers(1, LIMIT)
        ids = [pub.publish(b"%d" % i) for i in range(50)]
        assert done.wait(LIMIT)
        with pytest.raises(tsm.StateError):
            sub.recv(0)                       # ESTATE in callback mode
    assert sorted(i for i, _ in got) == sorted(ids)


def test_callback_may_keep_the_message(ctx):
    kept, done = [], threading.Event()

    def on_msg(msg):
        kept.append(msg)                      # owned: still valid later
        done.set()
    with ctx.subscriber("keep", callback=on_msg), \
            ctx.publisher("keep") as pub:
        pub.publish(b"kept")
        assert done.wait(LIMIT)
    ctx.close()
    assert kept[0].tobytes() == b"kept"       # outlives its context
    kept[0].release()


def test_callback_cannot_close_its_subscriber(ctx):
    errors, done = [], threading.Event()

    def on_msg(msg):
        try:
            sub.close()
        except tsm.StateError as e:
            errors.append(e)
        done.set()
    sub = ctx.subscriber("self", callback=on_msg)
    ctx.publisher("self").publish(b"x")
    assert done.wait(LIMIT)
    assert errors and not sub.closed


def test_stats_and_transport(ctx):
    st = ctx.stats()
    assert st["ctx.insecure"] == 1
    assert all(isinstance(v, int) for v in st.values())
    assert ctx.stat("pub.published") == st["pub.published"]
    assert ctx.transport in ("io_uring", "epoll")
    with pytest.raises(tsm.BadParams):
        ctx.stat("no.such.counter")


def test_context_close_closes_children():
    ctx = tsm.Context(insecure=True)
    pub = ctx.publisher("c/a")
    sub = ctx.subscriber("c/a")
    ctx.close()
    assert pub.closed and sub.closed and ctx.closed
    with pytest.raises(tsm.Closed):
        pub.publish(b"x")
    with pytest.raises(tsm.Closed):
        ctx.publisher("c/b")
    ctx.close()


def test_wait_peers_times_out():
    with tsm.Context(insecure=True) as c:
        with pytest.raises(tsm.Timeout):
            c.wait_peers(1, timeout=0.25)   # spans several 0.1 s slices


def test_unreferenced_callback_subscriber_keeps_running(ctx):
    import gc
    done = threading.Event()
    ctx.subscriber("pin", callback=lambda m: done.set())   # not kept
    gc.collect()
    ctx.publisher("pin").publish(b"x")
    assert done.wait(LIMIT)


def test_unreferenced_recv_subscriber_is_closed(ctx):
    import gc
    import weakref
    sub = ctx.subscriber("gone")
    ref = weakref.ref(sub)
    del sub
    gc.collect()
    assert ref() is None
    ctx.publisher("gone").publish(b"x")   # nobody queues it
