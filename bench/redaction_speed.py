"""Redaction cost per request: µs to scan and redact a chat body of 2k and 50k tokens, RE2 against stdlib `re`.

    .venv/bin/python -m bench.redaction_speed [--runs 30]

Two texts, cut to the token count (o200k_base) and sent as one user message: `dense` is the redaction
corpus itself (code, logs, e-mails, config, chat, Portuguese; positives and hard negatives mixed: about one
finding per 80 tokens, the worst case), `typical` is everyday code, logs and prose with a secret or PII
item every ~400 tokens. Timed: `BodyRedactor.redact` (the walk, the one compiled scan, the checks and the placeholders),
which is the `redact` stage's work before the request moves on. Median of `--runs` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from router.redaction import BodyRedactor, Scanner
from router.routing.tokens import get_encoding

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "redaction_corpus"
SIZES = (2_000, 50_000)


def corpus_text(tokens: int) -> str:
    rows = []
    for name in ("positives.jsonl", "negatives.jsonl"):
        with open(CORPUS / name, encoding="utf-8") as f:
            rows += [json.loads(line)["text"] for line in f]
    rows = [t for pair in zip(rows[::2], rows[1::2], strict=False) for t in pair]  # interleave the two files' rows
    enc = get_encoding("o200k_base")
    text = ""
    while len(enc.encode(text, disallowed_special=())) < tokens:
        text += "\n".join(rows) + "\n"
    ids = enc.encode(text, disallowed_special=())[:tokens]
    return enc.decode(ids)


TYPICAL = (
    "The service reads its configuration at start-up and validates every key before it accepts connections. "
    "When a backend fails, the retry stage promotes the request to the next tier.\n",
    "def handler(request):\n    body = await request.json()\n    user = body.get('user')\n"
    "    return web.json_response({'ok': True, 'id': user.id, 'version': '1.2.3'})\n",
    "2025-11-02T10:31:07.123Z INFO request_id=9f2c1e7a status=200 duration_ms=37 path=/v1/chat\n",
    "Olá, a reunião ficou para terça às 14h30; levem o relatório do terceiro trimestre, por favor.\n",
)
SPARSE = (" contact ana.silva@empresa.com.br ", " token=ghp_1234567890abcdefghijABCDEFGHIJ123456 ",
          " card 4539 1488 0343 6467 ", " CPF 529.982.247-25 ")


def typical_text(tokens: int) -> str:
    enc = get_encoding("o200k_base")
    parts: list[str] = []
    i = 0
    while len(enc.encode("".join(parts), disallowed_special=())) < tokens:
        for _ in range(20):
            parts.append(TYPICAL[i % len(TYPICAL)])
            i += 1
        parts.append(SPARSE[i % len(SPARSE)])
    return enc.decode(enc.encode("".join(parts), disallowed_special=())[:tokens])


def time_redact(redactor: BodyRedactor, body: dict, runs: int) -> tuple[float, int]:
    out = redactor.redact(body)
    findings = sum(out[1].counts.values()) if out else 0
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        redactor.redact(body)
        samples.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(samples), findings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.redaction_speed", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args(argv)
    print(f"{'text':>8} {'tokens':>7} {'chars':>8} {'findings':>8} {'re2 µs':>9} {'re µs':>10} {'re2 µs/1k tok':>13}")
    for name, make, tokens in [(n, f, t) for n, f in (("typical", typical_text), ("dense", corpus_text))
                               for t in SIZES]:
        text = make(tokens)
        body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
        fast, findings = time_redact(BodyRedactor(Scanner(engine="re2", memo=False)), body, args.runs)
        slow_runs = max(1, args.runs // 10) if tokens < 10_000 else 1
        slow, _ = time_redact(BodyRedactor(Scanner(engine="re", memo=False)), body, slow_runs)
        per_1k = fast / tokens * 1000
        print(f"{name:>8} {tokens:7d} {len(text):8d} {findings:8d} {fast:9.0f} {slow:10.0f} {per_1k:13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
