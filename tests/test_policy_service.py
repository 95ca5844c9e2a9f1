"""Route policy in the running daemon (issue 8): configured chains at session up, SIGHUP changes.

RibService builds the RIB with the compiled ``[policies]``, puts ``[bgp]
import_policy`` before each neighbor's, and on reload applies what changed
without resetting a session: soft reconfiguration or ROUTE-REFRESH (RFC 2918)
for import, the difference only for export.
"""

from __future__ import annotations

import os
import tempfile
from unittest import mock

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.rib.testing import IPV4, FakeSink, announce, pfx
from bgpd.service import BgpdService, RibService
from bgpd.session.negotiation import SessionInfo
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.negotiated import Negotiated

HEAD = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
{global_import}

[sets.prefix.ten-zero]
prefixes = ["10.0.0.0/16"]
[sets.prefix.ten-one]
prefixes = ["10.1.0.0/16"]
[sets.community.marked]
members = ["65000:1"]

[policies.mark]
default = "accept"
[[policies.mark.terms]]
name = "mark"
action = {{ accept = true, add_communities = ["65000:1"] }}

[policies.need-mark]
default = "reject"
[[policies.need-mark.terms]]
name = "marked"
match = {{ community_set = "marked" }}
action = "accept"

[policies.filter]
default = "accept"
[[policies.filter.terms]]
name = "drop"
match = {{ prefix_set = "{drop}" }}
action = "reject"

[policies.unused]
default = "accept"
"""

NEIGHBORS = """
[[neighbors]]
address = "192.0.2.2"
remote_as = 65001
local_address = "192.0.2.1"
import_policy = {import1}
export_policy = ["accept-all"]
soft_reconfiguration_inbound = {soft}

[[neighbors]]
address = "198.51.100.2"
remote_as = 65002
local_address = "198.51.100.1"
import_policy = ["accept-all"]
export_policy = {export2}
"""

PREFIXES = [pfx(f"10.{i}.0.0/16") for i in range(4)]


def render(import1: str = '["filter"]', export2: str = '["accept-all"]', drop: str = "ten-zero",
           soft: bool = False, global_import: str = "") -> str:
    return HEAD.format(global_import=global_import, drop=drop) + NEIGHBORS.format(
        import1=import1, export2=export2, soft="true" if soft else "false")


class FakeFactory:
    """The parts of a PeerFactory that RibService uses, with its output decoded."""

    def __init__(self, config) -> None:
        self.config = config
        self.protocol_instance = None
        self.session_info = None
        self.sink = FakeSink()
        self.refreshes = 0
        self.route_refresh = True

    def note_prefix_count(self, family: str, count: int) -> None:
        pass

    def send(self, messages: list[bytes]) -> None:
        self.sink.send(messages)

    def writable(self) -> bool:
        return True

    def request_refresh_all(self) -> bool:
        self.refreshes += 1
        return self.route_refresh


def info(asn: int, router_id: str) -> SessionInfo:
    return SessionInfo(Negotiated(peer_as=asn), 90, 30.0, asn, router_id, (IPV4,), route_refresh=True)


def route(nh: str = "192.0.2.2") -> PathAttributes:
    return PathAttributes(as_path=((2, (65001,)),), next_hop=nh)


class RibServicePolicyTests(SynchronousTestCase):
    def start(self, text: str) -> None:
        self.reactor = MemoryReactorClock()
        config = parse_config(text)
        self.svc = RibService(config, self.reactor)
        self.feeder = FakeFactory(config.neighbors[0])
        self.receiver = FakeFactory(config.neighbors[1])
        self.svc.peer_up(self.feeder, info(65001, "192.0.2.2"))
        self.svc.peer_up(self.receiver, info(65002, "198.51.100.2"))

    def feed(self) -> None:
        self.svc.update(self.feeder, announce(route(), PREFIXES))
        self.svc.rib.drain()

    def reload(self, text: str) -> None:
        self.svc.reload(parse_config(text))
        self.svc.rib.drain()

    def best(self, prefix: bytes):
        return self.svc.rib.best(IPV4, prefix)

    def test_configured_policy_at_session_up(self):
        """A neighbor naming a [policies] policy comes up with it as its import chain."""
        self.start(render())
        self.feed()
        self.assertIsNone(self.best(PREFIXES[0]))
        self.assertIsNotNone(self.best(PREFIXES[1]))

    def test_global_import_policy_first(self):
        """[bgp] import_policy runs before the neighbor's (mark, then need-mark accepts)."""
        self.start(render(import1='["need-mark"]', global_import='import_policy = ["mark"]'))
        self.feed()
        for p in PREFIXES:
            self.assertIn(65000 << 16 | 1, self.best(p).attrs.communities)

    def test_reload_export_definition_change_sends_difference(self):
        """Changing a policy's sets (same names) re-exports: only the two changed prefixes go out."""
        self.start(render(import1='["accept-all"]', export2='["filter"]'))
        self.feed()
        self.assertEqual(set(self.receiver.sink.routes()), set(PREFIXES[1:]))
        self.receiver.sink.clear()
        self.reload(render(import1='["accept-all"]', export2='["filter"]', drop="ten-one"))
        self.assertEqual(self.receiver.sink.announced(), [PREFIXES[0]])
        self.assertEqual(self.receiver.sink.withdrawn(), [PREFIXES[1]])

    def test_reload_import_change_with_soft_reconfiguration(self):
        """With soft reconfiguration the kept routes go through the new chain; no refresh is asked."""
        self.start(render(soft=True))
        self.feed()
        self.reload(render(soft=True, drop="ten-one"))
        self.assertIsNotNone(self.best(PREFIXES[0]))
        self.assertIsNone(self.best(PREFIXES[1]))
        self.assertEqual(self.feeder.refreshes, 0)

    def test_reload_import_change_route_refresh_new_chain(self):
        """Without soft reconfiguration: ROUTE-REFRESH, and the re-sent routes meet the new chain."""
        self.start(render())
        self.feed()
        self.reload(render(drop="ten-one"))
        self.assertEqual(self.feeder.refreshes, 1)
        self.feed()  # what the peer re-sends
        self.assertIsNotNone(self.best(PREFIXES[0]))
        self.assertIsNone(self.best(PREFIXES[1]))

    def test_reload_global_import_change(self):
        """A change of [bgp] import_policy alone reaches every neighbor's chain."""
        self.start(render(import1='["need-mark"]', global_import='import_policy = ["mark"]'))
        self.feed()
        self.reload(render(import1='["need-mark"]'))
        self.assertEqual(self.feeder.refreshes, 1)
        self.feed()
        self.assertIsNone(self.best(PREFIXES[0]))

    def test_unrelated_change_touches_nothing(self):
        """A change to a policy no chain uses keeps the compiled objects and sends nothing."""
        self.start(render(export2='["filter"]'))
        self.feed()
        before = self.svc.policies["filter"]
        self.receiver.sink.clear()
        self.reload(render(export2='["filter"]').replace(
            '[policies.unused]\ndefault = "accept"', '[policies.unused]\ndefault = "reject"'))
        self.assertIs(self.svc.policies["filter"], before)
        self.assertEqual(self.feeder.refreshes, 0)
        self.assertEqual(self.receiver.sink.messages, [])


