"""`ai-router demo`: the router in front of two simulated upstreams, so a fresh machine sees real routing.

A "local GPU" server (fast first token, slower tokens, free) and a "cloud" server (slower first token,
faster tokens, priced) start in-process on free ports; the router loads `config/demo.yaml` with their
addresses and serves on `--port`. It prints what to try with curl and with the openai SDK.
"""

from __future__ import annotations

import asyncio
import os
import sys
from importlib import resources
from pathlib import Path

from backends.simulated import Behavior, SimulatedUpstream
from router.config import Config, ConfigError, load
from router.server import install_uvloop, serve


def demo_config_path() -> Path:
    """The demo config shipped as package data (`router/data/demo.yaml`, a link to `config/demo.yaml` in
    the checkout), so the demo runs from an installed wheel in any directory."""
    p = Path(str(resources.files("router.data").joinpath("demo.yaml")))
    if not p.is_file():
        raise ConfigError(f"{p}: not found (the ai-router installation is incomplete)")
    return p


def _sdk_hint() -> str:
    try:
        import openai  # noqa: F401
    except ImportError:
        return f"\n  (the openai SDK is not installed here: {sys.executable} -m pip install openai)"
    return ""


def try_lines(port: int) -> str:
    url = f"http://127.0.0.1:{port}"
    python, sdk_hint = sys.executable, _sdk_hint()
    return f"""
ai-router demo is running on {url}  (Ctrl-C stops it)

  Upstreams: a simulated local GPU server (free) and a simulated cloud server (priced), both
  OpenAI-compatible. The router picks one per request; the x-router-* headers say which and why.

Try:
  curl -s {url}/v1/chat/completions -H 'content-type: application/json' \\
       -d '{{"model":"auto","messages":[{{"role":"user","content":"hi there!"}}]}}' -D - -o /dev/null | grep x-router
  curl -s {url}/v1/route -H 'content-type: application/json' \\
       -d '{{"model":"auto","messages":[{{"role":"user","content":"Prove that sqrt(2) is irrational."}}]}}'
  curl -sN {url}/v1/chat/completions -H 'content-type: application/json' \\
       -d '{{"model":"auto","stream":true,"messages":[{{"role":"user","content":"Tell me a joke"}}]}}'
  curl -s {url}/v1/models

  {python} -c "from openai import OpenAI; c = OpenAI(base_url='{url}/v1', api_key='unused'); \\
r = c.chat.completions.create(model='auto', messages=[{{'role':'user','content':'hello'}}]); \\
print(r.choices[0].message.content)"{sdk_hint}

  The Responses API, streamed from the local (chat-only) server: the router translates it
  {python} -c "from openai import OpenAI; c = OpenAI(base_url='{url}/v1', api_key='unused'); \\
s = c.responses.create(model='auto', input='hello', stream=True); \\
print(''.join(e.delta for e in s if e.type == 'response.output_text.delta'))"

  Anthropic's Messages API (Anthropic SDK clients, coding agents), answered by either kind of server:
  curl -s {url}/v1/messages -H 'content-type: application/json' \\
       -d '{{"model":"auto","max_tokens":100,"messages":[{{"role":"user","content":"hi there!"}}]}}'
"""


async def run_demo(port: int, host: str = "127.0.0.1") -> None:
    local = SimulatedUpstream("local-gpu", ["qwen3:8b", "qwen3:14b", "nomic-embed-text"],
                              Behavior(first_token_s=0.08, token_delay_s=0.02, reply_tokens=40))
    cloud = SimulatedUpstream("cloud", ["gpt-5-mini", "gpt-5-codex", "gpt-5", "text-embedding-3-small"],
                              Behavior(first_token_s=0.35, token_delay_s=0.01, reply_tokens=60))
    os.environ["AI_ROUTER_DEMO_LOCAL_URL"] = await local.start()
    os.environ["AI_ROUTER_DEMO_CLOUD_URL"] = await cloud.start()
    config: Config = load(demo_config_path())
    try:
        await serve(config, host, port, ready=lambda p: print(try_lines(p), flush=True))
    finally:
        await local.stop()
        await cloud.stop()


def main(port: int, host: str = "127.0.0.1") -> int:
    install_uvloop()
    asyncio.run(run_demo(port, host))
    return 0
