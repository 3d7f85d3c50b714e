"""What the one-off commands (``backfill``, ``reconcile``) share: the connection they act on, the
period they cover (``--since``/``--until``), and a runtime opened on the store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING

from mlconnector.commands.context import CliContext
from mlconnector.commands.state import ensure_connection_row, opened_store
from mlconnector.config import Config
from mlconnector.errors import ConfigError

if TYPE_CHECKING:
    from mlconnector.observe import Observer
    from mlconnector.sync import ConnectionRuntime


def pick_connection(config: Config, name: str | None) -> str:
    """``name`` if configured; else the only enabled connection; else a clear error."""
    if name:
        config.connection(name)
        return name
    enabled = sorted(n for n, c in config.connections.items() if c.enabled)
    if len(enabled) == 1:
        return enabled[0]
    if not enabled:
        raise ConfigError(
            "no enabled connection is configured", hint="add one with `mlconnector connections add`"
        )
    raise ConfigError(
        f"several connections are configured ({', '.join(enabled)}); say which one",
        hint="add --connection NAME",
    )


def parse_instant(value: str, option: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO date-time (``Z``/offset; naive means UTC)."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(datetime.fromisoformat(text).date(), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option} {value!r} is not a date",
            hint=f"write {option} as YYYY-MM-DD or 2026-01-15T08:00:00Z",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def period(state: CliContext, since: str, until: str | None) -> tuple[datetime, datetime]:
    """The ``[since, until]`` of a command (``until`` defaults to now, by the injected clock)."""
    start = parse_instant(since, "--since")
    end = parse_instant(until, "--until") if until else state.clock.now()
    if end <= start:
        raise ConfigError(
            f"--until ({end.isoformat()}) must be after --since ({start.isoformat()})",
            hint="give a later --until, or leave it out (now)",
        )
    return start, end


@contextlib.asynccontextmanager
async def opened_runtime(
    state: CliContext, config: Config, name: str, *, observer: Observer | None = None
) -> AsyncIterator[ConnectionRuntime]:
    """The store and the runtime of connection ``name`` (real HTTP), closed on exit;
    ``observer`` sees its HTTP exchanges (progress)."""
    from mlconnector.observe import NULL_OBSERVER
    from mlconnector.sync import build_runtime

    async with opened_store(config, state.env, state.clock) as store:
        await ensure_connection_row(store, name, config.connections[name])
        runtime = await build_runtime(
            config, name, store, state.clock, observer=observer or NULL_OBSERVER
        )
        async with runtime:
            yield runtime
