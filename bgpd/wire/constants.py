"""Numbers from the IANA BGP registries (RFC 4271, 4760, 4486, 6608, 7313, 8203, 9234...)."""

from __future__ import annotations

from enum import IntEnum

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096  # RFC 4271 section 4.1
MAX_EXTENDED_MESSAGE_LEN = 65535  # RFC 8654
BGP_VERSION = 4
AS_TRANS = 23456  # RFC 6793


class MsgType(IntEnum):
    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


class AFI(IntEnum):
    IPV4 = 1
    IPV6 = 2


class SAFI(IntEnum):
    UNICAST = 1
    MULTICAST = 2


IPV4_UNICAST = (1, 1)
IPV6_UNICAST = (2, 1)
FAMILY_NAMES = {IPV4_UNICAST: "ipv4-unicast", IPV6_UNICAST: "ipv6-unicast"}
FAMILIES_BY_NAME = {name: fam for fam, name in FAMILY_NAMES.items()}


def family_name(afi: int, safi: int) -> str:
    """Return 'ipv4-unicast' style names, or 'afi-N/safi-M' for others."""
    return FAMILY_NAMES.get((afi, safi), f"afi-{afi}/safi-{safi}")


class AttrType(IntEnum):
    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    IPV6_EXTENDED_COMMUNITIES = 25
    LARGE_COMMUNITIES = 32
    OTC = 35


class AttrFlag(IntEnum):
    OPTIONAL = 0x80
    TRANSITIVE = 0x40
    PARTIAL = 0x20
    EXTENDED_LENGTH = 0x10


class Origin(IntEnum):
    IGP = 0
    EGP = 1
    INCOMPLETE = 2


#: RFC 4271 section 5.1.1: each ORIGIN by the name the config uses, in code order.
ORIGIN_NAMES: dict[str, Origin] = {o.name.lower(): o for o in Origin}


class SegmentType(IntEnum):
    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3
    AS_CONFED_SET = 4


class CapabilityCode(IntEnum):
    MULTIPROTOCOL = 1
    ROUTE_REFRESH = 2
    EXTENDED_NEXT_HOP = 5
    EXTENDED_MESSAGE = 6
    BGP_ROLE = 9
    GRACEFUL_RESTART = 64
    FOUR_OCTET_AS = 65
    ADD_PATH = 69
    ENHANCED_ROUTE_REFRESH = 70
    LONG_LIVED_GRACEFUL_RESTART = 71
    FQDN = 73


class ErrorCode(IntEnum):
    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH = 7  # RFC 7313


class HeaderError(IntEnum):
    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenError(IntEnum):
    UNSUPPORTED_VERSION_NUMBER = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7  # RFC 5492
    ROLE_MISMATCH = 11  # RFC 9234


class UpdateError(IntEnum):
    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN_ATTRIBUTE = 6
    INVALID_NEXT_HOP_ATTRIBUTE = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class FsmError(IntEnum):  # RFC 6608
    UNSPECIFIED = 0
    UNEXPECTED_IN_OPEN_SENT = 1
    UNEXPECTED_IN_OPEN_CONFIRM = 2
    UNEXPECTED_IN_ESTABLISHED = 3


class CeaseError(IntEnum):  # RFC 4486, 9003
    MAXIMUM_PREFIXES_REACHED = 1
    ADMINISTRATIVE_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMINISTRATIVE_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION_RESOLUTION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9  # RFC 8538
    BFD_DOWN = 10  # RFC 9384


class RouteRefreshError(IntEnum):  # RFC 7313
    INVALID_MESSAGE_LENGTH = 1


class RefreshSubtype(IntEnum):  # RFC 7313
    NORMAL = 0
    BEGIN = 1  # BoRR
    END = 2  # EoRR


ERROR_NAMES: dict[int, tuple[str, type[IntEnum] | None]] = {
    ErrorCode.MESSAGE_HEADER: ("Message Header Error", HeaderError),
    ErrorCode.OPEN_MESSAGE: ("OPEN Message Error", OpenError),
    ErrorCode.UPDATE_MESSAGE: ("UPDATE Message Error", UpdateError),
    ErrorCode.HOLD_TIMER_EXPIRED: ("Hold Timer Expired", None),
    ErrorCode.FSM: ("Finite State Machine Error", FsmError),
    ErrorCode.CEASE: ("Cease", CeaseError),
    ErrorCode.ROUTE_REFRESH: ("ROUTE-REFRESH Message Error", RouteRefreshError),
}


def error_name(code: int, subcode: int) -> str:
    """Human name of a NOTIFICATION code/subcode pair, for logs."""
    name, subcodes = ERROR_NAMES.get(code, (f"error code {code}", None))
    if subcodes is None:
        return name if subcode == 0 else f"{name} / subcode {subcode}"
    try:
        sub = subcodes(subcode).name.replace("_", " ").lower()
    except ValueError:
        sub = "unspecific" if subcode == 0 else f"subcode {subcode}"
    return f"{name} / {sub}"


class Community(IntEnum):
    """Well-known communities (RFC 1997, 3765, 7999, 8326)."""

    GRACEFUL_SHUTDOWN = 0xFFFF0000
    ACCEPT_OWN = 0xFFFF0001
    LLGR_STALE = 0xFFFF0006
    NO_LLGR = 0xFFFF0007
    BLACKHOLE = 0xFFFF029A
    NO_EXPORT = 0xFFFFFF01
    NO_ADVERTISE = 0xFFFFFF02
    NO_EXPORT_SUBCONFED = 0xFFFFFF03
    NO_PEER = 0xFFFFFF04


class Role(IntEnum):  # RFC 9234
    PROVIDER = 0
    RS = 1
    RS_CLIENT = 2
    CUSTOMER = 3
    PEER = 4


#: RFC 9234 section 4.1: each role by the name the config and the logs use
#: ("rs-client"), in code order.  The one table of role names.
ROLE_NAMES: dict[str, Role] = {r.name.lower().replace("_", "-"): r for r in Role}

#: RFC 9234 section 4.2: the role the peer must have for each of ours.
ROLE_OPPOSITE: dict[Role, Role] = {
    Role.PROVIDER: Role.CUSTOMER,
    Role.CUSTOMER: Role.PROVIDER,
    Role.RS: Role.RS_CLIENT,
    Role.RS_CLIENT: Role.RS,
    Role.PEER: Role.PEER,
}


def role_name(role: int) -> str:
    """The name of an RFC 9234 role value, or ``role N`` for one the RFC does not define."""
    try:
        return Role(role).name.lower().replace("_", "-")
    except ValueError:
        return f"role {role}"
