"""Stage `redact`: secret and PII redaction before a prompt leaves for a cloud backend, and restoring
values in the answer (tenant `redact` policy).

Wired into the pipeline at its place in the request's journey; its behaviour lands with its own issue.
Until then it is inactive (`active = False`), so the pipeline leaves it out of the chain and it costs
nothing per request.
"""

from __future__ import annotations

from router.pipeline import Stage


class RedactStage(Stage):
    name = "redact"
    active = False
