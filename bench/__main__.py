"""`python -m bench`: the whole benchmark in one command; writes docs/performance.md and a JSON record.

    python -m bench            # full run, ~5 min on 2 cores
    python -m bench --quick    # ~90 s: shorter runs, no workers scaling, no profile
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from bench import report
from bench.run import Plan, log, run

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter runs, no workers scaling or profile (~90 s)")
    p.add_argument("--rounds", type=int, help="rounds of alternating targets (default 3)")
    p.add_argument("--no-workers", action="store_true", help="skip the --workers scaling runs")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    p.add_argument("--no-stages", action="store_true", help="skip the per-stage microbenchmark")
    p.add_argument("--state-url", default="memory://", help="router state store (default memory://)")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json",
                   help="where to write the raw results")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md",
                   help="the page to (re)write; '-' for none")
    p.add_argument("--from-json", type=Path, help="only re-render the page from a saved results file")
    a = p.parse_args(argv)
    if a.from_json:
        results = orjson.loads(a.from_json.read_bytes())
    else:
        plan = Plan.quick() if a.quick else Plan()
        if a.rounds:
            plan.rounds = a.rounds
        plan.workers = plan.workers and not a.no_workers
        plan.profile = plan.profile and not a.no_profile
        plan.stages = not a.no_stages
        plan.state_url = a.state_url
        results = run(plan, a.quick)
        results["verdicts"] = report.evaluate(results)
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
        log(f"raw results: {a.json}")
    if str(a.doc) != "-":
        report.write(results, a.doc)
        log(f"report: {a.doc}")
    for v in report.evaluate(results):
        mark = "?" if v["met"] is None else ("ok " if v["met"] else "NO ")
        print(f"{mark} {v['target']:<40} {v['want']:<28} {v['measured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
