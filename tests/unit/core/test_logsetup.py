"""Logging set-up: the level and format from the configuration, run context on every record,
secrets masked, one summary line per run."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from mlconnector.logsetup import (
    configure_logging,
    installed_redactors,
    register_secrets,
    run_context,
)

SECRET = "ss-v1-secret-0123456789abcdef"


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_the_run_context_and_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    configure_logging("INFO", "json")
    log = logging.getLogger("mlconnector.test")
    log.info("before any run")
    with run_context("acme", "orders", "r-1") as context:
        log.warning("inside %s", "the run", extra={"outcome": "partial"})
    log.debug("below the level")
    first, second = (json.loads(line) for line in lines(err))
    assert (first["connection"], first["flow"], first["run_id"]) == ("-", "-", "-")
    assert second["message"] == "inside the run"
    assert second["level"] == "WARNING"
    assert second["logger"] == "mlconnector.test"
    assert (second["connection"], second["flow"], second["run_id"]) == ("acme", "orders", "r-1")
    assert second["outcome"] == "partial"
    assert second["time"].endswith("Z")
    assert context.run_id == "r-1"


def test_text_lines_have_timestamp_level_and_context(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    configure_logging("DEBUG", "text")
    with run_context("acme", "inventory", "abc123"):
        logging.getLogger("mlconnector.test").debug("hello")
    (line,) = lines(err)
    stamp, level, where, run_id, rest = line.split(None, 4)
    assert stamp.endswith("Z")
    assert "T" in stamp
    assert (level, where, run_id) == ("DEBUG", "acme/inventory", "abc123")
    assert rest == "mlconnector.test: hello"


def test_registered_secrets_are_masked_in_messages_and_tracebacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    configure_logging("INFO", "json")
    assert len(installed_redactors()) == 1
    register_secrets([SECRET])
    log = logging.getLogger("mlconnector.test")
    log.info("sending with %s", SECRET)
    try:
        raise ValueError(f"bad key {SECRET}")
    except ValueError:
        log.exception("failed")
    text = err.getvalue()
    assert SECRET not in text
    records = [json.loads(line) for line in lines(err)]
    assert records[0]["message"] == "sending with ***"
    assert "bad key ***" in records[1]["exception"]


def test_a_new_configuration_replaces_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    configure_logging("INFO", "text")
    configure_logging("WARNING", "json")
    log = logging.getLogger("mlconnector.test")
    log.info("dropped")
    log.warning("kept")
    assert [json.loads(line)["message"] for line in lines(err)] == ["kept"]
    assert len(logging.getLogger("mlconnector").handlers) == 1
