"""Loading libtsm and declaring the C functions the package calls.

This is the only module that knows where libtsm lives and what its
functions look like. It finds the shared library (see ``_candidates`` for
the order), checks that its version is the one this package was written
for, and gives every function it uses an ``argtypes``/``restype``.

Two handles on the same library are kept:

* ``lib`` (``ctypes.CDLL``): every call releases the GIL. Used for calls
  that may block or wait on libtsm's threads (open, close, publish, recv,
  the waits), so other Python threads and libtsm's delivery thread (which
  runs Python callbacks) keep running.
* ``fast`` (``ctypes.PyDLL``): calls keep the GIL. Used for the accessors
  that only read memory (``tsm_msg_*``, ``tsm_now``, errors, parameter
  setters): dropping and re-taking the GIL would cost more than the call
  and lets other threads convoy on it.

Only ``tsm_pub_opts`` is mirrored as a ctypes Structure: it is small,
fixed by the ABI (``LIBTSM_0``) and guarded at import by a size check.
``tsm_ctx_params`` and ``tsm_qos`` are never mirrored: they are opaque
byte buffers of ``tsm_*_size()`` bytes set by name.
"""
import ctypes
import ctypes.util
import glob
import os
import signal

__all__ = ["lib", "fast", "path", "EXPECTED_VERSION", "PubOpts", "SUB_CB",
           "STATS_FN", "NEVER", "OPT_PRIORITY", "OPT_DEADLINE", "OPT_BUDGET"]

#: The major.minor of libtsm this package is written against.
EXPECTED_VERSION = (0, 1)

#: tsm/time.h TSM_NEVER: "no deadline" / "wait forever".
NEVER = 2**63 - 1

# tsm/pubsub.h flags for tsm_pub_opts.flags
OPT_PRIORITY = 0x1
OPT_DEADLINE = 0x2
OPT_BUDGET = 0x4

_HERE = os.path.dirname(os.path.abspath(__file__))
_HOW = ("build libtsm with `meson setup build && ninja -C build` in the "
        "repository root, or set TSM_LIBRARY to the path of libtsm.so")


def _candidates():
    """Yields (where, path) in search order, after TSM_LIBRARY.

    1. a ``libtsm.so*`` bundled next to this package;
    2. ``$TSM_BUILD_DIR/libtsm/libtsm.so``;
    3. ``<repo>/build/libtsm/libtsm.so`` when the package is imported
       from the source tree (``bindings/python/tsm``);
    4. the system: ``ctypes.util.find_library('tsm')``, then the dynamic
       loader's own search (LD_LIBRARY_PATH, ld.so.cache) for
       ``libtsm.so.0``.
    """
    for p in sorted(glob.glob(os.path.join(_HERE, "libtsm.so*"))):
        yield "bundled next to the package", p
    bdir = os.environ.get("TSM_BUILD_DIR")
    if bdir:
        yield "$TSM_BUILD_DIR", os.path.join(bdir, "libtsm", "libtsm.so")
    repo = os.path.normpath(os.path.join(_HERE, "..", "..", ".."))
    if os.path.isfile(os.path.join(repo, "libtsm", "include", "tsm", "tsm.h")):
        yield "the source tree's build/", os.path.join(
            repo, "build", "libtsm", "libtsm.so")
    found = ctypes.util.find_library("tsm")
    if found:
        yield "the system (find_library)", found
    yield "the dynamic loader's search path", "libtsm.so.0"


def _open(path):
    # libfabric pulls in libinfinipath (the PSM provider), whose load-time
    # constructor installs its own SIGINT handler over Python's: Ctrl-C
    # would then end the process with status 1 instead of raising
    # KeyboardInterrupt. Putting Python's handler back after the load
    # keeps Ctrl-C working (tests/test_signals.py).
    try:
        before = signal.getsignal(signal.SIGINT)
    except ValueError:
        before = None
    libs = ctypes.CDLL(path), ctypes.PyDLL(path)
    if before is not None:
        try:
            signal.signal(signal.SIGINT, before)
        except ValueError:  # not the main thread: cannot touch handlers
            pass
    return libs


def _load():
    """Returns (CDLL, PyDLL, path) or raises one ImportError naming
    every place tried and why each failed."""
    env = os.environ.get("TSM_LIBRARY")
    if env:
        # An explicit choice is never silently replaced by another copy.
        try:
            return _open(env) + (env,)
        except OSError as e:
            raise ImportError(
                "tsm: cannot load libtsm from TSM_LIBRARY=%r: %s\n"
                "tsm: fix the path, or unset TSM_LIBRARY to search the usual "
                "places; %s" % (env, e, _HOW)) from None
    tried = []
    for where, path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append("  %s: %s (no such file)" % (where, path))
            continue
        try:
            return _open(path) + (path,)
        except OSError as e:
            tried.append("  %s: %s (%s)" % (where, path, e))
    raise ImportError("tsm: libtsm.so not found. Tried, in order:\n  "
                      "TSM_LIBRARY: not set\n%s\ntsm: %s"
                      % ("\n".join(tried), _HOW))


class PubOpts(ctypes.Structure):
    """Mirror of tsm_pub_opts (tsm/pubsub.h). Checked at import against
    the size tsm_pub_opts_init writes. ``meta`` is a c_char_p so that a
    bytes object is passed by address (no copy) and kept alive by the
    structure."""
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("priority", ctypes.c_uint8),
        ("deadline", ctypes.c_int64),
        ("budget", ctypes.c_int64),
        ("meta", ctypes.c_char_p),
        ("meta_len", ctypes.c_size_t),
        ("msg_id", ctypes.c_uint64),
    ]


