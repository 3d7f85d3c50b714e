"""Settings: ``mlconnector.toml`` overridden by ``MLCONNECTOR_*`` environment variables.

Where the file is: ``--config``, else ``MLCONNECTOR_CONFIG``, else
``{MLCONNECTOR_HOME}/mlconnector.toml`` (home defaults to ``~/.mlconnector``).

Environment overrides: ``MLCONNECTOR_`` + the dotted key in upper case with ``__`` between levels,
e.g. ``MLCONNECTOR_DATABASE_URL``, ``MLCONNECTOR_WEB__PORT=9000``,
``MLCONNECTOR_CONNECTIONS__ACME__POLL__ORDERS=120``. Arrays and inline tables are TOML
(``["OK", "Hold"]``); other values are text, converted by validation where the setting wants a
number or a boolean. Only
variables whose first level is a setting of the file are applied, so other ``MLCONNECTOR_*``
variables (``MLCONNECTOR_CONFIG``, credentials for ``--from-env``) never break loading.

No secret belongs here: keys that look like one are refused with a pointer to
``mlconnector credentials set`` (secrets live in the encrypted vault). Every problem is a
:class:`~mlconnector.errors.ConfigError` naming the file, the dotted key and what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
import string
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlconnector.errors import ConfigError

ENV_PREFIX = "MLCONNECTOR_"
CONFIG_FILE_NAME = "mlconnector.toml"
DEFAULT_HOME = "~/.mlconnector"

#: connection names appear in URLs, env variable names and the database: keep them plain
CONNECTION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

#: names of keys that would hold a secret; such values go to the vault, never into the file
_SECRET_KEY = re.compile(
    r"(?i)(password|passwd|secret|api[_-]?key|apikey|consumer[_-]?key|private[_-]?key|"
    r"credential|^token$|access[_-]?token|refresh[_-]?token|auth[_-]?token|bearer)"
)

ORDER_KEY_FIELDS = frozenset({"pcn", "order_id", "order_number", "group"})


def _check_base_url(value: str) -> str:
    """An absolute http(s) URL; the trailing slash is dropped so paths join predictably."""
    match = re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value)
    if not match:
        raise ValueError("must be an absolute http:// or https:// URL without query or fragment")
    return value.rstrip("/")


BaseURL = Annotated[str, AfterValidator(_check_base_url)]

#: hosts that may be reached over plain http (the sandbox simulators listen there)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _check_secure_url(value: str) -> str:
    """A base URL that is ``https``, or ``http`` to a loopback host (the sandbox)."""
    value = _check_base_url(value)
    parts = urlsplit(value)
    if parts.scheme != "https" and (parts.hostname or "").lower() not in LOOPBACK_HOSTS:
        raise ValueError(
            "must be an https:// URL (http:// only to 127.0.0.1, localhost or [::1], "
            "for the sandbox): credentials or signing keys travel over it"
        )
    return value


#: an ``https`` URL (``http`` allowed to loopback only): used where a credential or a key
#: travels, so a typo cannot downgrade it to plain text on the network
SecureURL = Annotated[str, AfterValidator(_check_secure_url)]

#: Where ShipStation V2 (the former ShipEngine) publishes its webhook signing keys (a JWKS).
#: MEDIUM confidence: ShipStation's webhook validation guide has the verifier look the key id up
#: in a JWKS; independent public verifiers fetch this URL (see docs/shipstation-client.md).
PRODUCTION_WEBHOOK_KEYS_URL = "https://api.shipengine.com/jwks"
#: the production V2 API host; any other V2 base (the sandbox) serves its keys at ``{base}/jwks``
PRODUCTION_V2_API_HOST = "api.shipstation.com"
#: default shape of a V1 ``FULFILLMENT_*`` webhook ``resource_url`` path (full match; a guess)
DEFAULT_FULFILLMENT_WEBHOOK_PATH = r"(/.*)?/fulfillments/?"


class _Section(BaseModel):
    """Every section refuses unknown keys and is immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PlexDatasources(_Section):
    """Data Source API ids (Plex-global, granted per web-service user and tenant)."""

    update_shipper_tracking: int = Field(default=230447, gt=0)
    shipped_containers: int = Field(default=2233, gt=0)
    inventory_adjustment: int | None = Field(default=None, gt=0)


