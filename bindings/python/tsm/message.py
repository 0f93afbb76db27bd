"""Received messages: a zero-copy view of libtsm's buffer, and its release.

``Message.data`` is a read-only ``memoryview`` (format ``'B'``) over the
bytes libtsm received, built from ``tsm_msg_data``/``tsm_msg_size`` with
``(c_char * n).from_address``: no copy is made. The memory belongs to the
``tsm_msg`` and is freed by ``tsm_msg_free``, so the view must never
outlive it:

* ``Message.release()`` (or leaving ``with msg:``) releases every
  memoryview the message handed out, then frees the ``tsm_msg``. Using
  those views afterwards raises ``ValueError`` (Python's "released
  memoryview"), and ``msg.data`` raises ``tsm.StateError``.
* If a view derived from ``msg.data`` is still alive (a slice, a numpy
  array made with ``frombuffer``, a ``pickle.PickleBuffer``...), release()
  raises ``tsm.BufferInUse`` and frees nothing: the message stays valid
  until those are gone and release() is called again.
* Without release(), the ``tsm_msg`` is freed when the last reference to
  the message *and* to every view of its data is gone (each view keeps
  the memory alive), never earlier.
"""
import ctypes
import weakref

from ._lib import NEVER, fast
from . import _msgpack
from .errors import BufferInUse, StateError, codes

__all__ = ["Message"]

_ESTATE = codes["ESTATE"]
_free = fast.tsm_msg_free


class _Owner:
    """Owns one tsm_msg pointer; frees it once (explicitly or when the
    last Message or data view referring to it goes away)."""

    __slots__ = ("ptr", "__weakref__")

    def __init__(self, ptr):
        self.ptr = ptr

    def free(self):
        p, self.ptr = self.ptr, None
        if p:
            _free(p)

    def __del__(self):
        try:
            self.free()
        except Exception:  # interpreter shutdown: nothing left to call
            pass


class Message:
    """One received message. Owned by whoever received it; may be handed
    to another thread. Use as a context manager to release it promptly."""

    __slots__ = ("_owner", "_view", "_made", "_arrays")

    def __init__(self, ptr):
        self._owner = _Owner(ptr)
        self._view = None    # the memoryview .data returns
        self._made = ()      # every memoryview made, to release them all
        self._arrays = ()    # weakrefs to every c_char array made

    def _ptr(self):
        p = self._owner.ptr
        if not p:
            raise StateError(_ESTATE, "the message was released")
        return p

    @property
    def handle(self):
        """The ``tsm_msg *`` as an int (for tests and C interop)."""
        return self._ptr()

    @property
    def data(self):
        """The payload as a read-only ``memoryview`` of libtsm's buffer
        (zero copy); the same view on every access."""
        if self._view is not None:
            return self._view
        p = self._ptr()
        n = fast.tsm_msg_size(p)
        if n == 0:
            self._view = memoryview(b"")
            self._made += (self._view,)
            return self._view
        arr = (ctypes.c_char * n).from_address(fast.tsm_msg_data(p))
        arr._tsm_owner = self._owner   # a view keeps the tsm_msg alive
        self._arrays += (weakref.ref(arr),)
        # The intermediate views die at once, so only the one handed out
        # holds the array (and through it the tsm_msg).
        self._view = memoryview(arr).toreadonly().cast("B")
        self._made += (self._view,)
        return self._view

    def release(self):
        """Frees the message now. Raises BufferInUse (and frees nothing)
        while a slice or other export of ``data`` is alive. Idempotent."""
        if not self._made and not self._arrays:   # no view made: just free
            self._owner.free()
            return
        if not self._owner.ptr:
            return
        busy, why = [], []
        for v in reversed(self._made):
            try:
                v.release()
            except BufferError as e:   # something holds an export of v
                busy.append(v)
                why.append(str(e))
        self._made = tuple(busy[::-1])
        if not busy:
            self._view = None
            if all(w() is None for w in self._arrays):
                self._arrays = ()
                self._owner.free()
                return
        elif not any(v is self._view for v in busy):
            self._view = None
        self._arrays = tuple(w for w in self._arrays if w() is not None)
        if busy or self._arrays:
            raise BufferInUse(_ESTATE, "Message.release: views of "
                              "Message.data are still in use (%s); release "
                              "or drop them first, then call release() "
                              "again" % ("; ".join(why) or
                                         "a slice or copy of the memoryview"))
        self._owner.free()

    @property
    def released(self):
        return not self._owner.ptr

    def _detach(self):
        """Takes the tsm_msg pointer out of this Message (for
        Publisher.forward, which hands it to libtsm): releases the views
        first, raising BufferInUse (and keeping everything) while one is
        in use, StateError if already released."""
        p = self._ptr()
        if self._made or self._arrays:
            self.release_views()
        self._owner.ptr = None
        return p

    def _attach(self, p):
        """Gives back a pointer _detach took (libtsm refused it)."""
        self._owner = _Owner(p)

    def release_views(self):
        """Releases every view of ``data`` without freeing the message.
        Raises BufferInUse while a slice or other export is alive."""
        busy, why = [], []
        for v in reversed(self._made):
            try:
                v.release()
            except BufferError as e:
                busy.append(v)
                why.append(str(e))
        self._made = tuple(busy[::-1])
        if not busy:
            self._view = None
        self._arrays = tuple(w for w in self._arrays if w() is not None)
        if busy or self._arrays:
            raise BufferInUse(_ESTATE, "views of Message.data are still in "
                              "use (%s); release or drop them first"
                              % ("; ".join(why) or
                                 "a slice or copy of the memoryview"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __len__(self):
        return fast.tsm_msg_size(self._ptr())

    @property
    def size(self):
        return fast.tsm_msg_size(self._ptr())

    @property
    def topic(self):
        return fast.tsm_msg_topic(self._ptr()).decode("utf-8", "replace")

    @property
    def priority(self):
        return fast.tsm_msg_priority(self._ptr())

    @property
    def deadline(self):
        """Absolute deadline in ``tsm.now()`` nanoseconds (this host's
        monotonic clock), or None for no deadline."""
        d = fast.tsm_msg_deadline(self._ptr())
        return None if d == NEVER else d

    @property
    def id(self):
        """The publisher-assigned message id."""
        return fast.tsm_msg_id(self._ptr())

    @property
    def sent_at(self):
        """The sender's monotonic send time, in *its* clock (informational)."""
        return fast.tsm_msg_sent_at(self._ptr())

    @property
    def meta(self):
        """User metadata as raw msgpack bytes (a copy), or None."""
        n = ctypes.c_size_t()
        p = fast.tsm_msg_meta(self._ptr(), ctypes.byref(n))
        return ctypes.string_at(p, n.value) if p else None

    def meta_dict(self):
        """User metadata decoded with the package's small msgpack decoder
        (a dict), or None."""
        m = self.meta
        return None if m is None else _msgpack.unpackb(m)

    def tobytes(self):
        """A copy of the payload as bytes."""
        return self.data.tobytes()

    def __repr__(self):
        if not self._owner.ptr:
            return "<tsm.Message released>"
        return "<tsm.Message id=%d topic=%r size=%d priority=%d>" % (
            self.id, self.topic, self.size, self.priority)
