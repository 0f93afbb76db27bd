#!/usr/bin/env python3
"""examples/pipeline/stage.py - the model: "infers" on each frame and
publishes a result that keeps the frame's remaining deadline.

Every SLOW_EVERY-th frame takes SLOW_MS (a slow batch). Frames that wait
too long behind it expire in this stage's queue and are dropped by libtsm
(counted), never processed late; a result whose deadline passed during
inference is refused by publish() with DeadlineExpired.

    stage.py PKI_DIR PRODUCER_URL LISTEN_URL SECONDS
"""
import struct
import sys
import time

import tsm

SLOW_EVERY, SLOW_MS = 10, 120


def infer(view):
    """Stands in for a model: a checksum over a strided sample."""
    sample = view[::1024]
    return sum(sample) / max(len(sample), 1)


def main():
    pki, producer, listen, seconds = sys.argv[1:5]
    creds = dict(cert_file=f"{pki}/stage.crt", key_file=f"{pki}/stage.key",
                 trust_file=f"{pki}/trust.pem", policy_file=f"{pki}/policy.txt")
    done = late = 0
    with tsm.Context(listen=[listen], connect=[producer], name="stage",
                     **creds) as ctx:
        frames = ctx.subscriber("infer/frames", queue_depth=64)
        results = ctx.publisher("infer/results", priority=4)
        end = time.monotonic() + float(seconds)
        while time.monotonic() < end:
            try:
                msg = frames.recv(timeout=0.5)
            except tsm.Timeout:
                continue
            with msg:
                score = infer(msg.data)
                deadline = msg.deadline
            done += 1
            if done % SLOW_EVERY == 0:
                time.sleep(SLOW_MS / 1000)
            try:
                results.publish(struct.pack("<Id", done, score),
                                deadline_at=deadline)
            except tsm.DeadlineExpired:
                late += 1
        results.flush(2)
        expired = ctx.stat("drop.deadline_expired")
        print(f"stage: inferred={done} expired_in_queue={expired - late} "
              f"late_results_refused={late}", flush=True)


if __name__ == "__main__":
    main()
