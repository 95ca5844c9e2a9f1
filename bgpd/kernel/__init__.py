"""Best paths into a Linux kernel routing table over netlink (rtnetlink, RFC 3549).

:mod:`bgpd.kernel.writer` turns the RIB's change records into batched route
writes done off the reactor thread; :mod:`bgpd.kernel.netlink` is the one
module that talks to the kernel (pyroute2).
"""

from bgpd.kernel.writer import FamilyCounts, KernelRoute, KernelWriter, WriterOptions

__all__ = ["FamilyCounts", "KernelRoute", "KernelWriter", "WriterOptions"]
