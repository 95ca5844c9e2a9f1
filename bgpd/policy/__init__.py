"""Route policy: the minimal interface the RIB calls (RFC 4271 section 9.1.1 / 9.1.3).

A *policy* is a callable ``policy(peer, family, prefix, attributes)`` that
returns the attributes to use (the same object, or a modified copy made with
``PathAttributes.replace``) or ``None`` to reject the route.  ``peer`` is the
:class:`bgpd.rib.route.PeerInfo` the route came from (import) or a member of
the update group it goes to (export); ``family`` is ``(afi, safi)``;
``prefix`` the canonical wire-form key (``bgpd.wire.nlri``).

Policies are named; a neighbor's import or export setting is a list of names,
composed with :func:`chain` (the first reject wins).  The two built-ins of
RFC 8212's default live in :mod:`bgpd.policy.builtin`; the configured ones
are compiled by :mod:`bgpd.policy.engine` (:func:`registry` merges both), and
:mod:`bgpd.policy.explain` explains a chain and rehearses a change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bgpd.wire.attributes import PathAttributes

Policy = Callable[[Any, tuple[int, int], Any, PathAttributes], PathAttributes | None]

__all__ = ["BUILTIN", "Chain", "Policy", "UnknownPolicy", "chain", "registry"]


class UnknownPolicy(KeyError):
    """A policy name that no registry knows."""


class Chain:
    """Several policies applied in order; the first ``None`` rejects the route.

    ``accepts_all`` / ``rejects_all`` let the RIB skip the per-prefix calls
    for the two trivial chains, which is what keeps a full table from an
    ``accept-all`` peer cheap.
    """

    __slots__ = ("names", "policies", "accepts_all", "rejects_all", "validated")

    def __init__(self, names: tuple[str, ...], policies: tuple[Policy, ...]) -> None:
        self.names = names
        self.policies = policies
        trivial = [getattr(p, "trivial", None) for p in policies]
        self.rejects_all = "reject" in trivial
        # An empty chain accepts: the config layer resolves RFC 8212 defaults
        # into explicit names, so "no names" only happens in tests.
        self.accepts_all = not self.rejects_all and all(t == "accept" for t in trivial)
        #: Some policy reads an RPKI / ASPA state (``rpki`` / ``aspa`` conditions):
        #: the RIB keeps the input of the routes such a chain rejected or changed.
        self.validated = any(getattr(p, "depends_on_validation", False) for p in policies)

    def __call__(
        self, peer: Any, family: tuple[int, int], prefix: Any, attributes: PathAttributes
    ) -> PathAttributes | None:
        if self.rejects_all:
            return None
        for policy in self.policies:
            attributes = policy(peer, family, prefix, attributes)
            if attributes is None:
                return None
        return attributes

    def many(
        self, peer: Any, family: tuple[int, int], prefixes: list[Any], attributes: PathAttributes
    ) -> list[PathAttributes | None]:
        """The chain's results for several prefixes sharing one attribute object (one UPDATE).

        The same answers as a call per prefix; policies with a ``many`` method
        (compiled ones) see the prefixes together, grouped by their attributes.
        """
        n = len(prefixes)
        if self.rejects_all:
            return [None] * n
        if len(self.policies) == 1:
            # The usual chain, one policy: no grouping needed.
            policy = self.policies[0]
            many = getattr(policy, "many", None)
            if many is not None:
                return many(peer, family, prefixes, attributes)
            return [policy(peer, family, p, attributes) for p in prefixes]
        results: list[PathAttributes | None] = [attributes] * n
        for policy in self.policies:
            many = getattr(policy, "many", None)
            groups: dict[int, tuple[PathAttributes, list[int]]] = {}
            for i, a in enumerate(results):
                if a is not None:
                    groups.setdefault(id(a), (a, []))[1].append(i)
            for a, idx in groups.values():
                if many is not None:
                    outs = many(peer, family, [prefixes[i] for i in idx], a)
                else:
                    outs = [policy(peer, family, prefixes[i], a) for i in idx]
                for i, out in zip(idx, outs, strict=True):
                    results[i] = out
        return results

    @property
    def depends_on_peer(self) -> bool:
        """True when some policy's result can differ between peers (update groups must split)."""
        return any(getattr(p, "depends_on_peer", False) for p in self.policies)

    def __repr__(self) -> str:
        return f"Chain({list(self.names)!r})"


def chain(names: Iterable[str], registry: Mapping[str, Policy] | None = None) -> Chain:
    """Compose the named policies (looked up in ``registry``, default :data:`BUILTIN`)."""
    if registry is None:
        registry = BUILTIN
    names = tuple(names)
    policies = []
    for name in names:
        try:
            policies.append(registry[name])
        except KeyError:
            raise UnknownPolicy(name) from None
    return Chain(names, tuple(policies))


from bgpd.policy.builtin import BUILTIN  # noqa: E402  (builtin imports Policy from here)


def registry(sets: Any, policies: Any, rpki: Any = None, aspa: Any = None) -> dict[str, Policy]:
    """The built-ins plus every configured policy (``Config.sets``, ``Config.policies``), compiled."""
    from bgpd.policy.engine import compile_policies

    return {**BUILTIN, **compile_policies(sets, policies, rpki, aspa)}
