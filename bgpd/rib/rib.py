"""Adj-RIB-In, Loc-RIB and the import side (RFC 4271 sections 3.2, 9.1, 9.1.1).

``Rib.receive`` takes decoded UPDATEs; the work is queued and done in chunks
of ``options.chunk_size`` prefixes per reactor turn (``call_later(0, ...)``),
so a full table arriving at once never holds up keepalives.  Per UPDATE, and
not per prefix, the ingress checks run once:

- RFC 7606: an UPDATE marked treat-as-withdraw withdraws what it announces;
- RFC 4271 9.1.2 / 9.3: AS_PATH loops (our AS, tolerating ``allowas_in``);
- RFC 4456 section 8: ORIGINATOR_ID equal to our router id, or our
  CLUSTER_ID in CLUSTER_LIST, on iBGP;
- RFC 9234 section 5 (ingress): OTC from a customer or RS client, or from a
  peer with another AS, is a leak; from a provider, peer or route server
  OTC is added (the peer's AS) when absent;

then the import policy (per prefix, unless it accepts or rejects all), the
Adj-RIB-In of the peer, and the decision process (:mod:`bgpd.rib.decision`)
for exactly the prefixes touched.  Loc-RIB changes go to the update groups
(:mod:`bgpd.rib.adjout`) and to subscribers, in batches.

Graceful restart, receiving speaker side (RFC 4724 section 4.2): when a peer
that restarts goes down its routes stay, marked stale, until its End-of-RIB
for the family or the restart timer, then those still stale are withdrawn.

Memory: a prefix is one wire-form ``bytes`` key shared by every table; the
Loc-RIB maps it to an interned path (or a tuple of candidates, best first,
when there are several), and each update group's Adj-RIB-Out to one shared
exported route.  A peer's post-policy Adj-RIB-In has no table of its own
where the peer sends no ADD-PATH identifiers (RFC 7911): it has one
candidate per prefix at most, so its entry for a prefix is the candidate it
owns in the Loc-RIB entry.  Its size is a counter per (peer, family), kept
exact at every step, and what has to look at all its routes (a session
drop, graceful restart's stale marks and sweeps, enhanced route refresh,
RPKI revalidation) scans a snapshot of the Loc-RIB's keys in chunks, like
any other queued work.  Only a family received with ADD-PATH, where a peer
has several paths per prefix, keeps a (path id, prefix) -> path table.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from bgpd.policy import BUILTIN, Chain, Policy, chain
from bgpd.policy.explain import RehearsalResult
from bgpd.policy.explain import rehearse as rehearse_chains
from bgpd.rib import decision
from bgpd.rib.adjout import Member, Sink, UpdateGroup, group_key
from bgpd.rib.change import Change
from bgpd.rib.options import RibOptions
from bgpd.rib.route import LOCAL, STALE_REFRESH, STALE_RESTART, Path, PeerInfo
from bgpd.rib.tap import AdjInTap, AdjInView
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.constants import IPV4_UNICAST, Role
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.update import Update

__all__ = ["Rib", "RibOptions", "RibStats", "Change", "EndOfRibCallback", "PrefixCountCallback"]

Family = tuple[int, int]
#: ``callback(peer, family, count)``: the routes now accepted from ``peer`` in
#: ``family`` (its Adj-RIB-In after import policy), once per processed batch
#: that changed it (max-prefix, RFC 4486; the API; monitoring).
PrefixCountCallback = Callable[[PeerInfo, Family, int], None]
#: ``callback(peer, family, families)``: ``peer``'s End-of-RIB for ``family``
#: (RFC 4724 section 2) has been processed, after the changes of every route
#: it sent before it were published; ``families``: all it negotiated.  What
#: the kernel writer waits for before it removes what an earlier run left.
EndOfRibCallback = Callable[[PeerInfo, Family, frozenset], None]
#: ``callback(full)``: the work queue reached ``RibOptions.backlog_high``
#: items (True) or went down to a quarter of it again (False); see
#: :meth:`Rib.watch_backlog`.
BacklogCallback = Callable[[bool], None]

(_ANNOUNCE, _WITHDRAW, _EOR, _DROP, _STALE, _GR_MARK, _RR_BEGIN, _RR_END, _REDECIDE,
 _GR_FLUSH, _NH_REDECIDE, _REVALIDATE) = range(12)
#: Loc-RIB entries looked at per unit of the turn's budget when searching
#: for the paths through a next hop (a dict lookup and a compare each).
_NH_SCAN = 16
_EMPTY: dict = {}
_LEAK_ALWAYS = (Role.CUSTOMER, Role.RS_CLIENT)
_select = decision.select
_OTC_ADD = (Role.PROVIDER, Role.PEER, Role.RS)


@attrs.define
class RibStats:
    """Counters for the API and monitoring (and the chunking tests)."""

    turns: int = 0
    largest_turn: int = 0
    prefixes_in: int = 0
    rejected: int = 0
    loc_changes: int = 0
    #: How often the work queue reached ``backlog_high`` (sessions stopped
    #: being read until it went down again), and the longest queue a turn began with.
    backlog_full: int = 0
    largest_backlog: int = 0


class PeerState:
    """Everything the RIB keeps about one neighbor, across its sessions."""

    __slots__ = (
        "info", "families", "neg", "sink", "import_policy", "export_policy", "accepted", "adj_in", "pre",
        "intern", "gen", "up", "addpath_rx", "stale_families", "stale_timer",
        "tx_ids", "soft", "members", "mrai", "rejected", "gr_pending", "counts",
        "refresh_stale", "held", "loops", "duplicates", "reimports",
    )

    def __init__(self, info: PeerInfo) -> None:
        self.info = info
        self.families: frozenset = frozenset()
        self.neg: Negotiated | None = None
        self.sink: Sink | None = None
        #: The chains, resolved at session up and replaced by set_import_policy /
        #: set_export_policies (a config reload) without a session reset.
        self.import_policy: Chain = chain(["accept-all"])
        self.export_policy: Chain = chain(["accept-all"])
        #: family -> its post-policy Adj-RIB-In size (accepted prefixes, or
        #: (path id, prefix) keys with ADD-PATH); a family is a key while
        #: the peer exchanges it.  Without ADD-PATH the entries themselves
        #: are the peer's candidates in the Loc-RIB (see the module docstring).
        self.accepted: dict[Family, int] = {}
        #: Only the families received with ADD-PATH (RFC 7911): (path id,
        #: prefix) -> path.
        self.adj_in: dict[Family, dict] = {}
        self.pre: dict[Family, dict] | None = None
        #: attribute set (or (path id, attribute set)) -> the one live Path
        #: of this peer with it; a path leaves when its last prefix does
        #: (``Path.refs``, :meth:`Rib._release`).
        self.intern: dict = {}
        self.gen = 0
        self.up = False
        self.addpath_rx: frozenset = frozenset()
        self.stale_families: set = set()
        self.stale_timer: Any = None
        self.tx_ids: dict[int, int] = {}
        self.soft = False
        self.members: dict[Family, tuple[UpdateGroup, Member]] = {}
        self.mrai: float | None = None
        self.rejected = 0
        #: Went down gracefully: its routes are (being) marked stale (RFC 4724 4.2).
        self.gr_pending = False
        #: family -> accepted prefixes last reported to the count watchers
        self.counts: dict[Family, int] = {}
        #: Paths made stale by a BoRR (no longer in ``intern``), until EoRR.
        self.refresh_stale: list[Path] = []
        #: Only while the import chain reads an RPKI / ASPA state (``Chain.validated``):
        #: family -> key -> the attributes (after the ingress checks) of each
        #: route that chain rejected or rewrote, so that :meth:`Rib.revalidate`
        #: can run it again; a route it accepted unchanged is its Adj-RIB-In path.
        self.held: dict[Family, dict] = {}
        #: UPDATEs refused by the ingress loop checks: CLUSTER_LIST, AS_PATH,
        #: ORIGINATOR_ID (BMP Statistics types 3, 4, 5, RFC 7854 4.8).
        self.loops = [0, 0, 0]
        #: Known duplicate prefix advertisements and withdraws (BMP Statistics
        #: types 1 and 2): see Rib.duplicates.
        self.duplicates = [0, 0]
        #: The key lists reimport() queued and _announce has not finished: their
        #: unchanged routes are a policy re-run, not duplicate advertisements.
        self.reimports: list[list] = []

    @property
    def export_names(self) -> tuple[str, ...]:
        return self.export_policy.names

    def tx_path_id(self, rx_path_id: int) -> int:
        """A path id for ADD-PATH send, stable per (this peer, its path id) (RFC 7911 3)."""
        t = self.tx_ids.get(rx_path_id)
        if t is None:
            t = self.tx_ids[rx_path_id] = _next_tx_id()
        return t

    def __repr__(self) -> str:
        return f"<PeerState {self.info.address}>"


_tx_counter = [0]


def _next_tx_id() -> int:
    _tx_counter[0] += 1
    return _tx_counter[0]


def _first_of(first: dict[Family, dict] | None, fam: Family) -> dict | None:
    """The turn's prefix -> old best record of ``fam`` (made on first use), None when none is kept."""
    if first is None:
        return None
    ff = first.get(fam)
    if ff is None:
        ff = first[fam] = {}
    return ff


