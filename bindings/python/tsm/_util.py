"""Shared plumbing: time conversions, interruptible waits, the guard that
keeps a handle from being closed while another thread is inside a call
on it, and buffer addresses without copies."""
import ctypes
import threading
import time

from ._lib import NEVER, fast
from .errors import Closed, codes

__all__ = ["SLICE_NS", "to_ns", "sliced", "Guard", "buffer_arg", "tls"]

#: How long one blocking libtsm call may last before Python gets control
#: back to run signal handlers (Ctrl-C) and notice a close.
SLICE_NS = 100_000_000

_ETIMEDOUT = codes["ETIMEDOUT"]

#: Per-thread state: ``in_callback`` is the Subscriber whose callback this
#: thread is running (libtsm's delivery thread), else None.
tls = threading.local()


def to_ns(seconds):
    """Seconds (int or float) -> ns; None -> NEVER (wait forever);
    negative -> 0 (poll)."""
    if seconds is None:
        return NEVER
    ns = int(seconds * 1_000_000_000)
    return ns if ns > 0 else 0


def sliced(guard, call, timeout):
    """Runs call(ptr, slice_ns) in slices of at most SLICE_NS until it
    returns something other than TSM_ETIMEDOUT or the overall timeout
    (seconds, None = forever) is spent; returns the last tsm_err.

    Between slices the interpreter runs signal handlers, so Ctrl-C raises
    KeyboardInterrupt here, and a close() from another thread is seen
    (Closed is raised). The GIL is released inside each slice (CDLL).
    """
    total = to_ns(timeout)
    end = NEVER if total == NEVER else fast.tsm_now() + total
    while True:
        left = NEVER if end == NEVER else max(0, end - fast.tsm_now())
        ptr = guard.enter()
        try:
            err = call(ptr, min(left, SLICE_NS))
        finally:
            guard.exit()
        if err != _ETIMEDOUT or left <= SLICE_NS:
            return err


class Guard:
    """Counts the threads inside libtsm calls on one handle, so that
    close() waits for them instead of freeing the handle under them
    (libtsm's *_close functions free at once). ``what`` names the handle
    in errors.

    The count is a list: append and pop are atomic, so entering costs no
    lock. A thread appends, then checks ``closing``; close() sets
    ``closing``, then waits for the list to empty. Either the entering
    thread sees ``closing`` (and backs out) or close() sees its entry
    (and waits): the handle is never freed under a call.
    """

    __slots__ = ("ptr", "what", "_users", "_closing", "_close_lock")

    def __init__(self, ptr, what):
        self.ptr = ptr
        self.what = what
        self._users = []
        self._closing = False
        self._close_lock = threading.Lock()

    @property
    def closed(self):
        return self._closing

    def enter(self):
        self._users.append(None)
        if self._closing:
            self._users.pop()
            raise Closed(codes["ECLOSED"], "%s is closed" % self.what)
        return self.ptr

    def exit(self):
        self._users.pop()

    def __enter__(self):
        return self.enter()

    def __exit__(self, *exc):
        self._users.pop()

    def close(self):
        """Marks the handle closed, waits until no thread is inside a call
        on it and returns the pointer to free (None if already closed).
        Blocking calls run in slices of SLICE_NS, so the wait is short."""
        with self._close_lock:
            if self._closing:
                return None
            self._closing = True
            while self._users:
                time.sleep(0.001)
            ptr, self.ptr = self.ptr, None
            return ptr


class _PyBuffer(ctypes.Structure):
    # Py_buffer, part of the stable ABI since Python 3.11.
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.py_object),
                ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p),
                ("strides", ctypes.c_void_p), ("suboffsets", ctypes.c_void_p),
                ("internal", ctypes.c_void_p)]


try:
    _get_buffer = ctypes.pythonapi.PyObject_GetBuffer
    _get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer),
                            ctypes.c_int]
    _get_buffer.restype = ctypes.c_int
    _release_buffer = ctypes.pythonapi.PyBuffer_Release
    _release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
    _release_buffer.restype = None
except (AttributeError, OSError):  # not CPython
    _get_buffer = None


class _ReadOnlyExport:
    """Holds a PyBUF_SIMPLE export of a read-only buffer for the duration
    of one libtsm call; ``address`` is its first byte."""

    __slots__ = ("view", "address")

    def __init__(self, obj):
        self.view = _PyBuffer()
        _get_buffer(obj, ctypes.byref(self.view), 0)  # PyBUF_SIMPLE
        self.address = self.view.buf

    def __del__(self):
        if self.view.buf:
            _release_buffer(ctypes.byref(self.view))


def buffer_arg(data):
    """Returns (arg, length, keep) for passing any buffer-protocol object
    to a ``const void *`` parameter without copying it in Python.

    * bytes: passed as is; ctypes hands the C function the object's own
      storage.
    * writable C-contiguous buffers (bytearray, numpy arrays, mmap,
      writable memoryviews): a ``c_char`` array over the same memory
      (``from_buffer``), which holds an export until it is dropped.
    * read-only C-contiguous buffers (memoryview of bytes, read-only
      numpy arrays): a PyBUF_SIMPLE export held through the call.
    * non-contiguous buffers (strided slices): copied once with
      ``tobytes()``; libtsm needs one contiguous block.

    ``keep`` must stay referenced until the C call returns.
    """
    if type(data) is bytes:
        return data, len(data), None
    m = memoryview(data)
    n = m.nbytes
    if not m.c_contiguous:
        b = m.tobytes()
        return b, n, None
    if n == 0:
        return None, 0, None
    if not m.readonly:
        arr = (ctypes.c_char * n).from_buffer(m)
        return arr, n, arr
    if _get_buffer is None:
        b = m.tobytes()
        return b, n, None
    ex = _ReadOnlyExport(m)
    return ex.address, n, ex
