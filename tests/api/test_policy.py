"""The Policy part of the API: get, validate, rehearse, explain, replace (control and gRPC)."""

from __future__ import annotations

import os
import tempfile
import tomllib

import grpc
from twisted.internet import threads
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.api._gen.bgpd.v1 import policy_pb2, policy_pb2_grpc
from bgpd.api.control import LOC_RIB, Control, FailedPrecondition, InvalidArgument
from bgpd.config import parse_config, to_toml
from bgpd.service import BgpdService
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.update import pack_reach
from tests.api.test_server import TIMEOUT, _ServerCase
from tests.deferreds import as_deferred
from tests.test_pipeline import Peer, pfx

POLICIES = """
[sets.prefix.docs]
prefixes = ["198.51.100.0/24 le 32"]

[policies.in]
default = "accept"
[[policies.in.terms]]
name = "prefer-docs"
match = { prefix_set = "docs" }
action = { local_pref = 200, accept = true }
"""

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
mrai_ebgp = 0

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
local_address = "192.0.2.1"
import_policy = ["in"]
export_policy = ["accept-all"]
soft_reconfiguration_inbound = true

[[neighbors]]
address = "192.0.2.3"
remote_as = 65003
local_address = "192.0.2.1"
import_policy = ["accept-all"]
export_policy = ["accept-all"]
""" + POLICIES

REJECT_DOCS = POLICIES.replace('action = { local_pref = 200, accept = true }', 'action = "reject"')


def drain(cursor):
    out = []
    for _ in range(1000):
        out.extend(cursor.next())
        if cursor.done:
            return out
    raise AssertionError("cursor never finished")


class _PolicyLab(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-policy-")
        self.path = os.path.join(self.dir, "bgpd.toml")
        with open(self.path, "w") as f:
            f.write(CONFIG)
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(CONFIG), self.path, self.reactor)
        self.svc.startService()
        self.a = Peer(self, "192.0.2.2", 65002)
        self.b = Peer(self, "192.0.2.3", 65003)
        self.a.establish()
        self.b.establish()
        self.control = Control(self.svc)
        a = PathAttributes(as_path=((2, (65002,)),), next_hop="192.0.2.2")
        self.a.send(*pack_reach(1, 1, a, [pfx("198.51.100.0/24"), pfx("192.0.2.128/25")]))
        for _ in range(30):
            self.reactor.advance(0.1)

    def tearDown(self):
        self.svc.stopService()
        self.reactor.advance(3)
        os.unlink(self.path)
        os.rmdir(self.dir)


class PolicyControlTests(_PolicyLab):
    def test_document_round_trips(self):
        """The running policies come back as TOML that reads as the file's tables."""
        text, names = self.control.policy_document()
        self.assertEqual(names, ("in",))
        want = {k: v for k, v in tomllib.loads(CONFIG).items() if k in ("sets", "policies")}
        self.assertEqual(tomllib.loads(text), want)

    def test_to_toml_of_the_readme_example(self):
        """to_toml writes the README's IXP example back to the same tables."""
        readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.rst")
        with open(readme) as f:
            text = f.read()
        block = text.split(".. ixp-example-begin")[1].split(".. ixp-example-end")[0]
        body = "\n".join(line[4:] for line in block.splitlines() if line.startswith("    "))
        data = tomllib.loads(body)
        self.assertEqual(tomllib.loads(to_toml(data)), data)

    def test_validate_errors_name_the_key(self):
        """A broken candidate, or one lacking a policy in use, is refused naming the key."""
        with self.assertRaises(InvalidArgument) as cm:
            self.control.validate_policy(POLICIES.replace('prefix_set = "docs"', 'prefix_set = "nope"'))
        self.assertIn("policies.in.terms[0]", cm.exception.field)
        with self.assertRaises(InvalidArgument) as cm:
            self.control.validate_policy('[sets.prefix.docs]\nprefixes = ["198.51.100.0/24"]\n')
        self.assertEqual(cm.exception.field, "neighbors[0].import_policy[0]")
        with self.assertRaises(InvalidArgument) as cm:
            self.control.validate_policy("[bgp]\nlocal_as = 1\n")
        self.assertEqual(cm.exception.field, "bgp")
        with self.assertRaises(InvalidArgument):
            self.control.validate_policy("[policies")

    def test_replace_compiles_the_candidate_once(self):
        """ReplacePolicy compiles the candidate once: the store's commit takes the compiled policies."""
        import bgpd.service

        compiled: list[list[str]] = []
        real = bgpd.service.compile_policies

        def counting(sets, definitions, *validators):
            compiled.append([d.name for d in definitions])
            return real(sets, definitions, *validators)

        bgpd.service.compile_policies = counting
        self.addCleanup(setattr, bgpd.service, "compile_policies", real)
        self.control.replace_policy(REJECT_DOCS)
        self.assertEqual(compiled, [["in"]])
        self.assertEqual(self.control.policy_document()[1], ("in",))

    def test_rehearse(self):
        """Rehearsing a candidate that rejects the docs prefix reports it newly rejected, changing nothing."""
        results = self.control.rehearse_policy(REJECT_DOCS)
        by = {(r.peer, r.direction): r for r in results}
        imp = by[("192.0.2.2", "import")]
        self.assertTrue(imp.complete)
        self.assertEqual(imp.newly_rejected, (((1, 1), pfx("198.51.100.0/24")),))
        self.assertFalse(by[("192.0.2.3", "import")].complete)
        self.assertEqual(len(drain(self.control.list_routes(LOC_RIB))), 2)

    def test_explain(self):
        """explain_route walks the import chain (running or candidate) and names the deciding term."""
        e = self.control.explain_route("192.0.2.2", "import", "198.51.100.0/24")
        self.assertEqual(e.decided_by, ("in", "prefer-docs"))
        self.assertEqual(e.attributes.local_pref, 200)
        e = self.control.explain_route("192.0.2.2", "import", "198.51.100.0/24", candidate=REJECT_DOCS)
        self.assertFalse(e.accepted)
        e = self.control.explain_route("192.0.2.3", "export", "198.51.100.0/24")
        self.assertTrue(e.accepted)
        with self.assertRaises(FailedPrecondition):
            self.control.explain_route("192.0.2.3", "import", "198.51.100.0/24")
        with self.assertRaises(InvalidArgument):
            self.control.explain_route("192.0.2.2", "sideways", "198.51.100.0/24")

    def test_replace(self):
        """Replacing applies the candidate without a reset: the docs prefix leaves the Loc-RIB."""
        factory = self.svc.sessions.peers["192.0.2.2"]
        text, names = self.control.replace_policy(REJECT_DOCS)
        self.assertIn('action = "reject"', text)
        for _ in range(30):
            self.reactor.advance(0.1)
        self.assertEqual([r.prefix for r in drain(self.control.list_routes(LOC_RIB))], ["192.0.2.128/25"])
        self.assertIs(self.svc.sessions.peers["192.0.2.2"], factory)
        self.assertIn('action = "reject"', self.control.policy_document()[0])
        with self.assertRaises(InvalidArgument):
            self.control.replace_policy("[policies.in]\ndefault = 7\n")
        self.assertIn('action = "reject"', self.control.policy_document()[0])


