"""The compiled hot path and the pure-Python source behave identically (issue 13).

RFC 4271 4.1-4.3 and 6, RFC 4760, RFC 7606, RFC 7911: for the golden
captures of real daemons, the rule-by-rule corpus, the mutation fuzzer's
inputs and hypothesis-generated UPDATEs, both builds decode the same objects,
encode the same bytes and raise the same errors (NOTIFICATION code, subcode,
data and reason).  The compiled build runs in this interpreter and the pure
one in a worker started with ``BGPD_PURE_PYTHON=1`` (``tests/wire/differential.py``);
in a run that is itself forced pure (``BGPD_PURE_PYTHON=1``, as
``tests/test_compiled.py`` runs the suite a second time) the worker is the
compiled one.
"""

from __future__ import annotations

import importlib
import os
import pickle
import random
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from twisted.trial.unittest import SynchronousTestCase

from bgpd import hotpath
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.message import encode_message
from bgpd.wire.update import pack_reach
from tests.ci import missing
from tests.wire import corpus, fuzzing
from tests.wire.differential import Job, plain, run_all
from tests.wire.test_roundtrip import update_cases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: the eBGP session bench/wire_decode.py decodes with
EBGP_BENCH = fuzzing.Negotiated(
    peer_as=65001, enforce_first_as=True,
    local_addresses=frozenset({"192.0.2.1", "2001:db8::1"}))
CONTEXTS = [*fuzzing.CONTEXTS, EBGP_BENCH]
FUZZ_CASES = 1500


def other_results(jobs: list[Job]) -> list[tuple]:
    """``jobs`` run by the other build (the one this interpreter does not run) in a worker."""
    env = dict(os.environ)
    env.pop(hotpath.ENV_PURE, None)
    want = "compiled" if hotpath.VARIANT == "pure" else "pure"
    if want == "pure":
        env[hotpath.ENV_PURE] = "1"
    r = subprocess.run([sys.executable, "-m", "tests.wire.differential"], cwd=ROOT, env=env,
                       input=pickle.dumps(jobs), capture_output=True, timeout=600, check=False)
    if r.returncode != 0:
        raise AssertionError(f"{want} worker failed: {r.stderr.decode()[-2000:]}")
    variant, compiled, results = pickle.loads(r.stdout)
    expected = list(hotpath.HOT_MODULES) if want == "compiled" else []
    assert variant == want and compiled == expected, (variant, compiled)
    return results


class DifferentialTests(SynchronousTestCase):
    """Each input set gives identical results from both builds."""

    def setUp(self):
        for name in hotpath.HOT_MODULES:  # bgpd.rib.adjout too, not only the codec
            importlib.import_module(name)
        if hotpath.VARIANT == "compiled":
            self.assertEqual(hotpath.loaded_compiled(), list(hotpath.HOT_MODULES))
            return
        self.assertEqual(hotpath.loaded_compiled(), [])
        # Forced pure: the worker runs the build, which must be there.
        problem = hotpath.check_build()
        if problem is not None:
            missing(f"the compiled hot path ({problem})")

    def compare(self, labels: list[str], jobs: list[Job]) -> None:
        mine = run_all(jobs)
        theirs = other_results(jobs)
        self.assertEqual(len(mine), len(theirs))
        for label, job, a, b in zip(labels, jobs, mine, theirs, strict=True):
            if a != b:
                self.fail(f"{label}: the builds differ for {job!r}\n"
                          f"{hotpath.VARIANT} (here): {a!r}\nthe other:     {b!r}")

    def test_golden_captures(self):
        """The golden captures, each under every session context."""
        messages = fuzzing.golden_messages()
        self.assertGreater(len(messages), 5)
        labels, jobs = [], []
        for i, data in enumerate(messages):
            for j, neg in enumerate(CONTEXTS):
                labels.append(f"golden {i} context {j}")
                jobs.append(("decode", data, neg))
        self.compare(labels, jobs)

    def test_corpus(self):
        """Every rule of the corpus, with its session and under the others, and the seeds."""
        labels, jobs = [], []
        for case in corpus.CASES:
            for j, neg in enumerate([case.neg, *CONTEXTS]):
                labels.append(f"{case.rule} {case.what} context {j}")
                jobs.append(("decode", case.data, neg))
        for i, (data, neg) in enumerate(fuzzing.seed_cases()):
            labels.append(f"seed {i}")
            jobs.append(("decode", data, neg))
        self.compare(labels, jobs)

    def test_fuzz_inputs(self):
        """The mutation fuzzer's inputs (random bytes, attribute soups, mutated seeds)."""
        rng = random.Random(13)
        seeds = fuzzing.seed_messages()
        labels, jobs = [], []
        for i in range(FUZZ_CASES):
            data = fuzzing.make_case(rng, seeds)
            labels.append(f"fuzz seed 13 case {i}")
            jobs.append(("decode", data, CONTEXTS[i % len(CONTEXTS)]))
        self.compare(labels, jobs)

    def test_cache_sweep(self):
        """The attribute cache keeps and sweeps the same entries (it counts references)."""
        bodies = []
        for i in range(300):
            attrs = PathAttributes(as_path=((2, (65001, i % 97 + 1)),), next_hop="192.0.2.1",
                                   communities=(i,) if i % 2 else ())
            bodies.append(pack_reach(1, 1, attrs, [bytes((24, 10, i % 250, 0))])[0][19:])
        jobs = [("sweep", bodies, neg) for neg in CONTEXTS if not neg.addpath_rx]
        self.compare([f"sweep context {j}" for j in range(len(jobs))], jobs)

    def test_hypothesis_updates(self):
        """Hypothesis-generated UPDATEs: encoded from the same fields, then decoded."""
        labels, jobs = [], []

        @settings(max_examples=300, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(update_cases())
        def collect(case):
            tx, rx, update = case
            labels.append(f"hypothesis {len(jobs)}: {update!r}")
            jobs.append(("encode", plain(update), tx))
            try:
                data = encode_message(update, tx)
            except ValueError:  # too long for one message: the encode job compares that
                return
            labels.append(labels[-1] + " decoded")
            jobs.append(("decode", data, rx))

        collect()
        self.assertGreaterEqual(len(jobs), 200)
        self.compare(labels, jobs)
