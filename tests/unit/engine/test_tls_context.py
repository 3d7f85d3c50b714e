"""The real-host HTTP clients share one TLS context: a worker makes 2-3 clients per connection
it runs, and loading the CA bundle for each was most of a worker's CPU for its first runs."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from mlconnector.commands import context


async def test_clients_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    clients = [context._default_http() for _ in range(3)]
    for client in clients:
        await client.aclose()
    assert len(made) <= 1  # none when an earlier client of this process made the one context
