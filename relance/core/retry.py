"""How long to wait before trying an HTTP request again: the one rule of the HTTP source's GETs
(tasks/sources/http_api.py) and the providers' sends (SendGrid, the SMS gateway).

* What the server asks for wins: ``Retry-After`` (RFC 9110: a number of seconds or an HTTP
  date; a date without a zone is UTC) and, where a provider documents it, ``X-RateLimit-Reset``
  (SendGrid: the epoch second the limit resets); the longer of the two, never below 0, at most
  the caller's cap. An unreadable value (text, NaN, infinity) is as if absent.
* Otherwise exponential back-off: ``base × 2^(attempt − 1)`` (attempt = the attempt that just
  failed, from 1), with ``jitter`` a random 50–100 % of it, at most ``cap``, so that parallel
  senders do not come back all at once.

Whether a request may be retried at all is the caller's decision: a GET may always be; a POST
that sends a message only when the provider proved it took nothing (a 429 or 5xx answer,
a connection refused), never after a timeout or a cut connection (it may have gone).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any


def retry_after_seconds(value: str | None, clock: Callable[[], float] = time.time) -> float | None:
    """The wait a ``Retry-After`` value asks for, in seconds (≥ 0), or None when absent or unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - clock()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_seconds(attempt: int, base: float, cap: float, *, jitter: bool = True) -> float:
    """Exponential back-off after the failed `attempt` (1, 2, …): base, 2·base, 4·base … at most cap."""
    wait = base * 2 ** (max(1, attempt) - 1)
    if jitter:
        wait *= 0.5 + random.random() / 2
    return min(cap, wait)


def header_value(headers: Any, name: str) -> str | None:
    """A header of an answer (any mapping-like headers, or None), None when absent."""
    if headers is None:
        return None
    try:
        return headers.get(name)
    except AttributeError:
        return None


def asked_wait(headers: Any, *, rate_limit_reset: bool = False, clock: Callable[[], float] = time.time) -> float | None:
    """The wait the answer's headers ask for (Retry-After, and X-RateLimit-Reset when the provider
    documents it as an epoch second), or None when they ask for none."""
    asked = retry_after_seconds(header_value(headers, "Retry-After"), clock)
    if rate_limit_reset:
        reset = header_value(headers, "X-RateLimit-Reset")
        try:
            until = float(reset) - clock() if reset else None
        except ValueError:
            until = None
        if until is not None and math.isfinite(until):
            asked = max(asked or 0.0, until, 0.0)
    return asked


def retry_wait(
    headers: Any,
    attempt: int,
    base: float,
    cap: float,
    *,
    asked_cap: float | None = None,
    jitter: bool = True,
    rate_limit_reset: bool = False,
    clock: Callable[[], float] = time.time,
) -> float:
    """Seconds to wait before the attempt after `attempt`: what the server asked for (at most
    asked_cap, default cap), else the back-off."""
    asked = asked_wait(headers, rate_limit_reset=rate_limit_reset, clock=clock)
    if asked is not None:
        return min(cap if asked_cap is None else asked_cap, asked)
    return backoff_seconds(attempt, base, cap, jitter=jitter)
