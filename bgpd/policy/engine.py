"""The policy compiler: the policy records of `bgpd.config` -> plain callables.

RFC 4271 section 9.1.1 (import: Adj-RIB-In -> Loc-RIB) and 9.1.3 (export:
Loc-RIB -> Adj-RIB-Out) leave the policy to the operator; this module turns
one configured policy into a :class:`CompiledPolicy` with the RIB's calling
convention ``policy(peer, family, prefix, attrs) -> attrs | None``.  Terms
are tried in order; a matching term applies its actions in order and then
accepts, rejects or continues with the next term; when no term decides the
policy's ``default`` does, with the changes made by the terms that continued.

What is matched: prefixes (RFC 4271 section 4.3 NLRI), AS_PATH (section
5.1.2; RFC 6793 4-octet ASNs), ORIGIN, MED, LOCAL_PREF, NEXT_HOP, the
communities of RFC 1997 (well-known values, RFC 1997 / RFC 7999), RFC 4360
and RFC 8092, the RPKI validation state of RFC 6811 and the ASPA state of
draft-ietf-sidrops-aspa-verification (hooks: the validators are passed in by
bgpd.rpki; without them every route is "not-found" / "unknown").

Speed (DESIGN.md: a full table through an import filter):

- Nothing walks the config per route: every condition and action is a
  closure built once, sets are frozensets or a :class:`PrefixIndex`.
- AS path regexes are compiled once and their result cached per AS path.
- A policy whose outcome cannot depend on the prefix caches its result per
  attribute object (the RIB interns attributes, so the thousands of prefixes
  of one UPDATE share one).  A policy with prefix conditions caches only the
  prefix-independent part: per attribute object, which terms' other
  conditions hold, and each term's rewrite; the prefix conditions run for
  every route, never from a cache.  Rewrites are memoised, so every prefix
  sharing one input attribute object gets one output object too.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bgpd.wire.attributes import PathAttributes
from bgpd.wire.constants import SegmentType
from bgpd.wire.prefix_index import PrefixIndex

__all__ = [
    "CompiledPolicy",
    "ASPA_STATES",
    "AspaValidator",
    "RPKI_STATES",
    "RpkiValidator",
    "as_path_text",
    "compile_policies",
    "compile_policy",
    "route_type",
]

# The records compiled here are bgpd.config's (PolicySets, PolicyDef, Term, ...),
# read by attribute only: the config layer sits above this one.
AddressSet = AsPathSet = CommunitySet = PolicyDef = PolicySets = Range = SetRef = Term = Any

RPKI_STATES = ("valid", "invalid", "not-found")  # RFC 6811 section 2
#: ``validator(family, prefix, attrs) -> one of RPKI_STATES``; the RPKI issue provides one.
RpkiValidator = Callable[[tuple[int, int], bytes, PathAttributes], str]
ASPA_STATES = ("valid", "invalid", "unknown")  # draft-ietf-sidrops-aspa-verification
#: ``validator(peer, family, attrs) -> one of ASPA_STATES``: the procedure follows the peer's role.
AspaValidator = Callable[[Any, tuple[int, int], PathAttributes], str]
#: Conditions whose answer changes when RPKI data does (the RIB revalidates those chains).
VALIDATION_CONDITIONS = frozenset({"rpki", "aspa"})

# Conditions that read the peer, the family, the prefix (never cached per attrs).
PEER_CONDITIONS = frozenset({
    "peer_address", "neighbor_set", "peer_as", "route_type", "first_as_is_peer",
    "aspa",  # the procedure (upstream / downstream) follows the peer's role
})
FAMILY_CONDITIONS = frozenset({"family", "next_hop_set"})
PREFIX_CONDITIONS = frozenset({"prefix_set", "prefix_length", "rpki"})

_MISS: Any = object()
# The reuse the caches serve is local (the prefixes of one UPDATE, a peer's
# burst of UPDATEs with one attribute set), so a bound well under a full
# table's ~400,000 attribute sets keeps them small (tens of bytes an entry)
# without losing hits; a full cache is emptied, not aged.
_CACHE_MAX = 1 << 16
_AS_SEQUENCE = int(SegmentType.AS_SEQUENCE)
_AS_SET = int(SegmentType.AS_SET)
_U32 = 0xFFFFFFFF


def route_type(peer: Any) -> str:
    """``"local"`` for routes this speaker originates, else ``"ibgp"`` or ``"ebgp"``."""
    if getattr(peer, "address", None) == "local":
        return "local"
    return "ibgp" if peer.ibgp else "ebgp"


def as_path_text(as_path: Iterable[tuple[int, tuple[int, ...]]]) -> str:
    """The AS path as regexes see it: ASNs separated by one space.

    An AS_SET is written ``{ 1 2 }`` and a confederation segment ``( 1 2 )``,
    the members space-separated too, so ``(^| )64496( |$)`` finds an ASN
    wherever it is.
    """
    out = []
    for seg_type, asns in as_path:
        body = " ".join(map(str, asns))
        if seg_type == _AS_SEQUENCE:
            out.append(body)
        elif seg_type == _AS_SET:
            out.append("{ " + body + " }")
        else:
            out.append("( " + body + " )")
    return " ".join(s for s in out if s)


def _address_key(text: str | None) -> tuple[int, bytes] | None:
    if not text:
        return None
    try:
        if ":" in text:
            return 2, b"\x80" + socket.inet_pton(socket.AF_INET6, text.split("%")[0])
        return 1, b"\x20" + socket.inet_aton(text)
    except OSError:
        return None


class _BoundedCache(dict):
    """A dict emptied when full: results are cheap to recompute, memory is not."""

    __slots__ = ()

    def put(self, key: object, value: object) -> None:
        if len(self) >= _CACHE_MAX:
            self.clear()
        self[key] = value


# -- sets ---------------------------------------------------------------------


class _Sets:
    """The compiled form of :class:`PolicySets`: one matcher per set, built lazily, once."""

    def __init__(self, sets: PolicySets) -> None:
        self.sets = sets
        self._built: dict[tuple[str, str], Any] = {}

    def get(self, kind: str, name: str) -> Any:
        key = (kind, name)
        m = self._built.get(key)
        if m is None:
            found = self.sets.lookup(kind, name)
            if found is None:
                raise KeyError(f"unknown {kind} set {name!r}")
            m = self._built[key] = _BUILDERS[kind](found)
        return m


def _prefix_matcher(ps: Any) -> Callable[[int, bytes], bool]:
    # One index per AFI; each stored prefix holds a bitmask of the lengths it
    # accepts (bit n set: a /n inside it matches), so entries with the same
    # network and different ranges fold into one probe.
    indexes: dict[int, PrefixIndex] = {}
    for e in ps.entries:
        index = indexes.setdefault(e.afi, PrefixIndex())
        mask = index.get(e.key, 0)
        for n in range(e.ge, e.le + 1):
            mask |= 1 << n
        index[e.key] = mask

    by_afi = {afi: index.covered_with_length for afi, index in indexes.items()}
    never = _never

    def match(afi: int, key: bytes) -> bool:
        return by_afi.get(afi, never)(key)

    return match


def _never(key: bytes) -> bool:
    return False


def _zero(key: bytes) -> int:
    return 0


def _address_matcher(s: AddressSet) -> Callable[[str | None], bool]:
    indexes: dict[int, PrefixIndex] = {}
    for e in s.entries:
        indexes.setdefault(e.afi, PrefixIndex())[e.key] = True
    seen: dict[str | None, bool] = {}

    def match(address: str | None) -> bool:
        r = seen.get(address)
        if r is None:
            ak = _address_key(address)
            index = indexes.get(ak[0]) if ak else None
            r = bool(index is not None and index.covering_values(ak[1]))
            if len(seen) > 4096:
                seen.clear()
            seen[address] = r
        return r

    return match


def _as_path_matcher(s: AsPathSet) -> tuple[Callable[[Any], int], int]:
    """A function counting how many members of the set an AS path matches, and the member count."""
    regexes = [re.compile(r) for r in s.regex]
    origin = frozenset(s.origin_as)
    neighbor = frozenset(s.neighbor_as)
    contains = frozenset(s.contains_as)
    length, as_set = s.length, s.as_set
    cache = _BoundedCache()

    def count(a: PathAttributes) -> int:
        # Keyed by the packed path: a hit decodes nothing, and bytes hash
        # faster than the tuples.
        packed = a.as_path_packed
        n = cache.get(packed)
        if n is None:
            path = a.as_path
            n = 0
            if regexes:
                text = as_path_text(path)
                n += sum(1 for r in regexes if r.search(text))
            if origin:
                n += a.origin_as in origin
            if neighbor:
                n += a.neighbor_as in neighbor
            if contains:
                n += len(contains.intersection(a.all_asns()))
            if length is not None:
                n += a.as_path_length in length
            if as_set:
                n += any(t == _AS_SET for t, _ in path)
            cache.put(packed, n)
        return n

    return count, s.n_members


def community_pattern_matcher(kind: str, members: Iterable[Any]) -> Callable[[Any], bool]:
    """One predicate over a single community value: exact members or ``None``-wildcard patterns."""
    exact = set()
    patterns = []
    for m in members:
        if kind == "community":
            if isinstance(m, int):
                exact.add(m)
            else:
                hi, lo = m
                mask = (0xFFFF0000 if hi is not None else 0) | (0xFFFF if lo is not None else 0)
                patterns.append((mask, ((hi or 0) << 16) | (lo or 0)))
        elif kind == "large_community":
            if None in m:
                patterns.append(m)
            else:
                exact.add(m)
        else:
            if isinstance(m, bytes):
                exact.add(m)
            else:
                patterns.append(m[0])
    exact_f = frozenset(exact)
    if kind == "community":
        def one(c: Any) -> bool:
            return c in exact_f or any((c & mask) == v for mask, v in patterns)
    elif kind == "large_community":
        def one(c: Any) -> bool:
            if c in exact_f:
                return True
            for p in patterns:
                if all(x is None or x == y for x, y in zip(p, c, strict=True)):
                    return True
            return False
    else:
        def one(c: Any) -> bool:
            return c in exact_f or any(c.startswith(p) for p in patterns)
    return one


def _community_matcher(s: CommunitySet) -> tuple[Callable[[tuple], str], list]:
    members = list(s.members)
    one_by_member = [community_pattern_matcher(s.kind, [m]) for m in members]
    one_any = community_pattern_matcher(s.kind, members)
    return one_any, one_by_member


_BUILDERS: dict[str, Callable[[Any], Any]] = {
    "prefix": _prefix_matcher,
    "as_path": _as_path_matcher,
    "community": _community_matcher,
    "large_community": _community_matcher,
    "ext_community": _community_matcher,
    "next_hop": _address_matcher,
    "neighbor": _address_matcher,
}

_COMMUNITY_FIELD = {
    "community": "communities",
    "large_community": "large_communities",
    "ext_community": "ext_communities",
}


# -- conditions ----------------------------------------------------------------

Cond = Callable[[Any, tuple[int, int], bytes, PathAttributes], bool]


class _StateCondition:
    """A condition on a validation state that can also say the state (for explain)."""

    __slots__ = ("state", "states")

    def __init__(self, state: Callable[[Any, tuple[int, int], bytes, PathAttributes], str],
                 states: frozenset[str]) -> None:
        self.state = state
        self.states = states

    def __call__(self, p: Any, f: tuple[int, int], k: bytes, a: PathAttributes) -> bool:
        return self.state(p, f, k, a) in self.states


def _stateful(state: Callable[[Any, tuple[int, int], bytes, PathAttributes], str],
              states: frozenset[str]) -> Cond:
    return _StateCondition(state, states)


def state_of(
    cond: Any, peer: Any, family: tuple[int, int], prefix: bytes, attrs: PathAttributes,
) -> str | None:
    """The validation state an ``rpki`` / ``aspa`` condition looked at, None for other conditions."""
    if isinstance(cond, _StateCondition):
        return cond.state(peer, family, prefix, attrs)
    return None


def _mode(ref: SetRef, hit: bool) -> bool:
    return not hit if ref.mode == "invert" else hit


def _condition(
    key: str, value: Any, sets: _Sets, rpki: RpkiValidator | None, aspa: AspaValidator | None = None,
) -> Cond:
    """One condition as ``f(peer, family, prefix, attrs) -> bool``."""
    if key == "prefix_set":
        match_prefix = sets.get("prefix", value.name)
        invert = value.mode == "invert"
        return lambda p, f, k, a: match_prefix(f[0], k) is not invert
    if key == "prefix_length":
        rng: Range = value
        return lambda p, f, k, a: k[0] in rng
    if key == "rpki":
        states = frozenset(value)
        if rpki is None:
            return _stateful(lambda p, f, k, a: "not-found", states)
        return _stateful(lambda p, f, k, a: rpki(f, k, a), states)
    if key == "aspa":
        states = frozenset(value)
        if aspa is None:
            return _stateful(lambda p, f, k, a: "unknown", states)
        return _stateful(lambda p, f, k, a: aspa(p, f, a), states)
    if key == "as_path_set":
        count, total = sets.get("as_path", value.name)
        if value.mode == "all":
            return lambda p, f, k, a: count(a) == total
        if value.mode == "invert":
            return lambda p, f, k, a: count(a) == 0
        return lambda p, f, k, a: count(a) > 0
    if key in ("community_set", "large_community_set", "ext_community_set"):
        kind = key[: -len("_set")]
        field = _COMMUNITY_FIELD[kind]
        one_any, per_member = sets.get(kind, value.name)
        if value.mode == "all":
            return lambda p, f, k, a: all(any(m(c) for c in getattr(a, field)) for m in per_member)
        def hit(p: Any, f: tuple[int, int], k: bytes, a: PathAttributes) -> bool:
            return any(one_any(c) for c in getattr(a, field))

        if value.mode == "invert":
            return lambda p, f, k, a: not hit(p, f, k, a)
        return hit
    if key == "next_hop_set":
        match_nh = sets.get("next_hop", value.name)
        return lambda p, f, k, a: _mode(value, match_nh(a.next_hop))
    if key == "neighbor_set":
        match_peer = sets.get("neighbor", value.name)
        return lambda p, f, k, a: _mode(value, match_peer(p.address))
    if key == "family":
        families = frozenset(value)
        return lambda p, f, k, a: f in families
    if key == "peer_address":
        addresses = frozenset(value)
        return lambda p, f, k, a: p.address in addresses
    if key == "peer_as":
        asns = frozenset(value)
        return lambda p, f, k, a: p.remote_as in asns
    if key == "route_type":
        types = frozenset(value)
        return lambda p, f, k, a: route_type(p) in types
    if key == "origin":
        origins = frozenset(value)
        return lambda p, f, k, a: a.origin in origins
    if key == "med":
        return lambda p, f, k, a: a.med in value
    if key == "local_pref":
        return lambda p, f, k, a: a.local_pref in value
    if key == "as_path_length":
        return lambda p, f, k, a: a.as_path_length in value
    if key == "first_as_is_peer":
        want = bool(value)
        return lambda p, f, k, a: (a.neighbor_as == p.remote_as and a.neighbor_as is not None) is want
    raise ValueError(f"unknown condition {key!r}")


# -- actions ---------------------------------------------------------------------

Action = Callable[[Any, tuple[int, int], PathAttributes], PathAttributes]


def _dedupe(values: Iterable[Any]) -> tuple:
    return tuple(dict.fromkeys(values))


def _prepend(path: Any, asn: int, count: int) -> Any:
    if path and path[0][0] == _AS_SEQUENCE and len(path[0][1]) + count <= 255:
        return ((_AS_SEQUENCE, (asn,) * count + tuple(path[0][1])),) + tuple(path[1:])
    return ((_AS_SEQUENCE, (asn,) * count),) + tuple(path)


def _self_address(peer: Any, family: tuple[int, int]) -> str | None:
    local = getattr(peer, "local_address", None)
    if family[0] == 2:
        if local and ":" in local:
            return local
        return getattr(peer, "next_hop6", None)
    return local if local and ":" not in local else None


def _action(key: str, value: Any, sets: _Sets) -> Action:
    """One action as ``f(peer, family, attrs) -> attrs``."""
    for kind, field in _COMMUNITY_FIELD.items():
        plural = field  # communities, large_communities, ext_communities
        if key == plural:
            new = tuple(value)
            return lambda p, f, a, field=field: a.replace(**{field: new})
        # An action that changes nothing returns the same object: no copy,
        # and the policy goes on with the attributes (and caches) it has.
        if key == "add_" + plural:
            added = tuple(value)

            def add(p: Any, f: tuple[int, int], a: PathAttributes, field: str = field,
                    added: tuple = added) -> PathAttributes:
                have = getattr(a, field)
                new = _dedupe(have + added)
                return a if new == have else a.replace(**{field: new})
            return add
        if key == "remove_" + plural:
            one_any, _ = sets.get(kind, value)

            def remove(p: Any, f: tuple[int, int], a: PathAttributes, field: str = field,
                       m: Callable[[Any], bool] = one_any) -> PathAttributes:
                have = getattr(a, field)
                if not have:
                    return a
                kept = tuple(c for c in have if not m(c))
                return a if len(kept) == len(have) else a.replace(**{field: kept})
            return remove
        if key == "clear_" + plural:
            return lambda p, f, a, field=field: a if not getattr(a, field) else a.replace(**{field: ()})
    if key == "local_pref":
        return lambda p, f, a: a.replace(local_pref=value)
    if key == "med":
        return lambda p, f, a: a.replace(med=value)
    if key == "med_add":
        return lambda p, f, a: a.replace(med=min(_U32, (a.med or 0) + value))
    if key == "med_subtract":
        return lambda p, f, a: a.replace(med=max(0, (a.med or 0) - value))
    if key == "prepend":
        asn, count = value
        if asn is None:
            return lambda p, f, a: a.replace(as_path=_prepend(a.as_path, p.local_as, count))
        return lambda p, f, a: a.replace(as_path=_prepend(a.as_path, asn, count))
    if key == "next_hop":
        if value == "self":
            def next_hop_self(p: Any, f: tuple[int, int], a: PathAttributes) -> PathAttributes:
                address = _self_address(p, f)
                return a if address is None else a.replace(next_hop=address, next_hop_ll=None)
            return next_hop_self
        return lambda p, f, a: a.replace(next_hop=value, next_hop_ll=None)
    if key == "origin":
        return lambda p, f, a: a.replace(origin=value)
    if key == "kernel_source":
        # Not an attribute: only the kernel's export (CompiledPolicy.kernel_decision) reads it.
        return _keep
    raise ValueError(f"unknown action {key!r}")


def _keep(p: Any, f: tuple[int, int], a: PathAttributes) -> PathAttributes:
    return a


# -- terms and policies -------------------------------------------------------------


class CompiledTerm:
    """One term: its conditions split by what they read, its actions, its result."""

    __slots__ = (
        "name", "term", "attr_conds", "prefix_conds", "prefix_test", "actions", "result",
        "set_mask", "set_want", "kernel_source",
    )

    def __init__(self, term: Term, sets: _Sets, rpki: RpkiValidator | None,
                 aspa: AspaValidator | None = None) -> None:
        self.name = term.name
        self.term = term
        self.attr_conds: list[tuple[str, Cond]] = []
        self.prefix_conds: list[tuple[str, Cond]] = []
        for key, value in term.conditions:
            target = self.prefix_conds if key in PREFIX_CONDITIONS else self.attr_conds
            target.append((key, _condition(key, value, sets, rpki, aspa)))
        self.actions = [(key, _action(key, value, sets)) for key, value in term.actions]
        #: the last ``kernel_source`` action's address (RTA_PREFSRC), or None
        self.kernel_source = None
        for key, value in term.actions:
            if key == "kernel_source":
                self.kernel_source = value
        self.result = term.result
        # CompiledPolicy turns prefix_set conditions into bits of its one
        # per-route classification (set_mask / set_want); prefix_test is the rest.
        self.set_mask = self.set_want = 0
        self.use_prefix_test(self.prefix_conds)

    def use_prefix_test(self, conds: list[tuple[str, Cond]]) -> None:
        """One callable for ``conds`` (the common case is one: no loop then)."""
        if not conds:
            self.prefix_test = None
        elif len(conds) == 1:
            self.prefix_test = conds[0][1]
        else:
            def test(peer: Any, family: tuple[int, int], prefix: bytes, attrs: PathAttributes) -> bool:
                return all(cond(peer, family, prefix, attrs) for _key, cond in conds)
            self.prefix_test = test

    def attr_match(self, peer: Any, family: tuple[int, int], attrs: PathAttributes) -> bool:
        for _key, cond in self.attr_conds:
            if not cond(peer, family, b"", attrs):
                return False
        return True

    def prefix_match(self, peer: Any, family: tuple[int, int], prefix: bytes, attrs: PathAttributes) -> bool:
        for _key, cond in self.prefix_conds:
            if not cond(peer, family, prefix, attrs):
                return False
        return True

    def apply(self, peer: Any, family: tuple[int, int], attrs: PathAttributes) -> PathAttributes:
        for _key, action in self.actions:
            attrs = action(peer, family, attrs)
        return attrs


class CompiledPolicy:
    """One policy, callable as the RIB calls policies.

    ``depends_on_peer``: the result can differ between two peers for the same
    route (the RIB must not share one export result across an update group
    then).  ``depends_on_prefix``: some condition reads the prefix.
    """

    def __init__(
        self, definition: PolicyDef, sets: PolicySets | _Sets, rpki: RpkiValidator | None = None,
        aspa: AspaValidator | None = None,
    ) -> None:
        compiled_sets = sets if isinstance(sets, _Sets) else _Sets(sets)
        self.name = definition.name
        self.definition = definition
        self.terms = [CompiledTerm(t, compiled_sets, rpki, aspa) for t in definition.terms]
        self._classify_index = self._prefix_classes(compiled_sets)
        # One walk per route, probing only the lengths stored near it (IPv4
        # by its first octet, IPv6 by its first 16 bits).
        self._classifiers = {
            afi: index.classifier(8 if afi == 1 else 16) for afi, index in self._classify_index.items()
        }
        self._attr_tests = [(i, tuple(c for _k, c in t.attr_conds)) for i, t in enumerate(self.terms)]
        self._candidate_tuples: dict[tuple[int, ...], tuple[int, ...]] = {}
        # Prefix sets are the only prefix conditions: many() can group prefixes by set membership.
        self._only_sets = all(t.prefix_test is None for t in self.terms)
        self.default_accept = definition.default == "accept"
        conds = {k for t in definition.terms for k, _ in t.conditions}
        # Only our own AS (prepend N) and our own address (next-hop-self) read the session.
        session_actions = {
            k for t in definition.terms for k, v in t.actions
            if (k == "prepend" and v[0] is None) or (k == "next_hop" and v == "self")
        }
        self.depends_on_prefix = bool(conds & PREFIX_CONDITIONS)
        #: Reads an RPKI / ASPA state: the RIB keeps what it needs to run it again
        #: when those change (Rib.revalidate), and the caches are cleared then.
        self.depends_on_validation = bool(conds & VALIDATION_CONDITIONS)
        self.depends_on_peer = bool(conds & PEER_CONDITIONS) or bool(session_actions)
        self.depends_on_family = (
            self.depends_on_prefix or bool(conds & FAMILY_CONDITIONS) or "next_hop" in session_actions
        )
        # When the result reads the peer or family, they are part of every cache key.
        self._context = self.depends_on_peer or self.depends_on_family
        self._results = _BoundedCache()  # prefix-independent policies: attrs -> result
        self.sets_kernel_source = any(t.kernel_source is not None for t in self.terms)
        self._kernel_results = _BoundedCache()  # prefix-independent: attrs -> (accepted, source)
        self._candidates = _BoundedCache()  # attrs -> indices of terms whose attr conditions hold
        self._rewrites = _BoundedCache()  # (attrs, term index) -> rewritten attrs

    def __repr__(self) -> str:
        return f"<CompiledPolicy {self.name} terms={len(self.terms)}>"

    def _prefix_classes(self, sets: _Sets) -> dict[int, PrefixIndex]:
        # Every prefix set of the policy in one index per AFI: one walk per
        # route says which sets the prefix is in (a bit each), and each
        # prefix_set condition is then a mask test instead of its own walk.
        bits: dict[str, int] = {}
        for term in self.terms:
            for key, value in term.term.conditions:
                if key == "prefix_set" and value.name not in bits:
                    bits[value.name] = 1 << len(bits)
        indexes: dict[int, PrefixIndex] = {}
        masks: dict[tuple[int, bytes, int], int] = {}
        for name, bit in bits.items():
            for e in sets.sets.lookup("prefix", name).entries:
                lengths = masks.get((e.afi, e.key, bit), 0)
                for n in range(e.ge, e.le + 1):
                    lengths |= 1 << n
                masks[(e.afi, e.key, bit)] = lengths
        for (afi, key, bit), lengths in masks.items():
            index = indexes.setdefault(afi, PrefixIndex())
            per_length = list(index.get(key, (0,) * (129 if afi == 2 else 33)))
            for n in range(len(per_length)):
                if lengths >> n & 1:
                    per_length[n] |= bit
            index[key] = tuple(per_length)
        for term in self.terms:
            mask = want = 0
            for key, value in term.term.conditions:
                if key == "prefix_set":
                    mask |= bits[value.name]
                    if value.mode != "invert":
                        want |= bits[value.name]
            term.set_mask, term.set_want = mask, want
            term.use_prefix_test([(k, c) for k, c in term.prefix_conds if k != "prefix_set"])
        return indexes

    def _find_candidates(self, peer: Any, family: tuple[int, int], attrs: PathAttributes) -> tuple[int, ...]:
        out = []
        for i, conds in self._attr_tests:
            for cond in conds:
                if not cond(peer, family, b"", attrs):
                    break
            else:
                out.append(i)
        found = tuple(out)
        # Few distinct answers exist: keep one tuple of each.
        return self._candidate_tuples.setdefault(found, found)

    def _classify(self, afi: int, prefix: bytes) -> int:
        classify = self._classifiers.get(afi)
        return 0 if classify is None else classify(prefix)

    def clear_cache(self) -> None:
        """Forget cached results (the RPKI hook calls this when validation states change)."""
        self._results.clear()
        self._candidates.clear()
        self._rewrites.clear()
        self._kernel_results.clear()

    def __call__(
        self, peer: Any, family: tuple[int, int], prefix: bytes, attrs: PathAttributes
    ) -> PathAttributes | None:
        if self.depends_on_prefix:
            return self._run_split(peer, family, prefix, attrs)
        key = (attrs, peer, family) if self._context else attrs
        result = self._results.get(key, _MISS)
        if result is _MISS:
            result = self._run_plain(peer, family, prefix, attrs)
            self._results.put(key, result)
        return result

    def _run_plain(
        self, peer: Any, family: tuple[int, int], prefix: bytes, attrs: PathAttributes
    ) -> PathAttributes | None:
        for term in self.terms:
            if term.attr_match(peer, family, attrs) and term.prefix_match(peer, family, prefix, attrs):
                attrs = term.apply(peer, family, attrs)
                if term.result == "accept":
                    return attrs
                if term.result == "reject":
                    return None
        return attrs if self.default_accept else None

    def kernel_decision(
        self, peer: Any, family: tuple[int, int], prefix: bytes, attrs: PathAttributes
    ) -> tuple[PathAttributes | None, str | None]:
        """As a call, plus the ``kernel_source`` the route met on the way (the last one applied).

        The kernel's export (``[kernel] export_policy``) asks this: the
        result says whether the route goes in, the source is its RTA_PREFSRC.
        A policy without that action answers from the usual caches.
        """
        if not self.sets_kernel_source:
            return self(peer, family, prefix, attrs), None
        key: Any = None
        if not self.depends_on_prefix:
            key = (attrs, peer, family) if self._context else attrs
            hit = self._kernel_results.get(key, _MISS)
            if hit is not _MISS:
                return hit
        source = None
        result: PathAttributes | None = None
        for term in self.terms:
            if term.attr_match(peer, family, attrs) and term.prefix_match(peer, family, prefix, attrs):
                attrs = term.apply(peer, family, attrs)
                if term.kernel_source is not None:
                    source = term.kernel_source
                if term.result == "accept":
                    result = attrs
                    break
                if term.result == "reject":
                    break
        else:
            result = attrs if self.default_accept else None
        out = (result, source if result is not None else None)
        if key is not None:
            self._kernel_results.put(key, out)
        return out

    def many(
        self, peer: Any, family: tuple[int, int], prefixes: list[bytes], attrs: PathAttributes
    ) -> list[PathAttributes | None]:
        """The results for several prefixes that share one attribute object (one UPDATE).

        Same answers as one call per prefix, cheaper: the attribute part is
        looked at once, and when the only prefix conditions are prefix sets
        the outcome is a function of which sets a prefix is in, so each
        prefix costs one index walk.
        """
        if not prefixes:
            return []
        if not self.depends_on_prefix:
            return [self(peer, family, prefixes[0], attrs)] * len(prefixes)
        if not self._only_sets:
            run = self._run_split
            return [run(peer, family, k, attrs) for k in prefixes]
        classify = self._classifiers.get(family[0], _zero)
        by_class: dict[int, PathAttributes | None] = {}
        out = []
        for k in prefixes:
            c = classify(k)
            r = by_class.get(c, _MISS)
            if r is _MISS:
                r = by_class[c] = self._run_split(peer, family, k, attrs, c)
            out.append(r)
        return out

    def _run_split(
        self, peer: Any, family: tuple[int, int], prefix: bytes, attrs: PathAttributes, classes: int = -1
    ) -> PathAttributes | None:
        # classes: which prefix sets the prefix is in (a bit each); -1 until first needed.
        terms = self.terms
        context = self._context
        start = 0
        while True:
            ckey = (attrs, peer, family) if context else attrs
            candidates = self._candidates.get(ckey)
            if candidates is None:
                candidates = self._find_candidates(peer, family, attrs)
                self._candidates.put(ckey, candidates)
            for i in candidates:
                if i < start:
                    continue
                term = terms[i]
                mask = term.set_mask
                if mask:
                    if classes < 0:
                        classes = self._classify(family[0], prefix)
                    if classes & mask != term.set_want:
                        continue
                test = term.prefix_test
                if test is not None and not test(peer, family, prefix, attrs):
                    continue
                if term.result == "reject":
                    return None
                if term.actions:
                    rkey = (ckey, i)
                    new = self._rewrites.get(rkey)
                    if new is None:
                        new = term.apply(peer, family, attrs)
                        self._rewrites.put(rkey, new)
                else:
                    new = attrs
                if term.result == "accept":
                    return new
                start = i + 1
                if new is not attrs:
                    attrs = new
                    break  # other attributes: the candidate terms must be found again
            else:
                return attrs if self.default_accept else None


def compile_policy(
    definition: PolicyDef, sets: PolicySets, rpki: RpkiValidator | None = None,
    aspa: AspaValidator | None = None,
) -> CompiledPolicy:
    """Compile one policy against the sets it names."""
    return CompiledPolicy(definition, sets, rpki, aspa)


def compile_policies(
    sets: PolicySets,
    policies: Iterable[PolicyDef] | Mapping[str, PolicyDef],
    rpki: RpkiValidator | None = None,
    aspa: AspaValidator | None = None,
) -> dict[str, CompiledPolicy]:
    """Compile every policy; returns ``{name: CompiledPolicy}`` (a registry for :func:`chain`).

    The sets are compiled once and shared by every policy that names them.
    """
    compiled_sets = _Sets(sets)
    items = policies.values() if isinstance(policies, Mapping) else policies
    out = {}
    for d in items:
        if isinstance(d, tuple):  # (name, PolicyDef) pairs, as Config holds them
            d = d[1]
        out[d.name] = CompiledPolicy(d, compiled_sets, rpki, aspa)
    return out
