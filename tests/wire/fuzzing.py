"""Mutation fuzzer for the wire codec, shared by tests/wire/test_fuzz.py and bench/fuzz_wire.py.

The rule it checks is DESIGN.md's "nothing from the network can crash the
daemon": any bytes fed to :class:`Framer` and :func:`decode_message` end in a
message or a :class:`NotificationError` (RFC 4271 section 6, RFC 7606), never
in another exception.  Inputs are random bytes and valid messages made by our
encoder (plus the golden captures, when present) with bit flips,
truncations, length-field edits, inserted/deleted/duplicated bytes and
splices, fed in random chunks under several negotiated contexts.

What decodes cleanly is also re-encoded: encoding may refuse an over-long
message (ValueError) but must not fail otherwise.

Everything is derived from one integer seed: case ``i`` of seed ``s`` is the
same bytes on every machine, so a failure is reproduced by ``(s, i)``.
"""

from __future__ import annotations

import glob
import os
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bgpd.wire import capabilities as caps
from bgpd.wire.attributes import AttributeCache, PathAttributes
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST
from bgpd.wire.errors import NotificationError
from bgpd.wire.message import KEEPALIVE, Framer, decode_message, encode_message
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import MPReach, MPUnreach, Update, pack_end_of_rib, pack_reach, pack_withdraw

BOTH = frozenset({IPV4_UNICAST, IPV6_UNICAST})

#: Sessions the bytes are decoded under: each changes how the same bytes read.
CONTEXTS: list[Negotiated] = [
    Negotiated(),
    Negotiated(as4=False),
    Negotiated(ibgp=True),
    Negotiated(addpath_rx=BOTH),
    Negotiated(extended_message=True, addpath_rx=frozenset({IPV6_UNICAST})),
    Negotiated(families=frozenset({IPV4_UNICAST})),
    Negotiated(as4=False, ibgp=True, addpath_rx=frozenset({IPV4_UNICAST})),
    Negotiated(peer_as=65001, enforce_first_as=True),
    # RFC 8950 negotiated, and a session that knows its own addresses (RFC 4271 6.3)
    Negotiated(ibgp=True, ext_nexthop_rx=frozenset({(1, 1, 2)}),
               local_addresses=frozenset({"192.0.2.1", "2001:db8::1"})),
]
#: RFC 8950 for IPv4 unicast
EXT_NH = frozenset({(1, 1, 2)})

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def _sample_attributes() -> list[PathAttributes]:
    base = PathAttributes(
        origin=0, as_path=((3, (65010,)), (2, (65001, 4200000001)), (1, (65005, 65006))),
        next_hop="192.0.2.1", med=10, local_pref=200, communities=(0xFDE90001, 0xFFFFFF01),
        large_communities=((4200000001, 1, 2),), ext_communities=(b"\x00\x02\xfd\xe9\x00\x00\x00\x07",),
        atomic_aggregate=True, aggregator=(4200000001, "192.0.2.9"), originator_id="192.0.2.7",
        cluster_list=("192.0.2.8", "198.51.100.1"), otc=65001,
        unknown=((0xE0, 99, b"opaque"), (0xE0, 200, bytes(300))),
    )
    return [
        base,
        PathAttributes(as_path=((2, (65001,)),), next_hop="198.51.100.1"),
        base.replace(next_hop="2001:db8::1", next_hop_ll="fe80::1"),
        base.replace(next_hop="2001:db8::2", unknown=()),
    ]


def seed_messages() -> list[bytes]:
    """Valid messages of every kind from our encoder, then the golden captures."""
    return [data for data, _ in seed_cases()] + golden_messages()


def golden_messages() -> list[bytes]:
    """The messages captured from real daemons (tests/wire/golden), if any."""
    out = []
    for path in sorted(glob.glob(os.path.join(GOLDEN, "*.hex"))):
        with open(path) as fh:
            out.extend(bytes.fromhex(line.strip()) for line in fh
                       if line.strip() and not line.startswith("#"))
    return out


