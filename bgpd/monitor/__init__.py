"""Monitoring: session history, metrics, BMP (RFC 7854) and MRT (RFC 6396).

Consumers of the session and RIB taps and subscriptions; nothing in the
routing path imports this package.
"""
