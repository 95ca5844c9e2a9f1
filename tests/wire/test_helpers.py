"""Helpers around OPEN capabilities (RFC 5492, RFC 6793, RFC 4724, RFC 7911, RFC 9234) and
NOTIFICATION (RFC 4271 section 4.5, RFC 9003 shutdown communication).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire import capabilities as caps
from bgpd.wire.constants import AS_TRANS, error_name
from bgpd.wire.errors import NotificationError
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open


class ShutdownTests(SynchronousTestCase):
    """Notification.shutdown and shutdown_message (RFC 9003)."""

    def test_short_message(self):
        """Cease / Administrative Shutdown, one length octet, the UTF-8 text."""
        n = Notification.shutdown("maintenance")
        self.assertEqual((n.code, n.subcode, n.data), (6, 2, b"\x0bmaintenance"))
        self.assertEqual(n.shutdown_message, "maintenance")
        self.assertIn('"maintenance"', n.describe())

    def test_reset(self):
        """reset=True makes it Administrative Reset (6/4)."""
        n = Notification.shutdown("bye", reset=True)
        self.assertEqual((n.code, n.subcode, n.shutdown_message), (6, 4, "bye"))

    def test_empty(self):
        """No text: no data at all, and no shutdown message."""
        n = Notification.shutdown("")
        self.assertEqual(n.data, b"")
        self.assertIsNone(n.shutdown_message)

    def test_truncated_at_255_octets(self):
        """Longer text is cut to 255 octets."""
        n = Notification.shutdown("x" * 300)
        self.assertEqual((n.data[0], len(n.data)), (255, 256))
        self.assertEqual(n.shutdown_message, "x" * 255)

    def test_truncated_on_utf8_boundary(self):
        """A character that would straddle octet 255 is dropped whole, never cut in half."""
        for ch in ("é", "€", "😀"):  # 2, 3 and 4 octets
            width = len(ch.encode())
            for pad in range(255 - width - 2, 256):
                text = "a" * pad + ch + ch + "tail"
                # the longest run of whole characters that fits in 255 octets
                want = ""
                for c in text:
                    if len((want + c).encode()) > 255:
                        break
                    want += c
                n = Notification.shutdown(text)
                raw = n.data[1:]
                self.assertEqual(n.data[0], len(raw))
                self.assertEqual(raw.decode("utf-8"), want, (ch, pad))  # strict decode
                self.assertEqual(n.shutdown_message, want, (ch, pad))

    def test_shutdown_message_only_for_shutdown_and_reset(self):
        """Other codes and Cease subcodes carry no shutdown message, whatever the data."""
        for code, sub in ((6, 1), (6, 3), (3, 2), (2, 2)):
            self.assertIsNone(Notification(code, sub, b"\x02hi").shutdown_message)

    def test_shutdown_message_malformed(self):
        """A length past the data gives None; bad UTF-8 is replaced, not raised."""
        self.assertIsNone(Notification(6, 2, b"\x05hi").shutdown_message)
        self.assertEqual(Notification(6, 2, b"\x02\xff\xfe").shutdown_message, "\ufffd\ufffd")
        self.assertEqual(Notification(6, 2, b"\x00").shutdown_message, "")

    def test_from_error_and_names(self):
        """from_error copies code/subcode/data; names come from the IANA registry."""
        n = Notification.from_error(NotificationError(3, 2, b"\x40\x63\x00"))
        self.assertEqual((n.code, n.subcode, n.data), (3, 2, b"\x40\x63\x00"))
        self.assertEqual(n.name, "UPDATE Message Error / unrecognized well known attribute")
        self.assertEqual(n.describe(), "UPDATE Message Error / unrecognized well known attribute (3/2) "
                                       "data=406300")
        self.assertEqual(error_name(4, 0), "Hold Timer Expired")
        self.assertEqual(error_name(6, 99), "Cease / subcode 99")
        self.assertEqual(error_name(42, 1), "error code 42 / subcode 1")


class CapabilityTests(SynchronousTestCase):
    """Capability encoding details and the Open helpers."""

    def test_open_make_as_trans(self):
        """A 4-octet ASN goes in the capability, AS_TRANS in my_as (RFC 6793 4.1)."""
        o = Open.make(4200000001, 90, "192.0.2.1", (caps.FourOctetAS(1), caps.RouteRefresh()))
        self.assertEqual((o.my_as, o.asn), (AS_TRANS, 4200000001))
        self.assertEqual(o.find(caps.FourOctetAS), [caps.FourOctetAS(4200000001)])
        self.assertTrue(o.has(caps.RouteRefresh))
        self.assertFalse(o.has(caps.AddPath))
        small = Open.make(65001, 90, "192.0.2.1")
        self.assertEqual((small.my_as, small.asn), (65001, 65001))
        self.assertEqual(Open(65002, 90, "192.0.2.1").asn, 65002)

    def test_graceful_restart_layout(self):
        """RFC 4724: 4 flag bits, 12 time bits, then (afi, safi, flags) per family."""
        gr = caps.GracefulRestart(caps.GracefulRestart.RESTART_STATE | caps.GracefulRestart.NOTIFICATION,
                                  120, ((1, 1, 0x80),))
        self.assertEqual(gr.pack(), b"\x40\x06\xc0\x78\x00\x01\x01\x80")
        self.assertEqual(caps.decode_capabilities(gr.pack()), [gr])

    def test_known_encodings(self):
        """Each capability's value is its RFC's layout."""
        self.assertEqual(caps.Multiprotocol(2, 1).pack(), b"\x01\x04\x00\x02\x00\x01")
        self.assertEqual(caps.FourOctetAS(4200000001).pack(), b"\x41\x04\xfa\x56\xea\x01")
        self.assertEqual(caps.AddPath(((1, 1, 3),)).pack(), b"\x45\x04\x00\x01\x01\x03")
        self.assertEqual(caps.ExtendedNextHop(((1, 1, 2),)).pack(), b"\x05\x06\x00\x01\x00\x01\x00\x02")
        self.assertEqual(caps.LongLivedGracefulRestart(((1, 1, 0x80, 3600),)).pack(),
                         b"\x47\x07\x00\x01\x01\x80\x00\x0e\x10")
        self.assertEqual(caps.FQDN("vm", "").pack(), b"\x49\x04\x02vm\x00")
        self.assertEqual(caps.BgpRole(3).pack(), b"\x09\x01\x03")
        self.assertEqual(caps.UnknownCapability(128).pack(), b"\x80\x00")

    def test_value_too_long(self):
        """A capability value over 255 octets cannot be encoded."""
        with self.assertRaises(ValueError):
            caps.UnknownCapability(200, bytes(256)).pack()

    def test_unknown_kept(self):
        """Capabilities we do not implement come back byte for byte."""
        data = b"\x4b\x03\x02ab" + b"\x80\x00"
        self.assertEqual(caps.decode_capabilities(data),
                         [caps.UnknownCapability(75, b"\x02ab"), caps.UnknownCapability(128, b"")])

    def test_fqdn_truncated(self):
        """An FQDN whose lengths run past the value is OPEN / unspecific (2/0)."""
        for value in (b"", b"\x05vm", b"\x02vm", b"\x02vm\x03a"):
            with self.assertRaises(NotificationError) as cm:
                caps.FQDN.unpack(value)
            self.assertEqual((cm.exception.code, cm.exception.subcode), (2, 0))
