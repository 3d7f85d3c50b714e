"""Plex Connect authentication: the API-key header, or OAuth2 client credentials with a token cache.

The OAuth2 client secret travels only to the configured token URL: the token request goes through
its own :class:`TokenClient`, whose base URL *is* the token URL, so the base class's origin rule
refuses to send it anywhere else. The access token itself only ever goes to the Connect host.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from mlconnector.clock import Clock
from mlconnector.errors import AuthenticationError, ConfigError, InvalidResponseError
from mlconnector.http import ApiClient, Redactor, RetryPolicy
from mlconnector.plex.settings import PlexAuth


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and the monotonic instant after which it must not be used."""

    value: str
    expires_at: float


class TokenClient(ApiClient):
    """Posts the client-credentials form to the token endpoint (and nowhere else)."""

    service = "plex-oauth"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token_url: str,
        auth: PlexAuth,
        clock: Clock,
        redactor: Redactor,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(http, base_url=token_url, clock=clock, redactor=redactor, retry=retry)
        self.token_url = token_url
        self.settings = auth
        #: tokens issued so far (tests and metrics)
        self.issued = 0

    async def fetch(self) -> AccessToken:
        """Ask for a new token; a refusal is a fatal :class:`AuthenticationError`."""
        secret = self.settings.client_secret
        if not self.settings.client_id or secret is None:
            raise ConfigError("plex.auth.client_id and client_secret are required for oauth2")
        form = {
            "grant_type": "client_credentials",
            "client_id": self.settings.client_id,
            "client_secret": secret.get_secret_value(),
        }
        if self.settings.oauth_scope:
            form["scope"] = self.settings.oauth_scope
        started = self.clock.monotonic()
        try:
            # authenticated=True: the secret is in the body, and the base class then checks that
            # the URL is the token URL's own origin before anything is sent.
            body = await self.request_json("POST", self.token_url, data=form, authenticated=True)
        except AuthenticationError as exc:
            raise AuthenticationError(
                "Plex refused the OAuth2 client credentials at the token endpoint",
                status=exc.status,
                request_id=exc.request_id,
                body_excerpt=exc.body_excerpt,
                hint="check plex.auth.client_id / client_secret and plex.endpoints.token_url",
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise InvalidResponseError(
                "the Plex token endpoint answered without an access_token",
                hint="check plex.endpoints.token_url",
            )
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self.issued += 1
        token = str(body["access_token"])
        self.redactor.add(token)
        return AccessToken(token, started + lifetime)


class PlexCredentials:
    """Produces the headers for a Plex Connect request, caching the OAuth2 token."""

    def __init__(
        self, auth: PlexAuth, *, clock: Clock, token_client: TokenClient | None = None
    ) -> None:
        if auth.strategy == "oauth2" and token_client is None:
            raise ConfigError("the oauth2 strategy needs plex.endpoints.token_url")
        self.auth = auth
        self.clock = clock
        self.token_client = token_client
        self._token: AccessToken | None = None
        # Concurrent requests share one token fetch instead of each asking for its own.
        self._lock = asyncio.Lock()

    @property
    def credential_id(self) -> str:
        """What identifies the rate-limit budget (the key or client id; hashed by the registry)."""
        if self.auth.strategy == "oauth2":
            return f"oauth2:{self.auth.client_id}"
        assert self.auth.api_key is not None
        return f"key:{self.auth.api_key.get_secret_value()}"

    def routing_headers(self) -> dict[str, str]:
        """Tenant routing: PCN or tenant id, if configured (else the app's default tenant)."""
        if self.auth.pcn:
            return {self.auth.customer_id_header: self.auth.pcn}
        if self.auth.tenant_id:
            return {self.auth.tenant_id_header: self.auth.tenant_id}
        return {}

    async def headers(self) -> dict[str, str]:
        """Every credential and routing header of one Connect request."""
        headers = self.routing_headers()
        if self.auth.strategy == "oauth2":
            headers["Authorization"] = f"Bearer {await self.token()}"
        else:
            assert self.auth.api_key is not None
            headers[self.auth.api_key_header] = self.auth.api_key.get_secret_value()
        if self.auth.send_api_secret_header and self.auth.api_secret is not None:
            headers[self.auth.api_secret_header] = self.auth.api_secret.get_secret_value()
        return headers

    async def token(self) -> str:
        """The cached access token, renewed shortly before it expires."""
        margin = self.auth.token_refresh_margin
        async with self._lock:
            if self._token is None or self.clock.monotonic() >= self._token.expires_at - margin:
                assert self.token_client is not None
                self._token = await self.token_client.fetch()
            return self._token.value

    async def refresh(self) -> bool:
        """After a 401: drop the cached token and fetch a new one (api keys cannot be renewed)."""
        if self.auth.strategy != "oauth2":
            return False
        self._token = None
        await self.token()
        return True
