"""A small MRT reader for the tests (RFC 6396 sections 2 and 4.3, RFC 8050 section 4).

Written from the RFCs' layouts, apart from bgpd's encoder, so that a round
trip checks the encoder against the text and not against itself.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

PEER_INDEX_TABLE, RIB_IPV4, RIB_IPV6, RIB_IPV4_AP, RIB_IPV6_AP = 1, 2, 4, 8, 10


def records(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(timestamp, type, subtype, body) of every record; the data must end on a record."""
    out = []
    i = 0
    while i < len(data):
        ts, mtype, sub, length = struct.unpack_from("!IHHI", data, i)
        i += 12
        body = data[i:i + length]
        assert len(body) == length, "truncated record"
        out.append((ts, mtype, sub, body))
        i += length
    return out


def peer_index(body: bytes) -> dict[str, Any]:
    collector = socket.inet_ntoa(body[:4])
    (nlen,) = struct.unpack_from("!H", body, 4)
    view = body[6:6 + nlen].decode()
    i = 6 + nlen
    (count,) = struct.unpack_from("!H", body, i)
    i += 2
    peers = []
    for _ in range(count):
        ptype = body[i]
        bgp_id = socket.inet_ntoa(body[i + 1:i + 5])
        i += 5
        if ptype & 1:
            address = socket.inet_ntop(socket.AF_INET6, body[i:i + 16])
            i += 16
        else:
            address = socket.inet_ntoa(body[i:i + 4])
            i += 4
        if ptype & 2:
            (asn,) = struct.unpack_from("!I", body, i)
            i += 4
        else:
            (asn,) = struct.unpack_from("!H", body, i)
            i += 2
        peers.append((bgp_id, address, asn))
    assert i == len(body), "peer index overrun"
    return {"collector": collector, "view": view, "peers": peers}


def attributes(raw: bytes) -> dict[int, bytes]:
    out = {}
    i = 0
    while i < len(raw):
        flags, code = raw[i], raw[i + 1]
        if flags & 0x10:
            (n,) = struct.unpack_from("!H", raw, i + 2)
            i += 4
        else:
            n = raw[i + 2]
            i += 3
        out[code] = raw[i:i + n]
        i += n
    assert i == len(raw), "attribute overrun"
    return out


def as_path(value: bytes) -> list[int]:
    """The ASNs of an AS_PATH with 4-octet ASNs (RFC 6396 4.3.4)."""
    out = []
    i = 0
    while i < len(value):
        n = value[i + 1]
        out.extend(struct.unpack_from(f"!{n}I", value, i + 2))
        i += 2 + 4 * n
    return out


def next_hop(attrs: dict[int, bytes]) -> str:
    if 14 in attrs:  # abbreviated MP_REACH_NLRI: length, next hop
        mp = attrs[14]
        nh = mp[1:1 + mp[0]]
        return socket.inet_ntop(socket.AF_INET6 if len(nh) >= 16 else socket.AF_INET, nh[:16])
    return socket.inet_ntoa(attrs[3])


def rib(sub: int, body: bytes) -> dict[str, Any]:
    addpath = sub in (RIB_IPV4_AP, RIB_IPV6_AP)
    v6 = sub in (RIB_IPV6, RIB_IPV6_AP)
    (seq,) = struct.unpack_from("!I", body, 0)
    plen = body[4]
    nbytes = (plen + 7) // 8
    raw = body[5:5 + nbytes] + bytes((16 if v6 else 4) - nbytes)
    prefix = f"{socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw)}/{plen}"
    i = 5 + nbytes
    (count,) = struct.unpack_from("!H", body, i)
    i += 2
    entries = []
    for _ in range(count):
        index, originated = struct.unpack_from("!HI", body, i)
        i += 6
        path_id = 0
        if addpath:
            (path_id,) = struct.unpack_from("!I", body, i)
            i += 4
        (alen,) = struct.unpack_from("!H", body, i)
        i += 2
        a = attributes(body[i:i + alen])
        i += alen
        entries.append({"peer": index, "time": originated, "path_id": path_id,
                        "as_path": as_path(a.get(2, b"")), "next_hop": next_hop(a),
                        "origin": a[1][0], "attrs": a})
    assert i == len(body), "RIB record overrun"
    return {"seq": seq, "prefix": prefix, "entries": entries}


def read(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The peer index and the RIB records of one TABLE_DUMP_V2 file."""
    recs = records(data)
    assert recs and recs[0][1:3] == (13, PEER_INDEX_TABLE), "no PEER_INDEX_TABLE first"
    index = peer_index(recs[0][3])
    ribs = []
    for _ts, mtype, sub, body in recs[1:]:
        assert mtype == 13 and sub in (RIB_IPV4, RIB_IPV6, RIB_IPV4_AP, RIB_IPV6_AP), (mtype, sub)
        r = rib(sub, body)
        r["subtype"] = sub
        ribs.append(r)
    return index, ribs


def bgp4mp(data: bytes) -> list[dict[str, Any]]:
    """Every BGP4MP_ET record (RFC 6396 3 and 4.4, RFC 8050 3): times, peers, states, messages."""
    out = []
    for ts, mtype, sub, body in records(data):
        assert mtype == 17, mtype
        (usec,) = struct.unpack_from("!I", body, 0)
        peer_as, local_as, ifindex, afi = struct.unpack_from("!IIHH", body, 4)
        n = 16 if afi == 2 else 4
        fam = socket.AF_INET6 if afi == 2 else socket.AF_INET
        peer_ip = socket.inet_ntop(fam, body[16:16 + n])
        local_ip = socket.inet_ntop(fam, body[16 + n:16 + 2 * n])
        rest = body[16 + 2 * n:]
        rec: dict[str, Any] = {"time": ts + usec / 1e6, "subtype": sub, "peer_as": peer_as,
                               "local_as": local_as, "ifindex": ifindex, "peer": peer_ip,
                               "local": local_ip}
        if sub == 5:
            rec["old"], rec["new"] = struct.unpack("!HH", rest)
        else:
            assert sub in (4, 9), sub
            assert rest[:16] == b"\xff" * 16, "no marker"
            (length,) = struct.unpack_from("!H", rest, 16)
            assert length == len(rest), "message length"
            rec["type"] = rest[18]
            rec["message"] = rest
        out.append(rec)
    return out
