"""bgpctl: the command-line client of bgpd's gRPC API (package bgpd.v1).

    bgpctl [--socket PATH | --target HOST:PORT] [--json] COMMAND ...

Tables read like ``birdc show protocols`` / ``vtysh show bgp summary``;
``--json`` prints what the API returned, as ``google.protobuf.json_format``
renders it (one document, or one per line for ``watch``).  Errors are one
line on stderr and a non-zero exit: 1 for a refused request, 3 when bgpd
cannot be reached, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

import grpc
from google.protobuf import json_format

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
from bgpd.config import DEFAULT_API_LISTEN

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
#: the Debian package's socket ([api] listen in its /etc/bgpd/config.toml), tried first
PACKAGE_SOCKET = "/run/bgpd/bgpd.sock"
#: the environment variable naming the API socket when --socket / --target are not given
SOCKET_ENV = "BGPD_SOCKET"
#: the origin codes of a "show ip bgp" line
_ORIGIN_CODE = {"igp": "i", "egp": "e", "incomplete": "?"}
#: seconds for one unary call (watch streams have none)
CALL_TIMEOUT = 30.0


class CliError(Exception):
    """A one-line error and the exit code it gives."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2 (argparse's own convention)
        raise CliError(f"{self.prog}: {message}", EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bgpctl", description="Control a running bgpd over its gRPC API.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="PATH",
                       help="the API's Unix socket ([api] listen = unix:PATH; default: "
                       f"${SOCKET_ENV}, else {PACKAGE_SOCKET} (the Debian package's) when it exists, "
                       f"else {DEFAULT_API_LISTEN[len('unix:'):]}, the one bgpd makes in [bgp] state_dir "
                       "when [api] sets no listen)")
    where.add_argument("--target", metavar="HOST:PORT", default=None,
                       help="the API's address ([api] listen = HOST:PORT)")
    p.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    show = sub.add_parser("show", help="show state").add_subparsers(dest="what", required=True,
                                                                    parser_class=_Parser)
    show.add_parser("summary", help="the daemon and one line per neighbor")
    show.add_parser("kernel", help="the kernel route writer: table, routes per family")
    show.add_parser("bmp", help="the BMP collectors: state, messages, drops, buffer")
    show.add_parser("neighbors", help="every neighbor in detail")
    n = show.add_parser("neighbor", help="one neighbor in detail")
    n.add_argument("address")
    for name, help_text in (("routes", "a table's routes"), ("route", "one prefix's paths")):
        r = show.add_parser(name, help=help_text)
        r.add_argument("prefix", nargs="?" if name == "routes" else None,
                       help="a prefix (exact) or an address (longest match)")
        r.add_argument("--family", default="", help="ipv4-unicast (default) or ipv6-unicast")
        r.add_argument("--peer", help="a neighbor's tables (with --in, --in-pre or --out)")
        t = r.add_mutually_exclusive_group()
        t.add_argument("--in", dest="table", action="store_const", const=routes_pb2.ADJ_RIB_IN,
                       help="the peer's Adj-RIB-In after import policy")
        t.add_argument("--in-pre", dest="table", action="store_const", const=routes_pb2.ADJ_RIB_IN_PRE,
                       help="the peer's Adj-RIB-In before import policy")
        t.add_argument("--out", dest="table", action="store_const", const=routes_pb2.ADJ_RIB_OUT,
                       help="what is advertised to the peer")
        r.add_argument("--more-specifics", action="store_true", help="PREFIX and every prefix inside it")
        r.add_argument("--all", action="store_true", help="every candidate path, not only the best")
        r.add_argument("--explain", action="store_true",
                       help="every candidate and the decision step the best path won it by")
        r.add_argument("--limit", type=int, default=0, help="at most this many paths")

    nb = sub.add_parser("neighbor", help="act on neighbors: ADDR enable|disable|reset, add, del")
    nb.add_argument("words", nargs=argparse.REMAINDER)

    route = sub.add_parser("route", help="originate or withdraw paths").add_subparsers(
        dest="action", required=True, parser_class=_Parser)
    ra = route.add_parser("add", help="originate a path")
    ra.add_argument("prefix")
    ra.add_argument("--next-hop", required=True)
    ra.add_argument("--origin", default="igp", choices=("igp", "egp", "incomplete"))
    ra.add_argument("--med", type=int)
    ra.add_argument("--local-pref", type=int)
    ra.add_argument("--community", action="append", default=[], help="ASN:VALUE or a well-known name")
    ra.add_argument("--large-community", action="append", default=[], help="G:D1:D2")
    rd = route.add_parser("del", help="withdraw a path originated through the API")
    rd.add_argument("prefix", nargs="+")

    cfg = sub.add_parser("config", help="the running config").add_subparsers(
        dest="action", required=True, parser_class=_Parser)
    cfg.add_parser("show", help="the effective config as TOML, API changes marked")

    pol = sub.add_parser("policy", help="the route policies").add_subparsers(
        dest="action", required=True, parser_class=_Parser)
    pol.add_parser("show", help="the running [sets] and [policies] as TOML")
    for name, help_text in (("check", "validate a candidate file"),
                            ("rehearse", "what a candidate file would change"),
                            ("apply", "replace [sets] and [policies] with a candidate file's")):
        pp = pol.add_parser(name, help=help_text)
        pp.add_argument("file", help="a TOML file with [sets] and [policies] tables only")
        if name == "apply":
            pp.add_argument("--confirm", type=int, default=0, metavar="SECONDS",
                            help="roll back unless 'bgpctl policy confirm' follows within SECONDS")
    pol.add_parser("confirm", help="keep a replacement applied with --confirm")
    pe = pol.add_parser("explain", help="walk one route through a peer's chain")
    pe.add_argument("peer")
    pe.add_argument("direction", choices=("import", "export"))
    pe.add_argument("prefix")
    pe.add_argument("--family", default="")
    pe.add_argument("--candidate", metavar="FILE", help="walk this candidate's policies instead")

    watch = sub.add_parser("watch", help="follow changes").add_subparsers(dest="what", required=True,
                                                                          parser_class=_Parser)
    wr = watch.add_parser("routes", help="best-path changes")
    wr.add_argument("--dump", action="store_true", help="start with the current table")
    wr.add_argument("--family", default="")
    wr.add_argument("--prefix", default="", help="only this prefix and its more-specifics")
    wr.add_argument("--count", type=int, default=0, help="stop after this many messages")
    wr.add_argument("--peer", default="", help="a neighbor's Adj-RIB-In instead (with --in or --in-pre)")
    wt = wr.add_mutually_exclusive_group()
    wt.add_argument("--in", dest="table", action="store_const", const=routes_pb2.ADJ_RIB_IN,
                    help="the peer's Adj-RIB-In after import policy (the default with --peer)")
    wt.add_argument("--in-pre", dest="table", action="store_const", const=routes_pb2.ADJ_RIB_IN_PRE,
                    help="the peer's Adj-RIB-In before import policy")
    comp = sub.add_parser("completion", help="print a shell completion script: "
                          'eval "$(bgpctl completion bash)"')
    comp.add_argument("shell", choices=("bash",))
    we = watch.add_parser("events", help="session state changes")
    we.add_argument("--peer", default="")
    we.add_argument("--count", type=int, default=0, help="stop after this many events")
    rpki = sub.add_parser("rpki", help="RPKI: the RTR caches, origin validation, ASPA").add_subparsers(
        dest="action", required=True, parser_class=_Parser)
    rs = rpki.add_parser("status", help="every RTR cache: state, session, serial, VRP counts")
    rs.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                    help="print the API's answer as JSON")
    _rpki_parsers(rpki)
    _monitor_parsers(sub, show)
    return p


