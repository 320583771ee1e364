"""UTC windows and the counter keys that carry them: budgets per day and month, rate limits per minute.

A counter's key names its window (`d2026-12-01`, `m2026-12`, `t29345678` = minute number since the
epoch), so a new window is simply a new counter; `*_end` gives the epoch second the window ends, which
is both the counter's expiry and the `retry-after` a refusal reports. Day ids are cached per day so the
hot path formats no dates.
"""

from __future__ import annotations

import calendar
import time

_day_cache: tuple[int, str, str, float, float] = (-1, "", "", 0.0, 0.0)


def _days(now: float) -> tuple[str, str, float, float]:
    """(day id, month id, day end, month end) for `now`, computed once per UTC day."""
    global _day_cache
    day_no = int(now // 86400)
    if _day_cache[0] != day_no:
        t = time.gmtime(day_no * 86400)
        month_end = calendar.timegm((t.tm_year + (t.tm_mon == 12), t.tm_mon % 12 + 1, 1, 0, 0, 0))
        _day_cache = (day_no, f"d{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}",
                      f"m{t.tm_year:04d}-{t.tm_mon:02d}", float((day_no + 1) * 86400), float(month_end))
    return _day_cache[1:]


def periods(now: float) -> tuple[str, str]:
    """(day id, month id) for `now`: the ledger's reporting periods."""
    day_no = int(now // 86400)
    c = _day_cache
    if c[0] != day_no:
        _days(now)
        c = _day_cache
    return c[1], c[2]


def day(now: float) -> tuple[str, float]:
    """The UTC day's id (`d2026-12-01`) and its end (epoch seconds)."""
    d = _days(now)
    return d[0], d[2]


def month(now: float) -> tuple[str, float]:
    """The UTC month's id (`m2026-12`) and its end (epoch seconds)."""
    d = _days(now)
    return d[1], d[3]


def minute(now: float) -> tuple[str, float]:
    """The minute's id (`t29345678`) and its end (epoch seconds)."""
    n = int(now // 60)
    return f"t{n}", float((n + 1) * 60)


def period_id(window: str, period: str | None, now: float | None = None) -> str:
    """The id of a reporting period: `window` day|month and an optional `2026-12-01` / `2026-12`."""
    if period:
        return ("d" if window == "day" else "m") + period
    now = time.time() if now is None else now
    return day(now)[0] if window == "day" else month(now)[0]
