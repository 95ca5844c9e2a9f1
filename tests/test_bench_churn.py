"""bench/rib_scale.py --churn: the churn stream and how the sink judges it (RFC 4271 4.3, RFC 8092).

No network: the feeder's churn generator (``bench/churn.py``) is driven with
explicit times and its UPDATEs are fed to the sink's counter
(``bench/bgp_sink.py``), which must find every stamped change of each step.
"""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from bench import bgp_feeder, churn
from bench.bgp_sink import Counter
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.update import decode_update


def _messages(data: bytes) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(data):
        length = (data[pos + 16] << 8) | data[pos + 17]
        out.append(data[pos:pos + length])
        pos += length
    return out


class ChurnTests(SynchronousTestCase):
    """The churn generator's UPDATEs, steps and stamps."""

    def setUp(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "feed.bin")
            bgp_feeder.prepare(0.002, path, "192.0.2.1", "2001:db8::1", 65001)
            with open(path, "rb") as f:
                self.feed = f.read()
        self.routes = churn.v4_routes(self.feed)

    def run_steps(self, gen: churn.Churn, until: float, counter: Counter) -> list[dict]:
        notes = []
        t = 0.0
        for _ in range(100_000):
            if t > until or gen.done:
                break
            data, events = gen.batch(t)
            notes += events
            for msg in _messages(data):
                counter.update(msg, 19, len(msg))
            t += 0.01
        return notes

    def test_routes_are_the_feeds_ipv4_prefixes(self):
        """Every IPv4 NLRI prefix of the feed is a churn candidate, with its attributes."""
        counter = Counter()
        for msg in _messages(self.feed):
            if msg[18] == 2:
                counter.update(msg, 19, len(msg))
        self.assertEqual({key for _, key in self.routes}, set(counter.v4))

    def test_steps_double_and_every_change_is_stamped(self):
        """Each step writes its rate's UPDATEs; the sink sees every stamped announcement of it."""
        gen = churn.Churn(self.routes, start=200, max_rate=800, step_seconds=1.0)
        counter = Counter()
        notes = self.run_steps(gen, 30.0, counter)
        steps = [n for n in notes if n["event"] == "churn_step"]
        self.assertEqual([s["rate"] for s in steps], [200, 400, 800])
        self.assertEqual(notes[-1], {"event": "churn_done", "steps": 3})
        report = counter.churn.report()
        for s in steps:
            self.assertLessEqual(abs(s["msgs"] - s["rate"]), s["rate"] * 0.4, s)
            seen, _worst, late = report[str(s["step"])]
            self.assertEqual(seen, s["stamped"])
            self.assertEqual(late, 0)
            ok, why = churn.verdict(s, report[str(s["step"])])
            self.assertTrue(ok, why)

    def test_withdrawn_prefixes_come_back(self):
        """After a step every prefix is announced again: the table is whole."""
        gen = churn.Churn(self.routes, start=500, max_rate=500, step_seconds=1.0)
        counter = Counter()
        for msg in _messages(self.feed):
            if msg[18] == 2:
                counter.update(msg, 19, len(msg))
        before = set(counter.v4)
        withdrawals = 0
        t = 0.0
        while not gen.done and t < 10:
            data, _ = gen.batch(t)
            for msg in _messages(data):
                withdrawals += (msg[19] << 8 | msg[20]) > 0
                counter.update(msg, 19, len(msg))
            t += 0.01
        self.assertGreater(withdrawals, 0)
        self.assertEqual(set(counter.v4), before)

    def test_path_change_keeps_length_and_first_as(self):
        """A changed path has the feeder's AS first and the same length (the best path stays)."""
        attrs, key = self.routes[0]
        neg = Negotiated()
        for block in (churn._variant(attrs), churn._plain(attrs)):
            body = b"\x00\x00" + len(block).to_bytes(2, "big") + block + key
            a = decode_update(body, neg).attributes
            orig = decode_update(b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs + key,
                                 neg).attributes
            self.assertEqual(a.as_path[0][1][0], 65001)
            self.assertEqual(a.as_path_length, orig.as_path_length)
            self.assertEqual(a.large_communities, ())
        for attrs, _key in self.routes:
            self.assertNotEqual(churn._variant(attrs), churn._plain(attrs))

    def test_verdicts(self):
        """A step fails on a missing change, a late one, or a rate the router did not take."""
        step = {"stamped": 100, "rate": 1000, "reached": 1000.0}
        self.assertTrue(churn.verdict(step, [100, 0.4, 0])[0])
        self.assertIn("not seen", churn.verdict(step, [99, 0.4, 0])[1])
        self.assertIn("later than 1 s", churn.verdict(step, [100, 1.7, 3])[1])
        self.assertIn("UPDATEs/s written", churn.verdict(dict(step, reached=500.0), [100, 0.4, 0])[1])
        self.assertFalse(churn.verdict(step, None)[0])

    def test_changes_packed_together_count_each(self):
        """Two changes a router packs into one UPDATE (equal attributes) are two changes seen."""
        from bgpd.wire.attributes import PathAttributes
        from bgpd.wire.update import pack_reach

        attrs = PathAttributes(as_path=((2, (65000, 65001)),), next_hop="192.0.2.2",
                               large_communities=((churn.MARK, 4, churn.now_ms()),))
        (msg,) = pack_reach(1, 1, attrs, [b"\x18\xc6\x33\x64", b"\x18\xc6\x33\x65"])
        counter = Counter()
        counter.update(msg, 19, len(msg))
        self.assertEqual(counter.churn.report()["4"][0], 2)


class ChurnFiguresTests(SynchronousTestCase):
    """The result line's CPU figures (they hold on a busy machine; wall-clock rates do not)."""

    def test_cpu_per_update(self):
        """The churn's CPU seconds are printed with the UPDATEs they took, and per UPDATE."""
        from bench.rib_scale import Result

        res = Result("bgpd", 1000, seconds=2.0, got=1000, load_cpu=3.25, churn_rate=8000.0,
                     churn_cpu=6.0, churn_msgs=120_000)
        line = res.describe()
        self.assertIn("load cpu 3.2s", line)
        self.assertIn("churn cpu 6.0s for 120,000 UPDATEs = 50 us/UPDATE", line)

    def test_no_churn_figures_without_churn(self):
        """A run without --churn prints the load's CPU and nothing about churn."""
        from bench.rib_scale import Result

        line = Result("bgpd", 1000, seconds=2.0, got=1000, load_cpu=1.0).describe()
        self.assertIn("load cpu 1.0s", line)
        self.assertNotIn("churn", line)
