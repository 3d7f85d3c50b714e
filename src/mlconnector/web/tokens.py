"""The webhook tokens the receiver checks, read from the store at most every few seconds.

A token check per delivery costs two reads and a decryption (about as much as storing the
delivery); at hundreds of deliveries a second that is the receiver's whole budget. The answer for
a connection (its token, or that it has none or does not exist) is kept for ``ttl`` seconds:
a changed or removed token applies within that time. Unknown names are cached too, so a known
and an unknown connection cost the same to probe; at most ``max_entries`` names are kept. A miss
does the same work either way: one read, then one decryption (of a dummy ciphertext when the
connection or its token does not exist), so timing does not tell which connections exist.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from mlconnector.clock import Clock
from mlconnector.store import CredentialKind, Store

DEFAULT_TTL = 5.0
DEFAULT_MAX_ENTRIES = 1024


class TokenCache:
    """``expected(name)``: the connection's ``webhook_token``, or ``None``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max(1, max_entries)
        self._entries: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        vault = store.vault
        self._dummy = vault.encrypt(secrets.token_urlsafe(32)) if vault is not None else None

    async def expected(self, name: str) -> str | None:
        """The token deliveries for ``name`` must carry (``None``: accept nothing)."""
        now = self.clock.monotonic()
        entry = self._entries.get(name)
        if entry is not None and now - entry[0] < self.ttl:
            return entry[1]
        # the credential's foreign key means "no row" covers an unknown connection too
        token = await self.store.get_credential(name, CredentialKind.WEBHOOK_TOKEN)
        if token is None and self._dummy is not None and self.store.vault is not None:
            self.store.vault.decrypt(self._dummy)  # the decryption a known connection costs
        self._entries[name] = (now, token)
        self._entries.move_to_end(name)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return token

    def forget(self, name: str | None = None) -> None:
        """Drop the cached answer for ``name`` (or every answer)."""
        if name is None:
            self._entries.clear()
        else:
            self._entries.pop(name, None)