class PolicyServiceTests(_ServerCase):
    @as_deferred
    async def test_policy_rpcs(self):
        """GetPolicy, ValidatePolicy, RehearsePolicy and ReplacePolicy over gRPC, and their errors."""
        stub = policy_pb2_grpc.PolicyStub(self.channel)

        def call(method, request):
            return threads.deferToThread(method, request, timeout=TIMEOUT)

        doc = await call(stub.GetPolicy, policy_pb2.GetPolicyRequest())
        self.assertEqual(list(doc.names), [])
        v = await call(stub.ValidatePolicy, policy_pb2.PolicyCandidate(toml=POLICIES))
        self.assertEqual(list(v.names), ["in"])
        r = await call(stub.RehearsePolicy, policy_pb2.PolicyCandidate(toml=POLICIES))
        self.assertEqual(list(r.rehearsals), [])  # no Established peer
        code, details = await self.status_of(stub.ValidatePolicy, policy_pb2.PolicyCandidate(toml="[x]"))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("x", details)
        code, _ = await self.status_of(stub.ExplainRoute, policy_pb2.ExplainRouteRequest(
            peer="192.0.2.1", direction="import", prefix="198.51.100.0/24"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        code, _ = await self.status_of(stub.ConfirmPolicy, policy_pb2.ConfirmPolicyRequest())
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        doc = await call(stub.ReplacePolicy, policy_pb2.PolicyCandidate(toml="", confirm_seconds=600))
        self.assertGreater(doc.confirm_seconds_left, 500)
        doc = await call(stub.ConfirmPolicy, policy_pb2.ConfirmPolicyRequest())
        self.assertEqual(doc.confirm_seconds_left, 0)
        doc = await call(stub.ReplacePolicy, policy_pb2.PolicyCandidate(toml=POLICIES))
        self.assertEqual(list(doc.names), ["in"])
        self.assertEqual(tomllib.loads(doc.toml), tomllib.loads(POLICIES))
        self.assertEqual([n for n, _ in self.svc.config.policies], ["in"])


class ConfirmTimerTests(_PolicyLab):

    def test_rollback_without_confirm(self):
        """An unconfirmed replacement is rolled back when its timer runs out; routes come back."""
        self.control.replace_policy(REJECT_DOCS, confirm_seconds=30)
        for _ in range(30):
            self.reactor.advance(0.1)
        self.assertEqual(len(drain(self.control.list_routes(LOC_RIB))), 1)
        self.assertGreater(self.control.confirm_seconds_left(), 20)
        with self.assertRaises(FailedPrecondition):
            self.control.replace_policy(POLICIES)
        self.reactor.advance(30)
        for _ in range(30):
            self.reactor.advance(0.1)
        self.assertEqual(self.control.confirm_seconds_left(), 0)
        self.assertEqual(len(drain(self.control.list_routes(LOC_RIB))), 2)
        self.assertNotIn('action = "reject"', self.control.policy_document()[0])
        e = self.control.explain_route("192.0.2.2", "import", "198.51.100.0/24")
        self.assertEqual(e.decided_by, ("in", "prefer-docs"))

    def test_confirm_keeps_it(self):
        """A confirmed replacement stays after the timer would have run out; confirming twice fails."""
        self.control.replace_policy(REJECT_DOCS, confirm_seconds=30)
        self.control.confirm_policy()
        self.reactor.advance(31)
        for _ in range(30):
            self.reactor.advance(0.1)
        self.assertEqual(len(drain(self.control.list_routes(LOC_RIB))), 1)
        with self.assertRaises(FailedPrecondition):
            self.control.confirm_policy()
