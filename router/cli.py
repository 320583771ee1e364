"""The `ai-router` command: serve, demo, check a config, dry-run a routing decision, calibrate, report spend.

    ai-router serve [--config FILE] [--host H] [--port 8082] [--workers N]
    ai-router demo [--port 8082]
    ai-router check FILE                       exit 2 with the failing key path on a bad config
    ai-router route [--config FILE] "prompt" | --file req.json
    ai-router calibrate FILE.jsonl --cloud-share 0.3 [--config FILE]   the complexity_cuts for that share
    ai-router spend [--config FILE] [--tenant T] [--window day|month]
    ai-router --version
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from router import __version__
from router.auth import KeyRing
from router.config import Config, ConfigError, default_path, load
from router.errors import ProxyError
from router.exchange import Exchange, Features
from router.observe.logs import setup_logging
from router.pipeline import Pipeline
from router.validate import check

PROGRESS_BYTES = 1 << 20  # calibrate shows progress on files bigger than this (or on a terminal)


def _load(path: str | None) -> Config:
    return load(path or default_path())


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    setup_logging(config.logging.level, config.logging.format)
    host = args.host or config.server.host
    KeyRing(config.auth, config.pipeline, config.routing.tiers).exposure(host)  # refuse an open public port
    port = config.server.port if args.port is None else args.port
    workers = args.workers or config.server.workers
    if workers > 1:
        from router.workers import run_workers

        return run_workers(config, host, port, workers)
    from router.server import run_worker

    run_worker(config, host, port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from router.demo import main

    setup_logging("info")
    return main(args.port)


def cmd_check(args: argparse.Namespace) -> int:
    from router.server import RouterService

    config = load(args.file)
    service = RouterService(config)  # builds backends, catalog and every stage: full validation
    print(f"{args.file}: OK — {len(config.backends)} backends, {len(service.catalog.all)} models, "
          f"tiers {', '.join(config.routing.tiers)}, pipeline {', '.join(config.pipeline)}")
    return 0


def preview(config: Config, body: dict[str, Any]) -> dict[str, Any]:
    """The routing decision for `body`, as `POST /v1/route` answers it, without calling any upstream."""
    from router.server import RouterService

    service = RouterService(config)
    stages = [s for s in service.pipeline.stages if s.name != "auth"]  # the operator needs no client key
    pipeline = Pipeline(stages, service.dispatch)
    check("chat", body)
    ex = Exchange(uuid.uuid4().hex, "chat", body, None, CIMultiDictProxy(CIMultiDict()))
    ex.dry_run = True
    reply = asyncio.run(pipeline(ex))
    assert reply.body is not None
    return orjson.loads(reply.body)  # type: ignore[no-any-return]


def cmd_route(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if args.file:
        with open(args.file, "rb") as f:
            body = orjson.loads(f.read())
    elif args.prompt:
        body = {"model": "auto", "messages": [{"role": "user", "content": args.prompt}]}
    else:
        print("ai-router route: give a prompt or --file req.json", file=sys.stderr)
        return 2
    print(orjson.dumps(preview(config, body), option=orjson.OPT_INDENT_2).decode())
    return 0


def read_requests(path: str) -> Iterator[tuple[str, dict[str, Any] | None, float]]:
    """(endpoint, body or None for a line that is not a request, fraction of the file read) per line of a JSONL
    file of public_prompts.jsonl records or plain request bodies (chat `messages`, completions `prompt`,
    Responses `input`)."""
    size = os.path.getsize(path) or 1
    done = 0
    with open(path, "rb") as f:
        for line in f:
            done += len(line)
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield "chat", None, done / size
                continue
            if not isinstance(obj, dict):
                yield "chat", None, done / size
            elif isinstance(obj.get("messages"), list):
                yield "chat", {"model": "auto", "messages": obj["messages"], **_shape_keys(obj)}, done / size
            elif isinstance(obj.get("prompt"), str):
                yield "chat", {"model": "auto", "messages": [{"role": "user", "content": obj["prompt"]}]}, done / size
            elif "input" in obj:
                yield "responses", {**obj, "model": "auto"}, done / size
            else:
                yield "chat", None, done / size


def _shape_keys(obj: dict[str, Any]) -> dict[str, Any]:
    """The request fields besides messages that classification reads (tools, JSON mode, max_tokens)."""
    keys = ("tools", "response_format", "max_tokens", "max_completion_tokens")
    return {k: obj[k] for k in keys if k in obj}


def cmd_calibrate(args: argparse.Namespace) -> int:
    from middleware.route import RouteStage
    from router.routing.calibrate import calibrate
    from router.server import RouterService

    if not 0.0 <= args.cloud_share <= 1.0:
        print("ai-router calibrate: --cloud-share must be between 0 and 1", file=sys.stderr)
        return 2
    config = _load(args.config)
    service = RouterService(config)
    route = next((s for s in service.pipeline.stages if isinstance(s, RouteStage)), None)
    if route is None:
        print("ai-router calibrate: the config's pipeline has no route stage", file=sys.stderr)
        return 2
    analyzer, policy = route.analyzer, route.policy
    features = []
    bodies: list[tuple[str, dict]] = []
    skipped = 0
    progress = sys.stderr.isatty() or os.path.getsize(args.file) > PROGRESS_BYTES
    last = time.monotonic()
    for endpoint, body, fraction in read_requests(args.file):
        if body is None:
            skipped += 1
            continue
        try:
            check(endpoint, body)
            features.append(analyzer.features(Exchange("calibrate", endpoint, body, None, {}))[0])
            bodies.append((endpoint, body))
        except ProxyError:
            skipped += 1
        if progress and time.monotonic() - last > 0.5:
            last = time.monotonic()
            print(f"\r  {len(features):,} prompts classified ({fraction:.0%})", end="", file=sys.stderr, flush=True)
    if progress:
        print(f"\r  {len(features):,} prompts classified (100%)", file=sys.stderr)
    if not features:
        print(f"ai-router calibrate: no requests in {args.file} ({skipped} lines skipped)", file=sys.stderr)
        return 2

    def to_cloud(f: Features) -> bool:
        try:
            d = policy.decide(f, endpoint="chat", model="auto")
        except ProxyError:
            return False
        return d.primary.model.location == "cloud"

    now = config.routing.complexity_cuts
    result = calibrate(features, to_cloud, args.cloud_share, now)
    lo, hi = result.cuts
    share = result.share
    if result.cuts != now:  # the share the new cuts really give: a difficulty scored at an estimated token count
        # can move when routing counts exactly because a new cut lies within the estimate's band
        config.routing.complexity_cuts = result.cuts
        route = next(s for s in RouterService(config).pipeline.stages if isinstance(s, RouteStage))
        analyzer, policy = route.analyzer, route.policy
        share = sum(to_cloud(analyzer.features(Exchange("calibrate", e, b, None, {}))[0]) for e, b in bodies)
        share /= len(bodies)
    print(f"{result.requests} prompts from {args.file}" + (f" ({skipped} lines skipped)" if skipped else ""))
    print(f"now:     complexity_cuts [{now[0]:g}, {now[1]:g}] send {result.configured_share:.1%} to cloud")
    print(f"for {args.cloud_share:.0%}: complexity_cuts [{lo:g}, {hi:g}] send {share:.1%} to cloud")
    print(f"\nrouting:\n  complexity_cuts: [{lo:g}, {hi:g}]")
    return 0


def cmd_spend(args: argparse.Namespace) -> int:
    from router.spend import print_report, report
    from router.state import open_store
    from router.tenants import Tenants

    config = _load(args.config)
    if config.state_url.startswith("memory://"):
        print("state.url is memory://: spend lives in the running router only; use GET /admin/spend",
              file=sys.stderr)
        return 2
    tenants = Tenants(config)

    async def run() -> dict[str, Any]:
        store = open_store(config.state_url)
        await store.start()
        try:
            return await report(store, tenants, args.window, args.tenant)
        finally:
            await store.aclose()

    print(f"reading {config.state_url} …", file=sys.stderr)
    print(print_report(asyncio.run(run())))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ai-router", description="OpenAI-compatible cost-aware LLM router")
    p.add_argument("--version", action="version", version=f"ai-router {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the proxy")
    s.add_argument("--config", help="config file (default: $AI_ROUTER_CONFIG, else config/router.yaml)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int)
    s.set_defaults(func=cmd_serve)
    d = sub.add_parser("demo", help="run the proxy with two simulated upstreams")
    d.add_argument("--port", type=int, default=8082)
    d.set_defaults(func=cmd_demo)
    c = sub.add_parser("check", help="validate a config file")
    c.add_argument("file")
    c.set_defaults(func=cmd_check)
    r = sub.add_parser("route", help="dry run: print the routing decision for a prompt")
    r.add_argument("--config")
    r.add_argument("--file", help="a JSON chat completions request body")
    r.add_argument("prompt", nargs="?")
    r.set_defaults(func=cmd_route)
    cal = sub.add_parser("calibrate", help="the routing.complexity_cuts that send about a share of prompts to cloud")
    cal.add_argument("file", help="JSONL: public_prompts.jsonl records or request bodies, one per line")
    cal.add_argument("--cloud-share", type=float, required=True, help="wanted share of requests on cloud, 0..1")
    cal.add_argument("--config")
    cal.set_defaults(func=cmd_calibrate)
    sp = sub.add_parser("spend", help="spend, remaining budget and savings per tenant, from the state store")
    sp.add_argument("--config")
    sp.add_argument("--tenant")
    sp.add_argument("--window", choices=("day", "month"), default="day")
    sp.set_defaults(func=cmd_spend)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except ProxyError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    except (OSError, orjson.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