def _own(cur: Any, st: PeerState, pid: int) -> Path | None:
    """``st``'s candidate with path id ``pid`` in the Loc-RIB entry ``cur`` (None: it has none)."""
    if cur is None:
        return None
    if cur.__class__ is Path:
        return cur if cur.owner is st and cur.path_id == pid else None
    for c in cur:
        if c.owner is st and c.path_id == pid:
            return c
    return None


class Rib:
    """The routing information bases of one speaker, and what feeds them.

    ``call_later(delay, fn) -> handle`` (``handle.cancel()``) is injected: the
    service passes ``reactor.callLater``, tests ``task.Clock().callLater``.
    """

    def __init__(
        self,
        router_id: str,
        local_as: int,
        cluster_id: str | None = None,
        options: RibOptions | None = None,
        call_later: Callable[..., Any] | None = None,
        policies: dict[str, Policy] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.router_id = router_id
        self.local_as = local_as
        self.cluster_id = cluster_id or router_id
        self.options = options or RibOptions()
        self._resolver = self.options.resolver
        if call_later is None:
            raise TypeError("Rib needs call_later (reactor.callLater or Clock().callLater)")
        #: ``clock() -> seconds`` (reactor.seconds): read once per processing
        #: turn into ``now`` (whole seconds), each new Path's ``since``; None:
        #: paths have no time
        self._clock = clock
        self.now = 0.0
        #: ``call_later(delay, fn, *args) -> handle``; update groups use it too.
        self.call_later = call_later
        self.policies: dict[str, Policy] = dict(BUILTIN) if policies is None else dict(policies)
        self._loc: dict[Family, dict] = {}
        self._peers: dict[str, PeerState] = {}
        self._local = PeerState(LOCAL)
        self._local.up = True
        self._groups: dict[tuple, UpdateGroup] = {}
        self._groups_by_family: dict[Family, list[UpdateGroup]] = {}
        self._work: deque = deque()
        self._handle: Any = None
        self._subscribers: list[Callable[[list[Change]], None]] = []
        self._count_watchers: list[PrefixCountCallback] = []
        #: peer address -> callbacks of watch_adj_rib_in
        self._adj_watchers: dict[str, list[Callable[[Family, list], None]]] = {}
        self._eor_watchers: list[EndOfRibCallback] = []
        self._backlog_watchers: list[BacklogCallback] = []
        #: The work queue is over ``backlog_high`` (and not yet down to a quarter of it).
        self.backlogged = False
        self._backlog_high = self.options.backlog_high
        #: family -> prefix -> the multipath set last published, only where it
        #: has more than one path (max_paths > 1): what a change of the set
        #: with the same best path is compared against.
        self._published_mp: dict[Family, dict[bytes, tuple[Path, ...]]] = {}
        self.stats = RibStats()
        #: Who sees post-policy Adj-RIB-In changes (BMP), or None.
        self._adj_tap: AdjInTap | None = None

    # -- session-facing API --------------------------------------------------

    def add_peer(
        self,
        peer: PeerInfo,
        families: Iterable[Family],
        negotiated: Negotiated,
        sink: Sink,
        import_policy: Iterable[str] = ("accept-all",),
        export_policy: Iterable[str] = ("accept-all",),
        soft_reconfiguration: bool = False,
        mrai: float | None = None,
        restarting: Iterable[Family] | None = None,
    ) -> None:
        """The session with ``peer`` is Established for ``families``.

        ``restarting`` is what the new OPEN's graceful restart capability
        says (RFC 4724 section 4.2): the families whose forwarding state the
        peer kept (F bit set), or None when it sent no such capability.  The
        stale routes of every other family are withdrawn at once; those of
        the listed families stay until its End-of-RIB or the restart timer.

        ``sink`` (:class:`~bgpd.rib.adjout.Sink`) receives framed UPDATEs;
        while its ``writable()`` is False the peer's update groups go on
        without it, and :meth:`resume` (call it when it turns True) catches
        it up from the Adj-RIB-Out.  Policy names are looked
        up in ``self.policies`` (KeyError for an unknown one).
        """
        st = self._peers.get(peer.address)
        if st is not None and st.up:
            self.remove_peer(st.info, graceful=False)
            st = None
        if st is None:
            st = self._peers[peer.address] = PeerState(peer)
        st.info = peer
        st.families = frozenset(families)
        st.neg = negotiated
        st.sink = sink
        st.import_policy = chain(import_policy, self.policies)
        export = st.export_policy = chain(export_policy, self.policies)
        old_rx = st.addpath_rx
        st.addpath_rx = negotiated.addpath_rx
        st.soft = soft_reconfiguration
        if soft_reconfiguration and st.pre is None:
            st.pre = {}
        st.mrai = mrai
        st.up = True
        # A new session: report its counts afresh.
        st.counts = {}
        if st.gr_pending:
            # After _GR_MARK (queued when it went down), so in queue order.
            keep = frozenset() if restarting is None else frozenset(restarting) & st.families
            self._queue([_GR_FLUSH, st, st.gen, None, (keep, old_rx), None, 0])
        for fam in st.families:
            st.accepted.setdefault(fam, 0)
            if fam in st.addpath_rx:
                st.adj_in.setdefault(fam, {})
            if st.pre is not None:
                st.pre.setdefault(fam, {})
        for fam in st.families:
            key, m = self._group_key(st, fam, export)
            g = self._groups.get(key)
            if g is None:
                g = self._groups[key] = UpdateGroup(self, key, fam, peer, negotiated, export, m)
                self._groups_by_family.setdefault(fam, []).append(g)
            member = Member(st, sink)
            st.members[fam] = (g, member)
            g.join(member, self._loc.get(fam, {}))

    def _group_key(self, st: PeerState, fam: Family, export: Chain) -> tuple[tuple, float]:
        """The update group key of ``st`` for ``fam`` with ``export``, and its MRAI."""
        opts = self.options
        m = st.mrai if st.mrai is not None else (opts.mrai_ibgp if st.info.ibgp else opts.mrai_ebgp)
        assert st.neg is not None
        return group_key(st.info, fam, st.neg, export.names, m, export.depends_on_peer), m

    def remove_peer(self, peer: PeerInfo, graceful: bool = False, stale_time: float = 0.0) -> None:
        """The session went down: withdraw its routes everywhere, or keep them stale.

        ``graceful`` (RFC 4724 4.2): keep the routes, marked stale, until the
        peer's End-of-RIB per family or ``stale_time`` seconds.
        """
        st = self._peers.get(peer.address)
        if st is None:
            return
        self._leave_groups(st)
        st.up = False
        st.sink = None
        # Rejected routes are not kept across sessions; stale ones are never revalidated.
        st.held = {}
        if graceful and stale_time > 0:
            st.gr_pending = True
            self._queue([_GR_MARK, st, st.gen, None, None, None, 0])
            if st.stale_timer is not None:
                st.stale_timer.cancel()
            st.stale_timer = self.call_later(stale_time, self._stale_expired, st)
            return
        self._drop_all(st)

    def receive(self, peer: PeerInfo, update: Update) -> None:
        """One decoded UPDATE from ``peer``; processed in chunks (see :meth:`drain`)."""
        st = self._peers.get(peer.address)
        if st is not None and st.up:
            self._receive(st, update)

    def receive_many(self, peer: PeerInfo, updates: list[Update]) -> None:
        """Decoded UPDATEs from ``peer``, in order (one read's run: one lookup for all)."""
        st = self._peers.get(peer.address)
        if st is not None and st.up:
            for update in updates:
                self._receive(st, update)

    def _receive(self, st: PeerState, update: Update) -> None:
        fams = st.families
        gen = st.gen
        eor = update.end_of_rib
        if eor is not None:
            if eor in fams:
                self._queue([_EOR, st, gen, eor, None, None, 0])
            return
        taw = update.treat_as_withdraw
        q = self._queue
        if update.withdrawn and IPV4_UNICAST in fams:
            q([_WITHDRAW, st, gen, IPV4_UNICAST, None, update.withdrawn, 0])
        u = update.mp_unreach
        if u is not None and u.withdrawn and (u.afi, u.safi) in fams:
            q([_WITHDRAW, st, gen, (u.afi, u.safi), None, u.withdrawn, 0])
        if update.nlri and IPV4_UNICAST in fams:
            if taw or update.attributes is None:
                q([_WITHDRAW, st, gen, IPV4_UNICAST, None, update.nlri, 0])
            else:
                q([_ANNOUNCE, st, gen, IPV4_UNICAST, update.attributes, update.nlri, 0])
        r = update.mp_reach
        if r is not None and r.nlri and (r.afi, r.safi) in fams:
            fam = (r.afi, r.safi)
            if taw or r.attributes is None:
                q([_WITHDRAW, st, gen, fam, None, r.nlri, 0])
            else:
                q([_ANNOUNCE, st, gen, fam, r.attributes, r.nlri, 0])

    def end_of_rib(self, peer: PeerInfo, family: Family) -> None:
        """End-of-RIB from ``peer`` for ``family`` (RFC 4724 section 2)."""
        st = self._peers.get(peer.address)
        if st is not None and st.up:
            self._queue([_EOR, st, st.gen, family, None, None, 0])

    def resume(self, peer: PeerInfo) -> None:
        """The peer's sink is writable again: let its update groups go on."""
        st = self._peers.get(peer.address)
        if st is None:
            return
        for g, m in st.members.values():
            g.resume(m)

    def refresh_out(self, peer: PeerInfo, family: Family, enhanced: bool = False) -> None:
        """Send ``peer`` its whole Adj-RIB-Out for ``family`` again (ROUTE-REFRESH).

        ``enhanced`` (RFC 7313): the re-advertisement is framed by BoRR and
        EoRR instead of ending with End-of-RIB.
        """
        st = self._peers.get(peer.address)
        if st is not None and family in st.members:
            g, m = st.members[family]
            g.resend(m, enhanced)

    def begin_refresh(self, peer: PeerInfo, family: Family) -> None:
        """BoRR from ``peer`` (RFC 7313 section 4): its routes of ``family`` become stale."""
        st = self._peers.get(peer.address)
        if st is not None and st.up and family in st.families:
            self._queue([_RR_BEGIN, st, st.gen, family, None, None, 0])

    def end_refresh(self, peer: PeerInfo, family: Family) -> None:
        """EoRR from ``peer``: routes of ``family`` it did not re-advertise are withdrawn."""
        st = self._peers.get(peer.address)
        if st is not None and st.up and family in st.families:
            self._queue([_RR_END, st, st.gen, family, None, None, 0])

    # -- policy changes (config reload, the API) ------------------------------

    def set_policies(self, policies: dict[str, Policy]) -> None:
        """The registry that policy names resolve in from now on (sessions coming up, changes).

        Chains already held are not touched: :meth:`set_import_policy`,
        :meth:`reimport` and :meth:`set_export_policies` swap them.
        """
        self.policies = dict(policies)

    def set_import_policy(self, peer: PeerInfo, import_policy: Iterable[str]) -> Chain:
        """Replace ``peer``'s import chain; routes processed from now on go through it.

        The routes already accepted stay as they are: :meth:`reimport` runs
        the new chain over the kept pre-policy Adj-RIB-In, or the caller asks
        the peer for a ROUTE-REFRESH (RFC 2918), whose routes meet this chain.
        KeyError (``UnknownPolicy``) for an unknown name, before anything changes.
        """
        st = self._peers.get(peer.address)
        new = chain(import_policy, self.policies)
        if st is not None:
            st.import_policy = new
            if not new.validated:
                st.held = {}
        return new

    def set_export_policies(self, changes: dict[str, Iterable[str]]) -> None:
        """Replace the export chains of the peers at these addresses, without a session reset.

        Each update group recomputes its Adj-RIB-Out with the new chain and
        sends only the differences (:meth:`UpdateGroup.replace_policy`).  A
        group whose members now want different chains (or a chain that reads
        the peer, ``depends_on_peer``) is split: the members that move take a
        copy of what was sent to them and get the difference from there.
        Every name is resolved before anything changes (KeyError for an
        unknown one).
        """
        chains: dict[PeerState, Chain] = {}
        for address, names in changes.items():
            ch = chain(names, self.policies)
            st = self._peers.get(address)
            if st is not None:
                chains[st] = ch
        for st, ch in chains.items():
            st.export_policy = ch
        for groups in list(self._groups_by_family.values()):
            for g in list(groups):
                if any(m.peer in chains for m in g.members):
                    self._regroup(g, chains)

    def _regroup(self, g: UpdateGroup, chains: dict[PeerState, Chain]) -> None:
        parts: dict[tuple, list[Member]] = {}
        for m in g.members:
            key, _mrai = self._group_key(m.peer, g.family, chains.get(m.peer, g.policy))
            parts.setdefault(key, []).append(m)
        # The members whose key is unchanged stay (nothing to copy); else the most.
        stay = g.key if g.key in parts else max(parts, key=lambda k: len(parts[k]))
        for key, members in parts.items():
            if key == stay:
                continue
            ng = g.split(members, key)
            self._groups.setdefault(key, ng)
            self._groups_by_family[g.family].append(ng)
            for m in members:
                m.peer.members[g.family] = (ng, m)
            new = next((chains[m.peer] for m in members if m.peer in chains), g.policy)
            if new is not ng.policy:
                ng.replace_policy(new)
        if stay != g.key:
            if self._groups.get(g.key) is g:
                del self._groups[g.key]
            g.key = stay
            self._groups.setdefault(stay, g)
        new = next((chains[m.peer] for m in parts[stay] if m.peer in chains), g.policy)
        if new is not g.policy:
            g.replace_policy(new)

    def rehearse(self, candidate: Callable[[PeerInfo, str], Chain]) -> dict[tuple[str, str], RehearsalResult]:
        """What the chains ``candidate(peer, "import" | "export")`` would change; nothing is touched.

        Keyed by ``(peer address, direction)`` (:func:`bgpd.policy.explain.rehearse`).
        Import is rehearsed over the pre-policy Adj-RIB-In, which only
        ``soft_reconfiguration_inbound`` keeps: without it the RIB no longer
        has the routes as received (nor those rejected), the result says
        ``complete=False`` and holds nothing, and applying such a change
        falls back to ROUTE-REFRESH.  Export is rehearsed over the best paths
        each peer's update group looks at, after the path-level rules.
        """
        peers = [st for st in self._peers.values() if st.up]

        def current(peer: PeerInfo, direction: str) -> Chain:
            st = self._peers[peer.address]
            return st.import_policy if direction == "import" else st.export_policy

        def routes() -> Iterable[tuple[PeerInfo, str, Family, bytes, PathAttributes]]:
            for st in peers:
                if st.pre is not None:
                    addpath = st.addpath_rx
                    for fam, table in st.pre.items():
                        for k, path in table.items():
                            yield st.info, "import", fam, k[1] if fam in addpath else k, path.attrs
                for fam, (g, _m) in st.members.items():
                    for p, entry in self._loc.get(fam, _EMPTY).items():
                        best = entry if entry.__class__ is Path else entry[0]
                        if best.owner is st or not self.eligible(best):
                            continue
                        a = g.pre_policy(best)
                        if a is not None:
                            yield st.info, "export", fam, p, a

        result = rehearse_chains(current, candidate, routes(),
                                 lambda peer, direction: direction == "import"
                                 and self._peers[peer.address].pre is None)
        for st in peers:
            if st.pre is None:
                result.setdefault((st.info.address, "import"),
                                  RehearsalResult(peer=st.info.address, direction="import", complete=False))
        return result

    def reimport(self, peer: PeerInfo, import_policy: Iterable[str] | None = None) -> None:
        """Run the import policy again over the pre-policy Adj-RIB-In (soft reconfiguration).

        ``import_policy``: the new chain's names (see :meth:`set_import_policy`).
        """
        st = self._peers.get(peer.address)
        if st is None or st.pre is None:
            raise ValueError(f"soft reconfiguration is not enabled for {peer.address}")
        if import_policy is not None:
            st.import_policy = chain(import_policy, self.policies)
        for fam, table in st.pre.items():
            by_attrs: dict = {}
            for key, path in table.items():
                by_attrs.setdefault(path.attrs, []).append(key)
            for a, keys in by_attrs.items():
                st.reimports.append(keys)
                self._queue([_ANNOUNCE, st, st.gen, fam, a, keys, 0])

    def revalidate(
        self, family: Family, select: Callable[[Iterable[bytes]], Iterable[bytes]] | None = None,
        paths: Callable[[PathAttributes], bool] | None = None,
    ) -> int:
        """RPKI / ASPA states changed: run the import chains that read them again, where it matters.

        For every up peer whose import chain reads a validation state
        (``Chain.validated``), the routes of ``family`` whose prefix is among
        ``select(prefixes)`` (the affected ones of those given; None: all)
        are queued, and when their turn comes those whose attributes pass
        ``paths`` (None: all) go through the chain again as if received
        again: from the attributes they arrived with (their Adj-RIB-In path
        when it accepted them unchanged, else the copy kept in ``held``), and
        the decision process runs for exactly those prefixes; no session is
        reset.  The work is chunked like any other (a drop of all RPKI data
        looks at every route, in turns of ``chunk_size``).  Stale routes
        (graceful restart, BoRR) are left alone: the peer is re-sending them.
        The chains' caches are emptied first (an ``aspa`` answer is cached
        per attribute set).  Returns the number of routes queued.
        """
        queued = 0
        cleared: set[int] = set()
        for st in list(self._peers.values()):
            policy = st.import_policy
            if not st.up or not policy.validated:
                continue
            for p in policy.policies:
                if id(p) not in cleared and getattr(p, "depends_on_validation", False):
                    cleared.add(id(p))
                    p.clear_cache()  # type: ignore[attr-defined]
            held = st.held.get(family) or _EMPTY
            if family in st.addpath_rx:
                adj = st.adj_in.get(family) or _EMPTY
                # A rejected route is in held only; a rewritten one in both.
                keys = list(adj) + [k for k in held if k not in adj]
                if select is not None and keys:
                    wanted = set(select({k[1] for k in keys}))
                    keys = [k for k in keys if k[1] in wanted]
                n = len(keys)
            else:
                # The Loc-RIB's keys (a superset of the peer's, skipped in
                # _revalidate_some where it has no route), and the rejected.
                loc = self._loc.get(family) or _EMPTY
                keys = list(loc) if st.accepted.get(family) else []
                rejected = [k for k in held if _own(loc.get(k), st, 0) is None]
                keys += [k for k in rejected if k not in loc]
                if select is not None and keys:
                    keys = [k for k in select(keys) if k in held or _own(loc.get(k), st, 0) is not None]
                    n = len(keys)
                else:
                    n = st.accepted.get(family, 0) + len(rejected)
            if n:
                self._queue([_REVALIDATE, st, st.gen, family, paths, keys, 0])
                queued += n
        return queued

    def _revalidate_some(
        self, st: PeerState, fam: Family, paths: Callable[[PathAttributes], bool] | None, keys: list,
        start: int, end: int, changed: list, first: dict | None,
    ) -> None:
        """Run ``st``'s import chain again for ``keys[start:end]``, from what they were received with."""
        addpath = fam in st.addpath_rx
        adj = st.adj_in.get(fam) or _EMPTY
        loc = self._loc.get(fam) or _EMPTY
        held = st.held.get(fam) or _EMPTY
        by_attrs: dict = {}
        for k in keys[start:end]:
            a = held.get(k)
            if a is None:
                path = adj.get(k) if addpath else _own(loc.get(k), st, 0)
                if path is None or path.stale:
                    continue  # withdrawn since, or waiting for the peer to send it again
                a = path.attrs
            if paths is not None and not paths(a):
                continue
            group = by_attrs.get(a)
            if group is None:
                group = by_attrs[a] = []
            group.append(k)
        for a, group in by_attrs.items():
            self._announce(st, fam, a, group, 0, len(group), changed, first)

    # -- originated routes ----------------------------------------------------

    def originate(self, family: Family, prefix: bytes, attributes: PathAttributes) -> None:
        """Announce a route of our own (config static routes, the API)."""
        self._local.accepted.setdefault(family, 0)
        self._queue([_ANNOUNCE, self._local, 0, family, attributes, [prefix], 0])

    def withdraw_originated(self, family: Family, prefix: bytes) -> None:
        self._local.accepted.setdefault(family, 0)
        self._queue([_WITHDRAW, self._local, 0, family, None, [prefix], 0])

    # -- next-hop resolution (RFC 4271 9.1.2.1) -------------------------------

    def set_resolver(self, resolver: Callable[[str | None], bool] | None) -> None:
        """Use ``resolver(next_hop) -> bool`` from now on (None: every next hop resolves).

        Paths already decided keep their rank until :meth:`redecide_next_hops`
        names their next hop.
        """
        for groups in self._groups_by_family.values():
            for g in groups:
                g.materialize()  # eligibility now changes what a group sends
        self.options = attrs.evolve(self.options, resolver=resolver)
        self._resolver = resolver

    def redecide_next_hops(self, old: dict[str, bool]) -> None:
        """The resolver's answer changed for these next hops: re-decide the paths through them.

        ``old``: next hop -> what the resolver answered before (so that the
        change records say what the best path was).  The Loc-RIB is searched
        in chunks, in queue order, like any other work.
        """
        if not old:
            return
        for fam, loc in self._loc.items():
            if loc:
                self._queue([_NH_REDECIDE, self._local, self._local.gen, fam, dict(old), list(loc), 0])

    # -- subscribers and queries --------------------------------------------

    def subscribe(self, callback: Callable[[list[Change]], None]) -> Callable[[], None]:
        """Call ``callback(changes)`` with each batch of :class:`Change` records; returns unsubscribe.

        A record per prefix whose best path or (``max_paths`` > 1) multipath
        set differs from before the turn; a prefix touched several times in
        one turn gives one record.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def watch_adj_rib_in(self, peer: PeerInfo,
                         callback: Callable[[Family, list], None]) -> Callable[[], None]:
        """Call ``callback(family, keys)`` after a turn touched these keys of ``peer``'s Adj-RIB-In.

        The keys (prefixes, or (path id, prefix) with ADD-PATH) of every
        item the turn worked on for that peer: announced, withdrawn, swept
        as stale, dropped.  Pre- and post-policy tables change at the same
        keys; the callback reads whichever it watches.  A key may be named
        when its path did not change (a stale sweep, a re-run of import
        policy names every key looked at).  One list per item, no per-prefix
        cost for peers nobody watches.  Returns a function that unsubscribes.
        """
        cbs = self._adj_watchers.setdefault(peer.address, [])
        cbs.append(callback)

        def unsubscribe() -> None:
            if callback in cbs:
                cbs.remove(callback)
            if not cbs and self._adj_watchers.get(peer.address) is cbs:
                del self._adj_watchers[peer.address]

        return unsubscribe

    def set_adj_in_tap(self, tap: AdjInTap | None) -> None:
        """Report post-policy Adj-RIB-In changes to ``tap`` (None: to nobody)."""
        self._adj_tap = tap

    @property
    def adj_in_tap(self) -> AdjInTap | None:
        return self._adj_tap

    def _tap_results(self, st: PeerState, fam: Family, chunk: list, results: list | None,
                     a: PathAttributes) -> None:
        """Report one policy run's results, grouped by the attributes each key ended with."""
        tap = self._adj_tap
        if tap is None or st is self._local:
            return
        if results is None:
            tap.adj_in_changed(st.info, fam, a, chunk)
            return
        groups: dict[int, tuple[PathAttributes | None, list]] = {}
        for k, r in zip(chunk, results, strict=True):
            g = groups.get(id(r))
            if g is None:
                g = groups[id(r)] = (r, [])
            g[1].append(k)
        for r, keys in groups.values():
            tap.adj_in_changed(st.info, fam, r, keys)

    def watch_prefix_counts(self, callback: PrefixCountCallback) -> Callable[[], None]:
        """Call ``callback(peer, family, count)`` when a batch changed a peer's accepted count.

        Counted as the batch goes (a counter per peer and family, read once
        per batch for each touched), never polled.  Returns a function that unsubscribes.
        """
        self._count_watchers.append(callback)

        def unsubscribe() -> None:
            if callback in self._count_watchers:
                self._count_watchers.remove(callback)

        return unsubscribe

    def watch_end_of_rib(self, callback: EndOfRibCallback) -> Callable[[], None]:
        """Call ``callback(peer, family, families)`` for each End-of-RIB processed; returns unsubscribe.

        Called after the turn's changes are published, so every route the
        peer sent before its End-of-RIB has reached the subscribers.
        """
        self._eor_watchers.append(callback)

        def unsubscribe() -> None:
            if callback in self._eor_watchers:
                self._eor_watchers.remove(callback)

        return unsubscribe

    def watch_backlog(self, callback: BacklogCallback) -> Callable[[], None]:
        """Call ``callback(True)`` when the work queue is full, ``callback(False)`` when it drained.

        Inbound flow control: every queued UPDATE holds its decoded
        attributes and prefixes until its turn, and peers can send faster
        than the decision process runs (a full table arrives in a few
        seconds).  The service stops reading the sessions while the queue
        holds ``RibOptions.backlog_high`` items or more, and reads them
        again once a quarter of that is left, so TCP holds the rest at the
        peer instead of this process.  Returns a function that unsubscribes.
        """
        self._backlog_watchers.append(callback)

        def unsubscribe() -> None:
            if callback in self._backlog_watchers:
                self._backlog_watchers.remove(callback)

        return unsubscribe

    def _backlog_changed(self, full: bool) -> None:
        self.backlogged = full
        if full:
            self.stats.backlog_full += 1
        for cb in list(self._backlog_watchers):
            cb(full)

    def loc_table(self, family: Family) -> dict:
        """The Loc-RIB of ``family``: prefix -> best path or tuple of candidates, best first.

        Read only: what update groups read their changes from.
        """
        return self._loc.get(family, _EMPTY)

    def eligible(self, path: Path) -> bool:
        r = self._resolver
        return r is None or bool(r(path.attrs.next_hop))

    def best(self, family: Family, prefix: bytes) -> Path | None:
        entry = self._loc.get(family, {}).get(prefix)
        if entry is None:
            return None
        b = entry if entry.__class__ is Path else entry[0]
        return b if self.eligible(b) else None

    def candidates(self, family: Family, prefix: bytes) -> tuple[Path, ...]:
        """Every accepted path for ``prefix``, best first."""
        entry = self._loc.get(family, {}).get(prefix)
        if entry is None:
            return ()
        return (entry,) if entry.__class__ is Path else entry

    def explain(self, family: Family, prefix: bytes) -> list[tuple[str, Path, Path]]:
        """Which decision step made the best path beat each other candidate."""
        return decision.explain(self.candidates(family, prefix), self.options)

    def multipath(self, family: Family, prefix: bytes) -> list[Path]:
        """The ECMP set for the kernel (just the best path unless ``max_paths`` > 1)."""
        return decision.multipath(self.candidates(family, prefix), self.options)

    def loc_rib(self, family: Family) -> Iterable[tuple[bytes, Path]]:
        """(prefix, best path) for every prefix with an eligible best path."""
        for p, entry in self._loc.get(family, {}).items():
            b = entry if entry.__class__ is Path else entry[0]
            if self.eligible(b):
                yield p, b

    def families(self) -> set[Family]:
        """The families some up peer exchanges routes of."""
        return {fam for st in self._peers.values() if st.up for fam in st.families}

    def loc_rib_size(self, family: Family) -> int:
        return len(self._loc.get(family, {}))

    def adj_rib_in(self, peer: PeerInfo, family: Family, pre_policy: bool = False) -> Mapping[Any, Path]:
        """prefix (or (path id, prefix)) -> path, as accepted (or as received); read only.

        Post-policy without ADD-PATH, an :class:`~bgpd.rib.tap.AdjInView` of
        the Loc-RIB: its ``len()`` and lookups cost what a dict's do, a walk
        looks at every Loc-RIB entry.
        """
        st = self._peers.get(peer.address)
        if st is None:
            return {}
        if pre_policy:
            if st.pre is None:
                raise ValueError(f"soft reconfiguration is not enabled for {peer.address}")
            return st.pre.get(family, {})
        if family in st.addpath_rx:
            return st.adj_in.get(family, {})
        return AdjInView(self._loc, family, st)

    def adj_rib_in_size(self, peer: PeerInfo, family: Family) -> int:
        """How many routes of ``peer`` in ``family`` its import policy accepted (a counter)."""
        st = self._peers.get(peer.address)
        return 0 if st is None else st.accepted.get(family, 0)

    def adj_rib_out(self, peer: PeerInfo, family: Family, prefixes: Iterable | None = None) -> dict:
        """prefix -> attributes as sent to ``peer`` (after the current batch).

        ``prefixes``: only these, so that a full table can be read in slices.
        """
        st = self._peers.get(peer.address)
        if st is None or family not in st.members:
            return {}
        g, m = st.members[family]
        return g.adj_rib_out(m, prefixes)

    def update_group(self, peer: PeerInfo, family: Family) -> UpdateGroup | None:
        st = self._peers.get(peer.address)
        if st is None or family not in st.members:
            return None
        return st.members[family][0]

    def peers(self) -> list[PeerInfo]:
        return [st.info for st in self._peers.values()]

    def rejected(self, peer: PeerInfo) -> int:
        """Prefixes of ``peer`` its import policy or the ingress checks refused, so far."""
        st = self._peers.get(peer.address)
        return 0 if st is None else st.rejected

    def loop_rejects(self, peer: PeerInfo) -> tuple[int, int, int]:
        """UPDATEs of ``peer`` refused for a CLUSTER_LIST, AS_PATH or ORIGINATOR_ID loop."""
        st = self._peers.get(peer.address)
        return (0, 0, 0) if st is None else (st.loops[0], st.loops[1], st.loops[2])

    def duplicates(self, peer: PeerInfo) -> tuple[int, int]:
        """``peer``'s known duplicate prefix advertisements and withdraws (RFC 7854 4.8, types 1, 2).

        An advertisement is a duplicate when the prefix's Adj-RIB-In entry is
        already the same path (the same attributes after the import policy);
        a withdraw, when the prefix is not held: counted from the pre-policy
        table with soft reconfiguration, else only while the peer has had no
        prefix refused (one refused then withdrawn looks the same, and telling
        them apart would need per-prefix state).  No per-prefix state either way.
        """
        st = self._peers.get(peer.address)
        return (0, 0) if st is None else (st.duplicates[0], st.duplicates[1])

    def live_paths(self) -> int:
        return sum(len(st.intern) for st in self._peers.values()) + len(self._local.intern)

    # -- work queue ---------------------------------------------------------

    def drain(self) -> None:
        """Do all queued work now, ignoring MRAI and chunk pauses (tests, benchmarks)."""
        budget = self.options.chunk_size
        while True:
            busy = False
            if self._work:
                self._process(budget)
                busy = True
            for groups in list(self._groups_by_family.values()):
                for g in list(groups):
                    if g.has_work():
                        g.flush(budget)
                        busy = True
            if not busy:
                break
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.backlogged:
            self._backlog_changed(False)
        for groups in self._groups_by_family.values():
            for g in groups:
                g.cancel()

    def _queue(self, item: list) -> None:
        work = self._work
        work.append(item)
        if self._handle is None:
            self._handle = self.call_later(0, self._run)
        if len(work) >= self._backlog_high and not self.backlogged and self._backlog_watchers:
            self._backlog_changed(True)

    def _run(self) -> None:
        self._handle = None
        work = self._work
        if len(work) > self.stats.largest_backlog:
            self.stats.largest_backlog = len(work)
        self._process(self.options.chunk_size)
        if work and self._handle is None:
            self._handle = self.call_later(0, self._run)
        if self.backlogged and len(work) <= self._backlog_high // 4:
            self._backlog_changed(False)

    def _process(self, budget: int) -> int:
        work = self._work
        if self._clock is not None:
            # Whole seconds (an age is shown in them), and the same float
            # object while the second lasts: paths made in it share it.
            now = float(int(self._clock()))
            if now != self.now:
                self.now = now
        changed: dict[Family, list] = {}
        # family -> prefix -> best path before this turn touched it (for
        # subscribers, and update groups that derive what they sent from it);
        # the steps below get their family's table (``ff``).
        first: dict[Family, dict] | None = {} if self._subscribers or self._groups else None
        # (peer state, family) of every item looked at, for the count watchers.
        touched: set | None = set() if self._count_watchers else None
        eors: list = []
        # (peer state, family, keys) of items for watched peers (watch_adj_rib_in)
        adj_watched = self._adj_watchers
        adj_touched: list | None = [] if adj_watched else None
        done = 0
        while work and done < budget:
            item = work[0]
            kind, st, gen, fam, a, keys, pos = item
            if gen != st.gen and kind != _DROP:
                work.popleft()  # queued by a session that is gone
                continue
            if touched is not None and fam is not None:
                touched.add((st, fam))
            if (kind == _ANNOUNCE or kind == _WITHDRAW or kind == _STALE or kind == _REDECIDE
                    or kind == _REVALIDATE):
                left = len(keys) - pos
                room = budget - done
                n = left if left <= room else room
                lst = changed.get(fam)
                if lst is None:
                    lst = changed[fam] = []
                ff = _first_of(first, fam)
                if kind == _ANNOUNCE:
                    self._announce(st, fam, a, keys, pos, pos + n, lst, ff)
                elif kind == _WITHDRAW:
                    self._withdraw(st, fam, keys, pos, pos + n, lst, ff, sent=True)
                elif kind == _STALE:
                    self._sweep_stale(st, fam, keys, pos, pos + n, lst, ff)
                elif kind == _REVALIDATE:
                    self._revalidate_some(st, fam, a, keys, pos, pos + n, lst, ff)
                else:
                    self._redecide(st, fam, keys, pos, pos + n, lst, ff)
                if adj_touched is not None and kind != _REDECIDE and st.info.address in adj_watched:
                    adj_touched.append((st, fam, keys[pos:pos + n]))
                done += n
                if n == left:
                    work.popleft()
                else:
                    item[6] = pos + n
            elif kind == _DROP:
                left = len(keys) - pos
                room = budget - done
                n = left if left <= room else room
                lst = changed.get(fam)
                if lst is None:
                    lst = changed[fam] = []
                ff = _first_of(first, fam)
                dropped: list | None = None
                if adj_touched is not None and st.info.address in adj_watched:
                    dropped = []
                    adj_touched.append((st, fam, dropped))
                removed = self._drop_some(st, fam, keys, pos, pos + n, lst, ff, dropped, a)
                if a is not None and gen == st.gen and fam in st.accepted:
                    st.accepted[fam] -= removed  # the same session's count (a mode change)
                done += n
                if n == left:
                    work.popleft()
                else:
                    item[6] = pos + n
            elif kind == _EOR:
                work.popleft()
                done += 1
                if self._eor_watchers:
                    eors.append((st.info, fam, st.families))
                if fam in st.stale_families:
                    st.stale_families.discard(fam)
                    if not st.stale_families and st.stale_timer is not None:
                        st.stale_timer.cancel()
                        st.stale_timer = None
                    # Next in line, before anything the peer sent after it.
                    work.appendleft([_STALE, st, st.gen, fam, None, self._keys(st, fam), 0])
            elif kind == _RR_BEGIN:
                if keys is None:
                    # What the peer re-sends meets the chain again; what it does not is gone.
                    st.held.pop(fam, None)
                    keys = item[5] = self._keys(st, fam)
                # Marking is a lookup and a compare per key: like _NH_REDECIDE's scan.
                left = len(keys) - pos
                n = min(left, (budget - done) * _NH_SCAN)
                self._mark_refreshed(st, fam, keys, pos, pos + n)
                done += 1 + n // _NH_SCAN
                if n < left:
                    item[6] = pos + n
                    continue
                work.popleft()
                # Re-advertised routes must make fresh paths, not find the
                # stale ones; a graceful restart before EoRR still finds them.
                st.refresh_stale.extend(v for v in st.intern.values() if v.stale)
                st.intern = {k: v for k, v in st.intern.items() if not v.stale}
            elif kind == _RR_END:
                work.popleft()
                done += 1
                st.refresh_stale = []
                # Next in line, before anything the peer sent after it.
                work.appendleft([_STALE, st, st.gen, fam, None, self._keys(st, fam), 0])
            elif kind == _GR_MARK:
                work.popleft()
                done += 1
                for path in st.intern.values():
                    path.stale = STALE_RESTART
                for path in st.refresh_stale:
                    if path.stale:
                        path.stale = STALE_RESTART
                st.refresh_stale = []
                # New announcements must make fresh (not stale) paths.
                st.intern.clear()
                st.stale_families = {f for f, n in st.accepted.items() if n}
                # Stale paths lose to fresh ones: decide their prefixes again,
                # next in line, before anything queued after the session went down.
                for f in st.stale_families:
                    work.appendleft([_REDECIDE, st, st.gen, f, None, self._keys(st, f), 0])
            elif kind == _NH_REDECIDE:
                left = len(keys) - pos
                n = min(left, (budget - done) * _NH_SCAN)
                lst = changed.get(fam)
                if lst is None:
                    lst = changed[fam] = []
                ff = _first_of(first, fam)
                self._redecide_nh(fam, a, keys, pos, pos + n, lst, ff)
                done += max(1, n // _NH_SCAN)
                if n == left:
                    work.popleft()
                else:
                    item[6] = pos + n
            elif kind == _GR_FLUSH:
                work.popleft()
                done += 1
                st.gr_pending = False
                keep, old_rx = a
                # ADD-PATH receive on in one session and off in the other (RFC
                # 7911): a route is a (path id, prefix) in one and a prefix in
                # the other, so nothing the peer sends now refreshes a stale
                # one.  They go now, found the way they were stored (_DROP
                # with the old mode), before anything the new session sent.
                for f in [f for f in st.stale_families if (f in old_rx) != (f in st.addpath_rx)]:
                    st.stale_families.discard(f)
                    old_keys = self._keys(st, f, f in old_rx)
                    if f in old_rx:
                        st.adj_in.pop(f, None)  # the old session's table: its keys are in old_keys
                    if st.pre is not None:
                        st.pre[f] = {}
                    work.appendleft([_DROP, st, st.gen, f, f in old_rx, old_keys, 0])
                # RFC 4724 4.2: the new OPEN did not keep the forwarding state
                # of these families (F bit clear, family not listed, or no
                # graceful restart capability at all): their stale routes go now.
                flush = [f for f in st.stale_families if f not in keep]
                for f in flush:
                    st.stale_families.discard(f)
                    work.appendleft([_STALE, st, st.gen, f, None, self._keys(st, f), 0])
                if not st.stale_families and st.stale_timer is not None:
                    st.stale_timer.cancel()
                    st.stale_timer = None
        self.stats.turns += 1
        if done > self.stats.largest_turn:
            self.stats.largest_turn = done
        self._publish(changed, first)
        if adj_touched:
            for st, fam, keys in adj_touched:
                for cb in list(adj_watched.get(st.info.address, ())):
                    cb(fam, keys)
        if touched:
            self._report_counts(touched)
        if eors:
            for info, fam, fams in eors:
                for eor_cb in list(self._eor_watchers):
                    eor_cb(info, fam, fams)
        return done

    def _report_counts(self, touched: set) -> None:
        for st, fam in touched:
            if not st.up or st is self._local:
                continue
            n = st.accepted.get(fam, 0)
            if st.counts.get(fam) != n:
                st.counts[fam] = n
                for cb in list(self._count_watchers):
                    cb(st.info, fam, n)

    def _publish(self, changed: dict[Family, list], first: dict[Family, dict] | None) -> None:
        groups_by_family = self._groups_by_family
        subs = self._subscribers
        for fam, prefixes in changed.items():
            if not prefixes:
                continue
            self.stats.loc_changes += len(prefixes)
            ff = None if first is None else first.get(fam, _EMPTY)
            for g in groups_by_family.get(fam, ()):
                if g.members:
                    g.changed(prefixes, ff)
            if subs and ff is not None:
                if self.options.max_paths > 1:
                    batch = self._changes_multipath(fam, prefixes, ff)
                else:
                    batch = []
                    best = self.best
                    for p in dict.fromkeys(prefixes):
                        b = best(fam, p)
                        o = ff.get(p)
                        if b is not o:
                            batch.append(Change(fam, p, o, b, () if b is None else (b,)))
                if batch:
                    for cb in list(subs):
                        cb(batch)

    def _changes_multipath(self, fam: Family, prefixes: list, first: dict) -> list[Change]:
        """The records of a turn with multipath on: a new best, or a new ECMP set."""
        published = self._published_mp.setdefault(fam, {})
        batch = []
        for p in dict.fromkeys(prefixes):
            b = self.best(fam, p)
            o = first.get(p)
            mp = tuple(self.multipath(fam, p)) if b is not None else ()
            last = published.get(p)
            if last is None:
                last = () if o is None else (o,)
            if b is o and mp == last:
                continue
            if len(mp) > 1:
                published[p] = mp
            else:
                published.pop(p, None)
            batch.append(Change(fam, p, o, b, mp))
        return batch

    # -- import -------------------------------------------------------------

    def _ingress(self, st: PeerState, a: PathAttributes) -> PathAttributes | None:
        """Per-UPDATE checks; the attributes to use, or None to treat the routes as withdrawn."""
        info = st.info
        if info is LOCAL:
            return a
        las = info.local_as
        n = a.count_asn(las)
        if self.local_as != las:
            n += a.count_asn(self.local_as)
        if n > info.allowas_in:
            st.loops[1] += 1
            return None
        if info.ibgp:
            if a.originator_id is not None and a.originator_id == self.router_id:
                st.loops[2] += 1
                return None
            if a.cluster_list and self.cluster_id in a.cluster_list:
                st.loops[0] += 1
                return None
        else:
            role = info.role
            if role is not None:
                otc = a.otc
                if otc is not None:
                    if role in _LEAK_ALWAYS or (role == Role.PEER and otc != info.remote_as):
                        return None
                elif role in _OTC_ADD:
                    a = a.replace(otc=info.remote_as)
        return a

    def _intern(self, st: PeerState, a: PathAttributes, pid: int) -> Path:
        path = Path(st, a, pid, self.now)
        return st.intern.setdefault(a if pid == 0 else (pid, a), path)

    @staticmethod
    def _release(st: PeerState, old: Path) -> None:
        """``old`` left one of ``st``'s Adj-RIB-In entries; forget it when it was the last.

        A path no Adj-RIB-In entry holds is in no Loc-RIB entry either (those
        are made from the Adj-RIB-In); an update group may still hold it as
        what it last sent, which needs no interning.  A path not in the table
        (made stale, or the table started afresh) is left alone.
        """
        refs = old.refs = old.refs - 1
        if refs <= 0:
            a = old.attrs
            key = a if old.path_id == 0 else (old.path_id, a)
            table = st.intern
            if table.get(key) is old:
                del table[key]

    def _announce(
        self, st: PeerState, fam: Family, raw: PathAttributes, keys: list, start: int, end: int,
        changed: list, first: dict | None,
    ) -> None:
        accepted = st.accepted
        if fam not in accepted:
            return
        self.stats.prefixes_in += end - start
        dup = 0
        # A policy re-run (reimport) announces what is held again: no duplicates there.
        rerun = bool(st.reimports) and any(keys is r for r in st.reimports)
        if rerun and end == len(keys):
            st.reimports = [r for r in st.reimports if r is not keys]
        if st.pre is not None:
            pre = st.pre.setdefault(fam, {})
            raw_path = Path(st, raw, 0, self.now)
            for k in keys[start:end]:
                pre[k] = raw_path
        a = self._ingress(st, raw)
        policy = st.import_policy
        if a is None or policy.rejects_all:
            st.rejected += end - start
            self.stats.rejected += end - start
            self._withdraw(st, fam, keys, start, end, changed, first, keep_pre=True)
            return
        loc = self._loc.get(fam)
        if loc is None:
            loc = self._loc[fam] = {}
        addpath = fam in st.addpath_rx and st is not self._local
        resolver = self._resolver
        # Keys this chunk adds to the peer's Adj-RIB-In, less those it takes out.
        added = 0
        if policy.accepts_all and not addpath:
            # The full-table path: one interned path for the whole UPDATE
            # (_intern, inlined).  A resolver changes nothing here: a lone
            # candidate is the entry whether it resolves or not (best()
            # says whether it is usable), and two go through _update.
            path = st.intern.setdefault(a, Path(st, a, 0, self.now))
            held_by = 0
            # The Loc-RIB entry holds every candidate, so it says what this
            # peer's Adj-RIB-In entry is (one candidate per peer without
            # ADD-PATH).  A new prefix costs one probe (setdefault; the size
            # says whether it was there): compiled, loc.setdefault and len()
            # are direct C calls, a bound method in a local a Python call.
            size = len(loc)
            for p in keys[start:end]:
                cur = loc.setdefault(p, path)
                if cur is path:
                    if len(loc) == size:
                        dup += 1  # held as it is: changes nothing
                        continue
                    size += 1
                    held_by += 1
                    added += 1
                    changed.append(p)
                    if first is not None:
                        first.setdefault(p, None)
                elif cur.__class__ is Path and cur.owner is st:
                    held_by += 1
                    self._release(st, cur)
                    loc[p] = path
                    changed.append(p)
                    if first is not None:
                        first.setdefault(p, cur if resolver is None or self.eligible(cur) else None)
                else:
                    old = _own(cur, st, 0)
                    if old is path:
                        dup += 1  # held as it is: changes nothing
                        continue
                    held_by += 1
                    if old is None:
                        added += 1
                    else:
                        self._release(st, old)
                    self._update(loc, p, st, 0, path, changed, first)
            path.refs += held_by
            accepted[fam] += added
            if dup and not rerun:
                st.duplicates[0] += dup
            if self._adj_tap is not None:
                self._tap_results(st, fam, keys[start:end], None, a)
            return
        info = st.info
        accepts = policy.accepts_all
        chunk = keys[start:end]
        if not accepts and not addpath:
            # The full-table path above with a policy: the chain's answer per
            # prefix (one many() call for the UPDATE), the Loc-RIB update inlined.
            # (loc.get(p), not a bound method in a local: compiled, the
            # direct call is mypyc's C dict lookup, the local a Python call.)
            last: Any = None
            path = None
            held = st.held.setdefault(fam, {}) if policy.validated else None
            answers = policy.many(info, fam, chunk, a)
            for p, r in zip(chunk, answers, strict=True):
                if held is not None:
                    if r is not a:
                        held[p] = a
                    elif held:
                        held.pop(p, None)
                cur = loc.get(p)
                old = _own(cur, st, 0)
                if r is None:
                    st.rejected += 1
                    self.stats.rejected += 1
                    if old is not None:
                        added -= 1
                        self._release(st, old)
                        self._update(loc, p, st, 0, None, changed, first)
                    continue
                if r is not last:
                    path = self._intern(st, r, 0)
                    last = r
                if old is path:
                    dup += 1  # held as it is: changes nothing
                    continue
                path.refs += 1
                if old is None:
                    added += 1
                else:
                    self._release(st, old)
                if cur is None:
                    loc[p] = path
                    changed.append(p)
                    if first is not None:
                        first.setdefault(p, None)
                elif cur.__class__ is Path and cur.owner is st:
                    loc[p] = path
                    changed.append(p)
                    if first is not None:
                        first.setdefault(p, cur if resolver is None or self.eligible(cur) else None)
                else:
                    self._update(loc, p, st, 0, path, changed, first)
            accepted[fam] += added
            if dup and not rerun:
                st.duplicates[0] += dup
            if self._adj_tap is not None:
                self._tap_results(st, fam, chunk, answers, a)
            return
        # ADD-PATH: the peer's own (path id, prefix) -> path table.
        adj = st.adj_in.get(fam)
        if adj is None:
            adj = st.adj_in[fam] = {}
        base: dict = {}
        if accepts:
            results: Any = None
        else:
            results = [policy(info, fam, k[1], a) for k in chunk]
        held = st.held.setdefault(fam, {}) if policy.validated else None
        for i, k in enumerate(chunk):
            pid, p = k
            r = a if accepts else results[i]
            if held is not None:
                if r is not a:
                    held[k] = a
                elif held:
                    held.pop(k, None)
            if r is None:
                st.rejected += 1
                self.stats.rejected += 1
                old = adj.pop(k, None)
                if old is not None:
                    added -= 1
                    self._release(st, old)
                    self._update(loc, p, st, pid, None, changed, first)
                continue
            bk = (id(r), pid)
            path = base.get(bk)
            if path is None or path.attrs is not r:
                path = base[bk] = self._intern(st, r, pid)
            old = adj.get(k)
            if old is path:
                dup += 1  # held as it is: changes nothing
                continue
            adj[k] = path
            path.refs += 1
            if old is None:
                added += 1
            else:
                self._release(st, old)
            self._update(loc, p, st, pid, path, changed, first)
        accepted[fam] += added
        if dup and not rerun:
            st.duplicates[0] += dup
        if self._adj_tap is not None:
            self._tap_results(st, fam, chunk, results, a)

    def _withdraw(
        self, st: PeerState, fam: Family, keys: list, start: int, end: int, changed: list, first: dict | None,
        keep_pre: bool = False, sent: bool = False,
    ) -> None:
        """``sent``: the peer withdrew these (count the known duplicates, see duplicates)."""
        if fam not in st.accepted:
            return
        unheld = 0
        if st.pre is not None and not keep_pre:
            pre = st.pre.get(fam, {})
            for k in keys[start:end]:
                if pre.pop(k, None) is None:
                    unheld += 1
            if sent:
                st.duplicates[1] += unheld
            sent = False
        held = st.held.get(fam)
        if held:
            for k in keys[start:end]:
                held.pop(k, None)
        loc = self._loc.get(fam)
        if loc is None:
            return
        addpath = fam in st.addpath_rx and st is not self._local
        adj = st.adj_in.get(fam) or _EMPTY
        # Without the pre-policy table, not held is a known duplicate only if nothing was refused.
        sent = sent and st.rejected == 0
        removed = 0
        for k in keys[start:end]:
            if addpath:
                old = adj.pop(k, None)
                p = k[1]
                cur = None if old is None else loc.get(p)
            else:
                p = k
                cur = loc.get(p)
                old = _own(cur, st, 0)
            if old is None:
                unheld += 1
                continue
            removed += 1
            self._release(st, old)
            self._unlink(loc, p, st, old, cur, changed, first)
        st.accepted[fam] -= removed
        if sent:
            st.duplicates[1] += unheld
        tap = self._adj_tap
        if tap is not None and st is not self._local:
            tap.adj_in_changed(st.info, fam, None, keys[start:end])

    def _unlink(
        self, loc: dict, p: bytes, st: PeerState, old: Path, cur: Any, changed: list,
        first: dict | None,
    ) -> None:
        """``old`` (``st``'s path for ``p``) is gone: drop it from the Loc-RIB and re-decide.

        ``cur``: ``p``'s Loc-RIB entry (the caller has looked it up).
        """
        if cur is old:
            del loc[p]
            changed.append(p)
            if first is not None:
                first.setdefault(p, old if self.eligible(old) else None)
        else:
            self._update(loc, p, st, old.path_id, None, changed, first)

    def _keys(self, st: PeerState, fam: Family, addpath: bool | None = None) -> list:
        """What to look at for every route of ``st`` in ``fam``, from now on, in chunks.

        ``addpath``: whether ``st``'s routes of ``fam`` are stored with path
        ids (None: as it receives ``fam`` now).

        With ADD-PATH its table's keys; else a snapshot of the Loc-RIB's
        prefixes (a superset: every scan skips those ``st`` has no path for).
        A scan is queued work: nothing changes the Loc-RIB between its turns
        but the items before it in the queue, and the snapshot's end is the
        peer's last route then.
        """
        if addpath is None:
            addpath = fam in st.addpath_rx and st is not self._local
        if addpath:
            return list(st.adj_in.get(fam) or _EMPTY)
        if not st.accepted.get(fam):
            return []
        return list(self._loc.get(fam) or _EMPTY)

    def _mark_refreshed(self, st: PeerState, fam: Family, keys: list, start: int, end: int) -> None:
        """BoRR (RFC 7313 4): ``st``'s paths among ``keys[start:end]`` become stale (restart-stale stay)."""
        if fam in st.addpath_rx and st is not self._local:
            adj = st.adj_in.get(fam) or _EMPTY
            for k in keys[start:end]:
                path = adj.get(k)
                if path is not None and not path.stale:
                    path.stale = STALE_REFRESH
            return
        loc = self._loc.get(fam) or _EMPTY
        for p in keys[start:end]:
            path = _own(loc.get(p), st, 0)
            if path is not None and not path.stale:
                path.stale = STALE_REFRESH

    def _sweep_stale(
        self, st: PeerState, fam: Family, keys: list, start: int, end: int, changed: list, first: dict | None,
    ) -> None:
        if fam in st.addpath_rx and st is not self._local:
            adj = st.adj_in.get(fam) or _EMPTY
            stale = [k for k in keys[start:end] if (p := adj.get(k)) is not None and p.stale]
        else:
            loc = self._loc.get(fam) or _EMPTY
            stale = [k for k in keys[start:end] if (p := _own(loc.get(k), st, 0)) is not None and p.stale]
        if stale:
            self._withdraw(st, fam, stale, 0, len(stale), changed, first)

    def _redecide(
        self, st: PeerState, fam: Family, keys: list, start: int, end: int, changed: list, first: dict | None,
    ) -> None:
        """Run the decision again for ``st``'s prefixes (a path of it changed rank)."""
        loc = self._loc.get(fam)
        if loc is None:
            return
        addpath = fam in st.addpath_rx and st is not self._local
        select = decision.select
        options = self.options
        for k in keys[start:end]:
            p = k[1] if addpath else k
            cur = loc.get(p)
            if cur is None or cur.__class__ is Path:
                continue
            for c in cur:
                if c.owner is st:
                    break
            else:
                continue  # a scan of the Loc-RIB: not one of st's prefixes
            new = tuple(select(cur, options))
            if new != cur:
                if first is not None and p not in first:
                    ob = cur[0]
                    first[p] = ob if self.eligible(ob) else None
                loc[p] = new
                changed.append(p)

    def _redecide_nh(
        self, fam: Family, old: dict[str, bool], keys: list, start: int, end: int, changed: list,
        first: dict | None,
    ) -> None:
        """Re-decide the prefixes among ``keys[start:end]`` with a path through a next hop in ``old``."""
        loc = self._loc.get(fam)
        if loc is None:
            return
        eligible = self.eligible
        for p in keys[start:end]:
            cur = loc.get(p)
            if cur is None:
                continue
            if cur.__class__ is Path:
                nh = cur.attrs.next_hop
                if nh not in old:
                    continue
                if first is not None and p not in first:
                    first[p] = cur if old[nh] else None
                changed.append(p)
                continue
            if not any(c.attrs.next_hop in old for c in cur):
                continue
            if first is not None and p not in first:
                ob = cur[0]
                nh = ob.attrs.next_hop
                ok = old[nh] if nh in old else eligible(ob)
                first[p] = ob if ok else None
            loc[p] = tuple(decision.select(cur, self.options))
            changed.append(p)

    def _drop_all(self, st: PeerState) -> None:
        st.gen += 1
        if st.stale_timer is not None:
            st.stale_timer.cancel()
            st.stale_timer = None
        st.stale_families = set()
        st.gr_pending = False
        for fam, n in st.accepted.items():
            if n:
                self._queue([_DROP, st, st.gen, fam, None, self._keys(st, fam), 0])
        st.accepted = {}
        st.adj_in = {}
        st.pre = None
        st.held = {}
        st.intern = {}
        st.refresh_stale = []
        st.reimports = []
        if not st.up and self._peers.get(st.info.address) is st:
            del self._peers[st.info.address]

    def _drop_some(
        self, st: PeerState, fam: Family, keys: list, start: int, end: int, changed: list,
        first: dict | None, dropped: list | None, addpath_keys: bool | None = None,
    ) -> int:
        """Take ``st``'s paths among ``keys[start:end]`` out of the Loc-RIB (and name them in ``dropped``).

        ``addpath_keys``: whether the keys are (path id, prefix) (None: as
        ``st`` receives ``fam`` now).  Returns how many paths went.
        """
        loc = self._loc.get(fam)
        if loc is None:
            return 0
        if addpath_keys is None:
            addpath = fam in st.addpath_rx and st is not self._local
        else:
            addpath = addpath_keys
        # No _release: _drop_all gave the peer a new intern table, and these
        # paths die with this one (a mode change: _GR_MARK emptied it).
        removed = 0
        for k in keys[start:end]:
            if addpath:
                pid, p = k
            else:
                pid, p = 0, k
            cur = loc.get(p)
            old = _own(cur, st, pid)
            if old is None:
                continue
            removed += 1
            if dropped is not None:
                dropped.append(k)
            self._unlink(loc, p, st, old, cur, changed, first)
        return removed

    def _stale_expired(self, st: PeerState) -> None:
        st.stale_timer = None
        if not st.up:
            # Still down when the restart time ran out: every route it had is
            # stale; drop them all and forget the peer (RFC 4724 4.2).
            self._drop_all(st)
            return
        fams = st.stale_families
        st.stale_families = set()
        for fam in fams:
            self._queue([_STALE, st, st.gen, fam, None, self._keys(st, fam), 0])

    def _update(
        self, loc: dict, p: bytes, st: PeerState, pid: int, path: Path | None, changed: list,
        first: dict | None,
    ) -> None:
        """Replace ``st``'s candidate (path id ``pid``) for ``p`` and re-decide (RFC 4271 9.1.2)."""
        cur = loc.get(p)
        if cur is None:
            cands: tuple = ()
        elif cur.__class__ is Path:
            cands = (cur,)
        else:
            cands = cur
        if first is not None and p not in first:
            ob = cands[0] if cands else None
            first[p] = ob if ob is not None and self.eligible(ob) else None
        rest = [c for c in cands if c.owner is not st or c.path_id != pid]
        if path is not None:
            rest.append(path)
        n = len(rest)
        if n == 0:
            if cur is not None:
                del loc[p]
                changed.append(p)
            return
        if n == 1:
            loc[p] = rest[0]
        else:
            loc[p] = tuple(_select(rest, self.options))
        changed.append(p)

    def _leave_groups(self, st: PeerState) -> None:
        for fam, (g, m) in list(st.members.items()):
            g.leave(m)
            if not g.members:
                # A group split off by a policy change may share its key
                # with another group, which then holds the key's entry.
                if self._groups.get(g.key) is g:
                    del self._groups[g.key]
                self._groups_by_family[fam].remove(g)
        st.members = {}