class ContainerSplit(_Section):
    """The Data Source that splits a container (no published id: nothing is split unless
    ``datasource_id`` is set; see docs/plex-client.md, "Unconfirmed facts")."""

    datasource_id: int | None = Field(default=None, gt=0)
    serial_input: str = Field(default="Serial_No", min_length=1)
    quantity_input: str = Field(default="Split_Quantity", min_length=1)
    new_serial_output: str = Field(default="New_Serial_No", min_length=1)


class PlexSettings(_Section):
    """How to reach one Plex tenant.

    The Consumer Key/Secret and the web-service password are in the vault, not here.
    """

    auth_mode: Literal["oauth2", "api_key"] = "api_key"
    pcn: str | None = None
    tenant_id: str | None = None
    rest_base_url: BaseURL = "https://connect.plex.com"
    datasource_base_url: BaseURL = "https://cloud.plex.com"
    soap_url: BaseURL = "https://api.plexonline.com/DataSource/Service.asmx"
    token_url: BaseURL | None = None
    oauth_scope: str | None = None
    #: also send the Consumer Secret in ``api_secret_header`` (some tenants want it; unverified)
    send_api_secret_header: bool = False
    # header names are settings because Plex's public documentation is incomplete
    api_key_header: str = "X-Plex-Connect-Api-Key"
    customer_id_header: str = "X-Plex-Connect-Customer-Id"
    tenant_id_header: str = "X-Plex-Connect-Tenant-Id"
    api_secret_header: str = "X-Plex-Connect-Api-Secret"  # noqa: S105 (a header name)
    #: the web-service user (HTTP Basic) of the Data Source API and SOAP; its password is vaulted
    web_service_user: str | None = None
    datasources: PlexDatasources = PlexDatasources()
    container_split: ContainerSplit = ContainerSplit()
    read_window_hours: float = Field(default=24.0, gt=0, le=24 * 31)
    #: entries each per-run cache of the Plex client (customers, addresses, parts) keeps, the
    #: most recently used (memory stays bounded however many a run meets)
    cache_entries: int = Field(default=2000, ge=1, le=1_000_000)
    #: the app's REST budget; Plex documents about 200 calls/minute and sends no rate headers
    requests_per_minute: int = Field(default=200, ge=1, le=10_000)
    shippable_container_statuses: tuple[str, ...] = Field(default=("OK",), min_length=1)
    #: shipper statuses in which a shipper may still receive releases (datasource write-back)
    open_shipper_statuses: tuple[str, ...] = Field(default=("Open", "Pending"), min_length=1)

    @field_validator("pcn", mode="before")
    @classmethod
    def _pcn_as_text(cls, value: object) -> object:
        # a PCN is a number to people (and to TOML), a string to the Plex header
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("pcn")
    @classmethod
    def _pcn_digits(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{1,12}", value):
            raise ValueError('a PCN is 1 to 12 digits, e.g. "340884"')
        return value

    @field_validator("tenant_id")
    @classmethod
    def _tenant_uuid(cls, value: str | None) -> str | None:
        uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        if value is not None and not re.fullmatch(uuid, value):
            raise ValueError("a tenant id is a lower-case UUID (8-4-4-4-12 hex digits)")
        return value

    @model_validator(mode="after")
    def _oauth2_needs_token_url(self) -> PlexSettings:
        if self.auth_mode == "oauth2" and self.token_url is None:
            raise ValueError("auth_mode 'oauth2' needs token_url (the OAuth2 token endpoint)")
        if self.pcn and self.tenant_id:
            raise ValueError("set pcn or tenant_id, not both (they choose the tenant two ways)")
        return self


class ShipStationSettings(_Section):
    """ShipStation hosts. The V1 key/secret and V2 API key are vaulted."""

    v1_base_url: BaseURL = "https://ssapi.shipstation.com"
    v2_base_url: BaseURL = "https://api.shipstation.com"
    #: full-match regular expressions for webhook ``resource_url`` hosts, besides the V1/V2 hosts
    allowed_webhook_hosts: tuple[str, ...] = (r"ssapi\d*\.shipstation\.com",)
    #: the V2 webhook signing keys (JWKS); unset: ``https://api.shipengine.com/jwks`` for the
    #: production V2 host, ``{v2_base_url}/jwks`` for any other (the sandbox serves them there)
    webhook_keys_url: SecureURL | None = None
    #: URL prefixes (``https://host[:port][/path]``) where a V2 ``links.next.href`` may be
    #: followed with the API key, besides ``v2_base_url`` (an API gateway or egress proxy)
    v2_next_link_bases: tuple[SecureURL, ...] = ()
    #: full-match regular expression for the path of a V1 ``FULFILLMENT_*`` webhook
    #: ``resource_url``; a pointer of another shape is not followed (the poll reads it)
    fulfillment_webhook_path: str = DEFAULT_FULFILLMENT_WEBHOOK_PATH

    @field_validator("allowed_webhook_hosts")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _compile(pattern)
        return patterns

    @field_validator("fulfillment_webhook_path")
    @classmethod
    def _path_compiles(cls, pattern: str) -> str:
        if not pattern.strip():
            raise ValueError(
                f"must not be empty (the default is {DEFAULT_FULFILLMENT_WEBHOOK_PATH!r})"
            )
        _compile(pattern)
        return pattern

    @property
    def effective_webhook_keys_url(self) -> str:
        """``webhook_keys_url``, or its default for ``v2_base_url``."""
        return self.webhook_keys_url or default_webhook_keys_url(self.v2_base_url)

    def webhook_host_allowed(self, host: str) -> bool:
        """Whether a webhook ``resource_url`` host may receive our credentials."""
        host = host.lower()
        configured = {_host_of(self.v1_base_url), _host_of(self.v2_base_url)}
        return host in configured or any(
            re.fullmatch(pattern, host) for pattern in self.allowed_webhook_hosts
        )


def default_webhook_keys_url(v2_base_url: str) -> str:
    """Where the V2 signing keys are when ``webhook_keys_url`` is not set."""
    if _host_of(v2_base_url) == PRODUCTION_V2_API_HOST:
        return PRODUCTION_WEBHOOK_KEYS_URL
    return v2_base_url.rstrip("/") + "/jwks"


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc


def _host_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0].lower()


