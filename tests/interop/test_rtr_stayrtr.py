"""Interop: bgpd's RTR client against stayrtr (RFC 8210 sections 5-8; RFC 6810) in a namespace.

stayrtr serves a VRP JSON file on the namespace's loopback; bgpd, in the
same namespace, has it as its one ``[[rpki.cache]]`` and an ``[api]`` on
loopback.  ``bgpctl rpki status --json`` (run inside the namespace) must
show exactly the file's VRP counts per family; after the file changes,
the new serial with the new counts and the same session (a Serial Query,
no reset); with stayrtr stopped, retries while the data stays; with
stayrtr back, the data again.  A version-0 stayrtr is spoken to at
version 0.  A last test stops the cache for good and waits for the data
to expire (a local Expire of 90 s: RFC 8210 section 6 makes 600 s the
shortest a cache may send, which would make it a ten-minute test).
With ``aspa`` on, stayrtr 0.5.1 speaks version 2 with
the ASPA PDU layout of draft-ietf-sidrops-8210bis-10, which the client
reads as well as the current one.  Needs root and stayrtr; skips without them (fails
under CI=true).
"""

from __future__ import annotations

import json
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver
from tests.interop.harness import Netns, Process, free_port, poll

TIMEOUT = 60.0

V4 = [("192.0.2.0/24", 24, 64500), ("198.51.100.0/22", 24, 64501), ("198.51.100.128/25", 25, 64502)]
V6 = [("2001:db8::/32", 48, 64500), ("2001:db8:1000::/36", 36, 64503)]


def _roas(items: list[tuple[str, int, int]], aspas: dict | None = None) -> str:
    doc: dict = {"roas": [{"prefix": p, "maxLength": m, "asn": f"AS{a}"} for p, m, a in items]}
    if aspas is not None:
        doc["provider_authorizations"] = aspas
    return json.dumps(doc)


#: the local Expire of the expiry test, seconds (the config allows 60 and up)
EXPIRE = 90


class RtrBgpd(BgpdDriver):
    """bgpd with an [api] on loopback and stayrtr as its cache."""

    def __init__(self, ns: Netns, api_port: int, cache_port: int, aspa: bool = False,
                 expire: int | None = None, **bgp: object) -> None:
        super().__init__(ns, 65000, "192.0.2.254", listen_addresses=[], **bgp)
        self.api_port = api_port
        self.cache_port = cache_port
        self.aspa = aspa
        self.expire = expire

    def config_text(self) -> str:
        return super().config_text() + (
            f'\n[api]\nlisten = "127.0.0.1:{self.api_port}"\n'
            f'\n[rpki]\naspa = {"true" if self.aspa else "false"}\n'
            f'[[rpki.cache]]\nname = "stayrtr"\naddress = "127.0.0.1"\nport = {self.cache_port}\n'
            + (f"expire = {self.expire}\n" if self.expire is not None else ""))

    def rpki_status(self) -> dict:
        r = self.ns.run([sys.executable, "-m", "bgpd.cli", "--target", f"127.0.0.1:{self.api_port}",
                         "rpki", "status", "--json"], timeout=30)
        return json.loads(r.stdout)


