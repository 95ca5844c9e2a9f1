"""Test plumbing for the RTR client: a client and a test cache joined by StringTransports."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from bgpd.rpki import pdu as P
from bgpd.rpki.records import Vrp
from bgpd.rpki.rtr import CacheSettings, RTRFactory, RTRProtocol
from bgpd.rpki.testing import CacheProtocol, CacheServer, RecordingSink
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST
from bgpd.wire.nlri import prefix_from_str


def vrp(text: str, maxlen: int | None = None, asn: int = 64500) -> Vrp:
    afi, key = prefix_from_str(text)
    return Vrp(IPV4_UNICAST if afi == 1 else IPV6_UNICAST, key, key[0] if maxlen is None else maxlen, asn)


class Link:
    """A connected client protocol and (optionally) a test cache protocol, pumped by hand."""

    def __init__(self, client: RTRProtocol, server: CacheProtocol | None) -> None:
        self.client = client
        self.server = server
        self.ct = StringTransport()
        self.st = StringTransport() if server is not None else None
        self.closed = False
        if server is not None:
            server.makeConnection(self.st)
        client.makeConnection(self.ct)

    def pump(self, rounds: int = 20) -> None:
        """Move bytes both ways until nothing moves (bounded)."""
        for _ in range(rounds):
            moved = False
            out = self.ct.value()
            if out:
                self.ct.clear()
                moved = True
                if self.server is not None and not self.st.disconnecting:
                    self.server.dataReceived(out)
            if self.st is not None:
                back = self.st.value()
                if back:
                    self.st.clear()
                    moved = True
                    if not self.ct.disconnecting:
                        self.client.dataReceived(back)
            if self.ct.disconnecting or (self.st is not None and self.st.disconnecting):
                self.lose()
                return
            if not moved:
                return

    def sent(self) -> list[P.Pdu]:
        """What the client wrote since the last call, decoded."""
        data = self.ct.value()
        self.ct.clear()
        out = []
        while data:
            n = int.from_bytes(data[4:8], "big")
            out.append(P.decode(data[:n]))
            data = data[n:]
        return out

    def feed(self, *pdus: P.Pdu | bytes) -> None:
        """Give the client these PDUs (or raw bytes) as one read."""
        self.client.dataReceived(b"".join(p if isinstance(p, bytes) else p.encode() for p in pdus))

    def lose(self, reason: str = "gone") -> None:
        if self.closed:
            return
        self.closed = True
        if self.server is not None:
            self.server.connectionLost(Failure(ConnectionError(reason)))
        self.client.connectionLost(Failure(ConnectionError(reason)))


class Rig:
    """One RTRFactory on a MemoryReactorClock; ``connect`` completes its pending attempt."""

    def __init__(self, name: str = "c1", server: CacheServer | None = None, sink: Any = None,
                 reactor: MemoryReactorClock | None = None, **settings: Any) -> None:
        self.reactor = reactor or MemoryReactorClock()
        self.sink = sink if sink is not None else RecordingSink()
        self.server = server
        s = CacheSettings(name=name, address="192.0.2.1", **settings)
        self.factory = RTRFactory(s, self.sink, self.reactor, wall_clock=self.reactor.seconds,
                                  random=lambda: 1.0)
        self.link: Link | None = None

    def attempts(self) -> int:
        return sum(1 for c in self.reactor.tcpClients if c[2] is self.factory)

    def connect(self, pump: bool = True) -> Link:
        proto = self.factory.buildProtocol(None)
        server = self.server.buildProtocol(None) if self.server is not None else None
        self.link = Link(proto, server)
        if pump:
            self.link.pump()
        return self.link

    def fail(self, reason: str = "refused") -> None:
        """The pending connection attempt fails."""
        self.factory.clientConnectionFailed(None, Failure(ConnectionRefusedError(reason)))
