"""Classification + the `auto` decision in CPU instructions (callgrind, in-process): a figure load cannot move.

    .venv/bin/python -m bench.classify_instructions [--requests 1000] [--tokens 300]
    .venv/bin/python -m bench.classify_instructions --time          # µs per request instead (wall clock)
    .venv/bin/python -m bench.classify_instructions --source /path/to/other/checkout   # another tree's code
    .venv/bin/python -m bench.classify_instructions --follow-up fresh   # a short follow-up after that message

Counted per request: what `classify` and `route` do for a `model: auto` chat request of the shipped config
(`Analyzer.features`: extraction, token estimate, classifier, difficulty; then `Policy.decide`), on the body
`bench.instructions` sends (`bench.targets`: a system prompt and a ~300-token user message with a fresh id, so
every text is new; `--tokens N` repeats the user text up to about N tokens). `--follow-up fresh` appends an
assistant answer and a short user follow-up to it (4 messages; the earlier ask is new every request, so its
thread is scored every time); `--follow-up retry` sends one such conversation again and again (fresh string
objects, as a parsed body has: the thread logit comes from the classifier's memo). 300 warm-up requests first,
then instrumentation on for `--requests` requests only (`callgrind_control`). Needs `valgrind` (Debian package).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WARMUP = 300


ANSWER = "Here is a plan in three stages, with a packing list and two wet-day alternatives for each stage."
FOLLOW_UP = "And what if I only had two days?"


def _work(tokens: int, follow_up: str = "") -> Any:
    """`run(first, n)`: classify and decide n fresh requests, ids from `first` on."""
    from bench.routing_report import DEFAULT_CONFIG, context_for
    from bench.targets import PROMPT
    from middleware.classify import build_analyzer
    from router.config import load
    from router.exchange import Exchange

    analyzer = build_analyzer(context_for(load(DEFAULT_CONFIG)))
    policy = analyzer.policy
    text = PROMPT  # ~300 tokens, ending in "Request @N@."
    head = PROMPT[: PROMPT.rindex(" Request @N@.")]
    while len(text) < tokens * 4:  # ~4 characters per token in this English prose
        text = head + " " + text

    def run(first: int, n: int) -> None:
        for i in range(first, first + n):
            ask = text.replace("@N@", str(0 if follow_up == "retry" else i))  # a new str object either way
            messages = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": ask}]
            if follow_up:
                messages += [{"role": "assistant", "content": (ANSWER + " ")[:-1]},
                             {"role": "user", "content": (FOLLOW_UP + " ")[:-1]}]
            body = {"model": "auto", "max_tokens": 256, "messages": messages}
            ex = Exchange("bench", "chat", body, None, {})
            f, _prompt = analyzer.features(ex)
            policy.decide(f, endpoint="chat", model=ex.client_model, headers={})

    return run


def _inner(requests: int, tokens: int, follow_up: str = "") -> None:
    run = _work(tokens, follow_up)
    run(0, WARMUP)
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    run(WARMUP, requests)
    subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)


def _time(requests: int, tokens: int, rounds: int = 5, follow_up: str = "") -> float:
    """Best of `rounds` wall-clock µs per request (after the warm-up)."""
    run = _work(tokens, follow_up)
    run(0, WARMUP)
    best = float("inf")
    for r in range(rounds):
        t0 = time.perf_counter()
        run(WARMUP + r * requests, requests)
        best = min(best, (time.perf_counter() - t0) / requests * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.classify_instructions", description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--tokens", type=int, default=300, help="about how long the user message is (default 300)")
    p.add_argument("--time", action="store_true", help="wall-clock µs per request (best of 5 rounds), no valgrind")
    p.add_argument("--follow-up", choices=("fresh", "retry"), default="",
                   help="a 4-message request: the message, an answer, a short follow-up (see above)")
    p.add_argument("--source", type=Path, help="measure another checkout's code (these bench files)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.inner:
        _inner(a.requests, a.tokens, a.follow_up)
        return 0
    root = a.source or Path(__file__).resolve().parent.parent
    shape = f", follow-up ({a.follow_up})" if a.follow_up else ""
    if a.time:
        sys.path.insert(0, str(root))
        us = _time(a.requests, a.tokens, follow_up=a.follow_up)
        print(f"classify + decide at ~{a.tokens} tokens{shape}: {us:.1f} µs per request (best of 5 x {a.requests})")
        return 0
    from bench.callgrind import available, dump_of, total_of  # not at the top: `--inner` may run another tree

    if not available():
        return 2
    here = Path(__file__).resolve().parent.parent
    follow = ["--follow-up", a.follow_up] if a.follow_up else []
    dump = dump_of(__file__, ["--requests", str(a.requests), "--tokens", str(a.tokens), *follow], root,
                   pythonpath=f"{root}{os.pathsep}{here}")
    if dump is None:
        return 1
    source = f"; from {a.source}" if a.source else ""
    print(f"classify + decide at ~{a.tokens} tokens{shape}: {total_of(dump) / a.requests / 1000:.1f}k instructions per "
          f"request ({a.requests} requests after {WARMUP} warm-up{source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
