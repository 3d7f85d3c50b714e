"""Login, server-side sessions, CSRF tokens and roles for the operator UI.

Every path is behind a login except the webhook receiver (its own token), the probes
(``/healthz``, ``/livez``), ``/metrics`` (an optional bearer token, ``[web] metrics_token``),
``/static/`` and the login page. :class:`AuthGuard` (pure ASGI, so it covers every UI route,
present and future) does, for each other request:

1. find the session: the ``mlc_session`` cookie's SHA-256 in ``web_sessions`` (expired after
   ``session_idle_minutes`` without use or ``session_max_hours`` after login), or the user name
   a trusted proxy asserted (:mod:`mlconnector.web.security`), which gets a session of its own;
2. no session: ``GET``/``HEAD`` go to ``/login?next=…``; anything else is ``401``;
3. an unsafe method (``POST``, ``PUT``, ``PATCH``, ``DELETE``) must come from an allowed origin,
   carry the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``), and,
   except ``/logout``, come from an ``operator``: otherwise ``403`` with a page saying why.

Templates get ``csrf_token()``, ``csrf_input()`` and ``current_user()`` as Jinja globals.
Failed logins are audited (``flow=login outcome=rejected``) and throttled per account name and
per client address (:class:`LoginThrottle`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlconnector.clock import Clock
from mlconnector.config import Config
from mlconnector.passwords import dummy_hash, verify_password
from mlconnector.store import AuditEvent, Role, Store, User, WebSession
from mlconnector.web.security import PROXY_USER_KEY, HostPolicy, request_origin

log = logging.getLogger("mlconnector.web.auth")

SESSION_COOKIE = "mlc_session"
#: the pre-login CSRF token (double-submit cookie): the login form has no session yet
LOGIN_COOKIE = "mlc_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_KEY = "mlconnector.session"
LOGIN_TOKEN_KEY = "mlconnector.login_token"  # noqa: S105 (a scope key)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PREFIXES = ("/webhooks/", "/static/")
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/login", "/favicon.ico"})
METRICS_PATH = "/metrics"
LOGOUT_PATH = "/logout"
#: UI forms are a few short fields; anything bigger is refused before it is parsed
MAX_FORM_BYTES = 16 * 1024
#: a session's last use is written at most this often (not on every page view)
TOUCH_INTERVAL = timedelta(seconds=60)
AUDIT_CONNECTION = "web"


def session_hash(cookie: str) -> str:
    """The key a session is stored under: a copy of the table does not log anyone in."""
    return hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()


def parse_form(body: bytes) -> dict[str, str]:
    """The fields of an urlencoded body (first value of each; at most 50 fields)."""
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=50)
    except ValueError:
        return {}
    return {name: values[0] for name, values in fields.items()}


def local_path(value: object, default: str = "/") -> str:
    """``value`` when it is a path on this site, else ``default`` (no open redirect)."""
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and not any(ord(c) < 32 for c in value)
    ):
        return value[:500]
    return default


# --- Jinja globals -------------------------------------------------------------------------------
def _scope(context: Any) -> Scope:
    request = context.get("request")
    return request.scope if request is not None else {}


@jinja2.pass_context
def csrf_token(context: Any) -> str:
    """The CSRF token of this page's session (the login token on the login page)."""
    scope = _scope(context)
    session = scope.get(SESSION_KEY)
    if isinstance(session, WebSession):
        return session.csrf_token
    return str(scope.get(LOGIN_TOKEN_KEY, ""))


