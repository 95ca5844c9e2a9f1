"""Golden bytes from real daemons (GoBGP, BIRD, FRR) through the codec.

Every ``tests/wire/golden/*.hex`` file (made by tests/interop/capture_golden.py;
one message per line as lowercase hex, ``#`` lines describing the next one)
must frame cleanly and decode.  Two kinds of check follow:

* the facts the comments state, read back from the comment text that an
  independent decoder wrote (prefixes, next hops, AS paths, communities,
  capabilities, NOTIFICATION codes and RFC 9003 text...), and
* explicit per-file expectations written here from the capture scenario
  (ASNs, hold time, router ids, capabilities, routes), so a file that stops
  saying what the scenario made fails even if its comments changed with it.

Then ``decode(encode(decode(x))) == decode(x)``: foreign bytes need not
re-encode identically (attribute order, one capability per parameter...),
but what we make of them must survive our own encoder.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire import capabilities as caps
from bgpd.wire.attributes import AttributeCache
from bgpd.wire.constants import AS_TRANS, IPV4_UNICAST, IPV6_UNICAST, Community
from bgpd.wire.message import Framer, Keepalive, decode_message, encode_message
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.nlri import prefix_from_str, prefix_to_str
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import Update
from tests.ci import missing

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


@dataclass
class Entry:
    """One captured message with the two comment lines above it."""

    file: str
    line: int
    header: str  # "# gobgp UPDATE len=104: gobgp 192.0.2.2 -> frr 192.0.2.4 (eBGP, IPv4 transport)"
    desc: str  # what the independent decoder read
    data: bytes

    @property
    def ibgp(self) -> bool:
        return "(iBGP," in self.header

    @property
    def negotiated(self) -> Negotiated:
        # Every session negotiated 4-octet AS; add-path only where the comment
        # says so (the GoBGP <-> BIRD IPv4 session, ipv4/unicast).
        addpath = frozenset({IPV4_UNICAST}) if "add-path negotiated" in self.desc else frozenset()
        return Negotiated(ibgp=self.ibgp, addpath_rx=addpath, extended_message=True)

    @property
    def sender_negotiated(self) -> Negotiated:
        neg = self.negotiated
        return Negotiated(ibgp=neg.ibgp, addpath_tx=neg.addpath_rx, extended_message=True)

    def where(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


def load(path: str) -> list[Entry]:
    entries = []
    comments: list[str] = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.startswith("#"):
                comments.append(line)
                continue
            if line != line.lower() or not re.fullmatch(r"[0-9a-f]+", line):
                raise AssertionError(f"{path}:{n}: not a lowercase hex line")
            header = next((c for c in reversed(comments) if re.match(r"# \S+ [A-Z-]+ len=", c)), "")
            entries.append(Entry(path, n, header, comments[-1] if comments else "", bytes.fromhex(line)))
            comments = []
    return entries


def golden_files() -> list[str]:
    return sorted(glob.glob(os.path.join(GOLDEN, "*.hex")))


def decode_entry(entry: Entry):
    framer = Framer(entry.negotiated.max_message_len)
    out = framer.feed(entry.data)
    if len(out) != 1 or len(framer):
        raise AssertionError(f"{entry.where()}: does not frame as exactly one message")
    msg_type, body = out[0]
    return decode_message(msg_type, body, entry.negotiated, AttributeCache())


# -- reading the comments ------------------------------------------------------

WELL_KNOWN = {"NO_EXPORT": Community.NO_EXPORT, "NO_ADVERTISE": Community.NO_ADVERTISE,
              "NO_EXPORT_SUBCONFED": Community.NO_EXPORT_SUBCONFED, "NOPEER": Community.NO_PEER,
              "BLACKHOLE": Community.BLACKHOLE, "GRACEFUL_SHUTDOWN": Community.GRACEFUL_SHUTDOWN}
FAMILY = {"ipv4": 1, "ipv6": 2, "unicast": 1, "multicast": 2}


def bracket(text: str, key: str) -> str | None:
    """The text inside ``key=[...]`` (brackets nest: confederation sets use them too)."""
    m = re.search(r"(?:^|\s)" + re.escape(key) + r"=\[", text)
    if not m:
        return None
    depth = 1
    i = m.end()
    start = i
    while depth:
        depth += {"[": 1, "]": -1}.get(text[i], 0)
        i += 1
    return text[start:i - 1]


def prefixes(text: str) -> list:
    """'198.51.100.0/25 id=1 ...' -> keys, or (path id, key) pairs when ids are given."""
    out: list = []
    for tok in text.split():
        if tok.startswith("id="):
            out[-1] = (int(tok[3:]), out[-1])
        else:
            out.append(prefix_from_str(tok)[1])
    return out


def as_path(text: str) -> list:
    """The comment's AS path as a flat list of (segment type, asn), adjacent sequences merged."""
    out = []
    kind = {"{": 1, "(": 3, "[": 4}
    close = {"{": "}", "(": ")", "[": "]"}
    i = 0
    while i < len(text):
        c = text[i]
        if c in kind:
            j = text.index(close[c], i)
            out.extend((kind[c], int(a)) for a in text[i + 1:j].split())
            i = j + 1
        elif c.isdigit():
            j = i
            while j < len(text) and text[j].isdigit():
                j += 1
            out.append((2, int(text[i:j])))
            i = j
        else:
            i += 1
    return out


