"""Errors the store raises on purpose (all fatal: a caller bug or an operator must act)."""

from __future__ import annotations

from mlconnector.errors import FatalError


class StoreError(FatalError):
    """The state store refused an operation."""


class UnknownConnectionError(StoreError):
    """A method named a connection that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown connection {name!r}",
            record=f"connection {name}",
            hint="create it first (`mlconnector connection add`) or check the spelling",
        )


class OperationStateError(StoreError):
    """An outbox transition that the state machine does not allow (or an unknown operation id)."""
