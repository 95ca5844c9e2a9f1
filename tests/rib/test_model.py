"""Model-based test of the RIB: seeded random interleavings against a reference model.

Several peers (eBGP and iBGP; two sharing an update group, others alone; one
receiving with ADD-PATH and one sending with it, RFC 7911; a route reflector
client, RFC 4456) and this speaker's own routes announce, withdraw, go down (gracefully or not,
RFC 4724 section 4.2), come back, send End-of-RIB, BoRR and EoRR (RFC 7313), ask for ROUTE-REFRESH
(RFC 2918) and stop reading for a while, with MRAI > 0 (RFC 4271 9.2.1.1) and
a small chunk size, time through ``task.Clock``.  After every step, once the
RIB has settled, the Loc-RIB best path of every prefix, every peer's view
(the UPDATEs its sink received, replayed), its Adj-RIB-Out and its
accepted-prefix count as last reported (max-prefix) are compared
with a reference model: the decision process on a dict, and the export rules
of RFC 4271 5.1 / 9.2 for the cases generated here.
"""

from __future__ import annotations

import random
import socket

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.policy import registry
from bgpd.rib import LOCAL, Rib, RibOptions
from bgpd.rib.testing import IPV4, FakeSink, make_peer, pfx
from bgpd.wire.attributes import AttributeCache, PathAttributes
from bgpd.wire.constants import MsgType
from bgpd.wire.message import Framer
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.update import Update, decode_update

LOCAL_AS = 65000
ROUTER_ID = "192.0.2.1"
DEFAULT_LP = 100
STALE_TIME = 1000.0
REFRESH, RESTART = 1, 2
#: Settling never waits for a call further away than this (the restart timer is).
HORIZON = 5.0

PREFIXES = [pfx(f"10.{i}.0.0/16") for i in range(10)]

#: "pass" exports what accept-all does, but as a policy that is called per
#: prefix; "drop-first" does not export PREFIXES[0].  Switching a peer
#: between them splits its update group or replaces its chain mid-flight.
POLICIES = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[sets.prefix.elsewhere]
prefixes = ["203.0.113.0/24"]

[policies.pass]
default = "accept"
[[policies.pass.terms]]
name = "elsewhere"
match = { prefix_set = "elsewhere" }
action = "reject"

[sets.prefix.first]
prefixes = ["10.0.0.0/16"]

[policies.drop-first]
default = "accept"
[[policies.drop-first.terms]]
name = "first"
match = { prefix_set = "first" }
action = "reject"
"""


def _policies() -> dict:
    config = parse_config(POLICIES)
    return registry(config.sets, config.policies)


class ModelPeer:
    """One neighbor as the model sees it, and its current session's sink."""

    def __init__(self, name: str, info, addpath_tx: bool = False, addpath_rx: bool = False) -> None:
        self.name = name
        self.info = info
        self.addpath_tx = addpath_tx
        self.addpath_rx = addpath_rx
        self.local = info is LOCAL
        self.up = self.local
        self.sink: FakeSink | None = None
        self.replay: Replay | None = None
        self.paused = False
        #: Its export chain is "drop-first" (see POLICIES).
        self.drop_first = False
        #: (path id, prefix) -> (attributes, stale) as the RIB should hold it;
        #: stale is 0, REFRESH (after BoRR) or RESTART (graceful restart)
        self.adj_in: dict = {}
        #: Went down gracefully with routes: its End-of-RIB sweeps the stale ones.
        self.gr_stale = False
        #: When its restart timer (RFC 4724 4.2) runs out, or None.
        self.deadline: float | None = None

    @property
    def ibgp(self) -> bool:
        return self.info.ibgp

    def negotiated(self) -> Negotiated:
        tx = frozenset({IPV4}) if self.addpath_tx else frozenset()
        rx = frozenset({IPV4}) if self.addpath_rx else frozenset()
        return Negotiated(ibgp=self.ibgp, peer_as=self.info.remote_as, addpath_tx=tx, addpath_rx=rx)

    def view_neg(self) -> Negotiated:
        rx = frozenset({IPV4}) if self.addpath_tx else frozenset()
        return Negotiated(ibgp=True, addpath_rx=rx)


