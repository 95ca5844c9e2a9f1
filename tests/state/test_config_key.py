"""``[bgp] state_dir``: validated like the other keys."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import DEFAULT_STATE_DIR, ConfigErrors, parse_config

BASE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
{extra}
"""


class StateDirKeyTests(SynchronousTestCase):
    def test_default(self):
        """Without the key, state lives in /var/lib/bgpd."""
        self.assertEqual(parse_config(BASE.format(extra="")).bgp.state_dir, DEFAULT_STATE_DIR)
        self.assertEqual(DEFAULT_STATE_DIR, "/var/lib/bgpd")

    def test_relative_kept_as_written(self):
        """A relative path is kept as written (the service resolves it against the file's directory)."""
        self.assertEqual(parse_config(BASE.format(extra='state_dir = "state"')).bgp.state_dir, "state")

    def test_wrong_type_names_the_key(self):
        """A non-string is an error at bgp.state_dir."""
        err = self.assertRaises(ConfigErrors, parse_config, BASE.format(extra="state_dir = 5"))
        self.assertEqual([(e.key, e.reason) for e in err.errors],
                         [("bgp.state_dir", "must be a string, got an integer (5)")])

    def test_empty_names_the_key(self):
        """An empty path is an error at bgp.state_dir."""
        err = self.assertRaises(ConfigErrors, parse_config, BASE.format(extra='state_dir = " "'))
        self.assertEqual(err.key, "bgp.state_dir")

    def test_nul_names_the_key(self):
        """A NUL in the path (no file system takes one) is an error at bgp.state_dir."""
        err = self.assertRaises(ConfigErrors, parse_config, BASE.format(extra='state_dir = "a\\u0000b"'))
        self.assertEqual(err.key, "bgp.state_dir")

    def test_source_document_kept(self):
        """A validated Config keeps a copy of its document, which takes no part in equality."""
        one = parse_config(BASE.format(extra=""))
        self.assertEqual(one.source["bgp"]["local_as"], 65000)
        self.assertEqual(one, parse_config(BASE.format(extra="# a comment")))
