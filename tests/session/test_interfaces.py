"""The declared interfaces between the session parts (DESIGN "Boundaries").

The Protocol reports to a :class:`~bgpd.session.protocol.ProtocolController`
it never imports; the Factory reports to one
:class:`~bgpd.session.factory.SessionListener`, every method required and
called directly (no getattr hooks), which the service's RoutingBridge
implements.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import bgpd.service
import bgpd.session.factory
import bgpd.session.protocol
from bgpd.service import RoutingBridge
from bgpd.session.factory import NullListener, PeerFactory, SessionListener
from bgpd.session.protocol import ProtocolController
from tests.session.test_factory import RecordingListener

SESSION = Path(bgpd.session.factory.__file__).parent


def _methods(cls: type) -> set[str]:
    return {
        name for name, value in vars(cls).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def _getattr_hooks(path: Path) -> list[str]:
    """getattr() calls on a listener or controller: hooks found by name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "getattr" and node.args
                and isinstance(node.args[0], ast.Attribute)
                and node.args[0].attr in ("listener", "controller")):
            found.append(ast.unparse(node))
    return found


class SessionListenerTests(SynchronousTestCase):
    """The one interface the Factory reports session events to."""

    EVENTS = {
        "session_established", "session_down", "updates_received", "refresh_requested",
        "state_changed", "output_resumed", "peer_config_changed",
    }

    def test_methods(self):
        """SessionListener declares exactly the seven session events."""
        self.assertEqual(_methods(SessionListener), self.EVENTS)

    def test_routing_bridge_implements_every_method(self):
        """RoutingBridge declares SessionListener and defines each method itself."""
        self.assertTrue(issubclass(RoutingBridge, SessionListener))
        self.assertEqual(_methods(RoutingBridge) & self.EVENTS, self.EVENTS)

    def test_other_listeners(self):
        """NullListener and the tests' RecordingListener implement it too."""
        for cls in (NullListener, RecordingListener):
            self.assertEqual(_methods(cls) & self.EVENTS, self.EVENTS, cls.__name__)
            self.assertIsInstance(cls(), SessionListener)

    def test_no_getattr_hooks(self):
        """No optional hook is looked up by name on a listener or controller."""
        for path in (SESSION / "factory.py", SESSION / "protocol.py",
                     Path(bgpd.service.__file__)):
            self.assertEqual(_getattr_hooks(path), [], path.name)


class ProtocolControllerTests(SynchronousTestCase):
    """The interface BGPProtocol reports to, and the direction of imports."""

    def test_factory_implements_controller(self):
        """PeerFactory defines every ProtocolController method."""
        wanted = _methods(ProtocolController)
        self.assertEqual(wanted, {"connection_made", "bytes_received", "message_received",
                                  "updates_decoded", "protocol_error", "connection_lost",
                                  "output_resumed"})
        self.assertEqual(_methods(PeerFactory) & wanted, wanted)

    def test_protocol_does_not_import_factory(self):
        """protocol.py imports no session module but the tap interface: factory -> protocol."""
        imports = _imports(Path(bgpd.session.protocol.__file__))
        self.assertEqual({m for m in imports if m.startswith("bgpd.session")}, {"bgpd.session.tap"})
        self.assertIn("bgpd.session.protocol", _imports(SESSION / "factory.py"))