def _rpki_parsers(rp: Any) -> None:
    """``bgpctl rpki validate PREFIX ASN``, ``rpki vrps PREFIX``, ``rpki aspa DIR PATH`` (RFC 6811, ASPA)."""
    rv = rp.add_parser("validate", help="validate a (prefix, origin AS) against the VRPs in force")
    rv.add_argument("prefix")
    rv.add_argument("asn", help='the origin AS ("AS64500" or 64500); "none" for origin NONE (AS_SET)')
    rs = rp.add_parser("vrps", help="the VRPs covering a prefix")
    rs.add_argument("prefix")
    ra = rp.add_parser("aspa", help="verify an AS path (neighbor first) by ASPA")
    ra.add_argument("direction", choices=("upstream", "downstream"))
    ra.add_argument("as_path", nargs="+", help="the ASes, the neighbor first, the origin last")
    for q in (rv, rs, ra):
        # Also after the subcommand (bgpctl rpki validate P ASN --json); SUPPRESS keeps the global one.
        q.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print the API's answer as JSON")


def _monitor_parsers(sub: Any, show: Any) -> None:
    """``show history ADDR`` and ``dump rib FILE`` (bgpd.monitor)."""
    hist = show.add_parser("history", help="a neighbor's last session state changes")
    hist.add_argument("address")
    dump = sub.add_parser("dump", help="write MRT files").add_subparsers(
        dest="what", required=True, parser_class=_Parser)
    dr = dump.add_parser("rib", help="an MRT TABLE_DUMP_V2 file (RFC 6396) of a RIB, on bgpd's host")
    dr.add_argument("file", help="the file bgpd writes (relative: to this directory)")
    dr.add_argument("--peer", default="", help="the Adj-RIB-In of this neighbor only")
    dr.add_argument("--table", choices=("loc-rib", "adj-rib-in"), default=None,
                    help="loc-rib (default; adj-rib-in with --peer)")
    dr.add_argument("--compression", choices=("none", "gzip", "bz2"), default="none")


def _neighbor_parser(verb: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"bgpctl neighbor {verb}")
    p.add_argument("address")
    if verb == "add":
        p.add_argument("--remote-as", type=int, required=True)
        p.add_argument("--local-as", type=int)
        p.add_argument("--description")
        p.add_argument("--passive", action="store_true", default=None)
        p.add_argument("--disabled", action="store_true", help="add it without starting it")
        p.add_argument("--local-address")
        p.add_argument("--port", type=int)
        p.add_argument("--hold-time", type=int)
        p.add_argument("--family", action="append", default=[], dest="families")
        p.add_argument("--import-policy", action="append", default=[])
        p.add_argument("--export-policy", action="append", default=[])
    return p


# -- output ------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h{m:02d}m" if d else f"{h:02d}:{m:02d}:{s:02d}"


