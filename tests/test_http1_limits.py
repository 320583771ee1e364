"""backends/http1.py `Limits` (issue 10): an upstream's head and a body read whole are bounded, and the
connection is dropped the moment a bound is passed, on both asyncio and uvloop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backends import http1
from tests.test_http1 import Server, chunk, make_client, post, reply, server

LIMITS = http1.Limits(head_bytes=4096, headers=20, body_bytes=100_000)


def answer_once(data: bytes, then: bytes = b"", repeat: int = 0) -> Any:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(data)
        for _ in range(repeat):
            writer.write(then)
            await writer.drain()
        await reader.read()

    return handler


@pytest.mark.parametrize(("data", "then"), [
    (b"HTTP/1.1 200 OK\r\nX-Endless: ", b"a" * 1000),  # a header line that never ends
    (b"HTTP/1.1 200 OK\r\n", b"X-H: v\r\n"),  # headers that never end
])
def test_response_head_over_the_limit_fails(run: Any, data: bytes, then: bytes) -> None:
    srv = server(answer_once(data, then, repeat=10_000))

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url, limits=LIMITS)
            with pytest.raises(http1.ResponseTooLarge, match=r"response head over 4096|more than 20"):
                await post(client)
            await client.aclose()

    run(scenario())


def test_declared_body_over_the_limit_fails_before_reading(run: Any) -> None:
    srv = server(answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n{"))

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url, limits=LIMITS)
            resp = await post(client)
            with pytest.raises(http1.ResponseTooLarge, match="100000000 bytes declared"):
                await resp.read()
            await client.aclose()

    run(scenario())


def test_chunked_body_over_the_limit_fails_as_it_passes(run: Any) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    srv = server(answer_once(head, chunk(b"x" * 10_000), repeat=1000))

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url, limits=LIMITS)
            resp = await post(client)
            with pytest.raises(http1.ResponseTooLarge, match="body over 100000"):
                await resp.read()
            await asyncio.wait_for(srv.closed.wait(), 5)  # the connection was dropped, not drained
            await client.aclose()

    run(scenario())


def test_large_body_within_the_limit_is_one_buffer(run: Any) -> None:
    body = b"y" * (3 << 20)
    srv = server(answer_once(reply(body)))

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)  # default limits: 64 MiB
            resp = await post(client)
            got = await resp.read()
            assert got == body
            assert isinstance(got, bytearray)  # gathered in place, not joined from pieces at the end
            await client.aclose()

    run(scenario())


def test_content_encoding_is_reported(run: Any) -> None:
    srv = server(answer_once(reply(b"x", extra=b"Content-Encoding: GZIP\r\n")))

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            resp = await post(client)
            assert resp.content_encoding == b"gzip"
            await resp.read()
            await client.aclose()

    run(scenario())
