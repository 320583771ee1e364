"""`GET /dashboard/stats`: the dashboard's numbers, derived from the same metrics `/metrics` exports.

Each call reads the metric families (all workers' under `--workers N`), adds a point to a short
history (at most one a second, kept in the process's `Metrics`, so it survives a reload) and answers:
rates over time (requests/s, local vs cloud share, errors and promotions per second), p50/p95 latency
and time to first token per tier over the last five minutes, spend per tenant against its budget,
breaker states and load per backend, and the last decisions with their reasons (no content).
Nothing here runs on the request path.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from typing import Any

from router.observe.metrics import Metrics, breaker_state, decision_dict, load_of
from router.spend import report

log = logging.getLogger("ai_router")

WINDOW_S = 300.0
MIN_SAMPLE_GAP_S = 0.5


def _sum(fams: dict[str, Any], name: str, by: str | None = None, where: dict[str, str] | None = None) -> Any:
    """Sum of a counter's `_total` samples, optionally grouped by one label."""
    fam = fams.get(name)
    out: dict[str, float] = {}
    total = 0.0
    if fam is not None:
        for s in fam.samples:
            if not s.name.endswith("_total"):
                continue
            if where and any(s.labels.get(k) != v for k, v in where.items()):
                continue
            total += s.value
            if by is not None:
                k = s.labels.get(by, "")
                out[k] = out.get(k, 0.0) + s.value
    return out if by is not None else total


def _buckets(fams: dict[str, Any], name: str) -> dict[str, dict[float, float]]:
    """A histogram's cumulative bucket counts per tier (summed over endpoints)."""
    fam = fams.get(name)
    out: dict[str, dict[float, float]] = {}
    if fam is None:
        return out
    for s in fam.samples:
        if s.name.endswith("_bucket"):
            le = float(s.labels["le"])
            b = out.setdefault(s.labels.get("tier", ""), {})
            b[le] = b.get(le, 0.0) + s.value
    return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative `{le: count}` (linear within a bucket)."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_b, prev_c = 0.0, 0.0
    for b in bounds:
        c = buckets[b]
        if c >= rank:
            if math.isinf(b):
                return prev_b
            if c == prev_c:
                return b
            return prev_b + (b - prev_b) * (rank - prev_c) / (c - prev_c)
        prev_b, prev_c = b, c
    return prev_b


def _point(fams: dict[str, Any]) -> dict[str, Any]:
    by_location = _sum(fams, "ai_router_requests", by="location")
    return {
        "t": time.time(),
        "requests": sum(by_location.values()),
        "local": by_location.get("local", 0.0),
        "cloud": by_location.get("cloud", 0.0),
        "errors": _sum(fams, "ai_router_errors"),
        "promotions": _sum(fams, "ai_router_promotions"),
        "spills": _sum(fams, "ai_router_spills"),
        "latency": _buckets(fams, "ai_router_request_duration_seconds"),
        "ttft": _buckets(fams, "ai_router_time_to_first_token_seconds"),
    }


