"""Train the learned layer of the difficulty score, and show whether it earns its place.

Run: python -m bench.train_difficulty [--folds 5] [--repeats 1] [--C 1.0] [--scale 1.0] [--task-scale math=0]
     [--clip 0.75] [--bootstrap N] [--write]
(needs the `train` extra: pip install -e '.[train]', i.e. numpy and scikit-learn; the router never imports them)

Data: the public outcome tables in ../shared/datasets/outcomes/ (read in place). Each prompt's label is
"the strong model did better than the weak one" (GSM8K, MMLU: the weak model failed and the strong one
succeeded; AlpacaEval: the judge preferred the strong answer on average over gemma-7b and OpenHermes-7B).
Features: the request's structure as the classifier computes it (`Classifier.layer_features`, the names in
`router.routing.difficulty.FEATURES`: length in words, sentences, questions, ratio, relation and negation
words, labelled statements), never its words: a bag of words learnt from these three tables memorised their
topics (MMLU's moral scenarios made "vacation", "beach" and "dog" hard), which is no use on other traffic.
Plus one indicator per table, which absorbs each table's base rate and is dropped at run time. The model is
an L2 logistic regression (scikit-learn) with the tables weighted equally.

Evaluation splits by prompt, not by row: a prompt's fold is a hash of its whitespace- and case-folded text, so
duplicates (MMLU repeats 105 prompts under other ids) always land in the same fold. For every held-out fold it
prints the APGR of: the hand-tuned difficulty alone, the learned layer alone, the two combined the way the router
combines them (the hand logit plus the task's scale, `--task-scale` or else `scale`, times the centred learned
logit, clipped to `clip`), and prompt length alone (the baseline to beat); for mmlu also without the quantitative
subjects whose strong outcomes are an artefact (`bench.routing_quality.NOISY_MMLU`). With `--repeats N` the folds
are drawn N times (the fold hash salted by the repeat) and each figure is the mean with its [min, max]: a
difference smaller than that spread is the split's, not the score's. With `--bootstrap N` it also prints each
table's sampling error: the standard error of the hand-tuned APGR and of combined minus hand-tuned (paired),
over N resamples of the prompts; and for mmlu two in-sample ceilings: prompts ranked by their subject's mean
gain (perfect knowledge of the subject), and the tasks ranked by their mean gain with the hand order kept
within each task (perfect task priors). It also routes the hand-labelled sets
(tests/data/difficulty_*.yaml, mixed_*.yaml) with and without the layer, trained on all tables, to show what it
does to diverse traffic it was not trained on.

--write writes router/data/difficulty_weights.json, the package data `router.routing.difficulty` loads.

`math` has scale 0 by default: its hand-tuned branch already weighs length, ratio and relation words (the
layer's largest terms after labelled statements), and adding them again counts them twice (held out, GSM8K
0.650 hand -> 0.647 combined at scale 1, 0.650 at 0; MMLU 0.575 -> 0.576).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from typing import Any

import orjson

from bench.outcomes import ROOT, Router, body_of, route_rows, rows, scorer, tables
from bench.routing_quality import NOISY_MMLU, OWN_SETS, load_cases
from router.routing.difficulty import FEATURES
from router.routing.tokens import extract

WEIGHTS = ROOT / "router" / "data" / "difficulty_weights.json"
WEAK_ALPACA = ("gemma-7b-it", "OpenHermes-2.5-Mistral-7B")
MIN_TASK_EXAMPLES = 30  # a task seen less often among the open-ended prompts is centred on all of them
CENTRE_ON = "alpacaeval.jsonl"


def structure(router: Router, prompt: str | list[dict[str, Any]]) -> tuple[float, ...]:
    """The learned layer's inputs for this prompt, exactly as the classifier computes them."""
    return router.analyzer.classifier.layer_features(extract("chat", body_of(prompt)))


DEFAULT_TASK_SCALES = {"math": 0.0}


def fold_of(prompt: str, folds: int, repeat: int = 0) -> int:
    key = (f"{repeat}:" if repeat else "").encode() + " ".join(prompt.lower().split()).encode()
    return int(hashlib.sha1(key).hexdigest(), 16) % folds


