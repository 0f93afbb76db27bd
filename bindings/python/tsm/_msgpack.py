"""A tiny msgpack encoder and decoder for message metadata.

libtsm carries user metadata as one msgpack map (docs/wire.md §9: at most
4096 bytes, depth 8, 256 objects, string keys). This covers the types
that map to msgpack without extensions: None, bool, int (-2**63 ..
2**64-1), float (as float64), str, bytes/bytearray/memoryview, list/tuple
and dict with str keys. Shortest forms are used, as §9 asks of encoders.
libtsm itself checks the limits when the map is published.
"""
import struct

__all__ = ["packb", "unpackb"]


def _head(out, n, fix, fixmax, b8, b16, b32):
    if n <= fixmax and fix is not None:
        out.append(fix | n)
    elif n < 0x100 and b8 is not None:
        out += bytes((b8, n))
    elif n < 0x10000:
        out += struct.pack(">BH", b16, n)
    elif n < 0x100000000:
        out += struct.pack(">BI", b32, n)
    else:
        raise ValueError("msgpack: object too large")


def _int(out, v):
    if 0 <= v < 0x80:
        out.append(v)
    elif -32 <= v < 0:
        out.append(v & 0xFF)
    elif 0 <= v:
        for fmt, tag, lim in ((">BB", 0xCC, 1 << 8), (">BH", 0xCD, 1 << 16),
                              (">BI", 0xCE, 1 << 32), (">BQ", 0xCF, 1 << 64)):
            if v < lim:
                out += struct.pack(fmt, tag, v)
                return
        raise OverflowError("msgpack: int %d does not fit in 64 bits" % v)
    else:
        for fmt, tag, lim in ((">Bb", 0xD0, 1 << 7), (">Bh", 0xD1, 1 << 15),
                              (">Bi", 0xD2, 1 << 31), (">Bq", 0xD3, 1 << 63)):
            if v >= -lim:
                out += struct.pack(fmt, tag, v)
                return
        raise OverflowError("msgpack: int %d does not fit in 64 bits" % v)


def _pack(out, v):
    if v is None:
        out.append(0xC0)
    elif v is True or v is False:
        out.append(0xC3 if v else 0xC2)
    elif isinstance(v, int):
        _int(out, v)
    elif isinstance(v, float):
        out += struct.pack(">Bd", 0xCB, v)
    elif isinstance(v, str):
        b = v.encode("utf-8")
        _head(out, len(b), 0xA0, 31, 0xD9, 0xDA, 0xDB)
        out += b
    elif isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        _head(out, len(b), None, -1, 0xC4, 0xC5, 0xC6)
        out += b
    elif isinstance(v, (list, tuple)):
        _head(out, len(v), 0x90, 15, None, 0xDC, 0xDD)
        for x in v:
            _pack(out, x)
    elif isinstance(v, dict):
        _head(out, len(v), 0x80, 15, None, 0xDE, 0xDF)
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError("msgpack: metadata map keys must be str, "
                                "not %s" % type(k).__name__)
            _pack(out, k)
            _pack(out, x)
    else:
        raise TypeError("msgpack: cannot encode %s" % type(v).__name__)


def packb(obj):
    """Encodes obj (see the module docstring) as msgpack bytes."""
    out = bytearray()
    _pack(out, obj)
    return bytes(out)


_FIXED = {0xC0: None, 0xC2: False, 0xC3: True}
_NUM = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I",
        0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
_LEN = {0xC4: (">B", "bin"), 0xC5: (">H", "bin"), 0xC6: (">I", "bin"),
        0xD9: (">B", "str"), 0xDA: (">H", "str"), 0xDB: (">I", "str"),
        0xDC: (">H", "arr"), 0xDD: (">I", "arr"),
        0xDE: (">H", "map"), 0xDF: (">I", "map")}


class _Reader:
    def __init__(self, buf):
        self.b = memoryview(buf).cast("B")
        self.i = 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError("msgpack: truncated at byte %d" % self.i)
        s = self.b[self.i:self.i + n]
        self.i += n
        return s

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def obj(self):
        t = self.take(1)[0]
        if t < 0x80:
            return t
        if t >= 0xE0:
            return t - 0x100
        if t in _FIXED:
            return _FIXED[t]
        if t in _NUM:
            return self.unpack(_NUM[t])
        if 0x80 <= t <= 0x8F:
            return self.seq("map", t & 0x0F)
        if 0x90 <= t <= 0x9F:
            return self.seq("arr", t & 0x0F)
        if 0xA0 <= t <= 0xBF:
            return self.seq("str", t & 0x1F)
        if t in _LEN:
            fmt, kind = _LEN[t]
            return self.seq(kind, self.unpack(fmt))
        raise ValueError("msgpack: unsupported type byte 0x%02x" % t)

    def seq(self, kind, n):
        if kind == "bin":
            return bytes(self.take(n))
        if kind == "str":
            return str(self.take(n), "utf-8")
        if kind == "arr":
            return [self.obj() for _ in range(n)]
        return {self.obj(): self.obj() for _ in range(n)}


def unpackb(buf):
    """Decodes exactly one msgpack object from buf (no extension types)."""
    r = _Reader(buf)
    v = r.obj()
    if r.i != len(r.b):
        raise ValueError("msgpack: %d trailing bytes" % (len(r.b) - r.i))
    return v
