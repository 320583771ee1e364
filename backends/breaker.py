"""The circuit breaker of one backend: stop sending requests to an upstream that keeps failing.

    closed ──(failures in a row, or error rate over the window)──▶ open
    open ──(cooldown_s elapsed)──▶ half_open
    half_open ──(the probe request succeeds)──▶ closed
    half_open ──(it fails)──▶ open again

Thresholds come from the backend's `breaker:` config (`router.config.BreakerSpec`). While open, routing
skips the backend and `/readyz` lists it as not ready. Half-open lets one request through at a time (a
probe that never reports, say its client left, frees the next probe after `cooldown_s`). The error-rate
window is a ring of one-second buckets, so recording an outcome costs a few integer operations.
"""

from __future__ import annotations

import logging
import time

from router.config import BreakerSpec

log = logging.getLogger("ai_router.breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Breaker:
    """Closed, open or half-open; `allow()` before a call, `success()`/`failure()` after it."""

    __slots__ = ("_fail", "_ok", "_stamp", "consecutive", "name", "open_until", "opened", "probe_at", "reason",
                 "spec", "state")

    def __init__(self, name: str, spec: BreakerSpec) -> None:
        self.name = name
        self.spec = spec
        self.state = CLOSED
        self.consecutive = 0
        self.open_until = 0.0
        self.probe_at = 0.0
        self.opened = 0  # how many times it opened (a counter for metrics)
        self.reason = ""
        n = max(1, int(spec.window_s))
        self._ok = [0] * n
        self._fail = [0] * n
        self._stamp = [0] * n

    # ------------------------------------------------------------ reading

    @property
    def available(self) -> bool:
        """May a request be sent now (closed, or open long enough to try a probe)?"""
        return self.state == CLOSED or (
            time.monotonic() >= (self.open_until if self.state == OPEN else self.probe_at)
        )

    def retry_after(self) -> float:
        """Seconds until a request could be let through again (0 when it could now)."""
        if self.state == CLOSED:
            return 0.0
        return max(0.0, (self.open_until if self.state == OPEN else self.probe_at) - time.monotonic())

    def allow(self) -> bool:
        """Take the right to send one request: always when closed; one probe at a time when half-open."""
        if self.state == CLOSED:
            return True
        now = time.monotonic()
        if self.state == OPEN:
            if now < self.open_until:
                return False
            self.state = HALF_OPEN
        elif now < self.probe_at:
            return False  # a probe is in flight
        self.probe_at = now + self.spec.cooldown_s
        return True

    # ------------------------------------------------------------ outcomes

    def success(self) -> None:
        if self.state != CLOSED:
            log.info("backend %s: circuit closed (probe succeeded)", self.name)
            self.state = CLOSED
            self.reason = ""
        self.consecutive = 0
        i, _ = self._bucket()
        self._ok[i] += 1

    def failure(self, why: str = "failure") -> None:
        i, sec = self._bucket()
        self._fail[i] += 1
        self.consecutive += 1
        if self.state == HALF_OPEN:
            self.trip(f"probe failed: {why}")
        elif self.state == CLOSED:
            if self.consecutive >= self.spec.failures:
                self.trip(f"{self.consecutive} failures in a row (last: {why})")
            else:
                ok, fail = self._window(sec)
                total = ok + fail
                if total >= self.spec.min_requests and fail / total >= self.spec.error_rate:
                    self.trip(f"error rate {fail}/{total} over {self.spec.window_s:g}s (last: {why})")

    def trip(self, reason: str) -> None:
        """Open the circuit for `cooldown_s` (again, if it already is)."""
        if self.state != OPEN:
            self.opened += 1
            log.warning("backend %s: circuit open for %gs: %s", self.name, self.spec.cooldown_s, reason)
        self.state = OPEN
        self.reason = reason
        self.open_until = time.monotonic() + self.spec.cooldown_s

    def reset(self) -> None:
        self.state = CLOSED
        self.consecutive = 0
        self.reason = ""
        for a in (self._ok, self._fail, self._stamp):
            a[:] = [0] * len(a)

    # ------------------------------------------------------------ the window

    def _bucket(self) -> tuple[int, int]:
        sec = int(time.monotonic())
        i = sec % len(self._stamp)
        if self._stamp[i] != sec:
            self._stamp[i] = sec
            self._ok[i] = 0
            self._fail[i] = 0
        return i, sec

    def _window(self, sec: int) -> tuple[int, int]:
        oldest = sec - len(self._stamp)
        ok = fail = 0
        for i, s in enumerate(self._stamp):
            if s > oldest:
                ok += self._ok[i]
                fail += self._fail[i]
        return ok, fail