class PeerInfo(ctypes.Structure):
    """tsm_peer_info (tsm/ctx.h): one node this context knows of."""
    _fields_ = [
        ("node_id", ctypes.c_uint64),
        ("identity", ctypes.c_char * 256),
        ("state", ctypes.c_char * 16),
        ("transport", ctypes.c_char * 32),
        ("url", ctypes.c_char * 128),
        ("npub", ctypes.c_uint32),
        ("nsub", ctypes.c_uint32),
        ("heard_ms", ctypes.c_int64),
    ]


#: tsm_sub_cb: void (*)(void *arg, tsm_msg *msg)
SUB_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
#: tsm_stats_fn: void (*)(void *arg, const char *name, uint64_t value)
STATS_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p,
                            ctypes.c_uint64)

_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_err = ctypes.c_int  # tsm_err is a C enum
_i64 = ctypes.c_int64
_str = ctypes.c_char_p
_size = ctypes.c_size_t

# name: (restype, argtypes). Calls that may block or wait for libtsm's
# threads, released GIL:
_BLOCKING = {
    "tsm_ctx_open": (_err, [_pp, _p]),
    "tsm_ctx_close": (None, [_p]),
    "tsm_ctx_listen": (_err, [_p, _str, _p, _size]),
    "tsm_ctx_dial": (_err, [_p, _str]),
    "tsm_ctx_wait_peers": (_err, [_p, ctypes.c_uint, _i64]),
    "tsm_ctx_peers": (_err, [_p, ctypes.POINTER(PeerInfo), _size,
                             ctypes.POINTER(ctypes.c_size_t)]),
    "tsm_stats_foreach": (_err, [_p, STATS_FN, _p]),
    "tsm_pub_open": (_err, [_pp, _p, _str, _p]),
    "tsm_publish": (_err, [_p, _p, _size, ctypes.POINTER(PubOpts)]),
    "tsm_publish_msg": (_err, [_p, _p, ctypes.POINTER(PubOpts)]),
    "tsm_pub_wait_subscribers": (_err, [_p, ctypes.c_uint, _i64]),
    "tsm_pub_flush": (_err, [_p, _i64]),
    "tsm_pub_close": (None, [_p]),
    "tsm_sub_open": (_err, [_pp, _p, _str, _p]),
    "tsm_sub_set_callback": (_err, [_p, SUB_CB, _p]),
    "tsm_sub_recv": (_err, [_p, _pp, _i64]),
    "tsm_sub_close": (None, [_p]),
}
# Calls that only compute or read memory, GIL kept:
_FAST = {
    "tsm_version": (_str, []),
    "tsm_now": (_i64, []),
    "tsm_err_class": (ctypes.c_int, [_err]),
    "tsm_strerror": (_str, [_err]),
    "tsm_err_name": (_str, [_err]),
    "tsm_err_detail": (_str, []),
    "tsm_ctx_params_size": (_size, []),
    "tsm_ctx_params_init": (_err, [_p]),
    "tsm_ctx_params_set": (_err, [_p, _str, _str]),
    "tsm_ctx_transport": (_str, [_p]),
    "tsm_stats_get": (_err, [_p, _str, ctypes.POINTER(ctypes.c_uint64)]),
    "tsm_qos_size": (_size, []),
    "tsm_qos_init": (_err, [_p]),
    "tsm_qos_set": (_err, [_p, _str, _str]),
    "tsm_pub_opts_init": (_err, [_p]),
    "tsm_msg_data": (_p, [_p]),
    "tsm_msg_size": (_size, [_p]),
    "tsm_msg_topic": (_str, [_p]),
    "tsm_msg_priority": (ctypes.c_uint8, [_p]),
    "tsm_msg_deadline": (_i64, [_p]),
    "tsm_msg_id": (ctypes.c_uint64, [_p]),
    "tsm_msg_sent_at": (_i64, [_p]),
    "tsm_msg_meta": (_p, [_p, ctypes.POINTER(ctypes.c_size_t)]),
    "tsm_msg_free": (None, [_p]),
}


def _declare(dll, table, path):
    for name, (res, args) in table.items():
        try:
            fn = getattr(dll, name)
        except AttributeError:
            raise ImportError("tsm: %s has no function %s: it is not a "
                              "libtsm %d.%d; %s"
                              % (path, name, EXPECTED_VERSION[0],
                                 EXPECTED_VERSION[1], _HOW)) from None
        fn.restype = res
        fn.argtypes = args


def _check_version(path):
    raw = fast.tsm_version().decode("ascii", "replace")
    parts = raw.split(".")
    try:
        got = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        got = None
    if got != EXPECTED_VERSION:
        raise ImportError(
            "tsm: %s is libtsm %s but this package needs %d.%d.x: rebuild "
            "libtsm from the same source tree as the bindings, or point "
            "TSM_LIBRARY at a matching libtsm.so"
            % (path, raw, EXPECTED_VERSION[0], EXPECTED_VERSION[1]))
    return raw


def _check_pub_opts(path):
    """tsm_pub_opts_init writes sizeof(tsm_pub_opts) bytes and stores that
    size first: into a roomy buffer, so a mismatch cannot overflow."""
    room = ctypes.create_string_buffer(1024)
    fast.tsm_pub_opts_init(room)
    size = ctypes.c_uint32.from_buffer(room).value
    if size != ctypes.sizeof(PubOpts):
        raise ImportError("tsm: %s has a %d-byte tsm_pub_opts, this package "
                          "mirrors %d bytes: the library and the bindings do "
                          "not match" % (path, size, ctypes.sizeof(PubOpts)))
    return room.raw[:size]


lib, fast, path = _load()
_declare(lib, _BLOCKING, path)
_declare(fast, _FAST, path)
version = _check_version(path)
#: tsm_pub_opts as tsm_pub_opts_init fills it; copied per publish.
PUB_OPTS_INIT = _check_pub_opts(path)