class PollIntervals(_Section):
    """Seconds between polls per flow. Minimums protect the remote rate limits."""

    orders: int = Field(default=300, ge=60, le=86400)
    inventory: int = Field(default=900, ge=300, le=86400)
    shipments: int = Field(default=300, ge=60, le=86400)
    order_status: int = Field(default=600, ge=60, le=86400)


class CarrierMapping(_Section):
    """One Plex carrier, as ShipStation knows it."""

    carrier_code: str = Field(min_length=1)
    service_code: str | None = None
    requested_shipping_service: str | None = None


class StoreMapping(_Section):
    """Which ShipStation store a new order goes to: customer code first, then order type."""

    by_customer: dict[str, int] = Field(default_factory=dict)
    by_order_type: dict[str, int] = Field(default_factory=dict)
    default: int | None = None


class Mappings(_Section):
    """Plex codes to ShipStation ids. Keys are Plex codes exactly as Plex shows them."""

    #: Plex building code → ShipStation V1 ``warehouseId``
    warehouses: dict[str, int] = Field(default_factory=dict)
    #: Plex location → ShipStation V2 inventory location id (e.g. ``"se-123"``)
    inventory_locations: dict[str, str] = Field(default_factory=dict)
    stores: StoreMapping = StoreMapping()
    #: Plex carrier → ShipStation carrier/service
    carriers: dict[str, CarrierMapping] = Field(default_factory=dict)
    #: refuse to send an order whose Plex building has no warehouse (it is counted failed and
    #: the run is partial); off: it is sent with ``warehouseId`` null and a warning
    required: bool = False