def flat_path(path) -> list:
    return [(seg, a) for seg, asns in path for a in asns]


def community(tok: str) -> int:
    if tok in WELL_KNOWN:
        return int(WELL_KNOWN[tok])
    hi, lo = tok.split(":")
    return (int(hi) << 16) | int(lo)


def ext_community(tok: str) -> bytes:
    m = re.fullmatch(r"rt:(\d+):(\d+)\(as4\)", tok)
    if m:
        return b"\x02\x02" + struct.pack("!IH", int(m[1]), int(m[2]))
    m = re.fullmatch(r"rt:(\d+\.\d+\.\d+\.\d+):(\d+)", tok)
    if m:
        return b"\x01\x02" + ipaddress.IPv4Address(m[1]).packed + struct.pack("!H", int(m[2]))
    m = re.fullmatch(r"rt:(\d+):(\d+)", tok)
    if m:
        return b"\x00\x02" + struct.pack("!HI", int(m[1]), int(m[2]))
    return bytes.fromhex(tok)


class CommentChecker:
    """Compare a decoded message with what its comment says."""

    def __init__(self, case: SynchronousTestCase, entry: Entry, msg) -> None:
        self.case = case
        self.entry = entry
        self.msg = msg

    def eq(self, got, want, what: str) -> None:
        self.case.assertEqual(got, want, f"{self.entry.where()}: {what}: {self.entry.desc}")

    def check(self) -> None:
        desc = self.entry.desc
        msg = self.msg
        if desc.startswith("# OPEN"):
            self.case.assertIsInstance(msg, Open)
            self.check_open(desc)
        elif desc.startswith("# End-of-RIB"):
            self.case.assertIsInstance(msg, Update)
            m = re.search(r"End-of-RIB (\w+)/(\w+)", desc)
            self.eq(msg.end_of_rib, (FAMILY[m[1]], FAMILY[m[2]]), "End-of-RIB family")
        elif desc.startswith("# UPDATE"):
            self.case.assertIsInstance(msg, Update)
            self.check_update(desc)
        elif desc.startswith("# NOTIFICATION"):
            self.case.assertIsInstance(msg, Notification)
            m = re.search(r"\((\d+)/(\d+)\)", desc)
            self.eq((msg.code, msg.subcode), (int(m[1]), int(m[2])), "code/subcode")
            m = re.search(r"shutdown-message\(len=(\d+)\)='(.*)'$", desc)
            if m:
                self.eq(msg.shutdown_message, m[2], "shutdown message")
                self.eq(len(msg.shutdown_message.encode()), int(m[1]), "shutdown length")
        elif desc.startswith("# ROUTE-REFRESH"):
            self.case.assertIsInstance(msg, RouteRefresh)
            m = re.search(r"ROUTE-REFRESH (\w+)/(\w+) subtype=(\d+)", desc)
            self.eq((msg.afi, msg.safi, msg.subtype), (FAMILY[m[1]], FAMILY[m[2]], int(m[3])),
                    "afi/safi/subtype")
        elif desc.startswith("# KEEPALIVE"):
            self.case.assertIsInstance(msg, Keepalive)
        else:
            self.case.fail(f"{self.entry.where()}: comment not understood: {desc}")

    def check_open(self, desc: str) -> None:
        msg = self.msg
        m = re.search(r"my_as=(\d+).* as4=(\w+) hold=(\d+) bgp_id=(\S+) caps: (.*)$", desc)
        self.eq(msg.my_as, int(m[1]), "my_as")
        if m[2] != "None":
            self.eq(msg.asn, int(m[2]), "4-octet AS")
        self.eq(msg.hold_time, int(m[3]), "hold time")
        self.eq(msg.bgp_id, m[4], "BGP identifier")
        listed = [c.strip() for c in m[5].split(", ") if c.strip()]
        self.eq(len(msg.capabilities), len(listed), "number of capabilities")
        for text, cap in zip(listed, msg.capabilities, strict=True):
            self.eq(self.cap_matches(text, cap), True, f"capability {text!r} vs {cap!r}")

    @staticmethod
    def cap_matches(text: str, cap) -> bool:
        name, _, rest = text.partition(" ")
        if name == "mp":
            afi, safi = rest.split("/")
            return cap == caps.Multiprotocol(FAMILY[afi], FAMILY[safi])
        if name == "route-refresh":
            return cap == caps.RouteRefresh()
        if name == "route-refresh-old(128)":
            return cap == caps.UnknownCapability(128, b"")
        if name == "enhanced-route-refresh":
            return cap == caps.EnhancedRouteRefresh()
        if name == "extended-message":
            return cap == caps.ExtendedMessage()
        if name == "4-octet-as":
            return cap == caps.FourOctetAS(int(rest))
        if name == "fqdn":
            return isinstance(cap, caps.FQDN) and rest == f"host={cap.hostname!r}"
        if name == "llgr":
            n = int(re.fullmatch(r"\((\d+) bytes\)", rest)[1])
            return isinstance(cap, caps.LongLivedGracefulRestart) and 7 * len(cap.families) == n
        if name == "extended-nexthop":
            raw = bytes.fromhex(rest.strip("()"))
            return cap == caps.ExtendedNextHop(tuple(struct.iter_unpack("!HHH", raw)))
        if name == "add-path":
            modes = {"rx": 1, "tx": 2, "rx+tx": 3}
            fams = []
            for item in rest.strip("[]").split():
                fam, mode = item.split(":")
                afi, safi = fam.split("/")
                fams.append((FAMILY[afi], FAMILY[safi], modes[mode]))
            return cap == caps.AddPath(tuple(fams))
        if name == "graceful-restart":
            m = re.fullmatch(r"flags=(\S+) time=(\d+) \[(.*)\]", rest)
            flags = (8 if "R" in m[1] else 0) | (4 if "N" in m[1] else 0)
            fams = []
            for item in m[3].split():
                fwd = item.endswith("(F)")
                afi, safi = item.removesuffix("(F)").split("/")
                fams.append((FAMILY[afi], FAMILY[safi], 0x80 if fwd else 0))
            return (isinstance(cap, caps.GracefulRestart) and cap.restart_flags == flags
                    and cap.restart_time == int(m[2])
                    and [(a, s, f & 0x80) for a, s, f in cap.families] == fams)
        m = re.fullmatch(r"cap-(\d+)", name)
        if m:
            return isinstance(cap, caps.UnknownCapability) and cap.code == int(m[1])
        return False

    def check_update(self, desc: str) -> None:
        u = self.msg
        self.eq(u.treat_as_withdraw, False, "treat-as-withdraw")
        self.eq(u.problems, (), "problems")
        rest = desc
        m = re.search(r"mp_reach (\w+)/(\w+) next_hop=\[([^\]]*)\] nlri=\[([^\]]*)\]", desc)
        if m:
            self.case.assertIsNotNone(u.mp_reach, self.entry.where())
            self.eq((u.mp_reach.afi, u.mp_reach.safi), (FAMILY[m[1]], FAMILY[m[2]]), "MP_REACH family")
            hops = m[3].split()
            a = u.mp_reach.attributes
            self.eq([a.next_hop] + ([a.next_hop_ll] if a.next_hop_ll else []), hops, "MP next hop")
            self.eq(list(u.mp_reach.nlri), prefixes(m[4]), "MP_REACH NLRI")
            rest = rest.replace(m[0], "")
        else:
            self.eq(u.mp_reach, None, "no MP_REACH")
        m = re.search(r"mp_unreach (\w+)/(\w+) withdrawn=\[([^\]]*)\]", desc)
        if m:
            self.eq((u.mp_unreach.afi, u.mp_unreach.safi), (FAMILY[m[1]], FAMILY[m[2]]),
                    "MP_UNREACH family")
            self.eq(list(u.mp_unreach.withdrawn), prefixes(m[3]), "MP_UNREACH withdrawn")
            rest = rest.replace(m[0], "")
        else:
            self.eq(u.mp_unreach, None, "no MP_UNREACH")
        self.eq(list(u.withdrawn), prefixes(bracket(rest, "withdrawn") or ""), "withdrawn")
        self.eq(list(u.nlri), prefixes(bracket(rest, "nlri") or ""), "NLRI")
        attrs = u.attributes if u.nlri else (u.mp_reach.attributes if u.mp_reach else None)
        if attrs is None:
            self.case.assertNotIn("origin=", rest, self.entry.where())
            return
        self.eq(("igp", "egp", "incomplete")[attrs.origin], re.search(r"origin=(\w+)", rest)[1],
                "ORIGIN")
        path = bracket(rest, "as_path")
        self.eq(flat_path(attrs.as_path), as_path(path), "AS_PATH")
        for key, field in (("med", "med"), ("local_pref", "local_pref")):
            m = re.search(key + r"=(\d+)", rest)
            self.eq(getattr(attrs, field), int(m[1]) if m else None, key)
        m = re.search(r"next_hop=(\d+\.\d+\.\d+\.\d+)", rest)
        if m:
            self.eq(u.attributes.next_hop, m[1], "NEXT_HOP")
        m = re.search(r"aggregator=(\d+):(\S+)", rest)
        self.eq(attrs.aggregator, (int(m[1]), m[2]) if m else None, "AGGREGATOR")
        self.eq(attrs.atomic_aggregate, "atomic_aggregate" in rest, "ATOMIC_AGGREGATE")
        self.eq(list(attrs.communities), [community(t) for t in (bracket(rest, "communities") or "").split()],
                "COMMUNITIES")
        self.eq([list(c) for c in attrs.large_communities],
                [[int(x) for x in t.split(":")] for t in (bracket(rest, "large_communities") or "").split()],
                "LARGE_COMMUNITIES")
        self.eq(list(attrs.ext_communities),
                [ext_community(t) for t in (bracket(rest, "ext_communities") or "").split()],
                "EXTENDED_COMMUNITIES")
        m = re.search(r"originator_id=(\S+)", rest)
        self.eq(attrs.originator_id, m[1] if m else None, "ORIGINATOR_ID")


