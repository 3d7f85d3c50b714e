"""Server limits on a real loopback uvicorn (``server_config``), probed with raw sockets:
slow-header and slow-body clients are cut off, idle connections too, oversized headers refused
(arriving whole, in pieces, or pipelined behind a request), and ordinary keep-alive and pipelined
requests still work."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from mlconnector.clock import FakeClock
from mlconnector.config import Config, WebSettings
from mlconnector.store import Vault, generate_key, open_store
from mlconnector.web import create_web_app, server_config

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
#: how long the slow clients would keep dripping if nobody cut them off
DRIP_FOR = 10 * HEADER_TIMEOUT


@pytest.fixture(params=["httptools", "h11"])
async def port(
    request: pytest.FixtureRequest, tmp_path: Path, fake_clock: FakeClock
) -> AsyncIterator[int]:
    """The app served by uvicorn with ``server_config`` on an ephemeral loopback port, with
    each HTTP parser (httptools is the default)."""
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path / 't.db'}",
        clock=fake_clock,
        vault=Vault([generate_key()], source="a test key"),
    )
    web = WebSettings(
        header_timeout_seconds=HEADER_TIMEOUT,
        body_timeout_seconds=BODY_TIMEOUT,
        keep_alive_seconds=2,
        max_header_bytes=4096,
    )
    app = create_web_app(store=store, config=Config(home=tmp_path, web=web), clock=fake_clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(app, web, parser=request.param))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        sock.close()
        await store.close()


async def drip_until_closed(port: int, first: bytes, drip: bytes) -> float | None:
    """Send ``first``, then ``drip`` every 0.1 s for :data:`DRIP_FOR` seconds; the seconds after
    which the server closed the connection, or ``None`` when it never did."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(first)
        await writer.drain()
        while time.monotonic() - started < DRIP_FOR:
            try:
                data = await asyncio.wait_for(reader.read(1024), timeout=0.1)
            except TimeoutError:
                writer.write(drip)
                await writer.drain()
                continue
            if data == b"":
                return time.monotonic() - started
        return None
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - started
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_slow_header_clients_are_cut_off(port: int) -> None:
    # 50 clients, each still sending headers one line at a time when the server gives up
    closed = await asyncio.gather(
        *(
            drip_until_closed(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-a: b\r\n")
            for _ in range(50)
        )
    )
    print(f"slow-header clients closed after {min(closed or [0]):.2f}-{max(closed or [0]):.2f} s")  # type: ignore[type-var]
    assert all(seconds is not None for seconds in closed)  # nobody could drip for 10 s


async def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    after = await drip_until_closed(port, b"", b"")
    assert after is not None


async def test_a_slow_body_is_cut_off(port: int) -> None:
    # the login form reads its body (1,000 bytes announced, one sent every 0.1 s)
    head = (
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
    )
    after = await drip_until_closed(port, head, b"a")
    assert after is not None


async def test_oversized_headers_are_refused(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-big: " + b"a" * 8000 + b"\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")


async def test_oversized_headers_sent_in_pieces_are_refused(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-big: ")
    for _ in range(5):  # one header value growing past 4096 bytes, never finished
        await asyncio.sleep(0.05)  # separate reads on the server
        writer.write(b"a" * 1000)
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"Request headers over 4096 bytes." in answer


async def test_an_oversized_head_pipelined_behind_a_request_is_refused(
    request: pytest.FixtureRequest, port: int
) -> None:
    if request.node.callspec.params["port"] == "h11":
        pytest.skip("the h11 guard checks only a head that starts a read (h11 is not the default)")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    small = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    big = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-big: " + b"a" * 8000 + b"\r\n\r\n"
    writer.write(small + big)  # one read: the second head is behind the first
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert answer.count(b"HTTP/1.1 200") <= 1
    assert b"HTTP/1.1 400" in answer


async def test_pipelined_requests_are_served(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 3)
        await writer.drain()
        for _ in range(3):
            status = await asyncio.wait_for(reader.readline(), timeout=5)
            assert status.startswith(b"HTTP/1.1 200")
            headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            length = int(headers.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
    finally:
        writer.close()


async def test_ordinary_keep_alive_requests_are_served(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(2):  # two requests on one connection, the second after a pause
            writer.write(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), timeout=5)
            assert status.startswith(b"HTTP/1.1 200")
            headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            length = int(headers.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            await asyncio.sleep(HEADER_TIMEOUT + 0.3)  # idle longer than the header timeout
    finally:
        writer.close()


async def test_a_wrong_master_key_stops_serve_and_run_at_start_with_the_reason(
    tmp_path: Path,
) -> None:
    from cryptography.fernet import Fernet

    from tests.integration.test_cli_subprocess import clean_env, mlconnector

    env = clean_env(tmp_path) | {"MLCONNECTOR_WEB__PORT": str(free_port())}
    assert (await mlconnector(env, "init"))[0] == 0
    assert (await mlconnector(env, "connections", "add", "acme", "--pcn", "340884"))[0] == 0
    stored = await mlconnector(
        env, "credentials", "set", "shipstation", "--connection", "acme", "--stdin",
        stdin="v1_key=k-1234567890abcdef\nv1_secret=s-1234567890abcdef\nv2_key=v-1234567890ab\n",
    )  # fmt: skip
    assert stored[0] == 0, stored
    wrong = env | {"MLCONNECTOR_MASTER_KEY": Fernet.generate_key().decode()}
    for command in ("serve", "run"):
        code, out, err = await mlconnector(wrong, command)  # returns: nothing was served
        assert code == 1, (out, err)
        text = " ".join((out + err).split())
        assert f"`{command}` did not start: cannot decrypt credential acme/" in text
        assert "MLCONNECTOR_MASTER_KEY" in text  # where the key came from / what to do
        assert "web: http://" not in out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
