"""The webhook tokens the receiver checks, read from the store at most every few seconds.

A token check per delivery costs two reads and a decryption (about as much as storing the
delivery); at hundreds of deliveries a second that is the receiver's whole budget. The answer for
a connection (its token, or that it has none or does not exist) is kept for ``ttl`` seconds:
a changed or removed token applies within that time. Unknown names are cached too, so a known
and an unknown connection cost the same to probe; at most ``max_entries`` names are kept. A miss
does the same work either way: one read, then one decryption (of a dummy ciphertext when the
connection or its token does not exist), so timing does not tell which connections exist.

When an answer expires, the deliveries then in flight share **one** read (without that, each
of 16 concurrent deliveries read and decrypted the token itself, on its own pooled connection:
30-45 ms for all of them). And an answer past ``refresh_after`` of its ttl that is still used is
read again in the background while it is still served, so under steady traffic no delivery
waits for the read: an answer is never used more than ``ttl`` after its read began.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from mlconnector.clock import Clock
from mlconnector.store import CredentialKind, Store
from mlconnector.web.shared_reads import SharedReads

DEFAULT_TTL = 5.0
DEFAULT_MAX_ENTRIES = 1024
#: the share of the ttl after which a used answer is read again in the background
DEFAULT_REFRESH_AFTER = 0.8


class TokenCache:
    """``expected(name)``: the connection's ``webhook_token``, or ``None``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        refresh_after: float = DEFAULT_REFRESH_AFTER,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max(1, max_entries)
        self.refresh_after = refresh_after
        self._entries: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._reads: SharedReads[str | None] = SharedReads(self._load)
        self._forgotten = 0
        #: reads of the store (for tests and benchmarks)
        self.reads = 0
        vault = store.vault
        self._dummy = vault.encrypt(secrets.token_urlsafe(32)) if vault is not None else None

    async def expected(self, name: str) -> str | None:
        """The token deliveries for ``name`` must carry (``None``: accept nothing)."""
        entry = self._entries.get(name)
        if entry is not None:
            age = self.clock.monotonic() - entry[0]
            if age < self.ttl:
                if age >= self.ttl * self.refresh_after:
                    self._reads.start(name)  # served meanwhile: it is still within its ttl
                return entry[1]
        return await self._reads.get(name)  # one read at a time per name, shared

    async def aclose(self) -> None:
        """Stop the reads in flight (the store is about to close)."""
        await self._reads.aclose()

    async def _load(self, name: str) -> str | None:
        read_at, forgotten = self.clock.monotonic(), self._forgotten
        self.reads += 1
        # the credential's foreign key means "no row" covers an unknown connection too
        token = await self.store.get_credential(name, CredentialKind.WEBHOOK_TOKEN)
        if token is None and self._dummy is not None and self.store.vault is not None:
            self.store.vault.decrypt(self._dummy)  # the decryption a known connection costs
        if forgotten != self._forgotten:
            return token
        self._entries[name] = (read_at, token)
        self._entries.move_to_end(name)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return token

    def forget(self, name: str | None = None) -> None:
        """Drop the cached answer for ``name`` (or every answer)."""
        # a read in flight began before: its answer is not kept, and the next caller reads again
        self._forgotten += 1
        if name is None:
            self._entries.clear()
        else:
            self._entries.pop(name, None)
        self._reads.discard(name)
