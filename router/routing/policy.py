"""Policy: from a request's features to the ordered chain of models that may serve it.

`route` asks `Policy.decide` for a `Decision`: the first candidate is where the request goes, the rest is
the fallback chain `retry` walks on failure. The steps, each leaving a reason string for the preview:

1. What the client asked: `model: auto` (rules decide), `model: tier:NAME` (start at that tier), or a
   concrete id (only the backends serving it, no rerouting). `/v1/embeddings` goes to embedding models.
2. Rules (`routing.rules`), first match wins: `task`, `max_prompt_tokens`, `complexity` and
   `max_difficulty` (upper bounds), `min_difficulty` (a lower bound), `tenant` (glob), `has_tools`,
   `has_images`.
3. Low confidence (below `routing.min_confidence`) starts one tier higher.
4. Caps: the tenant's `max_tier` always; the client's `x-router-max-tier` unless the tenant sets
   `steering: false`; `Exchange.max_tier` (set by other stages, e.g. a budget downgrade).
   Then, for `model: auto`, the tenant's adaptive policy (router/routing/adaptive.py) may move the start
   tier between local and cloud, never above the cap.
5. Chain: the start tier, then the next tiers upward to the cap (`routing.tiers` order); in each tier only
   the models that fit (type, capabilities the request uses, context window for prompt + max_tokens),
   cheapest for this request first, ties to the lowest recent latency (untried backends first). Healthy
   candidates come before unhealthy ones. If nothing at or above the start tier fits, lower tiers are tried.
6. `x-router-prefer: local|cloud` (unless forbidden) moves candidates of that location to the front,
   reaching below the start tier when none is at or above it.

Nothing fits at all: `NoBackendAvailable` (503) saying why.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from router.catalog import Catalog, is_auto, is_routed
from router.config import COMPLEXITIES, ConfigError, Routing, Rule
from router.errors import InvalidRequest, NoBackendAvailable, PermissionDenied, ProxyError, echo
from router.exchange import Candidate, Decision, Features
from router.routing.adaptive import Adaptive

RANK = {c: i for i, c in enumerate(COMPLEXITIES)}
_NEW = object.__new__
PREFER_HEADER = "x-router-prefer"
MAX_TIER_HEADER = "x-router-max-tier"
LOCATIONS = ("local", "cloud")
MEMO_MAX = 4096  # entries of a per-tenant or per-(task, max_tokens) memo before it starts over


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """The part of a `tenants:` entry routing reads."""

    match: str
    steering: bool = True
    max_tier: str | None = None


def parse_tenants(raw: list[dict[str, Any]], tiers: list[str]) -> list[TenantPolicy]:
    """Validate the routing keys of `tenants:` (`steering`, `max_tier`); errors name the key path."""
    out = []
    for i, t in enumerate(raw):
        steering = t.get("steering", True)
        if not isinstance(steering, bool):
            raise ConfigError(f"tenants[{i}].steering: expected true or false")
        max_tier = t.get("max_tier")
        if max_tier is not None and max_tier not in tiers:
            raise ConfigError(f"tenants[{i}].max_tier: {max_tier!r} is not in routing.tiers ({', '.join(tiers)})")
        out.append(TenantPolicy(match=str(t["match"]), steering=steering, max_tier=max_tier))
    return out


def rule_text(i: int, r: Rule) -> str:
    conds = [f"task={r.task}"] if r.task else []
    if r.max_prompt_tokens is not None:
        conds.append(f"tokens<={r.max_prompt_tokens}")
    if r.complexity:
        conds.append(f"complexity<={r.complexity}")
    if r.min_difficulty is not None:
        conds.append(f"difficulty>={r.min_difficulty:g}")
    if r.max_difficulty is not None:
        conds.append(f"difficulty<={r.max_difficulty:g}")
    if r.tenant:
        conds.append(f"tenant~{r.tenant}")
    if r.has_tools is not None:
        conds.append(f"has_tools={str(r.has_tools).lower()}")
    if r.has_images is not None:
        conds.append(f"has_images={str(r.has_images).lower()}")
    return f"rule {i} ({', '.join(conds) or 'default'}) -> {r.tier}"


class Policy:
    """Rules, tiers and tenants compiled once; `decide()` is pure apart from reading backend health."""

    def __init__(
        self,
        routing: Routing,
        catalog: Catalog,
        tenants: list[dict[str, Any]] | None = None,
        tasks: list[str] | None = None,
    ) -> None:
        self.routing = routing
        self.catalog = catalog
        self.tiers = list(catalog.tiers)
        self.rank = dict(catalog.tier_rank)
        self.rules = list(routing.rules)
        self.tenants = parse_tenants(tenants or [], self.tiers)
        if tasks is not None:
            for i, r in enumerate(self.rules):
                if r.task is not None and r.task not in tasks:
                    raise ConfigError(f"routing.rules[{i}].task: unknown task {r.task!r} (known: {', '.join(tasks)})")
        self.adaptive: Adaptive | None = None  # set by `route`: the per-tenant feedback-driven layer
        self.contexts = sorted({c.model.context for c in catalog.all})
        self.embedders = [c for c in catalog.all if c.model.type == "embedding"]
        # a Responses request that needs OpenAI's state or tools goes to `capabilities: [responses]` models, if any
        self.native_responses = any("responses" in c.model.capabilities for c in catalog.all)
        # precomputed per request-independent piece: rule texts, rule conditions, each tier's candidates with
        # what the filters read (type, capabilities, context, another tokenizer?) and its static prices
        self._rule_texts = [rule_text(i, r) for i, r in enumerate(self.rules)]
        self._rule_conds = [
            (i, r, r.task, None if r.complexity is None else RANK[r.complexity], r.max_prompt_tokens,
             r.tenant is None and r.has_tools is None and r.has_images is None and r.min_difficulty is None
             and r.max_difficulty is None)
            for i, r in enumerate(self.rules)
        ]
        # a low-confidence bump per start tier: (the tier above, the reason's text after the confidence)
        mc = routing.min_confidence
        self._bump = {
            t: (self.tiers[i + 1], f" < min_confidence {mc:g}: {t} -> {self.tiers[i + 1]}")
            for i, t in enumerate(self.tiers[:-1])
        }
        self._no_rule = f"no rule matched -> {self.tiers[0]}" if self.tiers else ""
        self._cx_matters: dict[str | None, bool] = {}  # task -> can complexity change its rule (memoised)
        self._by_task: dict[str, list[Rule]] = {}  # task -> the rules that may match it, in order (memoised)
        self._conds_by_task: dict[str, list[Any]] = {}  # the same, as `_rule_conds` entries
        self._tenant_memo: dict[str, TenantPolicy | None] = {}  # tenant -> its policy (the first match)
        # task -> do the rules a request of it can match read only what its features key by (`_by_request`)
        self._pure_rules: dict[str, bool] = {}
        # (task, complexity, tools, images, output reserve) -> `thresholds` of an auto request of a pure task
        self._thresholds_memo: dict[tuple[str, str, bool, bool, int], list[int]] = {}
        self._sorted_memo: dict[tuple[str, str, bool, bool, int], tuple[int, ...]] = {}  # the same, sorted
        # (start, cap) -> the chain of a plain request (no images, tools, JSON mode or native Responses API)
        # that fits every candidate's context, when each tier keeps at most one model (so neither the prompt's
        # size nor latency can reorder it): (chain, why, smallest context, some model counts its own tokens)
        self._plain_chains: dict[tuple[int, int], tuple[list[Candidate], dict[str, int], int, bool] | None] = {}
        # the difficulties where a decision can flip: the complexity cuts and every rule's difficulty bounds
        self.difficulty_bounds = sorted(
            {*routing.complexity_cuts}
            | {b for r in self.rules for b in (r.min_difficulty, r.max_difficulty) if b is not None}
        )
        self._by_tier: dict[str, list[tuple[Candidate, str, frozenset[str], int, bool, float, float]]] = {
            t: [
                (c, c.model.type, frozenset(c.model.capabilities), c.model.context,
                 bool(c.model.encoding and c.model.encoding != routing.encoding),
                 c.model.price.input, c.model.price.output)
                for c in catalog.by_tier.get(t, ())
            ]
            for t in self.tiers
        }

    # ------------------------------------------------------------ rules and thresholds

    def tenant_policy(self, tenant: str | None) -> TenantPolicy | None:
        if tenant is None:
            return None
        memo = self._tenant_memo
        if tenant in memo:
            return memo[tenant]
        found = None
        for t in self.tenants:
            if fnmatchcase(tenant, t.match):
                found = t
                break
        if len(memo) >= MEMO_MAX:
            memo.clear()
        memo[tenant] = found
        return found

    def _matches(self, r: Rule, f: Features, tenant: str | None, tokens: bool = True) -> bool:
        return (
            (r.task is None or r.task == f.task)
            and (r.complexity is None or RANK.get(f.complexity, 0) <= RANK[r.complexity])
            and (r.tenant is None or (tenant is not None and fnmatchcase(tenant, r.tenant)))
            and (r.has_tools is None or r.has_tools == f.has_tools)
            and (r.has_images is None or r.has_images == f.has_images)
            and (r.min_difficulty is None or f.difficulty >= r.min_difficulty)
            and (r.max_difficulty is None or f.difficulty <= r.max_difficulty)
            and (not tokens or r.max_prompt_tokens is None or f.tokens <= r.max_prompt_tokens)
        )

    def match_rule(self, f: Features, tenant: str | None) -> tuple[int | None, Rule | None]:
        task, cx, tokens = f.task, RANK.get(f.complexity, 0), f.tokens
        conds = self._conds_by_task.get(task)
        if conds is None:  # the rules a request of this task can match, in order (memoised per task)
            conds = self._conds_by_task[task] = [c for c in self._rule_conds if c[2] is None or c[2] == task]
        for i, r, _task, r_cx, r_max, simple in conds:
            if r_cx is not None and cx > r_cx:
                continue
            if r_max is not None and tokens > r_max:
                continue
            if simple or self._matches(r, f, tenant):
                return i, r
        return None, None

    def complexity_matters(self, task: str | None) -> bool:
        """Can a request's difficulty (or the complexity read off it) change which rule a request of this task
        matches? False when no rule that could match it (up to the first one that matches any request of the
        task) has a `complexity`, `min_difficulty` or `max_difficulty`."""
        m = self._cx_matters.get(task)
        if m is None:
            m = False
            for r in self.rules:
                if r.task is not None and r.task != task:
                    continue
                if r.complexity is not None or r.min_difficulty is not None or r.max_difficulty is not None:
                    m = True
                    break
                if r.max_prompt_tokens is None and r.tenant is None and r.has_tools is None and r.has_images is None:
                    break  # matches every request of this task: the rules after it are never reached
            self._cx_matters[task] = m
        return m

    def thresholds(self, f: Features, tenant: str | None, client_model: str = "auto") -> list[int]:
        """Token counts where this request's routing could flip: the `max_prompt_tokens` of the rules that
        could match it (up to the first that matches whatever its size) and every context window less the
        output reserve. A concrete model id has none: it is not rerouted. The list (not to be changed) of an
        auto request whose task's rules read neither the tenant nor difficulty bounds is memoised by what they
        do read: task, complexity, tools, images (and the output reserve)."""
        if not is_routed(client_model):
            return []
        reserve = f.max_output_tokens or 0
        if not is_auto(client_model):
            return [c - reserve for c in self.contexts]
        pure = self._pure_rules.get(f.task)
        if pure is None:
            pure = self._pure_rules[f.task] = self._by_request(f.task)
        if not pure:
            return self._rule_thresholds(f, tenant) + [c - reserve for c in self.contexts]
        key = (f.task, f.complexity, f.has_tools, f.has_images, reserve)
        out = self._thresholds_memo.get(key)
        if out is None:
            if len(self._thresholds_memo) >= MEMO_MAX:
                self._thresholds_memo.clear()
            out = self._thresholds_memo[key] = self._rule_thresholds(f, tenant) + [c - reserve for c in self.contexts]
        return out

    def threshold_within(self, f: Features, tenant: str | None, client_model: str, low: int, high: int) -> bool:
        """Is one of `thresholds(f, tenant, client_model)` in [low, high)? For an auto request of a pure task
        (see `thresholds`) a sorted copy of the memoised list answers with one bisection."""
        if is_auto(client_model) and self._pure_rules.get(f.task):
            key = (f.task, f.complexity, f.has_tools, f.has_images, f.max_output_tokens or 0)
            ordered = self._sorted_memo.get(key)
            if ordered is None:
                if len(self._sorted_memo) >= MEMO_MAX:
                    self._sorted_memo.clear()
                ordered = self._sorted_memo[key] = tuple(sorted(self.thresholds(f, tenant, client_model)))
            i = bisect_left(ordered, low)
            return i < len(ordered) and ordered[i] < high
        for t in self.thresholds(f, tenant, client_model):  # noqa: SIM110 (no generator per call)
            if low <= t < high:
                return True
        return False

    def _rule_thresholds(self, f: Features, tenant: str | None) -> list[int]:
        """The `max_prompt_tokens` of the rules an auto request could match, up to the first that matches it
        whatever its size."""
        rules = self._by_task.get(f.task)
        if rules is None:
            rules = self._by_task[f.task] = [r for r in self.rules if r.task is None or r.task == f.task]
        out: list[int] = []
        for r in rules:
            if self._matches(r, f, tenant, tokens=False):
                if r.max_prompt_tokens is None:
                    break
                out.append(r.max_prompt_tokens)
        return out

    def _by_request(self, task: str) -> bool:
        """Do the rules a request of `task` can match read only its task, complexity, tools and images (no
        tenant, no difficulty bounds)? Then `_rule_thresholds` is a function of those."""
        return all(r.tenant is None and r.min_difficulty is None and r.max_difficulty is None
                   for r in self.rules if r.task is None or r.task == task)

    # ------------------------------------------------------------ candidates

    def _fits(self, c: Candidate, f: Features, kind: str, tokens_for: Callable[[str], int] | None) -> str | None:
        """Why a candidate cannot take the request, or None when it can."""
        m = c.model
        if m.type != kind:
            return "type"
        if kind == "chat":
            caps = m.capabilities
            if f.has_images and "vision" not in caps:
                return "vision"
            if f.has_tools and "tools" not in caps:
                return "tools"
            if f.wants_json and "json" not in caps:
                return "json"
            if f.needs_native and "responses" not in caps:
                return "responses"
        tokens = f.tokens
        if m.encoding and m.encoding != self.routing.encoding and tokens_for is not None:
            tokens = tokens_for(m.encoding)
        if tokens + (f.max_output_tokens or 0) > m.context:
            return "context"
        return None

    @staticmethod
    def _order(cands: list[Candidate], f: Features) -> list[Candidate]:
        out = f.max_output_tokens or 256

        def key(c: Candidate) -> tuple[float, float]:
            p = c.model.price
            lat = c.backend.latency_ms
            return (f.tokens * p.input + out * p.output, 0.0 if lat is None else lat)

        return sorted(cands, key=key)

    def _tier(self, tier: str, f: Features, kind: str, why: dict[str, int], tokens_for: Any) -> list[Candidate]:
        ok: list[tuple[float, float, Candidate]] = []
        out = f.max_output_tokens or 0
        need = f.tokens + out
        images, tools, json = f.has_images, f.has_tools, f.wants_json
        for c, mtype, caps, context, other_encoding, p_in, p_out in self._by_tier[tier]:
            reason = None
            if mtype != kind:
                reason = "type"
            elif kind == "chat" and (images or tools or json) and (
                (images and "vision" not in caps) or (tools and "tools" not in caps) or (json and "json" not in caps)
            ):
                reason = "vision" if images and "vision" not in caps else "tools" if tools and "tools" not in caps \
                    else "json"
            elif f.needs_native and "responses" not in caps:
                reason = "responses"
            elif other_encoding and tokens_for is not None:
                reason = self._fits(c, f, kind, tokens_for)
            elif need > context:
                reason = "context"
            if reason is None:
                lat = c.backend.latency_ms
                ok.append((f.tokens * p_in + (out or 256) * p_out, 0.0 if lat is None else lat, c))
            else:
                why[reason] = why.get(reason, 0) + 1
        if len(ok) == 1:
            return [ok[0][2]]
        ok.sort(key=_cost_latency)
        return [x[2] for x in ok]

    def _plain_chain(self, s: int, cap: int) -> tuple[list[Candidate], dict[str, int], int, bool] | None:
        """`_tier`'s chain over tiers[s..cap] for a plain chat request that fits every candidate's context
        (with the reasons it dropped the others), when no tier keeps two models; None when one does (their
        order then depends on the prompt's size and the backends' latency) or when nothing is left."""
        chain: list[Candidate] = []
        why: dict[str, int] = {}
        smallest = 1 << 62
        other = False
        for t in self.tiers[s : cap + 1]:
            kept = 0
            for c, mtype, _caps, context, other_encoding, _p_in, _p_out in self._by_tier[t]:
                if mtype != "chat":
                    why["type"] = why.get("type", 0) + 1
                    continue
                kept += 1
                chain.append(c)
                smallest = min(smallest, context)
                other = other or other_encoding
            if kept > 1:
                return None
        return (chain, why, smallest, other) if chain else None

    # ------------------------------------------------------------ the decision

    def decide(
        self,
        f: Features | None,
        *,
        endpoint: str = "chat",
        model: str = "auto",
        tenant: str | None = None,
        headers: Any = None,
        max_tier: str | None = None,
        prefer: str | None = None,
        tokens_for: Callable[[str], int] | None = None,
        live: bool = True,
    ) -> Decision:
        """The ordered candidates for one request, with the reasons. `headers` carry client steering;
        `max_tier`/`prefer` come from other stages and always apply. `tokens_for(encoding)` recounts the
        prompt for a model whose tokenizer differs from `routing.encoding`. `live` is False on a dry run
        (the adaptive layer then neither counts nor explores)."""
        reasons: list[str] = []
        kind, want = self.catalog.resolve(model)
        tp = None if tenant is None else self.tenant_policy(tenant)
        if headers:  # no headers (None or empty): no steering
            h_prefer, h_max = self._steering(headers, tp, reasons)
            prefer = prefer or h_prefer
        else:
            h_max = None
        if kind == "model":
            self._check_type(want or model, endpoint)
            return self._concrete(want or model, tp, reasons)
        if f is None:  # not classified (only a concrete model id may skip classification)
            f = Features()
        if endpoint == "embeddings":
            return self._embeddings(f, reasons, tokens_for)
        rule_i: int | None = None
        if kind == "tier":
            start = want or self.tiers[0]
            reasons.append(f"client asked for tier:{start}")
        else:
            rule_i, rule = self.match_rule(f, tenant)
            if rule is not None:
                start = rule.tier
                reasons.append(self._rule_texts[rule_i])  # type: ignore[index]
            else:
                start = self.tiers[0]
                reasons.append(self._no_rule)
            if f.confidence < self.routing.min_confidence and start in self._bump:
                bumped, why_text = self._bump[start]
                reasons.append("confidence %.2f%s" % (f.confidence, why_text))  # noqa: UP031 (faster than f"")
                start = bumped
        cap = len(self.tiers) - 1
        if (tp is not None and tp.max_tier is not None) or h_max is not None or max_tier is not None:
            for source, t in (
                ("tenant policy", tp.max_tier if tp else None),
                (MAX_TIER_HEADER, h_max),
                ("max tier set by an earlier stage", max_tier),
            ):
                if t is not None and t in self.rank and self.rank[t] < cap:
                    cap = self.rank[t]
                    reasons.append(f"{source}: max tier {t}")
        s = self.rank[start]
        if s > cap:
            reasons.append(f"{start} capped to {self.tiers[cap]}")
            s = cap
        if self.adaptive is not None and kind == "auto":
            s = self.adaptive.adjust(tenant, f, s, cap, reasons, live)
        kind_needed = "chat"
        plain = None
        if not (f.has_images or f.has_tools or f.wants_json or f.needs_native):
            plain = self._plain_chains.get((s, cap), False)
            if plain is False:
                plain = self._plain_chains[(s, cap)] = self._plain_chain(s, cap)
        if plain is not None and f.tokens + (f.max_output_tokens or 0) <= plain[2] and (
            tokens_for is None or not plain[3]
        ):
            chain, why = list(plain[0]), dict(plain[1])  # what `_tier` gives each tier, in one copy
        else:
            why = {}
            chain = []
            for t in self.tiers[s : cap + 1]:
                chain += self._tier(t, f, kind_needed, why, tokens_for)
        if chain and chain[0].tier != self.tiers[s]:
            reasons.append(f"no model in {self.tiers[s]} can take it ({_why(why)}): starting at {chain[0].tier}")
        below: list[Candidate] = []
        if not chain or prefer:
            for t in reversed(self.tiers[:s]):
                below += self._tier(t, f, kind_needed, why, tokens_for)
        if not chain:
            if not below:
                raise self._none_fits(f, why, cap)
            reasons.append(f"nothing at or above {self.tiers[s]} can take it ({_why(why)}): trying lower tiers")
            chain, below = below, []
        if prefer:
            chain = self._prefer(chain, below, prefer, reasons)
        d = _NEW(Decision)  # = Decision(candidates=..., reasons=..., rule=...), without the __init__'s own frame
        d.candidates = _healthy_first(chain, reasons)
        d.reasons = reasons
        d.rule = rule_i
        return d

    def _steering(self, headers: Any, tp: TenantPolicy | None, reasons: list[str]) -> tuple[str | None, str | None]:
        if headers is None:
            return None, None
        prefer = headers.get(PREFER_HEADER)
        max_tier = headers.get(MAX_TIER_HEADER)
        if prefer is None and max_tier is None:
            return None, None
        if tp is not None and not tp.steering:
            named = ", ".join(h for h, v in ((PREFER_HEADER, prefer), (MAX_TIER_HEADER, max_tier)) if v is not None)
            reasons.append(f"tenant policy ({tp.match}) forbids steering: ignored {named}")
            return None, None
        if prefer is not None:
            prefer = prefer.strip().lower()
            if prefer not in LOCATIONS:
                raise InvalidRequest(
                    f"{PREFER_HEADER}: expected local or cloud, got {echo(prefer)!r}", param=PREFER_HEADER
                )
        if max_tier is not None:
            max_tier = max_tier.strip().removeprefix("tier:")
            if max_tier not in self.rank:
                raise InvalidRequest(
                    f"{MAX_TIER_HEADER}: unknown tier {echo(max_tier)!r} (known: {', '.join(self.tiers)})",
                    param=MAX_TIER_HEADER,
                )
        return prefer, max_tier

    def _check_type(self, model_id: str, endpoint: str) -> None:
        """Embedding models serve only /v1/embeddings, and only they do: anything else is a 400."""
        mtype = self.catalog.by_id[model_id][0].model.type
        if (endpoint == "embeddings") == (mtype == "embedding"):
            return
        if endpoint == "embeddings":
            names = ", ".join(sorted({c.model.id for c in self.embedders})) or "none is configured"
            raise InvalidRequest(f"The model '{model_id}' is a chat model and cannot create embeddings; "
                                 f"embedding models: {names}.", param="model", code="model_not_embedding")
        raise InvalidRequest(f"The model '{model_id}' is an embedding model; it serves only /v1/embeddings.",
                             param="model", code="embedding_model")

    def _concrete(self, model_id: str, tp: TenantPolicy | None, reasons: list[str]) -> Decision:
        cands = list(self.catalog.by_id[model_id])
        tier = cands[0].tier
        if tp and tp.max_tier and tier in self.rank and self.rank[tier] > self.rank[tp.max_tier]:
            raise PermissionDenied(
                f"model {model_id!r} is in tier {tier}, above this tenant's max tier {tp.max_tier}", param="model"
            )
        reasons.append(f"client asked for model {model_id}: no rerouting")
        cands.sort(key=lambda c: 0.0 if c.backend.latency_ms is None else c.backend.latency_ms)
        return Decision(candidates=_healthy_first(cands, reasons), reasons=reasons, rule=None)

    def _embeddings(self, f: Features, reasons: list[str], tokens_for: Any) -> Decision:
        ok = [c for c in self.embedders if self._fits(c, f, "embedding", tokens_for) is None]
        if not ok:
            if not self.embedders:
                raise NoBackendAvailable("no embedding model is configured")
            raise InvalidRequest(
                f"no embedding model can take a {f.tokens}-token input "
                f"(largest context: {max(c.model.context for c in self.embedders)})",
                param="input", code="context_length_exceeded",
            )
        reasons.append("embeddings request: embedding models only, cheapest first")
        return Decision(candidates=_healthy_first(self._order(ok, f), reasons), reasons=reasons, rule=None)

    def _prefer(
        self, chain: list[Candidate], below: list[Candidate], prefer: str, reasons: list[str]
    ) -> list[Candidate]:
        first = [c for c in chain if c.model.location == prefer]
        if first:
            if first[0] is not chain[0]:
                reasons.append(f"{PREFER_HEADER}: {prefer}: {first[0].model.id} ({first[0].tier}) first")
            return first + [c for c in chain if c.model.location != prefer]
        lower = [c for c in below if c.model.location == prefer]
        if not lower:
            reasons.append(f"{PREFER_HEADER}: {prefer}: no {prefer} model can take it")
            return chain
        top = lower[0].tier
        pick = [c for c in lower if c.tier == top]
        reasons.append(f"{PREFER_HEADER}: {prefer}: {pick[0].model.id} ({top}), below the rule's tier")
        return pick + chain

    def _none_fits(self, f: Features, why: dict[str, int], cap: int) -> ProxyError:
        """Why nothing fits: a prompt (plus max_tokens) larger than every context is the client's 400
        `context_length_exceeded`, as OpenAI answers it; anything else is a 503."""
        chat = [c for c in self.catalog.all if c.model.type == "chat" and self.rank.get(c.tier or "", 99) <= cap]
        need = f.tokens + (f.max_output_tokens or 0)
        if chat and all(need > c.model.context for c in chat):
            extra = f" plus {f.max_output_tokens} output tokens" if f.max_output_tokens else ""
            return InvalidRequest(
                f"no model can take a {f.tokens}-token prompt{extra} "
                f"(largest context: {max(c.model.context for c in chat)})",
                param="max_tokens" if f.max_output_tokens else "messages", code="context_length_exceeded",
            )
        uses = [n for n, on in (("images", f.has_images), ("tools", f.has_tools), ("JSON mode", f.wants_json),
                                ("the Responses API's stored state or built-in tools", f.needs_native)) if on]
        scope = f" at or below tier {self.tiers[cap]}" if cap < len(self.tiers) - 1 else ""
        return NoBackendAvailable(
            f"no model{scope} can take this request (uses: {', '.join(uses) or 'text'}; {_why(why)})")


def _cost_latency(x: tuple[float, float, Candidate]) -> tuple[float, float]:
    return x[0], x[1]


def _why(why: dict[str, int]) -> str:
    names = {"vision": "no vision", "tools": "no tools", "json": "no JSON mode", "context": "context too small",
             "responses": "no native Responses API",
             "type": "wrong model type"}
    return ", ".join(f"{n} {names.get(k, k)}" for k, n in sorted(why.items())) or "no models"


def _healthy_first(chain: list[Candidate], reasons: list[str]) -> list[Candidate]:
    last = None  # a backend found healthy: the next candidates on it are too (health only improves with time)
    for c in chain:
        b = c.backend
        if b is not last:
            if not b.healthy:
                break
            last = b
    else:
        return chain
    healthy = [c for c in chain if c.backend.healthy]
    down = [c for c in chain if not c.backend.healthy]
    if chain and not chain[0].backend.healthy and healthy:
        reasons.append(f"backend {chain[0].backend.name} is unhealthy: {healthy[0].model.id} first")
    return healthy + down
