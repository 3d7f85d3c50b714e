"""Who the app answers: the ``Host`` allow-list, the ``Origin`` check, trusted proxies.

* :class:`HostPolicy` holds the names from ``[web]``: ``allowed_hosts`` (default the bound host,
  ``localhost``, ``127.0.0.1``, ``::1`` and the host of ``public_base_url``) and the origins a form
  may come from (``public_origins``, else any http(s) origin whose host is allowed). The Origin
  is compared with these **configured** names, never with the request's own ``Host``, which a
  DNS-rebinding page controls.
* :class:`HostGuard` (pure ASGI) refuses a request whose ``Host`` is not allowed with ``400``,
  except ``/livez``, ``/healthz`` and ``/metrics`` (probes and scrapers call them by address).
* A request whose peer address is in ``trusted_proxies`` has its ``X-Forwarded-Proto`` and
  ``X-Forwarded-For`` applied (uvicorn's own proxy handling is off, so this is the only place
  that trusts them) and may carry the ``trusted_proxy_header`` user name.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mlconnector.config import Config

#: paths any Host may reach: probes and scrapers call them by address (a pod IP as Host);
#: they show no secret, and ``/metrics`` has its own optional bearer token
PROBE_PATHS = frozenset({"/livez", "/healthz", "/metrics"})
#: the scope key holding the user name an authenticating proxy asserted
PROXY_USER_KEY = "mlconnector.proxy_user"


def _host_only(value: str) -> str:
    """``host`` of ``host[:port]`` / ``[v6]:port``, lower-cased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.split(":", 1)[0]


@dataclass(frozen=True)
class HostPolicy:
    """The allowed ``Host`` names, form origins and proxy addresses of one app."""

    allowed_hosts: tuple[str, ...]
    public_origins: tuple[str, ...]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    proxy_user_header: str | None

    @classmethod
    def from_config(cls, config: Config) -> HostPolicy:
        web = config.web
        hosts: list[str] = list(web.allowed_hosts)
        if not hosts:
            hosts = [_host_only(web.host), "localhost", "127.0.0.1", "::1"]
            if config.public_base_url:
                hosts.append(_host_only(urllib.parse.urlsplit(config.public_base_url).netloc))
            hosts = [h for h in hosts if h not in ("0.0.0.0", "::", "")]  # noqa: S104
        origins = list(web.public_origins)
        if origins and config.public_base_url:
            parts = urllib.parse.urlsplit(config.public_base_url)
            origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
        return cls(
            allowed_hosts=tuple(dict.fromkeys(hosts)),
            public_origins=tuple(dict.fromkeys(_normal_origin(o) for o in origins)),
            trusted_proxies=tuple(ipaddress.ip_network(n) for n in web.trusted_proxies),
            proxy_user_header=(web.trusted_proxy_header or "").lower() or None,
        )

    def host_allowed(self, host_header: str) -> bool:
        """Whether a ``Host`` header value names this deployment."""
        host = _host_only(host_header)
        return bool(host) and any(_matches(host, pattern) for pattern in self.allowed_hosts)

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a form may come from ``origin`` (an ``Origin`` or ``Referer`` value)."""
        if not origin or origin == "null":  # "null": sandboxed frames, data: URLs
            return False
        parts = urllib.parse.urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            return False
        if self.public_origins:
            return _normal_origin(f"{parts.scheme}://{parts.netloc}") in self.public_origins
        return self.host_allowed(parts.netloc)

    def from_trusted_proxy(self, scope: Scope) -> bool:
        """Whether the TCP peer of this request is one of ``trusted_proxies``."""
        client = scope.get("client")
        if not client or not self.trusted_proxies:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)


def _matches(host: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _normal_origin(origin: str) -> str:
    parts = urllib.parse.urlsplit(origin)
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return f"{scheme}://{netloc}"


def request_origin(conn: HTTPConnection) -> str | None:
    """The ``Origin`` of a request, or its ``Referer`` when a browser sent no ``Origin``."""
    return conn.headers.get("origin") or conn.headers.get("referer")


def _last(values: Iterable[str]) -> str:
    items = [v.strip() for v in values if v.strip()]
    return items[-1] if items else ""


class HostGuard:
    """Pure ASGI: refuse foreign ``Host`` names; apply a trusted proxy's forwarded headers."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if scope.get("path") not in PROBE_PATHS and not self.policy.host_allowed(
            headers.get("host", "")
        ):
            response = PlainTextResponse(
                "Invalid host header: this address is not in the connector's [web] allowed_hosts.",
                status_code=400,
            )
            await response(scope, receive, send)
            return
        if self.policy.from_trusted_proxy(scope):
            scope = dict(scope)
            proto = _last(headers.get("x-forwarded-proto", "").split(",")).lower()
            if proto in ("http", "https"):
                scope["scheme"] = proto
            forwarded_for = _last(headers.get("x-forwarded-for", "").split(","))
            if forwarded_for:
                scope["client"] = (forwarded_for, 0)
            header = self.policy.proxy_user_header
            if header and headers.get(header, "").strip():
                scope[PROXY_USER_KEY] = headers[header].strip()
        await self.app(scope, receive, send)