class RetryBudget(_Section):
    """How hard one operation is retried before it goes to ``dead`` for an operator."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    base_delay_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_delay_seconds: float = Field(default=3600.0, gt=0, le=86400)


class ConnectionConfig(_Section):
    """One tenant pair: a Plex PCN and a ShipStation account."""

    enabled: bool = True
    plex: PlexSettings = PlexSettings()
    shipstation: ShipStationSettings = ShipStationSettings()
    poll: PollIntervals = PollIntervals()
    mappings: Mappings = Mappings()
    grouping: Literal["ship_date", "order"] = "ship_date"
    order_key_template: str = "plex-{pcn}-{order_id}-{group}"
    write_back: Literal["shipper", "datasource"] = "shipper"
    #: a partial quantity that whole containers cannot match and no split can make: record the
    #: tracking in Plex and raise the inventory move as an operator task, or only the task
    partial_without_split: Literal["tracking_and_task", "task_only"] = "tracking_and_task"
    retry: RetryBudget = RetryBudget()

    @field_validator("order_key_template")
    @classmethod
    def _template_fields(cls, template: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        except ValueError as exc:
            raise ValueError(f"is not a valid template: {exc}") from exc
        unknown = names - ORDER_KEY_FIELDS
        if unknown:
            raise ValueError(
                f"uses unknown placeholder(s) {sorted(unknown)}; "
                f"allowed: {{{'}, {'.join(sorted(ORDER_KEY_FIELDS))}}}"
            )
        if "group" not in names or not names & {"order_id", "order_number"}:
            raise ValueError(
                "must contain {group} and {order_id} or {order_number} so each key is unique"
            )
        return template

    @model_validator(mode="after")
    def _pcn_for_template(self) -> ConnectionConfig:
        if "{pcn}" in self.order_key_template and self.plex.pcn is None:
            raise ValueError(
                "plex.pcn is required: order_key_template uses {pcn} "
                "(set plex.pcn, or remove {pcn} from the template)"
            )
        return self


def _check_host_pattern(value: str) -> str:
    """A host name, an IP address, ``*.domain`` or ``*`` (any host), lower-cased."""
    value = value.strip().lower()
    if value == "*" or re.fullmatch(r"(\*\.)?[a-z0-9_.-]+|\[?[0-9a-f:.]+\]?", value):
        return value.strip("[]") if ":" in value else value
    raise ValueError(f"{value!r} is not a host name, an IP address, '*.domain' or '*'")


def _check_origin(value: str) -> str:
    """``scheme://host[:port]`` as a browser sends it in ``Origin`` (default port dropped)."""
    match = re.fullmatch(r"(https?)://([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?/?", value)
    if not match:
        raise ValueError(f"{value!r} is not an origin like https://connector.example.com[:port]")
    scheme, host, port = match.group(1), match.group(2).lower(), match.group(3)
    default = {"http": "80", "https": "443"}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def _check_network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or network (CIDR)") from exc


HostPattern = Annotated[str, AfterValidator(_check_host_pattern)]
Origin = Annotated[str, AfterValidator(_check_origin)]
Network = Annotated[str, AfterValidator(_check_network)]


