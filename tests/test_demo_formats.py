"""`ai-router demo` speaks every client's language: the commands it prints for the Responses API (streamed
through the chat-only local server) and for Anthropic's Messages API run as printed, and the Anthropic SDK
works against it too."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import anthropic
import pytest

from router.demo import try_lines
from tests.conftest import unused_port, wait_listening


@pytest.fixture(scope="module")
def demo() -> Iterator[int]:
    port = unused_port()
    proc = subprocess.Popen([sys.executable, "-m", "router", "demo", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(proc, port)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)


def printed_command(port: int, marker: str) -> str:
    """The shell command (with its continuation lines) that the demo prints, containing `marker`."""
    lines = try_lines(port).splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    while start > 0 and lines[start - 1].rstrip().endswith("\\"):
        start -= 1
    end = start
    while lines[end].rstrip().endswith("\\"):
        end += 1
    return "\n".join(lines[start : end + 1]).strip()


def test_printed_responses_stream_command_works(demo: int) -> None:
    cmd = printed_command(demo, "c.responses.create")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("[qwen3:8b on local-gpu]")


def test_printed_messages_command_works(demo: int) -> None:
    cmd = printed_command(demo, "/v1/messages")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    msg = json.loads(r.stdout)
    assert msg["type"] == "message"
    assert msg["content"][0]["text"].startswith("[qwen3:8b on local-gpu]")


def test_anthropic_sdk_against_the_demo(demo: int) -> None:
    c = anthropic.Anthropic(base_url=f"http://127.0.0.1:{demo}", api_key="unused", max_retries=0)
    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=20,
                           messages=[{"role": "user", "content": "hello"}]) as s:
        text = "".join(s.text_stream)
    assert text.startswith("[claude-sonnet-4-5 on cloud]")
