"""Legacy SOAP DataSource service: HTTP 200 with Error=true, result sets, WSDL."""

from __future__ import annotations

from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import httpx
from defusedxml.ElementTree import fromstring

from mlconnector.sandbox.plex import RELEASE_HISTORY_ID, TRACKING_UPDATE_ID, PlexSandbox

NS = "{http://www.plexus-online.com/DataSource}"
HEADERS = {
    "Content-Type": "text/xml; charset=utf-8",
    "SOAPAction": "http://www.plexus-online.com/DataSource/ExecuteDataSource",
}


def _envelope(key: int | str, params: dict[str, str]) -> str:
    inputs = "".join(
        f"<dat:InputParameter><dat:Value>{escape(v)}</dat:Value><dat:Name>@{n}</dat:Name>"
        "<dat:Required>false</dat:Required><dat:Output>false</dat:Output></dat:InputParameter>"
        for n, v in params.items()
    )
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:dat="http://www.plexus-online.com/DataSource"><soapenv:Body>'
        "<dat:ExecuteDataSource><dat:ExecuteDataSourceRequest>"
        f"<dat:DataSourceKey>{key}</dat:DataSourceKey>"
        f"<dat:InputParameters>{inputs}</dat:InputParameters>"
        "</dat:ExecuteDataSourceRequest></dat:ExecuteDataSource></soapenv:Body></soapenv:Envelope>"
    )


def _result(response: httpx.Response) -> Element:
    root = fromstring(response.content)
    return next(root.iter(f"{NS}ExecuteDataSourceResult"))


def _field(result: Element, name: str) -> str:
    element = result.find(f"{NS}{name}")
    return "" if element is None or element.text is None else str(element.text)


async def _call(anon: httpx.AsyncClient, auth: httpx.BasicAuth, body: str) -> httpx.Response:
    return await anon.post("/DataSource/Service.asmx", content=body, headers=HEADERS, auth=auth)


async def test_unknown_datasource_is_http_200_with_error_true(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth
) -> None:
    response = await _call(anon, ws_auth, _envelope(999999, {}))
    assert response.status_code == 200
    result = _result(response)
    assert _field(result, "Error") == "true"
    assert "999999" in _field(result, "Message")


async def test_bad_input_is_http_200_with_error_true(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth
) -> None:
    response = await _call(anon, ws_auth, _envelope(TRACKING_UPDATE_ID, {"Shipper_Key": "x"}))
    assert response.status_code == 200
    assert _field(_result(response), "Error") == "true"
    missing = await _call(anon, ws_auth, _envelope(RELEASE_HISTORY_ID, {}))
    assert _field(_result(missing), "Error") == "true"
    assert "Begin_Date" in _field(_result(missing), "Message")


async def test_result_set_rows_and_columns(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    sandbox.set_row_limit(RELEASE_HISTORY_ID, 5)  # not applied to SOAP
    body = _envelope(
        RELEASE_HISTORY_ID,
        {"Begin_Date": "2025-01-01T00:00:00Z", "End_Date": "2027-01-01T00:00:00Z"},
    )
    response = await _call(anon, ws_auth, body)
    result = _result(response)
    assert _field(result, "Error") == "false"
    result_set = next(result.iter(f"{NS}ResultSet"))
    rows = list(result_set.iter(f"{NS}Row"))
    assert len(rows) == int(_field(result_set, "RowCount")) == len(sandbox.tenant().releases)
    names = [_field(c, "Name") for c in rows[0].iter(f"{NS}Column")]
    assert "Release_Key" in names


async def test_execute_datasource_post_with_delimiter(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    data = sandbox.tenant()
    customer = next(iter(data.customers.values()))
    address = next(a for a in customer.addresses if a.ship_to)
    shipper = data.create_shipper(customer.id, address.id, {})
    body = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<ExecuteDataSourcePost xmlns="http://www.plexus-online.com/DataSource">'
        f"<dataSourceKey>{TRACKING_UPDATE_ID}</dataSourceKey>"
        "<parameterNames>@Shipper_Key|@Tracking_No|@Shipper_Note</parameterNames>"
        f"<parameterValues>{shipper.key}|1Z,9|note, with comma</parameterValues>"
        "<delimeter>|</delimeter></ExecuteDataSourcePost></soap:Body></soap:Envelope>"
    )
    response = await _call(anon, ws_auth, body)
    root = fromstring(response.content)
    result = next(root.iter(f"{NS}ExecuteDataSourcePostResult"))
    assert _field(result, "Error") == "false"
    assert (shipper.tracking_number, shipper.shipper_note) == ("1Z,9", "note, with comma")


async def test_bad_credentials_are_http_401(anon: httpx.AsyncClient) -> None:
    response = await _call(anon, httpx.BasicAuth("x", "y"), _envelope(TRACKING_UPDATE_ID, {}))
    assert response.status_code == 401


async def test_unparsable_envelope_is_soap_fault(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth
) -> None:
    response = await _call(anon, ws_auth, "<not-xml")
    assert response.status_code == 500
    assert b"soap:Fault" in response.content


async def test_entity_expansion_is_refused(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth
) -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    response = await _call(anon, ws_auth, bomb)
    assert response.status_code == 500


async def test_wsdl_is_served(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/DataSource/Service.asmx?WSDL")
    assert response.status_code == 200
    root = fromstring(response.content)
    operations = {op.get("name") for op in root.iter("{http://schemas.xmlsoap.org/wsdl/}operation")}
    assert operations == {"ExecuteDataSource", "ExecuteDataSourcePost"}