class StayrtrTests(SynchronousTestCase):
    """bgpd loads, follows and survives a stayrtr cache."""

    def setUp(self) -> None:
        harness.require_root()
        self.stayrtr_bin = harness.require_binary("stayrtr")
        self.ns = Netns("rtr").open()
        self.addCleanup(self.ns.close)
        self.file = os.path.join(self.ns.workdir, "vrps.json")
        self.write(V4 + V6)
        self.port = free_port()
        self.api = free_port()
        while self.api == self.port:
            self.api = free_port()
        self.stayrtr: Process | None = None

    def write(self, items: list[tuple[str, int, int]], aspas: dict | None = None) -> None:
        tmp = self.file + ".new"
        with open(tmp, "w") as f:
            f.write(_roas(items, aspas))
        os.replace(tmp, self.file)  # stayrtr never reads half a file

    def start_stayrtr(self, *extra: str) -> Process:
        argv = [self.stayrtr_bin, "-bind", f"127.0.0.1:{self.port}", "-cache", self.file,
                "-checktime=false", "-refresh", "1", "-metrics.addr", "127.0.0.1:0",
                "-rtr.refresh", "30", "-rtr.retry", "5", "-rtr.expire", "600", *extra]
        self.stayrtr = self.ns.popen(argv, log_name="stayrtr.log")
        self.addCleanup(self.stayrtr.stop)
        return self.stayrtr

    def start_bgpd(self, aspa: bool = False, expire: int | None = None) -> RtrBgpd:
        bgpd = RtrBgpd(self.ns, self.api, self.port, aspa=aspa, expire=expire)
        bgpd.start()
        self.addCleanup(bgpd.stop)
        return bgpd

    def cache(self, bgpd: RtrBgpd) -> dict:
        (c,) = bgpd.rpki_status()["caches"]
        return c

    def wait_counts(self, bgpd: RtrBgpd, v4: int, v6: int) -> dict:
        def ok() -> dict | None:
            c = self.cache(bgpd)
            got = (int(c.get("ipv4_vrps", 0)), int(c.get("ipv6_vrps", 0)))
            return c if got == (v4, v6) and c.get("active") else None

        return poll(ok, TIMEOUT, 0.5, f"{v4} IPv4 and {v6} IPv6 VRPs from stayrtr")

    def test_load_follow_and_retry(self) -> None:
        """Exact counts per family; a file change as a new serial; stopped: retried, data kept; back: data."""
        self.start_stayrtr("-protocol", "1")
        bgpd = self.start_bgpd()
        c = self.wait_counts(bgpd, 3, 2)
        self.assertEqual((c["state"], c["protocol_version"]), ("RPKI_CACHE_CONNECTED", 1))
        self.assertEqual((c["refresh"], c["retry"], c["expire"]), (30, 5, 600))
        session, serial = c["session_id"], c["serial"]
        # A ROA added, one removed: the cache notifies, the client asks for the difference.
        self.write(V4 + [("203.0.113.0/24", 24, 64510)] + V6[:1])
        c = self.wait_counts(bgpd, 4, 1)
        self.assertEqual(c["session_id"], session)
        self.assertNotEqual(c["serial"], serial)
        self.assertNotIn("(reset)", bgpd.log().split("session")[-1])
        # The cache goes away: retried, the data stays (Expire is 600 s away).
        assert self.stayrtr is not None
        self.stayrtr.stop()
        poll(lambda: self.cache(bgpd)["state"] in ("RPKI_CACHE_DOWN", "RPKI_CACHE_CONNECTING")
             and bgpd.log().count("next attempt in") >= 3, TIMEOUT, 0.5, "retries of the stopped cache")
        c = self.cache(bgpd)
        self.assertEqual((int(c["ipv4_vrps"]), int(c["ipv6_vrps"]), c["active"]), (4, 1, True))
        self.assertTrue(c["last_error"])
        # Back (a new stayrtr: a new session): the next retry loads it again.
        self.write(V4 + V6)
        self.start_stayrtr("-protocol", "1")
        c = self.wait_counts(bgpd, 3, 2)
        self.assertEqual(c["state"], "RPKI_CACHE_CONNECTED")

    def test_version_0_cache(self) -> None:
        """A cache speaking RFC 6810 only: version 0, the default timers, the same counts."""
        self.start_stayrtr("-protocol", "0")
        bgpd = self.start_bgpd()
        c = self.wait_counts(bgpd, 3, 2)
        self.assertEqual(c.get("protocol_version", 0), 0)
        self.assertEqual((c["refresh"], c["retry"], c["expire"]), (3600, 600, 7200))

    def test_aspa_version_2(self) -> None:
        """With aspa on, stayrtr 0.5.1 speaks version 2 (its draft-10 ASPA layout): records per customer."""
        self.write(V4 + V6, {"ipv4": [{"customer_asid": 64500, "providers": [64501, 64502]},
                                      {"customer_asid": 64510, "providers": [64511]}],
                             "ipv6": [{"customer_asid": 64500, "providers": [64501, 64502]}]})
        self.start_stayrtr("-protocol", "2")
        bgpd = self.start_bgpd(aspa=True)
        c = self.wait_counts(bgpd, 3, 2)
        self.assertEqual((c["protocol_version"], int(c.get("aspas", 0))), (2, 2))
        self.assertFalse(c.get("last_error"))
        # One customer's record withdrawn in both families: one left.
        self.write(V4 + V6, {"ipv4": [{"customer_asid": 64510, "providers": [64511]}], "ipv6": []})
        poll(lambda: int(self.cache(bgpd).get("aspas", 0)) == 1, TIMEOUT, 0.5, "the ASPA withdrawal")
        self.assertFalse(self.cache(bgpd).get("last_error"))

    def test_stopped_cache_expires(self) -> None:
        """Stopped for longer than Expire (a local 90 s, the cache's own is 600), its data is dropped."""
        self.start_stayrtr("-protocol", "1")
        bgpd = self.start_bgpd(expire=EXPIRE)
        self.wait_counts(bgpd, 3, 2)
        assert self.stayrtr is not None
        self.stayrtr.stop()

        def gone() -> bool:
            st = bgpd.rpki_status()
            (c,) = st["caches"]
            return not st.get("active_cache") and int(c.get("ipv4_vrps", 0)) == 0

        poll(gone, EXPIRE + 120, 2.0, "the stopped cache's data to expire")
        self.assertIn("(Expire)", bgpd.log())
