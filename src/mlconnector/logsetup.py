"""Logging, configured once per process with :func:`logging.config.dictConfig`.

Library code only calls ``logging.getLogger(__name__)``. :func:`configure_logging` (called by the
CLI when it loads the configuration) installs one handler on standard error for the connector's
loggers (``mlconnector`` at ``log_level``, the task engine ``procrastinate`` at WARNING), with
two filters on it:

* the context filter: ``connection``, ``flow`` and ``run_id`` of the run the record was logged
  in, from :data:`RUN_CONTEXT` (set by the engine around each run with :func:`run_context`;
  ``-`` outside a run);
* the redacting filter (:meth:`~mlconnector.http.redact.Redactor.logging_filter`): every
  credential loaded from the vault is registered with it (:func:`register_secrets`), and
  ``Authorization``-like ``key=value`` pairs are masked whatever their value.

Formats: ``text`` (terminals: ``2026-01-15T12:00:00.123Z INFO  acme/orders 3f9c0a1b2d4e
mlconnector.runs: run ok ...``) or ``json`` (one object a line: ``time``, ``level``, ``logger``,
``message``, ``connection``, ``flow``, ``run_id``, the record's extra fields, ``exception``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
import secrets
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from mlconnector.http.redact import RedactingFilter, Redactor

#: loggers the connector configures (the root logger is left to the embedding program)
LOGGERS = ("mlconnector", "procrastinate")
#: third-party loggers kept quieter than the connector's own level
QUIET = {"procrastinate": logging.WARNING}
NO_VALUE = "-"


@dataclass(frozen=True)
class RunContext:
    """The run a log record belongs to."""

    connection: str
    flow: str
    run_id: str


#: the run the current task works for (asyncio tasks copy it when they are created)
RUN_CONTEXT: ContextVar[RunContext | None] = ContextVar("mlconnector_run", default=None)


def new_run_id() -> str:
    """A short random id naming one run in the logs, the audit trail and ``sync --json``."""
    return secrets.token_hex(6)


@contextlib.contextmanager
def run_context(connection: str, flow: str, run_id: str | None = None) -> Iterator[RunContext]:
    """Mark every record logged inside the block (and in tasks created inside it) as part of
    this run."""
    context = RunContext(connection, flow, run_id or new_run_id())
    token = RUN_CONTEXT.set(context)
    try:
        yield context
    finally:
        RUN_CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``connection``, ``flow`` and ``run_id`` to every record (``-`` outside a run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = RUN_CONTEXT.get()
        for name in ("connection", "flow", "run_id"):
            if not hasattr(record, name):
                setattr(record, name, getattr(context, name) if context else NO_VALUE)
        return True


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of each record (test runners and
    ``CliRunner`` swap it; a stream captured at configuration time may be closed by then)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


class UtcFormatter(logging.Formatter):
    """The text format, with an ISO-8601 UTC timestamp."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc(record.created)


def _utc(created: float) -> str:
    return (
        datetime.fromtimestamp(created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


#: attributes every LogRecord has: anything else was passed as ``extra=`` and is kept in JSON
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line (see the module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                body[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            body["exception"] = record.exc_text
        return json.dumps(body, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(connection)s/%(flow)s %(run_id)s %(name)s: %(message)s"


def logging_config(level: str, fmt: str, redactor: Redactor) -> dict[str, Any]:
    """The ``dictConfig`` of :func:`configure_logging`."""
    formatter = (
        {"()": JsonFormatter} if fmt == "json" else {"()": UtcFormatter, "format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": ContextFilter},
            "secrets": {"()": redactor.logging_filter},
        },
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "()": StderrHandler,
                "formatter": "main",
                "filters": ["context", "secrets"],
            }
        },
        "loggers": {
            name: {
                "handlers": ["stderr"],
                "level": max(logging.getLevelName(level), QUIET.get(name, 0)),
                # kept: an embedding program (or a test's log capture) on the root still sees them
                "propagate": True,
            }
            for name in LOGGERS
        },
    }


def configure_logging(level: str = "INFO", fmt: str = "text") -> Redactor:
    """Configure the connector's loggers (see the module doc); return the redactor of the
    installed filter (:func:`register_secrets` adds to it)."""
    redactor = Redactor()
    logging.config.dictConfig(logging_config(level, fmt, redactor))
    return redactor


def installed_redactors() -> list[Redactor]:
    """The redactors of the filters on the connector's handlers (none before configuration)."""
    found: list[Redactor] = []
    for handler in logging.getLogger("mlconnector").handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter) and f.redactor not in found:
                found.append(f.redactor)
    return found


def register_secrets(values: Iterable[str]) -> None:
    """Mask these values in every log record from now on (credentials loaded from the vault)."""
    chosen = [v for v in values if v]
    for redactor in installed_redactors():
        for value in chosen:
            redactor.add(value)
