"""Monitoring (issue 12): session history, Prometheus metrics, MRT dumps (RFC 6396).

Consumers of what the sessions and the RIB already publish (state-change
callbacks, tables, counters); nothing here wraps a session or the RIB, and
nothing here imports the service tree (an import-linter contract).
"""
