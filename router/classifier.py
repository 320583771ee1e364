"""Classification: what a request is about (task), how hard it looks (complexity), and how sure we are.
The built-in signal tables (triggers, keywords, complexity words) are data in `router/signals.py`.

`classify` (the stage) hands a request's `Prompt` (router.tokens) to `Classifier.classify`, which returns
the `Features` that `route` matches rules against and that the preview and the `x-router-task` /
`x-router-complexity` headers show. Pure CPU: word sets and regexes compiled once at construction, run over
a bounded view of the prompt (the head and tail of the last user message, the heads of the system prompt and
of recent turns), so a 100k-token prompt costs about what a 2k-token one does.

Scoring: every class sums the weights of the signals that fired (structural detectors such as code fences,
stack traces, diffs, SQL, shell, math notation, word problems, summarise/translate/rewrite/extract asks, a
question over a pasted passage; plus whole-word keyword hits). Signals from the last user message count in
full, those from the system prompt and earlier turns at half. `chat` starts with a prior, so a request with
no signal is chat. Confidence grows with the winner's margin over the runner-up and with its evidence.

The classes and their keywords are configurable under `routing.tasks` (`parse_tasks` validates it):

    routing:
      tasks:
        code:                       # a built-in class: these add to its built-in signals
          keywords: [terraform, "pull request"]   # whole words / phrases, case-insensitive, +weight each
          weak_keywords: [pipeline]               # +weight/2 each
          patterns: ['^\\s*resource "\\w+"']       # regexes (case-insensitive, multi-line), +2*weight each
        legal:                      # a new class: scored by its own keywords and patterns only
          keywords: [contract, clause, indemnify, liability]
          weight: 1.5               # multiplies this class's keyword and pattern scores (default 1)
        math: {replace: true, keywords: [...]}   # drop the built-in signals of a class
        docs: false                 # disable a built-in class

Complexity (`low|medium|high`) adds up: prompt size, "hard" asks (refactor, prove, architecture, …),
moderate asks (review, debug, explain, …), simplicity markers (quick, one-liner, …, negative), several code
blocks or files, conversation depth, a long system prompt, tools, JSON mode and a large `max_tokens`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from router.config import ConfigError
from router.exchange import Features
from router.signals import (
    ADVANCED_MATH,
    CODE_TOKENS,
    HARD,
    KEYWORDS,
    LONG_FORM,
    MODERATE,
    NEEDS,
    SIMPLE,
    STRUCTURAL,
    WORD_COUNT,
    Need,
)
from router.tokens import Prompt

BUILTIN_TASKS = ("code", "math", "docs", "chat")
DEFAULT_TASK = "chat"
CHAT_PRIOR = 1.0
CONTEXT_WEIGHT = 0.5  # signals from the system prompt and earlier turns
# the bounded view (see `_view`); 400 + 200 chars of the last user message classify the routing cases and the
# evaluation set as well as 600 + 300 did, with a third fewer words to split and hash
HEAD_CHARS, TAIL_CHARS, TURN_CHARS, MAX_TURNS = 400, 200, 200, 6
CONTEXT_MEMO = 1024  # the system prompt and earlier turns' evidence, memoised by their text
LOW_BELOW, HIGH_FROM = 1.25, 2.75
WINDOWS, WINDOW_BACK, WINDOW_AHEAD = 4, 64, 240  # where a structural regex runs around its trigger

_TASK_KEYS = ("keywords", "weak_keywords", "patterns", "weight", "replace")
_RX = re.IGNORECASE | re.MULTILINE
_WORD = re.compile(r"[a-z0-9_]+")
# everything but letters, digits and "_" becomes a space before splitting into words (ASCII punctuation only)
_SEPARATORS = "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~\t\n\r"
_SPLIT = str.maketrans({c: " " for c in _SEPARATORS})
# the same on UTF-8 bytes (ASCII bytes never occur inside a multi-byte sequence): bytes.translate is ~5x faster
_SPLIT_BYTES = bytes.maketrans(_SEPARATORS.encode(), b" " * len(_SEPARATORS))


def _word_set(lowered: str) -> set[str]:
    """The whole words of a (lower-cased) text: split on whitespace and ASCII punctuation but "_"."""
    if lowered.isascii():
        return set(lowered.encode().translate(_SPLIT_BYTES).decode().split())
    raw = lowered.encode("utf-8", "surrogatepass").translate(_SPLIT_BYTES)
    return set(raw.decode("utf-8", "surrogatepass").split())

_NUM = re.compile(r"[$:/.]?\d[\d.,:/]*%?")
_DIGITS = re.compile(r"\d[\d.,:/]*%?")  # _NUM without its optional prefix, which `_numbers` adds back
_DIGITS_ASCII = re.compile(r"[0-9][0-9.,:/]*%?")  # the same on ASCII text (a character class scans faster)
_NUM_WORDS = frozenset(
    ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "fifteen", "twenty",
     "thirty", "forty", "fifty", "hundred", "dozen", "twice", "thrice", "half", "double", "triple"]
)
_YEAR = re.compile(r"1[5-9]\d\d|20\d\d")
_SOURCE_FILE = re.compile(r"\b[\w/-]+\.(?:py|js|ts|tsx|go|rs|java|rb|cs|cpp|c|h|php|kt|swift|scala)\b")
_CODE_CHARS = "{}<>=;|\\*#@^~`_"
_NOT_CODE_CHARS = bytes(c for c in range(256) if chr(c) not in _CODE_CHARS)
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|my|me|we|our)\b")

# ---------------------------------------------------------------- config: routing.tasks


@dataclass(slots=True)
class TaskSpec:
    """One class's configured signals (beyond or instead of the built-ins)."""

    name: str
    keywords: list[str] = field(default_factory=list)
    weak_keywords: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    weight: float = 1.0
    replace: bool = False


