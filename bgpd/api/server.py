"""The gRPC server: servicers for bgpd.v1, in grpcio's own threads.

Every handler runs on a grpcio worker thread and reaches routing state only
through ``threads.blockingCallFromThread(reactor, ...)`` on the one
:class:`bgpd.api.control.Control`; records are turned into protobuf here and
nowhere else.  :class:`ControlError` becomes the matching status code with
a message naming the field; read-only mode answers PERMISSION_DENIED to
every mutating call.  Health checking (grpc.health.v1) and server reflection
are served when their modules are importable.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import Any

import attrs
import grpc
from twisted.internet import threads
from twisted.logger import Logger

from bgpd.api._gen.bgpd.v1 import (
    events_pb2,
    events_pb2_grpc,
    global_pb2,
    global_pb2_grpc,
    monitor_pb2,
    monitor_pb2_grpc,
    peers_pb2,
    peers_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    routes_pb2,
    routes_pb2_grpc,
    rpki_pb2,
    rpki_pb2_grpc,
)
from bgpd.api.control import (
    ADJ_RIB_IN,
    ADJ_RIB_IN_PRE,
    ADJ_RIB_OUT,
    CHUNK,
    HARD,
    LOC_RIB,
    SOFT_IN,
    SOFT_OUT,
    Control,
    ControlError,
    EndOfDump,
    GlobalStatus,
    NotificationInfo,
    Overflow,
    PathFacts,
    PeerStatus,
    RawChunk,
    RouteRecord,
    RpkiStatus,
    SessionEventRecord,
    WatchBatch,
    Withdrawn,
    check_stored_paths,
    parse_paths,
    precompute_paths,
)
from bgpd.config import API_RELOADABLE, ApiConfig, NeighborConfig, split_listen
from bgpd.rpki.records import Validity, Vrp
from bgpd.wire.communities import format_community, format_ext_community, format_large_community
from bgpd.wire.constants import ORIGIN_NAMES, SegmentType, family_name
from bgpd.wire.nlri import prefix_to_str

log = Logger()

_ORIGIN_TEXT = {int(v): k for k, v in ORIGIN_NAMES.items()}

_RESET_KINDS = {peers_pb2.ResetPeerRequest.HARD: HARD, peers_pb2.ResetPeerRequest.SOFT_IN: SOFT_IN,
                peers_pb2.ResetPeerRequest.SOFT_OUT: SOFT_OUT}
# PeerConfig fields that map one to one onto [[neighbors]] keys.
_SCALAR_KEYS = ("local_as", "description", "enabled", "passive", "local_address", "port", "hold_time",
                "route_reflector_client", "next_hop_self", "soft_reconfiguration_inbound",
                "connect_retry_time", "ttl_security", "md5_password")
_LIST_KEYS = ("families", "import_policy", "export_policy")
SERVICE_NAMES = ("bgpd.v1.Global", "bgpd.v1.Peers", "bgpd.v1.Routes", "bgpd.v1.Events", "bgpd.v1.Policy")
SERVICE_NAMES += ("bgpd.v1.Monitor",)
SERVICE_NAMES += ("bgpd.v1.Rpki",)
_TABLES = {routes_pb2.LOC_RIB: LOC_RIB, routes_pb2.ADJ_RIB_IN: ADJ_RIB_IN,
           routes_pb2.ADJ_RIB_IN_PRE: ADJ_RIB_IN_PRE, routes_pb2.ADJ_RIB_OUT: ADJ_RIB_OUT}
#: paths handed to the reactor thread per call while originating
ORIGINATE_CHUNK = 1000
#: prefixes snapshotted per reactor turn for a best-path listing (the reactor's
#: share is about 0.4 us a prefix; see bench/api.py)
RAW_CHUNK = 20_000
#: most events one read of a watch takes (they go out in messages of MESSAGE_BYTES)
WATCH_BATCH = 15_000
#: about the most bytes in one ListRoutes / WatchRoutes message built by hand: half
#: grpc's default 4 MB client limit, large enough that per-message costs vanish
MESSAGE_BYTES = 2 << 20


class _Bridge:
    """Runs a control method on the reactor thread and maps its errors to statuses."""

    def __init__(self, reactor: Any, control: Control, read_only: bool) -> None:
        self.reactor = reactor
        self.control = control
        self.read_only = read_only

    def call(self, context: grpc.ServicerContext, method: Callable[..., Any], *args: Any,
             mutating: bool = False, **kwargs: Any) -> Any:
        if mutating:
            self.check_writable(context)
        try:
            return threads.blockingCallFromThread(self.reactor, method, *args, **kwargs)
        except ControlError as err:
            context.abort(getattr(grpc.StatusCode, err.status), str(err))

    def check_writable(self, context: grpc.ServicerContext) -> None:
        if self.read_only:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "the API is read-only ([api] read_only)")


# -- records -> protobuf ---------------------------------------------------------


def _counts(pairs: tuple[tuple[str, int], ...]) -> list[global_pb2.FamilyCount]:
    return [global_pb2.FamilyCount(family=f, count=n) for f, n in pairs]


def global_to_pb(g: GlobalStatus, read_only: bool) -> global_pb2.GlobalInfo:
    return global_pb2.GlobalInfo(
        router_id=g.router_id, local_as=g.local_as, uptime_seconds=g.uptime_seconds,
        version=g.version, peers_total=g.peers_total, peers_established=g.peers_established,
        loc_rib=_counts(g.loc_rib), read_only=read_only)


def neighbor_to_pb(n: NeighborConfig) -> peers_pb2.PeerConfig:
    pc = peers_pb2.PeerConfig(address=n.address, remote_as=n.remote_as)
    for key in _SCALAR_KEYS:
        value = getattr(n, key)
        if value is not None and key != "md5_password":
            setattr(pc, key, value)
    for key in _LIST_KEYS:
        getattr(pc, key).extend(getattr(n, key))
    return pc


def neighbor_from_pb(pc: peers_pb2.PeerConfig) -> dict[str, Any]:
    """A [[neighbors]] table: only the fields the client set (unset = the config default)."""
    table: dict[str, Any] = {}
    if pc.address:
        table["address"] = pc.address
    if pc.remote_as:
        table["remote_as"] = pc.remote_as
    for key in _SCALAR_KEYS:
        if pc.HasField(key):
            table[key] = getattr(pc, key)
    for key in _LIST_KEYS:
        if getattr(pc, key):
            table[key] = list(getattr(pc, key))
    return table


def _notification_pb(n: NotificationInfo | None) -> peers_pb2.Notification | None:
    if n is None:
        return None
    return peers_pb2.Notification(code=n.code, subcode=n.subcode, name=n.name,
                                  shutdown_message=n.shutdown_message, data=n.data)


def peer_to_pb(p: PeerStatus) -> peers_pb2.Peer:
    return peers_pb2.Peer(
        config=neighbor_to_pb(p.config), state=p.state, state_seconds=p.state_seconds,
        enabled=p.enabled, router_id=p.router_id, hold_time=p.hold_time, families=p.families,
        capabilities=p.capabilities, prefixes_received=_counts(p.prefixes_received),
        prefixes_accepted=_counts(p.prefixes_accepted),
        prefixes_advertised=_counts(p.prefixes_advertised), last_error=p.last_error,
        last_notification_sent=_notification_pb(p.last_notification_sent),
        last_notification_received=_notification_pb(p.last_notification_received),
        messages_received=p.messages_received, messages_sent=p.messages_sent,
        updates_received=p.updates_received, established_transitions=p.established_transitions,
        flaps=p.flaps, peer_as=p.peer_as, from_api=p.from_api)


def attributes_to_pb(a: Any) -> routes_pb2.PathAttributes:
    pb = routes_pb2.PathAttributes(
        origin=_ORIGIN_TEXT.get(a.origin, str(a.origin)),
        as_path=[routes_pb2.AsPathSegment(type=_segment_name(t), asns=asns) for t, asns in a.as_path],
        next_hop=a.next_hop or "",
        communities=[format_community(c) for c in a.communities],
        large_communities=[format_large_community(c) for c in a.large_communities],
        ext_communities=[format_ext_community(c) for c in a.ext_communities],
        atomic_aggregate=bool(a.atomic_aggregate),
        originator_id=a.originator_id or "",
        cluster_list=[str(c) for c in a.cluster_list or ()],
        next_hop_link_local=a.next_hop_ll or "",
        unknown=[routes_pb2.UnknownAttribute(flags=f, type=t, value=v) for f, t, v in a.unknown or ()],
    )
    if a.med is not None:
        pb.med = a.med
    if a.local_pref is not None:
        pb.local_pref = a.local_pref
    if a.otc is not None:
        pb.otc = a.otc
    if a.aggregator is not None:
        pb.aggregator_as, pb.aggregator_address = a.aggregator[0], str(a.aggregator[1])
    return pb


#: RouteRecord.kernel -> routes_pb2.KernelState
KERNEL_STATES = {
    "installed": routes_pb2.KERNEL_STATE_INSTALLED, "pending": routes_pb2.KERNEL_STATE_PENDING,
    "failed": routes_pb2.KERNEL_STATE_FAILED, "filtered": routes_pb2.KERNEL_STATE_FILTERED,
    "not-selected": routes_pb2.KERNEL_STATE_NOT_SELECTED, "unresolved": routes_pb2.KERNEL_STATE_UNRESOLVED,
}


def route_to_pb(r: RouteRecord,
                cache: dict[Any, routes_pb2.PathAttributes] | None = None) -> routes_pb2.Route:
    """``cache``: attribute sets already converted (the RIB shares one set among many prefixes)."""
    if cache is None:
        attributes = attributes_to_pb(r.attributes)
    else:
        attributes = cache.get(r.attributes)
        if attributes is None:
            attributes = cache[r.attributes] = attributes_to_pb(r.attributes)
    return routes_pb2.Route(prefix=r.prefix, family=r.family, path_id=r.path_id, best=r.best,
                            source_peer=r.source_peer, source_router_id=r.source_router_id,
                            attributes=attributes, explain_step=r.explain_step, stale=r.stale,
                            rpki=r.rpki, aspa=r.aspa, age_seconds=r.age,
                            kernel=KERNEL_STATES.get(r.kernel, 0))


# -- the fast path of listings: Route messages encoded by hand ------------------------
#
# Building one protobuf Route per path (and copying its attribute sub-message)
# cost about 14 us a path, most of a full-table listing.  Route's wire form is
# simple (RFC-free: protobuf's encoding, fields in any order), the attribute
# set is shared by several prefixes, and upb parses bytes far faster than
# Python builds messages: so each Route is written as bytes, each distinct
# attribute set serialized once, and the chunk parsed back as one
# ListRoutesResponse.  tests/api check the result equals route_to_pb's.


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, data: bytes) -> bytes:
    """A length-delimited field (wire type 2) with a one-octet tag."""
    n = len(data)
    return bytes((tag << 3 | 2, n)) + data if n < 0x80 else bytes((tag << 3 | 2,)) + _varint(n) + data


def _ld(tag: int, data: bytes) -> bytes:
    """A length-delimited field with any tag."""
    n = len(data)
    if n < 0x80 and tag < 16:
        return bytes((tag << 3 | 2, n)) + data
    return _varint(tag << 3 | 2) + _varint(n) + data


def _text_pieces(out: list[bytes], cache: dict[Any, bytes], tag: int, text: Callable[[Any], str],
                 values: Iterable[Any]) -> None:
    """Append field ``tag`` holding ``text(v)`` for each of ``values``; each field made once per ``cache``."""
    for v in values:
        b = cache.get(v)
        if b is None:
            b = cache[v] = _ld(tag, text(v).encode())
        out.append(b)


class AttributePieces:
    """``attributes_to_pb(a).SerializeToString()`` by hand, from cached pieces.

    Attribute sets differ, but their pieces repeat across sets: origins,
    next hops, ASNs, communities.  Each piece's field bytes are made once
    per encoder and joined in field-number order, defaults left out as
    proto3 does (``optional`` fields present whenever set); tests/api check
    the result parses to exactly ``attributes_to_pb``'s message.  About a
    third faster than building the message, for a listing's every set.
    """

    def __init__(self) -> None:
        self.asn: dict[int, bytes] = {}
        self.seg: dict[int, bytes] = {}
        self.comm: dict[int, bytes] = {}
        self.large: dict[Any, bytes] = {}
        self.ext: dict[bytes, bytes] = {}
        self.text: dict[tuple[int, Any], bytes] = {}

    def _asn(self, n: int) -> bytes:
        b = self.asn[n] = _varint(n)
        return b

    def encode(self, a: Any) -> bytes:
        text = self.text
        out = []
        origin = a.origin
        o = text.get((1, origin))
        if o is None:
            o = text[(1, origin)] = _ld(1, _ORIGIN_TEXT.get(origin, str(origin)).encode())
        out.append(o)
        asn = self.asn
        seg = self.seg
        for t, asns in a.as_path:
            head = seg.get(t)
            if head is None:
                head = seg[t] = _ld(1, _segment_name(t).encode())
            body = head + _ld(2, b"".join([asn.get(n) or self._asn(n) for n in asns])) if asns else head
            out.append(_ld(2, body))
        nh = a.next_hop
        if nh:
            b = text.get((3, nh))
            if b is None:
                b = text[(3, nh)] = _ld(3, nh.encode())
            out.append(b)
        if a.med is not None:
            out.append(b"\x20" + _varint(a.med))
        if a.local_pref is not None:
            out.append(b"\x28" + _varint(a.local_pref))
        if a.communities:
            _text_pieces(out, self.comm, 6, format_community, a.communities)
        if a.large_communities:
            _text_pieces(out, self.large, 7, format_large_community, a.large_communities)
        if a.ext_communities:
            _text_pieces(out, self.ext, 8, format_ext_community, a.ext_communities)
        if a.atomic_aggregate:
            out.append(b"\x48\x01")
        if a.aggregator is not None:
            if a.aggregator[0]:
                out.append(b"\x50" + _varint(a.aggregator[0]))
            address = str(a.aggregator[1])
            if address:
                out.append(_ld(11, address.encode()))
        if a.originator_id:
            out.append(_ld(12, a.originator_id.encode()))
        if a.cluster_list:
            out.extend(_ld(13, str(c).encode()) for c in a.cluster_list)
        if a.otc is not None:
            out.append(b"\x70" + _varint(a.otc))
        if a.next_hop_ll:
            out.append(_ld(15, a.next_hop_ll.encode()))
        for flags, type_, value in a.unknown or ():
            body = (b"\x08" + _varint(flags) if flags else b"") + \
                (b"\x10" + _varint(type_) if type_ else b"") + (_ld(3, value) if value else b"")
            out.append(_ld(16, body))
        return b"".join(out)


class RouteEncoder:
    """Encodes RouteRecords as Route wire bytes, caching what paths share."""

    def __init__(self, message_bytes: int = MESSAGE_BYTES) -> None:
        self.attributes: dict[Any, bytes] = {}
        self.sources: dict[tuple[str, str, str], bytes] = {}
        self.pieces = AttributePieces()
        #: about the most bytes in one message of raw_response / watch_raw
        self.message_bytes = message_bytes
        #: path -> (what its part was made from, its Route bytes but the prefix).
        #: The first is plain values (the attribute set by id: the path holds
        #: it), not the facts: a cache of objects that refer to others is
        #: what the garbage collector scans again and again, stopping every
        #: thread, the reactor's too.
        self.parts: dict[Any, tuple[tuple, bytes]] = {}
        self.family_names: dict[tuple[int, int], str] = {}

    def _attributes(self, a: Any) -> bytes:
        if len(self.attributes) > 100_000:
            # A long watch meets ever more sets and pieces: start over rather than grow.
            self.attributes.clear()
            self.pieces = AttributePieces()
        data = self.attributes[a] = _field(7, self.pieces.encode(a))
        return data

    def _source(self, key: tuple[str, str, str]) -> bytes:
        data = self.sources[key] = b"".join(
            _field(tag, text.encode()) for tag, text in zip((2, 5, 6), key, strict=True) if text)
        return data

    def route(self, r: RouteRecord) -> bytes:
        attrs = self.attributes.get(r.attributes) or self._attributes(r.attributes)
        key = (r.family, r.source_peer, r.source_router_id)
        source = self.sources.get(key) or self._source(key)
        body = _field(1, r.prefix.encode()) + source + attrs
        if r.path_id:
            body += b"\x18" + _varint(r.path_id)
        if r.best:
            body += b"\x20\x01"
        if r.explain_step:
            body += _field(8, r.explain_step.encode())
        if r.stale:
            body += b"\x48\x01"
        if r.rpki:
            body += b"\x50" + _varint(r.rpki)
        if r.aspa:
            body += b"\x58" + _varint(r.aspa)
        if r.age:
            body += b"\x60" + _varint(r.age)  # age_seconds = 12, varint
        if r.kernel:
            body += b"\x78" + bytes((KERNEL_STATES.get(r.kernel, 0),))  # field 15, varint
        return body

    def response(self, records: list[RouteRecord]) -> routes_pb2.ListRoutesResponse:
        """One ListRoutesResponse holding ``records``."""
        attributes, sources = self.attributes, self.sources
        out = []
        for r in records:
            if r.path_id or r.explain_step or r.stale or r.rpki or r.aspa or r.age or r.kernel:
                body = self.route(r)
            else:
                # the common case, inline: prefix, source, attributes, best
                attrs = attributes.get(r.attributes) or self._attributes(r.attributes)
                key = (r.family, r.source_peer, r.source_router_id)
                source = sources.get(key) or self._source(key)
                p = r.prefix.encode()
                body = b"\x0a" + bytes((len(p),)) + p + source + attrs + (b"\x20\x01" if r.best else b"")
            n = len(body)
            out.append((b"\x0a" + bytes((n,)) if n < 0x80 else b"\x0a" + _varint(n)) + body)
        return routes_pb2.ListRoutesResponse.FromString(b"".join(out))


    def raw_response(self, chunk: RawChunk) -> list[bytes]:
        """ListRoutesResponses' wire bytes from a best-path snapshot (`RouteCursor.next_raw`).

        Each distinct path's part (source, attributes, flags) is built once
        per listing and reused for every prefix sharing it; per prefix only
        its text and two length octets are new.  Cut into messages of about
        ``message_bytes`` (grpc clients refuse messages over 4 MB by default).
        """
        afi = chunk.family[0]
        fname = family_name(*chunk.family)
        meta = chunk.meta
        parts = self.parts
        limit = self.message_bytes
        messages = []
        out: list[bytes] = []
        append = out.append
        size = 0
        to_str = prefix_to_str
        kernel = chunk.kernel
        states = KERNEL_STATES
        for i, (key, path) in enumerate(zip(chunk.keys, chunk.paths, strict=True)):
            facts = meta[path]
            sig = (id(facts[0]), fname, *facts[1:])
            hit = parts.get(path)
            if hit is None or hit[0] != sig:
                hit = parts[path] = (sig, self._part(fname, facts))
            p = to_str(key, afi).encode()
            tail = hit[1]
            if kernel is not None and kernel[i]:
                tail += b"\x78" + bytes((states.get(kernel[i], 0),))  # kernel = 15, varint
            n = len(p) + 2 + len(tail)
            route = (b"\x0a" + bytes((n,)) if n < 0x80 else b"\x0a" + _varint(n)) + b"\x0a" + \
                bytes((len(p),)) + p + tail
            if size + len(route) > limit and out:
                messages.append(b"".join(out))
                out.clear()
                size = 0
            append(route)
            size += len(route)
        if out:
            messages.append(b"".join(out))
        return messages

    def watch_raw(self, batch: WatchBatch) -> list[bytes]:
        """WatchRoutesResponses' wire bytes from what `RouteWatch.take` took.

        Each event is RouteEvent (field 1 of the response) holding a Route
        (1), a Withdrawal (2) or an EndOfDump (3); a path's part is built
        once per stream, as in `raw_response`.  Cut into messages of about
        ``message_bytes``, each with the lag behind it (the batch's, plus
        the events of the messages after it).
        """
        parts = self.parts
        names = self.family_names
        limit = self.message_bytes
        pieces: list[tuple[bytes, int]] = []  # (events' bytes, how many)
        out: list[bytes] = []
        append = out.append
        size = 0
        to_str = prefix_to_str
        for e in batch.events:
            if e.__class__ is EndOfDump:
                event = _field(1, _field(3, (b"\x08" + _varint(e.count)) if e.count else b""))
            else:
                fam, key, entry = e
                fname = names.get(fam) or names.setdefault(fam, family_name(*fam))
                path_id = 0
                if key.__class__ is tuple:  # (path id, prefix): an ADD-PATH Adj-RIB-In
                    path_id, key = key
                p = to_str(key, fam[0]).encode()
                if entry is None:
                    body = _field(1, p) + _field(2, fname.encode())
                    if path_id:
                        body += b"\x18" + _varint(path_id)
                    event = _field(1, _field(2, body))
                else:
                    path, facts = entry
                    sig = (id(facts[0]), fname, *facts[1:])
                    hit = parts.get(path)
                    if hit is None or hit[0] != sig:
                        hit = parts[path] = (sig, self._part(fname, facts))
                    n = len(p) + 2 + len(hit[1])  # the Route
                    m = n + 1 + (1 if n < 0x80 else len(_varint(n)))  # the RouteEvent: tag, length, Route
                    event = b"\x0a" + (bytes((m,)) if m < 0x80 else _varint(m)) + b"\x0a" + \
                        (bytes((n,)) if n < 0x80 else _varint(n)) + b"\x0a" + bytes((len(p),)) + p + hit[1]
            if size + len(event) > limit and out:
                pieces.append((b"".join(out), len(out)))
                out.clear()
                size = 0
            append(event)
            size += len(event)
        if out:
            pieces.append((b"".join(out), len(out)))
        messages = []
        behind = batch.lag + sum(n for _, n in pieces)
        for data, n in pieces:
            behind -= n
            messages.append(data + (b"\x10" + _varint(behind) if behind else b""))
        return messages

    def _part(self, fname: str, facts: PathFacts) -> bytes:
        """Everything of a Route but its prefix (fields in any order: protobuf allows it)."""
        if len(self.parts) > 100_000:
            self.parts.clear()
        a = facts.attributes
        key = (fname, facts.source_peer, facts.source_router_id)
        body = (self.sources.get(key) or self._source(key)) + \
            (self.attributes.get(a) or self._attributes(a))
        if facts.path_id:
            body += b"\x18" + _varint(facts.path_id)
        if facts.best:
            body += b"\x20\x01"
        if facts.stale:
            body += b"\x48\x01"
        if facts.age:
            body += b"\x60" + _varint(facts.age)  # age_seconds = 12, varint
        if facts.rpki:
            body += b"\x50" + _varint(facts.rpki)  # rpki = 10
        if facts.aspa:
            body += b"\x58" + _varint(facts.aspa)  # aspa = 11
        return body

    def watch_response(self, items: list[Any], lag: int) -> routes_pb2.WatchRoutesResponse:
        """One WatchRoutesResponse of route updates, withdrawals and end-of-dump markers."""
        out = []
        for item in items:
            if isinstance(item, EndOfDump):
                event = _field(3, (b"\x08" + _varint(item.count)) if item.count else b"")
            elif isinstance(item, Withdrawn):
                event = _field(2, _field(1, item.prefix.encode()) + _field(2, item.family.encode()) +
                               ((b"\x18" + _varint(item.path_id)) if item.path_id else b""))
            else:
                event = _field(1, self.route(item))
            out.append(_field(1, event))
        if lag:
            out.append(b"\x10" + _varint(lag))
        return routes_pb2.WatchRoutesResponse.FromString(b"".join(out))


def _segment_name(t: int) -> str:
    try:
        return SegmentType(t).name
    except ValueError:
        return str(t)


def path_from_pb(p: routes_pb2.OriginatePath) -> dict[str, Any]:
    item: dict[str, Any] = {"prefix": p.prefix, "next_hop": p.next_hop, "origin": p.origin,
                            "communities": list(p.communities),
                            "large_communities": list(p.large_communities)}
    if p.HasField("med"):
        item["med"] = p.med
    if p.HasField("local_pref"):
        item["local_pref"] = p.local_pref
    return item


# -- servicers -------------------------------------------------------------------


class GlobalServicer(global_pb2_grpc.GlobalServicer):
    def __init__(self, bridge: _Bridge) -> None:
        self.bridge = bridge

    def GetGlobal(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        g = self.bridge.call(context, self.bridge.control.global_status)
        return global_to_pb(g, self.bridge.read_only)

    def GetConfig(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        text, peers, paths = self.bridge.call(context, self.bridge.control.running_config)
        return global_pb2.RunningConfig(toml=text, api_neighbors=peers, api_paths=paths)

    def GetKernel(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        k = self.bridge.call(context, self.bridge.control.kernel_status)
        return global_pb2.KernelInfo(
            enabled=k.enabled, table=k.table, protocol=k.protocol, metric=k.metric,
            families=[global_pb2.KernelFamily(family=f, installed=i, pending=p, failed=x)
                      for f, i, p, x in k.families])

    def GetBmp(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        stations = self.bridge.call(context, self.bridge.control.bmp_status)
        return global_pb2.BmpInfo(enabled=bool(stations), collectors=[
            global_pb2.BmpCollector(
                name=s.name, address=s.address, port=s.port, monitoring=list(s.monitoring),
                state=s.state, messages=s.messages, octets=s.octets, drops=s.drops,
                connects=s.connects, buffered=s.buffered, buffer=s.buffer,
                last_error=s.last_error)
            for s in stations])


class PeersServicer(peers_pb2_grpc.PeersServicer):
    def __init__(self, bridge: _Bridge) -> None:
        self.bridge = bridge
        self.control = bridge.control

    def ListPeers(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        peers = self.bridge.call(context, self.control.peers)
        return peers_pb2.ListPeersResponse(peers=[peer_to_pb(p) for p in peers])

    def GetPeer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return peer_to_pb(self.bridge.call(context, self.control.peer, request.address))

    def EnablePeer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return peer_to_pb(self.bridge.call(context, self.control.enable_peer, request.address,
                                           mutating=True))

    def DisablePeer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return peer_to_pb(self.bridge.call(context, self.control.disable_peer, request.address,
                                           request.message, mutating=True))

    def ResetPeer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        kind = _RESET_KINDS.get(request.kind)
        if kind is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"kind: unknown reset kind {request.kind}")
        return peer_to_pb(self.bridge.call(context, self.control.reset_peer, request.address, kind,
                                           request.message, mutating=True))

    def AddPeer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if not request.HasField("config"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "config: required")
        return peer_to_pb(self.bridge.call(context, self.control.add_peer,
                                           neighbor_from_pb(request.config), mutating=True))

    def UpdatePeer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if not request.HasField("config"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "config: required")
        return peer_to_pb(self.bridge.call(context, self.control.update_peer,
                                           neighbor_from_pb(request.config), mutating=True))

    def DeletePeer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.bridge.call(context, self.control.delete_peer, request.address, mutating=True)
        return peers_pb2.DeletePeerResponse()


class RoutesServicer(routes_pb2_grpc.RoutesServicer):
    def __init__(self, bridge: _Bridge, watch_bound: int) -> None:
        self.bridge = bridge
        self.control = bridge.control
        self.watch_bound = watch_bound
        #: whether the server sends bytes yielded by ListRoutes / WatchRoutes as they are
        self.raw_ok = False

    def raw(self, data: bytes, message: Any) -> Any:
        """A stream's next response from its wire bytes (parsed only if the server needs a message)."""
        return data if self.raw_ok else message.FromString(data)

    def ListRoutes(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        table = _TABLES.get(request.table)
        if table is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"table: unknown table {request.table}")
        which = request.WhichOneof("filter")
        filters = {which: getattr(request, which)} if which else {}
        # What a page token is valid for: the request without its paging fields.
        fingerprint = (table, request.family, request.peer, which, filters.get(which), request.all_paths,
                       request.limit)
        if request.page_token:
            cursor = self.bridge.call(context, self.control.resume_cursor, request.page_token, fingerprint)
        else:
            cursor = self.bridge.call(context, self.control.list_routes, table, request.family,
                                      request.peer, all_paths=request.all_paths, limit=request.limit,
                                      **filters)
        reactor = self.bridge.reactor
        encoder = RouteEncoder()
        page = request.page_size
        sent = 0
        # One chunk per reactor turn: routing runs between the chunks.  The
        # chunk is turned into protobuf here, on the grpc thread.
        if cursor.raw:
            yield from self._list_raw(context, cursor, fingerprint, page)
            return
        while True:
            chunk = threads.blockingCallFromThread(reactor, cursor.next, CHUNK, page - sent if page else 0)
            sent += len(chunk)
            if cursor.done or not context.is_active():
                if chunk:
                    yield encoder.response(chunk)
                return
            if page and sent >= page:
                token = threads.blockingCallFromThread(reactor, self.control.save_cursor, cursor, fingerprint)
                response = encoder.response(chunk)
                response.next_page_token = token
                yield response
                return
            if chunk:
                yield encoder.response(chunk)

    def _list_raw(self, context: grpc.ServicerContext, cursor: Any, fingerprint: tuple, page: int) -> Any:
        """The best-path listing: the reactor snapshots, this thread renders the bytes."""
        reactor = self.bridge.reactor
        encoder = RouteEncoder()
        sent = 0
        for _ in range(1 << 40):  # bounded by the table: each turn advances the cursor
            chunk = threads.blockingCallFromThread(reactor, cursor.next_raw, RAW_CHUNK,
                                                   page - sent if page else 0)
            sent += len(chunk.paths)
            messages = encoder.raw_response(chunk) if chunk.paths else []
            if cursor.done or not context.is_active():
                for data in messages:
                    yield self.raw(data, routes_pb2.ListRoutesResponse)
                return
            if page and sent >= page:
                token = threads.blockingCallFromThread(reactor, self.control.save_cursor, cursor, fingerprint)
                last = messages.pop() if messages else b""
                for data in messages:
                    yield self.raw(data, routes_pb2.ListRoutesResponse)
                # next_page_token = 2, on the page's last message
                yield self.raw(last + _field(2, token.encode()), routes_pb2.ListRoutesResponse)
                return
            for data in messages:
                yield self.raw(data, routes_pb2.ListRoutesResponse)

    def AddPaths(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.bridge.check_writable(context)
        paths = []
        lease = ""
        try:
            for request in request_iterator:
                lease = request.lease_id or lease
                paths.extend(parse_paths([path_from_pb(p) for p in request.paths], len(paths)))
        except ControlError as err:
            context.abort(getattr(grpc.StatusCode, err.status), str(err))
        if not lease:
            # Config (the state store): one call is one transaction, so a
            # failure anywhere in the request leaves every path as it was.
            # Checked here, on this thread; the reactor validates the whole
            # config, a thread writes the store, the RIB takes it in chunks.
            bgp, snapshot = self.bridge.call(context, self.control.batch_snapshot)
            if bgp is None:
                return routes_pb2.AddPathsResponse(count=self.bridge.call(context, self.control.add_paths,
                                                                          paths, ""))
            try:
                batch = check_stored_paths(paths, bgp)
                pre = precompute_paths(snapshot, batch)
            except ControlError as err:
                context.abort(getattr(grpc.StatusCode, err.status), str(err))
            count = self.bridge.call(context, self.control.add_stored_batch, paths, batch, pre)
            return routes_pb2.AddPathsResponse(count=count)
        count = 0
        for i in range(0, len(paths), ORIGINATE_CHUNK):
            count += self.bridge.call(context, self.control.add_paths, paths[i:i + ORIGINATE_CHUNK],
                                      lease)
        return routes_pb2.AddPathsResponse(count=count)

    def HoldPaths(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.bridge.check_writable(context)
        reactor = self.bridge.reactor
        lease = self.bridge.call(context, self.control.create_lease, 0)
        ended = []

        def end() -> None:
            if not ended:
                ended.append(True)
                reactor.callFromThread(_end_quietly, self.control, lease.id, "its stream ended")

        # Runs when the RPC ends for any reason: the client closed, cancelled or died.
        context.add_callback(end)
        try:
            offset = 0
            for request in request_iterator:
                try:
                    batch = parse_paths([path_from_pb(p) for p in request.paths], offset)
                except ControlError as err:
                    context.abort(getattr(grpc.StatusCode, err.status), str(err))
                offset += len(batch)
                count = 0
                for i in range(0, len(batch), ORIGINATE_CHUNK):
                    count += self.bridge.call(context, self.control.add_paths,
                                              batch[i:i + ORIGINATE_CHUNK], lease.id)
                yield routes_pb2.AddPathsResponse(count=count)
        finally:
            end()

    def CreateLease(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _lease_pb(self.bridge.call(context, self.control.create_lease_checked, request.ttl_seconds,
                                          mutating=True))

    def RenewLease(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _lease_pb(self.bridge.call(context, self.control.renew_lease, request.id, mutating=True))

    def DeleteLease(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _lease_pb(self.bridge.call(context, self.control.end_lease, request.id, mutating=True))

    def DeletePaths(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        n = self.bridge.call(context, self.control.delete_paths, list(request.prefixes), mutating=True)
        return routes_pb2.DeletePathsResponse(count=n)

    def WatchRoutes(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        reactor = self.bridge.reactor
        if request.table == routes_pb2.LOC_RIB:
            if request.peer:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "peer: the Loc-RIB has no peer; leave peer empty")
            watch = self.bridge.call(context, self.control.watch_routes, request.family, request.prefix,
                                     request.dump, self.watch_bound)
        elif request.table in (routes_pb2.ADJ_RIB_IN, routes_pb2.ADJ_RIB_IN_PRE):
            if not request.peer:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "peer: required for an Adj-RIB-In")
            watch = self.bridge.call(context, self.control.watch_adj_rib_in, request.peer,
                                     request.table == routes_pb2.ADJ_RIB_IN_PRE, request.family,
                                     request.prefix, request.dump, self.watch_bound)
        else:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"table: a watch reads LOC_RIB, ADJ_RIB_IN or ADJ_RIB_IN_PRE, not {request.table}")
        context.add_callback(lambda: reactor.callFromThread(watch.close))
        yield from self._watch(context, watch)

    def _watch(self, context: grpc.ServicerContext, watch: Any) -> Any:
        """Stream a watch's batches until the client goes; an overflow ends it (RESOURCE_EXHAUSTED)."""
        reactor = self.bridge.reactor
        encoder = RouteEncoder()
        try:
            while context.is_active():
                if not watch.ready.wait(0.5):
                    continue
                batch = watch.take(WATCH_BATCH)  # no reactor turn: the queue has its own lock
                if isinstance(batch, Overflow):
                    _overflow(context, batch)
                if not batch.events:
                    if watch.closed:
                        return
                    continue
                for data in encoder.watch_raw(batch):
                    yield self.raw(data, routes_pb2.WatchRoutesResponse)
        finally:
            reactor.callFromThread(watch.close)


def _lease_pb(lease: Any) -> routes_pb2.Lease:
    return routes_pb2.Lease(id=lease.id, ttl_seconds=int(lease.ttl), paths=lease.paths)


def _end_quietly(control: Control, lease_id: str, reason: str) -> None:
    try:
        control.end_lease(lease_id, reason)
    except ControlError:
        pass  # already ended


def _drain(context: grpc.ServicerContext, watch: Any) -> Any:
    """Yield (item, lag) from a watch's queue until the client goes; Overflow aborts."""
    while context.is_active():
        try:
            item = watch.queue.get(timeout=0.5)
        except queue.Empty:
            continue
        if isinstance(item, Overflow):
            _overflow(context, item)
        yield item, watch.queue.qsize()


def _overflow(context: grpc.ServicerContext, item: Overflow) -> None:
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                  f"watch queue overflow: more than {item.bound} messages queued for "
                  "this stream (changes not read yet); read faster or narrow it")


class EventsServicer(events_pb2_grpc.EventsServicer):
    def __init__(self, bridge: _Bridge, bound: int) -> None:
        self.bridge = bridge
        self.bound = bound

    def WatchEvents(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        reactor = self.bridge.reactor
        watch = self.bridge.call(context, self.bridge.control.watch_events, request.peer, self.bound)
        context.add_callback(lambda: reactor.callFromThread(watch.close))
        try:
            for item, lag in _drain(context, watch):
                e: SessionEventRecord = item
                yield events_pb2.SessionEvent(peer=e.peer, old_state=e.old_state, new_state=e.new_state,
                                              reason=e.reason, time=e.time, lag=lag)
        finally:
            reactor.callFromThread(watch.close)


def _changes_pb(diff: tuple) -> list[policy_pb2.AttributeChange]:
    return [policy_pb2.AttributeChange(field=f, before=_text(b), after=_text(a)) for f, b, a in diff]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _changed_route(fam: tuple[int, int], prefix: bytes, diff: tuple = ()) -> policy_pb2.ChangedRoute:
    return policy_pb2.ChangedRoute(prefix=prefix_to_str(prefix, fam[0]), family=family_name(*fam),
                                   changes=_changes_pb(diff))


def rehearsal_to_pb(r: Any) -> policy_pb2.Rehearsal:
    return policy_pb2.Rehearsal(
        peer=r.peer, direction=r.direction, routes=r.routes, complete=r.complete,
        newly_accepted=[_changed_route(f, p) for f, p in r.newly_accepted],
        newly_rejected=[_changed_route(f, p) for f, p in r.newly_rejected],
        changed=[_changed_route(c.family, c.prefix, c.diff) for c in r.changed])


def explanation_to_pb(e: Any) -> policy_pb2.ExplainRouteResponse:
    pb = policy_pb2.ExplainRouteResponse(
        accepted=e.accepted, decided_by_policy=e.decided_by[0], decided_by_term=e.decided_by[1],
        policies=[policy_pb2.ExplainedPolicy(
            policy=step.policy, accepted=step.accepted, decided_by=step.decided_by,
            terms=[policy_pb2.ExplainedTerm(
                term=t.term, matched=t.matched, result=t.result or "",
                conditions=[policy_pb2.ExplainedCondition(condition=c, held=h) for c, h in t.conditions],
                actions=[policy_pb2.ExplainedAction(action=a.action, changes=_changes_pb(a.changes))
                         for a in t.actions]) for t in step.terms]) for step in e.policies])
    if e.attributes is not None:
        pb.attributes.CopyFrom(attributes_to_pb(e.attributes))
    return pb


_CACHE_STATES = {"idle": rpki_pb2.RPKI_CACHE_IDLE, "connecting": rpki_pb2.RPKI_CACHE_CONNECTING,
                 "connected": rpki_pb2.RPKI_CACHE_CONNECTED, "down": rpki_pb2.RPKI_CACHE_DOWN}


def rpki_status_to_pb(r: RpkiStatus) -> rpki_pb2.RpkiStatus:
    caches = []
    for info in r.caches:
        st = info.status
        pb = rpki_pb2.RpkiCache(
            name=st.name, address=st.address, port=st.port, transport=st.transport,
            preference=st.preference, state=_CACHE_STATES[st.state], preferred=info.preferred,
            active=info.active, protocol_version=st.version, last_update=st.last_update or 0.0,
            refresh=int(st.timers.refresh), retry=int(st.timers.retry), expire=int(st.timers.expire),
            ipv4_vrps=st.ipv4_vrps, ipv6_vrps=st.ipv6_vrps, aspas=st.aspas, last_error=st.last_error)
        if st.session_id is not None:
            pb.session_id = st.session_id
        if st.serial is not None:
            pb.serial = st.serial
        caches.append(pb)
    return rpki_pb2.RpkiStatus(enabled=r.enabled, active_cache=r.active, caches=caches, aspa=r.aspa)


class RpkiStatusRpc:
    """The cache status RPC of the Rpki service (GetRpkiStatus), a mixin of :class:`RpkiServicer`."""

    bridge: _Bridge

    def GetRpkiStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return rpki_status_to_pb(self.bridge.call(context, self.bridge.control.rpki_status))


class PolicyServicer(policy_pb2_grpc.PolicyServicer):
    def __init__(self, bridge: _Bridge) -> None:
        self.bridge = bridge
        self.control = bridge.control

    def _document(self, context: grpc.ServicerContext, text: str, names: tuple[str, ...]) -> Any:
        left = self.bridge.call(context, self.control.confirm_seconds_left)
        return policy_pb2.PolicyDocument(toml=text, names=names, confirm_seconds_left=left)

    def GetPolicy(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        text, names = self.bridge.call(context, self.control.policy_document)
        return self._document(context, text, names)

    def ConfirmPolicy(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        text, names = self.bridge.call(context, self.control.confirm_policy, mutating=True)
        return self._document(context, text, names)

    def ValidatePolicy(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        config = self.bridge.call(context, self.control.validate_policy, request.toml)
        return policy_pb2.ValidatePolicyResponse(names=[n for n, _ in config.policies])

    def RehearsePolicy(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        results = self.bridge.call(context, self.control.rehearse_policy, request.toml)
        return policy_pb2.RehearsePolicyResponse(rehearsals=[rehearsal_to_pb(r) for r in results])

    def ExplainRoute(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        e = self.bridge.call(context, self.control.explain_route, request.peer, request.direction,
                             request.prefix, request.family, request.candidate_toml)
        return explanation_to_pb(e)

    def ReplacePolicy(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        text, names = self.bridge.call(context, self.control.replace_policy, request.toml,
                                       request.confirm_seconds, mutating=True)
        return self._document(context, text, names)


# -- the server ------------------------------------------------------------------


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{key}: cannot read {path}: {e.strerror or e}") from None


# -- RPKI: origin validation and ASPA queries (issue 11) ---------------------------

#: Validity -> RpkiState / AspaState numbers (1 valid, 2 invalid, 3 not-found / unknown)
_STATE_PB = {Validity.VALID: 1, Validity.INVALID: 2, Validity.NOT_FOUND: 3}


def vrp_to_pb(v: Vrp, asserted: bool = False) -> rpki_pb2.Vrp:
    return rpki_pb2.Vrp(prefix=prefix_to_str(v.prefix, v.family[0]), max_length=v.max_length, asn=v.asn,
                        asserted=asserted)


class RpkiQueries:
    """The validation RPCs of the Rpki service (ValidateRoute, ListVrps, ValidateAsPath).

    A mixin of :class:`RpkiServicer`, kept apart from the cache status RPC
    (GetRpkiStatus) so each side's code stays in its own block.
    """

    bridge: _Bridge

    def ValidateRoute(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        origin = request.origin_as if request.HasField("origin_as") else None
        e = self.bridge.call(context, self.bridge.control.validate_route, request.prefix, origin)
        covering = [vrp_to_pb(v, a) for v, a in e.covering]
        asserted = {(v, a) for v, a in e.covering}
        matching = [vrp_to_pb(v, (v, True) in asserted) for v in e.matching]
        return rpki_pb2.RouteValidation(state=_STATE_PB[e.state], matching=matching, covering=covering,
                                        reason=e.reason)

    def ListVrps(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        vrps = self.bridge.call(context, self.bridge.control.covering_vrps, request.prefix)
        return rpki_pb2.ListVrpsResponse(vrps=[vrp_to_pb(v, a) for v, a in vrps])

    def ValidateAsPath(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        state, hops = self.bridge.call(context, self.bridge.control.validate_as_path, list(request.as_path),
                                       request.direction, request.as_set)
        return rpki_pb2.AsPathValidation(
            state=_STATE_PB[state],
            hops=[rpki_pb2.AspaHop(customer_as=c, provider_as=p, result=r) for c, p, r in hops])


class RpkiServicer(RpkiStatusRpc, RpkiQueries, rpki_pb2_grpc.RpkiServicer):
    """The Rpki service: cache status (the RTR side) and the validation queries."""

    def __init__(self, bridge: _Bridge) -> None:
        self.bridge = bridge


class MonitorServicer(monitor_pb2_grpc.MonitorServicer):
    """Session history and MRT dumps (bgpd.monitor), through the Control object."""

    def __init__(self, bridge: _Bridge) -> None:
        self.bridge = bridge

    def GetPeerHistory(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        h = self.bridge.call(context, self.bridge.control.peer_history, request.address)
        events = []
        for e in h.events:
            note = None
            if e.code:
                note = peers_pb2.Notification(code=e.code, subcode=e.subcode, name=e.code_name,
                                              shutdown_message=e.shutdown_message)
            events.append(monitor_pb2.PeerHistoryEvent(
                time=e.time, old_state=e.old, new_state=e.new, reason=e.reason, kind=e.kind,
                notification=note))
        return monitor_pb2.PeerHistory(address=h.address, description=h.description,
                                       flaps=h.flaps, events=events)

    def DumpRib(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        # Writes a file on the daemon's host: a mutating call for read-only mode.
        r = self.bridge.call(context, self.bridge.control.dump_rib, request.file, request.table,
                             request.peer, request.compression, mutating=True)
        return monitor_pb2.DumpRibResponse(file=r.path, peers=r.peers, prefixes=r.prefixes,
                                           records=r.records, bytes=r.bytes, seconds=r.seconds)


def credentials(config: ApiConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from ``config`` (None for none); ValueError names the key."""
    if config.tls_cert is None and config.tls_key is None:
        return None
    if config.tls_cert is None or config.tls_key is None:
        missing = "api.tls_key" if config.tls_key is None else "api.tls_cert"
        raise ValueError(f"{missing}: required with the other TLS key")
    cert = _read(config.tls_cert, "api.tls_cert")
    key = _read(config.tls_key, "api.tls_key")
    ca = _read(config.tls_client_ca, "api.tls_client_ca") if config.tls_client_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=ca is not None)


class ApiServer:
    """grpcio's server with the bgpd.v1 servicers, health and reflection."""

    def __init__(self, reactor: Any, control: Control, config: ApiConfig,
                 watch_bound: int = 100_000) -> None:
        if not config.local_only and (config.tls_cert is None or config.tls_key is None):
            missing = "api.tls_cert" if config.tls_cert is None else "api.tls_key"
            raise ValueError(f"{missing}: required to listen on {config.listen} (beyond loopback)")
        self.config = config
        self.bridge = _Bridge(reactor, control, config.read_only)
        self.limit = CallLimit(config.max_calls)
        # A few threads more than calls, so that the call one past the limit
        # finds a thread to be refused on (RESOURCE_EXHAUSTED naming the key)
        # instead of waiting in the pool's queue; past those, grpc refuses
        # calls itself, before any thread: a full API never hangs a client.
        threads_ = config.max_calls + SPARE_THREADS
        # No SO_REUSEPORT: a second bgpd on the same port must fail, not share it.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads_,
                                                             thread_name_prefix="bgpd-api"),
                                  interceptors=[self.limit], maximum_concurrent_rpcs=threads_,
                                  options=[("grpc.so_reuseport", 0)])
        global_pb2_grpc.add_GlobalServicer_to_server(GlobalServicer(self.bridge), self.server)
        peers_pb2_grpc.add_PeersServicer_to_server(PeersServicer(self.bridge), self.server)
        routes = RoutesServicer(self.bridge, watch_bound)
        routes.raw_ok = _add_routes(routes, self.server)
        events_pb2_grpc.add_EventsServicer_to_server(EventsServicer(self.bridge, watch_bound), self.server)
        policy_pb2_grpc.add_PolicyServicer_to_server(PolicyServicer(self.bridge), self.server)
        rpki_pb2_grpc.add_RpkiServicer_to_server(RpkiServicer(self.bridge), self.server)
        monitor_pb2_grpc.add_MonitorServicer_to_server(MonitorServicer(self.bridge), self.server)
        self.health = _add_health(self.server)
        _add_reflection(self.server)
        creds = credentials(config)
        if config.listen.startswith("unix:"):
            path = config.listen[len("unix:"):]
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None:
                if not stat.S_ISSOCK(mode):
                    raise ValueError(f"api.listen: {path} exists and is not a socket; not replacing it")
                os.unlink(path)  # a stale socket from a previous run
            target = config.listen
        else:
            host, port = split_listen(config.listen)
            target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = (self.server.add_secure_port(target, creds) if creds is not None
                         else self.server.add_insecure_port(target))
        except RuntimeError as e:  # grpcio raises when it cannot bind
            raise ValueError(f"api.listen: cannot listen on {config.listen}: {e}") from None
        if not config.listen.startswith("unix:") and self.port == 0:
            raise ValueError(f"api.listen: cannot listen on {config.listen}")
        if config.listen.startswith("unix:") and config.socket_mode is not None:
            # grpcio binds here, with the umask's bits; the directory keeps
            # everyone else out until the mode is set.
            try:
                os.chmod(config.listen[len("unix:"):], config.socket_mode)
            except OSError as e:
                raise ValueError(f"api.socket_mode: cannot set {oct(config.socket_mode)} on "
                                 f"{config.listen[len('unix:'):]}: {e.strerror}") from None

    @property
    def target(self) -> str:
        """Where a client connects (the real port when ``listen`` asked for port 0)."""
        if self.config.listen.startswith("unix:"):
            return self.config.listen
        host, _ = split_listen(self.config.listen)
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(self) -> None:
        # The interpreter's switch interval, which grpcio's threads depend
        # on, is the daemon's: bgpd.runtime.tune_switch_interval at start.
        self.server.start()
        if self.health is not None:
            from grpc_health.v1 import health_pb2

            for name in ("", *SERVICE_NAMES):
                self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC API listening on {target}{ro}", target=self.target,
                 ro=" (read-only)" if self.config.read_only else "")

    def reload(self, new: ApiConfig) -> list[str]:
        """Take a SIGHUP's ``[api]``: apply what can change while running, return the
        keys that changed but need a restart of bgpd (``API_RELOADABLE`` are applied)."""
        old = self.config
        restart = [f"api.{name}" for name in attrs.fields_dict(ApiConfig)
                   if name not in API_RELOADABLE and getattr(old, name) != getattr(new, name)]
        if new.read_only != old.read_only:
            self.bridge.read_only = new.read_only
            log.info("API: read_only is now {value} (SIGHUP)", value=new.read_only)
        self.config = attrs.evolve(old, read_only=new.read_only)
        return restart

    def stop(self, grace: float = 1.0) -> None:
        """Stop; waits at most ``grace`` seconds for calls in flight (call off the reactor thread)."""
        self.server.stop(grace).wait(grace + 1.0)


# -- streams of pre-encoded messages -------------------------------------------------


class _Capture:
    """Stands in for the server while the generated code registers its handlers."""

    def __init__(self) -> None:
        self.generic: list[Any] = []
        self.registered: tuple[str, dict[str, Any]] | None = None

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        self.registered = (name, handlers)


def _pass_bytes(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def serializer(message: Any) -> bytes:
        return message if message.__class__ is bytes else serialize(message)

    return serializer


#: Routes methods whose handlers may yield a message's wire bytes instead of the message
RAW_METHODS = ("ListRoutes", "WatchRoutes")


def _add_routes(servicer: RoutesServicer, server: grpc.Server) -> bool:
    """Register the Routes servicer; True when its listings may yield wire bytes.

    A full-table listing is bytes built by hand (`RouteEncoder`): parsing
    them into a message only for grpc to serialize it again cost about a
    tenth of the listing, so ListRoutes and WatchRoutes get a serializer
    that passes bytes through.  grpcio older than the registered-method API
    gets the generated handlers as they are, and messages.
    """
    capture = _Capture()
    routes_pb2_grpc.add_RoutesServicer_to_server(servicer, capture)
    if capture.registered is None:
        server.add_generic_rpc_handlers(tuple(capture.generic))
        return False
    name, handlers = capture.registered
    handlers = dict(handlers)
    for method in RAW_METHODS:
        h = handlers[method]
        handlers[method] = h._replace(response_serializer=_pass_bytes(h.response_serializer))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)
    return True


#: threads beyond [api] max_calls: where calls past the limit are refused
SPARE_THREADS = 4


class CallLimit(grpc.ServerInterceptor):
    """At most ``most`` bgpd.v1 calls at once; one more is RESOURCE_EXHAUSTED, saying why.

    A call holds its place until it returns or its stream ends (a watch or
    HoldPaths stream holds one for as long as it is open).  Health checking
    and reflection (``/grpc.*``) are not counted: a full API still answers
    its health checks.
    """

    def __init__(self, most: int) -> None:
        self.most = most
        self.running = 0
        self._lock = threading.Lock()

    def _enter(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            if self.running < self.most:
                self.running += 1
                return
            running = self.running
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"api.max_calls: bgpd serves at most {self.most} API calls at once and "
                      f"{running} are running (each open watch or HoldPaths stream is one); "
                      "retry later, or raise [api] max_calls")

    def _leave(self) -> None:
        with self._lock:
            self.running -= 1

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith("/grpc."):
            return handler
        if handler.response_streaming:
            kind = "stream_stream" if handler.request_streaming else "unary_stream"
            return handler._replace(**{kind: self._streaming(getattr(handler, kind))})
        kind = "stream_unary" if handler.request_streaming else "unary_unary"
        return handler._replace(**{kind: self._unary(getattr(handler, kind))})

    def _unary(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            self._enter(context)
            try:
                return behavior(request, context)
            finally:
                self._leave()

        return call

    def _streaming(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            self._enter(context)
            try:
                yield from behavior(request, context)
            finally:
                self._leave()

        return call


def _add_health(server: grpc.Server) -> Any:
    try:
        from grpc_health.v1 import health, health_pb2_grpc
    except ImportError:
        return None
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def _add_reflection(server: grpc.Server) -> None:
    try:
        from grpc_reflection.v1alpha import reflection
    except ImportError:
        return
    reflection.enable_server_reflection((*SERVICE_NAMES, reflection.SERVICE_NAME), server)
