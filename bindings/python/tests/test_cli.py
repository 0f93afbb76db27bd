"""Python and the C tsm CLI talk to each other over TCP."""
import re
import subprocess

import tsm
from conftest import LIMIT

N = 200


def summary(out, prefix):
    lines = [ln for ln in out.splitlines() if ln.startswith(prefix)]
    assert lines, "no %r summary line in: %r" % (prefix, out)
    return dict(re.findall(r"(\w+)=(\S+)", lines[-1]))


def test_python_publisher_c_subscriber(cli):
    with tsm.Context(insecure=True) as ctx:
        url = ctx.listen("tcp://127.0.0.1:0")
        with ctx.publisher("cli/py") as pub:
            proc = subprocess.Popen(
                [cli, "sub", url, "cli/**", "--count", str(N), "--quiet",
                 "--insecure", "--timeout-ms", str(int(LIMIT * 1000))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                pub.wait_subscribers(1, LIMIT)
                for i in range(N):
                    pub.publish(b"py-%d" % i, priority=i % 8)
                pub.flush(LIMIT)
                out, err = proc.communicate(timeout=LIMIT * 2)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    assert proc.returncode == 0, err
    s = summary(out, "sub: received=")
    assert s["received"] == str(N)
    assert s["bytes"] == str(sum(len(b"py-%d" % i) for i in range(N)))


def test_c_publisher_python_subscriber(cli):
    size = 4096
    with tsm.Context(insecure=True) as ctx:
        url = ctx.listen("tcp://127.0.0.1:0")
        with ctx.subscriber("cli/**", queue_depth=N) as sub:
            proc = subprocess.Popen(
                [cli, "pub", "--connect", url, "cli/c", "--count", str(N),
                 "--size", str(size), "--priority", "mixed", "--insecure",
                 "--wait-subs", "1", "--timeout-ms", str(int(LIMIT * 1000))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                seqs = {}
                for _ in range(N):
                    with sub.recv(LIMIT) as m:
                        assert m.topic == "cli/c" and len(m.data) == size
                        # tsm pub's header: magic "TSMP", stream, seq, size
                        assert m.data[:4] == b"TSMP"
                        seq = int.from_bytes(m.data[8:16], "little")
                        seqs[seq] = m.priority
                out, err = proc.communicate(timeout=LIMIT * 2)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    assert proc.returncode == 0, err
    assert summary(out, "pub: published=")["published"] == str(N)
    assert len(seqs) == N                       # each message once
    assert set(seqs.values()) == set(range(8))  # --priority mixed