def load_examples(router: Router) -> list[dict[str, Any]]:
    out = []
    for path in tables():
        items = rows(path)
        for r, (d, _cloud, f) in zip(items, route_rows(router, items, path.stem), strict=True):
            if "weak_ok" in r:
                label = bool(r["strong_ok"]) and not r["weak_ok"]
            else:
                ws = [r["weak_win"][m] for m in WEAK_ALPACA if m in r["weak_win"]]
                label = sum(ws) / len(ws) < 0.5
            out.append({"table": path.name, "id": r["id"], "prompt": r["prompt"], "x": structure(router, r["prompt"]),
                        "label": label, "hand": d, "task": f.task, "domain": r.get("domain")})
    return out


def fit(train: list[dict[str, Any]], tables_: list[str], c: float) -> tuple[dict[str, float], dict[str, float]]:
    """(feature weights, centres: the mean learned logit over the training prompts of each task, "*": all)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[*e["x"], *(1.0 if e["table"] == t else 0.0 for t in tables_)] for e in train])
    y = np.array([e["label"] for e in train], dtype=int)
    sizes = {t: sum(1 for e in train if e["table"] == t) for t in tables_}
    w = np.array([len(train) / (len(tables_) * sizes[e["table"]]) for e in train])  # each table weighs the same
    model = LogisticRegression(C=c, max_iter=3000, fit_intercept=False).fit(x, y, sample_weight=w)
    weights = {f: float(model.coef_[0][i]) for i, f in enumerate(FEATURES)}
    # centred per task on the open-ended prompts (AlpacaEval's real user instructions, not multiple-choice or
    # grade-school items): the layer ranks requests within what the task prior says and does not move a whole
    # task of ordinary traffic up or down
    by_task: dict[str, list[float]] = {}
    open_ended = [e for e in train if e["table"] == CENTRE_ON] or train
    for e in open_ended:
        by_task.setdefault(e["task"], []).append(learned(weights, e["x"]))
    overall = sum(map(sum, by_task.values())) / len(open_ended)
    centres = {t: sum(v) / len(v) if len(v) >= MIN_TASK_EXAMPLES else overall for t, v in by_task.items()}
    centres["*"] = overall
    return weights, centres


def learned(weights: dict[str, float], x: tuple[float, ...]) -> float:
    return sum(weights[f] * v for f, v in zip(FEATURES, x, strict=True))


def centred(weights: dict[str, float], centres: dict[str, float], e: dict[str, Any]) -> float:
    return learned(weights, e["x"]) - centres.get(e["task"], centres["*"])


def combine(hand: float, z: float, scale: float, clip: float) -> float:
    h = min(max(hand, 1e-4), 1 - 1e-4)
    return 1 / (1 + math.exp(-(math.log(h / (1 - h)) + max(-clip, min(clip, scale * z)))))


def apgr(so: Any, table: Any, ids: list[str], scores: dict[str, float]) -> float:
    keep = set(ids)
    sub = so.Table(table.kind, [i for i in table.ids if i in keep],
                   [r for i, r in zip(table.ids, table.rows, strict=True) if i in keep], table.weak_models,
                   table.strong_model)
    values = []
    for model in sub.weak_models[:2]:  # alpacaeval: gemma and OpenHermes (FuseChat's gap is inverted)
        u = so.build_units(sub, model)
        values.append(so.evaluate(u, {i: "weak" for i in sub.ids}, scores, 1)["curve"]["apgr"])
    return sum(values) / len(values)


def gains_of(so: Any, table: Any, ids: list[str]) -> list[list[float]]:
    """Per prompt of `ids`, strong minus weak quality for each weak model that `apgr` scores."""
    out: dict[str, list[float]] = {i: [] for i in ids}
    for model in table.weak_models[:2]:
        u = so.build_units(table, model)
        for i, w, st in zip(u.ids, u.weak, u.strong, strict=True):
            if i in out:
                out[i].append(st - w)
    return [out[i] for i in ids]


def apgr_of(gains: list[list[float]], scores: list[float]) -> float:
    """APGR of `scores` over prompts with these `gains` (ties switch together, as `score_outcomes.py` sweeps);
    duplicates allowed, so it serves the bootstrap."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: -scores[i])
    values = []
    for m in range(len(gains[0])):
        gap = sum(g[m] for g in gains) / n
        area = prev_x = prev_y = total = 0.0
        for k, i in enumerate(order, 1):
            total += gains[i][m]
            if k == n or scores[order[k]] != scores[i]:
                x, y = k / n, total / n / gap
                area += (x - prev_x) * (prev_y + y) / 2
                prev_x, prev_y = x, y
        values.append(area)
    return sum(values) / len(values)


