"""The shared name tables of bgpd.wire.constants (RFC 9234 roles, RFC 4271 ORIGIN).

Each table exists once; config, session, RIB and service import it.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd import config, service
from bgpd.rib import route
from bgpd.session import negotiation
from bgpd.wire.constants import ORIGIN_NAMES, ROLE_NAMES, ROLE_OPPOSITE, Origin, Role, role_name


class RoleTableTests(SynchronousTestCase):
    """ROLE_NAMES, ROLE_OPPOSITE and role_name (RFC 9234 sections 4.1, 4.2)."""

    def test_names(self):
        """Every role has its config name, in code order."""
        self.assertEqual(list(ROLE_NAMES.items()), [
            ("provider", Role.PROVIDER), ("rs", Role.RS), ("rs-client", Role.RS_CLIENT),
            ("customer", Role.CUSTOMER), ("peer", Role.PEER)])

    def test_opposite_is_an_involution(self):
        """Each role's pair pairs back with it."""
        self.assertEqual(set(ROLE_OPPOSITE), set(Role))
        for role, other in ROLE_OPPOSITE.items():
            self.assertEqual(ROLE_OPPOSITE[other], role)

    def test_role_name(self):
        """role_name spells a role as the config does; an unknown value says so."""
        self.assertEqual(role_name(Role.RS_CLIENT), "rs-client")
        self.assertEqual(role_name(9), "role 9")

    def test_one_table(self):
        """config, the RIB and the session negotiation use the constants' table."""
        self.assertEqual(config.ROLES, tuple(ROLE_NAMES))
        self.assertIs(route.ROLE_NAMES, ROLE_NAMES)
        self.assertIs(negotiation.ROLE_BY_NAME, ROLE_NAMES)
        self.assertEqual(negotiation.ROLE_PAIRS, set(ROLE_OPPOSITE.items()))


class OriginTableTests(SynchronousTestCase):
    """ORIGIN_NAMES (RFC 4271 section 5.1.1)."""

    def test_names(self):
        """igp, egp, incomplete are codes 0, 1, 2."""
        expected = {"igp": Origin.IGP, "egp": Origin.EGP, "incomplete": Origin.INCOMPLETE}
        self.assertEqual(ORIGIN_NAMES, expected)
        self.assertEqual([int(o) for o in ORIGIN_NAMES.values()], [0, 1, 2])

    def test_one_table(self):
        """The config's choices come from the enum, and the service keeps no copy."""
        self.assertEqual(config.ORIGINS, tuple(ORIGIN_NAMES))
        self.assertFalse(hasattr(service, "_ORIGINS"))
