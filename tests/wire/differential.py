"""The codec's observable behaviour as plain data, for comparing two builds of it.

``tests/wire/test_differential.py`` runs the same inputs through the
compiled hot path (in the test's own interpreter) and through the pure-Python
source (this module run as a worker: ``BGPD_PURE_PYTHON=1 python -m
tests.wire.differential`` reads a pickled job list on stdin and writes the
pickled results on stdout).  Everything a caller can see is turned into
tuples of ints, strings and bytes: the decoded objects field by field
(RFC 4271 4.3 UPDATE, RFC 4760 MP_REACH / MP_UNREACH, RFC 7606 problems), the
bytes each re-encoding gives, and the errors raised (type, NOTIFICATION code,
subcode and data, reason), so that two runs compare with ``==``.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from typing import Any

from bgpd import hotpath
from bgpd.wire.attributes import AttributeCache, PathAttributes
from bgpd.wire.errors import NotificationError
from bgpd.wire.message import Framer, decode_message, encode_message
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.update import MPReach, MPUnreach, Update, decode_update, pack_reach, pack_withdraw

#: A job: ``("decode", data, neg)`` frames and decodes a byte stream (twice,
#: the second time through the attribute cache the first one filled, and once
#: more fed in 7-octet pieces); ``("encode", plain_update, neg)`` rebuilds an
#: UPDATE from :func:`plain` form and encodes it; ``("sweep", bodies, neg)``
#: decodes UPDATE bodies through a small cache, keeping every third result,
#: and sweeps it (the sweep counts references, which compiled code must not
#: change).
Job = tuple[str, Any, Negotiated]


def _error(e: BaseException) -> tuple:
    if isinstance(e, NotificationError):
        return ("notification", e.code, e.subcode, e.data, e.reason)
    return ("exception", type(e).__name__, str(e))


def plain_attributes(a: PathAttributes | None) -> tuple | None:
    return None if a is None else a.key()


def plain(msg: object) -> tuple:
    """Every field of a decoded message, as plain values."""
    if isinstance(msg, Update):
        mp_reach = None
        if msg.mp_reach is not None:
            r = msg.mp_reach
            mp_reach = (r.afi, r.safi, plain_attributes(r.attributes), list(r.nlri))
        mp_unreach = None
        if msg.mp_unreach is not None:
            u = msg.mp_unreach
            mp_unreach = (u.afi, u.safi, list(u.withdrawn))
        problems = tuple((p.outcome.name, p.attr_type, p.reason, p.code, p.subcode)
                         for p in msg.problems)
        return ("Update", list(msg.withdrawn), plain_attributes(msg.attributes), list(msg.nlri),
                mp_reach, mp_unreach, problems, msg.treat_as_withdraw, msg.end_of_rib)
    return (type(msg).__name__, repr(msg))


def rebuild(p: tuple) -> Update:
    """The :class:`Update` a :func:`plain` tuple describes."""
    _, withdrawn, attrs, nlri, mp_reach, mp_unreach, _problems, taw, _eor = p
    reach = None
    if mp_reach is not None:
        afi, safi, mp_attrs, mp_nlri = mp_reach
        reach = MPReach(afi, safi, None if mp_attrs is None else PathAttributes(*mp_attrs), mp_nlri)
    unreach = None if mp_unreach is None else MPUnreach(*mp_unreach)
    return Update(withdrawn, None if attrs is None else PathAttributes(*attrs), nlri, reach,
                  unreach, (), taw)


def _encodings(msg: object, neg: Negotiated) -> tuple:
    """The bytes every encoder gives for ``msg`` (or the error it raises)."""
    out: list = []
    try:
        out.append(encode_message(msg, neg))  # type: ignore[arg-type]
    except Exception as e:
        out.append(_error(e))
    if isinstance(msg, Update):
        for attrs in (msg.attributes, msg.mp_reach.attributes if msg.mp_reach else None):
            if attrs is None:
                continue
            for as4 in (True, False):
                for with_nh in (True, False):
                    try:
                        out.append(attrs.pack(as4, with_nh))
                    except Exception as e:
                        out.append(_error(e))
        for afi, safi, attrs, nlri in (
            (1, 1, msg.attributes, msg.nlri),
            (msg.mp_reach.afi, msg.mp_reach.safi, msg.mp_reach.attributes, msg.mp_reach.nlri)
            if msg.mp_reach else (0, 0, None, []),
        ):
            if attrs is None or not nlri:
                continue
            try:
                out.append(tuple(pack_reach(afi, safi, attrs, list(nlri), neg)))
                out.append(tuple(pack_withdraw(afi, safi, list(nlri), neg)))
            except Exception as e:
                out.append(_error(e))
    return tuple(out)


def _decode_stream(data: bytes, neg: Negotiated, cache: AttributeCache, piece: int) -> list:
    framer = Framer(neg.max_message_len)
    out: list = []
    try:
        frames = []
        for i in range(0, max(len(data), 1), piece):
            frames += framer.feed(data[i:i + piece])
    except Exception as e:
        out.append(_error(e))
        frames = []
    out.append(("left", len(framer)))
    for msg_type, body in frames:
        try:
            msg = decode_message(msg_type, body, neg, cache)
        except Exception as e:
            out.append(_error(e))
            continue
        out.append((plain(msg), _encodings(msg, neg)))
    return out


def run(job: Job) -> tuple:
    """One job's observable result."""
    kind, payload, neg = job
    if kind == "sweep":
        cache = AttributeCache(max_entries=50)
        keep = []
        for i, body in enumerate(payload):
            update = decode_update(body, neg, cache)
            if i % 3 == 0:
                keep.append(update)
        before = len(cache)
        return (before, cache.sweep(), len(cache), cache.hits, cache.misses, len(keep))
    if kind == "decode":
        cache = AttributeCache()
        first = _decode_stream(payload, neg, cache, len(payload) or 1)
        again = _decode_stream(payload, neg, cache, len(payload) or 1)  # the cache's fast path
        pieces = _decode_stream(payload, neg, AttributeCache(), 7)
        return (first, again, pieces, cache.hits)
    try:
        return ("encoded", _encodings(rebuild(payload), neg))
    except Exception as e:
        return ("encoded", _error(e))


def run_all(jobs: list[Job]) -> list[tuple]:
    return [run(job) for job in jobs]


def main() -> None:
    jobs = pickle.load(sys.stdin.buffer)
    results = run_all(jobs)
    # Every hot module, not only the codec's (bgpd.rib.adjout is one too):
    # the caller checks that all of them ran as the build it asked for.
    for name in hotpath.HOT_MODULES:
        importlib.import_module(name)
    sys.stdout.buffer.write(pickle.dumps((hotpath.VARIANT, hotpath.loaded_compiled(), results)))


if __name__ == "__main__":
    main()