class SighupPolicyTests(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-policy-")
        self.path = os.path.join(self.dir, "bgpd.toml")
        self.reactor = MemoryReactorClock()

    def tearDown(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def write(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def start(self) -> BgpdService:
        self.write(render())
        svc = BgpdService(parse_config(render()), self.path, self.reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        return svc

    def test_policy_change_keeps_the_sessions(self):
        """A SIGHUP that changes import and export policies resets no session."""
        svc = self.start()
        peers = dict(svc.sessions.peers)
        self.write(render(import1='["mark"]', export2='["filter"]', drop="ten-one"))
        self.assertTrue(svc.reload())
        self.assertEqual(svc.sessions.peers, peers)
        for peer in peers.values():
            self.assertTrue(peer.enabled)
        self.assertEqual(svc.rib_service.config.neighbors[0].import_policy, ("mark",))

    def test_bad_candidate_refused_with_key_path(self):
        """An unknown set in the candidate is refused, naming its key; the running policies stay."""
        svc = self.start()
        running = svc.rib_service.policies
        logged: list = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        self.write(render(drop="no-such-set"))
        self.assertFalse(svc.reload())
        self.assertIs(svc.rib_service.policies, running)
        self.assertIs(svc.rib_service.rib.policies["filter"], running["filter"])
        text = " ".join(str(e.get("err", "")) for e in logged)
        self.assertIn("policies.filter.terms[0].match.prefix_set", text)

    def test_compile_failure_refused(self):
        """A candidate the compiler cannot build is refused before anything changes."""
        svc = self.start()
        before = svc.config
        self.write(render(drop="ten-one"))
        with mock.patch("bgpd.service.compile_policies", side_effect=ValueError("bad")):
            self.assertFalse(svc.reload())
        self.assertIs(svc.config, before)
        self.assertIs(svc.rib_service.config, before)
