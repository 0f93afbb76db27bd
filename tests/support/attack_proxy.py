#!/usr/bin/env python3
"""tests/support/attack_proxy.py - a frame-aware TCP proxy that freezes a
stream in the middle of a large message (issue 9 item 4).

  attack_proxy.py LISTEN_PORT TARGET_PORT HOLD_FRAGS MARK_FILE [ACCEPT_AFTER_MS]

Listens on 127.0.0.1:LISTEN_PORT; each connection it accepts (the
subscriber, which dials) is joined to 127.0.0.1:TARGET_PORT (the
publisher). Bytes from the subscriber go through untouched. Bytes from the
publisher are forwarded whole frame by frame (docs/wire.md §2: the 40-byte
header is in clear even on sealed frames, so frames can be counted without
keys). On the FIRST connection only, after HOLD_FRAGS frames that carry the
FRAGMENT flag, nothing more is forwarded to the subscriber: the proxy writes
MARK_FILE and from then on reads and discards what the publisher sends. So
when the test kills the publisher, the subscriber is certainly in the middle
of a fragmented message. When one side ends, the proxy half-closes the
other after forwarding everything before the end, as TCP would.
Later connections are forwarded unchanged (the restarted publisher).
HOLD_FRAGS 0 forwards everything. With ACCEPT_AFTER_MS the proxy listens
at once but accepts its first connection only that much later (the dial
completes in the kernel's backlog and waits), to order two sessions.
"""
import time
import os
import select
import socket
import struct
import sys
import threading

HDR = 40
FRAG = 0x02
DATA = 6


def pipe(cli, srv, hold_frags, mark):
    """Forwards both ways until both sides have ended. An end is passed on
    as a half-close (shutdown of writing) after everything read before it,
    as TCP itself would: closing at once could reset the other side and
    discard bytes still queued for it."""
    frags = 0
    held = False
    buf = b''
    open_in = {cli: True, srv: True}
    try:
        while any(open_in.values()):
            r, _, _ = select.select([s for s in open_in if open_in[s]], [], [], 60)
            if not r:
                continue
            if cli in r:
                b = cli.recv(65536)
                if not b:
                    open_in[cli] = False
                    try:
                        srv.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                else:
                    try:
                        srv.sendall(b)
                    except OSError:
                        pass  # the publisher is gone: what it missed is moot
            if srv in r:
                b = srv.recv(1 << 20)
                if not b:
                    open_in[srv] = False
                    cli.shutdown(socket.SHUT_WR)
                    continue
                if held:
                    continue  # the subscriber never sees these bytes
                buf += b
                while len(buf) >= HDR:
                    body_len = struct.unpack_from('<I', buf, 36)[0]
                    if len(buf) < HDR + body_len:
                        break
                    typ, flags = buf[3], buf[4]
                    cli.sendall(buf[:HDR + body_len])
                    buf = buf[HDR + body_len:]
                    if hold_frags and typ == DATA and flags & FRAG:
                        frags += 1
                        if frags >= hold_frags:
                            held = True
                            buf = b''
                            with open(mark, 'w') as f:
                                f.write('%d fragment frames forwarded\n' % frags)
                            break
    except OSError:
        pass
    finally:
        for s in (cli, srv):
            s.close()


def main(argv):
    if len(argv) not in (5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    lport, tport, hold, mark = int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    delay = int(argv[5]) / 1000.0 if len(argv) == 6 else 0
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', lport))
    ls.listen(16)
    print('proxy: listening on %d for %d' % (lport, tport), flush=True)
    time.sleep(delay)
    first = True
    while True:
        cli, _ = ls.accept()
        try:
            srv = socket.create_connection(('127.0.0.1', tport), timeout=5)
            srv.settimeout(None)
        except OSError:
            cli.close()  # the publisher is down: the subscriber redials
            continue
        print('proxy: connection %s' % ('held mid-message' if first and hold
                                       else 'passed through'), flush=True)
        threading.Thread(target=pipe, args=(cli, srv, hold if first else 0,
                                            mark), daemon=True).start()
        first = False


if __name__ == '__main__':
    sys.exit(main(sys.argv))
