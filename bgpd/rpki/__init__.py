"""RPKI: the RTR client (RFC 8210, RFC 6810), the VRP and ASPA tables, origin validation.

RFC 6811 route origin validation and ASPA AS_PATH verification
(draft-ietf-sidrops-aspa-verification) of the paths the RIB holds; the RTR
client feeds the tables through :class:`bgpd.rpki.records.RpkiSink`.
"""
