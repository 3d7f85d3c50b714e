"""Plex datasources: the JSON Data Source API and the legacy SOAP ``ExecuteDataSource``.

Both authenticate a *web-service user* with HTTP Basic and run Plex stored procedures by integer
id. Two traps are handled here: a result cut at the datasource's Read Row Limit (the flag has
three spellings) and a SOAP answer of HTTP 200 whose ``Error`` is ``true``.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from xml.etree.ElementTree import Element  # types only; parsing uses defusedxml
from xml.sax.saxutils import escape

import httpx
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from mlconnector.clock import Clock
from mlconnector.errors import (
    AuthenticationError,
    ConfigError,
    ConnectorError,
    FatalError,
    InvalidResponseError,
    NotFoundError,
    OperationFatalError,
    PermissionDeniedError,
    RemoteValidationError,
    TransientError,
    excerpt,
)
from mlconnector.http import ApiClient, RateLimiterRegistry, Redactor, RequestEvent, RetryPolicy
from mlconnector.plex.errors import with_rate_limit_wait
from mlconnector.plex.settings import PlexSettings
from mlconnector.plex.windows import windows
from mlconnector.timezones import format_utc_z

log = logging.getLogger("mlconnector.plex.datasources")

ROW_LIMIT_FLAGS = ("rowLimitExceeded", "limitExceeded", "rowLimitedExceeded")

_ACCESS = {
    "CUSTOMER_ACCESS_DENIED",
    "DATA_SOURCE_ACCESS_DENIED",
    "DATA_SOURCE_API_ACCESS_DENIED",
    "DATA_SOURCE_INPUT_NOT_ACCESSIBLE",
    "USER_ACCESS_DENIED",
}
_SETUP = {
    "DATA_SOURCE_NOT_FOUND",
    "DATA_SOURCE_INPUT_NOT_FOUND",
    "DATA_SOURCE_INPUT_REQUIRED",
    "METHOD_NOT_ALLOWED",
}
_VALUE = {
    "DATA_SOURCE_INPUT_FORMAT_INVALID",
    "DATA_SOURCE_INPUT_NOT_NULLABLE",
    "DATA_SOURCE_INPUT_TYPE_MISMATCH",
}


class RowLimitExceededError(FatalError):
    """A datasource cut its result at its Read Row Limit: the rows are incomplete."""


class DataSourceError(FatalError):
    """A datasource (JSON or SOAP) reported an error in its answer body."""


class DataSourceResultError(DataSourceError, OperationFatalError):
    """The procedure ran and refused these inputs (``Result_Error = true``): about this one
    record (an unknown Shipper_Key, say), so its operation goes dead once, the pass goes on."""


@dataclass
class DataSourceResult:
    """Rows (as dicts), output parameters and whether Plex cut the result short."""

    datasource_id: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    row_limit_exceeded: bool = False
    transaction_no: str | None = None


def basic_auth(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def classify_datasource_code(
    code: str, message: str, datasource_id: int | str, kwargs: dict[str, Any]
) -> ConnectorError:
    """Map a Data Source API error code into the error tree (Plex says: branch on the code)."""
    text = f"Plex datasource {datasource_id}: {code}: {message}"
    if code in _ACCESS:
        return PermissionDeniedError(
            text,
            hint=(
                f"grant datasource {datasource_id} to the web-service user on the Plex screen "
                "'Web Service Access By User Account' (it must be Self Serviceable or Global "
                "Allow; otherwise the Plex Champion opens a case)"
            ),
            **kwargs,
        )
    if code in _SETUP:
        return ConfigError(
            text,
            hint=f"check datasource {datasource_id} and its input names on the Data Sources screen",
            **kwargs,
        )
    if code in _VALUE:
        return RemoteValidationError(text, **kwargs)
    if code == "DATA_SOURCE_OBJECT_NOT_FOUND":
        return NotFoundError(text, **kwargs)
    if code == "REQUEST_PROCESSING_ERROR":
        return TransientError(text, **kwargs)
    return DataSourceError(text, **kwargs)


def check_result_outputs(result: DataSourceResult) -> None:
    """Raise if the procedure reported failure in ``Result_Error`` (an HTTP 200 in Plex)."""
    outputs = {name.lstrip("@"): value for name, value in result.outputs.items()}
    flag = outputs.get("Result_Error")
    if flag in (True, 1) or str(flag).strip().lower() in {"1", "true"}:
        raise DataSourceResultError(
            f"Plex datasource {result.datasource_id} reported an error: "
            f"{outputs.get('Result_Message') or 'no message'}",
            record=f"datasource {result.datasource_id}",
            hint="check the inputs (e.g. the Shipper_Key exists in this PCN)",
        )


def _ws_credentials(settings: PlexSettings) -> tuple[str, str]:
    auth = settings.auth
    if not auth.ws_username or auth.ws_password is None:
        raise ConfigError(
            "plex.auth.ws_username and plex.auth.ws_password (the Plex web-service user) are "
            "required for the Data Source API and SOAP"
        )
    return auth.ws_username, auth.ws_password.get_secret_value()


class PlexDataSourceClient(ApiClient):
    """``POST /api/datasources/{id}/execute?format=2`` on the configured datasource host."""

    service = "plex-datasource"

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: PlexSettings,
        *,
        clock: Clock,
        limiters: RateLimiterRegistry | None = None,
        retry: RetryPolicy | None = None,
        redactor: Redactor | None = None,
        on_event: Callable[[RequestEvent], None] | None = None,
        on_row_limit: Literal["raise", "warn"] = "raise",
    ) -> None:
        user, password = _ws_credentials(settings)
        redactor = redactor or Redactor()
        redactor.add(password)
        limiter = None
        if limiters is not None:
            limiter = limiters.for_credential(
                httpx.URL(settings.endpoints.datasource_url).host,
                f"ws:{user}",
                limit_per_minute=settings.requests_per_minute,
            )
        super().__init__(
            http,
            base_url=settings.endpoints.datasource_url,
            clock=clock,
            retry=retry,
            limiter=limiter,
            redactor=redactor,
            on_event=on_event,
        )
        self.settings = settings
        self.on_row_limit = on_row_limit
        self._authorization = basic_auth(user, password)

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self._authorization}

    def classify(self, response: httpx.Response) -> ConnectorError | None:
        code, message = self._first_error(response)
        if code is None:
            return with_rate_limit_wait(super().classify(response), self.settings.rate_limit_wait)
        datasource_id = self._datasource_id(response.request.url.path)
        kwargs: dict[str, Any] = {
            "status": response.status_code,
            "request_id": self.request_id(response),
            "body_excerpt": self.redactor.text(excerpt(response.text) or ""),
        }
        if response.status_code == 401 and code not in _ACCESS:
            return AuthenticationError(
                f"Plex refused the web-service user for datasource {datasource_id}: {message}",
                hint="check plex.auth.ws_username / ws_password",
                **kwargs,
            )
        return classify_datasource_code(
            code, self.redactor.text(message or ""), datasource_id, kwargs
        )

    def _datasource_id(self, path: str) -> str:
        """The ``{id}`` segment of a request path made from the configured execute path
        (whatever its shape; the whole path when it does not match)."""
        before, _, after = self.settings.endpoints.datasource_execute_path.partition("{id}")
        found = re.search(f"{re.escape(before)}([^/]+){re.escape(after)}/?$", path)
        return found.group(1) if found else path

    @staticmethod
    def _first_error(response: httpx.Response) -> tuple[str | None, str | None]:
        # A body with errors[] is an error even under HTTP 200.
        try:
            body = response.json()
        except ValueError:
            return None, None
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("code") or "UNKNOWN"), str(errors[0].get("message") or "")
        return None, None

    async def execute(
        self,
        datasource_id: int,
        inputs: Mapping[str, Any] | None = None,
        *,
        on_row_limit: Literal["raise", "warn"] | None = None,
    ) -> DataSourceResult:
        """Run a datasource (``format=2``); a cut result raises or warns, as configured."""
        path = self.settings.endpoints.datasource_execute_path.format(id=datasource_id)
        body = await self.request_json(
            "POST",
            path,
            params={"format": "2"},
            json_body=dict(inputs or {}),
            headers={"Accept": "application/json"},
            record=f"datasource {datasource_id}",
        )
        result = self._result(datasource_id, body)
        check_result_outputs(result)
        if result.row_limit_exceeded:
            self._row_limit(result, inputs, on_row_limit or self.on_row_limit)
        return result

    def _result(self, datasource_id: int, body: Any) -> DataSourceResult:
        if not isinstance(body, dict):
            raise InvalidResponseError(f"Plex datasource {datasource_id} answered no JSON object")
        rows: list[dict[str, Any]] = []
        flagged = any(bool(body.get(flag)) for flag in ROW_LIMIT_FLAGS)
        if isinstance(body.get("rows"), list):
            rows = [r for r in body["rows"] if isinstance(r, dict)]
        for table in body.get("tables") or []:  # the default (non format=2) shape
            if isinstance(table, dict):
                columns = [str(c) for c in table.get("columns") or []]
                rows.extend(dict(zip(columns, r, strict=False)) for r in table.get("rows") or [])
                flagged = flagged or any(bool(table.get(flag)) for flag in ROW_LIMIT_FLAGS)
        outputs = body.get("outputs") if isinstance(body.get("outputs"), dict) else {}
        return DataSourceResult(
            datasource_id=datasource_id,
            rows=rows,
            outputs=dict(outputs or {}),
            row_limit_exceeded=flagged,
            transaction_no=str(body["transactionNo"]) if body.get("transactionNo") else None,
        )

    def _row_limit(
        self, result: DataSourceResult, inputs: Mapping[str, Any] | None, mode: str
    ) -> None:
        message = (
            f"Plex datasource {result.datasource_id} hit its Read Row Limit: only "
            f"{len(result.rows)} rows came back and the rest were cut off (inputs: "
            f"{self.redactor.text(str(dict(inputs or {})))})"
        )
        hint = "narrow the window (plex.window) or the filters so each call stays under the limit"
        if mode == "raise":
            raise RowLimitExceededError(
                message, record=f"datasource {result.datasource_id}", hint=hint
            )
        log.warning("%s; %s", message, hint)

    def stream_rows(
        self,
        datasource_id: int,
        start: datetime,
        end: datetime,
        *,
        begin_input: str,
        end_input: str,
        inputs: Mapping[str, Any] | None = None,
        window: timedelta | None = None,
        min_window: timedelta = timedelta(minutes=5),
        key: Callable[[dict[str, Any]], Hashable] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the rows of ``[start, end]`` window by window (see :func:`stream_windows`)."""

        async def run(values: Mapping[str, Any]) -> DataSourceResult:
            return await self.execute(datasource_id, values, on_row_limit="raise")

        return stream_windows(
            run,
            start,
            end,
            begin_input=begin_input,
            end_input=end_input,
            inputs=inputs,
            window=window or self.settings.window,
            min_window=min_window,
            key=key,
        )


