"""Export rules and Adj-RIB-Out per update group (RFC 4271 sections 5.1, 9.1.3, 9.2).

Propagation rules applied to the best path (or every candidate, with ADD-PATH
send, RFC 7911) before the export policy:

- RFC 4271 5.1.2/5.1.3/5.1.4/5.1.5: to eBGP prepend the local AS, set NEXT_HOP
  to our session address, strip LOCAL_PREF, and do not pass a MED learned from
  another AS (a MED on a route we originate is kept); to iBGP send LOCAL_PREF
  (the default when absent) and leave AS_PATH alone.
- RFC 4271 9.2 / RFC 4456: nothing learned by iBGP goes to iBGP, except by
  route reflection (client -> everyone, non-client -> clients only), which
  sets ORIGINATOR_ID when absent and prepends our CLUSTER_ID to CLUSTER_LIST.
- RFC 7947 (route server): to a route-server client AS_PATH, NEXT_HOP and MED
  are passed on untouched.
- RFC 1997 / RFC 3765 well-known communities: NO_ADVERTISE goes nowhere,
  NO_EXPORT and NO_EXPORT_SUBCONFED not to eBGP, NO_PEER not to peers whose
  RFC 9234 role is "peer".
- RFC 9234 section 5 (egress): a route carrying OTC does not go to a
  provider, peer or route server; to a customer, peer or RS client OTC is
  added (our AS) when absent.
- Split horizon: a route is never sent back to the peer it came from.

Peers whose outbound view is the same (an *update group*: same family,
export policy, session type, local AS and address, flags, negotiated 4-octet
AS / ADD-PATH / message size, MRAI) share one Adj-RIB-Out and one set of
encoded UPDATEs.  Changes are collected, and after the group's MRAI (RFC 4271
9.2.1.1) grouped by resulting attributes and packed into as few UPDATEs as
fit; a change undone before the batch goes out sends nothing.  After a new
member's initial table, an End-of-RIB marker (RFC 4724 section 2) follows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bgpd.policy import Chain
from bgpd.rib.host import GroupHost, Sink
from bgpd.rib.route import LOCAL, Path, PeerInfo
from bgpd.wire.attributes import PathAttributes, prepend_as_path
from bgpd.wire.constants import AFI, Community, RefreshSubtype, Role
from bgpd.wire.message import encode_message
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import pack_end_of_rib, pack_reach, pack_withdraw

__all__ = ["GroupHost", "Member", "Sink", "UpdateGroup", "group_key"]


_NO_ADVERTISE = Community.NO_ADVERTISE
_NO_EXPORT = Community.NO_EXPORT
_NO_EXPORT_SUBCONFED = Community.NO_EXPORT_SUBCONFED
_NO_PEER = Community.NO_PEER
_OTC_BLOCKED = (Role.PROVIDER, Role.PEER, Role.RS)
_OTC_ADDED = (Role.CUSTOMER, Role.PEER, Role.RS_CLIENT)
_MISSING = object()


class Member:
    """One peer in an update group.

    ``peer`` is the RIB's state of that neighbor (the owner of the paths it
    sent, for split horizon); ``sink`` its session's output.
    """

    __slots__ = (
        "peer", "sink", "dump", "dump_pos", "eor_pending", "eor_at", "eor_message", "behind",
        "missed",
    )

    def __init__(self, peer: Any, sink: Sink) -> None:
        self.peer = peer
        self.sink = sink
        #: Prefixes still to send from ``out`` (initial table, refresh, catch-up).
        self.dump: list | None = None
        self.dump_pos = 0
        self.eor_pending = True
        self.eor_at = 0
        #: What ends the current dump: End-of-RIB, or EoRR after an enhanced refresh.
        self.eor_message: bytes | None = None
        #: Skipped while its sink is not writable (the group goes on without it).
        self.behind = False
        #: prefix -> what ``out`` held for it when the member first missed a
        #: change of it (behind), then while catching up: what it still has.
        self.missed: dict | None = None

    def writable(self) -> bool:
        return bool(self.sink.writable())


def _mapped(address: str | None) -> str | None:
    if address is None:
        return None
    return address if ":" in address else "::ffff:" + address


def group_key(
    info: PeerInfo, family: tuple[int, int], neg: Negotiated, export_names: tuple[str, ...], mrai: float,
    per_peer: bool = False,
) -> tuple:
    """Everything that makes two peers' outbound view of ``family`` differ.

    ``per_peer``: the export chain reads the peer (``Chain.depends_on_peer``:
    its address, AS, ...), so its result differs from peer to peer and every
    peer gets a group of its own; the group's policy is then always called
    with the one peer it is for.
    """
    return (
        family, export_names, info.ibgp, info.local_as, info.next_hop_self, info.route_server_client,
        info.route_reflector_client, info.role, info.local_address, info.next_hop6, neg.as4,
        family in neg.addpath_tx, neg.extended_message, mrai,
        (family[0], family[1], AFI.IPV6) in neg.ext_nexthop, info.address if per_peer else None,
    )


def _valid_next_hop(next_hop: str | None, family: tuple[int, int], ext_nexthop: bool) -> bool:
    """Whether a NEXT_HOP an export policy set can be sent for ``family``.

    IPv4 unicast carries an IPv4 NEXT_HOP (RFC 4271 5.1.3), or an IPv6 one
    when the session negotiated it (``ext_nexthop``, RFC 8950); IPv6 unicast
    an IPv6 one in MP_REACH_NLRI (RFC 4760, RFC 2545).
    """
    if not next_hop:
        return False
    if ":" in next_hop:
        return family[0] == AFI.IPV6 or ext_nexthop
    return family[0] != AFI.IPV6


class UpdateGroup:
    """One shared Adj-RIB-Out for one family and the peers that receive it.

    ``out`` maps each prefix to the Loc-RIB path whose export was sent (a
    tuple of paths with ADD-PATH send), not to a copy of the exported
    attributes: export is a deterministic function of the path, the prefix
    and the export chain, so the attributes are rebuilt per batch, shared by
    every prefix of the path in it, and freed once the UPDATEs are packed.
    That keeps the Adj-RIB-Out at one dict entry per prefix.

    What was sent for a prefix is therefore (``out[prefix]``, the chain it
    was exported with).  The chain changes only in :meth:`replace_policy`,
    which records the old chain for every prefix of ``out`` in ``_redo``
    until the recompute pass has compared its old and new export: only the
    differences are sent, and ``_redo`` (the only extra memory) is empty
    again once the pass is done.

    A group with no ADD-PATH send and no next-hop resolver keeps no
    ``out`` at all (``out`` is None, the *derived* view): what was
    sent for a prefix is then what :meth:`_sendable` gives for its Loc-RIB
    entry, except while a change of it waits for the next flush; for those
    the RIB hands over, with the changed prefixes, each one's best path
    before the change (its per-turn ``first`` record), kept in
    ``pending_old`` (the first one wins) until the prefix is flushed.  A
    prefix of the queue that no longer waits is up to date and costs a
    lookup.  A second member makes the sole member's own routes sendable
    (split horizon kept them back): they are queued as never sent, and
    from then on a member's own routes stay in the view (sent to the
    others), so a member leaving changes nothing in it.  A new chain is
    handled as with ``out``: ``_redo`` maps every prefix to the old chain
    (what was sent is then the entry exported with it) until the recompute
    pass reaches it; a split copies the waiting entries.  A resolver
    changes what :meth:`_sendable` gives for the same entry, so
    :meth:`materialize` writes the view down as ``out`` first, and the
    group keeps ``out`` from then on.  ``sent_count`` replaces ``len(out)``.
    """

    def __init__(
        self,
        rib: GroupHost,
        key: tuple,
        family: tuple[int, int],
        info: PeerInfo,
        neg: Negotiated,
        policy: Chain,
        mrai: float,
    ) -> None:
        self.rib = rib
        self.key = key
        self.family = family
        self.info = info
        self.policy = policy
        self.mrai = mrai
        self.addpath = family in neg.addpath_tx
        #: What the first member negotiated (a group split off starts from it).
        self._negotiated = neg
        self._ext_nexthop = (family[0], family[1], AFI.IPV6) in neg.ext_nexthop
        self.neg = Negotiated(
            as4=neg.as4, ibgp=info.ibgp,
            addpath_tx=frozenset({family}) if self.addpath else frozenset(),
            extended_message=neg.extended_message,
        )
        self.members: list[Member] = []
        self._peers_in: set = set()
        #: prefix -> path sent (or a tuple of paths with ADD-PATH send); None
        #: while the sent view is derived from the Loc-RIB (see _derived).
        self.out: dict | None = None if self._may_derive(rib, neg) else {}
        #: Derived view only: prefix -> its Loc-RIB best path (or None) as of
        #: the group's last flush of it, for the prefixes whose change waits.
        self.pending_old: dict = {}
        #: Derived view only: how many prefixes have a path sent (with one
        #: member, not counting its own while _solo_rule holds).
        self._sent = 0
        #: Derived view only: while the group never had two members, its
        #: sole member's own routes are not sent (split horizon), not even
        #: as the view; once it had two, a member's own routes are in the
        #: view (sent to the others, whoever they are).
        self._solo_rule = True
        self.pending: list = []
        self._pos = 0
        #: path -> exported attributes (None: not exported), for one batch
        self._batch: dict = {}
        self._solo_skipped = False
        self._handle: Any = None
        #: prefix -> the export chain its ``out`` entry was sent with, while a
        #: policy change is being applied (empty otherwise); see replace_policy.
        self._redo: dict = {}
        #: chain -> its per-batch export cache, for the chains in ``_redo``
        self._old_batches: dict = {}
        self._ebgp = not info.ibgp
        # The common eBGP export (not to a route-server client) builds the
        # exported attributes in one step: see _export_ebgp.
        self._plain_ebgp = not info.ibgp and not info.route_server_client
        self._local_as = info.local_as
        self._role = info.role
        la = info.local_address
        if family[0] == AFI.IPV6:
            self._next_hop = la if la and ":" in la else info.next_hop6 or _mapped(la)
        elif la and ":" in la and self._ext_nexthop:
            # RFC 8950: IPv4 routes with our IPv6 address, in MP_REACH_NLRI.
            self._next_hop = la
        else:
            self._next_hop = la if la and ":" not in la else None
        #: eBGP over IPv6 with neither RFC 8950 nor an IPv4 address of ours
        #: (next_hop_ipv4): an IPv4 route has no NEXT_HOP we could send
        #: (RFC 4271 5.1.3), and passing on the learned one would point the
        #: peer at a router it may not share a link with.
        self._no_next_hop = (
            self._plain_ebgp and family[0] == AFI.IPV4 and bool(la) and self._next_hop is None
        )
        self.sent_updates = 0
        #: How many members are behind (skipped until they are writable).
        self._behind = 0

    def _may_derive(self, rib: GroupHost, neg: Negotiated) -> bool:
        # The derived view: see the class docstring.
        return self.family not in neg.addpath_tx and rib.options.resolver is None

    def sent_count(self) -> int:
        """How many prefixes have a path sent (the Adj-RIB-Out's size)."""
        out = self.out
        return self._sent if out is None else len(out)

    def _sent_view(self, p: Any, loc_get: Any) -> Any:
        """Derived view: the path sent for ``p`` (None: nothing)."""
        entry = self.pending_old.get(p, _MISSING)
        if entry is _MISSING:
            entry = loc_get(p)
        redo = self._redo
        return self._sendable(entry, p, redo.get(p) if redo else None)

    def materialize(self) -> None:
        """Keep ``out`` from now on (a resolver is set).

        The derived view holds only while no resolver decides eligibility:
        one changes what :meth:`_sendable` gives for the same Loc-RIB entry,
        so the sent view is written down first, as it is.  (At a full table
        this takes seconds; the resolver is normally set at start.)
        """
        if self.out is not None:
            return
        loc = self.rib.loc_table(self.family)
        loc_get = loc.get
        view = self._sent_view
        out: dict = {}
        try:
            for p in loc:
                s = view(p, loc_get)
                if s is not None:
                    out[p] = s
            for p in self.pending_old:
                if p not in loc:
                    s = view(p, loc_get)
                    if s is not None:
                        out[p] = s
        finally:
            self._batch = {}
            self._old_batches = {}
        if len(self.members) == 1:
            # Split horizon may have kept the member's own routes out: a
            # newcomer looks at every prefix again (see join).
            self._solo_skipped = True
        self.out = out
        self.pending_old = {}
        self._sent = 0

    def __repr__(self) -> str:
        names = [m.peer.info.address for m in self.members]
        return f"<UpdateGroup {self.family} {'ibgp' if not self._ebgp else 'ebgp'} {names}>"

    # -- membership --------------------------------------------------------

    def join(self, member: Member, loc: dict) -> None:
        """Add a peer; it gets the current table, then End-of-RIB."""
        if self.out is None:
            if self.members:
                self._join_derived(member, loc)
                return
            # Nothing sent yet: every prefix waits, with nothing sent before.
            self.pending = []
            self._pos = 0
            self.pending_old = dict.fromkeys(loc)
            self._sent = 0
        new_group = not self.members and not self.out
        self.members.append(member)
        self._peers_in.add(member.peer)
        if new_group:
            if loc:
                self.pending.extend(loc)
        else:
            if self.out:
                member.dump = list(self.out)
            if self._solo_skipped:
                # The first member's own routes were never kept (split
                # horizon); look at every prefix again for the newcomer.
                self._solo_skipped = False
                self.pending.extend(loc)
        member.eor_at = len(self.pending)
        self._schedule(0.0)

    def _join_derived(self, member: Member, loc: dict) -> None:
        pend = self.pending_old
        if len(self.members) == 1 and self._solo_rule:
            # Split horizon kept the sole member's own routes unsent; with a
            # second member they are sent (to it): they wait, as never sent.
            solo = self.members[0].peer
            for p, o in pend.items():
                if o is not None and o.owner is solo:
                    pend[p] = None
            queued = []
            for p, e in loc.items():
                best = e if e.__class__ is Path else e[0]
                if best.owner is solo and p not in pend:
                    pend[p] = None
                    queued.append(p)
            self.pending.extend(queued)
        # From now on a last member's own routes count as sent (to nobody):
        # what was sent then stays what it was when a member leaves.
        self._solo_rule = False
        # The newcomer is sent the group's view, as the others have it.
        dump = list(loc)
        dump.extend(p for p in pend if p not in loc)
        self.members.append(member)
        self._peers_in.add(member.peer)
        if dump:
            member.dump = dump
        member.eor_at = len(self.pending)
        self._schedule(0.0)

    def leave(self, member: Member) -> None:
        self.members.remove(member)
        self._peers_in.discard(member.peer)
        if member.behind:
            self._behind -= 1
        if not self.members:
            self.cancel()

    def resume(self, member: Member) -> None:
        """``member``'s sink is writable again: catch it up, and go on now."""
        if member.behind and member.writable():
            self._catch_up(member)
        self.cancel()
        self._schedule(0.0)

    def _fall_behind(self, m: Member) -> None:
        # Its view stays as it is; _flush_pending records, per prefix, what
        # it had before each change it misses.
        m.behind = True
        m.missed = {} if m.missed is None else m.missed
        self._behind += 1

    def _catch_up(self, m: Member) -> None:
        # Send it the current state of every prefix it missed (and the rest
        # of a dump it was in): its view ends equal to ``out``.
        m.behind = False
        self._behind -= 1
        rest = m.dump[m.dump_pos:] if m.dump is not None else []
        keys = list(dict.fromkeys(rest + list(m.missed or ()))) if m.missed else rest
        m.dump = keys or None
        m.dump_pos = 0
        if not keys:
            m.missed = None

    def resend(self, member: Member, enhanced: bool = False) -> None:
        """Send the whole Adj-RIB-Out again (ROUTE-REFRESH, RFC 2918 section 4).

        ``enhanced``: frame it with BoRR / EoRR (RFC 7313 section 4).
        """
        if enhanced:
            afi, safi = self.family
            member.sink.send([encode_message(RouteRefresh(afi, safi, RefreshSubtype.BEGIN))])
            member.eor_message = encode_message(RouteRefresh(afi, safi, RefreshSubtype.END))
        out = self.out
        if out is None:
            loc = self.rib.loc_table(self.family)
            member.dump = list(loc)
            member.dump.extend(p for p in self.pending_old if p not in loc)
        else:
            member.dump = list(out)
        if member.missed and not member.behind:
            # Mid catch-up: the withdrawals it is still owed are not in ``out``.
            member.dump = list(dict.fromkeys(member.dump + list(member.missed)))
        member.dump_pos = 0
        member.eor_pending = True
        member.eor_at = len(self.pending)
        self._schedule(0.0)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    # -- policy changes -------------------------------------------------------

    def replace_policy(self, policy: Chain) -> None:
        """Export with ``policy`` from now on; send each member only what changes.

        Every Loc-RIB prefix is looked at again (in chunks, like any change):
        a prefix sent before is compared as exported with the chain it was
        sent with and as exported with ``policy``; identical results send
        nothing, so sessions see exactly the difference (RFC 4271 9.1.3).
        """
        old = self.policy
        self.policy = policy
        if self.out is None:
            # Derived view: every prefix went out with ``old`` (or waits
            # with its old entry, which did).
            loc = self.rib.loc_table(self.family)
            redo = dict.fromkeys(loc, old)
            for p in self.pending_old:
                redo.setdefault(p, old)
            redo.update(self._redo)
            self._redo = redo
        elif self.out:
            redo = dict.fromkeys(self.out, old)
            # Prefixes still owed from an earlier change keep the chain they were sent with.
            redo.update(self._redo)
            self._redo = redo
        loc = self.rib.loc_table(self.family)
        self.pending.extend(loc)
        # Sent prefixes the Loc-RIB no longer has are already queued (their
        # withdrawal), unless they are the first member's own: queue them too.
        self.pending.extend(p for p in self._redo if p not in loc)
        self._schedule(0.0)

    def split(self, members: list[Member], key: tuple) -> UpdateGroup:
        """Move ``members`` to a new group with this group's state (``out``, chain, queue).

        Their view stays what this group sent them; the caller then changes
        the new group's chain (:meth:`replace_policy`), which sends them the
        difference.
        """
        first = members[0].peer.info
        g = UpdateGroup(self.rib, key, self.family, first, self._negotiated, self.policy, self.mrai)
        g.out = None if self.out is None else dict(self.out)
        g.pending_old = dict(self.pending_old)
        g._sent = self._sent
        g._solo_rule = self._solo_rule
        g._redo = dict(self._redo)
        g.pending = self.pending[self._pos:]
        for m in members:
            self.leave(m)
            g.members.append(m)
            g._peers_in.add(m.peer)
            if m.behind:
                g._behind += 1
            m.eor_at = max(0, m.eor_at - self._pos)
        g._schedule(0.0)
        return g

    # -- change intake ------------------------------------------------------

    def changed(self, prefixes: list, first: dict | None = None) -> None:
        """``prefixes`` changed in the Loc-RIB; ``first``: prefix -> the best path
        each had before, in this group's family (the RIB's per-turn record), for
        the derived view."""
        if self.out is None:
            if first is None:
                raise ValueError("a derived Adj-RIB-Out needs the Loc-RIB's old best paths")
            pend = self.pending_old
            # (Direct dict calls: compiled, each is one C call and one probe.)
            for p in prefixes:
                pend.setdefault(p, first.get(p))
        self.pending.extend(prefixes)
        self._schedule(self.mrai)

    def has_work(self) -> bool:
        if self._pos < len(self.pending):
            return True
        return any((m.dump is not None or m.eor_pending) and not m.behind for m in self.members)

    def _schedule(self, delay: float) -> None:
        if self._handle is None and self.members:
            self._handle = self.rib.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        for m in self.members:
            if m.behind:
                if m.writable():
                    self._catch_up(m)
            elif not m.writable():
                # One slow peer must not hold the group back: the others go
                # on, it is caught up from ``out`` when it resumes.
                self._fall_behind(m)
        budget = self.rib.options.chunk_size
        # Catch up: changes that piled up while the MRAI timer ran (or a
        # burst the RIB handled faster) go out at up to twice the rate the
        # RIB queues them (at most one chunk per turn per group), so the
        # queue drains instead of standing behind the Loc-RIB for the whole
        # of a table load: the peers see each change sooner, and the queue
        # and its dicts stay small.
        waiting = len(self.pending) - self._pos
        if waiting > budget:
            budget += min(waiting - budget, budget)
        self.flush(budget)
        if self.has_work():
            self._schedule(0.0)

    # -- export -------------------------------------------------------------

    def _path_rules(self, path: Path) -> dict | None:
        """Path-level rules (communities, OTC, iBGP / reflection, what eBGP
        does not carry): the attribute changes, or None when the path is not sent."""
        a = path.attrs
        src = path.owner.info
        ebgp = self._ebgp
        # Every well-known community is 0xFFFFxxxx (RFC 1997): most sets have
        # none, and one byte search of the packed form says so.
        # find, not ``in`` (see PathAttributes.count_asn)
        if a.communities_packed.find(b"\xff\xff") >= 0:
            comms = a.communities
            if _NO_ADVERTISE in comms:
                return None
            if ebgp:
                if _NO_EXPORT in comms or _NO_EXPORT_SUBCONFED in comms:
                    return None
                if _NO_PEER in comms and self._role == Role.PEER:
                    return None
        changes: dict = {}
        if ebgp:
            role = self._role
            if role is not None:
                if a.otc is not None:
                    if role in _OTC_BLOCKED:
                        return None
                elif role in _OTC_ADDED:
                    changes["otc"] = self._local_as
            if not self.info.route_server_client and src is not LOCAL:
                changes["med"] = None  # RFC 4271 5.1.4: MED stays within the neighbouring AS
            changes["local_pref"] = None
            changes["originator_id"] = None
            changes["cluster_list"] = ()
        else:
            if src is not LOCAL and src.ibgp:
                if not (src.route_reflector_client or self.info.route_reflector_client):
                    return None  # RFC 4271 9.2: no iBGP -> iBGP without reflection
                changes["originator_id"] = a.originator_id or src.router_id
                changes["cluster_list"] = (self.rib.cluster_id,) + a.cluster_list
            if a.local_pref is None:
                changes["local_pref"] = self.rib.options.default_local_pref
        return changes

    def pre_policy(self, path: Path) -> PathAttributes | None:
        """``path``'s attributes as the export policy sees them (after the path-level rules), or None."""
        changes = self._path_rules(path)
        return None if changes is None else path.attrs.replace(**changes)

    def _session_rewrite(self, a: PathAttributes, src: PeerInfo, keep_next_hop: bool = False) -> dict:
        """Session-level rewriting of ``a`` (AS prepend, NEXT_HOP): the attribute changes.

        ``keep_next_hop``: the export policy set the NEXT_HOP; it stays.
        """
        changes: dict = {}
        nh = None if keep_next_hop else self._next_hop
        if self._ebgp:
            if not self.info.route_server_client:
                changes["as_path"] = prepend_as_path(a.as_path_packed, self._local_as)
                if nh is not None:
                    changes["next_hop"] = nh
                    changes["next_hop_ll"] = None
        else:
            reflected = src is not LOCAL and src.ibgp
            if ((self.info.next_hop_self and not reflected) or a.next_hop is None) and nh is not None:
                changes["next_hop"] = nh
                changes["next_hop_ll"] = None
        return changes

    def _export_ebgp(self, path: Path) -> PathAttributes | None:
        """_path_rules then _session_rewrite for eBGP to a peer that is not a
        route-server client, in one step: the full-table case."""
        a = path.attrs
        comms = a.communities_packed
        role = self._role
        if comms.find(b"\xff\xff") >= 0:  # see _path_rules
            wk = a.communities
            if (
                _NO_ADVERTISE in wk or _NO_EXPORT in wk or _NO_EXPORT_SUBCONFED in wk
                or (_NO_PEER in wk and role == Role.PEER)
            ):
                return None
        otc = a.otc
        if role is not None:
            if otc is not None:
                if role in _OTC_BLOCKED:
                    return None
            elif role in _OTC_ADDED:
                otc = self._local_as
        nh = self._next_hop
        if nh is None:
            if self._no_next_hop:
                return None
            nh = a.next_hop
            ll = a.next_hop_ll
        else:
            ll = None
        return PathAttributes(
            a.origin, prepend_as_path(a.as_path_packed, self._local_as), nh,
            # RFC 4271 5.1.4: MED stays within the neighbouring AS
            a.med if path.owner.info is LOCAL else None,
            None, comms, a.large_communities_packed, a.ext_communities, a.atomic_aggregate, a.aggregator,
            None, (), otc, ll, a.unknown,
        )

    def export(self, path: Path, prefix: Any) -> PathAttributes | None:
        """The attributes this group sends ``path`` with, or None when a rule or the policy stops it."""
        return self._export_with(self.policy, self._batch, path, prefix)

    def _export_sent(self, policy: Chain | None, path: Path, prefix: Any) -> PathAttributes | None:
        """What was sent for ``path`` when it went out with ``policy`` (None: the current chain)."""
        if policy is None or policy is self.policy:
            return self._export_with(self.policy, self._batch, path, prefix)
        batch = self._old_batches.get(policy)
        if batch is None:
            batch = self._old_batches[policy] = {}
        return self._export_with(policy, batch, path, prefix)

    def _export_with(self, policy: Chain, batch: dict, path: Path, prefix: Any) -> PathAttributes | None:
        if policy.accepts_all:
            a = batch.get(path, _MISSING)
            if a is _MISSING:
                if self._plain_ebgp:
                    a = batch[path] = self._export_ebgp(path)
                else:
                    changes = self._path_rules(path)
                    if changes is None:
                        a = batch[path] = None
                    else:
                        a0 = path.attrs
                        changes.update(self._session_rewrite(a0, path.owner.info))
                        a = batch[path] = a0.replace(**changes)
            return a
        if policy.rejects_all:
            return None
        key = (path, 1)
        pre = batch.get(key, _MISSING)
        if pre is _MISSING:
            changes = self._path_rules(path)
            pre = batch[key] = None if changes is None else path.attrs.replace(**changes)
        if pre is None:
            return None
        members = self.members
        res = policy(members[0].peer.info if members else self.info, self.family, prefix, pre)
        if res is None:
            return None
        # Share one final attribute set per distinct policy outcome.
        okey = (path, res)
        a = batch.get(okey)
        if a is None:
            # A NEXT_HOP the policy set wins over the session's (next-hop-self,
            # eBGP's own address) when the family can carry it.
            keep = res.next_hop != pre.next_hop and _valid_next_hop(
                res.next_hop, self.family, self._ext_nexthop)
            if self._no_next_hop and not keep:
                return None
            a = batch[okey] = res.replace(**self._session_rewrite(res, path.owner.info, keep))
        return a

    def _sendable(self, entry: Any, prefix: Any, policy: Chain | None = None) -> Any:
        """The path (or tuple of paths) to send for a Loc-RIB entry, or None.

        ``policy``: the chain it went out with (None: the current one).
        """
        if entry is None:
            return None
        rib = self.rib
        resolver = rib.options.resolver
        if not self.addpath:
            best = entry if entry.__class__ is Path else entry[0]
            if resolver is not None and not rib.eligible(best):
                return None
            if (len(self.members) == 1 and best.owner is self.members[0].peer
                    and (self.out is not None or self._solo_rule)):
                self._solo_skipped = True
                return None
            if policy is None:
                return best if self.export(best, prefix) is not None else None
            return best if self._export_sent(policy, best, prefix) is not None else None
        cands = (entry,) if entry.__class__ is Path else entry
        limit = rib.options.add_path_send_max or len(cands)
        chosen = []
        for p in cands:
            if resolver is not None and not rib.eligible(p):
                continue
            a = self.export(p, prefix) if policy is None else self._export_sent(policy, p, prefix)
            if a is not None:
                chosen.append(p)
                if len(chosen) >= limit:
                    break
        return tuple(chosen) or None

    # -- output -------------------------------------------------------------

    def flush(self, budget: int) -> int:
        """Send up to ``budget`` prefixes' worth of changes; return how many were looked at."""
        members = self.members
        if not members:
            self.pending = []
            self._pos = 0
            self.pending_old = {}
            return 0
        done = 0
        try:
            for m in members:
                if m.dump is not None and done < budget and not m.behind:
                    done += self._dump(m, budget - done)
            if done < budget and self._pos < len(self.pending):
                done += self._flush_pending(budget - done)
        finally:
            # Exported attributes live for one batch only.
            self._batch = {}
            if self._old_batches:
                self._old_batches = {}
        for m in members:
            if m.eor_pending and m.dump is None and self._pos >= m.eor_at and not m.behind:
                m.eor_pending = False
                marker = m.eor_message or pack_end_of_rib(*self.family)
                m.eor_message = None
                m.sink.send([marker])
        # Only once every queued change went out may the queue be reset: a
        # member's End-of-RIB can fall due while later changes still wait.
        if self._pos >= len(self.pending):
            self.pending = []
            self._pos = 0
            for m in members:
                m.eor_at = 0
        return done

    def _dump(self, m: Member, budget: int) -> int:
        keys = m.dump
        if keys is None:
            return 0
        start = m.dump_pos
        chunk = keys[start:start + budget]
        m.dump_pos = start + len(chunk)
        if m.dump_pos >= len(keys):
            m.dump = None
            m.dump_pos = 0
        out = self.out
        out_get: Any
        if out is None:
            loc_get = self.rib.loc_table(self.family).get
            view = self._sent_view
            out_get = lambda p: view(p, loc_get)  # noqa: E731
        else:
            out_get = out.get
        st = m.peer
        buckets: dict = {}
        export = self.export
        # Catching up (see _catch_up): what the member had, to withdraw what
        # it must not keep.
        missed = m.missed
        if missed is not None and m.dump is None:
            m.missed = None
        withdrawn: list = []
        addpath = self.addpath
        # With an accept-all chain the export is a function of the path alone
        # (as in _changes_fast): the prefixes of one path, which usually come
        # one after another, then cost one append each.
        by_path = self.policy.accepts_all
        last: Any = None
        last_append: Any = None
        for p in chunk:
            sent = out_get(p)
            had = missed.pop(p, None) if missed else None
            if sent is last and sent is not None:
                last_append(p)
                continue
            if addpath:
                now = set()
                for x in sent or ():
                    if x.owner is not st:
                        a = export(x, p)
                        pid = x.owner.tx_path_id(x.path_id)
                        now.add(pid)
                        buckets.setdefault(id(a), (a, []))[1].append((pid, p))
                for x in had or ():
                    pid = x.owner.tx_path_id(x.path_id)
                    if x.owner is not st and pid not in now:
                        withdrawn.append((pid, p))
            elif sent is not None and sent.owner is not st:
                a = export(sent, p)
                b = buckets.get(id(a))
                if b is None:
                    b = buckets[id(a)] = (a, [])
                b[1].append(p)
                if by_path:
                    last = sent
                    last_append = b[1].append
            elif had is not None and had.owner is not st:
                withdrawn.append(p)
        afi, safi = self.family
        msgs: list = pack_withdraw(afi, safi, withdrawn, self.neg) if withdrawn else []
        for attrs, prefixes in buckets.values():
            msgs.extend(pack_reach(afi, safi, attrs, prefixes, self.neg))
        if msgs:
            self.sent_updates += len(msgs)
            m.sink.send(msgs)
        return len(chunk)

    def _flush_pending(self, budget: int) -> int:
        pos = self._pos
        chunk = self.pending[pos:pos + budget]
        self._pos = pos + len(chunk)
        redo = self._redo
        out = self.out
        loc_get = self.rib.loc_table(self.family).get
        if self.policy.rejects_all and not redo:
            if out is None:
                # Nothing was or is sent: the waiting prefixes are done.
                pend_pop = self.pending_old.pop
                for p in chunk:
                    pend_pop(p, None)
            return len(chunk)
        out_get: Any
        if out is None:
            view = self._sent_view
            out_get = lambda p: view(p, loc_get)  # noqa: E731
        else:
            out_get = out.get
        if self._behind:
            for m in self.members:
                missed = m.missed
                if m.behind and missed is not None:
                    setdefault = missed.setdefault
                    for p in chunk:
                        setdefault(p, out_get(p))
        # id(attrs) -> (attrs, prefixes) for what goes to every member;
        # (attrs, target) -> prefixes and target -> withdrawals otherwise.
        ann: dict = {}
        odd: dict = {}
        wd_all: list = []
        wd: dict = {}
        # (id(attrs), source state) -> (attrs, state, prefixes): for every member
        # but the route's source (split horizon), packed once for all of them.
        excl: dict = {}
        if not self.addpath and self.policy.accepts_all and self.rib.options.resolver is None and not redo:
            self._changes_fast(chunk, self.rib.loc_table(self.family), ann, odd, wd_all, wd, excl)
        else:
            addpath = self.addpath
            export = self.export
            sent = self._export_sent
            sendable = self._sendable
            pend_pop = self.pending_old.pop
            nsent = 0
            for p in chunk:
                # The chain ``old`` went out with, when a policy change made it differ.
                was = redo.pop(p, None) if redo else None
                if out is None:
                    # Derived view (no ADD-PATH): a prefix no longer waiting,
                    # and not still to redo, was sent as it is now.
                    entry = pend_pop(p, _MISSING)
                    if entry is _MISSING:
                        if was is None:
                            continue
                        entry = loc_get(p)
                    old = sendable(entry, p, was)
                else:
                    old = out_get(p)
                new = sendable(loc_get(p), p)
                if new is old and (was is None or new is None):
                    continue
                if out is None:
                    nsent += (new is not None) - (old is not None)
                elif new is None:
                    del out[p]
                else:
                    out[p] = new
                if addpath:
                    self._diff_paths(p, old, new, odd, wd, was)
                    continue
                self._change(
                    p, old, new, None if old is None else sent(was, old, p),
                    None if new is None else export(new, p), ann, odd, wd_all, wd,
                )
            self._sent += nsent
        sends = [(a, None, prefixes) for a, prefixes in ann.values()]
        for key, prefixes in odd.items():
            sends.append((key[0], key[1], prefixes))
        sends.extend(excl.values())
        withdraws = [(None, wd_all)] if wd_all else []
        withdraws.extend(wd.items())
        self._send(sends, withdraws)
        return len(chunk)

    def _changes_fast(
        self, chunk: list, loc: dict, ann: dict, odd: dict, wd_all: list, wd: dict,
        excl: dict,
    ) -> None:
        # The common case of _flush_pending, inlined: best path only,
        # accept-all export policy, every next hop resolvable.  Most prefixes
        # of a table load are new and from a non-member: one append each.
        out = self.out
        out_get: Any = None if out is None else out.get
        pend_pop = self.pending_old.pop
        nsent = 0
        states = self._peers_in
        batch = self._batch
        # Methods and dict calls direct, not bound methods in locals:
        # compiled, those are C calls, a bound method a Python-level call.
        plain = self._plain_ebgp
        solo = (
            self.members[0].peer if len(self.members) == 1 and (out is not None or self._solo_rule) else None
        )
        by_peer = {m.peer: m for m in self.members}
        # The path last announced to every member, and its prefix list's
        # append: the prefixes of one UPDATE usually come one after another.
        last: Any = None
        last_list: list = []
        new: Any
        new_a: Any
        old: Any
        for p in chunk:
            if out_get is None:
                # Derived view: what was sent is the waiting prefix's old best
                # path, as exported (a prefix no longer waiting is up to date).
                old = pend_pop(p, _MISSING)
                if old is _MISSING:
                    continue
                entry = loc.get(p)
                if old is not None:
                    if entry is not None and (entry if entry.__class__ is Path else entry[0]) is old:
                        # The same best path (another candidate changed): as sent.
                        continue
                    if old.owner is solo:
                        old = None
                    else:
                        old_a = batch.get(old, _MISSING)
                        if old_a is _MISSING:
                            if plain:
                                old_a = batch[old] = self._export_ebgp(old)
                            else:
                                old_a = self.export(old, p)
                        if old_a is None:
                            old = None
            else:
                old = out_get(p)
                entry = loc.get(p)
            if entry is None:
                if old is None:
                    continue
                new = new_a = None
            else:
                new = entry if entry.__class__ is Path else entry[0]
                if new.owner is solo:
                    # Split horizon with a single member: nothing to keep.
                    self._solo_skipped = True
                    if old is None:
                        continue
                    new = new_a = None
                elif new is old:
                    # Export is a function of the path: nothing changed.
                    continue
                elif new is last and old is None:
                    if out is None:
                        nsent += 1
                    else:
                        out[p] = new
                    last_list.append(p)
                    continue
                else:
                    new_a = batch.get(new, _MISSING)
                    if new_a is _MISSING:
                        if plain:
                            new_a = batch[new] = self._export_ebgp(new)
                        else:
                            new_a = self.export(new, p)
                    if new_a is None:
                        if old is None:
                            continue
                        new = None
            if out is None:
                nsent += (new is not None) - (old is not None)
            elif new is None:
                del out[p]
            else:
                out[p] = new
            if new is not None:
                if old is None:
                    owner = new.owner
                    if owner not in states:
                        b = ann.get(id(new_a))
                        if b is None:
                            b = ann[id(new_a)] = (new_a, [p])
                        else:
                            b[1].append(p)
                        last = new
                        last_list = b[1]
                        continue
                    # New route from a member: to everyone else in the group.
                    key = (id(new_a), owner)
                    e = excl.get(key)
                    if e is None:
                        e = excl[key] = (new_a, owner, [p])
                    else:
                        e[2].append(p)
                    last = new
                    last_list = e[2]
                    continue
            # ``old`` was sent (to every member but its source).
            gone = old.owner
            if new is None:
                # A withdrawal needs no export: to every member but the
                # source of what was sent (split horizon), in one UPDATE.
                if gone in states:
                    wd_excl = wd.get(gone)
                    if wd_excl is None:
                        wd[gone] = [p]
                    else:
                        wd_excl.append(p)
                else:
                    wd_all.append(p)
                continue
            old_a = batch.get(old, _MISSING)
            if old_a is _MISSING:
                old_a = self.export(old, p)
            owner = new.owner
            if (owner in states or gone in states) and old_a != new_a:
                # The best path moved to, from or within a member's route: the
                # new attributes go to every member but its source, packed once
                # for all of them; the source drops what it had been sent.
                if owner not in states:
                    b = ann.get(id(new_a))
                    if b is None:
                        ann[id(new_a)] = (new_a, [p])
                    else:
                        b[1].append(p)
                    continue
                key = (id(new_a), owner)
                e = excl.get(key)
                if e is None:
                    e = excl[key] = (new_a, owner, [p])
                else:
                    e[2].append(p)
                if owner is not gone:
                    src = by_peer[owner]
                    wd_src = wd.get(src)
                    if wd_src is None:
                        wd[src] = [p]
                    else:
                        wd_src.append(p)
                continue
            self._change(p, old, new, old_a, new_a, ann, odd, wd_all, wd)
        self._sent += nsent

    def _change(
        self, p: Any, old: Any, new: Any, old_a: Any, new_a: Any,
        ann: dict, odd: dict, wd_all: list, wd: dict,
    ) -> None:
        """Sort one prefix whose sent path changed from ``old`` to ``new`` (one of them may be None)."""
        if old_a is not None and new_a is not None and old.owner is new.owner and old_a == new_a:
            return
        states = self._peers_in
        if (old is None or old.owner not in states) and (new is None or new.owner not in states):
            if new is None:
                wd_all.append(p)
            else:
                b = ann.get(id(new_a))
                if b is None:
                    ann[id(new_a)] = (new_a, [p])
                else:
                    b[1].append(p)
            return
        # Split horizon: the source peer of the old or new route is a
        # member, so its view differs from everyone else's.
        for m in self.members:
            if m.behind:
                continue
            st = m.peer
            cur = None if old is None or old.owner is st else old_a
            want = None if new is None or new.owner is st else new_a
            if cur is want or (cur is not None and want is not None and cur == want):
                continue
            if want is None:
                wd.setdefault(m, []).append(p)
            else:
                odd.setdefault((want, m), []).append(p)

    def _diff_paths(self, p: Any, old: Any, new: Any, odd: dict, wd: dict, was: Chain | None = None) -> None:
        # RFC 7911: each path is its own (path id, prefix) route, with a path
        # id stable per source.  A path never goes to the member it came from.
        # ``was``: the chain ``old`` was sent with, after a policy change.
        states = self._peers_in
        export = self.export
        before = {x.owner.tx_path_id(x.path_id): x for x in old} if old else {}
        for x in new or ():
            pid = x.owner.tx_path_id(x.path_id)
            prev = before.pop(pid, None)
            a = export(x, p)
            if (prev is x and was is None) or (prev is not None and self._export_sent(was, prev, p) == a):
                continue
            target = x.owner if x.owner in states else None
            odd.setdefault((a, target), []).append((pid, p))
        for pid, x in before.items():
            target = x.owner if x.owner in states else None
            wd.setdefault(target, []).append((pid, p))

    def _send(self, sends: list, withdraws: list) -> None:
        """Pack and send; a target is None (every member), a Member (only it)
        or a peer state (every member but that peer: split horizon)."""
        if (not sends and not withdraws) or self._behind == len(self.members):
            return
        afi, safi = self.family
        neg = self.neg
        common: list = []
        own: dict = {}
        states_of = {m.peer: m for m in self.members}

        def add(target: Any, msgs: list) -> None:
            if target is None:
                common.extend(msgs)
            elif isinstance(target, Member):
                own.setdefault(target, []).extend(msgs)
            else:
                skip = states_of.get(target)
                for m in self.members:
                    if m is not skip:
                        own.setdefault(m, []).extend(msgs)

        for target, prefixes in withdraws:
            add(target, pack_withdraw(afi, safi, prefixes, neg))
        for attrs, target, prefixes in sends:
            if target is None:  # the common case, one UPDATE per attribute set
                common += pack_reach(afi, safi, attrs, prefixes, neg)
            else:
                add(target, pack_reach(afi, safi, attrs, prefixes, neg))
        for m in self.members:
            if m.behind:
                continue
            msgs = common + own[m] if m in own else common
            if msgs:
                self.sent_updates += len(msgs)
                m.sink.send(msgs)

    def adj_rib_out(self, member: Member | None = None, prefixes: Iterable | None = None) -> dict:
        """prefix (or (path id, prefix)) -> attributes as sent (to ``member``: split horizon applied).

        ``prefixes``: only these (a slice at a time, as BMP's table dump reads it).
        """
        st = member.peer if member is not None else None
        res = {}
        redo_get = self._redo.get
        export = self._export_sent
        out = self.out
        items: Iterable
        if out is None:
            loc = self.rib.loc_table(self.family)
            loc_get = loc.get
            view = self._sent_view
            if prefixes is None:
                keys = list(loc)
                keys.extend(p for p in self.pending_old if p not in loc)
            else:
                keys = list(prefixes)
            items = ((p, s) for p in keys if (s := view(p, loc_get)) is not None)
        else:
            items = out.items() if prefixes is None else ((p, out[p]) for p in prefixes if p in out)
        try:
            for p, sent in items:
                was = redo_get(p)
                if self.addpath:
                    for x in sent:
                        if x.owner is not st:
                            res[(x.owner.tx_path_id(x.path_id), p)] = export(was, x, p)
                elif sent.owner is not st:
                    res[p] = export(was, sent, p)
        finally:
            self._batch = {}
            self._old_batches = {}
        return res
