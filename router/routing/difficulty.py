"""Difficulty: the estimated probability that the local tier's answer would be worse than the cloud tier's.

The classifier (`router.routing.classifier`) gathers the evidence once per request (the task, the fired
signals, counts of the difficulty vocabularies in `router.routing.signals`, quantities, the request's shape)
and hands it to `Difficulty.base`, which returns the size-free part: a logit and how much the prompt's size
weighs for this task. `Difficulty.score(base, tokens)` adds the size part and squashes it into [0, 1].
Keeping the size apart lets the classify stage bound the token count first and count exactly only when a cut
point or a rule's difficulty bound lies between the difficulties at the band's ends.

What raises it is what breaks 7-14B models: multi-step math and word problems (ratios, quantities defined
through one another, a story in stages), proofs and advanced math, logic puzzles and analysis, labelled
statements to judge one by one, writing or fixing non-trivial code (algorithms, concurrency, parsers: not
the mere presence of code), instructions with many constraints, expert domains, long pasted material, deep
conversations. What lowers it: greetings and short questions, simple asks ("quick", "what is"),
single-step arithmetic, rewriting, translating or summarising short text. Each task starts from its
own prior (`PRIORS`), so math and reasoning start high and docs and chat low.

`complexity` is read off the difficulty through the cut points (`routing.complexity_cuts`, default
`DEFAULT_CUTS`): below the first is `low`, below the second `medium`, else `high`, so rules written against
`complexity` keep their meaning and rules may also bound `difficulty` directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import orjson

DEFAULT_CUTS = (0.35, 0.65)
# task -> (prior logit, weight of log2(tokens / 64), weight of log2(tokens / 2048) above 2048 tokens): the size
# part. Short prompts rank by length within math (longer word problems have more steps); for chat and docs
# only long material counts. Other (configured) tasks use `_OTHER`.
PRIORS: dict[str, tuple[float, float, float]] = {
    "code": (-1.1, 0.3, 0.3),
    "math": (1.0, 0.9, 0.0),
    "reasoning": (0.9, 0.3, 0.3),
    "docs": (-1.9, 0.2, 0.45),
    "chat": (-1.7, 0.2, 0.45),
}
_OTHER = (-1.0, 0.3, 0.4)
# per ratio word, relation between quantities and stage word, in math and reasoning (capped at 3 each)
FRACTION_W, RELATION_W, STEP_W = 0.5, 0.6, 0.3
STATEMENTS_W = 1.0  # "Statement 1 | ... Statement 2 | ...": judge each of several labelled claims
_SIZE_MIN, _SIZE_MAX = -0.678, 9.0  # log2(tokens / 64): 40 tokens .. 32k tokens (shorter prompts: no size signal)
Base = tuple[float, float, float]  # (size-free logit, weights of the size part)


WEIGHTS = "difficulty_weights.json"  # package data in router/data, written by `python -m bench.train_difficulty`
# what the learned layer reads: the shape of the ask, not its words (a word list learnt from three public tables
# memorised their topics: "vacation", "beach", "dog" ranked hard because MMLU's moral scenarios mention them)
FEATURES = (
    "words",  # log2(words + 1) of the bounded view the classifier reads
    "sentences",  # sentence ends (". ", "?", "!") in the view, capped at 12, / 4: steps of a problem, parts of an ask
    "questions",  # question marks (capped at 3)
    "fractions",  # ratio words: half, third, twice, percent, ... (capped at 3)
    "relations",  # quantities defined through one another: more than, times as, remaining, ... (capped at 3)
    "negations",  # not, except, false, least, never, ... (capped at 3): a question that asks for the exception
    "statements",  # labelled statements or scenarios to judge ("Statement 1 | ...")
)


@dataclass(frozen=True, slots=True)
class LearnedLayer:
    """A logistic regression over the request's structure (`FEATURES`), trained offline on the public outcome
    tables; its logit (centred per task, scaled per task, clipped) is added to the hand-tuned one, so it ranks
    requests within what the task priors and signals already say rather than replacing them. A task's scale
    may be 0: `math`'s, whose hand-tuned branch already weighs the same length, ratio and relation words
    (added again, they count twice: held-out GSM8K 0.650 -> 0.647)."""

    weights: tuple[float, ...]  # one per FEATURES
    tasks: dict[str, tuple[float, float]]  # per task: (centre: the mean raw logit over its training prompts, scale)
    default: tuple[float, float]  # (centre, scale) of a task not in `tasks`
    clip: float

    def raw(self, x: Sequence[float]) -> float:
        """The layer's uncentred logit for a request's feature values (in `FEATURES` order)."""
        w = self.weights
        return (w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3] + w[4] * x[4] + w[5] * x[5]
                + w[6] * x[6])

    def logit(self, task: str, raw: float) -> float:
        """The layer's contribution to the difficulty's logit for a request of `task`."""
        centre, scale = self.tasks.get(task, self.default)
        z = scale * (raw - centre)
        return self.clip if z > self.clip else -self.clip if z < -self.clip else z


@lru_cache(maxsize=1)
def learned_layer() -> LearnedLayer:
    """The shipped weights (read once per process)."""
    doc = orjson.loads(resources.files("router").joinpath("data", WEIGHTS).read_bytes())
    weights = doc["features"]
    if sorted(weights) != sorted(FEATURES):
        raise ValueError(f"{WEIGHTS}: expected weights for {', '.join(FEATURES)}")
    scale = float(doc["scale"])
    scales = {t: float(v) for t, v in doc.get("task_scales", {}).items()}
    centres = {t: float(v) for t, v in doc["centres"].items()}
    tasks = {t: (c, scales.get(t, scale)) for t, c in centres.items() if t != "*"}
    for t, v in scales.items():
        tasks.setdefault(t, (centres["*"], v))
    return LearnedLayer(tuple(float(weights[f]) for f in FEATURES), tasks, (centres["*"], scale), float(doc["clip"]))


def round3(x: float) -> float:
    """`round(x, 3)`, the same float, without the decimal conversion `round` makes (a tenth of its cost).

    For 0 < x < 1000 not within 1e-6 of a tie: x * 1000 lies within 2**-33 of the exact product, so the
    nearest integer r is the one `round` finds (half to even on the exact value), and r / 1000 (a correctly
    rounded division) is the float nearest the decimal r/1000, which is what `round` returns. Anything else
    (ties, zeros of either sign, negatives, large values, nan) goes to `round` itself."""
    if 0.0 < x < 1000.0:
        y = x * 1000.0
        r = int(y + 0.5)
        d = y - r
        if -0.499999 < d < 0.499999:
            return r / 1000
    return round(x, 3)


def logit(p: float) -> float:
    """The logit of a difficulty (clamped away from 0 and 1)."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def level(difficulty: float, cuts: tuple[float, float] = DEFAULT_CUTS) -> str:
    """`low|medium|high` of a difficulty under the cut points."""
    return "low" if difficulty < cuts[0] else "medium" if difficulty < cuts[1] else "high"