# -- explicit expectations per file, from the capture scenario -------------------

GOBGP_AS = 4200000001
IBGP_AS = 65003
NO_EXPORT = int(Community.NO_EXPORT)


def comm(a: int, b: int) -> int:
    return (a << 16) | b


def rt(a: int, b: int) -> bytes:
    return b"\x00\x02" + struct.pack("!HI", a, b)


def routes(msgs: list) -> dict[str, list]:
    """prefix text -> [PathAttributes, ...] over every announcing UPDATE of a file."""
    out: dict[str, list] = {}
    for u in msgs:
        for key in u.nlri:
            key = key[1] if isinstance(key, tuple) else key
            out.setdefault(prefix_to_str(key, 1), []).append(u.attributes)
        if u.mp_reach is not None:
            for key in u.mp_reach.nlri:
                key = key[1] if isinstance(key, tuple) else key
                out.setdefault(prefix_to_str(key, u.mp_reach.afi), []).append(u.mp_reach.attributes)
    return out


def withdrawn(msgs: list) -> set[str]:
    out = set()
    for u in msgs:
        for key in u.withdrawn:
            out.add(prefix_to_str(key[1] if isinstance(key, tuple) else key, 1))
        if u.mp_unreach is not None:
            for key in u.mp_unreach.withdrawn:
                out.add(prefix_to_str(key[1] if isinstance(key, tuple) else key, u.mp_unreach.afi))
    return out


