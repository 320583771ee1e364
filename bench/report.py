"""Turn a run's results into docs/performance.md: method, exact commands, tables, targets met or not.

`evaluate()` checks the issue's targets against the in-run floor (ratios and differences are taken per
round, then the median over rounds is compared). `render()` writes the whole page; the hand-written
analysis between `<!-- notes:begin -->` and `<!-- notes:end -->` in the existing page is kept as is.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.profile import compare

NOTES_BEGIN = "<!-- notes:begin -->"
NOTES_END = "<!-- notes:end -->"
FLOOR = "floor"
DIRECT = "upstream (direct)"
DEFAULT_NOTES = "_No analysis written yet._"


def _per_round(rounds: list[dict[str, Any]], fn: Any) -> dict[str, float] | None:
    try:
        values = [fn(r) for r in rounds]
    except (KeyError, ZeroDivisionError):
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _fmt(s: dict[str, float] | None, digits: int = 2, unit: str = "") -> str:
    if not s:
        return "-"
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'])}{unit} ({f.format(s['min'])}-{f.format(s['max'])})"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("**met**" if ok else "**not met**")


def evaluate(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue: what it asks, what was measured, met or not."""
    rounds = res.get("rounds") or []
    out: list[dict[str, Any]] = []

    def add(name: str, want: str, got: dict[str, float] | None, ok: Any, digits: int = 2, unit: str = "") -> None:
        out.append({"target": name, "want": want, "measured": _fmt(got, digits, unit),
                    "met": None if got is None else bool(ok(got["median"]))})

    def ratio(t: str, key: str) -> dict[str, float] | None:
        return _per_round(rounds, lambda r: r[t][key] / r[FLOOR][key])

    def diff(t: str, key: str) -> dict[str, float] | None:
        return _per_round(rounds, lambda r: r[t][key] - r[FLOOR][key])

    def metric(t: str, key: str) -> dict[str, float] | None:
        return _per_round(rounds, lambda r: r[t][key])

    if rounds:
        add("minimal: throughput", "≥ 0.9x floor", ratio("minimal", "rps"), lambda v: v >= 0.9, unit="x")
        add("minimal: added p50 @1 conn", "≤ 0.45 ms", metric("minimal", "added_c1_p50_ms"), lambda v: v <= 0.45,
            3, " ms")
        add("minimal: added p99 @1 conn", "≤ 0.8 ms", metric("minimal", "added_c1_p99_ms"), lambda v: v <= 0.8,
            3, " ms")
        add("full: throughput", "≥ 0.8x floor", ratio("full", "rps"), lambda v: v >= 0.8, unit="x")
        add("full: throughput (issues 8, 9)", "≥ 0.6x floor", ratio("full", "rps"), lambda v: v >= 0.6, unit="x")
        add("full: capacity by CPU time (issues 8, 9)", "≥ 0.6x floor",
            _per_round(rounds, lambda r: r[FLOOR]["cpu_us_per_req"] / r["full"]["cpu_us_per_req"]),
            lambda v: v >= 0.6, unit="x")
        add("full: added p50 @1 conn", "≤ 0.6 ms", metric("full", "added_c1_p50_ms"), lambda v: v <= 0.6, 3, " ms")
        for t in ("minimal", "full"):
            for mode in ("paced", "burst"):
                add(f"{t}: CPU per 50-chunk stream ({mode})", "≤ 1.2x floor's",
                    ratio(t, f"cpu_us_per_stream_{mode}"), lambda v: v <= 1.2, unit="x")
            add(f"{t}: time to first event", "≤ floor + 0.2 ms", diff(t, "ttfe_ms"), lambda v: v <= 0.2, 3,
                " ms vs floor")
    checks = res.get("check") or {}
    for t in ("minimal", "full"):
        if t in checks:
            mism = sum(r[t].get("stream_mismatches", 0) for r in rounds)
            ok = checks[t]["stream_identical"] and mism == 0
            out.append({"target": f"{t}: streamed body", "want": "byte-identical to upstream",
                        "measured": f"check {'identical' if checks[t]['stream_identical'] else 'DIFFERENT'}, "
                                    f"{mism} mismatches in timed streams", "met": ok})
    hwm = res.get("hwm_mb") or {}
    for t, mb in (res.get("rss_mb") or {}).items():
        if t != FLOOR:
            out.append({"target": f"{t}: peak RSS per worker", "want": "≤ 80 MB under saturation",
                        "measured": f"{mb:.1f} MB (VmHWM incl. start-up {hwm.get(t, 0):.1f} MB)", "met": mb <= 80})
    w = res.get("workers")
    if w:
        for t in ("minimal", "full"):
            s = w["scaling"][t]
            out.append({"target": f"{t}: --workers 2 vs 1 (no pinning)", "want": "≥ 1.7x",
                        "measured": f"{s:.2f}x (floor: {w['scaling']['floor']:.2f}x)", "met": s >= 1.7})
    return out


