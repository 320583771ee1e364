"""The cost/quality dial: `routing.complexity_cuts` that send about a chosen share of requests to cloud.

`ai-router calibrate FILE.jsonl --cloud-share 0.3` (router/cli.py) classifies a sample of the operator's own
prompts with their config and hands each request's features to `calibrate`. As RouteLLM's
`calibrate_threshold` does for its single threshold (the quantile of the router's score over a sample), the
first cut is placed at a quantile of the difficulties, but found by routing the sample through the config's
own rules: the share that lands on a cloud model (`location: cloud`) is what is matched, so token limits,
tools, capability filters and rules that do not read complexity are all accounted for. It is monotone for
rule tables where a higher complexity never moves a request from cloud back to local; otherwise the search
still ends at a cut and reports the share it actually gives.

The second cut keeps the sample's split of cloud traffic between `high` and the rest as the configured cuts
give it (so "medium goes to cloud-mini, high to cloud-high" keeps its proportions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from router.exchange import Features
from router.routing.difficulty import level

Decide = Callable[[Features], bool]  # does this request (features as classified) go to a cloud model?


@dataclass(frozen=True, slots=True)
class Calibration:
    cuts: tuple[float, float]
    share: float  # the cloud share the sample gets with `cuts`
    configured_share: float  # ... and with the configured cuts
    requests: int


def cloud_share(features: list[Features], decide: Decide, cuts: tuple[float, float]) -> float:
    """The share of `features` that go to cloud when complexity is read off difficulty through `cuts`."""
    if not features:
        return 0.0
    n = 0
    for f in features:
        f.complexity = level(f.difficulty, cuts)
        n += decide(f)
    return n / len(features)


def calibrate(features: list[Features], decide: Decide, target: float, configured: tuple[float, float]) -> Calibration:
    """The cuts that send about `target` of these requests to cloud (see the module docstring)."""
    if not features:
        raise ValueError("no requests to calibrate on")
    before = cloud_share(features, decide, configured)
    levels = sorted({f.difficulty for f in features})
    # candidate first cuts: each distinct difficulty (the lowest: everything at least medium), and above the top
    candidates = [*levels, min(1.0, levels[-1] + 0.001)]
    high_fraction = _high_fraction(features, decide, configured)

    def cuts_for(c0: float) -> tuple[float, float]:
        above = sorted(f.difficulty for f in features if f.difficulty >= c0)
        if not above or high_fraction <= 0.0:
            return (c0, min(1.0, max(c0, configured[1])))
        k = min(len(above) - 1, int(len(above) * (1.0 - high_fraction)))
        return (c0, max(c0, above[k]))

    # the cloud share falls as the first cut rises: find the lowest cut whose share is at most the target
    lo, hi = 0, len(candidates) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cloud_share(features, decide, cuts_for(candidates[mid])) > target:
            lo = mid + 1
        else:
            hi = mid
    best = lo
    if lo > 0:  # the cut just below may land closer to the target
        below = cloud_share(features, decide, cuts_for(candidates[lo - 1]))
        if abs(below - target) < abs(cloud_share(features, decide, cuts_for(candidates[lo])) - target):
            best = lo - 1
    c0, c1 = cuts_for(candidates[best])
    cuts = (round(c0, 3), round(max(c0, c1), 3))  # difficulties have three decimals: so do the cuts
    share = cloud_share(features, decide, cuts)
    cloud_share(features, decide, configured)  # leave the features as classified
    return Calibration(cuts=cuts, share=share, configured_share=before, requests=len(features))


def _high_fraction(features: list[Features], decide: Decide, cuts: tuple[float, float]) -> float:
    """Of the requests that go to cloud under `cuts`, the share whose complexity is `high`."""
    cloud = high = 0
    for f in features:
        f.complexity = level(f.difficulty, cuts)
        if decide(f):
            cloud += 1
            high += f.complexity == "high"
    return high / cloud if cloud else 0.0
