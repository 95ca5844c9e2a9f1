"""Random and mutated bytes through Framer + decode_message (DESIGN.md: nothing from the
network may crash the daemon; RFC 4271 section 6 and RFC 7606 say what happens instead).

CI size: 5,000 cases from a fixed seed.  ``bench/fuzz_wire.py --cases N`` runs
the same fuzzer (tests/wire/fuzzing.py) for as long as you like.
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.attributes import AttributeCache
from bgpd.wire.errors import NotificationError
from bgpd.wire.message import Framer, decode_message
from tests.wire import fuzzing

CASES = 5000
SEED = 7606


class FuzzTests(SynchronousTestCase):
    """Only NotificationError may come out of the codec, whatever the bytes."""

    def test_fuzz(self):
        """5,000 mutated and random inputs under every context: no other exception escapes."""
        stats = fuzzing.run(CASES, SEED)  # raises FuzzFailure with the input hex
        self.assertEqual(stats.cases, CASES)
        self.assertEqual(stats.notifications + stats.clean, CASES)
        # The mix must reach the decoders, not only the Framer: both outcomes
        # in quantity and errors from the header, OPEN and UPDATE checks.
        self.assertGreater(stats.clean, CASES // 10)
        self.assertGreater(stats.notifications, CASES // 10)
        self.assertGreater(stats.messages, CASES // 10)
        codes = {code for code, _ in stats.by_error}
        self.assertTrue({1, 2, 3} <= codes, stats.by_error)

    def test_deterministic(self):
        """The same seed gives the same cases: a failure is reproducible by (seed, index)."""
        seeds = fuzzing.seed_messages()
        a = [fuzzing.make_case(random.Random(i), seeds) for i in range(200)]
        b = [fuzzing.make_case(random.Random(i), seeds) for i in range(200)]
        self.assertEqual(a, b)
        self.assertGreater(len(set(a)), 150)
        self.assertEqual(fuzzing.run(300, 1).by_error, fuzzing.run(300, 1).by_error)

    def test_seeds_are_valid(self):
        """Every seed message decodes cleanly under the context it was made for (default)."""
        for data in fuzzing.seed_messages():
            framer = Framer(65535)
            out = framer.feed(data)
            self.assertEqual((len(out), len(framer)), (1, 0), data.hex())

    def test_failure_reported_with_hex(self):
        """A non-NotificationError is reported with the case index, context and input hex."""
        err = fuzzing.FuzzFailure(3, 1, b"\xff\x00", KeyError("x"))
        self.assertIn("ff00", str(err))
        self.assertIn("case 3", str(err))
        self.assertIn("KeyError", str(err))

    def test_every_truncation(self):
        """Every prefix of every seed, as a whole body, decodes or raises NotificationError."""
        for data in fuzzing.seed_messages():
            for neg in fuzzing.CONTEXTS[:4]:
                for cut in range(19, len(data)):
                    try:
                        decode_message(data[18], data[19:cut], neg, AttributeCache())
                    except NotificationError:
                        pass
