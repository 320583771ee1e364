"""router.routing.classifier: signals, word-boundary keywords, complexity, confidence and the routing.tasks config."""

from __future__ import annotations

import pytest

from router.config import ConfigError
from router.exchange import Features
from router.routing.classifier import Classifier, parse_tasks, round3
from router.routing.tokens import count, extract

CLF = Classifier()


def classify(text: str, clf: Classifier = CLF, **body: object) -> Features:
    messages = [*body.pop("history", []), {"role": "user", "content": text}]  # type: ignore[misc]
    p = extract("chat", {"messages": messages, **body})
    return clf.classify(p, count(p).tokens)


@pytest.mark.parametrize(
    ("text", "task", "signal"),
    [
        ("Can you check this?\n```python\ndef add(a, b):\n    return a - b\n```", "code", "code_fence"),
        ('Traceback (most recent call last):\n  File "x.py", line 3, in <module>\nValueError: bad',
         "code", "stack_trace"),
        ("diff --git a/x.go b/x.go\n@@ -1,3 +1,4 @@\n-old\n+new", "code", "diff"),
        ("SELECT name, total FROM invoices WHERE total > 100 ORDER BY total", "code", "sql"),
        ("$ grep -rn TODO src | wc -l", "code", "shell"),
        ("Compute \\frac{3}{4} + \\sqrt{16}", "math", "math_notation"),
        ("A baker makes 24 rolls an hour for 6 hours and sells them in bags of 8. How many bags does he fill?",
         "math", "word_problem"),
        ("Please summarize the attached minutes for the steering group.", "docs", "summarize"),
        ("Translate 'see you tomorrow' into Italian", "docs", "translate"),
        ("Rewrite this paragraph so it sounds friendlier: We regret to inform you.", "docs", "rewrite"),
        ("Extract the invoice numbers from the email below.", "docs", "extract"),
        ("hello there! how are you today?", "chat", "greeting"),
    ],
)
def test_signals_pick_the_task(text: str, task: str, signal: str) -> None:
    f = classify(text)
    assert f.task == task
    assert signal in f.signals


def test_keywords_match_whole_words_only() -> None:
    f = classify("What's the capital of Peru? I'm rapidly escaping the classroom.")
    assert f.task == "chat"
    assert "keywords:code" not in f.signals  # no "api" in "capital", no "class" in "classroom"
    assert "keywords:code" in classify("Which api should the class call?").signals


def test_no_signal_is_chat_with_decent_confidence() -> None:
    f = classify("Any good names for a grey kitten?")
    assert f.task == "chat"
    assert f.confidence >= 0.5


def test_confidence_is_lower_when_ambiguous() -> None:
    clear = classify("```js\nconst x = await fetch(url);\n```\nwhy does this throw TypeError in node?")
    vague = classify("numbers list")
    assert clear.confidence > 0.9 > vague.confidence


def test_complexity_levels() -> None:
    assert classify("quick python one-liner to sum a list").complexity == "low"
    assert classify("Prove that there are infinitely many primes.").complexity == "high"
    hard = classify("Design a distributed, horizontally scalable job scheduler and analyze the trade-offs.")
    assert hard.complexity == "high"
    small_fix = classify(
        "Review this and fix the bug:\n```python\ndef mean(xs):\n    return sum(xs) / len(xs) + 1\n```"
    )
    assert small_fix.complexity == "low"  # the mere presence of code is not difficulty
    assert classify("Implement a thread-safe LRU cache in Go with O(1) get and put.").complexity != "low"


