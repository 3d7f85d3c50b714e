"""JSON Data Source API and SOAP: row limits, error codes, Error=true, streaming by windows."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from defusedxml import DefusedXmlException

from mlconnector.errors import (
    ConfigError,
    InvalidResponseError,
    PermissionDeniedError,
    RemoteValidationError,
    stops_pass,
)
from mlconnector.plex import DataSourceError, PlexSoapClient, RowLimitExceededError
from mlconnector.timezones import parse_utc_z
from tests.unit.plex.conftest import FAST_RETRY, datasource_client, make_settings

NS = "http://www.plexus-online.com/DataSource"


def rows_answer(rows: list[dict], **flags: object) -> dict:
    return {"outputs": {}, "rows": rows, "transactionNo": "42", **flags}


async def test_execute_posts_format2_with_basic_auth(http_factory, settings, fake_clock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=rows_answer([{"Part_Key": 1, "Part_No": "W"}]))

    client = datasource_client(http_factory(handler), settings, fake_clock)
    result = await client.execute(583, {"Part_No": "W"})
    request = seen[0]
    assert str(request.url) == "https://cloud.plex.com/api/datasources/583/execute?format=2"
    assert json.loads(request.content) == {"Part_No": "W"}
    expected = base64.b64encode(b"ConnectorWs@plex.com:ws-secret-pw").decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert "X-Plex-Connect-Api-Key" not in request.headers
    assert result.rows == [{"Part_Key": 1, "Part_No": "W"}]
    assert result.transaction_no == "42"


@pytest.mark.parametrize("flag", ["rowLimitExceeded", "limitExceeded", "rowLimitedExceeded"])
async def test_each_row_limit_spelling_raises(http_factory, settings, fake_clock, flag) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=rows_answer([{"a": 1}], **{flag: True}))

    client = datasource_client(http_factory(handler), settings, fake_clock)
    with pytest.raises(RowLimitExceededError) as info:
        await client.execute(9278)
    assert "Read Row Limit" in str(info.value)
    assert "narrow the window" in str(info.value)


async def test_row_limit_in_default_table_shape(http_factory, settings, fake_clock) -> None:
    body = {
        "outputs": {},
        "tables": [{"columns": ["A", "B"], "rows": [[1, 2]], "rowLimitExceeded": True}],
    }
    client = datasource_client(
        http_factory(lambda r: httpx.Response(200, json=body)), settings, fake_clock
    )
    with pytest.raises(RowLimitExceededError):
        await client.execute(1)
    client.on_row_limit = "warn"
    result = await client.execute(1)
    assert result.rows == [{"A": 1, "B": 2}]
    assert result.row_limit_exceeded


async def test_row_limit_can_warn_instead(http_factory, settings, fake_clock, caplog) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=rows_answer([{"a": 1}], limitExceeded=True))

    client = datasource_client(http_factory(handler), settings, fake_clock, on_row_limit="warn")
    with caplog.at_level(logging.WARNING, logger="mlconnector.plex.datasources"):
        result = await client.execute(9278)
    assert result.row_limit_exceeded
    assert "narrow the window" in caplog.text


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("DATA_SOURCE_ACCESS_DENIED", 403, PermissionDeniedError),
        ("CUSTOMER_ACCESS_DENIED", 401, PermissionDeniedError),
        ("DATA_SOURCE_NOT_FOUND", 400, ConfigError),
        ("DATA_SOURCE_INPUT_REQUIRED", 400, ConfigError),
        ("DATA_SOURCE_INPUT_TYPE_MISMATCH", 400, RemoteValidationError),
        ("SOMETHING_NEW", 400, DataSourceError),
    ],
)
async def test_datasource_error_codes(http_factory, settings, fake_clock, code, status, error):
    body = {"errors": [{"code": code, "message": "nope"}], "transactionNo": "7"}
    client = datasource_client(
        http_factory(lambda r: httpx.Response(status, json=body)), settings, fake_clock
    )
    with pytest.raises(error) as info:
        await client.execute(230447, {"Shipper_Key": 1})
    assert code in str(info.value)
    assert "230447" in str(info.value)
    if error is PermissionDeniedError:
        assert "Web Service Access By User Account" in str(info.value)


@pytest.mark.parametrize(
    "execute_path", ["/api/datasources/{id}/execute", "/api/datasources/{id}", "/ds/{id}/run/v2"]
)
async def test_the_hint_names_the_datasource_id_whatever_the_execute_path(
    http_factory, fake_clock, execute_path
) -> None:
    body = {"errors": [{"code": "DATA_SOURCE_INPUT_REQUIRED", "message": "Shipper_Key"}]}
    settings = make_settings(endpoints={"datasource_execute_path": execute_path})
    client = datasource_client(
        http_factory(lambda r: httpx.Response(400, json=body)), settings, fake_clock
    )
    with pytest.raises(ConfigError) as info:
        await client.execute(230447)
    assert info.value.hint == (
        "check datasource 230447 and its input names on the Data Sources screen"
    )
    assert "Plex datasource 230447:" in str(info.value)


async def test_errors_in_an_http_200_body_raise(http_factory, settings, fake_clock) -> None:
    body = {"errors": [{"code": "USER_ACCESS_DENIED", "message": "no"}], "rows": []}
    client = datasource_client(
        http_factory(lambda r: httpx.Response(200, json=body)), settings, fake_clock
    )
    with pytest.raises(PermissionDeniedError):
        await client.execute(2068)


async def test_processing_error_is_retried(http_factory, settings, fake_clock) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            body = {"errors": [{"code": "REQUEST_PROCESSING_ERROR", "message": "deadlock"}]}
            return httpx.Response(500, json=body)
        return httpx.Response(200, json=rows_answer([]))

    client = datasource_client(http_factory(handler), settings, fake_clock)
    await client.execute(1)
    assert len(calls) == 2


async def test_web_service_user_is_required(http_factory, fake_clock) -> None:
    bare = make_settings(auth={"ws_username": None, "ws_password": None})
    with pytest.raises(ConfigError, match="ws_username"):
        datasource_client(http_factory(lambda r: httpx.Response(500)), bare, fake_clock)


async def test_stream_rows_walks_windows_and_splits_on_row_limit(http_factory, fake_clock):
    # One row per hour over two days; the datasource caps at 10 rows per call.
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Rows sit exactly on the hour, so window edges (inclusive at both ends) hit rows.
    all_rows = [{"n": h, "at": start + timedelta(hours=h)} for h in range(48)]
    calls: list[tuple[datetime, datetime]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)
        low, high = parse_utc_z(inputs["Begin_Date"]), parse_utc_z(inputs["End_Date"])
        calls.append((low, high))
        chosen = [r for r in all_rows if low <= r["at"] <= high]
        body = rows_answer([{"n": r["n"]} for r in chosen[:10]], rowLimitExceeded=len(chosen) > 10)
        return httpx.Response(200, json=body)

    settings = make_settings(window=timedelta(days=1))
    client = datasource_client(http_factory(handler), settings, fake_clock)
    got = [
        row["n"]
        async for row in client.stream_rows(
            9278, start, start + timedelta(days=2), begin_input="Begin_Date", end_input="End_Date"
        )
    ]
    assert got == list(range(48))  # complete, in order, no duplicates
    assert all(high - low <= timedelta(days=1) for low, high in calls)
    assert len(calls) > 2  # windows were halved after the row limit


async def test_stream_rows_gives_up_below_the_minimum_window(http_factory, settings, fake_clock):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=rows_answer([{"n": 1}], rowLimitExceeded=True))

    client = datasource_client(http_factory(handler), settings, fake_clock)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(RowLimitExceededError):
        async for _ in client.stream_rows(
            1,
            start,
            start + timedelta(hours=1),
            begin_input="B",
            end_input="E",
            min_window=timedelta(minutes=15),
        ):
            pass


# --- SOAP ---------------------------------------------------------------------------------------
def soap_result(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<ExecuteDataSourceResponse xmlns="{NS}"><ExecuteDataSourceResult>{inner}'
        "</ExecuteDataSourceResult></ExecuteDataSourceResponse></soap:Body></soap:Envelope>"
    ).encode()


OK_ROWS = (
    "<Error>false</Error><ErrorNo>0</ErrorNo><Message>OK</Message><InstanceNo>99</InstanceNo>"
    "<OutputParameters><OutputParameter><Name>@Result_Error</Name><Value>0</Value>"
    "</OutputParameter></OutputParameters>"
    "<ResultSets><ResultSet><RowCount>2</RowCount><Rows>"
    "<Row><Columns><Column><Name>Shipper_No</Name><Value>S-1</Value></Column>"
    "<Column><Name>Tracking_No</Name><Value>1Z&amp;9</Value></Column></Columns></Row>"
    "<Row><Columns><Column><Name>Shipper_No</Name><Value>S-2</Value></Column>"
    "<Column><Name>Tracking_No</Name><Value></Value></Column></Columns></Row>"
    "</Rows></ResultSet></ResultSets>"
)


def soap_client(http: httpx.AsyncClient, fake_clock, **settings_overrides) -> PlexSoapClient:
    return PlexSoapClient(
        http, make_settings(**settings_overrides), clock=fake_clock, retry=FAST_RETRY
    )


async def test_soap_request_and_rows(http_factory, fake_clock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=soap_result(OK_ROWS))

    client = soap_client(http_factory(handler), fake_clock)
    result = await client.execute(9278, {"Part_No": "A<B&C", "Active": True})
    request = seen[0]
    assert str(request.url) == "https://api.plexonline.com/DataSource/Service.asmx"
    assert request.headers["SOAPAction"] == f"{NS}/ExecuteDataSource"
    assert request.headers["Content-Type"].startswith("text/xml")
    body = request.content.decode()
    assert "<dat:DataSourceKey>9278</dat:DataSourceKey>" in body
    assert "<dat:Value>A&lt;B&amp;C</dat:Value>" in body
    assert "<dat:Value>1</dat:Value><dat:Name>Active</dat:Name>" in body
    assert result.rows == [
        {"Shipper_No": "S-1", "Tracking_No": "1Z&9"},
        {"Shipper_No": "S-2", "Tracking_No": ""},
    ]
    assert result.outputs == {"@Result_Error": "0"}


async def test_soap_http_200_with_error_true_raises(http_factory, fake_clock) -> None:
    inner = (
        "<Error>true</Error><ErrorNo>2</ErrorNo><Message>Invalid parameter @Part_No</Message>"
        "<InstanceNo>1234</InstanceNo>"
    )
    client = soap_client(
        http_factory(lambda r: httpx.Response(200, content=soap_result(inner))), fake_clock
    )
    with pytest.raises(DataSourceError) as info:
        await client.execute(583, {"Part_No": "X"})
    assert "Error=true" in str(info.value)
    assert "Invalid parameter @Part_No" in str(info.value)
    assert "1234" in str(info.value)


async def test_soap_refuses_entity_expansion(http_factory, fake_clock) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>'
    )
    client = soap_client(http_factory(lambda r: httpx.Response(200, content=bomb)), fake_clock)
    with pytest.raises(InvalidResponseError, match="unsafe XML") as info:
        client.parse(1, bomb)
    assert isinstance(info.value.__cause__, DefusedXmlException)


async def test_soap_malformed_xml_is_invalid_response(http_factory, fake_clock) -> None:
    client = soap_client(http_factory(lambda r: httpx.Response(200)), fake_clock)
    with pytest.raises(InvalidResponseError):
        client.parse(1, b"<not closed")


async def test_soap_url_and_namespace_are_configurable(http_factory, fake_clock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=soap_result(OK_ROWS))

    client = soap_client(
        http_factory(handler),
        fake_clock,
        endpoints={"soap_url": "https://testapi.plexonline.com/DataSource/Service.asmx"},
    )
    await client.execute(1)
    assert seen[0].url.host == "testapi.plexonline.com"


@pytest.mark.parametrize("flag", [True, "1", "true"])
async def test_result_error_output_raises(http_factory, settings, fake_clock, flag) -> None:
    body = {"outputs": {"Result_Error": flag, "Result_Message": "Shipper not found"}, "rows": []}
    client = datasource_client(
        http_factory(lambda r: httpx.Response(200, json=body)), settings, fake_clock
    )
    with pytest.raises(DataSourceError, match="Shipper not found") as raised:
        await client.execute(230447, {"Shipper_Key": 1, "Tracking_No": "", "Shipper_Note": ""})
    # about this one record's inputs: its operation goes dead once, the pass goes on
    assert not stops_pass(raised.value)


async def test_soap_result_error_output_raises(http_factory, fake_clock) -> None:
    inner = (
        "<Error>false</Error><OutputParameters><OutputParameter><Name>@Result_Error</Name>"
        "<Value>1</Value></OutputParameter><OutputParameter><Name>@Result_Message</Name>"
        "<Value>Bad key</Value></OutputParameter></OutputParameters>"
    )
    client = soap_client(
        http_factory(lambda r: httpx.Response(200, content=soap_result(inner))), fake_clock
    )
    with pytest.raises(DataSourceError, match="Bad key"):
        await client.execute(230447)
