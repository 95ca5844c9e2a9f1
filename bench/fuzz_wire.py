"""Wire codec fuzzer for long runs: random and mutated bytes through Framer + decode_message.

Prints one line:
``fuzz: N cases, M NotificationError, K clean decodes, 0 other exceptions in S s``
and exits 1 if anything other than NotificationError escaped, printing each
offending input as hex (reproduce one with ``--seed S --first I --cases 1``).
The fuzzer itself is tests/wire/fuzzing.py, shared with tests/wire/test_fuzz.py.

    .venv/bin/python bench/fuzz_wire.py --cases 100000
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.wire import fuzzing  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=7606)
    ap.add_argument("--first", type=int, default=0, help="index of the first case")
    ap.add_argument("--max-report", type=int, default=20, help="inputs printed in full")
    args = ap.parse_args()
    failures: list[fuzzing.FuzzFailure] = []
    stats = fuzzing.run(args.cases, args.seed, on_failure=failures.append, first=args.first)
    for failure in failures[:args.max_report]:
        print(failure, file=sys.stderr)
    print(stats.line(len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
