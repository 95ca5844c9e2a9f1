"""A network namespace of the test's own, with a veth pair, for the kernel tests.

Addresses from the documentation ranges only (192.0.2.0/24, 2001:db8::/32),
on links inside the namespace; the host's tables are never touched.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess

from tests.ci import missing

__all__ = ["Netns"]


class Netns:
    """``ip netns add`` a random name; v0 (192.0.2.1/24, 2001:db8:0:1::1/64) and its peer v1."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            missing("root (ip netns)")
        if shutil.which("ip") is None:
            missing("the ip command (iproute2)")
        self.name = f"bgpdk{random.randrange(1 << 30):x}"
        self.ip("netns", "add", self.name, netns=False)
        try:
            self.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
            self.ip("addr", "add", "192.0.2.1/24", "dev", "v0")
            self.ip("-6", "addr", "add", "2001:db8:0:1::1/64", "dev", "v0", "nodad")
            for dev in ("lo", "v0", "v1"):
                self.ip("link", "set", dev, "up")
        except Exception:
            self.close()
            raise

    def ip(self, *args: str, netns: bool = True, check: bool = True) -> str:
        cmd = ["ip", *(("-n", self.name) if netns else ()), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
        return r.stdout

    def routes(self, table: int, proto: str | int | None = 186, family: str = "-4") -> dict[str, dict]:
        """``ip -j route show table N [proto P]``: dst -> the route's JSON."""
        args = [family, "-j", "route", "show", "table", str(table)]
        if proto is not None:
            args += ["proto", str(proto)]
        out = self.ip(*args, check=False).strip()
        return {r["dst"]: r for r in json.loads(out or "[]")}

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=60)


def gateways(route: dict) -> list[str]:
    """The next hops of a route in ``ip -j`` output."""
    if "nexthops" in route:
        return [h["gateway"] for h in route["nexthops"]]
    return [route["gateway"]] if "gateway" in route else []
