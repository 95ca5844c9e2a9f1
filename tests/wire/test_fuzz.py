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
from tests.wire import corpus, fuzzing

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


class SeedTests(SynchronousTestCase):
    """The seeds the fuzzer mutates are valid messages, decoded in full."""

    def test_seeds_decode_cleanly(self):
        """Every encoder seed decodes under the session it was made for, with no RFC 7606 problem.

        (The golden captures among the fuzzer's seeds are decoded, each under
        its own session, by tests/wire/test_golden.py.)
        """
        cases = fuzzing.seed_cases()
        self.assertGreater(len(cases), 15)
        for data, neg in cases:
            framer = Framer(neg.max_message_len)
            frames = framer.feed(data)
            self.assertEqual((len(frames), len(framer)), (1, 0), data.hex())
            msg_type, body = frames[0]
            self.assertEqual(msg_type, data[18])
            msg = decode_message(msg_type, body, neg, AttributeCache())
            self.assertEqual(msg.msg_type, msg_type, data.hex())
            self.assertEqual(getattr(msg, "problems", ()), (), data.hex())
            self.assertFalse(getattr(msg, "treat_as_withdraw", False), data.hex())


class CorpusTests(SynchronousTestCase):
    """Targeted mutations, one per RFC 4271 section 6 / RFC 7606 rule, with the exact outcome."""

    def test_corpus(self):
        """Each case ends exactly as its rule says: NOTIFICATION code/subcode/data or 7606 action."""
        wrong = []
        for case in corpus.CASES:
            got = corpus.outcome(case)
            if not self.matches(case.expect, got):
                wrong.append(f"{case.rule}: {case.what}: expected {case.expect!r}, got {got!r}")
        self.assertEqual(wrong, [], "\n".join(wrong))

    @staticmethod
    def matches(expect: tuple, got: tuple) -> bool:
        if expect[0] != got[0]:
            return False
        if expect[0] == "notification":
            return got[1:3] == expect[1:3] and (expect[3] is None or got[3] == expect[3])
        if expect[0] == "7606":
            return got[1:] == expect[1:]
        return bool(expect[1](got[1]))

    def test_corpus_names_every_rule(self):
        """Every required rule has at least one case, and no two cases are the same."""
        named = " | ".join(c.rule for c in corpus.CASES)
        missing = [r for r in corpus.REQUIRED_RULES if r not in named]
        self.assertEqual(missing, [])
        self.assertEqual(len({c.data + repr(c.neg).encode() for c in corpus.CASES}),
                         len(corpus.CASES))

    def test_cases_are_mutations_of_seeds(self):
        """The seeds are our encoder's own messages, and they decode cleanly."""
        self.assertEqual(corpus.mutate(), corpus.SEED_UPDATE)
        for seed in (corpus.SEED_OPEN, corpus.SEED_OPEN_AS2, corpus.SEED_UPDATE, corpus.SEED_UPDATE6,
                     corpus.SEED_KEEPALIVE,
                     corpus.SEED_NOTIFICATION, corpus.SEED_REFRESH):
            got = corpus.outcome(corpus.Case("seed", "seed", seed, ("clean",)))
            self.assertEqual(got[0], "clean", (seed.hex(), got))
