"""Shared pieces of the policy tests: a config around a policy snippet, peers, routes."""

from __future__ import annotations

from bgpd.config import parse_config
from bgpd.policy import registry
from bgpd.rib.route import LOCAL, PeerInfo
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.nlri import prefix_from_str

BASE = """
[bgp]
local_as = 64500
router_id = "192.0.2.1"
"""

V4 = (1, 1)
V6 = (2, 1)

EBGP = PeerInfo(
    address="192.0.2.2",
    remote_as=64501,
    local_as=64500,
    router_id="192.0.2.2",
    local_address="192.0.2.1",
    next_hop6="2001:db8::1",
)
EBGP2 = PeerInfo(
    address="192.0.2.3", remote_as=64502, local_as=64500, router_id="192.0.2.3", local_address="192.0.2.1"
)
IBGP = PeerInfo(
    address="192.0.2.4", remote_as=64500, local_as=64500, router_id="192.0.2.4", local_address="192.0.2.1"
)
LOCAL_PEER = LOCAL

ATTRS = PathAttributes(as_path=((2, (64501, 64510)),), next_hop="192.0.2.2", med=10, local_pref=100)


def key(text: str) -> bytes:
    return prefix_from_str(text)[1]


def family_of(text: str) -> tuple[int, int]:
    return V6 if ":" in text else V4


def compile_snippet(text: str) -> dict:
    """The registry (built-ins and compiled policies) of BASE + ``text``."""
    config = parse_config(BASE + text)
    return registry(config.sets, config.policies)


def one_term(match: str = "", action: str = '"accept"', sets: str = "", default: str = "reject"):
    """A policy ``p`` of one term with ``match`` and ``action`` (TOML inline values)."""
    term = f"match = {{ {match} }}\n" if match else ""
    return compile_snippet(
        f'{sets}\n[policies.p]\ndefault = "{default}"\n[[policies.p.terms]]\nname = "t"\n{term}'
        f"action = {action}\n"
    )["p"]


def run(policy, prefix: str = "203.0.113.0/24", attrs: PathAttributes = ATTRS, peer=EBGP):
    return policy(peer, family_of(prefix), key(prefix), attrs)
