"""bgpd: a BGP-4 routing daemon on Twisted."""

__version__ = "0.1.0"