def expect_open(asn: int, my_as: int, bgp_id: str, must: tuple, some: tuple = ()) -> Callable:
    def check(t: SynchronousTestCase, msgs: list) -> None:
        for m in msgs:
            t.assertEqual((m.my_as, m.asn, m.hold_time, m.bgp_id), (my_as, asn, 90, bgp_id))
            for pred in must:
                t.assertTrue(any(pred(c) for c in m.capabilities), f"{pred.__doc__} in {m!r}")
        for pred in some:
            t.assertTrue(any(pred(c) for m in msgs for c in m.capabilities), pred.__doc__)
    return check


def cap(kind: type, doc: str, **fields) -> Callable:
    def pred(c) -> bool:
        return isinstance(c, kind) and all(getattr(c, k) == v for k, v in fields.items())
    pred.__doc__ = doc
    return pred


def check_gobgp_update_ipv4(t, msgs):
    r = routes(msgs)
    t.assertEqual(set(r), {"198.51.100.0/25", "198.51.100.0/28"})
    for a in r["198.51.100.0/25"]:
        t.assertEqual((a.origin, a.as_path, a.next_hop, a.med), (0, ((2, (GOBGP_AS, 65100, 65101, 65102)),),
                                                               "192.0.2.2", 10))
        t.assertEqual(a.communities, (comm(65000, 1), NO_EXPORT))
        t.assertEqual(a.ext_communities, (rt(65000, 7),))
        t.assertEqual(a.large_communities, ((GOBGP_AS, 1, 2),))
    for a in r["198.51.100.0/28"]:
        t.assertEqual((a.origin, a.as_path, a.med, a.communities), (1, ((2, (GOBGP_AS, 65120)),), 11,
                                                                    (comm(65000, 2),)))
    # one copy to FRR plain, one to BIRD with a path id (RFC 7911)
    t.assertEqual(sorted(isinstance(k, tuple) for u in msgs for k in u.nlri), [False, False, True, True])


