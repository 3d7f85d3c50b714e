"""The error tree: classified by what the caller does, carrying what an operator needs."""

from __future__ import annotations

import pytest

from mlconnector.errors import (
    Action,
    AuthenticationError,
    ConfigError,
    ConnectorError,
    FatalError,
    ForeignURLError,
    FrozenRecordError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteValidationError,
    RetryableError,
    RetryBudgetExhaustedError,
    SignatureError,
    SkipRecordError,
    TransientError,
    VaultError,
    excerpt,
)


@pytest.mark.parametrize(
    ("error_type", "family", "action"),
    [
        (ConfigError, FatalError, Action.FATAL),
        (AuthenticationError, FatalError, Action.FATAL),
        (PermissionDeniedError, FatalError, Action.FATAL),
        (VaultError, FatalError, Action.FATAL),
        (ForeignURLError, FatalError, Action.FATAL),
        (TransientError, RetryableError, Action.RETRY),
        (RateLimitedError, RetryableError, Action.RETRY),
        (InvalidResponseError, RetryableError, Action.RETRY),
        (RetryBudgetExhaustedError, RetryableError, Action.RETRY),
        (RemoteValidationError, SkipRecordError, Action.SKIP),
        (NotFoundError, SkipRecordError, Action.SKIP),
        (FrozenRecordError, SkipRecordError, Action.SKIP),
        (SignatureError, SkipRecordError, Action.SKIP),
    ],
)
def test_every_error_is_classified_by_what_to_do(
    error_type: type[ConnectorError], family: type[ConnectorError], action: Action
) -> None:
    error = error_type("x")
    assert isinstance(error, family)
    assert isinstance(error, ConnectorError)
    assert error.action is action
    assert error.details()["action"] == action.value


def test_message_names_record_status_request_id_and_what_to_do() -> None:
    error = RemoteValidationError(
        "ShipStation rejected the order",
        status=422,
        request_id="req-7",
        body_excerpt='{"message": "bad SKU"}',
        record="order SO-1001",
        hint="fix the SKU in Plex",
    )
    assert str(error) == (
        "ShipStation rejected the order | record: order SO-1001 | HTTP 422 | request id req-7 | "
        "what to do: fix the SKU in Plex"
    )
    assert error.details() == {
        "error": "RemoteValidationError",
        "action": "skip",
        "message": "ShipStation rejected the order",
        "status": 422,
        "request_id": "req-7",
        "body_excerpt": '{"message": "bad SKU"}',
        "record": "order SO-1001",
        "hint": "fix the SKU in Plex",
    }


def test_a_bare_error_is_just_its_message() -> None:
    assert str(TransientError("timed out")) == "timed out"


def test_excerpt_is_short_printable_and_marks_the_cut() -> None:
    assert excerpt(None) is None
    assert excerpt(b'  {"a": 1}\n') == '{"a": 1}'
    assert excerpt(b"\xff\xfeok") == "\ufffd\ufffdok"
    long = "x" * 600
    cut = excerpt(long)
    assert cut == "x" * 500 + "…"
    assert excerpt(long, limit=10) == "x" * 10 + "…"
    assert excerpt("x" * 500) == "x" * 500
