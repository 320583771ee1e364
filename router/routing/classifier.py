"""Classification: what a request is about (task), how hard it is (difficulty, complexity), how sure we are.
The built-in signal tables (triggers, keywords, difficulty vocabularies) are data in `router/routing/signals.py`.

`classify` (the stage) hands a request's `Prompt` (router.routing.tokens) to `Classifier.classify`, which returns
the `Features` that `route` matches rules against and that the preview and the `x-router-task` /
`x-router-complexity` / `x-router-difficulty` headers show. The built-in classes are `code`, `math`,
`reasoning` (puzzles, logic, analysis, planning), `docs` and `chat`, with English, Portuguese and Spanish
signals. Pure CPU: word sets and regexes compiled once at construction, run over
a bounded view of the prompt (the head and tail of the last user message, the heads of the system prompt and
of recent turns), so a 100k-token prompt costs about what a 2k-token one does.

Scoring: every class sums the weights of the signals that fired (structural detectors such as code fences,
stack traces, diffs, SQL, shell, math notation, word problems, summarise/translate/rewrite/extract asks, a
question over a pasted passage; plus whole-word keyword hits). Signals from the last user message count in
full, those from the system prompt and earlier turns at half. `chat` starts with a prior, so a request with
no signal is chat. Confidence grows with the winner's margin over the runner-up and with its evidence.

Follow-ups (`_follow_up`): a last user message of at most FOLLOW_UP_WORDS words after an earlier user turn,
firing none of the transform or greeting signals itself (summarise, translate, rewrite, extract, compose,
thanks), continues the thread's task ("now in C++", "what if it were 72 cm?", "why?"): its difficulty base
becomes the size-free `(thread logit, 0, 0)` when that is the higher, and `follow_up` joins its signals. The
thread logit is what `analyse` gives the conversation cut just after the previous user message, at that
cut's token estimate, less FOLLOW_UP_DISCOUNT once per chain (a follow-up of a follow-up inherits the
discounted logit of the ask the chain started with), memoised per conversation. A request with one user
message takes one length check for all this.

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

Difficulty: the same scan counts the difficulty vocabularies (hard and moderate asks, simplicity markers,
constraints, expert terms, algorithmic terms, long-form and advanced-math words) and the learned layer's
structural vocabularies (ratio, relation and negation words, in the same packed counts); `analyse`
hands them with the task, the fired signals and the request's shape to `router.routing.difficulty`, which
owns the weights. `complexity` is read off the difficulty through `routing.complexity_cuts`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import islice
from math import log2
from operator import add as _add
from typing import Any

from router.config import ConfigError, check_keys
from router.exchange import Features
from router.routing.difficulty import DEFAULT_CUTS, Base, Difficulty, round3
from router.routing.signals import (
    ADVANCED_MATH,
    ALGORITHMIC,
    CODE_TOKENS,
    CONSTRAINTS,
    EXPERT,
    FRACTIONS,
    HARD,
    KEYWORDS,
    LONG_FORM,
    MARKS,
    MODERATE,
    NEEDS,
    NEGATIONS,
    PREFILTERS,
    RELATIONS,
    SIMPLE,
    STATEMENT_WORDS,
    STATEMENTS,
    STEP_WORDS,
    STRUCTURAL,
    WORD_COUNT,
    Need,
)
from router.routing.textscan import SPLIT as _SPLIT
from router.routing.textscan import SPLIT_BYTES as _SPLIT_BYTES
from router.routing.textscan import scanner
from router.routing.tokens import DEFAULT_ENCODING, REPLY_PRIMING, TOKENS_PER_MESSAGE, Prompt, estimate

BUILTIN_TASKS = ("code", "math", "reasoning", "docs", "chat")
DEFAULT_TASK = "chat"
CHAT_PRIOR = 1.0
CONTEXT_WEIGHT = 0.5  # signals from the system prompt and earlier turns
GREETING_CHARS, PREAMBLE_WEIGHT = 60, 0.5  # a greeting in a longer message is a preamble: it weighs less
# the bounded view (see `_view`); 400 + 200 chars of the last user message classify the routing cases and the
# evaluation set as well as 600 + 300 did, with a third fewer words to split and hash
HEAD_CHARS, TAIL_CHARS, TURN_CHARS, MAX_TURNS = 400, 200, 200, 6
CONTEXT_MEMO = 1024  # the system prompt and earlier turns' evidence, memoised by their text
WINDOWS, WINDOW_BACK, WINDOW_AHEAD = 4, 64, 240  # where a structural regex runs around its trigger
# follow-ups (`_follow_up`): a last user message of at most FOLLOW_UP_WORDS words after an earlier user turn
# ("now in C++", "what if it were 72?", "why?") continues that turn's task; 30 words hold a changed parameter
# or a new constraint, while a longer message is taken as an ask of its own
FOLLOW_UP_WORDS = 30
FOLLOW_UP_DISCOUNT = 0.5  # logit: a follow-up is a little easier than the ask it follows (the work is laid out)
# a chain of follow-ups is followed back at most this many user turns in one request (each hop scores the
# conversation up to an earlier turn; the memo usually holds them already): a bounded recursion and cost
FOLLOW_UP_HOPS = 8
THREAD_MEMO = 1024  # thread logits, memoised by a digest of the conversation up to the previous user message
# the last message's own signals that make a follow-up a light job of its own: transforming the answer
# (summarise, translate, rewrite, extract, compose something from it), or thanks and greetings
_TRANSFORMS = frozenset(("summarize", "translate", "rewrite", "compose", "extract", "greeting"))
_NOT_THREADS = frozenset(("embeddings", "completions"))  # several inputs or prompts there are not turns

_TASK_KEYS = ("keywords", "weak_keywords", "patterns", "weight", "replace")
_RX = re.IGNORECASE | re.MULTILINE
# words: split on whitespace, ASCII punctuation but "_" and some non-ASCII punctuation (router.routing.textscan)

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
_FIRST_PERSON = frozenset((b"I", b"my", b"me", b"we", b"our"))  # case-sensitive words ("I'm" splits to "I", "m")
_FIRST_PERSON_LOWER = frozenset(w.lower() for w in _FIRST_PERSON)  # in the vocabulary: the scan says if any occurs
_WORD_WORDS = frozenset((b"word", b"words"))  # WORD_COUNT's words (in the vocabulary)
# bytes looked for in `marks` by value: `int in bytes` is a byte test, `bytes in bytes` first fails an int
# conversion (an exception raised and cleared: ~2k instructions)
_DOLLAR, _PERCENT = ord("$"), ord("%")

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
        check_keys(spec, _TASK_KEYS, where)
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
# Everything is indexed once at construction, by word, in one vocabulary (`_vocab`: every word any table asks
# about: keywords, phrase and structural index words, the words regexes need, number words, step words). Per
# text the character work is one scan (router.routing.textscan: one C pass over an ASCII text when the
# extension is built) giving the lower-cased text, the vocabulary words among its words (`hits`, ~10-30), its
# marks, the keyword counts per category, the structural alternatives and keyword phrases its words index,
# the punctuation the unindexed alternatives ask about and whether two code tokens occur; set operations on
# `hits` answer the rest (whether the words an alternative's regex needs occur, step words, ...).

_DIGIT_BYTES = b"0123456789"
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NUM_WORDS_B = frozenset(w.encode() for w in _NUM_WORDS)
# words common enough that a structural alternative is better indexed by a rarer word it needs (`_index_words`)
_COMMON = frozenset(
    b"a an the to in of for at on by and or is are was were be it this that these my me you your i we how what any "
    b"all out more less make one two three few many much long from using with if do give help find write create "
    b"show work only should think list based the his her their its".split()
)
# an alternative of a structural signal: (signal index, trigger, match on the original text?, regex or None,
# one ASCII punctuation byte of the trigger or None, groups of words of which one each must occur or None,
# how the regex is tried near the trigger: `_at`, `_near_lines` or `_near`)
_AltT = tuple[int, str, bool, "re.Pattern[str] | None", "int | None", "tuple[frozenset[bytes], ...] | None", Any]
_PUNCT = frozenset(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _required(trigger: str) -> int | None:
    """The rarest-looking ASCII punctuation byte of a trigger (None when it has none)."""
    marks = [c for c in trigger.encode() if c in _PUNCT]
    if not marks:
        return None
    common = b".,-'\"/:"
    rare = [c for c in marks if c not in common]
    return (rare or marks)[0]


def _parse_alt(
    sig: int, trigger: str, rx: str | None, need: Need | None = None, mark: str | None = None,
    prefilters: tuple[str, ...] | None = None,
) -> tuple[bytes | None, _AltT]:
    """(gate word or None, alternative). The longest word of a trigger must be among the text's words before
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
    needs = tuple(frozenset(w.encode() for w in g) for g in groups) if groups else None
    # a regex that starts with its trigger (after an optional \b) can only match where the trigger occurs:
    # it is tried there (`_at`), not searched for around it
    at = rx is not None and bool(trigger) and (rx[2:] if rx.startswith("\\b") else rx).startswith(
        re.escape(trigger).replace("\\ ", " "))
    compiled = None if rx is None else re.compile(rx, re.MULTILINE)
    scan = _at if at else _near_lines if compiled is not None and _line_anchored(compiled) else _near
    if prefilters and scan in (_near, _near_lines):  # a filtered window is searched (^ still holds: MULTILINE)
        scan = partial(_near_filtered, [re.compile(p, re.MULTILINE).search for p in prefilters])
    req = _required(trigger) or (ord(mark) if mark else None)
    return None if gate is None else gate.encode(), (sig, trigger, original, compiled, req, needs, scan)


