"""Typed, numbered placeholders (`⟦EMAIL_1⟧`) and the per-request vault that maps them back.

One `Vault` per request: the same value always gets the same placeholder, numbered per kind in order of
appearance, so the same body always redacts the same way (a cache keyed on the original body stays
right). `redact_text` swaps a text's findings for placeholders; the vault keeps the originals (in memory,
for this request only) for restore and counts findings per kind for logs and metrics, never values.
"""

from __future__ import annotations

from router.redaction.scanner import Finding

OPEN = "⟦"  # U+27E6 MATHEMATICAL LEFT WHITE SQUARE BRACKET: rare in real text, one token-ish for models
CLOSE = "⟧"  # U+27E7


class Vault:
    __slots__ = ("_by_value", "_numbers", "counts", "values")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._numbers: dict[str, int] = {}
        self.values: dict[str, str] = {}  # "EMAIL_1" -> the original value
        self.counts: dict[str, int] = {}  # kind -> findings (occurrences, not distinct values)

    def __bool__(self) -> bool:
        return bool(self.values)

    def name_for(self, kind: str, value: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        key = (kind, value)
        name = self._by_value.get(key)
        if name is None:
            n = self._numbers.get(kind, 0) + 1
            self._numbers[kind] = n
            name = f"{kind}_{n}"
            self._by_value[key] = name
            self.values[name] = value
        return name

    def kinds(self) -> list[str]:
        return sorted(self.counts)


def redact_text(text: str, findings: list[Finding], vault: Vault) -> str:
    """The text with each finding replaced by its placeholder."""
    parts: list[str] = []
    last = 0
    for f in findings:
        parts.append(text[last:f.start])
        parts.append(OPEN + vault.name_for(f.kind, text[f.start:f.end]) + CLOSE)
        last = f.end
    parts.append(text[last:])
    return "".join(parts)
