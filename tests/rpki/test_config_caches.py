"""The ``[rpki]`` cache keys (bgpd.config.RpkiConfig / RpkiCacheConfig), key by key."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import ConfigErrors, RpkiCacheConfig, RpkiConfig, parse_config

BASE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
"""


class RpkiCacheConfigTests(SynchronousTestCase):
    """Every [[rpki.cache]] key validated, errors naming the key path."""

    def errors(self, text: str) -> dict[str, str]:
        with self.assertRaises(ConfigErrors) as cm:
            parse_config(BASE + text)
        return {e.key: e.reason for e in cm.exception.errors}

    def test_absent(self) -> None:
        """Without [rpki] there is no RPKI."""
        self.assertIsNone(parse_config(BASE).rpki)

    def test_defaults(self) -> None:
        """A cache with name and address: TCP port 323, preference 100, the cache's timers."""
        cfg = parse_config(BASE + '[rpki]\n[[rpki.cache]]\nname = "r"\naddress = "192.0.2.9"\n')
        self.assertEqual(cfg.rpki, RpkiConfig(caches=(RpkiCacheConfig(name="r", address="192.0.2.9"),)))

    def test_every_key(self) -> None:
        """Every key as written; TLS defaults to port 324."""
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        for f in ("ca.pem", "c.pem", "k.pem"):
            open(os.path.join(d, f), "w").close()
        cfg = parse_config(BASE + f"""
[rpki]
aspa = true
[[rpki.cache]]
name = "r"
address = "rtr.example.net"
transport = "tls"
preference = 3
tls_ca = "{d}/ca.pem"
tls_cert = "{d}/c.pem"
tls_key = "{d}/k.pem"
tls_server_name = "cache.example.net"
refresh = 60
retry = 30
expire = 900
""")
        self.assertEqual(cfg.rpki, RpkiConfig(aspa=True, caches=(RpkiCacheConfig(
            name="r", address="rtr.example.net", port=324, preference=3, transport="tls",
            tls_ca=f"{d}/ca.pem", tls_cert=f"{d}/c.pem", tls_key=f"{d}/k.pem",
            tls_server_name="cache.example.net", refresh=60, retry=30, expire=900),)))

    def test_no_cache(self) -> None:
        """[rpki] needs at least one cache."""
        self.assertIn("rpki.cache", self.errors("[rpki]\n"))
        self.assertIn("rpki.cache", self.errors("[rpki]\ncache = []\n"))

    def test_required_keys(self) -> None:
        """name and address are required."""
        errs = self.errors("[rpki]\n[[rpki.cache]]\nport = 3323\n")
        self.assertEqual(errs["rpki.cache[0].name"], "required key is missing")
        self.assertEqual(errs["rpki.cache[0].address"], "required key is missing")

    def test_bad_values(self) -> None:
        """Out-of-range port, preference, timers; an unknown transport; a bad address."""
        errs = self.errors('[rpki]\n[[rpki.cache]]\nname = "r"\naddress = "no such host!"\nport = 70000\n'
                           'preference = 256\ntransport = "ssh"\nrefresh = 0\nretry = 7201\nexpire = 59\n')
        for key in ("address", "port", "preference", "transport", "refresh", "retry", "expire"):
            self.assertIn(f"rpki.cache[0].{key}", errs)

    def test_expire_above_refresh(self) -> None:
        """expire must exceed refresh and retry (RFC 8210 section 6)."""
        errs = self.errors('[rpki]\n[[rpki.cache]]\nname = "r"\naddress = "::1"\nrefresh = 3600\n'
                           'expire = 1800\n')
        self.assertIn("larger than refresh", errs["rpki.cache[0].expire"])

    def test_duplicate_names(self) -> None:
        """Two caches may not share a name."""
        errs = self.errors('[rpki]\n[[rpki.cache]]\nname = "r"\naddress = "::1"\n'
                           '[[rpki.cache]]\nname = "r"\naddress = "::2"\n')
        self.assertIn("duplicate", errs["rpki.cache[1].name"])

    def test_tls_keys_need_tls(self) -> None:
        """TLS keys with the TCP transport are an error naming the key."""
        errs = self.errors('[rpki]\n[[rpki.cache]]\nname = "r"\naddress = "::1"\ntls_ca = "/etc/x"\n')
        self.assertIn("only with transport", errs["rpki.cache[0].tls_ca"])

    def test_tls_files_readable(self) -> None:
        """TLS files must be readable; cert and key go together."""
        errs = self.errors('[rpki]\n[[rpki.cache]]\nname = "r"\naddress = "::1"\ntransport = "tls"\n'
                           'tls_cert = "/nonexistent/c.pem"\n')
        self.assertIn("cannot read", errs["rpki.cache[0].tls_cert"])
        self.assertIn("go together", errs["rpki.cache[0].tls_key"])

    def test_unknown_key(self) -> None:
        """A misspelt key is named with a suggestion."""
        errs = self.errors('[rpki]\n[[rpki.cache]]\nname = "r"\naddress = "::1"\nprefernce = 1\n')
        self.assertIn("did you mean 'preference'", errs["rpki.cache[0].prefernce"])
