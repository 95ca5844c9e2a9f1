"""Make the golden BGP byte captures in tests/wire/golden/ from real daemons.

Run by hand, as root::

    python3 -m tests.interop.capture_golden OUTDIR [--pcap FILE]

It builds a Lab (see harness's address plan) with GoBGP (192.0.2.2, AS
4200000001, a 4-octet AS so its OPEN carries AS_TRANS, RFC 6793), BIRD
(192.0.2.3, AS 65003) and FRR (192.0.2.4, AS 65003, so BIRD <-> FRR is
iBGP and carries LOCAL_PREF), peers each pair over IPv4 and IPv6, moves
routes with the attributes of RFC 4271 section 5, RFC 1997, RFC 4360 and
RFC 8092, withdraws some, triggers ROUTE-REFRESH (RFC 2918) and ends
sessions with Cease / Administrative Shutdown carrying an RFC 9003 message.
tcpdump records the bridge; this script then reassembles each TCP direction
itself (a small pcap reader, no scapy), splits the streams on the 16-byte
marker and length (RFC 4271 section 4.1) and writes one ``.hex`` file per
sender and kind, each message a lowercase hex line under ``#`` comments
produced by a small independent decoder (so the comments state what the
bytes say, not what we hoped to send).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.interop.harness import Bird, Frr, GoBGP, Lab, Neighbor, poll

GOBGP_AS = 4200000001
IBGP_AS = 65003
MARKER = b"\xff" * 16
MSG_NAMES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}

# --------------------------------------------------------------------------
# pcap -> TCP segments -> per-direction byte streams


@dataclass
class Segment:
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    flags: int
    payload: bytes


def read_pcap(path: str) -> Iterator[tuple[float, int, bytes]]:
    """Yield (timestamp, linktype, frame) from a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        yield sec + frac / (1e9 if nano else 1e6), linktype, frame


def tcp_segments(path: str) -> list[Segment]:
    """TCP segments (IPv4 and IPv6, Ethernet or Linux cooked frames) of a pcap."""
    segs = []
    for ts, linktype, frame in read_pcap(path):
        if linktype == 1:  # Ethernet
            etype, off = struct.unpack("!H", frame[12:14])[0], 14
            while etype == 0x8100:  # VLAN tag
                etype, off = struct.unpack("!H", frame[off + 2:off + 4])[0], off + 4
        elif linktype == 113:  # Linux cooked capture
            etype, off = struct.unpack("!H", frame[14:16])[0], 16
        else:
            continue
        if etype == 0x0800:
            ihl = (frame[off] & 0x0F) * 4
            total = struct.unpack("!H", frame[off + 2:off + 4])[0]
            if frame[off + 9] != 6:
                continue
            src = str(ipaddress.IPv4Address(frame[off + 12:off + 16]))
            dst = str(ipaddress.IPv4Address(frame[off + 16:off + 20]))
            tcp = frame[off + ihl:off + total]
        elif etype == 0x86DD:
            nxt = frame[off + 6]
            plen = struct.unpack("!H", frame[off + 4:off + 6])[0]
            src = str(ipaddress.IPv6Address(frame[off + 8:off + 24]))
            dst = str(ipaddress.IPv6Address(frame[off + 24:off + 40]))
            if nxt != 6:  # no extension headers on these links
                continue
            tcp = frame[off + 40:off + 40 + plen]
        else:
            continue
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        flags = tcp[13]
        segs.append(Segment(ts, src, sport, dst, dport, seq, flags, bytes(tcp[doff:])))
    return segs


@dataclass
class Stream:
    """One direction of one TCP connection."""

    src: str
    sport: int
    dst: str
    dport: int
    start: float
    isn: int | None = None
    segs: list[Segment] = field(default_factory=list)

    def data(self) -> bytes:
        """The in-order payload; retransmissions and overlaps are dropped."""
        base = self.isn + 1 if self.isn is not None else min(s.seq for s in self.segs)
        pieces = sorted(((s.seq - base) % 2**32, s.payload) for s in self.segs if s.payload)
        out = bytearray()
        for rel, payload in pieces:
            if rel > len(out):
                break  # a gap: capture lost a segment; stop at the hole
            out += payload[len(out) - rel:]
        return bytes(out)