@jinja2.pass_context
def csrf_input(context: Any) -> Markup:
    """``<input type="hidden" name="csrf_token" value="…">`` for a POST form."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, csrf_token(context)
    )


@jinja2.pass_context
def current_user(context: Any) -> User | None:
    """The logged-in account, or ``None`` (login page, error pages)."""
    session = _scope(context).get(SESSION_KEY)
    return session.user if isinstance(session, WebSession) else None


def install_template_globals(env: jinja2.Environment) -> None:
    """Make ``csrf_token()``, ``csrf_input()`` and ``current_user()`` available to templates."""
    env.globals.update(csrf_token=csrf_token, csrf_input=csrf_input, current_user=current_user)


# --- login throttle ------------------------------------------------------------------------------
@dataclass
class LoginThrottle:
    """At most ``max_failures`` failed logins per key (account name, client address) within
    ``lockout`` seconds; then that key is refused until its oldest failure is ``lockout`` old."""

    clock: Clock
    max_failures: int
    lockout: float
    max_keys: int = 10_000
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, keys: list[str]) -> float | None:
        """Seconds until a login for these keys is accepted again; ``None``: now."""
        now = self.clock.monotonic()
        waits = []
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                waits.append(times[0] + self.lockout - now)
        return max(waits) if waits else None

    def failed(self, keys: list[str]) -> None:
        now = self.clock.monotonic()
        for key in keys:
            if key not in self._failures and len(self._failures) >= self.max_keys:
                self._failures.pop(next(iter(self._failures)))  # forget the oldest key
            self._failures.setdefault(key, deque(maxlen=self.max_failures)).append(now)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] + self.lockout <= now:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times


# --- the sessions and pages ----------------------------------------------------------------------
class WebAuth:
    """Sessions over the store, the login/logout pages, and the pages explaining a refusal."""

    def __init__(
        self,
        *,
        store: Store,
        config: Config,
        clock: Clock,
        policy: HostPolicy,
        templates: Jinja2Templates,
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.templates = templates
        self.web = config.web
        self.idle = timedelta(minutes=self.web.session_idle_minutes)
        self.lifetime = timedelta(hours=self.web.session_max_hours)
        self.throttle = LoginThrottle(
            clock, self.web.login_max_failures, float(self.web.login_lockout_seconds)
        )

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login_page, methods=["GET"], name="login"),
            Route("/login", self.login, methods=["POST"], name="login_post"),
            Route(LOGOUT_PATH, self.logout, methods=["POST"], name="logout"),
        ]

    # --- sessions ------------------------------------------------------------------------------
    async def session_of(self, conn: HTTPConnection) -> tuple[WebSession | None, str | None]:
        """The valid session of this request, and a new cookie value when one was just made
        for a proxy-authenticated user."""
        cookie = conn.cookies.get(SESSION_COOKIE)
        session = await self._stored(cookie) if cookie else None
        proxy_user = conn.scope.get(PROXY_USER_KEY)
        if not isinstance(proxy_user, str):
            return session, None
        name = proxy_user.strip().lower()
        if session is not None and session.user.name == name:
            return session, None
        user = await self.store.get_user(name)
        if user is None:
            return None, None
        new_cookie, session = await self.start_session(user)
        return session, new_cookie

    async def _stored(self, cookie: str) -> WebSession | None:
        key = session_hash(cookie)
        session = await self.store.get_session(key)
        if session is None:
            return None
        now = self.clock.now()
        if session.expires_at <= now or now - session.last_seen_at > self.idle:
            await self.store.delete_session(key)
            return None
        if now - session.last_seen_at >= TOUCH_INTERVAL:
            await self.store.touch_session(key, now=now)
        return session

    async def start_session(self, user: User) -> tuple[str, WebSession]:
        """A new session for ``user``: its cookie value and the session."""
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + self.lifetime
        await self.store.create_session(
            session_hash(cookie), user.name, csrf, expires_at=expires, now=now
        )
        return cookie, WebSession(user, csrf, now, now, expires)

    def set_session_cookie(self, response: Response, scope: Scope, cookie: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            path="/",
            httponly=True,
            secure=self.secure(scope),
            samesite=self.web.cookie_samesite,
        )

    def secure(self, scope: Scope) -> bool:
        """Whether cookies get the ``Secure`` attribute for this request."""
        if self.web.cookie_secure == "auto":
            return scope.get("scheme") == "https"
        return self.web.cookie_secure == "always"

    # --- pages ---------------------------------------------------------------------------------
    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("title", "")
        context.setdefault("flash", None)
        context["now"] = self.clock.now()
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def refusal(
        self, scope: Scope, status: int, reason: str, *, title: str = "Forbidden"
    ) -> Response:
        """An HTML page (``forbidden.html``) explaining why the request was refused."""
        return self.page(Request(scope), "forbidden.html", status, title=title, reason=reason)

    async def login_page(self, request: Request) -> Response:
        """The login form; an already logged-in browser goes on to ``next``."""
        target = local_path(request.query_params.get("next"))
        session, _ = await self.session_of(request)
        if session is not None:
            return RedirectResponse(target, status_code=303)
        return self._login_form(request, target)

    def _login_form(
        self, request: Request, target: str, *, error: str | None = None, status: int = 200
    ) -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        request.scope[LOGIN_TOKEN_KEY] = token
        response = self.page(
            request, "login.html", status, title="Log in", error=error, next=target
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            path="/login",
            httponly=True,
            secure=self.secure(request.scope),
            samesite="strict",
        )
        response.headers["cache-control"] = "no-store"
        return response

    async def login(self, request: Request) -> Response:
        """Check the form (origin, login token, throttle, password), then start a session."""
        body = await _read_capped(request.receive, MAX_FORM_BYTES)
        form = parse_form(body or b"")
        target = local_path(form.get("next"))
        if not self.policy.origin_allowed(request_origin(request)):
            return self.refusal(request.scope, 403, ORIGIN_REFUSED)
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(
            form.get(CSRF_FIELD, "").encode(), expected.encode()
        ):
            return self._login_form(
                request, target, error="The login form had expired; please log in again.",
                status=403,
            )  # fmt: skip
        name = form.get("username", "").strip().lower()[:64]
        password = form.get("password", "")
        client = request.client.host if request.client else "?"
        keys = [f"user:{name}", f"client:{client}"]
        wait = self.throttle.retry_after(keys)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            await self._audit(name, client, "throttled", "too many failed logins")
            response = self._login_form(
                request, target, status=429,
                error=f"Too many failed logins; try again in {seconds} seconds.",
            )  # fmt: skip
            response.headers["retry-after"] = str(seconds)
            return response
        user = await self.store.get_user(name) if name else None
        # the same argon2 work for an unknown name as for a wrong password (off the event loop)
        matched = await asyncio.to_thread(
            verify_password, user.password_hash if user else dummy_hash(), password
        )
        if user is None or not matched:
            self.throttle.failed(keys)
            reason = "wrong password" if user else "unknown account"
            await self._audit(name if user else "", client, "rejected", reason)
            return self._login_form(request, target, error="Wrong name or password.", status=401)
        self.throttle.succeeded(keys)
        old = request.cookies.get(SESSION_COOKIE)
        if old:  # a new session id at every login (no session fixation)
            await self.store.delete_session(session_hash(old))
        cookie, _ = await self.start_session(user)
        log.info("user %r logged in from %s", user.name, client)
        response = RedirectResponse(target, status_code=303)
        self.set_session_cookie(response, request.scope, cookie)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: Request) -> Response:
        """End the session (the guard already checked its CSRF token)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            await self.store.delete_session(session_hash(cookie))
        response = RedirectResponse(request.url_for("login").path, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def _audit(self, user: str, client: str, outcome: str, reason: str) -> None:
        await self.store.append_audit(
            AuditEvent(
                connection=AUDIT_CONNECTION,
                flow="login",
                direction="operator",
                entity="user",
                action="login",
                outcome=outcome,
                details={"user": user or "(unknown account)", "client": client, "reason": reason},
            )
        )


ORIGIN_REFUSED = (
    "This form was not sent from one of the connector's own pages (its Origin is not in "
    "[web] public_origins / allowed_hosts). If you use the connector through a proxy, add the "
    "address you type in the browser to [web] allowed_hosts."
)
CSRF_REFUSED = (
    "This form's security token is missing or out of date (for example after logging in again "
    "in another tab). Go back, reload the page and send it again."
)


async def _read_capped(receive: Receive, limit: int) -> bytes | None:
    """The request body, or ``None`` when it goes past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # disconnected: what arrived
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``body`` once, then defers to the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class AuthGuard:
    """Pure ASGI middleware enforcing login, CSRF and roles (see the module docstring)."""

    def __init__(self, app: ASGIApp, auth: WebAuth, metrics_token: str | None = None) -> None:
        self.app = app
        self.auth = auth
        self.metrics_token = metrics_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == METRICS_PATH:
            await self._metrics(scope, receive, send)
            return
        if _public(path):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        session, new_cookie = await self.auth.session_of(conn)
        method = scope["method"]
        if session is None:
            await self._anonymous(scope, method)(scope, receive, send)
            return
        scope = {**scope, SESSION_KEY: session, "user": session.user}
        if method not in SAFE_METHODS:
            refusal, receive = await self._check_unsafe(scope, receive, session)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, self._with_cookie(scope, send, new_cookie))

    def _anonymous(self, scope: Scope, method: str) -> Response:
        if scope.get(PROXY_USER_KEY):
            name = str(scope[PROXY_USER_KEY])[:64]
            return self.auth.refusal(
                scope, 403,
                f"The proxy logged you in as {name!r}, but the connector has no such account. "
                f"Ask an administrator to run `mlconnector users add {name} --role viewer` "
                "(or --role operator).",
            )  # fmt: skip
        if method in SAFE_METHODS:
            path = scope["path"] + (
                f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
            )
            query = urllib.parse.urlencode({"next": local_path(path)})
            return RedirectResponse(f"/login?{query}", status_code=303)
        return self.auth.refusal(
            scope, 401, "You are not logged in (or your session ended). Log in and try again.",
            title="Log in first",
        )  # fmt: skip

    async def _check_unsafe(
        self, scope: Scope, receive: Receive, session: WebSession
    ) -> tuple[Response | None, Receive]:
        conn = HTTPConnection(scope)
        if not self.auth.policy.origin_allowed(request_origin(conn)):
            return self.auth.refusal(scope, 403, ORIGIN_REFUSED), receive
        body = await _read_capped(receive, MAX_FORM_BYTES)
        if body is None:
            return PlainTextResponse("Payload Too Large", status_code=413), receive
        token = conn.headers.get(CSRF_HEADER)
        if token is None and conn.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            token = parse_form(body).get(CSRF_FIELD)
        if not token or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
            return self.auth.refusal(scope, 403, CSRF_REFUSED), receive
        if scope["path"] != LOGOUT_PATH and session.user.role is not Role.OPERATOR:
            return self.auth.refusal(
                scope, 403,
                f"Your account {session.user.name!r} is a {session.user.role.value}: it can "
                "look at every page, but replaying, dismissing and other changes need an "
                "operator account (`mlconnector users add NAME --role operator`).",
            ), receive  # fmt: skip
        return None, _replay(body, receive)

    def _with_cookie(self, scope: Scope, send: Send, cookie: str | None) -> Send:
        if cookie is None:
            return send
        carrier = Response()
        self.auth.set_session_cookie(carrier, scope, cookie)
        extra = [(k, v) for k, v in carrier.raw_headers if k == b"set-cookie"]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return sending

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.metrics_token is not None:
            given = HTTPConnection(scope).headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.metrics_token.encode()
            ):
                response = PlainTextResponse(
                    "Unauthorized: /metrics wants the bearer token set as "
                    "MLCONNECTOR_WEB__METRICS_TOKEN.",
                    status_code=401,
                    headers={"www-authenticate": 'Bearer realm="metrics"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