def bootstrap(gains: list[list[float]], a: list[float], b: list[float], n: int) -> tuple[float, float]:
    """(standard error of a's APGR, standard error of b's minus a's) over `n` resamples of the prompts."""
    import random

    rng = random.Random(0)
    alone, diff = [], []
    for _ in range(n):
        ix = [rng.randrange(len(a)) for _ in a]
        g = [gains[i] for i in ix]
        va = apgr_of(g, [a[i] for i in ix])
        alone.append(va)
        diff.append(apgr_of(g, [b[i] for i in ix]) - va)

    def sd(v: list[float]) -> float:
        mean = sum(v) / len(v)
        return math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))

    return sd(alone), sd(diff)


def ceilings(gains: list[list[float]], rows_: list[dict[str, Any]], hand: list[float]) -> tuple[float, float]:
    """In-sample upper bounds for a table with subjects: (prompts ranked by their subject's mean gain; the
    hand score's order kept within each task, the tasks ranked by their mean gain)."""
    def means(key: str) -> dict[str, float]:
        by: dict[str, list[float]] = {}
        for r, g in zip(rows_, gains, strict=True):
            by.setdefault(r[key], []).append(sum(g) / len(g))
        return {k: sum(v) / len(v) for k, v in by.items()}

    subject, task = means("domain"), means("task")
    ranks = {h: i for i, h in enumerate(sorted(set(hand)))}  # within a task, below one step of the task order
    return (apgr_of(gains, [subject[r["domain"]] for r in rows_]),
            apgr_of(gains, [task[r["task"]] + ranks[h] / (len(ranks) * 1e3) for r, h in zip(rows_, hand, strict=True)]))


