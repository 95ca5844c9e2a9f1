"""Tests for bgpd.session.listener and bgpd.session.sockopts.

The shared listener routes accepted connections to peers by source address
and refuses unknown sources (RFC 4271 8.2.1.1); the socket options are
TCP-MD5 (RFC 2385), GTSM (RFC 5082) and TCP_NODELAY.  A few tests open real
sockets on loopback; where the platform refuses they are skipped, and fail
under CI=true (tests.ci.missing).
"""

from __future__ import annotations

import os
import socket
import struct
import sys

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from bgpd.session import sockopts
from bgpd.session.fsm import State
from bgpd.session.listener import BGPServerFactory, install_md5, listen, normalize_address
from tests.ci import missing
from tests.session.test_factory import PEER_ADDR, Harness, neighbor, sent


class NormalizeTests(SynchronousTestCase):
    """normalize_address: the key peers are looked up by."""

    def test_plain(self):
        """IPv4 and IPv6 addresses come back in canonical text."""
        self.assertEqual(normalize_address("192.0.2.2"), "192.0.2.2")
        self.assertEqual(normalize_address("2001:DB8:0::2"), "2001:db8::2")

    def test_mapped(self):
        """IPv4-mapped IPv6 becomes plain IPv4."""
        self.assertEqual(normalize_address("::ffff:192.0.2.2"), "192.0.2.2")

    def test_scope(self):
        """A link-local address keeps its zone: it names the link (RFC 4007)."""
        self.assertEqual(normalize_address("fe80::1%eth0"), "fe80::1%eth0")

    def test_invalid(self):
        """Not an address: ValueError."""
        self.assertRaises(ValueError, normalize_address, "not-an-address")


class ServerFactoryTests(SynchronousTestCase):
    """BGPServerFactory.buildProtocol routes by source address."""

    def setUp(self):
        self.harness = Harness(neighbor(passive=True))
        self.looked_up: list[str] = []

        def lookup(host: str) -> object:
            self.looked_up.append(host)
            return self.harness.peer if host == PEER_ADDR else None

        self.factory = BGPServerFactory(lookup)

    def test_unknown_refused(self):
        """An unconfigured source gets no protocol (the connection is closed)."""
        self.assertIsNone(self.factory.buildProtocol(IPv4Address("TCP", "198.51.100.7", 40000)))
        self.assertEqual(self.factory.refused, 1)
        self.assertEqual(self.looked_up, ["198.51.100.7"])

    def test_known_handed_to_peer(self):
        """A configured source gets an inbound protocol controlled by its peer."""
        proto = self.factory.buildProtocol(IPv4Address("TCP", PEER_ADDR, 40000))
        self.assertIs(proto.controller, self.harness.peer)
        self.assertFalse(proto.outbound)
        self.assertIs(proto.factory, self.factory)
        self.assertEqual(self.factory.refused, 0)

    def test_mapped_ipv6(self):
        """An IPv4-mapped IPv6 source is looked up as IPv4."""
        proto = self.factory.buildProtocol(IPv6Address("TCP", "::ffff:" + PEER_ADDR, 40000))
        self.assertEqual(self.looked_up, [PEER_ADDR])
        self.assertIs(proto.controller, self.harness.peer)

    def test_link_local_zone_kept(self):
        """A link-local source is looked up with its zone, so each interface finds its own peer."""
        self.factory.buildProtocol(IPv6Address("TCP", "FE80::2%eth1", 40000))
        self.assertEqual(self.looked_up, ["fe80::2%eth1"])

    def test_unparsable_host(self):
        """A host that is not an address is looked up as it is, and refused."""
        self.assertIsNone(self.factory.buildProtocol(IPv4Address("TCP", "bogus", 1)))
        self.assertEqual(self.looked_up, ["bogus"])

    def test_connection_reaches_peer(self):
        """The protocol built for a known peer drives that peer's FSM when connected."""
        self.harness.peer.start()
        proto = self.factory.buildProtocol(IPv4Address("TCP", PEER_ADDR, 40000))
        transport = StringTransport()
        proto.makeConnection(transport)
        self.assertEqual(self.harness.state, State.OPEN_SENT)
        self.assertEqual(len(sent(transport)), 1)


