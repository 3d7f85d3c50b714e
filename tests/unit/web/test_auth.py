"""Login, sessions, CSRF tokens, roles, the trusted proxy header and the /metrics token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.config import WebSettings
from mlconnector.store import AuditQuery, OperationState, Role, Store
from mlconnector.web import create_web_app
from mlconnector.web.auth import SESSION_COOKIE
from tests.accounts import account_hash
from tests.unit.web.conftest import ORIGIN, PASSWORD, csrf_of, log_in, make_config
from tests.unit.web.seed import Seeded, seed

UI_PAGES = ["/", "/operations", "/operations?state=dead", "/audit", "/connections/acme"]

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def seeded(store: Store) -> Seeded:
    return await seed(store)


@pytest.fixture
async def make_client(
    store: Store, tmp_path: Path, fake_clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """``await make_client(web=WebSettings(...), client=("10.0.0.1", 5), base_url=...)``: a
    client of an app built with those ``[web]`` settings."""
    opened: list[httpx.AsyncClient] = []

    async def make(
        web: WebSettings | None = None,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        base_url: str = ORIGIN,
    ) -> httpx.AsyncClient:
        config = make_config(tmp_path)
        if web is not None:
            config = config.model_copy(update={"web": web})
        app = create_web_app(store=store, config=config, clock=fake_clock)
        transport = httpx.ASGITransport(app, client=client)
        opened.append(httpx.AsyncClient(transport=transport, base_url=base_url))
        return opened[-1]

    yield make
    for client in opened:
        await client.aclose()


async def state_of(store: Store, op_id: int) -> OperationState:
    op = await store.get_operation(op_id)
    assert op is not None
    return op.state


# --- login required ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", UI_PAGES)
async def test_every_ui_page_sends_an_anonymous_visitor_to_the_login(
    anonymous: httpx.AsyncClient, path: str
) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 303
    login = httpx.URL(response.headers["location"])
    assert login.path == "/login"
    assert login.params["next"] == path
    page = await anonymous.get(response.headers["location"])
    assert page.status_code == 200
    assert 'name="password"' in page.text
    assert "Replay" not in page.text
    assert "Dashboard</a>" not in page.text  # no navigation before the login


async def test_an_anonymous_post_is_refused_and_changes_nothing(
    anonymous: httpx.AsyncClient, store: Store, seeded: Seeded
) -> None:
    response = await anonymous.post(
        f"/operations/{seeded.dead_id}/replay", headers={"origin": ORIGIN}
    )
    assert response.status_code == 401
    assert "not logged in" in response.text
    assert await state_of(store, seeded.dead_id) is OperationState.DEAD


async def test_monitoring_webhooks_and_static_files_need_no_login(
    anonymous: httpx.AsyncClient,
) -> None:
    for path in ("/healthz", "/metrics", "/static/style.css", "/login"):
        assert (await anonymous.get(path)).status_code == 200, path
    webhook = await anonymous.post("/webhooks/shipstation/acme/wrong-token", content=b"{}")
    assert webhook.status_code == 404  # the receiver's own token check, not a login redirect


async def test_login_then_logout(anonymous: httpx.AsyncClient, store: Store) -> None:
    csrf = await log_in(anonymous, store, "ana", Role.VIEWER)
    page = await anonymous.get("/operations")
    assert page.status_code == 200
    assert "ana" in page.text
    assert "(viewer)" in page.text
    assert await store.count_sessions("ana") == 1
    out = await anonymous.post("/logout", data={"csrf_token": csrf}, headers={"origin": ORIGIN})
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert await store.count_sessions("ana") == 0
    assert (await anonymous.get("/operations")).status_code == 303


async def test_the_login_redirects_only_to_local_paths(
    anonymous: httpx.AsyncClient, store: Store
) -> None:
    await store.create_user("ana", Role.VIEWER, account_hash(PASSWORD))
    for target, expected in (("/audit?x=1", "/audit?x=1"), ("//evil.example", "/")):
        anonymous.cookies.clear()  # a logged-in browser would skip the form
        form = await anonymous.get("/login", params={"next": target})
        response = await anonymous.post(
            "/login",
            data={
                "csrf_token": csrf_of(form.text),
                "username": "ana",
                "password": PASSWORD,
                "next": target,
            },
            headers={"origin": ORIGIN},
        )
        assert response.headers["location"] == expected


async def test_session_cookie_is_httponly_samesite_and_secure_over_https(
    make_client: MakeClient, store: Store
) -> None:
    plain = await make_client()
    await log_in(plain, store)
    cookie = next(c for c in plain.cookies.jar if c.name == SESSION_COOKIE)
    assert not cookie.secure
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") == "lax"

    https = await make_client(
        web=WebSettings(allowed_hosts=("testserver",), cookie_samesite="strict"),
        base_url="https://testserver",
    )
    form = await https.get("/login")
    response = await https.post(
        "/login",
        data={"csrf_token": csrf_of(form.text), "username": "ops", "password": PASSWORD},
        headers={"origin": "https://testserver"},
    )
    header = response.headers["set-cookie"].lower()
    for attribute in ("secure", "httponly", "samesite=strict"):
        assert attribute in header


# --- wrong passwords -----------------------------------------------------------------------------
async def login_attempt(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login",
        data={"csrf_token": csrf_of(form.text), "username": name, "password": password},
        headers={"origin": ORIGIN},
    )


async def test_a_wrong_password_or_name_is_refused_alike_and_audited(
    anonymous: httpx.AsyncClient, store: Store
) -> None:
    await store.create_user("ana", Role.OPERATOR, account_hash(PASSWORD))
    wrong = await login_attempt(anonymous, "ana", PASSWORD + "x")
    unknown = await login_attempt(anonymous, "nobody", PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong name or password." in response.text
        assert SESSION_COOKIE not in response.cookies
    assert await store.count_sessions() == 0
    events = await store.search_audit(AuditQuery(flow="login"))
    assert [(e.outcome, e.details["user"], e.details["reason"]) for e in events] == [
        ("rejected", "(unknown account)", "unknown account"),
        ("rejected", "ana", "wrong password"),
    ]
    assert all(PASSWORD not in str(e.details) for e in events)


async def test_failed_logins_are_throttled_per_name_then_allowed_again(
    anonymous: httpx.AsyncClient, store: Store, fake_clock: FakeClock
) -> None:
    await store.create_user("ana", Role.OPERATOR, account_hash(PASSWORD))
    for _ in range(5):
        assert (await login_attempt(anonymous, "ana", "not it at all")).status_code == 401
    blocked = await login_attempt(anonymous, "ana", PASSWORD)  # even the right password
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 300
    assert "Too many failed logins" in blocked.text
    assert await store.count_sessions() == 0
    throttled = await store.search_audit(AuditQuery(flow="login", outcome="throttled"))
    assert len(throttled) == 1
    fake_clock.advance(301)
    assert (await login_attempt(anonymous, "ana", PASSWORD)).status_code == 303


async def test_the_login_form_needs_its_token_and_an_allowed_origin(
    anonymous: httpx.AsyncClient, store: Store
) -> None:
    await store.create_user("ana", Role.OPERATOR, account_hash(PASSWORD))
    form = await anonymous.get("/login")
    data = {"csrf_token": csrf_of(form.text), "username": "ana", "password": PASSWORD}
    foreign = await anonymous.post("/login", data=data, headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    no_token = await anonymous.post(
        "/login", data={**data, "csrf_token": "guess"}, headers={"origin": ORIGIN}
    )
    assert no_token.status_code == 403
    assert await store.count_sessions() == 0


# --- sessions end --------------------------------------------------------------------------------
async def test_sessions_end_when_idle_too_long_or_too_old(
    make_client: MakeClient, store: Store, fake_clock: FakeClock
) -> None:
    anonymous = await make_client(web=WebSettings(allowed_hosts=("testserver",)))  # 60 min, 12 h
    await log_in(anonymous, store)
    fake_clock.advance(59 * 60)
    assert (await anonymous.get("/")).status_code == 200  # use restarts the idle time
    fake_clock.advance(59 * 60)
    assert (await anonymous.get("/")).status_code == 200
    fake_clock.advance(61 * 60)  # idle for more than an hour
    assert (await anonymous.get("/")).status_code == 303
    assert await store.count_sessions() == 0

    await log_in(anonymous, store)
    for _ in range(14):  # busy all day (14 x 55 min): still ends 12 h after the login
        fake_clock.advance(55 * 60)
        await anonymous.get("/")
    assert (await anonymous.get("/")).status_code == 303


async def test_a_new_password_ends_the_open_sessions(
    client: httpx.AsyncClient, store: Store
) -> None:
    assert (await client.get("/")).status_code == 200
    await store.set_user_password("ops", account_hash("a brand new password"))
    assert (await client.get("/")).status_code == 303


# --- roles and CSRF ------------------------------------------------------------------------------
async def test_a_viewer_reads_everything_but_cannot_replay(
    anonymous: httpx.AsyncClient, store: Store, seeded: Seeded
) -> None:
    csrf = await log_in(anonymous, store, "vic", Role.VIEWER)
    for path in UI_PAGES:
        assert (await anonymous.get(path)).status_code == 200, path
    for path, data in (
        (f"/operations/{seeded.dead_id}/replay", {}),
        ("/operations/replay", {"state": "dead"}),
    ):
        response = await anonymous.post(
            path, data={**data, "csrf_token": csrf}, headers={"origin": ORIGIN}
        )
        assert response.status_code == 403
        assert "is a viewer" in response.text
        assert "--role operator" in response.text
    assert await state_of(store, seeded.dead_id) is OperationState.DEAD


async def test_forms_carry_the_token_and_a_post_without_it_is_refused(
    anonymous: httpx.AsyncClient, store: Store, seeded: Seeded
) -> None:
    csrf = await log_in(anonymous, store)
    page = await anonymous.get("/operations")
    assert page.text.count(f'name="csrf_token" value="{csrf}"') >= 3  # Replay, Replay all, logout
    url = f"/operations/{seeded.dead_id}/replay"
    for data, headers in (
        ({}, {"origin": ORIGIN}),
        ({"csrf_token": "forged"}, {"origin": ORIGIN}),
        ({}, {"origin": ORIGIN, "x-csrf-token": "forged"}),
    ):
        refused = await anonymous.post(url, data=data, headers=headers)
        assert refused.status_code == 403
        assert "security token is missing or out of date" in refused.text
    assert await state_of(store, seeded.dead_id) is OperationState.DEAD
    # the right token as a form field (as the page sends it) goes through
    done = await anonymous.post(url, data={"csrf_token": csrf}, headers={"origin": ORIGIN})
    assert done.status_code == 303
    assert await state_of(store, seeded.dead_id) is OperationState.PENDING


async def test_a_token_from_another_session_is_refused(
    make_client: MakeClient, store: Store, seeded: Seeded
) -> None:
    mallory, victim = await make_client(), await make_client()
    foreign_token = await log_in(mallory, store, "mallory", Role.OPERATOR)
    await log_in(victim, store)
    response = await victim.post(
        f"/operations/{seeded.dead_id}/replay",
        data={"csrf_token": foreign_token},
        headers={"origin": ORIGIN},
    )
    assert response.status_code == 403
    assert await state_of(store, seeded.dead_id) is OperationState.DEAD


# --- trusted proxy -------------------------------------------------------------------------------
PROXY = WebSettings(
    allowed_hosts=("testserver",),
    trusted_proxy_header="X-Remote-User",
    trusted_proxies=("127.0.0.1", "10.1.0.0/16"),
)


async def test_a_trusted_proxy_header_logs_a_known_account_in(
    make_client: MakeClient, store: Store, seeded: Seeded
) -> None:
    await store.create_user("ana", Role.OPERATOR, account_hash(PASSWORD))
    proxied = await make_client(web=PROXY, client=("10.1.2.3", 4000))
    page = await proxied.get("/operations", headers={"x-remote-user": "Ana"})
    assert page.status_code == 200
    assert "ana" in page.text
    csrf = csrf_of(page.text)
    # the session it got carries the CSRF token; the header alone does not make a POST valid
    forged = await proxied.post(
        f"/operations/{seeded.dead_id}/replay",
        headers={"x-remote-user": "ana", "origin": ORIGIN},
    )
    assert forged.status_code == 403
    done = await proxied.post(
        f"/operations/{seeded.dead_id}/replay",
        data={"csrf_token": csrf},
        headers={"x-remote-user": "ana", "origin": ORIGIN},
    )
    assert done.status_code == 303
    unknown = await proxied.get("/", headers={"x-remote-user": "zed"})
    assert unknown.status_code == 403
    assert "mlconnector users add zed" in unknown.text


async def test_the_proxy_header_from_any_other_address_is_ignored(
    make_client: MakeClient, store: Store
) -> None:
    await store.create_user("ana", Role.OPERATOR, account_hash(PASSWORD))
    direct = await make_client(web=PROXY, client=("192.0.2.7", 4000))
    response = await direct.get("/", headers={"x-remote-user": "ana"})
    assert response.status_code == 303
    assert httpx.URL(response.headers["location"]).path == "/login"


# --- /metrics token ------------------------------------------------------------------------------
async def test_metrics_ask_for_the_bearer_token_when_one_is_set(make_client: MakeClient) -> None:
    token = "metrics-token-0123456789abcdef"
    client = await make_client(web=WebSettings(allowed_hosts=("testserver",), metrics_token=token))
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    right = await client.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert right.status_code == 200
    assert "mlconnector_" in right.text
    assert (await client.get("/healthz")).status_code == 200  # probes stay open
