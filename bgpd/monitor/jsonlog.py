"""JSON log lines for journald and log shippers (``[monitor] log_format = "json"``).

One JSON object per line: the event's keyword fields as they were logged
(``peer``, ``description``, ``old``, ``new``, ``reason``, ``code``...), plus
``time`` (seconds since the Unix epoch), ``level``, ``namespace`` and
``text`` (the formatted message).  Fields that are not JSON values are
written as their ``repr``; twisted.logger's private ``log_*`` keys are left
out but for those three.  No RFC applies; the session events it carries are
those of :mod:`bgpd.monitor.history` (RFC 4271 section 8).

twistd's ``--logger`` option takes a callable that makes the observer; the
tap sets it to :func:`make_observer` when the config asks for JSON, so that
the JSON lines replace twistd's text lines instead of doubling them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import ILogObserver, formatEvent
from zope.interface import implementer

__all__ = ["JsonLineObserver", "configure", "configured_observer", "event_to_json",
           "observer_factory"]

_KEEP = {"log_time": "time", "log_namespace": "namespace"}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def event_to_json(event: dict[str, Any]) -> str:
    """One log event as one line of JSON (no newline)."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key in _KEEP:
            out[_KEEP[key]] = value
        elif key == "log_level":
            out["level"] = getattr(value, "name", str(value))
        elif key.startswith("log_") or key == "format" or key == "message":
            continue
        else:
            out[key] = _plain(value)
    failure = event.get("log_failure")
    try:
        text = formatEvent(event)
    except Exception:  # noqa: BLE001 - a broken format string must not lose the line
        text = repr(event.get("log_format"))
    if failure is not None:
        text += "\n" + failure.getTraceback()
    out["text"] = text
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


@implementer(ILogObserver)
class JsonLineObserver:
    """Writes each event as a JSON line to ``out`` and flushes it."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        self.out.write(event_to_json(event) + "\n")
        self.out.flush()


def observer_factory(logfile: str | None, nodaemon: bool) -> Callable[[], JsonLineObserver]:
    """The factory for twistd's ``logger`` option, writing where twistd's text log would go.

    ``-`` or no ``--logfile`` with ``--nodaemon``: standard output (journald
    under systemd); otherwise the file named (``twistd.log`` by default).
    """

    def make() -> JsonLineObserver:
        if logfile == "-" or (nodaemon and not logfile):
            return JsonLineObserver(sys.stdout)
        # Line-buffered, appended: the file twistd itself would have used.
        return JsonLineObserver(open(logfile or "twistd.log", "a", buffering=1, encoding="utf-8"))  # noqa: SIM115

    return make


#: what :func:`configured_observer` makes (set by :func:`configure`)
_configured: Callable[[], JsonLineObserver] | None = None


def configure(logfile: str | None, nodaemon: bool) -> str:
    """Prepare :func:`configured_observer`; returns its name for twistd's ``logger`` option.

    twistd imports the ``logger`` option by name (``namedAny``) once every
    option is parsed, so the factory is named, with where to write kept here.
    """
    global _configured
    _configured = observer_factory(logfile, nodaemon)
    return f"{__name__}.configured_observer"


def configured_observer() -> JsonLineObserver:
    """twistd's log observer factory for ``log_format = "json"``."""
    if _configured is None:
        return JsonLineObserver(sys.stdout)
    return _configured()
