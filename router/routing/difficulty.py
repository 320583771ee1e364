"""Difficulty: the estimated probability that the local tier's answer would be worse than the cloud tier's.

The classifier (`router.routing.classifier`) hands over the evidence it has already gathered for a request
(task scores, fired signals, complexity vocabulary counts, request shape); `Difficulty` turns it into a
size-free logit once per request, and `Difficulty.score(base, tokens)` adds the prompt-size part and squashes
it into [0, 1]. Keeping the size apart lets the classify stage bound the token count first and count exactly
only when a cut point or a rule's difficulty bound lies inside the band.

`complexity` is read off the difficulty through the configured cut points (`routing.complexity_cuts`,
default `DEFAULT_CUTS`): below the first is `low`, below the second `medium`, else `high`, so rules written
against `complexity` keep their meaning and rules may also bound `difficulty` directly.
"""

from __future__ import annotations

import math

DEFAULT_CUTS = (0.35, 0.65)
# the logit is linear in the classifier's complexity score: its old level boundaries (1.25 and 2.75) map
# onto the default cut points, so `complexity` is what it was before difficulty existed
_SCALE, _CENTRE = 0.825, 2.0


def size_score(tokens: int) -> float:
    """The prompt-size part of the complexity score."""
    t = tokens
    return 0.0 if t < 150 else 0.5 if t < 500 else 1.5 if t < 1500 else 2.0 if t < 4000 else 3.0


def level(difficulty: float, cuts: tuple[float, float] = DEFAULT_CUTS) -> str:
    """`low|medium|high` of a difficulty under the cut points."""
    return "low" if difficulty < cuts[0] else "medium" if difficulty < cuts[1] else "high"


class Difficulty:
    """The difficulty model: built once, `score()` is pure."""

    __slots__ = ("cuts",)

    def __init__(self, cuts: tuple[float, float] = DEFAULT_CUTS) -> None:
        self.cuts = (float(cuts[0]), float(cuts[1]))

    def score(self, base: float, tokens: int) -> float:
        """Difficulty in [0, 1] from the size-free base (`Classifier.analyse`) and the prompt's tokens."""
        z = _SCALE * (base + size_score(tokens) - _CENTRE)
        return round(1.0 / (1.0 + math.exp(-z)), 3)

    def level(self, base: float, tokens: int) -> tuple[float, str]:
        """(difficulty, complexity) of a request."""
        d = self.score(base, tokens)
        return d, level(d, self.cuts)