def test_request_shape_signals() -> None:
    history = [{"role": r, "content": "more about the trip"} for r in ("user", "assistant") * 4]
    f = classify(
        "ok and then?", history=history, max_tokens=5000,
        tools=[{"type": "function", "function": {"name": "t", "parameters": {}}}],
        response_format={"type": "json_object"},
    )
    assert f.has_tools
    assert f.wants_json
    assert f.max_output_tokens == 5000
    assert {"depth:9", "tools:1", "response_format:json", "max_tokens:5000"} <= set(f.signals)
    assert f.difficulty > classify("ok and then?").difficulty + 0.15  # depth, tools, JSON mode, a long answer
    img = classify("")
    assert not img.has_images
    p = extract("chat", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what's this"}, {"type": "image_url", "image_url": {"url": "https://a/b.png"}}]}]})
    assert CLF.classify(p).has_images


def test_huge_prompt_classifies_on_a_bounded_view() -> None:
    doc = "The river rose slowly through the night while the town slept. " * 6000
    f = classify("Summarize this report:\n\n" + doc)
    assert f.task == "docs"


# ---------------------------------------------------------------- routing.tasks


def test_custom_task_and_extra_keywords() -> None:
    clf = Classifier({
        "legal": {"keywords": ["indemnify", "clause", "governing law"], "weight": 2},
        "code": {"keywords": ["terraform"]},
    })
    assert clf.names == ["code", "math", "reasoning", "docs", "chat", "legal"]
    assert classify("Does the indemnify clause survive termination under governing law?", clf).task == "legal"
    assert "keywords:code" in classify("plan for terraform", clf).signals


def test_disable_and_replace() -> None:
    clf = Classifier({"math": False, "docs": {"replace": True, "patterns": [r"^memo:"]}})
    assert "math" not in clf.names
    assert classify("Summarize this for me please", clf).task == "chat"  # built-in docs signals dropped
    assert classify("memo: staff party on Friday", clf).task == "docs"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"code": {"keywords": ["a", "b", 3]}}, "routing.tasks.code.keywords[2]: expected a string"),
        ({"code": {"keywords": "nope"}}, "routing.tasks.code.keywords: expected a list of strings"),
        ({"code": {"patterns": ["(unclosed"]}}, "routing.tasks.code.patterns[0]: invalid regex"),
        ({"code": {"weight": "heavy"}}, "routing.tasks.code.weight: expected a number >= 0"),
        ({"code": {"keyword": ["x"]}}, "routing.tasks.code.keyword: unknown key"),
        ({"code": {"replace": "yes"}}, "routing.tasks.code.replace: expected true or false"),
        ({"Bad Name": {}}, "routing.tasks.Bad Name: task names are lower-case words"),
        ({"chat": False}, "routing.tasks.chat: 'chat' is the fallback class"),
        ({"code": 3}, "routing.tasks.code: expected a mapping"),
        (["code"], "routing.tasks: expected a mapping"),
    ],
)
def test_tasks_config_errors_name_the_key_path(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        parse_tasks(raw)


def test_difficulty_splits_into_a_size_free_base_and_the_size() -> None:
    p = extract("chat", {"messages": [{"role": "user", "content": "Refactor this module and explain why."}]})
    _f, base = CLF.analyse(p, 10)
    for tokens in (10, 200, 800, 2000, 9000):
        f = CLF.classify(p, tokens)
        assert (f.difficulty, f.complexity) == CLF.difficulty.level(base, tokens)
        assert 0.0 <= f.difficulty <= 1.0


def test_words_split_like_str_translate_also_on_non_ascii() -> None:
    from router.routing.textscan import SPLIT as _SPLIT
    from router.routing.textscan import words as _words

    for text in ["plain words, and punct-uation! (x_y) {a:b}", "naïve café — “quoted” 日本語,テキスト\tx\ny",
                 "sep\x1carated\x1fby\x0bascii\x0cwhitespace", "non\xa0ascii\u2003spaces\x85too"]:
        low = text.lower()
        assert [w.decode() for w in _words(low)] == low.translate(_SPLIT).split()


def test_context_evidence_is_memoised_and_gives_the_same_features() -> None:
    clf = Classifier()
    body = {"messages": [{"role": "system", "content": "You review Python code and explain bugs."},
                         {"role": "user", "content": "why does this loop never end? while i < 10: print(i)"}]}
    p = extract("chat", body)
    first = clf.classify(p, 40)
    again = clf.classify(p, 40)
    fresh = Classifier().classify(p, 40)
    assert (first.task, first.confidence, first.signals) == (again.task, again.confidence, again.signals)
    assert (first.task, first.confidence, first.signals) == (fresh.task, fresh.confidence, fresh.signals)
    assert clf._context_evidence.cache_info().hits >= 1


@pytest.mark.parametrize(
    ("text", "signal"),
    [
        ("How many apples are left if she eats 3 of 12?", "word_problem"),
        ("Please translate this into German: good morning", "translate"),
        ("Summarize the memo in two sentences: the budget is approved.", "summarize"),
        ("Give me some ideas for a rainy weekend", "advice"),
        ("Write me a short poem about autumn", "compose"),
        ("Prove that the square root of 2 is irrational.", "proof"),
        ("Based on the text below, who signed the contract?", "extract"),
    ],
)
def test_word_gated_structural_signals_still_fire(text: str, signal: str) -> None:
    assert signal in classify(text).signals


def test_digit_run_prefix_matches_like_word_boundary_digits() -> None:
    """`_D` (written to start with a digit, for a fast scan) matches exactly where r"\\b\\d+" does."""
    import re

    from router.routing.signals import _D

    old, new = re.compile(r"\b\d+/\d+"), re.compile(_D + r"/\d+")
    for text in ["3/4 + 1/2", "a3/4", "x 12/5", "v1/2 and 7/8", "__9/3", "é4/5", "(10/20)", "1234/5"]:
        assert [m.span() for m in old.finditer(text)] == [m.span() for m in new.finditer(text)], text


def test_marks_hold_every_ascii_punctuation_mark_and_digit() -> None:
    from router.routing.classifier import _PUNCT
    from router.routing.textscan import marks as _marks

    text = "héllo, wörld! a{b}c=d; e->f :: [0] 'q' \"r\" 50% $5 #x @y ^z ~w `v` |u \\t"
    kept = _marks(text.lower())
    assert {c for c in text.encode() if c in _PUNCT} == {c for c in kept if c in _PUNCT}
    assert {c for c in text.encode() if 48 <= c <= 57} == {c for c in kept if 48 <= c <= 57}
    assert not set(kept) & set(b"abcdefghijklmnopqrstuvwxyz ")


def test_every_table_word_is_in_the_vocabulary() -> None:
    """Everything the classifier asks a text's words about comes from its one vocabulary intersection."""
    clf = Classifier({"legal": {"keywords": ["contract", "force majeure"], "weak_keywords": ["party"]}})
    assert frozenset(clf._alts) <= clf._vocab
    assert clf._keyword_keys <= clf._vocab
    assert clf._phrase_keys <= clf._vocab
    for alts in [*clf._alts.values(), *clf._by_req.values()]:
        for alt in alts:
            for group in alt[5] or ():
                assert group <= clf._vocab


def test_alternatives_indexed_by_a_rarer_word_still_fire_and_stay_exact() -> None:
    assert "translate" in classify("Turn this note to Spanish please").signals
    assert "translate" not in classify("I went to Japan last year").signals
    assert "summarize" in classify("Explain it in two sentences please").signals
    assert "stack_trace" in classify("it fails:\n    at com.acme.Main.run(Main.java:12)\n").signals
    assert "stack_trace" not in classify("we met    at noon").signals


def test_common_two_message_shape_splits_like_the_general_path() -> None:
    from router.routing.classifier import _split_turns
    from router.routing.tokens import Prompt

    p = extract("chat", {"messages": [{"role": "system", "content": "S" * 300}, {"role": "user", "content": "hi"}]})
    assert _split_turns(p) == ("hi", "S" * 200)
    q = Prompt(roles=["user", "assistant"], contents=["a", "b"])
    assert _split_turns(q) == ("a", "")
    r = Prompt(roles=["assistant", "tool"], contents=["a", "b"])
    assert _split_turns(r) == ("b", "a")


def test_round3_is_round_to_three_places() -> None:
    """The classifier's fast `round(x, 3)` gives the same float, ties and edge values included."""
    import random

    rng = random.Random(7)
    values = [rng.random() for _ in range(20_000)] + [rng.uniform(0, 1000) for _ in range(5_000)]
    values += [k / 1000 + d for k in range(2000) for d in (0.0005, -0.0005, 5e-4 + 1e-12, 5e-4 - 1e-12, 0.0)]
    values += [0.0, -0.0, 1e-300, 0.0625, 0.1235, 0.0015, 999.9995, 1000.0, 1e9, -1.5, float("inf")]
    for x in values:
        assert repr(round3(x)) == repr(round(x, 3)), x
    assert repr(round3(float("nan"))) == "nan"
