"""Stage `budget`: per-tenant spend against daily, monthly and per-request budgets (tenant `budget`),
downgrading or refusing.

Wired into the pipeline at its place in the request's journey; its behaviour lands with its own issue.
Until then it is inactive (`active = False`), so the pipeline leaves it out of the chain and it costs
nothing per request.
"""

from __future__ import annotations

from router.pipeline import Stage


class BudgetStage(Stage):
    name = "budget"
    active = False
