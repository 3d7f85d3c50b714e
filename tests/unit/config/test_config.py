"""Every rule of ``mlconnector.toml``: defaults, env overrides, clear errors, no secrets."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from mlconnector.config import (
    Config,
    ConnectionConfig,
    PollIntervals,
    load_config,
    resolve_config_path,
    resolve_home,
)
from mlconnector.errors import ConfigError

MINIMAL = """
[connections.acme.plex]
pcn = "340884"
"""


def write(tmp_path: Path, text: str, name: str = "mlconnector.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {"HOME": "/nonexistent-home"})
    return str(info.value)


# --- where the file is -------------------------------------------------------------------------
def test_path_precedence_flag_then_env_then_home(tmp_path: Path) -> None:
    env = {"MLCONNECTOR_HOME": str(tmp_path / "h"), "HOME": "/u"}
    assert resolve_config_path(None, env) == tmp_path / "h" / "mlconnector.toml"
    env["MLCONNECTOR_CONFIG"] = str(tmp_path / "e.toml")
    assert resolve_config_path(None, env) == tmp_path / "e.toml"
    assert resolve_config_path(tmp_path / "f.toml", env) == tmp_path / "f.toml"


def test_home_defaults_to_dot_mlconnector_under_injected_home() -> None:
    assert resolve_home({"HOME": "/users/ann"}) == Path("/users/ann/.mlconnector")
    assert resolve_config_path(None, {"HOME": "/users/ann"}) == Path(
        "/users/ann/.mlconnector/mlconnector.toml"
    )


def test_missing_file_is_an_error_naming_it_unless_missing_ok(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    message = error_of(path)
    assert str(path) in message
    assert "mlconnector init" in message
    config = load_config(path, {"HOME": str(tmp_path)}, missing_ok=True)
    assert config.connections == {}
    assert config.source is None


# --- defaults ----------------------------------------------------------------------------------
def test_defaults_for_a_minimal_connection(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), {"MLCONNECTOR_HOME": str(tmp_path / "h")})
    assert config.home == tmp_path / "h"
    assert config.database_url == f"sqlite+aiosqlite:///{tmp_path / 'h' / 'mlconnector.db'}"
    assert config.log_level == "INFO"
    assert (config.web.host, config.web.port) == ("127.0.0.1", 8080)
    acme = config.connection("acme")
    assert acme.plex.auth_mode == "api_key"
    assert acme.plex.rest_base_url == "https://connect.plex.com"
    assert acme.plex.api_key_header == "X-Plex-Connect-Api-Key"
    assert acme.plex.datasources.update_shipper_tracking == 230447
    assert acme.plex.shippable_container_statuses == ("OK",)
    assert acme.shipstation.v1_base_url == "https://ssapi.shipstation.com"
    assert acme.shipstation.v2_base_url == "https://api.shipstation.com"
    assert acme.poll == PollIntervals(orders=300, inventory=900, shipments=300, order_status=600)
    assert (acme.grouping, acme.write_back) == ("ship_date", "shipper")
    assert acme.retry.max_attempts == 8
    assert config.source == tmp_path / "mlconnector.toml"


def test_unknown_connection_lists_the_configured_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), {"HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"no connection named 'zeta' \(configured: acme\)"):
        config.connection("zeta")


def test_relative_home_is_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'home = "state"\n'), {"HOME": "/u"})
    assert config.home == tmp_path / "state"


def test_trailing_slash_of_base_urls_is_dropped(tmp_path: Path) -> None:
    text = MINIMAL + 'rest_base_url = "http://127.0.0.1:9000/"\n'
    config = load_config(write(tmp_path, text), {"HOME": "/u"})
    assert config.connection("acme").plex.rest_base_url == "http://127.0.0.1:9000"


def test_example_config_ships_and_its_commented_connection_is_valid(tmp_path: Path) -> None:
    example = files("mlconnector").joinpath("example-config.toml").read_text(encoding="utf-8")
    assert load_config(write(tmp_path, example), {"HOME": "/u"}).connections == {}
    head, tail = example.split("# [connections.acme]\n", 1)
    uncommented = "\n".join(
        re.sub(r"^# ?", "", line) for line in ("# [connections.acme]\n" + tail).splitlines()
    )
    config = load_config(write(tmp_path, head + uncommented, "full.toml"), {"HOME": "/u"})
    acme = config.connection("acme")
    assert acme.mappings.warehouses == {"MAIN": 123456}
    assert acme.mappings.carriers["UPS Ground"].service_code == "ups_ground"
    assert acme.mappings.stores.by_customer == {"CUST01": 98766}
    assert acme.shipstation.webhook_host_allowed("ssapi11.shipstation.com")


# --- errors name the file, the key and what is allowed -----------------------------------------
def test_unknown_key_is_named_with_the_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[connections.acme.poll]\nordrs = 120\n")
    message = error_of(path)
    assert str(path) in message
    assert "connections.acme.poll.ordrs: unknown key" in message
    assert "allowed here: inventory, order_status, orders, shipments" in message


def test_literal_error_names_the_allowed_values(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + 'auth_mode = "oauth3"\n')
    message = error_of(path)
    assert "connections.acme.plex.auth_mode" in message
    assert "'oauth2' or 'api_key'" in message
    assert "'oauth3'" in message


def test_minimum_poll_interval_is_enforced(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[connections.acme.poll]\norders = 5\n")
    message = error_of(path)
    assert "connections.acme.poll.orders" in message
    assert "greater than or equal to 60" in message


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = 'log_level = "LOUD"\n[web]\nport = 0\n[connections.acme]\ngrouping = "week"\n' + MINIMAL
    message = error_of(write(tmp_path, text))
    assert "log_level: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in message
    assert "web.port: Input should be greater than or equal to 1" in message
    assert "connections.acme.grouping: Input should be 'ship_date' or 'order'" in message


def test_oauth2_needs_a_token_url(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, MINIMAL + 'auth_mode = "oauth2"\n'))
    assert "connections.acme.plex" in message
    assert "token_url" in message


def test_bad_url_says_what_a_url_must_be(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, MINIMAL + 'soap_url = "api.plexonline.com"\n'))
    assert "connections.acme.plex.soap_url" in message
    assert "absolute http:// or https:// URL" in message


def test_bad_connection_name_is_refused(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, '[connections."Acme Corp".plex]\npcn = "1"\n'))
    assert "connection name 'Acme Corp'" in message
    assert "lower-case letters" in message


def test_order_key_template_placeholders_are_checked(tmp_path: Path) -> None:
    base = MINIMAL + "[connections.acme]\n"
    unknown = error_of(write(tmp_path, base + 'order_key_template = "{pcn}-{customer}-{group}"\n'))
    assert "connections.acme.order_key_template" in unknown
    assert "'customer'" in unknown
    assert "allowed: {group}, {order_id}, {order_number}, {pcn}" in unknown
    not_unique = error_of(write(tmp_path, base + 'order_key_template = "{pcn}-{order_id}"\n'))
    assert "must contain {group}" in not_unique


def test_pcn_is_required_when_the_template_uses_it(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "[connections.acme]\ngrouping = 'order'\n"))
    assert "connections.acme" in message
    assert "plex.pcn is required" in message
    text = "[connections.acme]\norder_key_template = 'x-{order_id}-{group}'\n"
    assert load_config(write(tmp_path, text), {"HOME": "/u"}).connection("acme").plex.pcn is None


def test_mapping_values_are_type_checked(tmp_path: Path) -> None:
    text = MINIMAL + '[connections.acme.mappings.warehouses]\nMAIN = "north"\n'
    message = error_of(write(tmp_path, text))
    assert "connections.acme.mappings.warehouses.MAIN" in message
    assert "valid integer" in message


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\nhost = "127.0.0.1"\nport = = 8080\n')
    message = error_of(path)
    assert str(path) in message
    assert "TOML syntax error" in message
    assert "line 3" in message


def test_a_table_where_a_value_belongs_is_named(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "web = 5\n"))
    assert "web: must be a table" in message


# --- secrets are refused -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    ["api_key", "consumer_secret", "password", "apiSecret", "client_secret", "access_token"],
)
def test_secret_looking_key_is_refused_with_the_vault_hint(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, MINIMAL + f'{key} = "abcd1234efgh5678"\n')
    message = error_of(path)
    assert str(path) in message
    assert f"connections.acme.plex.{key}: secrets are not allowed" in message
    assert "mlconnector credentials set" in message
    assert "abcd1234efgh5678" not in message


def test_secret_key_at_top_level_and_in_shipstation_is_refused(tmp_path: Path) -> None:
    assert "api_secret: secrets" in error_of(write(tmp_path, 'api_secret = "x"\n'))
    text = MINIMAL + '[connections.acme.shipstation]\nv2_api_key = "k"\n'
    assert "connections.acme.shipstation.v2_api_key: secrets" in error_of(write(tmp_path, text))


def test_header_name_settings_are_not_mistaken_for_secrets(tmp_path: Path) -> None:
    text = MINIMAL + 'api_key_header = "X-Api-Key"\napi_secret_header = "X-Api-Secret"\n'
    plex = load_config(write(tmp_path, text), {"HOME": "/u"}).connection("acme").plex
    assert (plex.api_key_header, plex.api_secret_header) == ("X-Api-Key", "X-Api-Secret")


def test_secret_from_environment_is_refused_naming_the_variable(tmp_path: Path) -> None:
    env = {"HOME": "/u", "MLCONNECTOR_CONNECTIONS__ACME__PLEX__API_KEY": "abcd1234efgh"}
    message = error_of(write(tmp_path, MINIMAL), env)
    assert "MLCONNECTOR_CONNECTIONS__ACME__PLEX__API_KEY" in message
    assert "mlconnector credentials set" in message
    assert "abcd1234efgh" not in message


# --- environment overrides ---------------------------------------------------------------------
def test_env_overrides_file_values_with_typed_literals(tmp_path: Path) -> None:
    text = MINIMAL + "[connections.acme.poll]\norders = 600\n[web]\nport = 8080\n"
    env = {
        "HOME": "/u",
        "MLCONNECTOR_DATABASE_URL": "postgresql+psycopg://db/mlc",
        "MLCONNECTOR_LOG_LEVEL": "debug",
        "MLCONNECTOR_WEB__PORT": "9090",
        "MLCONNECTOR_CONNECTIONS__ACME__POLL__ORDERS": "120",
        "MLCONNECTOR_CONNECTIONS__ACME__PLEX__SHIPPABLE_CONTAINER_STATUSES": '["OK", "Hold"]',
        "MLCONNECTOR_CONNECTIONS__ACME__ENABLED": "false",
    }
    config = load_config(write(tmp_path, text), env)
    assert config.database_url == "postgresql+psycopg://db/mlc"
    assert config.log_level == "DEBUG"
    assert config.web.port == 9090
    acme = config.connection("acme")
    assert acme.poll.orders == 120
    assert acme.plex.shippable_container_statuses == ("OK", "Hold")
    assert acme.enabled is False


def test_env_home_overrides_the_file_and_moves_the_default_database(tmp_path: Path) -> None:
    env = {"HOME": "/u", "MLCONNECTOR_HOME": str(tmp_path / "elsewhere")}
    config = load_config(write(tmp_path, 'home = "/srv/mlc"\n'), env)
    assert config.home == tmp_path / "elsewhere"
    assert config.database_url.endswith(f"{tmp_path / 'elsewhere' / 'mlconnector.db'}")


def test_env_can_add_a_connection_without_a_file(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "MLCONNECTOR_CONNECTIONS__EAST__PLEX__PCN": "42",
        "MLCONNECTOR_CONNECTIONS__EAST__PLEX__REST_BASE_URL": "http://127.0.0.1:1234",
    }
    config = load_config(None, env, missing_ok=True)
    assert config.connection("east").plex.pcn == "42"
    assert config.connection("east").plex.rest_base_url == "http://127.0.0.1:1234"


def test_invalid_env_value_names_the_variable(tmp_path: Path) -> None:
    env = {"HOME": "/u", "MLCONNECTOR_CONNECTIONS__ACME__POLL__ORDERS": "10"}
    message = error_of(write(tmp_path, MINIMAL), env)
    assert "connections.acme.poll.orders" in message
    assert "set by environment variable MLCONNECTOR_CONNECTIONS__ACME__POLL__ORDERS" in message


def test_unknown_env_key_under_a_known_section_is_an_error(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, MINIMAL), {"HOME": "/u", "MLCONNECTOR_WEB__PROT": "1"})
    assert "web.prot: unknown key; allowed here: allowed_hosts, body_timeout_seconds" in message
    assert "MLCONNECTOR_WEB__PROT" in message


def test_unrelated_mlconnector_variables_are_ignored(tmp_path: Path) -> None:
    env = {
        "HOME": "/u",
        "MLCONNECTOR_CONFIG": str(tmp_path / "mlconnector.toml"),
        "MLCONNECTOR_PLEX_CONSUMER_KEY": "not-config",
        "OTHER_WEB__PORT": "1",
    }
    config = load_config(write(tmp_path, MINIMAL), env)
    assert config.web.port == 8080


def test_env_value_into_a_scalar_of_the_file_is_an_error(tmp_path: Path) -> None:
    env = {"HOME": "/u", "MLCONNECTOR_LOG_LEVEL__X": "1"}
    message = error_of(write(tmp_path, 'log_level = "INFO"\n'), env)
    assert "MLCONNECTOR_LOG_LEVEL__X" in message
    assert "log_level is a value, not a table" in message


# --- the model helpers -------------------------------------------------------------------------
def test_webhook_host_allow_list() -> None:
    ss = ConnectionConfig.model_validate(
        {"plex": {"pcn": "1"}, "shipstation": {"v1_base_url": "http://127.0.0.1:5000"}}
    ).shipstation
    assert ss.webhook_host_allowed("127.0.0.1")
    assert ss.webhook_host_allowed("SSAPI7.shipstation.com")
    assert ss.webhook_host_allowed("api.shipstation.com")
    assert not ss.webhook_host_allowed("ssapi.shipstation.com.evil.example")
    assert not ss.webhook_host_allowed("evil.example")


def test_config_is_immutable(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), {"HOME": "/u"})
    assert isinstance(config, Config)
    with pytest.raises(ValueError, match="frozen"):
        config.log_level = "DEBUG"  # type: ignore[misc]


def test_pcn_and_tenant_id_formats_are_explained(tmp_path: Path) -> None:
    pcn = error_of(write(tmp_path, '[connections.acme.plex]\npcn = "34-08"\n'))
    assert "connections.acme.plex.pcn: a PCN is 1 to 12 digits" in pcn
    text = '[connections.acme]\norder_key_template = "k-{order_id}-{group}"\n'
    text += '[connections.acme.plex]\ntenant_id = "ABC"\n'
    assert "lower-case UUID" in error_of(write(tmp_path, text))
    numeric = load_config(
        write(tmp_path, "[connections.acme.plex]\npcn = 340884\n"), {"HOME": "/u"}
    )
    assert numeric.connection("acme").plex.pcn == "340884"


def test_every_setting_is_documented() -> None:
    """docs/configuration.md names every key of every section (kept in step with the model)."""
    doc = (Path(__file__).parents[3] / "docs" / "configuration.md").read_text(encoding="utf-8")
    sections: list[type[BaseModel]] = [Config]
    seen: set[type[BaseModel]] = set()
    undocumented = []
    while sections:
        model = sections.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if name == "source":
                continue
            forms = (f"`{name}`", f".{name}`", f".{name}]", f"`{name}.")
            if not any(form in doc for form in forms):
                undocumented.append(f"{model.__name__}.{name}")
            for inner in (field.annotation, *get_args(field.annotation)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    sections.append(inner)
    assert undocumented == []


def test_env_text_stays_text_where_the_setting_wants_text(tmp_path: Path) -> None:
    env = {
        "HOME": "/u",
        "MLCONNECTOR_CONNECTIONS__ACME__PLEX__PCN": "0340884",
        "MLCONNECTOR_CONNECTIONS__ACME__PLEX__WEB_SERVICE_USER": "12345",
        "MLCONNECTOR_CONNECTIONS__ACME__MAPPINGS__STORES__BY_CUSTOMER": '{ "C1" = 7 }',
        "MLCONNECTOR_CONNECTIONS__ACME__PLEX__READ_WINDOW_HOURS": "1.5",
    }
    acme = load_config(write(tmp_path, MINIMAL), env).connection("acme")
    assert acme.plex.pcn == "0340884"
    assert acme.plex.web_service_user == "12345"
    assert acme.mappings.stores.by_customer == {"C1": 7}
    assert acme.plex.read_window_hours == 1.5
