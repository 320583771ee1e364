"""Stage `redact`: secrets and PII never reach an upstream the tenant's policy forbids; restore in answers.

Glue between the Exchange and `router.redaction`. Before the rest of the pipeline it scans every user
string of the body once (the tenant's `redact` policy, else the stage's options). With findings:
- `block` with `apply_to: all` refuses at once: 400 `sensitive_data_blocked` naming the kinds, never values;
- `local_only` sets `ex.local_only`, so `route` keeps local candidates only (503 when none can serve);
- otherwise the choice is made per attempt, at dispatch, by `Egress` (`ex.egress`), since only then is
  the backend known (and `retry` may move to another): a cloud backend gets the redacted copy, or the
  400 under `block`; a local one gets the client's own bytes under `apply_to: cloud`; under `local_only`
  a cloud target is refused again (fail closed).
After: with `restore: true` the answer gets the originals back: the JSON body in one byte pass, a stream
through a `RestoredStream` only when redacted text was sent (or the reply did not come from an upstream,
e.g. a cache hit). Findings are counted per kind in `ex.findings` for the access log and metrics.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from router.errors import InvalidRequest, NoBackendAvailable
from router.exchange import CallNext, Candidate, Exchange, Reply
from router.pipeline import Stage
from router.redaction import BodyRedactor, RedactPolicy, RestoredStream, Restorer, Scanner, TenantPolicies, Vault
from router.redaction.policy import parse_policy


def describe(counts: dict[str, int]) -> str:
    return ", ".join(k if n == 1 else f"{k} x{n}" for k, n in sorted(counts.items()))


def blocked(counts: dict[str, int]) -> InvalidRequest:
    return InvalidRequest(
        f"This request contains secrets or personal data ({describe(counts)}), which this tenant's policy does "
        "not allow to be sent to a cloud model. Remove them and try again.", code="sensitive_data_blocked")


class Egress:
    """Per request: which body the chosen backend gets, decided at dispatch for each attempt."""

    __slots__ = ("calls", "original", "policy", "raw", "redacted", "sent_redacted", "vault")

    def __init__(self, policy: RedactPolicy, ex: Exchange, redacted: dict[str, Any], vault: Vault) -> None:
        self.policy = policy
        self.original = ex.body
        self.raw = ex.raw
        self.redacted = redacted
        self.vault = vault
        self.calls = 0
        self.sent_redacted = False

    def __call__(self, ex: Exchange, target: Candidate) -> None:
        self.calls += 1
        location = target.model.location
        mode = self.policy.policy
        if mode == "local_only" and location != "local":
            raise NoBackendAvailable("This request may only go to local models (redaction policy local_only); "
                                     "it was not sent to a cloud model.", code="local_only_unavailable")
        if mode == "local_only" or not self.policy.applies_to(location):
            ex.body, ex.raw, self.sent_redacted = self.original, self.raw, False
            return
        if mode == "block":
            raise blocked(self.vault.counts)
        ex.body, ex.raw, self.sent_redacted = self.redacted, None, True


class RedactStage(Stage):
    name = "redact"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx)
        default = parse_policy(options, "pipeline.redact.options") if options else RedactPolicy()
        self.policies = TenantPolicies(ctx.config.tenants, default)
        self.active = self.policies.any_active
        scanners = {k: Scanner(kinds=k) for k in {p.kinds for _, p in self.policies.rules} | {default.kinds}}
        self.redactors = {(p.kinds, p.allow): BodyRedactor(scanners[p.kinds], p.allow)  # compiled once per kinds set
                          for p in [default, *(p for _, p in self.policies.rules)]}
        self._plans: dict[str | None, tuple[RedactPolicy, BodyRedactor | None]] = {}  # tenant -> its policy, redactor

    def _plan(self, tenant: str | None) -> tuple[RedactPolicy, BodyRedactor | None]:
        """The tenant's policy and the redactor it uses (None: off), looked up once per tenant."""
        policy = self.policies.for_tenant(tenant)
        plan = policy, self.redactors[policy.kinds, policy.allow] if policy.active else None
        if len(self._plans) >= 10_000:  # as bounded as TenantPolicies' own memo
            self._plans.clear()
        self._plans[tenant] = plan
        return plan

    def handle(self, ex: Exchange, call_next: CallNext) -> Awaitable[Reply]:
        policy, redactor = self._plans.get(ex.tenant) or self._plan(ex.tenant)
        if redactor is None:
            return call_next(ex)
        found = redactor.redact(ex.body, ex.raw)
        if found is None:  # the common case: nothing found, nothing kept (no vault, no restorer)
            return call_next(ex)
        redacted, vault = found
        ex.findings = vault.counts
        if policy.policy == "block" and policy.apply_to == "all":
            raise blocked(vault.counts)
        if policy.policy == "local_only":
            ex.local_only = True
        egress = ex.egress = Egress(policy, ex, redacted, vault)
        if not policy.restore or policy.policy != "redact":
            return call_next(ex)
        return self._restoring(ex, call_next, egress)

    async def _restoring(self, ex: Exchange, call_next: CallNext, egress: Egress) -> Reply:
        reply = await call_next(ex)
        restorer = Restorer(egress.vault.values)
        if reply.stream is not None:
            if egress.sent_redacted or egress.calls == 0:  # only a stream that can hold placeholders
                reply.stream = RestoredStream(reply.stream, restorer)
        elif reply.body:
            reply.body = restorer.body(reply.body)
        return reply
