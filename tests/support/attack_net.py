#!/usr/bin/env python3
"""tests/support/attack_net.py - raw-socket attacks on a tsm listener
(issue 9 item 5), for tests/integration/test_exhaust.sh.

Nothing here authenticates: these are the attacks an anonymous client can
make before any handshake (tests/support/attack.c makes the authenticated
ones). Every mode prints "attack: ..." lines and exits 0 once the attack
was carried out, whatever the victim did; the test judges the victim by
its own counters, its memory and its file descriptors.

  flood HOST PORT N SOURCES    N connections, as fast as possible, from
                               127.0.0.2 .. 127.0.0.(SOURCES+1) in turn;
                               each closes at once (a third with a reset,
                               a third after garbage, a third after a
                               valid PREFACE)
  slow HOST PORT SECS          two slow-loris handshakes, from 127.0.0.3
                               (a valid PREFACE, one byte per second) and
                               127.0.0.4 (PREFACE, then an HS frame one byte
                               per second), each until the listener cuts it
                               or SECS pass
  hold HOST PORT N PER_SOURCE SECS
                               N silent connections, PER_SOURCE from each
                               source address 127.0.0.10, .11, ...; held
                               until the listener closes them or SECS pass
                               (a file RELEASE=path in the environment ends
                               the hold early when it appears)
"""
import os
import select
import socket
import struct
import sys
import time


def hdr(typ, body_len, flags=0):
    # docs/wire.md §2: magic, version, type, flags, lane, epoch, session_id,
    # seq, topic_id, priority, reserved, budget_us, body_len
    return (struct.pack('<HBBBBH', 0x4D54, 1, typ, flags, 0, 0) + bytes(28)
            + struct.pack('<I', body_len))


def preface_frame():
    # §4: min 1, max 1, flags 0, nonce, node_id, name_len 0, pad_len 0
    body = (struct.pack('<BBH', 1, 1, 0) + os.urandom(16) + os.urandom(8)
            + struct.pack('<HH', 0, 0))
    return hdr(1, len(body)) + body


def connect_from(src, host, port, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((host, port))
    return s


def say(*a):
    print('attack:', *a, flush=True)


def closed_by_peer(s):
    """True if the peer has closed (EOF or reset) without blocking."""
    try:
        r, _, _ = select.select([s], [], [], 0)
        if not r:
            return False
        while True:
            b = s.recv(65536, socket.MSG_DONTWAIT)
            if not b:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def mode_flood(host, port, n, sources):
    ok = failed = 0
    t0 = time.time()
    for i in range(n):
        src = '127.0.0.%d' % (2 + i % sources)
        try:
            s = connect_from(src, host, port, timeout=2)
        except OSError:
            failed += 1
            continue
        ok += 1
        try:
            kind = i % 3
            if kind == 0:  # reset: SO_LINGER 0
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack('ii', 1, 0))
            elif kind == 1:
                s.send(os.urandom(200))
            else:
                s.send(preface_frame())
        except OSError:
            pass
        s.close()
    say('flood: %d connections made, %d refused by the kernel, %.1f s'
        % (ok, failed, time.time() - t0))


def trickle(s, data, secs, what):
    """Sends data one byte per second; returns (bytes sent, seconds) when
    the listener closes the connection, or None after secs."""
    t0 = time.time()
    for i, b in enumerate(data):
        if time.time() - t0 > secs:
            return None
        if closed_by_peer(s):
            return i, time.time() - t0
        try:
            s.send(bytes([b]))
        except OSError:
            return i, time.time() - t0
        time.sleep(1.0)
    # everything sent (the listener waited for all of it): wait for a close
    while time.time() - t0 <= secs:
        if closed_by_peer(s):
            return len(data), time.time() - t0
        time.sleep(0.1)
    return None


def mode_slow(host, port, secs):
    import threading
    results = {}

    def one(name, src, lead, slow):
        try:
            s = connect_from(src, host, port)
        except OSError as e:
            results[name] = 'connect failed: %s' % e
            return
        if lead:
            s.sendall(lead)
        r = trickle(s, slow, secs, name)
        if r is None:
            results[name] = 'STILL OPEN after %d s' % secs
        else:
            results[name] = ('cut by the listener after %.1f s, %d of %d '
                             'slow bytes sent' % (r[1], r[0], len(slow)))
        s.close()

    pf = preface_frame()
    hs_body = os.urandom(300)
    th = [threading.Thread(target=one, args=('preface-trickle', '127.0.0.3',
                                              b'', pf)),
          threading.Thread(target=one, args=('hs-trickle', '127.0.0.4', pf,
                                              hdr(3, len(hs_body)) + hs_body))]
    for t in th:
        t.start()
    for t in th:
        t.join()
    for k in sorted(results):
        say('slow: %s: %s' % (k, results[k]))


def mode_hold(host, port, n, per_source, secs):
    release = os.environ.get('RELEASE')
    socks = []
    refused = 0
    for i in range(n):
        src = '127.0.0.%d' % (10 + i // per_source)
        try:
            socks.append(connect_from(src, host, port))
        except OSError:
            refused += 1
    say('hold: %d connections open (%d refused by the kernel), %d per source'
        % (len(socks), refused, per_source))
    t0 = time.time()
    closed_at = {}
    while time.time() - t0 < secs and len(closed_at) < len(socks):
        if release and os.path.exists(release):
            break
        for k, s in enumerate(socks):
            if k not in closed_at and closed_by_peer(s):
                closed_at[k] = time.time() - t0
        time.sleep(0.05)
    soon = sum(1 for t in closed_at.values() if t < 1.0)
    later = len(closed_at) - soon
    say('hold: closed by the listener within 1 s: %d; later: %d; still open: %d'
        % (soon, later, len(socks) - len(closed_at)))
    if later:
        say('hold: the later ones closed after %.1f .. %.1f s'
            % (min(t for t in closed_at.values() if t >= 1.0),
               max(closed_at.values())))
    for s in socks:
        s.close()


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    mode, host, port = argv[1], argv[2], int(argv[3])
    rest = [int(x) for x in argv[4:]]
    if mode == 'flood' and len(rest) == 2:
        mode_flood(host, port, *rest)
    elif mode == 'slow' and len(rest) == 1:
        mode_slow(host, port, *rest)
    elif mode == 'hold' and len(rest) == 3:
        mode_hold(host, port, *rest)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
