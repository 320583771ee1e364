"""How much more the difficulty score could learn from MMLU's subjects: held-out ceilings and a domain-vocabulary probe.

Run: python -m bench.difficulty_probe [--folds 5] [--vocab TERMS.json] [--min-terms 2]

`bench.train_difficulty --bootstrap` prints in-sample ceilings (prompts ranked by their subject's mean gain over
the whole table). A ceiling fitted on the prompts it ranks overstates what any signal could earn, so this
prints each one both ways: in sample, and held out (the cell means computed on the other folds, the folds split
by prompt as `bench.train_difficulty` splits them). A cell oracle ranks prompts by their cell's mean gain (strong
minus weak accuracy) and keeps the hand-tuned order within a cell. The cells: the classifier's task, MMLU's four
groups, the subject, subject x task.

The vocabulary probe asks whether a compact list of terms per field (sciences, medicine, law, ...) can stand
in for the subject. A prompt's detected domain is the field with most distinct terms in it (at least
`--min-terms`), else none ("-"). It prints which subjects each field's detections come from (does it find the
field?), the oracle over (detected domain, task) cells next to the task cells alone (what knowing the field
adds to knowing the task), and `hand + offsets`: the hand-tuned logit plus one offset per detected domain,
fitted on the other folds (what the field would add to the shipped score). The same with the true field
(`FIELDS`: a perfect detector of the vocabulary's fields) and the true subject (of 57) bound what any
vocabulary could add. `DEFAULT_TERMS` is written from general knowledge of each field, not from the questions;
`--vocab` reads another, `{"field": ["term", ...]}`.

Last, where the shipped score's gap to prompt length on the whole table comes from: the seven subjects whose
strong outcomes are an artefact (`bench.routing_quality.NOISY_MMLU`) have a mean gain near zero, and the score
rightly ranks their worked problems high (as it must for real traffic); it prints their mean gain and that of
the score's top fifth of them.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import orjson

from bench.outcomes import Router, route_rows, rows, scorer, tables
from bench.routing_quality import NOISY_MMLU
from bench.train_difficulty import apgr_of, fold_of, gains_of
from router.routing.difficulty import logit

MIN_TERMS = 2  # distinct terms of one domain before a prompt counts as of that domain
_WORD = re.compile(r"[^\W\d_][\w'-]*")
DEFAULT_TERMS: dict[str, str] = {
    "physics": "velocity acceleration momentum friction kinetic inertia torque oscillation pendulum wavelength "
               "frequency amplitude photon photons electron electrons proton neutron nucleus quantum relativity "
               "gravitational voltage resistor resistance capacitor inductor circuit ohm joule joules watt coulomb "
               "ampere volt volts newtons refraction diffraction lens magnetic electromagnetic thermodynamics entropy "
               "radiation radioactive isotope particle projectile collision elastic inelastic buoyancy viscosity "
               "kelvin semiconductor transistor diode",
    "chemistry": "molecule molecules molecular molar molarity mole moles ion ions ionic covalent oxidation redox "
                 "acid acids acidic titration catalyst electronegativity orbital orbitals valence enthalpy reagent "
                 "solvent solute precipitate stoichiometry alkane alkene aromatic polymer compound compounds "
                 "exothermic endothermic atom atoms atomic electrolysis",
    "biology": "gene genes genetic genetics allele alleles chromosome chromosomes dna rna mrna protein proteins "
               "enzyme enzymes mutation mutations genotype phenotype heterozygous homozygous recessive mitosis "
               "meiosis cellular membrane mitochondria ribosome receptor receptors hormone hormones neuron neurons "
               "antibody antibodies antigen pathogen bacteria bacterial virus viral organism organisms species "
               "evolution photosynthesis metabolism nucleotide eukaryotic prokaryotic",
    "medicine": "patient patients diagnosis symptoms syndrome chronic acute lesion artery arteries vein cardiac "
                "renal hepatic pulmonary insulin glucose tumor carcinoma therapy dose mg clinical physician nerve "
                "serum plasma infection disease disorder medication treatment fever abdominal",
    "economics": "inflation gdp monetary fiscal elasticity marginal tariff deficit surplus aggregate recession "
                 "unemployment monopoly oligopoly equilibrium consumer producer utility macroeconomic "
                 "microeconomic currency",
    "finance": "depreciation liabilities assets equity accrual ledger audit auditor dividend dividends bond bonds "
               "portfolio securities amortization taxable deduction accounting accountant shareholders stock "
               "investment investor",
    "computing": "algorithm algorithms polynomial recursion recursive binary compiler kernel processor register "
                 "pointer hash graph vertex vertices boolean bits bytes cache integer array software hardware "
                 "protocol encryption packet",
    "statistics": "regression classifier neural gradient dataset overfitting variance distribution sampling "
                  "hypothesis significance correlation deviation estimator likelihood probability statistic "
                  "statistical",
    "law": "plaintiff defendant statute negligence tort liability contract jurisdiction constitutional "
           "amendment court appellate testimony evidence hearsay felony prosecution conviction lawsuit damages "
           "easement property tenant",
    "logic": "premise premises conclusion valid invalid fallacy proposition predicate quantifier syllogism "
             "argument entails implies contradiction tautology",
}

# the true field of the MMLU subjects that belong to one of DEFAULT_TERMS' fields (the others: "-"), to tell a
# vocabulary that misses the field from a field that says nothing
FIELDS: dict[str, str] = {subject: field for field, subjects in {
    "physics": "astronomy college_physics conceptual_physics electrical_engineering high_school_physics",
    "chemistry": "college_chemistry high_school_chemistry",
    "biology": "anatomy college_biology high_school_biology medical_genetics virology",
    "medicine": "clinical_knowledge college_medicine human_aging nutrition professional_medicine",
    "economics": "econometrics high_school_macroeconomics high_school_microeconomics",
    "finance": "professional_accounting",
    "computing": "college_computer_science computer_security high_school_computer_science machine_learning",
    "statistics": "high_school_statistics",
    "law": "international_law jurisprudence professional_law",
    "logic": "formal_logic logical_fallacies",
}.items() for subject in subjects.split()}


def load(router: Router) -> list[dict[str, Any]]:
    """The mmlu prompts with their subject, group, task, hand-tuned difficulty and prompt."""
    path = next(p for p in tables() if p.name == "mmlu.jsonl")
    items = rows(path)
    return [{"id": r["id"], "prompt": r["prompt"], "domain": r["domain"], "group": r["group"],
             "field": FIELDS.get(r["domain"], "-"), "task": f.task,
             "hand": d} for r, (d, _cloud, f) in zip(items, route_rows(router, items, "mmlu"), strict=True)]


def cell_oracle(items: list[dict[str, Any]], gains: list[list[float]], key: Callable[[dict[str, Any]], Hashable],
                folds: int = 0) -> float:
    """APGR of prompts ranked by their cell's mean gain (the hand-tuned order within a cell): over all prompts
    (`folds` 0: in sample) or, held out, over the other folds' prompts (a cell unseen there: the table's mean)."""
    fold = [fold_of(e["prompt"], folds) if folds else 0 for e in items]
    scores = [0.0] * len(items)
    for k in range(folds or 1):
        sums: dict[Hashable, list[float]] = {}
        for e, g, f in zip(items, gains, fold, strict=True):
            if not folds or f != k:
                cell = sums.setdefault(key(e), [0.0, 0.0])
                cell[0] += sum(g) / len(g)
                cell[1] += 1
        overall = sum(s for s, _n in sums.values()) / sum(n for _s, n in sums.values())
        for i, (e, f) in enumerate(zip(items, fold, strict=True)):
            if not folds or f == k:
                s, n = sums.get(key(e), (overall, 1.0))
                scores[i] = s / n + e["hand"] * 1e-6  # the hand order breaks ties within a cell
    return apgr_of(gains, scores)


def with_offsets(items: list[dict[str, Any]], gains: list[list[float]], folds: int, key: str = "detected") -> float:
    """Held-out APGR of the hand-tuned logit plus a learnt offset per value of `key` (the detected domain, or
    the true subject): a least-squares fit of the gain on (hand logit, one indicator per value) over the other
    folds, which ranks the held-out fold by its prediction (the hand-tuned order within a domain, as long as the
    fit weighs the hand logit up)."""
    xs = [logit(e["hand"]) for e in items]
    ys = [sum(g) / len(g) for g in gains]
    fold = [fold_of(e["prompt"], folds) for e in items]
    scores = [0.0] * len(items)
    for k in range(folds):
        train = [i for i in range(len(items)) if fold[i] != k]
        slope, offsets = _fit_offsets([xs[i] for i in train], [ys[i] for i in train], [items[i][key] for i in train])
        for i in range(len(items)):
            if fold[i] == k:  # a value never seen in training gets no offset (numpy's minimum-norm lstsq does so)
                scores[i] = slope * xs[i] + offsets.get(items[i][key], 0.0)
    return apgr_of(gains, scores)


def _fit_offsets(xs: list[float], ys: list[float], groups: list[Any]) -> tuple[float, dict[Any, float]]:
    """The least-squares fit y ~ slope * x + offset[group], in closed form: the slope from the deviations from
    each group's means, each offset its group's mean residual. When x is constant within every group the fit is
    not unique; then the minimum-norm one, as `numpy.linalg.lstsq` gives it."""
    sums: dict[Any, list[float]] = {}
    for x, y, g in zip(xs, ys, groups, strict=True):
        s = sums.setdefault(g, [0.0, 0.0, 0.0])
        s[0] += 1
        s[1] += x
        s[2] += y
    means = {g: (sx / n, sy / n) for g, (n, sx, sy) in sums.items()}
    sxx = sxy = 0.0
    for x, y, g in zip(xs, ys, groups, strict=True):
        mx, my = means[g]
        sxx += (x - mx) ** 2
        sxy += (x - mx) * (y - my)
    if sxx > 1e-12 * (1.0 + sum(x * x for x in xs)):
        slope = sxy / sxx
    else:  # x = c[g] in each group: minimise slope² + Σ offset² subject to slope * c[g] + offset[g] = mean y[g]
        slope = sum(mx * my for mx, my in means.values()) / (1.0 + sum(mx * mx for mx, _ in means.values()))
    return slope, {g: my - slope * mx for g, (mx, my) in means.items()}


def detector(terms: dict[str, list[str]], least: int = MIN_TERMS) -> Callable[[str], str]:
    """prompt -> the domain with most distinct terms in it (at least `least`), or "-"."""
    sets = {name: frozenset(t.lower() for t in words) for name, words in terms.items()}

    def detect(prompt: str) -> str:
        words = set(w.lower() for w in _WORD.findall(prompt))
        best, hits = "-", least - 1
        for name, s in sets.items():
            n = len(words & s)
            if n > hits:
                best, hits = name, n
        return best

    return detect


def read_terms(path: str | None) -> dict[str, list[str]]:
    if path is None:
        return {name: words.split() for name, words in DEFAULT_TERMS.items()}
    doc = orjson.loads(Path(path).read_bytes())
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise SystemExit(f"{path}: expected {{\"domain\": [\"term\", ...]}}")
    return {str(k): [str(t) for t in v] for k, v in doc.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--vocab", default=None, metavar="TERMS.json", help="domain terms (default DEFAULT_TERMS)")
    ap.add_argument("--min-terms", type=int, default=MIN_TERMS, help="distinct terms of one domain to detect it")
    args = ap.parse_args(argv)
    so = scorer()
    items = load(Router())
    table = so.load_table(next(p for p in tables() if p.name == "mmlu.jsonl"))
    gains_by_id = dict(zip(table.ids, gains_of(so, table, table.ids), strict=True))
    detect = detector(read_terms(args.vocab), args.min_terms)
    for e in items:
        e["detected"] = detect(e["prompt"])
    views = [("mmlu", items), ("mmlu (clean)", [e for e in items if e["domain"] not in NOISY_MMLU])]
    cells: list[tuple[str, Callable[[dict[str, Any]], Hashable]]] = [
        ("task", lambda e: e["task"]), ("group", lambda e: e["group"]), ("subject", lambda e: e["domain"]),
        ("subject x task", lambda e: (e["domain"], e["task"])), ("detected domain", lambda e: e["detected"]),
        ("detected x task", lambda e: (e["detected"], e["task"])),
    ]
    extra = ("hand + offsets", "(true field)", "(by subject)")
    print(f"APGR on mmlu: the hand-tuned score (shipped config), prompt length, and cell oracles in sample / held "
          f"out over {args.folds} folds split by prompt")
    print(f"{'view':14} {'hand':>6} {'length':>6}   " + "  ".join(f"{name:>15}" for name, _k in cells)
          + "".join(f"  {h:>14}" for h in extra))
    for label, view in views:
        gains = [gains_by_id[e["id"]] for e in view]
        hand = apgr_of(gains, [e["hand"] for e in view])
        length = apgr_of(gains, [float(len(e["prompt"])) for e in view])
        shown = [f"{cell_oracle(view, gains, key):.3f} / {cell_oracle(view, gains, key, args.folds):.3f}"
                 for _name, key in cells]
        offsets = [with_offsets(view, gains, args.folds, key) for key in ("detected", "field", "domain")]
        print(f"{label:14} {hand:6.3f} {length:6.3f}   " + "  ".join(f"{s:>15}" for s in shown)
              + "".join(f"  {v:14.3f}" for v in offsets))
    print(f"\ndetected domains (at least {args.min_terms} distinct terms of one field): prompts, mean gain, "
          "top subjects")
    gains_all = {e["id"]: sum(g) / len(g) for e in items for g in (gains_by_id[e["id"]],)}
    by: dict[str, list[dict[str, Any]]] = {}
    for e in items:
        by.setdefault(e["detected"], []).append(e)
    for name, es in sorted(by.items(), key=lambda kv: -len(kv[1])):
        top = Counter(e["domain"] for e in es).most_common(3)
        gain = sum(gains_all[e["id"]] for e in es) / len(es)
        print(f"  {name:12} {len(es):6d} {gain:+.3f}  " + ", ".join(f"{s} {n}" for s, n in top))
    noisy = [e for e in items if e["domain"] in NOISY_MMLU]
    gains = [gains_by_id[e["id"]] for e in noisy]
    mean = sum(sum(g) / len(g) for g in gains) / len(gains)
    ranked = sorted(noisy, key=lambda e: -e["hand"])
    top = ranked[: len(ranked) // 5]
    tasks = ", ".join(f"{t} {n}" for t, n in Counter(e["task"] for e in top).most_common(2))
    print(f"\nthe {len(noisy)} prompts of NOISY_MMLU: mean gain {mean:+.3f} (the table: "
          f"{sum(gains_all.values()) / len(items):+.3f}); the hand-tuned score's top fifth of them ({tasks}): "
          f"mean gain {sum(gains_all[e['id']] for e in top) / len(top):+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