def _table(rows: Sequence[Sequence[object]], out: IO[str]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _counts(counts: Iterable[Any]) -> str:
    return ", ".join(f"{c.family} {c.count}" for c in counts) or "-"


def _summary(g: Any, peers: Sequence[Any], out: IO[str]) -> None:
    out.write(f"BGP router identifier {g.router_id}, local AS number {g.local_as}\n")
    out.write(f"bgpd {g.version}, up {_duration(g.uptime_seconds)}; {g.peers_established}/"
              f"{g.peers_total} neighbors established; Loc-RIB {_counts(g.loc_rib)}"
              f"{'; read-only API' if g.read_only else ''}\n\n")
    rows: list[Sequence[object]] = [("Neighbor", "AS", "State", "Up/Down", "MsgRcvd", "MsgSent",
                                     "PfxRcd", "PfxSnt", "Description")]
    for p in peers:
        state = p.state if p.enabled else "Idle (Admin)"
        rows.append((p.config.address, p.config.remote_as, state, _duration(p.state_seconds),
                     p.messages_received, p.messages_sent,
                     sum(c.count for c in p.prefixes_accepted), sum(c.count for c in p.prefixes_advertised),
                     p.config.description if p.config.HasField("description") else ""))
    _table(rows, out)


def _notification(n: Any) -> str:
    text = f"{n.name} ({n.code}/{n.subcode})"
    return text + (f' "{n.shutdown_message}"' if n.shutdown_message else "")


def _neighbor(p: Any, out: IO[str]) -> None:
    c = p.config
    out.write(f"BGP neighbor is {c.address}, remote AS {c.remote_as}"
              f"{', local AS ' + str(c.local_as) if c.HasField('local_as') else ''}"
              f"{' (added through the API)' if p.from_api else ''}\n")
    if c.HasField("description"):
        out.write(f"  Description: {c.description}\n")
    out.write(f"  BGP state = {p.state}{'' if p.enabled else ' (administratively disabled)'}, "
              f"for {_duration(p.state_seconds)}\n")
    if p.router_id:
        out.write(f"  Remote router ID {p.router_id}, AS {p.peer_as}, hold time {p.hold_time}s\n")
        out.write(f"  Families: {', '.join(p.families)}\n")
        out.write(f"  Capabilities: {', '.join(p.capabilities) or '-'}\n")
    out.write(f"  Prefixes accepted: {_counts(p.prefixes_accepted)}\n")
    if p.prefixes_received:
        out.write(f"  Prefixes received (pre-policy): {_counts(p.prefixes_received)}\n")
    out.write(f"  Prefixes advertised: {_counts(p.prefixes_advertised)}\n")
    out.write(f"  Messages: {p.messages_received} received, {p.messages_sent} sent; "
              f"{p.updates_received} UPDATEs received in all\n")
    out.write(f"  Established {p.established_transitions} times, {p.flaps} flaps\n")
    out.write(f"  Import policy: {', '.join(c.import_policy)}; export policy: {', '.join(c.export_policy)}\n")
    if p.last_error:
        out.write(f"  Last error: {p.last_error}\n")
    if p.HasField("last_notification_sent"):
        out.write(f"  Last NOTIFICATION sent: {_notification(p.last_notification_sent)}\n")
    if p.HasField("last_notification_received"):
        out.write(f"  Last NOTIFICATION received: {_notification(p.last_notification_received)}\n")


def _as_path(a: Any) -> str:
    parts = []
    for seg in a.as_path:
        asns = " ".join(str(x) for x in seg.asns)
        parts.append(asns if seg.type == "AS_SEQUENCE" else "{" + asns + "}")
    return " ".join(parts)


def _kernel_state(r: Any) -> str:
    """A route's kernel flag as bgpctl prints it ("installed", "not-selected"); "" without one."""
    if not r.kernel:
        return ""
    return routes_pb2.KernelState.Name(r.kernel).removeprefix("KERNEL_STATE_").lower().replace("_", "-")


def _route_lines(routes: Sequence[Any], out: IO[str], detail: bool) -> None:
    if not detail:
        # The RPKI column only when bgpd validates ([rpki]): V valid, I invalid, N not found.
        rov = any(r.rpki or r.aspa for r in routes)
        # The Kernel column only when bgpd writes routes to the kernel ([kernel]).
        kernel = any(r.kernel for r in routes)
        rows: list[Sequence[object]] = [("", "Prefix", "Next hop", "From", "MED", "LocPrf", "Path")
                                        + (("RPKI", "ASPA") if rov else ()) + (("Kernel",) if kernel else ())]
        for r in routes:
            a = r.attributes
            rows.append(("*>" if r.best else "* ", r.prefix, a.next_hop, r.source_peer or "-",
                         a.med if a.HasField("med") else "", a.local_pref if a.HasField("local_pref") else "",
                         f"{_as_path(a)} {_ORIGIN_CODE.get(a.origin, '?')}".strip())
                        + ((_RPKI_CODE[r.rpki], _ASPA_CODE[r.aspa]) if rov else ())
                        + ((_kernel_state(r) or "-",) if kernel else ()))
        _table(rows, out)
        return
    for r in routes:
        a = r.attributes
        head = f"{r.prefix} via {a.next_hop} from {r.source_peer or '-'}"
        if r.source_router_id and r.source_router_id != "0.0.0.0":
            head += f" ({r.source_router_id})"
        head += " [best]" if r.best else f" [lost to the best path at: {r.explain_step or '-'}]"
        out.write(head + ("  stale" if r.stale else "") + "\n")
        out.write(f"  origin {a.origin}, AS path {_as_path(a) or '(empty)'}\n")
        if r.age_seconds:
            # since its peer first sent this attribute set (the API's age_seconds)
            out.write(f"  age {_duration(r.age_seconds)}\n")
        if r.kernel:
            out.write(f"  kernel {_kernel_state(r)}\n")
        if a.HasField("med"):
            out.write(f"  MED {a.med}\n")
        if a.HasField("local_pref"):
            out.write(f"  local preference {a.local_pref}\n")
        for label, values in (("communities", a.communities), ("large communities", a.large_communities),
                              ("extended communities", a.ext_communities), ("cluster list", a.cluster_list)):
            if values:
                out.write(f"  {label} {' '.join(values)}\n")
        if a.atomic_aggregate:
            out.write("  atomic aggregate\n")
        if a.aggregator_address:
            out.write(f"  aggregator AS{a.aggregator_as} {a.aggregator_address}\n")
        if a.originator_id:
            out.write(f"  originator {a.originator_id}\n")
        if a.HasField("otc"):
            out.write(f"  only to customer {a.otc}\n")
        if r.rpki or r.aspa:
            out.write(f"  RPKI {_RPKI_NAME[r.rpki]}, ASPA {_ASPA_NAME[r.aspa]}\n")
        for u in a.unknown:
            out.write(f"  attribute {u.type} flags 0x{u.flags:02x} {u.value.hex()}\n")


def _json(message: Any) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None)


