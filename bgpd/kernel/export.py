"""The kernel's export policy: which best paths go into the kernel, with which source (RFC 4271 9.1.3).

``[kernel] export_policy`` names a chain of policies, run by the policy
engine (:mod:`bgpd.policy`) on each best path before it goes to the
kernel, as a neighbor's export chain runs before its Adj-RIB-Out: the
first reject keeps the prefix out of the kernel.  The ``kernel_source``
action names the route's preferred source address (the kernel's
RTA_PREFSRC, ``ip route ... src ADDR``); the last one applied along the
chain wins, and one of the other family than the route's is not used.
The other actions change nothing the kernel is given (its next hops are
the best path's own).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bgpd.policy import Chain, Policy, chain

__all__ = ["KernelExport"]


class KernelExport:
    """``export(peer, family, prefix, attrs) -> (goes in, source or None)`` for the kernel writer."""

    def __init__(self, names: Iterable[str], registry: Mapping[str, Policy]) -> None:
        self.chain: Chain = chain(names, registry)
        self.names = self.chain.names
        # (policy, its kernel_decision or None), in chain order
        self._steps = [(p, getattr(p, "kernel_decision", None)) for p in self.chain.policies]

    def __call__(self, peer: Any, family: tuple[int, int], prefix: bytes,
                 attrs: Any) -> tuple[bool, str | None]:
        chain_ = self.chain
        if chain_.rejects_all:
            return False, None
        if chain_.accepts_all:
            return True, None
        source = None
        for policy, decide in self._steps:
            if decide is not None:
                attrs, src = decide(peer, family, prefix, attrs)
                if src is not None:
                    source = src
            else:
                attrs = policy(peer, family, prefix, attrs)
            if attrs is None:
                return False, None
        if source is not None and (":" in source) != (family[0] == 2):
            source = None
        return True, source
