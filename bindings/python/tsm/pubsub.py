"""Publishers and subscribers.

Threading follows libtsm (tsm/pubsub.h): a Publisher may be used by many
threads at once; a Subscriber's recv() may be called from several
threads, each message going to exactly one of them. close() waits for
calls in progress on other threads (they notice within 0.1 s) instead of
freeing the handle under them.
"""
import ctypes
import weakref

from ._lib import (NEVER, OPT_BUDGET, OPT_DEADLINE, OPT_PRIORITY,
                   PUB_OPTS_INIT, SUB_CB, PubOpts, fast, lib)
from . import _msgpack
from ._util import SLICE_NS, Guard, buffer_arg, sliced, tls, to_ns
from .errors import (BadPriority, Closed, StateError, Timeout, check, codes)
from .message import Message

__all__ = ["Publisher", "Subscriber"]

_ESTATE = codes["ESTATE"]
_ETIMEDOUT = codes["ETIMEDOUT"]
_publish = lib.tsm_publish
_publish_msg = lib.tsm_publish_msg
_recv = lib.tsm_sub_recv


def _qos(values, extra):
    """Builds a tsm_qos (opaque, tsm_qos_size() bytes) by name; returns the
    buffer (None for all defaults). values: Python-named options already
    converted to libtsm's keys and strings."""
    items = [(k, v) for k, v in values if v is not None]
    items += [(k, _qos_str(v)) for k, v in extra.items()]
    if not items:
        return None
    buf = ctypes.create_string_buffer(fast.tsm_qos_size())
    check(fast.tsm_qos_init(buf))
    for k, v in items:
        check(fast.tsm_qos_set(buf, k.encode(), v.encode()))
    return buf


def _qos_str(v):
    if v is None:
        return None
    if v is True or v is False:
        return "1" if v else "0"
    return str(v)


def _us(seconds):
    """Seconds -> whole microseconds as libtsm wants them; a positive
    value never rounds down to 0 (which would mean "none")."""
    if seconds is None:
        return None
    us = int(seconds * 1_000_000)
    return str(max(us, 1) if seconds > 0 else us)


def _ms(seconds):
    if seconds is None:
        return None
    ms = int(seconds * 1000)
    return str(max(ms, 1) if seconds > 0 else ms)


def _open(ctx, fn, name, qos):
    """Opens a publisher/subscriber on ctx while holding ctx's guard, so
    that a concurrent ctx.close() cannot free the context under it."""
    out = ctypes.c_void_p()
    cptr = ctx._guard.enter()
    try:
        check(fn(ctypes.byref(out), cptr, name.encode("utf-8"), qos))
    finally:
        ctx._guard.exit()
    return out.value


