"""Bench churn: a sustained stream of realistic UPDATEs after the full table, at doubling rates.

For ``bench/rib_scale.py --churn`` (issue 13).  Once the router has passed the
table on, the first feeder (``bench/bgp_feeder.py``) changes random IPv4
prefixes of its own table: 70 % path changes (the same prefix with another
AS_PATH of the same length, so the best path stays this feeder's; RFC 4271
9.1.2.2) and 30 % a withdrawal (RFC 4271 4.3) followed 0.3 s later by the
re-announcement.  A prefix is not changed again within 1.5 s, so no router
may fold two of its changes into one.

Rates go in steps: ``start`` UPDATEs/s (withdrawals included) for ``step``
seconds, then twice that after a 3 s pause, and so on up to ``max_rate``, or
until the orchestrator's stop file appears (the router fell behind).  Every
announcement carries a Large Community (RFC 8092) ``MARK:step:ms`` -- the
step and the monotonic time in milliseconds at which the feeder wrote it --
which the router passes on (it is transitive and the policies accept all),
so the sink (``bench/bgp_sink.py``, ``ChurnStats``) can tell, per step, how
many changes it saw and how late.  The feeder reports each step's
``churn_step`` (target rate, UPDATEs and announcements written, the rate
reached: the socket's back-pressure counts against the router).
"""

from __future__ import annotations

import random
import struct
import time
from collections import deque

from bgpd.wire.attributes import PathAttributes
from bgpd.wire.constants import MARKER
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.update import decode_update

#: The Large Community global administrator that marks a churn stamp (a
#: private 4-octet AS, RFC 6996; the synthetic table uses the feeder's AS).
MARK = 4200000000
#: the community a changed path carries (65535:65281 would be well-known; this is not)
CHANGED = (64999 << 16) | 13
_LC_HEAD = bytes((0xC0, 32, 12))
_LC = struct.Struct("!III")
_HEAD = struct.Struct("!16sHBHH")
_WITHDRAW = struct.Struct("!16sHBH")
#: seconds before a withdrawn prefix is announced again
REANNOUNCE_AFTER = 0.3
#: seconds before a prefix may change again
QUIET_AFTER = 1.5
PAUSE = 3.0


def now_ms() -> int:
    """Monotonic milliseconds (one clock for every process on the machine)."""
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


def v4_routes(feed: bytes) -> list[tuple[bytes, bytes]]:
    """``(attribute block, prefix key)`` of every IPv4 NLRI prefix in a prepared feed."""
    out = []
    pos = 0
    n = len(feed)
    while pos < n:
        length = (feed[pos + 16] << 8) | feed[pos + 17]
        if feed[pos + 18] == 2:
            body = feed[pos + 19:pos + length]
            alen = (body[2] << 8) | body[3]  # no withdrawn routes in a feed
            attrs = body[4:4 + alen]
            if len(body) > 4 + alen:
                update = decode_update(body, Negotiated())
                for key in update.nlri:
                    out.append((attrs, key))
        pos += max(length, 19)
    return out


def _variant(attrs_block: bytes) -> bytes:
    """The same attributes with the AS_PATH's ASNs after the first changed (its length kept),
    one more community (a path of one AS has nothing else to change) and no Large
    Communities (the stamp is added per UPDATE)."""
    body = b"\x00\x00" + struct.pack("!H", len(attrs_block)) + attrs_block + b"\x08\x0a"
    a = decode_update(body, Negotiated()).attributes
    assert a is not None
    path = tuple((t, asns[:1] + tuple(x % 64000 + 1 for x in asns[1:])) for t, asns in a.as_path)
    communities = a.communities + (CHANGED,)
    return PathAttributes.replace(a, as_path=path, communities=communities,
                                  large_communities=()).pack(True, True)


def _plain(attrs_block: bytes) -> bytes:
    body = b"\x00\x00" + struct.pack("!H", len(attrs_block)) + attrs_block + b"\x08\x0a"
    a = decode_update(body, Negotiated()).attributes
    assert a is not None
    return PathAttributes.replace(a, large_communities=()).pack(True, True)