def _strings(value: Any, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list of strings")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{path}[{i}]: expected a string")
    return [v.strip().lower() for v in value]


def parse_tasks(raw: Any, path: str = "routing.tasks") -> dict[str, TaskSpec | None]:
    """Validate `routing.tasks`; a None value means the class is disabled. Errors name the key path."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of task name to its signals")
    out: dict[str, TaskSpec | None] = {}
    for name, spec in raw.items():
        where = f"{path}.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise ConfigError(f"{where}: task names are lower-case words (a-z, 0-9, _ and -)")
        if spec is False:
            if name == DEFAULT_TASK:
                raise ConfigError(f"{where}: {DEFAULT_TASK!r} is the fallback class and cannot be disabled")
            out[name] = None
            continue
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise ConfigError(
                f"{where}: expected a mapping (keywords, weak_keywords, patterns, weight, replace) or false"
            )
        for key in spec:
            if key not in _TASK_KEYS:
                raise ConfigError(f"{where}.{key}: unknown key (expected one of {', '.join(_TASK_KEYS)})")
        patterns = spec.get("patterns")
        if patterns is not None and not isinstance(patterns, list):
            raise ConfigError(f"{where}.patterns: expected a list of strings")
        for i, p in enumerate(patterns or []):
            if not isinstance(p, str):
                raise ConfigError(f"{where}.patterns[{i}]: expected a string")
            try:
                re.compile(p, _RX)
            except re.error as e:
                raise ConfigError(f"{where}.patterns[{i}]: invalid regex ({e})") from None
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"{where}.weight: expected a number >= 0")
        replace = spec.get("replace", False)
        if not isinstance(replace, bool):
            raise ConfigError(f"{where}.replace: expected true or false")
        out[name] = TaskSpec(
            name=name,
            keywords=_strings(spec.get("keywords"), f"{where}.keywords"),
            weak_keywords=_strings(spec.get("weak_keywords"), f"{where}.weak_keywords"),
            patterns=list(patterns or []),
            weight=float(weight),
            replace=replace,
        )
    return out


# ---------------------------------------------------------------- the classifier
#
# Everything is indexed once at construction so that, per text, the work is one lower(), one translate+split
# into a word set, and C-level set intersections with the index keys: only the alternatives and keywords
# whose gate word occurs in the text are looked at.


class _Lexicon:
    """Keywords of several categories (task strong/weak, complexity vocabularies) indexed by word.

    Single words are a dict lookup; phrases are indexed by their first word and confirmed with a substring
    check and a word-boundary regex. `counts()` returns, per category, how many distinct keywords occur.
    """

    __slots__ = ("n", "phrase_keys", "phrases", "word_keys", "words")

    def __init__(self, categories: list[list[str]]) -> None:
        self.n = len(categories)
        words: dict[str, set[int]] = {}
        phrases: dict[str, set[int]] = {}
        for cat, keywords in enumerate(categories):
            for k in keywords:
                (words if _WORD.fullmatch(k) else phrases).setdefault(k, set()).add(cat)
        self.words: dict[str, tuple[int, ...]] = {w: tuple(sorted(c)) for w, c in words.items()}
        self.word_keys = frozenset(self.words)
        self.phrases: dict[str, list[tuple[tuple[int, ...], str, re.Pattern[str]]]] = {}
        for k, cats in phrases.items():
            # indexed by its longest word (the rarest-looking), which must be among the text's words too
            first = max(k.translate(_SPLIT).split() or [k], key=len)
            rx = re.compile(r"(?<![\w])" + re.escape(k) + r"(?![\w])")
            self.phrases.setdefault(first, []).append((tuple(sorted(cats)), k, rx))
        self.phrase_keys = frozenset(self.phrases)

    def counts(self, words: set[str], lowered: str) -> list[int]:
        out = [0] * self.n
        for w in self.word_keys & words:
            for c in self.words[w]:
                out[c] += 1
        for first in self.phrase_keys & words:
            for cats, phrase, rx in self.phrases[first]:
                if phrase in lowered and rx.search(lowered):
                    for c in cats:
                        out[c] += 1
        return out


# an alternative of a structural signal: (signal index, trigger, match on the original text?, regex or None,
# one ASCII punctuation byte of the trigger or None): a trigger with punctuation can only occur in a text whose
# punctuation bytes (`_punctuation`) hold that byte, so ungated alternatives are mostly skipped with a bytes `in`
_AltT = tuple[int, str, bool, "re.Pattern[str] | None", "int | None", "tuple[frozenset[str], ...] | None", bool]
_PUNCT = frozenset(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_NOT_PUNCT = bytes(c for c in range(256) if c not in _PUNCT)


_ALNUM_SPACE = bytes(c for c in range(128) if chr(c).isalnum() or c == 32)


def _punctuation(text: str) -> bytes:
    """A text's bytes but letters, digits and spaces: holds its ASCII punctuation bytes, in order (membership
    is all that is asked of it; a short delete table has no per-call set-up cost, unlike a 224-byte one)."""
    return text.encode("utf-8", "surrogatepass").translate(None, _ALNUM_SPACE)


def _required(trigger: str) -> int | None:
    """The rarest-looking ASCII punctuation byte of a trigger (None when it has none)."""
    marks = [c for c in trigger.encode() if c in _PUNCT]
    if not marks:
        return None
    common = b".,-'\"/:"
    rare = [c for c in marks if c not in common]
    return (rare or marks)[0]


def _parse_alt(sig: int, trigger: str, rx: str | None, need: Need | None = None) -> tuple[str | None, _AltT]:
    """(gate word or None, alternative). The longest word of a trigger must be in the text's word set before
    the text is scanned; a "~" trigger may sit inside a longer word and has no gate; "!" is case-sensitive."""
    original = trigger.startswith("!")
    trigger = trigger[1:] if original else trigger
    substring = trigger.startswith("~")
    trigger = trigger[1:] if substring else trigger
    parts = trigger.lower().translate(_SPLIT).split()
    gate = None if substring or not parts else max(parts, key=len)
    # the other words of a multi-word trigger that are whole words wherever the trigger occurs (not its first
    # or last unless a separator bounds it: "in three " occurs in "within three ") must be among the words too
    low = trigger.lower()
    whole = parts[1 if low[:1].translate(_SPLIT).strip() else 0 : len(parts) - (1 if low[-1:].translate(_SPLIT).strip()
                                                                                  else 0)]
    groups = [(w,) for w in dict.fromkeys(whole) if w != gate] if gate is not None else []
    groups += list(need or ())
    needs = tuple(frozenset(g) for g in groups) if groups else None
    # a regex that starts with its trigger (after an optional \b) can only match where the trigger occurs:
    # it is tried there (`_at`), not searched for around it
    at = rx is not None and bool(trigger) and (rx[2:] if rx.startswith("\\b") else rx).startswith(
        re.escape(trigger).replace("\\ ", " "))
    return gate, (sig, trigger, original, None if rx is None else re.compile(rx, re.MULTILINE), _required(trigger),
                  needs, at)


def _near(rx: re.Pattern[str], hay: str, trigger: str, i: int) -> bool:
    """Does `rx` match near one of the first WINDOWS occurrences of `trigger` (the first is at `i`)?"""
    for _ in range(WINDOWS):  # the regex runs near the first few occurrences of its trigger only
        if rx.search(hay, max(0, i - WINDOW_BACK), i + WINDOW_AHEAD):
            return True
        i = hay.find(trigger, i + 1)
        if i < 0:
            break
    return False


def _at(rx: re.Pattern[str], hay: str, trigger: str, i: int) -> bool:
    """Does `rx` (which starts with `trigger`) match at one of the first WINDOWS occurrences of `trigger`?"""
    match = rx.match
    for _ in range(WINDOWS):
        if match(hay, i, i + WINDOW_AHEAD):
            return True
        i = hay.find(trigger, i + 1)
        if i < 0:
            break
    return False


@dataclass(slots=True)
class _Task:
    name: str
    index: int
    signals: list[tuple[int, str, float]]  # (global signal index, name, weight)
    strong_weight: float
    weak_weight: float
    patterns: list[tuple[float, re.Pattern[str], str]]
    code_tokens: bool  # the built-in code class: the code_tokens signal applies
    keywords_key: str = ""
    pattern_key: str = ""


def _view(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


_CODE_BY_REQ: dict[int, list[str]] = {}
for _t in CODE_TOKENS:
    if _required(_t) is not None:
        _CODE_BY_REQ.setdefault(_required(_t), []).append(_t)  # type: ignore[arg-type]
_CODE_REQ_KEYS = frozenset(_CODE_BY_REQ)
_CODE_PLAIN = [t for t in CODE_TOKENS if _required(t) is None]
_HARD, _MODERATE, _SIMPLE, _LONG_FORM, _ADVANCED_MATH = range(5)
_HAS_DIGIT = re.compile(r"\d")
_FIND, _AT_START, _ANCHORED, _NON_ASCII = range(4)


class Classifier:
    """Built once from `routing.tasks`; `classify(prompt)` is pure and thread-safe."""

    def __init__(self, tasks: Any = None) -> None:
        specs = parse_tasks(tasks)
        self.tasks: list[_Task] = []
        names = [t for t in BUILTIN_TASKS if not (t in specs and specs[t] is None)]
        names += [n for n in specs if n not in BUILTIN_TASKS and specs[n] is not None]
        gated: dict[str, list[_AltT]] = {}
        ungated: list[_AltT] = []
        self._signal_count = 0
        categories: list[list[str]] = []  # 2*i: strong keywords of task i, 2*i+1: weak ones
        for ti, name in enumerate(names):
            spec = specs.get(name) or TaskSpec(name=name)
            builtin = name in BUILTIN_TASKS and not spec.replace
            kw, weak = KEYWORDS.get(name, ([], [])) if builtin else ([], [])
            signals = []
            for sig, task, w, alts in STRUCTURAL:
                if task != name or not builtin:
                    continue
                si = self._signal_count
                self._signal_count += 1
                signals.append((si, sig, w))
                for trigger, rx in alts:
                    gate, alt = _parse_alt(si, trigger, rx, NEEDS.get((sig, trigger)))
                    if gate is None:
                        ungated.append(alt)
                    else:
                        gated.setdefault(gate, []).append(alt)
            categories += [kw + spec.keywords, weak + spec.weak_keywords]
            self.tasks.append(
                _Task(
                    name=name,
                    index=ti,
                    signals=signals,
                    strong_weight=(1.0 if name == DEFAULT_TASK else 1.5) * spec.weight,
                    weak_weight=0.5 * spec.weight,
                    patterns=[(2.0 * spec.weight, re.compile(p, _RX), f"pattern:{name}") for p in spec.patterns],
                    code_tokens=name == "code" and bool(signals),
                    keywords_key=f"keywords:{name}",
                )
            )
        self._gated = gated
        self._gate_keys = frozenset(gated)
        # ungated alternatives with punctuation, by that byte; the rest (no gate, no punctuation) always run
        self._by_req: dict[int, list[_AltT]] = {}
        for alt in [a for a in ungated if a[4] is not None]:
            self._by_req.setdefault(alt[4], []).append(alt)  # type: ignore[arg-type]
        self._req_keys = frozenset(self._by_req)
        # the rest (no gate, no punctuation) always run; "" triggers run at the start of the text only
        self._always: list[tuple[int, str, bool, re.Pattern[str] | None, int]] = []
        for si, trigger, original, rx, req, _need, _at_trigger in ungated:
            if req is not None:
                continue
            mode = _FIND
            if not trigger and rx is not None and rx.pattern.startswith("\\A"):
                mode = _ANCHORED
            elif not trigger and rx is not None and re.fullmatch(r"\[[^\x00-\x7f\]]+\]", rx.pattern):
                mode = _NON_ASCII
            elif not trigger:
                mode = _AT_START
            self._always.append((si, trigger, original, rx, mode))
        # one lexicon, one pass: task keywords (2 categories per task), then the complexity vocabularies
        self._cx0 = len(categories)
        self._keywords = _Lexicon([*categories, HARD, MODERATE, SIMPLE, LONG_FORM, ADVANCED_MATH])
        self.names = [t.name for t in self.tasks]
        # the context part (system prompt, earlier turns) repeats across a conversation's requests
        self._context_evidence = lru_cache(maxsize=CONTEXT_MEMO)(self._evidence)

    # ------------------------------------------------------------ scoring

    def _fired_signals(self, text: str, lowered: str, words: set[str], punct: bytes) -> list[bool]:
        """Which structural signals fire in a text (only the alternatives whose gate word occurs are tried)."""
        on = [False] * self._signal_count
        for gate in self._gate_keys & words:
            for si, trigger, original, rx, req, need, at in self._gated[gate]:
                if on[si] or (req is not None and req not in punct) or (
                    need is not None and any(map(words.isdisjoint, need))
                ):
                    continue
                hay = text if original else lowered
                i = hay.find(trigger)
                if i >= 0 and (rx is None or (_at if at else _near)(rx, hay, trigger, i)):
                    on[si] = True
        for req in self._req_keys.intersection(punct):
            for si, trigger, original, rx, _req, need, at in self._by_req[req]:
                if on[si] or (need is not None and any(map(words.isdisjoint, need))):
                    continue
                hay = text if original else lowered
                i = hay.find(trigger)
                if i >= 0 and (rx is None or (_at if at else _near)(rx, hay, trigger, i)):
                    on[si] = True
        for si, trigger, original, rx, mode in self._always:
            if on[si]:
                continue
            hay = text if original else lowered
            if mode == _AT_START:  # "" trigger: the union of its windows at the start is one window
                if rx is None or rx.search(hay, 0, WINDOW_AHEAD + WINDOWS - 1):
                    on[si] = True
            elif mode == _ANCHORED:
                if rx.match(hay, 0, WINDOW_AHEAD + WINDOWS - 1):  # type: ignore[union-attr]
                    on[si] = True
            elif mode == _NON_ASCII:  # a class of non-ASCII characters cannot match ASCII text
                if not hay.isascii() and rx.search(hay, 0, WINDOW_AHEAD + WINDOWS - 1):  # type: ignore[union-attr]
                    on[si] = True
            else:
                i = hay.find(trigger)
                if i >= 0 and (rx is None or _near(rx, hay, trigger, i)):
                    on[si] = True
        return on

    def _evidence(
        self, text: str
    ) -> tuple[str, set[str], list[tuple[str, float]], list[tuple[str, float]], list[int]]:
        """(lowered, words, per-class scores, signals in firing order with their weights, lexicon counts) of a
        text, unscaled."""
        lowered = text.lower()
        words = _word_set(lowered)
        punct = _punctuation(text)
        on = self._fired_signals(text, lowered, words, punct) if self._signal_count else []
        kw = self._keywords.counts(words, lowered)
        task_ops: list[tuple[str, float]] = []
        fired: list[tuple[str, float]] = []
        for task in self.tasks:
            s = 0.0
            for si, name, w in task.signals:
                if on[si]:
                    s += w
                    fired.append((name, w))
            if task.code_tokens and _code_tokens(text, punct):
                s += 1.0
                fired.append(("code_tokens", 1.0))
            for w, rx, key in task.patterns:
                if rx.search(text):
                    s += w
                    fired.append((key, w))
            i = task.index * 2
            strong, weak = kw[i], kw[i + 1]
            if strong or weak:
                k = min(4.5, strong * task.strong_weight + min(2.0, weak * task.weak_weight))
                if k:
                    s += k
                    fired.append((task.keywords_key, k))
            task_ops.append((task.name, s))
        return lowered, words, task_ops, fired, kw

    def _score(
        self, text: str, factor: float, scores: dict[str, float], fired: dict[str, float], memo: bool = False
    ) -> tuple[str, set[str], list[int]]:
        """Add a text's evidence, times `factor`, to `scores` and `fired`; `memo`: look it up in the LRU first."""
        lowered, words, task_ops, fired_ops, kw = (self._context_evidence if memo else self._evidence)(text)
        for name, w in fired_ops:
            fired[name] = fired.get(name, 0.0) + w * factor
        for name, v in task_ops:
            scores[name] = scores.get(name, 0.0) + v * factor
        return lowered, words, kw

    def classify(self, prompt: Prompt, tokens: int = 0, endpoint: str = "chat") -> Features:
        """Features of a request: task, complexity, confidence, signals (tokens are filled by the caller)."""
        f, base = self.analyse(prompt, tokens, endpoint)
        f.complexity = complexity_level(base, tokens)
        return f

    def analyse(self, prompt: Prompt, tokens: int = 0, endpoint: str = "chat") -> tuple[Features, float]:
        """`classify` without the size part of complexity: (features, complexity score before size).

        `complexity_level(score, tokens)` finishes it, so a caller holding only a token band can tell whether
        the band's ends give the same complexity."""
        f = Features(tokens=tokens)
        f.has_tools = bool(prompt.tools)
        f.has_images = bool(prompt.image_tokens)
        f.wants_json = prompt.wants_json
        f.max_output_tokens = prompt.max_output
        scores: dict[str, float] = {}
        fired: dict[str, float] = {}
        last, context = _split_turns(prompt)
        last_view = _view(last)
        lowered, words, kw = self._score(last_view, 1.0, scores, fired)
        numbers = self._numbers(last_view, words, scores, fired)
        self._passage(last_view, numbers, scores, fired)
        if context:
            self._score(context, CONTEXT_WEIGHT, scores, fired, memo=True)
        if DEFAULT_TASK in scores:
            scores[DEFAULT_TASK] += CHAT_PRIOR
        if endpoint == "embeddings" or not scores:
            task, top, second = DEFAULT_TASK, CHAT_PRIOR, 0.0
        else:
            # the highest score wins; ties go to chat, then to the first class in order
            top = max(scores.values())
            task = ""
            for name, v in scores.items():
                if v == top and (not task or name == DEFAULT_TASK):
                    task = name
            second = 0.0
            if len(scores) > 1:
                second = -1e300
                for name, v in scores.items():
                    if name != task and v > second:
                        second = v
        f.task = task
        margin = (top - second) / (top + second) if top > 0 else 0.0
        evidence = min(1.0, top / 3.0)
        f.confidence = round(min(1.0, 0.35 + 1.5 * margin) * (0.8 + 0.2 * evidence), 3)
        f.signals = sorted(fired, key=fired.__getitem__, reverse=True)
        return f, self._complexity(prompt, f, last_view, lowered, kw, fired)

    def _numbers(self, view: str, words: set[str], scores: dict[str, float], fired: dict[str, float]) -> int:
        """Quantities (not years) plus a question about them make a word problem."""
        nums = [n for n in _numbers(view) if not _YEAR.fullmatch(n)] if _has_digit(view) else []
        num_words = _NUM_WORDS.intersection(words)
        if num_words:
            nums += num_words
        if "math" not in scores or not nums:
            return len(nums)
        if len(nums) == 1:
            if "word_problem" in fired:  # "how many liters are in 3.5 gallons?"
                scores["math"] += 1.5
                fired["word_problem"] += 1.5
            return 1
        asks = "word_problem" in fired or view.rstrip().endswith("?")
        if asks:
            scores["math"] += 3.0
            fired["word_problem"] = fired.get("word_problem", 0.0) + 3.0
        elif len(nums) >= 3 and any(n[0] == "$" or n[-1] == "%" for n in nums):
            scores["math"] += 1.5
            fired["quantities"] = 1.5
        return len(nums)

    def _passage(self, view: str, numbers: int, scores: dict[str, float], fired: dict[str, float]) -> None:
        """A short ask plus a pasted prose passage is docs work (answer, extract or rewrite from it)."""
        if "docs" not in scores or "```" in view:
            return
        ask, sep, rest = view.strip().partition("\n")
        if not sep or len(ask) > 400:
            rest, sep, ask = view.rstrip().rpartition("\n")
            if not sep or len(ask) > 400:
                return
        rest = rest.strip()
        if len(rest) < 200 or rest.count(". ") + rest.count(".\n") + rest.endswith(".") < 1:
            return
        sample = rest[:2000]
        code_chars = (len(sample.encode().translate(None, _NOT_CODE_CHARS)) if sample.isascii()
                      else sum(map(sample.count, _CODE_CHARS)))
        if code_chars / len(sample) > 0.02:
            return
        words = sample.count(" ") + 1
        if numbers * 8 > words:
            return  # a quantitative problem, not a pasted document
        for n, _ in enumerate(_FIRST_PERSON.finditer(sample), 1):  # stops as soon as there are enough
            if n * 40 > words:
                return  # the user's own story, not a pasted document
        scores["docs"] += 4.0
        fired["context_passage"] = 4.0
        if "word_problem" in fired and len(_numbers(ask)) < 2:
            scores["math"] -= fired.pop("word_problem")  # "how many ..." over a passage asks to read it

    def _complexity(
        self, prompt: Prompt, f: Features, view: str, lowered: str, kw: list[int], fired: dict[str, float]
    ) -> float:
        """The complexity score of everything but the prompt's size (see `complexity_level`)."""
        score = 0.0
        x = self._cx0
        c = kw
        score += (min(3.0, 1.5 * c[x + _HARD]) + min(1.5, 0.75 * c[x + _MODERATE])
                  - min(1.0, 0.5 * c[x + _SIMPLE]))
        long_form = c[x + _LONG_FORM]
        if "word" in lowered and WORD_COUNT.search(lowered):
            long_form += 1
        if (long_form and "compose" in fired) or long_form > 1:
            score += 1.5
            f.signals.append("long_form")
        if c[x + _ADVANCED_MATH]:
            score += 1.5
            f.signals.append("advanced_math")
        if "stack_trace" in fired:
            score += 1.5
        if "code_fence" in fired or "code_syntax" in fired:
            score += 0.5
        if "file_paths" in fired and len(set(_SOURCE_FILE.findall(view))) >= 3:
            score += 1.5
            f.signals.append("many_files")
        if "diff" in fired:
            score += 1.0
        if "proof" in fired:
            score += 2.0
        turns = sum(1 for r in prompt.roles if r in ("user", "assistant"))
        if turns >= 6:
            score += 1.0 if turns < 12 else 2.0
            f.signals.append(f"depth:{turns}")
        if len(prompt.system) > 800:
            score += 0.5
            f.signals.append("long_system_prompt")
        elif prompt.system:
            f.signals.append("system_prompt")
        if prompt.tools:
            score += 0.5 if len(prompt.tools) < 5 else 1.0
            f.signals.append(f"tools:{len(prompt.tools)}")
        if prompt.wants_json:
            score += 0.5
            f.signals.append("response_format:json")
        if prompt.image_tokens:
            f.signals.append(f"images:{len(prompt.image_tokens)}")
        if prompt.max_output:
            score += 1.5 if prompt.max_output >= 4000 else 0.75 if prompt.max_output >= 1500 else 0.0
            score -= 0.5 if prompt.max_output <= 200 else 0.0
            f.signals.append(f"max_tokens:{prompt.max_output}")
        return score


