"""RTR over TLS (RFC 8210 section 9): a test cache behind a Twisted TLS port, certificates made here.

A CA, a server certificate for ``cache.test`` and a client certificate are
generated with ``cryptography`` into a temporary directory; the cache
requires the client certificate.  The client is configured as an operator
would configure it (``transport = "tls"``, ``tls_ca``, ``tls_cert``,
``tls_key``, ``tls_server_name``) and must load the cache's VRPs; with a
CA that did not sign the cache's certificate it must load nothing.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor, ssl
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from bgpd.config import RpkiCacheConfig
from bgpd.rpki.rtr import RTRFactory
from bgpd.rpki.service import cache_settings
from bgpd.rpki.testing import CacheServer, RecordingSink
from tests.deferreds import as_deferred

from .helpers import vrp


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
          ca: bool = False, dns: str | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: str, *items: object) -> None:
    with open(path, "wb") as f:
        for item in items:
            if isinstance(item, x509.Certificate):
                f.write(item.public_bytes(serialization.Encoding.PEM))
            else:
                f.write(item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


class Pki:
    """A CA with a server and a client certificate, as PEM files in ``self.dir``."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert("bgpd test CA", ca_key, "bgpd test CA", ca_key, ca=True)
        other_key = ec.generate_private_key(ec.SECP256R1())
        other = _cert("another CA", other_key, "another CA", other_key, ca=True)
        srv_key = ec.generate_private_key(ec.SECP256R1())
        srv = _cert("cache.test", srv_key, "bgpd test CA", ca_key, dns="cache.test")
        cli_key = ec.generate_private_key(ec.SECP256R1())
        cli = _cert("router.test", cli_key, "bgpd test CA", ca_key)
        names = ("ca", "other", "server", "client", "ckey")
        self.path = {n: os.path.join(self.dir, f"{n}.pem") for n in names}
        _write(self.path["ca"], ca)
        _write(self.path["other"], other)
        _write(self.path["server"], srv, srv_key)
        _write(self.path["client"], cli)
        _write(self.path["ckey"], cli_key)
        with open(self.path["server"], "rb") as f:
            server = ssl.PrivateCertificate.loadPEM(f.read())
        with open(self.path["ca"], "rb") as f:
            ca_cert = ssl.Certificate.loadPEM(f.read())
        # The cache asks for a client certificate signed by the CA.
        self.server_options = server.options(ca_cert)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir)


class TlsTests(TestCase):
    """The RTR client over TLS against a local TLS cache."""

    timeout = 60

    def setUp(self) -> None:
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        self.cache = CacheServer([vrp("192.0.2.0/24"), vrp("2001:db8::/32", 48)], session_id=9)
        self.port = reactor.listenSSL(0, self.cache, self.pki.server_options, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def client(self, ca: str) -> tuple[RTRFactory, RecordingSink]:
        p = self.pki.path
        cfg = RpkiCacheConfig(name="tls", address="127.0.0.1", port=self.port.getHost().port, transport="tls",
                              tls_ca=p[ca], tls_cert=p["client"], tls_key=p["ckey"],
                              tls_server_name="cache.test")
        sink = RecordingSink()
        f = RTRFactory(cache_settings(cfg, False), sink, reactor)
        self.addCleanup(self.stop, f)
        f.start()
        return f, sink

    @as_deferred
    async def stop(self, f: RTRFactory) -> None:
        """Shut the client down and wait (bounded) until both ends of its connection are gone."""
        f.shutdown()
        for _ in range(100):
            if f.proto is None and f._connector is None and not self.cache.clients:
                return
            await deferLater(reactor, 0.05, lambda: None)

    @as_deferred
    async def test_loads_over_tls(self) -> None:
        """With the right CA and a client certificate the VRPs arrive over TLS."""
        f, sink = self.client("ca")
        for _ in range(200):  # 20 s at most
            if sink.ends:
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(sink.counts("tls"), (1, 1))
        self.assertEqual(f.status().session_id, 9)
        self.assertEqual(f.status().transport, "tls")

    @as_deferred
    async def test_wrong_ca_loads_nothing(self) -> None:
        """A cache whose certificate the configured CA did not sign is not trusted."""
        f, sink = self.client("other")
        for _ in range(100):
            if f.last_error:
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertTrue(f.last_error, "the handshake did not fail")
        self.assertEqual(sink.ends, 0)
        self.assertEqual(self.cache.queries, [])