# what fired signals add to the base's logit, in the order they are added: (signals of which any counts, weight)
_SIGNAL_WEIGHTS: tuple[tuple[frozenset[str], float], ...] = (
    (frozenset(("proof",)), 1.5),
    (frozenset(("math_notation",)), 0.5),
    (frozenset(("logic_puzzle",)), 1.0),
    (frozenset(("statements",)), STATEMENTS_W),  # several labelled statements or scenarios, each judged alone
    (frozenset(("reasoning_ask", "analysis")), 0.6),
    (frozenset(("diff",)), 0.5),
    (frozenset(("many_files",)), 1.0),
    (frozenset(("letter_constraint",)), 2.0),  # a lipogram, every word with one initial: letters a model cannot see
)
_BASE_SIGNALS = frozenset().union(*(names for names, _w in _SIGNAL_WEIGHTS))  # most requests fire none of them


class Difficulty:
    """The difficulty model: built once; `base()` and `score()` are pure."""

    __slots__ = ("cuts", "learned")

    def __init__(self, cuts: tuple[float, float] = DEFAULT_CUTS, learned: bool = True) -> None:
        self.cuts = (float(cuts[0]), float(cuts[1]))
        self.learned = learned_layer() if learned else None

    def base(
        self,
        task: str,
        fired: dict[str, float],
        vocab: tuple[int, ...],
        numbers: int,
        words: int,
        shape: tuple[int, int, int, bool, int | None],
        learned: float = 0.0,
    ) -> Base:
        """The size-free part of a request's difficulty.

        `vocab`: distinct hits of (hard, moderate, simple, long_form, advanced_math, constraints, expert,
        algorithmic, fractions, relations, steps) phrases; `numbers`: quantities in the last message (capped);
        `words`: its length in words; `shape`: (conversation turns, system prompt chars, tools, JSON mode,
        max_tokens); `learned`: the learned layer's raw logit for the request's structure (`LearnedLayer.raw`)."""
        hard, moderate, simple, long_form, advanced, constraints, expert, algorithmic, fractions, relations, steps = (
            vocab)
        z, size_w, long_w = PRIORS.get(task, _OTHER)
        transform = task == "docs" and fired and ("translate" in fired or "summarize" in fired or "rewrite" in fired)
        if transform:
            hard = expert = advanced = 0  # transforming a text is as easy in a specialist field as anywhere
        analytic = task == "math" or task == "reasoning"
        # min(x, 3) as conditionals (the same ints): no builtin call per count
        z += 0.7 * (hard if hard < 3 else 3) + 0.35 * (moderate if moderate < 3 else 3)
        if simple and (words <= 25 or not analytic):  # "just", "small" in a long word problem say nothing
            z -= (0.3 if analytic else 0.6) * (simple if simple < 2 else 2)
        if long_form:
            z += 0.3
        if constraints > 1:
            z += min(2.5, 0.8 * (constraints - 1))
        if expert:
            z += 0.3 + 0.8 * min(expert, 3)  # one specialist term already says a lot about a question
        if fired and not _BASE_SIGNALS.isdisjoint(fired):  # one set test for the usual request
            for names, w in _SIGNAL_WEIGHTS:
                if not names.isdisjoint(fired):
                    z += w
        if advanced:
            z += 1.2
        writes_code = "code_write" in fired
        if analytic:
            # the steps of a word problem: ratios (half, twice, percent), quantities defined through one another
            # ("3 more than", "twice as many", "the rest") and a story in stages ("first", "then") are what a small
            # model drops or chains wrongly
            z += (FRACTION_W * (fractions if fractions < 3 else 3) + RELATION_W * (relations if relations < 3 else 3)
                  + STEP_W * (steps if steps < 3 else 3))
            if numbers <= 2 and task == "math" and words <= 14 and not advanced and "proof" not in fired:
                z -= 2.0  # single-step arithmetic or a unit conversion
        elif task == "code":
            if algorithmic:
                z += 0.6 * min(algorithmic, 3)
            if writes_code and (algorithmic or hard or moderate or words > 20):
                z += 0.8  # writing code that has to get something non-trivial right (a one-line ask is not)
            elif words <= 12 and "code_fence" not in fired and "stack_trace" not in fired:
                z -= 0.8  # a short how-to ("how do I reverse a list in Python?")
            if "stack_trace" in fired:
                size_w *= 0.5  # a pasted traceback is long, not hard
        else:
            if words <= 6:
                z -= 0.5  # a greeting, a thank-you, a one-line question
            if "context_passage" in fired and not transform and "extract" not in fired:
                z += 0.8  # a question to reason out over pasted material (not summarise, translate or extract it)
                size_w = 0.45
            if not transform and (expert or hard or "keywords:reasoning" in fired or "analysis" in fired
                                  or "reasoning_ask" in fired):
                size_w = 0.45  # a question that needs thought: the more material it is about, the harder
        turns, system_chars, tools, wants_json, max_output = shape
        if turns >= 6:
            z += 0.3 if turns < 12 else 0.6
        if system_chars > 800:
            z += 0.3
        if tools:
            z += 0.3 if tools < 5 else 0.6
        if wants_json:
            z += 0.3
        if max_output:
            z += 0.6 if max_output >= 4000 else 0.3 if max_output >= 1500 else -0.3 if max_output <= 200 else 0.0
        layer = self.learned
        if layer is not None:  # = z += layer.logit(task, learned), inlined
            centre, scale = layer.tasks.get(task, layer.default)
            y = scale * (learned - centre)
            clip = layer.clip
            z += clip if y > clip else -clip if y < -clip else y
        return z, size_w, long_w

    @staticmethod
    def logit(base: Base, tokens: int) -> float:
        """The difficulty's logit: the size-free base plus the size part."""
        z, size_w, long_w = base
        size = math.log2(tokens / 64) if tokens > 0 else _SIZE_MIN
        z += size_w * (_SIZE_MIN if size < _SIZE_MIN else _SIZE_MAX if size > _SIZE_MAX else size)
        if size > 5.0:  # above 2048 tokens: long material
            z += long_w * (size - 5.0 if size < _SIZE_MAX else _SIZE_MAX - 5.0)
        return z

    @staticmethod
    def logits(base: Base, low: int, high: int) -> tuple[float, float]:
        """(`logit(base, low)`, `logit(base, high)`) in one call."""
        z0, size_w, long_w = base
        size = math.log2(low / 64) if low > 0 else _SIZE_MIN
        z = z0 + size_w * (_SIZE_MIN if size < _SIZE_MIN else _SIZE_MAX if size > _SIZE_MAX else size)
        if size > 5.0:
            z += long_w * (size - 5.0 if size < _SIZE_MAX else _SIZE_MAX - 5.0)
        size = math.log2(high / 64) if high > 0 else _SIZE_MIN
        y = z0 + size_w * (_SIZE_MIN if size < _SIZE_MIN else _SIZE_MAX if size > _SIZE_MAX else size)
        if size > 5.0:
            y += long_w * (size - 5.0 if size < _SIZE_MAX else _SIZE_MAX - 5.0)
        return z, y

    @staticmethod
    def score(base: Base, tokens: int) -> float:
        """Difficulty in [0, 1] from the size-free base and the prompt's tokens."""
        z = Difficulty.logit(base, tokens)
        return 0.0 if z < -30.0 else round3(1.0 / (1.0 + math.exp(-z)))

    def level(self, base: Base, tokens: int) -> tuple[float, str]:
        """(difficulty, complexity) of a request: `score` and `level`, inlined (it runs once or twice per
        request)."""
        z, size_w, long_w = base
        size = math.log2(tokens / 64) if tokens > 0 else _SIZE_MIN
        z += size_w * (_SIZE_MIN if size < _SIZE_MIN else _SIZE_MAX if size > _SIZE_MAX else size)
        if size > 5.0:
            z += long_w * (size - 5.0 if size < _SIZE_MAX else _SIZE_MAX - 5.0)
        d = 0.0 if z < -30.0 else round3(1.0 / (1.0 + math.exp(-z)))  # = round(..., 3)
        cuts = self.cuts
        return d, "low" if d < cuts[0] else "medium" if d < cuts[1] else "high"