# -- commands ----------------------------------------------------------------------


class Client:
    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.insecure_channel(target)
        self.glob = global_pb2_grpc.GlobalStub(self.channel)
        self.peers = peers_pb2_grpc.PeersStub(self.channel)
        self.routes = routes_pb2_grpc.RoutesStub(self.channel)
        self.events = events_pb2_grpc.EventsStub(self.channel)
        self.rpki = rpki_pb2_grpc.RpkiStub(self.channel)
        self.monitor = monitor_pb2_grpc.MonitorStub(self.channel)

    def close(self) -> None:
        self.channel.close()


def _kernel(k: Any, out: IO[str]) -> None:
    if not k.enabled:
        out.write("kernel routes: off (no [kernel] table in the config)\n")
        return
    out.write(f"kernel routes: table {k.table}, protocol {k.protocol}, metric {k.metric}\n")
    out.write(f"{'Family':<14} {'Installed':>10} {'Pending':>10} {'Failed':>10}\n")
    for f in k.families:
        out.write(f"{f.family:<14} {f.installed:>10} {f.pending:>10} {f.failed:>10}\n")


_RPKI_STATE = {rpki_pb2.RPKI_CACHE_IDLE: "idle", rpki_pb2.RPKI_CACHE_CONNECTING: "connecting",
               rpki_pb2.RPKI_CACHE_CONNECTED: "connected", rpki_pb2.RPKI_CACHE_DOWN: "down"}


def _rpki_status(r: Any, out: IO[str], now: float) -> None:
    if not r.enabled:
        out.write("rpki: off (no [rpki] table in the config)\n")
        return
    using = r.active_cache or "none (every route NotFound)"
    out.write(f"rpki: using cache {using}{', ASPA on' if r.aspa else ''}\n")
    rows: list[list[object]] = [["Cache", "Address", "Pref", "State", "Ver", "Session", "Serial",
                                 "Updated", "IPv4", "IPv6", "ASPA", "Refresh/Retry/Expire"]]
    for c in r.caches:
        host = f"[{c.address}]" if ":" in c.address else c.address
        mark = "*" if c.active else " "
        rows.append([mark + c.name, f"{host}:{c.port}{'/tls' if c.transport == 'tls' else ''}",
                     c.preference, _RPKI_STATE.get(c.state, "?"), c.protocol_version,
                     c.session_id if c.HasField("session_id") else "-",
                     c.serial if c.HasField("serial") else "-",
                     _duration(max(0.0, now - c.last_update)) + " ago" if c.last_update else "never",
                     c.ipv4_vrps, c.ipv6_vrps, c.aspas, f"{c.refresh}/{c.retry}/{c.expire}"])
    _table(rows, out)
    for c in r.caches:
        if c.last_error:
            out.write(f"  {c.name}: {c.last_error}\n")


