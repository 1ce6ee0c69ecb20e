"""Everything one simulator remembers (apps, contacts, webhooks, messages, stats, faults, clock) and its reset."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from simulator.apps import App
from simulator.auth import TokenAuthority
from simulator.callbacks import CallbackSender
from simulator.clock import SimClock
from simulator.config import SimulatorConfig
from simulator.contacts import ContactBook
from simulator.errors import SinchApiError, not_found
from simulator.faults import Faults
from simulator.kakaotalk import KakaoTalkChannel
from simulator.media import MediaProber
from simulator.ratelimit import AppRateLimiter
from simulator.stats import Stats
from simulator.webhooks import MESSAGE_DELIVERY, MESSAGE_INBOUND, Webhook, WebhookRegistry

DEFAULT_APP_DISPLAY_NAME = "kakao-dispatch simulator"


class Simulation:
    """The state behind one server. Only the event loop of that server touches it, so it needs no locks."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.clock = SimClock()
        self.rng = random.Random(config.seed)
        self.auth = TokenAuthority(config.key_id, config.key_secret, config.token_ttl_s)
        self.rate_limiter = AppRateLimiter(config.rate_limit)
        self.start_faults = Faults(
            receipt_delay_ms=config.receipt_delay_ms,
            timeout_delay_s=config.timeout_delay_s,
            retry_after_s=config.retry_after_s,
        )
        self.faults = self.start_faults
        self.stats = Stats()
        self.messages: deque[dict[str, Any]] = deque(maxlen=config.message_log_limit)
        self.contacts = ContactBook()
        self.apps: dict[str, App] = {}
        self.webhooks = WebhookRegistry()
        if config.webhook_url:
            self.webhooks.add(
                Webhook("cli-webhook", config.app_id, config.webhook_url, "HTTP",
                        (MESSAGE_DELIVERY, MESSAGE_INBOUND), config.webhook_secret or ""),
                permanent=True,
            )  # fmt: skip
        self.media = MediaProber(timeout_s=config.media_timeout_s, cache_ttl_s=config.media_cache_ttl_s)
        self.callbacks = CallbackSender(
            max_attempts=config.webhook_max_attempts,
            retry_base_s=config.webhook_retry_base_s,
            timeout_s=config.webhook_timeout_s,
        )
        self.channel = KakaoTalkChannel(
            templates=config.templates,
            window=config.friendtalk_window,
            media=self.media,
            has_written=lambda identity: self.contacts.has_written(identity),
        )
        self._reset_apps()

    def _reset_apps(self) -> None:
        self.apps = {self.config.app_id: App(self.config.app_id, DEFAULT_APP_DISPLAY_NAME, self.config.rate_limit)}

    def check_project(self, project_id: str) -> None:
        if project_id != self.config.project_id:
            raise not_found(f"Project {project_id} not found")

    def app(self, app_id: str) -> App:
        app = self.apps.get(app_id)
        if app is None:
            raise SinchApiError(404, f"App {app_id} not found in project {self.config.project_id}")
        return app

    def reset(self) -> None:
        """Back to start-up: messages, stats, faults, contacts, apps, webhooks (command-line ones kept), clock,
        rate limits, media cache; scheduled callbacks are forgotten. Issued tokens stay valid."""
        self.callbacks.forget_pending()
        self.messages = deque(maxlen=self.config.message_log_limit)
        self.stats = Stats()
        self.faults = self.start_faults
        self.contacts = ContactBook()
        self._reset_apps()
        self.webhooks.reset()
        self.clock.reset()
        self.rate_limiter.reset()
        self.media.clear()

    async def start(self) -> None:
        await self.callbacks.start()

    async def close(self) -> None:
        await self.callbacks.close()
        await self.media.aclose()
