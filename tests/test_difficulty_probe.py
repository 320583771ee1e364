"""bench.difficulty_probe: the cell oracles (in sample and held out) and the domain-vocabulary detector."""

from __future__ import annotations

import orjson
import pytest

from bench.difficulty_probe import DEFAULT_TERMS, FIELDS, cell_oracle, detector, read_terms, with_offsets
from bench.train_difficulty import apgr_of


def _items(n: int) -> tuple[list[dict], list[list[float]]]:
    """n prompts per cell: cell "hard" always gains, cell "easy" never; the hand score ranks them backwards."""
    items, gains = [], []
    for i in range(n):
        for cell, gain, hand in (("hard", 1.0, 0.1), ("easy", 0.0, 0.9)):
            items.append({"prompt": f"{cell} prompt {i}", "task": cell, "hand": hand, "detected": cell})
            gains.append([gain])
    return items, gains


def test_a_cell_oracle_ranks_by_the_cells_mean_gain_in_sample_and_held_out() -> None:
    items, gains = _items(40)
    hand = apgr_of(gains, [e["hand"] for e in items])
    best = apgr_of(gains, [g[0] for g in gains])
    assert hand < 0.5 < best
    assert cell_oracle(items, gains, lambda e: e["task"]) == pytest.approx(best)
    # every fold sees both cells, so the held-out means rank the same way
    assert cell_oracle(items, gains, lambda e: e["task"], folds=5) == pytest.approx(best)
    # one cell for all: only the hand order is left
    assert cell_oracle(items, gains, lambda e: "all") == pytest.approx(hand)


def test_a_cell_unseen_in_the_training_folds_gets_the_tables_mean() -> None:
    items, gains = _items(40)
    items.append({"prompt": "a prompt of its own", "task": "lonely", "hand": 0.5})
    gains.append([-1.0])
    # in sample the lonely prompt's cell loses (ranked last); held out it has no cell: the table's mean gain
    # (about 0.5), which ranks it above every "easy" prompt
    held = cell_oracle(items, gains, lambda e: e["task"], folds=5)
    assert held < cell_oracle(items, gains, lambda e: e["task"])


def test_offsets_learnt_on_the_other_folds_fix_a_backwards_hand_score() -> None:
    items, gains = _items(40)
    assert with_offsets(items, gains, 5) == pytest.approx(apgr_of(gains, [g[0] for g in gains]))


def test_the_detector_needs_enough_distinct_terms_of_one_field() -> None:
    detect = detector({"physics": ["torque", "momentum"], "law": ["plaintiff", "tort", "statute"]})
    assert detect("What is torque?") == "-"  # one term: below the default of two
    assert detect("Torque, torque and TORQUE again") == "-"  # one distinct term
    assert detect("Angular momentum and torque of a wheel") == "physics"
    assert detect("The plaintiff sued in tort under a statute; torque and momentum aside") == "law"
    assert detector({"physics": ["torque"]}, least=1)("What is torque?") == "physics"


def test_the_default_vocabulary_names_the_fields_it_is_checked_against(tmp_path) -> None:
    assert set(FIELDS.values()) <= set(DEFAULT_TERMS)
    assert read_terms(None)["law"] == DEFAULT_TERMS["law"].split()
    path = tmp_path / "terms.json"
    path.write_bytes(orjson.dumps({"law": ["tort"]}))
    assert read_terms(str(path)) == {"law": ["tort"]}
    path.write_bytes(orjson.dumps(["tort"]))
    with pytest.raises(SystemExit):
        read_terms(str(path))
