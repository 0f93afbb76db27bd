"""Discovery from Python: a subscriber that knows only a seed finds the
publisher and gets its messages, and Context.peers() shows who is there.
Insecure contexts over TCP on loopback (the secure, multi-namespace case
is tests/integration/test_discovery.sh)."""
import time

import tsm
from conftest import LIMIT


def _node(name, listen=None, seed=None):
    return tsm.Context(listen=listen, seed=seed, insecure=True, name=name,
                       log_level="error", gossip_interval_ms=50)


def test_subscriber_finds_publisher_through_seed():
    with _node("seed", listen="tcp://127.0.0.1:0") as seed:
        me = seed.peers()
        assert me[0]["state"] == "self"
        url = me[0]["url"]
        assert url.startswith("tcp://127.0.0.1:")
        with _node("pub", listen="tcp://127.0.0.1:0", seed=url) as pc, \
                _node("sub", seed=[url]) as sc, \
                sc.subscriber("py/disc/**") as sub, \
                pc.publisher("py/disc/x") as pub:
            pub.wait_subscribers(1, LIMIT)   # only reachable by discovery
            pub.publish(b"found")
            with sub.recv(LIMIT) as m:
                assert bytes(m.data) == b"found"
            states = {p["state"] for p in sc.peers()}
            assert "connected" in states
            assert len(sc.peers()) == 3
            assert sc.stat("discovery.dials") >= 1


def test_no_discovery_means_no_path():
    with _node("seed", listen="tcp://127.0.0.1:0") as seed:
        url = seed.peers()[0]["url"]
        with tsm.Context(listen="tcp://127.0.0.1:0", connect=url,
                         insecure=True, discovery=False) as pc, \
                tsm.Context(connect=url, insecure=True,
                            discovery=False) as sc, \
                sc.subscriber("py/off/**"), pc.publisher("py/off/x") as pub:
            time.sleep(0.5)
            try:
                pub.wait_subscribers(1, 1.0)
                assert False, "a subscriber was reached without discovery"
            except tsm.Timeout:
                pass
