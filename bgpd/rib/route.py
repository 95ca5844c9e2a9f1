"""Peers and paths as the RIB keeps them (RFC 4271 section 3.2, 9).

A *path* is one source (a peer, or this speaker for originated routes) plus
one shared :class:`~bgpd.wire.attributes.PathAttributes` (plus the received
ADD-PATH identifier, RFC 7911, and the graceful-restart stale mark, RFC 4724
section 4.2).  Paths are interned per source, so the prefixes of one UPDATE,
and every other prefix with the same attributes from that peer, share one
object; the tables map prefix keys to paths, never one fat object per prefix.
"""

from __future__ import annotations

import socket
from typing import Protocol

import attrs

from bgpd.wire.attributes import PathAttributes
from bgpd.wire.constants import ROLE_NAMES, ROLE_OPPOSITE, Role

__all__ = ["LOCAL", "Path", "PeerInfo", "peer_role", "ROLE_NAMES", "STALE_REFRESH", "STALE_RESTART"]

#: ``Path.stale`` values.  Not stale is 0.  Stale after a BoRR (RFC 7313
#: section 4): kept as it was in the decision, the peer is re-sending it.
STALE_REFRESH = 1
#: Stale after the peer went down gracefully (RFC 4724 section 4.2): it
#: loses to every fresh path in the decision process.
STALE_RESTART = 2


def peer_role(local_role: str | int | None) -> int | None:
    """The peer's role given ours (``NeighborConfig.role`` is *our* role towards it).

    :class:`PeerInfo` keeps the peer's role, as RFC 9234 section 5 words its
    rules ("received from a Customer"), so the service converts with this.
    """
    if local_role is None:
        return None
    if isinstance(local_role, str):
        local_role = ROLE_NAMES[local_role]
    return int(ROLE_OPPOSITE[Role(local_role)])


def _ip_key(address: str) -> tuple[int, bytes]:
    if ":" in address:
        # A link-local peer is known with its zone (bgpd.wire.address); the
        # last decision step compares the address alone (RFC 4271 9.1.2.2 g).
        return (6, socket.inet_pton(socket.AF_INET6, address.partition("%")[0]))
    try:
        return (4, socket.inet_aton(address))
    except OSError:
        return (0, address.encode())


@attrs.frozen(slots=True, eq=False)
class PeerInfo:
    """What the RIB needs to know about one established session.

    ``role`` is the RFC 9234 role of the *peer* (:class:`bgpd.wire.constants.Role`
    value) or None; ``local_address`` is our address on the session, used as
    NEXT_HOP towards eBGP peers and for next-hop-self; ``next_hop6`` our IPv6
    address for IPv6 routes on an IPv4 session (IPv4-mapped when unknown).
    """

    address: str
    remote_as: int
    local_as: int
    router_id: str
    ibgp: bool = attrs.field(default=attrs.Factory(lambda self: self.remote_as == self.local_as,
                                                    takes_self=True))
    route_reflector_client: bool = False
    route_server_client: bool = False
    next_hop_self: bool = False
    role: int | None = None
    local_address: str | None = None
    next_hop6: str | None = None
    allowas_in: int = 0
    #: Sort keys for the last two decision steps, computed once.
    router_id_int: int = attrs.field(init=False)
    address_key: tuple = attrs.field(init=False)

    # (A factory and __attrs_post_init__, not ``@field.default`` methods:
    # mypyc, which compiles this module, drops those decorators.)
    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "router_id_int", int.from_bytes(socket.inet_aton(self.router_id), "big"))
        object.__setattr__(self, "address_key", _ip_key(self.address))

    def __repr__(self) -> str:
        kind = "ibgp" if self.ibgp else "ebgp"
        return f"<PeerInfo {self.address} AS{self.remote_as} {kind}>"


#: The source of routes this speaker originates (config static routes).
LOCAL = PeerInfo(address="local", remote_as=0, local_as=0, router_id="0.0.0.0", ibgp=False)


class PathOwner(Protocol):
    """What a path's ``owner`` offers: the RIB's per-peer state is one."""

    info: PeerInfo

    def tx_path_id(self, rx_path_id: int) -> int:
        """The ADD-PATH id this speaker sends the path with (RFC 7911 section 3)."""


class Path:
    """One source + one shared attribute set (+ add-path id, stale mark).

    ``owner`` is the RIB's per-peer state (it outlives one session, which
    graceful restart needs); ``peer`` the current :class:`PeerInfo`.
    Identity hashing: the RIB interns paths, so ``is`` means "same route".
    """

    # path_id and stale share one slot (``_id_stale``: the id above two bits
    # of stale mark): an object of five slots is 16 octets smaller than one
    # of six (the allocator rounds to 16), on each interned path.
    __slots__ = ("owner", "attrs", "_id_stale", "since", "refs")

    def __init__(self, owner: PathOwner, attrs: PathAttributes, path_id: int = 0,
                 since: float = 0.0) -> None:
        self.owner = owner
        self.attrs = attrs
        self._id_stale = path_id << 2
        #: When this path was made (the RIB's clock, 0.0 when it has none).  The
        #: RIB interns paths per (peer, attribute set): so this is when that
        #: attribute set was first received from that peer, kept as long as
        #: some prefix still uses it (what BIRD shows as "since").  Whole
        #: seconds, one float shared by every path made in that second, so
        #: a path costs one slot more, not one float more.
        self.since = since
        #: How many Adj-RIB-In entries of its owner hold it: at 0 the RIB
        #: forgets it (and its attributes) at once, so that a peer whose
        #: attributes keep changing does not leave dead paths behind.
        self.refs = 0

    @property
    def path_id(self) -> int:
        """The ADD-PATH identifier it was received with (RFC 7911), 0 without ADD-PATH."""
        return self._id_stale >> 2

    @property
    def stale(self) -> int:
        """0, :data:`STALE_REFRESH` or :data:`STALE_RESTART`."""
        return self._id_stale & 3

    @stale.setter
    def stale(self, value: int) -> None:
        if value < 0 or value > 3:
            raise ValueError(f"stale mark {value}")
        self._id_stale = (self._id_stale & ~3) | value

    @property
    def peer(self) -> PeerInfo:
        return self.owner.info

    def __repr__(self) -> str:
        extra = f" id={self.path_id}" if self.path_id else ""
        stale = " stale" if self.stale else ""
        return f"<Path from {self.owner.info.address}{extra}{stale} {self.attrs!r}>"


class SimpleOwner:
    """A stand-in owner for building paths outside a RIB (tests, the API)."""

    __slots__ = ("info",)

    def __init__(self, info: PeerInfo) -> None:
        self.info = info

    def tx_path_id(self, rx_path_id: int) -> int:
        return rx_path_id


def make_path(peer: PeerInfo, attributes: PathAttributes, path_id: int = 0) -> Path:
    """A path from ``peer`` that is not in any RIB (for the decision functions)."""
    return Path(SimpleOwner(peer), attributes, path_id)
