"""What two speakers agreed in their OPENs, as the codec needs it (RFC 5492).

Passed to every decode/encode call that depends on the session: 4-octet AS
(RFC 6793), add-path per family and direction (RFC 7911), extended messages
(RFC 8654), extended next hop per direction (RFC 8950 section 4), whether
the peer is internal, and our own address on the connection (a next hop equal
to it is semantically incorrect, RFC 4271 section 6.3).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, fields, replace

from bgpd.wire.constants import (
    AFI,
    IPV4_UNICAST,
    IPV6_UNICAST,
    MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
)

Family = tuple[int, int]
_MAX_BITS = {AFI.IPV4: 32, AFI.IPV6: 128}


@dataclass(frozen=True, slots=True)
class Negotiated:
    as4: bool = True
    ibgp: bool = False
    peer_as: int = 0
    #: RFC 4271 6.3: the leftmost AS of an eBGP peer's AS_PATH must be its own.
    enforce_first_as: bool = False
    families: frozenset[Family] = field(default_factory=lambda: frozenset({IPV4_UNICAST, IPV6_UNICAST}))
    #: families in which the peer's NLRI carry path identifiers
    addpath_rx: frozenset[Family] = frozenset()
    #: families in which we send path identifiers
    addpath_tx: frozenset[Family] = frozenset()
    extended_message: bool = False
    #: RFC 8950 (afi, safi, next-hop afi) we may send: the peer advertised
    #: it (section 4) and so did we (it is configured)
    ext_nexthop: frozenset[tuple[int, int, int]] = frozenset()
    #: RFC 8950 (afi, safi, next-hop afi) we accept: the ones we advertised
    ext_nexthop_rx: frozenset[tuple[int, int, int]] = frozenset()
    #: our own address(es) on the session, as text: a next hop equal to one
    #: is semantically incorrect (RFC 4271 5.1.3 and 6.3).  A property of the
    #: connection, not of what the OPENs agreed: left out of equality.
    local_addresses: frozenset[str] = field(default=frozenset(), compare=False)
    # Derived once here rather than on every UPDATE decoded (not part of the
    # value: left out of init, equality, hash and repr).
    _context: tuple[bool, bool, int, bool] = field(init=False, compare=False, repr=False)
    _v4_addpath_rx: bool = field(init=False, compare=False, repr=False)
    #: ``afi << 8 | safi`` of each negotiated IPv4/IPv6 family ->
    #: ``(max prefix bits, add-path received)``, for the MP attribute decoders
    _mp_rx: dict[int, tuple[int, bool]] = field(init=False, compare=False, repr=False)
    #: ``local_addresses`` packed (4 or 16 octets), to compare with MP next hops
    _local_raw: frozenset[bytes] = field(init=False, compare=False, repr=False)
    #: IPv4 unicast NLRI may come with an IPv6 next hop (RFC 8950 section 3)
    _v4_nh6: bool = field(init=False, compare=False, repr=False)
    #: the session runs over an IPv6 link-local address: the peer shares our link
    _on_link: bool = field(init=False, compare=False, repr=False)
    #: the longest message either side may send (RFC 8654): a field, not a
    #: property, because the framer and the UPDATE packer read it per message
    max_message_len: int = field(init=False, compare=False, repr=False)
    #: the UPDATE decoder's own record of this one (bgpd.wire.update), made on
    #: first use; never pickled
    _codec: object = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__  # the class is frozen
        setattr_(self, "_context", (self.as4, self.ibgp,
                                    self.peer_as if self.enforce_first_as else 0,
                                    self.enforce_first_as))
        setattr_(self, "_v4_addpath_rx", IPV4_UNICAST in self.addpath_rx)
        setattr_(self, "_mp_rx", {
            (afi << 8) | safi: (_MAX_BITS[afi], (afi, safi) in self.addpath_rx)
            for afi, safi in self.families if afi in _MAX_BITS
        })
        setattr_(self, "_local_raw", frozenset(_pack(a) for a in self.local_addresses))
        setattr_(self, "_v4_nh6", (AFI.IPV4, 1, AFI.IPV6) in self.ext_nexthop_rx)
        setattr_(self, "_on_link", any(a.lower().startswith("fe80:") for a in self.local_addresses))
        setattr_(self, "max_message_len",
                 MAX_EXTENDED_MESSAGE_LEN if self.extended_message else MAX_MESSAGE_LEN)

    def __reduce__(self) -> tuple:
        # As the dataclass's own pickling of a frozen slotted class, but
        # without the decoder's record: it is a compiled class in one build
        # and not in the other (the differential tests pickle a Negotiated
        # across them).  __reduce__, not __getstate__: Python 3.11.2's
        # dataclass (Debian 12's) replaces a class's own __getstate__ with its
        # own when slots=True and frozen=True.
        return (_restore, (type(self), [None if f.name == "_codec" else getattr(self, f.name)
                                        for f in fields(self)]))

    def with_local_addresses(self, addresses: frozenset[str]) -> Negotiated:
        """This record with ``local_addresses`` set (canonical address text)."""
        return replace(self, local_addresses=addresses)

    @property
    def cache_context(self) -> tuple[bool, bool, int, bool]:
        """Everything that changes how the same attribute bytes decode."""
        return self._context


def _restore(cls: type, state: list) -> Negotiated:
    """A pickled :class:`Negotiated` (its ``__reduce__``)."""
    obj = object.__new__(cls)
    for f, value in zip(fields(cls), state, strict=True):
        object.__setattr__(obj, f.name, value)
    return obj


def _pack(address: str) -> bytes:
    if ":" in address:
        return socket.inet_pton(socket.AF_INET6, address.split("%", 1)[0])
    return socket.inet_aton(address)


DEFAULT = Negotiated()
