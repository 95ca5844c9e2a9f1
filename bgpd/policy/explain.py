"""Explain and rehearse: what a policy chain does to a route, and what a new one would change.

Both are pure functions of their arguments (RFC 4271 section 9.1.1 / 9.1.3
policy is a function of the route); nothing here touches a RIB.  The API
issue exposes them; the RIB hands them its routes.

- :func:`explain` walks a chain uncached and records, for each policy and
  term, which conditions held, each action's before/after values, and which
  policy and term decided.
- :func:`rehearse` runs the current and a candidate chain over routes and
  reports, per peer and direction, what would be newly accepted, newly
  rejected, and changed (with the attribute diff).  For import, the routes
  must be the pre-policy Adj-RIB-In: without ``soft_reconfiguration_inbound``
  the RIB no longer has the rejected ones, and the caller must say so (the
  ``complete`` flag of each result).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from bgpd.policy.engine import CompiledPolicy, state_of
from bgpd.wire.attributes import PathAttributes

__all__ = [
    "ActionStep",
    "Explanation",
    "PolicyStep",
    "RehearsalResult",
    "TermStep",
    "attribute_diff",
    "explain",
    "rehearse",
]


def attribute_diff(
    before: PathAttributes, after: PathAttributes
) -> tuple[tuple[str, object, object], ...]:
    """``((field, before, after), ...)`` for every attribute field that differs."""
    if before is after:
        return ()
    return tuple(
        (name, b, a)
        for name, b, a in zip(PathAttributes._FIELDS, before.fields(), after.fields(), strict=True)
        if b != a
    )


@attrs.frozen
class ActionStep:
    """One action of a matching term and the fields it changed."""

    action: str
    changes: tuple[tuple[str, object, object], ...]


@attrs.frozen
class TermStep:
    """One term tried: each condition's result, and the actions when it matched."""

    term: str
    conditions: tuple[tuple[str, bool], ...]
    matched: bool
    actions: tuple[ActionStep, ...] = ()
    result: str | None = None  # accept / reject / continue, when matched


@attrs.frozen
class PolicyStep:
    """One policy of the chain: its terms tried and its outcome."""

    policy: str
    terms: tuple[TermStep, ...]
    accepted: bool
    decided_by: str  # a term name, or "default"


@attrs.frozen
class Explanation:
    """The whole walk; ``attributes`` is the result (None: rejected)."""

    policies: tuple[PolicyStep, ...]
    attributes: PathAttributes | None
    decided_by: tuple[str, str]  # (policy, term or "default")

    @property
    def accepted(self) -> bool:
        return self.attributes is not None


def _explain_policy(
    policy: Any, peer: Any, family: tuple[int, int], prefix: bytes, attributes: PathAttributes
) -> tuple[PolicyStep, PathAttributes | None]:
    if not isinstance(policy, CompiledPolicy):
        # accept-all, reject-all or another plain callable: one opaque step.
        name = getattr(policy, "__name__", repr(policy)).replace("_", "-")
        out = policy(peer, family, prefix, attributes)
        step = TermStep(term=name, conditions=(), matched=True, result="accept" if out else "reject")
        if out is not None and out is not attributes:
            step = attrs.evolve(step, actions=(ActionStep(name, attribute_diff(attributes, out)),))
        return PolicyStep(name, (step,), out is not None, name), out
    steps = []
    a = attributes
    for term in policy.terms:
        results = []
        ok = True
        for key, cond in term.attr_conds + term.prefix_conds:
            hit = bool(cond(peer, family, prefix, a))
            state = state_of(cond, peer, family, prefix, a)
            # rpki / aspa: say which state was seen ("rpki=invalid"), not just the outcome.
            results.append((key if state is None else f"{key}={state}", hit))
            ok = ok and hit
            if not ok:
                break  # as evaluation does: later conditions are not looked at
        if not ok:
            steps.append(TermStep(term.name, tuple(results), False))
            continue
        actions = []
        for key, action in term.actions:
            b = action(peer, family, a)
            actions.append(ActionStep(key, attribute_diff(a, b)))
            a = b
        steps.append(TermStep(term.name, tuple(results), True, tuple(actions), term.result))
        if term.result == "accept":
            return PolicyStep(policy.name, tuple(steps), True, term.name), a
        if term.result == "reject":
            return PolicyStep(policy.name, tuple(steps), False, term.name), None
    accepted = policy.default_accept
    return PolicyStep(policy.name, tuple(steps), accepted, "default"), (a if accepted else None)