class Churn:
    """Produces the churn UPDATEs, batch by batch, at the current step's rate."""

    def __init__(self, routes: list[tuple[bytes, bytes]], start: float, max_rate: float,
                 step_seconds: float, seed: int = 13) -> None:
        self.routes = routes
        self.rate = start
        self.max_rate = max_rate
        self.step_seconds = step_seconds
        self.rng = random.Random(seed)
        self.step = 0
        self.step_start: float | None = None
        self.pause_until = 0.0
        self.msgs = 0  # UPDATEs written in this step
        self.stamped = 0  # announcements in this step
        self.done = False
        #: per route index: (variant block, plain block), made on first use
        self._blocks: dict[int, tuple[bytes, bytes]] = {}
        self._toggle: dict[int, bool] = {}
        self._last: dict[int, float] = {}
        self._pending: deque[tuple[float, int]] = deque()  # (due, index) to re-announce

    def _announce(self, i: int, flip: bool) -> bytes:
        blocks = self._blocks.get(i)
        if blocks is None:
            attrs, _key = self.routes[i]
            blocks = self._blocks[i] = (_variant(attrs), _plain(attrs))
        use_variant = self._toggle.get(i, False)
        if flip:
            use_variant = not use_variant
            self._toggle[i] = use_variant
        attrs = blocks[0] if use_variant else blocks[1]
        key = self.routes[i][1]
        stamp = _LC_HEAD + _LC.pack(MARK, self.step, now_ms())
        alen = len(attrs) + len(stamp)
        self.stamped += 1
        return _HEAD.pack(MARKER, 23 + alen + len(key), 2, 0, alen) + attrs + stamp + key

    def _withdraw(self, i: int) -> bytes:
        key = self.routes[i][1]
        return _WITHDRAW.pack(MARKER, 23 + len(key), 2, len(key)) + key + b"\x00\x00"

    def _pick(self, now: float) -> int | None:
        for _ in range(20):
            i = self.rng.randrange(len(self.routes))
            if now - self._last.get(i, -1e9) >= QUIET_AFTER:
                return i
        return None

    def batch(self, now: float) -> tuple[bytes, list[dict]]:
        """The UPDATEs due now, and the events to report (step ends, the end)."""
        events: list[dict] = []
        if self.done or now < self.pause_until:
            return b"", events
        if self.step_start is None:
            self.step_start = now
            self.msgs = self.stamped = 0
        out = []
        while self._pending and self._pending[0][0] <= now:
            out.append(self._announce(self._pending.popleft()[1], False))
            self.msgs += 1
        elapsed = now - self.step_start
        due = int(self.rate * min(elapsed, self.step_seconds)) - self.msgs
        for _ in range(max(0, min(due, int(self.rate / 10) + 1))):
            i = self._pick(now)
            if i is None:
                break
            self._last[i] = now
            if self.rng.random() < 0.3:
                out.append(self._withdraw(i))
                self._pending.append((now + REANNOUNCE_AFTER, i))
            else:
                out.append(self._announce(i, True))
            self.msgs += 1
        if elapsed >= self.step_seconds:
            # Re-announce what is still withdrawn: every change of the step is
            # then written before its end is reported.
            while self._pending:
                out.append(self._announce(self._pending.popleft()[1], False))
                self.msgs += 1
            events.append({"event": "churn_step", "step": self.step, "rate": self.rate,
                           "msgs": self.msgs, "stamped": self.stamped, "t0": self.step_start,
                           "t1": now, "reached": self.msgs / max(elapsed, 1e-9)})
            self.step += 1
            self.rate *= 2
            self.step_start = None
            self.pause_until = now + PAUSE
            if self.rate > self.max_rate:
                self.done = True
                events.append({"event": "churn_done", "steps": self.step})
        return b"".join(out), events

    def stop(self) -> dict:
        self.done = True
        return {"event": "churn_done", "steps": self.step}


class ChurnStats:
    """The sink's side: per step, changes seen, the largest delay, how many were over 1 s."""

    def __init__(self) -> None:
        self.steps: dict[int, list] = {}
        self.changed = False

    def seen(self, step: int, sent_ms: int, count: int = 1) -> None:
        """``count`` prefixes announced with the stamp ``step``:``sent_ms``."""
        delay = ((now_ms() - sent_ms) & 0xFFFFFFFF) / 1000.0
        s = self.steps.get(step)
        if s is None:
            s = self.steps[step] = [0, 0.0, 0]
        s[0] += count
        if delay > s[1]:
            s[1] = delay
        if delay > 1.0:
            s[2] += count
        self.changed = True

    def report(self) -> dict:
        """``{step: [seen, largest delay s, seen later than 1 s]}`` (JSON keys are text)."""
        self.changed = False
        return {str(k): [v[0], round(v[1], 3), v[2]] for k, v in sorted(self.steps.items())}


def verdict(step: dict, sink: list | None) -> tuple[bool, str]:
    """Whether the router kept up with one step: every change seen, within 1 s, at the rate."""
    if sink is None:
        return False, "none seen"
    seen, worst, late = sink
    if seen < step["stamped"]:
        return False, f"{step['stamped'] - seen:,} of {step['stamped']:,} changes not seen"
    if late:
        return False, f"{late:,} changes later than 1 s (largest {worst:.2f} s)"
    if step["reached"] < 0.9 * step["rate"]:
        return False, (f"only {step['reached']:,.0f} UPDATEs/s written (the router's "
                       "back-pressure, or the feeder's own limit)")
    return True, f"largest delay {worst:.2f} s"
