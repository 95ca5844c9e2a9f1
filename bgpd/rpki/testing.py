"""Fakes for RPKI tests and benchmarks: a recording sink and a small RTR cache (RFC 8210 section 8).

:class:`RecordingSink` is an :class:`~bgpd.rpki.records.RpkiSink` that
keeps every call and applies transactions per cache at End of Data, as a
table would.  :class:`CacheServer` is an RTR cache built on bgpd's own PDU
codec: it answers Reset Query and Serial Query (with the differences since
any serial it has kept), sends Serial Notify on change, and can be told to
speak only some protocol versions.  :func:`synthetic_vrps` makes a VRP set
shaped roughly like the global one (most IPv4 /24 and /22, IPv6 /48 and /32).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from twisted.internet import protocol

from bgpd.rpki import pdu as P
from bgpd.rpki.records import Aspa, Vrp
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST

__all__ = ["CacheServer", "RecordingSink", "synthetic_vrps"]


class RecordingSink:
    """Every sink call in ``calls``; per cache the data as of its last End of Data in ``data``."""

    def __init__(self, keep_calls: bool = True) -> None:
        self.keep_calls = keep_calls
        self.calls: list[tuple] = []
        #: cache -> set of VRPs
        self.data: dict[str, set[Vrp]] = {}
        #: cache -> customer AS -> providers
        self.aspa: dict[str, dict[int, tuple[int, ...]]] = {}
        self.serials: dict[str, int] = {}
        self._pending: dict[str, tuple[bool, list, list, list, list]] = {}
        self.ends = 0

    def _note(self, *call: Any) -> None:
        if self.keep_calls:
            self.calls.append(call)

    def begin(self, cache: str, reset: bool) -> None:
        self._note("begin", cache, reset)
        self._pending[cache] = (reset, [], [], [], [])

    def vrps(self, cache: str, announced: Sequence[Vrp], withdrawn: Sequence[Vrp]) -> None:
        self._note("vrps", cache, len(announced), len(withdrawn))
        p = self._pending[cache]
        p[1].extend(announced)
        p[2].extend(withdrawn)

    def aspas(self, cache: str, announced: Sequence[Aspa], withdrawn: Sequence[int]) -> None:
        self._note("aspas", cache, tuple(announced), tuple(withdrawn))
        p = self._pending[cache]
        p[3].extend(announced)
        p[4].extend(withdrawn)

    def end(self, cache: str, serial: int) -> None:
        self._note("end", cache, serial)
        reset, ann, wd, aann, awd = self._pending.pop(cache)
        data = set() if reset else set(self.data.get(cache, ()))
        aspa = {} if reset else dict(self.aspa.get(cache, {}))
        # As the VrpTable: a VRP's PDUs alternate, so the count tells which came last.
        net: dict[Vrp, int] = {}
        for v in ann:
            net[v] = net.get(v, 0) + 1
        for v in wd:
            net[v] = net.get(v, 0) - 1
        data.difference_update(v for v, n in net.items() if n < 0)
        data.update(v for v, n in net.items() if n > 0)
        for c in awd:
            aspa.pop(c, None)
        for a in aann:
            aspa[a.customer_as] = a.providers
        self.data[cache] = data
        self.aspa[cache] = aspa
        self.serials[cache] = serial
        self.ends += 1

    def abort(self, cache: str) -> None:
        self._note("abort", cache)
        self._pending.pop(cache, None)

    def has_vrp(self, cache: str, vrp: Vrp) -> bool:
        return vrp in self.data.get(cache, ())

    def drop(self, cache: str) -> None:
        self._note("drop", cache)
        self.data.pop(cache, None)
        self.aspa.pop(cache, None)
        self.serials.pop(cache, None)

    def counts(self, cache: str) -> tuple[int, int]:
        """(IPv4, IPv6) VRPs held from ``cache``."""
        data = self.data.get(cache, set())
        v4 = sum(1 for v in data if v.family == IPV4_UNICAST)
        return v4, len(data) - v4

    def names(self) -> list[str]:
        """The sink calls' names in order (for exact sequence checks)."""
        return [c[0] for c in self.calls]


def synthetic_vrps(n: int, v6_share: float = 0.2, base_as: int = 64512) -> list[Vrp]:
    """``n`` distinct VRPs: IPv4 /24s and /22s from 10.0.0.0 up, IPv6 /48s from 2001:db8::/32 up."""
    n6 = int(n * v6_share)
    n4 = n - n6
    out: list[Vrp] = []
    pack4 = struct.Struct("!I").pack
    for i in range(n4):
        if i % 4 == 3:
            addr = (0x0A000000 + (i << 8)) & 0xFFFFFC00
            plen, maxlen = 22, 24
        else:
            addr, plen, maxlen = 0x0A000000 + (i << 8), 24, 24
        key = bytes((plen,)) + pack4(addr & 0xFFFFFFFF)[:3]
        out.append(Vrp(IPV4_UNICAST, key, maxlen, base_as + i % 60000))
    for i in range(n6):
        key = bytes((48,)) + b"\x20\x01" + struct.pack("!I", i)
        out.append(Vrp(IPV6_UNICAST, key, 48, base_as + i % 60000))
    # /22s may repeat once the /24s wrap: keep the first of each.
    seen: set[tuple] = set()
    unique = []
    for v in out:
        k = (v.family, v.prefix, v.max_length, v.asn)
        if k not in seen:
            seen.add(k)
            unique.append(v)
    return unique


