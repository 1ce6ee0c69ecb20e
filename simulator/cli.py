"""The `kakao-dispatch simulator` command: options, start-up banner, then serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simulator.config import (
    DEFAULT_APP_ID,
    DEFAULT_KEY_ID,
    DEFAULT_KEY_SECRET,
    DEFAULT_PROJECT_ID,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TOKEN_TTL_S,
    ConfigError,
    SimulatorConfig,
    parse_ms_range,
    parse_window,
)
from simulator.templates import TemplateRegistry, TemplateRegistryError


def _fail(message: str) -> typer.Exit:
    typer.echo(f"kakao-dispatch simulator: {message}", err=True)
    return typer.Exit(2)


def banner(config: SimulatorConfig, host: str, port: int, key_given: bool) -> str:
    url = f"http://{host}:{port}"
    window = "-".join(f"{moment:%H:%M}" for moment in config.friendtalk_window)
    low, high = config.receipt_delay_ms
    lines = [
        f"Sinch Conversation API + KakaoTalk simulator on {url}",
        f"  SINCH_API_URL={url}  SINCH_AUTH_URL={url}/oauth2/token",
        f"  SINCH_PROJECT_ID={config.project_id}  SINCH_APP_ID={config.app_id}",
        f"  SINCH_KEY_ID={config.key_id}  SINCH_KEY_SECRET={config.key_secret}"
        + ("" if key_given else "  (defaults; set --key-id/--key-secret to change)"),
        f"  templates: {len(config.templates)} loaded" if config.templates else "  templates: none (not checked)",
        f"  webhook: {config.webhook_url}" + (" (signed)" if config.webhook_secret else " (unsigned)")
        if config.webhook_url
        else "  webhook: none (register one with POST /v1/projects/{project}/webhooks)",
        f"  rate limit: {config.rate_limit:g} messages/s per app" if config.rate_limit else "  rate limit: none",
        f"  receipts after {low}-{high} ms; FriendTalk window {window} KST; tokens live {config.token_ttl_s:g} s",
        "  unreachable test numbers: +82 10-9999-0000 … +82 10-9999-0999",
        "  controls: /_sim/messages /_sim/inbound /_sim/faults /_sim/stats /_sim/reset /_sim/clock",
    ]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the `simulator` command to a typer application."""

    @app.command("simulator")
    def simulator_command(
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
        templates: Annotated[
            Path | None, typer.Option(help="AlimTalk template registry JSON; without it templates are not checked.")
        ] = None,
        webhook_url: Annotated[
            str | None, typer.Option(help="Webhook of the default app for MESSAGE_DELIVERY and MESSAGE_INBOUND.")
        ] = None,
        webhook_secret: Annotated[
            str | None, typer.Option(help="Secret that signs callbacks to --webhook-url.")
        ] = None,
        rate_limit: Annotated[
            float, typer.Option(help="Messages per second per app before 429; 0 = unlimited.")
        ] = DEFAULT_RATE_LIMIT,
        key_id: Annotated[
            str | None, typer.Option(help=f"Access key id (default {DEFAULT_KEY_ID}, printed at start-up).")
        ] = None,
        key_secret: Annotated[
            str | None, typer.Option(help=f"Access key secret (default {DEFAULT_KEY_SECRET}).")
        ] = None,
        receipt_delay_ms: Annotated[
            str, typer.Option(help="Delay of delivery receipts, uniform in A-B milliseconds.")
        ] = "100-1000",
        project_id: Annotated[str, typer.Option(help="The one project the simulator serves.")] = DEFAULT_PROJECT_ID,
        app_id: Annotated[
            str, typer.Option(help="The app, configured for KAKAOTALK and KAKAOTALKCHAT.")
        ] = DEFAULT_APP_ID,
        friendtalk_window: Annotated[
            str, typer.Option(help="FriendTalk sending window, Asia/Seoul, start inclusive, end exclusive.")
        ] = "08:00-21:00",
        token_ttl: Annotated[
            float, typer.Option("--token-ttl", help="Lifetime of OAuth2 access tokens in seconds.")
        ] = DEFAULT_TOKEN_TTL_S,
    ) -> None:
        """Run a local Sinch Conversation API + KakaoTalk simulator (sandbox, tests, benchmarks)."""
        from simulator.runner import serve

        if webhook_secret is not None and webhook_url is None:
            raise _fail("--webhook-secret needs --webhook-url")
        if (key_id is None) != (key_secret is None):
            raise _fail("give both --key-id and --key-secret, or neither")
        if rate_limit < 0 or token_ttl <= 0:
            raise _fail("--rate-limit must be ≥ 0 and --token-ttl > 0")
        try:
            config = SimulatorConfig(
                project_id=project_id,
                app_id=app_id,
                key_id=key_id or DEFAULT_KEY_ID,
                key_secret=key_secret or DEFAULT_KEY_SECRET,
                templates=TemplateRegistry.from_file(templates) if templates else None,
                webhook_url=webhook_url,
                webhook_secret=webhook_secret,
                rate_limit=rate_limit,
                receipt_delay_ms=parse_ms_range(receipt_delay_ms),
                friendtalk_window=parse_window(friendtalk_window),
                token_ttl_s=token_ttl,
            )
        except (ConfigError, TemplateRegistryError) as error:
            raise _fail(str(error)) from error
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise _fail("--webhook-url must be an http:// or https:// URL")
        typer.echo(banner(config, host, port, key_given=key_id is not None))
        serve(config, host, port)
