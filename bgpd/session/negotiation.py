"""OPEN negotiation (RFC 4271 4.2 and 6.2, RFC 5492, RFC 6793, RFC 4760,
RFC 7911, RFC 8654, RFC 8950, RFC 4724, RFC 9234, RFC 6286).

``local_open`` builds the OPEN we send to a neighbor from its config;
``negotiate`` checks the peer's OPEN against ours and the config and returns
what both sides agreed, or raises the NotificationError RFC 4271 6.2 (and the
RFCs after it) prescribes, with a reason for the log.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from bgpd.config import NeighborConfig
from bgpd.wire.capabilities import (
    FQDN,
    AddPath,
    BgpRole,
    EnhancedRouteRefresh,
    ExtendedMessage,
    ExtendedNextHop,
    FourOctetAS,
    GracefulRestart,
    LongLivedGracefulRestart,
    Multiprotocol,
    RouteRefresh,
)
from bgpd.wire.constants import (
    AFI,
    AS_TRANS,
    FAMILIES_BY_NAME,
    IPV4_UNICAST,
    ROLE_NAMES,
    ROLE_OPPOSITE,
    SAFI,
    OpenError,
    role_name,
)
from bgpd.wire.errors import NotificationError
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.open import Open

Family = tuple[int, int]

ROLE_BY_NAME = ROLE_NAMES
#: RFC 9234 section 4.2: the allowed (local role, remote role) pairs.
ROLE_PAIRS = set(ROLE_OPPOSITE.items())
_ADDPATH_MODE = {"off": 0, "receive": AddPath.RECEIVE, "send": AddPath.SEND, "both": AddPath.BOTH}
#: RFC 8950 (NLRI AFI, NLRI SAFI, next-hop AFI): the one triple bgpd offers
EXT_NH_IPV4_UNICAST = (AFI.IPV4, SAFI.UNICAST, AFI.IPV6)
LARGE_HOLD_TIME = 240  # RFC 4271 8.2.2: "a large value", 4 minutes suggested


def config_families(neighbor: NeighborConfig) -> tuple[Family, ...]:
    return tuple(FAMILIES_BY_NAME[name] for name in neighbor.families)


def local_open(neighbor: NeighborConfig, router_id: str, hostname: str | None = None) -> Open:
    """The OPEN we send to ``neighbor``."""
    families = config_families(neighbor)
    caps: list = [Multiprotocol(afi, safi) for afi, safi in families]
    if neighbor.route_refresh:
        caps.append(RouteRefresh())
        caps.append(EnhancedRouteRefresh())
    if neighbor.extended_message:
        caps.append(ExtendedMessage())
    if neighbor.extended_next_hop and IPV4_UNICAST in families:
        # RFC 8950 section 4: IPv4 unicast NLRI with an IPv6 next hop.
        caps.append(ExtendedNextHop((EXT_NH_IPV4_UNICAST,)))
    if neighbor.graceful_restart:
        # Helper (receiving speaker) only: no families, so no forwarding state
        # is claimed (RFC 4724 section 3).
        caps.append(GracefulRestart(0, neighbor.graceful_restart_time, ()))
    mode = _ADDPATH_MODE[neighbor.add_path]
    if mode:
        caps.append(AddPath(tuple((afi, safi, mode) for afi, safi in families)))
    if neighbor.role is not None:
        caps.append(BgpRole(ROLE_BY_NAME[neighbor.role]))
    if hostname is None:
        hostname = socket.gethostname()
    caps.append(FQDN(hostname.split(".")[0][:64], ""))
    return Open.make(neighbor.local_as, neighbor.hold_time, router_id, tuple(caps))


@dataclass(frozen=True)
class SessionInfo:
    """What a session agreed, for the RIB, the API and the logs."""

    negotiated: Negotiated
    hold_time: int
    keepalive_time: float
    peer_asn: int
    peer_router_id: str
    families: tuple[Family, ...]
    route_refresh: bool = False
    enhanced_route_refresh: bool = False
    #: The peer's graceful restart capability, if it sent one (RFC 4724).
    graceful_restart: GracefulRestart | None = None
    llgr: LongLivedGracefulRestart | None = None
    peer_role: int | None = None
    peer_hostname: str | None = None
    remote_open: Open | None = field(default=None, compare=False, repr=False)


def negotiate(
    neighbor: NeighborConfig, local: Open, remote: Open, router_id: str,
    route_server: bool = False,
) -> SessionInfo:
    """Check the peer's OPEN; return what was agreed or raise NotificationError."""
    peer_asn = remote.asn
    remote_as4 = remote.has(FourOctetAS)
    if not remote_as4 and remote.my_as == AS_TRANS:
        raise NotificationError(2, OpenError.BAD_PEER_AS, struct.pack("!H", remote.my_as),
                                "peer sent AS_TRANS without a 4-octet AS capability")
    if peer_asn != neighbor.remote_as:
        data = struct.pack("!H", remote.my_as)
        raise NotificationError(2, OpenError.BAD_PEER_AS, data,
                                f"peer AS {peer_asn}, configured remote_as {neighbor.remote_as}")
    if remote.hold_time in (1, 2):
        raise NotificationError(2, OpenError.UNACCEPTABLE_HOLD_TIME, b"",
                                f"hold time {remote.hold_time}")
    if remote.bgp_id == "0.0.0.0":
        raise NotificationError(2, OpenError.BAD_BGP_IDENTIFIER, b"", "BGP identifier 0.0.0.0")
    ibgp = peer_asn == neighbor.local_as
    if ibgp and remote.bgp_id == router_id:
        # RFC 6286 section 2.2: identical identifiers within one AS.
        raise NotificationError(2, OpenError.BAD_BGP_IDENTIFIER, b"",
                                f"BGP identifier {remote.bgp_id} is our own")

    local_fams = config_families(neighbor)
    remote_mp = {(c.afi, c.safi) for c in remote.find(Multiprotocol)}
    if not remote_mp and not remote.find(Multiprotocol):
        remote_mp = {IPV4_UNICAST}  # RFC 4760 section 8: no capability = IPv4 unicast only
    families = tuple(f for f in local_fams if f in remote_mp)
    if not families:
        data = b"".join(Multiprotocol(a, s).pack() for a, s in local_fams)
        raise NotificationError(2, OpenError.UNSUPPORTED_CAPABILITY, data,
                                "no address family in common: we offer "
                                + ", ".join(neighbor.families))

    local_role = ROLE_BY_NAME.get(neighbor.role) if neighbor.role else None
    remote_roles = remote.find(BgpRole)
    peer_role = remote_roles[0].role if remote_roles else None
    if local_role is not None:
        if len({r.role for r in remote_roles}) > 1:
            raise NotificationError(2, OpenError.ROLE_MISMATCH, b"",
                                    "peer sent several different roles")
        if peer_role is None:
            if neighbor.strict_role:
                raise NotificationError(2, OpenError.ROLE_MISMATCH, b"",
                                        "strict role: peer sent no BGP role capability")
        elif (local_role, peer_role) not in ROLE_PAIRS:
            raise NotificationError(
                2, OpenError.ROLE_MISMATCH, b"",
                f"our role {role_name(local_role)} does not pair with the peer's "
                f"{role_name(peer_role)}")

    hold = min(local.hold_time, remote.hold_time)
    local_ap = {(a, s): m for c in local.find(AddPath) for a, s, m in c.families}
    remote_ap = {(a, s): m for c in remote.find(AddPath) for a, s, m in c.families}
    addpath_rx = frozenset(f for f in families if local_ap.get(f, 0) & AddPath.RECEIVE
                           and remote_ap.get(f, 0) & AddPath.SEND)
    addpath_tx = frozenset(f for f in families if local_ap.get(f, 0) & AddPath.SEND
                           and remote_ap.get(f, 0) & AddPath.RECEIVE)
    extended = local.has(ExtendedMessage) and remote.has(ExtendedMessage)
    # RFC 8950 section 4: a triple is used in a direction when its receiver
    # advertised it: we accept what we advertised, and send what the peer
    # advertised, if we advertised it too (the operator turned it on).  Only
    # for a family the session carries.
    local_nh = {t for c in local.find(ExtendedNextHop) for t in c.entries
                if (t[0], t[1]) in families}
    remote_nh = {t for c in remote.find(ExtendedNextHop) for t in c.entries}
    neg = Negotiated(
        as4=remote_as4,
        ibgp=ibgp,
        peer_as=peer_asn,
        enforce_first_as=not ibgp and not route_server,
        families=frozenset(families),
        addpath_rx=addpath_rx,
        addpath_tx=addpath_tx,
        extended_message=extended,
        ext_nexthop=frozenset(local_nh & remote_nh),
        ext_nexthop_rx=frozenset(local_nh),
    )
    gr = remote.find(GracefulRestart)
    llgr = remote.find(LongLivedGracefulRestart)
    fqdn = remote.find(FQDN)
    return SessionInfo(
        negotiated=neg,
        hold_time=hold,
        keepalive_time=hold / 3.0,
        peer_asn=peer_asn,
        peer_router_id=remote.bgp_id,
        families=families,
        route_refresh=local.has(RouteRefresh) and (remote.has(RouteRefresh)
                                                    or remote.has(EnhancedRouteRefresh)),
        enhanced_route_refresh=local.has(EnhancedRouteRefresh) and remote.has(EnhancedRouteRefresh),
        graceful_restart=gr[0] if gr and local.has(GracefulRestart) else None,
        llgr=llgr[0] if llgr else None,
        peer_role=peer_role,
        peer_hostname=fqdn[0].hostname if fqdn else None,
        remote_open=remote,
    )
