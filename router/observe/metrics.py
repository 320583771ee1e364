"""Prometheus metrics: the families, fed once per request from the Exchange, and `/metrics` rendering.

The request's journey ends in one call, `Metrics.observe(ex, error)` (the server's finish hook, where
the access log is written): it looks up one cached bundle of label children for the request's
(endpoint, tenant, task, tier, model, backend, status) and adds to plain numbers held next to them
(histograms: one C `bisect` for the bucket); those reach the children, and so the registry, in `flush()`,
which runs before every read (scrape, dashboard, the workers' snapshot). Nothing runs per stream chunk.
Gauges that describe backends (breaker state, in-flight and queued calls) are sampled once a second and
at scrape time, not updated per request.

Label values are bounded: models, backends and tiers come from the catalog (the candidate that served
the request), tenants from configured keys, tasks from the classifier, error codes from
`router/errors.py`; request ids and anything a client typed never become labels.

Under `--workers N` each worker keeps this in-process registry and publishes a snapshot of it once a
second; any worker's `/metrics` merges all snapshots (router/observe/shared.py), so a scrape sees the
whole server whichever worker answers it.
"""

from __future__ import annotations

import time
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

from router import __version__
from router.cost import Baseline, usage_counts
from router.observe.shared import merged, shared_dir, write_snapshot
from router.tenants import DEFAULT_TENANT

if TYPE_CHECKING:
    from router.exchange import Exchange

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "ai_router_"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
DIFFICULTY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
BREAKER_STATES = ("closed", "half_open", "open")
SPILL_REASONS = ("saturated", "open", "missing_model")
_STATUS = {n: str(n) for n in range(100, 600)}  # status label strings, made once
REQUEST_LABELS = ("endpoint", "tenant", "task", "tier", "model", "backend", "location", "status")


