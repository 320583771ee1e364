"""Secret and PII redaction: the engine behind the `redact` stage (no aiohttp, no middleware imports).

    scanner.Scanner        one compiled RE2 pass per text over every detector
    detectors.DETECTORS    the kinds, their patterns and checks (checksums.py: Luhn, mod-97, CPF/CNPJ, SSN)
    body.BodyRedactor      every user string of a request body → a redacted copy + its Vault
    placeholders.Vault     ⟦KIND_N⟧ ↔ original value, per request; counts per kind (never values)
    restore.Restorer       originals back into a JSON answer; .stream() for SSE, split placeholders included
    policy.TenantPolicies  tenants[].redact: off | redact | block | local_only, apply_to, restore, kinds
"""

from router.redaction.body import BodyRedactor
from router.redaction.placeholders import Vault
from router.redaction.policy import RedactPolicy, TenantPolicies, parse_policy
from router.redaction.restore import RestoredStream, Restorer
from router.redaction.scanner import Finding, Scanner

__all__ = ["BodyRedactor", "Finding", "RedactPolicy", "RestoredStream", "Restorer", "Scanner", "TenantPolicies",
           "Vault", "parse_policy"]
