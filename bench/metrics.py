"""What the monitor costs a full-table convergence: metrics off, on, scraped, and the updates log.

``bench/rib_scale.py``'s workload through bgpd (one feeder, one sink, real
TCP in network namespaces), once per variant, each in its own lab:

- ``off``: no ``[monitor]`` metrics, no ``[mrt]`` (the default);
- ``idle``: ``metrics_listen`` set, nobody scrapes (the lag timer runs);
- ``scraped``: a scraper in bgpd's namespace GETs ``/metrics`` every second;
- ``updates``: ``[mrt] updates = true`` (every received message into the
  BGP4MP log, RFC 6396 section 4.4).

Prints one line: each variant's seconds and its difference from ``off``,
plus the scrapes done and the log's size.  Needs root.

    sudo .venv/bin/python bench/metrics.py --scale 0.3
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench import rib_scale  # noqa: E402
from tests.interop.harness import Lab, require_binary  # noqa: E402

METRICS_PORT = 9179
VARIANTS = ("off", "idle", "scraped", "updates")
_SCRAPER = """
import sys, time, urllib.request
n = 0
for _ in range(int(sys.argv[2])):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=5).read()
        n += 1
        print(n, flush=True)
    except OSError:
        pass
    time.sleep(1.0)
"""


def extra_for(variant: str, mrt_dir: str) -> str:
    if variant in ("idle", "scraped"):
        return f'[monitor]\nmetrics_listen = "{METRICS_PORT}"\n'
    if variant == "updates":
        return (f'[mrt]\ndirectory = "{mrt_dir}"\ntables = []\nupdates = true\n'
                'interval = 86400\nfile_pattern = "{table}.%Y%m%d.mrt"\n')
    return ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated, from {', '.join(VARIANTS)}")
    ap.add_argument("--timeout", type=float, default=None)
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if any(v not in VARIANTS for v in variants) or not variants:
        ap.error(f"--variants: choose from {', '.join(VARIANTS)}")
    if os.geteuid() != 0:
        print("metrics: needs root (network namespaces)", file=sys.stderr)
        return 2
    require_binary(sys.executable)
    timeout = args.timeout if args.timeout is not None else max(60.0, 600.0 * args.scale)
    tmp = tempfile.mkdtemp(prefix="bench-metrics-")
    results: dict[str, object] = {}
    notes: dict[str, str] = {}
    try:
        feeders = rib_scale.plan_feeders(1, tmp)
        rib_scale.log(f"encoding the table at scale {args.scale} ...")
        figures = rib_scale.prepare_feeds(args.scale, feeders)
        n4, n6 = figures["v4"], figures["v6"]
        for variant in variants:
            mrt_dir = os.path.join(tmp, f"mrt-{variant}")
            with Lab(rib_scale.lab_names(feeders)) as lab:
                scraper = None
                if variant == "scraped":
                    scraper = lab["mid"].ns.popen(
                        [sys.executable, "-c", _SCRAPER, f"http://127.0.0.1:{METRICS_PORT}/metrics",
                         str(int(timeout) + 60)], log_name="scraper.log")
                rib_scale.log(f"bgpd, {variant}: starting")
                r = rib_scale.run_router(lab, "bgpd", feeders, n4, n6, timeout,
                                         extra=extra_for(variant, mrt_dir))
                rib_scale.log(f"{variant}: {r.describe()}")
                results[variant] = r
                if scraper is not None:
                    scraper.stop()
                    done = [x for x in scraper.output().split() if x.isdigit()]
                    notes[variant] = f"{done[-1] if done else 0} scrapes"
                if variant == "updates" and os.path.isdir(mrt_dir):
                    size = sum(os.path.getsize(os.path.join(mrt_dir, f)) for f in os.listdir(mrt_dir))
                    notes[variant] = f"log {size / 2**20:,.1f} MB"
        parts = [f"metrics: {n4 + n6:,} prefixes"]
        base = getattr(results.get("off"), "seconds", None)
        ok = True
        for variant in variants:
            r = results[variant]
            secs = getattr(r, "seconds", None)
            if secs is None:
                ok = False
                parts.append(f"{variant}: {r.describe()}")  # type: ignore[attr-defined]
                continue
            text = f"{variant} {secs:.2f}s"
            if base and variant != "off":
                text += f" ({100.0 * (secs - base) / base:+.1f}%)"
            if variant in notes:
                text += f" [{notes[variant]}]"
            parts.append(text)
        print("  ".join(parts), flush=True)
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