def _rpki_cmd(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    if args.action == "status":
        r = c.rpki.GetRpkiStatus(rpki_pb2.GetRpkiStatusRequest(), timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(r) + "\n")
        else:
            _rpki_status(r, out, time.time())
    else:
        _rpki_query_cmd(c, args, out)


def _bmp(b: Any, out: IO[str]) -> None:
    if not b.enabled:
        out.write("bmp: off (no [[bmp.collector]] in the config)\n")
        return
    out.write(f"{'Collector':<12} {'Address':<24} {'State':<10} {'Messages':>10} {'MB':>9} "
              f"{'Drops':>6} {'Buffered':>9}  Monitoring\n")
    for s in b.collectors:
        where = f"[{s.address}]:{s.port}" if ":" in s.address else f"{s.address}:{s.port}"
        out.write(f"{s.name:<12} {where:<24} {s.state:<10} {s.messages:>10} "
                  f"{s.octets / 1e6:>9.1f} {s.drops:>6} {s.buffered:>9}  {','.join(s.monitoring)}\n")
        if s.last_error:
            out.write(f"{'':<12} last: {s.last_error}\n")


def _show(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    if args.what == "summary":
        g = c.glob.GetGlobal(global_pb2.GetGlobalRequest(), timeout=CALL_TIMEOUT)
        peers = c.peers.ListPeers(peers_pb2.ListPeersRequest(), timeout=CALL_TIMEOUT)
        if args.json:
            out.write(json.dumps({"global": json.loads(_json(g)), "peers": json.loads(_json(peers)).get(
                "peers", [])}) + "\n")
        else:
            _summary(g, peers.peers, out)
    elif args.what == "bmp":
        b = c.glob.GetBmp(global_pb2.GetBmpRequest(), timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(b) + "\n")
        else:
            _bmp(b, out)
    elif args.what == "kernel":
        k = c.glob.GetKernel(global_pb2.GetKernelRequest(), timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(k) + "\n")
        else:
            _kernel(k, out)
    elif args.what == "neighbors":
        peers = c.peers.ListPeers(peers_pb2.ListPeersRequest(), timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(peers) + "\n")
        else:
            for i, p in enumerate(peers.peers):
                out.write("\n" if i else "")
                _neighbor(p, out)
    elif args.what == "neighbor":
        p = c.peers.GetPeer(peers_pb2.GetPeerRequest(address=args.address), timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(p) + "\n")
        else:
            _neighbor(p, out)
            h = c.monitor.GetPeerHistory(monitor_pb2.GetPeerHistoryRequest(address=args.address),
                                         timeout=CALL_TIMEOUT)
            _history(h, out, last=NEIGHBOR_EVENTS)
    elif args.what == "history":
        h = c.monitor.GetPeerHistory(monitor_pb2.GetPeerHistoryRequest(address=args.address),
                                     timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(h) + "\n")
        else:
            _history(h, out)
    else:
        _show_routes(c, args, out)


def _show_routes(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    table = args.table if args.table is not None else routes_pb2.LOC_RIB
    if table != routes_pb2.LOC_RIB and not args.peer:
        raise CliError("bgpctl: --in, --in-pre and --out need --peer ADDR", EXIT_USAGE)
    if args.peer and table == routes_pb2.LOC_RIB:
        table = routes_pb2.ADJ_RIB_IN
    req = routes_pb2.ListRoutesRequest(table=table, peer=args.peer or "", family=args.family,
                                       all_paths=args.all or args.explain, limit=max(0, args.limit))
    if args.prefix:
        if args.more_specifics:
            req.more_specifics = args.prefix
        elif "/" in args.prefix:
            req.prefix = args.prefix
        else:
            req.longest_match = args.prefix
    routes = [r for m in c.routes.ListRoutes(req, timeout=CALL_TIMEOUT * 20) for r in m.routes]
    if args.json:
        out.write(json.dumps({"routes": [json.loads(_json(r)) for r in routes]}) + "\n")
    elif not routes:
        out.write("no routes\n")
    else:
        _route_lines(routes, out, detail=args.what == "route" or args.explain)


def _neighbor_cmd(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    words = args.words
    if not words:
        raise CliError("bgpctl neighbor: expected ADDR enable|disable|reset, add ADDR ..., or del ADDR",
                       EXIT_USAGE)
    if words[0] in ("add", "del"):
        a = _neighbor_parser(words[0]).parse_args(words[1:])
        if words[0] == "del":
            c.peers.DeletePeer(peers_pb2.DeletePeerRequest(address=a.address), timeout=CALL_TIMEOUT)
            out.write(f"neighbor {a.address} deleted\n")
            return
        cfg = peers_pb2.PeerConfig(address=a.address, remote_as=a.remote_as, families=a.families,
                                   import_policy=a.import_policy, export_policy=a.export_policy)
        for key in ("local_as", "description", "local_address", "port", "hold_time"):
            if getattr(a, key) is not None:
                setattr(cfg, key, getattr(a, key))
        if a.passive:
            cfg.passive = True
        if a.disabled:
            cfg.enabled = False
        p = c.peers.AddPeer(peers_pb2.AddPeerRequest(config=cfg), timeout=CALL_TIMEOUT)
        out.write(_json(p) + "\n" if args.json else f"neighbor {p.config.address} added ({p.state})\n")
        return
    p = _Parser(prog="bgpctl neighbor")
    p.add_argument("address")
    p.add_argument("action", choices=("enable", "disable", "reset"))
    p.add_argument("--message", default="", help="RFC 9003 shutdown communication")
    p.add_argument("--soft", choices=("in", "out"), help="soft reset instead of a hard one")
    a = p.parse_args(words)
    if a.action == "enable":
        peer = c.peers.EnablePeer(peers_pb2.EnablePeerRequest(address=a.address), timeout=CALL_TIMEOUT)
    elif a.action == "disable":
        peer = c.peers.DisablePeer(peers_pb2.DisablePeerRequest(address=a.address, message=a.message),
                                   timeout=CALL_TIMEOUT)
    else:
        kind = {None: peers_pb2.ResetPeerRequest.HARD, "in": peers_pb2.ResetPeerRequest.SOFT_IN,
                "out": peers_pb2.ResetPeerRequest.SOFT_OUT}[a.soft]
        peer = c.peers.ResetPeer(peers_pb2.ResetPeerRequest(address=a.address, kind=kind, message=a.message),
                                 timeout=CALL_TIMEOUT)
    verb = {"enable": "enabled", "disable": "disabled", "reset": "reset"}[a.action]
    out.write(_json(peer) + "\n" if args.json else f"neighbor {peer.config.address} {verb} ({peer.state})\n")


def _route_cmd(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    if args.action == "del":
        r = c.routes.DeletePaths(routes_pb2.DeletePathsRequest(prefixes=args.prefix), timeout=CALL_TIMEOUT)
        out.write(_json(r) + "\n" if args.json else f"{r.count} path(s) withdrawn\n")
        return
    path = routes_pb2.OriginatePath(prefix=args.prefix, next_hop=args.next_hop, origin=args.origin,
                                    communities=args.community, large_communities=args.large_community)
    if args.med is not None:
        path.med = args.med
    if args.local_pref is not None:
        path.local_pref = args.local_pref
    r = c.routes.AddPaths(iter([routes_pb2.AddPathsRequest(paths=[path])]), timeout=CALL_TIMEOUT)
    out.write(_json(r) + "\n" if args.json else f"{args.prefix} originated\n")


def _watch(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    if args.what == "routes":
        if args.table is not None and not args.peer:
            raise CliError("bgpctl watch routes: --in and --in-pre need --peer ADDR", EXIT_USAGE)
        table = (args.table or routes_pb2.ADJ_RIB_IN) if args.peer else routes_pb2.LOC_RIB
        stream = c.routes.WatchRoutes(routes_pb2.WatchRoutesRequest(
            family=args.family, prefix=args.prefix, dump=args.dump, table=table, peer=args.peer))
    else:
        stream = c.events.WatchEvents(events_pb2.WatchEventsRequest(peer=args.peer))
    n = 0
    try:
        for m in stream:
            for event in (m.events if args.what == "routes" else [m]):
                n += 1
                _print_event(args, event, m.lag, out)
                if args.count and n >= args.count:
                    return
            out.flush()
    finally:
        stream.cancel()


def _print_event(args: argparse.Namespace, m: Any, lag: int, out: IO[str]) -> None:
    if args.json:
        doc = json.loads(_json(m))
        if args.what == "routes" and lag:
            doc["lag"] = lag
        out.write(json.dumps(doc) + "\n")
    elif args.what == "events":
        out.write(f"{time.strftime('%H:%M:%S', time.localtime(m.time))} {m.peer} "
                  f"{m.old_state} -> {m.new_state}: {m.reason}\n")
    else:
        kind = m.WhichOneof("event")
        if kind == "end_of_dump":
            out.write(f"-- end of dump ({m.end_of_dump.count} paths) --\n")
        elif kind == "withdraw":
            pid = f" path id {m.withdraw.path_id}" if m.withdraw.path_id else ""
            out.write(f"- {m.withdraw.prefix}{pid}\n")
        else:
            a = m.update.attributes
            out.write(f"+ {m.update.prefix} via {a.next_hop} from {m.update.source_peer} "
                      f"[{_as_path(a)}]{f' (lag {lag})' if lag else ''}\n")


def _config_cmd(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    r = c.glob.GetConfig(global_pb2.GetConfigRequest(), timeout=CALL_TIMEOUT)
    if args.json:
        out.write(_json(r) + "\n")
        return
    # The text is StateControl.config_toml(): the file with the state store's
    # overlay laid on it, each table from the API after a "# from the API" line.
    out.write("# The config bgpd runs: the file plus the API's changes kept in the state store.\n")
    if r.api_neighbors:
        out.write(f"# Neighbors set through the API: {', '.join(r.api_neighbors)}\n")
    if r.api_paths:
        out.write(f"# Paths originated through the API: {', '.join(r.api_paths)}\n")
    out.write("\n" + r.toml)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise CliError(f"bgpctl: cannot read {path}: {e.strerror or e}") from None


def _policy_cmd(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    stub = policy_pb2_grpc.PolicyStub(c.channel)
    if args.action == "show":
        doc = stub.GetPolicy(policy_pb2.GetPolicyRequest(), timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(doc) + "\n")
            return
        if doc.confirm_seconds_left:
            out.write(f"# unconfirmed: rolled back in {doc.confirm_seconds_left:.0f}s "
                      "unless 'bgpctl policy confirm'\n")
        out.write(doc.toml)
    elif args.action == "confirm":
        doc = stub.ConfirmPolicy(policy_pb2.ConfirmPolicyRequest(), timeout=CALL_TIMEOUT)
        out.write(_json(doc) + "\n" if args.json else "policy replacement confirmed\n")
    elif args.action == "explain":
        e = stub.ExplainRoute(policy_pb2.ExplainRouteRequest(
            peer=args.peer, direction=args.direction, prefix=args.prefix, family=args.family,
            candidate_toml=_read(args.candidate) if args.candidate else ""), timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(e) + "\n")
            return
        for p in e.policies:
            out.write(f"policy {p.policy}: {'accepted' if p.accepted else 'rejected'} by {p.decided_by}\n")
            for t in p.terms:
                conds = ", ".join(f"{c.condition} {'yes' if c.held else 'no'}" for c in t.conditions)
                out.write(f"  term {t.term}: {'matched' if t.matched else 'no match'}"
                          f"{' (' + conds + ')' if conds else ''}{' -> ' + t.result if t.result else ''}\n")
                for a in t.actions:
                    for ch in a.changes:
                        out.write(f"    {a.action}: {ch.field} {ch.before or '-'} -> {ch.after or '-'}\n")
        out.write(f"{'accepted' if e.accepted else 'rejected'} (decided by {e.decided_by_policy} / "
                  f"{e.decided_by_term})\n")
    else:
        cand = policy_pb2.PolicyCandidate(toml=_read(args.file))
        if args.action == "check":
            v = stub.ValidatePolicy(cand, timeout=CALL_TIMEOUT)
            names = ", ".join(v.names) or "no policies"
            out.write(_json(v) + "\n" if args.json else f"{args.file}: OK ({names})\n")
        elif args.action == "apply":
            cand.confirm_seconds = max(0, args.confirm)
            doc = stub.ReplacePolicy(cand, timeout=CALL_TIMEOUT)
            note = (f" (rolled back in {args.confirm}s unless 'bgpctl policy confirm')"
                    if args.confirm else "")
            names = ", ".join(doc.names)
            out.write(_json(doc) + "\n" if args.json else f"policies replaced: {names}{note}\n")
        else:
            r = stub.RehearsePolicy(cand, timeout=CALL_TIMEOUT)
            if args.json:
                out.write(_json(r) + "\n")
                return
            for x in r.rehearsals:
                if not x.complete:
                    out.write(f"{x.peer} {x.direction}: unknown (no soft_reconfiguration_inbound)\n")
                    continue
                out.write(f"{x.peer} {x.direction}: {len(x.newly_accepted)} newly accepted, "
                          f"{len(x.newly_rejected)} newly rejected, {len(x.changed)} changed "
                          f"of {x.routes}\n")
                for label, routes in (("+", x.newly_accepted), ("-", x.newly_rejected), ("~", x.changed)):
                    for route in routes:
                        diff = "; ".join(f"{ch.field} {ch.before} -> {ch.after}" for ch in route.changes)
                        out.write(f"  {label} {route.prefix}{'  ' + diff if diff else ''}\n")


# -- rpki: origin validation and ASPA queries (issue 11) ------------------------

#: RpkiState / AspaState numbers (proto/bgpd/v1/rpki.proto) -> words and one-letter codes
_RPKI_NAME = {0: "not validated", 1: "valid", 2: "invalid", 3: "not found"}
_ASPA_NAME = {0: "not verified", 1: "valid", 2: "invalid", 3: "unknown"}
_RPKI_CODE = {0: "-", 1: "V", 2: "I", 3: "N"}
_ASPA_CODE = {0: "-", 1: "V", 2: "I", 3: "U"}


def _asn_arg(text: str) -> int | None:
    t = text.strip().upper()
    if t == "NONE":
        return None
    try:
        n = int(t[2:] if t.startswith("AS") else t)
    except ValueError:
        raise CliError(f"bgpctl: not an AS number: {text!r}", EXIT_USAGE) from None
    if not 0 <= n <= 0xFFFFFFFF:
        raise CliError(f"bgpctl: AS number out of range: {text!r}", EXIT_USAGE)
    return n


def _vrp_line(v: Any) -> str:
    return f"{v.prefix}-{v.max_length} AS{v.asn}{'  (SLURM assertion)' if v.asserted else ''}"


def _rpki_query_cmd(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    stub = c.rpki
    if args.action == "validate":
        req = rpki_pb2.ValidateRouteRequest(prefix=args.prefix)
        origin = _asn_arg(args.asn)
        if origin is not None:
            req.origin_as = origin
        r = stub.ValidateRoute(req, timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(r) + "\n")
            return
        asn = "NONE" if origin is None else f"AS{origin}"
        out.write(f"{args.prefix} {asn}: {_RPKI_NAME[r.state]}: {r.reason}\n")
        for v in r.covering:
            out.write(f"  {'match' if v in r.matching else 'cover'} {_vrp_line(v)}\n")
    elif args.action == "vrps":
        r = stub.ListVrps(rpki_pb2.ListVrpsRequest(prefix=args.prefix), timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(r) + "\n")
            return
        if not r.vrps:
            out.write(f"no VRP covers {args.prefix}\n")
        for v in r.vrps:
            out.write(_vrp_line(v) + "\n")
    else:
        path = [_asn_arg(a) for a in args.as_path]
        if None in path:
            raise CliError("bgpctl: the AS path holds AS numbers only", EXIT_USAGE)
        r = stub.ValidateAsPath(rpki_pb2.ValidateAsPathRequest(as_path=path, direction=args.direction),
                                timeout=CALL_TIMEOUT)
        if args.json:
            out.write(_json(r) + "\n")
            return
        out.write(f"{' '.join(str(a) for a in path)} ({args.direction}): {_ASPA_NAME[r.state]}\n")
        for h in r.hops:
            out.write(f"  AS{h.customer_as} -> AS{h.provider_as}: {h.result}\n")


# -- shell completion ----------------------------------------------------------------
#
# A static script generated from the argparse tree (no argcomplete: it is not
# in Debian 12's python3 set, and a static script costs nothing at each TAB).
# argparse has no public API for walking its tree; _actions and a subparsers
# action's choices are what every completion generator reads.


def _completion_table(parser: argparse.ArgumentParser, path: str = "",
                      table: dict[str, tuple[list[str], list[str], list[str]]] | None = None,
                      ) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """command path -> (words that go on, options, options that take a value)."""
    table = {} if table is None else table
    words: list[str] = []
    options: list[str] = []
    valued: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                words.append(name)
                _completion_table(child, f"{path} {name}".strip(), table)
        elif action.option_strings:
            options.extend(action.option_strings)
            if action.nargs != 0:
                valued.extend(action.option_strings)
        elif action.choices:
            words.extend(str(c) for c in action.choices)
    table[path] = (words, options, valued)
    return table


def completion_script(shell: str = "bash") -> str:
    """A bash completion script for bgpctl: ``eval "$(bgpctl completion bash)"``."""
    table = _completion_table(build_parser())
    # "neighbor" takes its own words (ADDR enable|disable|reset, add, del).
    words, options, valued = table["neighbor"]
    table["neighbor"] = (["add", "del", "enable", "disable", "reset"], options, valued)
    for verb in ("add", "del"):
        p = _neighbor_parser(verb)
        table[f"neighbor {verb}"] = _completion_table(p)[""]

    def assoc(name: str, index: int) -> str:
        # keyed "bgpctl[ COMMAND...]": bash refuses an empty key
        rows = "".join(f'    ["{f"bgpctl {k}".strip()}"]="{" ".join(v[index])}"\n'
                       for k, v in sorted(table.items()))
        return f"declare -A {name}=(\n{rows})\n"

    return (
        "# bash completion for bgpctl (generated by 'bgpctl completion bash')\n"
        + assoc("_bgpctl_words", 0) + assoc("_bgpctl_opts", 1) + assoc("_bgpctl_valued", 2)
        + r"""_bgpctl() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" path=bgpctl i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        if [[ $w == -* ]]; then
            [[ " ${_bgpctl_valued[$path]} " == *" $w "* ]] && ((i++))
            continue
        fi
        if [[ -n ${_bgpctl_words["$path $w"]+set} ]]; then
            path="$path $w"
        fi
    done
    if [[ $prev == --socket || $prev == --candidate || $path == "bgpctl policy check" ||
          $path == "bgpctl policy rehearse" || $path == "bgpctl policy apply" ]] && [[ $cur != -* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_bgpctl_opts[$path]}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "${_bgpctl_words[$path]}" -- "$cur"))
    fi
}
complete -F _bgpctl bgpctl
""")


def _completion_cmd(c: Any, args: argparse.Namespace, out: IO[str]) -> None:
    out.write(completion_script(args.shell))


#: state changes ``show neighbor`` prints (``show history`` prints every kept one)
NEIGHBOR_EVENTS = 10


def _history(h: Any, out: IO[str], last: int = 0) -> None:
    events = list(h.events)[-last:] if last else list(h.events)
    more = f" (last {len(events)} of {len(h.events)})" if len(events) < len(h.events) else ""
    out.write(f"  Session history{more}, {h.flaps} flaps:\n")
    if not events:
        out.write("    (no state change yet)\n")
    for e in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
        line = f"    {when}  {e.old_state} -> {e.new_state}: {e.reason}"
        out.write(line + "\n")


def _dump_cmd(c: Client, args: argparse.Namespace, out: IO[str]) -> None:
    import os

    table = args.table or ("adj-rib-in" if args.peer else "loc-rib")
    r = c.monitor.DumpRib(monitor_pb2.DumpRibRequest(
        file=os.path.abspath(args.file), table=table, peer=args.peer,
        compression=args.compression), timeout=DUMP_TIMEOUT)
    if args.json:
        out.write(_json(r) + "\n")
    else:
        out.write(f"{r.file}: {table}, {r.prefixes} prefixes, {r.peers} peer"
                  f"{'s' if r.peers != 1 else ''} in the index, {r.bytes} octets in {r.seconds:.1f}s\n")


#: seconds for a DumpRib call: a full table takes tens of seconds
DUMP_TIMEOUT = 600.0

_COMMANDS = {"show": _show, "neighbor": _neighbor_cmd, "route": _route_cmd, "watch": _watch,
             "policy": _policy_cmd, "config": _config_cmd}
_COMMANDS["dump"] = _dump_cmd
_COMMANDS["rpki"] = _rpki_cmd
_COMMANDS["completion"] = _completion_cmd


def default_target(env: Mapping[str, str] | None = None,
                   exists: Callable[[str], bool] = os.path.exists) -> str:
    """Where bgpctl connects without --socket / --target: $BGPD_SOCKET (a path, or
    unix:PATH), else the packaged service's socket if there is one, else the default socket."""
    value = (os.environ if env is None else env).get(SOCKET_ENV, "")
    if not value:
        return f"unix:{PACKAGE_SOCKET}" if exists(PACKAGE_SOCKET) else DEFAULT_API_LISTEN
    return value if value.startswith("unix:") else f"unix:{value}"


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None, err: IO[str] | None = None,
         env: Mapping[str, str] | None = None) -> int:
    """Run one bgpctl command; returns the exit code.  ``env``: the environment (os.environ)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except CliError as e:
        err.write(f"{e}\n")
        return e.code
    target = f"unix:{args.socket}" if args.socket else (args.target or default_target(env))
    client = Client(target)
    try:
        _COMMANDS[args.command](client, args, out)
    except CliError as e:
        err.write(f"{e}\n")
        return e.code
    except grpc.RpcError as e:
        code = e.code()
        if code is grpc.StatusCode.UNAVAILABLE:
            err.write(f"bgpctl: cannot reach bgpd at {target}: is it running, and is [api] enabled?\n")
            return EXIT_UNREACHABLE
        err.write(f"bgpctl: {code.name.lower().replace('_', ' ')}: {e.details()}\n")
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
