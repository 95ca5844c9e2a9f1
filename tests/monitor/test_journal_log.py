"""Text log lines to the journal: no second time stamp, journald's priority prefix per line.

When standard output is the stream ``$JOURNAL_STREAM`` names (systemd.exec(5)),
the tap hands twistd :func:`bgpd.monitor.jsonlog.journal_observer`: each line
starts with the sd-daemon(3) prefix (``<6>`` info, ``<4>`` warning, ``<3>``
error) and carries no time stamp, journald adds its own.  A real ``twistd -n
bgpd`` (the venv's python) with no sockets shows it end to end; bounded waits,
stopped by its PID.
"""

from __future__ import annotations

import io
import os
import re

from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from bgpd.monitor.jsonlog import JournalLineObserver, event_to_journal, stdout_is_journal
from tests.monitor.support import temp_path, twistd_lines

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _stream(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


class JournalLineTests(SynchronousTestCase):
    """event_to_journal and the observer."""

    def test_priority_per_level(self):
        """Each level gets its syslog priority; the line has the system and no time stamp."""
        got = [event_to_journal({"log_format": "x {n}", "n": 1, "log_level": level,
                                 "log_time": 1e9, "log_namespace": "bgpd.rib"})
               for level in (LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error,
                             LogLevel.critical)]
        self.assertEqual(got, [f"<{p}>[bgpd.rib] x 1\n" for p in (7, 6, 4, 3, 2)])

    def test_traceback_lines_each_prefixed(self):
        """A failure's traceback is several lines, each with the event's priority."""
        try:
            raise ZeroDivisionError("no")
        except ZeroDivisionError:
            f = Failure()
        text = event_to_journal({"log_format": "boom", "log_level": LogLevel.critical,
                                 "log_failure": f, "log_system": "-"})
        lines = text.splitlines()
        self.assertGreater(len(lines), 2)
        self.assertEqual(lines[0], "<2>[-] boom")
        self.assertTrue(all(x.startswith("<2>") for x in lines))
        self.assertIn("ZeroDivisionError", text)

    def test_bad_format_keeps_the_line(self):
        """A broken format string still writes one line."""
        out = io.StringIO()
        JournalLineObserver(out)({"log_format": "{x", "log_level": LogLevel.info})
        line = out.getvalue()
        self.assertEqual(line.count("\n"), 1)
        self.assertTrue(line.startswith("<6>[-] ") and "{x" in line, line)

    def test_stdout_is_journal(self):
        """Only the stream whose device:inode $JOURNAL_STREAM names is the journal."""
        path = temp_path(self)
        with open(path, "w") as f, open(path + ".other", "w") as g:
            mine = _stream(os.fstat(f.fileno()))
            self.assertTrue(stdout_is_journal({"JOURNAL_STREAM": mine}, f))
            self.assertFalse(stdout_is_journal({"JOURNAL_STREAM": mine}, g))
            self.assertFalse(stdout_is_journal({}, f))
            self.assertFalse(stdout_is_journal({"JOURNAL_STREAM": "junk"}, f))
            self.assertFalse(stdout_is_journal({"JOURNAL_STREAM": "1:x"}, f))


class TwistdJournalTests(SynchronousTestCase):
    """twistd bgpd's own lines, with and without the journal."""

    def _twistd(self, journal: bool) -> list[str]:
        lines = twistd_lines(self, journal=journal)
        self.assertTrue(any("reactor class" in x for x in lines), lines)
        return lines

    def test_journal_lines(self):
        """To the journal every line has a priority prefix and no time stamp."""
        lines = self._twistd(journal=True)
        self.assertTrue(all(re.match(r"<[2-7]>", x) for x in lines), lines)
        self.assertFalse([x for x in lines if STAMP.match(x[3:])], lines)

    def test_plain_stdout_keeps_time_stamps(self):
        """Elsewhere twistd's text lines, time stamp first, stay as they were."""
        lines = self._twistd(journal=False)
        self.assertTrue(all(STAMP.match(x) for x in lines if x.strip()), lines)
