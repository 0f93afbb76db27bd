"""tsm: Python bindings for libtsm, brokerless publish/subscribe for
time-sensitive traffic. Pure Python over ctypes; see README.md.

    import tsm
    with tsm.Context(listen="inproc://demo", insecure=True) as ctx:
        with ctx.subscriber("demo/**") as sub, ctx.publisher("demo/a") as pub:
            pub.publish(b"hello", deadline=0.5)
            with sub.recv(timeout=1) as msg:
                print(msg.topic, bytes(msg.data))
"""
from ._lib import EXPECTED_VERSION, NEVER, fast as _fast, path as library_path
from .context import Context
from . import errors as _errors
from .errors import Error, codes
from .message import Message
from .pubsub import Publisher, Subscriber
from . import _msgpack as msgpack

__version__ = "%d.%d.0" % EXPECTED_VERSION


def now():
    """libtsm's clock: CLOCK_MONOTONIC in nanoseconds (tsm_now), the clock
    of every deadline (``publish(deadline_at=...)``, ``Message.deadline``)."""
    return _fast.tsm_now()


def version():
    """The loaded libtsm's version string (tsm_version)."""
    return _fast.tsm_version().decode()


__all__ = ["Context", "Publisher", "Subscriber", "Message", "Error", "codes",
           "now", "version", "NEVER", "library_path", "msgpack"]

# Every exception class (tsm.Timeout, tsm.DeadlineExpired, ...) at the top.
for _name in _errors.__all__:
    if _name[0].isupper() and _name not in globals():
        globals()[_name] = getattr(_errors, _name)
        __all__.append(_name)
del _name
