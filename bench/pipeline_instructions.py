"""The server's request handler and the pipeline in CPU instructions (callgrind, in-process, no sockets).

`bench.instructions` counts a whole router process under load, aiohttp and the kernel's socket calls
included, one stage's share only by difference of two ~30 s runs. This counts just what the router adds
on top of aiohttp: `Handlers.proxy` (parse and check the body, the Exchange, the pipeline, the answer's
headers, metrics and the access line) for `bench.targets`' `full` config and body (a fresh id each
request), over a backend whose `send` answers at once with the mock upstream's JSON and usage (what the
OpenAI adapter does after its HTTP call: usage, cost). `--without STAGE` drops a stage (and its tenant
section) as `bench.instructions --ablate` does, `--without metrics` / `--without accesslog` the
observability, so one stage's cost is a difference of two runs of a few seconds each.

    .venv/bin/python -m bench.pipeline_instructions [--requests 2000] [--without budget] [--without metrics]
    .venv/bin/python -m bench.pipeline_instructions --source /path/to/other/checkout   # another tree

Needs `valgrind` (Debian package). Runs itself under callgrind, instrumentation on only for the counted
requests (toggled with `callgrind_control`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

WARMUP = 300
SECTIONS = {"budget": "budget", "ratelimit": "limits", "redact": "redact"}  # stage -> its tenant section
ANSWER = (b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-mini",'
          b'"choices":[{"index":0,"message":{"role":"assistant","content":"Here is a practical three day plan '
          b'for your walk, with a short checklist at the end."},"finish_reason":"stop"}],'
          b'"usage":{"prompt_tokens":320,"completion_tokens":180,"total_tokens":500}}')


class FakeRequest:
    """What `Handlers.proxy` reads of an aiohttp request for a JSON answer."""

    __slots__ = ("_body", "content_length", "headers", "path")

    def __init__(self, body: bytes, headers: Any) -> None:
        self._body = body
        self.content_length = len(body)
        self.headers = headers
        self.path = "/v1/chat/completions"

    async def read(self) -> bytes:
        return self._body


def _config(without: list[str]) -> dict[str, Any]:
    from bench.targets import FULL_PIPELINE, router_config

    cfg = router_config("full", 9)
    for b in cfg["backends"]:
        b["health"] = {"probe": "off"}
    for w in without:
        if w == "metrics":
            cfg["metrics"] = {"enabled": False}
        elif w == "accesslog":
            cfg["logging"] = {"level": "info", "access_log": False}
        else:
            cfg["pipeline"] = [s for s in cfg.get("pipeline", FULL_PIPELINE) if s != w]
            if w in SECTIONS:
                for tenant in cfg.get("tenants", []):
                    tenant.pop(SECTIONS[w], None)
            if w == "cache":
                cfg.pop("cache", None)
    return cfg


def _control(*args: str) -> None:
    """callgrind_control on this process (blocking on purpose: nothing else may run meanwhile)."""
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


def _inner(requests: int, without: list[str]) -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    from bench.targets import BENCH_KEY, KEY_ENV, Target
    from router.config import parse
    from router.cost import usage_cost
    from router.exchange import Reply
    from router.server import Handlers, RouterService, create_app
    from router.sse import find_usage, truncated

    os.environ[KEY_ENV] = BENCH_KEY
    json_headers = {"Content-Type": "application/json"}

    async def send(ex: Any, target: Any, first_token_s: float | None = None) -> Reply:
        body = ANSWER
        usage = ex.usage = find_usage(body)
        ex.truncated = truncated(body)
        if usage is not None:
            ex.cost_usd = usage_cost(ex, target.model)
        return Reply(200, json_headers, body=body)

    async def main() -> None:
        svc = RouterService(parse(_config(without)))
        for b in svc.backends.values():
            b.send = send  # type: ignore[method-assign]
        app = create_app(svc)
        await svc.start()
        handlers = Handlers(app)
        headers = CIMultiDictProxy(CIMultiDict({"Host": "bench", "Content-Type": "application/json",
                                                "Authorization": f"Bearer {BENCH_KEY}"}))
        template = Target("full", 0, model="auto").body(False)

        def bodies(n: int, start: int) -> list[FakeRequest]:
            return [FakeRequest(template.replace(b"@N@", b"%d-%06x" % (i, (i * 2654435761) & 0xFFFFFF)), headers)
                    for i in range(start + n - 1, start - 1, -1)]

        async def run(reqs: list[FakeRequest]) -> None:
            for r in reqs:
                resp = await handlers.proxy(r)  # type: ignore[arg-type]
                if resp.status != 200:
                    raise RuntimeError(f"unexpected answer {resp.status}: {resp.body!r}")

        await run(bodies(WARMUP, requests))
        counted = bodies(requests, 0)
        gc.collect()
        gc.freeze()  # as `serve` does: the collector never rescans what start-up made, and runs 30x less often
        gc.set_threshold(20_000, 50, 100)
        _control("-i", "on")
        await run(counted)
        _control("-d")
        _control("-i", "off")
        svc.observer.close()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline_instructions", description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--without", action="append", default=[],
                   help="a stage (auth, ratelimit, redact, cache, budget), metrics or accesslog; repeatable")
    p.add_argument("--source", type=Path, help="measure the router of another checkout (its code, these packages)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.inner:
        _inner(a.requests, a.without)
        return 0
    from bench.callgrind import available, dump_of, total_of  # not at the top: `--inner` may run another tree

    if not available():
        return 2
    root = a.source or Path(__file__).resolve().parent.parent
    args = ["--requests", str(a.requests)]
    for w in a.without:
        args += ["--without", w]
    dump = dump_of(__file__, args, root)  # its stderr (the access lines, any error) shown only on failure
    if dump is None:
        return 1
    label = "full" + "".join(f" without {w}" for w in a.without)
    print(f"{label}: {total_of(dump) / a.requests / 1000:.1f}k instructions per request ({a.requests} requests "
          f"after {WARMUP} warm-up{f'; from {a.source}' if a.source else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