def seed_cases() -> list[tuple[bytes, Negotiated]]:
    """Valid messages of every kind from our encoder, each with the session that
    receives it as sent: decoded there, each is clean (no RFC 7606 problem)."""
    a4, plain, a6, a6g = _sample_attributes()
    v4 = [b"\x18\xc6\x33\x64", b"\x20\xc0\x00\x02\x01", b"\x00", b"\x19\xc6\x33\x64\x80"]
    v6 = [b"\x30\x20\x01\x0d\xb8\x00\x01", b"\x80" + bytes(16), b"\x40\x20\x01\x0d\xb8" + bytes(4)]
    many = tuple(caps.UnknownCapability(100 + i, bytes(range(i))) for i in range(25))
    all_caps = (
        caps.Multiprotocol(1, 1), caps.Multiprotocol(2, 1), caps.RouteRefresh(),
        caps.EnhancedRouteRefresh(), caps.ExtendedMessage(),
        caps.GracefulRestart(8, 120, ((1, 1, 0x80), (2, 1, 0))),
        caps.LongLivedGracefulRestart(((1, 1, 0x80, 3600),)),
        caps.AddPath(((1, 1, 3), (2, 1, 1))), caps.ExtendedNextHop(((1, 1, 2),)),
        caps.FQDN("router", "example.net"), caps.BgpRole(3), caps.UnknownCapability(77, b"\x01"),
    )
    addpath_tx = Negotiated(addpath_tx=BOTH)
    v4p = [(i, k) for i, k in enumerate(v4)]
    v6p = [(1 << 31 | i, k) for i, k in enumerate(v6)]
    # The receiving sessions.  The sample attributes carry LOCAL_PREF,
    # ORIGINATOR_ID, CLUSTER_LIST and AS_CONFED segments, which only an
    # internal peer may send (RFC 7606 7.2, 7.5, 7.9, 7.10).
    plain_rx = Negotiated()
    ibgp = Negotiated(ibgp=True)
    ibgp_as2 = Negotiated(as4=False, ibgp=True)
    addpath_rx = Negotiated(addpath_rx=BOTH)
    ibgp_addpath = Negotiated(ibgp=True, addpath_rx=BOTH)
    ibgp_ext_nh = Negotiated(ibgp=True, ext_nexthop_rx=EXT_NH)
    out: list[tuple[bytes, Negotiated]] = [
        (encode_message(Open.make(65001, 90, "192.0.2.1", all_caps)), plain_rx),
        (encode_message(Open.make(4200000001, 3, "192.0.2.2", all_caps + many)), plain_rx),  # RFC 9072
        (encode_message(Open(65001, 0, "192.0.2.3")), plain_rx),
        (encode_message(KEEPALIVE), plain_rx),
        (encode_message(Notification.shutdown("maintenance window ends 12:00")), plain_rx),
        (encode_message(Notification(3, 2, b"\x40\x63\x00")), plain_rx),
        (encode_message(RouteRefresh(1, 1, 0)), plain_rx),
        (encode_message(RouteRefresh(2, 1, 2)), plain_rx),
        (pack_end_of_rib(1, 1), plain_rx),
        (pack_end_of_rib(2, 1), plain_rx),
    ]
    out += [(m, ibgp) for m in pack_reach(1, 1, a4, v4, ibgp)]
    out += [(m, ibgp_as2) for m in pack_reach(1, 1, a4, v4, ibgp_as2)]
    out += [(m, addpath_rx) for m in pack_reach(1, 1, plain, v4p, addpath_tx)]
    out += [(m, ibgp) for m in pack_reach(2, 1, a6, v6)]
    out += [(m, ibgp_addpath) for m in pack_reach(2, 1, a6g, v6p, addpath_tx)]
    out += [(m, ibgp_ext_nh) for m in pack_reach(1, 1, a6g, v4, ibgp_ext_nh)]  # RFC 8950
    out += [(m, plain_rx) for m in pack_withdraw(1, 1, v4)]
    out += [(m, addpath_rx) for m in pack_withdraw(2, 1, v6p, addpath_tx)]
    out.append((encode_message(Update(v4[:2], plain, v4[2:], MPReach(2, 1, a6, v6),
                                      MPUnreach(2, 1, v6[:1]))), ibgp))
    return out


# -- mutations ---------------------------------------------------------------------

_INTERESTING = (0, 1, 2, 3, 4, 5, 0x10, 0x1F, 0x20, 0x21, 0x40, 0x7F, 0x80, 0x81, 0x90, 0xC0, 0xD0,
                0xE0, 0xFE, 0xFF)


