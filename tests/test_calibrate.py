"""`ai-router calibrate` and router.routing.calibrate: the cut points that send about a chosen share to cloud."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
import yaml

from bench.outcomes import Router, body_of
from bench.routing_quality import CASES, HOLDOUT, load_cases
from router.config import load, load_yaml
from router.exchange import Features
from router.routing.calibrate import calibrate, cloud_share
from tests.test_cli import ROOT, ai_router


def _to_cloud(f: Features) -> bool:
    return f.complexity != "low"  # the default rules' shape: low stays local, medium and high go to cloud


@pytest.mark.parametrize("target", [0.0, 0.1, 0.3, 0.5, 0.9, 1.0])
def test_calibrate_hits_the_share_on_a_spread_of_difficulties(target: float) -> None:
    features = [Features(difficulty=round(i / 199, 3)) for i in range(200)]
    result = calibrate(features, _to_cloud, target, (0.35, 0.65))
    assert abs(result.share - target) <= 0.01
    assert result.configured_share == pytest.approx(130 / 200)  # 0.35 .. 1.0 of the spread
    assert result.cuts[0] <= result.cuts[1]
    assert cloud_share(features, _to_cloud, result.cuts) == result.share


def test_calibrate_keeps_the_high_share_of_cloud_traffic() -> None:
    features = [Features(difficulty=round(i / 199, 3)) for i in range(200)]
    result = calibrate(features, _to_cloud, 0.2, (0.35, 0.65))
    high = sum(f.difficulty >= result.cuts[1] for f in features) / 200
    assert high / result.share == pytest.approx(70 / 130, abs=0.05)  # as under the configured cuts


def test_calibrate_with_ties_reports_what_it_achieves() -> None:
    features = [Features(difficulty=0.5) for _ in range(10)]
    result = calibrate(features, _to_cloud, 0.3, (0.35, 0.65))
    assert result.share in (0.0, 1.0)  # ten equal difficulties move together


def _write_sample(path: Path) -> list[dict]:
    """Our hand-labelled prompts in both accepted formats, plus lines calibrate must skip."""
    cases = load_cases(CASES) + load_cases(HOLDOUT)
    lines = []
    for i, c in enumerate(cases):
        if i % 2:
            lines.append({"id": c["id"], "task": c["task"], "messages": [{"role": "user", "content": c["prompt"]}]})
        else:
            lines.append(body_of(c["prompt"]))
    raw = b"".join(orjson.dumps(x) + b"\n" for x in lines) + b"not json\n" + b'{"neither": 1}\n' + b"\n"
    path.write_bytes(raw)
    return cases


def test_cli_prints_cuts_that_give_the_share(tmp_path: Path) -> None:
    sample = tmp_path / "prompts.jsonl"
    cases = _write_sample(sample)
    r = ai_router("calibrate", str(sample), "--cloud-share", "0.3", "--config", "config/router.yaml")
    assert r.returncode == 0, r.stderr
    assert f"{len(cases)} prompts from" in r.stdout
    assert "(2 lines skipped)" in r.stdout
    m = re.search(r"complexity_cuts: \[([\d.]+), ([\d.]+)\]\n?$", r.stdout)
    assert m, r.stdout
    cuts = [float(m.group(1)), float(m.group(2))]
    # the printed cuts, pasted into the config, send about 30% of the sample to cloud
    cfg = load_yaml((ROOT / "config/router.yaml").read_text())  # keeps `on:` a key
    cfg["routing"]["complexity_cuts"] = cuts
    edited = tmp_path / "router.yaml"
    edited.write_text(yaml.safe_dump(cfg))
    router = Router(load(edited))
    share = sum(router.route(body_of(c["prompt"]))[1] for c in cases) / len(cases)
    assert abs(share - 0.3) <= 0.05, (cuts, share)
    assert f"send {share:.1%} to cloud" in r.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--cloud-share", "1.5"], "--cloud-share must be between 0 and 1"),
    (["--cloud-share", "0.3"], "no requests in"),
])
def test_cli_refuses_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    r = ai_router("calibrate", str(empty), *args, "--config", "config/router.yaml")
    assert r.returncode == 2
    assert message in r.stderr