async def stream_windows(
    run: Callable[[Mapping[str, Any]], Awaitable[DataSourceResult]],
    start: datetime,
    end: datetime,
    *,
    begin_input: str,
    end_input: str,
    inputs: Mapping[str, Any] | None,
    window: timedelta,
    min_window: timedelta,
    key: Callable[[dict[str, Any]], Hashable] | None,
) -> AsyncIterator[dict[str, Any]]:
    """Yield the rows of ``[start, end]`` window by window; memory holds one window only.

    A window cut at the row limit (``run`` raises :class:`RowLimitExceededError`) is halved and
    re-read, down to ``min_window``; below that the error is raised, since no narrower date
    filter can help. Plex date inputs are inclusive at both ends, so a row on a window edge comes
    back twice: rows whose ``key`` (default: the whole row) the previous window yielded are
    skipped.
    """
    row_key = key or _row_key
    previous: set[Hashable] = set()
    pending = list(windows(start, end, window))
    pending.reverse()
    while pending:
        low, high = pending.pop()
        values = {**(inputs or {}), begin_input: format_utc_z(low), end_input: format_utc_z(high)}
        try:
            result = await run(values)
        except RowLimitExceededError:
            if high - low <= min_window:
                raise
            middle = low + (high - low) / 2
            pending.extend([(middle, high), (low, middle)])
            continue
        current = {row_key(row) for row in result.rows}
        for row in result.rows:
            if row_key(row) not in previous:
                yield row
        previous = current


