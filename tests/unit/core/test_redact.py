"""Redactor: registered secrets and secret-looking key=value pairs never reach text or logs."""

from __future__ import annotations

import logging

import pytest

from mlconnector.http.redact import MASK, Redactor

API_KEY = "a1b2c3d4e5f6a7b8c9d0"
API_SECRET = "Zq9-secret-Xy8-0000"


def test_registered_secrets_are_masked_wherever_they_appear() -> None:
    redactor = Redactor([API_KEY, API_SECRET])
    text = f"GET https://ssapi.example.com/orders?k={API_KEY} failed; secret was {API_SECRET}."
    assert redactor.text(text) == (
        f"GET https://ssapi.example.com/orders?k={MASK} failed; secret was {MASK}."
    )


def test_every_occurrence_is_masked_and_longer_secrets_first() -> None:
    redactor = Redactor()
    redactor.add("abcd1234")
    redactor.add("abcd1234-long-tail")
    masked = redactor.text("x abcd1234-long-tail y abcd1234 z abcd1234")
    assert masked == f"x {MASK} y {MASK} z {MASK}"
    assert "tail" not in masked


def test_empty_and_very_short_values_are_not_treated_as_secrets() -> None:
    redactor = Redactor(["", "ab", None])  # type: ignore[list-item]
    assert redactor.text("a tab and a lab") == "a tab and a lab"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter2&user=ann", f"password={MASK}&user=ann"),
        ('{"api_key": "k-123", "id": 7}', f'{{"api_key": "{MASK}", "id": 7}}'),
        ('{"apiSecret":"s-456"}', f'{{"apiSecret":"{MASK}"}}'),
        ("client_secret=abc&grant_type=x", f"client_secret={MASK}&grant_type=x"),
        ("access_token: eyJhbGciOi.payload.sig", f"access_token: {MASK}"),
        ("refresh_token=r-789 other=1", f"refresh_token={MASK} other=1"),
        ("APIKEY = QWERTY", f"APIKEY = {MASK}"),
    ],
)
def test_key_value_patterns_are_masked_without_registration(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


def test_innocent_text_is_left_alone() -> None:
    text = "order 1234 shipped via UPS Ground, tracking 1Z999AA10123456784"
    assert Redactor([API_KEY]).text(text) == text


def test_headers_mask_secret_header_names_and_secret_values() -> None:
    redactor = Redactor([API_KEY])
    headers = {
        "Authorization": "Basic dXNlcjpwYXNz",
        "API-Key": "anything at all",
        "X-Plex-Connect-Api-Key": "pk",
        "Cookie": "session=1",
        "X-Custom": f"token-is-{API_KEY}",
        "Content-Type": "application/json",
    }
    assert redactor.headers(headers) == {
        "Authorization": MASK,
        "API-Key": MASK,
        "X-Plex-Connect-Api-Key": MASK,
        "Cookie": MASK,
        "X-Custom": f"token-is-{MASK}",
        "Content-Type": "application/json",
    }


def test_log_records_are_redacted_before_any_handler(caplog: pytest.LogCaptureFixture) -> None:
    redactor = Redactor([API_KEY, API_SECRET])
    logger = logging.getLogger("tests.core.redact")
    redacting = redactor.logging_filter()
    logger.addFilter(redacting)
    try:
        with caplog.at_level(logging.INFO, logger="tests.core.redact"):
            logger.info("calling with key %s and secret %s", API_KEY, API_SECRET)
            logger.warning("body was {%s}", f'"password": "{API_SECRET}x"')
    finally:
        logger.removeFilter(redacting)

    assert API_KEY not in caplog.text
    assert API_SECRET not in caplog.text
    assert [r.getMessage() for r in caplog.records] == [
        f"calling with key {MASK} and secret {MASK}",
        f'body was {{"password": "{MASK}"}}',
    ]


def test_a_secret_added_later_is_masked_from_then_on() -> None:
    redactor = Redactor()
    assert redactor.text(f"k={API_KEY}") == f"k={API_KEY}"
    redactor.add(API_KEY)
    assert redactor.text(f"k={API_KEY}") == f"k={MASK}"