def _index_words(gate: bytes, needs: tuple[frozenset[bytes], ...] | None) -> tuple[frozenset[bytes], tuple | None]:
    """Which word group indexes an alternative (one of its words must occur for it to be tried) and the groups
    still to check: its gate, unless a group it needs holds no common word ("to" + a language: the language)."""
    groups = [frozenset([gate]), *(needs or ())]
    best = min(range(len(groups)), key=lambda i: sum(1.0 if w in _COMMON else 0.01 for w in groups[i]))
    rest = tuple(g for i, g in enumerate(groups) if i != best)
    return groups[best], rest or None


def _near(rx: re.Pattern[str], hay: str, trigger: str, i: int) -> bool:
    """Does `rx` match near one of the first WINDOWS occurrences of `trigger` (the first is at `i`)?"""
    for _ in range(WINDOWS):  # the regex runs near the first few occurrences of its trigger only
        if rx.search(hay, max(0, i - WINDOW_BACK), i + WINDOW_AHEAD):
            return True
        i = hay.find(trigger, i + 1)
        if i < 0:
            break
    return False


def _near_filtered(pres: list[Any], rx: re.Pattern[str], hay: str, trigger: str, i: int) -> bool:
    """`_near` for a regex that cannot match a window where none of `pres` does (see signals.PREFILTERS)."""
    for search in pres:  # one pass over the (bounded) text first: most texts hold none of them anywhere
        if search(hay):
            break
    else:
        return False
    for _ in range(WINDOWS):
        lo, hi = max(0, i - WINDOW_BACK), i + WINDOW_AHEAD
        for search in pres:
            if search(hay, lo, hi):
                if rx.search(hay, lo, hi):
                    return True
                break
        i = hay.find(trigger, i + 1)
        if i < 0:
            break
    return False


