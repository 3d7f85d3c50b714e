"""The legacy SOAP 1.1 DataSource service: ``POST /DataSource/Service.asmx``.

Operations ``ExecuteDataSource`` (named ``InputParameter`` elements) and ``ExecuteDataSourcePost``
(delimited name and value strings, note Plex's spelling ``delimeter``), namespace
``http://www.plexus-online.com/DataSource``, HTTP Basic with a web-service user.

Like the real service, a failing datasource call (unknown datasource, bad or missing input, denied
access) is answered **HTTP 200** with ``<Error>true</Error>``, an ``ErrorNo`` and a ``Message``;
only bad credentials (401) and an unparsable envelope (500 SOAP fault) are HTTP errors. No row
limit is applied on this surface. The WSDL is served at ``?WSDL``.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mlconnector.sandbox.plex.auth import parse_basic
from mlconnector.sandbox.plex.datasources import DataSourceError, DataSourceService, Execution

NS = "http://www.plexus-online.com/DataSource"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PATH = "/DataSource/Service.asmx"

#: ErrorNo values by datasource error code (the real numbers are not documented)
_ERROR_NUMBERS = {
    "DATA_SOURCE_NOT_FOUND": 1001,
    "DATA_SOURCE_ACCESS_DENIED": 1002,
    "DATA_SOURCE_API_ACCESS_DENIED": 1002,
    "DATA_SOURCE_INPUT_REQUIRED": 1003,
    "DATA_SOURCE_INPUT_NOT_FOUND": 1004,
    "DATA_SOURCE_INPUT_TYPE_MISMATCH": 1005,
    "DATA_SOURCE_INPUT_FORMAT_INVALID": 1005,
    "DATA_SOURCE_INPUT_NOT_NULLABLE": 1003,
}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return escape(str(value))


def _child(element: Element, name: str) -> Element | None:
    for child in element:
        if child.tag.rsplit("}", 1)[-1].lower() == name.lower():
            return child
    return None


def _find(root: Element, name: str) -> Element | None:
    for element in root.iter():
        if element.tag == f"{{{NS}}}{name}":
            return element
    return None


def parse_request(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """``(operation, datasource key, inputs)`` from a SOAP envelope (names lose any ``@``)."""
    root = fromstring(body)
    post = _find(root, "ExecuteDataSourcePost")
    if post is not None:
        key = _child(post, "dataSourceKey")
        names = _child(post, "parameterNames")
        values = _child(post, "parameterValues")
        delimiter_el = _child(post, "delimeter")
        delimiter = (delimiter_el.text if delimiter_el is not None else "") or ","
        name_list = (names.text or "").split(delimiter) if names is not None else []
        value_list = (values.text or "").split(delimiter) if values is not None else []
        if len(name_list) != len(value_list):
            raise DataSourceError(
                400,
                "DATA_SOURCE_INPUT_FORMAT_INVALID",
                "parameterNames and parameterValues differ in count.",
            )
        posted: dict[str, Any] = {
            n.strip().lstrip("@"): v
            for n, v in zip(name_list, value_list, strict=True)
            if n.strip()
        }
        return "ExecuteDataSourcePost", (key.text or "").strip() if key is not None else "", posted
    call = _find(root, "ExecuteDataSource")
    if call is None:
        raise ValueError("no ExecuteDataSource or ExecuteDataSourcePost element in the body")
    request = _child(call, "ExecuteDataSourceRequest")
    holder = request if request is not None else call
    key = _child(holder, "DataSourceKey")
    inputs: dict[str, Any] = {}
    parameters = _child(holder, "InputParameters")
    for parameter in parameters if parameters is not None else []:
        name = _child(parameter, "Name")
        value = _child(parameter, "Value")
        if name is not None and name.text:
            inputs[name.text.strip().lstrip("@")] = value.text if value is not None else None
    return "ExecuteDataSource", (key.text or "").strip() if key is not None else "", inputs


def _envelope(operation: str, result: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f'<soap:Body><{operation}Response xmlns="{NS}"><{operation}Result>{result}'
        f"</{operation}Result></{operation}Response></soap:Body></soap:Envelope>"
    )


def render_success(operation: str, run: Execution, instance: str) -> str:
    outputs = "".join(
        f"<OutputParameter><Name>@{escape(name)}</Name><Value>{_text(value)}</Value></OutputParameter>"
        for name, value in run.result.outputs.items()
    )
    result_sets = ""
    if run.result.columns is not None:
        rows = "".join(
            "<Row><Columns>"
            + "".join(
                f"<Column><Name>{escape(col)}</Name><Value>{_text(val)}</Value></Column>"
                for col, val in zip(run.result.columns, row, strict=True)
            )
            + "</Columns></Row>"
            for row in run.rows
        )
        result_sets = (
            f"<ResultSet><RowCount>{len(run.rows)}</RowCount><Rows>{rows}</Rows></ResultSet>"
        )
    body = (
        f"<DataSourceKey>{run.datasource.id}</DataSourceKey>"
        f"<DataSourceName>{escape(run.datasource.name)}</DataSourceName>"
        "<Error>false</Error><ErrorNo>0</ErrorNo><Message>Success</Message>"
        f"<InstanceNo>{instance}</InstanceNo><StatusNo>0</StatusNo>"
        f"<OutputParameters>{outputs}</OutputParameters><ResultSets>{result_sets}</ResultSets>"
    )
    return _envelope(operation, body)


def render_error(operation: str, key: str, exc: DataSourceError, instance: str) -> str:
    body = (
        f"<DataSourceKey>{escape(key) or 0}</DataSourceKey><DataSourceName />"
        f"<Error>true</Error><ErrorNo>{_ERROR_NUMBERS.get(exc.code, 1000)}</ErrorNo>"
        f"<Message>{escape(exc.message)}</Message><InstanceNo>{instance}</InstanceNo>"
        "<StatusNo>1</StatusNo><OutputParameters /><ResultSets />"
    )
    return _envelope(operation, body)


def _fault(message: str) -> Response:
    xml = (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body>'
        f"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>{escape(message)}"
        "</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    )
    return Response(xml, status_code=500, media_type="text/xml; charset=utf-8")


def soap_routes(service: DataSourceService) -> list[Route]:
    """The SOAP endpoint and its WSDL."""

    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            if any(k.lower() == "wsdl" for k in request.query_params):
                return Response(wsdl(str(request.url.replace(query=""))), media_type="text/xml")
            return PlainTextResponse("Use POST for SOAP requests, or ?WSDL.", status_code=405)
        user = service.login(parse_basic(request.headers.get("authorization")))
        if user is None:
            return PlainTextResponse(
                "401 - Unauthorized: Access is denied due to invalid credentials.",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="api.plexonline.com"'},
            )
        instance = service.next_transaction()
        try:
            operation, key, inputs = parse_request(await request.body())
        except (ParseError, DefusedXmlException, ValueError) as exc:
            return _fault(f"Server was unable to read request: {exc}")
        except DataSourceError as exc:
            return Response(
                render_error("ExecuteDataSourcePost", "", exc, instance),
                media_type="text/xml; charset=utf-8",
            )
        try:
            run = service.execute(user, key, inputs, limit=False)
            xml = render_success(operation, run, instance)
        except DataSourceError as exc:
            xml = render_error(operation, key, exc, instance)
        return Response(xml, media_type="text/xml; charset=utf-8")

    return [Route(PATH, endpoint, methods=["GET", "POST"])]


def wsdl(location: str) -> str:
    """A WSDL describing the two operations (enough for a SOAP toolkit to build a client)."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
  xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:s="http://www.w3.org/2001/XMLSchema"
  xmlns:tns="{NS}" targetNamespace="{NS}">
  <wsdl:types>
    <s:schema elementFormDefault="qualified" targetNamespace="{NS}">
      <s:element name="ExecuteDataSource"><s:complexType><s:sequence>
        <s:element minOccurs="0" name="ExecuteDataSourceRequest"
          type="tns:ExecuteDataSourceRequest"/>
      </s:sequence></s:complexType></s:element>
      <s:complexType name="ExecuteDataSourceRequest"><s:sequence>
        <s:element name="DataSourceKey" type="s:int"/>
        <s:element minOccurs="0" name="InputParameters" type="tns:ArrayOfInputParameter"/>
        <s:element minOccurs="0" name="DataSourceName" type="s:string"/>
        <s:element minOccurs="0" name="DataBase" type="s:string"/>
      </s:sequence></s:complexType>
      <s:complexType name="ArrayOfInputParameter"><s:sequence>
        <s:element minOccurs="0" maxOccurs="unbounded" name="InputParameter"
          type="tns:InputParameter"/>
      </s:sequence></s:complexType>
      <s:complexType name="InputParameter"><s:sequence>
        <s:element minOccurs="0" name="Value" type="s:string"/>
        <s:element minOccurs="0" name="Name" type="s:string"/>
        <s:element minOccurs="0" name="DefaultValue" type="s:string"/>
        <s:element name="Required" type="s:boolean"/>
        <s:element name="Output" type="s:boolean"/>
        <s:element minOccurs="0" name="Message" type="s:string"/>
      </s:sequence></s:complexType>
      <s:element name="ExecuteDataSourceResponse"><s:complexType><s:sequence>
        <s:element minOccurs="0" name="ExecuteDataSourceResult" type="tns:DataSourceResult"/>
      </s:sequence></s:complexType></s:element>
      <s:element name="ExecuteDataSourcePost"><s:complexType><s:sequence>
        <s:element name="dataSourceKey" type="s:int"/>
        <s:element minOccurs="0" name="parameterNames" type="s:string"/>
        <s:element minOccurs="0" name="parameterValues" type="s:string"/>
        <s:element minOccurs="0" name="delimeter" type="s:string"/>
      </s:sequence></s:complexType></s:element>
      <s:element name="ExecuteDataSourcePostResponse"><s:complexType><s:sequence>
        <s:element minOccurs="0" name="ExecuteDataSourcePostResult" type="tns:DataSourceResult"/>
      </s:sequence></s:complexType></s:element>
      <s:complexType name="DataSourceResult"><s:sequence>
        <s:element name="DataSourceKey" type="s:int"/>
        <s:element minOccurs="0" name="DataSourceName" type="s:string"/>
        <s:element name="Error" type="s:boolean"/>
        <s:element name="ErrorNo" type="s:int"/>
        <s:element minOccurs="0" name="Message" type="s:string"/>
        <s:element name="InstanceNo" type="s:int"/>
        <s:element name="StatusNo" type="s:int"/>
        <s:element minOccurs="0" name="OutputParameters" type="tns:ArrayOfOutputParameter"/>
        <s:element minOccurs="0" name="ResultSets" type="tns:ArrayOfResultSet"/>
      </s:sequence></s:complexType>
      <s:complexType name="ArrayOfOutputParameter"><s:sequence>
        <s:element minOccurs="0" maxOccurs="unbounded" name="OutputParameter" type="tns:NameValue"/>
      </s:sequence></s:complexType>
      <s:complexType name="NameValue"><s:sequence>
        <s:element minOccurs="0" name="Name" type="s:string"/>
        <s:element minOccurs="0" name="Value" type="s:string"/>
      </s:sequence></s:complexType>
      <s:complexType name="ArrayOfResultSet"><s:sequence>
        <s:element minOccurs="0" maxOccurs="unbounded" name="ResultSet" type="tns:ResultSet"/>
      </s:sequence></s:complexType>
      <s:complexType name="ResultSet"><s:sequence>
        <s:element name="RowCount" type="s:int"/>
        <s:element minOccurs="0" name="Rows" type="tns:ArrayOfRow"/>
      </s:sequence></s:complexType>
      <s:complexType name="ArrayOfRow"><s:sequence>
        <s:element minOccurs="0" maxOccurs="unbounded" name="Row" type="tns:Row"/>
      </s:sequence></s:complexType>
      <s:complexType name="Row"><s:sequence>
        <s:element minOccurs="0" name="Columns" type="tns:ArrayOfColumn"/>
      </s:sequence></s:complexType>
      <s:complexType name="ArrayOfColumn"><s:sequence>
        <s:element minOccurs="0" maxOccurs="unbounded" name="Column" type="tns:NameValue"/>
      </s:sequence></s:complexType>
    </s:schema>
  </wsdl:types>
{_messages()}
  <wsdl:portType name="ServiceSoap">
{_port_operations()}
  </wsdl:portType>
  <wsdl:binding name="ServiceSoap" type="tns:ServiceSoap">
    <soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>
{_binding_operations()}
  </wsdl:binding>
  <wsdl:service name="Service">
    <wsdl:port name="ServiceSoap" binding="tns:ServiceSoap">
      <soap:address location="{escape(location)}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


_OPERATIONS = ("ExecuteDataSource", "ExecuteDataSourcePost")


def _messages() -> str:
    parts = []
    for op in _OPERATIONS:
        for suffix, element in (("SoapIn", op), ("SoapOut", f"{op}Response")):
            parts.append(
                f'  <wsdl:message name="{op}{suffix}">'
                f'<wsdl:part name="parameters" element="tns:{element}"/></wsdl:message>'
            )
    return "\n".join(parts)


def _port_operations() -> str:
    return "\n".join(
        f'    <wsdl:operation name="{op}"><wsdl:input message="tns:{op}SoapIn"/>'
        f'<wsdl:output message="tns:{op}SoapOut"/></wsdl:operation>'
        for op in _OPERATIONS
    )


def _binding_operations() -> str:
    body = '<soap:body use="literal"/>'
    return "\n".join(
        f'    <wsdl:operation name="{op}">'
        f'<soap:operation soapAction="{NS}/{op}" style="document"/>'
        f"<wsdl:input>{body}</wsdl:input><wsdl:output>{body}</wsdl:output></wsdl:operation>"
        for op in _OPERATIONS
    )
