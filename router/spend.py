"""Spend reporting: `GET /admin/spend` and `ai-router spend`, both from the state store's ledger rollups.

`report(store, tenants, window, tenant)` builds, per tenant: spend today and this month, the budget and
what remains of it, requests, cache hits, failed attempts, cost next to what the same traffic would have
cost with every request on the highest tier (`baseline_usd`; local-GPU traffic counts as saved), and
the split by model and tier for the chosen window. `SpendAPI.get` serves it behind the admin gate;
`print_report` is the CLI's plain table.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from router.admin import AdminGate
from router.errors import InvalidRequest, ProxyError
from router.state import Store
from router.tenants import Tenants

WINDOWS = ("day", "month")


async def report(store: Store, tenants: Tenants | None, window: str = "day", tenant: str | None = None
                 ) -> dict[str, Any]:
    if window not in WINDOWS:
        raise InvalidRequest("window: expected day or month", param="window")
    day = {r.tenant: r for r in await store.spend("day", tenant=tenant)}
    month = {r.tenant: r for r in await store.spend("month", tenant=tenant)}
    chosen = day if window == "day" else month
    out = []
    for name in sorted(set(day) | set(month)):
        d, m, c = day.get(name), month.get(name), chosen.get(name)
        spec = tenants.get(name) if tenants is not None else None
        b = spec.budget if spec is not None else None
        spent = {"day": round(d.cost_usd, 10) if d else 0.0, "month": round(m.cost_usd, 10) if m else 0.0}
        budget = None
        remaining = None
        if b is not None:
            budget = {"daily_usd": b.daily_usd, "monthly_usd": b.monthly_usd, "per_request_usd": b.per_request_usd,
                      "soft_pct": b.soft_pct, "on_soft": b.on_soft, "on_hard": b.on_hard}
            remaining = {"day": None if b.daily_usd is None else round(b.daily_usd - spent["day"], 10),
                         "month": None if b.monthly_usd is None else round(b.monthly_usd - spent["month"], 10)}
        row = c.as_dict() if c else {"requests": 0, "cache_hits": 0, "failed_attempts": 0, "cost_usd": 0.0,
                                     "baseline_usd": 0.0, "savings_usd": 0.0, "by_model": {}, "by_tier": {}}
        out.append({
            "tenant": name, "window": window, "spend_usd": spent, "budget": budget, "remaining_usd": remaining,
            "requests": row["requests"], "cache_hits": row["cache_hits"], "failed_attempts": row["failed_attempts"],
            "cost_usd": row["cost_usd"], "baseline_usd": row["baseline_usd"], "savings_usd": row["savings_usd"],
            "by_model": row["by_model"], "by_tier": row["by_tier"],
        })
    return {"window": window, "tenants": out}


class SpendAPI:
    """`GET /admin/spend?window=day|month&tenant=T` (admin key as Bearer)."""

    def __init__(self, service_getter: Any) -> None:
        self.service = service_getter

    async def get(self, request: web.Request) -> web.Response:
        svc = self.service(request)
        admin: AdminGate = svc.admin
        try:
            admin.check(request.headers)
            body = await report(svc.ctx.store, svc.tenants, request.query.get("window", "day"),
                                request.query.get("tenant") or None)
        except ProxyError as e:
            return web.Response(status=e.status, body=e.body(), content_type="application/json")
        return web.Response(body=orjson.dumps(body), content_type="application/json")


def print_report(data: dict[str, Any]) -> str:
    """The report as a short plain table."""
    w = data["window"]
    lines = [f"{'tenant':<24} {'spend ' + w:>12} {'remaining':>12} {'requests':>9} {'cache hits':>10} "
             f"{'all-high-tier':>14} {'saved':>12}"]
    for t in data["tenants"]:
        rem = (t["remaining_usd"] or {}).get(w)
        lines.append(f"{t['tenant']:<24} {t['spend_usd'][w]:>12.6f} {'-' if rem is None else f'{rem:.6f}':>12} "
                     f"{t['requests']:>9} {t['cache_hits']:>10} {t['baseline_usd']:>14.6f} {t['savings_usd']:>12.6f}")
        for model, m in sorted(t["by_model"].items()):
            lines.append(f"  {model:<22} {m['cost_usd']:>12.6f} {'':>12} {m['requests']:>9} {m['cache_hits']:>10}")
    if not data["tenants"]:
        lines.append("(no spend recorded in this window)")
    return "\n".join(lines)