def check_gobgp_update_ipv6(t, msgs):
    r = routes(msgs)
    t.assertEqual(set(r), {"2001:db8:100::/48", "2001:db8:101::/48"})
    for a in r["2001:db8:100::/48"]:
        t.assertEqual((a.next_hop, a.next_hop_ll, a.med, a.as_path), ("2001:db8::2", None, 12,
                                                                      ((2, (GOBGP_AS, 65100)),)))
        t.assertEqual((a.communities, a.large_communities), ((comm(65000, 3),), ((GOBGP_AS, 5, 6),)))
    for a in r["2001:db8:101::/48"]:
        t.assertEqual((a.origin, a.as_path), (2, ((2, (GOBGP_AS,)),)))


def check_bird_update_ipv4(t, msgs):
    r = routes(msgs)
    t.assertTrue({"198.51.100.64/26", "198.51.100.0/25", "198.51.100.128/27"} <= set(r))
    own = r["198.51.100.64/26"]
    ibgp = [a for a in own if a.local_pref is not None]
    t.assertEqual([(a.local_pref, a.med, a.as_path) for a in ibgp], [(250, 30, ((2, (65310, 65311)),))])
    for a in own:
        t.assertEqual(a.communities, (comm(65003, 30), NO_EXPORT))
        t.assertEqual((a.ext_communities, a.large_communities), ((rt(65003, 30),), ((65003, 3, 30),)))
    # third-party next hop: FRR's route passed on with FRR's address
    t.assertEqual({a.next_hop for a in r["198.51.100.192/26"]}, {"192.0.2.4"})


def check_bird_update_ipv6(t, msgs):
    r = routes(msgs)
    own = r["2001:db8:300::/48"]
    t.assertTrue(all(a.next_hop == "2001:db8::3" and a.next_hop_ll.startswith("fe80::") for a in own))
    t.assertEqual({a.next_hop_ll for a in r["2001:db8:100::/48"]}, {None})
    t.assertTrue(all(a.large_communities == ((65003, 3, 31),) for a in own))


def check_frr_update_ipv4(t, msgs):
    r = routes(msgs)
    agg = r["198.51.100.0/24"]
    t.assertTrue(agg)
    for a in agg:
        t.assertEqual(a.aggregator, (IBGP_AS, "192.0.2.4"))
        t.assertEqual(len(a.as_path), 1)
        t.assertEqual(a.as_path[0][0], 1)  # AS_SET (RFC 4271 9.2.2.2)
        t.assertIn(GOBGP_AS, a.as_path[0][1])
        t.assertIn(NO_EXPORT, a.communities)
    t.assertEqual({a.local_pref for a in r["198.51.100.192/26"]}, {None, 300})
    t.assertEqual({a.med for a in r["198.51.100.192/26"]}, {40})