def streams(segs: list[Segment]) -> list[Stream]:
    """Group segments per direction and connection (a SYN starts a new one)."""
    current: dict[tuple, Stream] = {}
    done: list[Stream] = []
    for s in segs:
        key = (s.src, s.sport, s.dst, s.dport)
        st = current.get(key)
        if s.flags & 0x02:  # SYN
            if st is not None and st.isn is not None and st.isn != s.seq:
                done.append(st)
                st = None
            if st is None:
                st = current[key] = Stream(s.src, s.sport, s.dst, s.dport, s.ts)
            st.isn = s.seq
            continue
        if st is None:
            st = current[key] = Stream(s.src, s.sport, s.dst, s.dport, s.ts)
        st.segs.append(s)
    done.extend(current.values())
    return [st for st in done if any(x.payload for x in st.segs)]


def split_messages(data: bytes) -> list[bytes]:
    """Cut a BGP byte stream into messages on marker + length."""
    msgs = []
    off = 0
    while off + 19 <= len(data):
        if data[off:off + 16] != MARKER:
            raise ValueError(f"no marker at offset {off}")
        length = struct.unpack("!H", data[off + 16:off + 18])[0]
        if length < 19 or off + length > len(data):
            break
        msgs.append(data[off:off + length])
        off += length
    return msgs


# --------------------------------------------------------------------------
# a small independent decoder, only to write truthful comments

AFI = {1: "ipv4", 2: "ipv6"}
SAFI = {1: "unicast", 2: "multicast", 4: "labeled", 128: "vpn"}
CAP_NAMES = {1: "mp", 2: "route-refresh", 5: "extended-nexthop", 6: "extended-message",
             64: "graceful-restart", 65: "4-octet-as", 69: "add-path",
             70: "enhanced-route-refresh", 71: "llgr", 73: "fqdn", 75: "software-version",
             128: "route-refresh-old(128)"}
ATTR_NAMES = {1: "ORIGIN", 2: "AS_PATH", 3: "NEXT_HOP", 4: "MED", 5: "LOCAL_PREF",
              6: "ATOMIC_AGGREGATE", 7: "AGGREGATOR", 8: "COMMUNITIES", 9: "ORIGINATOR_ID",
              10: "CLUSTER_LIST", 14: "MP_REACH_NLRI", 15: "MP_UNREACH_NLRI",
              16: "EXT_COMMUNITIES", 17: "AS4_PATH", 18: "AS4_AGGREGATOR",
              32: "LARGE_COMMUNITY"}
WELL_KNOWN_COMMS = {0xFFFFFF01: "NO_EXPORT", 0xFFFFFF02: "NO_ADVERTISE",
                    0xFFFFFF03: "NO_EXPORT_SUBCONFED", 0xFFFFFF04: "NOPEER",
                    0xFFFF029A: "BLACKHOLE", 0xFFFF0000: "GRACEFUL_SHUTDOWN"}
NOTIF = {1: "Message Header Error", 2: "OPEN Message Error", 3: "UPDATE Message Error",
         4: "Hold Timer Expired", 5: "FSM Error", 6: "Cease"}
CEASE = {1: "Max Prefixes", 2: "Administrative Shutdown", 3: "Peer De-configured",
         4: "Administrative Reset", 5: "Connection Rejected", 6: "Other Configuration Change",
         7: "Connection Collision Resolution", 8: "Out of Resources", 9: "Hard Reset"}


@dataclass
class OpenInfo:
    asn: int
    four_octet: bool
    addpath: dict[tuple[int, int], int]  # (afi, safi) -> 1 receive, 2 send, 3 both


