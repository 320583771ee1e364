"""Follow-ups: a short last message that continues a harder earlier ask inherits that thread's difficulty.

Our own conversations in English, Portuguese and Spanish, through the shipped config's classify + route
(`bench.outcomes.Router`) and once through `POST /v1/route`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import pytest

import router.routing.classifier as classifier_module
from bench.outcomes import Router
from bench.routing_report import DEFAULT_CONFIG
from router.config import load
from router.routing.classifier import FOLLOW_UP_DISCOUNT, FOLLOW_UP_HOPS, FOLLOW_UP_WORDS, Classifier
from router.routing.difficulty import Difficulty
from router.routing.tokens import estimate, extract
from tests.conftest import Stack
from tests.test_proxy import post

CYCLIST = ("A cyclist rides from town A to town B at 18 km/h and back at 12 km/h; the whole trip takes 5 hours. "
           "How far apart are the towns?")
SUBSTRING = ("Write a Python function that finds the longest substring without repeating characters in linear time, "
             "and explain why it is O(n).")
SEATS = ("Five friends sit in a row. Ana is not at either end, Bruno sits directly to the right of Carla, Davi is two "
         "seats away from Ana, and Eva is at the left end. Who sits in the middle?")
TREM = ("Um trem sai às 9h40 a 72 km/h e outro sai da mesma estação às 10h10 a 96 km/h. A que horas o segundo "
        "alcança o primeiro e a que distância da estação?")
ANALISADOR = ("Escreva em Python um analisador recursivo descendente para expressões aritméticas com parênteses, "
              "precedência de operadores e mensagens de erro claras, e explique a complexidade.")
POLIGONO = "Prove que a soma dos ângulos internos de um polígono convexo de n lados é (n-2)·180°, passo a passo."
FAZENDEIRO = ("Um fazendeiro precisa atravessar um rio com um lobo, uma cabra e um repolho; o barco só leva um deles "
              "além dele. Como ele consegue sem que ninguém coma nada?")
TREN = ("Un tren sale de una estación a las 9:40 a 72 km/h y otro sale de la misma estación a las 10:10 a 96 km/h "
        "por la misma vía. ¿A qué hora alcanza el segundo al primero y a qué distancia de la estación?")
SUBCADENA = ("Escribe una función en Python que encuentre la subcadena más larga sin caracteres repetidos en tiempo "
             "lineal y explica por qué es O(n).")
GRANJERO = ("Un granjero tiene que cruzar un río con un lobo, una cabra y una col; la barca solo lleva a uno además de "
            "él. ¿Cómo lo consigue sin que nadie se coma nada?")
ANSWER = "Here is a worked answer, step by step, with the result at the end."


def conversation(*turns: str, system: str | None = None) -> dict[str, Any]:
    """A chat body: user and assistant turns alternating, the first a user's."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    return {"model": "auto", "messages": messages}


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load(DEFAULT_CONFIG))


# (thread, follow-up): the thread goes to cloud on its own; so does the follow-up, as a follow-up
INHERITS = [
    (CYCLIST, "What if the return speed were 15 km/h instead?"),
    (SUBSTRING, "Now do it in Rust."),
    (SUBSTRING, "Continue."),
    (SEATS, "Why?"),
    (TREM, "E se o segundo saísse às 10h25?"),
    (ANALISADOR, "Agora em Java."),
    (POLIGONO, "E para um polígono não convexo?"),
    (TREN, "¿Y si el segundo saliera a las 10:25?"),
    (SUBCADENA, "Ahora en Rust."),
]


@pytest.mark.parametrize(("thread", "follow_up"), INHERITS)
def test_a_follow_up_of_a_hard_thread_goes_to_cloud(router: Router, thread: str, follow_up: str) -> None:
    assert router.route(conversation(thread))[1]
    alone = router.route(conversation(follow_up))
    assert not alone[1]  # on its own the follow-up is easy: the thread is what makes it hard
    d, cloud, f = router.route(conversation(thread, ANSWER, follow_up))
    assert cloud, (d, f.signals)
    assert "follow_up" in f.signals


@pytest.mark.parametrize("thread", [FAZENDEIRO, GRANJERO])
@pytest.mark.parametrize("follow_up", ["Por quê?", "¿Por qué?", "Continue."])
def test_puzzle_follow_ups_stay_on_cloud(router: Router, thread: str, follow_up: str) -> None:
    """A puzzle's own signals already count from the context (at half weight): cloud, follow-up or not."""
    assert router.route(conversation(thread, ANSWER, follow_up))[1]


