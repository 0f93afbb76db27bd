#!/usr/bin/env python3
"""bench/py_bench.py - the Python side of `bench/run.sh python`: the same
round-trip and stream cases as tsm_bench.c, through the tsm package, so
that run.sh can print the Python overhead per message next to C.

    py_bench.py rt --size 64 --iters 5000
    py_bench.py stream --size 65536 --count 5000

Two processes (fork), A listens and B dials, over TCP on loopback,
insecure like tsm_bench's default (both sides pay the same for security).
Prints one line: `py: case=... size=... p50_us=... p99_us=...` or
`py: case=stream size=... msgs_per_s=... mb_per_s=...`.
"""
import argparse
import os
import socket
import sys
import time

import tsm


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def echo(url, n):
    """B: answers every ping with a pong of the same bytes."""
    with tsm.Context(connect=[url], insecure=True, log_level="error") as ctx:
        sub = ctx.subscriber("bench/ping")
        pub = ctx.publisher("bench/pong")
        pub.wait_subscribers(1, 10)
        for _ in range(n):
            with sub.recv(timeout=10) as m:
                pub.publish(m.data)
        pub.flush(5)


def rt(args):
    url = f"tcp://127.0.0.1:{free_port()}"
    total = args.iters + args.warmup
    with tsm.Context(listen=[url], insecure=True, log_level="error") as ctx:
        sub = ctx.subscriber("bench/pong")
        pub = ctx.publisher("bench/ping")
        pid = os.fork()
        if pid == 0:
            try:
                echo(url, total)
            finally:
                os._exit(0)
        pub.wait_subscribers(1, 10)
        payload = bytes(args.size)
        samples = []
        for i in range(total):
            t0 = time.perf_counter_ns()
            pub.publish(payload)
            with sub.recv(timeout=10):
                pass
            if i >= args.warmup:
                samples.append((time.perf_counter_ns() - t0) / 1000)
        os.waitpid(pid, 0)
    print(f"py: case=rt size={args.size} iters={args.iters} "
          f"p50_us={pct(samples, .5):.2f} p99_us={pct(samples, .99):.2f}")


def sink(url, n):
    with tsm.Context(connect=[url], insecure=True, log_level="error") as ctx:
        sub = ctx.subscriber("bench/stream", queue_depth=4096)
        got = 0
        while got < n:
            with sub.recv(timeout=10):
                got += 1
        ack = ctx.publisher("bench/done")
        ack.wait_subscribers(1, 10)
        ack.publish(b"done")
        ack.flush(5)


def stream(args):
    url = f"tcp://127.0.0.1:{free_port()}"
    with tsm.Context(listen=[url], insecure=True, log_level="error") as ctx:
        pub = ctx.publisher("bench/stream")
        done = ctx.subscriber("bench/done")
        pid = os.fork()
        if pid == 0:
            try:
                sink(url, args.count)
            finally:
                os._exit(0)
        pub.wait_subscribers(1, 10)
        payload = bytes(args.size)
        t0 = time.perf_counter()
        for _ in range(args.count):
            pub.publish(payload)
        with done.recv(timeout=60):
            pass
        dt = time.perf_counter() - t0
        os.waitpid(pid, 0)
    print(f"py: case=stream size={args.size} count={args.count} "
          f"msgs_per_s={args.count / dt:.0f} "
          f"mb_per_s={args.count * args.size / dt / 1e6:.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["rt", "stream"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--count", type=int, default=5000)
    args = ap.parse_args()
    (rt if args.case == "rt" else stream)(args)


if __name__ == "__main__":
    sys.exit(main())