def check_frr_update_ipv6(t, msgs):
    r = routes(msgs)
    t.assertIn(NO_EXPORT, r["2001:db8:400::/48"][0].communities)
    t.assertEqual(r["2001:db8:400::/48"][0].med, 41)
    paths = {a.as_path for a in r["2001:db8:401::/48"]}
    t.assertEqual(paths, {((2, (65003, 65420, 65421)),), ((2, (65420, 65421)),)})


def expect_withdrawn(prefixes_: set[str]) -> Callable:
    def check(t, msgs):
        t.assertEqual(withdrawn(msgs), prefixes_)
        t.assertEqual(routes(msgs), {})
    return check


def expect_eor(t, msgs):
    t.assertEqual(sorted(m.end_of_rib for m in msgs), [IPV4_UNICAST, IPV6_UNICAST])


def expect_shutdown(text: str) -> Callable:
    def check(t, msgs):
        t.assertEqual([(m.code, m.subcode, m.shutdown_message) for m in msgs], [(6, 2, text)])
    return check


def expect_refresh(subtypes: set[tuple[int, int, int]]) -> Callable:
    def check(t, msgs):
        t.assertEqual({(m.afi, m.safi, m.subtype) for m in msgs}, subtypes)
    return check


def expect_keepalive(t, msgs):
    t.assertEqual([m.data for m in msgs], [b"\xff" * 16 + b"\x00\x13\x04"])


GR = caps.GracefulRestart
EXPECTATIONS: dict[str, Callable] = {
    "gobgp-open.hex": expect_open(
        GOBGP_AS, AS_TRANS, "192.0.2.2",
        (cap(caps.FourOctetAS, "4-octet AS", asn=GOBGP_AS), cap(caps.FQDN, "fqdn vm", hostname="vm"),
         cap(GR, "graceful restart 120", restart_time=120), cap(caps.RouteRefresh, "route refresh")),
        (cap(caps.AddPath, "add-path rx+tx", families=((1, 1, 3),)),
         cap(caps.ExtendedNextHop, "extended next hop", entries=((1, 1, 2),)))),
    "bird-open.hex": expect_open(
        IBGP_AS, IBGP_AS, "192.0.2.3",
        (cap(caps.FourOctetAS, "4-octet AS", asn=IBGP_AS), cap(GR, "graceful restart 120", restart_time=120),
         cap(caps.EnhancedRouteRefresh, "enhanced route refresh"),
         cap(caps.LongLivedGracefulRestart, "empty LLGR", families=())),
        (cap(caps.AddPath, "add-path rx+tx", families=((1, 1, 3),)),
         cap(caps.ExtendedMessage, "extended message"))),
    "frr-open.hex": expect_open(
        IBGP_AS, IBGP_AS, "192.0.2.4",
        (cap(caps.UnknownCapability, "old route refresh 128", code=128, value=b""),
         cap(caps.FQDN, "fqdn frr", hostname="frr"), cap(GR, "graceful restart R+N", restart_flags=0xC),
         cap(caps.ExtendedMessage, "extended message"), cap(caps.EnhancedRouteRefresh, "enhanced RR")),
        (cap(caps.AddPath, "add-path rx ipv4", families=((1, 1, 1),)),
         cap(caps.AddPath, "add-path rx ipv6", families=((2, 1, 1),)))),
    "gobgp-update-ipv4.hex": check_gobgp_update_ipv4,
    "gobgp-update-ipv6.hex": check_gobgp_update_ipv6,
    "bird-update-ipv4.hex": check_bird_update_ipv4,
    "bird-update-ipv6.hex": check_bird_update_ipv6,
    "frr-update-ipv4.hex": check_frr_update_ipv4,
    "frr-update-ipv6.hex": check_frr_update_ipv6,
    "gobgp-withdraw-ipv4.hex": expect_withdrawn({"198.51.100.0/28"}),
    "gobgp-withdraw-ipv6.hex": expect_withdrawn({"2001:db8:101::/48"}),
    "bird-withdraw-ipv4.hex": expect_withdrawn({"198.51.100.0/28", "198.51.100.128/27",
                                                "198.51.100.192/26"}),
    "bird-withdraw-ipv6.hex": expect_withdrawn({"2001:db8:101::/48", "2001:db8:300::/48",
                                                "2001:db8:100::/48", "2001:db8:401::/48"}),
    "frr-withdraw-ipv4.hex": expect_withdrawn({"198.51.100.0/28", "198.51.100.128/27",
                                               "198.51.100.192/26", "198.51.100.0/25"}),
    "frr-withdraw-ipv6.hex": expect_withdrawn({"2001:db8:101::/48", "2001:db8:300::/48",
                                               "2001:db8:401::/48"}),
    "gobgp-eor.hex": expect_eor,
    "bird-eor.hex": expect_eor,
    "frr-eor.hex": expect_eor,
    "gobgp-notification.hex": expect_shutdown("golden capture: gobgp shutdown"),
    "bird-notification.hex": expect_shutdown("golden capture: bird shutdown"),
    "frr-notification.hex": expect_shutdown("golden capture: frr shutdown"),
    "bird-route-refresh.hex": expect_refresh({(1, 1, 0), (2, 1, 0)}),
    "frr-route-refresh.hex": expect_refresh({(1, 1, 0), (2, 1, 0), (1, 1, 1), (1, 1, 2)}),
    "gobgp-keepalive.hex": expect_keepalive,
    "bird-keepalive.hex": expect_keepalive,
    "frr-keepalive.hex": expect_keepalive,
}


