"""libtsm outcome codes as Python exceptions.

Every failing libtsm call raises an instance of ``tsm.Error`` carrying
``code`` (the ``tsm_err`` value), ``name`` (``tsm_err_name``, e.g.
``"DEADLINE_EXPIRED"``) and ``detail`` (``tsm_err_detail``: where and
why, read right after the failing call on the same thread).

The classes mirror the layout of ``tsm_err`` (tsm/err.h): one class per
coarse class (the low byte), and one subclass per detailed reason, named
after the reason in CamelCase and derived from its class::

    Error
     +-- QosError                 (TSM_EQOS)
     |    +-- DeadlineExpired     (TSM_ERR_DEADLINE_EXPIRED)
     ...

so ``except tsm.QosError`` catches every QoS refusal and
``except tsm.DeadlineExpired`` just the one. ``Timeout`` is also a
``TimeoutError`` and ``InvalidArgument`` also a ``ValueError``.
"""
from ._lib import fast as _fast

__all__ = ["Error", "error_for", "check", "CLASSES", "REASONS", "codes"]


class Error(Exception):
    """A libtsm failure. ``code``, ``name`` and ``detail`` as above."""

    code = 0

    def __init__(self, code=None, detail="", name=None):
        if code is None:
            code = type(self).code
        self.code = code
        self.name = name or _fast.tsm_err_name(code).decode()
        self.detail = detail
        self.strerror = _fast.tsm_strerror(code).decode()
        text = "%s (%s)" % (self.name, self.strerror)
        if detail:
            text += ": " + detail
        super().__init__(text)

    def __str__(self):
        return self.args[0] if self.args else self.name

    def __reduce__(self):
        return (type(self), (self.code, self.detail, self.name))


# (class code, err.h name, Python name, extra base). err.h: TSM_E*.
CLASSES = [
    (1, "EINVAL", "InvalidArgument", ValueError),
    (2, "ENOMEM", "NoMemory", None),
    (3, "ETIMEDOUT", "Timeout", TimeoutError),
    (4, "ECLOSED", "Closed", None),
    (5, "EAGAIN", "Again", None),
    (6, "EPROTO", "ProtocolError", None),
    (7, "ESECURITY", "SecurityError", None),
    (8, "EQOS", "QosError", None),
    (9, "ETRANSPORT", "TransportError", None),
    (10, "ENOTSUP", "NotSupported", None),
    (11, "ESTATE", "StateError", None),
    (12, "EINTERNAL", "InternalError", None),
]

# (err.h name without TSM_ERR_, reason number, class code): every
# TSM_ERR_* of tsm/err.h, in its order. tests/test_errors.py checks this
# table against the header and against tsm_err_name().
REASONS = [
    ("TRUNCATED", 1, 6), ("BAD_MAGIC", 2, 6), ("BAD_VERSION", 3, 6),
    ("BAD_TYPE", 4, 6), ("BAD_LENGTH", 5, 6), ("BAD_FIELD", 6, 6),
    ("OUT_OF_STATE", 7, 6), ("BAD_METADATA", 8, 6),
    ("FRAME_TOO_LARGE", 9, 6), ("BAD_FRAGMENT", 10, 6),
    ("UNKNOWN_TOPIC", 11, 6),
    ("BAD_TOPIC", 1, 1), ("BAD_PATTERN", 2, 1), ("BAD_URL", 3, 1),
    ("BAD_PRIORITY", 4, 1), ("MSG_TOO_LARGE", 5, 1), ("BAD_DEADLINE", 6, 1),
    ("NO_CREDENTIALS", 7, 1), ("BAD_PARAMS", 8, 1),
    ("NO_PEER_CERT", 1, 7), ("UNKNOWN_CA", 2, 7), ("CERT_EXPIRED", 3, 7),
    ("CERT_NOT_YET_VALID", 4, 7), ("CERT_REVOKED", 5, 7),
    ("CRL_UNAVAILABLE", 6, 7), ("SPIFFE_MALFORMED", 7, 7),
    ("PEER_ID_MISMATCH", 8, 7), ("TLS_VERSION", 9, 7),
    ("ALPN_MISMATCH", 10, 7), ("AUTHZ_DENIED", 11, 7),
    ("PREAUTH_LIMIT", 12, 7), ("HANDSHAKE_TIMEOUT", 13, 7),
    ("AEAD_FAIL", 14, 7), ("REPLAY", 15, 7), ("INSECURE_MISMATCH", 16, 7),
    ("DEADLINE_EXPIRED", 1, 8), ("PRIORITY_CAP", 2, 8),
    ("QUEUE_FULL", 1, 5), ("NO_SUBSCRIBER", 2, 5),
    ("PEER_LOST", 1, 4),
    ("CONN_REFUSED", 1, 9), ("ADDR_IN_USE", 2, 9), ("NO_DEVICE", 3, 9),
    ("URING_UNAVAILABLE", 4, 9),
]

#: err.h name ("EINVAL", "DEADLINE_EXPIRED") -> numeric code
codes = {}
_by_code = {}


def _camel(name):
    return "".join(w.capitalize() for w in name.split("_"))


def _make(pyname, bases, code, doc):
    cls = type(pyname, bases, {"__doc__": doc, "code": code,
                               "__module__": __name__})
    globals()[pyname] = cls
    __all__.append(pyname)
    _by_code[code] = cls
    return cls


for _code, _cname, _pyname, _extra in CLASSES:
    _bases = (Error, _extra) if _extra else (Error,)
    _make(_pyname, _bases, _code, "TSM_%s (coarse class %d)." % (_cname, _code))
    codes[_cname] = _code

for _rname, _reason, _cls in REASONS:
    _code = (_reason << 8) | _cls
    _make(_camel(_rname), (_by_code[_cls],), _code,
          "TSM_ERR_%s (code 0x%x)." % (_rname, _code))
    codes[_rname] = _code

del _code, _cname, _pyname, _extra, _bases, _rname, _reason, _cls


class BufferInUse(_by_code[codes["ESTATE"]], BufferError):
    """A StateError: Message.release() refused: a slice or another export of
    ``Message.data`` is still alive, and freeing the message would leave
    it pointing at freed memory. Release those views, then retry."""


__all__.append("BufferInUse")


def error_for(code, detail=""):
    """Returns the exception instance for a tsm_err code: the reason's own
    class, else its coarse class (a code newer than this table), else
    Error."""
    cls = _by_code.get(code) or _by_code.get(code & 0xFF) or Error
    return cls(code, detail)


def check(err):
    """Raises the exception for err if it is not TSM_OK. Call it straight
    after the failing libtsm call, on the same thread: the detail string
    is thread-local and the next libtsm call overwrites it."""
    if err:
        detail = _fast.tsm_err_detail()
        raise error_for(err, detail.decode("utf-8", "replace") if detail else "")