def _pos(rng: random.Random, b: bytearray) -> int:
    """An offset, mostly past the 19-octet header: the decoders are the interesting part."""
    if len(b) > 19 and rng.random() < 0.9:
        return rng.randrange(19, len(b))
    return rng.randrange(len(b))


def _flip(rng: random.Random, b: bytearray) -> None:
    for _ in range(rng.randint(1, 8)):
        b[_pos(rng, b)] ^= 1 << rng.randrange(8)


def _set_byte(rng: random.Random, b: bytearray) -> None:
    b[_pos(rng, b)] = rng.choice(_INTERESTING) if rng.random() < 0.6 else rng.randrange(256)


def _truncate(rng: random.Random, b: bytearray) -> None:
    del b[_pos(rng, b):]


def _length_edit(rng: random.Random, b: bytearray) -> None:
    """Nudge a 1- or 2-octet field that is likely a length (or the header's own)."""
    if rng.random() < 0.3 and len(b) >= 18:
        i = 16
    else:
        i = _pos(rng, b)
    if rng.random() < 0.5 and i + 2 <= len(b):
        v = struct.unpack_from("!H", b, i)[0]
        v = max(0, min(0xFFFF, v + rng.choice((-3, -2, -1, 1, 2, 3, 4, 16, 255, 256, -256))))
        struct.pack_into("!H", b, i, v)
    else:
        b[i] = max(0, min(255, b[i] + rng.choice((-8, -4, -1, 1, 4, 8, 16, 128))))


def _insert(rng: random.Random, b: bytearray) -> None:
    i = _pos(rng, b) + rng.randint(0, 1)
    b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))


def _delete(rng: random.Random, b: bytearray) -> None:
    i = _pos(rng, b)
    del b[i:i + rng.randint(1, 8)]


def _duplicate(rng: random.Random, b: bytearray) -> None:
    i = _pos(rng, b)
    j = min(len(b), i + rng.randint(1, 16))
    b[j:j] = b[i:j]


MUTATIONS: list[Callable[[random.Random, bytearray], None]] = [
    _flip, _set_byte, _truncate, _length_edit, _insert, _delete, _duplicate,
]


def fix_header(b: bytearray) -> None:
    """Make the header's length true again, so the decoders (not the Framer) meet the damage."""
    if len(b) >= 19:
        b[:16] = b"\xff" * 16
        struct.pack_into("!H", b, 16, min(len(b), 0xFFFF))


_ATTR_CODES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32, 35, 99, 0, 255)
_FLAGS = (0x40, 0x80, 0xC0, 0x50, 0x90, 0xD0, 0xE0, 0x00, 0x10, 0xF0)


def _value(rng: random.Random, code: int) -> bytes:
    """An attribute value: often the right shape for ``code``, sometimes not."""
    r = rng.random()
    if code == 14 and r < 0.6:
        afi = rng.choice((1, 2, 3))
        nh = bytes(rng.randrange(256) for _ in range(rng.choice((4, 16, 32, 0, 12))))
        nlri = bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))
        return struct.pack("!HBB", afi, rng.choice((1, 2, 128)), len(nh)) + nh + b"\x00" + nlri
    if code == 15 and r < 0.6:
        nlri = bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))
        return struct.pack("!HB", rng.choice((1, 2, 3)), rng.choice((1, 2)), ) + nlri
    if code in (2, 17) and r < 0.6:
        out = b""
        for _ in range(rng.randint(1, 3)):
            n = rng.randint(0, 4)
            width = rng.choice((2, 4))
            out += bytes((rng.randint(0, 5), n)) + bytes(rng.randrange(256) for _ in range(n * width))
        return out
    n = rng.choice((0, 1, 2, 4, 6, 8, 12, 16, 24, rng.randint(0, 40)))
    return bytes(rng.randrange(256) for _ in range(n))


def attribute_soup(rng: random.Random) -> bytes:
    """An UPDATE whose attributes are chosen field by field: the attribute checks one by one."""
    attrs = b""
    for _ in range(rng.randint(0, 7)):
        code = rng.choice(_ATTR_CODES)
        flags = rng.choice(_FLAGS)
        value = _value(rng, code)
        if flags & 0x10:
            attrs += struct.pack("!BBH", flags, code, len(value)) + value
        else:
            attrs += struct.pack("!BBB", flags, code, len(value) & 0xFF) + value
    withdrawn = bytes(rng.randrange(256) for _ in range(rng.choice((0, 0, 2, 5))))
    nlri = rng.choice((b"", b"\x18\xc6\x33\x64", b"\x00", b"\x20\xc0\x00\x02\x01"))
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2) + body