class PlexSoapClient(ApiClient):
    """SOAP 1.1 ``ExecuteDataSource`` on the legacy DataSource service."""

    service = "plex-soap"

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: PlexSettings,
        *,
        clock: Clock,
        retry: RetryPolicy | None = None,
        redactor: Redactor | None = None,
        on_event: Callable[[RequestEvent], None] | None = None,
    ) -> None:
        user, password = _ws_credentials(settings)
        redactor = redactor or Redactor()
        redactor.add(password)
        super().__init__(
            http,
            base_url=settings.endpoints.soap_url,
            clock=clock,
            retry=retry,
            redactor=redactor,
            on_event=on_event,
        )
        self.soap_url = settings.endpoints.soap_url
        self.namespace = settings.endpoints.soap_namespace
        self._authorization = basic_auth(user, password)

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self._authorization}

    def envelope(self, datasource_id: int, inputs: Mapping[str, Any]) -> str:
        """The SOAP 1.1 request body (values XML-escaped)."""
        params = "".join(
            "<dat:InputParameter>"
            f"<dat:Value>{escape(_soap_value(value))}</dat:Value>"
            f"<dat:Name>{escape(name)}</dat:Name>"
            "<dat:Required>false</dat:Required><dat:Output>false</dat:Output>"
            "</dat:InputParameter>"
            for name, value in inputs.items()
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:dat="{escape(self.namespace)}"><soapenv:Body><dat:ExecuteDataSource>'
            f"<dat:ExecuteDataSourceRequest><dat:DataSourceKey>{int(datasource_id)}"
            f"</dat:DataSourceKey><dat:InputParameters>{params}</dat:InputParameters>"
            "</dat:ExecuteDataSourceRequest></dat:ExecuteDataSource></soapenv:Body>"
            "</soapenv:Envelope>"
        )

    async def execute(
        self, datasource_id: int, inputs: Mapping[str, Any] | None = None
    ) -> DataSourceResult:
        """Run a datasource over SOAP; ``Error=true`` in an HTTP 200 answer raises."""
        response = await self.request(
            "POST",
            self.soap_url,
            content=self.envelope(datasource_id, dict(inputs or {})).encode("utf-8"),
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": f"{self.namespace}/ExecuteDataSource",
            },
            record=f"datasource {datasource_id}",
        )
        return self.parse(datasource_id, response.content)

    def stream_rows(
        self,
        datasource_id: int,
        start: datetime,
        end: datetime,
        *,
        begin_input: str,
        end_input: str,
        inputs: Mapping[str, Any] | None = None,
        window: timedelta,
        key: Callable[[dict[str, Any]], Hashable] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield a SOAP datasource's rows window by window (SOAP reports no row limit)."""

        async def run(values: Mapping[str, Any]) -> DataSourceResult:
            return await self.execute(datasource_id, values)

        return stream_windows(
            run,
            start,
            end,
            begin_input=begin_input,
            end_input=end_input,
            inputs=inputs,
            window=window,
            min_window=window,
            key=key,
        )

    def parse(self, datasource_id: int, content: bytes) -> DataSourceResult:
        """Parse an ``ExecuteDataSourceResult`` (with defusedxml); raise on ``Error=true``."""
        try:
            root = SafeET.fromstring(content)
        except (SafeET.ParseError, DefusedXmlException) as exc:
            # A DTD or entity in a SOAP answer is never legitimate: refuse it, never expand it.
            raise InvalidResponseError(
                f"Plex SOAP datasource {datasource_id} answered malformed or unsafe XML",
                body_excerpt=excerpt(content),
            ) from exc
        result = _find(root, "ExecuteDataSourceResult")
        if result is None:
            raise InvalidResponseError(
                f"Plex SOAP datasource {datasource_id} answered no ExecuteDataSourceResult",
                body_excerpt=excerpt(content),
            )
        if _text(result, "Error").lower() == "true":
            raise DataSourceError(
                f"Plex SOAP datasource {datasource_id} failed (HTTP 200 with Error=true): "
                f"ErrorNo {_text(result, 'ErrorNo') or '?'}: {_text(result, 'Message')}",
                record=f"datasource {datasource_id}",
                hint=(
                    f"look up instance {_text(result, 'InstanceNo') or '?'} in Plex; check the "
                    "inputs and that the web-service user may run this datasource"
                ),
            )
        parsed = DataSourceResult(
            datasource_id=datasource_id,
            rows=_soap_rows(result),
            outputs=_soap_outputs(result),
            transaction_no=_text(result, "InstanceNo") or None,
        )
        check_result_outputs(parsed)
        return parsed


def _row_key(row: dict[str, Any]) -> Hashable:
    return tuple(sorted((name, repr(value)) for name, value in row.items()))


def _soap_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return format_utc_z(value)
    return "" if value is None else str(value)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(node: Element, name: str) -> Element | None:
    for element in node.iter():
        if _local(element.tag) == name:
            return element
    return None


def _children(node: Element | None, name: str) -> list[Element]:
    if node is None:
        return []
    return [child for child in node if _local(child.tag) == name]


def _text(node: Element, name: str) -> str:
    for child in node:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


def _soap_rows(result: Element) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for result_set in _children(_first(result, "ResultSets"), "ResultSet"):
        for row in _children(_first(result_set, "Rows"), "Row"):
            columns = _children(_first(row, "Columns"), "Column")
            rows.append({_text(c, "Name"): _text(c, "Value") for c in columns})
    return rows


def _soap_outputs(result: Element) -> dict[str, Any]:
    params = _children(_first(result, "OutputParameters"), "OutputParameter")
    return {_text(p, "Name"): _text(p, "Value") for p in params}


def _first(node: Element | None, name: str) -> Element | None:
    found = _children(node, name)
    return found[0] if found else None