def _series(history: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Per-interval rates between consecutive points."""
    out: dict[str, list[Any]] = {"t": [], "rps": [], "local_share": [], "errors_ps": [], "promotions_ps": [],
                                 "spillovers_ps": []}
    for a, b in itertools.pairwise(history):
        dt = b["t"] - a["t"]
        if dt <= 0:
            continue
        dl, dc = b["local"] - a["local"], b["cloud"] - a["cloud"]
        out["t"].append(round(b["t"], 3))
        out["rps"].append(round((b["requests"] - a["requests"]) / dt, 3))
        out["local_share"].append(round(dl / (dl + dc), 4) if dl + dc > 0 else None)
        out["errors_ps"].append(round((b["errors"] - a["errors"]) / dt, 3))
        out["promotions_ps"].append(round((b["promotions"] - a["promotions"]) / dt, 3))
        out["spillovers_ps"].append(round((b.get("spills", 0.0) - a.get("spills", 0.0)) / dt, 3))
    return out


def _window(now: dict[str, Any], then: dict[str, Any] | None, key: str) -> dict[str, dict[float, float]]:
    cur = now[key]
    if then is None:
        return cur
    old = then[key]
    out = {}
    for tier, b in cur.items():
        ob = old.get(tier, {})
        d = {le: c - ob.get(le, 0.0) for le, c in b.items()}
        out[tier] = d if max(d.values(), default=0) > 0 else b  # nothing new in the window: since start
    return out


def _tiers(point: dict[str, Any], then: dict[str, Any] | None, order: list[str], fams: dict[str, Any],
           ) -> list[dict[str, Any]]:
    lat = _window(point, then, "latency")
    ttft = _window(point, then, "ttft")
    reqs = _sum(fams, "ai_router_requests", by="tier")
    tiers = [t for t in order if t in lat or t in reqs] + sorted(t for t in lat if t not in order and t)
    out = []
    for t in tiers:
        lb, tb = lat.get(t, {}), ttft.get(t, {})
        out.append({
            "tier": t,
            "requests": reqs.get(t, 0.0),
            "p50_s": quantile(0.5, lb), "p95_s": quantile(0.95, lb),
            "ttft_p50_s": quantile(0.5, tb), "ttft_p95_s": quantile(0.95, tb),
        })
    return out


def _tenants(rows: list[dict[str, Any]], cost: dict[str, float], baseline: dict[str, float],
             requests: dict[str, float]) -> list[dict[str, Any]]:
    """Spend per tenant: today's, from the state store's ledger (it survives restarts and is shared by
    workers and replicas) against the daily budget (else the monthly one, with the month's spend); tenants
    the ledger does not know (no `budget` stage in the pipeline) from the metrics, since start."""
    out = []
    for r in rows:
        b = r.get("budget") or {}
        if b.get("daily_usd") is not None:
            window, limit = "day", b["daily_usd"]
        else:
            window, limit = "month", b.get("monthly_usd")
        out.append({"tenant": r["tenant"], "requests": r["requests"], "spend_usd": r["spend_usd"][window],
                    "budget_usd": limit, "budget_window": window if limit is not None else None,
                    "savings_usd": r["savings_usd"], "window": "today"})
    known = {r["tenant"] for r in rows}
    for name in sorted(set(cost) | set(requests)):
        if name in known or not name:  # "": refused before the key was read
            continue
        out.append({"tenant": name, "requests": requests.get(name, 0.0), "spend_usd": cost.get(name, 0.0),
                    "budget_usd": None, "budget_window": None,
                    "savings_usd": baseline.get(name, 0.0) - cost.get(name, 0.0), "window": "since start"})
    return out


async def dashboard_stats(svc: Any, recent: int = 50) -> dict[str, Any]:
    """The JSON the dashboard page draws."""
    m: Metrics = svc.observer.metrics
    cfg = svc.config
    m.sample(svc.backends.values())  # breakers, load and spill-overs as of now
    fams = {f.name: f for f in m.collect()}
    locations = {b.name: b.location for b in cfg.backends}
    point = _point(fams)
    hist = m.history
    if not hist or point["t"] - hist[-1]["t"] >= MIN_SAMPLE_GAP_S:
        hist.append(point)
    history = list(hist)
    then = next((p for p in history if point["t"] - p["t"] <= WINDOW_S), None)
    if then is point:
        then = None
    cost = _sum(fams, "ai_router_cost_usd", by="tenant")
    baseline = _sum(fams, "ai_router_baseline_cost_usd", by="tenant")
    try:
        rows = (await report(svc.ctx.store, svc.tenants, "day"))["tenants"]
    except Exception:
        log.exception("dashboard: reading spend from the state store failed")
        rows = []
    tenants = _tenants(rows, cost, baseline, _sum(fams, "ai_router_requests", by="tenant"))
    backends = []
    for name, b in svc.backends.items():
        busy, waiting = load_of(b)
        backends.append({"backend": name, "location": locations.get(name), "state": breaker_state(b),
                         "in_flight": busy, "queued": waiting,
                         "latency_ms": round(b.latency_ms, 3) if b.latency_ms is not None else None})
    decisions = [decision_dict(row) for row in reversed(list(m.decisions)[-recent:])]
    return {
        "now": point["t"],
        "uptime_s": round(point["t"] - m.started, 1),
        "workers": "all" if m.multiprocess else "this process",
        "totals": {
            "requests": point["requests"], "local": point["local"], "cloud": point["cloud"],
            "errors": point["errors"], "promotions": point["promotions"], "spills": point["spills"],
            "cost_usd": sum(cost.values()),
            "savings_usd": sum(baseline.values()) - sum(cost.values()),
            "tokens": _sum(fams, "ai_router_tokens", by="type"),
        },
        "errors": _sum(fams, "ai_router_errors", by="code"),
        "promotions": _sum(fams, "ai_router_promotions", by="reason"),
        "spills": _sum(fams, "ai_router_spills", by="reason"),
        "cache": _sum(fams, "ai_router_cache_requests", by="result"),
        "series": _series(history),
        "tiers": _tiers(point, then, list(cfg.routing.tiers), fams),
        "tenants": tenants,
        "backends": backends,
        "decisions": decisions,
    }
