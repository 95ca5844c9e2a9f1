"""``twistd bgpd``: command-line options and the service tree.

    twistd -n bgpd -c /etc/bgpd/config.toml
    twistd -n bgpd -c config.toml --check     # validate and exit
"""

from __future__ import annotations

import sys

from twisted.application.service import IService
from twisted.python import usage

from bgpd.config import Config, ConfigError, load_config


class Options(usage.Options):
    synopsis = "[-c FILE] [--check]"
    longdesc = "bgpd: a BGP-4 routing daemon. Reads a TOML config (see README.rst)."
    optParameters = [
        ["config", "c", "/etc/bgpd/config.toml", "Path to the TOML configuration file."],
    ]
    optFlags = [
        ["check", None, "Validate the configuration, print the result and exit."],
    ]

    def postOptions(self) -> None:
        try:
            self.loaded: Config = load_config(self["config"])
        except ConfigError as err:
            # One clear message per problem, no usage text, no traceback.
            sys.stderr.write(f"bgpd: {err}\n")
            raise SystemExit(2) from None
        self._json_log()
        if self["check"]:
            n = len(self.loaded.neighbors)
            sys.stdout.write(f"bgpd: {self['config']}: OK ({n} neighbor{'s' if n != 1 else ''})\n")
            raise SystemExit(0)


    def _json_log(self) -> None:
        """``[monitor] log_format = "json"``: twistd's observer becomes bgpd's JSON lines;
        text lines to the journal (``$JOURNAL_STREAM``) lose twistd's time stamp.

        twistd reads its ``logger`` option (an observer factory) after the
        plugin's options are parsed, so setting it here replaces the text
        log instead of adding a second one; an explicit ``--logger`` wins.
        """
        parent = getattr(self, "parent", None)
        if parent is None or parent.get("logger"):
            return
        from bgpd.monitor import jsonlog

        if self.loaded.monitor.log_format == "json":
            parent["logger"] = jsonlog.configure(parent.get("logfile"), bool(parent.get("nodaemon")))
        elif (parent.get("logfile") == "-" or (parent.get("nodaemon") and not parent.get("logfile"))) \
                and jsonlog.stdout_is_journal():
            # Text to the journal: no second time stamp, and journald's priority per line.
            parent["logger"] = f"{jsonlog.__name__}.journal_observer"


def makeService(options: Options) -> IService:
    from bgpd.service import BgpdService
    from bgpd.state.store import SqliteStore
    from bgpd.statecontrol import resolve_state_dir

    store = SqliteStore(resolve_state_dir(options.loaded, options["config"]))
    return BgpdService(options.loaded, config_path=options["config"], store=store)
