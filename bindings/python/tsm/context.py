"""Context: one libtsm node (identity, transports, progress thread).

The C parameter block is never mirrored: it is a byte buffer of
``tsm_ctx_params_size()`` bytes, filled by ``tsm_ctx_params_init`` and
set field by field with ``tsm_ctx_params_set``. libtsm borrows the value
strings until ``tsm_ctx_open`` returns, so they are kept in a list until
then.
"""
import atexit
import ctypes
import os
import threading
import weakref

from ._lib import STATS_FN, PeerInfo, fast, lib
from ._util import Guard, sliced, tls
from .errors import StateError, check, codes

__all__ = ["Context"]

_ESTATE = codes["ESTATE"]
_live = weakref.WeakSet()   # open contexts, closed at interpreter exit


def _param_str(value):
    if value is True or value is False:
        return b"1" if value else b"0"
    if isinstance(value, bytes):
        return value
    if isinstance(value, os.PathLike):
        return os.fsencode(value)
    return str(value).encode("utf-8")


def _urls(v):
    if v is None:
        return []
    return [v] if isinstance(v, (str, bytes, os.PathLike)) else list(v)


class Context:
    """A libtsm node. Use as a context manager, or call close().

    ``listen``/``connect``: a URL or a list of URLs (``tcp://HOST:PORT``,
    ``inproc://NAME``...). Credentials (``cert_file``, ``key_file``,
    ``trust_file``, ``policy_file``, ``crl_file``) are required unless
    ``insecure=True`` is asked for explicitly (then no authentication and
    no encryption; both peers must agree). ``progress``: 'blocking' or
    'busy_poll'; ``log_level``: 'error', 'warn', 'info' or 'debug'.
    Every other ``tsm_ctx_params_set`` key can be passed by name
    (``linger_ms=0``, ``fragment_size=65536``, ``crl_soft_fail=True``...).
    Failures raise the matching tsm.Error (NoCredentials, BadUrl,
    AddrInUse, BadParams...).
    """

    def __init__(self, listen=None, connect=None, *, insecure=False,
                 cert_file=None, key_file=None, trust_file=None,
                 policy_file=None, crl_file=None, progress=None, name=None,
                 log_level=None, **params):
        items = [("listen", u) for u in _urls(listen)]
        items += [("connect", u) for u in _urls(connect)]
        items += [("seed", u) for u in _urls(params.pop("seed", None))]
        items += [("advertise", u)
                  for u in _urls(params.pop("advertise", None))]
        named = [("insecure", insecure), ("cert_file", cert_file),
                 ("key_file", key_file), ("trust_file", trust_file),
                 ("policy_file", policy_file), ("crl_file", crl_file),
                 ("progress", progress), ("name", name),
                 ("log_level", log_level)] + list(params.items())
        items += [(k, v) for k, v in named if v is not None]
        p = ctypes.create_string_buffer(fast.tsm_ctx_params_size())
        check(fast.tsm_ctx_params_init(p))
        keep = []   # borrowed by libtsm until tsm_ctx_open returns
        for key, value in items:
            k, v = key.encode(), _param_str(value)
            keep += (k, v)
            check(fast.tsm_ctx_params_set(p, k, v))
        out = ctypes.c_void_p()
        check(lib.tsm_ctx_open(ctypes.byref(out), p))
        del keep
        self._guard = Guard(out.value, "Context")
        self._children = weakref.WeakSet()
        self._children_lock = threading.RLock()
        self._thunks = []
        self._pinned = set()    # callback subscribers, kept until closed
        self.insecure = bool(insecure)
        _live.add(self)

    # -- children ---------------------------------------------------------

    def _forget(self, child):
        self._children.discard(child)

    def _keep(self, thunk):
        self._thunks.append(thunk)

    def publisher(self, topic, **qos):
        """Publisher(self, topic, **qos)."""
        from .pubsub import Publisher
        return Publisher(self, topic, **qos)

    def subscriber(self, pattern, **kw):
        """Subscriber(self, pattern, **kw)."""
        from .pubsub import Subscriber
        return Subscriber(self, pattern, **kw)

    # -- operations -------------------------------------------------------

    def listen(self, url):
        """Adds a listener; returns the URL actually bound (useful with
        port 0: ``ctx.listen('tcp://127.0.0.1:0')``)."""
        bound = ctypes.create_string_buffer(512)
        with self._guard as ptr:
            check(lib.tsm_ctx_listen(ptr, _param_str(url), bound,
                                     len(bound)))
        return bound.value.decode("utf-8")

    def dial(self, url):
        """Adds a peer to dial; the session comes up in the background."""
        with self._guard as ptr:
            check(lib.tsm_ctx_dial(ptr, _param_str(url)))

    def wait_peers(self, n=1, timeout=None):
        """Blocks until at least n sessions are established; raises
        Timeout after timeout seconds (None = forever). Ctrl-C
        interrupts it."""
        check(sliced(self._guard,
                     lambda p, t: lib.tsm_ctx_wait_peers(p, n, t), timeout))

    def peers(self, limit=1024):
        """What discovery knows (docs/design/discovery.md): a list of
        dicts, this node first ('state': 'self'), then the others with
        'identity', 'state' ('connected', 'dialing', 'known', 'left'),
        'transport', 'url', 'npub', 'nsub' and 'heard_ms'."""
        out = (PeerInfo * limit)()
        n = ctypes.c_size_t()
        with self._guard as ptr:
            check(lib.tsm_ctx_peers(ptr, out, limit, ctypes.byref(n)))
        return [{"node_id": p.node_id,
                 "identity": p.identity.decode("utf-8", "replace"),
                 "state": p.state.decode(), "transport": p.transport.decode(),
                 "url": p.url.decode("utf-8", "replace"), "npub": p.npub,
                 "nsub": p.nsub, "heard_ms": p.heard_ms}
                for p in out[:min(n.value, limit)]]

    @property
    def transport(self):
        """The I/O engine in use for TCP: 'io_uring' or 'epoll'."""
        with self._guard as ptr:
            return fast.tsm_ctx_transport(ptr).decode()

    def stat(self, name):
        """One counter by name (see docs/stats.md); BadParams if unknown."""
        v = ctypes.c_uint64()
        with self._guard as ptr:
            check(fast.tsm_stats_get(ptr, name.encode(), ctypes.byref(v)))
        return v.value

    def stats(self):
        """Every counter, as {name: value}, in libtsm's stable order."""
        out = {}

        def put(_arg, name, value):
            out[name.decode()] = value
        fn = STATS_FN(put)
        with self._guard as ptr:
            check(lib.tsm_stats_foreach(ptr, fn, None))
        return out

    # -- closing ----------------------------------------------------------

    @property
    def closed(self):
        return self._guard.closed

    def close(self):
        """Closes every publisher and subscriber still open on the context,
        then the context: what is queued is sent for at most linger
        (default 1 s), sessions close, threads are joined. Received
        messages stay valid. Ctrl-C stops the wait (the close itself
        finishes in the background). Must not be called from a subscriber
        callback. Idempotent."""
        if getattr(tls, "in_callback", None) is not None:
            raise StateError(_ESTATE, "a context cannot be closed from a "
                             "subscriber callback")
        self._close(wait=True)

    def _close(self, wait):
        # Closed first, so that no publisher or subscriber can be opened
        # any more; then those still open, each waiting for its own calls
        # in progress; then the context.
        ptr = self._guard.close()
        if not ptr:
            return
        with self._children_lock:
            children = list(self._children)
        for c in children:
            c.close()
        _live.discard(self)
        thunks, self._thunks = self._thunks, None

        def run():
            lib.tsm_ctx_close(ptr)
            del thunks[:]   # the delivery thread is joined: safe to drop
        try:
            t = threading.Thread(target=run, name="tsm_ctx_close",
                                 daemon=True)
            t.start()
        except RuntimeError:    # interpreter shutdown: no new threads
            run()
            return
        while wait and t.is_alive():
            t.join(0.1)         # a slice, so that Ctrl-C is seen

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # May run on any thread, even the delivery thread inside a
        # callback: never wait there (tsm_ctx_close joins that thread).
        try:
            self._close(wait=getattr(tls, "in_callback", None) is None)
        except Exception:
            pass

    def __repr__(self):
        return "<tsm.Context%s>" % (" closed" if self.closed else "")


@atexit.register
def _close_all():
    """Closes the contexts still open at exit, while Python can still run
    the callbacks their delivery threads may be in."""
    for ctx in list(_live):
        try:
            ctx._close(wait=True)
        except Exception:
            pass
