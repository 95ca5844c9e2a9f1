"""Tests for bgpd.rpki.slurm: RFC 8416 files, from the RFC's own examples (sections 3.3, 3.4, 3.5).

The full example of RFC 8416 section 3.5 parses and applies (its BGPsec
members are accepted and ignored); every malformed member is an error that
names its JSON path and the reason.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from bgpd.rpki.records import Validity, Vrp
from bgpd.rpki.slurm import PrefixFilter, SlurmError, load_slurm, parse_slurm
from bgpd.rpki.table import VrpTable
from bgpd.wire.nlri import prefix_from_str

#: RFC 8416 section 3.5, "Example of a SLURM File with Exceptions".
RFC_EXAMPLE = {
    "slurmVersion": 1,
    "validationOutputFilters": {
        "prefixFilters": [
            {"prefix": "192.0.2.0/24", "comment": "All VRPs encompassed by prefix"},
            {"asn": 64496, "comment": "All VRPs matching ASN"},
            {"prefix": "198.51.100.0/24", "asn": 64497,
             "comment": "All VRPs encompassed by prefix, matching ASN"},
        ],
        "bgpsecFilters": [
            {"asn": 64496, "comment": "All keys for ASN"},
            {"SKI": "<Base 64 of some SKI>", "comment": "Key matching Router SKI"},
            {"asn": 64497, "SKI": "<Base 64 of some SKI>",
             "comment": "Key for ASN 64497 matching Router SKI"},
        ],
    },
    "locallyAddedAssertions": {
        "prefixAssertions": [
            {"asn": 64496, "prefix": "198.51.100.0/24", "comment": "My other important route"},
            {"asn": 64496, "prefix": "2001:DB8::/32", "maxPrefixLength": 48,
             "comment": "My other important de-aggregated routes"},
        ],
        "bgpsecAssertions": [
            {"asn": 64496, "comment": "My known key for my important ASN",
             "SKI": "<some base64 SKI>", "routerPublicKey": "<some base64 public key>"},
        ],
    },
}

#: RFC 8416 section 3.2's empty file.
EMPTY = {
    "slurmVersion": 1,
    "validationOutputFilters": {"prefixFilters": [], "bgpsecFilters": []},
    "locallyAddedAssertions": {"prefixAssertions": [], "bgpsecAssertions": []},
}


def key(text: str) -> bytes:
    return prefix_from_str(text)[1]


def vrp(text: str, max_length: int, asn: int) -> Vrp:
    afi, k = prefix_from_str(text)
    return Vrp((afi, 1), k, max_length, asn)


class ParseTests(SynchronousTestCase):
    """The RFC's examples parse to the filters and assertions they describe."""

    def test_empty(self):
        """The empty SLURM file of section 3.2 gives no exceptions."""
        s = parse_slurm(EMPTY)
        self.assertEqual((s.filters, s.assertions), ((), ()))

    def test_rfc_example(self):
        """Section 3.5: three prefix filters, two prefix assertions, BGPsec ignored."""
        s = parse_slurm(RFC_EXAMPLE)
        self.assertEqual([(f.afi, f.prefix, f.asn) for f in s.filters],
                         [(1, key("192.0.2.0/24"), None), (None, None, 64496),
                          (1, key("198.51.100.0/24"), 64497)])
        self.assertIsInstance(s.filters[0], PrefixFilter)
        self.assertEqual(s.assertions, (vrp("198.51.100.0/24", 24, 64496), vrp("2001:db8::/32", 48, 64496)))

    def test_file(self):
        """load_slurm reads JSON from a file."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.json")
            with open(path, "w") as f:
                json.dump(RFC_EXAMPLE, f)
            self.assertEqual(len(load_slurm(path).filters), 3)

    def test_not_json(self):
        """A file that is not JSON says so."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.json")
            with open(path, "w") as f:
                f.write("{")
            self.assertRaises(SlurmError, load_slurm, path)