def _near_lines(rx: re.Pattern[str], hay: str, trigger: str, i: int) -> bool:
    """`_near` for a regex every branch of which starts with "^" (multi-line): it can only match at a line start,
    so it is tried (anchored) at the line starts of each window instead of searched at every position."""
    match, find = rx.match, hay.find
    for _ in range(WINDOWS):
        lo, hi = max(0, i - WINDOW_BACK), i + WINDOW_AHEAD
        if lo == 0 or hay[lo - 1] == "\n":
            p = lo
        else:
            p = find("\n", lo, hi)
            p = -1 if p < 0 else p + 1
        while p >= 0:
            if match(hay, p, hi):
                return True
            p = find("\n", p, hi)
            p = -1 if p < 0 else p + 1
        i = find(trigger, i + 1)
        if i < 0:
            break
    return False


def _line_anchored(rx: re.Pattern[str]) -> bool:
    """Does every top-level branch of a (multi-line) regex start with "^"?"""
    from re import _constants as k  # type: ignore[attr-defined]
    from re import _parser

    def anchored(items: Any) -> bool:
        if not len(items):
            return False
        op, arg = items[0]
        if op is k.AT:
            return arg is k.AT_BEGINNING
        if op is k.BRANCH:
            return all(anchored(b) for b in arg[1])
        if op is k.SUBPATTERN:
            return anchored(arg[-1])
        return False

    return bool(rx.flags & re.MULTILINE) and anchored(_parser.parse(rx.pattern, rx.flags))


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
class _Threads:
    """The encoding a follow-up's thread is estimated in, and the memo of thread logits (`_thread_logit`)."""

    encoding: str
    logits: dict[int, float]  # digest of a conversation up to an earlier user turn -> its thread logit


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


_VIEW_CHARS = HEAD_CHARS + 1 + TAIL_CHARS  # the length of a cut view (`_view`)
_VIEW_MAX = HEAD_CHARS + TAIL_CHARS  # longer texts are cut
_NEW = object.__new__