class Publisher:
    """A publisher on one topic (no wildcards) with default QoS.

    ``priority``: 0 (most urgent) .. 7; ``deadline_budget``: seconds each
    message may live (None = no deadline); ``reliability``: 'reliable' or
    'best_effort'; ``backpressure``: 'block', 'drop_oldest',
    'drop_newest' or 'latest_only'; ``block_timeout``: seconds;
    ``max_msg_size``: bytes. Any other tsm_qos_set key can be given by
    its libtsm name (``queue_depth=...``).
    """

    def __init__(self, ctx, topic, *, priority=None, deadline_budget=None,
                 reliability=None, backpressure=None, block_timeout=None,
                 max_msg_size=None, **qos):
        q = _qos([("priority", _qos_str(priority)),
                  ("deadline_budget_us", _us(deadline_budget)),
                  ("reliability", reliability),
                  ("backpressure", backpressure),
                  ("block_timeout_ms", _ms(block_timeout)),
                  ("max_msg_size", _qos_str(max_msg_size))], qos)
        self.topic = topic
        self.context = ctx
        self._guard = Guard(None, "Publisher(%r)" % topic)
        with ctx._children_lock:
            self._guard.ptr = _open(ctx, lib.tsm_pub_open, topic, q)
            ctx._children.add(self)

    def publish(self, data, *, deadline=None, deadline_at=None,
                priority=None, meta=None):
        """Sends data (any buffer-protocol object; see below) to every
        subscriber of the topic, local and remote. Returns the message id.

        * ``deadline``: seconds from now (float) the message may live,
          overriding the publisher's budget; must be > 0.
        * ``deadline_at``: absolute deadline in ``tsm.now()`` ns. With both,
          the earlier wins. A deadline already past raises DeadlineExpired.
        * ``priority``: 0..7 for this message.
        * ``meta``: user metadata: bytes holding one msgpack map (passed
          as is), or a dict encoded with the package's msgpack encoder.

        The payload is not copied in Python: bytes are passed by address,
        writable buffers through ``from_buffer``, read-only ones through
        a buffer export held during the call (non-contiguous buffers are
        copied once). libtsm copies it before returning, so data may be
        reused at once. May block up to the QoS block_timeout when queues
        are full (then QueueFull).
        """
        opts = self._opts(deadline, deadline_at, priority, meta)
        arg, n, keep = buffer_arg(data)
        g = self._guard
        ptr = g.enter()
        try:
            err = _publish(ptr, arg, n, opts)
            if err:
                check(err)
        finally:
            g.exit()
        del keep
        return opts.msg_id

    def forward(self, msg, *, deadline=None, deadline_at=None,
                priority=None, meta=None):
        """Publishes a received Message on this topic (a pipeline stage)
        without copying its payload where libtsm can hand it over
        (tsm_publish_msg). Returns the new message id.

        On success the message is consumed: ``msg.released`` is True and
        its data may no longer be used. Views of ``msg.data`` must be
        released first (else BufferInUse, and nothing is sent). On any
        error the message stays valid and the caller's.

        The deadline is end to end: the forward keeps msg's deadline;
        ``deadline``/``deadline_at`` (as for publish) can only make it
        earlier (DeadlineExpired if it has passed). msg's metadata goes
        along unless ``meta`` is given; ``priority`` as for publish.
        """
        opts = self._opts(deadline, deadline_at, priority, meta)
        mptr = msg._detach()     # BufferInUse while views are alive
        g = self._guard
        try:
            ptr = g.enter()
        except BaseException:
            msg._attach(mptr)
            raise
        try:
            err = _publish_msg(ptr, mptr, opts)
        finally:
            g.exit()
        if err:
            msg._attach(mptr)    # still ours: libtsm did not take it
            check(err)
        return opts.msg_id

    @staticmethod
    def _opts(deadline, deadline_at, priority, meta):
        opts = PubOpts.from_buffer_copy(PUB_OPTS_INIT)
        if priority is not None:
            if not 0 <= priority <= 7:
                raise BadPriority(detail="priority %r is not in 0..7"
                                  % (priority,))
            opts.flags |= OPT_PRIORITY
            opts.priority = priority
        if deadline is not None:
            ns = int(deadline * 1_000_000_000)
            opts.flags |= OPT_BUDGET
            opts.budget = max(ns, 1) if deadline > 0 else ns
        if deadline_at is not None:
            opts.flags |= OPT_DEADLINE
            opts.deadline = deadline_at
        if meta is not None:
            if isinstance(meta, dict):
                meta = _msgpack.packb(meta)
            elif type(meta) is not bytes:
                meta = bytes(meta)   # at most 4 KiB
            opts.meta = meta
            opts.meta_len = len(meta)
        return opts

    def wait_subscribers(self, n=1, timeout=None):
        """Blocks until at least n remote sessions subscribe to the topic
        (local subscribers do not count); raises Timeout after timeout
        seconds (None = forever). Ctrl-C interrupts it."""
        check(sliced(self._guard, lambda p, t:
                     lib.tsm_pub_wait_subscribers(p, n, t), timeout))

    def flush(self, timeout=None):
        """Blocks until everything this context queued has been handed to
        the kernel or dropped with a counted reason; raises Timeout after
        timeout seconds. Ctrl-C interrupts it. (Each 0.1 s slice asks for
        a new flush, so messages other threads publish meanwhile are
        waited for too.)"""
        check(sliced(self._guard, lib.tsm_pub_flush, timeout))

    @property
    def closed(self):
        return self._guard.closed

    def close(self):
        """Releases the publisher. Idempotent."""
        ptr = self._guard.close()
        if ptr:
            lib.tsm_pub_close(ptr)
            self.context._forget(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<tsm.Publisher %r%s>" % (self.topic,
                                          " closed" if self.closed else "")


def _trampoline(sub_ref, fn):
    """The C callback for one subscriber. It runs on libtsm's delivery
    thread (with the GIL taken by ctypes) and wraps each tsm_msg in a
    Message that the Python callback owns. It holds the Subscriber only
    weakly; a message arriving after close is freed unseen."""
    def on_msg(_arg, mptr):
        msg = Message(mptr)
        sub = sub_ref()
        if sub is None or sub._guard.closed:
            msg.release()
            return
        prev = getattr(tls, "in_callback", None)
        tls.in_callback = sub
        try:
            fn(msg)
        finally:
            tls.in_callback = prev
    return SUB_CB(on_msg)


