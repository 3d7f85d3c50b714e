"""Alerts: how a failure that needs a person (an operation gone ``dead``, a fatal run) gets out.

:class:`AlertSink` is the protocol; :class:`LogAlertSink` logs (always on) and
:class:`WebhookAlertSink` also POSTs a small JSON body to ``alert_webhook_url``. An alert never
raises: a broken alert channel must not stop the sync, so delivery problems are logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from mlconnector.http import Redactor

log = logging.getLogger("mlconnector.alerts")


@dataclass(frozen=True)
class Alert:
    """One thing an operator must look at."""

    connection: str
    flow: str
    title: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "flow": self.flow,
            "title": self.title,
            "details": self.details,
        }


class AlertSink(Protocol):
    """Receives alerts; must not raise."""

    async def alert(self, alert: Alert) -> None: ...


class LogAlertSink:
    """Logs every alert at ERROR level (secrets redacted) and remembers them (for the UI/tests)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor or Redactor()
        self.sent: list[Alert] = []

    async def alert(self, alert: Alert) -> None:
        self.sent.append(alert)
        log.error(
            self.redactor.text(
                f"ALERT {alert.connection}/{alert.flow}: {alert.title} {alert.details}"
            )
        )


class WebhookAlertSink:
    """Logs like :class:`LogAlertSink`, then POSTs the alert as JSON to ``url``."""

    def __init__(self, http: httpx.AsyncClient, url: str, redactor: Redactor | None = None) -> None:
        self.http = http
        self.url = url
        self.redactor = redactor or Redactor()
        self.log = LogAlertSink(self.redactor)

    @property
    def sent(self) -> list[Alert]:
        return self.log.sent

    async def alert(self, alert: Alert) -> None:
        await self.log.alert(alert)
        body = self.redactor.text(httpx.Response(200, json=alert.to_json()).text)
        try:
            response = await self.http.post(
                self.url, content=body, headers={"content-type": "application/json"}
            )
            if response.status_code >= 400:
                log.warning("alert webhook answered HTTP %s", response.status_code)
        except httpx.HTTPError as exc:
            # the alert is in the log already; a dead alert channel must not stop the sync
            log.warning("alert webhook unreachable: %s", type(exc).__name__)
