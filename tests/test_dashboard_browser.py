"""The dashboard in a real browser: headless chromium loads /dashboard on a router with keys and live
traffic (JSON, streams, promotions, errors), is asked for the admin key, then draws charts and numbers
that must be present and non-zero, with no script error and no CSP violation. The screenshot is saved
under the test's tmp dir (dashboard.png)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backends.simulated import Behavior
from tests.browser import Browser, chromium_path
from tests.conftest import Stack, make_config

ADMIN = "admin-key-for-the-browser-test"
CLIENT = "client-key-for-the-browser-test"
CHARTS = ("c-rps", "c-share", "c-latency", "c-ttft", "c-spend", "c-events")


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    chromium_path()  # fail (CI) or skip early, before starting anything
    monkeypatch.setenv("AI_ROUTER_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("BROWSER_CLIENT_KEY", CLIENT)
    stack = Stack(lambda lu, cu: make_config(
        lu, cu, auth={"keys": [{"name": "web", "key_env": "BROWSER_CLIENT_KEY", "tenant": "acme/web"}]},
        tenants=[{"match": "acme/*", "budget": {"daily_usd": 0.01}}])).start()
    stack.local.behavior = Behavior(first_token_s=0.02, token_delay_s=0.002)
    stack.cloud.behavior = Behavior(first_token_s=0.05, token_delay_s=0.001)
    yield stack
    stack.stop()


def _traffic(stack: Stack, stop: threading.Event) -> None:
    """Mixed requests until `stop`: local and cloud, JSON and streams, a promotion now and then, an error."""
    headers = {"authorization": f"Bearer {CLIENT}"}
    prompts = ["hello there", "Write a Python function that merges two sorted lists and explain its complexity.",
               "What is 2+2?", "Summarise the plot of Hamlet in two sentences."]
    i = 0
    with httpx.Client(timeout=10, headers=headers) as c:
        while not stop.is_set():
            i += 1
            model = "gpt-5-mini" if i % 4 == 0 else "auto"
            if i % 7 == 0:
                stack.local.behavior.fail_status, stack.local.behavior.fail_times = 500, 1  # a promotion
            body = {"model": model, "stream": i % 3 == 0,
                    "messages": [{"role": "user", "content": prompts[i % len(prompts)]}]}
            if i % 11 == 0:
                c.post(stack.url + "/v1/chat/completions", content=b"{broken")  # an error
            c.post(stack.url + "/v1/chat/completions", json=body)
            stop.wait(0.03)


def test_dashboard_in_chromium(router: Stack, tmp_path: Path) -> None:
    stop = threading.Event()
    feeder = threading.Thread(target=_traffic, args=(router, stop), daemon=True)
    feeder.start()
    try:
        asyncio.run(_check(router, tmp_path))
    finally:
        stop.set()
        feeder.join(10)


async def _check(router: Stack, tmp_path: Path) -> None:
    browser = await Browser(tmp_path / "profile").start()
    try:
        await browser.goto(router.url + "/dashboard?refresh=400")
        # Keys are configured: the page asks for the admin key first.
        await browser.wait_for("!document.getElementById('keyform').hidden")
        assert await browser.js("document.getElementById('main').hidden") is True
        await browser.js(f"document.getElementById('key').value = {ADMIN!r};"
                         "document.getElementById('keyform').requestSubmit(); true")
        await browser.wait_for("Number(document.body.dataset.updates || 0) >= 6", within=30)
        for chart in CHARTS:  # every chart drew data points
            points = await browser.wait_for(f"Number(document.getElementById('{chart}').dataset.points) || 0")
            assert points > 0, chart
        await browser.wait_for("Number(document.getElementById('c-events').dataset.points) > 4")
        numbers = await browser.js(
            "Object.fromEntries([...document.querySelectorAll('.card .value')].map(e => [e.id, e.textContent]))")
        for name in ("n-requests", "n-rps", "n-cost", "n-savings", "n-promotions", "n-errors"):
            value = float(numbers[name].replace(",", "").replace("%", "").strip())
            assert value > 0, (name, numbers)
        assert 0 < float(numbers["n-local"].rstrip(" %")) < 100
        states = await browser.js("[...document.querySelectorAll('.backend')].map(e => e.dataset.state)")
        assert sorted(states) in (["closed", "closed"], ["closed", "open"], ["open", "closed"])
        rows = await browser.js("document.querySelectorAll('#decisions tbody tr').length")
        assert rows >= 10
        reasons = await browser.js("document.querySelector('#decisions tbody td.reasons').textContent")
        assert reasons
        # The canvases really hold pixels (not blank).
        inked = await browser.js(
            "(() => { const c = document.getElementById('c-rps'); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
            " for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()")
        assert inked > 500
        await asyncio.sleep(1.2)  # a few more refreshes, so the charts have a history
        shot = await browser.screenshot(tmp_path / "dashboard.png")
        assert shot.stat().st_size > 20_000
        asked = f"401 (Unauthorized) ({router.url}/dashboard/stats)"  # the first poll, before the key was given
        assert [e for e in browser.errors if not e.endswith(asked)] == []  # no script error, no CSP violation
    finally:
        await browser.close()
