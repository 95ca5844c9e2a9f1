"""Make the golden BMP capture in tests/monitor/golden/ from GoBGP's BMP client (RFC 7854).

Run by hand, as root::

    python3 -m tests.interop.capture_bmp_golden OUTFILE

It builds a Lab (harness address plan) with GoBGP (192.0.2.1, AS
4200000001) and BIRD (192.0.2.2, AS 65002, announcing two IPv4 and one IPv6
prefix).  GoBGP streams BMP (pre- and post-policy, and its Loc-RIB) to a
plain TCP reader on loopback in its own namespace, which writes the bytes
to a file; after the routes have arrived BIRD is stopped (GoBGP's Peer
Down), and the reader is stopped.  The stream is split on the BMP common
header (version 3, length) and written one message a hex line, each under a
``#`` comment from a small decoder written here (not bgpd's).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time

from tests.interop.harness import Bird, GoBGP, Lab, Neighbor, poll

GOBGP_AS = 4200000001
BIRD_AS = 65002
PORT = 11019
TYPES = {0: "Route Monitoring", 1: "Statistics Report", 2: "Peer Down", 3: "Peer Up",
         4: "Initiation", 5: "Termination", 6: "Route Mirroring"}
READER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[2]))); s.listen(1)
c, _ = s.accept()
with open(sys.argv[1], "wb", buffering=0) as f:
    while True:
        d = c.recv(65536)
        if not d:
            break
        f.write(d)
"""


def describe(msg: bytes) -> str:
    version, length, kind = struct.unpack_from("!BIB", msg)
    text = f"v{version} {TYPES.get(kind, kind)} {length} octets"
    if kind in (0, 1, 2, 3):
        ptype, flags = msg[6], msg[7]
        addr = msg[16:32]
        asn, = struct.unpack_from("!I", msg, 32)
        shown = ".".join(str(b) for b in addr[12:]) if not flags & 0x80 else addr.hex()
        text += f"; peer type {ptype} flags 0x{flags:02x} address {shown} AS {asn}"
    return text


def split(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while len(data) - pos >= 6:
        length = struct.unpack_from("!I", data, pos + 1)[0]
        if length < 6 or pos + length > len(data):
            break
        out.append(data[pos:pos + length])
        pos += length
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    args = ap.parse_args(argv)
    lab = Lab(["gobgp", "bird"]).open()
    try:
        g, b = lab["gobgp"], lab["bird"]
        raw = os.path.join(g.ns.workdir, "bmp.bin")
        reader = g.ns.popen([sys.executable, "-c", READER, raw, str(PORT)], log_name="reader.log")
        time.sleep(0.5)
        bmp = (f'[[bmp-servers]]\n  [bmp-servers.config]\n    address = "127.0.0.1"\n'
               f'    port = {PORT}\n    route-monitoring-policy = "all"\n')
        gobgp = GoBGP(g.ns, GOBGP_AS, g.router_id,
                      [Neighbor(b.ipv4, BIRD_AS, families=("ipv4", "ipv6"))], extra_config=bmp)
        bird = Bird(b.ns, BIRD_AS, b.router_id,
                    [Neighbor(g.ipv4, GOBGP_AS, passive=True, families=("ipv4", "ipv6"),
                              local_address=b.ipv4)],
                    routes={"198.51.100.0/25": {"med": 7, "communities": ["65002:1"]},
                            "198.51.100.128/25": {}, "2001:db8:100::/48": {}})
        bird.start()
        gobgp.start()
        gobgp.wait_established(b.ipv4, 40)
        poll(lambda: len(gobgp.routes("ipv4")) == 2 and len(gobgp.routes("ipv6")) == 1, 30, 0.5,
             "GoBGP to hold BIRD's routes")
        time.sleep(2)
        bird.stop()
        time.sleep(3)
        gobgp.stop()
        poll(lambda: not reader.alive(), 10, 0.2, "the reader to see the end")
        with open(raw, "rb") as f:
            data = f.read()
    finally:
        lab.close()
    msgs = split(data)
    with open(args.out, "w") as f:
        f.write("# BMP (RFC 7854) from gobgpd 3.x to a plain reader: GoBGP AS 4200000001 at\n"
                "# 192.0.2.1, its peer BIRD AS 65002 at 192.0.2.2 (tests/interop/capture_bmp_golden.py)\n")
        for m in msgs:
            f.write(f"# {describe(m)}\n{m.hex()}\n")
    print(f"{len(msgs)} messages, {len(data)} octets -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