class Replay:
    """A sink's IPv4 unicast view, replayed incrementally (FakeSink.routes, without
    decoding everything again at every check)."""

    def __init__(self, sink: FakeSink, neg: Negotiated) -> None:
        self.sink = sink
        self.neg = neg
        self.framer = Framer(neg.max_message_len)
        self.cache = AttributeCache()
        self.seen = 0
        self.view: dict = {}

    def routes(self) -> dict:
        msgs = self.sink.messages
        view = self.view
        for msg in msgs[self.seen:]:
            for msg_type, body in self.framer.feed(msg):
                assert msg_type == MsgType.UPDATE, msg_type
                u = decode_update(body, self.neg, self.cache)
                if u.end_of_rib is not None:
                    continue
                for p in u.withdrawn:
                    view.pop(p, None)
                for p in u.nlri:
                    view[p] = u.attributes
        self.seen = len(msgs)
        return view


def _peers() -> list[ModelPeer]:
    return [
        # E1 and E2: one update group (same local address, eBGP, same options).
        ModelPeer("E1", make_peer("192.0.2.2", 65001, local_address="192.0.2.1")),
        ModelPeer("E2", make_peer("192.0.2.3", 65002, local_address="192.0.2.1")),
        # E3: another link, so another group; it sends us several paths (ADD-PATH).
        ModelPeer("E3", make_peer("198.51.100.2", 65003, local_address="198.51.100.1"), addpath_rx=True),
        # I1 and I2: one iBGP group; I3 gets every path (ADD-PATH), its own
        # group; I4 is a route reflector client, its own group too.
        ModelPeer("I1", make_peer("192.0.2.10", LOCAL_AS, local_address="192.0.2.1")),
        ModelPeer("I2", make_peer("192.0.2.11", LOCAL_AS, local_address="192.0.2.1")),
        ModelPeer("I3", make_peer("192.0.2.12", LOCAL_AS, local_address="192.0.2.1"), addpath_tx=True),
        ModelPeer("I4", make_peer("192.0.2.13", LOCAL_AS, local_address="192.0.2.1",
                                  route_reflector_client=True)),
        # This speaker's own routes (config, API).
        ModelPeer("local", LOCAL),
    ]


def _rank(peer: ModelPeer, pid: int, a: PathAttributes, stale: bool) -> tuple:
    """The reference decision (RFC 4271 9.1.2) for the attributes generated here.

    No MED, no ORIGINATOR_ID, one AS_SEQUENCE: a total order.  Stale paths
    (RFC 4724 4.2) lose to fresh ones.
    """
    lp = a.local_pref if a.local_pref is not None else DEFAULT_LP
    length = sum(len(s) for _t, s in a.as_path)
    rid = int.from_bytes(socket.inet_aton(peer.info.router_id), "big")
    addr = b"" if peer.local else socket.inet_aton(peer.info.address)
    return (stale == RESTART, -lp, not peer.local, length, a.origin, peer.ibgp, rid, addr, pid)


class Model:
    """The reference: per-peer Adj-RIB-In dicts, decision by sorting, export rules."""

    def __init__(self, peers: list[ModelPeer]) -> None:
        self.peers = peers

    def candidates(self, p: bytes) -> list[tuple[ModelPeer, PathAttributes, bool]]:
        cands = [(mp, pid, *v) for mp in self.peers for (pid, q), v in mp.adj_in.items() if q == p]
        cands.sort(key=lambda c: _rank(*c))
        return [(mp, a, stale) for mp, _pid, a, stale in cands]

    def best(self, p: bytes):
        cands = self.candidates(p)
        return cands[0] if cands else None

    def export(self, src: ModelPeer, a: PathAttributes, to: ModelPeer) -> PathAttributes | None:
        if src is to:
            return None  # split horizon
        if to.ibgp:
            lp = DEFAULT_LP if a.local_pref is None else a.local_pref
            if src.ibgp and not src.local:
                rr = src.info.route_reflector_client or to.info.route_reflector_client
                if not rr:
                    return None  # RFC 4271 9.2: no iBGP -> iBGP without reflection
                # RFC 4456 8: reflected with ORIGINATOR_ID and our CLUSTER_ID.
                return a.replace(local_pref=lp, originator_id=src.info.router_id,
                                 cluster_list=(ROUTER_ID,))
            return a.replace(local_pref=lp)
        seg = ((2, (LOCAL_AS,) + a.as_path[0][1]),) if a.as_path else ((2, (LOCAL_AS,)),)
        return a.replace(as_path=seg, next_hop=to.info.local_address, med=None, local_pref=None)

    def view(self, to: ModelPeer) -> dict:
        """What ``to`` should hold: prefix -> attributes, or with ADD-PATH prefix -> sorted attributes."""
        out: dict = {}
        for p in PREFIXES:
            if to.drop_first and p == PREFIXES[0]:
                continue
            if to.addpath_tx:
                got = [self.export(src, a, to) for src, a, _s in self.candidates(p)]
                got = sorted((x for x in got if x is not None), key=repr)
                if got:
                    out[p] = got
                continue
            b = self.best(p)
            if b is None:
                continue
            x = self.export(b[0], b[1], to)
            if x is not None:
                out[p] = x
        return out


