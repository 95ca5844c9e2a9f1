"""The two built-in policies, ``accept-all`` and ``reject-all`` (RFC 8212 section 3).

RFC 8212 makes an eBGP session with no configured policy accept and announce
nothing; the config layer writes that default as ``reject-all`` and the iBGP
default as ``accept-all``.  Each carries a ``trivial`` marker so that
:class:`bgpd.policy.Chain` can tell the RIB not to call it per prefix.
"""

from __future__ import annotations

from typing import Any

from bgpd.wire.attributes import PathAttributes

__all__ = ["BUILTIN", "accept_all", "reject_all"]


def accept_all(
    peer: Any, family: tuple[int, int], prefix: Any, attributes: PathAttributes
) -> PathAttributes | None:
    """Accept every route unchanged."""
    return attributes


def reject_all(
    peer: Any, family: tuple[int, int], prefix: Any, attributes: PathAttributes
) -> PathAttributes | None:
    """Reject every route."""
    return None


accept_all.trivial = "accept"  # type: ignore[attr-defined]
reject_all.trivial = "reject"  # type: ignore[attr-defined]

BUILTIN = {"accept-all": accept_all, "reject-all": reject_all}