class Subscriber:
    """A subscriber on a topic pattern ('*' one segment, final '**' any
    trailing segments) with its own bounded queue.

    ``queue_depth``: messages; ``backpressure``: 'block', 'drop_oldest',
    'drop_newest' or 'latest_only'; ``reliability``: 'reliable' or
    'best_effort'; ``max_msg_size``: bytes; other tsm_qos_set keys by
    name. With ``callback``, messages are delivered to callback(msg) on
    libtsm's delivery thread instead of through recv().

    ``for msg in sub:`` yields messages until the subscriber or its
    context is closed; ``sub.iter(timeout=s)`` also stops after s
    seconds without a message.

    A subscriber nobody references any more is closed, except in callback
    mode: the context keeps those until they or the context are closed.
    """

    def __init__(self, ctx, pattern, *, queue_depth=None, backpressure=None,
                 reliability=None, max_msg_size=None, callback=None, **qos):
        q = _qos([("queue_depth", _qos_str(queue_depth)),
                  ("backpressure", backpressure),
                  ("reliability", reliability),
                  ("max_msg_size", _qos_str(max_msg_size))], qos)
        self.pattern = pattern
        self.context = ctx
        self._guard = Guard(None, "Subscriber(%r)" % pattern)
        self._callback = None
        with ctx._children_lock:
            self._guard.ptr = _open(ctx, lib.tsm_sub_open, pattern, q)
            ctx._children.add(self)
        if callback is not None:
            self.set_callback(callback)

    def recv(self, timeout=None):
        """Returns the next Message (the caller owns it), waiting up to
        timeout seconds (None = forever, 0 = poll). Raises Timeout, Closed
        when the subscriber or context closes, StateError in callback
        mode. Expired messages are dropped and counted, never returned.
        Ctrl-C interrupts the wait."""
        out = ctypes.c_void_p()
        ref = ctypes.byref(out)
        total = to_ns(timeout)
        g = self._guard
        ptr = g.enter()
        try:   # first slice inline: the common case returns from here
            err = _recv(ptr, ref, total if total < SLICE_NS else SLICE_NS)
        finally:
            g.exit()
        if err == _ETIMEDOUT and total > SLICE_NS:
            left = None if total == NEVER else (total - SLICE_NS) / 1e9
            err = sliced(g, lambda p, t: _recv(p, ref, t), left)
        if err:
            check(err)
        return Message(out.value)

    def iter(self, timeout=None):
        """Yields messages until the subscriber closes or, with timeout,
        until no message came for timeout seconds."""
        while True:
            try:
                yield self.recv(timeout)
            except (Closed, Timeout):
                return

    def __iter__(self):
        return self.iter()

    def set_callback(self, callback):
        """Switches to callback delivery: callback(msg) runs on libtsm's
        delivery thread, one call at a time, and owns msg (release it, or
        let it go). It must not close this subscriber or the context.
        Exceptions it raises are printed and ignored (ctypes' rule for
        callbacks). None switches back to recv()."""
        cb = SUB_CB() if callback is None else _trampoline(
            weakref.ref(self), callback)
        with self._guard as ptr:
            check(lib.tsm_sub_set_callback(ptr, cb, None))
        self._callback = callback
        if callback is not None:
            # libtsm may still be inside the previous callback after this
            # returns, and after tsm_sub_close: the context keeps every
            # thunk until tsm_ctx_close has joined its delivery thread.
            self.context._keep(cb)
            # A callback subscriber is often not referenced by its user:
            # the context holds it until it (or the context) is closed.
            self.context._pinned.add(self)
        else:
            self.context._pinned.discard(self)

    @property
    def closed(self):
        return self._guard.closed

    def close(self):
        """Releases the subscriber and drops what is queued for it (messages
        already received stay valid). Must not be called from its own
        callback. Idempotent."""
        if getattr(tls, "in_callback", None) is self:
            raise StateError(_ESTATE, "a subscriber cannot be closed from "
                             "its own callback")
        ptr = self._guard.close()
        if ptr:
            lib.tsm_sub_close(ptr)
            self.context._forget(self)
            self.context._pinned.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if getattr(tls, "in_callback", None) is not self:
                self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<tsm.Subscriber %r%s>" % (self.pattern,
                                           " closed" if self.closed else "")
