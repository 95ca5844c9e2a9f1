"""The gRPC API (package ``bgpd.v1``, sources in ``proto/``).

``control`` is the one object the servicers call (tested without gRPC);
``server`` runs grpcio in its own threads and crosses to the reactor thread
with ``blockingCallFromThread``; ``_gen`` is generated at build time.
Protobuf types never leave this package.
"""