class WebSettings(_Section):
    """Where the webhook receiver and operator UI listen, who may log in, and server limits.

    See docs/web.md. ``metrics_token`` is a secret: it is accepted from the environment
    (``MLCONNECTOR_WEB__METRICS_TOKEN``) only, never from the file.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: ``Host`` names the app answers to; empty: the bound host, localhost, 127.0.0.1, ::1 and
    #: the host of ``public_base_url``
    allowed_hosts: tuple[HostPattern, ...] = ()
    #: origins a form may be sent from; empty: any http(s) origin whose host is allowed
    public_origins: tuple[Origin, ...] = ()
    #: ``auto``: Secure cookies when the request came over https (directly or via a trusted proxy)
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    cookie_samesite: Literal["lax", "strict"] = "lax"
    session_idle_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    session_max_hours: float = Field(default=12.0, gt=0, le=24 * 31)
    #: failed logins per account name or client address before logins are refused for a while
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_lockout_seconds: int = Field(default=300, ge=1, le=86400)
    #: a header carrying the user name set by an authenticating proxy (e.g. ``X-Forwarded-User``);
    #: honoured only from ``trusted_proxies``, which also decide ``X-Forwarded-For/-Proto``
    trusted_proxy_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    trusted_proxies: tuple[Network, ...] = ()
    #: bearer token ``/metrics`` asks for (environment only); unset: ``/metrics`` is open
    metrics_token: str | None = Field(default=None, min_length=16, repr=False)
    # --- server limits (uvicorn + the app's own guards) ---
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    keep_alive_seconds: float = Field(default=5.0, gt=0, le=300)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_connections: int = Field(default=1000, ge=1, le=100_000)
    #: unprocessed deliveries per connection beyond which webhooks answer 503 + Retry-After
    inbox_max_pending: int = Field(default=5000, ge=1, le=10_000_000)
    inbox_retry_after_seconds: int = Field(default=120, ge=1, le=86400)

    @model_validator(mode="after")
    def _proxy_needs_addresses(self) -> WebSettings:
        if self.trusted_proxy_header and not self.trusted_proxies:
            raise ValueError(
                "trusted_proxy_header needs trusted_proxies (the proxy's addresses): a header "
                "anyone can send must not log anyone in"
            )
        return self


class Config(_Section):
    """The whole configuration, after the environment has been applied."""

    home: Path
    database_url: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: ``text`` (timestamp, level, connection/flow/run id, message) or ``json`` (one object a line)
    log_format: Literal["text", "json"] = "text"
    web: WebSettings = WebSettings()
    #: the URL ShipStation reaches this deployment at, for webhook subscriptions
    public_base_url: BaseURL | None = None
    #: where failures needing an operator are POSTed
    alert_webhook_url: BaseURL | None = None
    connections: dict[str, ConnectionConfig] = Field(default_factory=dict)
    #: the file this came from (``None`` when no file existed)
    source: Path | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("connections")
    @classmethod
    def _names(cls, connections: dict[str, ConnectionConfig]) -> dict[str, ConnectionConfig]:
        for name in connections:
            check_connection_name(name)
        return connections

    @model_validator(mode="after")
    def _default_database(self) -> Config:
        if not self.database_url:
            url = f"sqlite+aiosqlite:///{self.home / 'mlconnector.db'}"
            object.__setattr__(self, "database_url", url)
        return self

    def connection(self, name: str) -> ConnectionConfig:
        """The named connection, or a ``ConfigError`` listing the configured ones."""
        try:
            return self.connections[name]
        except KeyError:
            known = ", ".join(sorted(self.connections)) or "none"
            where = self.source or "the configuration"
            raise ConfigError(
                f"{where}: no connection named {name!r} (configured: {known})",
                hint="add it with `mlconnector connections add`",
            ) from None


def check_connection_name(name: str) -> str:
    """Return ``name`` if it is a valid connection name, else raise ``ValueError``."""
    if not CONNECTION_NAME.match(name) or "__" in name:
        raise ValueError(
            f"connection name {name!r} must be 1-40 lower-case letters, digits, '_' or '-', "
            "start with a letter and not contain '__'"
        )
    return name


# --- locating the file -------------------------------------------------------------------------
def expand_path(value: str | Path, env: Mapping[str, str]) -> Path:
    """Expand a leading ``~`` with the injected ``HOME`` (falls back to the process home)."""
    text = str(value)
    if text == "~" or text.startswith("~/"):
        base = env.get("HOME") or str(Path.home())
        text = base + text[1:]
    return Path(text)


def resolve_home(env: Mapping[str, str]) -> Path:
    """``MLCONNECTOR_HOME`` or ``~/.mlconnector``."""
    return expand_path(env.get(f"{ENV_PREFIX}HOME") or DEFAULT_HOME, env)


def resolve_config_path(path: str | Path | None, env: Mapping[str, str]) -> Path:
    """``--config``, else ``MLCONNECTOR_CONFIG``, else ``{home}/mlconnector.toml``."""
    if path:
        return expand_path(path, env)
    if env.get(f"{ENV_PREFIX}CONFIG"):
        return expand_path(env[f"{ENV_PREFIX}CONFIG"], env)
    return resolve_home(env) / CONFIG_FILE_NAME


# --- loading -----------------------------------------------------------------------------------
def load_config(
    path: str | Path | None, env: Mapping[str, str], *, missing_ok: bool = False
) -> Config:
    """Read, override and validate the configuration; every problem is a ``ConfigError``.

    ``path`` is the ``--config`` value (``None`` to use the environment/default). With
    ``missing_ok``, an absent file yields the defaults (no connections) instead of an error.
    """
    file = resolve_config_path(path, env)
    text = _read_text(file, missing_ok=missing_ok)
    return parse_config(text, file, env)


def parse_config(text: str | None, file: Path, env: Mapping[str, str]) -> Config:
    """Validate ``text`` as if it were the content of ``file`` (``None``: no file)."""
    raw = _parse_toml(text, file) if text is not None else {}
    origins: dict[tuple[str, ...], str] = {}
    _apply_env(raw, env, origins, file)
    _refuse_secrets(raw, Config, (), file, origins)
    if "source" in raw:
        raise ConfigError(f"{file}: source: unknown key (it is set by the loader)")
    web = raw.get("web")
    if isinstance(web, dict) and "metrics_token" in web and ("web", "metrics_token") not in origins:
        raise ConfigError(
            f"{file}: web.metrics_token: secrets are not allowed in the configuration",
            hint=f"set it in the environment as {ENV_PREFIX}WEB__METRICS_TOKEN",
        )
    home = raw.get("home", DEFAULT_HOME)
    if isinstance(home, str):
        # a relative home is relative to the file that names it, not to the working directory
        raw["home"] = file.parent / expand_path(home, env)
    try:
        return Config.model_validate({**raw, "source": file if text is not None else None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file, origins)) from None


def _read_text(file: Path, *, missing_ok: bool) -> str | None:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ConfigError(
            f"{file}: configuration file not found",
            hint="run `mlconnector init`, or pass --config / set MLCONNECTOR_CONFIG",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot be read ({exc})") from None


def _parse_toml(text: str, file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)"
        raise ConfigError(f"{file}: TOML syntax error: {exc}") from None


def _env_value(text: str) -> Any:
    """An array, inline table or quoted string is read as TOML; anything else stays a string.

    Numbers and booleans stay strings too: validation converts ``"120"`` or ``"true"`` where the
    setting wants one, and a string setting keeps ``"0340884"`` or ``"12345"`` exactly as given.
    """
    if text.strip()[:1] in {"[", "{", '"', "'"}:
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    return text


def _apply_env(
    raw: dict[str, Any],
    env: Mapping[str, str],
    origins: dict[tuple[str, ...], str],
    file: Path,
) -> None:
    """Overlay ``MLCONNECTOR_A__B__C=value`` onto ``raw["a"]["b"]["c"]``."""
    settable = set(Config.model_fields) - {"source"}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = tuple(name[len(ENV_PREFIX) :].lower().split("__"))
        if parts[0] not in settable:
            continue  # MLCONNECTOR_CONFIG, credentials for --from-env, other tools' variables
        if any(not part for part in parts):
            raise ConfigError(f"environment variable {name}: empty level between '__' separators")
        target = raw
        for depth, part in enumerate(parts[:-1]):
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                key = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"environment variable {name}: {file}: {key} is a value, not a table"
                )
            target = child
        target[parts[-1]] = _env_value(env[name])
        origins[parts] = name


def _field_kind(model: type[BaseModel], key: str) -> tuple[str, type[BaseModel] | None]:
    """``("model", M)`` for a section, ``("dict", M)`` for a table of M, else ``("leaf", None)``."""
    annotation = model.model_fields[key].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    if get_origin(annotation) is dict:
        value_type = get_args(annotation)[1]
        if isinstance(value_type, type) and issubclass(value_type, BaseModel):
            return "dict", value_type
    return "leaf", None


def _refuse_secrets(
    raw: Mapping[str, Any],
    model: type[BaseModel],
    path: tuple[str, ...],
    file: Path,
    origins: Mapping[tuple[str, ...], str],
) -> None:
    """Refuse a key that is not a setting and looks like it would hold a secret."""
    for key, value in raw.items():
        here = (*path, key)
        if key not in model.model_fields or (key == "source" and model is Config):
            if _SECRET_KEY.search(key):
                where = f"environment variable {origins[here]}" if here in origins else str(file)
                raise ConfigError(
                    f"{where}: {'.'.join(here)}: secrets are not allowed in the configuration",
                    hint="store it in the encrypted vault with `mlconnector credentials set`",
                )
            continue
        kind, sub = _field_kind(model, key)
        if kind == "model" and sub is not None and isinstance(value, Mapping):
            _refuse_secrets(value, sub, here, file, origins)
        elif kind == "dict" and sub is not None and isinstance(value, Mapping):
            for item_key, item in value.items():
                if isinstance(item, Mapping):
                    _refuse_secrets(item, sub, (*here, item_key), file, origins)


# --- error messages ----------------------------------------------------------------------------
def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The section model that the path ``loc`` points into (``None`` for a free-form table)."""
    model: type[BaseModel] | None = Config
    pending_item: type[BaseModel] | None = None
    for part in loc:
        if pending_item is not None:
            model, pending_item = pending_item, None
            continue
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        kind, sub = _field_kind(model, part)
        if kind == "model":
            model = sub
        elif kind == "dict":
            pending_item = sub
        else:
            return None
    return None if pending_item is not None else model


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(error: Mapping[str, Any]) -> str:
    """What is wrong with one key and what is allowed, in an operator's words."""
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(set(parent.model_fields) - {"source"}) if parent else []
        return "unknown key; allowed here: " + (", ".join(allowed) or "none")
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in {"model_type", "dict_type"}:
        return f"must be a table (got {_short(error.get('input'))})"
    return f"{message} (got {_short(error.get('input'))})"


def _describe(exc: ValidationError, file: Path, origins: Mapping[tuple[str, ...], str]) -> str:
    lines = [f"{file}: invalid configuration"]
    for error in exc.errors():
        loc = tuple(error["loc"])
        dotted = ".".join(str(part) for part in loc) or "(top level)"
        line = f"  {dotted}: {_explain(error)}"
        origin = origins.get(tuple(str(part) for part in loc))
        if origin:
            line += f" [set by environment variable {origin}]"
        lines.append(line)
    return "\n".join(lines)