def size_score(tokens: int) -> float:
    """The prompt-size part of the complexity score."""
    t = tokens
    return 0.0 if t < 150 else 0.5 if t < 500 else 1.5 if t < 1500 else 2.0 if t < 4000 else 3.0


def complexity_level(score: float, tokens: int) -> str:
    """`low|medium|high` from the size-less complexity score (`Classifier.analyse`) and the prompt's tokens."""
    score += size_score(tokens)
    return "low" if score < LOW_BELOW else "medium" if score < HIGH_FROM else "high"


_NOT_DIGIT = bytes(c for c in range(256) if not 48 <= c <= 57)


def _has_digit(text: str) -> bool:
    if text.isascii():  # deleting the digits shortens it (a short delete table: no per-call set-up cost)
        return len(text.encode().translate(None, b"0123456789")) != len(text)
    return _HAS_DIGIT.search(text) is not None


def _code_tokens(text: str, punct: bytes) -> bool:
    """At least two distinct code-ish punctuation marks or identifiers (CODE_TOKENS) occur."""
    seen = False
    for req in _CODE_REQ_KEYS.intersection(punct):
        for t in _CODE_BY_REQ[req]:
            if t in text:
                if seen:
                    return True
                seen = True
    for t in _CODE_PLAIN:
        if t in text:
            if seen:
                return True
            seen = True
    return False


