"""One error tree, classified by what the caller should do about it.

* ``FatalError``: stop; a person must act (wrong key, missing Plex role, bad configuration).
  :class:`OperationFatalError` is the fatal error of **one** operation (a void Plex cannot
  reverse, an inventory move left to an operator): that operation goes ``dead`` at once with one
  alert, and the pass goes on. Only the other fatal errors (connection level: authentication, a
  missing grant, an unreachable host, bad configuration) stop a pass (:func:`stops_pass`).
* ``RetryableError``: try again later (5xx, timeouts, 429, garbage from a server).
* ``SkipRecordError``: this record cannot be processed as it is; record why and move on.

Every error carries what an operator needs to find it again: HTTP status, the remote request id,
an excerpt of the body (secrets redacted by the HTTP layer) and the record it concerns.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class Action(StrEnum):
    FATAL = "fatal"
    RETRY = "retry"
    SKIP = "skip"


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    action: ClassVar[Action] = Action.FATAL

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        body_excerpt: str | None = None,
        record: str | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.body_excerpt = body_excerpt
        self.record = record
        self.retry_after = retry_after
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.record:
            parts.append(f"record: {self.record}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        if self.hint:
            parts.append(f"what to do: {self.hint}")
        return " | ".join(parts)

    def details(self) -> dict[str, object]:
        """A JSON-friendly summary, for the audit trail and the outbox."""
        return {
            "error": type(self).__name__,
            "action": self.action.value,
            "message": self.message,
            "status": self.status,
            "request_id": self.request_id,
            "body_excerpt": self.body_excerpt,
            "record": self.record,
            "hint": self.hint,
        }


class FatalError(ConnectorError):
    action = Action.FATAL


class OperationFatalError(FatalError):
    """Fatal for one operation only: retrying cannot help and a person must act on this record.

    Every path (main pass, retry, crash recovery, replay) makes the operation ``dead`` once, with
    one alert; the pass goes on. ``task`` holds what the operator must do, for the audit trail.
    """

    def __init__(self, message: str, *, task: dict[str, object] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.task: dict[str, object] = dict(task or {})


def stops_pass(error: BaseException) -> bool:
    """Whether ``error`` stops a whole pass: a fatal error that is not about one operation."""
    return isinstance(error, FatalError) and not isinstance(error, OperationFatalError)


class RetryableError(ConnectorError):
    action = Action.RETRY


class SkipRecordError(ConnectorError):
    action = Action.SKIP


# --- fatal -------------------------------------------------------------------------------------
class ConfigError(FatalError):
    """The configuration is invalid; the message names the file, the key and what is allowed."""


class AuthenticationError(FatalError):
    """The remote system refused the credentials (HTTP 401)."""


class PermissionDeniedError(FatalError):
    """Authenticated, but not allowed (Plex role missing, API product not subscribed)."""


class VaultError(FatalError):
    """The credential vault cannot be opened (missing or wrong master key)."""


class ForeignURLError(FatalError):
    """A URL is not on the allow-list; nothing was sent to it."""


# --- retry later -------------------------------------------------------------------------------
class TransientError(RetryableError):
    """5xx, timeout, dropped connection: the same request may succeed later."""


class RateLimitedError(RetryableError):
    """HTTP 429; ``retry_after`` says how long to wait. Never an operator-facing failure alone."""


class InvalidResponseError(RetryableError):
    """The server answered something that is not what its API promises (garbage, truncated JSON)."""


class RetryBudgetExhaustedError(RetryableError):
    """Every retry was spent; the operation goes back to the outbox with this error."""


# --- skip the record ---------------------------------------------------------------------------
class RemoteValidationError(SkipRecordError):
    """The remote system rejected this record's content (HTTP 400/422 on one record)."""


class NotFoundError(SkipRecordError):
    """The record does not exist remotely (HTTP 404)."""


class FrozenRecordError(SkipRecordError):
    """The remote record is read-only (a shipped or cancelled ShipStation order)."""


class SignatureError(SkipRecordError):
    """A webhook delivery's signature, timestamp or token did not verify."""


def excerpt(body: str | bytes | None, limit: int = 500) -> str | None:
    """A short, printable excerpt of a response body for error messages."""
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"
