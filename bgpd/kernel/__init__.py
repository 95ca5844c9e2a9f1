"""Best paths into a Linux kernel routing table over netlink (rtnetlink, RFC 3549).

:mod:`bgpd.kernel.writer` turns the RIB's change records into batched route
writes done off the reactor thread; :mod:`bgpd.kernel.netlink` is the one
module that talks to the kernel; :mod:`bgpd.kernel.tables` names tables
(the standard library only: the config imports it).  Nothing is imported
here, so that the config does not pull in Twisted through this package.
"""