class ErrorTests(SynchronousTestCase):
    """Each malformed member: an error with the JSON path and the reason."""

    def bad(self, edit, path: str, reason: str) -> None:
        doc = copy.deepcopy(RFC_EXAMPLE)
        edit(doc)
        with self.assertRaises(SlurmError) as cm:
            parse_slurm(doc)
        self.assertEqual(cm.exception.path, path)
        self.assertIn(reason, cm.exception.reason)

    def test_version(self):
        """slurmVersion must be 1."""
        self.bad(lambda d: d.update(slurmVersion=2), "slurmVersion", "must be 1")

    def test_missing_member(self):
        """The top-level members are required."""
        self.bad(lambda d: d.pop("locallyAddedAssertions"), "locallyAddedAssertions", "is required")

    def test_unknown_member(self):
        """An unknown member is refused, named."""
        self.bad(lambda d: d["validationOutputFilters"]["prefixFilters"][0].update(maxLength=3),
                 "validationOutputFilters.prefixFilters[0].maxLength", "unknown member")

    def test_host_bits(self):
        """A prefix with host bits set is refused."""
        self.bad(lambda d: d["validationOutputFilters"]["prefixFilters"][0].update(prefix="192.0.2.1/24"),
                 "validationOutputFilters.prefixFilters[0].prefix", "host bits")

    def test_empty_filter(self):
        """A prefix filter needs a prefix or an ASN."""
        self.bad(lambda d: d["validationOutputFilters"]["prefixFilters"].append({"comment": "x"}),
                 "validationOutputFilters.prefixFilters[3]", "needs a prefix")

    def test_bad_asn(self):
        """An AS number out of range is refused."""
        self.bad(lambda d: d["locallyAddedAssertions"]["prefixAssertions"][0].update(asn=2**32),
                 "locallyAddedAssertions.prefixAssertions[0].asn", "AS number")

    def test_max_length(self):
        """maxPrefixLength below the prefix length is refused."""
        self.bad(lambda d: d["locallyAddedAssertions"]["prefixAssertions"][1].update(maxPrefixLength=16),
                 "locallyAddedAssertions.prefixAssertions[1].maxPrefixLength", "from the prefix length 32")

    def test_assertion_needs_prefix(self):
        """A prefix assertion needs its prefix."""
        self.bad(lambda d: d["locallyAddedAssertions"]["prefixAssertions"][0].pop("prefix"),
                 "locallyAddedAssertions.prefixAssertions[0].prefix", "is required")


class ApplyTests(SynchronousTestCase):
    """The RFC example applied over cache data (RFC 8416 section 4.2: filter, then add)."""

    def setUp(self):
        self.t = VrpTable()
        self.t.begin("c", True)
        self.t.vrps("c", [vrp("192.0.2.0/24", 24, 64499), vrp("203.0.113.0/24", 24, 64496),
                          vrp("198.51.100.0/24", 24, 64497), vrp("198.51.100.0/24", 24, 64498)], [])
        self.t.end("c", 1)
        s = parse_slurm(RFC_EXAMPLE)
        self.t.set_exceptions(s.table_filters(), s.assertions)

    def test_prefix_filter(self):
        """Filter 1: every VRP inside 192.0.2.0/24 is gone."""
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64499), Validity.NOT_FOUND)

    def test_asn_filter(self):
        """Filter 2: AS 64496's cache VRPs are gone."""
        self.assertEqual(self.t.validate(1, key("203.0.113.0/24"), 64496), Validity.NOT_FOUND)

    def test_prefix_and_asn_filter(self):
        """Filter 3: only 64497 inside 198.51.100.0/24; 64498's VRP stays."""
        self.assertEqual(self.t.validate(1, key("198.51.100.0/24"), 64498), Validity.VALID)

    def test_assertions(self):
        """The assertions hold although filter 2 names their AS (assertions are not filtered)."""
        self.assertEqual(self.t.validate(1, key("198.51.100.0/24"), 64496), Validity.VALID)
        self.assertEqual(self.t.validate(2, key("2001:db8:1::/48"), 64496), Validity.VALID)
        self.assertEqual(self.t.validate(1, key("198.51.100.0/24"), 64497), Validity.INVALID)
