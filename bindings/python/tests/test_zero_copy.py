"""Message.data is libtsm's own buffer, and never outlives it."""
import ctypes
import gc
import pickle

import pytest

import tsm
from tsm._lib import fast
from conftest import LIMIT

MiB = 1 << 20


class _PyBuffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p),
                ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p),
                ("strides", ctypes.c_void_p), ("suboffsets", ctypes.c_void_p),
                ("internal", ctypes.c_void_p)]


def buffer_address(obj):
    """The address a buffer exporter hands out, asked through the C API
    (independent of how the package built the view)."""
    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
    rel = ctypes.pythonapi.PyBuffer_Release
    rel.argtypes = [ctypes.POINTER(_PyBuffer)]
    v = _PyBuffer()
    get(obj, ctypes.byref(v), 0)
    try:
        return v.buf, v.len
    finally:
        rel(ctypes.byref(v))


def payload(n):
    return bytes(range(256)) * (n // 256)


def check_zero_copy(msg, want):
    view = msg.data
    addr, n = buffer_address(view)
    assert n == len(want) == fast.tsm_msg_size(msg.handle)
    assert addr == fast.tsm_msg_data(msg.handle), "the payload was copied"
    # the ctypes array behind the view sits at the same place
    assert ctypes.addressof(view.obj) == addr
    assert view == want


def test_16mib_received_twice_without_copy(ctx):
    big = payload(16 * MiB)
    with ctx.subscriber("big/*") as s1, ctx.subscriber("big/x") as s2, \
            ctx.publisher("big/x") as pub:
        pub.publish(big)
        with s1.recv(LIMIT) as m1, s2.recv(LIMIT) as m2:
            check_zero_copy(m1, big)
            check_zero_copy(m2, big)


def test_16mib_over_tcp_without_copy(tcp_pair):
    a, b = tcp_pair
    big = payload(16 * MiB)
    with b.subscriber("big/*") as sub, a.publisher("big/y") as pub:
        pub.wait_subscribers(1, LIMIT)
        pub.publish(big)
        pub.publish(big[::-1])
        for want in (big, big[::-1]):
            with sub.recv(LIMIT) as m:
                check_zero_copy(m, want)


def test_use_after_release_raises(ctx):
    with ctx.subscriber("u") as sub, ctx.publisher("u") as pub:
        pub.publish(b"payload")
        msg = sub.recv(LIMIT)
        view = msg.data
        assert msg.data is view
        msg.release()
        assert msg.released
        with pytest.raises(tsm.StateError):
            msg.data
        with pytest.raises(tsm.StateError):
            msg.topic
        with pytest.raises(ValueError):       # the released memoryview
            view[0]
        with pytest.raises(ValueError):
            bytes(view)
        msg.release()                         # idempotent


def test_context_manager_releases(ctx):
    with ctx.subscriber("cm") as sub, ctx.publisher("cm") as pub:
        pub.publish(b"x")
        with sub.recv(LIMIT) as msg:
            view = msg.data
        with pytest.raises(ValueError):
            view.tobytes()


def test_release_refuses_while_a_slice_is_alive(ctx):
    with ctx.subscriber("s") as sub, ctx.publisher("s") as pub:
        pub.publish(b"0123456789")
        msg = sub.recv(LIMIT)
        part = msg.data[2:5]                  # shares libtsm's memory
        with pytest.raises(tsm.BufferInUse) as ei:
            msg.release()
        assert isinstance(ei.value, BufferError)
        assert not msg.released
        assert bytes(part) == b"234"          # still valid: nothing freed
        with pytest.raises(tsm.BufferInUse):  # and again, without new views
            msg.release()
        assert bytes(part) == b"234"
        assert msg.data.tobytes() == b"0123456789"
        del part
        msg.release()
        assert msg.released


def test_release_refuses_while_exported(ctx):
    with ctx.subscriber("e") as sub, ctx.publisher("e") as pub:
        pub.publish(b"abc")
        msg = sub.recv(LIMIT)
        exported = pickle.PickleBuffer(msg.data)   # holds a buffer export
        with pytest.raises(tsm.BufferInUse) as ei:
            msg.release()
        assert "export" in str(ei.value)
        assert bytes(exported.raw()) == b"abc"
        exported.release()
        del exported
        msg.release()


def test_a_view_keeps_the_message_alive():
    with tsm.Context(insecure=True) as ctx:
        with ctx.subscriber("k") as sub, ctx.publisher("k") as pub:
            pub.publish(b"still here")
            view = sub.recv(LIMIT).data       # the Message is dropped
    gc.collect()
    assert view.tobytes() == b"still here"


def test_view_is_read_only(ctx):
    with ctx.subscriber("ro") as sub, ctx.publisher("ro") as pub:
        pub.publish(b"abc")
        with sub.recv(LIMIT) as m:
            with pytest.raises(TypeError):
                m.data[0] = 1