def explain(
    policies: Iterable[Any], peer: Any, family: tuple[int, int], prefix: bytes, attributes: PathAttributes
) -> Explanation:
    """Walk ``policies`` (a :class:`bgpd.policy.Chain` or a list of policies) for one route.

    Uses no cache, so the answer is what the configuration says now.
    """
    chain_policies = getattr(policies, "policies", policies)
    steps = []
    a: PathAttributes | None = attributes
    decided = ("", "default")
    for policy in chain_policies:
        step, a = _explain_policy(policy, peer, family, prefix, a)  # type: ignore[arg-type]
        steps.append(step)
        decided = (step.policy, step.decided_by)
        if a is None:
            break
    return Explanation(tuple(steps), a, decided)


@attrs.frozen
class Change:
    """A route accepted before and after whose attributes differ."""

    family: tuple[int, int]
    prefix: bytes
    diff: tuple[tuple[str, object, object], ...]


@attrs.frozen
class RehearsalResult:
    """For one (peer, direction): what the candidate policy would change.

    ``newly_accepted`` / ``newly_rejected`` hold ``(family, prefix)``;
    ``changed`` holds :class:`Change`.  ``complete`` False: the caller could
    not give every route (an import rehearsal without
    ``soft_reconfiguration_inbound``, where only route refresh would tell).
    """

    peer: str
    direction: str
    newly_accepted: tuple[tuple[tuple[int, int], bytes], ...] = ()
    newly_rejected: tuple[tuple[tuple[int, int], bytes], ...] = ()
    changed: tuple[Change, ...] = ()
    routes: int = 0
    complete: bool = True

    @property
    def unchanged(self) -> bool:
        return not (self.newly_accepted or self.newly_rejected or self.changed)


PolicyFor = Callable[[Any, str], Callable[..., PathAttributes | None]]


def rehearse(
    current: PolicyFor,
    candidate: PolicyFor,
    routes: Iterable[tuple[Any, str, tuple[int, int], bytes, PathAttributes]],
    incomplete: Callable[[Any, str], bool] | None = None,
) -> dict[tuple[str, str], RehearsalResult]:
    """Compare ``current`` and ``candidate`` over ``routes``; no state is changed.

    ``current(peer, direction)`` / ``candidate(peer, direction)`` give the
    chain for a peer and ``"import"`` or ``"export"``; ``routes`` yields
    ``(peer, direction, family, prefix, attrs)`` with the attributes *before*
    policy.  ``incomplete(peer, direction)`` True marks a result as not
    complete (see :class:`RehearsalResult`).  The result is keyed by
    ``(peer address, direction)``.
    """
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    chains: dict[tuple[int, str], tuple[Any, Any]] = {}
    for peer, direction, family, prefix, attributes in routes:
        ckey = (id(peer), direction)
        pair = chains.get(ckey)
        if pair is None:
            pair = chains[ckey] = (current(peer, direction), candidate(peer, direction))
        key = (getattr(peer, "address", str(peer)), direction)
        entry = acc.get(key)
        if entry is None:
            entry = acc[key] = {
                "accepted": [], "rejected": [], "changed": [], "routes": 0,
                "complete": not (incomplete and incomplete(peer, direction)),
            }
        entry["routes"] += 1
        old = pair[0](peer, family, prefix, attributes)
        new = pair[1](peer, family, prefix, attributes)
        if old is None and new is None:
            continue
        if old is None:
            entry["accepted"].append((family, prefix))
        elif new is None:
            entry["rejected"].append((family, prefix))
        elif old is not new and old != new:
            entry["changed"].append(Change(family, prefix, attribute_diff(old, new)))
    return {
        key: RehearsalResult(
            peer=key[0],
            direction=key[1],
            newly_accepted=tuple(e["accepted"]),
            newly_rejected=tuple(e["rejected"]),
            changed=tuple(e["changed"]),
            routes=e["routes"],
            complete=e["complete"],
        )
        for key, e in acc.items()
    }