def _numbers(text: str) -> list[str]:
    """Quantities in a text: integers, decimals, money and percentages; not times, dates, paths, IPs or versions."""
    out: list[str] = []
    prev = 0
    if text.isascii():  # start the scan at the first digit (str.find is memchr), with an ASCII-only class
        first = -1
        for d in "0123456789":
            i = text.find(d)
            if i >= 0 and (first < 0 or i < first):
                first = i
        if first < 0:
            return out
        found = _DIGITS_ASCII.finditer(text, first)
    else:
        found = _DIGITS.finditer(text)
    for m in found:  # = _NUM.findall(text), but the scan starts at digits (about 2x faster)
        start, n = m.start(), m.group()
        if start > prev and text[start - 1] in "$:/.":
            n = text[start - 1] + n
        prev = m.end()
        if n[0] in ":/." or ":" in n or "/" in n:
            continue
        n = n.rstrip(".,")
        if n.count(".") < 2:
            out.append(n)
    return out


def _split_turns(prompt: Prompt) -> tuple[str, str]:
    """The last user message, and a bounded view of the system prompt and recent earlier turns."""
    roles, contents = prompt.roles, prompt.contents
    last_i = len(roles) - 1
    if last_i < 0:
        return "", ""
    if roles[last_i] != "user":
        for i in range(last_i - 1, -1, -1):
            if roles[i] == "user":
                last_i = i
                break
    if last_i == 1 and roles[0] == "system" and prompt.system:  # the common shape: [system, user]
        return contents[1], prompt.system[:TURN_CHARS]
    parts = [contents[i][:TURN_CHARS] for i in range(max(0, last_i - MAX_TURNS), last_i) if roles[i] != "system"]
    if prompt.system:
        parts.append(prompt.system[:TURN_CHARS])
    return contents[last_i], "\n".join(parts)
