"""The `redact` stage's work in CPU instructions (callgrind, in-process): a before/after figure load cannot move.

    .venv/bin/python -m bench.redaction_instructions [--what redact|scan|pass] [--requests 1000]
    .venv/bin/python -m bench.redaction_instructions --text typical --tokens 50000 --requests 20
    .venv/bin/python -m bench.redaction_instructions --source /path/to/other/checkout   # the same, another tree

The body is the one `bench.instructions` sends (`bench.targets`: a system prompt and a ~300-token user
message that ends in a fresh `N-hexhex` id, so every request's text is new, as in the server benchmark:
ids counting down, 300 warm-up requests first). Counted, per request: `redact` is
`BodyRedactor.redact(body, raw)` as the stage calls it (the whole-body pass, else the walk, the scans, the
memo), `scan` the user text's `Scanner.scan`, `pass`
RE2's pass over it alone. `--text typical|dense --tokens N` counts `redact` on `bench.redaction_speed`'s
bodies instead (the same body each time, the memo off, as that benchmark times them). Besides the
instructions it prints how many new RE2 DFA states a request built (each costs ~20k instructions here: a
pattern that makes a random id build new ones on most requests shows up at once).
Needs `valgrind` (Debian package). Runs itself under callgrind, instrumentation on only for the counted
requests (toggled with `callgrind_control`); with `--source`, this script drives the other tree's code.
"""

from __future__ import annotations

import argparse
import inspect
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

WARMUP = 300


def _bodies(n: int, rnd: random.Random) -> list[bytes]:
    from bench.targets import Target

    template = Target("full", 0, model="auto").body(False)
    return [template.replace(b"@N@", b"%d-%s" % (i, rnd.randbytes(3).hex().encode())) for i in range(n - 1, -1, -1)]


def _inner(what: str, requests: int, text: str, tokens: int) -> None:
    """Under callgrind: warm up, switch instrumentation on for `requests` calls, dump."""
    import orjson
    import re2

    from router.redaction import BodyRedactor, Scanner

    scanner = Scanner(memo=text == "bench")
    redactor = BodyRedactor(scanner)
    rnd = random.Random(9)
    if text != "bench":
        from bench.redaction_speed import corpus_text, typical_text

        content = (typical_text if text == "typical" else corpus_text)(tokens)
        body = {"model": "auto", "messages": [{"role": "user", "content": content}]}
        for _ in range(3):
            redactor.redact(body)
        _count(lambda: [redactor.redact(body) for _ in range(requests)])
        return

    with_raw = "raw" in inspect.signature(redactor.redact).parameters

    def run(pairs: list[tuple[dict, bytes]]) -> None:
        bodies = [b for b, _ in pairs]
        if what == "redact" and not with_raw:  # an older tree (`--source`): the body alone
            for b in bodies:
                redactor.redact(b)
        elif what == "redact":
            for b, raw in pairs:
                redactor.redact(b, raw)  # as the stage calls it: the body and the client's bytes
        elif what == "scan":
            for b in bodies:
                scanner.scan(b["messages"][1]["content"])
        else:
            match, unanchored = scanner.regex._regexp.Match, re2._Anchor.UNANCHORED
            for b in bodies:
                data = b["messages"][1]["content"].encode("latin-1")
                match(unanchored, data, 0, len(data))

    run([(orjson.loads(b), b) for b in _bodies(WARMUP, rnd)])
    counted = [(orjson.loads(b), b) for b in _bodies(requests, rnd)]
    _count(lambda: run(counted))


def _count(work: Any) -> None:
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    work()
    subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)


def _new_states(dump: str) -> int:
    """Calls of RE2's DFA::WorkqToCachedState (one per state built) in a callgrind dump."""
    names: dict[str, str] = {}
    for m in re.finditer(r"^c?fn=\((\d+)\)(?: (.*))?$", dump, re.M):
        if m.group(2):
            names[m.group(1)] = m.group(2)
    calls = 0
    current = ""
    for line in dump.splitlines():
        m = re.match(r"^cfn=\((\d+)\)", line)
        if m:
            current = names.get(m.group(1), "")
            continue
        m = re.match(r"^calls=(\d+)", line)
        if m and "WorkqToCachedState" in current:
            calls += int(m.group(1))
    return calls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.redaction_instructions", description=__doc__.split("\n")[0])
    p.add_argument("--what", choices=("redact", "scan", "pass"), default="redact")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--text", choices=("bench", "typical", "dense"), default="bench",
                   help="bench: the server benchmark's body, a fresh id each; typical/dense: bench.redaction_speed's")
    p.add_argument("--tokens", type=int, default=2000, help="size of the typical/dense text (default 2000)")
    p.add_argument("--source", type=Path, help="measure the redaction of another checkout (its code, these packages)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.inner:
        _inner(a.what, a.requests, a.text, a.tokens)
        return 0
    from bench.callgrind import available, dump_of, total_of  # not at the top: `--inner` may run another tree

    if not available():
        return 2
    root = a.source or Path(__file__).resolve().parent.parent
    dump = dump_of(__file__, ["--what", a.what, "--requests", str(a.requests), "--text", a.text,
                              "--tokens", str(a.tokens)], root)
    if dump is None:
        return 1
    states = _new_states(dump)
    what = a.what if a.text == "bench" else f"redact of {a.text} {a.tokens} tokens"
    print(f"{what}: {total_of(dump) / a.requests / 1000:.1f}k instructions per request, "
          f"{states / a.requests:.2f} new RE2 DFA states per request ({a.requests} requests after "
          f"{WARMUP if a.text == 'bench' else 3} warm-up{f'; from {a.source}' if a.source else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