def decode_open(m: bytes) -> tuple[str, OpenInfo]:
    ver, my_as, hold = struct.unpack("!BHH", m[19:24])
    bgp_id = str(ipaddress.IPv4Address(m[24:28]))
    optlen = m[28]
    opts = m[29:29 + optlen]
    caps: list[str] = []
    asn4 = None
    addpath: dict[tuple[int, int], int] = {}
    off = 0
    while off + 2 <= len(opts):
        ptype, plen = opts[off], opts[off + 1]
        body = opts[off + 2:off + 2 + plen]
        off += 2 + plen
        if ptype != 2:
            caps.append(f"opt-param-{ptype}")
            continue
        coff = 0
        while coff + 2 <= len(body):
            code, clen = body[coff], body[coff + 1]
            val = body[coff + 2:coff + 2 + clen]
            coff += 2 + clen
            name = CAP_NAMES.get(code, f"cap-{code}")
            if code == 1:
                afi, _, safi = struct.unpack("!HBB", val)
                caps.append(f"mp {AFI.get(afi, afi)}/{SAFI.get(safi, safi)}")
            elif code == 65:
                asn4 = struct.unpack("!I", val)[0]
                caps.append(f"4-octet-as {asn4}")
            elif code == 64:
                flags_time = struct.unpack("!H", val[:2])[0]
                fams = [f"{AFI.get(a, a)}/{SAFI.get(s, s)}{'(F)' if f & 0x80 else ''}"
                        for a, s, f in struct.iter_unpack("!HBB", val[2:2 + (len(val) - 2) // 4 * 4])]
                r = "R" if flags_time & 0x8000 else ""
                n = "N" if flags_time & 0x4000 else ""
                caps.append(f"graceful-restart flags={r + n or '-'} time={flags_time & 0xFFF}"
                            f" [{' '.join(fams)}]")
            elif code == 69:
                ents = []
                for a, s, sr in struct.iter_unpack("!HBB", val[:len(val) // 4 * 4]):
                    addpath[(a, s)] = sr
                    ents.append(f"{AFI.get(a, a)}/{SAFI.get(s, s)}:"
                                f"{({1: 'rx', 2: 'tx', 3: 'rx+tx'}).get(sr, sr)}")
                caps.append(f"add-path [{' '.join(ents)}]")
            elif code == 73 and val:
                hl = val[0]
                caps.append(f"fqdn host={val[1:1 + hl].decode(errors='replace')!r}")
            elif code == 75 and val:
                caps.append(f"software-version {val[1:1 + val[0]].decode(errors='replace')!r}")
            elif code == 71:
                caps.append(f"llgr ({len(val)} bytes)")
            else:
                caps.append(name + (f" ({val.hex()})" if val else ""))
    asn = asn4 if asn4 is not None else my_as
    text = (f"OPEN v{ver} my_as={my_as}{' (AS_TRANS)' if my_as == 23456 else ''}"
            f" as4={asn4} hold={hold} bgp_id={bgp_id} caps: " + ", ".join(caps))
    return text, OpenInfo(asn, asn4 is not None, addpath)


def _prefixes(data: bytes, afi: int, addpath: bool) -> list[str]:
    out = []
    off = 0
    while off < len(data):
        pid = None
        if addpath:
            pid = struct.unpack("!I", data[off:off + 4])[0]
            off += 4
        plen = data[off]
        nbytes = (plen + 7) // 8
        raw = data[off + 1:off + 1 + nbytes]
        off += 1 + nbytes
        size = 4 if afi == 1 else 16
        addr = ipaddress.ip_address(raw.ljust(size, b"\0"))
        out.append(f"{addr}/{plen}" + (f" id={pid}" if pid is not None else ""))
    return out


def _comm(v: int) -> str:
    return WELL_KNOWN_COMMS.get(v, f"{v >> 16}:{v & 0xFFFF}")


def decode_update(m: bytes, asn4: bool, addpath_rx: set[tuple[int, int]]) -> tuple[str, str]:
    """Return (kind, description).  kind: update-ipv4/6, withdraw-ipv4/6, eor."""
    body = m[19:]
    wlen = struct.unpack("!H", body[:2])[0]
    withdrawn = _prefixes(body[2:2 + wlen], 1, (1, 1) in addpath_rx)
    alen = struct.unpack("!H", body[2 + wlen:4 + wlen])[0]
    attrs = body[4 + wlen:4 + wlen + alen]
    nlri = _prefixes(body[4 + wlen + alen:], 1, (1, 1) in addpath_rx)
    parts: list[str] = []
    kind = None
    off = 0
    reach: list[str] = []
    unreach: list[str] = []
    names: list[str] = []
    while off < len(attrs):
        flags, code = attrs[off], attrs[off + 1]
        if flags & 0x10:
            length = struct.unpack("!H", attrs[off + 2:off + 4])[0]
            off += 4
        else:
            length = attrs[off + 2]
            off += 3
        v = attrs[off:off + length]
        off += length
        names.append(ATTR_NAMES.get(code, f"attr{code}"))
        if code == 1:
            parts.append("origin=" + (("igp", "egp", "incomplete")[v[0]] if v[0] < 3 else "?"))
        elif code in (2, 17):
            size = 4 if (asn4 or code == 17) else 2
            segs = []
            o = 0
            while o < len(v):
                st, n = v[o], v[o + 1]
                asns = [int.from_bytes(v[o + 2 + i * size:o + 2 + (i + 1) * size], "big")
                        for i in range(n)]
                o += 2 + n * size
                s = " ".join(map(str, asns))
                segs.append({1: "{%s}", 2: "%s", 3: "(%s)", 4: "[%s]"}.get(st, "?%s") % s)
            parts.append(f"{'as4_path' if code == 17 else 'as_path'}=[{' '.join(segs)}]")
        elif code == 3:
            parts.append(f"next_hop={ipaddress.IPv4Address(v)}")
        elif code == 4:
            parts.append(f"med={struct.unpack('!I', v)[0]}")
        elif code == 5:
            parts.append(f"local_pref={struct.unpack('!I', v)[0]}")
        elif code == 6:
            parts.append("atomic_aggregate")
        elif code in (7, 18):
            size = 4 if (asn4 or code == 18) else 2
            a = int.from_bytes(v[:size], "big")
            parts.append(f"aggregator={a}:{ipaddress.IPv4Address(v[size:size + 4])}")
        elif code == 8:
            cs = [_comm(x) for (x,) in struct.iter_unpack("!I", v)]
            parts.append("communities=[" + " ".join(cs) + "]")
        elif code == 16:
            ecs = []
            for i in range(0, len(v), 8):
                t, st = v[i], v[i + 1]
                if t == 0 and st == 2:
                    a, b = struct.unpack("!HI", v[i + 2:i + 8])
                    ecs.append(f"rt:{a}:{b}")
                elif t == 2 and st == 2:
                    a, b = struct.unpack("!IH", v[i + 2:i + 8])
                    ecs.append(f"rt:{a}:{b}(as4)")
                elif t == 1 and st == 2:
                    ecs.append(f"rt:{ipaddress.IPv4Address(v[i + 2:i + 6])}:"
                               f"{struct.unpack('!H', v[i + 6:i + 8])[0]}")
                else:
                    ecs.append(v[i:i + 8].hex())
            parts.append("ext_communities=[" + " ".join(ecs) + "]")
        elif code == 32:
            ls = [f"{a}:{b}:{c}" for a, b, c in struct.iter_unpack("!III", v)]
            parts.append("large_communities=[" + " ".join(ls) + "]")
        elif code == 9:
            parts.append(f"originator_id={ipaddress.IPv4Address(v)}")
        elif code == 10:
            parts.append("cluster_list=" + ",".join(
                str(ipaddress.IPv4Address(v[i:i + 4])) for i in range(0, len(v), 4)))
        elif code == 14:
            afi, safi, nhl = struct.unpack("!HBB", v[:4])
            nh = v[4:4 + nhl]
            size = 4 if afi == 1 else 16
            nhs = [str(ipaddress.ip_address(nh[i:i + size])) for i in range(0, nhl, size)]
            reach = _prefixes(v[5 + nhl:], afi, (afi, safi) in addpath_rx)
            kind = f"update-{AFI.get(afi, afi)}"
            parts.append(f"mp_reach {AFI.get(afi, afi)}/{SAFI.get(safi, safi)} "
                         f"next_hop=[{' '.join(nhs)}] nlri=[{' '.join(reach)}]")
        elif code == 15:
            afi, safi = struct.unpack("!HB", v[:3])
            unreach = _prefixes(v[3:], afi, (afi, safi) in addpath_rx)
            if not unreach and alen == length + (4 if flags & 0x10 else 3):
                return "eor", f"End-of-RIB {AFI.get(afi, afi)}/{SAFI.get(safi, safi)} " \
                    f"(UPDATE with an empty MP_UNREACH_NLRI only)"
            kind = kind or f"withdraw-{AFI.get(afi, afi)}"
            parts.append(f"mp_unreach {AFI.get(afi, afi)}/{SAFI.get(safi, safi)} "
                         f"withdrawn=[{' '.join(unreach)}]")
        else:
            parts.append(f"{ATTR_NAMES.get(code, code)}({v.hex()})")
    if not withdrawn and not attrs and not nlri:
        return "eor", "End-of-RIB ipv4/unicast (empty UPDATE)"
    if withdrawn:
        parts.insert(0, f"withdrawn=[{' '.join(withdrawn)}]")
    if nlri:
        parts.append(f"nlri=[{' '.join(nlri)}]")
        kind = "update-ipv4"
    if kind is None:
        kind = "withdraw-ipv4" if withdrawn else "update-other"
    desc = "UPDATE " + " ".join(parts)
    if any((a, s) in addpath_rx for a, s in ((1, 1), (2, 1))):
        desc += " (add-path negotiated: NLRI carry 4-byte path ids)"
    desc += f" attrs-in-order: {','.join(names) or '-'}"
    return kind, desc


def decode_notification(m: bytes) -> str:
    code, sub = m[19], m[20]
    data = m[21:]
    name = NOTIF.get(code, str(code))
    subname = CEASE.get(sub, str(sub)) if code == 6 else str(sub)
    extra = ""
    if code == 6 and sub in (2, 4) and data:
        n = data[0]
        extra = f" shutdown-message(len={n})={data[1:1 + n].decode(errors='replace')!r}"
    elif data:
        extra = f" data={data.hex()}"
    return f"NOTIFICATION {name}/{subname} ({code}/{sub}){extra}"


def decode_refresh(m: bytes) -> str:
    afi, sub, safi = struct.unpack("!HBB", m[19:23])
    what = {0: "normal request", 1: "BoRR", 2: "EoRR"}.get(sub, str(sub))
    return f"ROUTE-REFRESH {AFI.get(afi, afi)}/{SAFI.get(safi, safi)} subtype={sub} ({what})"


# --------------------------------------------------------------------------
# the scenario


def _gobgp_neighbors(lab: Lab) -> list[Neighbor]:
    b, f = lab["bird"], lab["frr"]
    return [
        Neighbor(b.ipv4, IBGP_AS, graceful_restart=True, add_path=True),
        Neighbor(b.ipv6, IBGP_AS, graceful_restart=True),
        Neighbor(f.ipv4, IBGP_AS, graceful_restart=True, md5="golden-md5"),
        Neighbor(f.ipv6, IBGP_AS, graceful_restart=True),
    ]


def run_scenario(pcap: str, log: list[str]) -> dict[str, str]:
    """Run the lab, record ``pcap``; return address -> daemon name."""
    lab = Lab(["bgpd", "gobgp", "bird", "frr"])
    try:
        lab.open()
        g, b, f = lab["gobgp"], lab["bird"], lab["frr"]
        names = {}
        for n in (g, b, f):
            names[n.ipv4] = n.name
            names[n.ipv6] = n.name
        cap = lab.capture(pcap)
        gobgp = GoBGP(g.ns, GOBGP_AS, g.router_id, _gobgp_neighbors(lab))
        bird = Bird(b.ns, IBGP_AS, b.router_id, [
            Neighbor(g.ipv4, GOBGP_AS, graceful_restart=True, add_path=True,
                     extra=("enable extended messages on;",)),
            Neighbor(g.ipv6, GOBGP_AS, graceful_restart=True,
                     extra=("enable extended messages on;",)),
            Neighbor(f.ipv4, IBGP_AS, local_address=b.ipv4, graceful_restart=True,
                     extra=("enable extended messages on;",)),
            Neighbor(f.ipv6, IBGP_AS, local_address=b.ipv6, graceful_restart=True),
        ], routes={
            "198.51.100.64/26": {"med": 30, "local_pref": 250, "as_path": [65310, 65311],
                                 "communities": ["65003:30", "no-export"],
                                 "large_communities": ["65003:3:30"],
                                 "ext_communities": ["rt:65003:30"]},
            "2001:db8:300::/48": {"med": 31, "communities": ["65003:31"],
                                  "large_communities": ["65003:3:31"]},
        })
        frr = Frr(f.ns, IBGP_AS, f.router_id, [
            Neighbor(g.ipv4, GOBGP_AS, graceful_restart=True, md5="golden-md5"),
            Neighbor(g.ipv6, GOBGP_AS, graceful_restart=True),
            Neighbor(b.ipv4, IBGP_AS, graceful_restart=True),
            Neighbor(b.ipv6, IBGP_AS, graceful_restart=True),
        ], routes={
            "198.51.100.192/26": {"med": 40, "local_pref": 300, "as_path": [65410],
                                  "communities": ["65004:40"],
                                  "large_communities": ["65004:4:40"],
                                  "ext_communities": ["rt:65004:40"]},
            "2001:db8:400::/48": {"med": 41, "communities": ["65004:41", "no-export"],
                                  "large_communities": ["65004:4:41"]},
        }, zebra=True)
        for d in (gobgp, bird, frr):
            d.start()
        for d, peers in ((gobgp, (b, f)), (bird, (g, f)), (frr, (g, b))):
            for p in peers:
                d.wait_established(p.ipv4, 40)
                d.wait_established(p.ipv6, 40)
        log.append("all six sessions Established")

        gobgp.announce("198.51.100.0/25", as_path=[65100, 65101, 65102], med=10,
                       communities=["65000:1", "no-export"],
                       large_communities=[f"{GOBGP_AS}:1:2"], ext_communities=["rt:65000:7"],
                       origin="igp")
        gobgp.announce("198.51.100.0/28", as_path=[65120], med=11, communities=["65000:2"],
                       origin="egp")
        gobgp.announce("2001:db8:100::/48", as_path=[65100], med=12,
                       communities=["65000:3"], large_communities=[f"{GOBGP_AS}:5:6"],
                       origin="igp")
        gobgp.announce("2001:db8:101::/48", origin="incomplete")
        for d in (bird, frr):
            d.wait_route("198.51.100.0/25", 20)
            d.wait_route("2001:db8:100::/48", 20)
        frr.wait_route("198.51.100.64/26", 20)  # NO_EXPORT: iBGP only
        gobgp.wait_route("198.51.100.192/26", 20)
        bird.wait_route("2001:db8:400::/48", 20)  # NO_EXPORT: iBGP only
        log.append("initial routes propagated")

        # An aggregate with AS_SET from FRR (RFC 4271 section 9.2.2.2).
        frr.configure(f"router bgp {IBGP_AS}", "address-family ipv4 unicast",
                      "aggregate-address 198.51.100.0/24 as-set")
        # as-set also merges the NO_EXPORT of a contributor: look on the iBGP side.
        bird.wait_route("198.51.100.0/24", 20)
        # Runtime announcements from BIRD and FRR.
        bird.announce("198.51.100.128/27", med=50, communities=["65003:50"], origin="incomplete")
        frr.announce("2001:db8:401::/48", med=51, as_path=[65420, 65421])
        gobgp.wait_route("198.51.100.128/27", 20)
        gobgp.wait_route("2001:db8:401::/48", 20)

        # Withdrawals: IPv4 (WITHDRAWN ROUTES) and IPv6 (MP_UNREACH_NLRI).
        gobgp.withdraw("198.51.100.0/28")
        gobgp.withdraw("2001:db8:101::/48")
        bird.withdraw("198.51.100.128/27")
        bird.withdraw("2001:db8:300::/48")
        frr.withdraw("2001:db8:401::/48")
        frr.withdraw("198.51.100.192/26")
        bird.wait_no_route("198.51.100.0/28", 20)
        bird.wait_no_route("2001:db8:101::/48", 20)
        gobgp.wait_no_route("198.51.100.128/27", 20)
        gobgp.wait_no_route("2001:db8:300::/48", 20)
        gobgp.wait_no_route("2001:db8:401::/48", 20)
        log.append("withdrawals seen")

        # ROUTE-REFRESH from each daemon (RFC 2918 / RFC 7313).
        gobgp.gobgp("neighbor", b.ipv4, "softresetin")
        frr.vtysh(f"clear bgp {g.ipv4} soft in")
        frr.vtysh(f"clear bgp {g.ipv6} soft in")
        bird.birdc("reload", "in", Bird.proto_name(f.ipv4))
        bird.birdc("reload", "in", Bird.proto_name(g.ipv6))
        time.sleep(2)

        # Cease / Administrative Shutdown with an RFC 9003 message.
        frr.configure(f"router bgp {IBGP_AS}",
                      f"neighbor {g.ipv4} shutdown message golden capture: frr shutdown")
        gobgp.gobgp("neighbor", b.ipv6, "shutdown", "--reason",
                    "golden capture: gobgp shutdown")
        bird.birdc("disable", Bird.proto_name(f.ipv6), '"golden capture: bird shutdown"')
        poll(lambda: gobgp.session_state(f.ipv4) != "established", 15, 0.25, "frr shutdown")
        poll(lambda: bird.session_state(g.ipv6) != "established", 15, 0.25, "gobgp shutdown")
        poll(lambda: frr.session_state(b.ipv6) != "established", 15, 0.25, "bird shutdown")
        time.sleep(1)
        log.append("shutdowns sent")
        cap.stop()
        return names
    finally:
        lab.close()


def write_golden(pcap: str, outdir: str, names: dict[str, str]) -> dict[str, int]:
    """Decode ``pcap`` and write ``<sender>-<kind>.hex`` files; return counts."""
    sts = sorted(streams(tcp_segments(pcap)), key=lambda s: s.start)
    # Pair directions to know what the receiver advertised in its OPEN.
    opens: dict[tuple, OpenInfo] = {}
    msgs_by_stream = {}
    for st in sts:
        msgs = split_messages(st.data())
        msgs_by_stream[id(st)] = msgs
        for m in msgs:
            if m[18] == 1:
                opens[(st.src, st.sport, st.dst, st.dport)] = decode_open(m)[1]
    files: dict[str, list[tuple[str, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for st in sts:
        mine = opens.get((st.src, st.sport, st.dst, st.dport))
        theirs = opens.get((st.dst, st.dport, st.src, st.sport))
        asn4 = bool(mine and theirs and mine.four_octet and theirs.four_octet)
        # Path ids are present when the sender may send and the receiver receive.
        addpath = {k for k, v in (mine.addpath if mine else {}).items()
                   if v & 2 and theirs and theirs.addpath.get(k, 0) & 1}
        sender = names.get(st.src, st.src)
        receiver = names.get(st.dst, st.dst)
        ibgp = bool(mine and theirs and mine.asn == theirs.asn)
        session = (f"{sender} {st.src} -> {receiver} {st.dst} "
                   f"({'iBGP' if ibgp else 'eBGP'}, {'IPv6' if ':' in st.src else 'IPv4'} transport)")
        for m in msgs_by_stream[id(st)]:
            t = m[18]
            if t == 1:
                kind, desc = "open", decode_open(m)[0]
            elif t == 2:
                kind, desc = decode_update(m, asn4, addpath)
            elif t == 3:
                kind, desc = "notification", decode_notification(m)
            elif t == 4:
                kind, desc = "keepalive", "KEEPALIVE"
            elif t == 5:
                kind, desc = "route-refresh", decode_refresh(m)
            else:
                kind, desc = "other", f"type {t}"
            name = f"{sender}-{kind}"
            if (name, m.hex()) in seen:
                continue
            seen.add((name, m.hex()))
            if kind == "keepalive" and name in files:
                continue  # one KEEPALIVE per sender is plenty
            comment = (f"# {sender} {MSG_NAMES.get(t, t)} len={len(m)}: {session}\n"
                       f"# {desc}")
            files.setdefault(name, []).append((comment, m.hex()))
    os.makedirs(outdir, exist_ok=True)
    counts = {}
    for name, entries in sorted(files.items()):
        with open(os.path.join(outdir, name + ".hex"), "w") as fh:
            fh.write(f"# {name}: BGP messages captured from real daemons by "
                     "tests/interop/capture_golden.py\n"
                     "# one message per line, lowercase hex incl. marker; "
                     "'#' lines describe the next message\n")
            for comment, hexline in entries:
                fh.write(comment + "\n" + hexline + "\n")
        counts[name] = len(entries)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--pcap", help="keep the capture here (default: a temp file)")
    ap.add_argument("--from-pcap", help="skip the lab; decode this existing capture")
    args = ap.parse_args(argv)
    log: list[str] = []
    if args.from_pcap:
        pcap = args.from_pcap
        names = {f"192.0.2.{i + 1}": n for i, n in enumerate(["bgpd", "gobgp", "bird", "frr"])}
        names.update({f"2001:db8::{i + 1}": n for i, n in
                      enumerate(["bgpd", "gobgp", "bird", "frr"])})
    else:
        pcap = args.pcap or os.path.join(tempfile.mkdtemp(prefix="bgpdt-golden-"), "bgp.pcap")
        names = run_scenario(pcap, log)
    for line in log:
        print(line)
    counts = write_golden(pcap, args.outdir, names)
    for name, n in counts.items():
        print(f"{name}.hex: {n} message(s)")
    print(f"pcap: {pcap}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
