"""Log lines for journald and log shippers: JSON (``[monitor] log_format = "json"``) and journal text.

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

Text lines to the journal (:class:`JournalLineObserver`): when standard
output *is* the journal stream (systemd sets ``$JOURNAL_STREAM`` to its
``device:inode``, systemd.exec(5)), twistd's own time stamp would double
journald's, and every line would have journald's default priority.  The
line then carries no time stamp and starts with the sd-daemon(3) priority
prefix (``<3>`` for an error ...), which journald strips and stores as the
PRIORITY field, so ``journalctl -u bgpd -p warning`` shows what went wrong.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import ILogObserver, LogLevel, formatEvent
from zope.interface import implementer

__all__ = ["JournalLineObserver", "JsonLineObserver", "configure", "configured_observer",
           "event_text", "event_to_journal", "event_to_json", "journal_observer", "observer_factory",
           "stdout_is_journal"]

_KEEP = {"log_time": "time", "log_namespace": "namespace"}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def event_text(event: dict[str, Any]) -> str:
    """The event's message, with the failure's traceback after it if it carries one."""
    try:
        text = formatEvent(event)
    except Exception:  # noqa: BLE001 - a broken format string must not lose the line
        text = repr(event.get("log_format"))
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    return text


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
    out["text"] = event_text(event)
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


#: sd-daemon(3) priority prefixes (syslog levels) for twisted.logger's levels
_PRIORITY = {LogLevel.debug: "<7>", LogLevel.info: "<6>", LogLevel.warn: "<4>",
             LogLevel.error: "<3>", LogLevel.critical: "<2>"}


def event_to_journal(event: dict[str, Any]) -> str:
    """One log event as journal text: each line ``<PRIORITY>[system] text``, no time stamp.

    A traceback spans several lines; journald stores each line as an entry
    of its own, so each carries the prefix (and the event's priority).
    """
    prefix = _PRIORITY.get(event.get("log_level"), "<6>")  # type: ignore[arg-type]
    text = event_text(event)
    system = event.get("log_system") or event.get("log_namespace") or "-"
    lines = text.rstrip("\n").split("\n")
    return "".join(f"{prefix}[{system}] {line}\n" if i == 0 else f"{prefix}{line}\n"
                   for i, line in enumerate(lines))


@implementer(ILogObserver)
class JournalLineObserver:
    """Writes each event to ``out`` as :func:`event_to_journal` text and flushes it."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        self.out.write(event_to_journal(event))
        self.out.flush()


def stdout_is_journal(environ: dict[str, str] | None = None, out: IO[str] | None = None) -> bool:
    """Whether ``out`` (standard output) is the journal stream ``$JOURNAL_STREAM`` names.

    systemd.exec(5): compare the variable's ``device:inode`` with the
    descriptor's, so that a shell started from the service (whose output
    went elsewhere) does not take the journal's format.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat((sys.stdout if out is None else out).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def journal_observer() -> JournalLineObserver:
    """twistd's log observer factory for text lines to the journal (named by the tap)."""
    return JournalLineObserver(sys.stdout)


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
