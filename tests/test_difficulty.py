"""router.routing.difficulty: the score, its cut points, and where it is reported (headers, preview, access log)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from bench.outcomes import Router, body_of
from bench.routing_quality import CASES, CATEGORIES, CATEGORIES_2, CATEGORIES_HOLDOUT, MIXED
from bench.routing_quality import load_cases as load_own_cases
from bench.routing_report import DEFAULT_CONFIG
from router.config import load
from router.exchange import Exchange, Features
from router.observe.accesslog import AccessLog
from router.routing.classifier import Classifier
from router.routing.tokens import count, extract

CLF = Classifier()


def classify(text: str) -> Features:
    p = extract("chat", {"messages": [{"role": "user", "content": text}]})
    return CLF.classify(p, count(p).tokens)


def test_difficulty_is_a_probability_and_orders_easy_below_hard() -> None:
    easy = classify("hi there!")
    hard = classify("Prove that the square root of 2 is irrational, rigorously, step by step.")
    assert 0.0 <= easy.difficulty < hard.difficulty <= 1.0
    assert easy.complexity == "low"
    assert hard.complexity == "high"


def test_access_log_records_the_difficulty() -> None:
    r, w = os.pipe()
    try:
        log = AccessLog(True, fd=w)
        ex = Exchange("rid", "chat", {"model": "auto"}, None, {})
        ex.features = classify("Prove that there are infinitely many primes.")
        log.write(ex)
        log.flush()
        rec = orjson.loads(os.read(r, 65536))
    finally:
        os.close(r)
        os.close(w)
    assert rec["difficulty"] == ex.features.difficulty
    assert rec["complexity"] == ex.features.complexity


# ---------------------------------------------------------------- the shipped config on our own labelled sets


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load(DEFAULT_CONFIG))


def _tier(router: Router, text: str) -> tuple[str, str, float]:
    ex = Exchange("t", "chat", body_of(text), None, {})
    f, _ = router.analyzer.features(ex)
    d = router.policy.decide(f, endpoint="chat", model="auto", headers={})
    return d.primary.tier or "", f.task, f.difficulty


@pytest.mark.parametrize("lang", ["en", "pt", "es", "all"])
@pytest.mark.parametrize("path", [CASES, MIXED], ids=["balanced", "mixed-traffic"])
def test_hard_goes_to_cloud_and_easy_stays_local(router: Router, lang: str, path: Path) -> None:
    cases = [c for c in load_own_cases(path) if lang in ("all", c["lang"])]
    routed = [(c, router.route(body_of(c["prompt"]))) for c in cases]
    hard = [(c, cloud) for c, (_d, cloud, _f) in routed if c["label"] == "hard"]
    easy = [(c, cloud) for c, (_d, cloud, _f) in routed if c["label"] == "easy"]
    assert len(hard) >= 8
    assert len(easy) >= 15
    missed = [c["id"] for c, cloud in hard if not cloud]
    wasted = [c["id"] for c, cloud in easy if cloud]
    assert len(missed) <= 0.1 * len(hard), missed
    assert len(wasted) <= 0.1 * len(easy), wasted
    if path == CASES:  # the mixed-traffic set's tasks are only its writer's notes: its tiers are the test
        wrong_task = [(c["id"], f.task) for c, (_d, _c, f) in routed if f.task != c["task"]]
        assert len(wrong_task) <= 0.1 * len(cases), wrong_task


# Pairs of prompts that ask the same thing: a number changed, a trailing clause, casing, a polite preamble.
SAME_ASK = [
    ("What's the capital of Norway?", "hi! what's the capital of norway? thanks so much"),
    ("Summarize this paragraph: Revenue grew 12% while costs rose 4%, so the margin widened and the board approved "
     "two new hires for the sales team.",
     "Summarize this paragraph: Revenue grew while costs rose, so the margin widened and the board approved "
     "new hires for the sales team."),
    ("A shop sells pens at $3 each and notebooks at $5 each. Ana buys 4 pens and 3 notebooks and pays with a $50 "
     "bill. How much change does she get?",
     "A shop sells pens at $2 each and notebooks at $7 each. Ana buys 6 pens and 2 notebooks and pays with a $40 "
     "bill. How much change does she get?"),
    ("Write a haiku about the sea.", "Could you please write a haiku about the sea? Thank you!"),
    ("Write a haiku about the sea.", "WRITE A HAIKU ABOUT THE SEA."),
    ("Implement a thread-safe LRU cache in Java with O(1) operations.",
     "Hello! Implement a thread-safe LRU cache in Java with O(1) operations. I need it for a project at work."),
    ("Translate into Spanish: 'The shop opens at nine.'", "Translate into Spanish: 'The shop opens at 10.'"),
    ("Prove that the sum of the first n odd numbers is n^2.",
     "prove that the sum of the first n odd numbers is n^2, please"),
    ("Tom has three sisters. Each sister has one brother. How many brothers does Tom have?",
     "Tom has four sisters. Each sister has one brother. How many brothers does Tom have?"),
    ("Give me some tips for a job interview.", "Give me some tips for a job interview tomorrow at 9."),
    ("Resuma em uma frase: A loja vai fechar mais cedo na sexta por causa do feriado.",
     "Por favor, resuma em uma frase: A loja vai fechar mais cedo na sexta por causa do feriado."),
    ("Escribe una función en Python que invierta una lista enlazada de forma recursiva.",
     "Hola, escribe una función en Python que invierta una lista enlazada de forma recursiva, por favor."),
    ("How do I reverse a string in Python?", "how do i reverse a string in python"),
    ("Explain how vaccines train the immune system.", "Explain how vaccines train the immune system, briefly."),
]


@pytest.mark.parametrize(("a", "b"), SAME_ASK)
def test_edits_that_keep_the_ask_keep_the_tier(router: Router, a: str, b: str) -> None:
    (tier_a, task_a, d_a), (tier_b, task_b, d_b) = _tier(router, a), _tier(router, b)
    assert (tier_a, task_a) == (tier_b, task_b), (d_a, d_b)


def test_the_issue_examples_behave(router: Router) -> None:
    """Numbers in a short text to summarise do not make it harder; a traceback does not make a one-line fix math."""
    text = ("Summarize this paragraph: The company had a strong year. Revenue grew 12% while costs rose 4%, and the "
            "new stores opened on time.")
    assert _tier(router, text)[:2] == ("local-small", "docs")
    assert _tier(router, text.replace(" 12%", "").replace(" 4%", ""))[:2] == ("local-small", "docs")
    bug = "def mean(xs):\n    return sum(xs) / len(xs)\n\nmean([])"
    with_tb = (f"Fix this:\n```python\n{bug}\n```\nTraceback (most recent call last):\n  File \"m.py\", line 4, in "
               "<module>\n    mean([])\n  File \"m.py\", line 2, in mean\n    return sum(xs) / len(xs)\n"
               "ZeroDivisionError: division by zero")
    without = f"Fix this:\n```python\n{bug}\n```\nIt crashes with a ZeroDivisionError on an empty list."
    a, b = _tier(router, with_tb), _tier(router, without)
    assert a[1] == b[1] == "code"
    assert a[0] == b[0]
    assert a[0] in ("local-large", "cloud-code")


# Puzzles a small model gets wrong, in the shapes that name no puzzle: a syllogism, a kinship riddle, a crossing
# under a limit; and everyday asks with the same words, which are not puzzles.
PUZZLES = [
    "Some glorps are trinks and all trinks are flubs. Are all glorps definitely flubs?",
    "No painters are pilots, and some pilots are poets. Can any poet be a painter?",
    "Todos los gatos son animales y algunos animales son negros. ¿Son negros algunos gatos?",
    "Todos os médicos são leitores e alguns leitores são músicos. Algum médico é músico, com certeza?",
    "Pointing at a photo, Ana says: 'Her mother is my mother's only daughter.' Who is in the photo?",
    "A boy says: 'That woman is the daughter of my father's only sister.' How is she related to him?",
    "Apontando para um retrato, Pedro diz: 'O pai desse homem é o filho do meu pai, e não tenho irmãos.' Quem é?",
    "Señalando una foto, Luis dice: 'La madre de esa niña es la hija de mi madre, y soy hijo único.' ¿Quién es?",
    "Four hikers must cross a bridge at night with one torch; the bridge holds only two at a time. They take 1, 2, "
    "5 and 10 minutes. What is the fastest way over?",
    "Um pastor precisa atravessar o rio com um lobo, uma ovelha e um repolho, mas o barco só leva ele e mais um. "
    "Como ele faz?",
    "so I have a cat, a hamster and a bag of seeds to get across a creek, and the raft only holds me and one thing. "
    "How do I do it?",
    "Six cyclists finished with no ties. Rui came in right after Bo, Ines finished ahead of Rui but behind Tom, and "
    "Ana was last. What was the finishing order?",
    "¿En qué orden llegaron Marta, Pablo y Sara si Pablo llegó justo después de Marta y Sara no fue la última?",
    "En un pueblo unos siempre mienten y otros siempre dicen la verdad. Ana dice que Beto miente; Beto dice que los "
    "dos son iguales. ¿Qué es cada uno?",
    "Numa aldeia, uns sempre mentem e outros sempre dizem a verdade. Caio diz que Duda mente. Duda diz que os dois "
    "são iguais. Quem é o quê?",
]
NOT_PUZZLES = [
    "All our stores are open on Sunday, and some stores are open late. What are the hours in Lisbon?",
    "My sister's husband turns 40 next week. Any gift ideas for someone who loves cycling?",
    "What's the best boat tour to cross the river in Budapest?",
    "Mi hermana y yo queremos cruzar el río en barco en Sevilla, ¿qué excursión recomiendas?",
    "In what order should I add the flour and the eggs, before or after the butter melts?",
]


@pytest.mark.parametrize("text", PUZZLES)
def test_a_puzzle_that_names_no_puzzle_goes_to_cloud(router: Router, text: str) -> None:
    d, cloud, f = router.route(body_of(text))
    assert "logic_puzzle" in f.signals, f.signals
    assert cloud, (f.task, d)


@pytest.mark.parametrize("text", NOT_PUZZLES)
def test_everyday_asks_with_puzzle_words_stay_local(router: Router, text: str) -> None:
    d, cloud, f = router.route(body_of(text))
    assert "logic_puzzle" not in f.signals, f.signals
    assert not cloud, (f.task, d)


@pytest.mark.parametrize(("path", "recall", "waste", "share"), [
    (CATEGORIES, 0.74, 0.02, 0.33),  # measured 37/49 hard to cloud, 1/77 easy, 30.2% cloud
    (CATEGORIES_2, 0.77, 0.07, 0.38),  # 42/53, 5/77, 36.2%
    (CATEGORIES_HOLDOUT, 0.70, 0.09, 0.38),  # never tuned on: 40/55, 6/75, 35.4%
], ids=["categories", "categories-2", "categories-holdout"])
def test_kinds_of_chat_traffic_keep_their_level(
    router: Router, path: Path, recall: float, waste: float, share: float
) -> None:
    """The blind sets of kinds of chat traffic (tests/data/categories*.yaml): a floor under what each measured
    at 1f021ad (the first two were tuned on; the holdout never was)."""
    cases = load_own_cases(path)
    routed = [(c["label"], router.route(body_of(c["prompt"]))[1]) for c in cases]
    hard = [cloud for label, cloud in routed if label == "hard"]
    easy = [cloud for label, cloud in routed if label == "easy"]
    assert sum(hard) >= recall * len(hard)
    assert sum(easy) <= waste * len(easy)
    assert sum(hard) + sum(easy) <= share * len(cases)


@pytest.mark.parametrize(("text", "cloud"), [
    ("Write a sonnet in iambic pentameter about my cat, rhyme scheme ABAB CDCD EFEF GG.", True),
    ("Escreva um poema acróstico com a palavra LUAR, cada verso com exatamente sete sílabas e esquema de rimas ABAB.",
     True),
    ("write a sonnet about rain", False),
    ("Write an ode to my morning coffee.", False),
])
def test_verse_is_writing_and_counted_verse_is_hard(router: Router, text: str, cloud: bool) -> None:
    d, to_cloud, f = router.route(body_of(text))
    assert f.task == "docs"
    assert to_cloud is cloud, d


@pytest.mark.parametrize("text", [
    "How many four-digit numbers are even and have all distinct digits?",
    "¿Cuántos números de tres cifras tienen todas sus cifras distintas e impares?",
    "Quantos números de quatro algarismos diferentes dá para formar com 1, 2, 3, 5 e 8?",
    "What's the pH of a 0.020 M ammonia solution? Kb is 1.8 x 10^-5.",
    "I have 9 identical coins and one is lighter. With a balance scale, how do I find it in two weighings?",
    "Tengo 9 monedas y una pesa menos. Con una balanza de dos platillos, ¿cómo la encuentro en dos pesajes?",
    "Write a 100-word story about a storm without using the letter e.",
    "Escreva um parágrafo sobre o mar em que todas as palavras comecem com a letra m.",
])
def test_counting_science_weighing_and_letter_asks_go_to_cloud(router: Router, text: str) -> None:
    d, cloud, f = router.route(body_of(text))
    assert cloud, (f.task, d, f.signals)


@pytest.mark.parametrize("text", [
    "Las cifras del paro de este mes, ¿me las resumes en una frase?",
    "Summarize in one sentence: the new seating arrangements and travel arrangements for the team offsite are in "
    "the shared folder, and the probability of rain on Friday is low.",
    "List the HTTP methods that are idempotent.",
])
def test_their_words_in_everyday_asks_stay_local(router: Router, text: str) -> None:
    d, cloud, f = router.route(body_of(text))
    assert not cloud, (f.task, d, f.signals)
