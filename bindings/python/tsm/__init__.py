"""tsm: Python bindings for libtsm, brokerless publish/subscribe for
time-sensitive traffic. Pure Python over ctypes; see README.md."""
from ._lib import EXPECTED_VERSION, NEVER, fast as _fast, path as library_path
from . import errors as _errors
from .errors import Error, codes

__version__ = "%d.%d.0" % EXPECTED_VERSION


def now():
    """libtsm's clock: CLOCK_MONOTONIC in nanoseconds (tsm_now)."""
    return _fast.tsm_now()


def version():
    """The loaded libtsm's version string (tsm_version)."""
    return _fast.tsm_version().decode()


__all__ = ["Error", "codes", "now", "version", "NEVER", "library_path"]

# Every exception class (tsm.Timeout, tsm.DeadlineExpired, ...) at the top.
for _name in _errors.__all__:
    if _name[0].isupper() and _name not in globals():
        globals()[_name] = getattr(_errors, _name)
        __all__.append(_name)
del _name