def _by_prefix(view: dict, addpath: bool) -> dict:
    if not addpath:
        return view
    res: dict = {}
    for (_pid, p), a in view.items():
        res.setdefault(p, []).append(a)
    return {p: sorted(v, key=repr) for p, v in res.items()}


class Scenario:
    """One seeded run: a Rib on a Clock, the peers, the model, and the step generator."""

    def __init__(self, test: SynchronousTestCase, seed: int, options: RibOptions) -> None:
        self.test = test
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = Clock()
        self.rib = Rib(ROUTER_ID, LOCAL_AS, options=options, call_later=self.clock.callLater,
                       policies=_policies())
        self.peers = _peers()
        self.model = Model(self.peers)
        self.log: list[str] = []
        #: address -> accepted count last reported by the RIB (max-prefix)
        self.counts: dict[str, int] = {}
        self.rib.watch_prefix_counts(self.count_reported)

    def count_reported(self, info, family, count: int) -> None:
        self.test.assertEqual(family, IPV4)
        self.counts[info.address] = count

    # -- steps ----------------------------------------------------------------

    def attrs_for(self, mp: ModelPeer) -> PathAttributes:
        rng = self.rng
        if mp.local:
            return PathAttributes(as_path=(), next_hop=ROUTER_ID, local_pref=rng.choice((None, 50)))
        if mp.ibgp:
            path = tuple(rng.choice((64600, 64601, 64602)) for _ in range(rng.randint(1, 3)))
            lp = rng.choice((None, 50, 200))
        else:
            path = (mp.info.remote_as,) + tuple(64700 + i for i in range(rng.randint(0, 2)))
            lp = None
        return PathAttributes(as_path=((2, path),), next_hop=mp.info.address, local_pref=lp)

    def up(self, mp: ModelPeer) -> str:
        self.counts.pop(mp.info.address, None)
        mp.sink = FakeSink()
        mp.replay = Replay(mp.sink, mp.view_neg())
        mp.paused = False
        mp.drop_first = False
        mp.up = True
        # The new OPEN's graceful restart capability: forwarding state kept
        # for IPv4, not kept, or no capability at all (RFC 4724 4.2).
        restarting = self.rng.choice((frozenset({IPV4}), frozenset(), None))
        self.rib.add_peer(mp.info, (IPV4,), mp.negotiated(), mp.sink, restarting=restarting)
        if mp.gr_stale and (restarting is None or IPV4 not in restarting):
            mp.adj_in = {p: v for p, v in mp.adj_in.items() if not v[1]}
            mp.gr_stale = False
        if not mp.gr_stale:
            mp.deadline = None  # nothing stale left: the restart timer stops
        return "kept" if restarting else "flushed"

    def down(self, mp: ModelPeer, graceful: bool) -> None:
        mp.up = False
        mp.sink = None
        self.rib.remove_peer(mp.info, graceful=graceful, stale_time=STALE_TIME)
        if graceful:
            mp.adj_in = {k: (a, RESTART) for k, (a, _s) in mp.adj_in.items()}
            mp.gr_stale = bool(mp.adj_in)
            mp.deadline = self.clock.seconds() + STALE_TIME
        else:
            mp.adj_in = {}
            mp.gr_stale = False
            mp.deadline = None

    def expire_due(self) -> None:
        """Apply every restart timer that has run out (RFC 4724 4.2)."""
        now = self.clock.seconds()
        for mp in self.peers:
            if mp.deadline is None or mp.deadline > now:
                continue
            mp.deadline = None
            if not mp.up:
                mp.adj_in = {}  # still away: everything it had goes
            elif mp.gr_stale:
                mp.adj_in = {p: v for p, v in mp.adj_in.items() if not v[1]}
            mp.gr_stale = False

    def keys_for(self, mp: ModelPeer, prefixes: list) -> list:
        """Model keys; with ADD-PATH receive a path id (1 or 2) for each."""
        pid = self.rng.choice((1, 2)) if mp.addpath_rx else 0
        return [(pid, p) for p in prefixes]

    def local_step(self, mp: ModelPeer) -> None:
        p = self.rng.choice(PREFIXES)
        if self.rng.random() < 0.6:
            a = self.attrs_for(mp)
            self.log.append(f"originate {p!r} {a!r}")
            self.rib.originate(IPV4, p, a)
            mp.adj_in[(0, p)] = (a, False)
        else:
            self.log.append(f"withdraw originated {p!r}")
            self.rib.withdraw_originated(IPV4, p)
            mp.adj_in.pop((0, p), None)

    def step(self) -> None:
        rng = self.rng
        mp = rng.choice(self.peers)
        if mp.local:
            self.local_step(mp)
            return
        if not mp.up:
            self.log.append(f"up {mp.name} stale {self.up(mp)}")
            return
        r = rng.random()
        if r < 0.40:
            keys = self.keys_for(mp, rng.sample(PREFIXES, rng.randint(1, 5)))
            a = self.attrs_for(mp)
            self.log.append(f"announce {mp.name} {keys} {a!r}")
            nlri = keys if mp.addpath_rx else [p for _pid, p in keys]
            self.rib.receive(mp.info, Update(attributes=a, nlri=nlri))
            for k in keys:
                mp.adj_in[k] = (a, False)
        elif r < 0.55:
            keys = self.keys_for(mp, rng.sample(PREFIXES, rng.randint(1, 4)))
            self.log.append(f"withdraw {mp.name} {keys}")
            self.rib.receive(mp.info, Update(withdrawn=keys if mp.addpath_rx else [p for _pid, p in keys]))
            for k in keys:
                mp.adj_in.pop(k, None)
        elif r < 0.62:
            graceful = rng.random() < 0.5
            self.log.append(f"down {mp.name} graceful={graceful}")
            self.down(mp, graceful)
        elif r < 0.72:
            self.log.append(f"end-of-rib {mp.name}")
            self.rib.end_of_rib(mp.info, IPV4)
            if mp.gr_stale:
                mp.adj_in = {p: v for p, v in mp.adj_in.items() if not v[1]}
                mp.gr_stale = False
                mp.deadline = None
        elif r < 0.735:
            self.log.append(f"BoRR {mp.name}")
            self.rib.begin_refresh(mp.info, IPV4)
            mp.adj_in = {p: (a, s or REFRESH) for p, (a, s) in mp.adj_in.items()}
        elif r < 0.75:
            self.log.append(f"EoRR {mp.name}")
            self.rib.end_refresh(mp.info, IPV4)
            mp.adj_in = {p: v for p, v in mp.adj_in.items() if not v[1]}
        elif r < 0.77:
            self.log.append(f"route-refresh {mp.name}")
            self.rib.refresh_out(mp.info, IPV4)
        elif r < 0.87:
            if mp.paused:
                self.log.append(f"resume {mp.name}")
                mp.paused = False
                mp.sink.is_writable = True
                self.rib.resume(mp.info)
            else:
                self.log.append(f"pause {mp.name}")
                mp.paused = True
                mp.sink.is_writable = False
        elif r < 0.89:
            # Same export, another chain: the group splits or its chain is
            # replaced, with changes waiting (RFC 4271 9.1.3).
            names = rng.choice((["pass"], ["accept-all"], ["drop-first"]))
            self.log.append(f"export policy {mp.name} {names}")
            self.rib.set_export_policies({mp.info.address: names})
            mp.drop_first = names == ["drop-first"]
        elif r < 0.895:
            # A resolver that resolves everything: the groups' views stay.
            self.log.append("resolver: every next hop resolves")
            self.rib.set_resolver(lambda nh: True)
        elif r < 0.97:
            dt = rng.choice((0.0, 0.1, 0.3, 0.6))
            self.log.append(f"advance {dt}")
            self.clock.advance(dt)
        else:
            deadlines = [m.deadline for m in self.peers if m.deadline is not None]
            if deadlines:
                self.log.append("advance to the first restart timer")
                self.clock.advance(min(deadlines) - self.clock.seconds())

    # -- checks ---------------------------------------------------------------

    def settle(self) -> None:
        """Run the clock until nothing is due within HORIZON (bounded)."""
        for _ in range(5000):
            now = self.clock.seconds()
            due = [c.getTime() for c in self.clock.getDelayedCalls() if c.getTime() <= now + HORIZON]
            if not due:
                return
            self.clock.advance(max(0.0, min(due) - now))
            self.check_sent()
        self.fail("the RIB never settled")

    def check_sent(self) -> None:
        """Mid-flight (changes queued, MRAI running, other members behind):
        the Adj-RIB-Out of every member that reads and is not being sent a
        table (initial, refresh, catch-up) is exactly what it received.

        What a group sent is written down (``out``) or derived from the
        Loc-RIB and the waiting changes; either way it must match the wire.
        """
        for mp in self.peers:
            if not mp.up or mp.local or mp.paused:
                continue
            st = self.rib._peers.get(mp.info.address)
            if st is None or IPV4 not in st.members:
                continue
            m = st.members[IPV4][1]
            if m.dump is not None or m.eor_pending or m.behind or m.missed is not None:
                continue
            out = _by_prefix(self.rib.adj_rib_out(mp.info, IPV4), mp.addpath_tx)
            seen = _by_prefix(mp.replay.routes(), mp.addpath_tx)
            if seen != out:
                self.fail(f"mid-flight, sent to {mp.name} (replayed) != its Adj-RIB-Out: {_diff(seen, out)}")

    def fail(self, what: str) -> None:
        tail = "\n  ".join(self.log[-25:])
        self.test.fail(f"seed {self.seed}, step {len(self.log)}: {what}\nlast steps:\n  {tail}")

    def check(self) -> None:
        rib = self.rib
        model = self.model
        for p in PREFIXES:
            b = rib.best(IPV4, p)
            want = model.best(p)
            if want is not None and want[0].local:
                want = (LOCAL_MODEL, want[1], want[2])
            got = None if b is None else (b.peer.address, b.attrs, bool(b.stale))
            exp = None if want is None else (want[0].info.address, want[1], bool(want[2]))
            if got != exp:
                self.fail(f"Loc-RIB best for {p!r}: {got} != model {exp}")
        for mp in self.peers:
            if not mp.up or mp.local:
                continue
            count = self.counts.get(mp.info.address)
            if count is not None and count != len(mp.adj_in):
                self.fail(f"prefix count of {mp.name}: reported {count}, holds {len(mp.adj_in)}")
            want = model.view(mp)
            out = _by_prefix(rib.adj_rib_out(mp.info, IPV4), mp.addpath_tx)
            if out != want:
                self.fail(f"Adj-RIB-Out of {mp.name}: {_diff(out, want)}")
            if mp.paused:
                continue
            seen = _by_prefix(mp.sink.routes(IPV4, mp.view_neg()), mp.addpath_tx)
            if seen != want:
                self.fail(f"view of {mp.name} (replayed UPDATEs): {_diff(seen, want)}")

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()
            self.check_sent()
            self.settle()
            self.expire_due()
            self.check()
        # At the end every peer reads again and must converge exactly.
        for mp in self.peers:
            if mp.up and mp.paused and not mp.local:
                self.log.append(f"resume {mp.name}")
                mp.paused = False
                mp.sink.is_writable = True
                self.rib.resume(mp.info)
        self.settle()
        self.check()