class CacheServer(protocol.Factory):
    """A small RTR cache: ``set_data`` publishes a new serial and notifies connected routers."""

    def __init__(self, vrps: Iterable[Vrp] = (), aspas: Iterable[Aspa] = (), session_id: int = 4242,
                 versions: tuple[int, ...] = (0, 1, 2), timers: tuple[int, int, int] = (3600, 600, 7200),
                 serial: int = 1) -> None:
        self.session_id = session_id
        self.versions = versions
        self.timers = timers
        self.serial = serial
        self.vrps: set[Vrp] = set(vrps)
        self.aspas: dict[int, tuple[int, ...]] = {a.customer_as: a.providers for a in aspas}
        #: serial -> (announced, withdrawn VRPs, announced ASPAs, withdrawn customers) to reach serial + 1
        self.history: dict[int, tuple[list[Vrp], list[Vrp], list[Aspa], list[int]]] = {}
        self.clients: list[CacheProtocol] = []
        self.queries: list[P.Pdu] = []
        #: pre-encoded Prefix PDUs per version of the current data (the bench's 800,000)
        self._encoded: dict[int, bytes] = {}
        #: answer every query with "No Data Available" (a cache still loading)
        self.no_data = False

    def buildProtocol(self, addr: Any) -> CacheProtocol:  # noqa: N802
        return CacheProtocol(self)

    def set_data(self, vrps: Iterable[Vrp], aspas: Iterable[Aspa] = (), notify: bool = True) -> None:
        """Publish a new data set as the next serial."""
        new = set(vrps)
        new_aspas = {a.customer_as: a.providers for a in aspas}
        ann = sorted(new - self.vrps, key=_vrp_sort)
        wd = sorted(self.vrps - new, key=_vrp_sort)
        aann = [Aspa(c, p) for c, p in new_aspas.items() if self.aspas.get(c) != p]
        awd = [c for c in self.aspas if c not in new_aspas]
        self.history[self.serial] = (ann, wd, aann, awd)
        self.serial = (self.serial + 1) & 0xFFFFFFFF
        self.vrps, self.aspas = new, new_aspas
        self._encoded.clear()
        if notify:
            for c in list(self.clients):
                c.notify()

    def response(self, version: int, serial: int | None) -> bytes:
        """The bytes answering a Reset Query (``serial`` None) or a Serial Query from ``serial``."""
        out = [P.CacheResponse(version, self.session_id).encode()]
        if serial is None:
            enc = self._encoded.get(version)
            if enc is None:
                enc = self._encoded[version] = b"".join(
                    P.PrefixPdu(version, True, v).encode() for v in sorted(self.vrps, key=_vrp_sort))
            out.append(enc)
            if version >= 2:
                out.extend(P.AspaPdu(version, True, c, p).encode() for c, p in sorted(self.aspas.items()))
        else:
            s = serial
            while s != self.serial:
                ann, wd, aann, awd = self.history[s]
                out.extend(P.PrefixPdu(version, False, v).encode() for v in wd)
                out.extend(P.PrefixPdu(version, True, v).encode() for v in ann)
                if version >= 2:
                    out.extend(P.AspaPdu(version, False, c).encode() for c in awd)
                    out.extend(P.AspaPdu(version, True, a.customer_as, a.providers).encode() for a in aann)
                s = (s + 1) & 0xFFFFFFFF
        refresh, retry, expire = self.timers
        out.append(P.EndOfData(version, self.session_id, self.serial, refresh, retry, expire).encode())
        return b"".join(out)


def _vrp_sort(v: Vrp) -> tuple:
    return (v.family, v.prefix, v.max_length, v.asn)


class CacheProtocol(protocol.Protocol):
    """One router's connection to the :class:`CacheServer`."""

    def __init__(self, server: CacheServer) -> None:
        self.server = server
        self.version: int | None = None
        self._buf = b""

    def connectionMade(self) -> None:  # noqa: N802
        self.server.clients.append(self)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        if self in self.server.clients:
            self.server.clients.remove(self)

    def notify(self) -> None:
        if self.version is not None:
            self.transport.write(P.SerialNotify(self.version, self.server.session_id,
                                                self.server.serial).encode())

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self._buf += data
        while len(self._buf) >= 8:
            length = struct.unpack_from("!I", self._buf, 4)[0]
            if len(self._buf) < length:
                return
            chunk, self._buf = self._buf[:length], self._buf[length:]
            self._query(chunk)

    def _query(self, data: bytes) -> None:
        s = self.server
        version = data[0]
        if version not in s.versions:
            # RFC 8210 section 7: report at the highest version this cache speaks.
            self.transport.write(P.ErrorReport(max(s.versions), P.ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                                               data, "version not supported").encode())
            self.transport.loseConnection()
            return
        try:
            pdu = P.decode(data)
        except P.PduError as err:
            self.transport.write(P.ErrorReport(version, err.code, data, err.reason).encode())
            self.transport.loseConnection()
            return
        s.queries.append(pdu)
        if isinstance(pdu, P.ErrorReport):
            self.transport.loseConnection()
            return
        self.version = version
        if s.no_data and isinstance(pdu, P.ResetQuery | P.SerialQuery):
            self.transport.write(P.ErrorReport(version, P.ErrorCode.NO_DATA_AVAILABLE, b"",
                                               "still loading").encode())
            return
        if isinstance(pdu, P.ResetQuery):
            self.transport.write(s.response(version, None))
        elif isinstance(pdu, P.SerialQuery):
            if pdu.session_id != s.session_id or (pdu.serial != s.serial and pdu.serial not in s.history):
                self.transport.write(P.CacheReset(version).encode())
            else:
                self.transport.write(s.response(version, pdu.serial))
