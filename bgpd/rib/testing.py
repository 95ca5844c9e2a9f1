"""Fakes for tests of the RIB and of code that drives it (no Twisted here).

``FakeSink`` stands in for a session's output: it keeps the UPDATE bytes the
RIB sends and decodes them back with :mod:`bgpd.wire`, so tests check what
would really go on the wire.
"""

from __future__ import annotations

from typing import Any

from bgpd.rib.route import PeerInfo
from bgpd.wire.attributes import AttributeCache, PathAttributes
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST, MsgType
from bgpd.wire.message import Framer
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.nlri import prefix_from_str
from bgpd.wire.update import MPReach, MPUnreach, Update, decode_update

__all__ = ["IPV4", "IPV6", "CountingSink", "FakeSink", "announce", "make_peer", "pfx", "withdraw"]

#: Decode what we sent as an iBGP receiver would, so LOCAL_PREF,
#: ORIGINATOR_ID and CLUSTER_LIST stay visible to the test.
_SEE_ALL = Negotiated(ibgp=True)


class FakeSink:
    """Collects the UPDATE messages sent to one peer."""

    def __init__(self, writable: bool = True) -> None:
        self.messages: list[bytes] = []
        self.sends = 0
        self.is_writable = writable

    def send(self, messages: list[bytes]) -> None:
        self.sends += 1
        self.messages.extend(messages)

    def writable(self) -> bool:
        return self.is_writable

    def clear(self) -> None:
        self.messages = []
        self.sends = 0

    def updates(self, neg: Negotiated | None = None) -> list[Update]:
        """Every message decoded (they must all be UPDATEs)."""
        neg = neg or _SEE_ALL
        framer = Framer(neg.max_message_len)
        cache = AttributeCache()
        out = []
        for msg in self.messages:
            for msg_type, body in framer.feed(msg):
                assert msg_type == MsgType.UPDATE, msg_type
                out.append(decode_update(body, neg, cache))
        return out

    def end_of_ribs(self, neg: Negotiated | None = None) -> list[tuple[int, int]]:
        return [u.end_of_rib for u in self.updates(neg) if u.end_of_rib is not None]

    def routes(self, family: tuple[int, int] = IPV4_UNICAST, neg: Negotiated | None = None) -> dict:
        """The peer's view after replaying every UPDATE: prefix -> attributes."""
        view: dict = {}
        for u in self.updates(neg):
            if u.end_of_rib is not None:
                continue
            if family == IPV4_UNICAST:
                for p in u.withdrawn:
                    view.pop(p, None)
                for p in u.nlri:
                    view[p] = u.attributes
            if u.mp_unreach is not None and (u.mp_unreach.afi, u.mp_unreach.safi) == family:
                for p in u.mp_unreach.withdrawn:
                    view.pop(p, None)
            if u.mp_reach is not None and (u.mp_reach.afi, u.mp_reach.safi) == family:
                for p in u.mp_reach.nlri:
                    view[p] = u.mp_reach.attributes
        return view

    def announced(self, neg: Negotiated | None = None) -> list:
        """Every prefix announced, in order (duplicates kept)."""
        out = []
        for u in self.updates(neg):
            out.extend(u.nlri)
            if u.mp_reach is not None:
                out.extend(u.mp_reach.nlri)
        return out

    def withdrawn(self, neg: Negotiated | None = None) -> list:
        out = []
        for u in self.updates(neg):
            out.extend(u.withdrawn)
            if u.mp_unreach is not None:
                out.extend(u.mp_unreach.withdrawn)
        return out


class CountingSink:
    """Counts messages and octets only (benchmarks)."""

    def __init__(self) -> None:
        self.messages = 0
        self.octets = 0

    def send(self, messages: list[bytes]) -> None:
        self.messages += len(messages)
        self.octets += sum(map(len, messages))

    def writable(self) -> bool:
        return True


def make_peer(
    address: str, remote_as: int, local_as: int = 65000, router_id: str | None = None, **kw: Any
) -> PeerInfo:
    """A PeerInfo with the router id defaulting to the address (IPv4) or 192.0.2.255."""
    if router_id is None:
        router_id = address if ":" not in address else "192.0.2.255"
    return PeerInfo(address=address, remote_as=remote_as, local_as=local_as, router_id=router_id, **kw)


def pfx(text: str) -> bytes:
    """'192.0.2.0/24' -> prefix key."""
    return prefix_from_str(text)[1]


def announce(attributes: PathAttributes, prefixes: list, family: tuple[int, int] = IPV4_UNICAST) -> Update:
    """An UPDATE announcing ``prefixes`` (keys or strings) as the decoder would build it."""
    keys = [pfx(p) if isinstance(p, str) else p for p in prefixes]
    if family == IPV4_UNICAST:
        return Update(attributes=attributes, nlri=keys)
    return Update(mp_reach=MPReach(family[0], family[1], attributes, keys))


def withdraw(prefixes: list, family: tuple[int, int] = IPV4_UNICAST) -> Update:
    keys = [pfx(p) if isinstance(p, str) else p for p in prefixes]
    if family == IPV4_UNICAST:
        return Update(withdrawn=keys)
    return Update(mp_unreach=MPUnreach(family[0], family[1], keys))


IPV4 = IPV4_UNICAST
IPV6 = IPV6_UNICAST
