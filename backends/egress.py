"""Egress through a corporate proxy: which proxy an upstream needs, and the connection through it.

`proxy_for(base_url, setting)` decides once per backend (at start): a backend's own `proxy:` wins (a URL, or
`direct`); otherwise the environment, as curl and Go read it: `HTTPS_PROXY` for https upstreams,
`HTTP_PROXY` for http ones (upper or lower case; `ALL_PROXY` as the fallback), skipped for hosts in
`NO_PROXY` (`*`, exact names, domain suffixes with or without a leading dot, IP addresses, CIDR ranges,
`host:port`) and, like Go, for `localhost` and loopback addresses (local model servers).

`connect(...)` opens one upstream connection through it (backends/http1.py calls it in place of a direct
connect): for https upstreams a `CONNECT host:port` tunnel, then TLS to the upstream itself through the
tunnel (certificate checked against the upstream's name, with the backend's `ca_file` if set); for http
upstreams a plain connection to the proxy, which then gets absolute-form request targets. Credentials in
the proxy URL (`http://user:pass@proxy:3128`) go as `Proxy-Authorization: Basic`; they never appear in
errors or logs.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

DIRECT = "direct"
MAX_CONNECT_REPLY = 16384


class ProxyRefused(OSError):
    """The proxy answered the CONNECT with something other than 2xx."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None = None  # the Proxy-Authorization header value

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_proxy(url: str) -> Proxy:
    """`http://[user:pass@]host[:port]` (port 3128 when absent, as squid's); ValueError otherwise."""
    u = urlsplit(url if "://" in url else "http://" + url)
    if u.scheme != "http" or not u.hostname:
        raise ValueError("expected http://[user:password@]host:port (a TLS connection to the proxy itself "
                         "is not supported)")
    try:
        port = u.port or 3128
    except ValueError:
        raise ValueError("invalid port") from None
    auth = None
    if u.username is not None:
        raw = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
        auth = "Basic " + base64.b64encode(raw).decode()
    return Proxy(u.hostname, port, auth)


def proxy_for(base_url: str, setting: str | None, env: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy a backend at `base_url` goes through, or None for a direct connection."""
    if setting is not None:
        return None if setting in ("", DIRECT) else parse_proxy(setting)
    env = os.environ if env is None else env
    u = urlsplit(base_url)
    host = u.hostname or ""
    scheme = u.scheme or "http"
    port = u.port or (443 if scheme == "https" else 80)
    names = ("HTTPS_PROXY", "https_proxy") if scheme == "https" else ("HTTP_PROXY", "http_proxy")
    url = next((env[n] for n in (*names, "ALL_PROXY", "all_proxy") if env.get(n)), None)
    if not url or _is_loopback(host) or bypassed(host, port, env.get("NO_PROXY") or env.get("no_proxy") or ""):
        return None
    return parse_proxy(url)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Does NO_PROXY exempt this host (and port)?"""
    host = host.strip("[]").lower()
    try:
        ip: Any = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, want_port = entry, None
        if entry.count(":") == 1:  # host:port (an IPv6 entry has several colons)
            name, _, p = entry.partition(":")
            want_port = int(p) if p.isdigit() else None
        if want_port is not None and want_port != port:
            continue
        name = name.strip("[]")
        if ip is not None and "/" in name:
            try:
                if ip in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        suffix = name.lstrip(".").lstrip("*.")
        if host == suffix or host.endswith("." + suffix):
            return True
    return False


# ---------------------------------------------------------------- connecting through it


class _Tunnel(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT; then the TLS layer takes the transport over."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.established: asyncio.Future[None] = loop.create_future()
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        if self.established.done():
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_CONNECT_REPLY:
                self.established.set_exception(ProxyRefused("the proxy's answer to CONNECT is too long"))
            return
        status_line = self.buf[: self.buf.find(b"\r\n")].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit() or not parts[0].startswith("HTTP/"):
            self.established.set_exception(ProxyRefused(f"the proxy's answer is not HTTP: {status_line[:60]!r}"))
        elif not 200 <= int(parts[1]) < 300:
            self.established.set_exception(ProxyRefused(f"the proxy refused CONNECT: {status_line[9:80]}"))
        else:
            self.established.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.established.done():
            self.established.set_exception(ProxyRefused("the proxy closed the connection during CONNECT"))


def connect_request(host: str, port: int, authorization: str | None) -> bytes:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if authorization:
        head += f"Proxy-Authorization: {authorization}\r\n"
    return (head + "\r\n").encode()


async def connect(
    loop: asyncio.AbstractEventLoop,
    proxy: Proxy,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    factory: Callable[[], asyncio.Protocol],
) -> asyncio.Protocol:
    """A connection to `host:port` through `proxy`, made by `factory`'s protocol (already connected)."""
    if ssl_context is None:  # plain HTTP: the proxy is the peer; requests carry absolute-form targets
        _, proto = await loop.create_connection(factory, proxy.host, proxy.port)
        return proto
    transport, tunnel = await loop.create_connection(lambda: _Tunnel(loop), proxy.host, proxy.port)
    try:
        transport.write(connect_request(host, port, proxy.authorization))
        await tunnel.established
        tls = await loop.start_tls(transport, tunnel, ssl_context, server_hostname=host)
    except BaseException:
        transport.abort()
        raise
    if tls is None:  # the loop closed it meanwhile
        raise ProxyRefused("the tunnel closed during the TLS handshake")
    proto = factory()
    tls.set_protocol(proto)
    proto.connection_made(tls)
    return proto
