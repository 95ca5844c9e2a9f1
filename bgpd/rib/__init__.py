"""Adj-RIB-In, Loc-RIB, the decision process and Adj-RIB-Out (RFC 4271 sections 3.2 and 9).

Knows no socket, session or reactor: time comes in as ``call_later``.
"""

from bgpd.rib.adjout import GroupHost, Sink, UpdateGroup
from bgpd.rib.change import Change
from bgpd.rib.options import RibOptions
from bgpd.rib.rib import EndOfRibCallback, PrefixCountCallback, Rib, RibStats
from bgpd.rib.route import LOCAL, Path, PeerInfo, make_path, peer_role

__all__ = [
    "LOCAL",
    "Change",
    "EndOfRibCallback",
    "GroupHost",
    "Path",
    "PeerInfo",
    "PrefixCountCallback",
    "Rib",
    "RibOptions",
    "RibStats",
    "Sink",
    "UpdateGroup",
    "make_path",
    "peer_role",
]
