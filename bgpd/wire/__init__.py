"""bytes <-> BGP objects: no I/O, no reactor, the standard library only.

The public names most callers need are re-exported here.
"""

from bgpd.wire.attributes import AttributeCache, PathAttributes
from bgpd.wire.constants import AFI, IPV4_UNICAST, IPV6_UNICAST, SAFI, AttrType, MsgType
from bgpd.wire.errors import NotificationError, Outcome, Problem
from bgpd.wire.message import (
    KEEPALIVE,
    Framer,
    Keepalive,
    Message,
    decode_message,
    decode_stream,
    encode_message,
)
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import (
    MPReach,
    MPUnreach,
    Update,
    decode_update,
    pack_end_of_rib,
    pack_reach,
    pack_withdraw,
)

__all__ = [
    "AFI",
    "AttrType",
    "AttributeCache",
    "Framer",
    "IPV4_UNICAST",
    "IPV6_UNICAST",
    "KEEPALIVE",
    "Keepalive",
    "MPReach",
    "MPUnreach",
    "Message",
    "MsgType",
    "Negotiated",
    "Notification",
    "NotificationError",
    "Open",
    "Outcome",
    "PathAttributes",
    "Problem",
    "RouteRefresh",
    "SAFI",
    "Update",
    "decode_message",
    "decode_stream",
    "decode_update",
    "encode_message",
    "pack_end_of_rib",
    "pack_reach",
    "pack_withdraw",
]
