"""The floor: a bare aiohttp + uvloop pass-through proxy, the in-run reference every target is held to.

It does what any Python proxy on this stack must do and nothing more: read the request body, POST it to
the upstream over a pooled keep-alive connection, and relay the answer (JSON read whole, SSE relayed chunk
by chunk as it arrives). No parsing, no logging. `--workers N` forks N processes sharing the port
(SO_REUSEPORT), for the multi-worker scaling reference.

    python -m bench.floor_proxy --port 9200 --upstream http://127.0.0.1:9100/v1 [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket

import aiohttp
import uvloop
from aiohttp import web

SSE = "text/event-stream"


def make_app(upstream: str) -> web.Application:
    """The pass-through app: every POST under /v1/ goes to `upstream` + the rest of the path."""
    app = web.Application()
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def on_startup(app: web.Application) -> None:
        app[session_key] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
        )

    async def on_cleanup(app: web.Application) -> None:
        await app[session_key].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        url = upstream + request.path[len("/v1") :]
        session = app[session_key]
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as up:
            ctype = up.headers.get("Content-Type", "")
            if not ctype.startswith(SSE):
                data = await up.read()
                return web.Response(body=data, status=up.status, headers={"Content-Type": ctype})
            resp = web.StreamResponse(status=up.status, headers={"Content-Type": ctype, "Cache-Control": "no-cache"})
            await resp.prepare(request)
            try:
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            except ConnectionResetError:  # the client left; closing `up` stops the upstream
                pass
            return resp

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/v1/{tail:.*}", proxy)
    app.router.add_get("/healthz", healthz)
    return app


def _serve(sock: socket.socket, upstream: str) -> None:
    web.run_app(make_app(upstream), sock=sock, access_log=None, print=None, handle_signals=True,
                loop=uvloop.new_event_loop())


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.floor_proxy", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9200)
    p.add_argument("--upstream", default="http://127.0.0.1:9100/v1")
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)
    upstream = a.upstream.rstrip("/")
    if a.workers <= 1:
        _serve(_bind(a.host, a.port), upstream)
        return
    children: list[int] = []
    for _ in range(a.workers):
        pid = os.fork()
        if pid == 0:  # each worker binds its own SO_REUSEPORT socket, so the kernel balances accepts
            _serve(_bind(a.host, a.port), upstream)
            os._exit(0)
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for c in children:
            os.kill(c, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for c in children:
        while True:
            try:
                os.waitpid(c, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue


if __name__ == "__main__":
    main()