# ---------------------------------------------------------------- the page


def _main_table(res: dict[str, Any]) -> list[str]:
    rounds = res["rounds"]
    summ = res["summary"]
    lines = [
        "| target | req/s, 1 core (32 conns) | x floor | CPU µs/req | core busy | added p50 / p99 @1 conn (ms) | "
        "added p50 / p99 @8 conns (ms) | added TTFE (ms) | CPU µs per 50-chunk stream, paced | "
        "CPU µs per 50-chunk stream, burst | peak RSS under load (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t, m in summ.items():
        if t == DIRECT:
            continue
        ratio = _per_round(rounds, lambda r, t=t: r[t]["rps"] / r[FLOOR]["rps"])
        busy = _per_round(rounds, lambda r, t=t: r[t]["rps"] * r[t]["cpu_us_per_req"] / 1e4)
        lines.append(
            f"| {t} | {_fmt(m['rps'], 0)} | {_fmt(ratio)} | {_fmt(m['cpu_us_per_req'], 0)} | {_fmt(busy, 0, '%')} | "
            f"{m['added_c1_p50_ms']['median']:.3f} / {m['added_c1_p99_ms']['median']:.3f} | "
            f"{m['added_c8_p50_ms']['median']:.3f} / {m['added_c8_p99_ms']['median']:.3f} | "
            f"{_fmt(m['added_ttfe_ms'], 3)} | {_fmt(m['cpu_us_per_stream_paced'], 0)} | "
            f"{_fmt(m['cpu_us_per_stream_burst'], 0)} | {res['rss_mb'].get(t, 0):.1f} |"
        )
    d = summ.get(DIRECT)
    if d:
        lines += ["", f"Direct to the mock upstream (subtracted above): p50 / p99 "
                      f"{d['c1_p50_ms']['median']:.3f} / {d['c1_p99_ms']['median']:.3f} ms at 1 connection, "
                      f"{d['c8_p50_ms']['median']:.3f} / {d['c8_p99_ms']['median']:.3f} ms at 8; "
                      f"time to first event {d['ttfe_ms']['median']:.3f} ms."]
    lines += ["", "Absolute latency (ms, median over rounds):", "",
              "| target | p50 @1 | p99 @1 | p50 @8 | p99 @8 | p50 @32 (saturated) | p99 @32 | TTFE |",
              "|---|---|---|---|---|---|---|---|"]
    for t, m in summ.items():
        sat = (f"{m['sat_p50_ms']['median']:.2f} | {m['sat_p99_ms']['median']:.2f}"
               if "sat_p50_ms" in m else "- | -")
        lines.append(f"| {t} | {m['c1_p50_ms']['median']:.3f} | {m['c1_p99_ms']['median']:.3f} | "
                     f"{m['c8_p50_ms']['median']:.3f} | {m['c8_p99_ms']['median']:.3f} | {sat} | "
                     f"{m['ttfe_ms']['median']:.3f} |")
    return lines


def _workers_table(w: dict[str, Any]) -> list[str]:
    lines = ["| server | req/s, x1 worker | req/s, x2 workers | scaling | peak RSS per worker, x2 (MB) |",
             "|---|---|---|---|---|"]
    rss = w.get("rss_mb_per_worker", {})
    for k in ("floor", "minimal", "full"):
        lines.append(f"| {k} | {_fmt(w['rps'][f'{k} x1'], 0)} | {_fmt(w['rps'][f'{k} x2'], 0)} | "
                     f"{w['scaling'][k]:.2f}x | {rss.get(f'{k} x2', 0):.1f} |")
    return lines


def _profile_section(p: dict[str, Any]) -> list[str]:
    if "error" in p:
        return [f"py-spy failed: `{p['error']}`"]
    load = p.get("load", {})
    lines = [f"{p['samples']} samples at {p['rate_hz']} Hz of the `{p['target']}` router's busy time while "
             f"wrk saturated it ({load.get('rps', 0):.0f} req/s). Idle time (waiting in epoll) is not sampled; "
             "time in uvloop's C code and in the kernel shows as self time of the Python frame that called "
             "into it (for the loop itself: `run`).", "",
             "Self time by package:", "", "| package | % |", "|---|---|"]
    lines += [f"| {r['function']} | {r['pct']:.1f} |" for r in p["packages"]]
    lines += ["", "Top functions by self time:", "", "| function | self % |", "|---|---|"]
    lines += [f"| `{r['function']}` | {r['pct']:.1f} |" for r in p["self"]]
    lines += ["", "Top functions by total time (on the stack):", "", "| function | total % |", "|---|---|"]
    lines += [f"| `{r['function']}` | {r['pct']:.1f} |" for r in p["total"]]
    return lines


def _stages_table(s: dict[str, Any]) -> list[str]:
    if "error" in s:
        return [f"The microbenchmark failed: `{s['error'][-500:]}`"]
    sizes = s["sizes"]
    lines: list[str] = []
    for chain, c in s["chains"].items():
        lines += [f"*{chain}*", "", "| stage | " + " | ".join(f"{n:,} tokens" for n in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]
        for name, row in c["stages"].items():
            cells = [f"{row[str(n)]['median_us']:.1f} (p90 {row[str(n)]['p90_us']:.1f})" for n in sizes]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for name, note in c.get("notes", {}).items():
            lines.append(f"| {name} | {note} |" + " |" * (len(sizes) - 1))
        for size, err in c.get("errors", {}).items():
            lines.append(f"\nAt {size} tokens the chain stopped early: `{err}`.")
        lines.append("")
    return lines


def _kept_sections(existing: Path) -> str:
    """Everything after the analysis notes: the sections that other benchmarks (stages, redaction, state
    stores, hostile upstreams…) write by hand or by their own scripts. A full run keeps them as they are."""
    if existing.exists():
        text = existing.read_text()
        if NOTES_END in text:
            return text.split(NOTES_END, 1)[1].strip("\n")
    return ""


def _notes(existing: Path) -> str:
    if existing.exists():
        text = existing.read_text()
        if NOTES_BEGIN in text and NOTES_END in text:
            return text.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0].strip()
    return DEFAULT_NOTES


METHOD = """\
## How to run

```sh
apt-get install -y wrk                          # the load generator (Debian package)
make setup && .venv/bin/pip install py-spy      # the project in .venv, plus py-spy for the profile
make bench                                      # = python -m bench: ~5 min, rewrites this page
make bench-quick                                # = python -m bench --quick: ~70 s, no profile/workers
make bench-stages                               # = python -m bench.stages: per-stage µs per request
```

`make bench PYTHON=/path/to/python` uses another environment. `python -m bench --help` lists the options
(`--rounds`, `--no-workers`, `--no-profile`, `--no-stages`, `--json FILE`, `--doc FILE`, `--from-json FILE`
to re-render this page from saved results). Raw results of the last run go to `bench/results/latest.json`
(not committed). The pieces run alone too:

```sh
taskset -c 0 python -m bench.mock_upstream --port 9100 --chunks 50 --chunk-delay-ms 1
taskset -c 1 python -m bench.floor_proxy --port 9200 --upstream http://127.0.0.1:9100/v1
taskset -c 1 ai-router serve --config router.yaml --host 127.0.0.1 --port 9300
BENCH_BODY=body.json taskset -c 0 wrk -t1 -c32 -d5s -s bench/post.lua http://127.0.0.1:9300/
python -m bench.profile --pid $(pgrep -f 'ai-router serve') --seconds 10
```

## Method

- **Machine layout** (2 cores): core 0 runs the harness, `wrk`, the stream client and the mock upstream;
  core 1 runs the server under test (`taskset -c 1`). The floor and both routers stay up for the whole run,
  all on core 1, and are measured one at a time, so an idle one costs nothing.
- **Mock upstream** (`bench/mock_upstream.py`): raw asyncio protocol on uvloop, canned bytes; a JSON
  completion, or an SSE stream of 50 content events + a usage-only event + `[DONE]`, one HTTP chunk each,
  1 ms apart (as a model streams; each event reaches the proxy as its own read). It handles ~100k req/s,
  so it is never the bottleneck.
- **Floor** (`bench/floor_proxy.py`): a bare aiohttp + uvloop pass-through (read body, POST upstream on a
  pooled connection, return the body or relay the SSE chunks). No Python proxy on this stack can do less,
  so every target is stated against it, measured in the same run on the same core.
- **Targets**: `minimal` is the router with `pipeline: [route, retry]`, a concrete model, access log off;
  `full` is every stage of the default pipeline `[auth, ratelimit, redact, classify, cache, budget, route,
  retry]`, each configured to do its work (an API key, a tenant with rate limits, budgets and redaction
  towards the cloud backend, the cache on), `model: auto` so the classifier runs, JSON access log on
  (written to a file). State is `memory://`. Every request body is unique (a counter in the prompt), so the
  cache never answers: the figures are the pipeline's, not the cache's.
- **Request**: chat completion, system + user message, ~300 prompt tokens (`bench/targets.py`).
- **Correctness first**: before any timing, one streamed and one JSON request to each target; the
  de-chunked streamed body must equal the mock's bytes exactly. Every timed stream is checked again.
- **Rounds**: 3 rounds; each round measures the direct upstream, the floor, `minimal` and `full` in turn
  (the order rotates by one each round). Reported: median over rounds and (min-max).
  - throughput: `wrk -t1 -c32`, 5 s; CPU µs/req = the server's CPU time (sum of its threads' schedstat
    run time, whole process tree) over the run / requests; *core busy* = req/s x CPU µs/req, the share of
    its core the server used. A server that is not near 100% busy was held back by something else (on this
    VM: waking the load generator and the mock from idle), so its req/s understates what its code allows.
    Hence two figures against the floor: req/s, and *capacity by CPU time* (floor's CPU µs/req over the
    target's), which is what the same load would give if both were CPU-bound.
  - latency at 1 and 8 connections: `wrk -c1` / `-c8`, 3 s each, wrk's p50 and p99. **Added** latency =
    the target's percentile minus the direct-to-mock percentile at the same connection count, same round.
  - time to first event (TTFE): 30 streams one after another on one keep-alive connection, time from
    writing the request to the first `data:` bytes; median; **added** = minus direct-to-mock TTFE.
  - CPU per 50-chunk stream: 480 streams, 16 at a time; server CPU time / streams. Twice: *paced* (events
    1 ms apart, so the proxy reads and writes each event on its own, as with a real model: per-chunk cost
    shows) and *burst* (the mock writes the whole stream at once, `[burst]` in the prompt: per-request cost
    dominates, the setting of the reference figures).
- **Peak RSS**: the largest `VmRSS` of the server process sampled every 0.2 s during the saturation runs
  (per worker). `VmHWM`, which includes start-up transients, is shown next to it.
- **Workers**: nothing pinned; a fresh mock, then floor/minimal/full with `--workers 1` and `2`, each
  started fresh, 1 s warm-up, 4 s `wrk -c32`; 3 rounds. The load generator and the mock share the two
  cores with the workers, so the floor's own scaling is the ceiling this machine allows.
- **Profile**: `py-spy record --nonblocking --rate 250` on each router during an 8 s saturation run.
- **Stage costs**: `bench/stages.py`, in-process, no sockets: each stage built as the server builds it, the
  chain timed link by link (self time = time in the stage minus time below it), over a fake backend; median
  and p90 µs per request at 300, 2,000 and 20,000 prompt tokens. Adding a stage is one line
  (`BENCH_STAGES`).
"""


def render(res: dict[str, Any], doc: Path) -> str:
    v = res.get("versions", {})
    verdicts = evaluate(res)
    lines = [
        "# Performance",
        "",
        "How fast ai-router is next to the thinnest possible Python proxy on the same stack, measured by one "
        "command (`make bench`) on the machine at hand. Every figure below comes from the run described in "
        "*Results*; the method and the exact commands follow.",
        "",
        "Reference figures from elsewhere (2 cores, proxy pinned to one; non-streaming chat, ~300-token prompt):",
        "",
        "| reference | req/s on one core | added p50 / p99 @1 conn | added TTFE | CPU per 50-chunk stream | RSS |",
        "|---|---|---|---|---|---|",
        "| Nginx proxy_pass | ~44,500 | 0.13 / 0.26 ms | 0.10 ms | 54 µs | 13 MB |",
        "| bare aiohttp+uvloop pass-through (the floor) | ~6,100 | 0.35 / 0.54 ms | 0.51 ms | 278 µs | 42 MB |",
        "| Portkey 1.15 | ~825 | 0.94 / 25 ms | 29 ms | 1,870 µs | 94-255 MB |",
        "| LiteLLM 1.108 | ~96 | 14.4 / 17.9 ms | 13.6 ms | 69,900 µs | 330-414 MB |",
        "",
        METHOD,
        "## Results",
        "",
        f"Run of {res.get('date', '?')}{' (**--quick**: shorter runs, less precise)' if res.get('quick') else ''}; "
        f"{v.get('cpu', '?')}, {v.get('cores', '?')} cores, Linux {v.get('kernel', '?')}; Python "
        f"{v.get('python', '?')}, aiohttp {v.get('aiohttp', '?')}, uvloop {v.get('uvloop', '?')}, orjson "
        f"{v.get('orjson', '?')}, {v.get('wrk', 'wrk')}; commit {v.get('git', '-')}; "
        f"{res.get('plan', {}).get('rounds', '?')} rounds, {res.get('wall_s', 0):.0f} s in all.",
        "",
    ]
    pipes = res.get("pipelines") or {}
    if pipes:
        lines += ["Active stages as the routers logged them: "
                  + "; ".join(f"`{k}`: {v or '(not logged)'}" for k, v in pipes.items()) + ".", ""]
    lines += ["### Targets", "", "| target | wanted | measured: median (min-max over rounds) | |", "|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['want']} | {r['measured']} | {_verdict(r['met'])} |" for r in verdicts]
    lines += ["", "### Byte-for-byte check (before timing)", "", "| target | SSE body | JSON body |", "|---|---|---|"]
    for t, c in (res.get("check") or {}).items():
        sse = "identical" if c["stream_identical"] else f"DIFFERENT: {c.get('stream_detail', '')}"
        js = "identical" if c["json_identical"] else f"differs (status {c.get('json_status')})"
        lines.append(f"| {t} | {sse} | {js} |")
    if res.get("rounds"):
        lines += ["", "### Proxy overhead", "", *_main_table(res)]
        errs = {t: sum(r[t].get("errors", 0) for r in res["rounds"]) for t in res["rounds"][0]}
        if any(errs.values()):
            lines += ["", "wrk reported errors (non-2xx, timeouts): "
                      + ", ".join(f"{t}: {n}" for t, n in errs.items() if n) + "."]
    if res.get("workers"):
        lines += ["", "### Workers (no pinning, both cores)", "", *_workers_table(res["workers"])]
    profiles = res.get("profiles") or {}
    for name, prof in profiles.items():
        if name == FLOOR:
            continue
        lines += ["", f"### Profile of the {name} router under load (py-spy)", "", *_profile_section(prof)]
        if FLOOR in profiles and "error" not in prof and "error" not in profiles[FLOOR]:
            lines += ["", f"Where `{name}` spends more than the floor: self time in µs per request (profile "
                          "share x CPU µs per request of each run), largest differences first:", "",
                      "| function | floor µs/req | router µs/req | difference |", "|---|---|---|---|"]
            lines += [f"| `{r['function']}` | {r['base_us']:.1f} | {r['other_us']:.1f} | {r['delta_us']:+.1f} |"
                      for r in compare(profiles[FLOOR], prof, 15)]
    if res.get("stages"):
        lines += ["", "### Stage costs (µs per request, median and p90, in-process)", "",
                  *_stages_table(res["stages"])]
    lines += ["", "## Analysis", "", NOTES_BEGIN, _notes(doc), NOTES_END, ""]
    kept = _kept_sections(doc)
    if kept:
        lines += [kept, ""]
    return "\n".join(lines)


def write(res: dict[str, Any], doc: Path) -> None:
    text = render(res, doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
