"""Monitoring (issue 12): session history, Prometheus metrics, BMP (RFC 7854), MRT (RFC 6396).

Consumers of what the sessions and the RIB already publish (state-change
callbacks, taps, subscriptions, tables, counters); nothing here wraps a
session or the RIB, nothing in the routing path imports this package, and
nothing here imports the service tree (import-linter contracts).
"""
