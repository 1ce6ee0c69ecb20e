"""Start-up configuration of the simulator and its documented defaults (project, app, credentials, limits)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

from simulator.templates import TemplateRegistry

DEFAULT_PROJECT_ID = "sim-project"
DEFAULT_APP_ID = "sim-app"
DEFAULT_KEY_ID = "sim-key"
DEFAULT_KEY_SECRET = "sim-secret"
DEFAULT_RATE_LIMIT = 20.0
DEFAULT_RECEIPT_DELAY_MS = (100, 1000)
DEFAULT_FRIENDTALK_WINDOW = (time(8, 0), time(21, 0))
DEFAULT_TOKEN_TTL_S = 3600.0


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything fixed at start-up; faults and the clock change at run time through `/_sim/*`."""

    project_id: str = DEFAULT_PROJECT_ID
    app_id: str = DEFAULT_APP_ID
    key_id: str = DEFAULT_KEY_ID
    key_secret: str = DEFAULT_KEY_SECRET
    templates: TemplateRegistry | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    rate_limit: float = DEFAULT_RATE_LIMIT  # messages per second per app; 0 = unlimited
    receipt_delay_ms: tuple[int, int] = DEFAULT_RECEIPT_DELAY_MS
    friendtalk_window: tuple[time, time] = DEFAULT_FRIENDTALK_WINDOW
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S
    timeout_delay_s: float = 30.0  # how late the `timeout` fault answers
    retry_after_s: int | None = None  # Retry-After on 429 answers; None sends no header
    webhook_max_attempts: int = 6
    webhook_retry_base_s: float = 0.5  # backoff 0.5, 1, 2, 4, 8 s between attempts
    webhook_timeout_s: float = 5.0
    media_timeout_s: float = 5.0
    media_cache_ttl_s: float = 300.0
    seed: int | None = None  # seeds the random draws of faults and delays, for reproducible runs
    message_log_limit: int = 200_000  # /_sim/messages keeps the most recent requests; stats count them all


class ConfigError(ValueError):
    """A command-line value that cannot be used; the message names the option and the expected form."""


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_ms_range(text: str) -> tuple[int, int]:
    """`100-1000` (uniform between the bounds) or `250` (always that delay)."""
    match = _RANGE.match(text)
    if match is None:
        raise ConfigError(f"{text!r} is not a range of milliseconds such as 100-1000")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if high < low:
        raise ConfigError(f"{text!r}: the upper bound is below the lower bound")
    return low, high


def parse_window(text: str) -> tuple[time, time]:
    """`08:00-21:00`: start inclusive, end exclusive, Asia/Seoul; a window may wrap past midnight."""
    match = _WINDOW.match(text)
    if match is None:
        raise ConfigError(f"{text!r} is not a window such as 08:00-21:00")
    hours_start, minutes_start, hours_end, minutes_end = (int(group) for group in match.groups())
    try:
        start, end = time(hours_start, minutes_start), time(hours_end, minutes_end)
    except ValueError as error:
        raise ConfigError(f"{text!r}: {error}") from error
    if start == end:
        raise ConfigError(f"{text!r}: the window is empty")
    return start, end