# transforms of the answer and thanks are light jobs of their own, whatever the thread was
LIGHT = [
    (SUBSTRING, "Summarise that in two lines."),
    (SUBSTRING, "Make it shorter."),
    (CYCLIST, "Thanks!"),
    (ANALISADOR, "Traduza para o inglês."),
    (TREM, "Resuma isso em duas linhas."),
    (POLIGONO, "Obrigado!"),
    (SUBCADENA, "Hazlo más corto."),
    (TREN, "Resume eso en dos líneas."),
    (SUBCADENA, "¡Gracias!"),
]


@pytest.mark.parametrize(("thread", "follow_up"), LIGHT)
def test_transforms_and_thanks_of_a_hard_thread_stay_local(router: Router, thread: str, follow_up: str) -> None:
    assert router.route(conversation(thread))[1]
    d, cloud, f = router.route(conversation(thread, ANSWER, follow_up))
    assert not cloud, (d, f.signals)
    assert "follow_up" not in f.signals


EASY = [
    ("What's the capital of Portugal?", "Lisbon.", "And of Spain?"),
    ("How do I reverse a list in Python?", "Use reversed() or slicing.", "And in JavaScript?"),
    ("Write a haiku about autumn leaves.", "Red leaves drift down...", "Now one about snow."),
    ("Qual é a capital do Brasil?", "Brasília.", "E da Argentina?"),
    ("¿Cuántos días tiene una semana?", "Siete.", "¿Y un mes?", "Unos treinta.", "¿Por qué?"),
]


@pytest.mark.parametrize("turns", EASY, ids=[t[-1] for t in EASY])
def test_follow_ups_of_an_easy_thread_stay_local(router: Router, turns: tuple[str, ...]) -> None:
    assert not router.route(conversation(*turns))[1]


@pytest.mark.parametrize(("thread", "second", "third"), [
    (SUBSTRING, "Now do it in Rust.", "And in C++?"),
    (TREM, "E se o segundo saísse às 10h25?", "E a 110 km/h?"),
    (TREN, "¿Y si el segundo saliera a las 10:25?", "¿Y a 110 km/h?"),
])
def test_a_follow_up_of_a_follow_up_still_goes_to_cloud(router: Router, thread: str, second: str, third: str) -> None:
    d, cloud, f = router.route(conversation(thread, ANSWER, second, ANSWER, third))
    assert cloud, (d, f.signals)
    assert "follow_up" in f.signals


def test_a_chain_of_follow_ups_is_discounted_once(router: Router) -> None:
    """"Continue." after "Continue." keeps the first follow-up's difficulty: the discount is not compounded."""
    turns: list[str] = [SUBSTRING]
    seen = []
    for _ in range(5):
        turns += [ANSWER, "Continue."]
        d, cloud, f = router.route(conversation(*turns))
        assert cloud
        assert "follow_up" in f.signals
        seen.append(d)
    assert len(set(seen)) == 1, seen


def test_the_inherited_difficulty_is_the_threads_minus_the_discount_and_size_free(router: Router) -> None:
    """The follow-up's base is (thread logit, 0, 0): the classify stage's recount cannot move it."""
    analyzer = router.analyzer
    clf = analyzer.classifier
    first = extract("chat", conversation(SUBSTRING, system="Be brief."))
    tokens = estimate(first).tokens
    thread = Difficulty.logit(clf.analyse(first, tokens)[1], tokens)
    p = extract("chat", conversation(SUBSTRING, ANSWER * 40, "Now do it in Rust.", system="Be brief."))
    f, base = clf.analyse(p, estimate(p).tokens)
    assert base == (pytest.approx(thread - FOLLOW_UP_DISCOUNT), 0.0, 0.0)
    assert "follow_up" in f.signals
    assert f.difficulty == Difficulty.score(base, 1) == Difficulty.score(base, 100_000)
    assert f.difficulty == pytest.approx(1 / (1 + math.exp(-(thread - FOLLOW_UP_DISCOUNT))), abs=0.001)


