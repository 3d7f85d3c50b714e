"""What the connector tells an observer as it works (for metrics): :class:`Observer`.

The clients, the outbox, the engine's run function and the webhook receiver call these hooks;
they never import a metrics library. :class:`NullObserver` is the default (CLI one-shot runs,
tests); ``mlconnector.web.metrics.Metrics`` is the Prometheus implementation, built once per
process (or per test) and injected into the engine and the web app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mlconnector.http.client import RequestEvent


class Observer(Protocol):
    """Receives events; every method must be cheap and must not raise."""

    def http_exchange(self, event: RequestEvent) -> None:
        """One HTTP exchange finished (every attempt, retries and 429s included)."""
        ...

    def operation_changed(self, connection: str, flow: str, state: str) -> None:
        """An outbox operation entered ``state`` (pending, sent, confirmed, failed, dead)."""
        ...

    def run_finished(self, connection: str, flow: str, outcome: str, seconds: float) -> None:
        """A full run of ``flow`` ended ``ok``, ``partial`` or ``failed`` after ``seconds``."""
        ...

    def webhook_delivery(self, connection: str, outcome: str) -> None:
        """The receiver answered a delivery (``accepted``, ``duplicate``, ``rejected`` ...)."""
        ...


class NullObserver:
    """Observes nothing."""

    def http_exchange(self, event: RequestEvent) -> None:
        return None

    def operation_changed(self, connection: str, flow: str, state: str) -> None:
        return None

    def run_finished(self, connection: str, flow: str, outcome: str, seconds: float) -> None:
        return None

    def webhook_delivery(self, connection: str, outcome: str) -> None:
        return None


#: the shared do-nothing observer (it holds no state)
NULL_OBSERVER: Observer = NullObserver()