def make_case(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One fuzz input: random bytes, an attribute soup, or seed messages with 1-4 mutations."""
    r = rng.random()
    if r < 0.2:
        return attribute_soup(rng)
    r = rng.random()
    if r < 0.08:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    if r < 0.16:
        # a plausible header and a random body: straight into each decoder
        body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))
        return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), rng.randint(1, 5)) + body
    data = bytearray(rng.choice(seeds))
    if rng.random() < 0.1:
        other = rng.choice(seeds)
        cut = rng.randrange(len(other))
        data += other[cut:]  # splice: a message followed by part of another
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        rng.choice(MUTATIONS)(rng, data)
    if rng.random() < 0.75:
        fix_header(data)
    if rng.random() < 0.15:
        data = bytearray(rng.choice(seeds)) + data  # a good message first
    return bytes(data)


# -- running -----------------------------------------------------------------------


class FuzzFailure(AssertionError):
    """Something other than NotificationError escaped: carries what reproduces it."""

    def __init__(self, index: int, context: int, data: bytes, error: BaseException) -> None:
        self.index = index
        self.context = context
        self.data = data
        self.error = error
        super().__init__(
            f"case {index} (context {context}: {CONTEXTS[context]!r}) raised "
            f"{type(error).__name__}: {error}\ninput hex: {data.hex()}")


def _sender(neg: Negotiated) -> Negotiated:
    """The session that would have sent what ``neg`` receives (add-path tx = rx)."""
    return Negotiated(as4=neg.as4, ibgp=neg.ibgp, families=neg.families, addpath_tx=neg.addpath_rx,
                      extended_message=neg.extended_message)


def decode_case(data: bytes, neg: Negotiated, cache: AttributeCache, rng: random.Random) -> int:
    """Frame and decode ``data`` fed in random chunks; return how many messages decoded.

    Raises NotificationError as the codec does; anything else is a bug.
    """
    framer = Framer(neg.max_message_len)
    decoded = 0
    tx = _sender(neg)
    i = 0
    while i < len(data) or i == 0:
        step = rng.choice((1, 7, 19, 64, 4096))
        for msg_type, body in framer.feed(data[i:i + step]):
            msg = decode_message(msg_type, body, neg, cache)
            decoded += 1
            if not getattr(msg, "treat_as_withdraw", False):
                try:
                    encode_message(msg, tx)
                except ValueError:
                    pass  # longer than the session allows: the encoder says so
        i += step
    return decoded


@dataclass
class Stats:
    cases: int = 0
    notifications: int = 0
    clean: int = 0
    messages: int = 0
    seconds: float = 0.0
    by_error: dict = field(default_factory=dict)

    def line(self, others: int = 0) -> str:
        return (f"fuzz: {self.cases} cases, {self.notifications} NotificationError, "
                f"{self.clean} clean decodes, {others} other exceptions in {self.seconds:.1f} s")


def run(cases: int, seed: int = 7606, on_failure: Callable[[FuzzFailure], None] | None = None,
        first: int = 0) -> Stats:
    """Run cases ``first`` .. ``first + cases - 1`` of ``seed``.

    A non-NotificationError raises FuzzFailure, or goes to ``on_failure``.
    """
    seeds = seed_messages()
    caches = [AttributeCache() for _ in CONTEXTS]
    stats = Stats()
    start = time.perf_counter()
    for index in range(first, first + cases):
        rng = random.Random(seed * 1_000_003 + index)
        data = make_case(rng, seeds)
        ctx = rng.randrange(len(CONTEXTS))
        stats.cases += 1
        try:
            stats.messages += decode_case(data, CONTEXTS[ctx], caches[ctx], rng)
        except NotificationError as e:
            stats.notifications += 1
            key = (e.code, e.subcode)
            stats.by_error[key] = stats.by_error.get(key, 0) + 1
        except Exception as e:  # noqa: BLE001 - the point is to catch anything
            failure = FuzzFailure(index, ctx, data, e)
            if on_failure is None:
                raise failure from e
            on_failure(failure)
        else:
            stats.clean += 1
    stats.seconds = time.perf_counter() - start
    return stats