class GoldenTests(SynchronousTestCase):
    """Every golden file frames, decodes, says what its comments say and survives re-encoding."""

    def setUp(self) -> None:
        self.files = golden_files()
        if not self.files:
            missing(f"no golden captures in {GOLDEN} (make them with tests.interop.capture_golden)")

    def test_every_expectation_read(self):
        """The folder holds exactly the captures EXPECTATIONS names, so none is silently absent."""
        self.assertEqual(sorted(os.path.basename(p) for p in self.files), sorted(EXPECTATIONS))

    def test_stream_frames_cleanly(self):
        """Each file's messages, concatenated, frame back into exactly those messages."""
        for path in self.files:
            entries = load(path)
            self.assertTrue(entries, f"{path}: no messages")
            framer = Framer(65535)
            out = framer.feed(b"".join(e.data for e in entries))
            self.assertEqual(len(framer), 0, path)
            self.assertEqual([(t, b) for t, b in out], [(e.data[18], e.data[19:]) for e in entries], path)

    def test_comments(self):
        """Each message decodes to what its comment (an independent decoder's reading) says."""
        for path in self.files:
            for entry in load(path):
                CommentChecker(self, entry, decode_entry(entry)).check()

    def test_expectations(self):
        """Each file holds what the capture scenario made (explicit per-file facts)."""
        missing = []
        for path in self.files:
            name = os.path.basename(path)
            check = EXPECTATIONS.get(name)
            if check is None:
                missing.append(name)
                continue
            msgs = []
            for entry in load(path):
                msg = decode_entry(entry)
                if isinstance(msg, Keepalive):
                    msg = _KeepaliveBytes(entry.data)
                msgs.append(msg)
            check(self, msgs)
        self.assertEqual(missing, [], "golden files without explicit expectations")

    def test_reencode(self):
        """decode(encode(decode(x))) == decode(x); NOTIFICATION, ROUTE-REFRESH, KEEPALIVE byte-exact."""
        for path in self.files:
            for entry in load(path):
                msg = decode_entry(entry)
                tx = entry.sender_negotiated
                data = encode_message(msg, tx)
                framer = Framer(65535)
                [(t, body)] = framer.feed(data)
                again = decode_message(t, body, entry.negotiated, AttributeCache())
                self.assertEqual(again, msg, entry.where())
                if isinstance(msg, Notification | RouteRefresh | Keepalive):
                    self.assertEqual(data, entry.data, entry.where())

    def test_every_expectation_has_a_file(self):
        """Every file the expectations name exists (a capture that lost a file fails)."""
        names = {os.path.basename(p) for p in self.files}
        self.assertEqual(sorted(set(EXPECTATIONS) - names), [])


@dataclass
class _KeepaliveBytes:
    data: bytes