class _LocalInfo:
    address = "local"


class _LocalModel:
    info = _LocalInfo()


LOCAL_MODEL = _LocalModel()


def _diff(got: dict, want: dict) -> str:
    lines = []
    for p in sorted(set(got) | set(want)):
        if got.get(p) != want.get(p):
            lines.append(f"{p!r}: got {got.get(p)!r} want {want.get(p)!r}")
    return "; ".join(lines[:4])


class RibModelTests(SynchronousTestCase):
    """Random interleavings from several peers against the reference model."""

    seeds = range(40)
    steps = 60

    def run_seeds(self, options: RibOptions) -> None:
        for seed in self.seeds:
            Scenario(self, seed, options).run(self.steps)

    def test_mrai_small_chunks(self):
        """MRAI on both kinds of group, chunks of 3 prefixes: RIB matches the model."""
        self.run_seeds(RibOptions(mrai_ebgp=0.5, mrai_ibgp=0.2, chunk_size=3))

    def test_no_mrai_one_prefix_chunks(self):
        """MRAI 0 and one prefix per turn: RIB matches the model."""
        self.run_seeds(RibOptions(mrai_ebgp=0.0, mrai_ibgp=0.0, chunk_size=1))

    def test_large_chunks(self):
        """Chunks larger than any batch (the full-table fast paths): RIB matches the model."""
        self.run_seeds(RibOptions(mrai_ebgp=0.3, mrai_ibgp=0.0, chunk_size=2000))