def _view(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


_HAS_DIGIT = re.compile(r"\d")
_FIND, _AT_START, _ANCHORED, _NON_ASCII = range(4)
_PLAIN = (1, 0, 0, False, None)  # the shape of a one-message request with nothing else: turns, system, tools, ...
# fired signals are ordered as the classes are, then: structural signals, code_tokens, patterns, keywords
_SLOT, _CODE_SLOT, _PATTERN_SLOT, _KEYWORD_SLOT = 4096, 1024, 2048, 3072


class Classifier:
    """Built once from `routing.tasks`; `classify(prompt)` is pure and thread-safe."""

    def __init__(self, tasks: Any = None, cuts: tuple[float, float] = DEFAULT_CUTS, learned: bool = True,
                 encoding: str = DEFAULT_ENCODING) -> None:
        specs = parse_tasks(tasks)
        self.difficulty = Difficulty(cuts, learned)
        # a follow-up's thread is scored at its own token estimate, in this encoding (`_thread_logit`), and
        # memoised. One attribute for both: CPython 3.11 shares the keys of an instance dict of up to 29
        # attributes; a 30th one made every `self.x` slower (+0.7% instructions per request, measured)
        self._threads = _Threads(encoding, {})
        self.tasks: list[_Task] = []
        names = [t for t in BUILTIN_TASKS if not (t in specs and specs[t] is None)]
        names += [n for n in specs if n not in BUILTIN_TASKS and specs[n] is not None]
        gated: list[tuple[bytes, _AltT]] = []
        ungated: list[_AltT] = []
        sig_task: list[int] = []
        sig_names: list[str] = []
        sig_weights: list[float] = []
        categories: list[list[str]] = []  # 2*i: strong keywords of task i, 2*i+1: weak ones
        for ti, name in enumerate(names):
            spec = specs.get(name) or TaskSpec(name=name)
            builtin = name in BUILTIN_TASKS and not spec.replace
            kw, weak = KEYWORDS.get(name, ([], [])) if builtin else ([], [])
            signals = []
            for sig, task, w, alts in STRUCTURAL:
                if task != name or not builtin:
                    continue
                si = len(sig_names)
                sig_task.append(ti)
                sig_names.append(sig)
                sig_weights.append(w)
                signals.append((si, sig, w))
                for trigger, rx in alts:
                    gate, alt = _parse_alt(si, trigger, rx, NEEDS.get((sig, trigger)), MARKS.get((sig, trigger)),
                                          PREFILTERS.get((sig, trigger)))
                    if gate is None:
                        ungated.append(alt)
                    else:
                        gated.append((gate, alt))
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
                    pattern_key=f"pattern:{name}",
                )
            )
        self.names = [t.name for t in self.tasks]
        self._chat = self.names.index(DEFAULT_TASK)
        self._math = self.names.index("math") if "math" in self.names else None
        self._docs = self.names.index("docs") if "docs" in self.names else None
        self._code = next((t.index for t in self.tasks if t.code_tokens), None)
        self._sig_task, self._sig_names, self._sig_weights = sig_task, sig_names, sig_weights
        self._patterns = [(t.index, t.pattern_key, t.patterns) for t in self.tasks if t.patterns]
        vocab: set[bytes] = set(_NUM_WORDS_B)
        # structural alternatives by the word that indexes them (`_index_words`)
        self._alts: dict[bytes, list[_AltT]] = {}
        for gate, alt in gated:
            if gate in _COMMON and alt[4] is not None:  # "for (": better indexed by its "(" (and needs "for")
                ungated.append((*alt[:5], (frozenset([gate]), *(alt[5] or ())), alt[6]))
                continue
            index, rest = _index_words(gate, alt[5])
            alt = (*alt[:5], rest, alt[6])
            for w in index:
                self._alts.setdefault(w, []).append(alt)
            vocab |= index
            for g in rest or ():
                vocab |= g
        # ungated alternatives with punctuation, by that byte; the rest (no gate, no punctuation) always run
        self._by_req: dict[int, list[_AltT]] = {}
        for alt in ungated:
            if alt[4] is not None:
                self._by_req.setdefault(alt[4], []).append(alt)
                for g in alt[5] or ():
                    vocab |= g
        self._always: list[tuple[int, str, bool, re.Pattern[str] | None, int, Any]] = []
        for si, trigger, original, rx, req, _need, scan in ungated:
            if req is not None:
                continue
            mode = _FIND
            if not trigger and rx is not None and rx.pattern.startswith("\\A"):
                mode = _ANCHORED
            elif not trigger and rx is not None and re.fullmatch(r"\[[^\x00-\x7f\]]+\]", rx.pattern):
                mode = _NON_ASCII
            elif not trigger:
                mode = _AT_START
            self._always.append((si, trigger, original, rx, mode, _near_lines if scan is _near_lines else _near))
        # counted categories: task keywords (2 per task: strong, weak), the complexity vocabularies, then the word
        # sets only asked whether (or how many of them) occur: number, statement, word-count, first-person, step
        self._cx0 = len(categories)
        vocabularies = [*categories, HARD, MODERATE, SIMPLE, LONG_FORM, ADVANCED_MATH, CONSTRAINTS, EXPERT, ALGORITHMIC,
                        FRACTIONS, RELATIONS, NEGATIONS]  # the last three: the learned layer's too
        word_sets = [_NUM_WORDS_B, STATEMENT_WORDS, _WORD_WORDS, _FIRST_PERSON_LOWER, STEP_WORDS]
        self._num_cat, self._statement_cat, self._word_cat, self._first_person_cat, self._step_cat = range(
            len(vocabularies), len(vocabularies) + len(word_sets))
        counted: list[set[bytes]] = [set() for _ in vocabularies] + [set(w) for w in word_sets]
        phrase_cats: dict[str, tuple[int, ...]] = {}  # each keyword counts once per category
        for cat, keywords in enumerate(vocabularies):
            for k in keywords:
                if k.translate(_SPLIT).split() == [k]:
                    counted[cat].add(k.encode("utf-8", "surrogatepass"))
                elif cat not in phrase_cats.get(k, ()):
                    phrase_cats[k] = (*phrase_cats.get(k, ()), cat)
        self._keyword_keys = frozenset().union(*counted[: self._num_cat])
        # phrases are indexed by their longest word (the rarest-looking), then confirmed on the text
        self._phrases: dict[bytes, list[Any]] = {}
        for k, cats in phrase_cats.items():
            first = max(k.translate(_SPLIT).split() or [k], key=len)
            rx = re.compile(r"(?<![\w])" + re.escape(k) + r"(?![\w])")
            self._phrases.setdefault(first.encode("utf-8", "surrogatepass"), []).append((cats, k, rx))
        self._phrase_keys = frozenset(self._phrases)
        # per class: its index, its strong and weak keyword categories, their weights, its signal's name
        self._kw_tasks = [(t.index, 2 * t.index, 2 * t.index + 1, t.strong_weight, t.weak_weight, t.keywords_key,
                           t.index * _SLOT + _KEYWORD_SLOT)
                          for t in self.tasks]
        vocab |= self._keyword_keys | self._phrase_keys
        vocab = vocab.union(*word_sets)
        self._vocab = frozenset(vocab)
        # each phrase also with its words in the vocabulary: in a plain text (`textscan`) a phrase that matches
        # at word boundaries has all of them among the hits, so a phrase missing one is not searched for
        self._phrases = {
            first: [(cats, k, rx, frozenset(w for w in _phrase_words(k) if w in self._vocab))
                    for cats, k, rx in entries]
            for first, entries in self._phrases.items()
        }
        # text -> (lowered, hits, marks, spaces, stops, plain, counts per category, (the structural alternatives
        # and the phrases its words index), the punctuation `_by_req` asks about, code tokens: 0, 1, 2 or more)
        probes = [t.encode() for t in CODE_TOKENS] if self._code is not None else []
        self._scan_with = {"counted": counted, "indexed": [self._alts, self._phrases],
                           "asked": bytes(sorted(self._by_req)), "probes": probes}
        self._text = scanner(self._vocab, **self._scan_with)
        # the context part (system prompt, earlier turns) repeats across a conversation's requests
        self._context_evidence = lru_cache(maxsize=CONTEXT_MEMO)(self._context)

    # ------------------------------------------------------------ scoring

    def _scan(
        self, text: str
    ) -> tuple[str, frozenset[bytes], bytes, list[float], list[tuple[int, str, float]], tuple[int, ...], int, int,
               bool]:
        """(lowered, vocabulary words present, marks, per-class scores, fired signals as (order, name, weight),
        keyword counts per category, spaces, sentence stops, plain: see `textscan`) of a text, unscaled."""
        lowered, hits, marks, spaces, stops, plain, counts, (alts_found, phrases_found), present, code = self._text(
            text)
        # structural signals: only the alternatives indexed by a word present, with every word they need
        on: set[int] = set()
        disjoint = hits.isdisjoint  # a group of words it needs lacks from the text: most alternatives have one
        for alts in alts_found:
            for si, trigger, original, rx, req, need, scan in alts:
                if si in on or (req is not None and req not in marks) or (
                    need is not None and (disjoint(need[0]) or (len(need) > 1 and any(map(disjoint, need))))
                ):
                    continue
                hay = text if original else lowered
                i = hay.find(trigger)
                if i >= 0 and (rx is None or scan(rx, hay, trigger, i)):
                    on.add(si)
        by_req = self._by_req
        for r in present:  # punctuation bytes of the text that ungated alternatives ask about
            for si, trigger, original, rx, _req, need, scan in by_req[r]:
                if si in on or (
                    need is not None and (disjoint(need[0]) or (len(need) > 1 and any(map(disjoint, need))))
                ):
                    continue
                hay = text if original else lowered
                i = hay.find(trigger)
                if i >= 0 and (rx is None or scan(rx, hay, trigger, i)):
                    on.add(si)
        for si, trigger, original, rx, mode, scan in self._always:
            if si in on:
                continue
            hay = text if original else lowered
            if mode == _ANCHORED:
                if rx.match(hay, 0, WINDOW_AHEAD + WINDOWS - 1):  # type: ignore[union-attr]
                    on.add(si)
            elif mode == _NON_ASCII:  # a class of non-ASCII characters cannot match ASCII text
                if not hay.isascii() and rx.search(hay, 0, WINDOW_AHEAD + WINDOWS - 1):  # type: ignore[union-attr]
                    on.add(si)
            elif mode == _AT_START:  # "" trigger: the union of its windows at the start is one window
                if rx is None or rx.search(hay, 0, WINDOW_AHEAD + WINDOWS - 1):
                    on.add(si)
            else:
                i = hay.find(trigger)
                if i >= 0 and (rx is None or scan(rx, hay, trigger, i)):
                    on.add(si)
        scores = [0.0] * len(self.tasks)
        fired: list[tuple[int, str, float]] = []
        if on:
            sig_task, sig_weights, sig_names = self._sig_task, self._sig_weights, self._sig_names
            for si in sorted(on):
                ti = sig_task[si]
                w = sig_weights[si]
                scores[ti] += w
                fired.append((ti * _SLOT + si, sig_names[si], w))
        ti = self._code
        if ti is not None and code > 1:  # two code-ish marks or identifiers (CODE_TOKENS)
            scores[ti] += 1.0
            fired.append((ti * _SLOT + _CODE_SLOT, "code_tokens", 1.0))
        for ti, key, patterns in self._patterns:
            total = 0.0
            for w, rx, _key in patterns:
                if rx.search(text):
                    scores[ti] += w
                    total += w
            if total:
                fired.append((ti * _SLOT + _PATTERN_SLOT, key, total))
        # keywords: the scan counted the words per category; phrases confirmed on the text add theirs
        if phrases_found:
            counts = self._phrase_counts(phrases_found, lowered, hits, plain, counts)
        for ti, strong_cat, weak_cat, strong_weight, weak_weight, key, order in self._kw_tasks:
            strong, weak = counts[strong_cat], counts[weak_cat]
            if strong or weak:
                k = weak * weak_weight  # min(4.5, strong * strong_weight + min(2.0, weak weight)), inlined
                k = strong * strong_weight + (k if k < 2.0 else 2.0)
                if k > 4.5:
                    k = 4.5
                if k:
                    scores[ti] += k
                    fired.append((order, key, k))
        if len(fired) > 1:
            fired.sort()
        return lowered, hits, marks, scores, fired, counts, spaces, stops, plain

    @staticmethod
    def _phrase_counts(
        found: tuple[list[Any], ...], lowered: str, hits: frozenset[bytes], plain: bool, counts: tuple[int, ...]
    ) -> tuple[int, ...]:
        """`counts` plus the keyword phrases (indexed by a word among the hits) that occur in the text (a copy
        only when one does)."""
        more: list[int] | None = None
        for entries in found:
            for cats, phrase, rx, words in entries:
                if plain and not words <= hits:  # a word of it is missing: it cannot match
                    continue
                if phrase in lowered and rx.search(lowered):
                    if more is None:
                        more = list(counts)
                    for c in cats:
                        more[c] += 1
        return counts if more is None else tuple(more)

    def _context(self, text: str) -> tuple[tuple[float, ...] | None, tuple[tuple[str, float], ...]]:
        """(per-class scores, fired signals with their weights) of the system prompt and earlier turns, both
        already scaled by CONTEXT_WEIGHT (the memo keeps them so: no multiplication per request); the scores
        are None when all are zero (nothing to add)."""
        scores, fired = self._scan(text)[3:5]
        return (tuple(v * CONTEXT_WEIGHT for v in scores) if any(scores) else None,
                tuple((name, w * CONTEXT_WEIGHT) for _order, name, w in fired))

    def classify(self, prompt: Prompt, tokens: int = 0, endpoint: str = "chat") -> Features:
        """Features of a request: task, difficulty, complexity, confidence, signals (tokens are filled by the
        caller)."""
        return self.analyse(prompt, tokens, endpoint)[0]

    def analyse(
        self, prompt: Prompt, tokens: int = 0, endpoint: str = "chat", hops: int = 0
    ) -> tuple[Features, Base]:
        """`classify`, plus the size-free difficulty base: (features at `tokens`, base).

        `self.difficulty.level(base, n)` gives the difficulty and complexity at another token count, so a
        caller holding only a token band can tell whether the band's ends give the same. `hops`: how many
        follow-ups back from the request this is (`_follow_up` scores a follow-up's thread with `analyse`)."""
        roles = prompt.roles
        if len(roles) == 2 and roles[1] == "user" and roles[0] == "system" and prompt.system:
            last, context = prompt.contents[1], prompt.system[:TURN_CHARS]  # `_split_turns`' common shape
        else:
            last, context = _split_turns(prompt)
        view = last if len(last) <= _VIEW_MAX else last[:HEAD_CHARS] + "\n" + last[-TAIL_CHARS:]  # = _view(last)
        lowered, _hits, marks, scores, fired_list, counts, spaces, stops, plain = self._scan(view)
        fired: dict[str, float] = {}
        for _order, name, w in fired_list:  # a loop, not a comprehension: no function object per request
            fired[name] = w
        self._numbers(view, counts, marks, scores, fired)
        if context:
            context_scores, context_fired = self._context_evidence(context)  # scaled by CONTEXT_WEIGHT
            for name, w in context_fired:
                fired[name] = fired.get(name, 0.0) + w
            if context_scores is not None:  # None: all zero (x + 0.0 is x)
                scores = list(map(_add, scores, context_scores))
        chat = self._chat
        if "greeting" in fired and len(view) > GREETING_CHARS:  # "Hello! <the real ask>": a preamble
            scores[chat] -= fired["greeting"] - PREAMBLE_WEIGHT
            fired["greeting"] = PREAMBLE_WEIGHT
        scores[chat] += CHAT_PRIOR
        if endpoint == "embeddings":
            ti, top, second = chat, CHAT_PRIOR, 0.0
        else:
            # the highest score wins; ties go to chat, then to the first class in order. The runner-up is the
            # next value down the sorted scores (the max of the others), one sort instead of two max() calls
            ranked = sorted(scores)
            top = ranked[-1]
            ti = chat if scores[chat] == top else scores.index(top)
            second = ranked[-2] if len(ranked) > 1 else 0.0
        margin = (top - second) / (top + second) if top > 0 else 0.0
        evidence = top / 3.0
        sure = 0.35 + 1.5 * margin
        task = self.names[ti]
        confidence = round3((1.0 if sure > 1.0 else sure) * (0.8 + 0.2 * (1.0 if evidence > 1.0 else evidence)))
        signals = sorted(fired, key=fired.__getitem__, reverse=True)
        # the evidence `Difficulty.base` reads (signals it adds are listed too); words: the view's spaces + 1
        words = spaces + 1
        cx0 = self._cx0
        hard, moderate, simple, long_form, advanced, constraints, expert, algorithmic, fractions, relations, \
            negations = counts[cx0 : cx0 + 11]
        statements = False
        if counts[self._statement_cat] and STATEMENTS.search(lowered):  # "Statement 1 | ... Statement 2"
            fired["statements"] = 1.0
            signals.append("statements")
            statements = True
        difficulty = self.difficulty
        layer = difficulty.learned
        if layer is None:
            learned = 0.0
        else:  # `LearnedLayer.raw(self._structure(...))`: the same products summed in the same order (same float)
            w = layer.weights
            questions = marks.count(b"?")  # = view.count("?"): `marks` keeps every ASCII byte but letters, spaces
            sentences = stops + questions + marks.count(b"!")
            learned = (w[0] * log2(words + 1) + w[1] * ((sentences if sentences < 12 else 12) / 4)
                       + w[2] * (questions if questions < 3 else 3) + w[3] * (fractions if fractions < 3 else 3)
                       + w[4] * (relations if relations < 3 else 3) + w[5] * (negations if negations < 3 else 3)
                       + w[6] * (1.0 if statements else 0.0))
        # "500-word": in a plain text the word is one of the hits (no search for "word" in the text otherwise)
        if (not plain or counts[self._word_cat]) and "word" in lowered and WORD_COUNT.search(lowered):
            long_form += 1
        long_form = 1 if (long_form and "compose" in fired) or long_form > 1 else 0
        if long_form or advanced or constraints > 1 or expert:
            if long_form:
                signals.append("long_form")
            if advanced:
                signals.append("advanced_math")
            if constraints > 1:
                signals.append(f"constraints:{constraints}")
            if expert:
                signals.append("expert_domain")
        if "file_paths" in fired and len(set(_SOURCE_FILE.findall(view))) >= 3:
            fired["many_files"] = 1.0
            signals.append("many_files")
        numbers = steps = 0
        if task == "math" or task == "reasoning":
            numbers = sum(1 for x in islice(_iter_numbers(view), 12) if not _YEAR.fullmatch(x))
            steps = counts[self._step_cat]
        elif algorithmic and task == "code":
            signals.append("algorithmic")
        if len(roles) > 2 or prompt.system or prompt.tools or prompt.wants_json or prompt.image_tokens \
                or prompt.max_output:
            shape = self._shape(prompt, signals)
        else:
            shape = _PLAIN
        base = difficulty.base(task, fired, (hard, moderate, simple, long_form, advanced, constraints, expert,
                                             algorithmic, fractions, relations, steps), numbers, words, shape, learned)
        if len(roles) > 2 and words <= FOLLOW_UP_WORDS and view is last and hops < FOLLOW_UP_HOPS:
            base = self._follow_up(prompt, base, tokens, endpoint, fired_list, signals, hops)  # a follow-up?
        # = Features(task=..., ...): every field set, without the dataclass __init__'s own frame
        f = _NEW(Features)
        f.task = task
        f.difficulty, f.complexity = difficulty.level(base, tokens)
        f.confidence = confidence
        f.tokens = tokens
        f.tokens_exact = True
        f.signals = signals
        f.has_tools = bool(prompt.tools)
        f.has_images = bool(prompt.image_tokens)
        f.wants_json = prompt.wants_json
        f.needs_native = False
        f.max_output_tokens = prompt.max_output
        return f, base

    def _follow_up(
        self, prompt: Prompt, base: Base, tokens: int, endpoint: str, own: list[tuple[int, str, float]],
        signals: list[str], hops: int,
    ) -> Base:
        """The base of a short last message that continues the conversation's previous ask: that ask's thread
        logit (`_thread_logit`) as a size-free base, with `follow_up` among the signals, when it exceeds the
        message's own logit at `tokens`; else `base`. `own`: the signals the last message itself fired (a
        transform or a thank-you of the answer is a light job of its own, whatever the thread was)."""
        if endpoint in _NOT_THREADS:
            return base
        for _order, name, _w in own:
            if name in _TRANSFORMS:
                return base
        roles = prompt.roles
        last = len(roles) - 1
        while last >= 0 and roles[last] != "user":
            last -= 1
        prev = last - 1
        while prev >= 0 and roles[prev] != "user":
            prev -= 1
        if prev < 0:  # no earlier user turn (a system prompt, or assistant turns only, before it)
            return base
        inherited = self._thread_logit(prompt, prev, endpoint, hops)
        if inherited <= self.difficulty.logit(base, tokens):
            return base
        signals.append("follow_up")
        return inherited, 0.0, 0.0  # size-free: as hard as its thread, not harder because the conversation grew

    def _thread_logit(self, prompt: Prompt, prev: int, endpoint: str, hops: int) -> float:
        """The difficulty logit this classifier gives the conversation cut just after its user message `prev`
        (the same system prompt, tools and options), at that cut's token estimate, minus FOLLOW_UP_DISCOUNT.
        `analyse` runs on the cut, so a follow-up of a follow-up inherits from the ask the chain started with
        (up to FOLLOW_UP_HOPS turns back from the request), discounted once.
        Memoised (THREAD_MEMO) by a digest of the cut's messages and options, so a retried or continued
        conversation scores its earlier part once; the digest, not the texts, is kept (bounded memory)."""
        n = prev + 1
        roles, contents = prompt.roles[:n], prompt.contents[:n]
        key = hash((endpoint, tuple(roles), tuple(contents), len(prompt.tools), prompt.wants_json, prompt.max_output,
                    len(prompt.image_tokens)))
        threads = self._threads
        memo = threads.logits
        z = memo.get(key)
        if z is not None:
            return z
        cut = _NEW(Prompt)  # the cut's token-bearing parts (names and tool-call arguments are not kept apart)
        cut.texts, cut.roles, cut.contents, cut.system, cut.tools = list(contents), roles, contents, prompt.system, \
            prompt.tools
        cut.image_tokens, cut.max_output, cut.wants_json = prompt.image_tokens, prompt.max_output, prompt.wants_json
        cut.overhead = TOKENS_PER_MESSAGE * n + REPLY_PRIMING
        cut.chars = sum(map(len, contents))
        tokens = estimate(cut, threads.encoding).tokens
        f, base = self.analyse(cut, tokens, endpoint, hops + 1)
        z = self.difficulty.logit(base, tokens)
        if "follow_up" not in f.signals:  # the discount once per chain: "continue", "continue", ... stays put
            z -= FOLLOW_UP_DISCOUNT
        if len(memo) >= THREAD_MEMO:  # the oldest entry goes (another thread may have just removed it)
            try:
                del memo[next(iter(memo))]
            except (KeyError, RuntimeError, StopIteration):
                pass
        memo[key] = z
        return z

    def _numbers(
        self, view: str, counts: tuple[int, ...], marks: bytes, scores: list[float], fired: dict[str, float]
    ) -> None:
        """Quantities (not years) plus a question about them make a word problem; then the passage check."""
        math = self._math
        words = counts[self._num_cat]  # the number words (_NUM_WORDS) among the hits
        if math is None or not ("word_problem" in fired or _DOLLAR in marks or _PERCENT in marks
                                or view.rstrip().endswith("?")):
            # no count of quantities can change the math score: the passage check counts them if it needs to
            if self._docs is not None:
                self._passage(view, counts, marks, -1 - words, scores, fired)
            return
        nums: list[str] = []
        complete = True
        if len(marks.translate(None, _DIGIT_BYTES)) != len(marks) or (
            not view.isascii() and _HAS_DIGIT.search(view) is not None
        ):
            found = (x for x in _iter_numbers(view) if not _YEAR.fullmatch(x))
            if _DOLLAR in marks or _PERCENT in marks:  # "$5" and "10%" count (below): all of them
                nums = list(found)
            else:  # only 0, 1, 2 or "3 or more" can change the score: stop at 3 (the passage check may ask again)
                nums = list(islice(found, 3))
                complete = len(nums) < 3
        n = len(nums) + words
        if n:
            if n == 1:
                if "word_problem" in fired:  # "how many liters are in 3.5 gallons?"
                    scores[math] += 1.5
                    fired["word_problem"] += 1.5
            elif "word_problem" in fired or view.rstrip().endswith("?"):
                scores[math] += 3.0
                fired["word_problem"] = fired.get("word_problem", 0.0) + 3.0
            elif n >= 3 and any(x[0] == "$" or x[-1] == "%" for x in nums):
                scores[math] += 1.5
                fired["quantities"] = 1.5
        if self._docs is not None:
            self._passage(view, counts, marks, n if complete else -1 - words, scores, fired)  # < 0: count them

    def _passage(
        self, view: str, counts: tuple[int, ...], marks: bytes, numbers: int, scores: list[float],
        fired: dict[str, float],
    ) -> None:
        """A short ask plus a pasted prose passage is docs work (answer, extract or rewrite from it)."""
        if (marks.find(b"```") >= 0 and "```" in view) or "multiple_choice" in fired:  # `marks`: every backtick
            return
        if len(view) == _VIEW_CHARS and marks.count(b"\n") == 1:
            return  # one paragraph cut by `_view`: its only line break is the cut, not an ask above a text
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
        if numbers < 0:  # `_numbers` stopped at 3 quantities (-1 - numbers: the number words): count them all
            numbers = sum(1 for x in _iter_numbers(view) if not _YEAR.fullmatch(x)) - 1 - numbers
        if numbers * 8 > words:
            return  # a quantitative problem, not a pasted document
        if counts[self._first_person_cat]:  # some first-person word in the view: count them
            own = sample.encode("utf-8", "surrogatepass").translate(_SPLIT_BYTES).split()
            if sum(map(_FIRST_PERSON.__contains__, own)) * 40 > words:  # a set test per word: no regex scan
                return  # the user's own story, not a pasted document
        scores[self._docs] += 4.0  # type: ignore[index]
        fired["context_passage"] = 4.0
        if "word_problem" in fired and len(_numbers(ask)) < 2:
            scores[self._math] -= fired.pop("word_problem")  # type: ignore[index]  # "how many ..." over a passage

    def _structure(
        self, marks: bytes, counts: tuple[int, ...], words: int, stops: int, statements: bool
    ) -> tuple[float, ...]:
        """The learned layer's inputs (router.routing.difficulty FEATURES) for a request's view of `words` words
        and `stops` sentence stops (". " and ".\n")."""
        fractions, relations, negations = counts[self._cx0 + 8 : self._cx0 + 11]
        questions = marks.count(b"?")  # = view.count("?"): `marks` keeps every ASCII byte but letters, spaces
        sentences = stops + questions + marks.count(b"!")
        return (
            log2(words + 1),
            (sentences if sentences < 12 else 12) / 4,
            questions if questions < 3 else 3,
            fractions if fractions < 3 else 3,
            relations if relations < 3 else 3,
            negations if negations < 3 else 3,
            1.0 if statements else 0.0,
        )

    def layer_features(self, prompt: Prompt) -> tuple[float, ...]:
        """The learned layer's inputs for a request, as `analyse` computes them (for `bench.train_difficulty`)."""
        view = _view(_split_turns(prompt)[0])
        lowered, _hits, marks, _scores, _fired, counts, spaces, stops, _plain = self._scan(view)
        statements = counts[self._statement_cat] > 0 and STATEMENTS.search(lowered) is not None
        return self._structure(marks, counts, spaces + 1, stops, statements)

    @staticmethod
    def _shape(prompt: Prompt, signals: list[str]) -> tuple[int, int, int, bool, int | None]:
        """(turns, system prompt chars, tools, JSON mode, max_tokens) of a request, with their signals."""
        roles = prompt.roles
        turns = roles.count("user") + roles.count("assistant")
        if turns >= 6:
            signals.append(f"depth:{turns}")
        if len(prompt.system) > 800:
            signals.append("long_system_prompt")
        elif prompt.system:
            signals.append("system_prompt")
        if prompt.tools:
            signals.append(f"tools:{len(prompt.tools)}")
        if prompt.wants_json:
            signals.append("response_format:json")
        if prompt.image_tokens:
            signals.append(f"images:{len(prompt.image_tokens)}")
        if prompt.max_output:
            signals.append(f"max_tokens:{prompt.max_output}")
        return turns, len(prompt.system), len(prompt.tools), prompt.wants_json, prompt.max_output


def _phrase_words(phrase: str) -> list[bytes]:
    """The words of a keyword phrase, as the scan splits a text (UTF-8)."""
    return [w.encode("utf-8", "surrogatepass") for w in phrase.translate(_SPLIT).split()]

def _numbers(text: str) -> list[str]:
    """Quantities in a text: integers, decimals, money and percentages; not times, dates, paths, IPs or versions."""
    return list(_iter_numbers(text))


def _iter_numbers(text: str) -> Iterator[str]:
    """`_numbers`, one at a time (a caller that needs only the first few stops the scan there)."""
    prev = 0
    if text.isascii():  # start the scan at the first digit (one translate and a memchr), with an ASCII-only class
        first = text.encode().translate(_DIGITS_TO_ZERO).find(b"0")
        if first < 0:
            return
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
            yield n


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
