"""Stateful simulators of Plex and ShipStation, strict enough that passing against them means
something. They are ASGI apps: mount them in-process with ``httpx.ASGITransport`` or serve them on
loopback with :func:`mlconnector.sandbox.server.serve`.

The simulators never import the connector's clients or their models (DESIGN §2).
"""
