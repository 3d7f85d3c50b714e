"""ApiClient over ``httpx.MockTransport``: retries, rate limits, auth, origins, redaction."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.errors import (
    AuthenticationError,
    ForeignURLError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteValidationError,
    RetryBudgetExhaustedError,
    TransientError,
)
from mlconnector.http import ApiClient, RateLimiter, Redactor, RequestEvent, RetryPolicy

BASE = "https://api.example.com/v1"
TOKEN = "tok-0123456789-SECRET"
RENEWED = "tok-renewed-987654-SECRET"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A scripted server: answers from a list (the last answer repeats) and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class TokenClient(ApiClient):
    """A bearer-token client whose token can be renewed once."""

    service = "testapi"

    def __init__(self, *args: object, renew: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.token = TOKEN
        self.renew = renew
        self.refreshes = 0

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def refresh_auth(self) -> bool:
        self.refreshes += 1
        if self.renew:
            self.token = RENEWED
        return self.renew


@asynccontextmanager
async def client_for(
    handler: Handler,
    clock: FakeClock,
    *,
    retry: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
    events: list[RequestEvent] | None = None,
    renew: bool = False,
) -> AsyncIterator[TokenClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        yield TokenClient(
            http,
            base_url=BASE,
            clock=clock,
            retry=retry or RetryPolicy(max_attempts=4, base_delay=0.5),
            limiter=limiter,
            redactor=Redactor([TOKEN, RENEWED]),
            on_event=events.append if events is not None else None,
            renew=renew,
        )


def ok(body: object = None, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"ok": True}, headers=headers)


def status(code: int, body: object = None, **headers: str) -> httpx.Response:
    return httpx.Response(
        code, json=body if body is not None else {"message": "x"}, headers=headers
    )


# --- retries --------------------------------------------------------------------------------------
async def test_5xx_is_retried_with_backoff_then_succeeds(fake_clock: FakeClock) -> None:
    server = Recorder(status(503), status(502), ok({"orders": [1]}))
    async with client_for(server, fake_clock) as client:
        body = await client.request_json("GET", "orders", params={"page": 2})
    assert body == {"orders": [1]}
    assert client.calls == len(server.requests) == 3
    assert fake_clock.monotonic() == 0.5 + 1.0  # base 0.5 s, doubled
    assert {str(r.url) for r in server.requests} == {f"{BASE}/orders?page=2"}
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in server.requests)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset by peer"),
    ],
    ids=type,
)
async def test_timeouts_and_dropped_connections_are_retried(
    fake_clock: FakeClock, failure: Exception
) -> None:
    server = Recorder(failure, failure, ok())
    async with client_for(server, fake_clock) as client:
        body = await client.request_json("POST", "orders/createorder", json_body={"a": 1})
    assert body == {"ok": True}
    assert len(server.requests) == 3


async def test_persistent_5xx_exhausts_the_budget_with_what_the_operator_needs(
    fake_clock: FakeClock,
) -> None:
    server = Recorder(status(503, {"message": "maintenance"}, **{"X-Request-Id": "req-42"}))
    async with client_for(server, fake_clock, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(RetryBudgetExhaustedError) as caught:
            await client.request("GET", "orders", record="order 1001")
    err = caught.value
    assert len(server.requests) == 3
    assert isinstance(err.__cause__, TransientError)
    assert err.status == 503
    assert err.request_id == "req-42"
    assert err.body_excerpt is not None
    assert "maintenance" in err.body_excerpt
    assert err.record == "order 1001"
    assert "HTTP 503" in str(err)
    assert "req-42" in str(err)
    assert "order 1001" in str(err)


# --- rate limits ----------------------------------------------------------------------------------
async def test_429_is_waited_out_and_never_surfaced(fake_clock: FakeClock) -> None:
    limited = status(429, {"message": "Too Many Requests"}, **{"Retry-After": "17"})
    server = Recorder(limited, limited, limited, ok())
    # One attempt allowed: the three 429s must not count against it.
    async with client_for(server, fake_clock, retry=RetryPolicy(max_attempts=1)) as client:
        body = await client.request_json("GET", "orders")
    assert body == {"ok": True}
    assert len(server.requests) == 4
    assert fake_clock.monotonic() == 3 * 17


async def test_429_with_a_limiter_waits_once_not_twice(fake_clock: FakeClock) -> None:
    server = Recorder(status(429, **{"Retry-After": "20"}), ok())
    limiter = RateLimiter(fake_clock, limit_per_minute=None)
    async with client_for(server, fake_clock, limiter=limiter) as client:
        await client.request_json("GET", "orders")
    # The limiter's block (Retry-After + its margin) and the policy's delay overlap: not 40 s.
    assert fake_clock.monotonic() == 20 + limiter.reset_margin


async def test_endless_429_exhausts_the_rate_limit_budget(fake_clock: FakeClock) -> None:
    server = Recorder(status(429, {"message": "Too Many Requests"}, **{"Retry-After": "5"}))
    policy = RetryPolicy(max_attempts=1, max_rate_limit_waits=3)
    async with client_for(server, fake_clock, retry=policy) as client:
        with pytest.raises(RetryBudgetExhaustedError) as caught:
            await client.request_json("GET", "orders")
    assert isinstance(caught.value.__cause__, RateLimitedError)
    assert caught.value.status == 429
    assert len(server.requests) == 4  # the first try and 3 waits
    assert fake_clock.monotonic() == 3 * 5


# --- authentication -------------------------------------------------------------------------------
async def test_401_tries_one_refresh_then_raises_authentication_error(
    fake_clock: FakeClock,
) -> None:
    server = Recorder(status(401, {"message": "bad key"}, **{"X-Request-Id": "r-1"}))
    async with client_for(server, fake_clock, renew=True) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.request("GET", "orders")
    assert client.refreshes == 1
    assert len(server.requests) == 2
    assert server.requests[1].headers["Authorization"] == f"Bearer {RENEWED}"
    assert caught.value.status == 401
    assert caught.value.request_id == "r-1"
    assert "bad key" in str(caught.value)


async def test_401_without_renewable_credentials_is_not_retried(fake_clock: FakeClock) -> None:
    server = Recorder(status(401))
    async with client_for(server, fake_clock, renew=False) as client:
        with pytest.raises(AuthenticationError):
            await client.request("GET", "orders")
    assert client.refreshes == 1
    assert len(server.requests) == 1
    assert fake_clock.monotonic() == 0


async def test_a_renewed_token_that_works_succeeds(fake_clock: FakeClock) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        return ok() if request.headers["Authorization"] == f"Bearer {RENEWED}" else status(401)

    async with client_for(server, fake_clock, renew=True) as client:
        assert await client.request_json("GET", "orders") == {"ok": True}
    assert client.refreshes == 1


# --- garbage and other statuses -------------------------------------------------------------------
async def test_garbage_json_is_retried_then_exhausts_the_budget(fake_clock: FakeClock) -> None:
    server = Recorder(httpx.Response(200, content=b'{"orders": [{"orderId": 1, "ord'))
    async with client_for(server, fake_clock, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(RetryBudgetExhaustedError) as caught:
            await client.request_json("GET", "orders")
    assert len(server.requests) == 3
    assert isinstance(caught.value.__cause__, InvalidResponseError)
    assert caught.value.body_excerpt == '{"orders": [{"orderId": 1, "ord'


async def test_garbage_once_then_valid_json_succeeds(fake_clock: FakeClock) -> None:
    server = Recorder(httpx.Response(200, content=b"<html>proxy error</html>"), ok())
    async with client_for(server, fake_clock) as client:
        assert await client.request_json("GET", "orders") == {"ok": True}
    assert len(server.requests) == 2


async def test_an_empty_body_is_none_not_garbage(fake_clock: FakeClock) -> None:
    server = Recorder(httpx.Response(204))
    async with client_for(server, fake_clock) as client:
        assert await client.request_json("DELETE", "orders/1") is None
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (400, RemoteValidationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, RemoteValidationError),
    ],
)
async def test_client_errors_are_classified_and_not_retried(
    fake_clock: FakeClock, code: int, error_type: type[Exception]
) -> None:
    body = {"Message": f"SKU W-1 rejected with token {TOKEN}"}
    server = Recorder(status(code, body, **{"Request-Id": "abc-123"}))
    async with client_for(server, fake_clock) as client:
        with pytest.raises(error_type) as caught:
            await client.request("POST", "orders", record="order 77")
    err = caught.value
    assert type(err) is error_type
    assert len(server.requests) == 1
    assert getattr(err, "status", None) == code
    assert getattr(err, "request_id", None) == "abc-123"
    assert getattr(err, "record", None) == "order 77"
    excerpt = getattr(err, "body_excerpt", None)
    assert excerpt is not None
    assert "SKU W-1 rejected" in excerpt
    assert TOKEN not in excerpt
    assert "SKU W-1 rejected" in str(err)
    assert f"HTTP {code}" in str(err)


# --- origins --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.net/steal",
        "http://api.example.com/v1/orders",  # same host, other scheme
        "https://api.example.com:8443/v1/orders",  # same host, other port
        "https://api.example.com.evil.net/v1/orders",
        "https://api.example.com@evil.net/v1/orders",
        "HTTPS://evil.example.net/v1/orders",
    ],
)
async def test_credentials_are_never_sent_to_a_foreign_origin(
    fake_clock: FakeClock, url: str
) -> None:
    server = Recorder(ok())
    async with client_for(server, fake_clock) as client:
        with pytest.raises(ForeignURLError):
            await client.request("GET", url)
    assert server.requests == []
    assert client.calls == 0


async def test_an_absolute_url_on_the_own_origin_is_allowed(fake_clock: FakeClock) -> None:
    server = Recorder(ok())
    async with client_for(server, fake_clock) as client:
        await client.request("GET", "https://api.example.com/v1/orders?page=3")
        await client.request("GET", "//evil.example.net/x")  # a path, joined to the base
    assert [str(r.url) for r in server.requests] == [
        "https://api.example.com/v1/orders?page=3",
        "https://api.example.com/v1/evil.example.net/x",
    ]


async def test_unauthenticated_requests_may_leave_the_origin_without_credentials(
    fake_clock: FakeClock,
) -> None:
    server = Recorder(ok())
    async with client_for(server, fake_clock) as client:
        await client.request("GET", "https://cdn.example.org/label.pdf", authenticated=False)
    assert len(server.requests) == 1
    assert "Authorization" not in server.requests[0].headers


# --- events and logs ------------------------------------------------------------------------------
async def test_events_are_emitted_per_attempt_and_redacted(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[RequestEvent] = []
    failing = status(500, {"message": f"upstream said {TOKEN}"}, **{"X-Request-Id": "q-9"})
    server = Recorder(failing, ok(**{"X-Request-Id": "q-10"}))
    with caplog.at_level(logging.INFO, logger="mlconnector.http"):
        async with client_for(server, fake_clock, events=events) as client:
            await client.request_json("GET", f"labels/{TOKEN}", params={"page": 1})

    assert [(e.status, e.attempt, e.request_id) for e in events] == [
        (500, 1, "q-9"),
        (200, 2, "q-10"),
    ]
    assert all(e.service == "testapi" and e.method == "GET" for e in events)
    assert events[0].error is not None
    assert "HTTP 500" in events[0].error
    assert events[1].error is None
    for event in events:
        assert TOKEN not in repr(event)
    assert events[0].url == "https://api.example.com/v1/labels/***"
    # The retry was logged, and the log line is redacted too.
    assert "retrying in 0.50s" in caplog.text
    assert TOKEN not in caplog.text


async def test_event_attempts_number_every_exchange_including_429s(fake_clock: FakeClock) -> None:
    events: list[RequestEvent] = []
    limited = status(429, **{"Retry-After": "2"})
    server = Recorder(limited, limited, status(503), ok())
    async with client_for(server, fake_clock, events=events) as client:
        await client.request_json("GET", "orders")
    assert [(e.status, e.attempt) for e in events] == [(429, 1), (429, 2), (503, 3), (200, 4)]