class RealListenTests(TestCase):
    """listen() on real loopback sockets, port 0."""

    @defer.inlineCallbacks
    def test_ipv4(self):
        """listen() on 127.0.0.1 port 0 binds a port."""
        from twisted.internet import reactor

        port = listen(reactor, BGPServerFactory(lambda host: None), "127.0.0.1", 0)
        try:
            self.assertNotEqual(port.getHost().port, 0)
            self.assertEqual(port.getHost().host, "127.0.0.1")
            self.assertEqual(port.socket.family, socket.AF_INET)
        finally:
            yield port.stopListening()

    @defer.inlineCallbacks
    def test_ipv6(self):
        """listen() on ::1 port 0 binds an IPv6-only port."""
        from twisted.internet import reactor

        if not socket.has_ipv6:
            missing("no IPv6")
        try:
            port = listen(reactor, BGPServerFactory(lambda host: None), "::1", 0)
        except Exception as e:  # noqa: BLE001 - CannotListenError or OSError: no ::1 here
            missing(f"cannot listen on ::1: {e}")
        try:
            self.assertNotEqual(port.getHost().port, 0)
            sock = port.socket
            self.assertEqual(sock.family, socket.AF_INET6)
            self.assertEqual(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 1)
        finally:
            yield port.stopListening()

    @defer.inlineCallbacks
    def test_install_md5(self):
        """install_md5 sets keys for peers of the socket's family and skips the others."""
        from twisted.internet import reactor

        _require_linux_root()
        port = listen(reactor, BGPServerFactory(lambda host: None), "127.0.0.1", 0)
        try:
            try:
                install_md5(port, {"127.0.0.2": "secret", "2001:db8::2": "other"})
            except OSError as e:  # pragma: no cover - kernel without TCP_MD5SIG
                missing(f"TCP-MD5 refused: {e}")
            # Removing a key that was set works; removing an absent one is quiet.
            install_md5(port, {"127.0.0.2": None, "127.0.0.3": None})
        finally:
            yield port.stopListening()


def _require_linux_root() -> None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        missing("needs Linux and root")


class SockoptsTests(SynchronousTestCase):
    """Socket options on a real (unconnected) local TCP socket."""

    def socket(self, family: int = socket.AF_INET) -> socket.socket:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:
            missing(f"no socket of family {family}: {e}")
        self.addCleanup(sock.close)
        return sock

    def test_sockaddr_ipv4(self):
        """An IPv4 sockaddr_storage: family, port 0, address, zero padding to 128."""
        raw = sockopts._sockaddr("192.0.2.2", socket.AF_INET)
        self.assertEqual(len(raw), 128)
        self.assertEqual(struct.unpack("=H", raw[:2])[0], socket.AF_INET)
        self.assertEqual(raw[2:8], b"\x00\x00\xc0\x00\x02\x02")
        self.assertEqual(raw[8:], bytes(120))

    def test_sockaddr_ipv6_and_mapped(self):
        """An IPv6 socket takes IPv6 addresses, and IPv4 ones as mapped addresses."""
        raw = sockopts._sockaddr("2001:db8::2", socket.AF_INET6)
        self.assertEqual(struct.unpack("=H", raw[:2])[0], socket.AF_INET6)
        self.assertEqual(raw[8:24], socket.inet_pton(socket.AF_INET6, "2001:db8::2"))
        raw = sockopts._sockaddr("192.0.2.2", socket.AF_INET6)
        self.assertEqual(raw[8:24], socket.inet_pton(socket.AF_INET6, "::ffff:192.0.2.2"))

    def test_sockaddr_family_mismatch(self):
        """An IPv6 peer on an IPv4 socket is refused."""
        self.assertRaises(ValueError, sockopts._sockaddr, "2001:db8::2", socket.AF_INET)

    def test_md5_key_too_long(self):
        """A TCP-MD5 key over 80 octets is refused before the kernel sees it."""
        self.assertRaises(ValueError, sockopts.set_md5, self.socket(), "127.0.0.2", "k" * 81)

    def test_md5_real(self):
        """set_md5 installs and removes a key on a real socket (Linux, root)."""
        _require_linux_root()
        sock = self.socket()
        try:
            sockopts.set_md5(sock, "127.0.0.2", "secret")
        except OSError as e:
            missing(f"TCP-MD5 refused: {e}")
        sockopts.set_md5(sock, "127.0.0.2", None)

    def test_gtsm_real(self):
        """set_gtsm sends with TTL 255 and sets the minimum TTL to 256 - hops."""
        _require_linux_root()
        sock = self.socket()
        try:
            sockopts.set_gtsm(sock, 1)
        except OSError as e:
            missing(f"GTSM refused: {e}")
        self.assertEqual(sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL), 255)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_IP, sockopts.IP_MINTTL), 255)
        sockopts.set_gtsm(sock, 3)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_IP, sockopts.IP_MINTTL), 253)

    def test_gtsm_ipv6_real(self):
        """set_gtsm on an IPv6 socket sets the hop limit and minimum hop count."""
        _require_linux_root()
        sock = self.socket(socket.AF_INET6)
        try:
            sockopts.set_gtsm(sock, 1)
        except OSError as e:
            missing(f"GTSM refused: {e}")
        self.assertEqual(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS), 255)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_IPV6, sockopts.IPV6_MINHOPCOUNT), 255)

    def test_nodelay_and_ttl(self):
        """set_nodelay and set_ttl set what they say."""
        sock = self.socket()
        sockopts.set_nodelay(sock)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        sockopts.set_ttl(sock, 7)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL), 7)
