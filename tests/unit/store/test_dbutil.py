"""The PostgreSQL test helper: skip locally when the server is absent, fail under CI=true."""

from __future__ import annotations

import pytest

from tests import dbutil

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"


def test_unreachable_postgres_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbutil, "ADMIN_URL", UNREACHABLE)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL unreachable"):
        dbutil.require_postgres()


def test_unreachable_postgres_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbutil, "ADMIN_URL", UNREACHABLE)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        dbutil.require_postgres()
