"""A base API client over an injected ``httpx.AsyncClient``.

It owns what every remote call shares: pacing through the credential's rate limiter, retries by a
pure policy, translating HTTP failures into the error tree, redaction, and a rule that credentials
are only ever attached to requests for the configured API origin.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from mlconnector.clock import Clock
from mlconnector.errors import (
    AuthenticationError,
    ConnectorError,
    ForeignURLError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteValidationError,
    RetryBudgetExhaustedError,
    TransientError,
    excerpt,
)
from mlconnector.http.ratelimit import RateLimiter
from mlconnector.http.redact import Redactor
from mlconnector.http.retry import RetryPolicy

log = logging.getLogger("mlconnector.http")

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-plex-connect-request-id", "x-correlation-id")


@dataclass(frozen=True)
class RequestEvent:
    """One finished HTTP exchange, for the audit trail and metrics (already redacted).

    ``endpoint`` is the path as a bounded template (ids replaced by ``{id}``: a metrics label,
    never a record id); ``retry_in`` the seconds before this request is tried again (``None``:
    it is not), ``rate_limited`` whether that wait is a 429 being waited out."""

    service: str
    method: str
    url: str
    status: int | None
    request_id: str | None
    attempt: int
    elapsed: float
    error: str | None = None
    endpoint: str = ""
    error_type: str | None = None
    retry_in: float | None = None
    rate_limited: bool = False


_VERSION_SEGMENT = re.compile(r"^v\d+(\.\d+)?$", re.IGNORECASE)


def endpoint_template(path: str) -> str:
    """``/orders/123`` → ``/orders/{id}``: every segment holding a digit (but ``v1``, ``v2``)
    or longer than 40 characters becomes ``{id}``, so the result is bounded by the API's
    routes, not by its records."""
    segments = []
    for segment in path.split("/"):
        is_id = len(segment) > 40 or (
            any(c.isdigit() for c in segment) and not _VERSION_SEGMENT.match(segment)
        )
        segments.append("{id}" if is_id else segment)
    return "/".join(segments) or "/"


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


class ApiClient:
    """Shared machinery for the Plex and ShipStation clients.

    Subclasses override :meth:`auth_headers` (credentials for the configured origin only),
    :meth:`classify` (API-specific error bodies) and may override :meth:`refresh_auth` (OAuth2).
    """

    service = "api"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        clock: Clock,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        redactor: Redactor | None = None,
        on_event: Callable[[RequestEvent], None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.http = http
        self.base_url = httpx.URL(base_url.rstrip("/") + "/")
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.limiter = limiter
        self.redactor = redactor or Redactor()
        self.on_event = on_event
        self.timeout = timeout
        #: requests actually sent (every attempt), for benchmarks and tests
        self.calls = 0
        #: the ``Date`` header of the latest successful response, raw (see :meth:`server_time`)
        self.server_date: str | None = None

    # --- hooks ---------------------------------------------------------------------------------
    async def auth_headers(self) -> dict[str, str]:
        return {}

    async def refresh_auth(self) -> bool:
        """Called once after a 401; return True if credentials were renewed and a retry may help."""
        return False

    def classify(self, response: httpx.Response) -> ConnectorError | None:
        """Translate a response into an error, or ``None`` if it is a success."""
        status = response.status_code
        if status < 400:
            return None
        kwargs: dict[str, Any] = {
            "status": status,
            "request_id": self.request_id(response),
            "body_excerpt": self.redactor.text(excerpt(response.text) or ""),
        }
        message = self.error_message(response) or response.reason_phrase
        if status == 401:
            return AuthenticationError(
                f"{self.service} refused the credentials: {message}", **kwargs
            )
        if status == 403:
            return PermissionDeniedError(f"{self.service} denied access: {message}", **kwargs)
        if status == 404:
            return NotFoundError(f"{self.service}: not found: {message}", **kwargs)
        if status == 429:
            return RateLimitedError(
                f"{self.service} rate limit reached",
                retry_after=self.retry_after(response),
                **kwargs,
            )
        if status >= 500:
            return TransientError(f"{self.service} server error: {message}", **kwargs)
        return RemoteValidationError(f"{self.service} rejected the request: {message}", **kwargs)

    def error_message(self, response: httpx.Response) -> str | None:
        try:
            body = response.json()
        except ValueError:
            return None
        if isinstance(body, dict):
            for key in ("message", "Message", "ExceptionMessage"):
                if isinstance(body.get(key), str):
                    return str(body[key])
        return None

    def request_id(self, response: httpx.Response) -> str | None:
        for name in REQUEST_ID_HEADERS:
            if name in response.headers:
                return response.headers[name]
        return None

    @staticmethod
    def retry_after(response: httpx.Response) -> float | None:
        for name in ("Retry-After", "X-Rate-Limit-Reset"):
            raw = response.headers.get(name)
            if raw is not None:
                try:
                    return max(0.0, float(raw))
                except ValueError:
                    continue
        return None

    # --- the request loop ------------------------------------------------------------------------
    def server_time(self) -> datetime | None:
        """The server's clock at its latest successful answer (its ``Date`` header, whole
        seconds, UTC), or ``None`` when it sent none or one that does not parse."""
        if not self.server_date:
            return None
        try:
            when = parsedate_to_datetime(self.server_date)
        except (TypeError, ValueError, IndexError):
            return None
        return when.astimezone(UTC) if when.tzinfo is not None else None

    def url_for(self, path_or_url: str) -> httpx.URL:
        if path_or_url.startswith(("http://", "https://")):
            return httpx.URL(path_or_url)
        return self.base_url.join(path_or_url.lstrip("/"))

    def is_own_origin(self, url: httpx.URL) -> bool:
        return origin(url) == origin(self.base_url)

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        record: str | None = None,
    ) -> httpx.Response:
        """Send one logical request, retrying by the policy; return the successful response."""
        response, _ = await self._send(
            method,
            path_or_url,
            params=params,
            json_body=json_body,
            content=content,
            data=data,
            headers=headers,
            authenticated=authenticated,
            record=record,
            expect_json=False,
        )
        return response

    async def request_json(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        record: str | None = None,
    ) -> Any:
        """Like :meth:`request`, returning the parsed JSON body (``None`` when empty).

        A body that is not JSON counts as a retryable failure (``InvalidResponseError``).
        """
        _, body = await self._send(
            method,
            path_or_url,
            params=params,
            json_body=json_body,
            content=content,
            data=data,
            headers=headers,
            authenticated=authenticated,
            record=record,
            expect_json=True,
        )
        return body

    async def _send(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None,
        json_body: Any,
        content: bytes | str | None,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        authenticated: bool,
        record: str | None,
        expect_json: bool,
    ) -> tuple[httpx.Response, Any]:
        url = self.url_for(path_or_url)
        if authenticated and not self.is_own_origin(url):
            raise ForeignURLError(
                f"refusing to send {self.service} credentials to {url.scheme}://{url.host}",
                record=record,
                hint=f"only {self.base_url} may receive them",
            )
        attempts = 0
        rate_limit_waits = 0
        refreshed = False
        # Every exchange sent, for events (``attempts`` leaves out 429s and the 401 refresh).
        tries = 0
        while True:
            tries += 1
            send_headers = dict(headers or {})
            if authenticated:
                send_headers.update(await self.auth_headers())
            if self.limiter is not None:
                await self.limiter.acquire()
            started = self.clock.monotonic()
            response: httpx.Response | None = None
            error: ConnectorError | None = None
            try:
                self.calls += 1
                response = await self.http.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    content=content,
                    data=data,
                    headers=send_headers,
                    timeout=self.timeout,
                )
                # Read the body inside the try: a dropped connection can surface here.
                await response.aread()
            except httpx.TimeoutException as exc:
                error = TransientError(f"{self.service} timed out: {exc!r}", record=record)
            except httpx.TransportError as exc:
                error = TransientError(
                    f"{self.service} connection failed: {type(exc).__name__}", record=record
                )
            finally:
                if self.limiter is not None:
                    await self.limiter.settle(
                        response.headers if response is not None else None,
                        status=response.status_code if response is not None else None,
                    )
            body: Any = None
            if response is not None:
                error = self.classify(response)
                if error is None and expect_json:
                    try:
                        body = self.parse_json(response, record=record)
                    except InvalidResponseError as exc:
                        error = exc
                if error is not None and error.record is None:
                    error.record = record
            status = response.status_code if response is not None else None
            elapsed = self.clock.monotonic() - started
            exchange = (method, url, response, status, tries, elapsed, error)
            if error is None:
                assert response is not None
                self.server_date = response.headers.get("date")
                self._emit(*exchange)
                return response, body
            if isinstance(error, AuthenticationError) and not refreshed:
                refreshed = True
                if await self.refresh_auth():
                    self._emit(*exchange, retry_in=0.0)
                    continue
            if not isinstance(error, RateLimitedError):
                attempts += 1
            delay = self.retry.next_delay(
                error, attempts=attempts, rate_limit_waits=rate_limit_waits
            )
            rate_limited = isinstance(error, RateLimitedError)
            self._emit(*exchange, retry_in=delay, rate_limited=rate_limited and delay is not None)
            if delay is None:
                if isinstance(error, RateLimitedError | TransientError | InvalidResponseError):
                    raise RetryBudgetExhaustedError(
                        f"{self.service}: gave up after {attempts} attempts and "
                        f"{rate_limit_waits} rate-limit waits: {error.message}",
                        status=error.status,
                        request_id=error.request_id,
                        body_excerpt=error.body_excerpt,
                        record=record,
                    ) from error
                raise error
            if isinstance(error, RateLimitedError):
                rate_limit_waits += 1
            log.info(
                "%s %s %s: %s; retrying in %.2fs",
                self.service,
                method,
                self.redactor.text(str(url)),
                type(error).__name__,
                delay,
            )
            await self.clock.sleep(delay)

    def parse_json(self, response: httpx.Response, *, record: str | None = None) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except (ValueError, json.JSONDecodeError) as exc:
            raise InvalidResponseError(
                f"{self.service} answered something that is not JSON",
                status=response.status_code,
                request_id=self.request_id(response),
                body_excerpt=self.redactor.text(excerpt(response.text) or ""),
                record=record,
            ) from exc

    def _emit(
        self,
        method: str,
        url: httpx.URL,
        response: httpx.Response | None,
        status: int | None,
        attempt: int,
        elapsed: float,
        error: ConnectorError | None,
        *,
        retry_in: float | None = None,
        rate_limited: bool = False,
    ) -> None:
        if self.on_event is None:
            return
        self.on_event(
            RequestEvent(
                service=self.service,
                method=method,
                url=self.redactor.text(str(url)),
                status=status,
                request_id=self.request_id(response) if response is not None else None,
                attempt=attempt,
                elapsed=elapsed,
                error=self.redactor.text(str(error)) if error is not None else None,
                endpoint=endpoint_template(url.path),
                error_type=type(error).__name__ if error is not None else None,
                retry_in=retry_in,
                rate_limited=rate_limited,
            )
        )
