"""Redaction of secrets in anything logged, audited or put into an error message."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

MASK = "***"

#: header names whose values are always secret, whatever the value
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-plex-connect-api-key",
        "x-plex-connect-api-secret",
        "cookie",
        "set-cookie",
    }
)

_SECRET_KEYS = re.compile(
    r"(?i)(\"?(?:password|secret|api_?key|apiSecret|access_token|client_secret|token)\"?\s*[:=]\s*\"?)([^\"&\s,}]+)"
)


class Redactor:
    """Knows the secrets in play and masks them wherever they appear.

    Every credential the connector loads is registered here; the HTTP layer passes every logged
    line, audited detail and error body excerpt through :meth:`text`.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        # Very short values would mask innocent text; real secrets are longer.
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def text(self, value: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, MASK)
        return _SECRET_KEYS.sub(lambda m: m.group(1) + MASK, value)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {
            name: (MASK if name.lower() in SECRET_HEADERS else self.text(value))
            for name, value in headers.items()
        }

    def logging_filter(self) -> RedactingFilter:
        """A filter that redacts every record's message (and traceback) before any handler
        formats it. Secrets added to this redactor later are masked from then on."""
        return RedactingFilter(self)


class RedactingFilter(logging.Filter):
    """Masks the secrets of :attr:`redactor` in a record's message, arguments and traceback."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True