class _Hist:
    """A histogram child's observations since the last flush: bucket counts (prometheus' `le` rule: the first
    bound >= the value, found by one C `bisect`; `Metrics.observe` adds them inline) and their sum."""

    __slots__ = ("bounds", "child", "counts", "sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds = child._upper_bounds  # ends with +Inf
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def flush(self) -> None:
        counts = self.counts
        buckets = self.child._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
                counts[i] = 0
        self.child._sum.inc(self.sum)
        self.sum = 0.0


class _Series:
    """The label children one kind of request updates, made once per label combination.

    A request adds to plain numbers here (no lock, no call into prometheus-client per value); `flush`
    moves them into the children before anything reads the registry (a scrape, the dashboard, the
    once-a-second snapshot), so what `/metrics` shows is exact at every read."""

    __slots__ = ("baseline", "baseline_n", "cost", "cost_n", "difficulty", "dirty", "duration", "overhead",
                 "requests", "requests_n", "tokens_in", "tokens_in_n", "tokens_out", "tokens_out_n", "ttft")

    def __init__(self, m: Metrics, key: tuple[str, ...]) -> None:
        endpoint, tenant, task, tier, model, _backend, _location, _status = key
        self.requests = m.requests.labels(*key)
        self.duration = _Hist(m.duration.labels(endpoint, tier))
        self.ttft = _Hist(m.ttft.labels(endpoint, tier))
        self.overhead = _Hist(m.overhead.labels(endpoint))
        self.tokens_in = m.tokens.labels(tenant, model, "input")
        self.tokens_out = m.tokens.labels(tenant, model, "output")
        self.cost = m.cost.labels(tenant, model)
        self.baseline = m.baseline.labels(tenant, model)
        self.difficulty = _Hist(m.difficulty.labels(task))
        self.requests_n = 0
        self.tokens_in_n = self.tokens_out_n = 0
        self.cost_n = self.baseline_n = 0.0
        self.dirty = False

    def flush(self) -> None:
        self.dirty = False
        if self.requests_n:
            self.requests.inc(self.requests_n)
            self.requests_n = 0
        for h in (self.duration, self.ttft, self.overhead, self.difficulty):
            if h.sum or any(h.counts):
                h.flush()
        if self.tokens_in_n:
            self.tokens_in.inc(self.tokens_in_n)
            self.tokens_in_n = 0
        if self.tokens_out_n:
            self.tokens_out.inc(self.tokens_out_n)
            self.tokens_out_n = 0
        if self.cost_n:
            self.cost.inc(self.cost_n)
            self.cost_n = 0.0
        if self.baseline_n:
            self.baseline.inc(self.baseline_n)
            self.baseline_n = 0.0


class Metrics:
    """Every metric family of the router, in one registry; one instance per process (`process_metrics`)."""

    def __init__(self, registry: CollectorRegistry | None = None, decisions: int = 50) -> None:
        self.shared = shared_dir() if registry is None else None  # --workers: snapshots merged at scrape time
        self.multiprocess = self.shared is not None
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry, namespace="ai_router")
        r = self.registry
        self.info = Gauge(PREFIX + "build_info", "Always 1; the version is a label.", ["version"],
                          registry=r)
        self.info.labels(__version__).set(1)
        self.requests = Counter(PREFIX + "requests", "Proxied requests answered, by where they went.",
                                REQUEST_LABELS, registry=r)
        self.duration = Histogram(PREFIX + "request_duration_seconds",
                                  "End-to-end time, from the request's body read to the answer's last byte.",
                                  ["endpoint", "tier"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram(PREFIX + "time_to_first_token_seconds",
                              "Streams: time from the request to its first event leaving the router.",
                              ["endpoint", "tier"], buckets=TTFT_BUCKETS, registry=r)
        self.overhead = Histogram(PREFIX + "overhead_seconds",
                                  "Time spent in the router itself (elapsed minus waiting on upstreams).",
                                  ["endpoint"], buckets=OVERHEAD_BUCKETS, registry=r)
        self.tokens = Counter(PREFIX + "tokens", "Tokens the upstreams reported, by direction.",
                              ["tenant", "model", "type"], registry=r)
        self.cost = Counter(PREFIX + "cost_usd", "What the answers cost, in USD.", ["tenant", "model"], registry=r)
        self.baseline = Counter(PREFIX + "baseline_cost_usd",
                                "What the same answers would have cost on the highest priced tier, in USD "
                                "(savings = this - ai_router_cost_usd_total).", ["tenant", "model"], registry=r)
        self.spend = Gauge(PREFIX + "tenant_spend_usd", "Spend in the current UTC day / month, from the state store.",
                           ["tenant", "window"], registry=r)
        self.budget_remaining = Gauge(PREFIX + "budget_remaining_usd",
                                      "What remains of the tenant's daily / monthly budget, from the state store.",
                                      ["tenant", "window"], registry=r)
        self.difficulty = Histogram(PREFIX + "difficulty", "The classifier's difficulty score (0-1) per task.",
                                    ["task"], buckets=DIFFICULTY_BUCKETS, registry=r)
        self.errors = Counter(PREFIX + "errors", "Requests that ended in an error, by error code.",
                              ["endpoint", "code"], registry=r)
        self.upstream_errors = Counter(PREFIX + "upstream_errors", "Failed upstream attempts, by kind.",
                                       ["backend", "kind"], registry=r)
        self.redactions = Counter(PREFIX + "redactions", "Secrets and PII found in prompts (kinds, never values).",
                                  ["tenant", "kind"], registry=r)
        self.promotions = Counter(PREFIX + "promotions", "Moves to the next candidate after a failed attempt "
                                  "(spill-overs are ai_router_spills_total).", ["from_tier", "to_tier", "reason"],
                                  registry=r)
        self.spills = Counter(PREFIX + "spills", "Requests that left a backend for another candidate without a "
                              "promotion step, by reason (saturated | open | missing_model).", ["backend", "reason"],
                              registry=r)
        self.cache = Counter(PREFIX + "cache_requests", "Requests the response cache saw, by result "
                             "(hit | miss | bypass).", ["tenant", "result"], registry=r)
        self.breaker = Gauge(PREFIX + "breaker_state", "1 for the backend's current breaker state (max over workers).",
                             ["backend", "state"], registry=r)
        self.in_flight = Gauge(PREFIX + "backend_in_flight", "Upstream calls in progress, per backend.",
                               ["backend"], registry=r)
        self.queued = Gauge(PREFIX + "backend_queued", "Calls waiting for a free upstream connection, per backend.",
                            ["backend"], registry=r)
        self._series: dict[tuple[str, ...], _Series] = {}
        self._dirty: list[_Series] = []  # series with numbers not yet in their children (`flush`)
        self._errors: dict[tuple[str, str], Any] = {}
        self._upstream_errors: dict[tuple[str, str], Any] = {}
        self._promotions: dict[tuple[str, str, str], Any] = {}
        self._redactions: dict[tuple[str, str], Any] = {}
        self._cache_n: dict[tuple[str, str], int] = {}  # (tenant, result) -> requests not yet flushed
        self._cache_children: dict[tuple[str, str], Any] = {}
        self._spills_seen: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()
        self.decisions: deque[tuple[Any, ...]] = deque(maxlen=decisions)
        self.history: deque[dict[str, Any]] = deque(maxlen=900)  # the dashboard's points (router/observe/stats.py)
        self.started = time.time()

    # ------------------------------------------------------------ per request

    def observe(self, ex: Exchange, error: str | None = None, baseline: Baseline | None = None) -> None:
        """The end of one proxied request: count it, time it, add its tokens, cost and savings baseline
        (`baseline` prices its tokens on the highest tier)."""
        t = ex.target
        f = ex.features
        tenant = ex.tenant or DEFAULT_TENANT
        if t is not None:
            m = t.model
            model, backend, location, tier = m.id, m.backend, m.location, t.tier or ""
        else:
            model = backend = location = tier = ""
        key = (ex.endpoint, tenant, f.task if f is not None else "", tier, model, backend, location,
               _STATUS.get(ex.status) or str(ex.status))
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _Series(self, key)
        if not s.dirty:
            s.dirty = True
            self._dirty.append(s)
        s.requests_n += 1
        # the histograms' `observe`, inlined (four calls a request): the bucket, then the sum
        if f is not None:
            h = s.difficulty
            h.counts[bisect_left(h.bounds, f.difficulty)] += 1
            h.sum += f.difficulty
        elapsed = time.perf_counter() - ex.started
        h = s.duration
        h.counts[bisect_left(h.bounds, elapsed)] += 1
        h.sum += elapsed
        v = ex.ttft_s
        if v is not None:
            h = s.ttft
            h.counts[bisect_left(h.bounds, v)] += 1
            h.sum += v
        v = ex.overhead_s
        h = s.overhead
        h.counts[bisect_left(h.bounds, v)] += 1
        h.sum += v
        counts = usage_counts(ex)  # computed once per request, shared with the stages and the access line
        if counts is not None:
            tin, tout, _ = counts
            s.tokens_in_n += tin
            s.tokens_out_n += tout
            if baseline is not None:
                s.baseline_n += baseline.tokens(ex.endpoint, tin, tout)
        if ex.cost_usd:
            s.cost_n += ex.cost_usd
        if ex.cache is not None:
            k = (tenant, ex.cache)
            self._cache_n[k] = self._cache_n.get(k, 0) + 1
        if error is not None:
            self.error(ex.endpoint, error)
        if ex.findings:
            for kind, n in ex.findings.items():
                c = self._redactions.get((tenant, kind))
                if c is None:
                    c = self._redactions[tenant, kind] = self.redactions.labels(tenant, kind)
                c.inc(n)
        attempts = ex.attempts
        if len(attempts) > 1 or (attempts and attempts[0].outcome != "ok"):
            self._attempts(attempts)
        if self.decisions.maxlen:  # the raw values (the finished request's own lists); a dict only when asked
            d = ex.decision
            self.decisions.append((time.time(), ex.request_id, ex.endpoint, ex.tenant, f, t,
                                   d.reasons if d is not None else None, attempts, ex.status,
                                   error, ex.stream, ex.cost_usd, elapsed, ex.findings or None))

    def error(self, endpoint: str, code: str) -> None:
        """An error answered to the client (also for requests rejected before an Exchange existed)."""
        k = (endpoint, code)
        c = self._errors.get(k)
        if c is None:
            c = self._errors[k] = self.errors.labels(endpoint, code)
        c.inc()

    def rejected(self, endpoint: str, status: int, code: str) -> None:
        """A request refused before it became an Exchange (unparsable body, too large)."""
        key = (endpoint, "", "", "", "", "", "", str(status))
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _Series(self, key)
        s.requests.inc()  # rare: straight into the child
        self.error(endpoint, code)

    def _attempts(self, attempts: list[Any]) -> None:
        for i, a in enumerate(attempts):
            if a.outcome == "ok":
                continue
            k = (a.backend, a.outcome)
            c = self._upstream_errors.get(k)
            if c is None:
                c = self._upstream_errors[k] = self.upstream_errors.labels(*k)
            c.inc()
            if i + 1 < len(attempts) and not _spill(a, attempts[i + 1]):
                p = (a.tier or "", attempts[i + 1].tier or "", a.outcome)
                c = self._promotions.get(p)
                if c is None:
                    c = self._promotions[p] = self.promotions.labels(*p)
                c.inc()

    # ------------------------------------------------------------ sampled gauges

    def sample(self, backends: Iterable[Any]) -> None:
        """Set the backend gauges from the live backends (called once a second and before a scrape)."""
        for b in backends:
            state = breaker_state(b)
            for st in BREAKER_STATES:
                self.breaker.labels(b.name, st).set(1 if st == state else 0)
            busy, waiting = load_of(b)
            self.in_flight.labels(b.name).set(busy)
            self.queued.labels(b.name).set(waiting)
            spills = getattr(b, "spills", None)  # counted by `retry` on the backend (backends/base.py)
            if spills is not None:
                seen = self._spills_seen.get(b)
                if seen is None:
                    seen = self._spills_seen[b] = {}
                    for reason in SPILL_REASONS:  # every series exists from the start, at 0
                        self.spills.labels(b.name, reason)
                for reason, n in list(spills.items()):
                    if n > seen.get(reason, 0):
                        self.spills.labels(b.name, reason).inc(n - seen.get(reason, 0))
                        seen[reason] = n

    def sample_spend(self, tenants: list[dict[str, Any]]) -> None:
        """Set the spend and budget gauges from a spend report (router/spend.py `report`)."""
        for t in tenants:
            name = t["tenant"]
            for window, v in (t.get("spend_usd") or {}).items():
                self.spend.labels(name, window).set(v)
            for window, v in (t.get("remaining_usd") or {}).items():
                if v is not None:
                    self.budget_remaining.labels(name, window).set(v)

    # ------------------------------------------------------------ reading

    def flush(self) -> None:
        """Move the requests' numbers gathered since the last flush into the registry's children."""
        dirty = self._dirty
        if dirty:
            self._dirty = []
            for s in dirty:
                s.flush()
        if self._cache_n:
            for k, n in self._cache_n.items():
                c = self._cache_children.get(k)
                if c is None:
                    c = self._cache_children[k] = self.cache.labels(*k)
                c.inc(n)
            self._cache_n.clear()

    def publish(self) -> None:
        """Under --workers: write this worker's snapshot for the others (once a second, and before a scrape)."""
        if self.shared is not None:
            self.flush()
            write_snapshot(self.shared, self.registry.collect())

    def collect(self) -> list[Metric]:
        """Every family with its samples: this process's, or all workers' under --workers."""
        self.flush()
        if self.shared is not None:
            self.publish()
            return merged(self.shared)
        return list(self.registry.collect())

    def render(self) -> bytes:
        """The Prometheus text exposition of `collect()`."""
        self.flush()
        if self.shared is not None:
            return generate_latest(_Families(self.collect()))  # type: ignore[arg-type]
        return generate_latest(self.registry)


class _Families:
    """Already collected families, in the shape `generate_latest` reads (a registry's `collect`)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _spill(a: Any, after: Any) -> bool:
    """Did the request spill over from attempt `a` (retry's rule: a saturated or open backend, or a missing
    model served by the same tier elsewhere), rather than be promoted?"""
    return a.outcome in ("saturated", "open") or (a.outcome == "missing_model" and after.tier == a.tier)


def breaker_state(backend: Any) -> str:
    """closed | half_open | open, from whatever health the backend keeps."""
    state = getattr(getattr(backend, "breaker", None), "state", None)
    if isinstance(state, str) and state in BREAKER_STATES:
        return state
    return "closed" if backend.healthy else "open"


def load_of(backend: Any) -> tuple[int, int]:
    """(in-flight, queued) upstream calls of a backend: its capacity slots (backends/capacity.py), else its pool."""
    cap = getattr(backend, "capacity", None)
    if cap is not None:
        return cap.in_flight, cap.queued
    pool = getattr(getattr(backend, "client", None), "pool", None)
    if pool is None:
        return 0, 0
    return max(0, pool.open - len(pool.idle)), len(pool.waiters)


def decision_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    """One line of the dashboard's recent decisions: where it went and why, never what it said."""
    ts, request_id, endpoint, tenant, f, t, reasons, attempts, status, error, stream, cost, elapsed, findings = row
    return {
        "ts": ts, "request_id": request_id, "endpoint": endpoint, "tenant": tenant,
        "task": f.task if f else None, "complexity": f.complexity if f else None, "tokens": f.tokens if f else None,
        "difficulty": round(f.difficulty, 3) if f else None,
        "model": t.model.id if t else None, "tier": t.tier if t else None,
        "backend": t.model.backend if t else None, "location": t.model.location if t else None,
        "reasons": list(reasons or ()), "attempts": [a.outcome for a in attempts], "status": status, "error": error,
        "stream": stream,
        "cost_usd": cost, "latency_ms": round(elapsed * 1000, 2),
        "redacted": findings,  # kinds and counts, never values
    }


_process_metrics: Metrics | None = None


def process_metrics(decisions: int = 50) -> Metrics:
    """This process's metrics, made on first use (after the fork, in a worker). They outlive a reload."""
    global _process_metrics
    if _process_metrics is None:
        _process_metrics = Metrics(decisions=decisions)
    return _process_metrics
