"""The `classify` stage: reads the request once and fills `Exchange.features` (task, difficulty, complexity,
tokens).

It runs before `cache`, `budget` and `route`, which read the features; the server copies task, complexity
and difficulty into `x-router-task` / `x-router-complexity` / `x-router-difficulty`. `Analyzer` is the whole
job (prompt extraction, token count, classification, and an exact recount when a routing threshold is near);
`route` uses it too when this stage is not in the pipeline. A request for a concrete model id is still
classified (for headers and metrics) but its tokens are only estimated: it is not rerouted.

Tokens: the prompt is first bounded without the tokenizer (`router.routing.tokens.estimate`: character
counts, or tokenizer samples for long texts). The tokenizer runs only when the band could change the
decision: a rule's `max_prompt_tokens` or a context window (`Policy.thresholds`) inside it, or a difficulty
cut point or rule bound (`Policy.difficulty_bounds`) between the difficulties at its ends (difficulty has a
prompt-size part) when a rule the request could match reads complexity or difficulty
(`Policy.complexity_matters`) and the band moves the difficulty by more than its own error (`BAND_LOGIT`);
otherwise the reported difficulty is the estimate's. `Features.tokens_exact`
says which. A dry run (`POST /v1/route`, `ai-router route`) counts the same way, so the preview shows what
the real call does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from router.catalog import is_auto, is_routed
from router.config import ConfigError
from router.exchange import CallNext, Exchange, Features, Reply
from router.formats.responses import native_only
from router.pipeline import Stage
from router.routing.classifier import Classifier
from router.routing.difficulty import Base, logit
from router.routing.policy import Policy
from router.routing.tokens import ENCODINGS, Prompt, TokenCount, count, count_exact, estimate, extract, get_encoding

BOUND_MARGIN = 0.01  # logit margin around a band's ends: a difficulty rounded onto a bound still counts
BAND_LOGIT = 1.0  # a token band moving the difficulty's logit less than this (±0.12 at most) is not recounted:
# the score's own error is larger, so the estimate's difficulty stands (hard limits are always counted)


class Analyzer:
    """Features of an exchange, computed with one config's classifier and policy."""

    def __init__(self, classifier: Classifier, policy: Policy, encoding: str) -> None:
        self.classifier = classifier
        self.difficulty = classifier.difficulty
        self.policy = policy
        self._bounds = [logit(b) for b in policy.difficulty_bounds]  # compared in logit space: no exp per check
        self.encoding = encoding  # its BPE loads on the first exact count (most requests only need a bound)

    def features(self, ex: Exchange) -> tuple[Features, Prompt]:
        prompt = extract(ex.endpoint, ex.body)
        tc = estimate(prompt, self.encoding)  # dry runs too: the preview shows what the real call does
        if ex.endpoint == "embeddings":  # nothing to classify: the task is the endpoint's
            return Features(task="embedding", tokens=tc.tokens, tokens_exact=tc.exact), prompt
        f, base = self.classifier.analyse(prompt, tc.tokens, ex.endpoint)
        if not tc.exact and is_routed(ex.client_model) and self._in_band(f, base, tc, ex):
            tc = count(prompt, self.encoding)  # exact when small, else sampled (a narrower band)
            if not tc.exact and self._in_band(f, base, tc, ex):
                n = count_exact(prompt, get_encoding(self.encoding))
                tc = TokenCount(n, True, n, n)
        if tc.tokens != f.tokens:  # `analyse` scored the difficulty at the estimate
            f.difficulty, f.complexity = self.difficulty.level(base, tc.tokens)
            f.tokens = tc.tokens
        f.tokens_exact = tc.exact
        if ex.endpoint == "responses" and self.policy.native_responses:
            f.needs_native = native_only(ex.body) is not None
        return f, prompt

    def _in_band(self, f: Features, base: Base, tc: TokenCount, ex: Exchange) -> bool:
        """Could the token band [low, high] change this request's routing (or its difficulty's level)?"""
        if is_auto(ex.client_model) and self.policy.complexity_matters(f.task):
            lo, hi = self.difficulty.logits(base, tc.low, tc.high)  # the logit grows with size
            lo -= BOUND_MARGIN
            hi += BOUND_MARGIN
            if hi - lo > BAND_LOGIT:  # a narrower band moves the difficulty less than its own error: no recount
                for b in self._bounds:
                    if lo <= b <= hi:
                        return True
        return self.policy.threshold_within(f, ex.tenant, ex.client_model, tc.low, tc.high)

    @staticmethod
    def recounter(ex: Exchange, prompt: Prompt | None = None) -> Callable[[str], int]:
        """`tokens_for(encoding)` for models whose tokenizer differs (upper bound), memoised per request."""
        memo: dict[str, int] = {}

        def tokens_for(encoding: str) -> int:
            nonlocal prompt
            if encoding not in memo:
                prompt = prompt or extract(ex.endpoint, ex.body)
                memo[encoding] = count(prompt, encoding).high
            return memo[encoding]

        return tokens_for


def build_analyzer(ctx: Any) -> Analyzer:
    """The classifier and policy of a context's config; config mistakes raise ConfigError with key paths."""
    routing = ctx.config.routing
    if routing.encoding not in ENCODINGS:
        raise ConfigError(f"routing.encoding: unknown encoding {routing.encoding!r} (known: {', '.join(ENCODINGS)})")
    for i, b in enumerate(ctx.config.backends):
        for j, m in enumerate(b.models):
            if m.encoding is not None and m.encoding not in ENCODINGS:
                raise ConfigError(
                    f"backends[{i}].models[{j}].encoding: unknown encoding {m.encoding!r} "
                    f"(known: {', '.join(ENCODINGS)})"
                )
    classifier = Classifier(routing.tasks, routing.complexity_cuts, routing.learned_difficulty, routing.encoding)
    policy = Policy(routing, ctx.catalog, ctx.config.tenants, classifier.names)
    return Analyzer(classifier, policy, routing.encoding)


class ClassifyStage(Stage):
    """Fill `ex.features` before the stages that read them."""

    name = "classify"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.analyzer = build_analyzer(ctx)

    def handle(self, ex: Exchange, call_next: CallNext) -> Awaitable[Reply]:
        ex.features = self.analyzer.features(ex)[0]
        return call_next(ex)  # before-only: hand back the rest's awaitable, adding no frame to the chain