def task_scales(items: list[str]) -> dict[str, float]:
    out = dict(DEFAULT_TASK_SCALES)
    for item in items:
        task, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--task-scale {item!r}: expected TASK=SCALE")
        out[task] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1, help="draw the folds this many times (mean [min, max])")
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 strength")
    ap.add_argument("--scale", type=float, default=1.0, help="weight of the learned logit in the combination")
    ap.add_argument("--task-scale", action="append", default=[], metavar="TASK=SCALE",
                    help=f"the weight for one task instead (default {DEFAULT_TASK_SCALES})")
    ap.add_argument("--clip", type=float, default=0.75, help="bound on the learned logit's contribution")
    ap.add_argument("--bootstrap", type=int, default=0, metavar="N",
                    help="also the standard errors over N resamples of the prompts, and mmlu's ceilings")
    ap.add_argument("--write", action="store_true", help=f"write {WEIGHTS.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    scales = task_scales(args.task_scale)
    so = scorer()
    router = Router(learned=False)  # the hand-tuned score alone: the layer is what is being trained
    print("routing the outcome tables ...", file=sys.stderr)
    data = load_examples(router)
    names = sorted({x["table"] for x in data})
    columns: dict[str, list[tuple[float, float, float, float]]] = {}
    last: dict[str, tuple[Any, list[str], dict[str, float], dict[str, float]]] = {}  # the last draw's scores
    for repeat in range(args.repeats):
        folds = [fold_of(x["prompt"], args.folds, repeat) for x in data]
        held: dict[str, float] = {}
        for k in range(args.folds):
            print(f"repeat {repeat + 1}/{args.repeats}, fold {k + 1}/{args.folds}", file=sys.stderr)
            train = [x for x, f in zip(data, folds, strict=True) if f != k]
            weights, centres = fit(train, names, args.C)
            for x, f in zip(data, folds, strict=True):
                if f == k:
                    held[x["id"]] = centred(weights, centres, x)
        for name in names:
            table = so.load_table(next(p for p in tables() if p.name == name))
            ids = [x["id"] for x in data if x["table"] == name]
            hand = {x["id"]: x["hand"] for x in data if x["table"] == name}
            task = {x["id"]: x["task"] for x in data if x["table"] == name}
            zs = [held[i] for i in ids]
            lo, hi = min(zs), max(zs)
            alone = {i: (held[i] - lo) / (hi - lo or 1.0) for i in ids}
            comb = {i: combine(hand[i], held[i], scales.get(task[i], args.scale), args.clip) for i in ids}
            longest = max(len(x["prompt"]) for x in data if x["table"] == name)
            length = {x["id"]: len(x["prompt"]) / longest for x in data if x["table"] == name}  # the baseline to beat
            views = [(name, ids)]
            if name == "mmlu.jsonl":  # without the subjects whose strong outcomes are an artefact (NOISY_MMLU)
                views.append(("mmlu (clean)", [x["id"] for x in data if x["table"] == name
                                               and x["domain"] not in NOISY_MMLU]))
            for label, view in views:
                last[label] = (table, view, hand, comb)
                columns.setdefault(label, []).append(
                    (apgr(so, table, view, hand), apgr(so, table, view, alone), apgr(so, table, view, comb),
                     apgr(so, table, view, length)))
    shown = ", ".join(f"{t} {v:g}" for t, v in sorted(scales.items()))
    print(f"held-out APGR over {args.folds} folds split by prompt (C={args.C}, scale={args.scale} ({shown}), "
          f"clip={args.clip})" + (f", {args.repeats} draws of the folds: mean [min, max]" if args.repeats > 1 else ""))
    width = 21 if args.repeats > 1 else 9
    print(f"{'table':18} " + " ".join(f"{h:>{width}}" for h in ("hand-tuned", "learned", "combined", "length")))
    for label, runs in columns.items():
        cells = []
        for j in range(4):
            v = [r[j] for r in runs]
            cells.append(f"{sum(v) / len(v):.3f} [{min(v):.3f}, {max(v):.3f}]" if len(v) > 1 else f"{v[0]:9.3f}")
        print(f"{label:18} " + " ".join(f"{c:>{width}}" for c in cells))
    if args.bootstrap:
        print(f"\nover {args.bootstrap} resamples of the prompts (the last draw's folds): standard error of the "
              "hand-tuned APGR, and of combined minus hand-tuned (paired)")
        by_id = {x["id"]: x for x in data}
        for label, (table, view, hand, comb) in last.items():
            gains = gains_of(so, table, view)
            h, c = [hand[i] for i in view], [comb[i] for i in view]
            se, se_diff = bootstrap(gains, h, c, args.bootstrap)
            line = (f"{label:18} hand-tuned {apgr_of(gains, h):.3f} ± {se:.3f}   combined - hand-tuned "
                    f"{apgr_of(gains, c) - apgr_of(gains, h):+.4f} ± {se_diff:.4f}")
            if label.startswith("mmlu"):
                subject, task = ceilings(gains, [by_id[i] for i in view], h)
                line += f"   ceilings: subject oracle {subject:.3f}, task-order oracle {task:.3f}"
            print(line)
    weights, centres = fit(data, names, args.C)
    print("\nthe hand-labelled sets (not trained on), the layer trained on all tables:")
    print(f"{'set':28} {'hard->cloud':>11} {'easy->cloud':>11}   with the layer (same cuts)")
    for path in OWN_SETS:
        cases = load_cases(path)
        for lang in ("en", "pt", "es", "all"):
            sub = [c for c in cases if lang in ("all", c["lang"])]
            base = [router.route(body_of(c["prompt"])) for c in sub]
            cut = router.config.routing.complexity_cuts[0]
            with_layer = [combine(d, centred(weights, centres, {"x": structure(router, c["prompt"]), "task": f.task}),
                                  scales.get(f.task, args.scale), args.clip)
                          for c, (d, _cl, f) in zip(sub, base, strict=True)]
            hard = [i for i, c in enumerate(sub) if c["label"] == "hard"]
            easy = [i for i, c in enumerate(sub) if c["label"] == "easy"]
            h0 = sum(base[i][0] >= cut for i in hard) / len(hard)
            e0 = sum(base[i][0] >= cut for i in easy) / len(easy)
            h1 = sum(with_layer[i] >= cut for i in hard) / len(hard)
            e1 = sum(with_layer[i] >= cut for i in easy) / len(easy)
            print(f"{path.stem + ' (' + lang + ')':28} {h0:11.1%} {e0:11.1%}   {h1:6.1%} {e1:6.1%}")
    if args.write:
        kept = {f: round(weights[f], 4) for f in FEATURES}
        doc = {"version": 3, "trained_on": names, "label": "strong model better than the weak one",
               "C": args.C, "centres": {t: round(v, 4) for t, v in sorted(centres.items())},
               "scale": args.scale, "task_scales": dict(sorted(scales.items())), "clip": args.clip, "features": kept}
        WEIGHTS.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        print(f"\nwrote {WEIGHTS.relative_to(ROOT)}: " + ", ".join(f"{f} {w:+.3f}" for f, w in kept.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