def test_a_long_last_message_is_an_ask_of_its_own(router: Router) -> None:
    """Over FOLLOW_UP_WORDS words, the message is not a follow-up, however hard the thread."""
    long = " ".join(["Tell me a little more about the weather in the hills this week, please."] * 3)
    assert len(long.split()) > FOLLOW_UP_WORDS
    assert "follow_up" not in router.route(conversation(SEATS, ANSWER, long))[2].signals


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "user", "content": SUBSTRING}]},
    {"messages": [{"role": "user", "content": "Now do it in Rust."}]},
    {"messages": [{"role": "system", "content": SUBSTRING}, {"role": "user", "content": "Now do it in Rust."}]},
    {"system": SUBSTRING, "messages": [{"role": "user", "content": "Continue."}]},
    {"messages": [{"role": "user", "content": SUBSTRING}, {"role": "assistant", "content": ANSWER}]},
])
def test_requests_without_an_earlier_user_turn_take_no_follow_up_work(
    monkeypatch: pytest.MonkeyPatch, body: dict[str, Any]
) -> None:
    """One user message (with a system prompt or an answer) never reaches the follow-up check."""
    monkeypatch.setattr(Classifier, "_follow_up", lambda *a: pytest.fail("follow-up work on one message"))
    clf = Classifier()
    f = clf.classify(extract("chat", body), 50)
    assert "follow_up" not in f.signals
    assert not clf._threads.logits


@pytest.mark.parametrize("endpoint", ["completions", "embeddings"])
def test_several_prompts_or_inputs_are_not_turns(endpoint: str) -> None:
    key = "prompt" if endpoint == "completions" else "input"
    p = extract(endpoint, {"model": "auto", key: [SUBSTRING, "Now do it in Rust."]})
    f = Classifier().classify(p, estimate(p).tokens, endpoint)
    assert "follow_up" not in f.signals


def test_a_retried_follow_up_reuses_the_thread_logit(monkeypatch: pytest.MonkeyPatch) -> None:
    clf = Classifier()
    calls: list[int] = []

    def counting(prompt: Any, encoding: str = "o200k_base") -> Any:
        calls.append(len(prompt.roles))
        return estimate(prompt, encoding)

    monkeypatch.setattr(classifier_module, "estimate", counting)
    raw = orjson.dumps(conversation(SUBSTRING, ANSWER, "Now do it in Rust."))
    first = clf.analyse(extract("chat", orjson.loads(raw)), 80)
    assert calls == [1]  # the thread (the first message) was scored once
    again = clf.analyse(extract("chat", orjson.loads(raw)), 80)  # a retry: the same texts, new objects
    assert calls == [1]
    assert first == again
    assert "follow_up" in again[0].signals
    # another conversation whose previous message reads the same is its own thread
    other = clf.analyse(extract("chat", conversation("Hi!", "Hello!", "Now do it in Rust.", ANSWER, "And in Go?")), 80)
    assert len(calls) == 3  # "Now do it in Rust." after "Hi!", then "Hi!" itself
    assert "follow_up" not in other[0].signals


def test_the_thread_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classifier_module, "THREAD_MEMO", 4)
    clf = Classifier()
    for i in range(10):
        clf.analyse(extract("chat", conversation(f"{SUBSTRING} Case {i}.", ANSWER, "Now do it in Rust.")), 80)
        assert len(clf._threads.logits) <= 4


def test_a_long_chain_of_follow_ups_is_followed_a_bounded_number_of_turns_back() -> None:
    clf = Classifier()
    turns = [SUBSTRING]
    for i in range(600):  # deeper than the recursion limit if every turn were followed back
        turns += [ANSWER, f"And for case {i}?"]
    p = extract("chat", conversation(*turns))
    t0 = time.perf_counter()
    f = clf.classify(p, estimate(p).tokens)
    assert time.perf_counter() - t0 < 2.0
    assert len(clf._threads.logits) <= FOLLOW_UP_HOPS
    assert f.task


def test_the_route_preview_shows_the_follow_up(live: Stack) -> None:
    body = conversation(SUBSTRING, ANSWER, "Now do it in Rust.")
    preview = post(live, body, "/v1/route").json()
    assert "follow_up" in preview["signals"]
    alone = post(live, conversation("Now do it in Rust."), "/v1/route").json()
    assert "follow_up" not in alone["signals"]
    assert preview["difficulty"] > alone["difficulty"]
