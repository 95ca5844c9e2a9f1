"""Shared set-up for the RIB tests: a Rib on a task.Clock, peers, attributes."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.rib import Rib, RibOptions
from bgpd.rib.testing import IPV4, FakeSink, make_peer
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.negotiated import Negotiated

#: eBGP peers on two different links (so two update groups) and iBGP peers.
E1 = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
E2 = make_peer("198.51.100.2", 65002, local_address="198.51.100.1")
I1 = make_peer("192.0.2.10", 65000, local_address="192.0.2.1")
I2 = make_peer("192.0.2.11", 65000, local_address="192.0.2.1")


def attrs(path: tuple = (65001,), nh: str = "192.0.2.2", **kw: object) -> PathAttributes:
    """Attributes with one AS_SEQUENCE (empty for ``path=()``)."""
    as_path = ((2, tuple(path)),) if path else ()
    return PathAttributes(as_path=as_path, next_hop=nh, **kw)


class RibTestCase(SynchronousTestCase):
    """A Rib with MRAI 0 everywhere and a Clock for time."""

    options = RibOptions(mrai_ebgp=0.0, mrai_ibgp=0.0)

    def setUp(self) -> None:
        self.clock = Clock()
        self.rib = self.make_rib(self.options)

    def make_rib(self, options: RibOptions, **kw: object) -> Rib:
        return Rib("192.0.2.1", 65000, options=options, call_later=self.clock.callLater, **kw)

    def add(self, peer, families=(IPV4,), neg: Negotiated | None = None, **kw) -> FakeSink:
        sink = FakeSink()
        if neg is None:
            neg = Negotiated(ibgp=peer.ibgp, peer_as=peer.remote_as)
        self.rib.add_peer(peer, families, neg, sink, **kw)
        return sink

    def settle(self) -> None:
        """Run every call that is due now (bounded), without moving time on."""
        for _ in range(10_000):
            due = [c for c in self.clock.getDelayedCalls() if c.getTime() <= self.clock.seconds()]
            if not due:
                return
            self.clock.advance(0)
        self.fail("work never settled")
